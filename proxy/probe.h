// `dbward probe --protocol tds|postgres|mysql|tcp --backend HOST:PORT ...`:
// performs the protocol's TLS upgrade against a server, shows the certificate
// chain it presents and the TLS versions it accepts, and tells whether
// dbward's verify-full / verify-ca would succeed, with the cause and the fix.
// Exit status: 0 verify-full would succeed, 1 it would not, 2 usage error,
// 3 unreachable / not this protocol / TLS refused.
#pragma once

namespace dbward::proxy {

int RunProbe(int argc, char** argv);  // argv[0] is "probe"

}  // namespace dbward::proxy

// `dbward probe`: performs the protocol's TLS upgrade against a server (the
// sessions' own code, commands/backend_probe.h), shows the certificate chain
// it presents and the TLS versions it accepts, and tells whether dbward's
// verify-full / verify-ca would succeed, with the cause and the fix.
#pragma once

#include <string>

#include "proxy/backend/backend_probe.h"

namespace dbward::proxy {

constexpr int kProbeVerified = 0;     // verify-full would succeed
constexpr int kProbeNotVerified = 1;  // it would not
constexpr int kProbeUsage = 2;        // usage error, or the trust store cannot be loaded
constexpr int kProbeUnreachable = 3;  // unreachable, not this protocol, or TLS refused

struct ProbeOptions {
  probe::Target target;
  bool json = false;
};

// Returns the exit status; the report goes to *out, errors to *err.
int RunProbe(const ProbeOptions& options, std::string* out, std::string* err);

}  // namespace dbward::proxy

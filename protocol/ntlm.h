// The one thing dbward reads in the Windows logins it passes through: the
// user an NTLM AUTHENTICATE message (MS-NLMP 2.2.1.3) names, for the audit.
// The message may stand alone (TDS SSPI, tedious, jTDS) or sit inside SPNEGO
// (SqlClient, ODBC); Kerberos hides the user in encrypted parts and is not
// read. Nothing here checks or changes the authentication.
#pragma once

#include <span>
#include <string>

namespace dbward::protocol::ntlm {

// "DOMAIN\user" (or "user"), from the first NTLMSSP AUTHENTICATE message in
// blob; false when there is none or it does not parse.
bool AuthenticateUser(std::span<const uint8_t> blob, std::string* user);

}  // namespace dbward::protocol::ntlm

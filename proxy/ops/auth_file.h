// The users file of SCRAM mediation (scram.auth_file), in PgBouncer's
// format: one user a line, two double-quoted fields, the name and its
// secret ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", as
// pg_authid.rolpassword holds it); a doubled quote stands for a quote, the
// rest of the line is ignored, blank lines and lines starting with # or ;
// are comments. Errors name the line, never the secret.
#pragma once

#include <string>
#include <unordered_map>

namespace dbward::proxy {

bool ParseAuthFile(const std::string& text, std::unordered_map<std::string, std::string>* users, int* error_line,
                   std::string* error);

}  // namespace dbward::proxy

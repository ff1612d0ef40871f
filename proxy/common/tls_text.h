// TLS failures in words: tls/ reports what failed (a Diagnosis, a
// LoadError); this turns it into the sentence users read in their client's
// error, the log and `dbward probe`, naming the configuration keys that fix it.
#pragma once

#include <string>
#include <string_view>

#include "tls/cert_info.h"
#include "tls/context.h"

namespace dbward::proxy {

struct Explanation {
  std::string why;
  std::string fix;  // may be empty
  // "why; fix: fix"
  std::string Sentence() const { return fix.empty() ? why : why + "; fix: " + fix; }
};

// section: the configuration block to point the user at, e.g. "backend_tls".
Explanation ExplainHandshake(const tls::Diagnosis& d, std::string_view section);

// "ca_file /etc/dbward/ca.pem" or "system trust store /etc/ssl/certs/ca-certificates.crt".
std::string TrustDescription(const std::string& path, bool system);

// A certificate, key or CA file that did not load, with the configuration
// key that names it.
std::string ExplainLoadError(const tls::LoadError& e);

}  // namespace dbward::proxy

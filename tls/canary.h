// Canary certificates: made by dbward at start, signed by a throwaway CA that
// nobody trusts. A client that completes a handshake with one (and goes on to
// use the connection) does not validate certificates; one that aborts does.
#pragma once

#include <memory>
#include <string>

#include "tls/context.h"

namespace dbward::tls {

enum class CanaryMode {
  kUntrusted,  // the real certificate's names, from an unknown CA
  kWrongName,  // a name no client asks for (dbward-canary.invalid)
  kExpired,    // the real names, expired a month ago
};
const char* CanaryModeName(CanaryMode mode);

// A server context presenting a canary certificate. options carries the
// listener's client_tls settings (versions, ALPN); its certificate is the
// template whose subject and subjectAltNames the canary copies.
std::shared_ptr<Context> NewCanaryContext(CanaryMode mode, const ServerOptions& options, std::string* error);

}  // namespace dbward::tls

// Client TLS sessions kept for resumption, per server name. A session enters
// the cache only from a handshake that verified the server (BoringSSL hands a
// client a session after the handshake, and a handshake whose verification
// failed has none), and the cache belongs to one client Context: a reload
// builds a new Context, so material loaded before it is never resumed.
#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace dbward::tls {

class SessionCache {
 public:
  // A server hands out two TLS 1.3 tickets per handshake (OpenSSL's
  // default); four per name cover a burst of connections.
  static constexpr size_t kPerName = 4;
  // Names beyond it (a TDS listener routed to many replicas over time) push
  // out the name used least recently.
  static constexpr size_t kNames = 256;
  // Older sessions are not offered, whatever lifetime the server gave them:
  // a resumed leg's certificate was validated when its session was made.
  static constexpr int64_t kMaxAgeSeconds = 3600;

  // A session to offer to `name`, or null. TLS 1.3 sessions are single use
  // (RFC 8446, C.4) and leave the cache; TLS 1.2 ones stay. Sessions past
  // their lifetime, kMaxAgeSeconds or their certificate's notAfter are
  // dropped.
  bssl::UniquePtr<SSL_SESSION> Take(const std::string& name, int64_t now);
  void Put(const std::string& name, bssl::UniquePtr<SSL_SESSION> session);
  size_t size() const;

 private:
  struct Entry {
    std::deque<bssl::UniquePtr<SSL_SESSION>> sessions;
    uint64_t used = 0;  // the clock_ of its last Take or Put
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> by_name_;
  uint64_t clock_ = 0;
};

}  // namespace dbward::tls

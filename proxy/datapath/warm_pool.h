// Warm backend legs (warm_backends, postgres): a few connections to the
// listener's backend, each already connected, past SSLRequest (or direct
// TLS), TLS-verified, and waiting for a StartupMessage. The next client's
// session takes one instead of paying a TCP and TLS handshake; PostgreSQL
// has already forked the backend process for it.
//
// One pool per worker and listener, on the worker's loop. A leg is handed
// out only if it was made with the session's TLS material (not from before a
// reload), its certificate is still valid, it is younger than max_age and the
// server has not closed it (checked with a non-blocking peek at the socket).
// Legs that age out are closed with a TLS close_notify before any StartupMessage,
// which PostgreSQL takes silently. Failures back off (1 s, doubling to 30 s).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/datapath/watch.h"
#include "proxy/ops/runtime.h"
#include "tls/connection.h"

namespace dbward::proxy {

// A verified backend leg, given to a session.
struct WarmHandoff {
  int fd = -1;
  Watch* watch = nullptr;
  std::unique_ptr<tls::Connection> tls;
  std::vector<uint8_t> buffered;  // ciphertext the leg read ahead: the session reads it first
  std::string address;      // what was connected to
  std::string server_name;  // the name the certificate was verified for
};

class WarmPool {
 public:
  // target: how many legs this worker keeps ready.
  WarmPool(uv_loop_t* loop, ListenerRuntime* listener, uint32_t target);
  ~WarmPool();
  WarmPool(const WarmPool&) = delete;
  WarmPool& operator=(const WarmPool&) = delete;

  void Start();
  // A ready leg verified with the listener's current TLS material, or
  // nothing (a miss); counts either way.
  std::optional<WarmHandoff> Take();
  // Closes every leg and stops refilling (drain and shutdown).
  void Stop();
  // Loop handles still open (the worker waits for them before it ends).
  bool closed() const { return timer_ == nullptr; }

  class Leg;

 private:
  void Poke();
  void OnTick();
  void Recycle(size_t index, const char* reason);
  void Refill();
  size_t ready_count() const;

  uv_loop_t* loop_;
  ListenerRuntime* listener_;
  uint32_t target_;
  std::vector<std::unique_ptr<Leg>> legs_;  // filling and ready
  uv_timer_t* timer_ = nullptr;             // heap: freed in its close callback
  bool stopped_ = false;
  uint64_t backoff_ms_ = 0;      // after a failed leg
  uint64_t next_attempt_ms_ = 0;
  int64_t ready_reported_ = 0;   // this pool's share of the listener's warm_ready gauge
};

}  // namespace dbward::proxy

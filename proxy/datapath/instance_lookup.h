// The port of a SQL Server named instance (backend: HOST\INSTANCE), asked of
// the host's SQL Server Browser (MC-SQLR, UDP 1434) as drivers ask it: one
// CLNT_UCAST_INST datagram, sent again each second until an answer or the
// deadline. Answers are cached for a minute per host and instance, so a busy
// listener asks once, not per connection.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <optional>
#include <string>

#include "proxy/engine/engine.h"

namespace dbward::proxy {

class InstanceLookup {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    virtual void OnInstancePort(uint16_t port) = 0;
    virtual void OnInstanceLookupFailed(const engine::Failure& failure) = 0;
  };

  InstanceLookup(uv_loop_t* loop, Callbacks& callbacks) : loop_(loop), callbacks_(callbacks) {}
  ~InstanceLookup() { Cancel(); }
  InstanceLookup(const InstanceLookup&) = delete;
  InstanceLookup& operator=(const InstanceLookup&) = delete;

  // address: the host's resolved address (its port is ignored); host and
  // instance as configured, for the cache and the messages.
  void Start(const sockaddr* address, const std::string& host, const std::string& instance, uint64_t deadline_ms);
  void Cancel();

  static std::optional<uint16_t> Cached(const std::string& host, const std::string& instance, uint64_t now_ms);
  static void Remember(const std::string& host, const std::string& instance, uint16_t port, uint64_t now_ms);
  static void Forget(const std::string& host, const std::string& instance);

 private:
  struct Socket;  // the UDP handle; outlives the lookup until its close callback
  void Send();
  void OnDatagram(const uint8_t* data, size_t size);
  void OnTimer();
  void Finish();

  uv_loop_t* loop_;
  Callbacks& callbacks_;
  Socket* socket_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  sockaddr_storage browser_{};
  std::string host_, instance_, browser_text_;
  uint64_t deadline_ms_ = 0;
  int sends_ = 0;
  std::string last_problem_;
};

}  // namespace dbward::proxy

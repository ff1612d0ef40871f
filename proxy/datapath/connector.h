// Reaching the backend: resolve its name (numeric addresses inline, names on
// libuv's thread pool so a slow DNS server never stalls the loop), then try
// every address in turn, each within timeouts.connect and all within the
// session's handshake deadline. A SQL Server named instance gets its port
// from the host's SQL Server Browser first. Reports one connected socket or
// one failure.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "proxy/datapath/instance_lookup.h"
#include "proxy/datapath/watch.h"
#include "proxy/engine/engine.h"

struct addrinfo;

namespace dbward::proxy {

class Connector final : Watch::Handler, InstanceLookup::Callbacks {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // The socket and its watch now belong to the callee.
    virtual void OnConnected(int fd, Watch* watch, const std::string& address) = 0;
    virtual void OnConnectFailed(const engine::Failure& failure) = 0;
  };

  Connector(uv_loop_t* loop, Callbacks& callbacks, std::string host, uint16_t port, uint64_t connect_timeout_ms);
  ~Connector() override;
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Another backend (TDS routing), or a named instance (port 0).
  void SetTarget(std::string host, uint16_t port, std::string instance = {});
  // deadline_ms: loop time by which it must be connected.
  void Start(uint64_t deadline_ms);
  // Stops whatever is in flight; nothing more is reported.
  void Cancel();
  bool active() const { return state_ != State::kIdle; }
  // The address being tried (or the last one tried).
  const std::string& address() const { return address_; }

 private:
  enum class State { kIdle, kResolving, kLookup, kConnecting };
  struct Resolve;  // a getaddrinfo request that may outlive the connector

  void OnResolved(int status, addrinfo* res);
  // Addresses known: connect, or first ask for the instance's port.
  void Resolved(addrinfo* res, bool from_uv);
  void UsePort(uint16_t port);
  void OnInstancePort(uint16_t port) override;
  void OnInstanceLookupFailed(const engine::Failure& failure) override;
  void ConnectNext();
  void OnSocketEvent(Watch* watch, int status, int events) override;
  void OnTimeout();
  void ArmTimer(uint64_t at_ms);
  void CloseAttempt();
  void Report(const engine::Failure& failure);

  uv_loop_t* loop_;
  Callbacks& callbacks_;
  std::string host_;
  uint16_t port_;
  std::string instance_;
  bool port_from_cache_ = false;
  InstanceLookup lookup_;
  uint64_t connect_timeout_ms_;
  uint64_t deadline_ms_ = 0;
  uint64_t budget_ms_ = 0;  // from Start to the deadline
  State state_ = State::kIdle;
  Resolve* resolve_ = nullptr;
  uv_timer_t* timer_ = nullptr;  // heap: freed in its close callback
  addrinfo* addrs_ = nullptr;
  bool addrs_from_uv_ = false;
  addrinfo* next_ = nullptr;
  int fd_ = -1;
  Watch* watch_ = nullptr;
  std::string address_;
  std::string last_error_;
};

}  // namespace dbward::proxy

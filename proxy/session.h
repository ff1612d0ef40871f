// A client connection and its backend connection, from accept to close:
// resolve and connect to the backend, verified TLS handshake, then the relay.
// Every libuv handle lives inside the session and the session is deleted only
// after the last close callback (libuv's rule for handle memory).
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "proxy/leg.h"
#include "proxy/runtime.h"

namespace dbward::proxy {

class Worker;

class Session {
 public:
  Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id);
  void Start();
  // Closes both legs now (drain timeout, shutdown).
  void Abort(const char* outcome);

  Session* next = nullptr;  // worker's intrusive list
  Session* prev = nullptr;

 private:
  enum class State { kResolving, kConnecting, kBackendTls, kRelaying, kClosing };
  enum class Wait : uint8_t { kNone, kRead, kWrite };

  // One direction of the relay. The buffer is the only queue between the two
  // legs: while it holds unsent bytes above the low-water mark the source is
  // not read, so TCP flow control pushes back on the sender.
  struct Direction {
    Leg* src = nullptr;
    Leg* dst = nullptr;
    uint8_t* buf = nullptr;
    size_t start = 0;
    size_t end = 0;
    bool src_eof = false;
    bool shut = false;
    Wait src_wait = Wait::kNone;
    Wait dst_wait = Wait::kNone;
    uint64_t bytes = 0;
  };

  ~Session();
  static void OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void OnClientPoll(uv_poll_t* handle, int status, int events);
  static void OnBackendPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* timer);
  static void OnRepump(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);

  void ConnectNext();
  void OnBackendWritableWhileConnecting();
  void StartBackendTls();
  void DriveBackendHandshake();
  void StartRelay();
  void Pump();
  // Returns false when the direction hit a fatal error (session is failing).
  bool PumpDirection(Direction* d, bool* progressed);
  void UpdatePolls();
  void SetPoll(uv_poll_t* poll, int* current, int events);
  uv_poll_t* NewPoll(int fd);
  void ClosePoll(uv_poll_t** poll);
  void ArmTimer(uint64_t ms);
  void Fail(const std::string& outcome, const std::string& error, const std::string& cause);
  void Finish();
  void EmitAudit();
  void ReleaseBuffer(Direction* d);

  Worker* worker_;
  ListenerRuntime* listener_;
  uint64_t id_;
  State state_ = State::kResolving;
  Leg client_;
  Leg backend_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client

  uv_poll_t* client_poll_ = nullptr;   // heap: a failed connect attempt's poll
  uv_poll_t* backend_poll_ = nullptr;  // is closed while the session goes on
  uv_timer_t timer_;
  uv_timer_t repump_;
  uv_getaddrinfo_t resolve_req_;
  int client_events_ = 0, backend_events_ = 0;
  bool resolving_ = false;
  bool repump_pending_ = false;
  int open_handles_ = 0;

  addrinfo* addrs_ = nullptr;
  addrinfo* next_addr_ = nullptr;
  std::string last_connect_error_;

  uint64_t start_ms_ = 0;         // loop time at accept
  uint64_t deadline_ms_ = 0;      // pre-relay deadline (loop time)
  uint64_t connect_deadline_ms_ = 0;
  uint64_t last_activity_ms_ = 0;
  std::string client_addr_;
  std::string backend_addr_;
  std::string outcome_ = "ok";
  std::string error_;
  std::string cause_;
};

}  // namespace dbward::proxy

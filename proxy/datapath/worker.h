// One event loop on one thread. Each worker owns a SO_REUSEPORT listening
// socket per listener, so the kernel spreads connections across workers and
// a session lives on one thread from accept to close.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/datapath/buffer_pool.h"
#include "proxy/datapath/warm_pool.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {

class Session;

class Worker {
 public:
  // count: how many workers share the listeners (warm_backends are shared out).
  Worker(int index, int count, const std::vector<ListenerRuntime*>& listeners);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens this worker's listening sockets (before any thread starts, so a bind
  // failure stops start-up cleanly).
  bool Bind(std::string* error);
  void Start();
  void Join();
  // Thread-safe: stop accepting and let sessions finish.
  void RequestDrain();
  // Thread-safe: close every session now.
  void RequestAbort();

  uv_loop_t* loop() { return &loop_; }
  BufferPool& pool() { return pool_; }
  int index() const { return index_; }
  void AddSession(Session* s);
  void RemoveSession(Session* s);
  size_t session_count() const { return sessions_count_.load(); }
  // The listener's warm backend legs on this worker; null without warm_backends.
  WarmPool* warm(const ListenerRuntime* listener);

 private:
  struct Acceptor {
    Worker* worker;
    ListenerRuntime* listener;
    int fd = -1;
    uv_poll_t poll;
    uv_timer_t backoff;  // pauses accepting when out of file descriptors
  };
  static void OnAsync(uv_async_t* handle);
  static void OnAccept(uv_poll_t* handle, int status, int events);
  void Run();
  void StopAccepting();
  void MaybeFinish();
  void Notify();

  int index_;
  int count_;
  std::vector<ListenerRuntime*> listeners_;
  std::vector<std::unique_ptr<WarmPool>> warm_;  // one per listener, null without warm_backends
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  uv_loop_t loop_;
  uv_async_t async_;
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> abort_requested_{false};
  std::mutex async_mu_;  // guards uv_async_send against the handle's close
  bool async_closed_ = false;
  bool accepting_ = false;
  BufferPool pool_;
  Session* sessions_ = nullptr;  // intrusive list, owned by the loop thread
  std::atomic<size_t> sessions_count_{0};
  uint64_t next_id_ = 1;
  std::thread thread_;

  friend class Session;
};

}  // namespace dbward::proxy

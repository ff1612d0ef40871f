// The audit trail: one JSON line per event (common/audit_event.h), written by
// a dedicated thread so the event loops never wait on disk I/O.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/common/audit_event.h"

namespace dbward::proxy {

class AuditSink {
 public:
  // target: "stdout", "stderr", "off" or a file path (appended to).
  bool Open(const std::string& target, std::string* error);
  // Queues one event; never blocks on I/O. Drops (and counts) events when
  // the queue is full rather than stalling traffic.
  void Emit(const AuditEvent& event);
  // Flushes everything queued and stops the writer thread.
  void Close();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  ~AuditSink() { Close(); }

 private:
  void Run();
  static constexpr size_t kMaxQueued = 100'000;
  FILE* out_ = nullptr;
  bool owns_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  bool running_ = false;
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

AuditSink& Audit();

}  // namespace dbward::proxy

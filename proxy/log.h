// Operational log (stderr, one line per event) and the audit sink (JSON lines
// written by a dedicated thread so the event loops never wait on disk I/O).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/config.h"

namespace dbward::proxy {

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// printf-style; appends a newline. Never pass passwords or key material.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define DBW_LOG(level, ...)                                      \
  do {                                                           \
    if (::dbward::proxy::LogEnabled(level)) ::dbward::proxy::Log(level, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) DBW_LOG(::dbward::proxy::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) DBW_LOG(::dbward::proxy::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) DBW_LOG(::dbward::proxy::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) DBW_LOG(::dbward::proxy::LogLevel::kError, __VA_ARGS__)

// ISO 8601 UTC with milliseconds.
std::string NowIsoMillis();

class AuditSink {
 public:
  // target: "stdout", "stderr", "off" or a file path (appended to).
  bool Open(const std::string& target, std::string* error);
  // Queues one JSON line; never blocks on I/O. Drops (and counts) lines when
  // the queue is full rather than stalling traffic.
  void Emit(std::string line);
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

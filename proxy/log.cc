#include "proxy/log.h"

#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>

namespace dbward::proxy {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_log_mu;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

std::string NowIsoMillis() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(tv.tv_usec / 1000));
  return buf;
}

void Log(LogLevel level, const char* fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  // Messages carry strings chosen by clients and servers (user names, error
  // texts): control characters are escaped so one event stays one line.
  std::string clean;
  for (const char* p = msg; *p != '\0'; p++) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      clean += hex;
    } else {
      clean.push_back(static_cast<char>(c));
    }
  }
  std::string ts = NowIsoMillis();
  std::lock_guard<std::mutex> lock(g_log_mu);
  fprintf(stderr, "%s %-5s %s\n", ts.c_str(), LevelName(level), clean.c_str());
  fflush(stderr);
}

bool AuditSink::Open(const std::string& target, std::string* error) {
  if (target == "off") return true;
  if (target == "stdout") {
    out_ = stdout;
  } else if (target == "stderr") {
    out_ = stderr;
  } else {
    out_ = fopen(target.c_str(), "ae");
    if (out_ == nullptr) {
      *error = "cannot open audit file " + target + ": " + strerror(errno);
      return false;
    }
    owns_ = true;
  }
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void AuditSink::Emit(std::string line) {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      dropped_++;
      return;
    }
    queue_.push_back(std::move(line));
  }
  cv_.notify_one();
}

void AuditSink::Run() {
  std::deque<std::string> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      batch.swap(queue_);
      if (batch.empty() && stop_) return;
    }
    for (const auto& line : batch) {
      fwrite(line.data(), 1, line.size(), out_);
      fputc('\n', out_);
    }
    fflush(out_);
    batch.clear();
  }
}

void AuditSink::Close() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  running_ = false;
  if (owns_) fclose(out_);
  out_ = nullptr;
}

AuditSink& Audit() {
  static AuditSink sink;
  return sink;
}

}  // namespace dbward::proxy

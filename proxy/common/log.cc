#include "proxy/common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "proxy/common/time.h"

namespace dbward::proxy {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_log_mu;
}  // namespace

const char* LogLevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view message) {
  std::string clean;
  clean.reserve(message.size());
  for (char ch : message) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      fmt::format_to(std::back_inserter(clean), "\\x{:02x}", c);
    } else {
      clean.push_back(ch);
    }
  }
  std::string line = fmt::format("{} {:<5} {}\n", NowIsoMillis(), LogLevelName(level), clean);
  std::lock_guard<std::mutex> lock(g_log_mu);
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace dbward::proxy

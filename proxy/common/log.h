// The operational log: one line per event on stderr, for people and log
// collectors. (The audit trail is a different stream: ops/audit_sink.h.)
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace dbward::proxy {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
const char* LogLevelName(LogLevel level);

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Writes one line. Control characters in the message are escaped, so text
// chosen by clients and servers (user names, error texts) cannot forge lines.
// Never pass passwords or key material.
void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void Logf(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (LogEnabled(level)) LogLine(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace dbward::proxy

#define LOG_DEBUG(...) ::dbward::proxy::Logf(::dbward::proxy::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) ::dbward::proxy::Logf(::dbward::proxy::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::dbward::proxy::Logf(::dbward::proxy::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::dbward::proxy::Logf(::dbward::proxy::LogLevel::kError, __VA_ARGS__)

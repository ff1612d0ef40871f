// Wall-clock times as audit events, logs and explanations print them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dbward::proxy {

// ISO 8601 UTC: "2026-11-27T04:20:21Z".
std::string NowIso();
// With milliseconds: "2026-11-27T04:20:21.101Z".
std::string NowIsoMillis();
// Milliseconds since the Unix epoch for YYYY-MM-DD[(T| )HH:MM[:SS[.fff]][Z|+HH:MM|-HH:MM]].
// A time without a zone is UTC, as audit times are. Digits past milliseconds
// are truncated.
std::optional<int64_t> ParseIsoTime(std::string_view text);

}  // namespace dbward::proxy

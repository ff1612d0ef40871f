#include "proxy/common/duration.h"

namespace dbward::proxy {

bool ParseDuration(const std::string& text, uint64_t* out_ms) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    v = v * 10 + static_cast<uint64_t>(text[i] - '0');
    if (v > 100'000'000'000ULL) return false;
    i++;
  }
  if (i == 0) return false;
  std::string unit = text.substr(i);
  if (unit == "ms") {
    *out_ms = v;
  } else if (unit == "s" || unit.empty()) {
    *out_ms = v * 1000;
  } else if (unit == "m") {
    *out_ms = v * 60'000;
  } else if (unit == "h") {
    *out_ms = v * 3'600'000;
  } else {
    return false;
  }
  return true;
}

}  // namespace dbward::proxy

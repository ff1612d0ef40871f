// An audit event's bypass_reason may hold several reasons, comma-separated
// (login-only encryption and an accepted canary certificate, say). The
// session writes them this way; metrics and `dbward report` count each.
#pragma once

#include <string_view>
#include <vector>

namespace dbward::proxy {

inline std::vector<std::string_view> SplitBypassReasons(std::string_view reasons) {
  std::vector<std::string_view> out;
  while (!reasons.empty()) {
    size_t comma = reasons.find(',');
    std::string_view one = reasons.substr(0, comma);
    if (!one.empty()) out.push_back(one);
    if (comma == std::string_view::npos) break;
    reasons.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace dbward::proxy

#include "proxy/common/limiter.h"

#include <algorithm>
#include <cmath>

namespace dbward::proxy {
namespace {
constexpr size_t kMaxKeys = 65536;
}

double FailureLimiter::Refilled(const Bucket& b, uint64_t now_ms) const {
  double earned = now_ms > b.at_ms ? static_cast<double>(now_ms - b.at_ms) / static_cast<double>(refill_ms_) : 0;
  return std::min(burst_, b.tokens + earned);
}

bool FailureLimiter::Allowed(const std::string& key, uint64_t now_ms, uint64_t* retry_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) return true;
  double tokens = Refilled(it->second, now_ms);
  if (tokens >= 1) return true;
  if (retry_ms != nullptr) *retry_ms = static_cast<uint64_t>(std::ceil((1 - tokens) * static_cast<double>(refill_ms_)));
  return false;
}

void FailureLimiter::Failed(const std::string& key, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (buckets_.size() >= kMaxKeys && !buckets_.count(key)) {
    // Full: forget the keys that have earned their whole burst back.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      it = Refilled(it->second, now_ms) >= burst_ ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= kMaxKeys) buckets_.erase(buckets_.begin());
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now_ms});
  Bucket& b = it->second;
  b.tokens = std::max(0.0, Refilled(b, now_ms) - 1);
  b.at_ms = now_ms;
}

}  // namespace dbward::proxy

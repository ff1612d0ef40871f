// Failed attempts per key (a client address), as a token bucket: a burst of
// failures is allowed, then they earn back one try per interval. Thread-safe;
// the map is bounded (the quietest keys are forgotten first when it fills).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace dbward::proxy {

class FailureLimiter {
 public:
  FailureLimiter(double burst, uint64_t refill_ms) : burst_(burst), refill_ms_(refill_ms) {}
  // Whether key may try now; *retry_ms (when not) says when it may.
  bool Allowed(const std::string& key, uint64_t now_ms, uint64_t* retry_ms = nullptr);
  void Failed(const std::string& key, uint64_t now_ms);

 private:
  struct Bucket {
    double tokens;
    uint64_t at_ms;
  };
  double Refilled(const Bucket& b, uint64_t now_ms) const;

  double burst_;
  uint64_t refill_ms_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace dbward::proxy

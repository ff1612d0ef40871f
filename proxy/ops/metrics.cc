#include "proxy/ops/metrics.h"

namespace dbward::proxy {

void Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBuckets; i++) {
    if (seconds <= kBounds[i]) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::Snapshot(uint64_t counts[kBuckets], uint64_t* count, double* sum) const {
  for (size_t i = 0; i < kBuckets; i++) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  *count = count_.load(std::memory_order_relaxed);
  *sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

}  // namespace dbward::proxy

// Per-listener metrics. Plain counters are declared once in the X-macro
// table below, so the /metrics endpoint, the tests and the code that counts
// cannot drift apart (the pattern of Envoy's ALL_*_STATS tables).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "proxy/common/config.h"

namespace dbward::proxy {

#define DBWARD_LISTENER_COUNTERS(X)                                              \
  X(sessions_total, "Client connections accepted")                                \
  X(refused_total, "Client connections refused before any backend work")          \
  X(bytes_up_total, "Payload bytes relayed from clients to the backend")          \
  X(bytes_down_total, "Payload bytes relayed from the backend to clients")        \
  X(backend_verified_total, "Backend TLS handshakes whose certificate validated")

// A counter split by one label value (client_encryption, cause, ...). Updated
// once per session, so a mutex is cheap enough.
class LabeledCounter {
 public:
  void Inc(const std::string& label, uint64_t n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    values_[label] += n;
  }
  // Exported as 0 until counted: Prometheus's increase() sees the first
  // event of a series only when the series existed before it.
  void Declare(const std::string& label) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.try_emplace(label, 0);
  }
  std::map<std::string, uint64_t> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return values_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> values_;
};

// Cumulative histogram with fixed buckets (seconds).
class Histogram {
 public:
  static constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  static constexpr size_t kBuckets = sizeof(kBounds) / sizeof(kBounds[0]);
  void Observe(double seconds);
  // counts[i] = observations <= kBounds[i] (cumulative), plus total count and sum.
  void Snapshot(uint64_t counts[kBuckets], uint64_t* count, double* sum) const;

 private:
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

struct ListenerMetrics {
#define DBWARD_DECLARE_COUNTER(name, help) std::atomic<uint64_t> name{0};
  DBWARD_LISTENER_COUNTERS(DBWARD_DECLARE_COUNTER)
#undef DBWARD_DECLARE_COUNTER
  LabeledCounter client_encryption;   // sessions by what the client used
  LabeledCounter trust_bypass;        // sessions by bypass_reason
  LabeledCounter outcome;             // sessions by outcome
  LabeledCounter handshake_failures;  // failed set-ups by cause
  LabeledCounter policy;              // policy violations by "rule|action"
  Histogram handshake_seconds;        // accept -> relay start
  // warm_backends: sessions that found a ready leg or not ("hit" | "miss"),
  // legs closed unused by why, and legs ready now (all workers).
  LabeledCounter warm_takes;
  LabeledCounter warm_recycled;
  std::atomic<int64_t> warm_ready{0};
  // backend_tls.session_resumption: backend legs that resumed a session
  // ("hit"), had none cached ("miss"), or offered one the server did not
  // take ("rejected").
  LabeledCounter backend_resumption;
  // The backend certificate seen last (Unix seconds of notAfter; 0: none yet).
  std::atomic<int64_t> backend_cert_not_after{0};

  // Declares the label values that dashboards and alerts ask for, so their
  // series exist at 0 from the start: every outcome, the encryptions and
  // bypass reasons the protocol can have, and the backend-verification causes.
  void DeclareSeries(const ListenerConfig& listener);
};

}  // namespace dbward::proxy

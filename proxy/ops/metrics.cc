#include "proxy/ops/metrics.h"

#include "proxy/common/records.h"

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

void ListenerMetrics::DeclareSeries(const ListenerConfig& listener) {
  const Protocol protocol = listener.protocol;
#define DBWARD_DECLARE_OUTCOME(id, token, ...) outcome.Declare(token);
  DBWARD_OUTCOMES(DBWARD_DECLARE_OUTCOME)
#undef DBWARD_DECLARE_OUTCOME
  std::vector<ClientEncryption> encryptions = {ClientEncryption::kNone, ClientEncryption::kTls};
  std::vector<BypassReason> bypass = {BypassReason::kPlaintext};
  if (protocol == Protocol::kPostgres) encryptions.push_back(ClientEncryption::kTlsDirect);
  if (protocol == Protocol::kTds) {
    encryptions.push_back(ClientEncryption::kLoginOnly);
    encryptions.push_back(ClientEncryption::kTlsStrict);
    bypass.push_back(BypassReason::kLoginOnly);
  }
  for (ClientEncryption e : encryptions) client_encryption.Declare(Token(e));
  if (listener.canary) bypass.push_back(CanaryAccepted(listener.canary->mode));
  for (BypassReason r : bypass) trust_bypass.Declare(Token(r));
  for (Cause c : {Cause::kUntrusted, Cause::kNameMismatch, Cause::kExpired, Cause::kNotYetValid, Cause::kBadPurpose,
                  Cause::kVerifyFailed, Cause::kRevoked, Cause::kCrl, Cause::kPinMismatch}) {
    handshake_failures.Declare(Token(c));
  }
  if (listener.backend_tls.session_resumption) {
    for (const char* r : {"hit", "miss", "rejected"}) backend_resumption.Declare(r);
  }
  if (listener.warm_backends) {
    for (const char* r : {"hit", "miss"}) warm_takes.Declare(r);
    for (const char* r : {"max_age", "backend_closed", "reload", "certificate_expired", "shutdown"}) warm_recycled.Declare(r);
  }
}

}  // namespace dbward::proxy

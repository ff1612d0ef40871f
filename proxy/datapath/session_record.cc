#include "proxy/datapath/session_record.h"

#include "proxy/common/address.h"
#include "proxy/common/time.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {

BypassSet SessionRecord::Bypass() const {
  // A client that refused the canary in this session bypassed nothing; a
  // remembered verdict says nothing about what this session did.
  if (validates == true && !canary_remembered) return {};
  BypassSet set = client.bypass;
  if (validates == false && canary) set.Add(CanaryAccepted(*canary));
  return set;
}

ClientEncryption SessionRecord::Encryption() const {
  // A canary is only offered to a client that asked for TLS; one that refused
  // it never got as far as the engine learning so.
  if (validates == true && !canary_remembered && client.encryption == ClientEncryption::kNone) {
    return ClientEncryption::kTls;
  }
  return client.encryption;
}

namespace {
std::optional<std::string> OrNull(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}
}  // namespace

AuditEvent ToAuditEvent(const SessionRecord& r, const ListenerConfig& l) {
  BypassSet bypass = r.Bypass();
  AuditEvent e;
  e.ts = NowIsoMillis();
  e.event = "session";
  e.session_id = static_cast<int64_t>(r.id);
  e.listener = l.name;
  e.protocol = ProtocolName(l.protocol);
  e.client = r.client_addr;
  e.backend = BackendText(l);
  e.backend_addr = OrNull(r.backend_addr);
  e.backend_server_name = r.backend_server_name.empty() ? l.backend_tls.server_name : r.backend_server_name;
  if (r.client.declared) {
    e.client_encryption = Token(r.Encryption());
    e.trust_bypass = !bypass.empty();
    e.bypass_reason = OrNull(bypass.Render());
  }
  e.client_tls = OrNull(r.client_tls_version);
  e.client_cipher = OrNull(r.client_cipher);
  e.client_alpn = OrNull(r.client_alpn);
  e.user = OrNull(r.client.user);
  e.database = OrNull(r.client.database);
  e.application = OrNull(r.client.application);
  e.client_library = OrNull(r.client.client_library);
  e.client_host = OrNull(r.client.client_host);
  e.client_protocol_version = OrNull(r.client.protocol_version);
  if (r.backend_tls_up) {
    e.backend_tls = OrNull(r.backend_tls_version);
    e.backend_cipher = OrNull(r.backend_cipher);
  }
  e.backend_verified = r.backend_tls_up && r.backend_verified;
  e.backend_verify = l.backend_tls.full_verify ? "full" : "ca";
  if (l.warm_backends) e.backend_warm = r.backend_warm;
  if (r.backend_tls_up && r.backend_resumption != tls::Connection::Resumption::kOff) {
    e.backend_resumed = r.backend_resumption == tls::Connection::Resumption::kResumed;
  }
  e.outcome = Token(r.outcome);
  e.error = OrNull(r.error);
  if (r.cause) e.cause = Token(*r.cause);
  e.note = OrNull(r.client.note);
  e.routed_to = OrNull(r.client.routed_to);
  e.via = OrNull(r.via);
  e.policy_rule = OrNull(r.policy_rule);
  e.policy_action = OrNull(r.policy_action);
  e.client_identity = OrNull(r.client_identity);
  e.tds_prelogin = r.client.tds_prelogin;
  if (r.canary) e.canary = tls::CanaryModeName(*r.canary);
  if (r.canary_remembered) e.canary = "remembered";
  e.validates = r.validates;
  e.bytes_up = static_cast<int64_t>(r.bytes_up);
  e.bytes_down = static_cast<int64_t>(r.bytes_down);
  e.duration_ms = static_cast<int64_t>(r.duration_ms);
  e.worker = r.worker;
  return e;
}

void RecordMetrics(const SessionRecord& r, ListenerRuntime& l) {
  ListenerMetrics& m = l.metrics;
  m.bytes_up_total.fetch_add(r.bytes_up, std::memory_order_relaxed);
  m.bytes_down_total.fetch_add(r.bytes_down, std::memory_order_relaxed);
  if (r.client.declared) {
    m.client_encryption.Inc(Token(r.Encryption()));
    for (BypassReason reason : r.Bypass().Reasons()) m.trust_bypass.Inc(Token(reason));
  }
  m.outcome.Inc(Token(r.outcome));
  if (r.backend_tls_up) {
    switch (r.backend_resumption) {
      case tls::Connection::Resumption::kOff: break;
      case tls::Connection::Resumption::kNoSession: m.backend_resumption.Inc("miss"); break;
      case tls::Connection::Resumption::kResumed: m.backend_resumption.Inc("hit"); break;
      case tls::Connection::Resumption::kRejected: m.backend_resumption.Inc("rejected"); break;
    }
  }
  bool verified = r.backend_tls_up && r.backend_verified;
  if (verified) {
    m.backend_verified_total.fetch_add(1, std::memory_order_relaxed);
    l.SetBackendHealth(true, "backend " + r.backend_addr + " verified");
  }
  if (r.backend_not_after != 0) m.backend_cert_not_after.store(r.backend_not_after, std::memory_order_relaxed);
  if (r.outcome != Outcome::kOk && r.cause && CountsAsSetupFailure(r.outcome)) m.handshake_failures.Inc(Token(*r.cause));
  if (!verified && IsBackendFault(r.outcome) && r.cause && IsBackendSide(*r.cause)) l.SetBackendHealth(false, r.error);
}

}  // namespace dbward::proxy

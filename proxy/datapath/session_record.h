// What a session leaves behind: one audit event and its share of the
// listener's metrics, both from the same typed record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "proxy/common/audit_event.h"
#include "proxy/common/records.h"
#include "proxy/engine/engine.h"
#include "tls/canary.h"
#include "tls/connection.h"

namespace dbward::proxy {

struct ListenerRuntime;

struct SessionRecord {
  uint64_t id = 0;
  int worker = 0;
  std::string client_addr;
  std::string via;  // the load balancer that sent a PROXY header for the client
  std::string backend_addr;  // what dbward connected to; "" when it never did
  std::string backend_server_name;  // what its certificate was checked against; "" before TLS

  Outcome outcome = Outcome::kOk;
  std::optional<Cause> cause;
  std::string error;

  engine::ClientFacts client;  // what the protocol engine learnt
  std::string client_tls_version, client_cipher, client_alpn;
  std::optional<tls::CanaryMode> canary;  // offered to this client
  std::optional<bool> validates;          // refused the canary (true) or went on (false)
  bool canary_remembered = false;         // validates comes from an earlier session's canary
  std::string client_identity;            // the verified client certificate's identity
  std::string policy_rule, policy_action; // the rule the client broke, deny or warn

  bool backend_tls_up = false;
  bool backend_verified = false;
  std::string backend_tls_version, backend_cipher;
  int64_t backend_not_after = 0;  // Unix seconds; 0 when unknown
  bool backend_warm = false;      // a warm_backends leg
  // backend_tls.session_resumption: whether the (last) backend leg resumed
  tls::Connection::Resumption backend_resumption = tls::Connection::Resumption::kOff;

  uint64_t bytes_up = 0, bytes_down = 0;
  uint64_t duration_ms = 0;

  // The bypass reasons the audit event carries: the client's own, plus an
  // accepted canary; none for a client that refused the canary (it validates).
  BypassSet Bypass() const;
  ClientEncryption Encryption() const;
};

AuditEvent ToAuditEvent(const SessionRecord& r, const ListenerConfig& listener);
// Counts the session in its listener's metrics and tells /readyz what the
// backend leg showed.
void RecordMetrics(const SessionRecord& r, ListenerRuntime& listener);

}  // namespace dbward::proxy

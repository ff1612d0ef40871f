// The audit event, declared once. The table below is the schema: the
// session writer and the refused event fill an AuditEvent, FormatAuditLine
// writes every field in table order (absent values as null), and
// ParseAuditLine, used by `dbward report` and the end-to-end tests, reads a
// line back with the same names and types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace dbward::proxy {

// name, type, meaning
#define DBWARD_AUDIT_FIELDS(X)                                                                   \
  X(ts, kString, "when the event was written, ISO 8601 UTC with milliseconds")                   \
  X(event, kString, "session (a connection ended) or refused (turned away before any work)")     \
  X(session_id, kInt, "unique within the process")                                                \
  X(listener, kString, "the listener's name")                                                     \
  X(protocol, kString, "tcp, postgres, mysql or tds")                                             \
  X(client, kString, "the client's address (the original one, behind a PROXY protocol balancer)")  \
  X(via, kString, "the load balancer that sent a PROXY protocol header for the client")            \
  X(backend, kString, "the configured backend HOST:PORT")                                         \
  X(backend_addr, kString, "the address dbward connected to")                                     \
  X(backend_server_name, kString, "the name the backend certificate was checked against")        \
  X(routed_to, kString, "tds: the server the backend routed the login to, HOST:PORT")            \
  X(client_encryption, kString, "none, tls, tls-direct, login-only or tls-strict")                \
  X(trust_bypass, kBool, "the client itself skipped protection")                                  \
  X(bypass_reason, kString, "how, comma-separated when several")                                  \
  X(client_tls, kString, "the client leg's TLS version")                                          \
  X(client_cipher, kString, "the client leg's cipher suite")                                      \
  X(client_alpn, kString, "the client leg's ALPN protocol")                                       \
  X(user, kString, "from the protocol's login message")                                           \
  X(database, kString, "from the protocol's login message")                                       \
  X(application, kString, "from the protocol's login message")                                    \
  X(client_library, kString, "the client's driver, where the protocol names it")                  \
  X(client_host, kString, "the client's host name, where the protocol names it")                  \
  X(client_identity, kString, "the verified client certificate's identity (first URI SAN, else CN, else first DNS SAN)")   \
  X(client_protocol_version, kString, "the protocol version the client asked for")                \
  X(tds_prelogin, kBool, "tds: the client began with PRELOGIN (false: LOGIN7 first, e.g. jTDS ssl=off)") \
  X(backend_tls, kString, "the backend leg's TLS version")                                        \
  X(backend_cipher, kString, "the backend leg's cipher suite")                                    \
  X(backend_verified, kBool, "the backend certificate was validated")                             \
  X(backend_verify, kString, "full (chain and name) or ca (chain only)")                          \
  X(backend_warm, kBool, "warm_backends: the backend leg was made and verified before the client came")   \
  X(backend_resumed, kBool, "session_resumption: the backend leg resumed a TLS session verified earlier") \
  X(outcome, kString, "how the session ended")                                                    \
  X(error, kString, "the explanation, with the fix")                                              \
  X(cause, kString, "the reason in a word")                                                       \
  X(policy_rule, kString, "the policy rule the client matched, policy[N] (name)")                 \
  X(policy_action, kString, "allow (the client met the rule), warn (below it, let through) or deny") \
  X(note, kString, "what else dbward did (cancel forwarded, full authentication, ...)")           \
  X(canary, kString, "the canary certificate this client got")                                    \
  X(validates, kBool, "the client refused (true) or accepted (false) the canary")                 \
  X(bytes_up, kInt, "payload bytes sent to the backend")                                          \
  X(bytes_down, kInt, "payload bytes sent to the client")                                         \
  X(duration_ms, kInt, "from accept to close")                                                    \
  X(worker, kInt, "the worker thread that ran the session")

enum class AuditFieldType { kString, kInt, kBool };

template <AuditFieldType T>
struct AuditValue;
template <>
struct AuditValue<AuditFieldType::kString> {
  using type = std::optional<std::string>;
};
template <>
struct AuditValue<AuditFieldType::kInt> {
  using type = std::optional<int64_t>;
};
template <>
struct AuditValue<AuditFieldType::kBool> {
  using type = std::optional<bool>;
};

// Absent (nullopt) values are written as null.
struct AuditEvent {
#define DBWARD_AUDIT_MEMBER(name, kind, help) AuditValue<AuditFieldType::kind>::type name;
  DBWARD_AUDIT_FIELDS(DBWARD_AUDIT_MEMBER)
#undef DBWARD_AUDIT_MEMBER
};

struct AuditFieldInfo {
  const char* name;
  AuditFieldType type;
  const char* help;
};
// The schema, in output order.
const std::vector<AuditFieldInfo>& AuditSchema();

std::string FormatAuditLine(const AuditEvent& e);

struct AuditLineError {
  size_t column = 0;  // 1-based; 0 when the error is about a field's type
  std::string reason;
};
// One line back into an event. Fields of the wrong type are errors (a
// "trust_bypass":"true" silently dropped would hide a bypass); keys the
// schema does not know (a newer dbward's) are listed in *unknown.
std::variant<AuditEvent, AuditLineError> ParseAuditLine(std::string_view line,
                                                        std::vector<std::string>* unknown = nullptr);

// Each field's value as text, keyed by name: null, true/false, the number,
// or the string itself. For tests and for display.
std::vector<std::pair<std::string, std::string>> AuditFieldTexts(const AuditEvent& e);

}  // namespace dbward::proxy

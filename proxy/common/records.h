// What a session's record says, declared once: outcomes, causes, how the
// client leg was encrypted and the ways a client bypassed trust. Code passes
// the enums; the tokens below are what audit events, logs and metrics print,
// and what `dbward report` reads back.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/log.h"
#include "tls/canary.h"
#include "tls/cert_info.h"

namespace dbward::proxy {

// How a session ended. Columns: enum, token, log level of the line that
// reports it, whether the backend is at fault (with a backend-side cause,
// /readyz turns unhealthy), whether it counts as a failed set-up
// (dbward_handshake_failures_total).
#define DBWARD_OUTCOMES(X)                                             \
  X(kOk, "ok", kInfo, false, false)                                    \
  X(kAuthFailed, "auth_failed", kWarn, false, true)                    \
  X(kBackendUnreachable, "backend_unreachable", kWarn, true, true)     \
  X(kBackendTlsFailed, "backend_tls_failed", kWarn, true, true)        \
  X(kBackendTlsRefused, "backend_tls_refused", kWarn, true, true)      \
  X(kBackendError, "backend_error", kWarn, false, true)                \
  X(kBackendClosed, "backend_closed", kWarn, false, true)              \
  X(kBackendClosedAbruptly, "backend_closed_abruptly", kWarn, false, false) \
  X(kClientError, "client_error", kWarn, false, true)                  \
  X(kClientTlsFailed, "client_tls_failed", kWarn, false, true)         \
  X(kClientClosed, "client_closed", kInfo, false, false)               \
  X(kClientClosedSilent, "client_closed_silent", kDebug, false, false) \
  X(kRefused, "refused", kWarn, false, true)                           \
  X(kCanaryRejected, "canary_rejected", kInfo, false, true)            \
  X(kTimeout, "timeout", kWarn, true, true)                            \
  X(kIdleTimeout, "idle_timeout", kInfo, false, false)                 \
  X(kReset, "reset", kInfo, false, false)                              \
  X(kShutdown, "shutdown", kWarn, false, true)                         \
  X(kInternalError, "error", kError, false, true)

// Why, in a word. Columns: enum, token, whether the cause lies on the backend
// side of dbward.
#define DBWARD_CAUSES(X)                                           \
  /* certificate and TLS failures (tls::FailureCause) */            \
  X(kUntrusted, "untrusted", true)                                  \
  X(kNameMismatch, "name_mismatch", true)                           \
  X(kExpired, "expired", true)                                      \
  X(kNotYetValid, "not_yet_valid", true)                            \
  X(kBadPurpose, "bad_purpose", true)                               \
  X(kVerifyFailed, "verify_failed", true)                           \
  X(kRevoked, "revoked", true)                                      \
  X(kCrl, "crl", true)                                              \
  X(kPinMismatch, "pin_mismatch", true)                             \
  X(kTlsVersion, "tls_version", true)                               \
  X(kNoSharedCipher, "no_shared_cipher", true)                      \
  X(kClientCertRequired, "client_cert_required", true)              \
  X(kPeerRejectedCertificate, "peer_rejected_certificate", true)    \
  X(kNotTls, "not_tls", true)                                       \
  X(kTlsReset, "reset", true)                                       \
  X(kTlsError, "tls_error", true)                                   \
  /* reaching the backend */                                        \
  X(kDns, "dns", true)                                              \
  X(kConnect, "connect", true)                                      \
  X(kConnectTimeout, "connect_timeout", true)                       \
  X(kHandshakeTimeout, "handshake_timeout", true)                   \
  X(kBackendNoTls, "backend_no_tls", true)                          \
  X(kNotPostgres, "not_postgres", true)                             \
  X(kNotTds, "not_tds", true)                                       \
  X(kPlaintextAfterSslAnswer, "plaintext_after_ssl_answer", true)   \
  X(kBackendError, "backend_error", true)                           \
  X(kBackendEof, "backend_eof", true)                               \
  X(kBackendRead, "backend_read", true)                             \
  X(kBackendWrite, "backend_write", true)                           \
  X(kNoCloseNotify, "no_close_notify", true)                        \
  X(kBackendReset, "backend_reset", true)                           \
  X(kChannelBindingOnly, "channel_binding_only", true)              \
  X(kInstanceLookup, "instance_lookup", true)                       \
  X(kRoutingDenied, "routing_denied", true)                         \
  X(kScramServerSignature, "scram_server_signature", true)          \
  X(kScramVerifierMismatch, "scram_verifier_mismatch", true)        \
  /* the client */                                                  \
  X(kClientHandshakeTimeout, "client_handshake_timeout", false)     \
  X(kClientEof, "client_eof", false)                                \
  X(kClientRead, "client_read", false)                              \
  X(kClientWrite, "client_write", false)                            \
  X(kMalformed, "malformed", false)                                 \
  X(kTooLarge, "too_large", false)                                  \
  X(kPlaintextAfterRequest, "plaintext_after_request", false)       \
  X(kPlaintextDenied, "plaintext_denied", false)                    \
  X(kPolicyDenied, "policy_denied", false)                          \
  X(kClientCertMissing, "client_cert_missing", false)               \
  X(kClientCertNotAllowed, "client_cert_not_allowed", false)        \
  X(kClientCertRejected, "client_cert_rejected", false)             \
  X(kProxyHeader, "proxy_header", false)                            \
  X(kProxyUntrusted, "proxy_untrusted", false)                      \
  X(kNoAlpn, "no_alpn", false)                                      \
  X(kNoClientTls, "no_client_tls", false)                           \
  X(kCanaryRejected, "canary_rejected", false)                      \
  X(kAuthFailed, "auth_failed", false)                              \
  X(kRsaDecryptFailed, "rsa_decrypt_failed", false)                 \
  X(kRateLimited, "rate_limited", false)                            \
  X(kCanaryRetry, "canary_retry", false)                            \
  /* dbward itself */                                               \
  X(kIdle, "idle", false)                                           \
  X(kShutdown, "shutdown", false)                                   \
  X(kMaxConnections, "max_connections", false)                      \
  X(kMaxHandshakes, "max_handshakes", false)                        \
  X(kInternal, "internal", false)

// What the client leg was.
#define DBWARD_CLIENT_ENCRYPTIONS(X) \
  X(kNone, "none")                   \
  X(kTls, "tls")                     \
  X(kTlsDirect, "tls-direct")        \
  X(kLoginOnly, "login-only")        \
  X(kTlsStrict, "tls-strict")

// How the client itself skipped protection; a session can carry several
// (login-only encryption and an accepted canary certificate).
#define DBWARD_BYPASS_REASONS(X)                                  \
  X(kPlaintext, "plaintext")                                      \
  X(kLoginOnly, "login-only-encryption")                          \
  X(kAcceptedUntrusted, "accepted-untrusted-certificate")         \
  X(kAcceptedWrongName, "accepted-wrong-name")                    \
  X(kAcceptedExpired, "accepted-expired")

#define DBWARD_RECORD_ENUM(name, ...) name,
enum class Outcome : uint8_t { DBWARD_OUTCOMES(DBWARD_RECORD_ENUM) };
enum class Cause : uint8_t { DBWARD_CAUSES(DBWARD_RECORD_ENUM) };
enum class ClientEncryption : uint8_t { DBWARD_CLIENT_ENCRYPTIONS(DBWARD_RECORD_ENUM) };
enum class BypassReason : uint8_t { DBWARD_BYPASS_REASONS(DBWARD_RECORD_ENUM) };
#undef DBWARD_RECORD_ENUM

const char* Token(Outcome o);
const char* Token(Cause c);
const char* Token(ClientEncryption e);
const char* Token(BypassReason r);
LogLevel LogLevelOf(Outcome o);
bool IsBackendFault(Outcome o);
bool CountsAsSetupFailure(Outcome o);
bool IsBackendSide(Cause c);
// The client accepted a certificate it should have refused (a canary).
bool IsAcceptedCertificate(BypassReason r);
// The same for a token from an audit line; a token this version does not
// know counts when it has the "accepted-" form (a newer dbward's reason).
bool IsAcceptedCertificateToken(std::string_view token);

std::optional<Outcome> ParseOutcome(std::string_view token);
std::optional<Cause> ParseCause(std::string_view token);
std::optional<ClientEncryption> ParseClientEncryption(std::string_view token);
std::optional<BypassReason> ParseBypassReason(std::string_view token);

// The record's cause for a TLS handshake failure.
Cause CauseOf(tls::FailureCause cause);
// accepted-untrusted-certificate, accepted-wrong-name, accepted-expired.
BypassReason CanaryAccepted(tls::CanaryMode mode);

// A set of bypass reasons. In audit events it is one comma-separated string
// in table order ("login-only-encryption,accepted-untrusted-certificate").
class BypassSet {
 public:
  static constexpr size_t kCount = 5;
  BypassSet() = default;
  BypassSet(std::initializer_list<BypassReason> reasons) {
    for (BypassReason r : reasons) Add(r);
  }
  void Add(BypassReason r) { bits_.set(static_cast<size_t>(r)); }
  void Remove(BypassReason r) { bits_.reset(static_cast<size_t>(r)); }
  bool Has(BypassReason r) const { return bits_.test(static_cast<size_t>(r)); }
  bool empty() const { return bits_.none(); }
  void Clear() { bits_.reset(); }
  std::vector<BypassReason> Reasons() const;
  std::string Render() const;
  // Reads Render()'s form; unknown tokens (from a newer dbward) are returned
  // in *unknown and otherwise ignored.
  static BypassSet Parse(std::string_view text, std::vector<std::string>* unknown = nullptr);
  bool operator==(const BypassSet&) const = default;

 private:
  std::bitset<kCount> bits_;
};

}  // namespace dbward::proxy

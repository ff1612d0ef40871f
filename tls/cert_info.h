// Human-readable facts about a certificate and about why verification failed,
// phrased in the words the drivers' own errors use, with the fix.
#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dbward::tls {

struct CertSummary {
  std::string subject;      // RFC 2253-ish one-line DN
  std::string issuer;
  std::vector<std::string> sans;  // "DNS:db.internal", "IP:10.0.0.5"
  std::string not_before;   // ISO 8601 UTC
  std::string not_after;
  int64_t not_after_unix = 0;  // for expiry metrics
  std::vector<std::string> eku;   // "serverAuth", "clientAuth", or dotted OIDs
  std::string key;          // "RSA 2048", "EC P-256", ...
  std::string sha256;       // hex fingerprint of the DER
  bool present = false;

  // "subject=..., issuer=..., SANs=[...], valid 2026-01-01T00:00:00Z..2027-01-01T00:00:00Z"
  std::string OneLine() const;
};

CertSummary Summarize(X509* cert);
// notAfter as Unix seconds (0 if unreadable): cheap, for expiry metrics.
int64_t NotAfterUnix(X509* cert);

// Why a handshake towards a server failed; stable tokens for metrics and audit.
enum class FailureCause {
  kNone,
  kUntrusted,           // chain does not lead to a configured CA
  kNameMismatch,        // server_name is not in the certificate
  kExpired,
  kNotYetValid,
  kBadPurpose,          // EKU lacks serverAuth (or clientAuth for clients)
  kVerifyOther,         // any other X.509 verification error
  kProtocolVersion,     // no common TLS version
  kNoSharedCipher,
  kClientCertRequired,  // the server wants a client certificate we did not give
  kPeerRejectedUs,      // the peer sent a fatal alert about our certificate
  kNotTls,              // the peer does not speak TLS on this port
  kReset,               // TCP reset or EOF in the middle of the handshake
  kTlsOther,
};

const char* CauseToken(FailureCause cause);

// Maps an X509_V_ERR_* code to a cause.
FailureCause CauseFromVerifyError(long x509_error);

}  // namespace dbward::tls

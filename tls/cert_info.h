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
  std::string spki;         // base64 SHA-256 of the SubjectPublicKeyInfo (backend_tls.pin_spki)
  bool present = false;

  // "subject=..., issuer=..., SANs=[...], valid 2026-01-01T00:00:00Z..2027-01-01T00:00:00Z"
  std::string OneLine() const;
};

CertSummary Summarize(X509* cert);
// notAfter as Unix seconds (0 if unreadable): cheap, for expiry metrics.
int64_t NotAfterUnix(X509* cert);
// An ASN1 time as Unix seconds (0 if unreadable).
int64_t TimeUnix(const ASN1_TIME* t);

// Why a handshake towards a server failed; stable tokens for metrics and audit.
enum class FailureCause {
  kNone,
  kUntrusted,           // chain does not lead to a configured CA
  kNameMismatch,        // server_name is not in the certificate
  kExpired,
  kNotYetValid,
  kBadPurpose,          // EKU lacks serverAuth (or clientAuth for clients)
  kVerifyOther,         // any other X.509 verification error
  kRevoked,             // the certificate is on the configured CRL
  kCrl,                 // no usable CRL for the issuer (missing, expired, not yet valid, bad signature)
  kPinMismatch,         // the chain is valid but the key is not one of the pinned ones
  kProtocolVersion,     // no common TLS version
  kNoSharedCipher,
  kClientCertRequired,  // the server wants a client certificate we did not give
  kPeerRejectedUs,      // the peer sent a fatal alert about our certificate
  kNotTls,              // the peer does not speak TLS on this port
  kReset,               // TCP reset or EOF in the middle of the handshake
  kTlsOther,
};

// The failure lies with the certificate the peer presented (chain, names,
// validity, purpose), as opposed to the transport or the TLS parameters.
bool IsCertificateFailure(FailureCause cause);

// Maps an X509_V_ERR_* code to a cause.
FailureCause CauseFromVerifyError(long x509_error);

// Everything known about a failed handshake, for proxy/ to explain in its
// own words (with its configuration names) and for the probe to show.
struct Diagnosis {
  FailureCause cause = FailureCause::kNone;
  std::string detail;        // the raw reason: X.509 error string, TLS alert or error, errno text
  int depth = -1;            // where in the chain verification failed (0: the leaf)
  std::string server_name;   // the name dbward checked and sent as SNI ("" on the server side)
  CertSummary failed;        // the certificate at fault (the leaf or a chain element)
  CertSummary leaf;
  std::string trust_path;    // what was trusted: a CA file ...
  bool trust_system = false; // ... or the system bundle at trust_path
  uint16_t min_version = 0;  // the lowest TLS version dbward offered
  bool peer_closed = false;  // the peer hung up during the handshake
  std::string spki;          // kPinMismatch: the leaf's SPKI SHA-256 (base64)
  std::vector<std::string> pins;  // kPinMismatch: what was pinned
  std::string crl_file;      // kRevoked, kCrl: the CRL file consulted
};

// DNS name vs. IP literal decides SNI and how a name is matched.
bool IsIpLiteral(const std::string& name);
// The name check verify-full performs: DNS names against DNS SANs, IP
// literals against IP SANs.
bool CertificateMatchesName(X509* cert, const std::string& name);
// RFC 5929 tls-server-end-point channel binding data: the certificate's hash
// with its signature's hash function (SHA-256 for MD5 and SHA-1); empty when
// it cannot be computed.
std::vector<uint8_t> ServerEndPoint(X509* cert);

}  // namespace dbward::tls

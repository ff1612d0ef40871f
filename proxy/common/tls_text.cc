#include "proxy/common/tls_text.h"

#include <fmt/format.h>

#include "proxy/common/text.h"
#include "proxy/common/time.h"
#include "tls/context.h"

namespace dbward::proxy {
namespace {

std::vector<std::string> Prefixed(const std::string& prefix, const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const std::string& i : items) out.push_back(prefix + i);
  return out;
}

}  // namespace

std::string TrustDescription(const std::string& path, bool system) {
  return (system ? "system trust store " : "ca_file ") + path;
}

Explanation ExplainHandshake(const tls::Diagnosis& d, std::string_view section) {
  using tls::FailureCause;
  const std::string who = d.server_name.empty() ? "the server" : d.server_name;
  const tls::CertSummary& bad = d.failed;
  const std::string cert = "certificate: " + bad.OneLine();
  switch (d.cause) {
    case FailureCause::kNone:
      return {"no failure", ""};
    case FailureCause::kUntrusted:
      return {fmt::format("certificate for {} is not trusted: the certificate chain was issued by an authority that "
                          "is not trusted ({} at depth {}; trusted: {}); {}",
                          who, d.detail, d.depth, TrustDescription(d.trust_path, d.trust_system), cert),
              fmt::format("set {}.ca_file to the CA that issued \"{}\"", section, bad.issuer)};
    case FailureCause::kNameMismatch:
      return {fmt::format("certificate for {} does not match the name: the target principal name is incorrect "
                          "({}.server_name \"{}\" is not among the certificate's names [{}], subject \"{}\")",
                          who, section, d.server_name, Join(d.leaf.sans), d.leaf.subject),
              fmt::format("set {}.server_name to one of those names, or reissue the certificate with a "
                          "subjectAltName for {}",
                          section, d.server_name)};
    case FailureCause::kExpired:
      return {fmt::format("certificate for {} has expired: {} was valid until {} (now {}); {}", who,
                          d.depth > 0 ? "an issuing CA certificate" : "the server certificate", bad.not_after,
                          NowIso(), cert),
              "renew the certificate on the server"};
    case FailureCause::kNotYetValid:
      return {fmt::format("certificate for {} is not yet valid: valid from {} (now {}); {}", who, bad.not_before,
                          NowIso(), cert),
              "check the clocks on this host and the server, or reissue the certificate"};
    case FailureCause::kBadPurpose:
      return {fmt::format("certificate for {} is not allowed for TLS server authentication (extended key usage: "
                          "[{}]); {}",
                          who, Join(bad.eku), cert),
              "reissue it with extendedKeyUsage = serverAuth"};
    case FailureCause::kVerifyOther:
      return {fmt::format("certificate for {} failed verification: {} at depth {}; {}", who, d.detail, d.depth, cert),
              ""};
    case FailureCause::kRevoked:
      return {fmt::format("certificate for {} has been revoked: it is on the CRL in {} ({}); {}", who, d.crl_file,
                          d.detail, cert),
              "the server needs a new certificate; until then the backend is refused (revocation is never waived)"};
    case FailureCause::kCrl:
      return {fmt::format("certificate for {} could not be checked for revocation: {} (CRL file {}, at depth {}); {}",
                          who, d.detail, d.crl_file, d.depth, cert),
              fmt::format("put a current CRL from \"{}\" in {}.crl_file (it is reloaded when it changes)",
                          bad.issuer, section)};
    case FailureCause::kPinMismatch:
      return {fmt::format("certificate for {} has a valid chain but its public key is not pinned: its SPKI is "
                          "sha256//{}, {}.pin_spki allows [{}]; {}",
                          who, d.spki, section, Join(Prefixed("sha256//", d.pins)), cert),
              fmt::format("if the server's key was replaced on purpose, add sha256//{} to {}.pin_spki; otherwise "
                          "something else is answering for {}",
                          d.spki, section, who)};
    case FailureCause::kProtocolVersion:
      return {fmt::format("TLS version mismatch with {}: no common protocol version (dbward accepts {} to TLSv1.3; "
                          "the server may only speak TLS 1.0/1.1)",
                          who, tls::TlsVersionName(d.min_version)),
              fmt::format("enable TLS 1.2 or 1.3 on the server{} ({})",
                          d.min_version == 0x0304 ? fmt::format(", or set {}.min_version: \"1.2\"", section) : "",
                          d.detail)};
    case FailureCause::kNoSharedCipher:
      return {fmt::format("TLS handshake with {} failed: no cipher suite or key exchange in common ({})", who,
                          d.detail),
              "enable modern AES-GCM or ChaCha20 suites on the server"};
    case FailureCause::kClientCertRequired:
      return {fmt::format("{} requires a client certificate and none was sent", who),
              fmt::format("set {0}.cert_file and {0}.key_file ({1})", section, d.detail)};
    case FailureCause::kPeerRejectedUs:
      return {fmt::format("{} rejected dbward's certificate ({})", who, d.detail),
              fmt::format("make the server trust the CA that issued {}.cert_file, or check that certificate's "
                          "validity",
                          section)};
    case FailureCause::kNotTls:
      return {fmt::format("{} did not answer with TLS ({}); check the port and that TLS is enabled on the server",
                          who, d.detail),
              ""};
    case FailureCause::kReset:
      return {fmt::format("connection reset during the TLS handshake with {} ({}); the server closed the connection: "
                          "check that it has TLS enabled and accepts this host",
                          who, d.detail),
              ""};
    case FailureCause::kTlsOther:
      return {fmt::format("TLS handshake with {} failed: {}", who, d.detail), ""};
  }
  return {d.detail, ""};
}

std::string ExplainLoadError(const tls::LoadError& e) {
  using Kind = tls::LoadError::Kind;
  switch (e.kind) {
    case Kind::kNoSystemBundle:
      return "no ca_file given and no system CA bundle found (install ca-certificates or set ca_file)";
    case Kind::kKeyEncrypted:
      return "private key " + e.path + " is encrypted: set key_password_file";
    case Kind::kWrongPassword:
      return "cannot decrypt private key " + e.path + ": wrong password in key_password_file";
    default:
      return e.Message();
  }
}

}  // namespace dbward::proxy

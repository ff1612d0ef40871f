// What `dbward probe` finds out about a server, one blocking connection per
// question: would dbward's verify-full succeed (and verify-ca, when it would
// not), which certificate chain the server presents, and which TLS versions
// it accepts. Every connection performs the protocol's own TLS upgrade first.
#pragma once

#include <openssl/base.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/probe_upgrade.h"
#include "tls/cert_info.h"
#include "tls/context.h"

namespace dbward::proxy::probe {

struct Target {
  Protocol protocol = Protocol::kTcp;
  bool tds_strict = false;  // TDS 8.0: TLS first, ALPN tds/8.0
  std::string host;
  uint16_t port = 0;
  std::string server_name;  // checked against the certificate and sent as SNI
  std::string ca_file;      // empty: the system trust store
  std::chrono::milliseconds timeout{5000};  // per connection
};

// One connection: TCP, the protocol's upgrade, the TLS handshake.
struct Attempt {
  enum Stage { kConnect, kUpgrade, kHandshake, kDone };
  Stage stage = kConnect;  // where it stopped; kDone: handshake complete
  Upgrade upgrade;
  bool timed_out = false;
  std::string message;     // kConnect / kUpgrade / transport failures: what happened
  tls::FailureCause cause = tls::FailureCause::kNone;
  std::string explanation;  // tls::Connection::Explain("backend_tls")
  std::string detail;       // raw X.509 / TLS reason
  tls::CertSummary failed_cert;
  std::string version;      // kDone: "TLSv1.3"
  std::string cipher;
  std::string alpn;

  bool ok() const { return stage == kDone; }
  // The handshake reached certificate verification and failed there.
  bool certificate_failure() const;
};

struct VersionResult {
  enum Status { kAccepted, kRejected, kNotTested, kUndetermined };
  uint16_t version = 0;
  Status status = kNotTested;
  std::string cipher;  // kAccepted
  std::string reason;  // otherwise
};

struct PresentedChain {
  std::vector<tls::CertSummary> certs;  // as sent, leaf first
  bool captured = false;
  bool name_matches = false;  // server_name against the leaf (SANs, as verification does)
};

struct Findings {
  Target target;
  std::string trust;  // "ca_file ..." or "system trust store ..."
  Attempt full;       // verify-full
  bool ca_run = false;
  Attempt ca;         // verify-ca, run when verify-full failed on the certificate
  std::vector<VersionResult> versions;  // TLS 1.0 .. 1.3
  PresentedChain chain;
};

// Builds the trust store once; false with *error when --ca-file (or the
// system bundle) cannot be loaded.
class Prober {
 public:
  explicit Prober(Target target) : target_(std::move(target)) {}
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;
  bool Init(std::string* error);
  // Everything: verify-full, verify-ca when needed, the chain, the versions.
  Findings Run();
  // Only the verify-full connection (protocol upgrade + handshake), as a
  // session would make it; for health checks.
  Attempt CheckVerifyFull();

 private:
  // The argument of the certificate verification callback: it records the
  // chain as presented, then verifies (verify) or accepts it unverified for a
  // handshake that only looks (version scan; no application data follows).
  struct Recorder {
    Prober* prober = nullptr;
    bool verify = true;
  };
  static int VerifyCallback(X509_STORE_CTX* store, void* arg);
  void Capture(X509_STORE_CTX* store);
  // version 0: dbward's own range (TLS 1.2 and 1.3); otherwise only that
  // version. Null with *error empty: BoringSSL cannot speak that version.
  std::shared_ptr<tls::Context> NewContext(tls::VerifyMode mode, Recorder* recorder, uint16_t version,
                                           std::string* error);
  Attempt Connect(const std::shared_ptr<tls::Context>& ctx);

  Target target_;
  std::string trust_;
  Recorder verifying_{this, true};
  Recorder looking_{this, false};
  PresentedChain chain_;
};

}  // namespace dbward::proxy::probe

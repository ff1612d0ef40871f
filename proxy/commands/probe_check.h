// What `dbward probe` finds out about a server, one blocking connection per
// question (commands/backend_probe.h): would dbward's verify-full succeed
// (and verify-ca, when it would not), which certificate chain the server
// presents, and which TLS versions it accepts.
#pragma once

#include <openssl/base.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/backend/backend_probe.h"
#include "tls/cert_info.h"
#include "tls/context.h"

namespace dbward::proxy::probe {

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

class Prober {
 public:
  explicit Prober(Target target) : target_(std::move(target)) {}
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;
  // Builds the trust store once; false with *error when --ca-file (or the
  // system bundle) cannot be loaded.
  bool Init(std::string* error);
  // Everything: verify-full, verify-ca when needed, the chain, the versions.
  Findings Run();

 private:
  // The argument of the certificate verification callback: it records the
  // chain as presented, then verifies (verify) or accepts it unverified for a
  // handshake that only looks (version scan; no application data follows).
  struct Recorder {
    Prober* prober = nullptr;
    bool verify = true;
    std::vector<std::string> pins;  // the context's SPKI pins, checked after the chain
  };
  static int VerifyCallback(X509_STORE_CTX* store, void* arg);
  void Capture(X509_STORE_CTX* store);
  // version 0: dbward's own range (TLS 1.2 and 1.3); otherwise only that
  // version. Null with *error empty: BoringSSL cannot speak that version.
  std::shared_ptr<tls::Context> NewContext(tls::VerifyMode mode, Recorder* recorder, uint16_t version,
                                           std::string* error);

  Target target_;
  std::string trust_;
  Recorder verifying_{this, true, {}};
  Recorder looking_{this, false, {}};
  PresentedChain chain_;
};

}  // namespace dbward::proxy::probe

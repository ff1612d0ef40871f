#include "proxy/commands/probe_check.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/common/tls_text.h"

namespace dbward::proxy::probe {
namespace {

// BoringSSL builds may drop old versions; what it refuses to configure is
// reported as "not tested" rather than as the server's doing.
bool PinVersion(SSL_CTX* ctx, uint16_t version) {
  return SSL_CTX_set_min_proto_version(ctx, version) == 1 && SSL_CTX_set_max_proto_version(ctx, version) == 1 &&
         SSL_CTX_get_min_proto_version(ctx) == version && SSL_CTX_get_max_proto_version(ctx) == version;
}

// The last reason code of a BoringSSL error string, e.g.
// "TLSV1_ALERT_PROTOCOL_VERSION" out of "error:1000042e:SSL routines:...".
std::string ShortReason(const std::string& detail) {
  size_t at = detail.rfind(':');
  return at == std::string::npos ? detail : detail.substr(at + 1);
}

std::string RejectionReason(const Attempt& a) {
  switch (a.diagnosis.cause) {
    case tls::FailureCause::kProtocolVersion:
      return "no agreement on this version (" + ShortReason(a.diagnosis.detail) + ")";
    case tls::FailureCause::kNoSharedCipher:
      return "no cipher suite in common at this version (" + ShortReason(a.diagnosis.detail) + ")";
    case tls::FailureCause::kReset:
      return "the server closed the connection" + (a.message.empty() ? std::string() : " (" + a.message + ")");
    default:
      return std::string(Token(CauseOf(a.diagnosis.cause))) + ": " + (a.message.empty() ? a.diagnosis.detail : a.message);
  }
}

}  // namespace

int Prober::VerifyCallback(X509_STORE_CTX* store, void* arg) {
  auto* recorder = static_cast<Recorder*>(arg);
  recorder->prober->Capture(store);
  if (!recorder->verify) return 1;
  // The store carries the connection's host check and its recording verify
  // callback (tls::Connection), exactly as without this hook; the pins
  // come after the chain, as in the sessions.
  return tls::VerifyChainWithPins(store, recorder->pins);
}

void Prober::Capture(X509_STORE_CTX* store) {
  if (chain_.captured) return;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr) return;
  chain_.captured = true;
  chain_.certs.push_back(tls::Summarize(leaf));
  if (STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(store)) {
    for (size_t i = 0; i < sk_X509_num(sent); i++) {
      X509* cert = sk_X509_value(sent, i);
      if (X509_cmp(cert, leaf) != 0) chain_.certs.push_back(tls::Summarize(cert));
    }
  }
  chain_.name_matches = tls::CertificateMatchesName(leaf, target_.server_name);
}

std::shared_ptr<tls::Context> Prober::NewContext(tls::VerifyMode mode, Recorder* recorder, uint16_t version,
                                                 std::string* error) {
  tls::ClientOptions o;
  o.verify = mode;
  o.ca_file = target_.ca_file;
  o.crl_file = target_.crl_file;
  o.spki_pins = target_.spki_pins;
  if (target_.protocol == Protocol::kTds && target_.tds_strict) o.alpn = {"tds/8.0"};
  if (target_.protocol == Protocol::kPostgres && target_.pg_direct) o.alpn = {"postgresql"};
  tls::LoadError load;
  std::shared_ptr<tls::Context> ctx = tls::Context::NewClient(o, &load);
  if (!ctx) {
    *error = ExplainLoadError(load);
    return nullptr;
  }
  // The probe owns these contexts and uses them from one thread, so adjusting
  // them after creation is safe.
  recorder->pins = ctx->spki_pins();
  ctx->set_chain_verifier(VerifyCallback, recorder);
  if (version != 0 && !PinVersion(ctx->ssl_ctx(), version)) {
    error->clear();
    return nullptr;
  }
  return ctx;
}

bool Prober::Init(std::string* error) {
  std::shared_ptr<tls::Context> ctx = NewContext(tls::VerifyMode::kFull, &verifying_, 0, error);
  if (!ctx) return false;
  trust_ = TrustDescription(ctx->trust().path, ctx->trust().system);
  return true;
}

Findings Prober::Run() {
  Findings f;
  f.target = target_;
  f.trust = trust_;
  std::string error;

  std::shared_ptr<tls::Context> full = NewContext(tls::VerifyMode::kFull, &verifying_, 0, &error);
  if (!full) {
    f.full.stage = Attempt::kHandshake;
    f.full.diagnosis.cause = tls::FailureCause::kTlsOther;
    f.full.diagnosis.detail = f.full.message = error;
    return f;
  }
  f.full = ProbeBackend(target_, full, Completion::kUpgrade);
  if (f.full.stage < Attempt::kHandshake) return f;  // unreachable, or not this protocol, or no TLS

  if (f.full.certificate_failure()) {
    std::shared_ptr<tls::Context> ca = NewContext(tls::VerifyMode::kCa, &verifying_, 0, &error);
    if (ca) {
      f.ca_run = true;
      f.ca = ProbeBackend(target_, ca, Completion::kHandshake);
    }
  }

  bool no_tls = f.full.diagnosis.cause == tls::FailureCause::kNotTls || (f.full.timed_out && !f.full.ok());
  for (uint16_t v : {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION}) {
    VersionResult r;
    r.version = v;
    std::shared_ptr<tls::Context> ctx = NewContext(tls::VerifyMode::kFull, &looking_, v, &error);
    if (!ctx) {
      r.status = VersionResult::kNotTested;
      r.reason = error.empty() ? "this BoringSSL build cannot speak it" : error;
    } else if (no_tls) {
      r.status = VersionResult::kUndetermined;
      r.reason = "the server did not complete a TLS handshake";
    } else {
      Attempt a = ProbeBackend(target_, ctx, Completion::kHandshake);
      if (a.ok()) {
        r.status = VersionResult::kAccepted;
        r.cipher = a.cipher;
      } else if (a.stage == Attempt::kHandshake && !a.timed_out) {
        r.status = VersionResult::kRejected;
        r.reason = RejectionReason(a);
      } else {
        r.status = VersionResult::kUndetermined;
        r.reason = a.message;
      }
    }
    f.versions.push_back(r);
  }
  f.chain = chain_;
  return f;
}

}  // namespace dbward::proxy::probe

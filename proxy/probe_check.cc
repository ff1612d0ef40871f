#include "proxy/probe_check.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/tds_framing.h"
#include "tls/connection.h"

namespace dbward::proxy::probe {
namespace {

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

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
  switch (a.cause) {
    case tls::FailureCause::kProtocolVersion:
      return "no agreement on this version (" + ShortReason(a.detail) + ")";
    case tls::FailureCause::kNoSharedCipher:
      return "no cipher suite in common at this version (" + ShortReason(a.detail) + ")";
    case tls::FailureCause::kReset:
      return "the server closed the connection" + (a.message.empty() ? std::string() : " (" + a.message + ")");
    default:
      return std::string(tls::CauseToken(a.cause)) + ": " + (a.message.empty() ? a.detail : a.message);
  }
}

}  // namespace

bool Attempt::certificate_failure() const {
  switch (cause) {
    case tls::FailureCause::kUntrusted:
    case tls::FailureCause::kNameMismatch:
    case tls::FailureCause::kExpired:
    case tls::FailureCause::kNotYetValid:
    case tls::FailureCause::kBadPurpose:
    case tls::FailureCause::kVerifyOther:
      return stage == kHandshake;
    default:
      return false;
  }
}

int Prober::VerifyCallback(X509_STORE_CTX* store, void* arg) {
  auto* recorder = static_cast<Recorder*>(arg);
  recorder->prober->Capture(store);
  if (!recorder->verify) return 1;
  // The store carries the connection's host check and its recording verify
  // callback (tls::Connection), exactly as without this hook.
  return X509_verify_cert(store);
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
  const std::string& name = target_.server_name;
  chain_.name_matches = IsIpLiteral(name) ? X509_check_ip_asc(leaf, name.c_str(), 0) == 1
                                          : X509_check_host(leaf, name.data(), name.size(), 0, nullptr) == 1;
}

std::shared_ptr<tls::Context> Prober::NewContext(tls::VerifyMode mode, Recorder* recorder, uint16_t version,
                                                 std::string* error) {
  tls::ClientOptions o;
  o.verify = mode;
  o.ca_file = target_.ca_file;
  if (target_.protocol == Protocol::kTds && target_.tds_strict) o.alpn = {"tds/8.0"};
  std::shared_ptr<tls::Context> ctx = tls::Context::NewClient(o, error);
  if (!ctx) return nullptr;
  // The probe owns these contexts and uses them from one thread, so adjusting
  // them after creation is safe.
  SSL_CTX_set_cert_verify_callback(ctx->ssl_ctx(), VerifyCallback, recorder);
  if (version != 0 && !PinVersion(ctx->ssl_ctx(), version)) {
    error->clear();
    return nullptr;
  }
  return ctx;
}

bool Prober::Init(std::string* error) {
  std::shared_ptr<tls::Context> ctx = NewContext(tls::VerifyMode::kFull, &verifying_, 0, error);
  if (!ctx) return false;
  trust_ = ctx->ca_description();
  return true;
}

Attempt Prober::Connect(const std::shared_ptr<tls::Context>& ctx) {
  Attempt a;
  SocketIo socket(Clock::now() + target_.timeout);
  if (!socket.Connect(target_.host, target_.port, &a.message)) {
    a.timed_out = socket.timed_out();
    return a;
  }
  a.stage = Attempt::kUpgrade;
  a.upgrade = StartUpgrade(target_.protocol, target_.tds_strict, &socket);
  if (a.upgrade.status != Upgrade::kOk) {
    a.message = a.upgrade.message;
    a.timed_out = socket.timed_out();
    return a;
  }
  a.stage = Attempt::kHandshake;
  PreloginFramingIo prelogin(&socket);
  bool framed = target_.protocol == Protocol::kTds && !target_.tds_strict;
  std::string error;
  std::unique_ptr<tls::Connection> conn =
      tls::Connection::NewClient(ctx, target_.server_name, framed ? static_cast<tls::Io*>(&prelogin) : &socket, &error);
  if (!conn) {
    a.cause = tls::FailureCause::kTlsOther;
    a.message = a.explanation = error;
    return a;
  }
  tls::Connection::HandshakeStatus status = tls::Connection::HandshakeStatus::kFailed;
  // The transports block, so "want" only repeats until BoringSSL is done.
  for (int spins = 0; spins < 1000; spins++) {
    status = conn->Handshake();
    if (status != tls::Connection::HandshakeStatus::kWantRead &&
        status != tls::Connection::HandshakeStatus::kWantWrite) {
      break;
    }
  }
  if (status != tls::Connection::HandshakeStatus::kDone) {
    a.timed_out = socket.timed_out();
    a.cause = conn->failure_cause();
    if (a.cause == tls::FailureCause::kNone) a.cause = tls::FailureCause::kTlsOther;
    a.explanation = conn->Explain("backend_tls");
    a.detail = conn->failure_detail();
    a.failed_cert = conn->failed_certificate().present ? conn->failed_certificate() : conn->leaf_certificate();
    if (a.timed_out) {
      a.message = "no answer during the TLS handshake before the timeout";
    } else if (!prelogin.error().empty()) {
      a.message = "TLS inside TDS PRELOGIN packets failed: " + prelogin.error();
    }
    return a;
  }
  a.stage = Attempt::kDone;
  a.version = conn->version_name();
  a.cipher = conn->cipher();
  a.alpn = conn->alpn();
  // TDS 7.x: after the handshake TLS records go straight on TCP.
  conn->set_io(&socket);
  conn->Shutdown();
  return a;
}

Attempt Prober::CheckVerifyFull() {
  std::string error;
  std::shared_ptr<tls::Context> full = NewContext(tls::VerifyMode::kFull, &verifying_, 0, &error);
  if (!full) {
    Attempt a;
    a.stage = Attempt::kHandshake;
    a.cause = tls::FailureCause::kTlsOther;
    a.message = a.explanation = error;
    return a;
  }
  return Connect(full);
}

Findings Prober::Run() {
  Findings f;
  f.target = target_;
  f.trust = trust_;
  std::string error;

  f.full = CheckVerifyFull();
  if (f.full.stage < Attempt::kHandshake) return f;  // unreachable, or not this protocol, or no TLS

  if (f.full.certificate_failure()) {
    std::shared_ptr<tls::Context> ca = NewContext(tls::VerifyMode::kCa, &verifying_, 0, &error);
    if (ca) {
      f.ca_run = true;
      f.ca = Connect(ca);
    }
  }

  bool no_tls = f.full.cause == tls::FailureCause::kNotTls || f.full.timed_out;
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
      Attempt a = Connect(ctx);
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

// protocol: postgres.
//
// Client leg: answers SSLRequest with 'S' (TLS with client_tls) or 'N',
// GSSENCRequest with 'N', accepts PostgreSQL 17 direct TLS (ALPN postgresql),
// forwards CancelRequest over a new verified backend connection, and accepts a
// plaintext StartupMessage when plaintext_clients allows it.
// Backend leg: SSLRequest then TLS (or direct TLS), never plaintext. The
// startup message and authentication pass through untouched, except that
// SCRAM-SHA-256-PLUS is withdrawn when channel binding cannot survive the
// proxy. After AuthenticationOk the session becomes a plain relay.
#include "proxy/pg_handler.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>

#include "protocol/postgres.h"
#include "protocol/preread.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace dbward::proxy {
namespace {

namespace pg = protocol::pg;

// Authentication messages are small; anything larger before AuthenticationOk
// is refused rather than buffered.
constexpr size_t kMaxAuthMessage = 16 * 1024;

std::vector<uint8_t> Error(const std::string& sqlstate, const std::string& message, const std::string& hint = "") {
  pg::ErrorFields f;
  f.severity = "FATAL";
  f.sqlstate = sqlstate;
  f.message = message;
  f.hint = hint;
  return pg::EncodeErrorResponse(f);
}

class PostgresHandler final : public ProtocolHandler {
 public:
  void OnStart(Session& s) override {
    s.audit().client_encryption = "none";
    s.audit().trust_bypass = true;
    s.audit().bypass_reason = "plaintext";
    s.SetClientReading(true);
  }

  void OnClientData(Session& s) override {
    std::vector<uint8_t>& in = s.client_in();
    if (phase_ == Phase::kAuth) {
      // SASL responses, passwords: passed through untouched.
      s.SendToBackend(in);
      in.clear();
      return;
    }
    if (phase_ != Phase::kFirstMessage) return;
    if (!client_tls_ && protocol::ClassifyFirstBytes(in) == protocol::FirstBytes::kTlsHandshake) {
      StartDirectTls(s);
      return;
    }
    pg::FirstMessage m;
    pg::Result r = pg::DecodeFirstMessage(in, &m);
    if (r.status == pg::Status::kNeedMore) return;
    if (r.status == pg::Status::kMalformed) {
      s.FailWithMessage("client_error", "invalid startup packet: " + r.error, "malformed",
                        Error("08P01", "dbward: invalid startup packet: " + r.error));
      return;
    }
    switch (m.kind) {
      case pg::FirstMessageKind::kSslRequest:
      case pg::FirstMessageKind::kGssEncRequest: {
        bool ssl = m.kind == pg::FirstMessageKind::kSslRequest;
        if (client_tls_) {
          s.FailWithMessage("client_error", "encryption request inside TLS", "malformed",
                            Error("08P01", "dbward: SSLRequest/GSSENCRequest received inside TLS"));
          return;
        }
        if (in.size() > m.length) {
          // Bytes behind the request would be read as if they had come over
          // TLS (CVE-2021-23214): the connection is dropped.
          s.FailWithMessage("client_error", "received unencrypted data after SSL request", "plaintext_after_request",
                            {});
          return;
        }
        in.clear();
        bool accept = ssl && s.tls().client != nullptr;
        uint8_t answer = accept ? 'S' : 'N';
        s.SendToClient(std::span<const uint8_t>(&answer, 1));
        if (accept) {
          s.SetClientReading(false);
          s.StartClientTls();
          phase_ = Phase::kClientTls;
        }
        return;
      }
      case pg::FirstMessageKind::kCancelRequest:
        cancel_ = std::vector<uint8_t>(in.begin(), in.begin() + static_cast<ptrdiff_t>(m.length));
        in.clear();
        s.SetClientReading(false);
        s.audit().note = "cancel request";
        phase_ = Phase::kBackend;
        s.ConnectBackend();
        return;
      case pg::FirstMessageKind::kStartup:
        break;
    }
    s.audit().user = m.Param("user");
    s.audit().database = m.Param("database").empty() ? m.Param("user") : m.Param("database");
    s.audit().application = m.Param("application_name");
    char version[16];
    snprintf(version, sizeof version, "%u.%u", m.protocol >> 16, m.protocol & 0xffff);
    s.audit().client_protocol_version = version;
    if (!client_tls_ && !s.listener().config.plaintext_clients) {
      s.FailWithMessage("refused", "plaintext client refused (plaintext_clients: deny)", "plaintext_denied",
                        Error("28000",
                              "dbward: listener " + s.listener().config.name +
                                  " does not accept unencrypted connections (plaintext_clients: deny)",
                              "Connect with sslmode=require or stronger."));
      return;
    }
    startup_.assign(in.begin(), in.begin() + static_cast<ptrdiff_t>(m.length));
    in.erase(in.begin(), in.begin() + static_cast<ptrdiff_t>(m.length));
    s.SetClientReading(false);
    phase_ = Phase::kBackend;
    s.ConnectBackend();
  }

  void OnClientTlsReady(Session& s) override {
    client_tls_ = true;
    AuditInfo& a = s.audit();
    a.client_encryption = direct_ ? "tls-direct" : "tls";
    a.trust_bypass = false;
    a.bypass_reason.clear();
    if (direct_ && a.client_alpn != "postgresql") {
      // PostgreSQL 17 requires ALPN on direct TLS, to keep cross-protocol
      // attacks away; so do we.
      s.FailWithMessage("client_error", "direct TLS connection without ALPN 'postgresql'", "no_alpn",
                        Error("08P01", "dbward: direct SSL connection was established without ALPN protocol negotiation"));
      return;
    }
    phase_ = Phase::kFirstMessage;
    s.SetClientReading(true);
  }

  void OnBackendConnected(Session& s) override {
    if (s.listener().config.backend_tls.direct) {
      s.StartBackendTls();
      return;
    }
    std::vector<uint8_t> req = pg::EncodeSslRequest();
    s.SendToBackend(req);
    s.SetBackendReading(true);
    phase_ = Phase::kBackendSslAnswer;
  }

  void OnBackendTlsReady(Session& s) override {
    if (!cancel_.empty()) {
      s.SendToBackend(cancel_);
      s.audit().note = "cancel request forwarded";
      // The server closes the connection after a cancel; the relay carries
      // that EOF back to the client, which is what libpq waits for.
      s.RequestRelay();
      return;
    }
    strip_plus_ = !SameCertificateOnBothLegs(s);
    if (!strip_plus_) s.audit().note = "channel binding passes through (same certificate on both legs)";
    s.SendToBackend(startup_);
    startup_.clear();
    s.SendToBackend(s.client_in());
    s.client_in().clear();
    s.SetBackendReading(true);
    s.SetClientReading(true);
    phase_ = Phase::kAuth;
  }

  void OnBackendData(Session& s) override {
    std::vector<uint8_t>& in = s.backend_in();
    if (phase_ == Phase::kBackendSslAnswer) {
      if (in.empty()) return;
      uint8_t answer = in[0];
      if (answer == 'S') {
        if (in.size() > 1) {
          s.Fail("backend_tls_failed",
                 "backend " + s.backend_addr() + " sent unencrypted data right after accepting SSLRequest "
                 "(a man-in-the-middle could inject it; CVE-2021-23222): connection dropped",
                 "plaintext_after_ssl_answer");
          return;
        }
        in.clear();
        s.SetBackendReading(false);
        s.StartBackendTls();
        phase_ = Phase::kBackend;
        return;
      }
      if (answer == 'N') {
        s.Fail("backend_tls_refused",
               "backend " + s.backend_addr() + " refused TLS (it answered 'N' to SSLRequest); dbward never "
               "falls back to plaintext: set ssl = on in the server's postgresql.conf",
               "backend_no_tls");
        return;
      }
      s.Fail("backend_tls_refused",
             "backend " + s.backend_addr() + " did not answer SSLRequest with 'S' or 'N' (first byte 0x" +
                 Hex(answer) + "); is it a PostgreSQL server?",
             "not_postgres");
      return;
    }
    if (phase_ != Phase::kAuth) return;
    size_t off = 0;
    while (off < in.size()) {
      pg::Message msg;
      pg::Result r = pg::DecodeMessage(std::span<const uint8_t>(in).subspan(off), kMaxAuthMessage, &msg);
      if (r.status == pg::Status::kNeedMore) break;
      if (r.status == pg::Status::kMalformed) {
        s.Fail("backend_error", "backend sent a malformed message during authentication: " + r.error, "malformed");
        return;
      }
      std::span<const uint8_t> raw = std::span<const uint8_t>(in).subspan(off, msg.wire_length);
      off += msg.wire_length;
      uint32_t code = 0;
      if (msg.type == 'R' && pg::ParseAuthCode(msg.body, &code)) {
        if (code == pg::kAuthSasl) {
          ForwardSasl(s, msg, raw);
          continue;
        }
        s.SendToClient(raw);
        if (code == pg::kAuthOk) {
          // Authentication is over: whatever follows (ParameterStatus,
          // BackendKeyData, ReadyForQuery) goes through the relay.
          phase_ = Phase::kDone;
          s.HandOffToRelay(off);
          return;
        }
        continue;
      }
      if (msg.type == 'E') {
        ForwardError(s, msg, raw);
        in.clear();
        return;
      }
      s.SendToClient(raw);
    }
    in.erase(in.begin(), in.begin() + static_cast<ptrdiff_t>(off));
  }

  std::vector<uint8_t> ErrorForClient(const std::string& message, const std::string& cause) override {
    if (phase_ == Phase::kClientTls) return {};
    std::string state = cause == "connect" || cause == "dns" || cause == "connect_timeout" ? "08001" : "08006";
    std::string hint;
    if (cause == "plaintext_denied") state = "28000";
    return Error(state, "dbward: " + message, hint);
  }

 private:
  enum class Phase { kFirstMessage, kClientTls, kBackend, kBackendSslAnswer, kAuth, kDone };

  static std::string Hex(uint8_t b) {
    static const char kHex[] = "0123456789abcdef";
    return {kHex[b >> 4], kHex[b & 15]};
  }

  void StartDirectTls(Session& s) {
    if (s.tls().client == nullptr) {
      s.FailWithMessage("client_error",
                        "client started TLS directly (sslnegotiation=direct) but this listener has no client_tls",
                        "no_client_tls", {});
      return;
    }
    direct_ = true;
    s.client_leg().Unread(s.client_in());
    s.client_in().clear();
    s.SetClientReading(false);
    s.StartClientTls();
    phase_ = Phase::kClientTls;
  }

  // tls-server-end-point channel binding hashes the server certificate. It
  // survives the proxy only when dbward presents the backend's own certificate.
  bool SameCertificateOnBothLegs(Session& s) {
    tls::Connection* c = s.client_leg().tls();
    tls::Connection* b = s.backend_leg().tls();
    if (c == nullptr || b == nullptr) return false;
    X509* ours = SSL_get_certificate(c->ssl());
    bssl::UniquePtr<X509> theirs(SSL_get_peer_certificate(b->ssl()));
    return ours != nullptr && theirs != nullptr && X509_cmp(ours, theirs.get()) == 0;
  }

  void ForwardSasl(Session& s, const pg::Message& msg, std::span<const uint8_t> raw) {
    std::vector<std::string> mechs;
    if (!pg::ParseSaslMechanisms(msg.body, &mechs)) {
      s.Fail("backend_error", "backend sent a malformed AuthenticationSASL message", "malformed");
      return;
    }
    if (!strip_plus_) {
      s.SendToClient(raw);
      return;
    }
    size_t before = mechs.size();
    mechs.erase(std::remove_if(mechs.begin(), mechs.end(),
                               [](const std::string& m) { return m.size() > 5 && m.ends_with("-PLUS"); }),
                mechs.end());
    if (mechs.empty()) {
      s.Fail("backend_error",
             "the backend offers only SCRAM with channel binding, which cannot pass through a TLS-terminating "
             "proxy; allow SCRAM-SHA-256 without channel binding for this user",
             "channel_binding_only");
      return;
    }
    if (mechs.size() != before) {
      std::vector<uint8_t> rewritten = pg::EncodeAuthenticationSasl(mechs);
      s.SendToClient(rewritten);
    } else {
      s.SendToClient(raw);
    }
  }

  void ForwardError(Session& s, const pg::Message& msg, std::span<const uint8_t> raw) {
    pg::ErrorFields f;
    std::string text = "backend refused the connection";
    if (pg::ParseErrorResponse(msg.body, &f)) {
      text = "backend: " + f.sqlstate + " " + f.message;
      std::vector<uint8_t> rewritten;
      if (f.message.find("channel binding") != std::string::npos && client_tls_ &&
          pg::ErrorResponseWithHint(
              msg.body,
              "dbward terminates TLS, so SCRAM channel binding cannot reach the server. Set "
              "channel_binding=disable in the client's connection string, or configure dbward's client_tls "
              "with the server's own certificate and key.",
              &rewritten)) {
        // libpq on TLS says "I support channel binding but the server does
        // not" once -PLUS is withdrawn, and the server rejects that as a
        // downgrade. Only the client can stop asking.
        s.SendToClient(rewritten);
        text += " (client asked for channel binding through a TLS-terminating proxy)";
      } else {
        s.SendToClient(raw);
      }
    } else {
      s.SendToClient(raw);
    }
    std::string cause = f.sqlstate.rfind("28", 0) == 0 ? "auth_failed" : "backend_error";
    s.FailWithMessage(cause == "auth_failed" ? "auth_failed" : "backend_error", text, cause, {});
  }

  Phase phase_ = Phase::kFirstMessage;
  bool client_tls_ = false;
  bool direct_ = false;
  bool strip_plus_ = true;
  std::vector<uint8_t> startup_;
  std::vector<uint8_t> cancel_;
};

}  // namespace

std::unique_ptr<ProtocolHandler> NewPostgresHandler() { return std::make_unique<PostgresHandler>(); }

}  // namespace dbward::proxy

// protocol: postgres.
//
// Client leg: answers SSLRequest with 'S' (TLS with client_tls) or 'N',
// GSSENCRequest with 'N', accepts PostgreSQL 17 direct TLS (ALPN postgresql),
// forwards CancelRequest over a new verified backend connection, and accepts a
// plaintext StartupMessage when plaintext_clients allows it.
// Backend leg: SSLRequest then TLS (or direct TLS), never plaintext
// (engine/upgrade.h). The startup message and authentication pass through
// untouched, except that SCRAM-SHA-256-PLUS is withdrawn when channel binding
// cannot survive the proxy; with `scram` (engine/pg_scram.h) dbward mediates
// SCRAM itself, with channel binding on both legs, for users whose verifier
// it can look up. After AuthenticationOk the engine reads the backend's
// messages for the ParameterStatus application_name -- the startup value,
// and a later SET as JDBC drivers send one -- up to the ReadyForQuery that
// answers the client's third command (or kMaxWatchedMessages), passing the
// client's bytes on unread; then the session is a relay.
#include <algorithm>
#include <chrono>

#include "protocol/postgres.h"
#include "protocol/preread.h"
#include "protocol/scram.h"
#include "proxy/engine/engines.h"
#include "proxy/engine/pg_scram.h"
#include "proxy/engine/upgrade.h"

namespace dbward::proxy::engine {
namespace {

namespace pg = protocol::pg;

// Authentication messages are small; anything larger before AuthenticationOk
// is refused rather than buffered.
constexpr size_t kMaxAuthMessage = 16 * 1024;
// After login, how much of the backend's talk the engine reads before it
// leaves the rest to the relay: ReadyForQuery messages (the one after login,
// then one per client command: pgJDBC sends SET extra_float_digits, then
// SET application_name), and messages of any kind.
constexpr int kWatchedReadies = 4;
constexpr int kMaxWatchedMessages = 64;

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::vector<uint8_t> Error(const std::string& sqlstate, const std::string& message, const std::string& hint = "") {
  pg::ErrorFields f;
  f.severity = "FATAL";
  f.sqlstate = sqlstate;
  f.message = message;
  f.hint = hint;
  return pg::EncodeErrorResponse(f);
}

class PostgresEngine final : public Engine {
 public:
  PostgresEngine(Driver& driver, const EngineContext& context)
      : Engine(driver, context),
        upgrade_(BackendUpgrade::New({.protocol = Protocol::kPostgres, .pg_direct = context.listener->backend_tls.direct},
                                     driver)) {}

  void Start() override { driver_.ReadClient(true); }

  // PostgreSQL's own "too many clients" comes before the client's first
  // message is read; libpq prints it as the answer to SSLRequest too.
  void StartRefused(const Failure& f) override { driver_.Fail(f, Error("53300", "dbward: " + f.error)); }

  void OnClientData(ByteQueue& in) override {
    if (phase_ == Phase::kAuth && mediator_) {
      MediateClient(in);
      return;
    }
    if (phase_ == Phase::kAuth) {
      // SASL responses, passwords: passed through untouched.
      driver_.SendToBackend(in.data());
      in.Consume(in.size());
      return;
    }
    if (phase_ == Phase::kWatch) {
      // The client's commands pass unread; only the answers are watched.
      driver_.SendToBackend(in.data());
      in.Consume(in.size());
      return;
    }
    if (phase_ != Phase::kFirstMessage) return;
    if (!in.empty()) facts_.declared = true;  // even garbage is a client that spoke
    if (!client_tls_ && protocol::ClassifyFirstBytes(in.data()) == protocol::FirstBytes::kTlsHandshake) {
      StartDirectTls();
      return;
    }
    pg::FirstMessage m;
    pg::Result r = pg::DecodeFirstMessage(in.data(), &m);
    if (r.need_more()) return;
    if (r.malformed()) {
      Fail(Outcome::kClientError, Cause::kMalformed, "invalid startup packet: " + r.error,
           Error("08P01", "dbward: invalid startup packet: " + r.error));
      return;
    }
    switch (m.kind) {
      case pg::FirstMessageKind::kSslRequest:
      case pg::FirstMessageKind::kGssEncRequest:
        AnswerEncryptionRequest(in, m);
        return;
      case pg::FirstMessageKind::kCancelRequest: {
        auto raw = in.data().first(m.length);
        cancel_.assign(raw.begin(), raw.end());
        in.Consume(m.length);
        driver_.ReadClient(false);
        facts_.note = "cancel request";
        phase_ = Phase::kBackend;
        driver_.ConnectBackend();
        return;
      }
      case pg::FirstMessageKind::kStartup:
        break;
    }
    facts_.user = m.Param("user");
    facts_.database = m.Param("database").empty() ? m.Param("user") : m.Param("database");
    facts_.application = m.Param("application_name");
    facts_.protocol_version = pg::ProtocolVersionName(m.protocol);
    if (!client_tls_ && !listener().plaintext_clients) {
      Fail(Outcome::kRefused, Cause::kPlaintextDenied, "plaintext client refused (plaintext_clients: deny)",
           Error("28000",
                 "dbward: listener " + listener().name + " does not accept unencrypted connections (plaintext_clients: deny)",
                 "Connect with sslmode=require or stronger."));
      return;
    }
    if (Driver::Admission a = driver_.Admit(); a.denied) {
      // Before any password is asked for.
      std::string hint;
      if (a.required == ProtectionLevel::kValidated) {
        hint = "Connect with sslmode=verify-full and sslrootcert=<the CA of dbward's certificate>: libpq then "
               "validates the certificate.";
      } else if (a.required) {
        hint = "Connect with sslmode=require, or better sslmode=verify-full.";
      }
      Fail(Outcome::kRefused, a.cause, a.error, Error("28000", "dbward: " + a.error, hint));
      return;
    }
    if (context_.scram_mediation) {
      uint64_t retry_ms = 0;
      if (context_.auth_failures != nullptr &&
          !context_.auth_failures->Allowed(context_.client_ip, NowMs(), &retry_ms)) {
        const std::string why = "too many failed logins from " + context_.client_ip + "; try again in " +
                                std::to_string((retry_ms + 999) / 1000) + " s";
        Fail(Outcome::kRefused, Cause::kRateLimited, why, Error("28000", "dbward: " + why));
        return;
      }
      // Looked up while dbward connects to the backend.
      verifier_pending_ = true;
      database_ = facts_.database;
      driver_.LookupVerifier(facts_.user, database_, false);
    }
    auto raw = in.data().first(m.length);
    startup_.assign(raw.begin(), raw.end());
    in.Consume(m.length);
    driver_.ReadClient(false);
    phase_ = Phase::kBackend;
    driver_.ConnectBackend();
  }

  void OnVerifier(VerifierAnswer answer) override {
    if (refresh_pending_) {
      refresh_pending_ = false;
      protocol::scram::Verifier v;
      std::string why;
      bool ok = answer.kind == VerifierAnswer::Kind::kScram && protocol::scram::ParseVerifier(answer.verifier, &v, &why);
      ScramMediator::Out out;
      ApplyStep(mediator_->Refreshed(ok ? &v : nullptr, &out), out);
      v.Wipe();
      if (mediator_ && phase_ == Phase::kAuth) driver_.ReadBackend(true);
      return;
    }
    verifier_ = std::move(answer);
    verifier_pending_ = false;
    // An AuthenticationSASL waiting for it is read again.
    if (phase_ == Phase::kAuth) driver_.ReadBackend(true);
  }

  void OnClientTlsReady(const TlsFacts& facts) override {
    client_tls_ = true;
    client_end_point_ = facts.server_end_point;
    facts_.encryption = direct_ ? ClientEncryption::kTlsDirect : ClientEncryption::kTls;
    facts_.bypass.Clear();
    if (direct_ && facts.alpn != "postgresql") {
      // PostgreSQL 17 requires ALPN on direct TLS, to keep cross-protocol
      // attacks away; so do we.
      Fail(Outcome::kClientError, Cause::kNoAlpn, "direct TLS connection without ALPN 'postgresql'",
           Error("08P01", "dbward: direct SSL connection was established without ALPN protocol negotiation"));
      return;
    }
    phase_ = Phase::kFirstMessage;
    driver_.ReadClient(true);
  }

  void OnBackendConnected(const std::string& address) override {
    Check(upgrade_->OnConnected(address));
  }

  void OnBackendData(ByteQueue& in) override {
    if (phase_ == Phase::kBackend) {
      Check(upgrade_->OnData(in));
      return;
    }
    if (phase_ == Phase::kAuth) ForwardAuthentication(in);
    if (phase_ == Phase::kWatch) WatchBackend(in);
  }

  void OnBackendTlsReady(const TlsFacts& facts) override {
    upgrade_->OnTlsReady();
    BackendReady(facts);
  }

  bool TakesWarmBackend() const override { return true; }
  void OnBackendWarm(const std::string& /*address*/, const TlsFacts& facts) override { BackendReady(facts); }

  // The backend leg is verified TLS and the server waits for the first message.
  void BackendReady(const TlsFacts& facts) {
    if (!cancel_.empty()) {
      driver_.SendToBackend(cancel_);
      facts_.note = "cancel request forwarded";
      // The server closes the connection after a cancel; the relay carries
      // that EOF back to the client, which is what libpq waits for.
      driver_.HandOffToRelay();
      return;
    }
    // tls-server-end-point channel binding hashes the server certificate: it
    // survives the proxy only when dbward presents the backend's own one.
    strip_plus_ = !(client_tls_ && !client_end_point_.empty() && client_end_point_ == facts.server_end_point);
    backend_end_point_ = facts.server_end_point;
    if (!strip_plus_) facts_.note = "channel binding passes through (same certificate on both legs)";
    driver_.SendToBackend(startup_);
    std::fill(startup_.begin(), startup_.end(), 0);
    startup_.clear();
    phase_ = Phase::kAuth;
    driver_.ReadBackend(true);
    driver_.ReadClient(true);  // delivers what the client pipelined behind its startup message
  }

  std::span<const uint8_t> Goodbye() const override { return pg::TerminateMessage(); }

  std::vector<uint8_t> NativeError(const Failure& f) override {
    if (phase_ == Phase::kClientTls) return {};
    std::string state = f.cause == Cause::kConnect || f.cause == Cause::kDns || f.cause == Cause::kConnectTimeout
                            ? "08001"
                            : "08006";
    if (f.cause == Cause::kPlaintextDenied) state = "28000";
    return Error(state, "dbward: " + f.error);
  }

 private:
  enum class Phase { kFirstMessage, kClientTls, kBackend, kAuth, kWatch, kDone };

  void Check(BackendUpgrade::State state) {
    if (state != BackendUpgrade::State::kFailed) return;
    const UpgradeFailure& f = upgrade_->failure();
    driver_.FailBackend({f.outcome, f.cause, f.error});
  }

  void AnswerEncryptionRequest(ByteQueue& in, const pg::FirstMessage& m) {
    bool ssl = m.kind == pg::FirstMessageKind::kSslRequest;
    if (client_tls_) {
      const std::string what = ssl ? "SSLRequest" : "GSSENCRequest";
      Fail(Outcome::kClientError, Cause::kMalformed, what + " received inside TLS (the connection is already encrypted)",
           Error("08P01", "dbward: " + what + " received inside TLS"));
      return;
    }
    if (in.size() > m.length) {
      // Bytes behind the request would be read as if they had come over TLS
      // (CVE-2021-23214): the connection is dropped.
      Fail(Outcome::kClientError, Cause::kPlaintextAfterRequest, "received unencrypted data after SSL request");
      return;
    }
    in.Consume(m.length);
    bool accept = ssl && context_.client_tls;
    driver_.SendToClient(pg::EncryptionAnswerByte(accept));
    if (accept) {
      driver_.ReadClient(false);
      driver_.StartClientTls(ClientTlsProfile::kStandard, TlsTransport::kStream);
      phase_ = Phase::kClientTls;
    }
  }

  void StartDirectTls() {
    if (!context_.client_tls) {
      Fail(Outcome::kClientError, Cause::kNoClientTls,
           "client started TLS directly (sslnegotiation=direct) but this listener has no client_tls");
      return;
    }
    direct_ = true;
    driver_.ReadClient(false);
    // The ClientHello bytes already read stay queued: they start the TLS stream.
    driver_.StartClientTls(ClientTlsProfile::kStandard, TlsTransport::kStream);
    phase_ = Phase::kClientTls;
  }

  void ForwardAuthentication(ByteQueue& in) {
    size_t off = 0;
    while (off < in.size() && phase_ == Phase::kAuth) {
      pg::Message msg;
      pg::Result r = pg::DecodeMessage(in.data().subspan(off), kMaxAuthMessage, &msg);
      if (r.need_more()) break;
      if (r.malformed()) {
        FailNative(Outcome::kBackendError, Cause::kMalformed,
                   "backend sent a malformed message during authentication: " + r.error);
        return;
      }
      std::span<const uint8_t> raw = in.data().subspan(off, msg.wire_length);
      if (mediator_ && msg.type != 'E' && msg.type != 'N') {
        if (mediator_->wanted() != ScramMediator::Side::kBackend || refresh_pending_) break;
        off += msg.wire_length;
        ScramMediator::Out out;
        ScramMediator::Step step = mediator_->OnBackend(msg, &out);
        if (step == ScramMediator::Step::kNeedVerifier) {
          // The backend holds another verifier: the password changed since
          // dbward looked. Look again before the client hears a salt.
          refresh_pending_ = true;
          driver_.ReadBackend(false);
          driver_.LookupVerifier(facts_.user, database_, true);
          in.Consume(off);
          return;
        }
        ApplyStep(step, out);
        continue;
      }
      switch (pg::ClassifyAuthMessage(msg)) {
        case pg::AuthMessage::kSasl:
          if (context_.scram_mediation && verifier_pending_) {
            // Until the verifier is known this message waits, unread.
            in.Consume(off);
            driver_.ReadBackend(false);
            return;
          }
          off += msg.wire_length;
          if (!StartSasl(msg, raw)) return;
          break;
        case pg::AuthMessage::kOk:
          off += msg.wire_length;
          driver_.SendToClient(raw);
          in.Consume(off);
          LoggedIn();
          if (phase_ == Phase::kWatch) WatchBackend(in);
          return;
        case pg::AuthMessage::kError:
          ForwardError(msg, raw);
          in.Consume(in.size());
          return;
        case pg::AuthMessage::kOtherRequest:
        case pg::AuthMessage::kOther:
          off += msg.wire_length;
          driver_.SendToClient(raw);
          break;
      }
    }
    in.Consume(off);
  }

  // AuthenticationSASL: mediate when the user's verifier is at hand, else
  // pass through (without -PLUS where channel binding cannot survive).
  bool StartSasl(const pg::Message& msg, std::span<const uint8_t> raw) {
    std::vector<std::string> mechs;
    if (!pg::ParseSaslMechanisms(msg.body, &mechs)) {
      FailNative(Outcome::kBackendError, Cause::kMalformed, "backend sent a malformed AuthenticationSASL message");
      return false;
    }
    if (context_.scram_mediation && verifier_) {
      protocol::scram::Verifier v;
      std::string why;
      const bool offers_scram = std::any_of(mechs.begin(), mechs.end(), [](const std::string& m) {
        return m == protocol::scram::kMechanism || m == protocol::scram::kMechanismPlus;
      });
      if (verifier_->kind == VerifierAnswer::Kind::kScram && offers_scram &&
          protocol::scram::ParseVerifier(verifier_->verifier, &v, &why)) {
        mediator_ = std::make_unique<ScramMediator>(std::move(v), facts_.user, client_tls_ ? client_end_point_
                                                                                          : std::vector<uint8_t>{},
                                                    backend_end_point_, mechs);
        verifier_.reset();
        driver_.SendToClient(mediator_->ClientOffer());
        return true;
      }
      // No mediation for this user: say why in the audit, go on as without scram.
      facts_.note = "SCRAM not mediated: " + (verifier_->kind == VerifierAnswer::Kind::kScram
                                                  ? (offers_scram ? "unreadable verifier (" + why + ")"
                                                                  : std::string("the backend offers no SCRAM-SHA-256"))
                                                  : verifier_->detail);
      verifier_.reset();
    }
    return ForwardSasl(msg, raw);
  }

  void MediateClient(ByteQueue& in) {
    while (!in.empty() && mediator_ && mediator_->wanted() == ScramMediator::Side::kClient && phase_ == Phase::kAuth) {
      pg::Message msg;
      pg::Result r = pg::DecodeMessage(in.data(), kMaxAuthMessage, &msg);
      if (r.need_more()) return;
      if (r.malformed()) {
        Fail(Outcome::kClientError, Cause::kMalformed, "malformed message during authentication: " + r.error,
             Error("08P01", "dbward: invalid message during authentication: " + r.error));
        return;
      }
      ScramMediator::Out out;
      ScramMediator::Step step = mediator_->OnClient(msg, &out);
      in.Consume(msg.wire_length);
      ApplyStep(step, out);
    }
  }

  void ApplyStep(ScramMediator::Step step, const ScramMediator::Out& out) {
    switch (step) {
      case ScramMediator::Step::kContinue:
      case ScramMediator::Step::kNeedVerifier:
        if (!out.to_client.empty()) driver_.SendToClient(out.to_client);
        if (!out.to_backend.empty()) driver_.SendToBackend(out.to_backend);
        driver_.ReadClient(mediator_->wanted() == ScramMediator::Side::kClient);
        driver_.ReadBackend(mediator_->wanted() == ScramMediator::Side::kBackend);
        return;
      case ScramMediator::Step::kLoggedIn:
        driver_.SendToClient(out.to_client);
        facts_.note = "SCRAM mediated: " + mediator_->Summary();
        mediator_.reset();
        LoggedIn();
        return;
      case ScramMediator::Step::kFailed: {
        if (mediator_->wrong_password() && context_.auth_failures != nullptr) {
          context_.auth_failures->Failed(context_.client_ip, NowMs());
        }
        Failure f = mediator_->failure();
        mediator_.reset();
        // Nothing the backend sent behind the failure (an AuthenticationOk
        // after a forged signature) may be read as if mediation had not been on.
        phase_ = Phase::kDone;
        driver_.Fail(f, out.to_client);
        return;
      }
    }
  }

  // AuthenticationOk reached the client.
  void LoggedIn() {
    facts_.logged_in = true;
    phase_ = Phase::kWatch;
    driver_.SetupComplete();
    driver_.ReadBackend(true);
    driver_.ReadClient(false);
  }

  // After login: ParameterStatus (application_name), whether from the
  // startup message or a later SET, up to the kWatchedReadies-th
  // ReadyForQuery; then the relay.
  void WatchBackend(ByteQueue& in) {
    size_t off = 0;
    while (off < in.size() && phase_ == Phase::kWatch) {
      pg::Message msg;
      pg::Result r = pg::DecodeMessage(in.data().subspan(off), 1 << 20, &msg);
      if (r.need_more() && in.size() - off > kMaxAuthMessage) {
        // A big row: the relay carries it, no need to hold it here.
        HandOff(in, off);
        return;
      }
      if (r.need_more()) break;
      if (r.malformed() || ++watched_ > kMaxWatchedMessages) {
        // Not worth judging here: the relay carries it as it is.
        HandOff(in, off);
        return;
      }
      std::string name, value;
      if (msg.type == 'S' && pg::ParseParameterStatus(msg.body, &name, &value) && name == "application_name") {
        facts_.application = value;
      }
      off += msg.wire_length;
      if (msg.type == 'Z') {
        if (++readies_ >= kWatchedReadies) {
          HandOff(in, off);
          return;
        }
        if (readies_ == 1) driver_.ReadClient(true);
      }
    }
    driver_.SendToClient(in.data().first(off));
    in.Consume(off);
  }

  void HandOff(ByteQueue& in, size_t off) {
    driver_.SendToClient(in.data().first(off));
    in.Consume(off);
    HandOffNow();
  }

  void HandOffNow() {
    phase_ = Phase::kDone;
    driver_.HandOffToRelay();
  }

  bool ForwardSasl(const pg::Message& msg, std::span<const uint8_t> raw) {
    std::vector<std::string> mechs;
    if (!pg::ParseSaslMechanisms(msg.body, &mechs)) {
      FailNative(Outcome::kBackendError, Cause::kMalformed, "backend sent a malformed AuthenticationSASL message");
      return false;
    }
    if (!strip_plus_) {
      driver_.SendToClient(raw);
      return true;
    }
    size_t before = mechs.size();
    std::erase_if(mechs, [](const std::string& m) { return pg::IsChannelBindingMechanism(m); });
    if (mechs.empty()) {
      FailNative(Outcome::kBackendError, Cause::kChannelBindingOnly,
                 "the backend offers only SCRAM with channel binding, which cannot pass through a TLS-terminating "
                 "proxy; allow SCRAM-SHA-256 without channel binding for this user");
      return false;
    }
    if (mechs.size() != before) {
      driver_.SendToClient(pg::EncodeAuthenticationSasl(mechs));
    } else {
      driver_.SendToClient(raw);
    }
    return true;
  }

  void ForwardError(const pg::Message& msg, std::span<const uint8_t> raw) {
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
        driver_.SendToClient(rewritten);
        text += " (client asked for channel binding through a TLS-terminating proxy)";
      } else {
        driver_.SendToClient(raw);
      }
    } else {
      driver_.SendToClient(raw);
    }
    bool auth = pg::IsAuthorizationFailure(f.sqlstate);
    Fail(auth ? Outcome::kAuthFailed : Outcome::kBackendError, auth ? Cause::kAuthFailed : Cause::kBackendError, text);
  }

  std::unique_ptr<BackendUpgrade> upgrade_;
  std::unique_ptr<ScramMediator> mediator_;
  std::optional<VerifierAnswer> verifier_;
  bool verifier_pending_ = false;
  bool refresh_pending_ = false;
  std::string database_;
  std::vector<uint8_t> backend_end_point_;
  int watched_ = 0;
  int readies_ = 0;           // ReadyForQuery messages since login
  Phase phase_ = Phase::kFirstMessage;
  bool client_tls_ = false;
  bool direct_ = false;
  bool strip_plus_ = true;
  std::vector<uint8_t> client_end_point_;
  std::vector<uint8_t> startup_;
  std::vector<uint8_t> cancel_;
};

}  // namespace

std::unique_ptr<Engine> NewPostgresEngine(Driver& driver, const EngineContext& context) {
  return std::make_unique<PostgresEngine>(driver, context);
}

}  // namespace dbward::proxy::engine

// protocol: tds (SQL Server).
//
// Client leg, decided by the client's PRELOGIN ENCRYPTION byte:
//   NOT_SUP      no TLS at all (if plaintext_clients allows; else answered REQ,
//                which every driver reports as "server requires encryption")
//   OFF          login-only: TLS inside PRELOGIN packets, LOGIN7 encrypted,
//                then plaintext again (or REQ with client_encryption: require)
//   ON / REQ     TLS inside PRELOGIN packets, then TLS for the whole session
//   TLS first    TDS 8.0 strict (ALPN tds/8.0), PRELOGIN inside TLS
// Backend leg (engine/upgrade.h): dbward's own PRELOGIN with ENCRYPTION=ON,
// ON or REQ required back (anything else fails closed), TLS inside PRELOGIN
// packets, validated; or TDS 8.0 with backend_tls.tds_strict. The server's
// PRELOGIN answer goes to the client with ENCRYPTION rewritten for the client
// leg. LOGIN7 and all that follows relay unchanged.
//
// A backend failure before login is reported the way SQL Server reports
// login failures: the client's handshake is completed with dbward's own
// PRELOGIN answer and LOGIN7 is answered with an ERROR token, so SSMS, sqlcmd,
// tsql and drivers print dbward's explanation.
#include <optional>

#include "protocol/preread.h"
#include "protocol/tds.h"
#include "proxy/engine/engines.h"
#include "proxy/engine/upgrade.h"

namespace dbward::proxy::engine {
namespace {

namespace tds = protocol::tds;

constexpr int32_t kLoginFailed = 18456;

class TdsEngine final : public Engine {
 public:
  TdsEngine(Driver& driver, const EngineContext& context) : Engine(driver, context) {}

  void Start() override { driver_.ReadClient(true); }

  void OnClientData(ByteQueue& in) override {
    if (phase_ == Phase::kFirst) {
      if (in.empty()) return;
      protocol::FirstBytes kind = protocol::ClassifyFirstBytes(in.data());
      if (kind == protocol::FirstBytes::kNeedMore) return;
      if (kind == protocol::FirstBytes::kTlsHandshake) {
        StartStrictClient();
        return;
      }
      phase_ = Phase::kClientPrelogin;
    }
    if (phase_ == Phase::kClientPrelogin) {
      HandleClientPrelogin(in);
    } else if (phase_ == Phase::kLoginOnlyProbe) {
      ProbeLoginOnly(in);
    } else if (phase_ == Phase::kLogin) {
      HandleLogin7(in);
    }
  }

  void OnClientTlsReady(const TlsFacts& /*facts*/) override {
    // TDS 8.0: PRELOGIN follows inside TLS. TDS 7.x: the handshake ran inside
    // PRELOGIN packets and LOGIN7 follows on TLS straight on the socket.
    phase_ = leg_ == Leg::kStrict ? Phase::kClientPrelogin : Phase::kLogin;
    driver_.ReadClient(true);
  }

  void OnBackendConnected(const std::string& address) override { Check(upgrade_->OnConnected(address)); }

  void OnBackendTlsReady(const TlsFacts& /*facts*/) override { Check(upgrade_->OnTlsReady()); }

  void OnBackendData(ByteQueue& in) override {
    if (phase_ == Phase::kBackend) Check(upgrade_->OnData(in));
  }

  bool OnBackendFailure(const Failure& failure) override {
    // A client that sent LOGIN7 first waits for its answer already: that is
    // where the failure goes (NativeError).
    if (prelogin_less_ || phase_ == Phase::kLogin || phase_ == Phase::kDone) return false;
    backend_failure_ = failure;
    if (answered_) return true;
    // Complete the client's handshake with our own PRELOGIN answer, so the
    // explanation can go out as the answer to LOGIN7.
    AnswerClient(tds::OwnServerPrelogin(reply_encryption_));
    return true;
  }

  std::vector<uint8_t> NativeError(const Failure& f) override {
    if (phase_ != Phase::kLogin && !prelogin_less_) return {};
    // After login-only TLS the answer to LOGIN7 travels in plaintext, as it
    // does from SQL Server.
    if (leg_ == Leg::kLoginOnly && phase_ == Phase::kLogin) driver_.EndClientTls();
    return LoginError(f.error);
  }

 private:
  enum class Phase { kFirst, kClientPrelogin, kBackend, kLoginOnlyProbe, kClientTls, kLogin, kDone };
  enum class Leg { kUnknown, kNone, kLoginOnly, kTls, kStrict };

  static std::vector<uint8_t> LoginError(const std::string& message) {
    return tds::EncodeMessage(tds::kTabularResult,
                              tds::EncodeLoginError(kLoginFailed, 1, 14, "dbward: " + message, "dbward"));
  }

  void Check(BackendUpgrade::State state) {
    switch (state) {
      case BackendUpgrade::State::kFailed: {
        const UpgradeFailure& f = upgrade_->failure();
        driver_.FailBackend({f.outcome, f.cause, f.error});
        return;
      }
      case BackendUpgrade::State::kDone:
        if (prelogin_less_) {
          SendLogin7(pending_login7_);
          std::fill(pending_login7_.begin(), pending_login7_.end(), 0);
          pending_login7_.clear();
        } else if (!answered_) {
          AnswerClient(upgrade_->answer());
        }
        return;
      default:
        return;
    }
  }

  void StartStrictClient() {
    if (!context_.client_tls) {
      Fail(Outcome::kClientError, Cause::kNoClientTls,
           "client uses TDS 8.0 strict encryption (TLS first) but this listener has no client_tls");
      return;
    }
    leg_ = Leg::kStrict;
    facts_.encryption = ClientEncryption::kTlsStrict;
    facts_.bypass.Clear();
    driver_.ReadClient(false);
    driver_.StartClientTls(ClientTlsProfile::kTdsStrict, TlsTransport::kStream);
  }

  void HandleClientPrelogin(ByteQueue& in) {
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in.data(), tds::kMaxPreLoginMessage, &m);
    if (r.need_more()) return;
    if (r.ok() && m.type == tds::kLogin7 && leg_ != Leg::kStrict) {
      AcceptLogin7First(in, m);
      return;
    }
    if (r.ok() && m.type != tds::kPrelogin) {
      r = tds::Result::Malformed("expected PRELOGIN, got packet type " + std::to_string(m.type));
    }
    tds::Prelogin p;
    if (r.ok()) r = tds::ParsePrelogin(m.payload, &p);
    if (!r.ok()) {
      // The client waits for a PRELOGIN answer; a tabular ERROR + DONE is the
      // closest thing to an answer it can display.
      Fail(Outcome::kClientError, Cause::kMalformed, "bad PRELOGIN: " + r.error, LoginError("bad PRELOGIN: " + r.error));
      return;
    }
    if (in.size() > m.consumed) {
      Fail(Outcome::kClientError, Cause::kMalformed, "client sent data behind PRELOGIN before the answer");
      return;
    }
    in.Consume(m.consumed);
    client_encryption_ = p.encryption();
    if (leg_ != Leg::kStrict) DecideClientLeg(client_encryption_);
    driver_.ReadClient(false);
    phase_ = Phase::kBackend;
    upgrade_ = std::make_unique<TdsUpgrade>(driver_, std::move(p), listener().backend_tls.tds_strict);
    driver_.ConnectBackend();
  }

  // Clients older than TDS 7.1's PRELOGIN, and jTDS with its default
  // ssl=off, send LOGIN7 first: nothing was negotiated, so the client leg is
  // plaintext. dbward owns the backend leg all the same: its own PRELOGIN,
  // verified TLS, then this LOGIN7.
  void AcceptLogin7First(ByteQueue& in, const tds::Message& m) {
    leg_ = Leg::kNone;
    prelogin_less_ = true;
    facts_.encryption = ClientEncryption::kNone;
    facts_.bypass = {BypassReason::kPlaintext};
    facts_.note = "LOGIN7 without PRELOGIN: the client negotiated nothing; dbward made its own PRELOGIN and TLS to "
                  "the backend";
    tds::Login7 login;
    tds::Result r = tds::ParseLogin7(m.payload, &login);
    if (!r.ok()) {
      Fail(Outcome::kClientError, Cause::kMalformed, "bad LOGIN7: " + r.error, LoginError("bad LOGIN7: " + r.error));
      return;
    }
    RecordLogin(login);
    if (!listener().plaintext_clients) {
      Fail(Outcome::kRefused, Cause::kPlaintextDenied,
           "client sent LOGIN7 without PRELOGIN, so without encryption (plaintext_clients: deny)",
           LoginError("listener " + listener().name +
                      " refuses unencrypted logins; enable encryption in the driver (jTDS: ssl=require)"));
      return;
    }
    auto raw = in.data().first(m.consumed);
    pending_login7_.assign(raw.begin(), raw.end());
    in.Consume(m.consumed);
    driver_.ReadClient(false);
    phase_ = Phase::kBackend;
    upgrade_ = std::make_unique<TdsUpgrade>(driver_, tds::DefaultClientPrelogin(), listener().backend_tls.tds_strict);
    driver_.ConnectBackend();
  }

  void RecordLogin(const tds::Login7& login) {
    facts_.user = login.integrated_security && login.user_name.empty() ? "(integrated)" : login.user_name;
    facts_.database = login.database;
    facts_.application = login.app_name;
    facts_.client_host = login.host_name;
    facts_.client_library = login.library;
    facts_.protocol_version = tds::TdsVersionName(login.tds_version);
  }

  void DecideClientLeg(int enc) {
    const ListenerConfig& l = listener();
    bool have_tls = context_.client_tls;
    int base = enc < 0 ? tds::kEncryptOff : tds::EncryptionBase(enc);
    switch (base) {
      case tds::kEncryptNotSup:
        if (!l.plaintext_clients || l.require_client_encryption) {
          // Answering REQ makes every driver say "server requires encryption".
          reply_encryption_ = tds::kEncryptReq;
          refuse_plaintext_ = true;
        } else {
          reply_encryption_ = tds::kEncryptNotSup;
        }
        leg_ = Leg::kNone;
        break;
      case tds::kEncryptOff:
        if (have_tls && l.require_client_encryption) {
          reply_encryption_ = tds::kEncryptReq;
          leg_ = Leg::kTls;
        } else if (have_tls) {
          reply_encryption_ = tds::kEncryptOff;
          leg_ = Leg::kLoginOnly;
        } else {
          reply_encryption_ = tds::kEncryptNotSup;
          leg_ = Leg::kNone;
          refuse_plaintext_ = !l.plaintext_clients;
        }
        break;
      default:  // ON, REQ and unknown values that ask for encryption
        if (have_tls) {
          reply_encryption_ = tds::kEncryptOn;
          leg_ = Leg::kTls;
        } else {
          // Without a certificate for clients, the client hears NOT_SUP and
          // gives up with its own "encryption not supported" error.
          reply_encryption_ = tds::kEncryptNotSup;
          leg_ = Leg::kNone;
          refuse_plaintext_ = true;
        }
        break;
    }
    switch (leg_) {
      case Leg::kNone:
        facts_.encryption = ClientEncryption::kNone;
        facts_.bypass = {BypassReason::kPlaintext};
        break;
      case Leg::kLoginOnly:
        facts_.encryption = ClientEncryption::kLoginOnly;
        facts_.bypass = {BypassReason::kLoginOnly};
        break;
      default:
        facts_.encryption = ClientEncryption::kTls;
        facts_.bypass.Clear();
        break;
    }
  }

  void AnswerClient(tds::Prelogin resp) {
    answered_ = true;
    if (leg_ != Leg::kStrict) {
      resp.SetEncryption(reply_encryption_);
    } else if (client_encryption_ >= 0) {
      // TDS 8.0: the byte negotiates nothing; echo what the client sent.
      resp.SetEncryption(static_cast<uint8_t>(client_encryption_));
    }
    driver_.SendToClient(tds::EncodeMessage(tds::kTabularResult, tds::EncodePrelogin(resp)));
    if (refuse_plaintext_) {
      Fail(Outcome::kRefused, Cause::kPlaintextDenied,
           "client asked for no encryption (ENCRYPTION=" + tds::EncryptionName(client_encryption_) + ") and listener " +
               listener().name + " refuses plaintext clients; dbward answered " +
               tds::EncryptionName(reply_encryption_));
      return;
    }
    if (leg_ == Leg::kTls) {
      phase_ = Phase::kClientTls;
      driver_.StartClientTls(ClientTlsProfile::kStandard, TlsTransport::kTdsPrelogin);
      return;
    }
    if (leg_ == Leg::kLoginOnly) {
      // OFF/OFF means login-only TLS, but some drivers (tedious with
      // encrypt: false) skip it and send LOGIN7 in clear, which SQL Server
      // accepts too. The next packet's type tells which.
      phase_ = Phase::kLoginOnlyProbe;
      driver_.ReadClient(true);
      return;
    }
    phase_ = Phase::kLogin;
    driver_.ReadClient(true);
  }

  void ProbeLoginOnly(ByteQueue& in) {
    int type = tds::PeekPacketType(in.data());
    if (type < 0) return;
    if (type == tds::kPrelogin) {
      // The TLS handshake, inside PRELOGIN packets: the queued bytes start it.
      driver_.ReadClient(false);
      phase_ = Phase::kClientTls;
      driver_.StartClientTls(ClientTlsProfile::kStandard, TlsTransport::kTdsPrelogin);
      return;
    }
    leg_ = Leg::kNone;
    facts_.encryption = ClientEncryption::kNone;
    facts_.bypass = {BypassReason::kPlaintext};
    facts_.note = "client answered ENCRYPT_OFF and sent LOGIN7 without login-only TLS";
    phase_ = Phase::kLogin;
    if (!listener().plaintext_clients) {
      Fail(Outcome::kRefused, Cause::kPlaintextDenied, "client sent LOGIN7 without encryption (plaintext_clients: deny)",
           LoginError("listener " + listener().name +
                      " refuses unencrypted logins; set Encrypt=True (or Encrypt=Mandatory)"));
      return;
    }
    HandleLogin7(in);
  }

  void HandleLogin7(ByteQueue& in) {
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in.data(), tds::kMaxPreLoginMessage, &m);
    if (r.need_more()) return;
    tds::Login7 login;
    if (r.ok() && m.type != tds::kLogin7) {
      r = tds::Result::Malformed("expected LOGIN7, got packet type " + std::to_string(m.type));
    }
    if (r.ok()) r = tds::ParseLogin7(m.payload, &login);
    if (!r.ok()) {
      FailLogin({Outcome::kClientError, Cause::kMalformed, "bad LOGIN7: " + r.error});
      return;
    }
    RecordLogin(login);
    if (backend_failure_) {
      // The failure was recorded when it happened; now the client can read it.
      FailLogin(*backend_failure_);
      return;
    }
    if (leg_ == Leg::kLoginOnly) {
      // Login-only encryption: the client's TLS ends with LOGIN7 and the
      // server's answer already travels in plaintext.
      driver_.EndClientTls();
    }
    // LOGIN7 (and anything after it) goes to the backend as it came.
    std::vector<uint8_t> login7 = in.TakeAll();
    SendLogin7(login7);
    std::fill(login7.begin(), login7.end(), 0);
  }

  // The answer to LOGIN7 is an error: in plaintext after login-only TLS.
  void FailLogin(const Failure& f) {
    if (leg_ == Leg::kLoginOnly) driver_.EndClientTls();
    driver_.Fail(f, LoginError(f.error));
  }

  void SendLogin7(std::span<const uint8_t> login7) {
    driver_.SendToBackend(login7);
    driver_.ReadClient(false);
    phase_ = Phase::kDone;
    driver_.HandOffToRelay();
  }

  std::unique_ptr<TdsUpgrade> upgrade_;
  Phase phase_ = Phase::kFirst;
  Leg leg_ = Leg::kUnknown;
  int client_encryption_ = -1;
  uint8_t reply_encryption_ = tds::kEncryptNotSup;
  bool refuse_plaintext_ = false;
  bool answered_ = false;
  bool prelogin_less_ = false;  // the client's first message was LOGIN7
  std::vector<uint8_t> pending_login7_;
  std::optional<Failure> backend_failure_;
};

}  // namespace

std::unique_ptr<Engine> NewTdsEngine(Driver& driver, const EngineContext& context) {
  return std::make_unique<TdsEngine>(driver, context);
}

}  // namespace dbward::proxy::engine

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
// leg. Clients that send LOGIN7 first (jTDS ssl=off, TDS 7.0) get a
// plaintext client leg; dbward still makes its own PRELOGIN and TLS to the
// backend.
//
// LOGIN7 goes to the backend unchanged and dbward reads the answer, message
// by message, until the login is over (protocol/tds_tokens.h):
//   LOGINACK     relayed; the relay takes over
//   SSPI token   relayed; the client's next SSPI message (0x11) goes back
//                (NTLM/Kerberos rounds), likewise FEDAUTHINFO and the Azure AD
//                token message (0x08)
//   routing      (ENVCHANGE 20/21) held back: dbward checks the routed name
//                against routing.allow, opens a verified TLS leg to it,
//                replays PRELOGIN and LOGIN7 (ServerName: the routed name)
//                and relays that server's answer instead; the client never
//                sees the redirect and stays on dbward
//   refusal      relayed as the server sent it, recorded as auth_failed; a
//                Windows login refused with 18452 gets dbward's explanation
//                of Extended Protection appended
// The client's LOGIN7 is kept (for a replay) only until the login is over.
//
// A backend failure before login is reported the way SQL Server reports
// login failures: the client's handshake is completed with dbward's own
// PRELOGIN answer and LOGIN7 is answered with an ERROR token, so SSMS, sqlcmd,
// tsql and drivers print dbward's explanation.
#include <openssl/mem.h>

#include <optional>

#include <fmt/format.h>

#include "protocol/ntlm.h"
#include "protocol/preread.h"
#include "protocol/tds.h"
#include "protocol/tds_tokens.h"
#include "proxy/common/address.h"
#include "proxy/common/text.h"
#include "proxy/engine/engines.h"
#include "proxy/engine/upgrade.h"

namespace dbward::proxy::engine {
namespace {

namespace tds = protocol::tds;

constexpr int32_t kLoginFailed = 18456;
// Azure SQL redirects once (gateway to worker), an availability group once
// (listener to replica); more is a loop.
constexpr int kMaxRoutingHops = 2;
// A login response is a few hundred bytes; with session recovery data a
// few KiB.
constexpr size_t kMaxLoginResponse = 64 * 1024;

class TdsEngine final : public Engine {
 public:
  TdsEngine(Driver& driver, const EngineContext& context) : Engine(driver, context) {}
  ~TdsEngine() override {
    // A session that ends mid-login leaves no copy of LOGIN7 (and its
    // password) behind.
    WipeLogin7();
    OPENSSL_cleanse(pending_login7_.data(), pending_login7_.size());
    OPENSSL_cleanse(routed_login7_.data(), routed_login7_.size());
  }

  void Start() override { driver_.ReadClient(true); }

  // The client speaks first. Its handshake is completed with dbward's own
  // PRELOGIN answer and LOGIN7 is answered with the refusal, as SQL Server
  // reports its own connection limit (17809) after login, so drivers print it.
  void StartRefused(const Failure& f) override {
    refusal_ = f;
    driver_.ReadClient(true);
  }

  void OnClientData(ByteQueue& in) override {
    if (phase_ == Phase::kFirst) {
      if (in.empty()) return;
      facts_.declared = true;
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
    } else if (phase_ == Phase::kLoginClientRound) {
      HandleClientRound(in);
    }
  }

  void OnClientTlsReady(const TlsFacts& /*facts*/) override {
    // TDS 8.0: PRELOGIN follows inside TLS. TDS 7.x: the handshake ran inside
    // PRELOGIN packets and LOGIN7 follows on TLS straight on the socket.
    phase_ = leg_ == Leg::kStrict ? Phase::kClientPrelogin : Phase::kLogin;
    driver_.ReadClient(true);
  }

  void OnBackendConnected(const std::string& address) override {
    backend_address_ = address;
    Check(upgrade_->OnConnected(address));
  }

  void OnBackendTlsReady(const TlsFacts& /*facts*/) override { Check(upgrade_->OnTlsReady()); }

  void OnBackendData(ByteQueue& in) override {
    if (phase_ == Phase::kBackend) {
      Check(upgrade_->OnData(in));
    } else if (phase_ == Phase::kLoginResponse) {
      HandleLoginResponse(in);
    }
  }

  bool OnBackendFailure(const Failure& failure) override {
    // A client that sent LOGIN7 first waits for its answer already: that is
    // where the failure goes (NativeError).
    if (prelogin_less_ || login_sent_ || phase_ == Phase::kLogin || phase_ == Phase::kDone) return false;
    backend_failure_ = failure;
    if (answered_) return true;
    // Complete the client's handshake with our own PRELOGIN answer, so the
    // explanation can go out as the answer to LOGIN7.
    AnswerClient(tds::OwnServerPrelogin(reply_encryption_));
    return true;
  }

  std::vector<uint8_t> NativeError(const Failure& f) override {
    if (phase_ == Phase::kDone) return {};
    if (phase_ != Phase::kLogin && !prelogin_less_ && !login_sent_) return {};
    // After login-only TLS the answer to LOGIN7 travels in plaintext, as it
    // does from SQL Server.
    if (leg_ == Leg::kLoginOnly && phase_ == Phase::kLogin) driver_.EndClientTls();
    return LoginError(f.error);
  }

 private:
  enum class Phase {
    kFirst,
    kClientPrelogin,
    kBackend,
    kLoginOnlyProbe,
    kClientTls,
    kLogin,
    kLoginResponse,     // LOGIN7 sent; reading the server's answer
    kLoginClientRound,  // the client's next SSPI or FEDAUTH message is due
    kDone,
  };
  enum class Leg { kUnknown, kNone, kLoginOnly, kTls, kStrict };

  // In the token layout of the client's TDS version (jTDS speaks 7.1).
  std::vector<uint8_t> LoginError(const std::string& message) const {
    return tds::EncodeMessage(tds::kTabularResult,
                              tds::EncodeLoginError(kLoginFailed, 1, 14, "dbward: " + message, "dbward", login_version_));
  }

  void Check(BackendUpgrade::State state) {
    switch (state) {
      case BackendUpgrade::State::kFailed: {
        const UpgradeFailure& f = upgrade_->failure();
        driver_.FailBackend({f.outcome, f.cause, f.error});
        return;
      }
      case BackendUpgrade::State::kDone:
        if (rerouting_) {
          // The routed server's PRELOGIN answer is not the client's business.
          rerouting_ = false;
          SendLogin7(routed_login7_);
          OPENSSL_cleanse(routed_login7_.data(), routed_login7_.size());
          routed_login7_.clear();
        } else if (prelogin_less_ && !login_sent_) {
          SendLogin7(pending_login7_);
          OPENSSL_cleanse(pending_login7_.data(), pending_login7_.size());
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
    facts_.tds_prelogin = true;
    client_prelogin_ = p;
    client_encryption_ = p.encryption();
    if (leg_ != Leg::kStrict) DecideClientLeg(client_encryption_);
    driver_.ReadClient(false);
    if (refusal_) {
      backend_failure_ = refusal_;
      AnswerClient(tds::OwnServerPrelogin(reply_encryption_));
      return;
    }
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
    facts_.tds_prelogin = false;
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
    KeepLogin7(m.payload);
    if (refusal_) {
      Fail(refusal_->outcome, refusal_->cause, refusal_->error, LoginError(refusal_->error));
      return;
    }
    if (Driver::Admission a = driver_.Admit(); a.denied) {
      const std::string why = a.error + PolicyHint(a.required);
      Fail(Outcome::kRefused, a.cause, why, LoginError(why));
      return;
    }
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

  static std::string PolicyHint(std::optional<ProtectionLevel> required) {
    if (!required) return "";
    switch (*required) {
      case ProtectionLevel::kValidated:
        return "; set Encrypt=True;TrustServerCertificate=False (jTDS: ssl=authenticate; FreeTDS: encryption = "
               "require with a CA file)";
      case ProtectionLevel::kTls:
        return "; set Encrypt=True (jTDS: ssl=require; FreeTDS: encryption = require)";
      default:
        return "; enable encryption in the driver (FreeTDS: encryption = request or require; jTDS: ssl=request)";
    }
  }

  // The LOGIN7 payload, for a replay to a routed server until login ends.
  void KeepLogin7(std::span<const uint8_t> payload) { login7_payload_.assign(payload.begin(), payload.end()); }

  void WipeLogin7() {
    OPENSSL_cleanse(login7_payload_.data(), login7_payload_.size());
    login7_payload_.clear();
    login7_payload_.shrink_to_fit();
  }

  void RecordLogin(const tds::Login7& login) {
    login_version_ = login.tds_version;
    integrated_ = login.integrated_security;
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
    if (Driver::Admission a = driver_.Admit(); a.denied) {
      FailLogin({Outcome::kRefused, a.cause, a.error + PolicyHint(a.required)});
      return;
    }
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
    KeepLogin7(m.payload);
    // LOGIN7 goes to the backend as it came.
    std::vector<uint8_t> login7(in.data().begin(), in.data().begin() + static_cast<ptrdiff_t>(m.consumed));
    in.Consume(m.consumed);
    SendLogin7(login7);
    OPENSSL_cleanse(login7.data(), login7.size());
  }

  // The answer to LOGIN7 is an error: in plaintext after login-only TLS.
  void FailLogin(const Failure& f) {
    if (leg_ == Leg::kLoginOnly) driver_.EndClientTls();
    driver_.Fail(f, LoginError(f.error));
  }

  void SendLogin7(std::span<const uint8_t> login7) {
    driver_.SendToBackend(login7);
    login_sent_ = true;
    phase_ = Phase::kLoginResponse;
    driver_.ReadClient(false);
    driver_.ReadBackend(true);
  }

  // One message of the server's answer to LOGIN7.
  void HandleLoginResponse(ByteQueue& in) {
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in.data(), kMaxLoginResponse, &m);
    if (r.need_more()) return;
    if (r.ok() && m.type != tds::kTabularResult) {
      r = tds::Result::Malformed("packet type " + std::to_string(m.type) + " instead of a tabular result");
    }
    tds::LoginResponse resp;
    if (r.ok()) r = tds::ParseLoginResponse(m.payload, login_version_, &resp);
    if (!r.ok()) {
      FailNative(Outcome::kBackendError, Cause::kMalformed,
                 "backend " + backend_address_ + " answered LOGIN7 with something dbward cannot read: " + r.error);
      return;
    }
    std::vector<uint8_t> wire(in.data().begin(), in.data().begin() + static_cast<ptrdiff_t>(m.consumed));
    in.Consume(m.consumed);
    if (resp.routing && resp.login_ack) {
      Route(*resp.routing);
      return;
    }
    if (!resp.complete_walk) {
      // A token dbward does not know: the client's driver will; dbward
      // stops interpreting and relays.
      facts_.logged_in = resp.login_ack;
      LoginOver(wire);
      return;
    }
    if (resp.login_ack) {
      facts_.logged_in = true;
      LoginOver(wire);
      return;
    }
    if ((resp.sspi || resp.fedauth_info) && !resp.done) {
      // Another round: the client answers with an SSPI or FEDAUTH token message.
      driver_.SendToClient(wire);
      client_round_type_ = resp.sspi ? tds::kSspiMessage : tds::kFedAuthToken;
      phase_ = Phase::kLoginClientRound;
      driver_.ReadBackend(false);
      driver_.ReadClient(true);
      return;
    }
    if (resp.done) {
      LoginRefused(resp, m.payload, wire);
      return;
    }
    // A message that ends nothing (informational tokens): pass it on and
    // wait for the next.
    driver_.SendToClient(wire);
  }

  void HandleClientRound(ByteQueue& in) {
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in.data(), tds::kMaxPreLoginMessage, &m);
    if (r.need_more()) return;
    if (r.ok() && m.type != client_round_type_) {
      r = tds::Result::Malformed("packet type " + std::to_string(m.type) + " instead of " +
                                 (client_round_type_ == tds::kSspiMessage ? "an SSPI message (0x11)"
                                                                          : "a FEDAUTH token message (0x08)"));
    }
    if (!r.ok()) {
      Fail(Outcome::kClientError, Cause::kMalformed, "bad answer to the server's authentication challenge: " + r.error);
      return;
    }
    if (client_round_type_ == tds::kSspiMessage) {
      // NTLM names its user in the clear in AUTHENTICATE: the audit says who.
      std::string user;
      if (protocol::ntlm::AuthenticateUser(m.payload, &user)) facts_.user = user;
    }
    driver_.SendToBackend(in.data().first(m.consumed));
    in.Consume(m.consumed);
    phase_ = Phase::kLoginResponse;
    driver_.ReadClient(false);
    driver_.ReadBackend(true);
  }

  // The login is over (accepted, or past what dbward interprets): the
  // answer goes to the client and the relay takes over.
  void LoginOver(std::span<const uint8_t> wire) {
    WipeLogin7();
    driver_.SendToClient(wire);
    phase_ = Phase::kDone;
    driver_.ReadBackend(false);
    driver_.HandOffToRelay();
  }

  void LoginRefused(const tds::LoginResponse& resp, std::span<const uint8_t> payload, std::span<const uint8_t> wire) {
    WipeLogin7();
    const tds::ServerMessage* e = resp.FirstError();
    Failure f{Outcome::kAuthFailed, Cause::kAuthFailed,
              e == nullptr ? "backend " + backend_address_ + " refused the login without saying why"
                           : fmt::format("backend {} refused the login: {} (error {}, state {})", backend_address_,
                                         e->text, e->number, e->state)};
    if (e == nullptr || e->number != tds::kErrorUntrustedDomain || !integrated_) {
      driver_.Fail(f, std::vector<uint8_t>(wire.begin(), wire.end()));
      return;
    }
    // A Windows login refused as "untrusted domain": with Extended
    // Protection the client bound its login to the TLS channel it saw,
    // which is dbward's, so the server cannot match it.
    const std::string hint =
        "dbward: this Windows (SSPI) login went through dbward's TLS; if the server enforces Extended Protection, "
        "the client's channel binding names dbward's certificate, not the server's, and the server refuses it. "
        "Fix: set Extended Protection to Allowed (or Off) for this server, or give dbward the server's own "
        "certificate and key as client_tls so the binding matches.";
    f.error += "; " + hint;
    tds::ServerMessage explained = *e;
    explained.text = e->text + " " + hint;
    std::vector<uint8_t> token = tds::EncodeMessageToken(explained, resp.tds_version ? resp.tds_version : login_version_);
    std::vector<uint8_t> out(payload.begin(), payload.begin() + static_cast<ptrdiff_t>(e->offset));
    out.insert(out.end(), token.begin(), token.end());
    out.insert(out.end(), payload.begin() + static_cast<ptrdiff_t>(e->offset + e->size), payload.end());
    driver_.Fail(f, tds::EncodeMessage(tds::kTabularResult, out));
  }

  // ENVCHANGE routing: dbward reconnects itself and replays the login.
  void Route(const tds::Routing& r) {
    const std::string from = backend_address_;
    std::string host = r.server.substr(0, r.server.find('\\'));
    std::string target = JoinHostPort(host, r.port);
    facts_.routed_to = target;
    if (++hops_ > kMaxRoutingHops) {
      FailNative(Outcome::kBackendError, Cause::kRoutingDenied,
                 fmt::format("backend {} routed the login again, to {}; dbward follows at most {} redirects", from,
                             target, kMaxRoutingHops));
      return;
    }
    // A login whose credentials were made for this server cannot be replayed
    // to another: fail closed, saying so, rather than let the routed server
    // challenge a client that already answered.
    if (integrated_) {
      FailNative(Outcome::kBackendError, Cause::kRoutingDenied,
                 fmt::format("backend {} routed this Windows (SSPI) login to {}, but a Windows login is made with one "
                             "server (its NTLM challenge, or a Kerberos ticket for its SPN) and cannot be carried to "
                             "another, so dbward does not replay it; connect to {} through a dbward listener of its "
                             "own, or use SQL or Azure AD access-token authentication where the login is routed",
                             from, target, host));
      return;
    }
    if (client_round_type_ == tds::kFedAuthToken) {
      FailNative(Outcome::kBackendError, Cause::kRoutingDenied,
                 fmt::format("backend {} routed this Azure AD login to {} after asking the client for a token "
                             "(FEDAUTHINFO), and dbward does not replay a token exchange to another server; pass the "
                             "token in the login (access-token authentication), or connect to {} through a dbward "
                             "listener of its own",
                             from, target, host));
      return;
    }
    const RoutingConfig& cfg = listener().routing;
    if (cfg.allow) {
      bool allowed = false;
      for (const std::string& pattern : *cfg.allow) allowed = allowed || HostMatchesPattern(pattern, host);
      if (!allowed) {
        FailNative(Outcome::kBackendError, Cause::kRoutingDenied,
                   fmt::format("backend {} routed the login to {}, which routing.allow does not list ({}); dbward "
                               "follows routing only to names it was told to trust: add {} (or a pattern such as "
                               "*.{}) to routing.allow of listener {}",
                               from, target, cfg.allow->empty() ? "empty: routing is refused" : Join(*cfg.allow, ", "),
                               host, host.substr(host.find('.') == std::string::npos ? 0 : host.find('.') + 1),
                               listener().name));
        return;
      }
    }
    std::vector<uint8_t> payload;
    const std::string* database = r.enhanced && !r.database.empty() ? &r.database : nullptr;
    tds::Result rr = tds::RewriteLogin7ServerName(login7_payload_, r.server, &payload, database);
    if (!rr.ok()) {
      FailNative(Outcome::kBackendError, Cause::kRoutingDenied,
                 "backend " + from + " routed the login to " + target + ", but dbward cannot replay LOGIN7 there: " +
                     rr.error);
      return;
    }
    routed_login7_ = tds::EncodeMessage(tds::kLogin7, payload);
    OPENSSL_cleanse(payload.data(), payload.size());
    rerouting_ = true;
    phase_ = Phase::kBackend;
    driver_.ReadBackend(false);
    upgrade_ = std::make_unique<TdsUpgrade>(driver_, client_prelogin_, listener().backend_tls.tds_strict);
    driver_.RedirectBackend({host, r.port, host});
  }

  std::unique_ptr<TdsUpgrade> upgrade_;
  Phase phase_ = Phase::kFirst;
  Leg leg_ = Leg::kUnknown;
  int client_encryption_ = -1;
  uint8_t reply_encryption_ = tds::kEncryptNotSup;
  bool refuse_plaintext_ = false;
  bool answered_ = false;
  bool prelogin_less_ = false;  // the client's first message was LOGIN7
  bool login_sent_ = false;     // LOGIN7 went to the backend: the client waits for its answer
  bool rerouting_ = false;      // a new backend leg for a routed login is being set up
  bool integrated_ = false;     // Windows (SSPI) login
  int hops_ = 0;
  uint8_t client_round_type_ = 0;
  uint32_t login_version_ = 0x74000004;  // the client's TDS version, from LOGIN7
  std::string backend_address_;
  tds::Prelogin client_prelogin_ = tds::DefaultClientPrelogin();
  std::vector<uint8_t> pending_login7_;  // LOGIN7-first: the message, until TLS to the backend is up
  std::vector<uint8_t> login7_payload_;  // until the login is over, for a routed replay
  std::vector<uint8_t> routed_login7_;
  std::optional<Failure> backend_failure_;
  std::optional<Failure> refusal_;
};

}  // namespace

std::unique_ptr<Engine> NewTdsEngine(Driver& driver, const EngineContext& context) {
  return std::make_unique<TdsEngine>(driver, context);
}

}  // namespace dbward::proxy::engine

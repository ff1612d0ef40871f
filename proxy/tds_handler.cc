// protocol: tds (SQL Server).
//
// Client leg, decided by the client's PRELOGIN ENCRYPTION byte:
//   NOT_SUP      no TLS at all (if plaintext_clients allows; else answered REQ,
//                which every driver reports as "server requires encryption")
//   OFF          login-only: TLS inside PRELOGIN packets, LOGIN7 encrypted,
//                then plaintext again (or REQ with client_encryption: require)
//   ON / REQ     TLS inside PRELOGIN packets, then TLS for the whole session
//   TLS first    TDS 8.0 strict (ALPN tds/8.0), PRELOGIN inside TLS
// Backend leg: dbward's own PRELOGIN with ENCRYPTION=ON, ON or REQ required
// back (anything else fails closed), TLS inside PRELOGIN packets, validated;
// or TDS 8.0 with backend_tls.tds_strict. The server's PRELOGIN answer goes to
// the client with ENCRYPTION rewritten for the client leg. LOGIN7 and all that
// follows relay unchanged.
//
// A backend failure before login is reported the way SQL Server reports
// login failures: the client's handshake is completed with dbward's own
// PRELOGIN answer and LOGIN7 is answered with an ERROR token, so SSMS, sqlcmd,
// tsql and drivers print dbward's explanation.
#include "proxy/tds_handler.h"

#include "protocol/preread.h"
#include "protocol/tds.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/tds_framing.h"

namespace dbward::proxy {
namespace {

namespace tds = protocol::tds;

constexpr int32_t kLoginFailed = 18456;

class TdsHandler final : public ProtocolHandler {
 public:
  void OnStart(Session& s) override {
    client_framing_ = std::make_unique<PreloginFramingIo>(&s.client_leg());
    backend_framing_ = std::make_unique<PreloginFramingIo>(&s.backend_leg());
    s.SetClientReading(true);
  }

  void OnClientData(Session& s) override {
    std::vector<uint8_t>& in = s.client_in();
    if (phase_ == Phase::kFirst) {
      if (in.empty()) return;
      protocol::FirstBytes kind = protocol::ClassifyFirstBytes(in);
      if (kind == protocol::FirstBytes::kNeedMore) return;
      if (kind == protocol::FirstBytes::kTlsHandshake) {
        StartStrictClient(s);
        return;
      }
      phase_ = Phase::kClientPrelogin;
    }
    if (phase_ == Phase::kClientPrelogin) {
      HandleClientPrelogin(s);
    } else if (phase_ == Phase::kLoginOnlyProbe) {
      ProbeLoginOnly(s);
    } else if (phase_ == Phase::kLogin) {
      HandleLogin7(s);
    }
  }

  void OnClientTlsReady(Session& s) override {
    if (leg_ == Leg::kStrict) {
      phase_ = Phase::kClientPrelogin;
      s.SetClientReading(true);
      return;
    }
    // TDS 7.x: the handshake ran inside PRELOGIN packets; from now on TLS
    // records go straight on the socket.
    if (!client_framing_->Idle()) {
      s.FailWithMessage("client_error", "client sent data inside PRELOGIN after the TLS handshake", "malformed", {});
      return;
    }
    s.client_leg().tls()->set_io(&s.client_leg());
    phase_ = Phase::kLogin;
    s.SetClientReading(true);
  }

  void OnBackendConnected(Session& s) override {
    if (s.listener().config.backend_tls.tds_strict) {
      s.StartBackendTls();
      return;
    }
    SendBackendPrelogin(s);
  }

  void OnBackendTlsReady(Session& s) override {
    if (s.listener().config.backend_tls.tds_strict) {
      SendBackendPrelogin(s);  // TDS 8.0: PRELOGIN inside TLS
      return;
    }
    if (!backend_framing_->Idle()) {
      s.BackendFailed("backend_error", "backend sent data inside PRELOGIN after the TLS handshake", "malformed");
      return;
    }
    s.backend_leg().tls()->set_io(&s.backend_leg());
    AnswerClient(s);
  }

  void OnBackendData(Session& s) override {
    if (phase_ != Phase::kBackendPrelogin) return;
    std::vector<uint8_t>& in = s.backend_in();
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in, tds::kMaxPreLoginMessage, &m);
    if (r.status == tds::Status::kNeedMore) return;
    tds::Prelogin resp;
    if (r.status == tds::Status::kOk && m.type == tds::kTabularResult) r = tds::ParsePrelogin(m.payload, &resp);
    if (r.status != tds::Status::kOk || m.type != tds::kTabularResult) {
      s.BackendFailed("backend_error",
                      "backend " + s.backend_addr() + " did not answer PRELOGIN like SQL Server" +
                          (r.error.empty() ? std::string() : ": " + r.error),
                      "not_tds");
      return;
    }
    if (in.size() > m.consumed) {
      s.BackendFailed("backend_error", "backend sent data behind its PRELOGIN answer", "malformed");
      return;
    }
    in.clear();
    s.SetBackendReading(false);
    backend_prelogin_ = resp;
    backend_version_ = resp.Version();
    if (s.listener().config.backend_tls.tds_strict) {
      AnswerClient(s);
      return;
    }
    int enc = resp.encryption();
    int base = enc < 0 ? tds::kEncryptNotSup : (enc & 0x7f);
    if (base != tds::kEncryptOn && base != tds::kEncryptReq) {
      s.BackendFailed("backend_tls_refused",
                      "backend " + s.backend_addr() + " (SQL Server " + backend_version_ + ") answered ENCRYPTION=" +
                          EncryptionName(enc) + " to ENCRYPTION=ON: it has no certificate configured, so it "
                          "cannot do TLS; dbward never falls back to plaintext: install a certificate on the "
                          "server (SQL Server Configuration Manager, Force Encryption optional)",
                      "backend_no_tls");
      return;
    }
    phase_ = Phase::kBackendTls;
    s.StartBackendTls(backend_framing_.get());
  }

  bool OnBackendFailure(Session& s, const std::string& error) override {
    if (phase_ >= Phase::kLogin && phase_ != Phase::kBackend && phase_ != Phase::kBackendPrelogin &&
        phase_ != Phase::kBackendTls) {
      return false;
    }
    backend_error_ = error;
    if (answered_) return true;
    // Complete the client's handshake with our own PRELOGIN answer, so the
    // explanation can go out as the answer to LOGIN7.
    tds::Prelogin own;
    own.options.push_back({tds::kOptVersion, {16, 0, 0x03, 0xe8, 0, 0}});
    own.options.push_back({tds::kOptEncryption, {reply_encryption_}});
    own.options.push_back({tds::kOptInstOpt, {0}});
    own.options.push_back({tds::kOptThreadId, {}});
    own.options.push_back({tds::kOptMars, {0}});
    backend_prelogin_ = own;
    AnswerClient(s);
    return true;
  }

  std::vector<uint8_t> ErrorForClient(const std::string& message, const std::string& /*cause*/) override {
    if (phase_ != Phase::kLogin) return {};
    return LoginError(message);
  }

 private:
  enum class Phase {
    kFirst,
    kClientPrelogin,
    kBackend,
    kBackendPrelogin,
    kBackendTls,
    kLoginOnlyProbe,
    kClientTls,
    kLogin,
    kDone
  };
  enum class Leg { kUnknown, kNone, kLoginOnly, kTls, kStrict };

  static std::string EncryptionName(int enc) {
    switch (enc < 0 ? -1 : (enc & 0x7f)) {
      case tds::kEncryptOff: return "OFF";
      case tds::kEncryptOn: return "ON";
      case tds::kEncryptNotSup: return "NOT_SUP";
      case tds::kEncryptReq: return "REQ";
      case -1: return "(absent)";
      default: return "0x" + std::to_string(enc);
    }
  }

  std::vector<uint8_t> LoginError(const std::string& message) const {
    return tds::EncodeMessage(tds::kTabularResult,
                              tds::EncodeLoginError(kLoginFailed, 1, 14, "dbward: " + message, "dbward"));
  }

  void StartStrictClient(Session& s) {
    if (!s.tls().client_strict) {
      s.FailWithMessage("client_error",
                        "client uses TDS 8.0 strict encryption (TLS first) but this listener has no client_tls",
                        "no_client_tls", {});
      return;
    }
    leg_ = Leg::kStrict;
    AuditInfo& a = s.audit();
    a.client_encryption = "tls-strict";
    a.trust_bypass = false;
    a.bypass_reason.clear();
    s.client_leg().Unread(s.client_in());
    s.client_in().clear();
    s.SetClientReading(false);
    s.StartClientTls(nullptr, s.tls().client_strict);
  }

  void HandleClientPrelogin(Session& s) {
    std::vector<uint8_t>& in = s.client_in();
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in, tds::kMaxPreLoginMessage, &m);
    if (r.status == tds::Status::kNeedMore) return;
    if (r.status == tds::Status::kOk && m.type != tds::kPrelogin) {
      r = {tds::Status::kMalformed, m.type == tds::kLogin7 ? "LOGIN7 without PRELOGIN (TDS 7.0 clients are not "
                                                             "supported: they cannot negotiate encryption)"
                                                           : "expected PRELOGIN, got packet type " +
                                                                 std::to_string(m.type)};
    }
    tds::Prelogin p;
    if (r.status == tds::Status::kOk) r = tds::ParsePrelogin(m.payload, &p);
    if (r.status != tds::Status::kOk) {
      // The client waits for a PRELOGIN answer; a tabular ERROR + DONE is the
      // closest thing to an answer it can display.
      s.FailWithMessage("client_error", "bad PRELOGIN: " + r.error, "malformed", LoginError("bad PRELOGIN: " + r.error));
      return;
    }
    if (in.size() > m.consumed) {
      s.FailWithMessage("client_error", "client sent data behind PRELOGIN before the answer", "malformed", {});
      return;
    }
    in.clear();
    client_prelogin_ = p;
    int enc = p.encryption();
    client_encryption_ = enc;
    if (leg_ != Leg::kStrict) DecideClientLeg(s, enc);
    if (s.backend_failed()) return;
    s.SetClientReading(false);
    phase_ = Phase::kBackend;
    s.ConnectBackend();
  }

  void DecideClientLeg(Session& s, int enc) {
    const ListenerRuntime& l = s.listener();
    bool have_tls = s.tls().client != nullptr;
    int base = enc < 0 ? tds::kEncryptOff : (enc & 0x7f);
    AuditInfo& a = s.audit();
    switch (base) {
      case tds::kEncryptNotSup:
        if (!l.config.plaintext_clients || l.config.require_client_encryption) {
          // Answering REQ makes every driver say "server requires encryption".
          reply_encryption_ = tds::kEncryptReq;
          refuse_plaintext_ = true;
        } else {
          reply_encryption_ = tds::kEncryptNotSup;
        }
        leg_ = Leg::kNone;
        break;
      case tds::kEncryptOff:
        if (have_tls && l.config.require_client_encryption) {
          reply_encryption_ = tds::kEncryptReq;
          leg_ = Leg::kTls;
        } else if (have_tls) {
          reply_encryption_ = tds::kEncryptOff;
          leg_ = Leg::kLoginOnly;
        } else {
          reply_encryption_ = tds::kEncryptNotSup;
          leg_ = Leg::kNone;
          refuse_plaintext_ = !l.config.plaintext_clients;
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
        a.client_encryption = "none";
        a.trust_bypass = true;
        a.bypass_reason = "plaintext";
        break;
      case Leg::kLoginOnly:
        a.client_encryption = "login-only";
        a.trust_bypass = true;
        a.bypass_reason = "login-only-encryption";
        break;
      default:
        a.client_encryption = "tls";
        a.trust_bypass = false;
        a.bypass_reason.clear();
        break;
    }
  }

  void SendBackendPrelogin(Session& s) {
    tds::Prelogin p = client_prelogin_;
    p.SetEncryption(tds::kEncryptOn);
    // Options that only make sense between the client and its server
    // (federated authentication nonce) are passed on as they are.
    s.SendToBackend(tds::EncodeMessage(tds::kPrelogin, tds::EncodePrelogin(p)));
    s.SetBackendReading(true);
    phase_ = Phase::kBackendPrelogin;
  }

  void AnswerClient(Session& s) {
    answered_ = true;
    tds::Prelogin resp = backend_prelogin_;
    if (leg_ != Leg::kStrict) {
      resp.SetEncryption(reply_encryption_);
    } else if (client_encryption_ >= 0) {
      // TDS 8.0: the byte negotiates nothing; echo what the client sent.
      resp.SetEncryption(static_cast<uint8_t>(client_encryption_));
    }
    s.SendToClient(tds::EncodeMessage(tds::kTabularResult, tds::EncodePrelogin(resp)));
    if (refuse_plaintext_) {
      s.FailWithMessage("refused",
                        "client asked for no encryption (ENCRYPTION=" + EncryptionName(client_encryption_) +
                            ") and listener " + s.listener().config.name +
                            " refuses plaintext clients; dbward answered " + EncryptionName(reply_encryption_),
                        "plaintext_denied", {});
      return;
    }
    if (leg_ == Leg::kTls) {
      phase_ = Phase::kClientTls;
      s.StartClientTls(client_framing_.get());
      return;
    }
    if (leg_ == Leg::kLoginOnly) {
      // OFF/OFF means login-only TLS, but some drivers (tedious with
      // encrypt: false) skip it and send LOGIN7 in clear, which SQL Server
      // accepts too. The next packet's type tells which.
      phase_ = Phase::kLoginOnlyProbe;
      s.SetClientReading(true);
      return;
    }
    phase_ = Phase::kLogin;
    s.SetClientReading(true);
  }

  void ProbeLoginOnly(Session& s) {
    std::vector<uint8_t>& in = s.client_in();
    if (in.empty()) return;
    if (in[0] == tds::kPrelogin) {
      s.client_leg().Unread(in);
      in.clear();
      s.SetClientReading(false);
      phase_ = Phase::kClientTls;
      s.StartClientTls(client_framing_.get());
      return;
    }
    leg_ = Leg::kNone;
    AuditInfo& a = s.audit();
    a.client_encryption = "none";
    a.bypass_reason = "plaintext";
    a.note = "client answered ENCRYPT_OFF and sent LOGIN7 without login-only TLS";
    phase_ = Phase::kLogin;
    if (!s.listener().config.plaintext_clients) {
      s.FailWithMessage("refused", "client sent LOGIN7 without encryption (plaintext_clients: deny)",
                        "plaintext_denied",
                        LoginError("listener " + s.listener().config.name +
                                   " refuses unencrypted logins; set Encrypt=True (or Encrypt=Mandatory)"));
      return;
    }
    HandleLogin7(s);
  }

  void HandleLogin7(Session& s) {
    std::vector<uint8_t>& in = s.client_in();
    tds::Message m;
    tds::Result r = tds::DecodeMessage(in, tds::kMaxPreLoginMessage, &m);
    if (r.status == tds::Status::kNeedMore) return;
    tds::Login7 login;
    if (r.status == tds::Status::kOk && m.type != tds::kLogin7) {
      r = {tds::Status::kMalformed, "expected LOGIN7, got packet type " + std::to_string(m.type)};
    }
    if (r.status == tds::Status::kOk) r = tds::ParseLogin7(m.payload, &login);
    if (r.status != tds::Status::kOk) {
      s.FailWithMessage("client_error", "bad LOGIN7: " + r.error, "malformed", LoginError("bad LOGIN7: " + r.error));
      return;
    }
    AuditInfo& a = s.audit();
    a.user = login.integrated_security && login.user_name.empty() ? "(integrated)" : login.user_name;
    a.database = login.database;
    a.application = login.app_name;
    a.client_host = login.host_name;
    a.client_library = login.library;
    a.client_protocol_version = tds::TdsVersionName(login.tds_version);
    if (s.backend_failed()) {
      s.FailWithMessage("backend_failed", backend_error_, "backend", LoginError(backend_error_));
      return;
    }
    // LOGIN7 (and anything after it) goes to the backend as it came.
    s.SendToBackend(in);
    in.clear();
    if (leg_ == Leg::kLoginOnly) {
      // Login-only encryption: the client's TLS ends with LOGIN7 and the
      // server's answer already travels in plaintext.
      s.client_leg().DetachTls();
    }
    s.SetClientReading(false);
    phase_ = Phase::kDone;
    s.RequestRelay();
  }

  Phase phase_ = Phase::kFirst;
  Leg leg_ = Leg::kUnknown;
  int client_encryption_ = -1;
  uint8_t reply_encryption_ = tds::kEncryptNotSup;
  bool refuse_plaintext_ = false;
  bool answered_ = false;
  tds::Prelogin client_prelogin_;
  tds::Prelogin backend_prelogin_;
  std::string backend_version_;
  std::string backend_error_;
  std::unique_ptr<PreloginFramingIo> client_framing_;
  std::unique_ptr<PreloginFramingIo> backend_framing_;
};

}  // namespace

std::unique_ptr<ProtocolHandler> NewTdsHandler() { return std::make_unique<TdsHandler>(); }

}  // namespace dbward::proxy

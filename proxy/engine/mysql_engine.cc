// protocol: mysql (MySQL and MariaDB).
//
// The server speaks first, so dbward connects to the backend at once, reads
// its greeting in plaintext, insists that it offers TLS (engine/upgrade.h),
// and passes it on to the client with the backend's own scramble (so password
// hashes computed by the client are valid for the backend) and CLIENT_SSL set
// only when dbward has a certificate for clients. The client's SSLRequest or
// HandshakeResponse decides the client leg; the backend leg always gets
// SSLRequest + verified TLS before the HandshakeResponse. Sequence ids differ
// by one between legs when the client skipped TLS, and are rewritten until
// authentication ends.
//
// caching_sha2_password with a plaintext client: the backend (which sees TLS)
// asks for the password in clear; the client, on plaintext, asks for an RSA
// public key. dbward answers with its own key, decrypts the client's
// RSA-OAEP(password XOR scramble) and sends the password over TLS.
#include <openssl/mem.h>

#include "protocol/mysql.h"
#include "protocol/preread.h"
#include "proxy/engine/engines.h"
#include "proxy/engine/upgrade.h"
#include "tls/rsa_key.h"

namespace dbward::proxy::engine {
namespace {

namespace my = protocol::mysql;

// Server error codes only: client libraries treat codes of their own range
// (2000-2999) arriving from a server as a malformed packet.
constexpr uint16_t kErHandshake = 1043;        // ER_HANDSHAKE_ERROR, SQLSTATE 08S01
constexpr uint16_t kErAccessDenied = 1045;     // ER_ACCESS_DENIED_ERROR, SQLSTATE 28000
constexpr uint16_t kErSecureTransport = 3159;  // ER_SECURE_TRANSPORT_REQUIRED

class MysqlEngine final : public Engine {
 public:
  MysqlEngine(Driver& driver, const EngineContext& context) : Engine(driver, context), upgrade_(driver) {}

  std::span<const uint8_t> Goodbye() const override {
    // MariaDB never sends close_notify: COM_QUIT is how a clean end is told
    // apart.
    return protocol::mysql::ComQuitPacket();
  }

  void Start() override { driver_.ConnectBackend(); }

  // As MySQL's own ER_CON_COUNT_ERROR, sent in place of the greeting.
  void StartRefused(const Failure& f) override {
    driver_.Fail(f, my::EncodePacket(0, my::EncodeErr(1040, "", "dbward: too many connections: " + f.error)));
  }

  void OnBackendConnected(const std::string& address) override {
    if (upgrade_.OnConnected(address) == BackendUpgrade::State::kFailed) FailUpgrade();
  }

  void OnBackendData(ByteQueue& in) override {
    if (phase_ == Phase::kAuth) {
      ForwardBackendAuth(in);
      return;
    }
    BackendUpgrade::State state = upgrade_.OnData(in);
    if (state == BackendUpgrade::State::kFailed) {
      FailUpgrade();
    } else if (state == BackendUpgrade::State::kGreeting && phase_ == Phase::kGreeting) {
      ForwardGreeting();
    }
  }

  void OnClientData(ByteQueue& in) override {
    if (!in.empty()) facts_.declared = true;
    if (phase_ == Phase::kClientResponse) {
      HandleClientResponse(in);
    } else if (phase_ == Phase::kAuth) {
      ForwardClientAuth(in);
    }
  }

  void OnClientTlsReady(const TlsFacts& /*facts*/) override {
    facts_.encryption = ClientEncryption::kTls;
    facts_.bypass.Clear();
    client_tls_ = true;
    phase_ = Phase::kClientResponse;
    driver_.ReadClient(true);
  }

  void OnBackendTlsReady(const TlsFacts& /*facts*/) override {
    upgrade_.OnTlsReady();
    // The client's HandshakeResponse, now over verified TLS, with the
    // backend leg's sequence id.
    std::vector<uint8_t> payload = response_;
    my::SetSslBit(&payload);
    driver_.SendToBackend(my::EncodePacket(2, payload));
    OPENSSL_cleanse(payload.data(), payload.size());
    OPENSSL_cleanse(response_.data(), response_.size());
    response_.clear();
    phase_ = Phase::kAuth;
    driver_.ReadBackend(true);
    driver_.ReadClient(true);
  }

  std::vector<uint8_t> NativeError(const Failure& f) override {
    if (phase_ == Phase::kClientTls) return {};
    return ErrPacket(kErHandshake, "08S01", f.error);
  }

 private:
  enum class Phase { kGreeting, kClientResponse, kClientTls, kBackendTls, kAuth, kDone };
  enum class RsaState { kNone, kFullAuthRequested, kKeySent, kDone };

  // Before the greeting the error takes its place (sequence 0, and without
  // a SQLSTATE since protocol 4.1 is not agreed yet, as servers do for
  // "host blocked"); after it, it answers the client's last packet.
  std::vector<uint8_t> ErrPacket(uint16_t code, const std::string& state, const std::string& message) const {
    if (!greeting_sent_) return my::EncodePacket(0, my::EncodeErr(code, "", "dbward: " + message));
    return my::EncodePacket(static_cast<uint8_t>(client_seq_ + 1), my::EncodeErr(code, state, "dbward: " + message));
  }

  void FailClient(Outcome outcome, Cause cause, uint16_t code, const std::string& state, const std::string& message) {
    Fail(outcome, cause, message, ErrPacket(code, state, message));
  }

  void FailUpgrade() {
    const UpgradeFailure& f = upgrade_.failure();
    if (!f.server_message.empty()) {
      // The server's own refusal (1040 Too many connections, 1130 host not
      // allowed) reaches the client as it is.
      Fail(f.outcome, f.cause, f.error, f.server_message);
      return;
    }
    driver_.FailBackend({f.outcome, f.cause, f.error});
  }

  void ForwardGreeting() {
    const my::Greeting& g = upgrade_.greeting();
    scramble_ = g.scramble;
    plugin_ = g.auth_plugin;
    driver_.SendToClient(my::EncodePacket(0, my::GreetingWithSsl(upgrade_.greeting_payload(), g, context_.client_tls)));
    greeting_sent_ = true;
    phase_ = Phase::kClientResponse;
    driver_.ReadClient(true);
  }

  void HandleClientResponse(ByteQueue& in) {
    my::Packet p;
    my::Result r = my::DecodePacket(in.data(), my::kMaxPreAuthPayload, &p);
    if (r.need_more()) return;
    if (r.malformed()) {
      // The header's sequence id is there even when the length is a lie:
      // the error answers that packet.
      client_seq_ = static_cast<uint8_t>(my::PeekSequenceId(in.data()));
      FailClient(Outcome::kClientError, Cause::kMalformed, kErHandshake, "08S01", "bad handshake: " + r.error);
      return;
    }
    client_seq_ = p.seq;
    my::HandshakeResponse resp;
    r = my::ParseHandshakeResponse(p.payload, &resp);
    if (!r.ok()) {
      FailClient(Outcome::kClientError, Cause::kMalformed, kErHandshake, "08S01", "bad handshake: " + r.error);
      return;
    }
    if (resp.ssl_request) {
      if (client_tls_ || !context_.client_tls) {
        FailClient(Outcome::kClientError, Cause::kMalformed, kErHandshake, "08S01",
                   "bad handshake: SSLRequest although TLS was not offered");
        return;
      }
      // MySQL clients start TLS right behind the SSLRequest without waiting
      // for an answer, so a ClientHello may share the read; it stays queued
      // for the TLS layer. Anything else there would be plaintext smuggled
      // past the upgrade: drop the connection.
      std::span<const uint8_t> rest = in.data().subspan(p.wire_length);
      if (!rest.empty() && protocol::ClassifyFirstBytes(rest) == protocol::FirstBytes::kOther) {
        Fail(Outcome::kClientError, Cause::kPlaintextAfterRequest, "received unencrypted data after SSL request");
        return;
      }
      in.Consume(p.wire_length);
      driver_.ReadClient(false);
      driver_.StartClientTls(ClientTlsProfile::kStandard, TlsTransport::kStream);
      phase_ = Phase::kClientTls;
      return;
    }
    facts_.user = resp.user;
    facts_.database = resp.database;
    facts_.client_library = my::ClientLibrary(resp);
    facts_.application = resp.Attribute("program_name");
    if (!client_tls_ && !listener().plaintext_clients) {
      FailClient(Outcome::kRefused, Cause::kPlaintextDenied, kErSecureTransport, "HY000",
                 "Connections using insecure transport are prohibited on listener " + listener().name +
                     " (plaintext_clients: deny); connect with ssl-mode=REQUIRED or stronger");
      return;
    }
    if (Driver::Admission a = driver_.Admit(); a.denied) {
      std::string hint;
      if (a.required == ProtectionLevel::kValidated) {
        hint = "; connect with ssl-mode=VERIFY_IDENTITY and ssl-ca=<the CA of dbward's certificate> (MariaDB client: "
               "--ssl-verify-server-cert --ssl-ca=...)";
      } else if (a.required) {
        hint = "; connect with ssl-mode=REQUIRED or stronger (MariaDB client: --ssl)";
      }
      FailClient(Outcome::kRefused, a.cause, a.cause == Cause::kPolicyDenied ? kErSecureTransport : kErAccessDenied,
                 a.cause == Cause::kPolicyDenied ? "HY000" : "28000", a.error + hint);
      return;
    }
    if (!resp.auth_plugin.empty()) plugin_ = resp.auth_plugin;
    // The backend leg has one more packet (our SSLRequest) than a plaintext
    // client leg.
    seq_offset_ = client_tls_ ? 0 : 1;
    response_.assign(p.payload.begin(), p.payload.end());
    in.Consume(p.wire_length);
    driver_.ReadClient(false);
    phase_ = Phase::kBackendTls;
    upgrade_.RequestTls(response_);
  }

  void ForwardClientAuth(ByteQueue& in) {
    size_t off = 0;
    while (off < in.size()) {
      my::Packet p;
      my::Result r = my::DecodePacket(in.data().subspan(off), my::kMaxPreAuthPayload, &p);
      if (r.need_more()) break;
      if (r.malformed()) {
        FailClient(Outcome::kClientError, Cause::kMalformed, kErHandshake, "08S01",
                   "bad authentication packet: " + r.error);
        return;
      }
      off += p.wire_length;
      client_seq_ = p.seq;
      if (rsa_state_ == RsaState::kFullAuthRequested && my::IsPublicKeyRequest(p.payload)) {
        // The client asks for the server's RSA public key: ours answers.
        driver_.SendToClient(my::EncodePacket(static_cast<uint8_t>(p.seq + 1),
                                              my::EncodePublicKeyResponse(context_.rsa_key->public_pem())));
        rsa_state_ = RsaState::kKeySent;
        continue;
      }
      if (rsa_state_ == RsaState::kKeySent || (rsa_state_ == RsaState::kFullAuthRequested && p.payload.size() >= 128)) {
        if (!DecryptAndForwardPassword(p)) return;
        continue;
      }
      driver_.SendToBackend(my::EncodePacket(static_cast<uint8_t>(p.seq + seq_offset_), p.payload));
    }
    in.Consume(off);
  }

  bool DecryptAndForwardPassword(const my::Packet& p) {
    std::vector<uint8_t> plain;
    if (context_.rsa_key == nullptr || !context_.rsa_key->DecryptOaep(p.payload, &plain) || scramble_.empty()) {
      FailClient(Outcome::kClientError, Cause::kRsaDecryptFailed, kErAccessDenied, "28000",
                 "cannot decrypt the password the client encrypted to dbward's RSA key");
      return false;
    }
    for (size_t i = 0; i < plain.size(); i++) plain[i] ^= scramble_[i % scramble_.size()];
    // plain is now the NUL-terminated password: exactly what a client sends
    // over TLS for full authentication. The key exchange happened only on
    // the client leg, so the backend expects the next id after its own.
    auto backend_seq = static_cast<uint8_t>(last_backend_seq_ + 1);
    seq_offset_ = static_cast<uint8_t>(backend_seq - p.seq);
    std::vector<uint8_t> packet = my::EncodePacket(backend_seq, plain);
    driver_.SendToBackend(packet);
    OPENSSL_cleanse(plain.data(), plain.size());
    OPENSSL_cleanse(packet.data(), packet.size());
    facts_.note = plugin_ + " full authentication through dbward's RSA key";
    rsa_state_ = RsaState::kDone;
    return true;
  }

  void ForwardBackendAuth(ByteQueue& in) {
    size_t off = 0;
    while (off < in.size()) {
      my::Packet p;
      my::Result r = my::DecodePacket(in.data().subspan(off), my::kMaxPreAuthPayload, &p);
      if (r.need_more()) break;
      if (r.malformed()) {
        FailNative(Outcome::kBackendError, Cause::kMalformed,
                   "backend sent a malformed authentication packet: " + r.error);
        return;
      }
      off += p.wire_length;
      last_backend_seq_ = p.seq;
      auto seq = static_cast<uint8_t>(p.seq - seq_offset_);
      client_seq_ = seq;
      switch (my::ClassifyServerAuthPacket(p.payload)) {
        case my::AuthPacket::kOk:
          facts_.logged_in = true;
          driver_.SendToClient(my::EncodePacket(seq, p.payload));
          // Authentication is over; sequence ids restart with every command,
          // so the relay needs no rewriting from here on.
          in.Consume(off);
          phase_ = Phase::kDone;
          driver_.HandOffToRelay();
          return;
        case my::AuthPacket::kErr: {
          my::ErrInfo err;
          my::ParseErr(p.payload, &err);
          driver_.SendToClient(my::EncodePacket(seq, p.payload));
          in.Consume(in.size());
          bool denied = err.sqlstate == "28000";
          Fail(denied ? Outcome::kAuthFailed : Outcome::kBackendError, denied ? Cause::kAuthFailed : Cause::kBackendError,
               "backend: " + std::to_string(err.code) + " (" + err.sqlstate + ") " + err.message);
          return;
        }
        case my::AuthPacket::kAuthSwitch: {
          std::string plugin;
          std::vector<uint8_t> scramble;
          if (my::ParseAuthSwitch(p.payload, &plugin, &scramble)) {
            plugin_ = plugin;
            if (!scramble.empty()) scramble_ = scramble;
            // sha256_password on a plaintext client leg: the client will ask
            // for the server's RSA key (0x01) where the backend, seeing TLS,
            // expects the password in clear. Same interception as caching_sha2.
            if (plugin == "sha256_password" && !client_tls_) rsa_state_ = RsaState::kFullAuthRequested;
          }
          break;
        }
        case my::AuthPacket::kFullAuthRequired:
          // "Perform full authentication": the backend expects the password in
          // clear (it sees TLS); the client will ask for an RSA key instead.
          if (!client_tls_ && plugin_ == "caching_sha2_password") rsa_state_ = RsaState::kFullAuthRequested;
          break;
        case my::AuthPacket::kFastAuthOk:
        case my::AuthPacket::kOther:
          break;
      }
      driver_.SendToClient(my::EncodePacket(seq, p.payload));
    }
    in.Consume(off);
  }

  MysqlUpgrade upgrade_;
  Phase phase_ = Phase::kGreeting;
  bool client_tls_ = false;
  bool greeting_sent_ = false;
  uint8_t client_seq_ = 0;
  uint8_t seq_offset_ = 0;  // backend id minus client id, modulo 256
  uint8_t last_backend_seq_ = 0;
  std::vector<uint8_t> scramble_;
  std::string plugin_;
  std::vector<uint8_t> response_;
  RsaState rsa_state_ = RsaState::kNone;
};

}  // namespace

std::unique_ptr<Engine> NewMysqlEngine(Driver& driver, const EngineContext& context) {
  return std::make_unique<MysqlEngine>(driver, context);
}

}  // namespace dbward::proxy::engine

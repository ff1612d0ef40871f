// protocol: mysql (MySQL and MariaDB).
//
// The server speaks first, so dbward connects to the backend at once, reads
// its greeting in plaintext, insists that it offers TLS, and passes it on to
// the client with the backend's own scramble (so password hashes computed by
// the client are valid for the backend) and CLIENT_SSL set only when dbward
// has a certificate for clients. The client's SSLRequest or HandshakeResponse
// decides the client leg; the backend leg always gets SSLRequest + verified
// TLS before the HandshakeResponse. Sequence ids differ by one between legs
// when the client skipped TLS, and are rewritten until authentication ends.
//
// caching_sha2_password with a plaintext client: the backend (which sees TLS)
// asks for the password in clear; the client, on plaintext, asks for an RSA
// public key. dbward answers with its own key, decrypts the client's
// RSA-OAEP(password XOR scramble) and sends the password over TLS.
#include "proxy/mysql_handler.h"

#include <openssl/mem.h>

#include "protocol/mysql.h"
#include "protocol/preread.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace dbward::proxy {
namespace {

namespace my = protocol::mysql;

// Server error codes only: client libraries treat codes of their own range
// (2000-2999) arriving from a server as a malformed packet.
constexpr uint16_t kErHandshake = 1043;        // ER_HANDSHAKE_ERROR, SQLSTATE 08S01
constexpr uint16_t kErSecureTransport = 3159;  // ER_SECURE_TRANSPORT_REQUIRED

class MysqlHandler final : public ProtocolHandler {
 public:
  void OnStart(Session& s) override {
    s.audit().client_encryption = "none";
    s.audit().trust_bypass = true;
    s.audit().bypass_reason = "plaintext";
    s.ConnectBackend();
  }

  void OnBackendConnected(Session& s) override {
    phase_ = Phase::kBackendGreeting;
    s.SetBackendReading(true);
  }

  void OnBackendData(Session& s) override {
    if (phase_ == Phase::kBackendGreeting) {
      HandleGreeting(s);
    } else if (phase_ == Phase::kAuth) {
      HandleBackendAuth(s);
    }
  }

  void OnClientData(Session& s) override {
    if (phase_ == Phase::kClientResponse) {
      HandleClientResponse(s);
    } else if (phase_ == Phase::kAuth) {
      HandleClientAuth(s);
    }
  }

  void OnClientTlsReady(Session& s) override {
    AuditInfo& a = s.audit();
    a.client_encryption = "tls";
    a.trust_bypass = false;
    a.bypass_reason.clear();
    client_tls_ = true;
    phase_ = Phase::kClientResponse;
    s.SetClientReading(true);
  }

  void OnBackendTlsReady(Session& s) override {
    // The client's HandshakeResponse, now over verified TLS, with the
    // backend leg's sequence id.
    std::vector<uint8_t> payload = response_;
    my::SetSslBit(&payload);
    s.SendToBackend(my::EncodePacket(2, payload));
    OPENSSL_cleanse(response_.data(), response_.size());
    response_.clear();
    phase_ = Phase::kAuth;
    s.SetBackendReading(true);
    s.SetClientReading(true);
  }

  std::vector<uint8_t> ErrorForClient(const std::string& message, const std::string& cause) override {
    if (phase_ == Phase::kClientTls) return {};
    (void)cause;
    return ErrPacket(kErHandshake, "08S01", message);
  }

 private:
  enum class Phase { kConnecting, kBackendGreeting, kClientResponse, kClientTls, kBackendTls, kAuth, kDone };

  // Before the greeting the error takes its place (sequence 0, and without
  // a SQLSTATE since protocol 4.1 is not agreed yet, as servers do for
  // "host blocked"); after it, it answers the client's last packet.
  std::vector<uint8_t> ErrPacket(uint16_t code, const std::string& state, const std::string& message) const {
    if (!greeting_sent_) return my::EncodePacket(0, my::EncodeErr(code, "", "dbward: " + message));
    return my::EncodePacket(static_cast<uint8_t>(client_seq_ + 1), my::EncodeErr(code, state, "dbward: " + message));
  }

  void FailClient(Session& s, const std::string& outcome, const std::string& cause, uint16_t code,
                  const std::string& state, const std::string& message) {
    s.FailWithMessage(outcome, message, cause, ErrPacket(code, state, message));
  }

  void HandleGreeting(Session& s) {
    std::vector<uint8_t>& in = s.backend_in();
    my::Packet p;
    my::Result r = my::DecodePacket(in, my::kMaxPreAuthPayload, &p);
    if (r.status == my::Status::kNeedMore) return;
    if (r.status == my::Status::kMalformed) {
      s.Fail("backend_error", "backend greeting: " + r.error, "malformed");
      return;
    }
    if (my::IsErr(p.payload)) {
      // e.g. 1040 Too many connections, 1130 host not allowed: the client
      // gets the server's own words.
      my::ErrInfo err;
      my::ParseErr(p.payload, &err);
      std::vector<uint8_t> raw(in.begin(), in.begin() + static_cast<ptrdiff_t>(p.wire_length));
      s.FailWithMessage("backend_error", "backend refused: " + std::to_string(err.code) + " " + err.message,
                        "backend_error", raw);
      return;
    }
    my::Greeting g;
    r = my::ParseGreeting(p.payload, &g);
    if (r.status != my::Status::kOk) {
      s.Fail("backend_error", "backend greeting: " + r.error, "malformed");
      return;
    }
    if (!(g.capabilities & my::kClientSsl)) {
      s.Fail("backend_tls_refused",
             "backend " + s.backend_addr() + " (" + g.server_version + ") does not offer TLS (no CLIENT_SSL in its "
             "greeting); dbward never falls back to plaintext: configure ssl_cert and ssl_key on the server",
             "backend_no_tls");
      return;
    }
    if (in.size() > p.wire_length) {
      s.Fail("backend_error", "backend sent data after its greeting before the client answered", "malformed");
      return;
    }
    scramble_ = g.scramble;
    plugin_ = g.auth_plugin;
    bool offer_tls = s.tls().client != nullptr;
    s.SendToClient(my::EncodePacket(0, my::GreetingWithSsl(p.payload, g, offer_tls)));
    greeting_sent_ = true;
    in.clear();
    s.SetBackendReading(false);
    s.SetClientReading(true);
    phase_ = Phase::kClientResponse;
  }

  void HandleClientResponse(Session& s) {
    std::vector<uint8_t>& in = s.client_in();
    my::Packet p;
    my::Result r = my::DecodePacket(in, my::kMaxPreAuthPayload, &p);
    if (r.status == my::Status::kNeedMore) return;
    if (r.status == my::Status::kMalformed) {
      FailClient(s, "client_error", "malformed", kErHandshake, "08S01", "bad handshake: " + r.error);
      return;
    }
    client_seq_ = p.seq;
    my::HandshakeResponse resp;
    r = my::ParseHandshakeResponse(p.payload, &resp);
    if (r.status != my::Status::kOk) {
      FailClient(s, "client_error", "malformed", kErHandshake, "08S01", "bad handshake: " + r.error);
      return;
    }
    if (resp.ssl_request) {
      if (client_tls_ || s.tls().client == nullptr) {
        FailClient(s, "client_error", "malformed", kErHandshake, "08S01",
                   "bad handshake: SSLRequest although TLS was not offered");
        return;
      }
      // MySQL clients start TLS right behind the SSLRequest without waiting
      // for an answer, so a ClientHello may share the read; it goes back to
      // the TLS layer. Anything else there would be plaintext smuggled past
      // the upgrade: drop the connection.
      std::span<const uint8_t> rest = std::span<const uint8_t>(in).subspan(p.wire_length);
      if (!rest.empty()) {
        if (protocol::ClassifyFirstBytes(rest) == protocol::FirstBytes::kOther) {
          s.FailWithMessage("client_error", "received unencrypted data after SSL request", "plaintext_after_request",
                            {});
          return;
        }
        s.client_leg().Unread(rest);
      }
      in.clear();
      s.SetClientReading(false);
      s.StartClientTls();
      phase_ = Phase::kClientTls;
      return;
    }
    AuditInfo& a = s.audit();
    a.user = resp.user;
    a.database = resp.database;
    std::string lib = resp.Attribute("_client_name");
    std::string version = resp.Attribute("_client_version");
    if (!version.empty()) {
      if (!lib.empty()) lib.push_back(' ');
      lib.append(version);
    }
    a.client_library = lib;
    a.application = resp.Attribute("program_name");
    if (!client_tls_ && !s.listener().config.plaintext_clients) {
      FailClient(s, "refused", "plaintext_denied", kErSecureTransport, "HY000",
                 "Connections using insecure transport are prohibited on listener " + s.listener().config.name +
                     " (plaintext_clients: deny); connect with ssl-mode=REQUIRED or stronger");
      return;
    }
    if (!resp.auth_plugin.empty()) plugin_ = resp.auth_plugin;
    // The backend leg has one more packet (our SSLRequest) than a plaintext
    // client leg.
    seq_offset_ = client_tls_ ? 0 : 1;
    response_.assign(p.payload.begin(), p.payload.end());
    in.erase(in.begin(), in.begin() + static_cast<ptrdiff_t>(p.wire_length));
    s.SendToBackend(my::EncodePacket(1, my::SslRequestFrom(response_)));
    s.SetClientReading(false);
    s.StartBackendTls();
    phase_ = Phase::kBackendTls;
  }

  void HandleClientAuth(Session& s) {
    std::vector<uint8_t>& in = s.client_in();
    size_t off = 0;
    while (off < in.size()) {
      my::Packet p;
      my::Result r = my::DecodePacket(std::span<const uint8_t>(in).subspan(off), my::kMaxPreAuthPayload, &p);
      if (r.status == my::Status::kNeedMore) break;
      if (r.status == my::Status::kMalformed) {
        FailClient(s, "client_error", "malformed", kErHandshake, "08S01", "bad authentication packet: " + r.error);
        return;
      }
      off += p.wire_length;
      client_seq_ = p.seq;
      if (rsa_state_ == RsaState::kFullAuthRequested && p.payload.size() == 1 &&
          (p.payload[0] == 0x02 || p.payload[0] == 0x01)) {
        // The client asks for the server's RSA public key: ours answers.
        std::vector<uint8_t> reply{0x01};
        const std::string& pem = s.tls().rsa_key->public_pem();
        reply.insert(reply.end(), pem.begin(), pem.end());
        s.SendToClient(my::EncodePacket(static_cast<uint8_t>(p.seq + 1), reply));
        rsa_state_ = RsaState::kKeySent;
        continue;
      }
      if (rsa_state_ == RsaState::kKeySent || (rsa_state_ == RsaState::kFullAuthRequested && p.payload.size() >= 128)) {
        if (!DecryptAndForwardPassword(s, p)) return;
        continue;
      }
      std::vector<uint8_t> payload(p.payload.begin(), p.payload.end());
      s.SendToBackend(my::EncodePacket(static_cast<uint8_t>(p.seq + seq_offset_), payload));
    }
    in.erase(in.begin(), in.begin() + static_cast<ptrdiff_t>(off));
  }

  bool DecryptAndForwardPassword(Session& s, const my::Packet& p) {
    std::vector<uint8_t> plain;
    if (!s.tls().rsa_key->DecryptOaep(p.payload, &plain) || scramble_.empty()) {
      FailClient(s, "client_error", "rsa_decrypt_failed", 1045, "28000",
                 "cannot decrypt the password the client encrypted to dbward's RSA key");
      return false;
    }
    for (size_t i = 0; i < plain.size(); i++) plain[i] ^= scramble_[i % scramble_.size()];
    // plain is now the NUL-terminated password: exactly what a client sends
    // over TLS for full authentication. The key exchange happened only on
    // the client leg, so the backend expects the next id after its own.
    uint8_t backend_seq = static_cast<uint8_t>(last_backend_seq_ + 1);
    seq_offset_ = static_cast<uint8_t>(backend_seq - p.seq);
    s.SendToBackend(my::EncodePacket(backend_seq, plain));
    OPENSSL_cleanse(plain.data(), plain.size());
    s.audit().note = plugin_ + " full authentication through dbward's RSA key";
    rsa_state_ = RsaState::kDone;
    return true;
  }

  void HandleBackendAuth(Session& s) {
    std::vector<uint8_t>& in = s.backend_in();
    size_t off = 0;
    while (off < in.size()) {
      my::Packet p;
      my::Result r = my::DecodePacket(std::span<const uint8_t>(in).subspan(off), my::kMaxPreAuthPayload, &p);
      if (r.status == my::Status::kNeedMore) break;
      if (r.status == my::Status::kMalformed) {
        s.Fail("backend_error", "backend sent a malformed authentication packet: " + r.error, "malformed");
        return;
      }
      off += p.wire_length;
      last_backend_seq_ = p.seq;
      std::vector<uint8_t> payload(p.payload.begin(), p.payload.end());
      uint8_t seq = static_cast<uint8_t>(p.seq - seq_offset_);
      client_seq_ = seq;
      if (my::IsOk(p.payload)) {
        s.SendToClient(my::EncodePacket(seq, payload));
        // Authentication is over; sequence ids restart with every command,
        // so the relay needs no rewriting from here on.
        phase_ = Phase::kDone;
        s.HandOffToRelay(off);
        return;
      }
      if (my::IsErr(p.payload)) {
        my::ErrInfo err;
        my::ParseErr(p.payload, &err);
        s.SendToClient(my::EncodePacket(seq, payload));
        in.clear();
        s.FailWithMessage(err.sqlstate == "28000" ? "auth_failed" : "backend_error",
                          "backend: " + std::to_string(err.code) + " (" + err.sqlstate + ") " + err.message,
                          err.sqlstate == "28000" ? "auth_failed" : "backend_error", {});
        return;
      }
      if (!payload.empty() && payload[0] == 0xfe) {
        std::string plugin;
        std::vector<uint8_t> scramble;
        if (my::ParseAuthSwitch(payload, &plugin, &scramble)) {
          plugin_ = plugin;
          if (!scramble.empty()) scramble_ = scramble;
          // sha256_password on a plaintext client leg: the client will ask
          // for the server's RSA key (0x01) where the backend, seeing TLS,
          // expects the password in clear. Same interception as caching_sha2.
          if (plugin == "sha256_password" && !client_tls_) rsa_state_ = RsaState::kFullAuthRequested;
        }
      } else if (payload.size() == 2 && payload[0] == 0x01 && payload[1] == 0x04 && !client_tls_ &&
                 plugin_ == "caching_sha2_password") {
        // "Perform full authentication": the backend expects the password in
        // clear (it sees TLS); the client will ask for an RSA key instead.
        rsa_state_ = RsaState::kFullAuthRequested;
      }
      s.SendToClient(my::EncodePacket(seq, payload));
    }
    in.erase(in.begin(), in.begin() + static_cast<ptrdiff_t>(off));
  }

  enum class RsaState { kNone, kFullAuthRequested, kKeySent, kDone };

  Phase phase_ = Phase::kConnecting;
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

std::unique_ptr<ProtocolHandler> NewMysqlHandler() { return std::make_unique<MysqlHandler>(); }

}  // namespace dbward::proxy

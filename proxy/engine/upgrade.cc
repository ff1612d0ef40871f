#include "proxy/engine/upgrade.h"

#include <fmt/format.h>

#include "protocol/postgres.h"

namespace dbward::proxy::engine {
namespace {

namespace my = protocol::mysql;
namespace pg = protocol::pg;
namespace tds = protocol::tds;
using Kind = UpgradeFailure::Kind;

constexpr const char* kNeverPlaintext = "dbward never falls back to plaintext";

// PostgreSQL with SSLRequest: exactly one byte answers it, and nothing may
// follow that byte before the handshake (CVE-2021-23222).
class PgUpgrade final : public BackendUpgrade {
 public:
  explicit PgUpgrade(UpgradeSink& sink) : BackendUpgrade(sink) {}

  State OnConnected(const std::string& address) override {
    address_ = address;
    sink_.SendToBackend(pg::EncodeSslRequest());
    sink_.ReadBackend(true);
    return state_ = State::kWaiting;
  }

  State OnData(ByteQueue& in) override {
    if (state_ != State::kWaiting) return state_;
    pg::EncryptionAnswer a;
    if (!pg::ParseEncryptionAnswer(in.data(), &a).ok()) return state_;
    std::string hex = fmt::format("0x{:02x}", a.byte);
    switch (a.kind) {
      case pg::EncryptionAnswer::kAccepted:
        if (a.trailing) {
          return Failed({Kind::kNotProtocol, Outcome::kBackendTlsFailed, Cause::kPlaintextAfterSslAnswer,
                         "the server sent unencrypted data right after accepting SSLRequest (a man-in-the-middle "
                         "could inject it; CVE-2021-23222)",
                         fmt::format("backend {} sent unencrypted data right after accepting SSLRequest (a "
                                     "man-in-the-middle could inject it; CVE-2021-23222): connection dropped",
                                     address_),
                         {}});
        }
        in.Consume(1);
        server_info_ = "PostgreSQL (SSLRequest answered 'S')";
        sink_.ReadBackend(false);
        sink_.StartBackendTls(TlsTransport::kStream);
        return state_ = State::kTls;
      case pg::EncryptionAnswer::kRefused:
        return Failed({Kind::kRefused, Outcome::kBackendTlsRefused, Cause::kBackendNoTls,
                       "the server answered 'N' to SSLRequest: TLS is disabled on this PostgreSQL server (set ssl = "
                       "on with ssl_cert_file and ssl_key_file)",
                       fmt::format("backend {} refused TLS (it answered 'N' to SSLRequest); {}: set ssl = on (with "
                                   "ssl_cert_file and ssl_key_file) in the server's postgresql.conf",
                                   address_, kNeverPlaintext),
                       {}});
      case pg::EncryptionAnswer::kErrorMessage:
        return Failed({Kind::kNotProtocol, Outcome::kBackendTlsRefused, Cause::kNotPostgres,
                       "the server answered SSLRequest with an error message instead of 'S' or 'N' (a PostgreSQL "
                       "server older than 7.0, or a proxy refusing the connection)",
                       fmt::format("backend {} did not answer SSLRequest with 'S' or 'N' (first byte {}, an error "
                                   "message); is it a PostgreSQL server?",
                                   address_, hex),
                       {}});
      case pg::EncryptionAnswer::kOther:
        break;
    }
    return Failed({Kind::kNotProtocol, Outcome::kBackendTlsRefused, Cause::kNotPostgres,
                   fmt::format("the answer to SSLRequest starts with byte {}, not 'S' or 'N': not a PostgreSQL server",
                               hex),
                   fmt::format("backend {} did not answer SSLRequest with 'S' or 'N' (first byte {}); is it a "
                               "PostgreSQL server?",
                               address_, hex),
                   {}});
  }

  State OnTlsReady() override { return state_ = State::kDone; }
  const char* awaiting() const override { return "answer to SSLRequest"; }
};

// TLS from the first byte: protocol tcp, PostgreSQL 17 direct TLS.
class StreamUpgrade final : public BackendUpgrade {
 public:
  explicit StreamUpgrade(UpgradeSink& sink) : BackendUpgrade(sink) {}
  State OnConnected(const std::string& address) override {
    address_ = address;
    sink_.StartBackendTls(TlsTransport::kStream);
    return state_ = State::kTls;
  }
  State OnData(ByteQueue& /*in*/) override { return state_; }
  State OnTlsReady() override { return state_ = State::kDone; }
  const char* awaiting() const override { return "TLS handshake"; }
};

}  // namespace

std::unique_ptr<BackendUpgrade> BackendUpgrade::New(const Options& o, UpgradeSink& sink) {
  switch (o.protocol) {
    case Protocol::kPostgres:
      if (o.pg_direct) return std::make_unique<StreamUpgrade>(sink);
      return std::make_unique<PgUpgrade>(sink);
    case Protocol::kMysql: return std::make_unique<MysqlUpgrade>(sink);
    case Protocol::kTds: return std::make_unique<TdsUpgrade>(sink, o.prelogin, o.tds_strict);
    case Protocol::kTcp: break;
  }
  return std::make_unique<StreamUpgrade>(sink);
}

// ---- MySQL ----

BackendUpgrade::State MysqlUpgrade::OnConnected(const std::string& address) {
  address_ = address;
  sink_.ReadBackend(true);
  return state_ = State::kWaiting;
}

BackendUpgrade::State MysqlUpgrade::OnData(ByteQueue& in) {
  if (state_ != State::kWaiting) {
    if (state_ == State::kGreeting && !in.empty()) {
      return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kMalformed,
                     "the server sent data after its greeting before the client answered",
                     "backend sent data after its greeting before the client answered", {}});
    }
    return state_;
  }
  my::Packet p;
  my::Result r = my::DecodePacket(in.data(), my::kMaxPreAuthPayload, &p);
  if (r.need_more()) return state_;
  if (r.ok() && p.seq != 0) r = my::Result::Malformed("the greeting has sequence id " + std::to_string(p.seq));
  if (r.malformed()) {
    return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kMalformed,
                   "not a MySQL greeting (" + r.error + "): not a MySQL server", "backend greeting: " + r.error, {}});
  }
  if (my::IsErr(p.payload)) {
    // e.g. 1040 Too many connections, 1130 host not allowed: the client gets
    // the server's own words.
    my::ErrInfo err;
    my::ParseErr(p.payload, &err);
    UpgradeFailure f{Kind::kDenied, Outcome::kBackendError, Cause::kBackendError,
                     fmt::format("the server refused the connection before the handshake: ERROR {}{}: {}", err.code,
                                 err.sqlstate.empty() ? "" : " (" + err.sqlstate + ")", err.message),
                     fmt::format("backend refused: {} {}", err.code, err.message), {}};
    auto raw = in.data().first(p.wire_length);
    f.server_message.assign(raw.begin(), raw.end());
    return Failed(std::move(f));
  }
  my::Greeting g;
  r = my::ParseGreeting(p.payload, &g);
  if (!r.ok()) {
    return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kMalformed,
                   "not a MySQL greeting (" + r.error + "): not a MySQL server", "backend greeting: " + r.error, {}});
  }
  server_info_ = my::ServerProduct(g);
  if (!(g.capabilities & my::kClientSsl)) {
    return Failed({Kind::kRefused, Outcome::kBackendTlsRefused, Cause::kBackendNoTls,
                   server_info_ + " does not offer TLS (CLIENT_SSL is not set in its greeting): configure ssl_cert "
                                  "and ssl_key on the server",
                   fmt::format("backend {} ({}) does not offer TLS (no CLIENT_SSL in its greeting); {}: configure "
                               "ssl_cert and ssl_key on the server",
                               address_, server_info_, kNeverPlaintext),
                   {}});
  }
  if (in.size() > p.wire_length) {
    return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kMalformed,
                   "the server sent data after its greeting before the client answered",
                   "backend sent data after its greeting before the client answered", {}});
  }
  greeting_ = std::move(g);
  greeting_payload_.assign(p.payload.begin(), p.payload.end());
  in.Consume(p.wire_length);
  // Nothing more is read until the client has answered: the backend must not
  // speak again before our SSLRequest.
  sink_.ReadBackend(false);
  return state_ = State::kGreeting;
}

BackendUpgrade::State MysqlUpgrade::RequestTls(std::span<const uint8_t> client_response) {
  if (state_ != State::kGreeting) return state_;
  std::vector<uint8_t> request =
      client_response.empty() ? my::DefaultSslRequest(greeting_) : my::SslRequestFrom(client_response);
  sink_.SendToBackend(my::EncodePacket(1, request));
  sink_.StartBackendTls(TlsTransport::kStream);
  return state_ = State::kTls;
}

BackendUpgrade::State MysqlUpgrade::OnTlsReady() { return state_ = State::kDone; }

// ---- TDS ----

void TdsUpgrade::SendPrelogin() {
  tds::Prelogin p = prelogin_;
  p.SetEncryption(tds::kEncryptOn);
  // Options that only make sense between the client and its server
  // (federated authentication nonce) are passed on as they are.
  sink_.SendToBackend(tds::EncodeMessage(tds::kPrelogin, tds::EncodePrelogin(p)));
  sink_.ReadBackend(true);
}

BackendUpgrade::State TdsUpgrade::OnConnected(const std::string& address) {
  address_ = address;
  if (strict_) {
    sink_.StartBackendTls(TlsTransport::kStream);  // TDS 8.0: TLS first, PRELOGIN inside it
    return state_ = State::kTls;
  }
  SendPrelogin();
  return state_ = State::kWaiting;
}

BackendUpgrade::State TdsUpgrade::OnData(ByteQueue& in) {
  if (state_ != State::kWaiting) return state_;
  tds::Message m;
  tds::Result r = tds::DecodeMessage(in.data(), tds::kMaxPreLoginMessage, &m);
  if (r.need_more()) return state_;
  if (r.ok() && m.type != tds::kTabularResult) {
    r = tds::Result::Malformed(fmt::format("packet type 0x{:02x}, not 0x04 (tabular result)", m.type));
  }
  tds::Prelogin answer;
  if (r.ok()) r = tds::ParsePrelogin(m.payload, &answer);
  if (!r.ok()) {
    return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kNotTds,
                   "the answer to PRELOGIN is not SQL Server's (" + r.error + "): not a SQL Server",
                   fmt::format("backend {} did not answer PRELOGIN like SQL Server: {}", address_, r.error), {}});
  }
  if (in.size() > m.consumed) {
    return Failed({Kind::kNotProtocol, Outcome::kBackendError, Cause::kMalformed,
                   "the server sent data behind its PRELOGIN answer", "backend sent data behind its PRELOGIN answer",
                   {}});
  }
  in.Consume(m.consumed);
  sink_.ReadBackend(false);
  answer_ = std::move(answer);
  std::string version = answer_.Version();
  std::string product = "SQL Server" + (version.empty() ? std::string() : " " + version);
  int enc = answer_.encryption();
  if (strict_) {
    server_info_ = product + ", TDS 8.0 (PRELOGIN inside TLS)";
    return state_ = State::kDone;
  }
  server_info_ = product + ", PRELOGIN ENCRYPTION=" + tds::EncryptionName(enc);
  int base = tds::EncryptionBase(enc);
  if (base != tds::kEncryptOn && base != tds::kEncryptReq) {
    std::string answered = "answered ENCRYPTION=" + tds::EncryptionName(enc) +
                           " to ENCRYPTION=ON: it has no certificate configured, so it cannot do TLS";
    return Failed({Kind::kRefused, Outcome::kBackendTlsRefused, Cause::kBackendNoTls,
                   server_info_ + ": the server " + answered,
                   fmt::format("backend {} ({}) {}; {}: install a certificate on the server (SQL Server "
                               "Configuration Manager, Force Encryption optional)",
                               address_, product, answered, kNeverPlaintext),
                   {}});
  }
  sink_.StartBackendTls(TlsTransport::kTdsPrelogin);
  return state_ = State::kTls;
}

BackendUpgrade::State TdsUpgrade::OnTlsReady() {
  if (!strict_) return state_ = State::kDone;
  SendPrelogin();
  return state_ = State::kWaiting;
}

}  // namespace dbward::proxy::engine

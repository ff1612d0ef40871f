// The backend half of each engine, on its own, as `dbward probe` and /readyz
// drive it: what it sends, when it starts TLS, and how it judges answers.
#include <gtest/gtest.h>

#include "protocol/mysql.h"
#include "protocol/postgres.h"
#include "protocol/tds.h"
#include "proxy/engine/upgrade.h"
#include "tests/protocol/bytes_util.h"

namespace dbward::proxy::engine {
namespace {

using protocol::testutil::Bytes;
using protocol::testutil::FromHex;
using protocol::testutil::StrBytes;
using State = BackendUpgrade::State;
namespace my = protocol::mysql;
namespace tds = protocol::tds;

struct Sink final : UpgradeSink {
  void SendToBackend(std::span<const uint8_t> b) override { sent.insert(sent.end(), b.begin(), b.end()); }
  void ReadBackend(bool on) override { reading = on; }
  void StartBackendTls(TlsTransport t) override {
    tls_started = true;
    transport = t;
  }
  Bytes sent;
  bool reading = false;
  bool tls_started = false;
  TlsTransport transport = TlsTransport::kStream;
};

State Feed(BackendUpgrade& u, const Bytes& b) {
  ByteQueue q;
  q.Append(b);
  return u.OnData(q);
}

TEST(PgUpgrade, SslRequestThenOneByte) {
  Sink sink;
  auto u = BackendUpgrade::New({.protocol = Protocol::kPostgres}, sink);
  EXPECT_EQ(u->OnConnected("db:5432"), State::kWaiting);
  EXPECT_EQ(sink.sent, protocol::pg::EncodeSslRequest());
  EXPECT_TRUE(sink.reading);
  EXPECT_STREQ(u->awaiting(), "answer to SSLRequest");
  EXPECT_EQ(Feed(*u, StrBytes("S")), State::kTls);
  EXPECT_TRUE(sink.tls_started);
  EXPECT_FALSE(sink.reading);
  EXPECT_EQ(u->server_info(), "PostgreSQL (SSLRequest answered 'S')");
  EXPECT_EQ(u->OnTlsReady(), State::kDone);
}

TEST(PgUpgrade, AnswersOtherThanSFailClosed) {
  struct Case {
    std::string answer;
    UpgradeFailure::Kind kind;
    Cause cause;
    std::string fact;
  } cases[] = {
      {"N", UpgradeFailure::Kind::kRefused, Cause::kBackendNoTls, "the server answered 'N' to SSLRequest"},
      {"E", UpgradeFailure::Kind::kNotProtocol, Cause::kNotPostgres, "with an error message instead of 'S' or 'N'"},
      {"x", UpgradeFailure::Kind::kNotProtocol, Cause::kNotPostgres, "starts with byte 0x78"},
      {"S\x16", UpgradeFailure::Kind::kNotProtocol, Cause::kPlaintextAfterSslAnswer, "CVE-2021-23222"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.answer);
    Sink sink;
    auto u = BackendUpgrade::New({.protocol = Protocol::kPostgres}, sink);
    u->OnConnected("db:5432");
    EXPECT_EQ(Feed(*u, StrBytes(c.answer)), State::kFailed);
    EXPECT_FALSE(sink.tls_started);
    EXPECT_EQ(u->failure().kind, c.kind);
    EXPECT_EQ(u->failure().cause, c.cause);
    EXPECT_NE(u->failure().fact.find(c.fact), std::string::npos) << u->failure().fact;
    EXPECT_NE(u->failure().error.find("db:5432"), std::string::npos) << u->failure().error;
  }
}

TEST(PgUpgrade, DirectTlsStartsAtOnce) {
  Sink sink;
  auto u = BackendUpgrade::New({.protocol = Protocol::kPostgres, .pg_direct = true}, sink);
  EXPECT_EQ(u->OnConnected("db:5432"), State::kTls);
  EXPECT_TRUE(sink.sent.empty());
}

// "mysql_8.0.18_initial_handshake_v10_caching_sha2_payload", launchbadge/sqlx.
constexpr std::string_view kGreeting80Hex =
    "0a382e302e31380019000000113461423063066700ffffff0200ffc71500000000000000000000744c03730f5b340d6c342e200063"
    "616368696e675f736861325f70617373776f726400";

TEST(MysqlUpgrade, WithoutAClientTheSslRequestComesFromTheGreeting) {
  Sink sink;
  MysqlUpgrade u(sink);
  EXPECT_EQ(u.OnConnected("db:3306"), State::kWaiting);
  EXPECT_EQ(Feed(u, my::EncodePacket(0, FromHex(kGreeting80Hex))), State::kGreeting);
  EXPECT_EQ(u.server_info(), "MySQL 8.0.18");
  EXPECT_EQ(u.Proceed(), State::kTls);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(sink.sent, 1000, &p).ok());
  EXPECT_EQ(p.seq, 1);
  my::HandshakeResponse r;
  ASSERT_TRUE(my::ParseHandshakeResponse(p.payload, &r).ok());
  EXPECT_TRUE(r.ssl_request);
  EXPECT_TRUE(r.capabilities & my::kClientProtocol41);
}

TEST(MysqlUpgrade, GreetingWithAnotherSequenceIdIsNotMysql) {
  Sink sink;
  MysqlUpgrade u(sink);
  u.OnConnected("db:3306");
  EXPECT_EQ(Feed(u, my::EncodePacket(1, FromHex(kGreeting80Hex))), State::kFailed);
  EXPECT_EQ(u.failure().kind, UpgradeFailure::Kind::kNotProtocol);
}

TEST(MysqlUpgrade, ErrInsteadOfAGreetingIsDeniedWithTheServersWords) {
  Sink sink;
  MysqlUpgrade u(sink);
  u.OnConnected("db:3306");
  const Bytes err = my::EncodePacket(0, my::EncodeErr(1130, "", "Host '10.0.0.9' is not allowed to connect"));
  EXPECT_EQ(Feed(u, err), State::kFailed);
  EXPECT_EQ(u.failure().kind, UpgradeFailure::Kind::kDenied);
  EXPECT_EQ(u.failure().server_message, err);
  EXPECT_NE(u.failure().fact.find("ERROR 1130: Host '10.0.0.9' is not allowed to connect"), std::string::npos);
}

// "sqlserver2017_prelogin_response_payload_encrypt_on_no_instopt", elixir-ecto/tds.
constexpr std::string_view kSql2017AnswerPayloadHex =
    "00001a00060100200001030021000004002100010600220001ff0e0007eb0000010000";

Bytes Answer(uint8_t encryption) {
  tds::Prelogin p;
  EXPECT_TRUE(tds::ParsePrelogin(FromHex(kSql2017AnswerPayloadHex), &p).ok());
  p.SetEncryption(encryption);
  return tds::EncodeMessage(tds::kTabularResult, tds::EncodePrelogin(p));
}

TEST(TdsUpgrade, EncryptionOnOrReqStartsTlsInsidePrelogin) {
  for (uint8_t answer : {tds::kEncryptOn, tds::kEncryptReq, static_cast<uint8_t>(tds::kEncryptOn | 0x80)}) {
    Sink sink;
    TdsUpgrade u(sink, tds::DefaultClientPrelogin(), false);
    EXPECT_EQ(u.OnConnected("db:1433"), State::kWaiting);
    EXPECT_EQ(Feed(u, Answer(answer)), State::kTls) << int(answer);
    EXPECT_EQ(sink.transport, TlsTransport::kTdsPrelogin);
    EXPECT_EQ(u.OnTlsReady(), State::kDone);
  }
}

TEST(TdsUpgrade, EncryptionOffOrNotSupFailsClosed) {
  for (uint8_t answer : {tds::kEncryptOff, tds::kEncryptNotSup}) {
    Sink sink;
    TdsUpgrade u(sink, tds::DefaultClientPrelogin(), false);
    u.OnConnected("db:1433");
    EXPECT_EQ(Feed(u, Answer(answer)), State::kFailed);
    EXPECT_EQ(u.failure().kind, UpgradeFailure::Kind::kRefused);
    EXPECT_EQ(u.failure().cause, Cause::kBackendNoTls);
    EXPECT_NE(u.failure().fact.find("ENCRYPTION=" + tds::EncryptionName(answer)), std::string::npos);
  }
}

TEST(TdsUpgrade, StrictSendsPreloginInsideTls) {
  Sink sink;
  TdsUpgrade u(sink, tds::DefaultClientPrelogin(), true);
  EXPECT_EQ(u.OnConnected("db:1433"), State::kTls);
  EXPECT_TRUE(sink.sent.empty());
  EXPECT_EQ(u.OnTlsReady(), State::kWaiting);
  EXPECT_FALSE(sink.sent.empty());
  EXPECT_EQ(Feed(u, Answer(tds::kEncryptNotSup)), State::kDone);
  EXPECT_NE(u.server_info().find("TDS 8.0"), std::string::npos);
}

TEST(TdsUpgrade, AnswerOfAnotherTypeIsNotTds) {
  Sink sink;
  TdsUpgrade u(sink, tds::DefaultClientPrelogin(), false);
  u.OnConnected("db:1433");
  EXPECT_EQ(Feed(u, tds::EncodeMessage(tds::kPrelogin, tds::EncodePrelogin(tds::DefaultClientPrelogin()))),
            State::kFailed);
  EXPECT_EQ(u.failure().cause, Cause::kNotTds);
}

}  // namespace
}  // namespace dbward::proxy::engine

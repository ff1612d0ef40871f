// The MySQL engine, byte by byte through a fake driver: the greeting from the
// backend's upgrade, the client's SSLRequest or HandshakeResponse, sequence
// ids across legs of different length, caching_sha2 full authentication
// through dbward's RSA key, ERR packets in every place.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "protocol/mysql.h"
#include "tests/proxy/engine_test_util.h"
#include "tls/rsa_key.h"

namespace dbward::proxy::engine::testing {
namespace {

namespace my = protocol::mysql;
using protocol::testutil::Concat;
using protocol::testutil::FromHex;
using protocol::testutil::Prefix;
using protocol::testutil::Suffix;

// Copied from vectors/mysql.json (payloads without the packet header):
// "mysql_8.0.18_initial_handshake_v10_caching_sha2_payload", launchbadge/sqlx.
constexpr std::string_view kGreeting80Hex =
    "0a382e302e31380019000000113461423063066700ffffff0200ffc71500000000000000000000744c03730f5b340d6c342e200063"
    "616368696e675f736861325f70617373776f726400";
// "mariadb_10.4.7_initial_handshake_v10_payload", launchbadge/sqlx: no CLIENT_SSL.
constexpr std::string_view kGreetingMariaDbHex =
    "0a352e352e352d31302e342e372d4d6172696144422d313a31302e342e372b6d617269617e62696f6e6963000b00000074364c5c6a"
    "22645300fef7080200ff8115000000000000070000005531344f706839223c48356e006d7973716c5f6e61746976655f7061737377"
    "6f726400";
// "mysql_client_sslrequest_ripped_from_wire" (the whole packet), tetlowgm/sslscan.
constexpr std::string_view kSslRequestPacketHex =
    "2000000185ae7f0000000001210000000000000000000000000000000000000000000000";
// "mysql_8.0.21_client_handshake_response41_caching_sha2_empty_auth_payload", pingcap/tidb.
constexpr std::string_view kResponse8021Hex =
    "85a6ff0100000001210000000000000000000000000000000000000000000000726f6f74000063616368696e675f736861325f7061"
    "7373776f72640079045f706964053737303836095f706c6174666f726d067838365f3634035f6f73054c696e75780c5f636c69656e"
    "745f6e616d65086c69626d7973716c076f735f757365720a6e756c6c6e6f746e696c0f5f636c69656e745f76657273696f6e06382e"
    "302e32310c70726f6772616d5f6e616d65056d7973716c";

Bytes Packet(uint8_t seq, const Bytes& payload) { return my::EncodePacket(seq, payload); }
const Bytes kGreeting = Packet(0, FromHex(kGreeting80Hex));
const Bytes kResponse = FromHex(kResponse8021Hex);

class MysqlEngineTest : public ::testing::Test {
 protected:
  MysqlEngineTest() : h_(Protocol::kMysql) {}
  void SetUp() override {
    h_.Start();
    h_.BackendConnected();
  }
  // Greeting forwarded, plaintext response in, backend TLS up.
  void ToAuthentication() {
    d().FromBackend(kGreeting);
    d().FromClient(Packet(1, kResponse));
    h_.BackendTlsReady(Facts());
    h_.Take();
  }
  FakeDriver& d() { return h_.driver; }
  Harness h_;
};

TEST_F(MysqlEngineTest, ConnectsAtOnceAndForwardsTheGreetingWithTheBackendsScramble) {
  EXPECT_EQ(Describe(h_.Take()), "connect");
  EXPECT_TRUE(d().backend_reading);
  d().FromBackend(kGreeting);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(d().to_client, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 0);
  my::Greeting g;
  ASSERT_TRUE(my::ParseGreeting(p.payload, &g).ok());
  EXPECT_TRUE(g.capabilities & my::kClientSsl) << "offered: this listener has client_tls";
  my::Greeting orig;
  ASSERT_TRUE(my::ParseGreeting(FromHex(kGreeting80Hex), &orig).ok());
  EXPECT_EQ(g.scramble, orig.scramble);
  EXPECT_FALSE(d().backend_reading) << "the backend must not speak before our SSLRequest";
  EXPECT_TRUE(d().client_reading);
}

TEST(MysqlEngineNoClientTls, GreetingDoesNotOfferTls) {
  Harness h(Protocol::kMysql, false);
  h.Start();
  h.BackendConnected();
  h.driver.FromBackend(kGreeting);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(h.driver.to_client, my::kMaxPreAuthPayload, &p).ok());
  my::Greeting g;
  ASSERT_TRUE(my::ParseGreeting(p.payload, &g).ok());
  EXPECT_FALSE(g.capabilities & my::kClientSsl);
}

TEST_F(MysqlEngineTest, GreetingSplitAtEveryOffset) {
  for (size_t cut = 1; cut < kGreeting.size(); cut++) {
    Harness h(Protocol::kMysql);
    h.Start();
    h.BackendConnected();
    h.driver.FromBackend(Prefix(kGreeting, cut));
    EXPECT_TRUE(h.driver.to_client.empty()) << cut;
    h.driver.FromBackend(Suffix(kGreeting, cut));
    EXPECT_EQ(h.driver.to_client.size(), kGreeting.size()) << cut;
  }
}

TEST_F(MysqlEngineTest, HandshakeResponseSplitAtEveryOffset) {
  const Bytes response = Packet(1, kResponse);
  for (size_t cut = 1; cut < response.size(); cut++) {
    Harness h(Protocol::kMysql);
    h.Start();
    h.BackendConnected();
    h.driver.FromBackend(kGreeting);
    h.Take();
    h.driver.FromClient(Prefix(response, cut));
    EXPECT_TRUE(h.Take().empty()) << cut;
    h.driver.FromClient(Suffix(response, cut));
    EXPECT_EQ(Describe(h.Take()), "send-backend(36) start-backend-tls") << cut;
    EXPECT_EQ(h.engine->facts().user, "root") << cut;
    h.BackendTlsReady(Facts());
    EXPECT_EQ(Describe(h.Take()), "send-backend(" + std::to_string(4 + kResponse.size()) + ")") << cut;
  }
}

TEST_F(MysqlEngineTest, PlaintextClientsResponseGoesOverVerifiedTlsWithShiftedSequenceIds) {
  d().FromBackend(kGreeting);
  h_.Take();
  d().FromClient(Packet(1, kResponse));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-backend(36) start-backend-tls");
  EXPECT_EQ(actions[0].bytes, Packet(1, my::SslRequestFrom(kResponse))) << "SSLRequest, sequence id 1";
  EXPECT_EQ(h_.engine->facts().user, "root");
  EXPECT_EQ(h_.engine->facts().client_library, "libmysql 8.0.21");
  EXPECT_EQ(h_.engine->facts().application, "mysql");

  h_.BackendTlsReady(Facts());
  actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-backend(" + std::to_string(4 + kResponse.size()) + ")");
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(actions[0].bytes, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 2) << "one more packet on the backend leg (our SSLRequest)";
  my::HandshakeResponse r;
  ASSERT_TRUE(my::ParseHandshakeResponse(p.payload, &r).ok());
  EXPECT_TRUE(r.capabilities & my::kClientSsl);

  // The backend's OK (sequence 3) reaches the client as sequence 2.
  d().FromBackend(Packet(3, {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}));
  const Bytes down = Suffix(d().to_client, kGreeting.size());
  ASSERT_TRUE(my::DecodePacket(down, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 2);
  EXPECT_TRUE(d().handed_off);
}

TEST_F(MysqlEngineTest, SslRequestAndClientHelloInOneReadHandTheHelloToTls) {
  h_.Take();
  d().FromBackend(kGreeting);
  const Bytes hello = {0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5};
  d().FromClient(Concat(FromHex(kSslRequestPacketHex), hello));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-client(" + std::to_string(kGreeting.size()) + ") start-client-tls");
  EXPECT_EQ(d().client_tls_start, hello);
  h_.ClientTlsReady(Facts());
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kTls);
  // Inside TLS the response comes with sequence id 2 and goes on with the same.
  d().FromClient(Packet(2, kResponse));
  h_.BackendTlsReady(Facts());
  my::Packet p;
  const Bytes up = Suffix(d().to_backend, 36);
  ASSERT_TRUE(my::DecodePacket(up, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 2);
}

TEST_F(MysqlEngineTest, PlaintextBehindSslRequestIsRefused) {
  d().FromBackend(kGreeting);
  d().FromClient(Concat(FromHex(kSslRequestPacketHex), Packet(2, kResponse)));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kPlaintextAfterRequest);
}

TEST_F(MysqlEngineTest, ErrInsteadOfTheGreetingReachesTheClientAsItIs) {
  const Bytes err = Packet(0, my::EncodeErr(1040, "", "Too many connections"));
  d().FromBackend(err);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendError);
  EXPECT_EQ(d().failure_message, err);
}

TEST_F(MysqlEngineTest, BackendWithoutTlsFailsClosedWithAnErrInPlaceOfTheGreeting) {
  d().FromBackend(Packet(0, FromHex(kGreetingMariaDbHex)));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendTlsRefused);
  EXPECT_NE(d().failure->error.find("does not offer TLS (no CLIENT_SSL in its greeting); dbward never falls back"),
            std::string::npos);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(d().failure_message, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 0);
  my::ErrInfo e;
  ASSERT_TRUE(my::ParseErr(p.payload, &e));
  EXPECT_EQ(e.code, 1043);
  EXPECT_EQ(e.sqlstate, "") << "no SQLSTATE before protocol 4.1 is agreed";
}

TEST_F(MysqlEngineTest, LyingPacketLengthIsRefused) {
  d().FromBackend(kGreeting);
  d().FromClient({0xff, 0xff, 0xff, 0x01});
  ASSERT_TRUE(d().failure);
  EXPECT_NE(d().failure->error.find("exceeds the connection-phase limit"), std::string::npos);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(d().failure_message, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 2) << "the answer to the client's packet (sequence id 1)";
}

TEST(MysqlEnginePolicy, PlaintextDeniedIs3159) {
  Harness h(Protocol::kMysql);
  h.listener.plaintext_clients = false;
  h.Start();
  h.BackendConnected();
  h.driver.FromBackend(kGreeting);
  h.driver.FromClient(Packet(1, kResponse));
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->outcome, Outcome::kRefused);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(h.driver.failure_message, my::kMaxPreAuthPayload, &p).ok());
  my::ErrInfo e;
  ASSERT_TRUE(my::ParseErr(p.payload, &e));
  EXPECT_EQ(e.code, 3159);
}

TEST(MysqlEnginePolicy, PolicyDenialIs3159NamingTheRule) {
  Harness h(Protocol::kMysql);
  h.driver.admission.denied = true;
  h.driver.admission.error = "listener my: policy[2] requires tls, this connection is plaintext";
  h.driver.admission.required = ProtectionLevel::kTls;
  h.Start();
  h.BackendConnected();
  h.driver.FromBackend(kGreeting);
  h.driver.FromClient(Packet(1, kResponse));
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->cause, Cause::kPolicyDenied);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(h.driver.failure_message, my::kMaxPreAuthPayload, &p).ok());
  EXPECT_EQ(p.seq, 2);
  my::ErrInfo e;
  ASSERT_TRUE(my::ParseErr(p.payload, &e));
  EXPECT_EQ(e.code, 3159);
  EXPECT_NE(e.message.find("policy[2] requires tls"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("ssl-mode=REQUIRED"), std::string::npos) << e.message;
}

TEST(MysqlEnginePolicy, ClientCertificateRefusalIs1045) {
  Harness h(Protocol::kMysql);
  h.driver.admission.denied = true;
  h.driver.admission.cause = Cause::kClientCertNotAllowed;
  h.driver.admission.error = "the client certificate (CN=intruder) is valid but not in client_tls.allow";
  h.Start();
  h.BackendConnected();
  h.driver.FromBackend(kGreeting);
  h.driver.FromClient(Packet(1, kResponse));
  ASSERT_TRUE(h.driver.failure);
  my::Packet p;
  ASSERT_TRUE(my::DecodePacket(h.driver.failure_message, my::kMaxPreAuthPayload, &p).ok());
  my::ErrInfo e;
  ASSERT_TRUE(my::ParseErr(p.payload, &e));
  EXPECT_EQ(e.code, 1045);
  EXPECT_EQ(e.sqlstate, "28000");
}

TEST_F(MysqlEngineTest, WrongPasswordIsAuthFailed) {
  ToAuthentication();
  const Bytes err = Packet(3, my::EncodeErr(1045, "28000", "Access denied for user 'root'"));
  d().FromBackend(err);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kAuthFailed);
  EXPECT_EQ(d().to_client.back(), err.back());
}

// caching_sha2_password "full authentication" on a plaintext client leg: the
// client asks for the server's RSA key; dbward's answers, and the password
// the client encrypts to it reaches the backend in clear over TLS.
TEST(MysqlEngineRsa, FullAuthenticationThroughDbwardsKey) {
  std::string error;
  std::shared_ptr<tls::RsaKey> key = tls::RsaKey::Generate(2048, &error);
  ASSERT_TRUE(key) << error;
  Harness h(Protocol::kMysql);
  EngineContext context;
  context.listener = &h.listener;
  context.client_tls = true;
  context.rsa_key = key.get();
  h.engine = NewEngine(h.driver, context);
  h.driver.Bind(h.engine.get());
  h.engine->Start();
  h.BackendConnected();
  h.driver.FromBackend(kGreeting);
  h.driver.FromClient(Packet(1, kResponse));
  h.BackendTlsReady(Facts());
  h.Take();
  // Backend (sequence 3, seeing TLS): "perform full authentication".
  h.driver.FromBackend(Packet(3, {0x01, 0x04}));
  size_t client_before = h.driver.to_client.size();
  h.driver.FromClient(Packet(3, {0x02}));  // "send me your public key"
  my::Packet p;
  const Bytes wire1 = Suffix(h.driver.to_client, client_before);
  ASSERT_TRUE(my::DecodePacket(wire1, 100000, &p).ok());
  EXPECT_EQ(p.seq, 4);
  ASSERT_EQ(p.payload[0], 0x01);
  std::string pem(p.payload.begin() + 1, p.payload.end());
  EXPECT_EQ(pem, key->public_pem());

  // The client encrypts password XOR scramble with that key.
  my::Greeting g;
  ASSERT_TRUE(my::ParseGreeting(FromHex(kGreeting80Hex), &g).ok());
  std::string password = "sha2_pw";
  Bytes plain(password.begin(), password.end());
  plain.push_back(0);
  for (size_t i = 0; i < plain.size(); i++) plain[i] ^= g.scramble[i % g.scramble.size()];
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  bssl::UniquePtr<EVP_PKEY> pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(pub);
  bssl::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(pub.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING), 1);
  size_t out_len = 0;
  ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, plain.data(), plain.size()), 1);
  Bytes sealed(out_len);
  ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), sealed.data(), &out_len, plain.data(), plain.size()), 1);
  sealed.resize(out_len);
  size_t backend_before = h.driver.to_backend.size();
  h.driver.FromClient(Packet(5, sealed));
  const Bytes wire2 = Suffix(h.driver.to_backend, backend_before);
  ASSERT_TRUE(my::DecodePacket(wire2, 1000, &p).ok());
  EXPECT_EQ(p.seq, 4) << "the backend expects the id after its own";
  EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), password + '\0');
  EXPECT_EQ(h.engine->facts().note, "caching_sha2_password full authentication through dbward's RSA key");
  // The backend's OK (5) is the answer to the client's packet 5: 6.
  h.driver.FromBackend(Packet(5, {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}));
  const Bytes ok = Suffix(h.driver.to_client, client_before + 4 + pem.size() + 1);
  ASSERT_TRUE(my::DecodePacket(ok, 1000, &p).ok());
  EXPECT_EQ(p.seq, 6);
  EXPECT_TRUE(h.driver.handed_off);
}

}  // namespace
}  // namespace dbward::proxy::engine::testing

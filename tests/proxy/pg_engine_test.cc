// The PostgreSQL engine, byte by byte through a fake driver: every first
// message, TLS on either leg, the backend's answer to SSLRequest, SCRAM-PLUS
// withdrawal, the hand-off after AuthenticationOk, split and pipelined input,
// lying lengths.
#include <gtest/gtest.h>

#include "protocol/builder.h"
#include "protocol/postgres.h"
#include "tests/proxy/engine_test_util.h"

namespace dbward::proxy::engine::testing {
namespace {

namespace pg = protocol::pg;
using protocol::testutil::Concat;
using protocol::testutil::FromHex;
using protocol::testutil::Prefix;
using protocol::testutil::StrBytes;
using protocol::testutil::Suffix;

// suricata rust/src/pgsql/parser.rs test_parse_request (vectors/pgsql.json).
constexpr std::string_view kStartupOryxHex =
    "000000260003000075736572006f727978006461746162617365006d61696c73746f72650000";
// suricata test_parse_sasl_authentication_message: what PostgreSQL >= 11 offers over TLS.
constexpr std::string_view kAuthSaslHex =
    "520000002a0000000a534352414d2d5348412d3235362d504c555300534352414d2d5348412d3235360000";

Bytes Startup(const std::string& user, const std::string& app = "") {
  protocol::Builder b;
  b.Prefixed(protocol::Builder::Width::kU32BE, protocol::Builder::Counts::kInclusive, [&] {
    b.U32BE(pg::kProtocol3).CString("user").CString(user).CString("database").CString("app");
    if (!app.empty()) b.CString("application_name").CString(app);
    b.U8(0);
  });
  return b.Take();
}

Bytes Auth(uint32_t code) {
  protocol::Builder b;
  b.U8('R').U32BE(8).U32BE(code);
  return b.Take();
}

Bytes Message(char type, std::string_view body) {
  protocol::Builder b;
  b.U8(static_cast<uint8_t>(type)).U32BE(static_cast<uint32_t>(4 + body.size())).Text(body);
  return b.Take();
}

const Bytes kSslRequest = pg::EncodeSslRequest();

class PgEngineTest : public ::testing::Test {
 protected:
  PgEngineTest() : h_(Protocol::kPostgres) {}
  void SetUp() override { h_.Start(); }
  // A plaintext client whose startup message went to a backend leg that is now
  // verified TLS; the backend's auth messages come next.
  void ToAuthentication(const Bytes& startup = Startup("app_user", "billing")) {
    d().FromClient(startup);
    h_.BackendConnected();
    d().FromBackend(StrBytes("S"));
    h_.BackendTlsReady(Facts("", {0xbb}));
    h_.Take();
  }
  FakeDriver& d() { return h_.driver; }
  Harness h_;
};

TEST_F(PgEngineTest, PlaintextClientGetsAVerifiedTlsBackendLeg) {
  EXPECT_TRUE(d().client_reading);
  d().FromClient(Startup("app_user", "billing"));
  EXPECT_EQ(Describe(h_.Take()), "connect");
  EXPECT_FALSE(d().client_reading) << "nothing more is read until the backend is there";
  const ClientFacts& f = h_.engine->facts();
  EXPECT_EQ(f.user, "app_user");
  EXPECT_EQ(f.database, "app");
  EXPECT_EQ(f.application, "billing");
  EXPECT_EQ(f.protocol_version, "3.0");
  EXPECT_EQ(f.encryption, ClientEncryption::kNone);
  EXPECT_TRUE(f.bypass.Has(BypassReason::kPlaintext));

  h_.BackendConnected();
  EXPECT_EQ(d().to_backend, kSslRequest);
  d().FromBackend(StrBytes("S"));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-backend(8) start-backend-tls");
  EXPECT_EQ(actions[1].transport, TlsTransport::kStream);

  h_.BackendTlsReady(Facts());
  EXPECT_EQ(Suffix(d().to_backend, 8), Startup("app_user", "billing")) << "the startup message goes on as it came";
}

TEST_F(PgEngineTest, AWarmBackendLegTakesTheStartupMessageWithNoSslRequest) {
  EXPECT_TRUE(h_.engine->TakesWarmBackend());
  d().FromClient(Startup("app_user", "billing"));
  EXPECT_EQ(Describe(h_.Take()), "connect");
  // The leg was connected, upgraded and verified before this client came.
  h_.engine->OnBackendWarm("10.0.0.5:5432", Facts());
  d().Settle();
  EXPECT_EQ(d().to_backend, Startup("app_user", "billing")) << "no SSLRequest: the leg is already TLS";
  EXPECT_TRUE(d().backend_reading);
}

TEST_F(PgEngineTest, StartupSplitAtEveryOffsetGivesTheSameActions) {
  const Bytes startup = FromHex(kStartupOryxHex);
  for (size_t cut = 1; cut < startup.size(); cut++) {
    Harness h(Protocol::kPostgres);
    h.Start();
    h.driver.FromClient(Prefix(startup, cut));
    EXPECT_TRUE(h.driver.actions.empty()) << cut;
    h.driver.FromClient(Suffix(startup, cut));
    EXPECT_EQ(Describe(h.driver.actions), "connect") << cut;
    EXPECT_EQ(h.engine->facts().user, "oryx");
    EXPECT_EQ(h.engine->facts().database, "mailstore");
  }
}

TEST_F(PgEngineTest, PipelinedPasswordFollowsTheStartupMessageInOrder) {
  const Bytes password = Message('p', std::string("secret") + '\0');
  d().FromClient(Concat(Startup("u"), password));
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts());
  EXPECT_EQ(Suffix(d().to_backend, 8), Concat(Startup("u"), password));
}

TEST_F(PgEngineTest, SslRequestIsAcceptedWithClientTls) {
  d().FromClient(kSslRequest);
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-client(1) start-client-tls");
  EXPECT_EQ(actions[0].bytes, StrBytes("S"));
  EXPECT_EQ(actions[1].profile, ClientTlsProfile::kStandard);
  h_.ClientTlsReady(Facts());
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kTls);
  EXPECT_TRUE(h_.engine->facts().bypass.empty());
  d().FromClient(Startup("u"));
  EXPECT_EQ(Describe(h_.Take()), "connect");
}

TEST_F(PgEngineTest, PlaintextBehindSslRequestIsRefused) {
  // CVE-2021-23214: bytes read with the request must not count as encrypted.
  d().FromClient(Concat(kSslRequest, Startup("u")));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "fail(client_error)");
  EXPECT_EQ(actions[0].failure.cause, Cause::kPlaintextAfterRequest);
  EXPECT_TRUE(actions[0].bytes.empty()) << "nothing is said in plaintext to such a client";
}

TEST(PgEngineNoClientTls, SslRequestIsAnsweredNAndThePlaintextStartupProceeds) {
  Harness h(Protocol::kPostgres, /*client_tls=*/false);
  h.Start();
  h.driver.FromClient(kSslRequest);
  EXPECT_EQ(h.driver.to_client, StrBytes("N"));
  h.driver.FromClient(Startup("u"));
  EXPECT_EQ(Describe(h.driver.actions), "send-client(1) connect");
}

TEST_F(PgEngineTest, GssEncRequestIsAnsweredN) {
  d().FromClient(FromHex("0000000804d21630"));
  EXPECT_EQ(d().to_client, StrBytes("N"));
  EXPECT_TRUE(d().client_reading);
}

TEST_F(PgEngineTest, EncryptionRequestInsideTlsIsRefused) {
  d().FromClient(kSslRequest);
  h_.ClientTlsReady(Facts());
  h_.Take();
  d().FromClient(kSslRequest);
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "fail(client_error)");
  EXPECT_FALSE(actions[0].bytes.empty()) << "an ErrorResponse, inside TLS";
}

TEST_F(PgEngineTest, DirectTlsHandsTheClientHelloToTls) {
  const Bytes hello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  d().FromClient(hello);
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "start-client-tls");
  EXPECT_EQ(d().client_tls_start, hello);
  h_.ClientTlsReady(Facts("postgresql"));
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kTlsDirect);
  EXPECT_TRUE(d().client_reading);
}

TEST_F(PgEngineTest, DirectTlsWithoutAlpnIsRefused) {
  d().FromClient({0x16, 0x03, 0x01});
  h_.ClientTlsReady(Facts(""));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "start-client-tls fail(client_error)");
  EXPECT_EQ(actions[1].failure.cause, Cause::kNoAlpn);
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(actions[1].bytes, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.sqlstate, "08P01");
}

TEST(PgEngineNoClientTls, DirectTlsWithoutClientTlsIsRefused) {
  Harness h(Protocol::kPostgres, false);
  h.Start();
  h.driver.FromClient({0x16, 0x03, 0x01});
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->cause, Cause::kNoClientTls);
}

TEST_F(PgEngineTest, CancelRequestGoesToTheBackendOverVerifiedTls) {
  const Bytes cancel = pg::EncodeCancelRequest(4242, 0xdeadbeef);
  d().FromClient(cancel);
  EXPECT_EQ(Describe(h_.Take()), "connect");
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts());
  EXPECT_EQ(Suffix(d().to_backend, 8), cancel);
  EXPECT_TRUE(d().handed_off) << "the server's EOF reaches the client through the relay";
  EXPECT_EQ(h_.engine->facts().note, "cancel request forwarded");
}

TEST_F(PgEngineTest, Protocol32CancelKeysAreForwardedWhole) {
  const Bytes key(32, 0x5a);
  const Bytes cancel = pg::EncodeCancelRequest(7, key);
  d().FromClient(cancel);
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts());
  EXPECT_EQ(Suffix(d().to_backend, 8), cancel);
}

TEST_F(PgEngineTest, MalformedStartupGetsA08P01ErrorResponse) {
  Bytes old = Startup("u");
  old[4] = 0x00;
  old[5] = 0x02;  // protocol 2.0
  d().FromClient(old);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kMalformed);
  EXPECT_NE(d().failure->error.find("unsupported frontend protocol 2.0"), std::string::npos);
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(d().failure_message, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.sqlstate, "08P01");
}

TEST_F(PgEngineTest, LyingStartupLengthIsRefusedBeforeItIsBuffered) {
  d().FromClient({0x00, 0x10, 0x00, 0x00});  // one MiB
  ASSERT_TRUE(d().failure);
  EXPECT_NE(d().failure->error.find("startup packet too long"), std::string::npos);
}

TEST(PgEnginePolicy, PlaintextDeniedGets28000BeforeAnyBackendWork) {
  Harness h(Protocol::kPostgres);
  h.listener.plaintext_clients = false;
  h.Start();
  h.driver.FromClient(Startup("u"));
  ASSERT_EQ(Describe(h.driver.actions), "fail(refused)");
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(h.driver.failure_message, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.sqlstate, "28000");
  EXPECT_EQ(f.hint, "Connect with sslmode=require or stronger.");
}

TEST(PgEnginePolicy, PolicyDenialIs28000WithTheFixBeforeAnyPassword) {
  Harness h(Protocol::kPostgres);
  h.driver.admission.denied = true;
  h.driver.admission.error = "listener pg: policy[1] (legacy) requires tls, this connection is plaintext";
  h.driver.admission.required = ProtectionLevel::kTls;
  h.Start();
  h.driver.FromClient(Startup("u"));
  ASSERT_EQ(Describe(h.driver.actions), "fail(refused)");
  EXPECT_EQ(h.driver.admits, 1);
  EXPECT_EQ(h.driver.failure->cause, Cause::kPolicyDenied);
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(h.driver.failure_message, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.sqlstate, "28000");
  EXPECT_EQ(f.message, "dbward: listener pg: policy[1] (legacy) requires tls, this connection is plaintext");
  EXPECT_EQ(f.hint, "Connect with sslmode=require, or better sslmode=verify-full.");
}

TEST(PgEnginePolicy, ValidatedDenialAsksForVerifyFull) {
  Harness h(Protocol::kPostgres);
  h.driver.admission.denied = true;
  h.driver.admission.error = "policy[1] requires validated";
  h.driver.admission.required = ProtectionLevel::kValidated;
  h.Start();
  h.driver.FromClient(Startup("u"));
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(h.driver.failure_message, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_NE(f.hint.find("sslmode=verify-full and sslrootcert="), std::string::npos) << f.hint;
}

TEST(PgEnginePolicy, ClientCertificateRefusalCarriesItsOwnFix) {
  Harness h(Protocol::kPostgres);
  h.driver.admission.denied = true;
  h.driver.admission.cause = Cause::kClientCertMissing;
  h.driver.admission.error = "listener pg requires a client certificate";
  h.Start();
  h.driver.FromClient(Startup("u"));
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->cause, Cause::kClientCertMissing);
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(h.driver.failure_message, 1000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.hint, "");
}

TEST(PgEnginePolicy, AdmittedClientGoesOn) {
  Harness h(Protocol::kPostgres);
  h.Start();
  h.driver.FromClient(Startup("u"));
  EXPECT_EQ(h.driver.admits, 1);
  EXPECT_FALSE(h.driver.failure);
  EXPECT_EQ(Describe(h.driver.actions), "connect");
}

TEST_F(PgEngineTest, BackendRefusingTlsFailsClosedWithTheReason) {
  d().FromClient(Startup("u"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("N"));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendTlsRefused);
  EXPECT_EQ(d().failure->cause, Cause::kBackendNoTls);
  EXPECT_NE(d().failure->error.find("refused TLS (it answered 'N' to SSLRequest); dbward never falls back to plaintext"),
            std::string::npos);
  pg::Message m;
  ASSERT_TRUE(pg::DecodeMessage(d().failure_message, 10000, &m).ok());
  pg::ErrorFields f;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &f));
  EXPECT_EQ(f.sqlstate, "08006");
}

TEST_F(PgEngineTest, BytesInjectedBehindTheBackendsSAreRefused) {
  // CVE-2021-23222: plaintext behind 'S' could be a man-in-the-middle's.
  d().FromClient(Startup("u"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("SE"));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kPlaintextAfterSslAnswer);
  for (const Action& a : d().actions) EXPECT_NE(a.kind, Action::kStartBackendTls);
}

TEST_F(PgEngineTest, NotPostgresAnswerFailsClosed) {
  d().FromClient(Startup("u"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("H"));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kNotPostgres);
  EXPECT_NE(d().failure->error.find("first byte 0x48"), std::string::npos);
}

TEST_F(PgEngineTest, ScramPlusIsWithdrawnWhenTheCertificatesDiffer) {
  ToAuthentication();
  d().FromBackend(FromHex(kAuthSaslHex));
  EXPECT_EQ(d().to_client, pg::EncodeAuthenticationSasl({"SCRAM-SHA-256"}));
}

TEST_F(PgEngineTest, ScramPlusPassesWhenDbwardPresentsTheBackendsCertificate) {
  d().FromClient(kSslRequest);
  h_.ClientTlsReady(Facts("", {0xbb}));
  d().FromClient(Startup("u"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts("", {0xbb}));
  size_t before = d().to_client.size();
  d().FromBackend(FromHex(kAuthSaslHex));
  EXPECT_EQ(Suffix(d().to_client, before), FromHex(kAuthSaslHex));
  EXPECT_EQ(h_.engine->facts().note, "channel binding passes through (same certificate on both legs)");
}

TEST_F(PgEngineTest, OnlyChannelBindingOfferedFails) {
  ToAuthentication();
  d().FromBackend(pg::EncodeAuthenticationSasl({"SCRAM-SHA-256-PLUS"}));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kChannelBindingOnly);
}

TEST_F(PgEngineTest, AfterAuthenticationOkTheAnswersAreWatchedUntilTheThirdCommandIsAnswered) {
  ToAuthentication();
  const Bytes params = Concat(Concat(Message('S', std::string("client_encoding\0UTF8\0", 21)),
                                     Message('S', std::string("application_name\0psql\0", 22))),
                              Message('Z', "I"));
  d().FromBackend(Concat(Concat(Auth(pg::kAuthSasl + 1), Auth(pg::kAuthOk)), params));
  EXPECT_EQ(d().to_client, Concat(Concat(Auth(pg::kAuthSasl + 1), Auth(pg::kAuthOk)), params));
  EXPECT_TRUE(h_.engine->facts().logged_in);
  EXPECT_EQ(h_.engine->facts().application, "psql");
  // The client's commands go on unread; the answers are watched for a
  // later application_name, three commands long.
  const Bytes query = Message('Q', std::string("SELECT 1\0", 9));
  const Bytes answer = Concat(Message('C', std::string("SELECT 1\0", 9)), Message('Z', "I"));
  for (int i = 0; i < 3; i++) {
    EXPECT_FALSE(d().handed_off) << i;
    d().FromClient(query);
    EXPECT_EQ(Suffix(d().to_backend, d().to_backend.size() - query.size()), query) << i;
    d().FromBackend(answer);
    EXPECT_EQ(Suffix(d().to_client, d().to_client.size() - answer.size()), answer) << i;
  }
  EXPECT_TRUE(d().handed_off);
  EXPECT_TRUE(d().relayed_up.empty()) << "nothing was held back for the relay";
  EXPECT_EQ(h_.engine->facts().application, "psql");
}

TEST_F(PgEngineTest, ApplicationNameSetAfterStartupReachesTheAudit) {
  ToAuthentication();
  d().FromBackend(Concat(Auth(pg::kAuthOk), Message('Z', "I")));
  // As pgJDBC does, in the extended protocol: SET extra_float_digits, then
  // SET application_name; the server reports the new name in a
  // ParameterStatus, whichever way the command was sent.
  auto extended = [](const std::string& sql) {
    std::string parse("\0", 1);
    parse += sql + std::string("\0\0\0", 3);
    return Concat(Concat(Concat(Message('P', parse), Message('B', std::string("\0\0\0\0\0\0\0", 7))),
                         Message('E', std::string("\0\0\0\0\0", 5))),
                  Message('S', ""));
  };
  const Bytes done = Concat(Concat(Concat(Message('1', ""), Message('2', "")), Message('C', std::string("SET\0", 4))),
                            Message('Z', "I"));
  d().FromClient(extended("SET extra_float_digits = 3"));
  d().FromBackend(done);
  EXPECT_FALSE(d().handed_off);
  d().FromClient(extended("SET application_name = 'billing-batch'"));
  const Bytes answer = Concat(Concat(Concat(Message('1', ""), Message('2', "")), Message('C', std::string("SET\0", 4))),
                              Concat(Message('S', std::string("application_name\0billing-batch\0", 31)),
                                     Message('Z', "I")));
  d().FromBackend(answer);
  EXPECT_EQ(h_.engine->facts().application, "billing-batch");
  EXPECT_EQ(Suffix(d().to_client, d().to_client.size() - answer.size()), answer);
  EXPECT_FALSE(d().handed_off);
  d().FromClient(Message('Q', std::string("SELECT 1\0", 9)));
  d().FromBackend(Concat(Message('C', std::string("SELECT 1\0", 9)), Message('Z', "I")));
  EXPECT_TRUE(d().handed_off);
}

TEST_F(PgEngineTest, ABigFirstAnswerHandsOffToTheRelay) {
  ToAuthentication();
  d().FromBackend(Concat(Auth(pg::kAuthOk), Message('Z', "I")));
  Bytes rows;
  for (int i = 0; i < 100; i++) rows = Concat(rows, Message('D', std::string("\0\1\0\0\0\1x", 7)));
  d().FromClient(Message('Q', std::string("SELECT x FROM t\0", 16)));
  d().FromBackend(rows);
  EXPECT_TRUE(d().handed_off) << "the watch reads a bounded number of messages";
  EXPECT_FALSE(d().relayed_down.empty());
  // Every byte still reaches the client: what the engine read, and the
  // rest through the relay.
  EXPECT_EQ(Concat(Suffix(d().to_client, d().to_client.size() - (rows.size() - d().relayed_down.size())),
                   d().relayed_down),
            rows);
}

TEST_F(PgEngineTest, AuthenticationMessagesSplitAtEveryOffset) {
  const Bytes stream = Concat(Concat(FromHex(kAuthSaslHex), Auth(pg::kAuthOk)), Message('Z', "I"));
  for (size_t cut = 1; cut < stream.size(); cut++) {
    Harness h(Protocol::kPostgres);
    h.Start();
    h.driver.FromClient(Startup("u"));
    h.engine->OnBackendConnected("10.0.0.5:5432");
    h.driver.FromBackend(StrBytes("S"));
    h.BackendTlsReady(Facts());
    h.driver.FromBackend(Prefix(stream, cut));
    h.driver.FromBackend(Suffix(stream, cut));
    EXPECT_EQ(h.driver.to_client,
              Concat(Concat(pg::EncodeAuthenticationSasl({"SCRAM-SHA-256"}), Auth(pg::kAuthOk)), Message('Z', "I")))
        << cut;
    EXPECT_TRUE(h.engine->facts().logged_in) << cut;
  }
}

TEST_F(PgEngineTest, WrongPasswordIsAuditedAsAuthFailed) {
  ToAuthentication();
  pg::ErrorFields e;
  e.sqlstate = "28P01";
  e.message = "password authentication failed for user \"u\"";
  const Bytes error = pg::EncodeErrorResponse(e);
  d().FromBackend(error);
  EXPECT_EQ(d().to_client, error) << "the server's own words reach the client";
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kAuthFailed);
}

TEST_F(PgEngineTest, ChannelBindingRefusalOnATlsClientLegGetsAHint) {
  d().FromClient(kSslRequest);
  h_.ClientTlsReady(Facts());
  d().FromClient(Startup("u"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts("", {0xbb}));
  pg::ErrorFields e;
  e.sqlstate = "28000";
  e.message = "SCRAM channel binding negotiation error";
  size_t before = d().to_client.size();
  d().FromBackend(pg::EncodeErrorResponse(e));
  pg::Message m;
  const Bytes down = Suffix(d().to_client, before);
  ASSERT_TRUE(pg::DecodeMessage(down, 10000, &m).ok());
  pg::ErrorFields got;
  ASSERT_TRUE(pg::ParseErrorResponse(m.body, &got));
  EXPECT_NE(got.hint.find("channel_binding=disable"), std::string::npos);
  EXPECT_EQ(got.message, e.message);
}

TEST_F(PgEngineTest, LyingAuthenticationLengthIsAMalformedBackend) {
  ToAuthentication();
  d().FromBackend({'R', 0x00, 0x10, 0x00, 0x00});
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendError);
  EXPECT_EQ(d().failure->cause, Cause::kMalformed);
}

TEST_F(PgEngineTest, ClientAuthenticationBytesPassThroughUntouched) {
  ToAuthentication();
  d().FromBackend(FromHex(kAuthSaslHex));
  size_t before = d().to_backend.size();
  const Bytes initial = Message('p', std::string("SCRAM-SHA-256\0\0\0\0\x05n,,n=", 24));
  d().FromClient(initial);
  EXPECT_EQ(Suffix(d().to_backend, before), initial);
}

}  // namespace
}  // namespace dbward::proxy::engine::testing

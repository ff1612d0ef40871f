// The TDS engine, byte by byte through a fake driver: the client's PRELOGIN
// ENCRYPTION byte deciding the client leg, dbward's own PRELOGIN to the
// backend, login-only TLS and the drivers that skip it, TDS 8.0, and backend
// failures reported as the answer to LOGIN7.
#include <gtest/gtest.h>

#include <algorithm>

#include "protocol/tds.h"
#include "protocol/tds_tokens.h"
#include "tests/proxy/engine_test_util.h"

namespace dbward::proxy::engine::testing {
namespace {

namespace tds = protocol::tds;
using protocol::testutil::Concat;
using protocol::testutil::FromHex;
using protocol::testutil::Prefix;
using protocol::testutil::Suffix;

// Copied from vectors/tds.json. "tedious_prelogin_request_payload_encrypt_on"
// (payload), tediousjs/tedious issue #610.
constexpr std::string_view kTediousPreloginPayloadHex =
    "00001a00060100200001020021000103002200040400260001ff00000001000101000000000000";
// "sqlserver2017_prelogin_response_payload_encrypt_on_no_instopt" (payload),
// elixir-ecto/tds issue #109.
constexpr std::string_view kSql2017AnswerPayloadHex =
    "00001a00060100200001030021000004002100010600220001ff0e0007eb0000010000";
// "mstds_spec_login7_sa" (packet): the MS-TDS 4.2 Login Request example.
constexpr std::string_view kSpecLogin7Hex =
    "1001009000000100880000000200097200100000000000070001000000000000e003000000000000090400005e0008006e000200"
    "7200000072000700800000008000000080000400880000008800000000508be2b78f88000000880000008800000000000000"
    "73006b006f00730074006f0076003100730061004f00530051004c002d00330032004f00440042004300";

Bytes ClientPrelogin(uint8_t encryption) {
  tds::Prelogin p;
  EXPECT_TRUE(tds::ParsePrelogin(FromHex(kTediousPreloginPayloadHex), &p).ok());
  p.SetEncryption(encryption);
  return tds::EncodeMessage(tds::kPrelogin, tds::EncodePrelogin(p));
}

Bytes Answer(uint8_t encryption) {
  tds::Prelogin p;
  EXPECT_TRUE(tds::ParsePrelogin(FromHex(kSql2017AnswerPayloadHex), &p).ok());
  p.SetEncryption(encryption);
  return tds::EncodeMessage(tds::kTabularResult, tds::EncodePrelogin(p));
}

int EncryptionOf(const Bytes& message) {
  tds::Message m;
  EXPECT_TRUE(tds::DecodeMessage(message, tds::kMaxPreLoginMessage, &m).ok());
  tds::Prelogin p;
  EXPECT_TRUE(tds::ParsePrelogin(m.payload, &p).ok());
  return p.encryption();
}

const Bytes kLogin7 = FromHex(kSpecLogin7Hex);

// LOGINACK for TDS 7.2 ("Microsoft SQL Server" 16.0.1000), as in the MS-TDS
// login response example.
const Bytes kLoginAck = FromHex(
    "ad36000172090002164d006900630072006f0073006f00660074002000530051004c00200053006500720076006500720000000000"
    "100003e8");
const Bytes kFinalDone = FromHex("fd000000000000000000000000");

Bytes Tabular(const Bytes& payload) { return tds::EncodeMessage(tds::kTabularResult, payload); }
// A successful login answer.
Bytes LoginOk() { return Tabular(Concat(kLoginAck, kFinalDone)); }

// Started, both legs through PRELOGIN with ENCRYPTION=ON and TLS up: the
// client's LOGIN7 is next.
void NegotiateTls(Harness& h) {
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOn));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  h.ClientTlsReady(Facts());
}

class TdsEngineTest : public ::testing::Test {
 protected:
  TdsEngineTest() : h_(Protocol::kTds) {}
  void SetUp() override { h_.Start(); }
  // The client's PRELOGIN, the backend's answer and its verified TLS.
  void Negotiate(uint8_t client_encryption, uint8_t backend_answer = tds::kEncryptOn) {
    d().FromClient(ClientPrelogin(client_encryption));
    h_.BackendConnected();
    d().FromBackend(Answer(backend_answer));
    h_.BackendTlsReady(Facts());
  }
  FakeDriver& d() { return h_.driver; }
  Harness h_;
};

TEST_F(TdsEngineTest, EncryptOnClientGetsTlsInsidePreloginAndTheBackendAVerifiedLeg) {
  d().FromClient(ClientPrelogin(tds::kEncryptOn));
  EXPECT_EQ(Describe(h_.Take()), "connect");
  h_.BackendConnected();
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions).rfind("send-backend", 0), 0u) << Describe(actions);
  EXPECT_EQ(EncryptionOf(actions[0].bytes), tds::kEncryptOn);
  d().FromBackend(Answer(tds::kEncryptOn));
  actions = h_.Take();
  ASSERT_EQ(Describe(actions), "start-backend-tls");
  EXPECT_EQ(actions[0].transport, TlsTransport::kTdsPrelogin);
  h_.BackendTlsReady(Facts());
  actions = h_.Take();
  ASSERT_EQ(Describe(actions).substr(0, 11), "send-client");
  EXPECT_EQ(EncryptionOf(actions[0].bytes), tds::kEncryptOn);
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[1].kind, Action::kStartClientTls);
  EXPECT_EQ(actions[1].transport, TlsTransport::kTdsPrelogin);
  h_.ClientTlsReady(Facts());
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kTls);
  size_t before = d().to_backend.size();
  d().FromClient(kLogin7);
  EXPECT_EQ(Suffix(d().to_backend, before), kLogin7);
  EXPECT_FALSE(d().handed_off) << "the login is not over before the server answers";
  before = d().to_client.size();
  d().FromBackend(LoginOk());
  EXPECT_EQ(Suffix(d().to_client, before), LoginOk());
  EXPECT_TRUE(d().handed_off);
  EXPECT_EQ(h_.engine->facts().user, "sa");
  EXPECT_EQ(h_.engine->facts().client_library, "ODBC");
  EXPECT_EQ(h_.engine->facts().protocol_version, "7.2");
}

// The backend's PRELOGIN answer, LOGIN7 and the login answer, each split at
// every offset: the engine acts once the message is whole, never before.
TEST(TdsEngineSplit, BackendAnswerLogin7AndLoginAnswerSplitAtEveryOffset) {
  const Bytes answer = Answer(tds::kEncryptOn);
  for (size_t cut = 1; cut < answer.size(); cut++) {
    Harness h(Protocol::kTds);
    h.Start();
    h.driver.FromClient(ClientPrelogin(tds::kEncryptOn));
    h.BackendConnected();
    h.Take();
    h.driver.FromBackend(Prefix(answer, cut));
    EXPECT_TRUE(h.Take().empty()) << cut;
    h.driver.FromBackend(Suffix(answer, cut));
    EXPECT_EQ(Describe(h.Take()), "start-backend-tls") << cut;
  }
  const Bytes ok = LoginOk();
  for (size_t cut = 1; cut < kLogin7.size(); cut += 7) {
    Harness h(Protocol::kTds);
    NegotiateTls(h);
    h.Take();
    h.driver.FromClient(Prefix(kLogin7, cut));
    EXPECT_EQ(h.engine->facts().user, "") << "nothing is judged before LOGIN7 is whole: " << cut;
    h.driver.FromClient(Suffix(kLogin7, cut));
    EXPECT_EQ(Suffix(h.driver.to_backend, h.driver.to_backend.size() - kLogin7.size()), kLogin7) << cut;
    EXPECT_EQ(h.engine->facts().user, "sa") << cut;
    const size_t cut2 = 1 + cut % (ok.size() - 1);
    const size_t before = h.driver.to_client.size();
    h.driver.FromBackend(Prefix(ok, cut2));
    EXPECT_FALSE(h.driver.handed_off) << cut2;
    h.driver.FromBackend(Suffix(ok, cut2));
    EXPECT_TRUE(h.driver.handed_off) << cut2;
    EXPECT_EQ(Suffix(h.driver.to_client, before), ok) << cut2;
  }
}

// A client that sends its first query right behind LOGIN7 (before the
// server answers): the query waits for the relay, in order.
TEST(TdsEngineSplit, AQueryPipelinedBehindLogin7ReachesTheServerAfterIt) {
  Harness h(Protocol::kTds);
  NegotiateTls(h);
  const Bytes batch = tds::EncodeMessage(tds::kSqlBatch, Bytes{'S', 0, 'E', 0, 'L', 0});
  h.driver.FromClient(Concat(kLogin7, batch));
  EXPECT_EQ(Suffix(h.driver.to_backend, h.driver.to_backend.size() - kLogin7.size()), kLogin7);
  h.driver.FromBackend(LoginOk());
  EXPECT_TRUE(h.driver.handed_off);
  // Whatever the engine did not send itself went to the relay, behind LOGIN7.
  Bytes sent_after = Suffix(h.driver.to_backend, h.driver.to_backend.size() - kLogin7.size());
  Bytes up = Concat(Suffix(sent_after, kLogin7.size()), h.driver.relayed_up);
  EXPECT_EQ(up, batch);
}

TEST_F(TdsEngineTest, PreloginSplitAtEveryOffset) {
  const Bytes prelogin = ClientPrelogin(tds::kEncryptOn);
  for (size_t cut = 1; cut < prelogin.size(); cut++) {
    Harness h(Protocol::kTds);
    h.Start();
    h.driver.FromClient(Prefix(prelogin, cut));
    EXPECT_TRUE(h.driver.actions.empty()) << cut;
    h.driver.FromClient(Suffix(prelogin, cut));
    EXPECT_EQ(Describe(h.driver.actions), "connect") << cut;
  }
}

TEST_F(TdsEngineTest, LoginOnlyClientEncryptsLogin7ThenReturnsToPlaintext) {
  Negotiate(tds::kEncryptOff);
  auto actions = h_.Take();
  EXPECT_EQ(EncryptionOf(d().to_client), tds::kEncryptOff);
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kLoginOnly);
  EXPECT_TRUE(h_.engine->facts().bypass.Has(BypassReason::kLoginOnly));
  // The next packet is a PRELOGIN carrying the TLS handshake: login-only TLS.
  const Bytes hello = tds::EncodeMessage(tds::kPrelogin, Bytes{0x16, 0x03, 0x01, 0x00, 0x01, 0x01});
  d().FromClient(hello);
  actions = h_.Take();
  ASSERT_EQ(Describe(actions), "start-client-tls");
  EXPECT_EQ(d().client_tls_start, hello);
  h_.ClientTlsReady(Facts());
  d().FromClient(kLogin7);
  EXPECT_EQ(Describe(h_.Take()), "end-client-tls send-backend(144)");
  d().FromBackend(LoginOk());
  EXPECT_EQ(Describe(h_.Take()), "send-client(78) hand-off");
}

TEST_F(TdsEngineTest, DriversThatSkipLoginOnlyTlsAreAuditedAsPlaintext) {
  Negotiate(tds::kEncryptOff);
  h_.Take();
  d().FromClient(kLogin7);  // tedious with encrypt: false
  EXPECT_EQ(Describe(h_.Take()), "send-backend(144)");
  d().FromBackend(LoginOk());
  EXPECT_EQ(Describe(h_.Take()), "send-client(78) hand-off");
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kNone);
  EXPECT_TRUE(h_.engine->facts().bypass.Has(BypassReason::kPlaintext));
  EXPECT_EQ(h_.engine->facts().note, "client answered ENCRYPT_OFF and sent LOGIN7 without login-only TLS");
}

TEST(TdsEnginePolicy, NotSupClientOnADenyingListenerHearsReqAndIsRefused) {
  Harness h(Protocol::kTds);
  h.listener.plaintext_clients = false;
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptNotSup));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  EXPECT_EQ(EncryptionOf(h.driver.to_client), tds::kEncryptReq);
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->outcome, Outcome::kRefused);
  EXPECT_EQ(h.driver.failure->cause, Cause::kPlaintextDenied);
}

TEST(TdsEnginePolicy, RequireClientEncryptionTurnsOffIntoReq) {
  Harness h(Protocol::kTds);
  h.listener.require_client_encryption = true;
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOff));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  EXPECT_EQ(EncryptionOf(h.driver.to_client), tds::kEncryptReq);
  EXPECT_EQ(h.engine->facts().encryption, ClientEncryption::kTls);
}

TEST_F(TdsEngineTest, StrictClientStartsTlsFirstThenPreloginInside) {
  d().FromClient({0x16, 0x03, 0x01, 0x00});
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "start-client-tls");
  EXPECT_EQ(actions[0].profile, ClientTlsProfile::kTdsStrict);
  h_.ClientTlsReady(Facts("tds/8.0"));
  EXPECT_EQ(h_.engine->facts().encryption, ClientEncryption::kTlsStrict);
  // go-mssqldb sends 0x04 ("strict") in this PRELOGIN: echoed, never a second TLS layer.
  d().FromClient(ClientPrelogin(0x04));
  h_.BackendConnected();
  d().FromBackend(Answer(tds::kEncryptOn));
  h_.BackendTlsReady(Facts());
  actions = h_.Take();
  EXPECT_EQ(EncryptionOf(d().to_client), 0x04);
  for (const Action& a : actions) EXPECT_NE(a.kind, Action::kStartClientTls);
}

TEST(TdsEngineStrictBackend, PreloginGoesInsideTheBackendsTls) {
  Harness h(Protocol::kTds);
  h.listener.backend_tls.tds_strict = true;
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOn));
  h.BackendConnected();
  auto actions = h.Take();
  ASSERT_EQ(Describe(actions), "connect start-backend-tls");
  EXPECT_EQ(actions[1].transport, TlsTransport::kStream);
  h.BackendTlsReady(Facts("tds/8.0"));
  EXPECT_EQ(EncryptionOf(h.driver.to_backend), tds::kEncryptOn);
  h.driver.FromBackend(Answer(tds::kEncryptNotSup));  // negotiates nothing inside TLS
  EXPECT_EQ(EncryptionOf(h.driver.to_client), tds::kEncryptOn);
  EXPECT_FALSE(h.driver.failure);
}

TEST_F(TdsEngineTest, BackendWithoutCertificateIsReportedAsTheAnswerToLogin7) {
  d().FromClient(ClientPrelogin(tds::kEncryptOn));
  h_.BackendConnected();
  d().FromBackend(Answer(tds::kEncryptNotSup));
  EXPECT_TRUE(d().backend_failed);
  // The client's handshake is completed with dbward's own answer ...
  EXPECT_EQ(EncryptionOf(d().to_client), tds::kEncryptOn);
  auto actions = h_.Take();
  EXPECT_EQ(actions.back().kind, Action::kStartClientTls);
  h_.ClientTlsReady(Facts());
  // ... so that LOGIN7 can be answered with the explanation.
  d().FromClient(kLogin7);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendTlsRefused);
  EXPECT_NE(d().failure->error.find("answered ENCRYPTION=NOT_SUP to ENCRYPTION=ON"), std::string::npos);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  EXPECT_EQ(m.type, tds::kTabularResult);
  const Bytes needle = tds::Utf8ToUtf16Le("dbward: backend");
  EXPECT_NE(std::search(m.payload.begin(), m.payload.end(), needle.begin(), needle.end()), m.payload.end());
}

TEST_F(TdsEngineTest, ConnectFailureIsReportedAsTheAnswerToLogin7Too) {
  d().FromClient(ClientPrelogin(tds::kEncryptNotSup));
  d().FailBackend({Outcome::kBackendUnreachable, Cause::kConnect, "cannot connect to backend db:1433"});
  EXPECT_EQ(EncryptionOf(d().to_client), tds::kEncryptNotSup);
  d().FromClient(kLogin7);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendUnreachable);
  EXPECT_FALSE(d().failure_message.empty());
}

TEST_F(TdsEngineTest, DataBehindPreloginIsRefused) {
  d().FromClient(Concat(ClientPrelogin(tds::kEncryptOn), kLogin7));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kMalformed);
}

TEST_F(TdsEngineTest, MalformedPreloginGetsAnErrorToken) {
  d().FromClient(tds::EncodeMessage(tds::kPrelogin, Bytes{0x00, 0x00}));  // no terminator
  ASSERT_TRUE(d().failure);
  EXPECT_NE(d().failure->error.find("bad PRELOGIN"), std::string::npos);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  EXPECT_EQ(m.payload[0], 0xAA) << "an ERROR token";
}

TEST_F(TdsEngineTest, LyingPacketLengthBelowTheHeaderIsMalformed) {
  d().FromClient({0x12, 0x01, 0x00, 0x04, 0x00, 0x00, 0x01, 0x00});
  ASSERT_TRUE(d().failure);
  EXPECT_NE(d().failure->error.find("below 8"), std::string::npos);
}


namespace dbward::proxy::engine::testing {
namespace {

// After login-only TLS, SQL Server answers LOGIN7 in plaintext; so must
// dbward's error, or the client reads a TLS record as TDS ("Bad token from
// the server", "Unknown packet type 0x17").
TEST(TdsEngineLoginOnly, BackendFailureIsAnsweredInPlaintextAfterLoginOnlyTls) {
  Harness h(Protocol::kTds);
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOff));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.driver.FailBackend({Outcome::kBackendTlsFailed, Cause::kNameMismatch,
                        "backend 10.0.0.5:5432: the target principal name is incorrect"});
  EXPECT_EQ(EncryptionOf(h.driver.to_client), tds::kEncryptOff) << "dbward's own answer keeps login-only";
  h.driver.FromClient(tds::EncodeMessage(tds::kPrelogin, Bytes{0x16, 0x03, 0x01, 0x00, 0x01, 0x01}));
  h.ClientTlsReady(Facts());
  h.Take();
  h.driver.FromClient(kLogin7);
  auto actions = h.Take();
  ASSERT_EQ(Describe(actions), "end-client-tls fail(backend_tls_failed)");
  EXPECT_EQ(h.driver.failure->cause, Cause::kNameMismatch);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(actions[1].bytes, 100000, &m).ok());
  const Bytes needle = tds::Utf8ToUtf16Le("the target principal name is incorrect");
  EXPECT_NE(std::search(m.payload.begin(), m.payload.end(), needle.begin(), needle.end()), m.payload.end());
}

TEST(TdsEngineLoginOnly, MalformedLogin7IsAnsweredInPlaintextToo) {
  Harness h(Protocol::kTds);
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOff));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  h.driver.FromClient(tds::EncodeMessage(tds::kPrelogin, Bytes{0x16, 0x03, 0x01, 0x00, 0x01, 0x01}));
  h.ClientTlsReady(Facts());
  h.Take();
  h.driver.FromClient(tds::EncodeMessage(tds::kLogin7, Bytes(40, 0)));
  EXPECT_EQ(Describe(h.Take()), "end-client-tls fail(client_error)");
}

// jTDS with ssl=off (its default) and other pre-7.1-style clients send LOGIN7
// first: a plaintext client leg, dbward's own PRELOGIN and verified TLS to
// the backend, then that LOGIN7.
TEST(TdsEngineLogin7First, GetsItsOwnBackendPreloginAndTls) {
  Harness h(Protocol::kTds);
  h.Start();
  h.driver.FromClient(kLogin7);
  EXPECT_EQ(Describe(h.Take()), "connect");
  EXPECT_EQ(h.engine->facts().encryption, ClientEncryption::kNone);
  EXPECT_TRUE(h.engine->facts().bypass.Has(BypassReason::kPlaintext));
  EXPECT_EQ(h.engine->facts().user, "sa");
  EXPECT_EQ(h.engine->facts().client_library, "ODBC");
  EXPECT_EQ(h.engine->facts().protocol_version, "7.2");
  h.BackendConnected();
  auto actions = h.Take();
  ASSERT_EQ(actions.size(), 1u);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(actions[0].bytes, 100000, &m).ok());
  tds::Prelogin p;
  ASSERT_TRUE(tds::ParsePrelogin(m.payload, &p).ok());
  EXPECT_EQ(p.encryption(), tds::kEncryptOn);
  EXPECT_EQ(p.Version(), "16.0.0") << "dbward's own PRELOGIN";
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  actions = h.Take();
  ASSERT_EQ(Describe(actions), "start-backend-tls send-backend(144)");
  EXPECT_EQ(actions[1].bytes, kLogin7);
  EXPECT_TRUE(h.driver.to_client.empty()) << "the client never hears a PRELOGIN answer";
  h.driver.FromBackend(LoginOk());
  EXPECT_EQ(Describe(h.Take()), "send-client(78) hand-off");
  EXPECT_EQ(h.engine->facts().tds_prelogin, false);
}

TEST(TdsEngineLogin7First, BackendFailureAnswersTheLogin7) {
  Harness h(Protocol::kTds);
  h.Start();
  h.driver.FromClient(kLogin7);
  h.driver.FailBackend({Outcome::kBackendUnreachable, Cause::kConnect, "cannot connect to backend db:1433"});
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->outcome, Outcome::kBackendUnreachable);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(h.driver.failure_message, 100000, &m).ok());
  EXPECT_EQ(m.type, tds::kTabularResult);
}

TEST(TdsEngineLogin7First, PolicyDenialIsALoginError) {
  Harness h(Protocol::kTds);
  h.driver.admission.denied = true;
  h.driver.admission.error = "listener tds: policy[1] requires tls, this connection is plaintext";
  h.driver.admission.required = ProtectionLevel::kTls;
  h.Start();
  h.driver.FromClient(kLogin7);
  ASSERT_EQ(Describe(h.Take()), "fail(refused)");
  EXPECT_EQ(h.driver.failure->cause, Cause::kPolicyDenied);
  EXPECT_NE(h.driver.failure->error.find("set Encrypt=True (jTDS: ssl=require"), std::string::npos)
      << h.driver.failure->error;
  EXPECT_FALSE(h.driver.failure_message.empty()) << "a TDS login error, not a bare close";
}

TEST(TdsEngineLogin7First, RefusedWhenPlaintextIsDenied) {
  Harness h(Protocol::kTds);
  h.listener.plaintext_clients = false;
  h.Start();
  h.driver.FromClient(kLogin7);
  ASSERT_EQ(Describe(h.Take()), "fail(refused)");
  EXPECT_EQ(h.engine->facts().user, "sa") << "the audit still names who it was";
}

}  // namespace
}  // namespace dbward::proxy::engine::testing

// ---------------------------------------------------------------------------
// The answer to LOGIN7: refusals, Windows and Azure AD rounds, routing.

// A TLS client through to LOGIN7 sent.
class TdsEngineLogin : public ::testing::Test {
 protected:
  TdsEngineLogin() : h_(Protocol::kTds) {}
  void SetUp() override {}
  void Start(const Bytes& login7 = kLogin7) {
    NegotiateTls(h_);
    d().FromClient(login7);
    ASSERT_EQ(Describe(h_.Take()).substr(0, 50).rfind("connect send-backend", 0), 0u);
    ASSERT_FALSE(d().handed_off);
  }
  FakeDriver& d() { return h_.driver; }
  Harness h_;
};

// The spec LOGIN7 with fIntSecurity (a Windows login).
Bytes IntegratedLogin7() {
  Bytes b = kLogin7;
  b[8 + 25] |= 0x80;
  return b;
}

TEST_F(TdsEngineLogin, RefusedLoginIsRelayedAsTheServerSentIt) {
  Start();
  const Bytes refusal =
      Tabular(tds::EncodeLoginError(18456, 1, 14, "Login failed for user 'sa'.", "SQL01", 0x72090002));
  d().FromBackend(refusal);
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kAuthFailed);
  EXPECT_EQ(d().failure->cause, Cause::kAuthFailed);
  EXPECT_EQ(d().failure->error, "backend 10.0.0.5:5432 refused the login: Login failed for user 'sa'. (error 18456, state 1)");
  EXPECT_EQ(d().failure_message, refusal) << "the server's own words reach the client";
  EXPECT_FALSE(d().handed_off);
}

TEST_F(TdsEngineLogin, ExtendedProtectionRefusalOfAWindowsLoginIsExplained) {
  Start(IntegratedLogin7());
  const std::string text = "Login failed. The login is from an untrusted domain and cannot be used with Integrated "
                           "authentication.";
  Bytes payload = Concat(tds::EncodeLoginError(18452, 1, 14, text, "SQL01", 0x72090002), {});
  d().FromBackend(Tabular(payload));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kAuthFailed);
  EXPECT_NE(d().failure->error.find("Extended Protection"), std::string::npos) << d().failure->error;
  EXPECT_NE(d().failure->error.find("give dbward the server's own certificate and key as client_tls"),
            std::string::npos);
  // The client reads the server's message with dbward's explanation after it.
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  tds::LoginResponse r;
  ASSERT_TRUE(tds::ParseLoginResponse(m.payload, 0x72090002, &r).ok());
  ASSERT_NE(r.FirstError(), nullptr);
  EXPECT_EQ(r.FirstError()->number, 18452);
  EXPECT_EQ(r.FirstError()->text.rfind(text + " dbward: this Windows (SSPI) login went through dbward's TLS", 0), 0u)
      << r.FirstError()->text;
  EXPECT_TRUE(r.done && r.done_error);
}

TEST_F(TdsEngineLogin, UntrustedDomainForASqlLoginIsNotBlamedOnExtendedProtection) {
  Start();
  d().FromBackend(Tabular(tds::EncodeLoginError(18452, 1, 14, "untrusted domain", "SQL01", 0x72090002)));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->error.find("Extended Protection"), std::string::npos);
}

TEST_F(TdsEngineLogin, SspiRoundsGoBackAndForthUntilLoginAck) {
  Start(IntegratedLogin7());
  const Bytes challenge = Tabular(Concat(FromHex("ed0800"), Bytes{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0}));
  d().FromBackend(challenge);
  EXPECT_EQ(Describe(h_.Take()), "send-client(19)");
  EXPECT_FALSE(d().handed_off);
  const Bytes authenticate = tds::EncodeMessage(tds::kSspiMessage, Bytes{'N', 'T', 'L', 'M', 3, 0});
  d().FromClient(authenticate);
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "send-backend(14)");
  EXPECT_EQ(actions[0].bytes, authenticate);
  d().FromBackend(LoginOk());
  EXPECT_EQ(Describe(h_.Take()), "send-client(78) hand-off");
}

TEST_F(TdsEngineLogin, AnSspiChallengeAnsweredWithSomethingElseIsRefused) {
  Start(IntegratedLogin7());
  d().FromBackend(Tabular(FromHex("ed0100aa")));
  d().FromClient(tds::EncodeMessage(tds::kSqlBatch, Bytes{1, 2}));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kClientError);
  EXPECT_EQ(d().failure->error,
            "bad answer to the server's authentication challenge: packet type 1 instead of an SSPI message (0x11)");
}

TEST_F(TdsEngineLogin, FedAuthInfoIsAnsweredWithTheTokenMessage) {
  Start();
  d().FromBackend(Tabular(FromHex("ee0800000001000000ffffffff")));
  EXPECT_EQ(Describe(h_.Take()), "send-client(21)");
  const Bytes token = tds::EncodeMessage(tds::kFedAuthToken, Bytes(40, 0x41));
  d().FromClient(token);
  EXPECT_EQ(Describe(h_.Take()), "send-backend(48)");
  d().FromBackend(LoginOk());
  EXPECT_TRUE(d().handed_off);
}

TEST_F(TdsEngineLogin, TokensDbwardDoesNotWalkEndItsInterpretation) {
  Start();
  // INFO, then a COLMETADATA: not a login response token.
  const Bytes odd = Tabular(FromHex("ab0e00" "01000000" "01" "0a" "0000" "00" "00" "00000000" "810100"));
  d().FromBackend(odd);
  EXPECT_EQ(Describe(h_.Take()), "send-client(28) hand-off");
}

TEST_F(TdsEngineLogin, MalformedAnswerIsABackendError) {
  Start();
  d().FromBackend(Tabular(FromHex("ad3600")));  // LOGINACK cut short
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendError);
  EXPECT_EQ(d().failure->error,
            "backend 10.0.0.5:5432 answered LOGIN7 with something dbward cannot read: login response token 0xAD is cut "
            "short");
  // The client hears it as a login error.
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  tds::LoginResponse r;
  ASSERT_TRUE(tds::ParseLoginResponse(m.payload, 0x72090002, &r).ok());
  ASSERT_NE(r.FirstError(), nullptr);
  EXPECT_EQ(r.FirstError()->text.rfind("dbward: backend 10.0.0.5:5432 answered LOGIN7", 0), 0u);
}

Bytes RoutingAnswer(const tds::Routing& r) {
  return Tabular(Concat(Concat(kLoginAck, tds::EncodeRoutingEnvChange(r)), kFinalDone));
}

TEST_F(TdsEngineLogin, RoutingIsFollowedByDbwardItself) {
  Start();
  const size_t answered = d().to_client.size();
  d().FromBackend(RoutingAnswer({11002, "replica-2.db.internal", "", false}));
  auto actions = h_.Take();
  ASSERT_EQ(Describe(actions), "redirect(replica-2.db.internal:11002)");
  EXPECT_EQ(actions[0].target.server_name, "replica-2.db.internal");
  EXPECT_EQ(d().to_client.size(), answered) << "the client never sees the routing answer";
  EXPECT_EQ(h_.engine->facts().routed_to, "replica-2.db.internal:11002");
  // The new leg: the client's PRELOGIN again, verified TLS, then LOGIN7 with
  // the routed name as ServerName.
  h_.BackendConnected();
  actions = h_.Take();
  ASSERT_EQ(Describe(actions).rfind("send-backend", 0), 0u);
  EXPECT_EQ(actions[0].bytes, ClientPrelogin(tds::kEncryptOn)) << "the client's PRELOGIN, ENCRYPTION=ON";
  d().FromBackend(Answer(tds::kEncryptOn));
  EXPECT_EQ(Describe(h_.Take()), "start-backend-tls");
  h_.BackendTlsReady(Facts());
  actions = h_.Take();
  ASSERT_EQ(Describe(actions).rfind("send-backend", 0), 0u) << Describe(actions);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(actions[0].bytes, 100000, &m).ok());
  EXPECT_EQ(m.type, tds::kLogin7);
  tds::Login7 l;
  ASSERT_TRUE(tds::ParseLogin7(m.payload, &l).ok());
  EXPECT_EQ(l.server_name, "replica-2.db.internal");
  EXPECT_EQ(l.user_name, "sa");
  EXPECT_EQ(d().to_client.size(), answered) << "nor the routed server's PRELOGIN answer";
  d().FromBackend(LoginOk());
  EXPECT_EQ(Describe(h_.Take()), "send-client(78) hand-off");
}

// Credentials made with one server cannot be replayed to another: a routed
// Windows login, or a routed token exchange, fails closed with the reason.
TEST_F(TdsEngineLogin, ARoutedWindowsLoginFailsClosedInsteadOfBeingReplayed) {
  Start(IntegratedLogin7());
  d().FromBackend(Tabular(Concat(FromHex("ed0800"), Bytes{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0})));
  h_.Take();
  d().FromClient(tds::EncodeMessage(tds::kSspiMessage, Bytes{'N', 'T', 'L', 'M', 3, 0}));
  h_.Take();
  d().FromBackend(RoutingAnswer({11002, "replica-2.db.internal", "", false}));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kRoutingDenied);
  EXPECT_NE(d().failure->error.find("routed this Windows (SSPI) login to replica-2.db.internal:11002, but a Windows "
                                    "login is made with one server"),
            std::string::npos)
      << d().failure->error;
  for (const Action& a : h_.Take()) EXPECT_NE(a.kind, Action::kRedirect) << "no replay";
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  tds::LoginResponse r;
  ASSERT_TRUE(tds::ParseLoginResponse(m.payload, 0x72090002, &r).ok());
  ASSERT_NE(r.FirstError(), nullptr) << "the client reads it as a login error";
}

TEST_F(TdsEngineLogin, ARoutedTokenExchangeFailsClosedInsteadOfBeingReplayed) {
  Start();
  d().FromBackend(Tabular(FromHex("ee0800000001000000ffffffff")));
  h_.Take();
  d().FromClient(tds::EncodeMessage(tds::kFedAuthToken, Bytes(40, 0x41)));
  h_.Take();
  d().FromBackend(RoutingAnswer({11002, "replica-2.db.internal", "", false}));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kRoutingDenied);
  EXPECT_NE(d().failure->error.find("after asking the client for a token (FEDAUTHINFO)"), std::string::npos)
      << d().failure->error;
}

TEST_F(TdsEngineLogin, EnhancedRoutingAlsoNamesTheDatabase) {
  Start();
  d().FromBackend(RoutingAnswer({11003, "hs-reader.db.internal", "orders_ro", true}));
  h_.BackendConnected();
  d().FromBackend(Answer(tds::kEncryptOn));
  h_.BackendTlsReady(Facts());
  auto actions = h_.Take();
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(actions.back().bytes, 100000, &m).ok());
  tds::Login7 l;
  ASSERT_TRUE(tds::ParseLogin7(m.payload, &l).ok());
  EXPECT_EQ(l.database, "orders_ro");
  EXPECT_EQ(l.server_name, "hs-reader.db.internal");
}

TEST(TdsEngineRouting, NamesOutsideRoutingAllowFailClosed) {
  Harness h(Protocol::kTds);
  h.listener.routing.allow = std::vector<std::string>{"*.worker.database.windows.net"};
  h.Start();
  h.driver.FromClient(ClientPrelogin(tds::kEncryptOn));
  h.BackendConnected();
  h.driver.FromBackend(Answer(tds::kEncryptOn));
  h.BackendTlsReady(Facts());
  h.ClientTlsReady(Facts());
  h.driver.FromClient(kLogin7);
  h.driver.FromBackend(RoutingAnswer({11000, "evil.example.com", "", false}));
  ASSERT_TRUE(h.driver.failure);
  EXPECT_EQ(h.driver.failure->outcome, Outcome::kBackendError);
  EXPECT_EQ(h.driver.failure->cause, Cause::kRoutingDenied);
  EXPECT_EQ(h.driver.failure->error,
            "backend 10.0.0.5:5432 routed the login to evil.example.com:11000, which routing.allow does not list "
            "(*.worker.database.windows.net); dbward follows routing only to names it was told to trust: add "
            "evil.example.com (or a pattern such as *.example.com) to routing.allow of listener test");
  for (const Action& a : h.Take()) EXPECT_NE(a.kind, Action::kRedirect);
  EXPECT_EQ(h.engine->facts().routed_to, "evil.example.com:11000");
  // The client gets it as the answer to its LOGIN7.
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(h.driver.failure_message, 100000, &m).ok());
  EXPECT_EQ(m.type, tds::kTabularResult);

  // And a name the list allows is followed.
  Harness ok(Protocol::kTds);
  ok.listener.routing.allow = std::vector<std::string>{"*.worker.database.windows.net"};
  ok.Start();
  ok.driver.FromClient(ClientPrelogin(tds::kEncryptOn));
  ok.BackendConnected();
  ok.driver.FromBackend(Answer(tds::kEncryptOn));
  ok.BackendTlsReady(Facts());
  ok.ClientTlsReady(Facts());
  ok.driver.FromClient(kLogin7);
  ok.driver.FromBackend(RoutingAnswer({11000, "a1b2.tr5.westeurope1-a.worker.database.windows.net", "", false}));
  EXPECT_FALSE(ok.driver.failure);
  EXPECT_EQ(Describe(ok.Take()).find("redirect(a1b2.tr5.westeurope1-a.worker.database.windows.net:11000)") ==
                std::string::npos,
            false);
}

TEST_F(TdsEngineLogin, RoutingLoopsEndAfterTwoHops) {
  Start();
  for (int hop = 1; hop <= 2; hop++) {
    d().FromBackend(RoutingAnswer({static_cast<uint16_t>(11000 + hop), "replica.db.internal", "", false}));
    ASSERT_FALSE(d().failure) << hop;
    h_.BackendConnected();
    d().FromBackend(Answer(tds::kEncryptOn));
    h_.BackendTlsReady(Facts());
  }
  d().FromBackend(RoutingAnswer({11003, "replica.db.internal", "", false}));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kRoutingDenied);
  EXPECT_EQ(d().failure->error,
            "backend 10.0.0.5:5432 routed the login again, to replica.db.internal:11003; dbward follows at most 2 "
            "redirects");
}

TEST_F(TdsEngineLogin, BackendFailureOnTheRoutedLegAnswersTheLogin7) {
  Start();
  d().FromBackend(RoutingAnswer({11002, "replica.db.internal", "", false}));
  d().FailBackend({Outcome::kBackendTlsFailed, Cause::kNameMismatch,
                   "backend 10.0.0.9:11002: the target principal name is incorrect"});
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->cause, Cause::kNameMismatch);
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(d().failure_message, 100000, &m).ok());
  tds::LoginResponse r;
  ASSERT_TRUE(tds::ParseLoginResponse(m.payload, 0x72090002, &r).ok());
  ASSERT_NE(r.FirstError(), nullptr);
  EXPECT_NE(r.FirstError()->text.find("target principal name is incorrect"), std::string::npos);
}

TEST(TdsEngineLogin7First, Tds71ClientsGetTds71Tokens) {
  // jTDS: LOGIN7 first, TDS 7.1. dbward's error must use 7.1's 9-byte DONE.
  Bytes login = kLogin7;
  login[8 + 4] = 0x01;
  login[8 + 5] = 0x00;
  login[8 + 6] = 0x00;
  login[8 + 7] = 0x71;
  Harness h(Protocol::kTds);
  h.Start();
  h.driver.FromClient(login);
  EXPECT_EQ(h.engine->facts().protocol_version, "7.1");
  h.driver.FailBackend({Outcome::kBackendUnreachable, Cause::kConnect, "cannot connect to backend db:1433"});
  tds::Message m;
  ASSERT_TRUE(tds::DecodeMessage(h.driver.failure_message, 100000, &m).ok());
  tds::LoginResponse r;
  ASSERT_TRUE(tds::ParseLoginResponse(m.payload, 0x71000001, &r).ok());
  EXPECT_TRUE(r.done && r.done_error);
  EXPECT_EQ(m.payload.back(), 0) << "ends in a 4-byte row count";
  EXPECT_FALSE(tds::ParseLoginResponse(m.payload, 0x74000004, &r).ok()) << "not the 7.2 layout";
}

}  // namespace
}  // namespace dbward::proxy::engine::testing

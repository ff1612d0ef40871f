// Proves the TDS server fixture (tests/fixtures/tds_server.h) against real
// SQL Server clients, without dbward in between: FreeTDS `tsql` (Debian
// freetds-bin, GnuTLS build) and node `tedious`. Each test asserts both the
// rows the client printed and what the fixture recorded about the connection:
// the client's PRELOGIN ENCRYPTION byte, the resulting leg and TLS version.
//
// Observed ENCRYPTION bytes: FreeTDS 1.3 sends NOT_SUP for `encryption = off`,
// OFF for `request` and ON for `require` (it has no TDS 8.0 `strict`);
// tedious sends NOT_SUP for encrypt:false, ON for encrypt:true, and NOT_SUP
// inside the TLS of encrypt:'strict'.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../fixtures/tds_server.h"
#include "harness.h"

namespace dbward::testing {
namespace {

using Encryption = TdsServer::Encryption;

constexpr int kEncryptOff = 0;
constexpr int kEncryptOn = 1;
constexpr int kEncryptNotSup = 2;

bool HaveTool(const std::string& name) {
  std::string out;
  return RunCommand({"sh", "-c", "command -v " + name}, &out) == 0;
}

class TdsFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }

  std::unique_ptr<TdsServer> StartServer(Encryption encryption, bool strict = false,
                                         const std::string& cert = "server") {
    TdsServer::Options o;
    o.encryption = encryption;
    o.strict = strict;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    auto server = std::make_unique<TdsServer>(o);
    std::string error;
    EXPECT_TRUE(server->Start(&error)) << error;
    return server;
  }

  // Runs tsql against `port` with a freetds.conf holding `settings` and
  // feeds it `script` on stdin; returns tsql's exit status.
  int Tsql(const TdsServer& s, const std::string& settings, const std::string& script, std::string* out,
           const std::string& password = "sa_pw") {
    std::string conf =
        dir_.Write("freetds.conf", "[global]\n[fixture]\n\thost = 127.0.0.1\n\tport = " + std::to_string(s.port()) +
                                       "\n\ttds version = 7.4\n" + settings);
    std::string input = dir_.Write("input.sql", script);
    int status = RunCommand(
        {"sh", "-c",
         "FREETDSCONF='" + conf + "' timeout 30 tsql -S fixture -U sa_user -P '" + password + "' < '" + input + "'"},
        out);
    EXPECT_TRUE(s.WaitIdle());  // the fixture has seen the client go
    return status;
  }

  // Runs the tedious driver script; returns its JSON result line.
  std::string Tedious(const TdsServer& s, const std::string& extra_json, const std::string& password = "sa_pw") {
    std::string opts = "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\"," +
                       "\"port\":" + std::to_string(s.port()) + ",\"user\":\"sa_user\",\"password\":\"" + password +
                       "\",\"appName\":\"tds-fixture-test\",\"database\":\"appdb\"," +
                       "\"queries\":[\"SELECT 1\",\"SELECT encryption\"]" + extra_json + "}";
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js", opts}, &out);
    EXPECT_TRUE(s.WaitIdle());
    // Node may print warnings around the result; keep the JSON line only.
    size_t at = out.find("{\"ok\"");
    if (at == std::string::npos) return out;
    return out.substr(at, out.find('\n', at) - at);
  }

  TempDir dir_;
};

const char kTwoQueries[] = "SELECT 1\ngo\nSELECT encryption\ngo\n";

// tsql prints each result as a header line, the rows and "(n row affected)".
void ExpectTsqlRows(const std::string& out, const std::string& encryption) {
  EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
  EXPECT_NE(out.find("encryption\n" + encryption + "\n(1 row affected)"), std::string::npos) << out;
}

void ExpectFreeTdsLogin(const TdsServer& s) {
  EXPECT_EQ(s.last_user(), "sa_user");
  EXPECT_EQ(s.last_app_name(), "TSQL");
  EXPECT_EQ(s.last_client_interface(), "TDS-Library");
  EXPECT_EQ(s.last_login_tds_version(), 0x74000004u);
  EXPECT_EQ(s.logins_ok(), 1);
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::string ToHex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Sends a captured PRELOGIN packet and returns the server's answer packet.
std::string PreloginExchange(const TdsServer& s, const std::string& request_hex) {
  int fd = ConnectLoopback(s.port());
  EXPECT_GE(fd, 0);
  std::string request = FromHex(request_hex);
  EXPECT_TRUE(SendAll(fd, request.data(), request.size()));
  std::string answer;
  if (RecvAll(fd, &answer, 8, 5000) == 8) {
    size_t length = (static_cast<unsigned char>(answer[2]) << 8) | static_cast<unsigned char>(answer[3]);
    if (length > 8) RecvAll(fd, &answer, length - 8, 5000);
  }
  close(fd);
  return ToHex(answer);
}

// PRELOGIN packets captured from real clients (see /work/shared/vectors/tds.json).
constexpr char kSpecPreloginOn[] =
    "1201002f0000010000001a00060100200001020021000103002200040400260001ff0900000000000100b80d000001";
constexpr char kMsOleDbPreloginOff[] =
    "120100580000010000001f000601002500010200260001030027000404002b000105002c0024ff1207000500000000483e0000004f9c"
    "cf1f076f8c4a8a2c701cf600230e1141e2d4671440499c86b81a5580359002000000";
constexpr char kNmapPreloginOff[] =
    "1201003400000000000015000601001b000102001c000c0300280004ff080001550000004d5353514c53657276657200480f0000";

// The answer SQL Server sends (same layout as SQL Server 2008's in the
// vectors), version 16.0.1000.6, with the given ENCRYPTION byte.
std::string PreloginAnswer(const std::string& encryption_hex) {
  return "0401002b0000010000001a00060100200001020021000103002200000400220001ff100003e80006" + encryption_hex + "0000";
}

TEST_F(TdsFixtureTest, AnswersCapturedPreloginPackets) {
  auto off = StartServer(Encryption::kOff);
  EXPECT_EQ(PreloginExchange(*off, kSpecPreloginOn), PreloginAnswer("01"));
  ASSERT_TRUE(off->WaitIdle());
  EXPECT_EQ(off->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(PreloginExchange(*off, kMsOleDbPreloginOff), PreloginAnswer("00"));
  ASSERT_TRUE(off->WaitIdle());
  EXPECT_EQ(off->last_client_encryption(), kEncryptOff);

  auto required = StartServer(Encryption::kRequired);
  EXPECT_EQ(PreloginExchange(*required, kNmapPreloginOff), PreloginAnswer("03"));
  auto none = StartServer(Encryption::kNotSupported);
  EXPECT_EQ(PreloginExchange(*none, kSpecPreloginOn), PreloginAnswer("02"));
  ASSERT_TRUE(none->WaitIdle());
  EXPECT_NE(none->last_error().find("does not support it"), std::string::npos) << none->last_error();

  // An option that points past the payload: dropped without an answer.
  EXPECT_EQ(PreloginExchange(*off, "1201000e0000010000ff000006ff"), "");
  ASSERT_TRUE(off->WaitIdle());
  EXPECT_NE(off->last_error().find("points outside the payload"), std::string::npos) << off->last_error();
}

class FreeTdsTest : public TdsFixtureTest {
 protected:
  void SetUp() override {
    TdsFixtureTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(HaveTool("tsql")) << "tsql (freetds-bin) is not installed: run scripts/install-deps.sh";
  }
};

TEST_F(FreeTdsTest, EncryptionOffSendsNotSupAndStaysPlaintext) {
  auto s = StartServer(Encryption::kOff);
  std::string out;
  ASSERT_EQ(Tsql(*s, "\tencryption = off\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "none");
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  EXPECT_EQ(s->last_leg(), "none");
  EXPECT_EQ(s->last_tls_version(), "");
  EXPECT_EQ(s->tls_handshakes(), 0);
  ExpectFreeTdsLogin(*s);
}

TEST_F(FreeTdsTest, EncryptionRequestSendsOffAndGetsLoginOnlyTls) {
  auto s = StartServer(Encryption::kOff);
  std::string out;
  ASSERT_EQ(Tsql(*s, "\tencryption = request\n", kTwoQueries, &out), 0) << out;
  // LOGIN7 travelled inside TLS, the queries after it in plaintext.
  ExpectTsqlRows(out, "login-only");
  EXPECT_EQ(s->last_client_encryption(), kEncryptOff);
  EXPECT_EQ(s->last_leg(), "login-only");
  EXPECT_EQ(s->last_tls_version(), "TLSv1.2");
  ExpectFreeTdsLogin(*s);
}

TEST_F(FreeTdsTest, EncryptionRequireSendsOnAndGetsFullTls) {
  auto s = StartServer(Encryption::kOff);
  std::string out;
  ASSERT_EQ(Tsql(*s, "\tencryption = require\n\tdatabase = appdb\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "tls-1.2");
  EXPECT_EQ(s->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(s->last_leg(), "tls");
  EXPECT_EQ(s->last_tls_version(), "TLSv1.2");
  EXPECT_EQ(s->last_database(), "appdb");
  ExpectFreeTdsLogin(*s);
}

TEST_F(FreeTdsTest, RequiredServerUpgradesRequestAndDropsOff) {
  auto s = StartServer(Encryption::kRequired);
  std::string out;
  // OFF answered with REQ: the whole connection is encrypted.
  ASSERT_EQ(Tsql(*s, "\tencryption = request\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "tls-1.2");
  EXPECT_EQ(s->last_client_encryption(), kEncryptOff);
  EXPECT_EQ(s->last_leg(), "tls");

  ASSERT_EQ(Tsql(*s, "\tencryption = require\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "tls-1.2");
  EXPECT_EQ(s->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(s->last_leg(), "tls");

  // NOT_SUP against a server that requires encryption: no login.
  EXPECT_NE(Tsql(*s, "\tencryption = off\n", kTwoQueries, &out), 0) << out;
  EXPECT_NE(out.find("Adaptive Server connection failed"), std::string::npos) << out;
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  EXPECT_EQ(s->last_user(), "");
  EXPECT_NE(s->last_error().find("requires it"), std::string::npos) << s->last_error();
  EXPECT_EQ(s->logins_ok(), 2);
}

TEST_F(FreeTdsTest, NotSupportedServerServesOffAndRequestButDropsRequire) {
  auto s = StartServer(Encryption::kNotSupported);
  std::string out;
  ASSERT_EQ(Tsql(*s, "\tencryption = off\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "none");
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  EXPECT_EQ(s->last_leg(), "none");

  ASSERT_EQ(Tsql(*s, "\tencryption = request\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "none");
  EXPECT_EQ(s->last_client_encryption(), kEncryptOff);
  EXPECT_EQ(s->last_leg(), "none");

  EXPECT_NE(Tsql(*s, "\tencryption = require\n", kTwoQueries, &out), 0) << out;
  EXPECT_EQ(s->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(s->logins_ok(), 2);
  EXPECT_EQ(s->tls_handshakes(), 0);
}

TEST_F(FreeTdsTest, CaFileAndHostnameCheckValidateTheFixtureCertificate) {
  auto s = StartServer(Encryption::kOff);
  std::string out;
  ASSERT_EQ(Tsql(*s, "\tencryption = require\n\tca file = " + Cert("ca.pem") + "\n\tcheck certificate hostname = yes\n",
                 kTwoQueries, &out),
            0)
      << out;
  ExpectTsqlRows(out, "tls-1.2");
  EXPECT_EQ(s->logins_ok(), 1);

  EXPECT_NE(Tsql(*s, "\tencryption = require\n\tca file = " + Cert("other-ca.pem") + "\n", kTwoQueries, &out), 0)
      << out;
  EXPECT_EQ(s->logins_ok(), 1);
  EXPECT_EQ(s->last_user(), "");
  EXPECT_EQ(s->tls_failures(), 1);

  // A certificate for another name: rejected only when the name is checked.
  auto wrong = StartServer(Encryption::kOff, false, "wrongname");
  const std::string ca = "\tencryption = require\n\tca file = " + Cert("ca.pem") + "\n";
  EXPECT_NE(Tsql(*wrong, ca + "\tcheck certificate hostname = yes\n", kTwoQueries, &out), 0) << out;
  EXPECT_EQ(wrong->logins_ok(), 0);
  ASSERT_EQ(Tsql(*wrong, ca + "\tcheck certificate hostname = no\n", kTwoQueries, &out), 0) << out;
  ExpectTsqlRows(out, "tls-1.2");
  EXPECT_EQ(wrong->logins_ok(), 1);
}

TEST_F(FreeTdsTest, WrongPasswordAndUnknownQueryShowServerMessages) {
  auto s = StartServer(Encryption::kOff);
  std::string out;
  EXPECT_NE(Tsql(*s, "\tencryption = require\n", kTwoQueries, &out, "wrong"), 0) << out;
  EXPECT_NE(out.find("Msg 18456 (severity 14, state 1) from DBWARDTDS"), std::string::npos) << out;
  EXPECT_NE(out.find("Login failed for user 'sa_user'."), std::string::npos) << out;
  EXPECT_EQ(s->logins_failed(), 1);
  EXPECT_EQ(s->last_user(), "sa_user");
  EXPECT_EQ(s->last_leg(), "tls");

  ASSERT_EQ(Tsql(*s, "\tencryption = off\n", "SELECT nosuch\ngo\nSELECT big 3\ngo\n", &out), 0) << out;
  EXPECT_NE(out.find("Msg 208 (severity 16, state 1)"), std::string::npos) << out;
  EXPECT_NE(out.find("Invalid object name 'nosuch'."), std::string::npos) << out;
  EXPECT_NE(out.find("id\tname\tvalue\ttotal\n1\trow-1\t0.5\t1000003\n2\trow-2\t1\t2000006\n3\trow-3\t1.5\t3000009\n"
                     "(3 rows affected)"),
            std::string::npos)
      << out;
  EXPECT_EQ(s->last_query(), "SELECT big 3\n");
}

TEST_F(FreeTdsTest, NoTds8StrictInFreeTds13) {
  // FreeTDS 1.3 knows no `encryption = strict`; it refuses the configuration
  // before connecting, so TDS 8.0 is covered by tedious below.
  auto s = StartServer(Encryption::kOff, /*strict=*/true);
  std::string out;
  EXPECT_NE(Tsql(*s, "\tencryption = strict\n", kTwoQueries, &out), 0) << out;
  EXPECT_NE(out.find("Local configuration error"), std::string::npos) << out;
  EXPECT_EQ(s->connections(), 0);
}

class TediousTest : public TdsFixtureTest {
 protected:
  void SetUp() override {
    TdsFixtureTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(HaveTool("node")) << "node is not installed: run scripts/install-deps.sh";
    ASSERT_EQ(access((SourceDir() + "/tests/integration/node/node_modules/tedious/package.json").c_str(), R_OK), 0)
        << "tedious is not installed under tests/integration/node: run npm ci there (scripts/test.sh does)";
  }
  std::string VerifiedCa(const std::string& ca = "ca.pem") {
    return ",\"ca\":\"" + Cert(ca) + "\",\"serverName\":\"localhost\"";
  }
};

std::string TwoResults(const std::string& encryption) {
  return "{\"ok\":true,\"results\":[[[1]],[[\"" + encryption + "\"]]]}";
}

void ExpectTediousLogin(const TdsServer& s) {
  EXPECT_EQ(s.last_user(), "sa_user");
  EXPECT_EQ(s.last_app_name(), "tds-fixture-test");
  EXPECT_EQ(s.last_client_interface(), "Tedious");
  EXPECT_EQ(s.last_database(), "appdb");
  EXPECT_EQ(s.last_login_tds_version(), 0x74000004u);
  EXPECT_EQ(s.logins_ok(), 1);
}

TEST_F(TediousTest, EncryptFalseSendsNotSup) {
  auto s = StartServer(Encryption::kOff);
  EXPECT_EQ(Tedious(*s, ",\"encrypt\":false"), TwoResults("none"));
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  EXPECT_EQ(s->last_leg(), "none");
  EXPECT_EQ(s->tls_handshakes(), 0);
  ExpectTediousLogin(*s);
}

TEST_F(TediousTest, EncryptTrueTrustServerCertificate) {
  auto s = StartServer(Encryption::kOff);
  EXPECT_EQ(Tedious(*s, ",\"encrypt\":true,\"trustServerCertificate\":true"), TwoResults("tls-1.2"));
  EXPECT_EQ(s->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(s->last_leg(), "tls");
  // tedious caps TDS 7.x TLS at 1.2 itself, whatever the server allows.
  EXPECT_EQ(s->last_tls_version(), "TLSv1.2");
  ExpectTediousLogin(*s);
}

TEST_F(TediousTest, EncryptTrueVerifiesTheChain) {
  auto s = StartServer(Encryption::kOff);
  EXPECT_EQ(Tedious(*s, ",\"encrypt\":true" + VerifiedCa()), TwoResults("tls-1.2"));
  EXPECT_EQ(s->last_client_encryption(), kEncryptOn);
  EXPECT_EQ(s->last_leg(), "tls");
  ExpectTediousLogin(*s);

  // Node checks the chain after the handshake: the fixture sees TLS, then EOF.
  std::string r = Tedious(*s, ",\"encrypt\":true" + VerifiedCa("other-ca.pem"));
  EXPECT_NE(r.find("\"ok\":false"), std::string::npos) << r;
  EXPECT_NE(r.find("unable to verify the first certificate"), std::string::npos) << r;
  EXPECT_EQ(s->logins_ok(), 1);
  EXPECT_EQ(s->last_user(), "");
}

TEST_F(TediousTest, StrictIsTds8WithAlpn) {
  auto s = StartServer(Encryption::kOff, /*strict=*/true);
  EXPECT_EQ(Tedious(*s, ",\"encrypt\":\"strict\"" + VerifiedCa()), TwoResults("tls-1.3"));
  // TLS first, then PRELOGIN inside it; tedious puts NOT_SUP there.
  EXPECT_EQ(s->last_leg(), "tls-strict");
  EXPECT_EQ(s->last_alpn(), "tds/8.0");
  EXPECT_EQ(s->last_tls_version(), "TLSv1.3");
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  ExpectTediousLogin(*s);

  // A strict-only server refuses a TDS 7.x PRELOGIN.
  std::string r = Tedious(*s, ",\"encrypt\":true,\"trustServerCertificate\":true");
  EXPECT_NE(r.find("\"ok\":false"), std::string::npos) << r;
  EXPECT_NE(s->last_error().find("did not start with TLS"), std::string::npos) << s->last_error();
  EXPECT_EQ(s->logins_ok(), 1);
}

TEST_F(TediousTest, NonStrictServerAlsoAcceptsTds8) {
  // Like SQL Server 2022 without "Force Strict Encryption".
  auto s = StartServer(Encryption::kOff);
  EXPECT_EQ(Tedious(*s, ",\"encrypt\":\"strict\"" + VerifiedCa()), TwoResults("tls-1.3"));
  EXPECT_EQ(s->last_leg(), "tls-strict");
  EXPECT_EQ(s->last_alpn(), "tds/8.0");
}

TEST_F(TediousTest, WrongPasswordGivesLoginFailed) {
  auto s = StartServer(Encryption::kOff);
  std::string r = Tedious(*s, ",\"encrypt\":true,\"trustServerCertificate\":true", "nope");
  EXPECT_EQ(r, "{\"ok\":false,\"error\":\"Login failed for user 'sa_user'.\",\"code\":\"ELOGIN\"}");
  EXPECT_EQ(s->logins_failed(), 1);
  EXPECT_EQ(s->logins_ok(), 0);
  EXPECT_EQ(s->last_user(), "sa_user");
}

TEST_F(TediousTest, RequiredServerRejectsEncryptFalse) {
  auto s = StartServer(Encryption::kRequired);
  std::string r = Tedious(*s, ",\"encrypt\":false");
  EXPECT_NE(r.find("Server requires encryption"), std::string::npos) << r;
  EXPECT_EQ(s->last_client_encryption(), kEncryptNotSup);
  EXPECT_EQ(s->logins_ok(), 0);

  EXPECT_EQ(Tedious(*s, ",\"encrypt\":true" + VerifiedCa()), TwoResults("tls-1.2"));
  EXPECT_EQ(s->last_leg(), "tls");
  EXPECT_EQ(s->logins_ok(), 1);
}

TEST_F(TediousTest, BigResultIsStreamedInNegotiatedPackets) {
  auto s = StartServer(Encryption::kOff);
  std::string r = Tedious(*s,
                          ",\"encrypt\":true,\"trustServerCertificate\":true,"
                          "\"queries\":[\"SELECT big 20000\",\"SELECT 1\"]");
  ASSERT_EQ(r.rfind("{\"ok\":true,\"results\":[[[1,\"row-1\",0.5,\"1000003\"],", 0), 0u) << r.substr(0, 300);
  EXPECT_NE(r.find("[20000,\"row-20000\",10000,\"20000060000\"]],[[1]]]}"), std::string::npos)
      << r.substr(r.size() - 300);
  EXPECT_EQ(s->last_packet_size(), 4096u);
  EXPECT_EQ(s->last_query(), "SELECT 1");
}

TEST_F(TediousTest, CancelSendsAttentionAndTheConnectionStaysUsable) {
  auto s = StartServer(Encryption::kOff);
  std::string r = Tedious(*s,
                          ",\"encrypt\":true,\"trustServerCertificate\":true,\"cancelAfterRows\":1000,"
                          "\"queries\":[\"SELECT big 5000000\",\"SELECT 1\"]");
  EXPECT_EQ(r, "{\"ok\":true,\"results\":[{\"canceled\":true,\"rows\":1000},[[1]]]}");
  EXPECT_EQ(s->attentions(), 1);
  EXPECT_EQ(s->last_query(), "SELECT 1");
}

}  // namespace
}  // namespace dbward::testing

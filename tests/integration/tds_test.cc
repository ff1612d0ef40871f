// SQL Server (TDS) through dbward, with real clients (FreeTDS tsql, node
// tedious) in every client mode against the TDS fixture in 7.x and TDS 8.0
// modes. The fixture answers `SELECT encryption` with how dbward's leg to it
// was protected, so each test proves the backend leg as well as the rows.
#include <gtest/gtest.h>
#include <unistd.h>

#include "harness.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

using Encryption = TdsServer::Encryption;

enum class Client { kTsqlOff, kTsqlRequest, kTsqlRequire, kTediousOff, kTediousTrust, kTediousVerify, kTediousStrict };

struct ModeCase {
  Client client;
  bool strict_backend;
  const char* client_encryption;  // audit classification
  bool trust_bypass;
  const char* bypass_reason;
  const char* library;
};

std::string Name(Client c) {
  switch (c) {
    case Client::kTsqlOff: return "TsqlOff";
    case Client::kTsqlRequest: return "TsqlRequest";
    case Client::kTsqlRequire: return "TsqlRequire";
    case Client::kTediousOff: return "TediousEncryptFalse";
    case Client::kTediousTrust: return "TediousTrustServerCertificate";
    case Client::kTediousVerify: return "TediousVerifyCa";
    case Client::kTediousStrict: return "TediousStrict";
  }
  return "?";
}

class TdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }

  std::unique_ptr<TdsServer> StartFixture(bool strict, Encryption enc = Encryption::kOff,
                                          const std::string& cert = "server") {
    TdsServer::Options o;
    o.encryption = enc;
    o.strict = strict;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    auto s = std::make_unique<TdsServer>(o);
    std::string error;
    EXPECT_TRUE(s->Start(&error)) << error;
    return s;
  }

  std::string Config(uint16_t backend_port, bool strict, const std::string& extra = "",
                     const std::string& server_name = "localhost") {
    return "workers: 2\n"
           "listeners:\n"
           "  - name: mssql\n"
           "    protocol: tds\n"
           "    listen: 127.0.0.1:0\n"
           "    backend: 127.0.0.1:" + std::to_string(backend_port) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: " + server_name + "\n" + (strict ? "      tds_strict: true\n" : "") +
           "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n" + extra +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }

  int Tsql(uint16_t port, const std::string& encryption, const std::string& script, std::string* out,
           const std::string& password = "sa_pw") {
    std::string conf = dir_.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                      std::to_string(port) + "\n\ttds version = 7.4\n\tencryption = " +
                                                      encryption + "\n");
    std::string input = dir_.Write("input.sql", script);
    return RunCommand({"sh", "-c",
                       "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P '" + password + "' < '" +
                           input + "'"},
                      out);
  }

  std::string Tedious(uint16_t port, const std::string& extra_json, const std::string& queries,
                      const std::string& password = "sa_pw") {
    std::string opts = "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\"," +
                       "\"port\":" + std::to_string(port) + ",\"user\":\"sa_user\",\"password\":\"" + password +
                       "\",\"appName\":\"orders-app\",\"database\":\"appdb\",\"queries\":" + queries + extra_json + "}";
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js", opts}, &out);
    size_t at = out.find("{\"ok\"");
    if (at == std::string::npos) return out;
    return out.substr(at, out.find('\n', at) - at);
  }

  // Runs the client; returns its output (tsql) or JSON line (tedious).
  std::string Run(Client c, uint16_t port, int* status) {
    const std::string two = "[\"SELECT 1\",\"SELECT encryption\"]";
    std::string out;
    *status = 0;
    switch (c) {
      case Client::kTsqlOff: *status = Tsql(port, "off", "SELECT 1\ngo\nSELECT encryption\ngo\n", &out); break;
      case Client::kTsqlRequest:
        *status = Tsql(port, "request", "SELECT 1\ngo\nSELECT encryption\ngo\n", &out);
        break;
      case Client::kTsqlRequire:
        *status = Tsql(port, "require", "SELECT 1\ngo\nSELECT encryption\ngo\n", &out);
        break;
      case Client::kTediousOff: out = Tedious(port, ",\"encrypt\":false", two); break;
      case Client::kTediousTrust: out = Tedious(port, ",\"encrypt\":true,\"trustServerCertificate\":true", two); break;
      case Client::kTediousVerify:
        out = Tedious(port, ",\"encrypt\":true,\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"", two);
        break;
      case Client::kTediousStrict:
        out = Tedious(port, ",\"encrypt\":\"strict\",\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"",
                      two);
        break;
    }
    return out;
  }

  TempDir dir_;
};

class TdsModeTest : public TdsTest, public ::testing::WithParamInterface<ModeCase> {};

TEST_P(TdsModeTest, RowsComeBackOverAValidatedBackendLeg) {
  const ModeCase& m = GetParam();
  auto fixture = StartFixture(m.strict_backend);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), m.strict_backend))) << d.Log();
  int status;
  std::string out = Run(m.client, d.port(), &status);
  // dbward's leg to the fixture: TLS 1.2 inside PRELOGIN (7.x) or TDS 8.0.
  std::string backend_leg = m.strict_backend ? "tls-1.3" : "tls-1.2";
  bool tsql = m.client == Client::kTsqlOff || m.client == Client::kTsqlRequest || m.client == Client::kTsqlRequire;
  if (tsql) {
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
    EXPECT_NE(out.find("encryption\n" + backend_leg + "\n(1 row affected)"), std::string::npos) << out;
  } else {
    EXPECT_EQ(out, "{\"ok\":true,\"results\":[[[1]],[[\"" + backend_leg + "\"]]]}");
  }
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->last_leg(), m.strict_backend ? "tls-strict" : "tls");
  EXPECT_EQ(fixture->last_user(), "sa_user");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  auto& e = ev[0];
  EXPECT_EQ(e["outcome"], "ok") << e["error"];
  EXPECT_EQ(e["protocol"], "tds");
  EXPECT_EQ(e["client_encryption"], m.client_encryption);
  EXPECT_EQ(e["trust_bypass"], m.trust_bypass ? "true" : "false");
  EXPECT_EQ(e["bypass_reason"], m.bypass_reason);
  EXPECT_EQ(e["user"], "sa_user");
  EXPECT_EQ(e["client_library"], m.library);
  EXPECT_EQ(e["application"], tsql ? "TSQL" : "orders-app");
  EXPECT_EQ(e["client_protocol_version"], "7.4");
  EXPECT_EQ(e["backend_verified"], "true");
  EXPECT_EQ(e["backend_tls"], m.strict_backend ? "TLSv1.3" : "TLSv1.2");
}

std::vector<ModeCase> AllModes() {
  std::vector<ModeCase> out;
  for (bool strict : {false, true}) {
    out.push_back({Client::kTsqlOff, strict, "none", true, "plaintext", "TDS-Library"});
    out.push_back({Client::kTsqlRequest, strict, "login-only", true, "login-only-encryption", "TDS-Library"});
    out.push_back({Client::kTsqlRequire, strict, "tls", false, "null", "TDS-Library"});
    out.push_back({Client::kTediousOff, strict, "none", true, "plaintext", "Tedious"});
    out.push_back({Client::kTediousTrust, strict, "tls", false, "null", "Tedious"});
    out.push_back({Client::kTediousVerify, strict, "tls", false, "null", "Tedious"});
    out.push_back({Client::kTediousStrict, strict, "tls-strict", false, "null", "Tedious"});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Matrix, TdsModeTest, ::testing::ValuesIn(AllModes()),
                         [](const ::testing::TestParamInfo<ModeCase>& info) {
                           return Name(info.param.client) + (info.param.strict_backend ? "_Tds8Backend" : "_Tds7Backend");
                         });

// TLS session resumption towards the server (on by default for tds): TDS
// 7.x carries TLS 1.2 inside PRELOGIN packets, and the second leg resumes
// the first one's session (session ID, as Schannel does it). The fixture's
// TDS 8.0 side sends no TLS 1.3 tickets: nothing to resume, a full handshake.
TEST_F(TdsTest, BackendLegsResumeTheSessionOfAVerifiedHandshake) {
  for (bool strict : {false, true}) {
    SCOPED_TRACE(strict ? "TDS 8.0 backend" : "TDS 7.x backend");
    auto fixture = StartFixture(strict);
    DbwardProcess d;
    ASSERT_TRUE(d.Start(Config(fixture->port(), strict))) << d.Log();
    for (int i = 0; i < 2; i++) {
      std::string out;
      EXPECT_EQ(Tsql(d.port(), "require", "SELECT 1\ngo\n", &out), 0) << out;
      EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
      ASSERT_EQ(d.WaitAuditEvents(static_cast<size_t>(i + 1)).size(), static_cast<size_t>(i + 1));
    }
    auto ev = d.WaitAuditEvents(2);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0]["backend_resumed"], "false");
    EXPECT_EQ(ev[1]["backend_resumed"], strict ? "false" : "true") << d.Log();
    for (auto& e : ev) {
      EXPECT_EQ(e["outcome"], "ok") << e["error"];
      EXPECT_EQ(e["backend_verified"], "true");
    }
  }
}

TEST_F(TdsTest, RequireClientEncryptionUpgradesLoginOnlyClients) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false, "    client_encryption: require\n"))) << d.Log();
  int status;
  std::string out = Run(Client::kTsqlRequest, d.port(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
  out = Run(Client::kTediousOff, d.port(), &status);
  EXPECT_NE(out.find("Server requires encryption"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["trust_bypass"], "false");
  EXPECT_EQ(ev[1]["outcome"], "refused");
  EXPECT_EQ(ev[1]["cause"], "plaintext_denied");
  EXPECT_EQ(fixture->logins_ok(), 1) << "the refused client never reached the server";
}

TEST_F(TdsTest, PlaintextDeniedByPolicyRefusesClientsThatWillNotEncrypt) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false, "    plaintext_clients: deny\n"))) << d.Log();
  int status;
  std::string out = Run(Client::kTediousOff, d.port(), &status);
  EXPECT_NE(out.find("Server requires encryption"), std::string::npos) << out;
  out = Run(Client::kTsqlOff, d.port(), &status);
  EXPECT_NE(status, 0) << out;
  // A client that asks for login-only encryption still gets in (its login is
  // encrypted), and one that encrypts everything too.
  out = Run(Client::kTsqlRequest, d.port(), &status);
  EXPECT_EQ(status, 0) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["outcome"], "refused");
  EXPECT_EQ(ev[0]["cause"], "plaintext_denied");
  EXPECT_EQ(ev[1]["outcome"], "refused");
  EXPECT_EQ(ev[2]["outcome"], "ok");
  EXPECT_EQ(ev[2]["client_encryption"], "login-only");
  EXPECT_EQ(fixture->logins_ok(), 1);
  EXPECT_EQ(d.Log().find("sa_pw"), std::string::npos) << "the password must never be logged";
}

TEST_F(TdsTest, BackendWithoutEncryptionFailsClosedWithLoginError) {
  auto fixture = StartFixture(false, Encryption::kNotSupported);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false))) << d.Log();
  int status;
  std::string out = Run(Client::kTsqlOff, d.port(), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("Msg 18456"), std::string::npos) << out;
  EXPECT_NE(out.find("dbward never falls back to plaintext"), std::string::npos) << out;
  EXPECT_EQ(fixture->logins_ok(), 0);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_tls_refused");
}

TEST_F(TdsTest, WrongNameBackendCertificateIsShownToTsqlAndTedious) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false, "", "db.internal"))) << d.Log();
  int status;
  std::string out = Run(Client::kTsqlRequire, d.port(), &status);
  EXPECT_NE(out.find("the target principal name is incorrect"), std::string::npos) << out;
  out = Run(Client::kTediousVerify, d.port(), &status);
  EXPECT_NE(out.find("dbward: backend 127.0.0.1:" + std::to_string(fixture->port()) +
                     ": certificate for db.internal does not match the name: the target principal name is incorrect"),
            std::string::npos)
      << out;
  EXPECT_EQ(fixture->logins_ok(), 0);
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["cause"], "name_mismatch");
  EXPECT_EQ(ev[1]["cause"], "name_mismatch");
}

TEST_F(TdsTest, WrongPasswordComesBackFromTheServer) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false))) << d.Log();
  std::string out = Tedious(d.port(), ",\"encrypt\":true,\"trustServerCertificate\":true", "[\"SELECT 1\"]", "nope");
  EXPECT_NE(out.find("Login failed for user 'sa_user'."), std::string::npos) << out;
}

TEST_F(TdsTest, LargeResultSetStreamsThrough) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false))) << d.Log();
  int status;
  std::string out;
  status = Tsql(d.port(), "request", "SELECT big 50000\ngo\n", &out);
  EXPECT_EQ(status, 0) << out.substr(0, 500);
  EXPECT_NE(out.find("(50000 rows affected)"), std::string::npos) << out.substr(out.size() > 300 ? out.size() - 300 : 0);
}

TEST_F(TdsTest, GarbageInsteadOfPreloginGetsAnErrorTokenAndIsDropped) {
  auto fixture = StartFixture(false);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), false))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "\x12\x01\x00\x0e\x00\x00\x01\x00\x00\xff\x00\x00\x06\xff", 14));
  std::string got;
  RecvAll(fd, &got, 65536, 5000);
  close(fd);
  ASSERT_GT(got.size(), 9u);
  EXPECT_EQ(static_cast<uint8_t>(got[0]), 0x04) << "a tabular-result packet";
  EXPECT_EQ(static_cast<uint8_t>(got[8]), 0xAA) << "starting with an ERROR token";
  // The message is UTF-16LE: look for "bad PRELOGIN" in it.
  std::string utf16;
  for (char c : std::string("bad PRELOGIN")) {
    utf16.push_back(c);
    utf16.push_back('\0');
  }
  EXPECT_NE(got.find(utf16), std::string::npos);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "client_error");
  EXPECT_NE(ev[0]["error"].find("bad PRELOGIN"), std::string::npos) << ev[0]["error"];
  EXPECT_EQ(fixture->connections(), 0) << "no backend connection for a malformed client";
}

}  // namespace
}  // namespace dbward::testing

// Canary certificates and the admin endpoint, with real clients: a client
// that completes a handshake with a certificate nobody trusts and goes on to
// use the connection is recorded as not validating; one that refuses it is
// recorded as validating and is not tested again.
#include <gtest/gtest.h>

#include <chrono>
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "mysql8_backend.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

class CanaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  std::string Listener(const std::string& protocol, uint16_t backend_port, const std::string& canary,
                       const std::string& extra = "") {
    return "workers: 1\n"
           "listeners:\n"
           "  - name: canary\n"
           "    protocol: " + protocol + "\n" +
           "    listen: 127.0.0.1:0\n"
           "    backend: 127.0.0.1:" + std::to_string(backend_port) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: localhost\n"
           "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n" +
           "    canary:\n" + canary + extra +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }
  static void ExpectAccepted(JsonFields& e, const std::string& reason) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["trust_bypass"], "true");
    EXPECT_EQ(e["bypass_reason"], reason);
    EXPECT_EQ(e["validates"], "false");
  }
  static void ExpectRejected(JsonFields& e) {
    EXPECT_EQ(e["outcome"], "canary_rejected") << e["error"];
    EXPECT_EQ(e["trust_bypass"], "false");
    EXPECT_EQ(e["validates"], "true");
  }
  // The real certificate, for a client outside the canary's scope.
  static void ExpectReal(JsonFields& e) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["canary"], "null");
    EXPECT_EQ(e["validates"], "null");
    EXPECT_EQ(e["trust_bypass"], "false");
  }
  // The real certificate for a client known to validate: the audit carries
  // the verdict of its earlier session.
  static void ExpectRemembered(JsonFields& e) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["canary"], "remembered");
    EXPECT_EQ(e["validates"], "true");
    EXPECT_EQ(e["trust_bypass"], "false");
  }
};

std::string Mysql2(uint16_t port, const std::string& ssl) {
  std::string out;
  RunCommand({"timeout", "30", "node", SourceDir() + "/tests/integration/node/mysql_client.js",
              "{\"host\":\"localhost\",\"port\":" + std::to_string(port) +
                  ",\"user\":\"sha2_user\",\"password\":\"sha2_pw\",\"database\":\"app\",\"ssl\":" + ssl + "}"},
             &out);
  return out;
}

TEST_F(CanaryTest, Mysql2WithoutValidationIsCaughtAndValidatingOneIsLeftAlone) {
  Mysql8Backend::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("mysql", backend.port(), "      sample: 1.0\n"))) << d.Log();
  EXPECT_EQ(Mysql2(d.port(), "\"insecure\""), "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  std::string rejected = Mysql2(d.port(), "{\"ca\":\"" + Cert("ca.pem") + "\"}");
  EXPECT_NE(rejected.find("\"ok\":false"), std::string::npos) << rejected;
  EXPECT_EQ(Mysql2(d.port(), "{\"ca\":\"" + Cert("ca.pem") + "\"}"),
            "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  ExpectAccepted(ev[0], "accepted-untrusted-certificate");
  ExpectRejected(ev[1]);
  ExpectRemembered(ev[2]);
}

TEST_F(CanaryTest, TediousTrustServerCertificateIsCaught) {
  TdsServer::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  TdsServer fixture(o);
  std::string error;
  ASSERT_TRUE(fixture.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", fixture.port(), "      sample: 1.0\n"))) << d.Log();
  auto tedious = [&](const std::string& extra) {
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js",
                "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\",\"port\":" +
                    std::to_string(d.port()) +
                    ",\"user\":\"sa_user\",\"password\":\"sa_pw\",\"queries\":[\"SELECT 1\"]" + extra + "}"},
               &out);
    return out;
  };
  std::string out = tedious(",\"encrypt\":true,\"trustServerCertificate\":true");
  EXPECT_NE(out.find("{\"ok\":true"), std::string::npos) << out;
  out = tedious(",\"encrypt\":true,\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"");
  EXPECT_NE(out.find("{\"ok\":false"), std::string::npos) << out;
  out = tedious(",\"encrypt\":true,\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"");
  EXPECT_NE(out.find("{\"ok\":true"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  ExpectAccepted(ev[0], "accepted-untrusted-certificate");
  EXPECT_EQ(ev[0]["client_library"], "Tedious");
  ExpectRejected(ev[1]);
  ExpectRemembered(ev[2]);
}

TEST_F(CanaryTest, TsqlWithoutCaFileIsCaughtInsidePrelogin) {
  TdsServer::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  TdsServer fixture(o);
  std::string error;
  ASSERT_TRUE(fixture.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", fixture.port(), "      mode: expired\n      sample: 1.0\n"))) << d.Log();
  TempDir dir;
  std::string conf = dir.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                   std::to_string(d.port()) + "\n\ttds version = 7.4\n\tencryption = require\n");
  std::string input = dir.Write("in.sql", "SELECT 1\ngo\n");
  std::string out;
  EXPECT_EQ(RunCommand({"sh", "-c", "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P sa_pw < '" +
                                        input + "'"},
                       &out),
            0)
      << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["bypass_reason"], "accepted-expired");
  EXPECT_EQ(ev[0]["validates"], "false");
  EXPECT_EQ(ev[0]["canary"], "expired");
}

// Login-only encryption and the canary verdict both stay on record, and
// `dbward report` on the real audit file counts each.
TEST_F(CanaryTest, LoginOnlyClientAcceptingTheCanaryHasBothReasonsInTheReport) {
  TdsServer::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  TdsServer fixture(o);
  std::string error;
  ASSERT_TRUE(fixture.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", fixture.port(), "      sample: 1.0\n"))) << d.Log();
  TempDir dir;
  std::string conf = dir.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                   std::to_string(d.port()) + "\n\ttds version = 7.4\n\tencryption = request\n");
  std::string input = dir.Write("in.sql", "SELECT 1\ngo\n");
  std::string out;
  ASSERT_EQ(RunCommand({"sh", "-c", "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P sa_pw < '" +
                                        input + "'"},
                       &out),
            0)
      << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["client_encryption"], "login-only");
  EXPECT_EQ(ev[0]["bypass_reason"], "login-only-encryption,accepted-untrusted-certificate");
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", d.dir().path() + "/audit.jsonl"}, &out), 0) << out;
  EXPECT_NE(out.find("1 clients, 1 bypass trust: 0 plaintext, 1 login-only, 1 accept untrusted certificates"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("TDS-Library"), std::string::npos) << out;
}

TEST_F(CanaryTest, ClientsOutsideTheConfiguredNetworksAreNotTested) {
  Mysql8Backend::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("mysql", backend.port(), "      sample: 1.0\n      clients: [10.0.0.0/8]\n")))
      << d.Log();
  EXPECT_EQ(Mysql2(d.port(), "{\"ca\":\"" + Cert("ca.pem") + "\"}"),
            "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  ExpectReal(ev[0]);
}

TEST_F(CanaryTest, AdminEndpointServesMetricsHealthAndReadiness) {
  Mysql8Backend::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  DbwardProcess d;
  std::string cfg = "admin:\n  listen: 127.0.0.1:0\n  backend_check_interval: 1s\n" +
                    Listener("mysql", backend.port(), "      sample: 1.0\n");
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  const uint16_t admin = d.admin_port();
  auto get = [&](const std::string& path) {
    std::string out;
    RunCommand({"curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1:" + std::to_string(admin) + path}, &out);
    return out;
  };
  EXPECT_EQ(get("/healthz"), "ok\n\n200");
  std::string ready;
  for (int i = 0; i < 50; i++) {
    ready = get("/readyz");
    if (ready == "ready\n\n200") break;
    usleep(100'000);
  }
  EXPECT_EQ(ready, "ready\n\n200");
  EXPECT_EQ(Mysql2(d.port(), "\"insecure\""), "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  d.WaitAuditEvents(1);
  std::string m = get("/metrics");
  EXPECT_NE(m.find("dbward_sessions_total{listener=\"canary\",protocol=\"mysql\"} "), std::string::npos) << m;
  EXPECT_NE(m.find("dbward_trust_bypass_total{listener=\"canary\",protocol=\"mysql\",bypass_reason=\"accepted-untrusted-"
                   "certificate\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dbward_client_encryption_total{listener=\"canary\",protocol=\"mysql\",client_encryption=\"tls\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dbward_handshake_seconds_count{listener=\"canary\",protocol=\"mysql\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("dbward_backend_certificate_expiry_seconds{listener=\"canary\",protocol=\"mysql\"} "),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dbward_backend_ready{listener=\"canary\",protocol=\"mysql\"} 1"), std::string::npos) << m;
  EXPECT_EQ(get("/nope"), "not found\n\n404");
}

TEST_F(CanaryTest, ReadinessFailsWhenTheBackendCertificateDoesNotValidate) {
  Mysql8Backend::Options o;
  o.cert = Cert("wrongname.pem");
  o.key = Cert("wrongname.key");
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  DbwardProcess d;
  std::string cfg = "admin:\n  listen: 127.0.0.1:0\n  backend_check_interval: 1s\n" +
                    Listener("mysql", backend.port(), "      sample: 0\n");
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  const uint16_t admin = d.admin_port();
  std::string out;
  for (int i = 0; i < 50; i++) {
    RunCommand({"curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1:" + std::to_string(admin) + "/readyz"}, &out);
    if (out.find("target principal name") != std::string::npos) break;
    usleep(100'000);
  }
  EXPECT_NE(out.find("listener canary: "), std::string::npos) << out;
  EXPECT_NE(out.find("the target principal name is incorrect"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 3), "503") << out;
}

}  // namespace
}  // namespace dbward::testing

namespace dbward::testing {
namespace {

std::string Fingerprint(const std::string& pem) {
  std::string out;
  RunCommand({"openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"}, &out);
  return out.substr(out.find('=') + 1, 95);  // "AB:CD:..." (32 bytes)
}

// dbward's own certificate for clients (client_tls) reloads too: `dbward
// probe` against the listener shows the fingerprint dbward presents.
TEST_F(CanaryTest, ClientTlsCertificateReloadsWhenItsFilesChange) {
  DbwardProcess d;
  std::string cert = d.dir().Write("proxy.pem", ReadFileText(Cert("proxy.pem")));
  std::string key = d.dir().Write("proxy.key", ReadFileText(Cert("proxy.key")));
  std::string cfg = "listeners:\n"
                    "  - name: pg\n"
                    "    protocol: postgres\n"
                    "    listen: 127.0.0.1:0\n"
                    "    backend: 127.0.0.1:" + std::to_string(FreePort()) + "\n" +
                    "    backend_tls:\n"
                    "      ca_file: " + Cert("ca.pem") + "\n" +
                    "    client_tls:\n"
                    "      cert_file: " + cert + "\n" +
                    "      key_file: " + key + "\n" +
                    "log:\n  level: info\n  audit: ${AUDIT}\n";
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  auto presented = [&] {
    std::string out;
    RunCommand({DBWARD_BINARY, "probe", "--protocol", "postgres", "--backend", "127.0.0.1:" + std::to_string(d.port()),
                "--ca-file", Cert("ca.pem"), "--server-name", "localhost"},
               &out);
    return out;
  };
  std::string before = presented();
  EXPECT_NE(before.find(Fingerprint(Cert("proxy.pem"))), std::string::npos) << before;
  // Swap in another certificate and key (the server one: same CA, same names).
  std::string tmp_key = d.dir().Write("proxy.key.new", ReadFileText(Cert("server.key")));
  std::string tmp_cert = d.dir().Write("proxy.pem.new", ReadFileText(Cert("server.pem")));
  ASSERT_EQ(rename(tmp_key.c_str(), key.c_str()), 0);
  ASSERT_EQ(rename(tmp_cert.c_str(), cert.c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material", std::chrono::seconds(10))) << d.Log();
  std::string after;
  for (int i = 0; i < 30; i++) {
    after = presented();
    if (after.find(Fingerprint(Cert("server.pem"))) != std::string::npos) break;
    usleep(100'000);
  }
  EXPECT_NE(after.find(Fingerprint(Cert("server.pem"))), std::string::npos) << after;
}

// A validating client is left alone for `remember`, then tested again.
TEST_F(CanaryTest, ValidatingClientIsTestedAgainAfterTheRememberWindow) {
  Mysql8Backend::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  DbwardProcess d;
  // The window must outlast one more client start (node takes about a
  // second under AddressSanitizer on a loaded machine).
  ASSERT_TRUE(d.Start(Listener("mysql", backend.port(), "      sample: 1.0\n      remember: 4s\n"))) << d.Log();
  std::string verify = "{\"ca\":\"" + Cert("ca.pem") + "\"}";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(Mysql2(d.port(), verify).find("\"ok\":false"), std::string::npos);
  EXPECT_EQ(Mysql2(d.port(), verify), "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  // Once the window has passed the canary comes back: the client is asked
  // again (polled with a deadline, each attempt an audited session).
  size_t attempts = 2;
  bool tested_again = false;
  while (!tested_again && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    tested_again = Mysql2(d.port(), verify).find("\"ok\":false") != std::string::npos;
    attempts++;
  }
  EXPECT_TRUE(tested_again);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(4)) << "not before remember ran out";
  auto ev = d.WaitAuditEvents(attempts);
  ASSERT_EQ(ev.size(), attempts);
  ExpectRejected(ev[0]);
  for (size_t i = 1; i + 1 < attempts; i++) ExpectRemembered(ev[i]);
  ExpectRejected(ev[attempts - 1]);
}

// TDS 8.0: the canary rides on the TLS-first handshake too.
TEST_F(CanaryTest, TediousStrictValidatesAndIsRememberedThroughTds8) {
  TdsServer::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  TdsServer fixture(o);
  std::string error;
  ASSERT_TRUE(fixture.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", fixture.port(), "      sample: 1.0\n"))) << d.Log();
  auto strict = [&] {
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js",
                "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\",\"port\":" +
                    std::to_string(d.port()) + ",\"user\":\"sa_user\",\"password\":\"sa_pw\",\"queries\":[\"SELECT 1\"]" +
                    ",\"encrypt\":\"strict\",\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"}"},
               &out);
    return out;
  };
  EXPECT_NE(strict().find("{\"ok\":false"), std::string::npos);
  EXPECT_NE(strict().find("{\"ok\":true"), std::string::npos);
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  ExpectRejected(ev[0]);
  EXPECT_EQ(ev[0]["client_encryption"], "tls-strict");
  ExpectRemembered(ev[1]);
  EXPECT_EQ(ev[1]["client_encryption"], "tls-strict");
}

}  // namespace
}  // namespace dbward::testing

// SQL Server as enterprises run it, through dbward with real clients:
// login-only clients reading dbward's errors, clients that send LOGIN7
// without PRELOGIN (jTDS), routing, named instances, Windows and Azure AD
// logins. Every client is first proven against the TDS fixture directly.
#include <gtest/gtest.h>
#include <unistd.h>

#include "harness.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

using Encryption = TdsServer::Encryption;

class TdsEnterpriseTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(CertDir().empty()) << kNoCerts; }

  std::unique_ptr<TdsServer> StartFixture(TdsServer::Options o = {}) {
    if (o.cert.empty()) {
      o.cert = Cert("server.pem");
      o.key = Cert("server.key");
    }
    auto s = std::make_unique<TdsServer>(o);
    std::string error;
    EXPECT_TRUE(s->Start(&error)) << error;
    return s;
  }

  std::string Config(uint16_t backend_port, const std::string& extra = "", const std::string& server_name = "localhost",
                     const std::string& backend_host = "127.0.0.1") {
    return "workers: 2\n"
           "listeners:\n"
           "  - name: mssql\n"
           "    protocol: tds\n"
           "    listen: 127.0.0.1:0\n"
           "    backend: " + backend_host + ":" + std::to_string(backend_port) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: " + server_name + "\n" +
           "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n" + extra +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }

  int Tsql(uint16_t port, const std::string& encryption, const std::string& script, std::string* out,
           const std::string& extra_conf = "") {
    std::string conf = dir_.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                      std::to_string(port) + "\n\ttds version = 7.4\n\tencryption = " +
                                                      encryption + "\n" + extra_conf);
    std::string input = dir_.Write("input.sql", script);
    return RunCommand({"sh", "-c", "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P sa_pw < '" +
                                       input + "'"},
                      out);
  }

  std::string Tedious(uint16_t port, const std::string& extra_json, const std::string& queries) {
    std::string opts = "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\"," +
                       "\"port\":" + std::to_string(port) +
                       ",\"user\":\"sa_user\",\"password\":\"sa_pw\",\"appName\":\"orders-app\",\"database\":\"appdb\","
                       "\"queries\":" + queries + extra_json + "}";
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js", opts}, &out);
    size_t at = out.find("{\"ok\"");
    if (at == std::string::npos) return out;
    return out.substr(at, out.find('\n', at) - at);
  }

  TempDir dir_;
};

// FreeTDS `encryption = request` is login-only: TLS for LOGIN7, then
// plaintext. A backend that fails validation used to be reported inside TLS,
// which tsql printed as "Bad token from the server: Datastream processing out
// of sync"; the answer to LOGIN7 now travels in plaintext, as SQL Server's does.
TEST_F(TdsEnterpriseTest, LoginOnlyClientReadsWhyTheBackendFailed) {
  auto fixture = StartFixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "", "db.internal"))) << d.Log();
  std::string out;
  Tsql(d.port(), "request", "SELECT 1\ngo\n", &out);
  EXPECT_NE(out.find("the target principal name is incorrect"), std::string::npos) << out;
  EXPECT_NE(out.find("fix: set backend_tls.server_name"), std::string::npos) << out;
  EXPECT_EQ(out.find("Datastream processing out of sync"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_tls_failed");
  EXPECT_EQ(ev[0]["cause"], "name_mismatch");
  EXPECT_EQ(ev[0]["client_encryption"], "login-only");
  EXPECT_EQ(ev[0]["user"], "sa_user");
  EXPECT_EQ(ev[0]["client_library"], "TDS-Library");
  EXPECT_EQ(fixture->logins_ok(), 0);
}

}  // namespace
}  // namespace dbward::testing

// SQL Server as enterprises run it, through dbward with real clients:
// login-only clients reading dbward's errors, clients that send LOGIN7
// without PRELOGIN (jTDS), routing, named instances, Windows and Azure AD
// logins. Every client is first proven against the TDS fixture directly.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
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
                     const std::string& backend_host = "127.0.0.1", const std::string& listen_host = "127.0.0.1",
                     const std::string& top = "") {
    return "workers: 2\n" + top +
           "listeners:\n"
           "  - name: mssql\n"
           "    protocol: tds\n"
           "    listen: " + listen_host + ":0\n"
           "    backend: " + (backend_port == 0 ? backend_host : backend_host + ":" + std::to_string(backend_port)) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: " + server_name + "\n" +
           "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n" + extra +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }

  // port 0: no port in freetds.conf (extra_conf names an instance).
  int Tsql(uint16_t port, const std::string& encryption, const std::string& script, std::string* out,
           const std::string& extra_conf = "", const std::string& host = "127.0.0.1") {
    std::string conf = dir_.Write(
        "freetds.conf", "[global]\n[dbward]\n\thost = " + host + "\n" +
                            (port == 0 ? std::string() : "\tport = " + std::to_string(port) + "\n") +
                            "\ttds version = 7.4\n\tencryption = " + encryption + "\n" + extra_conf);
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


// One UDP exchange with a SQL Server Browser: sends each datagram, returns
// every answer that arrives until `want` answers came or 500 ms passed
// without one (the Browser does not answer what it does not know).
std::vector<std::string> BrowserQuery(const std::string& ip, const std::vector<std::string>& datagrams, size_t want) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(1434);
  inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  for (const std::string& d : datagrams) send(fd, d.data(), d.size(), 0);
  std::vector<std::string> answers;
  while (answers.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 500) <= 0) break;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answers.emplace_back(buf, static_cast<size_t>(n));
  }
  close(fd);
  return answers;
}

std::string InstanceRequest(const std::string& name) { return std::string("\x04", 1) + name + std::string(1, '\0'); }

// dbward answers the SQL Server Browser's queries for its own listeners:
// FreeTDS with `instance =` and no port asks UDP 1434 of the host, gets
// dbward's listener port and logs in through dbward.
TEST_F(TdsEnterpriseTest, SqlBrowserTellsClientsDbwardsPort) {
  auto fixture = StartFixture();
  const std::string ip = "127.0.20.1";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "", "localhost", "127.0.0.1", ip,
                             "sql_browser:\n  listen: " + ip + ":1434\n  instances:\n    SALES: mssql\n")))
      << d.Log();
  EXPECT_TRUE(d.WaitLog("sql_browser answering on UDP " + ip + ":1434")) << d.Log();
  std::string out;
  EXPECT_EQ(Tsql(0, "require", "SELECT 1\ngo\nSELECT encryption\ngo\n", &out, "\tinstance = sales\n", ip), 0) << out;
  EXPECT_NE(out.find("tls-1."), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["client_library"], "TDS-Library");
  EXPECT_EQ(fixture->logins_ok(), 1);

  // The answer names dbward's port, for the instance as configured.
  const std::string port = std::to_string(d.port());
  std::vector<std::string> a = BrowserQuery(ip, {InstanceRequest("Sales")}, 1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0][0], '\x05');
  EXPECT_NE(a[0].find(";InstanceName;SALES;IsClustered;No;Version;16.0.1000.6;tcp;" + port + ";;"), std::string::npos)
      << a[0];
  // The list queries (CLNT_UCAST_EX, CLNT_BCAST_EX) get the same entry.
  for (const char* list : {"\x03", "\x02"}) {
    a = BrowserQuery(ip, {list}, 1);
    ASSERT_EQ(a.size(), 1u) << int(list[0]);
    EXPECT_NE(a[0].find("tcp;" + port + ";;"), std::string::npos);
  }
  // Unknown instances and junk get no answer: the answer that arrives is
  // the one for the valid query sent after them.
  a = BrowserQuery(ip, {InstanceRequest("NOPE"), "\x99junk", InstanceRequest("SALES")}, 2);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].find("SALES"), std::string::npos);
}

TEST_F(TdsEnterpriseTest, SqlBrowserAnswersAreRateLimitedPerSource) {
  auto fixture = StartFixture();
  const std::string ip = "127.0.20.2";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "", "localhost", "127.0.0.1", ip,
                             "sql_browser:\n  listen: " + ip + ":1434\n  instances:\n    SALES: mssql\n")))
      << d.Log();
  ASSERT_TRUE(d.WaitLog("sql_browser answering"));
  // 60 queries at once: a burst of 20 is answered, then about 10 a second.
  std::vector<std::string> queries(60, std::string("\x02"));
  std::vector<std::string> a = BrowserQuery(ip, queries, 60);
  EXPECT_GE(a.size(), 20u);
  EXPECT_LE(a.size(), 26u);
}

}  // namespace
}  // namespace dbward::testing

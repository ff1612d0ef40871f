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
#include "tests/fixtures/ntlm.h"
#include "tests/fixtures/tds_client.h"
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

  // JtdsClient against dbward on 127.0.0.1:port; returns its exit status.
  int Jtds(uint16_t port, const std::string& props, std::string* out,
           const std::vector<std::string>& queries = {"SELECT 1", "SELECT encryption"},
           const std::vector<std::string>& jvm_args = {}) {
    EXPECT_FALSE(std::string(DBWARD_JAVA_CLASSES).empty()) << "no javac at configure time";
    std::vector<std::string> argv = {"timeout", "60", "java"};
    argv.insert(argv.end(), jvm_args.begin(), jvm_args.end());
    argv.insert(argv.end(), {"-cp", std::string(DBWARD_JTDS_JAR) + ":" + DBWARD_JAVA_CLASSES, "JtdsClient",
                             "jdbc:jtds:sqlserver://127.0.0.1:" + std::to_string(port) + ";appName=dbward-jtds;" + props,
                             "sa_user", "sa_pw"});
    argv.insert(argv.end(), queries.begin(), queries.end());
    return RunCommand(argv, out);
  }

  // A JSSE trust store holding the test CA (dbward's client_tls certificate
  // chains to it).
  std::vector<std::string> TrustStore() {
    const std::string store = dir_.path() + "/ca.p12";
    std::string out;
    if (access(store.c_str(), R_OK) != 0) {
      EXPECT_EQ(RunCommand({"keytool", "-importcert", "-noprompt", "-storetype", "PKCS12", "-keystore", store,
                            "-storepass", "changeit", "-alias", "ca", "-file", Cert("ca.pem")},
                           &out),
                0)
          << out;
    }
    return {"-Djavax.net.ssl.trustStore=" + store, "-Djavax.net.ssl.trustStorePassword=changeit",
            "-Djavax.net.ssl.trustStoreType=PKCS12"};
  }

  TempDir dir_;
};

constexpr char kTls[] = ",\"encrypt\":true,\"trustServerCertificate\":true";
// tedious' two queries and what the fixture answers through dbward's leg.
constexpr char kTwoQueries[] = "[\"SELECT 1\",\"SELECT encryption\"]";
constexpr char kTwoAnswers[] = "{\"ok\":true,\"results\":[[[1]],[[\"tls-1.2\"]]]}";

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
// SQL Server 2025 ends its PRELOGIN answer with an empty TRACEID. The
// fixture sends one: tsql and tedious read it directly, and dbward's
// backend leg takes it too (it once refused "option 5 has length 0").
TEST_F(TdsEnterpriseTest, AnEmptyTraceIdInTheServersPreloginAnswerIsAccepted) {
  TdsServer::Options o;
  o.empty_traceid = true;
  auto fixture = StartFixture(o);
  std::string out;
  ASSERT_EQ(Tsql(fixture->port(), "require", "SELECT 1\ngo\n", &out), 0) << out;
  EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
  EXPECT_EQ(Tedious(fixture->port(), kTls, "[\"SELECT 1\"]"), "{\"ok\":true,\"results\":[[[1]]]}");
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
  ASSERT_EQ(Tsql(d.port(), "require", "SELECT 1\ngo\n", &out), 0) << out;
  EXPECT_NE(out.find("\n1\n(1 row affected)"), std::string::npos) << out;
  EXPECT_EQ(Tedious(d.port(), kTls, "[\"SELECT 1\"]"), "{\"ok\":true,\"results\":[[[1]]]}");
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["backend_verified"], "true");
    EXPECT_EQ(e["client_protocol_version"], "7.4");
  }
}

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


// ---------------------------------------------------------------------------
// jTDS 1.3.1 through dbward, in each of its ssl modes. The fixture answers
// `SELECT encryption` with dbward's leg to it: always verified TLS.

TEST_F(TdsEnterpriseTest, JtdsSslOffIsAPlaintextClientLegAndATlsBackendLeg) {
  auto fixture = StartFixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
  std::string out;
  ASSERT_EQ(Jtds(d.port(), "ssl=off", &out), 0) << out;
  EXPECT_EQ(out, "1\ntls-1.2\n");
  ASSERT_TRUE(fixture->WaitIdle());
  // dbward made its own PRELOGIN and TLS; the LOGIN7 is jTDS's.
  EXPECT_TRUE(fixture->last_prelogin_seen());
  EXPECT_EQ(fixture->last_leg(), "tls");
  EXPECT_EQ(fixture->last_client_interface(), "jTDS");
  EXPECT_EQ(fixture->last_login_tds_version(), 0x71000001u);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[0]["bypass_reason"], "plaintext");
  EXPECT_EQ(ev[0]["tds_prelogin"], "false");
  EXPECT_EQ(ev[0]["user"], "sa_user");
  EXPECT_EQ(ev[0]["application"], "dbward-jtds");
  EXPECT_EQ(ev[0]["client_library"], "jTDS");
  EXPECT_EQ(ev[0]["client_protocol_version"], "7.1");
  EXPECT_EQ(ev[0]["backend_verified"], "true");
  EXPECT_NE(ev[0]["note"].find("LOGIN7 without PRELOGIN"), std::string::npos);
}

TEST_F(TdsEnterpriseTest, JtdsSslOffReadsDbwardsErrorsInTds71Tokens) {
  auto fixture = StartFixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "", "db.internal"))) << d.Log();
  std::string out;
  EXPECT_EQ(Jtds(d.port(), "ssl=off", &out), 1) << out;
  EXPECT_NE(out.find("the target principal name is incorrect"), std::string::npos) << out;
  EXPECT_EQ(fixture->logins_ok(), 0);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["cause"], "name_mismatch");
  EXPECT_EQ(ev[0]["tds_prelogin"], "false");

  // plaintext_clients: deny turns jTDS ssl=off away, saying what to set.
  DbwardProcess deny;
  ASSERT_TRUE(deny.Start(Config(fixture->port(), "    plaintext_clients: deny\n"))) << deny.Log();
  EXPECT_EQ(Jtds(deny.port(), "ssl=off", &out), 1) << out;
  EXPECT_NE(out.find("refuses unencrypted logins; enable encryption in the driver (jTDS: ssl=require)"),
            std::string::npos)
      << out;
  auto ev2 = deny.WaitAuditEvents(1);
  ASSERT_EQ(ev2.size(), 1u);
  EXPECT_EQ(ev2[0]["outcome"], "refused");
  EXPECT_EQ(ev2[0]["cause"], "plaintext_denied");
  EXPECT_EQ(ev2[0]["client_library"], "jTDS");
}

TEST_F(TdsEnterpriseTest, JtdsWithTls) {
  auto fixture = StartFixture();
  // ssl=request sends ENCRYPT_OFF. Answered OFF (login-only), JDK 17's TLS
  // close in jTDS discards the plaintext login answer (see
  // tds_fixture_test.cc); dbward's client_encryption: require answers REQ,
  // and jTDS encrypts everything.
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "    client_encryption: require\n"))) << d.Log();
  std::string out;
  ASSERT_EQ(Jtds(d.port(), "ssl=request", &out), 0) << out;
  EXPECT_EQ(out, "1\ntls-1.2\n");
  ASSERT_EQ(Jtds(d.port(), "ssl=require", &out), 0) << out;
  EXPECT_EQ(out, "1\ntls-1.2\n");
  // authenticate validates dbward's certificate with the JSSE trust store.
  ASSERT_EQ(Jtds(d.port(), "ssl=authenticate", &out, {"SELECT 1"}, TrustStore()), 0) << out;
  EXPECT_EQ(out, "1\n");
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "ok");
    EXPECT_EQ(e["client_encryption"], "tls");
    EXPECT_EQ(e["trust_bypass"], "false");
    EXPECT_EQ(e["tds_prelogin"], "true");
    EXPECT_EQ(e["client_library"], "jTDS");
    EXPECT_EQ(e["client_protocol_version"], "7.1");
  }
  EXPECT_EQ(fixture->logins_ok(), 3);
}

// ---------------------------------------------------------------------------
// Routing: the primary routes read-only logins to a replica; dbward follows
// it itself, verified against the routed name, and the client never leaves.

TEST_F(TdsEnterpriseTest, ReadOnlyIntentIsRoutedThroughDbward) {
  auto replica = StartFixture();
  TdsServer::Options o;
  o.route = TdsServer::Route{"localhost", replica->port(), false, ""};
  auto primary = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(primary->port()))) << d.Log();
  EXPECT_EQ(Tedious(d.port(), std::string(kTls) + ",\"readOnlyIntent\":true", kTwoQueries), kTwoAnswers);
  ASSERT_TRUE(primary->WaitIdle());
  ASSERT_TRUE(replica->WaitIdle());
  EXPECT_EQ(primary->routed(), 1);
  EXPECT_EQ(replica->logins_ok(), 1);
  // dbward's own leg to the replica: TLS, SNI and LOGIN7 ServerName = the routed name.
  EXPECT_EQ(replica->last_leg(), "tls");
  EXPECT_EQ(replica->last_sni(), "localhost");
  EXPECT_EQ(replica->last_server_name(), "localhost");
  EXPECT_TRUE(replica->last_read_only_intent());
  EXPECT_EQ(replica->last_user(), "sa_user");
  EXPECT_EQ(replica->last_client_interface(), "Tedious");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["routed_to"], "localhost:" + std::to_string(replica->port()));
  EXPECT_EQ(ev[0]["backend_server_name"], "localhost");
  EXPECT_EQ(ev[0]["backend_addr"].substr(ev[0]["backend_addr"].rfind(':') + 1), std::to_string(replica->port()));
  EXPECT_EQ(ev[0]["backend_verified"], "true");
  EXPECT_EQ(ev[0]["client_library"], "Tedious");
  EXPECT_EQ(ev[0]["client_protocol_version"], "7.4");

  // FreeTDS with read-only intent, TLS throughout (through dbward its own
  // routing bug, a second PRELOGIN under the first TLS, never comes up).
  std::string out;
  EXPECT_EQ(Tsql(d.port(), "require", "SELECT encryption\ngo\n", &out, "\tread-only intent = yes\n"), 0) << out;
  EXPECT_NE(out.find("tls-1.2"), std::string::npos) << out;
  ASSERT_TRUE(replica->WaitIdle());
  EXPECT_EQ(primary->routed(), 2);
  EXPECT_EQ(replica->logins_ok(), 2);
  EXPECT_EQ(replica->last_client_interface(), "TDS-Library");
  ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["routed_to"], "localhost:" + std::to_string(replica->port()));
  EXPECT_EQ(ev[1]["client_encryption"], "tls");

  // Without the intent nothing is routed.
  EXPECT_EQ(Tedious(d.port(), kTls, kTwoQueries), kTwoAnswers);
  ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[2]["routed_to"], "null");
  EXPECT_EQ(primary->routed(), 2);
}

// Enhanced routing (ENVCHANGE 21) names a database too: dbward's replayed
// LOGIN7 carries it. No real client here announces the feature; the raw
// client does.
TEST_F(TdsEnterpriseTest, EnhancedRoutingReplaysTheLoginWithTheRoutedDatabase) {
  auto replica = StartFixture();
  TdsServer::Options o;
  o.route = TdsServer::Route{"localhost", replica->port(), true, "reporting"};
  o.route_when = TdsServer::RouteWhen::kAlways;
  auto primary = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(primary->port()))) << d.Log();
  {
    TdsClient c({.port = d.port(), .encryption = tds::kEncryptOn});
    tds::Login7 login;
    login.user = "sa_user";
    login.password = "sa_pw";
    login.database = "appdb";
    login.client_interface = "dbward-raw";
    login.features = std::vector<tds::Feature>{{tds::kFeatureEnhancedRouting, {}}};
    tds::Response r;
    ASSERT_TRUE(c.Connect() && c.Login(login, &r)) << c.error();
    EXPECT_TRUE(r.login_ack);
    EXPECT_FALSE(r.routing) << "the client never sees the routing answer";
    ASSERT_TRUE(c.Query("SELECT 1", &r)) << c.error();
    EXPECT_EQ(r.rows, std::vector<std::vector<std::string>>{{"1"}});
  }
  ASSERT_TRUE(replica->WaitIdle());
  EXPECT_EQ(primary->routed(), 1);
  EXPECT_EQ(replica->last_database(), "reporting");
  EXPECT_EQ(replica->last_server_name(), "localhost");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["routed_to"], "localhost:" + std::to_string(replica->port()));
  EXPECT_EQ(ev[0]["client_library"], "dbward-raw");
}

TEST_F(TdsEnterpriseTest, RoutingOutsideRoutingAllowFailsClosed) {
  auto replica = StartFixture();
  TdsServer::Options o;
  o.route = TdsServer::Route{"localhost", replica->port(), false, ""};
  o.route_when = TdsServer::RouteWhen::kAlways;
  auto primary = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(primary->port(), "    routing:\n      allow: [\"*.worker.database.windows.net\"]\n")))
      << d.Log();
  std::string r = Tedious(d.port(), kTls, kTwoQueries);
  EXPECT_NE(r.find("which routing.allow does not list (*.worker.database.windows.net)"), std::string::npos) << r;
  EXPECT_EQ(replica->connections(), 0) << "dbward never went there";
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_error");
  EXPECT_EQ(ev[0]["cause"], "routing_denied");
  EXPECT_EQ(ev[0]["routed_to"], "localhost:" + std::to_string(replica->port()));
}

TEST_F(TdsEnterpriseTest, RoutedServerIsVerifiedAgainstTheRoutedName) {
  // The replica listens on 127.0.20.4, which its certificate does not name.
  TdsServer::Options ro;
  ro.bind_address = "127.0.20.4";
  auto replica = StartFixture(ro);
  TdsServer::Options o;
  o.route = TdsServer::Route{"127.0.20.4", replica->port(), false, ""};
  o.route_when = TdsServer::RouteWhen::kAlways;
  auto primary = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(primary->port()))) << d.Log();
  std::string out;
  Tsql(d.port(), "require", "SELECT 1\ngo\n", &out);
  EXPECT_NE(out.find("the target principal name is incorrect"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.20.4"), std::string::npos) << out;
  ASSERT_TRUE(replica->WaitIdle());
  EXPECT_EQ(replica->logins_ok(), 0);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_tls_failed");
  EXPECT_EQ(ev[0]["cause"], "name_mismatch");
  EXPECT_EQ(ev[0]["backend_server_name"], "127.0.20.4");
  EXPECT_EQ(ev[0]["backend_verified"], "false") << "the leg it ended with was not";
  EXPECT_EQ(ev[0]["routed_to"], "127.0.20.4:" + std::to_string(replica->port()));
}

// ---------------------------------------------------------------------------
// Named instances: a backend written HOST\INSTANCE, found through the host's
// SQL Server Browser; and clients finding dbward through dbward's.

TEST_F(TdsEnterpriseTest, BackendNamedInstanceIsFoundThroughItsBrowser) {
  TdsServer::Options o;
  o.bind_address = "127.0.20.3";
  o.browser = TdsServer::Browser{"INST1"};
  auto fixture = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(0, "", "localhost", "127.0.20.3\\INST1"))) << d.Log();
  std::string out;
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(Tsql(d.port(), "require", "SELECT 1\ngo\n", &out), 0) << out;
  }
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->logins_ok(), 2);
  EXPECT_EQ(fixture->browser_queries(), 1) << "the answer is cached";
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["backend"], "127.0.20.3\\INST1");
  EXPECT_EQ(ev[0]["backend_addr"], "127.0.20.3:" + std::to_string(fixture->port()));
  EXPECT_EQ(ev[0]["outcome"], "ok");

  // probe asks the Browser too.
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "probe", "--protocol", "tds", "--backend", "127.0.20.3\\INST1", "--ca-file",
                        Cert("ca.pem"), "--server-name", "localhost"},
                       &out),
            0)
      << out;
  EXPECT_EQ(out.rfind("instance INST1 is on TCP port " + std::to_string(fixture->port()) + "\n", 0), 0u) << out;

  // An instance the Browser does not list: the client hears why.
  DbwardProcess missing;
  ASSERT_TRUE(missing.Start(Config(0, "    timeouts:\n      connect: 300ms\n", "localhost", "127.0.20.3\\NOPE")))
      << missing.Log();
  Tsql(missing.port(), "require", "SELECT 1\ngo\n", &out);
  EXPECT_NE(out.find("did not tell the port of instance 127.0.20.3\\NOPE"), std::string::npos) << out;
  auto ev2 = missing.WaitAuditEvents(1);
  ASSERT_EQ(ev2.size(), 1u);
  EXPECT_EQ(ev2[0]["cause"], "instance_lookup");
  EXPECT_EQ(ev2[0]["outcome"], "backend_unreachable");
}

TEST_F(TdsEnterpriseTest, TediousInstanceNameFindsDbward) {
  auto fixture = StartFixture();
  const std::string ip = "127.0.20.5";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port(), "", "localhost", "127.0.0.1", ip,
                             "sql_browser:\n  listen: " + ip + ":1434\n  instances:\n    SALES: mssql\n")))
      << d.Log();
  ASSERT_TRUE(d.WaitLog("sql_browser answering"));
  EXPECT_EQ(Tedious(0, std::string(kTls) + ",\"server\":\"" + ip + "\",\"instanceName\":\"sales\"", kTwoQueries),
            kTwoAnswers);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["client_library"], "Tedious");
}

// ---------------------------------------------------------------------------
// Windows logins (NTLM) and Extended Protection.

TEST_F(TdsEnterpriseTest, NtlmLoginPassesThroughAndTheAuditNamesTheUser) {
  TdsServer::Options o;
  o.windows_auth = true;
  auto fixture = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
  const std::string ntlm = ",\"ntlm\":{\"userName\":\"alice\",\"domain\":\"corp\",\"password\":\"";
  EXPECT_EQ(Tedious(d.port(), std::string(kTls) + ntlm + "alice_pw\"}", "[\"SELECT SUSER_NAME()\"]"),
            "{\"ok\":true,\"results\":[[[\"CORP\\\\alice\"]]]}");
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->last_sspi_rounds(), 2);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["user"], "CORP\\alice");

  EXPECT_EQ(Tedious(d.port(), std::string(kTls) + ntlm + "wrong\"}", "[\"SELECT 1\"]"),
            "{\"ok\":false,\"error\":\"Login failed for user 'CORP\\\\alice'.\",\"code\":\"ELOGIN\"}");
  ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["outcome"], "auth_failed");
  EXPECT_NE(ev[1]["error"].find("refused the login: Login failed for user 'CORP\\alice'. (error 18456"),
            std::string::npos)
      << ev[1]["error"].substr(0, 200);
}

tds::Login7 WindowsLogin() {
  tds::Login7 l;
  l.host_name = "ws-17";
  l.app_name = "raw-ntlm";
  l.server_name = "localhost";
  l.client_interface = "dbward-raw";
  return l;
}

TEST_F(TdsEnterpriseTest, ExtendedProtectionRefusalIsExplainedAndTheServersCertificateFixesIt) {
  TdsServer::Options o;
  o.windows_auth = true;
  o.extended_protection = TdsServer::ExtendedProtection::kRequired;
  auto fixture = StartFixture(o);
  const ntlm::Credentials alice{"alice", "CORP", "alice_pw"};
  // A client that binds its login to the TLS channel it sees (as Windows SSPI
  // does): through dbward that channel is dbward's.
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
  {
    TdsClient c({.port = d.port(), .encryption = tds::kEncryptOn});
    ASSERT_TRUE(c.Connect()) << c.error();
    tds::Response r;
    ASSERT_TRUE(c.LoginNtlm(WindowsLogin(), alice, c.ServerEndPointBinding(), &r)) << c.error();
    EXPECT_FALSE(r.login_ack);
    ASSERT_NE(r.FirstError(), nullptr);
    EXPECT_EQ(r.FirstError()->number, 18452);
    EXPECT_NE(r.FirstError()->text.find("if the server enforces Extended Protection, the client's channel binding "
                                         "names dbward's certificate"),
              std::string::npos)
        << r.FirstError()->text;
    EXPECT_NE(r.FirstError()->text.find("set Extended Protection to Allowed"), std::string::npos);
  }
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->last_channel_binding(), "mismatch");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "auth_failed");
  EXPECT_EQ(ev[0]["user"], "CORP\\alice");
  EXPECT_NE(ev[0]["error"].find("Extended Protection"), std::string::npos);

  // dbward presenting the server's own certificate: the binding matches.
  DbwardProcess same;
  std::string cfg = Config(fixture->port());
  cfg.replace(cfg.find(Cert("proxy.pem")), Cert("proxy.pem").size(), Cert("server.pem"));
  cfg.replace(cfg.find(Cert("proxy.key")), Cert("proxy.key").size(), Cert("server.key"));
  ASSERT_TRUE(same.Start(cfg)) << same.Log();
  {
    TdsClient c({.port = same.port(), .encryption = tds::kEncryptOn});
    ASSERT_TRUE(c.Connect()) << c.error();
    tds::Response r;
    ASSERT_TRUE(c.LoginNtlm(WindowsLogin(), alice, c.ServerEndPointBinding(), &r)) << c.error();
    EXPECT_TRUE(r.login_ack);
    ASSERT_TRUE(c.Query("SELECT SUSER_NAME()", &r)) << c.error();
    EXPECT_EQ(r.rows, std::vector<std::vector<std::string>>{{"CORP\\alice"}});
  }
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->last_channel_binding(), "match");
}

// ---------------------------------------------------------------------------
// Azure AD: access tokens inline, and the FEDAUTHINFO exchange.

TEST_F(TdsEnterpriseTest, AzureAdTokensPassThrough) {
  TdsServer::Options o;
  o.fedauth = true;
  o.access_token = "eyJhbGciOiJub25lIn0.eyJvaWQiOiJ0ZXN0In0.";
  auto fixture = StartFixture(o);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
  EXPECT_EQ(Tedious(d.port(), std::string(kTls) + ",\"accessToken\":\"" + o.access_token + "\"", "[\"SELECT 1\"]"),
            "{\"ok\":true,\"results\":[[[1]]]}");
  ASSERT_TRUE(fixture->WaitIdle());
  EXPECT_EQ(fixture->last_fedauth(), "token");
  EXPECT_EQ(fixture->last_client_fedauth_required(), 1) << "FEDAUTHREQUIRED reached the server";
  EXPECT_EQ(fixture->last_fedauth_echo(), 1) << "and its answer reached tedious";
  // The MSAL flow: FEDAUTHINFO to the client, the token message back.
  fixture->WaitIdle();
  TdsServer::Options m = o;
  m.access_token = "eyJ.msal.token";
  auto msal = StartFixture(m);
  DbwardProcess d2;
  ASSERT_TRUE(d2.Start(Config(msal->port()))) << d2.Log();
  EXPECT_EQ(Tedious(d2.port(), std::string(kTls) + ",\"tokenCredential\":\"eyJ.msal.token\"", "[\"SELECT 1\"]"),
            "{\"ok\":true,\"results\":[[[1]]],\"tokenScopes\":[\"https://database.windows.net/.default\"]}");
  ASSERT_TRUE(msal->WaitIdle());
  EXPECT_EQ(msal->last_fedauth(), "msal");
  EXPECT_EQ(Tedious(d2.port(), std::string(kTls) + ",\"tokenCredential\":\"eyJ.stale\"", "[\"SELECT 1\"]"),
            "{\"ok\":false,\"error\":\"Login failed for user '<token-identified principal>'.\",\"code\":\"ELOGIN\","
            "\"tokenScopes\":[\"https://database.windows.net/.default\"]}");
  auto ev = d2.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[1]["outcome"], "auth_failed");
  EXPECT_EQ(ev[1]["client_library"], "Tedious");
}

// ---------------------------------------------------------------------------
// MARS: the client's PRELOGIN option reaches the server, the answer returns.

TEST_F(TdsEnterpriseTest, MarsOptionRoundTrip) {
  for (bool server_mars : {true, false}) {
    TdsServer::Options o;
    o.mars = server_mars;
    auto fixture = StartFixture(o);
    DbwardProcess d;
    ASSERT_TRUE(d.Start(Config(fixture->port()))) << d.Log();
    TdsClient c({.port = d.port(), .encryption = tds::kEncryptOn, .mars = 1});
    ASSERT_TRUE(c.Connect()) << c.error();
    ASSERT_TRUE(c.prelogin_answer().mars);
    EXPECT_EQ(*c.prelogin_answer().mars, server_mars ? 1 : 0);
    EXPECT_EQ(fixture->last_client_mars(), 1);
  }
}

}  // namespace
}  // namespace dbward::testing

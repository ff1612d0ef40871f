// MySQL / MariaDB end to end: a real MariaDB 10.11 with
// require_secure_transport = ON, real clients (mariadb CLI, node mysql2,
// sysbench) through dbward. Asserts on what the server reports for the
// session (Ssl_version), what the client printed, and the audit event.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "harness.h"
#include "mysql8_backend.h"

namespace dbward::testing {
namespace {

class MysqlTest : public ScriptedServerSuite<MariadbScript> {
 protected:
  struct Options {
    std::string server_name = "localhost";
    bool client_tls = true;
    std::string extra;
    uint16_t backend_port = 0;
  };
  std::string Config(const Options& o) {
    std::string c =
        "workers: 2\n"
        "listeners:\n"
        "  - name: my\n"
        "    protocol: mysql\n"
        "    listen: 127.0.0.1:0\n"
        "    backend: 127.0.0.1:" + std::to_string(o.backend_port ? o.backend_port : port_) + "\n" +
        "    backend_tls:\n"
        "      ca_file: " + Cert("ca.pem") + "\n" +
        "      server_name: " + o.server_name + "\n";
    if (o.client_tls) {
      c += "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n";
    }
    c += o.extra + "log:\n  level: debug\n  audit: ${AUDIT}\n";
    return c;
  }

  int Cli(uint16_t port, const std::vector<std::string>& args, const std::string& sql, std::string* out) {
    std::vector<std::string> argv = {"timeout", "30", "mariadb", "--no-defaults", "-h", "127.0.0.1",
                                     "-P", std::to_string(port), "--batch", "--skip-column-names"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("-e");
    argv.push_back(sql);
    return RunCommand(argv, out);
  }

};

const char* kSslVersion = "SHOW STATUS LIKE 'Ssl_version'";

TEST_F(MysqlTest, ServerRefusesPlaintextClientsDirectly) {
  std::string out;
  EXPECT_NE(Cli(port_, {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  // MariaDB answers a plaintext login under require_secure_transport with
  // "Access denied"; MySQL says "insecure transport are prohibited".
  EXPECT_NE(out.find("ERROR 1045 (28000): Access denied for user 'native_user'"), std::string::npos) << out;
}

TEST_F(MysqlTest, SslDisabledClientReachesSecureTransportServerOverVerifiedTls) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, kSslVersion, &out), 0) << out;
  EXPECT_EQ(out, "Ssl_version\tTLSv1.3\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["protocol"], "mysql");
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[0]["trust_bypass"], "true");
  EXPECT_EQ(ev[0]["bypass_reason"], "plaintext");
  EXPECT_EQ(ev[0]["user"], "native_user");
  EXPECT_EQ(ev[0]["database"], "app");
  EXPECT_EQ(ev[0]["client_library"].rfind("libmariadb 3.", 0), 0u) << ev[0]["client_library"];
  EXPECT_EQ(ev[0]["application"], "mysql");
  EXPECT_EQ(ev[0]["backend_verified"], "true");
}

TEST_F(MysqlTest, TlsClientVerifyingDbwardCertificate) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(),
                {"-u", "native_user", "-pnative_pw", "--ssl", "--ssl-ca=" + Cert("ca.pem"), "--ssl-verify-server-cert",
                 "app"},
                kSslVersion, &out),
            0)
      << out;
  EXPECT_EQ(out, "Ssl_version\tTLSv1.3\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["trust_bypass"], "false");
  EXPECT_EQ(ev[0]["client_tls"], "TLSv1.3");
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
}

// TLS session resumption towards MariaDB (on by default for mysql): the
// first backend leg is a full, verified handshake; the next ones resume its
// session, so they skip the server's certificate and signature.
TEST_F(MysqlTest, BackendLegsResumeTheSessionOfAVerifiedHandshake) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start("admin:\n  listen: 127.0.0.1:0\n" + Config({}))) << d.Log();
  const uint16_t admin = d.admin_port();
  for (int i = 0; i < 3; i++) {
    std::string out;
    ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, kSslVersion, &out), 0) << out;
    EXPECT_EQ(out, "Ssl_version\tTLSv1.3\n");
    ASSERT_EQ(d.WaitAuditEvents(static_cast<size_t>(i + 1)).size(), static_cast<size_t>(i + 1));
  }
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["backend_resumed"], "false");
  EXPECT_EQ(ev[1]["backend_resumed"], "true") << d.Log();
  EXPECT_EQ(ev[2]["backend_resumed"], "true");
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["backend_verified"], "true");
  }
  std::string m;
  RunCommand({"curl", "-s", "http://127.0.0.1:" + std::to_string(admin) + "/metrics"}, &m);
  const std::string prefix = "dbward_backend_tls_resumptions_total{listener=\"my\",protocol=\"mysql\",result=";
  EXPECT_NE(m.find(prefix + "\"miss\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find(prefix + "\"hit\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find(prefix + "\"rejected\"} 0\n"), std::string::npos) << m;
  // A reload builds a new backend context: its first leg verifies in full.
  kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material")) << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, kSslVersion, &out), 0) << out;
  ev = d.WaitAuditEvents(4);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[3]["backend_resumed"], "false") << d.Log();
  EXPECT_EQ(ev[3]["outcome"], "ok") << ev[3]["error"];
}

TEST_F(MysqlTest, SessionResumptionCanBeTurnedOff) {
  Options o;
  std::string c = Config(o);
  c.insert(c.find("      server_name:"), "      session_resumption: false\n");
  DbwardProcess d;
  ASSERT_TRUE(d.Start(c)) << d.Log();
  for (int i = 0; i < 2; i++) {
    std::string out;
    ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, kSslVersion, &out), 0) << out;
  }
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["backend_resumed"], "null");
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
}

TEST_F(MysqlTest, Ed25519PassesThrough) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(), {"-u", "ed_user", "-ped_pw", "--skip-ssl", "app"}, "SELECT CURRENT_USER()", &out), 0) << out;
  EXPECT_EQ(out, "ed_user@%\n");
}

TEST_F(MysqlTest, WrongPasswordShowsServerErrorAndIsAudited) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pwrong", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  EXPECT_NE(out.find("ERROR 1045 (28000): Access denied for user 'native_user'"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "auth_failed");
}

TEST_F(MysqlTest, PlaintextDeniedByPolicy) {
  Options o;
  o.extra = "    plaintext_clients: deny\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  EXPECT_NE(out.find("ERROR 3159 (HY000): dbward: Connections using insecure transport are prohibited on listener my"),
            std::string::npos)
      << out;
}

TEST_F(MysqlTest, WrongNameBackendCertificateIsReadableInClient) {
  Options o;
  o.server_name = "db.internal";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  EXPECT_NE(out.find("ERROR 1043 (08S01): dbward: backend 127.0.0.1:" + std::to_string(port_) +
                     ": certificate for db.internal does not match the name: the target principal name is incorrect"),
            std::string::npos)
      << out;
}

TEST_F(MysqlTest, BackendDownIsAnErrInPlaceOfTheGreeting) {
  Options o;
  o.backend_port = FreePort();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  EXPECT_NE(out.find("ERROR 1043 (HY000): dbward: cannot connect to backend"), std::string::npos) << out;
}

// A server stand-in whose greeting does not offer CLIENT_SSL.
class NoTlsServer {
 public:
  NoTlsServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    listen(fd_, 4);
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      // Protocol 10, "5.7.44", id 7, scramble, caps without CLIENT_SSL (0xf7ff),
      // charset 33, status 2, caps high 0x81ff, auth data 21, 10 zero bytes,
      // scramble part 2, mysql_native_password.
      static const char kGreeting[] = "\x0a" "5.7.44\0" "\x07\0\0\0" "abcdefgh\0" "\xff\xf7" "\x21" "\x02\0"
                                      "\xff\x81" "\x15" "\0\0\0\0\0\0\0\0\0\0" "ijklmnopqrst\0"
                                      "mysql_native_password";  // the array's own NUL ends the plugin name
      std::string p(kGreeting, sizeof kGreeting);
      std::string pkt = std::string(1, static_cast<char>(p.size())) + std::string("\0\0\0", 3) + p;
      send(c, pkt.data(), pkt.size(), MSG_NOSIGNAL);
      char buf[256];
      while (recv(c, buf, sizeof buf, 0) > 0) got_data_ = true;
      close(c);
    });
  }
  ~NoTlsServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  bool got_data() const { return got_data_; }

 private:
  int fd_;
  uint16_t port_;
  std::atomic<bool> got_data_{false};
  std::thread thread_;
};

TEST_F(MysqlTest, BackendWithoutTlsFailsClosed) {
  NoTlsServer fake;
  Options o;
  o.backend_port = fake.port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, "SELECT 1", &out), 0);
  EXPECT_NE(out.find("does not offer TLS (no CLIENT_SSL in its greeting); dbward never falls back to plaintext"),
            std::string::npos)
      << out;
  EXPECT_FALSE(fake.got_data()) << "the client's credentials must never reach a plaintext backend";
}

TEST_F(MysqlTest, MalformedHandshakeGetsErrPacket) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  int fd = ConnectLoopback(d.port());
  std::string greeting;
  // Read the 4-byte header then the greeting payload.
  ASSERT_EQ(RecvAll(fd, &greeting, 4, 5000), 4);
  size_t len = static_cast<uint8_t>(greeting[0]) | (static_cast<uint8_t>(greeting[1]) << 8);
  ASSERT_EQ(RecvAll(fd, &greeting, len, 5000), static_cast<ssize_t>(len));
  EXPECT_EQ(greeting[4], '\x0a');
  // A response without CLIENT_PROTOCOL_41.
  std::string bad("\x08\0\0\x01" "\x05\x00\x00\x00\x00\x00\x00\x00", 12);
  ASSERT_TRUE(SendAll(fd, bad.data(), bad.size()));
  std::string err;
  RecvAll(fd, &err, 4096, 5000);
  close(fd);
  ASSERT_GE(err.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(err[3]), 2) << "ERR answers the client's packet 1 with sequence 2";
  EXPECT_EQ(static_cast<uint8_t>(err[4]), 0xff);
  EXPECT_NE(err.find("pre-4.1 handshake"), std::string::npos) << err;
}

TEST_F(MysqlTest, OversizedPreAuthPacketIsRefused) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  int fd = ConnectLoopback(d.port());
  std::string greeting;
  ASSERT_EQ(RecvAll(fd, &greeting, 4, 5000), 4);
  size_t len = static_cast<uint8_t>(greeting[0]) | (static_cast<uint8_t>(greeting[1]) << 8);
  RecvAll(fd, &greeting, len, 5000);
  ASSERT_TRUE(SendAll(fd, "\xff\xff\xff\x01", 4));
  std::string err;
  RecvAll(fd, &err, 4096, 5000);
  close(fd);
  EXPECT_NE(err.find("exceeds the connection-phase limit"), std::string::npos) << err;
}

TEST_F(MysqlTest, NodeMysql2PlaintextAndVerifiedTls) {
  std::string node_dir = SourceDir() + "/tests/integration/node";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string base = "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(d.port()) +
                     ",\"user\":\"native_user\",\"password\":\"native_pw\",\"database\":\"app\"";
  std::string out;
  ASSERT_EQ(RunCommand({"timeout", "30", "node", node_dir + "/mysql_client.js", base + ",\"ssl\":false}"}, &out), 0)
      << out;
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  ASSERT_EQ(RunCommand({"timeout", "30", "node", node_dir + "/mysql_client.js",
                        base + ",\"host\":\"localhost\",\"ssl\":{\"ca\":\"" + Cert("ca.pem") + "\"}}"},
                       &out),
            0)
      << out;
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[1]["client_encryption"], "tls");
  EXPECT_EQ(ev[1]["application"], "node-mysql2-test");
  EXPECT_EQ(ev[1]["client_library"].rfind("Node-MySQL-2 3.", 0), 0u) << ev[1]["client_library"];
}

TEST_F(MysqlTest, SysbenchOltpReadOnlyThroughDbward) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::vector<std::string> common = {"--db-driver=mysql", "--mysql-host=127.0.0.1",
                                     "--mysql-port=" + std::to_string(d.port()), "--mysql-user=sysbench",
                                     "--mysql-password=sysbench_pw", "--mysql-db=app", "--mysql-ssl=off",
                                     "--tables=1", "--table-size=1000"};
  std::vector<std::string> prepare = {"timeout", "120", "sysbench", "oltp_read_only"};
  prepare.insert(prepare.end(), common.begin(), common.end());
  std::vector<std::string> cleanup = prepare;
  prepare.push_back("prepare");
  cleanup.push_back("cleanup");
  std::string out;
  RunCommand(cleanup, &out);
  ASSERT_EQ(RunCommand(prepare, &out), 0) << out;
  std::vector<std::string> run = {"timeout", "120", "sysbench", "oltp_read_only", "--threads=4", "--time=3"};
  run.insert(run.end(), common.begin(), common.end());
  run.push_back("run");
  ASSERT_EQ(RunCommand(run, &out), 0) << out;
  EXPECT_NE(out.find("ignored errors:                      0"), std::string::npos) << out;
  EXPECT_NE(out.find("transactions:"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(5);
  for (auto& e : ev) EXPECT_EQ(e["outcome"], "ok") << e["error"];
}

// caching_sha2_password (MySQL 8's default) against the scripted MySQL 8.0
// backend: MySQL 8 has no Debian package. The backend requires secure
// transport, so it always sees TLS from dbward.
class MysqlSha2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    Mysql8Backend::Options o;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    backend_ = std::make_unique<Mysql8Backend>(o);
    std::string error;
    ASSERT_TRUE(backend_->Start(&error)) << error;
    std::string cfg =
        "listeners:\n"
        "  - name: my8\n"
        "    protocol: mysql\n"
        "    listen: 127.0.0.1:0\n"
        "    backend: 127.0.0.1:" + std::to_string(backend_->port()) + "\n" +
        "    backend_tls:\n"
        "      ca_file: " + Cert("ca.pem") + "\n" +
        "      server_name: localhost\n"
        "    client_tls:\n"
        "      cert_file: " + Cert("proxy.pem") + "\n" +
        "      key_file: " + Cert("proxy.key") + "\n" +
        "log:\n  level: debug\n  audit: ${AUDIT}\n";
    ASSERT_TRUE(d_.Start(cfg)) << d_.Log();
  }
  std::string Mysql2(const std::string& password, bool ssl, std::string* out) {
    std::string opts = "{\"host\":\"localhost\",\"port\":" + std::to_string(d_.port()) +
                       ",\"user\":\"sha2_user\",\"password\":\"" + password + "\",\"database\":\"app\",\"ssl\":" +
                       (ssl ? "{\"ca\":\"" + Cert("ca.pem") + "\"}" : std::string("false")) + "}";
    RunCommand({"timeout", "30", "node", SourceDir() + "/tests/integration/node/mysql_client.js", opts}, out);
    return *out;
  }
  std::unique_ptr<Mysql8Backend> backend_;
  DbwardProcess d_;
};

TEST_F(MysqlSha2Test, PlaintextMysql2FullAuthGoesThroughDbwardsRsaKey) {
  std::string out;
  Mysql2("sha2_pw", false, &out);
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  // The backend got the password in clear over TLS: it never had to hand
  // out its RSA key, and the client never saw it.
  EXPECT_EQ(backend_->last_auth_path(), "full-tls");
  EXPECT_TRUE(backend_->saw_tls());
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[0]["note"], "caching_sha2_password full authentication through dbward's RSA key");
  EXPECT_EQ(d_.Log().find("sha2_pw"), std::string::npos) << "the password must never be logged";
}

TEST_F(MysqlSha2Test, PlaintextMariadbCliFullAuthGoesThroughDbwardsRsaKey) {
  std::string out;
  ASSERT_EQ(RunCommand({"timeout", "30", "mariadb", "--no-defaults", "-h", "127.0.0.1", "-P",
                        std::to_string(d_.port()), "-u", "sha2_user", "-psha2_pw", "--skip-ssl", "--batch",
                        "--skip-column-names", "app", "-e", "SELECT 1"},
                       &out),
            0)
      << out;
  EXPECT_EQ(out, "1\n");
  EXPECT_EQ(backend_->last_auth_path(), "full-tls");
}

TEST_F(MysqlSha2Test, WarmCacheUsesFastAuthWithoutRsa) {
  backend_->set_cache_warm(true);
  std::string out;
  Mysql2("sha2_pw", false, &out);
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  EXPECT_EQ(backend_->last_auth_path(), "fast");
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["note"], "null");
}

TEST_F(MysqlSha2Test, TlsClientFullAuthPassesStraightThrough) {
  std::string out;
  Mysql2("sha2_pw", true, &out);
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  EXPECT_EQ(backend_->last_auth_path(), "full-tls");
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["note"], "null");
}

TEST_F(MysqlSha2Test, Sha256PasswordOnPlaintextLegGoesThroughDbwardsRsaKey) {
  Mysql8Backend::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  o.plugin = "sha256_password";
  Mysql8Backend sha256(o);
  std::string error;
  ASSERT_TRUE(sha256.Start(&error)) << error;
  std::string cfg =
      "listeners:\n"
      "  - name: my256\n"
      "    protocol: mysql\n"
      "    listen: 127.0.0.1:0\n"
      "    backend: 127.0.0.1:" + std::to_string(sha256.port()) + "\n" +
      "    backend_tls:\n"
      "      ca_file: " + Cert("ca.pem") + "\n" +
      "      server_name: localhost\n"
      "log:\n  level: debug\n  audit: ${AUDIT}\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  std::string out;
  RunCommand({"timeout", "30", "node", SourceDir() + "/tests/integration/node/mysql_client.js",
              "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(d.port()) +
                  ",\"user\":\"sha2_user\",\"password\":\"sha2_pw\",\"database\":\"app\",\"ssl\":false}"},
             &out);
  EXPECT_EQ(out, "{\"ok\":true,\"ssl_version\":\"TLSv1.3\",\"one\":1}\n");
  EXPECT_EQ(sha256.last_auth_path(), "sha256-tls") << sha256.last_error();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["note"], "sha256_password full authentication through dbward's RSA key");
}

TEST_F(MysqlSha2Test, WrongPasswordOverRsaPathIsDenied) {
  std::string out;
  Mysql2("not-it", false, &out);
  EXPECT_NE(out.find("Access denied for user 'sha2_user'"), std::string::npos) << out;
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "auth_failed");
}

}  // namespace
}  // namespace dbward::testing

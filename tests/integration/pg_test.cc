// PostgreSQL end to end: a real PostgreSQL 15 server that accepts only TLS,
// real clients (psql, pgbench, node-postgres) through dbward. Asserts on what
// the server saw (pg_stat_ssl), what the client printed, and the audit event.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

class PgTest : public ScriptedServerSuite<PostgresScript> {
 protected:
  struct Options {
    std::string server_name = "localhost";
    std::string ca = "ca.pem";
    std::string client_cert = "proxy";  // empty: no client_tls
    std::string extra;                  // listener lines (4-space indent)
    uint16_t backend_port = 0;          // 0: the test server
  };
  std::string Config(const Options& o) {
    std::string c =
        "workers: 2\n"
        "listeners:\n"
        "  - name: pg\n"
        "    protocol: postgres\n"
        "    listen: 127.0.0.1:0\n"
        "    backend: 127.0.0.1:" + std::to_string(o.backend_port ? o.backend_port : port_) + "\n" +
        "    backend_tls:\n"
        "      ca_file: " + Cert(o.ca) + "\n" +
        "      server_name: " + o.server_name + "\n";
    if (!o.client_cert.empty()) {
      c += "    client_tls:\n"
           "      cert_file: " + Cert(o.client_cert + ".pem") + "\n" +
           "      key_file: " + Cert(o.client_cert + ".key") + "\n";
    }
    c += o.extra + "log:\n  level: debug\n  audit: ${AUDIT}\n";
    return c;
  }

  // Runs psql through dbward; returns its exit status and output.
  int Psql(const DbwardProcess& d, const std::string& conninfo, const std::string& sql, std::string* out,
           const std::string& host = "127.0.0.1") {
    return RunCommand({"timeout", "30", "psql",
                       "host=" + host + " port=" + std::to_string(d.port()) + " dbname=app " + conninfo, "-XAtc",
                       sql},
                      out);
  }

  static constexpr const char* kSslQuery =
      "select ssl::text || '|' || version from pg_stat_ssl where pid = pg_backend_pid()";

};

TEST_F(PgTest, PlaintextClientReachesTlsOnlyServerOverVerifiedTls) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0) << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["protocol"], "postgres");
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[0]["trust_bypass"], "true");
  EXPECT_EQ(ev[0]["bypass_reason"], "plaintext");
  EXPECT_EQ(ev[0]["user"], "scram_user");
  EXPECT_EQ(ev[0]["database"], "app");
  EXPECT_EQ(ev[0]["application"], "psql");
  EXPECT_EQ(ev[0]["backend_verified"], "true");
  EXPECT_EQ(ev[0]["backend_tls"], "TLSv1.3");
  EXPECT_EQ(d.Log().find("scram_pw"), std::string::npos) << "the password must never be logged";
  EXPECT_EQ(ReadFileText(d.dir().path() + "/audit.jsonl").find("scram_pw"), std::string::npos);
}

// pgJDBC (Debian's 42.5) sends no application_name in its StartupMessage
// unless told the server is 9.0 or newer: it logs in, runs SET
// extra_float_digits = 3, then SET application_name, both in the extended
// protocol. The server's ParameterStatus carries the name into the audit.
TEST_F(PgTest, PgJdbcSetsApplicationNameAfterLoginAndTheAuditHasIt) {
  ASSERT_FALSE(std::string(DBWARD_PGJDBC_JAR).empty()) << "pgJDBC not found at configure time (libpostgresql-jdbc-java)";
  ASSERT_FALSE(std::string(DBWARD_JAVA_CLASSES).empty()) << "no javac at configure time";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  auto jdbc = [&](const std::string& props, std::string* out) {
    return RunCommand({"timeout", "60", "java", "-cp", std::string(DBWARD_PGJDBC_JAR) + ":" + DBWARD_JAVA_CLASSES,
                       "JtdsClient", "jdbc:postgresql://127.0.0.1:" + std::to_string(d.port()) + "/app?" + props,
                       "md5_user", "md5_pw", "SELECT current_setting('application_name')", "SELECT 2"},
                      out);
  };
  std::string out;
  ASSERT_EQ(jdbc("sslmode=disable&ApplicationName=orders-batch", &out), 0) << out;
  EXPECT_EQ(out, "orders-batch\n2\n");
  // The driver's default name, set the same way.
  ASSERT_EQ(jdbc("sslmode=disable", &out), 0) << out;
  EXPECT_EQ(out, "PostgreSQL JDBC Driver\n2\n");
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  EXPECT_EQ(ev[0]["application"], "orders-batch");
  EXPECT_EQ(ev[1]["application"], "PostgreSQL JDBC Driver");
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["user"], "md5_user");
  }
}

TEST_F(PgTest, Md5UserWithSslmodeRequireUsesDbwardCertificate) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d, "user=md5_user password=md5_pw sslmode=require", kSslQuery, &out), 0) << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
  EXPECT_EQ(ev[0]["client_tls"], "TLSv1.3");
  EXPECT_EQ(ev[0]["trust_bypass"], "false");
  EXPECT_EQ(ev[0]["user"], "md5_user");
  EXPECT_EQ(d.Log().find("md5_pw"), std::string::npos) << "the password must never be logged";
}

TEST_F(PgTest, VerifyFullClientValidatesDbwardCertificate) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d,
                 "user=scram_user password=scram_pw sslmode=verify-full channel_binding=disable sslrootcert=" +
                     Cert("ca.pem"),
                 kSslQuery, &out, "localhost"),
            0)
      << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
}

TEST_F(PgTest, VerifyFullClientRejectsUntrustedDbwardCertificate) {
  Options o;
  o.client_cert = "selfsigned";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=md5_user password=md5_pw sslmode=verify-full sslrootcert=" + Cert("ca.pem"), kSslQuery,
                 &out, "localhost"),
            0);
  EXPECT_NE(out.find("certificate verify failed"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "client_tls_failed");
  EXPECT_EQ(ev[0]["backend_addr"], "null") << "no backend connection for a client that never finished TLS";
}

TEST_F(PgTest, ScramOverTlsWithoutChannelBindingWorks) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require channel_binding=disable", kSslQuery, &out), 0)
      << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
}

// libpq on TLS tells the server "I could do channel binding but you do not
// offer it" once -PLUS is withdrawn; the server treats that as a downgrade.
// No proxy that terminates TLS can fix this without the password, so dbward
// makes the error say what to change.
TEST_F(PgTest, ScramChannelBindingThroughTerminatingProxyIsExplained) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=require", kSslQuery, &out), 0);
  EXPECT_NE(out.find("SCRAM channel binding negotiation error"), std::string::npos) << out;
  EXPECT_NE(out.find("channel_binding=disable"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "auth_failed");
}

TEST_F(PgTest, ChannelBindingPassesWhenDbwardPresentsTheServerCertificate) {
  Options o;
  o.client_cert = "server";  // same certificate as the backend: tls-server-end-point matches
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d,
                 "user=scram_user password=scram_pw sslmode=verify-full channel_binding=require sslrootcert=" +
                     Cert("ca.pem"),
                 kSslQuery, &out, "localhost"),
            0)
      << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["note"], "channel binding passes through (same certificate on both legs)");
}

TEST_F(PgTest, WithoutClientTlsSslRequestIsAnsweredNAndPreferFallsBack) {
  Options o;
  o.client_cert = "";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=prefer", kSslQuery, &out), 0) << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=require", kSslQuery, &out), 0);
  EXPECT_NE(out.find("server does not support SSL"), std::string::npos) << out;
}

TEST_F(PgTest, PlaintextDeniedByPolicyGetsErrorResponse) {
  Options o;
  o.extra = "    plaintext_clients: deny\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=md5_user password=md5_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("does not accept unencrypted connections (plaintext_clients: deny)"), std::string::npos) << out;
  ASSERT_EQ(Psql(d, "user=md5_user password=md5_pw sslmode=require", kSslQuery, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["outcome"], "refused");
  EXPECT_EQ(ev[0]["cause"], "plaintext_denied");
  EXPECT_EQ(ev[1]["outcome"], "ok");
}

TEST_F(PgTest, WrongNameBackendCertificateIsReadableInPsql) {
  Options o;
  o.server_name = "db.internal";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("FATAL:  dbward: backend 127.0.0.1:" + std::to_string(port_) +
                     ": certificate for db.internal does not match the name: the target principal name is "
                     "incorrect"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("set backend_tls.server_name to one of those names"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["cause"], "name_mismatch");
}

TEST_F(PgTest, UntrustedBackendCertificateIsReadableInPsql) {
  Options o;
  o.ca = "other-ca.pem";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("is not trusted: the certificate chain was issued by an authority that is not trusted"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("set backend_tls.ca_file"), std::string::npos) << out;
}

TEST_F(PgTest, BackendDownIsReadableInPsql) {
  Options o;
  o.backend_port = FreePort();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("dbward: cannot connect to backend"), std::string::npos) << out;
}

// A backend stand-in that answers SSLRequest with the given bytes.
class FakeSslAnswer {
 public:
  explicit FakeSslAnswer(std::string answer) : answer_(std::move(answer)) {
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
      char buf[8];
      size_t got = 0;
      while (got < 8) {
        ssize_t n = recv(c, buf + got, 8 - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
      send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
      char rest[4096];
      while (recv(c, rest, sizeof rest, 0) > 0) {
        received_extra_ = true;
      }
      close(c);
    });
  }
  ~FakeSslAnswer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  bool received_extra() const { return received_extra_; }

 private:
  std::string answer_;
  int fd_;
  uint16_t port_;
  std::atomic<bool> received_extra_{false};
  std::thread thread_;
};

TEST_F(PgTest, BackendAnsweringNToSslRequestFailsClosed) {
  FakeSslAnswer fake("N");
  Options o;
  o.backend_port = fake.port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("refused TLS (it answered 'N' to SSLRequest); dbward never falls back to plaintext"),
            std::string::npos)
      << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_tls_refused");
  EXPECT_FALSE(fake.received_extra()) << "the startup message must never go to a plaintext backend";
}

TEST_F(PgTest, BackendInjectingBytesAfterSIsRejected) {
  FakeSslAnswer fake(std::string("SE\0\0\0\x08", 6));
  Options o;
  o.backend_port = fake.port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=disable", kSslQuery, &out), 0);
  EXPECT_NE(out.find("CVE-2021-23222"), std::string::npos) << out;
  EXPECT_FALSE(fake.received_extra());
}

std::string Startup(const std::string& user, const std::string& db) {
  std::string body;
  body += std::string("\x00\x03\x00\x00", 4);
  body += "user";
  body.push_back('\0');
  body += user;
  body.push_back('\0');
  body += "database";
  body.push_back('\0');
  body += db;
  body.push_back('\0');
  body.push_back('\0');
  uint32_t len = htonl(static_cast<uint32_t>(body.size() + 4));
  return std::string(reinterpret_cast<const char*>(&len), 4) + body;
}

const std::string kSslRequest("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8);
const std::string kGssEncRequest("\x00\x00\x00\x08\x04\xd2\x16\x30", 8);

TEST_F(PgTest, GssEncRequestIsDeclinedThenPlaintextStartupProceeds) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, kGssEncRequest.data(), kGssEncRequest.size()));
  std::string got;
  RecvAll(fd, &got, 1, 5000);
  EXPECT_EQ(got, "N");
  std::string startup = Startup("md5_user", "app");
  ASSERT_TRUE(SendAll(fd, startup.data(), startup.size()));
  got.clear();
  RecvAll(fd, &got, 13, 5000);
  // AuthenticationMD5Password: 'R', length 12, code 5, 4-byte salt.
  ASSERT_EQ(got.size(), 13u);
  EXPECT_EQ(got.substr(0, 9), std::string("R\x00\x00\x00\x0c\x00\x00\x00\x05", 9));
  close(fd);
}

TEST_F(PgTest, DataAfterSslRequestIsRejected) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  int fd = ConnectLoopback(d.port());
  std::string both = kSslRequest + Startup("md5_user", "app");
  ASSERT_TRUE(SendAll(fd, both.data(), both.size()));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000)) << "no 'S' may be sent when plaintext follows the SSLRequest";
  close(fd);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["cause"], "plaintext_after_request");
}

TEST_F(PgTest, OversizedAndOldProtocolStartupGetErrorResponse) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "\x00\x00\x4e\x21\x00\x03\x00\x00", 8));  // length 20001
  std::string got;
  RecvAll(fd, &got, 4096, 5000);
  close(fd);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0], 'E');
  EXPECT_NE(got.find("startup packet too long"), std::string::npos) << got;
  EXPECT_NE(got.find("08P01"), std::string::npos);

  fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "\x00\x00\x00\x09\x00\x02\x00\x00\x00", 9));
  got.clear();
  RecvAll(fd, &got, 4096, 5000);
  close(fd);
  EXPECT_NE(got.find("unsupported frontend protocol 2.0"), std::string::npos) << got;
}

// PostgreSQL 17's sslnegotiation=direct: TLS from the first byte with ALPN
// "postgresql". libpq 15 cannot do it, so the test speaks it with BoringSSL.
std::string DirectTlsStartup(uint16_t port, bool with_alpn, std::string* error) {
  int fd = ConnectLoopback(port);
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  SSL_CTX_load_verify_locations(ctx.get(), Cert("ca.pem").c_str(), nullptr);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  if (with_alpn) {
    static const uint8_t kAlpn[] = {10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l'};
    SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  }
  SSL_set_fd(ssl.get(), fd);
  if (SSL_connect(ssl.get()) != 1) {
    *error = "TLS handshake failed";
    close(fd);
    return "";
  }
  std::string startup = Startup("md5_user", "app");
  SSL_write(ssl.get(), startup.data(), static_cast<int>(startup.size()));
  char buf[4096];
  int n = SSL_read(ssl.get(), buf, sizeof buf);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_F(PgTest, DirectTlsWithAlpnIsAccepted) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string error;
  std::string got = DirectTlsStartup(d.port(), true, &error);
  ASSERT_EQ(got.size(), 13u) << error;
  EXPECT_EQ(got.substr(0, 9), std::string("R\x00\x00\x00\x0c\x00\x00\x00\x05", 9));
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["client_encryption"], "tls-direct");
  EXPECT_EQ(ev[0]["client_alpn"], "postgresql");
}

TEST_F(PgTest, DirectTlsWithoutAlpnIsRefused) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string error;
  std::string got = DirectTlsStartup(d.port(), false, &error);
  EXPECT_NE(got.find("without ALPN"), std::string::npos) << got << error;
}

TEST_F(PgTest, CtrlCInPsqlCancelsTheQueryThroughDbward) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out_path = d.dir().path() + "/psql.out";
  // The server is shared with other tests: this query is told apart by a tag.
  std::string tag = "cancel-test-" + std::to_string(getpid());
  auto t0 = std::chrono::steady_clock::now();
  pid_t psql = SpawnBackground({"psql",
                                "host=127.0.0.1 port=" + std::to_string(d.port()) +
                                    " dbname=app user=scram_user password=scram_pw sslmode=disable",
                                "-Xc", "select pg_sleep(60) -- " + tag},
                               out_path);
  ASSERT_GT(psql, 0);
  // Wait for the query to be running on the server, then press Ctrl-C.
  ASSERT_TRUE(d.WaitLog("verified", std::chrono::seconds(10)));
  auto running_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::string count;
    RunCommand({"psql",
                "host=127.0.0.1 port=" + std::to_string(port_) +
                    " dbname=app user=scram_user password=scram_pw sslmode=require",
                "-XAtc", "select count(*) from pg_stat_activity where state = 'active' and query like '%" + tag + "'"},
               &count);
    if (count == "1\n") break;
    ASSERT_LT(std::chrono::steady_clock::now(), running_deadline) << "the query never ran: " << count;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(psql, SIGINT);
  int status = WaitPid(psql, std::chrono::seconds(20));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  EXPECT_NE(status, -1);
  std::string out = ReadFileText(out_path);
  EXPECT_NE(out.find("canceling statement due to user request"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(2);
  bool forwarded = false;
  for (auto& e : ev) forwarded |= e["note"] == "cancel request forwarded";
  EXPECT_TRUE(forwarded) << d.Log();
}

TEST_F(PgTest, NodePostgresPlaintextAndVerifiedTls) {
  std::string node_dir = SourceDir() + "/tests/integration/node";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string out;
  std::string base = "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(d.port()) +
                     ",\"user\":\"scram_user\",\"password\":\"scram_pw\",\"database\":\"app\"";
  ASSERT_EQ(RunCommand({"timeout", "30", "node", node_dir + "/pg_client.js", base + ",\"ssl\":false}"}, &out), 0)
      << out;
  EXPECT_EQ(out, "{\"ok\":true,\"ssl\":true,\"version\":\"TLSv1.3\",\"sum\":500500}\n");
  ASSERT_EQ(RunCommand({"timeout", "30", "node", node_dir + "/pg_client.js",
                        base + ",\"ssl\":{\"ca\":\"" + Cert("ca.pem") + "\",\"servername\":\"localhost\"}}"},
                       &out),
            0)
      << out;
  EXPECT_EQ(out, "{\"ok\":true,\"ssl\":true,\"version\":\"TLSv1.3\",\"sum\":500500}\n");
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["client_encryption"], "none");
  EXPECT_EQ(ev[1]["client_encryption"], "tls");
  EXPECT_EQ(ev[1]["application"], "node-pg-test");
}

// psql sslmode=require takes any certificate; verify-full does not. The
// canary tells them apart, and the validating client is left alone after
// its one failed attempt.
TEST_F(PgTest, CanarySeparatesSslmodeRequireFromVerifyFull) {
  Options o;
  o.extra = "    canary:\n      mode: untrusted\n      sample: 1.0\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(o))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d, "user=md5_user password=md5_pw sslmode=require", kSslQuery, &out), 0) << out;
  std::string verify = "user=md5_user password=md5_pw sslmode=verify-full sslrootcert=" + Cert("ca.pem");
  EXPECT_NE(Psql(d, verify, kSslQuery, &out, "localhost"), 0);
  EXPECT_NE(out.find("certificate verify failed"), std::string::npos) << out;
  ASSERT_EQ(Psql(d, verify, kSslQuery, &out, "localhost"), 0) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["bypass_reason"], "accepted-untrusted-certificate");
  EXPECT_EQ(ev[0]["validates"], "false");
  EXPECT_EQ(ev[1]["outcome"], "canary_rejected");
  EXPECT_EQ(ev[1]["validates"], "true");
  EXPECT_EQ(ev[2]["canary"], "remembered");
  EXPECT_EQ(ev[2]["validates"], "true");
  EXPECT_EQ(ev[2]["trust_bypass"], "false");
}

// PostgreSQL 17's direct TLS towards the backend (backend_tls.direct): no
// SSLRequest, TLS from the first byte with ALPN "postgresql". PostgreSQL 15
// cannot do it, so a BoringSSL stand-in plays the server: it checks the ALPN,
// reads the startup message and answers AuthenticationOk + ReadyForQuery.
TEST_F(PgTest, DirectTlsToTheBackendSendsAlpnAndNoSslRequest) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  listen(lfd, 4);
  socklen_t len = sizeof sa;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  uint16_t port = ntohs(sa.sin_port);
  std::string seen_alpn, seen_startup;
  std::thread server([&] {
    int c = accept(lfd, nullptr, nullptr);
    if (c < 0) return;
    bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
    SSL_CTX_use_certificate_chain_file(ctx.get(), Cert("server.pem").c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), Cert("server.key").c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_set_alpn_select_cb(
        ctx.get(),
        [](SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len, void*) {
          if (in_len < 11 || memcmp(in, "\x0apostgresql", 11) != 0) return SSL_TLSEXT_ERR_ALERT_FATAL;
          *out = in + 1;
          *out_len = 10;
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), c);
    if (SSL_accept(ssl.get()) == 1) {
      const uint8_t* alpn;
      unsigned alpn_len;
      SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
      seen_alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
      char buf[512];
      int n = SSL_read(ssl.get(), buf, sizeof buf);
      if (n > 0) seen_startup.assign(buf, static_cast<size_t>(n));
      static const char kOkReady[] = "R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";
      SSL_write(ssl.get(), kOkReady, sizeof kOkReady - 1);
      SSL_read(ssl.get(), buf, sizeof buf);  // until the client goes away
    }
    close(c);
  });
  Options o;
  o.backend_port = port;
  o.client_cert = "";
  std::string cfg = Config(o);
  cfg.replace(cfg.find("      server_name: localhost\n"), 29, "      server_name: localhost\n      direct: true\n");
  DbwardProcess d;
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  int fd = ConnectLoopback(d.port());
  std::string startup = Startup("md5_user", "app");
  ASSERT_TRUE(SendAll(fd, startup.data(), startup.size()));
  std::string got;
  RecvAll(fd, &got, 15, 5000);
  close(fd);
  server.join();
  close(lfd);
  EXPECT_EQ(got, std::string("R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I", 15));
  EXPECT_EQ(seen_alpn, "postgresql");
  EXPECT_EQ(seen_startup, startup) << "the startup message goes first, inside TLS, with no SSLRequest before it";
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["backend_verified"], "true");
}

TEST_F(PgTest, PgbenchSelectOnlyThroughDbward) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config({}))) << d.Log();
  std::string conn = "host=127.0.0.1 port=" + std::to_string(d.port()) +
                     " dbname=app user=scram_user password=scram_pw sslmode=disable";
  std::string out;
  ASSERT_EQ(RunCommand({"timeout", "60", "pgbench", "-i", "-s", "1", "-q", conn}, &out), 0) << out;
  ASSERT_EQ(RunCommand({"timeout", "60", "pgbench", "-S", "-n", "-c", "4", "-j", "2", "-T", "3", conn}, &out), 0)
      << out;
  EXPECT_NE(out.find("number of failed transactions: 0"), std::string::npos) << out;
  EXPECT_NE(out.find("tps = "), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(5);
  size_t ok = 0;
  for (auto& e : ev) ok += e["outcome"] == "ok";
  EXPECT_EQ(ok, ev.size()) << d.Log();
}

// warm_backends: legs connected, past SSLRequest and TLS-verified before the
// client comes; connect-per-request clients take them.
class PgWarmTest : public PgTest {
 protected:
  // with_admin: an admin server on a port dbward picks; backend_port 0: the test server.
  std::string WarmConfig(const std::string& warm, bool with_admin, uint16_t backend_port = 0,
                         const std::string& extra = "") {
    Options o;
    o.backend_port = backend_port;
    o.extra = "    warm_backends: " + warm + "\n" + extra;
    std::string c = Config(o);
    c.replace(c.find("workers: 2"), 10, "workers: 1");  // one pool, so the test knows which legs it has
    return with_admin ? "admin:\n  listen: 127.0.0.1:0\n" + c : c;
  }
  std::string Metrics(uint16_t admin) {
    std::string out;
    RunCommand({"curl", "-s", "http://127.0.0.1:" + std::to_string(admin) + "/metrics"}, &out);
    return out;
  }
  // Ends the server processes behind dbward's connections (its warm legs:
  // the test runs no session meanwhile) with SIGTERM, as pg_terminate_backend
  // would; a process that has not logged in yet is not in pg_stat_activity.
  int TerminateWarmLegs(const DbwardProcess& d, std::string* diag) {
    std::string ss;
    RunCommand({"ss", "-Htnp", "state", "established"}, &ss);
    *diag = ss;
    std::set<std::string> dbward_ports;  // dbward's ends of its connections to the server
    std::istringstream lines(ss);
    std::vector<std::pair<std::string, std::string>> server_side;  // (peer, process)
    for (std::string line; std::getline(lines, line);) {
      std::istringstream f(line);
      std::string recvq, sendq, local, peer, process;
      f >> recvq >> sendq >> local >> peer >> process;
      if (peer == "127.0.0.1:" + std::to_string(port_) && process.find("pid=" + std::to_string(d.pid()) + ",") != std::string::npos) {
        dbward_ports.insert(local);
      }
      if (local == "127.0.0.1:" + std::to_string(port_)) server_side.emplace_back(peer, process);
    }
    int n = 0;
    for (auto& [peer, process] : server_side) {
      if (!dbward_ports.count(peer)) continue;
      size_t at = process.find("pid=");
      if (at == std::string::npos) continue;
      if (kill(atoi(process.c_str() + at + 4), SIGTERM) == 0) n++;
    }
    return n;
  }
  int PsqlMd5(const DbwardProcess& d, std::string* out) {
    return Psql(d, "user=md5_user password=md5_pw sslmode=disable", kSslQuery, out);
  }
};

TEST_F(PgWarmTest, ConnectPerRequestClientsTakeVerifiedWarmLegs) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(WarmConfig("{count: 2, max_age: 20s}", true))) << d.Log();
  const uint16_t admin = d.admin_port();
  ASSERT_TRUE(d.WaitLog("warm backend legs ready: 2 of 2")) << d.Log();
  EXPECT_NE(Metrics(admin).find("dbward_warm_backends_ready{listener=\"pg\",protocol=\"postgres\"} 2"),
            std::string::npos);
  for (int i = 0; i < 3; i++) {
    std::string out;
    ASSERT_EQ(PsqlMd5(d, &out), 0) << out << d.Log();
    EXPECT_EQ(out, "true|TLSv1.3\n");
  }
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  for (size_t i = 0; i < ev.size(); i++) {
    EXPECT_EQ(ev[i]["outcome"], "ok") << ev[i]["error"];
    EXPECT_EQ(ev[i]["user"], "md5_user");
    EXPECT_EQ(ev[i]["backend_verified"], "true");
    EXPECT_EQ(ev[i]["backend_tls"], "TLSv1.3");
    EXPECT_EQ(ev[i]["backend_server_name"], "localhost");
    EXPECT_FALSE(ev[i]["backend_addr"].empty());
  }
  // Two were ready before the first client came.
  EXPECT_EQ(ev[0]["backend_warm"], "true");
  EXPECT_EQ(ev[1]["backend_warm"], "true");
  std::string m = Metrics(admin);
  EXPECT_EQ(m.find("dbward_warm_backend_takes_total{listener=\"pg\",protocol=\"postgres\",result=\"hit\"} 0"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dbward_warm_backend_takes_total{listener=\"pg\",protocol=\"postgres\",result=\"miss\"}"),
            std::string::npos);
}

TEST_F(PgWarmTest, NoLegFromBeforeAReloadOrClosedByTheServerOrPastMaxAgeIsHandedOut) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(WarmConfig("{count: 1, max_age: 20s}", true))) << d.Log();
  const uint16_t admin = d.admin_port();
  ASSERT_TRUE(d.WaitLog("warm backend legs ready: 1 of 1")) << d.Log();
  // A reload: the leg was verified with the material from before it.
  kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material")) << d.Log();
  std::string out;
  ASSERT_EQ(PsqlMd5(d, &out), 0) << out;
  ASSERT_TRUE(d.WaitLog("warm backend leg closed unused (reload)")) << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["backend_warm"], "false");
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  // The server ends the leg (as authentication_timeout or a restart would):
  // the pool notices and makes another; the client never sees the dead one.
  ASSERT_TRUE(d.WaitLog("warm backend legs ready: 1 of 1", std::chrono::seconds(10), 2)) << d.Log();
  std::string diag;
  ASSERT_EQ(TerminateWarmLegs(d, &diag), 1) << diag;
  ASSERT_TRUE(d.WaitLog("warm backend leg closed unused (backend_closed)")) << d.Log();
  ASSERT_EQ(PsqlMd5(d, &out), 0) << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
  ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
  std::string m = Metrics(admin);
  EXPECT_NE(m.find("dbward_warm_backend_recycled_total{listener=\"pg\",protocol=\"postgres\",reason=\"reload\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(
      m.find("dbward_warm_backend_recycled_total{listener=\"pg\",protocol=\"postgres\",reason=\"backend_closed\"} 1"),
      std::string::npos)
      << m;
}

// A server that takes the TCP connection and never answers SSLRequest: the
// leg is bounded by timeouts.handshake, said once, and retried with backoff;
// a client still gets the server's own failure in its words.
TEST_F(PgWarmTest, ALegTheServerNeverAnswersTimesOutAndIsSaid) {
  TlsBackend::Options bo;
  bo.mode = TlsBackend::Mode::kSilent;
  TlsBackend silent(bo);
  std::string error;
  ASSERT_TRUE(silent.Start(&error)) << error;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(WarmConfig("{count: 1}", false, silent.port(), "    timeouts:\n      handshake: 500ms\n")))
      << d.Log();
  ASSERT_TRUE(d.WaitLog("warm backend leg: no answer to SSLRequest or the TLS handshake within timeouts.handshake; "
                        "sessions connect on their own meanwhile"))
      << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=md5_user password=md5_pw sslmode=disable", "select 1", &out), 0);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["backend_warm"], "false");
  EXPECT_NE(ev[0]["outcome"], "ok");
}

TEST_F(PgWarmTest, LegsAreRecycledAtMaxAge) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(WarmConfig("{count: 1, max_age: 1s}", true))) << d.Log();
  const uint16_t admin = d.admin_port();
  ASSERT_TRUE(d.WaitLog("warm backend leg closed unused (max_age)")) << d.Log();
  ASSERT_TRUE(d.WaitLog("warm backend legs ready: 1 of 1", std::chrono::seconds(10), 2)) << d.Log();
  std::string out;
  ASSERT_EQ(PsqlMd5(d, &out), 0) << out;
  EXPECT_EQ(out, "true|TLSv1.3\n");
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["backend_warm"], "true") << "the leg made after the recycle";
  const std::string m = Metrics(admin);
  const std::string recycled =
      "dbward_warm_backend_recycled_total{listener=\"pg\",protocol=\"postgres\",reason=\"max_age\"} ";
  const size_t at = m.find(recycled);
  ASSERT_NE(at, std::string::npos) << m;
  EXPECT_GE(std::stoi(m.substr(at + recycled.size())), 1) << m;
}

}  // namespace
}  // namespace dbward::testing

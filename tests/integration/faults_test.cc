// The audit under faults: backends that die, reset or hang in the middle of
// a session, clients that connect and say nothing, clients that trickle a
// handshake, and the pre-authentication limits (max_handshakes). Each
// test asserts what the client saw and the audit event.
#include <gtest/gtest.h>
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "harness.h"
#include "tests/fixtures/tds_server.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

std::string TcpListener(uint16_t backend_port, const std::string& extra = "") {
  return "workers: 1\n"
         "listeners:\n"
         "  - name: raw\n"
         "    protocol: tcp\n"
         "    listen: 127.0.0.1:0\n"
         "    backend: 127.0.0.1:" + std::to_string(backend_port) + "\n" +
         "    backend_tls:\n"
         "      ca_file: " + Cert("ca.pem") + "\n" +
         "      server_name: localhost\n" + extra +
         "log:\n  level: debug\n  audit: ${AUDIT}\n";
}

// Sends "hello", reads the echo, then waits for the backend's end to reach
// the client (EOF) and closes.
void EchoOnceThenWaitForEof(uint16_t port) {
  int fd = ConnectLoopback(port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "hello", 5));
  std::string got;
  RecvAll(fd, &got, 1 << 20, 5000);  // to EOF
  EXPECT_EQ(got, "hello");
  close(fd);
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(CertDir().empty()) << kNoCerts; }
  std::unique_ptr<TlsBackend> Backend(TlsBackend::Mode mode) {
    TlsBackend::Options o;
    o.mode = mode;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    auto b = std::make_unique<TlsBackend>(o);
    std::string error;
    EXPECT_TRUE(b->Start(&error)) << error;
    return b;
  }
  JsonFields PgSessionAgainst(TlsBackend::Mode mode, bool terminate);
};

TEST_F(FaultsTest, BackendWithoutCloseNotifyIsAbrupt) {
  auto backend = Backend(TlsBackend::Mode::kEchoThenTruncate);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(TcpListener(backend->port()))) << d.Log();
  EchoOnceThenWaitForEof(d.port());
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_closed_abruptly");
  EXPECT_EQ(ev[0]["cause"], "no_close_notify");
  EXPECT_NE(ev[0]["error"].find("without close_notify"), std::string::npos) << ev[0]["error"];
  EXPECT_EQ(ev[0]["bytes_up"], "5");
  EXPECT_EQ(ev[0]["bytes_down"], "5");
}

TEST_F(FaultsTest, BackendResetIsAbrupt) {
  auto backend = Backend(TlsBackend::Mode::kEchoThenReset);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(TcpListener(backend->port()))) << d.Log();
  EchoOnceThenWaitForEof(d.port());
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_closed_abruptly");
  EXPECT_EQ(ev[0]["cause"], "backend_reset");
}

TEST_F(FaultsTest, BackendThatEndsWithCloseNotifyIsOk) {
  auto backend = Backend(TlsBackend::Mode::kEchoThenClose);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(TcpListener(backend->port()))) << d.Log();
  EchoOnceThenWaitForEof(d.port());
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[0]["cause"], "null");
}

// A PostgreSQL client that says Terminate while the engine still watches
// the first answers (one query: psql -c), to a server that closes without
// close_notify before the client hangs up: the goodbye went up before the
// relay, and the session still ended cleanly.
std::string PgListener(uint16_t backend_port) {
  return "workers: 1\nlisteners:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:0\n"
         "    backend: 127.0.0.1:" + std::to_string(backend_port) + "\n    backend_tls:\n      ca_file: " +
         Cert("ca.pem") + "\n      server_name: localhost\nlog:\n  level: debug\n  audit: ${AUDIT}\n";
}

// A PostgreSQL message: type, length, body.
std::string PgMessage(char type, const std::string& body) {
  std::string m(1, type);
  const uint32_t len = static_cast<uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8) m.push_back(static_cast<char>(len >> shift));
  return m + body;
}

// Reads until a ReadyForQuery (idle) has arrived; false on EOF or silence.
bool PgUntilReady(int fd, std::string* got) {
  for (int i = 0; i < 100 && got->find(std::string("Z\0\0\0\5I", 6)) == std::string::npos; i++) {
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return false;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// A plaintext client through a postgres listener to a trust-login server:
// the StartupMessage, the login's answers, then one query and its answer.
void PgLoginAndQuery(int fd) {
  const std::string params = std::string("user\0trusted\0database\0app\0\0", 27);
  std::string startup(4, '\0');
  startup += std::string("\0\3\0\0", 4) + params;
  startup[3] = static_cast<char>(startup.size());
  ASSERT_TRUE(SendAll(fd, startup.data(), startup.size()));
  std::string got;
  ASSERT_TRUE(PgUntilReady(fd, &got)) << got.size();
  const std::string query = PgMessage('Q', std::string("select 1\0", 9));
  ASSERT_TRUE(SendAll(fd, query.data(), query.size()));
  got.clear();
  ASSERT_TRUE(PgUntilReady(fd, &got));
}

// Logs in through dbward to a scripted PostgreSQL backend in MODE, runs one
// query, sends Terminate if asked (the socket stays open: the server's FIN
// comes first), reads until dbward closes and returns the session's audit event.
JsonFields FaultsTest::PgSessionAgainst(TlsBackend::Mode mode, bool terminate) {
  auto backend = Backend(mode);
  DbwardProcess d;
  EXPECT_TRUE(d.Start(PgListener(backend->port()))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_GE(fd, 0);
  if (fd < 0) return {};
  PgLoginAndQuery(fd);
  if (::testing::Test::HasFatalFailure()) {
    close(fd);
    return {};
  }
  if (terminate) {
    const std::string message = PgMessage('X', "");
    EXPECT_TRUE(SendAll(fd, message.data(), message.size()));
  }
  std::string rest;
  RecvAll(fd, &rest, 1 << 20, 5000);  // dbward closes once the backend has
  close(fd);
  auto ev = d.WaitAuditEvents(1);
  EXPECT_EQ(ev.size(), 1u) << d.Log();
  return ev.empty() ? JsonFields{} : ev[0];
}

TEST_F(FaultsTest, TerminateDuringThePostgresWatchIsAGoodbye) {
  auto ev = PgSessionAgainst(TlsBackend::Mode::kPgTrustNoCloseNotify, true);
  EXPECT_EQ(ev["outcome"], "ok") << ev["error"];
  EXPECT_EQ(ev["cause"], "null");
}

// A server that resets the connection after the login, while the engine
// still watches the first answers: the backend died under a connected
// client, not a handshake that failed.
TEST_F(FaultsTest, ABackendResetAfterThePostgresLoginIsAbrupt) {
  auto ev = PgSessionAgainst(TlsBackend::Mode::kPgTrustThenReset, false);
  EXPECT_EQ(ev["outcome"], "backend_closed_abruptly") << ev["error"];
  EXPECT_EQ(ev["cause"], "backend_reset");
  EXPECT_NE(ev["error"].find("while the client was connected"), std::string::npos) << ev["error"];
}

// A real process killed: openssl s_server, kill -9, with a session open.
TEST_F(FaultsTest, BackendProcessKilledWithSessionsOpen) {
  OpensslServer server;
  ASSERT_TRUE(server.Start({"-cert", Cert("server.pem"), "-key", Cert("server.key"), "-quiet", "-rev"}));
  DbwardProcess d;
  ASSERT_TRUE(d.Start(TcpListener(server.port()))) << d.Log();
  // s_server serves one connection at a time: one session.
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "abc\n", 4));
  std::string got;
  // s_server -rev answers each line reversed.
  for (int tries = 0; tries < 100 && got.find('\n') == std::string::npos; tries++) {
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got.substr(0, 3), "cba");
  server.Kill();
  std::string rest;
  RecvAll(fd, &rest, 1 << 20, 5000);
  close(fd);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_closed_abruptly") << ev[0]["error"];
  EXPECT_TRUE(ev[0]["cause"] == "no_close_notify" || ev[0]["cause"] == "backend_reset") << ev[0]["cause"];
}

// pg_ctl -m immediate under psql sessions: PostgreSQL's backends die
// without close_notify.
TEST_F(FaultsTest, PostgresImmediateShutdownUnderSessions) {
  const std::string dir = "/tmp/dbward-faults-pg-" + std::to_string(getpid());
  const uint16_t port = FreePort();
  std::string out;
  ASSERT_EQ(RunCommand({SourceDir() + "/tests/pg-server.sh", "start", dir, std::to_string(port), CertDir()}, &out), 0)
      << out;
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:0\n"
                      "    backend: 127.0.0.1:" + std::to_string(port) + "\n    backend_tls:\n      ca_file: " +
                      Cert("ca.pem") + "\n      server_name: localhost\nlog:\n  level: debug\n  audit: ${AUDIT}\n"))
      << d.Log();
  const std::string psql_out = d.dir().path() + "/psql.out";
  pid_t psql = SpawnBackground({"sh", "-c",
                                "PGPASSWORD=scram_pw psql 'host=127.0.0.1 port=" + std::to_string(d.port()) +
                                    " user=scram_user dbname=app sslmode=disable' -Xc 'select pg_sleep(30)'"},
                               psql_out);
  // The session is up once the server runs the query.
  bool running = false;
  for (int i = 0; i < 200 && !running; i++) {
    RunCommand({"psql", "-h", dir, "-p", std::to_string(port), "-U", "postgres", "-XAtc",
                "select count(*) from pg_stat_activity where query like 'select pg_sleep%'"},
               &out);
    running = out.rfind("1", 0) == 0;
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(running) << out;
  RunCommand({"runuser", "-u", "postgres", "--", "sh", "-c",
              "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl -D " + dir + "/data -m immediate stop"},
             &out);
  EXPECT_NE(WaitPid(psql, std::chrono::seconds(10)), 0);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_closed_abruptly") << ev[0]["error"];
  EXPECT_EQ(ev[0]["user"], "scram_user");
  RunCommand({SourceDir() + "/tests/pg-server.sh", "stop", dir}, &out);
  RunCommand({"rm", "-rf", dir}, &out);
}

// ---------------------------------------------------------------------------
// Connections that never say anything.

std::string Listener(const std::string& name, const std::string& protocol, uint16_t backend_port,
                     const std::string& extra = "") {
  return "  - name: " + name + "\n    protocol: " + protocol + "\n    listen: 127.0.0.1:0\n    backend: 127.0.0.1:" +
         std::to_string(backend_port) + "\n    backend_tls:\n      ca_file: " + Cert("ca.pem") +
         "\n      server_name: localhost\n    client_tls:\n      cert_file: " + Cert("proxy.pem") +
         "\n      key_file: " + Cert("proxy.key") + "\n" + extra;
}

TEST_F(FaultsTest, SilentConnectionsAreNotBypasses) {
  auto echo = Backend(TlsBackend::Mode::kEcho);
  TdsServer::Options to;
  to.cert = Cert("server.pem");
  to.key = Cert("server.key");
  TdsServer tds(to);
  std::string error;
  ASSERT_TRUE(tds.Start(&error)) << error;
  std::string raw = Listener("raw", "tcp", echo->port());
  raw.erase(raw.find("    client_tls:"));
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n" + Listener("pg", "postgres", echo->port()) +
                          Listener("tds", "tds", tds.port()) + raw + "log:\n  level: debug\n  audit: ${AUDIT}\n",
                      3))
      << d.Log();
  for (size_t i = 0; i < 3; i++) {
    int fd = ConnectLoopback(d.port(i));
    ASSERT_GE(fd, 0);
    close(fd);  // a TCP health check
  }
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "client_closed_silent") << e["listener"];
    EXPECT_EQ(e["trust_bypass"], "null") << e["listener"];
    EXPECT_EQ(e["bypass_reason"], "null");
    EXPECT_EQ(e["client_encryption"], "null");
  }
  // The report counts them apart, not as plaintext clients.
  std::string out;
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", d.dir().path() + "/audit.jsonl"}, &out), 0) << out;
  EXPECT_NE(out.find("0 clients, 0 bypass trust"), std::string::npos) << out;
  EXPECT_NE(out.find("3 silent connections (connected and closed without a word: health checks, port scans)"),
            std::string::npos)
      << out;
}

// ---------------------------------------------------------------------------
// max_handshakes: slow or stuck handshakes cannot take every backend slot.

TEST_F(FaultsTest, MaxHandshakesPerClientAnswersInEachProtocol) {
  auto echo = Backend(TlsBackend::Mode::kEcho);
  TdsServer::Options to;
  to.cert = Cert("server.pem");
  to.key = Cert("server.key");
  TdsServer tds(to);
  std::string error;
  ASSERT_TRUE(tds.Start(&error)) << error;
  const std::string limits = "    max_handshakes: 10\n    max_handshakes_per_client: 2\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n" + Listener("pg", "postgres", echo->port(), limits) +
                          Listener("tds", "tds", tds.port(), limits) + "log:\n  level: debug\n  audit: ${AUDIT}\n",
                      2))
      << d.Log();
  // Two connections per listener that never finish their handshake.
  std::vector<int> stuck;
  for (size_t l = 0; l < 2; l++) {
    for (int i = 0; i < 2; i++) {
      int fd = ConnectLoopback(d.port(l));
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(SendAll(fd, "\x00", 1));  // one byte, then nothing
      stuck.push_back(fd);
    }
  }
  std::string out;
  // psql: PostgreSQL's own "too many clients" code, dbward's reason.
  RunCommand({"timeout", "20", "psql", "host=127.0.0.1 port=" + std::to_string(d.port(0)) +
                                         " user=u dbname=app sslmode=disable connect_timeout=10", "-Xc", "select 1"},
             &out);
  EXPECT_NE(out.find("max_handshakes_per_client (2) connections from 127.0.0.1 are still setting up"),
            std::string::npos)
      << out;
  // tsql: the answer to its PRELOGIN is a login error.
  const std::string conf = d.dir().Write("freetds.conf", "[global]\n[s]\n\thost = 127.0.0.1\n\tport = " +
                                                             std::to_string(d.port(1)) + "\n\ttds version = 7.4\n");
  RunCommand({"sh", "-c", "FREETDSCONF=" + conf + " timeout 20 tsql -S s -U sa_user -P sa_pw < /dev/null"}, &out);
  EXPECT_NE(out.find("max_handshakes_per_client (2)"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(2);
  size_t refused = 0;
  for (auto& e : ev) {
    if (e["cause"] == "max_handshakes") {
      refused++;
      EXPECT_EQ(e["outcome"], "refused");
    }
  }
  EXPECT_EQ(refused, 2u);
  for (int fd : stuck) close(fd);
}

// 20 clients trickling a MySQL HandshakeResponse cannot take more than
// max_handshakes backend connections; the 21st client hears 1040.
TEST_F(FaultsTest, MysqlSlowHandshakesCannotExhaustTheBackend) {
  auto echo = Backend(TlsBackend::Mode::kSilent);
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n" +
                      Listener("my", "mysql", echo->port(), "    max_handshakes: 3\n    max_handshakes_per_client: 3\n") +
                      "log:\n  level: debug\n  audit: ${AUDIT}\n"))
      << d.Log();
  std::vector<int> slow;
  for (int i = 0; i < 3; i++) {
    int fd = ConnectLoopback(d.port());
    ASSERT_GE(fd, 0);
    slow.push_back(fd);
  }
  // Those three hold their slots until the handshake deadline: the fourth
  // (accepted after them) is turned away by dbward, not by the server.
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  std::string got;
  RecvAll(fd, &got, 4096, 5000);
  close(fd);
  EXPECT_NE(got.find("dbward: too many connections: max_handshakes (3)"), std::string::npos) << got;
  ASSERT_GE(got.size(), 7u);
  EXPECT_EQ(static_cast<uint8_t>(got[4]), 0xff) << "an ERR packet in place of the greeting";
  EXPECT_EQ(static_cast<uint8_t>(got[5]) | (static_cast<uint8_t>(got[6]) << 8), 1040);
  EXPECT_LE(echo->connections(), 3) << "no backend connection for the refused client";
  for (int fd : slow) close(fd);
}


// A GSSENCRequest inside TLS is named as what it is (not as plaintext after
// an SSLRequest, the CVE-2021-23214 case).
TEST_F(FaultsTest, GssEncRequestInsideTlsIsNamed) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n" + Listener("pg", "postgres", 1) +
                      "log:\n  level: debug\n  audit: ${AUDIT}\n"))
      << d.Log();
  std::string out;
  RunCommand({"sh", "-c",
              "printf '\\000\\000\\000\\010\\004\\322\\026\\060' | timeout 10 openssl s_client -quiet "
              "-starttls postgres -connect 127.0.0.1:" + std::to_string(d.port())},
             &out);
  EXPECT_NE(out.find("dbward: GSSENCRequest received inside TLS"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "client_error");
  EXPECT_EQ(ev[0]["error"], "GSSENCRequest received inside TLS (the connection is already encrypted)");
  EXPECT_EQ(ev[0]["client_encryption"], "tls");
}


// ---------------------------------------------------------------------------
// Slowloris: a client that sends its first message a byte at a time never
// holds a session past timeouts.handshake, whatever the protocol.

TEST_F(FaultsTest, SlowlorisIsCutAtTheHandshakeTimeoutOnEveryProtocol) {
  auto echo = Backend(TlsBackend::Mode::kEcho);
  TdsServer::Options to;
  to.cert = Cert("server.pem");
  to.key = Cert("server.key");
  TdsServer tds(to);
  std::string error;
  ASSERT_TRUE(tds.Start(&error)) << error;
  const std::string t = "    timeouts:\n      handshake: 600ms\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start("workers: 1\nlisteners:\n" + Listener("pg", "postgres", echo->port(), t) +
                          Listener("tds", "tds", tds.port(), t) + Listener("my", "mysql", echo->port(), t) +
                          "log:\n  level: debug\n  audit: ${AUDIT}\n",
                      3))
      << d.Log();
  // A startup message, a PRELOGIN, and (MySQL speaks first) bytes that
  // would be a HandshakeResponse; one byte every 100 ms.
  // (Split literals: "\x00d" would be one hex escape.)
  const std::string startup("\x00\x00\x00\x26\x00\x03\x00\x00user\x00oryx\x00" "database\x00mailstore\x00\x00", 38);
  ASSERT_EQ(startup[18], 'd');
  const std::string prelogin(
      "\x12\x01\x00\x2f\x00\x00\x01\x00\x00\x00\x1a\x00\x06\x01\x00\x20\x00\x01\x02\x00\x21\x00\x01\x03\x00\x22\x00"
      "\x04\x04\x00\x26\x00\x01\xff\x09\x00\x00\x00\x00\x00\x01\x00\xb8\x0d\x00\x00\x01",
      47);
  const std::string response(64, 'x');
  const std::string inputs[] = {startup, prelogin, response};
  for (size_t l = 0; l < 3; l++) {
    int fd = ConnectLoopback(d.port(l));
    ASSERT_GE(fd, 0);
    const auto start = std::chrono::steady_clock::now();
    bool cut = false;
    // Longer than any timeout: dbward must cut it before the end.
    const std::string slow = inputs[l] + std::string(40, 'x');
    for (char c : slow) {
      if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) {
        cut = true;
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {  // dbward spoke (an error) or closed
        char buf[512];
        if (recv(fd, buf, sizeof buf, 0) <= 0) {
          cut = true;
          break;
        }
      }
    }
    const auto took = std::chrono::steady_clock::now() - start;
    close(fd);
    EXPECT_TRUE(cut) << l;
    EXPECT_LT(took, std::chrono::milliseconds(600 + 2000 + 1000 + 1500)) << "listener " << l;
  }
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "timeout") << e["listener"] << ": " << e["error"];
    EXPECT_NE(e["error"].find("timeouts.handshake"), std::string::npos) << e["error"];
  }
}

// ---------------------------------------------------------------------------
// A reload in the middle of a stream of new sessions loses none of them.

TEST_F(FaultsTest, ReloadDuringLoadLosesNoSession) {
  auto echo = Backend(TlsBackend::Mode::kEcho);
  DbwardProcess d;
  const std::string ca = d.dir().Write("ca.pem", ReadFileText(Cert("ca.pem")));
  std::string cfg = TcpListener(echo->port());
  cfg.replace(cfg.find("ca_file: " + Cert("ca.pem")), 9 + Cert("ca.pem").size(), "ca_file: " + ca);
  ASSERT_TRUE(d.Start("reload_interval: 20ms\n" + cfg)) << d.Log();
  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; t++) {
    clients.emplace_back([&] {
      while (!done) {
        int fd = ConnectLoopback(d.port());
        std::string got;
        if (fd >= 0 && SendAll(fd, "ping", 4) && RecvAll(fd, &got, 4, 5000) == 4 && got == "ping") {
          ok++;
        } else {
          failed++;
        }
        if (fd >= 0) close(fd);
      }
    });
  }
  // Rewrite the CA file (same content, new inode) 20 times while they run.
  for (int i = 0; i < 20; i++) {
    const std::string tmp = d.dir().Write("ca.pem.tmp", ReadFileText(Cert("ca.pem")));
    ASSERT_EQ(rename(tmp.c_str(), ca.c_str()), 0);
    ASSERT_TRUE(d.WaitLog("reloaded TLS material", std::chrono::seconds(5)));
    std::string log = d.Log();
    size_t reloads = 0;
    for (size_t at = 0; (at = log.find("reloaded TLS material", at)) != std::string::npos; at++) reloads++;
    while (reloads < static_cast<size_t>(i + 1)) {
      ASSERT_TRUE(d.WaitLog("reloaded TLS material", std::chrono::seconds(5)));
      log = d.Log();
      reloads = 0;
      for (size_t at = 0; (at = log.find("reloaded TLS material", at)) != std::string::npos; at++) reloads++;
    }
  }
  done = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 20);
}

}  // namespace
}  // namespace dbward::testing

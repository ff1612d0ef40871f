// End-to-end: a plaintext client, the real dbward binary, and a real TLS
// backend. Proves the relay is byte-exact, that every bad backend certificate
// is refused with the right cause in the log and the audit event (and that no
// client byte reaches such a backend), backpressure, timeouts and draining.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <set>
#include <thread>

#include "harness.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

struct ConfigOptions {
  std::string backend_host = "127.0.0.1";
  uint16_t backend_port = 0;
  std::string ca = "ca.pem";
  std::string server_name = "localhost";
  std::string backend_tls_extra;  // extra lines inside backend_tls (6-space indent)
  std::string listener_extra;     // extra lines inside the listener (4-space indent)
  int workers = 2;
  std::string drain = "5s";
};

std::string MakeConfig(const ConfigOptions& o) {
  std::string c = "workers: " + std::to_string(o.workers) + "\n" + "drain_timeout: " + o.drain + "\n" +
                  "listeners:\n"
                  "  - name: itest\n"
                  "    protocol: tcp\n"
                  "    listen: 127.0.0.1:0\n"
                  "    backend: " + o.backend_host + ":" + std::to_string(o.backend_port) + "\n" +
                  "    backend_tls:\n"
                  "      verify: full\n"
                  "      ca_file: " + Cert(o.ca) + "\n" +
                  "      server_name: " + o.server_name + "\n" + o.backend_tls_extra + o.listener_extra +
                  "log:\n"
                  "  level: debug\n"
                  "  audit: ${AUDIT}\n";
  return c;
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  std::unique_ptr<TlsBackend> StartBackend(TlsBackend::Options o) {
    auto b = std::make_unique<TlsBackend>(std::move(o));
    std::string error;
    EXPECT_TRUE(b->Start(&error)) << error;
    return b;
  }
  TlsBackend::Options Echo(const std::string& cert = "server") {
    TlsBackend::Options o;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    return o;
  }
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

TEST_F(RelayTest, RelaysLargeRandomPayloadsBothWaysByteForByte) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  // A DNS name exercises the asynchronous resolver and the walk over
  // addresses (::1 is refused, 127.0.0.1 answers).
  o.backend_host = "localhost";
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();

  constexpr int kConns = 4;
  constexpr size_t kBytes = 16 << 20;
  std::vector<std::thread> threads;
  std::vector<bool> ok(kConns, false);
  for (int i = 0; i < kConns; i++) {
    threads.emplace_back([&, i] {
      std::string payload = RandomBytes(kBytes, static_cast<uint32_t>(i + 1));
      int fd = ConnectLoopback(d.port());
      ASSERT_GE(fd, 0);
      std::thread writer([&] {
        EXPECT_TRUE(SendAll(fd, payload.data(), payload.size()));
        shutdown(fd, SHUT_WR);  // half-close: the echo must still come back in full
      });
      std::string echoed;
      ssize_t n = RecvAll(fd, &echoed, kBytes + 1, 60000);
      writer.join();
      close(fd);
      ok[static_cast<size_t>(i)] = n == static_cast<ssize_t>(kBytes) && echoed == payload;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kConns; i++) EXPECT_TRUE(ok[static_cast<size_t>(i)]) << "connection " << i;

  auto events = d.WaitAuditEvents(kConns);
  ASSERT_EQ(events.size(), static_cast<size_t>(kConns)) << d.Log();
  for (auto& e : events) {
    EXPECT_EQ(e["event"], "session");
    EXPECT_EQ(e["outcome"], "ok") << e["error"];
    EXPECT_EQ(e["listener"], "itest");
    EXPECT_EQ(e["protocol"], "tcp");
    EXPECT_EQ(e["client_encryption"], "none");
    EXPECT_EQ(e["trust_bypass"], "true");
    EXPECT_EQ(e["bypass_reason"], "plaintext");
    EXPECT_EQ(e["backend_verified"], "true");
    EXPECT_EQ(e["backend_tls"], "TLSv1.3");
    EXPECT_FALSE(e["backend_cipher"].empty());
    EXPECT_EQ(e["backend_addr"], "127.0.0.1:" + std::to_string(backend->port()));
    EXPECT_EQ(e["bytes_up"], std::to_string(kBytes));
    EXPECT_EQ(e["bytes_down"], std::to_string(kBytes));
    EXPECT_EQ(e["error"], "null");
  }
  EXPECT_EQ(backend->last_sni(), "localhost");
  EXPECT_EQ(backend->bytes_received(), kConns * kBytes);
  EXPECT_EQ(d.Stop(), 0);
}

TEST_F(RelayTest, WorksWithOpensslServerAndIpServerName) {
  OpensslServer server;
  ASSERT_TRUE(server.Start({"-cert", Cert("server.pem"), "-key", Cert("server.key"), "-rev", "-quiet"}));
  ConfigOptions o;
  o.backend_port = server.port();
  o.server_name = "127.0.0.1";  // checked against the IP SAN, no SNI
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "hello dbward\n", 13));
  std::string got;
  RecvAll(fd, &got, 13, 5000);
  EXPECT_EQ(got, "drawbd olleh\n");
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["backend_verified"], "true");
  EXPECT_EQ(events[0]["backend_server_name"], "127.0.0.1");
}

struct BadCertCase {
  const char* cert;
  const char* cause;
  const char* phrase;       // words users search for
  const char* cert_detail;  // a fact about the certificate the message must name
};

class BadCertTest : public RelayTest, public ::testing::WithParamInterface<BadCertCase> {};

TEST_P(BadCertTest, RefusedWithCauseAndNoClientByteReachesBackend) {
  const BadCertCase& c = GetParam();
  auto backend = StartBackend(Echo(c.cert));
  ConfigOptions o;
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  SendAll(fd, "SECRET QUERY", 12);
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u) << d.Log();
  auto& e = events[0];
  EXPECT_EQ(e["outcome"], "backend_tls_failed");
  EXPECT_EQ(e["cause"], c.cause);
  EXPECT_EQ(e["backend_verified"], "false");
  EXPECT_EQ(e["backend_tls"], "null");
  EXPECT_EQ(e["bytes_up"], "0");
  EXPECT_NE(e["error"].find(c.phrase), std::string::npos) << e["error"];
  EXPECT_NE(e["error"].find(c.cert_detail), std::string::npos) << e["error"];
  std::string log = d.Log();
  EXPECT_NE(log.find(c.phrase), std::string::npos) << log;
  EXPECT_NE(log.find("fix:"), std::string::npos) << log;
  // Fail closed: not one byte of the client's data went to the backend.
  EXPECT_EQ(backend->bytes_received(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, BadCertTest,
    ::testing::Values(
        BadCertCase{"wrongname", "name_mismatch", "the target principal name is incorrect", "DNS:db.example.net"},
        BadCertCase{"expired", "expired", "has expired", "2021-01-01T00:00:00Z"},
        BadCertCase{"notyet", "not_yet_valid", "not yet valid", "2099-01-01T00:00:00Z"},
        BadCertCase{"selfsigned", "untrusted", "issued by an authority that is not trusted", "backend_tls.ca_file"},
        BadCertCase{"clientauth-only", "bad_purpose", "not allowed for TLS server authentication", "clientAuth"}),
    [](const ::testing::TestParamInfo<BadCertCase>& info) {
      std::string n = info.param.cause;
      return n;
    });

TEST_F(RelayTest, UntrustedWhenCaFileIsAnotherAuthority) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  o.ca = "other-ca.pem";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["cause"], "untrusted");
  EXPECT_NE(events[0]["error"].find("dbward Test Root CA"), std::string::npos) << events[0]["error"];
}

TEST_F(RelayTest, OpensslServerWithWrongNameIsRefused) {
  OpensslServer server;
  ASSERT_TRUE(server.Start({"-cert", Cert("wrongname.pem"), "-key", Cert("wrongname.key"), "-rev", "-quiet"}));
  ConfigOptions o;
  o.backend_port = server.port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["cause"], "name_mismatch");
}

TEST_F(RelayTest, Tls10OnlyServerIsRefusedAsVersionMismatch) {
  OpensslServer server;
  ASSERT_TRUE(server.Start({"-cert", Cert("server.pem"), "-key", Cert("server.key"), "-tls1", "-cipher",
                            "DEFAULT@SECLEVEL=0", "-quiet"}));
  ConfigOptions o;
  o.backend_port = server.port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "backend_tls_failed");
  EXPECT_EQ(events[0]["cause"], "tls_version") << events[0]["error"];
  EXPECT_NE(events[0]["error"].find("TLS version mismatch"), std::string::npos);
}

TEST_F(RelayTest, ServerRequiringClientCertificateWithoutOneIsExplained) {
  TlsBackend::Options bo = Echo();
  bo.client_ca = Cert("client-ca.pem");
  auto backend = StartBackend(bo);
  ConfigOptions o;
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  SendAll(fd, "x", 1);
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["cause"], "client_cert_required") << events[0]["error"];
  EXPECT_NE(events[0]["error"].find("backend_tls.cert_file"), std::string::npos);
}

TEST_F(RelayTest, ClientCertificateWithEncryptedKeyIsPresented) {
  TlsBackend::Options bo = Echo();
  bo.client_ca = Cert("client-ca.pem");
  auto backend = StartBackend(bo);
  ConfigOptions o;
  o.backend_port = backend->port();
  o.backend_tls_extra = "      cert_file: " + Cert("client.pem") + "\n      key_file: " + Cert("client.key") +
                        "\n      key_password_file: " + Cert("client.pass") + "\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "ping", 4));
  std::string got;
  RecvAll(fd, &got, 4, 5000);
  EXPECT_EQ(got, "ping");
  close(fd);
  EXPECT_NE(backend->last_client_subject().find("dbward-client"), std::string::npos);
  // The password never appears in logs.
  EXPECT_EQ(d.Log().find("correct horse"), std::string::npos);
}

TEST_F(RelayTest, BackendDownClosesClientAndSaysWhy) {
  ConfigOptions o;
  o.backend_port = FreePort();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "backend_unreachable");
  EXPECT_EQ(events[0]["cause"], "connect");
  EXPECT_NE(events[0]["error"].find("Connection refused"), std::string::npos) << events[0]["error"];
}

TEST_F(RelayTest, PlaintextBackendIsNotTls) {
  TlsBackend::Options bo;
  bo.mode = TlsBackend::Mode::kPlaintext;
  auto backend = StartBackend(bo);
  ConfigOptions o;
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "backend_tls_failed");
  EXPECT_EQ(events[0]["cause"], "not_tls") << events[0]["error"];
}

TEST_F(RelayTest, SilentBackendHitsHandshakeTimeout) {
  TlsBackend::Options bo;
  bo.mode = TlsBackend::Mode::kSilent;
  auto backend = StartBackend(bo);
  ConfigOptions o;
  o.backend_port = backend->port();
  o.listener_extra = "    timeouts:\n      handshake: 400ms\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  auto t0 = std::chrono::steady_clock::now();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  close(fd);
  EXPECT_GE(elapsed, std::chrono::milliseconds(350));
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "timeout");
  EXPECT_EQ(events[0]["cause"], "handshake_timeout");
}

TEST_F(RelayTest, IdleSessionIsClosedAfterIdleTimeout) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  o.listener_extra = "    timeouts:\n      idle: 300ms\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "a", 1));
  std::string got;
  RecvAll(fd, &got, 1, 5000);
  EXPECT_EQ(got, "a");
  EXPECT_TRUE(ClosedWithoutData(fd, 3000));
  close(fd);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "idle_timeout");
  EXPECT_EQ(events[0]["bytes_up"], "1");
}

TEST_F(RelayTest, SlowReaderDoesNotMakeDbwardBuffer) {
  TlsBackend::Options bo = Echo();
  bo.mode = TlsBackend::Mode::kFlood;
  auto backend = StartBackend(bo);
  ConfigOptions o;
  o.backend_port = backend->port();
  o.workers = 1;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  long rss_before = d.RssKb();
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  // The client reads nothing while the backend floods: at loopback speed an
  // unbounded proxy would queue gigabytes. Wait until the flood has stalled
  // (no progress over a quarter second), then watch that it stays stalled.
  uint64_t sent_stalled = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (uint64_t last = UINT64_MAX; std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    sent_stalled = backend->bytes_sent();
    if (sent_stalled == last && sent_stalled > 0) break;
    last = sent_stalled;
  }
  long rss_stalled = d.RssKb();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  uint64_t sent_later = backend->bytes_sent();
  // Only socket buffers (a few MB each way) and one 64 KiB relay buffer hold data.
  EXPECT_LT(sent_stalled, 48u << 20) << "backend was not slowed down";
  EXPECT_LT(sent_later - sent_stalled, 1u << 20) << "flow did not stop";
  EXPECT_LT(rss_stalled - rss_before, 16 * 1024) << "dbward RSS grew by " << (rss_stalled - rss_before) << " KiB";
  // Reading resumes the flow.
  std::string got;
  EXPECT_EQ(RecvAll(fd, &got, 64u << 20, 20000), static_cast<ssize_t>(64u << 20));
  close(fd);
  EXPECT_GT(backend->bytes_sent(), sent_stalled);
}

TEST_F(RelayTest, SigtermDrainsOpenSessionsAndRefusesNewOnes) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "1", 1));
  std::string got;
  RecvAll(fd, &got, 1, 5000);
  kill(d.pid(), SIGTERM);
  ASSERT_TRUE(d.WaitLog("draining"));
  // The open session keeps working during the drain ...
  ASSERT_TRUE(SendAll(fd, "2", 1));
  RecvAll(fd, &got, 1, 5000);
  EXPECT_EQ(got, "12");
  // ... while new connections are no longer accepted.
  EXPECT_LT(ConnectLoopback(d.port()), 0);
  close(fd);
  int status = -1;
  ASSERT_TRUE(d.WaitExit(std::chrono::seconds(5), &status));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto events = d.AuditEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "ok");
}

TEST_F(RelayTest, DrainTimeoutClosesLingeringSessionsAndExitsZero) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  o.drain = "300ms";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "1", 1));
  std::string got;
  RecvAll(fd, &got, 1, 5000);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d.Stop(SIGTERM, std::chrono::seconds(5)), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_TRUE(ClosedWithoutData(fd, 2000));
  close(fd);
  auto events = d.AuditEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["outcome"], "shutdown");
}

TEST_F(RelayTest, MaxConnectionsRefusesExtraClientsWithAuditEvent) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  o.listener_extra = "    max_connections: 1\n";
  o.workers = 1;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  int first = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(first, "a", 1));
  std::string got;
  RecvAll(first, &got, 1, 5000);
  int second = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(second, 3000));
  close(second);
  auto events = d.WaitAuditEvents(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "refused");
  EXPECT_EQ(events[0]["error"], "max_connections reached");
  close(first);
}

}  // namespace
}  // namespace dbward::testing

namespace dbward::testing {
namespace {

std::string ReadAll(const std::string& path) { return ReadFileText(path); }

TEST_F(RelayTest, CertificatesReloadWhenFilesChangeWithoutDroppingSessions) {
  auto backend = StartBackend(Echo());
  DbwardProcess d;
  // The CA file starts out as the wrong authority.
  std::string ca = d.dir().Write("ca.pem", ReadAll(Cert("other-ca.pem")));
  ConfigOptions o;
  o.backend_port = backend->port();
  std::string cfg = MakeConfig(o);
  cfg.replace(cfg.find("ca_file: " + Cert("ca.pem")), 9 + Cert("ca.pem").size(), "ca_file: " + ca);
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);

  // Fix the file (atomically, as a Secret update would): picked up without a restart.
  std::string tmp = d.dir().Write("ca.pem.new", ReadAll(Cert("ca.pem")));
  ASSERT_EQ(rename(tmp.c_str(), ca.c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material", std::chrono::seconds(10))) << d.Log();
  int open_fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(open_fd, "hi", 2));
  std::string got;
  RecvAll(open_fd, &got, 2, 5000);
  EXPECT_EQ(got, "hi");

  // A broken file keeps the working material, and the open session lives on.
  tmp = d.dir().Write("ca.pem.bad", "not a certificate\n");
  ASSERT_EQ(rename(tmp.c_str(), ca.c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reload failed, keeping the previous certificates", std::chrono::seconds(10))) << d.Log();
  ASSERT_TRUE(SendAll(open_fd, "!", 1));
  got.clear();
  RecvAll(open_fd, &got, 1, 5000);
  EXPECT_EQ(got, "!");
  int fd2 = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd2, "ok", 2));
  got.clear();
  RecvAll(fd2, &got, 2, 5000);
  EXPECT_EQ(got, "ok");
  close(fd2);
  close(open_fd);
}

// A reload is all or nothing: a CA that would load is not taken while the
// client key beside it fails, and the log says so file by file.
TEST_F(RelayTest, AFailedReloadSaysWhatWasKeptAndWhatWasNotTaken) {
  auto backend = StartBackend(Echo());
  DbwardProcess d;
  std::string ca = d.dir().Write("ca.pem", ReadAll(Cert("ca.pem")));
  std::string key = d.dir().Write("client.key", ReadAll(Cert("clientauth-only.key")));
  ConfigOptions o;
  o.backend_port = backend->port();
  std::string cfg = MakeConfig(o);
  cfg.replace(cfg.find("ca_file: " + Cert("ca.pem")), 9 + Cert("ca.pem").size(),
              "ca_file: " + ca + "\n      cert_file: " + Cert("clientauth-only.pem") + "\n      key_file: " + key);
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  // Both change at once: the CA to another valid authority, the client key
  // to garbage. Nothing may be taken: with the new CA alone the backend
  // would no longer verify.
  std::string tmp = d.dir().Write("ca.pem.new", ReadAll(Cert("other-ca.pem")));
  ASSERT_EQ(rename(tmp.c_str(), ca.c_str()), 0);
  tmp = d.dir().Write("client.key.new", "not a key\n");
  ASSERT_EQ(rename(tmp.c_str(), key.c_str()), 0);
  kill(d.pid(), SIGHUP);
  ASSERT_TRUE(d.WaitLog("reload failed, keeping the previous certificates, keys and CAs of every file")) << d.Log();
  EXPECT_NE(d.Log().find(key), std::string::npos) << "the failing file is named";
  EXPECT_TRUE(d.WaitLog("changed but not taken: " + ca + ", " + key) || d.WaitLog("changed but not taken: " + key + ", " + ca))
      << d.Log();
  int fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "ok", 2));
  std::string got;
  RecvAll(fd, &got, 2, 5000);
  EXPECT_EQ(got, "ok") << "the previous CA still verifies the backend";
  close(fd);
}

TEST_F(RelayTest, SighupReloads) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  kill(d.pid(), SIGHUP);
  EXPECT_TRUE(d.WaitLog("reloaded TLS material (SIGHUP)", std::chrono::seconds(5))) << d.Log();
}

}  // namespace
}  // namespace dbward::testing

namespace dbward::testing {
namespace {

// How Kubernetes updates a mounted Secret: the files are symlinks through
// "..data", which is swapped atomically to a new directory.
TEST_F(RelayTest, KubernetesStyleSecretSymlinkSwapReloads) {
  auto backend = StartBackend(Echo());
  DbwardProcess d;
  std::string base = d.dir().path() + "/secret";
  ASSERT_EQ(mkdir(base.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((base + "/v1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((base + "/v2").c_str(), 0755), 0);
  d.dir().Write("secret/v1/ca.pem", ReadFileText(Cert("other-ca.pem")));
  d.dir().Write("secret/v2/ca.pem", ReadFileText(Cert("ca.pem")));
  ASSERT_EQ(symlink("v1", (base + "/..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/ca.pem", (base + "/ca.pem").c_str()), 0);
  ConfigOptions o;
  o.backend_port = backend->port();
  std::string cfg = MakeConfig(o);
  cfg.replace(cfg.find("ca_file: " + Cert("ca.pem")), 9 + Cert("ca.pem").size(), "ca_file: " + base + "/ca.pem");
  ASSERT_TRUE(d.Start(cfg)) << d.Log();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  // The atomic swap: a new link, renamed over "..data".
  ASSERT_EQ(symlink("v2", (base + "/..data_tmp").c_str()), 0);
  ASSERT_EQ(rename((base + "/..data_tmp").c_str(), (base + "/..data").c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material", std::chrono::seconds(10))) << d.Log();
  fd = ConnectLoopback(d.port());
  ASSERT_TRUE(SendAll(fd, "k8s", 3));
  std::string got;
  RecvAll(fd, &got, 3, 5000);
  EXPECT_EQ(got, "k8s");
  close(fd);
}

}  // namespace
}  // namespace dbward::testing

namespace dbward::testing {
namespace {

// A backend whose accept queue is full drops SYNs, so connect() hangs: the
// connect timeout must end it with a clear cause.
TEST_F(RelayTest, ConnectTimeoutEndsAHangingConnect) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(lfd, 0), 0);  // never accepted
  socklen_t len = sizeof sa;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 3; i++) {
    int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(f, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    fillers.push_back(f);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ConfigOptions o;
  o.backend_port = ntohs(sa.sin_port);
  o.listener_extra = "    timeouts:\n      connect: 300ms\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  auto t0 = std::chrono::steady_clock::now();
  int fd = ConnectLoopback(d.port());
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  close(fd);
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "backend_unreachable");
  EXPECT_EQ(ev[0]["cause"], "connect_timeout");
  EXPECT_NE(ev[0]["error"].find("timed out after 300 ms (timeouts.connect)"), std::string::npos) << ev[0]["error"];
  for (int f : fillers) close(f);
  close(lfd);
}

// Each worker owns a SO_REUSEPORT socket: the kernel spreads connections.
TEST_F(RelayTest, ConnectionsSpreadOverWorkers) {
  auto backend = StartBackend(Echo());
  ConfigOptions o;
  o.backend_port = backend->port();
  o.workers = 2;
  DbwardProcess d;
  ASSERT_TRUE(d.Start(MakeConfig(o))) << d.Log();
  for (int i = 0; i < 24; i++) {
    int fd = ConnectLoopback(d.port());
    ASSERT_TRUE(SendAll(fd, "x", 1));
    std::string got;
    RecvAll(fd, &got, 1, 5000);
    close(fd);
  }
  auto ev = d.WaitAuditEvents(24);
  ASSERT_EQ(ev.size(), 24u);
  std::set<std::string> workers;
  for (auto& e : ev) workers.insert(e["worker"]);
  EXPECT_EQ(workers, (std::set<std::string>{"0", "1"}));
}

}  // namespace
}  // namespace dbward::testing

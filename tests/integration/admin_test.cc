// The admin port as a pod relies on it: liveness answers under a flood of
// idle connections, /startup waits for the first backend check, and
// shutdown_delay keeps accepting (with /readyz failing) before draining.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <vector>

#include "harness.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

// One HTTP/1.1 GET on a fresh connection: "CODE BODY", or "" when the
// connection failed or the answer did not come within timeout_ms.
std::string Get(uint16_t port, const std::string& path, int timeout_ms = 3000) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string got;
  if (SendAll(fd, req.data(), req.size())) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) <= 0) {
        got.clear();
        break;
      }
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  if (got.rfind("HTTP/1.1 ", 0) != 0 || got.find("\r\n\r\n") == std::string::npos) return "";
  return got.substr(9, 3) + " " + got.substr(got.find("\r\n\r\n") + 4);
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    TlsBackend::Options o;
    o.mode = mode_;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    backend_ = std::make_unique<TlsBackend>(o);
    std::string error;
    ASSERT_TRUE(backend_->Start(&error)) << error;
  }
  std::string Config(const std::string& top = "", const std::string& timeouts = "") {
    return top + "admin:\n  listen: 127.0.0.1:0\n  backend_check_interval: 1h\n"
           "workers: 1\n"
           "listeners:\n"
           "  - name: raw\n"
           "    protocol: tcp\n"
           "    listen: 127.0.0.1:0\n"
           "    backend: 127.0.0.1:" + std::to_string(backend_->port()) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: localhost\n" + timeouts +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }
  // Polls until path answers want (the admin server answers at once; what
  // is awaited is dbward's own first backend check).
  std::string WaitFor(const std::string& path, const std::string& want) {
    std::string got;
    for (int i = 0; i < 100; i++) {
      got = Get(admin_, path);
      if (got == want) break;
      usleep(50'000);
    }
    return got;
  }
  TlsBackend::Mode mode_ = TlsBackend::Mode::kEcho;
  std::unique_ptr<TlsBackend> backend_;
  uint16_t admin_ = 0;
};

TEST_F(AdminTest, LivenessAnswersUnderAFloodOfIdleConnections) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config())) << d.Log();
  admin_ = d.admin_port();
  ASSERT_EQ(WaitFor("/readyz", "200 ready\n"), "200 ready\n");
  // More idle connections than the admin server holds; none says anything.
  std::vector<int> idle;
  for (int i = 0; i < 400; i++) {
    int fd = ConnectLoopback(admin_);
    ASSERT_GE(fd, 0) << i;
    idle.push_back(fd);
  }
  for (int i = 0; i < 5; i++) {
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(Get(admin_, "/healthz", 1000), "200 ok\n") << i;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  }
  std::string metrics = Get(admin_, "/metrics");
  size_t at = metrics.find("\ndbward_admin_evicted_total ");
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::stoul(metrics.substr(at + 28)), 144u) << metrics.substr(at, 40);
  // The oldest idle connections were closed to make room.
  pollfd p{idle.front(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  char c;
  EXPECT_LE(recv(idle.front(), &c, 1, 0), 0);
  for (int fd : idle) close(fd);
}

TEST_F(AdminTest, AConnectionThatSendsHalfARequestIsClosedWithinTwoSeconds) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config())) << d.Log();
  admin_ = d.admin_port();
  int fd = ConnectLoopback(admin_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.1\r\n", 23));
  auto start = std::chrono::steady_clock::now();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  char c;
  EXPECT_EQ(recv(fd, &c, 1, 0), 0);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GT(took, std::chrono::milliseconds(1500));
  EXPECT_LT(took, std::chrono::milliseconds(3500));
  close(fd);
}

class AdminSilentBackendTest : public AdminTest {
 protected:
  AdminSilentBackendTest() { mode_ = TlsBackend::Mode::kSilent; }
};

TEST_F(AdminSilentBackendTest, StartupWaitsForTheFirstBackendCheckWhateverItsVerdict) {
  DbwardProcess d;
  // The check against a backend that accepts and never answers takes the
  // whole connect timeout: /startup says so until it is over.
  ASSERT_TRUE(d.Start(Config("", "    timeouts:\n      connect: 3s\n"))) << d.Log();
  admin_ = d.admin_port();
  EXPECT_EQ(Get(admin_, "/startup"), "503 starting: the first backend check has not finished for listener(s) raw\n");
  EXPECT_EQ(Get(admin_, "/healthz"), "200 ok\n");
  EXPECT_EQ(WaitFor("/startup", "200 started\n"), "200 started\n");
  std::string ready = Get(admin_, "/readyz");
  EXPECT_EQ(ready.rfind("503 listener raw: ", 0), 0u) << ready;
}

TEST_F(AdminTest, ShutdownDelayKeepsAcceptingWithReadinessFailingThenDrains) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config("shutdown_delay: 2500ms\ndrain_timeout: 5s\n"))) << d.Log();
  admin_ = d.admin_port();
  ASSERT_EQ(WaitFor("/readyz", "200 ready\n"), "200 ready\n");
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(d.pid(), SIGTERM), 0);
  ASSERT_TRUE(d.WaitLog("still accepting for 2500 ms (shutdown_delay)")) << d.Log();
  EXPECT_EQ(Get(admin_, "/readyz"), "503 draining: dbward is shutting down\n");
  EXPECT_EQ(Get(admin_, "/healthz"), "200 ok\n");
  // A new client still gets through during the delay.
  int fd = ConnectLoopback(d.port());
  ASSERT_GE(fd, 0);
  std::string got;
  ASSERT_TRUE(SendAll(fd, "ping", 4));
  EXPECT_EQ(RecvAll(fd, &got, 4, 3000), 4);
  EXPECT_EQ(got, "ping");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500)) << "the test was too slow";
  close(fd);
  int status = -1;
  ASSERT_TRUE(d.WaitExit(std::chrono::seconds(10), &status)) << d.Log();
  EXPECT_EQ(status, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  EXPECT_NE(d.Log().find("SIGTERM: no longer accepting; draining"), std::string::npos) << d.Log();
}

}  // namespace
}  // namespace dbward::testing

// Hostile input against a live dbward, each protocol, both directions:
//   client  the real packets of tests/hostile/*-client.hex (copied from the
//           shared vectors) and the fuzz seed corpus (real and malformed
//           cases), each also mutated (bit flips, truncation, inserted and
//           repeated bytes, length fields pushed to their extremes), sent to
//           dbward by raw clients, many at a time;
//   backend the servers' packets and their mutations, sent by a scripted
//           backend: before TLS where the protocol speaks in plaintext
//           (MySQL's greeting, TDS's PRELOGIN answer), behind verified TLS
//           where it does not (PostgreSQL after 'S').
// Every case must end within the handshake timeout with dbward's native
// error or a close, dbward must stay up, write one audit event per
// connection with an outcome other than an internal error, and its memory
// must stay flat.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr int kMutations = 6;
constexpr int kParallel = 48;
constexpr int kHandshakeMs = 400;

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

struct Case {
  std::string name;
  Bytes bytes;
};

// "# name (source)" lines, each followed by its hex.
std::vector<Case> LoadHex(const std::string& file) {
  std::ifstream in(SourceDir() + "/tests/hostile/" + file);
  std::vector<Case> cases;
  std::string line, name;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      name = line.substr(2);
    } else if (!line.empty()) {
      cases.push_back({name, FromHex(line)});
    }
  }
  EXPECT_FALSE(cases.empty()) << file;
  return cases;
}

std::vector<Case> LoadCorpus(const std::string& target) {
  std::vector<Case> cases;
  const std::string dir = SourceDir() + "/tests/fuzz/corpus/" + target;
  DIR* d = opendir(dir.c_str());
  EXPECT_NE(d, nullptr) << dir;
  if (d == nullptr) return cases;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string text = ReadFileText(dir + "/" + e->d_name);
    cases.push_back({target + "/" + e->d_name, Bytes(text.begin(), text.end())});
  }
  closedir(d);
  return cases;
}

Bytes WithMysqlHeader(const Bytes& payload, uint8_t seq) {
  Bytes b(payload.size() + 4);
  b[0] = static_cast<uint8_t>(payload.size());
  b[1] = static_cast<uint8_t>(payload.size() >> 8);
  b[2] = static_cast<uint8_t>(payload.size() >> 16);
  b[3] = seq;
  std::copy(payload.begin(), payload.end(), b.begin() + 4);
  return b;
}

Bytes WithTdsHeader(const Bytes& payload, uint8_t type) {
  size_t len = payload.size() + 8;
  Bytes b(len, 0);
  b[0] = type;
  b[1] = 1;  // EOM
  b[2] = static_cast<uint8_t>(len >> 8);
  b[3] = static_cast<uint8_t>(len);
  b[6] = 1;
  std::copy(payload.begin(), payload.end(), b.begin() + 8);
  return b;
}

// Deterministic mutations of one case.
std::vector<Case> Mutate(const std::vector<Case>& originals, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Case> out = originals;
  for (const Case& c : originals) {
    for (int m = 0; m < kMutations; m++) {
      Bytes b = c.bytes;
      if (b.empty()) b.push_back(0);
      auto pos = [&] { return std::uniform_int_distribution<size_t>(0, b.size() - 1)(rng); };
      switch (rng() % 6) {
        case 0: b[pos()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[pos()] = static_cast<uint8_t>(rng()); break;
        case 2: b.resize(pos()); break;
        case 3: {
          size_t at = pos();
          b.insert(b.begin() + static_cast<ptrdiff_t>(at), rng() % 16 + 1, static_cast<uint8_t>(rng()));
          break;
        }
        case 4: {
          size_t at = pos(), n = std::min<size_t>(b.size() - at, rng() % 64 + 1);
          Bytes slice(b.begin() + static_cast<ptrdiff_t>(at), b.begin() + static_cast<ptrdiff_t>(at + n));
          for (int k = 0; k < 4; k++) b.insert(b.end(), slice.begin(), slice.end());
          break;
        }
        case 5: {
          // A length field at its extreme: the first four bytes.
          for (size_t i = 0; i < std::min<size_t>(4, b.size()); i++) b[i] = (rng() & 1) ? 0xff : 0x00;
          break;
        }
      }
      out.push_back({c.name + " #" + std::to_string(m), std::move(b)});
    }
  }
  return out;
}

// Sends the bytes (in up to three writes), maybe half-closes, and waits for
// dbward to close. Returns false when dbward kept the connection open past
// the deadline.
bool OneClient(uint16_t port, const Bytes& bytes, uint32_t salt) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return false;
  size_t off = 0;
  const size_t parts = salt % 3 + 1;
  for (size_t p = 0; p < parts && off < bytes.size(); p++) {
    size_t n = p + 1 == parts ? bytes.size() - off : std::min(bytes.size() - off, bytes.size() / parts + 1);
    if (!SendAll(fd, bytes.data() + off, n)) break;
    off += n;
  }
  if (salt % 2 == 0) shutdown(fd, SHUT_WR);
  // dbward's answer, then its close: within the handshake timeout, plus the
  // time it gives a client to read an error (2 s) and to hang up (1 s).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHandshakeMs + 3500);
  bool closed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
  }
  close(fd);
  return closed;
}

struct Result {
  std::atomic<int> stuck{0};
  std::mutex mu;
  std::vector<std::string> stuck_names;
};

void RunClients(uint16_t port, const std::vector<Case>& cases, const std::vector<Bytes>& prefixes, Result* result) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kParallel; t++) {
    threads.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < cases.size();) {
        Bytes b = prefixes.empty() ? Bytes{} : prefixes[i % prefixes.size()];
        b.insert(b.end(), cases[i].bytes.begin(), cases[i].bytes.end());
        if (!OneClient(port, b, static_cast<uint32_t>(i))) {
          result->stuck++;
          std::lock_guard<std::mutex> lock(result->mu);
          if (result->stuck_names.size() < 10) result->stuck_names.push_back(cases[i].name);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  static std::string Listener(const std::string& protocol, uint16_t backend_port) {
    return "workers: 2\n"
           "listeners:\n"
           "  - name: hostile\n"
           "    protocol: " + protocol + "\n" +
           "    listen: 127.0.0.1:0\n"
           "    backend: 127.0.0.1:" + std::to_string(backend_port) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: localhost\n"
           "    client_tls:\n"
           "      cert_file: " + Cert("proxy.pem") + "\n" +
           "      key_file: " + Cert("proxy.key") + "\n" +
           "    max_handshakes: 1000\n"
           "    max_handshakes_per_client: 1000\n"
           "    timeouts:\n"
           "      handshake: " + std::to_string(kHandshakeMs) + "ms\n"
           "      idle: 1s\n"
           "log:\n  level: info\n  audit: ${AUDIT}\n";
  }

#ifdef __SANITIZE_ADDRESS__
  // AddressSanitizer keeps freed memory in quarantine (up to 256 MiB), so
  // RSS grows with the work done; leaks are LeakSanitizer's verdict at exit.
  static constexpr long kRssGrowthLimitKb = 64 * 1024;
#else
  static constexpr long kRssGrowthLimitKb = 16 * 1024;
#endif

  // The whole campaign against one dbward; checks the invariants.
  void Campaign(DbwardProcess& d, const std::vector<Case>& cases, const std::vector<Bytes>& prefixes = {}) {
    Result r;
    // A warm-up fifth, then the rest: memory must not grow with the count.
    size_t warm = cases.size() / 5;
    RunClients(d.port(), std::vector<Case>(cases.begin(), cases.begin() + static_cast<ptrdiff_t>(warm)), prefixes, &r);
    ASSERT_EQ(kill(d.pid(), 0), 0) << "dbward died";
    d.WaitAuditEvents(warm, std::chrono::seconds(20));
    long rss_before = d.RssKb();
    RunClients(d.port(), std::vector<Case>(cases.begin() + static_cast<ptrdiff_t>(warm), cases.end()), prefixes, &r);
    ASSERT_EQ(kill(d.pid(), 0), 0) << "dbward died: " << d.Log().substr(0, 2000);
    EXPECT_EQ(r.stuck.load(), 0) << "left open past the handshake timeout, e.g. " << (r.stuck_names.empty() ? "" : r.stuck_names[0]);
    auto ev = d.WaitAuditEvents(cases.size(), std::chrono::seconds(30));
    EXPECT_EQ(ev.size(), cases.size()) << "one audit event per connection";
    size_t internal = 0;
    std::map<std::string, int> outcomes;
    for (auto& e : ev) {
      outcomes[e["outcome"]]++;
      if (e["outcome"] == "error") internal++;
    }
    EXPECT_EQ(internal, 0u) << "internal errors";
    long rss_after = d.RssKb();
    EXPECT_LT(rss_after - rss_before, kRssGrowthLimitKb)
        << "RSS grew from " << rss_before << " to " << rss_after << " kB";
    std::string summary;
    for (auto& [o, n] : outcomes) summary += o + "=" + std::to_string(n) + " ";
    RecordProperty("outcomes", summary);
    std::cout << "[ hostile ] " << cases.size() << " cases: " << summary << "\n";
  }

};

// The suites that need a real database get ctest's shared one.
template <typename Script>
class HostileWithServer : public HostileTest {
 protected:
  void SetUp() override {
    HostileTest::SetUp();
    if (!server_.up()) {
      std::string error;
      ASSERT_TRUE(server_.Start(&error)) << error;
    }
  }
  static inline ScriptedServer server_{Script::kName, Script::kShared};
};
using HostilePgTest = HostileWithServer<PostgresScript>;
using HostileMysqlTest = HostileWithServer<MariadbScript>;

// ---------------------------------------------------------------------------
// Hostile clients.

TEST_F(HostilePgTest, PostgresClients) {
  std::vector<Case> cases = LoadHex("pg-client.hex");
  for (auto& c : LoadCorpus("pg_first_message")) cases.push_back(c);
  // pg_message seeds are typed messages: they follow a valid startup.
  std::vector<Case> after;
  for (auto& c : LoadCorpus("pg_message")) after.push_back(c);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("postgres", server_.port()))) << d.Log();
  std::vector<Case> all = Mutate(cases, 1);
  Campaign(d, all);
  DbwardProcess d2;
  ASSERT_TRUE(d2.Start(Listener("postgres", server_.port()))) << d2.Log();
  std::string startup = ReadFileText(SourceDir() + "/tests/fuzz/corpus/pg_first_message/startup_oryx");
  Campaign(d2, Mutate(after, 2), {Bytes(startup.begin(), startup.end())});
}

TEST_F(HostileMysqlTest, MysqlClients) {
  std::vector<Case> cases;
  for (auto& c : LoadHex("mysql-client.hex")) cases.push_back({c.name, WithMysqlHeader(c.bytes, 1)});
  for (auto& c : LoadCorpus("mysql_handshake_response")) cases.push_back(c);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("mysql", server_.port()))) << d.Log();
  Campaign(d, Mutate(cases, 3));
}

TEST_F(HostileTest, TdsClients) {
  TdsServer::Options o;
  o.cert = Cert("server.pem");
  o.key = Cert("server.key");
  TdsServer fixture(o);
  std::string error;
  ASSERT_TRUE(fixture.Start(&error)) << error;
  std::vector<Case> cases;
  for (auto& c : LoadHex("tds-client.hex")) {
    bool payload = c.name.find("payload") != std::string::npos;
    cases.push_back({c.name, payload ? WithTdsHeader(c.bytes, 0x12) : c.bytes});
  }
  for (auto& c : LoadCorpus("tds_prelogin")) cases.push_back(c);
  for (auto& c : LoadCorpus("tds_login7")) cases.push_back(c);
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", fixture.port()))) << d.Log();
  Campaign(d, Mutate(cases, 4));
}

// ---------------------------------------------------------------------------
// Hostile backends.

// A scripted server that plays each connection's case: the protocol's part
// before TLS, TLS where the protocol wants it, then the case's bytes.
class HostileBackend {
 public:
  enum class Kind { kPostgres, kMysql, kTds };
  HostileBackend(Kind kind, std::vector<Case> cases) : kind_(kind), cases_(std::move(cases)) {}
  ~HostileBackend() {
    stop_ = true;
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : threads_) t.join();
    if (fd_ >= 0) close(fd_);
    SSL_CTX_free(ctx_);
  }
  bool Start() {
    ctx_ = SSL_CTX_new(TLS_method());
    if (SSL_CTX_use_certificate_chain_file(ctx_, Cert("server.pem").c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, Cert("server.key").c_str(), SSL_FILETYPE_PEM) != 1) {
      return false;
    }
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd_, 256) != 0) return false;
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
    return true;
  }
  uint16_t port() const { return port_; }

 private:
  void Accept() {
    for (size_t i = 0; !stop_; i++) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      const Case& k = cases_[i % cases_.size()];
      threads_.emplace_back([this, c, &k, i] {
        Serve(c, k.bytes, i);
        close(c);
      });
    }
  }
  static bool ReadSome(int fd, size_t n) {
    std::vector<char> buf(n);
    size_t got = 0;
    while (got < n) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return false;
      ssize_t r = recv(fd, buf.data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  void Serve(int fd, const Bytes& bytes, size_t i) {
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    switch (kind_) {
      case Kind::kPostgres: {
        if (!ReadSome(fd, 8)) return;  // SSLRequest
        send(fd, "S", 1, MSG_NOSIGNAL);
        bssl::UniquePtr<SSL> ssl(SSL_new(ctx_));
        SSL_set_fd(ssl.get(), fd);
        if (SSL_accept(ssl.get()) != 1) return;
        char buf[4096];
        SSL_read(ssl.get(), buf, sizeof buf);  // the startup message
        SSL_write(ssl.get(), bytes.data(), static_cast<int>(bytes.size()));
        if (i % 2 == 0) SSL_shutdown(ssl.get());
        return;
      }
      case Kind::kMysql:
      case Kind::kTds: {
        if (kind_ == Kind::kTds) {
          char buf[4096];
          if (recv(fd, buf, sizeof buf, 0) <= 0) return;  // dbward's PRELOGIN
        }
        send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        char buf[4096];
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
        return;
      }
    }
  }

  Kind kind_;
  std::vector<Case> cases_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> threads_;
};

TEST_F(HostileTest, PostgresBackends) {
  std::vector<Case> cases = LoadHex("pg-server.hex");
  for (auto& c : LoadCorpus("pg_message")) cases.push_back(c);
  cases = Mutate(cases, 5);
  HostileBackend backend(HostileBackend::Kind::kPostgres, cases);
  ASSERT_TRUE(backend.Start());
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("postgres", backend.port()))) << d.Log();
  std::string startup = ReadFileText(SourceDir() + "/tests/fuzz/corpus/pg_first_message/startup_oryx");
  std::vector<Case> clients(cases.size(), Case{"startup", Bytes(startup.begin(), startup.end())});
  Campaign(d, clients);
}

TEST_F(HostileTest, MysqlBackends) {
  std::vector<Case> cases;
  for (auto& c : LoadHex("mysql-server.hex")) cases.push_back({c.name, WithMysqlHeader(c.bytes, 0)});
  for (auto& c : LoadCorpus("mysql_greeting")) cases.push_back(c);
  cases = Mutate(cases, 6);
  HostileBackend backend(HostileBackend::Kind::kMysql, cases);
  ASSERT_TRUE(backend.Start());
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("mysql", backend.port()))) << d.Log();
  // Clients that wait for the greeting (send nothing, then hang up).
  Campaign(d, std::vector<Case>(cases.size(), Case{"silent", {}}));
}

TEST_F(HostileTest, TdsBackends) {
  std::vector<Case> cases;
  for (auto& c : LoadHex("tds-server.hex")) {
    bool payload = c.name.find("payload") != std::string::npos;
    cases.push_back({c.name, payload ? WithTdsHeader(c.bytes, 0x04) : c.bytes});
  }
  cases = Mutate(cases, 7);
  HostileBackend backend(HostileBackend::Kind::kTds, cases);
  ASSERT_TRUE(backend.Start());
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Listener("tds", backend.port()))) << d.Log();
  std::vector<Case> prelogin = LoadHex("tds-client.hex");
  Campaign(d, std::vector<Case>(cases.size(), Case{"prelogin", prelogin[0].bytes}));
}

}  // namespace
}  // namespace dbward::testing

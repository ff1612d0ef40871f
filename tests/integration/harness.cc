#include "harness.h"

#include <gtest/gtest.h>

#include <variant>

#include "proxy/common/audit_event.h"
#include "proxy/common/json_reader.h"
#include "tests/test_certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace dbward::testing {
namespace {

// The test process plays client and server to dbward on many threads; when dbward
// closes a leg, a write on it must fail with EPIPE rather than end every test in the
// process (a scripted backend's close_notify after dbward hung up raised SIGPIPE on
// CI). Children get the default disposition back in Spawn.
const bool kSigpipeIgnored = [] { return signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

}  // namespace

JsonFields EventWhere(const std::vector<JsonFields>& events, const std::string& key, const std::string& value) {
  const JsonFields* found = nullptr;
  for (const auto& e : events) {
    auto it = e.find(key);
    if (it == e.end() || it->second != value) continue;
    EXPECT_EQ(found, nullptr) << "more than one audit event has " << key << "=" << value;
    found = &e;
  }
  EXPECT_NE(found, nullptr) << "no audit event has " << key << "=" << value;
  return found ? *found : JsonFields{};
}

std::string CertDir() { return test_certs::Dir(); }

std::string Cert(const std::string& name) { return CertDir() + "/" + name; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/dbward-test-XXXXXX";
  char* p = mkdtemp(tmpl);
  path_ = p ? p : "/tmp";
}

TempDir::~TempDir() {
  if (path_.rfind("/tmp/dbward-test-", 0) == 0 && getenv("DBWARD_KEEP_TEST_DIRS") == nullptr) {
    std::string cmd = "rm -rf '" + path_ + "'";
    if (system(cmd.c_str()) != 0) {
      // best effort
    }
  }
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  std::string p = path_ + "/" + name;
  std::ofstream(p) << content;
  return p;
}

JsonFields ParseAuditFields(const std::string& line) {
  std::vector<std::string> unknown;
  auto parsed = proxy::ParseAuditLine(line, &unknown);
  if (const auto* e = std::get_if<proxy::AuditLineError>(&parsed)) {
    ADD_FAILURE() << "invalid audit line (column " << e->column << ": " << e->reason << "): " << line;
    return {};
  }
  for (const std::string& key : unknown) ADD_FAILURE() << "audit field \"" << key << "\" is not in the schema: " << line;
  JsonFields out;
  for (auto& [key, value] : proxy::AuditFieldTexts(std::get<proxy::AuditEvent>(parsed))) out[key] = value;
  return out;
}

JsonFields ParseJsonFields(const std::string& line) {
  proxy::FlatJsonResult parsed = proxy::ParseFlatJsonObject(line);
  JsonFields out;
  if (const auto* object = std::get_if<proxy::FlatJsonObject>(&parsed)) {
    for (const auto& [key, value] : *object) {
      switch (value.kind) {
        case proxy::JsonScalar::Kind::kNull: out[key] = "null"; break;
        case proxy::JsonScalar::Kind::kBool: out[key] = value.boolean ? "true" : "false"; break;
        default: out[key] = value.text; break;
      }
    }
  }
  return out;
}

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_path == out_path) {
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

}  // namespace

DbwardProcess::~DbwardProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool DbwardProcess::Start(const std::string& config_yaml, int listeners) {
  std::string audit = dir_.path() + "/audit.jsonl";
  std::string cfg = config_yaml;
  for (size_t at = cfg.find("${AUDIT}"); at != std::string::npos; at = cfg.find("${AUDIT}", at + audit.size())) {
    cfg.replace(at, 8, audit);
  }
  // Certificate files are polled for changes; tests that change them should
  // not wait the default two seconds for it.
  if (cfg.find("reload_interval:") == std::string::npos) cfg = "reload_interval: 100ms\n" + cfg;
  std::string path = dir_.Write("dbward.yaml", cfg);
  pid_ = Spawn({DBWARD_BINARY, "run", "--config", path}, dir_.path() + "/stdout.log",
               dir_.path() + "/stderr.log");
  if (pid_ < 0) return false;
  const bool has_admin = cfg.rfind("admin:", 0) == 0 || cfg.find("\nadmin:") != std::string::npos;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = Log();
    ports_.clear();
    admin_port_ = 0;
    // Lines read "listening on HOST:PORT (...)" ("admin listening on ..." for
    // the admin server); the port follows the last colon before the next space.
    for (size_t at = log.find("listening on "); at != std::string::npos; at = log.find("listening on ", at + 1)) {
      size_t end = log.find(' ', at + 13);
      if (end == std::string::npos) break;
      size_t colon = log.rfind(':', end);
      if (colon == std::string::npos || colon < at + 13) continue;
      std::string digits = log.substr(colon + 1, end - colon - 1);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const auto port = static_cast<uint16_t>(std::stoi(digits));
      if (at >= 6 && log.compare(at - 6, 6, "admin ") == 0) {
        admin_port_ = port;
      } else {
        ports_.push_back(port);
      }
    }
    if (static_cast<int>(ports_.size()) >= listeners && (!has_admin || admin_port_ != 0)) return true;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool DbwardProcess::WaitExit(std::chrono::milliseconds timeout, int* status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      *status = st;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int DbwardProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int st;
  if (!WaitExit(timeout, &st)) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string DbwardProcess::Log() const { return ReadFile(dir_.path() + "/stderr.log"); }

std::vector<JsonFields> DbwardProcess::AuditEvents() const {
  std::vector<JsonFields> out;
  std::istringstream in(ReadFile(dir_.path() + "/audit.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(ParseAuditFields(line));
  }
  return out;
}

std::vector<JsonFields> DbwardProcess::WaitAuditEvents(size_t n, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto ev = AuditEvents();
    if (ev.size() >= n || std::chrono::steady_clock::now() > deadline) return ev;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool DbwardProcess::WaitLog(const std::string& needle, std::chrono::milliseconds timeout, size_t times) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::string log = Log();
    size_t seen = 0;
    for (size_t at = log.find(needle); at != std::string::npos && seen < times; at = log.find(needle, at + 1)) seen++;
    if (seen >= times) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

long DbwardProcess::RssKb() const {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid_) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

int RunCommand(const std::vector<std::string>& argv, std::string* output) {
  TempDir dir;
  std::string out = dir.path() + "/out";
  pid_t pid = Spawn(argv, out, out);
  if (pid < 0) return -1;
  int st;
  waitpid(pid, &st, 0);
  *output = ReadFile(out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t SpawnBackground(const std::vector<std::string>& argv, const std::string& out_path) {
  return Spawn(argv, out_path, out_path);
}

int WaitPid(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string ReadFileText(const std::string& path) { return ReadFile(path); }

std::string SourceDir() { return DBWARD_SOURCE_DIR; }

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool SendAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

ssize_t RecvAll(int fd, std::string* out, size_t max, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  size_t total = 0;
  while (total < max) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    ssize_t n = recv(fd, buf, std::min(sizeof buf, max - total), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return total > 0 ? static_cast<ssize_t>(total) : -1;
    }
    out->append(buf, static_cast<size_t>(n));
    total += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(total);
}

bool ClosedWithoutData(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char c;
  ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

bool ScriptedServer::Start(std::string* error) {
  if (const char* prefix = getenv("DBWARD_TEST_SHARED"); prefix != nullptr && *prefix != '\0') {
    std::string shared = prefix + suffix_;
    dir_ = shared;
    std::string port = ReadFile(shared + "/port");
    if (port.empty()) {
      *error = shared + "/port is missing: did the ctest fixture start the server?";
      return false;
    }
    port_ = static_cast<uint16_t>(std::stoi(port));
    up_ = true;
    return true;
  }
  // Under /tmp directly: the database runs as its own OS user and cannot
  // enter the 0700 directories mkdtemp makes.
  dir_ = "/tmp/dbward-" + script_.substr(0, script_.find('-')) + "-" + std::to_string(getpid());
  port_ = FreePort();
  std::string out;
  if (RunCommand({SourceDir() + "/tests/" + script_, "start", dir_, std::to_string(port_), CertDir()}, &out) != 0) {
    *error = script_ + " start failed: " + out;
    return false;
  }
  up_ = owned_ = true;
  return true;
}

void ScriptedServer::Stop() {
  if (!up_) return;
  up_ = false;
  if (!owned_) return;
  std::string out;
  RunCommand({SourceDir() + "/tests/" + script_, "stop", dir_}, &out);
  RunCommand({"rm", "-rf", dir_}, &out);
}

OpensslServer::~OpensslServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void OpensslServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool OpensslServer::Start(const std::vector<std::string>& extra_args) {
  port_ = FreePort();
  std::vector<std::string> argv = {"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port_)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = Spawn(argv, "/dev/null", "/dev/null");
  if (pid_ < 0) return false;
  for (int i = 0; i < 200; i++) {
    int fd = ConnectLoopback(port_);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace dbward::testing

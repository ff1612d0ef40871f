// Test harness for end-to-end tests: runs the real dbward binary with a
// generated configuration, talks to it over loopback, reads its log and audit
// file, and can start `openssl s_server` as a reference TLS backend.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace dbward::testing {

std::string CertDir();  // the test PKI (tests/test_certs.h); "" when there is none, and tests fail
inline constexpr const char* kNoCerts =
    "no test PKI: run through ctest (fixture generate_test_certs), or tests/gen-test-certs.sh DIR and set "
    "DBWARD_TEST_CERTS=DIR";
std::string Cert(const std::string& name);  // CertDir() + "/" + name

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// An audit event's fields as text (null, true/false, numbers, strings as they
// are), read with dbward's own audit reader: a line that does not parse, or
// carries a field the schema does not know, fails the test.
using JsonFields = std::map<std::string, std::string>;
JsonFields ParseAuditFields(const std::string& line);
// The one event whose field key is value: sessions that overlap end, and are
// written, in either order. Empty (and a test failure) when none or several are.
JsonFields EventWhere(const std::vector<JsonFields>& events, const std::string& key, const std::string& value);
// Any flat JSON object (a test client's output), with the same reader; empty
// when it does not parse.
JsonFields ParseJsonFields(const std::string& line);

class DbwardProcess {
 public:
  DbwardProcess() = default;
  ~DbwardProcess();
  // Writes config_yaml (with ${AUDIT} replaced by the audit file path) and
  // starts `dbward run`; waits until every listener, and the admin server if
  // the config has one, logged its port.
  bool Start(const std::string& config_yaml, int listeners = 1);
  uint16_t port(size_t i = 0) const { return ports_.at(i); }
  // The admin server's port: give it "listen: 127.0.0.1:0" and read it here,
  // rather than a FreePort() another test may take before dbward binds it.
  uint16_t admin_port() const { return admin_port_; }
  pid_t pid() const { return pid_; }
  // Sends sig and waits up to timeout; returns the exit status or -1.
  int Stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(15));
  bool WaitExit(std::chrono::milliseconds timeout, int* status);
  std::string Log() const;
  std::vector<JsonFields> AuditEvents() const;
  // Waits until at least n audit events exist.
  std::vector<JsonFields> WaitAuditEvents(size_t n, std::chrono::milliseconds timeout =
                                                         std::chrono::seconds(10)) const;
  // Waits until the log holds needle at least times times.
  bool WaitLog(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(10),
               size_t times = 1) const;
  long RssKb() const;
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  std::vector<uint16_t> ports_;
  uint16_t admin_port_ = 0;
};

// Runs a command, capturing stdout+stderr; returns the exit status.
int RunCommand(const std::vector<std::string>& argv, std::string* output);
// Starts a command in the background with stdout+stderr to out_path.
pid_t SpawnBackground(const std::vector<std::string>& argv, const std::string& out_path);
// Waits for pid; returns its exit status, or -1 on timeout.
int WaitPid(pid_t pid, std::chrono::milliseconds timeout);
std::string ReadFileText(const std::string& path);
// The source tree (for scripts and node clients).
std::string SourceDir();

// Loopback TCP client helpers (blocking, with timeouts).
int ConnectLoopback(uint16_t port);
bool SendAll(int fd, const void* data, size_t len);
// Reads until EOF or until max bytes; returns bytes read, -1 on error/timeout.
ssize_t RecvAll(int fd, std::string* out, size_t max, int timeout_ms);
// True if the peer closed the connection (EOF or reset) within timeout_ms
// without sending any data.
bool ClosedWithoutData(int fd, int timeout_ms);
uint16_t FreePort();

// A database server for a test suite: the one ctest started for the whole
// run (fixtures pg and mariadb; its directory is $DBWARD_TEST_SHARED-pg or
// -mariadb, its port in DIR/port), or, when the binary runs on its own, a
// throwaway one started by the tests/*-server.sh script (`start DIR PORT
// CERTDIR` / `stop DIR`).
class ScriptedServer {
 public:
  ScriptedServer(std::string script, std::string suffix) : script_(std::move(script)), suffix_(std::move(suffix)) {}
  ~ScriptedServer() { Stop(); }
  // false with *error holding the script's output.
  bool Start(std::string* error);
  void Stop();
  uint16_t port() const { return port_; }
  bool up() const { return up_; }
  // Its directory (PostgreSQL: where its Unix socket is).
  const std::string& dir() const { return dir_; }

 private:
  std::string script_;
  std::string suffix_;
  std::string dir_;
  uint16_t port_ = 0;
  bool up_ = false;
  bool owned_ = false;  // started here, stopped here
};

// A GoogleTest suite that shares one scripted database server between its
// tests; Script names the tests/*-server.sh script (see PostgresScript).
template <typename Script>
class ScriptedServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (CertDir().empty()) return;
    server_ = new ScriptedServer(Script::kName, Script::kShared);
    if (server_->Start(&start_error_)) port_ = server_->port();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    ASSERT_TRUE(server_ != nullptr && server_->up()) << start_error_;
  }
  static inline ScriptedServer* server_ = nullptr;
  static inline uint16_t port_ = 0;
  static inline std::string start_error_;
};
struct PostgresScript {
  static constexpr const char* kName = "pg-server.sh";  // TLS-only PostgreSQL
  static constexpr const char* kShared = "-pg";
};
struct MariadbScript {
  static constexpr const char* kName = "mariadb-server.sh";  // require_secure_transport MariaDB
  static constexpr const char* kShared = "-mariadb";
};

// `openssl s_server` on a free port with the given extra arguments.
class OpensslServer {
 public:
  ~OpensslServer();
  bool Start(const std::vector<std::string>& extra_args);
  uint16_t port() const { return port_; }
  // SIGKILL, as a crashed server.
  void Kill();

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace dbward::testing

// `dbward probe` end to end: the real binary against a BoringSSL TLS server
// (tcp) with good, wrong-name, expired, self-signed and untrusted
// certificates, against a real PostgreSQL 15 (ssl_min_protocol_version
// TLSv1.2), a real MariaDB 10.11 and the scripted TDS server (7.x with TLS in
// PRELOGIN, and 8.0 strict). Asserts on the exit status, the phrases users
// search for, and on what the server saw where it records it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "tls_backend.h"

#include "../fixtures/tds_server.h"

namespace dbward::testing {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int Probe(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {"timeout", "60", DBWARD_BINARY, "probe"};
  argv.insert(argv.end(), args.begin(), args.end());
  int rc = RunCommand(argv, out);
  if (getenv("DBWARD_PROBE_TEST_VERBOSE") != nullptr) fprintf(stderr, "--- exit %d\n%s", rc, out->c_str());
  return rc;
}

std::string Backend(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// "AF:C9:..." as `openssl x509 -fingerprint -sha256` prints it.
std::string OpensslFingerprint(const std::string& pem) {
  std::string out;
  if (RunCommand({"openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"}, &out) != 0) return "";
  size_t eq = out.find('=');
  if (eq == std::string::npos) return "";
  out = out.substr(eq + 1);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Validates the JSON with python3 and evaluates a Python expression over it
// (bound to d); returns what it prints.
std::string JsonQuery(const std::string& json, const std::string& expression) {
  TempDir dir;
  std::string path = dir.Write("probe.json", json);
  std::string out;
  if (RunCommand({"python3", "-c", "import json,sys\nd=json.load(open(sys.argv[1]))\nprint(" + expression + ")", path},
                 &out) != 0) {
    return "invalid JSON: " + out;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Answers every connection with fixed bytes (after reading what the client
// sent first, when read_first) and hangs up: a server that speaks just enough
// of a protocol to turn the probe away.
class CannedServer {
 public:
  CannedServer(std::string reply, bool read_first) : reply_(std::move(reply)), read_first_(read_first) {}
  ~CannedServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  bool Start() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      return false;
    }
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { Loop(); });
    return true;
  }
  uint16_t port() const { return port_; }

 private:
  void Loop() {
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (read_first_) {
        pollfd in{c, POLLIN, 0};
        char buf[512];
        if (poll(&in, 1, 5000) > 0) (void)!recv(c, buf, sizeof buf, 0);
      }
      (void)!send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      shutdown(c, SHUT_WR);
      close(c);
    }
  }
  std::string reply_;
  bool read_first_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ProbeTcpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  std::unique_ptr<TlsBackend> StartBackend(const std::string& cert, uint16_t max_version = 0,
                                           TlsBackend::Mode mode = TlsBackend::Mode::kEcho) {
    TlsBackend::Options o;
    o.mode = mode;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    o.max_version = max_version;
    auto b = std::make_unique<TlsBackend>(o);
    std::string error;
    EXPECT_TRUE(b->Start(&error)) << error;
    return b;
  }
};

TEST_F(ProbeTcpTest, GoodCertificateVerifiesAndChainIsShown) {
  auto b = StartBackend("server");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "subject   CN=localhost")) << out;
  EXPECT_TRUE(Contains(out, "issuer    CN=dbward Test Root CA,O=dbward tests")) << out;
  EXPECT_TRUE(Contains(out, "SANs      DNS:localhost, IP:127.0.0.1, IP:::1")) << out;
  EXPECT_TRUE(Contains(out, "EKU       serverAuth")) << out;
  EXPECT_TRUE(Contains(out, "key       EC prime256v1")) << out;
  std::string fp = OpensslFingerprint(Cert("server.pem"));
  ASSERT_FALSE(fp.empty());
  EXPECT_TRUE(Contains(out, "SHA-256   " + fp)) << out;
  EXPECT_TRUE(Contains(out, "server name \"localhost\" matches the certificate")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  accepted     TLS_")) << out;
  EXPECT_TRUE(Contains(out, "verify-full  would succeed")) << out;
  EXPECT_TRUE(Contains(out, "verify-ca    would succeed (implied by verify-full)")) << out;
  EXPECT_TRUE(Contains(out, "result: verify-full would succeed (TLSv1.3")) << out;
  EXPECT_EQ(b->last_sni(), "localhost");
  // No application data: every connection was a bare handshake.
  EXPECT_EQ(b->bytes_received(), 0u);
}

TEST_F(ProbeTcpTest, IpAddressIsCheckedAgainstIpSans) {
  auto b = StartBackend("server");
  std::string out;
  // The server name defaults to the host of --backend.
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem")}, &out), 0)
      << out;
  EXPECT_TRUE(Contains(out, "server name \"127.0.0.1\" matches the certificate")) << out;
}

TEST_F(ProbeTcpTest, WrongNameFailsVerifyFullButNotVerifyCa) {
  auto b = StartBackend("wrongname");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "verify-full  would FAIL: The target principal name is incorrect.")) << out;
  EXPECT_TRUE(Contains(out, "is not among the certificate's names [DNS:db.example.net]")) << out;
  EXPECT_TRUE(Contains(out, "fix:   set backend_tls.server_name to one of those names")) << out;
  EXPECT_TRUE(Contains(out, "verify-ca    would succeed\n")) << out;
  EXPECT_TRUE(Contains(out, "server name \"localhost\" does NOT match the certificate")) << out;
  // The chain is shown although verification failed.
  EXPECT_TRUE(Contains(out, "subject   CN=db.example.net")) << out;
}

TEST_F(ProbeTcpTest, ExpiredCertificateNamesItsDates) {
  auto b = StartBackend("expired");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "The certificate has expired (valid from 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z)"))
      << out;
  EXPECT_TRUE(Contains(out, "was valid until 2021-01-01T00:00:00Z")) << out;
  EXPECT_TRUE(Contains(out, "fix:   renew the certificate on the server")) << out;
  EXPECT_TRUE(Contains(out, "2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z  EXPIRED")) << out;
  EXPECT_TRUE(Contains(out, "verify-ca    would FAIL: The certificate has expired")) << out;
}

TEST_F(ProbeTcpTest, SelfSignedCertificateIsNotTrusted) {
  auto b = StartBackend("selfsigned");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "verify-full  would FAIL: The certificate chain was issued by an authority that is not "
                            "trusted."))
      << out;
  EXPECT_TRUE(Contains(out, "verify-ca    would FAIL: The certificate chain was issued by an authority")) << out;
  EXPECT_TRUE(Contains(out, "issuer    CN=localhost  (self-signed)")) << out;
  EXPECT_TRUE(Contains(out, "fix:   set backend_tls.ca_file to the CA that issued \"CN=localhost\"")) << out;
}

TEST_F(ProbeTcpTest, UnrelatedCaIsNotTrusted) {
  auto b = StartBackend("server");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("other-ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "The certificate chain was issued by an authority that is not trusted.")) << out;
  EXPECT_TRUE(Contains(out, "trusted: ca_file " + Cert("other-ca.pem"))) << out;
}

TEST_F(ProbeTcpTest, Tls12OnlyServerRejectsTls13) {
  auto b = StartBackend("server", TLS1_2_VERSION);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted     TLS_ECDHE_ECDSA_WITH_")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  rejected")) << out;
  EXPECT_TRUE(Contains(out, "TLS:      TLSv1.2, ")) << out;
}

TEST_F(ProbeTcpTest, JsonIsOneObject) {
  auto b = StartBackend("wrongname");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost", "--format", "json"},
                  &out),
            1)
      << out;
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front(), '{') << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line: " << out;
  EXPECT_EQ(JsonQuery(out, "d['status'], d['exit_code'], d['name_matches']"), "verify_failed 1 False");
  EXPECT_EQ(JsonQuery(out, "d['verify_full']['cause'], d['verify_full']['message']"),
            "name_mismatch The target principal name is incorrect.");
  EXPECT_EQ(JsonQuery(out, "d['verify_ca']['ok']"), "True");
  EXPECT_EQ(JsonQuery(out, "d['chain'][0]['subject'], d['chain'][0]['sans']"), "CN=db.example.net ['DNS:db.example.net']");
  EXPECT_EQ(JsonQuery(out, "[v['status'] for v in d['versions'] if v['version'] in ('TLSv1.2', 'TLSv1.3')]"),
            "['accepted', 'accepted']");
}

TEST_F(ProbeTcpTest, ClosedPortExits3) {
  uint16_t port = FreePort();
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(port), "--ca-file", Cert("ca.pem")}, &out), 3) << out;
  EXPECT_TRUE(Contains(out, "the server cannot be reached: cannot connect to 127.0.0.1:" + std::to_string(port) +
                            ": Connection refused"))
      << out;
  std::string json;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", Backend(port), "--format", "json"}, &json), 3) << json;
  EXPECT_EQ(JsonQuery(json, "d['status'], d['exit_code']"), "unreachable 3");
}

TEST_F(ProbeTcpTest, PlaintextServerDoesNotSpeakTls) {
  auto b = StartBackend("server", 0, TlsBackend::Mode::kPlaintext);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem")}, &out), 3)
      << out;
  EXPECT_TRUE(Contains(out, "the server refuses TLS: The server did not answer with TLS.")) << out;
}

TEST_F(ProbeTcpTest, SilentServerTimesOut) {
  auto b = StartBackend("server", 0, TlsBackend::Mode::kSilent);
  std::string out;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"), "--timeout",
                   "300ms"},
                  &out),
            3)
      << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(Contains(out, "no answer during the TLS handshake before the timeout")) << out;
}

TEST_F(ProbeTcpTest, TlsServerIsNotMysql) {
  auto b = StartBackend("server");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(b->port()), "--ca-file", Cert("ca.pem"), "--timeout",
                   "300ms"},
                  &out),
            3)
      << out;
  EXPECT_TRUE(Contains(out, "does not speak the MySQL protocol: no MySQL greeting before the timeout")) << out;
}

TEST_F(ProbeTcpTest, PostgresWithSslOffAnswersN) {
  CannedServer server("N", true);
  ASSERT_TRUE(server.Start());
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", Backend(server.port()), "--ca-file", Cert("ca.pem")}, &out),
            3)
      << out;
  EXPECT_TRUE(Contains(out, "the server refuses TLS: the server answered 'N' to SSLRequest")) << out;
}

TEST_F(ProbeTcpTest, MysqlErrorInsteadOfGreeting) {
  // ERR 1130 with a pre-4.1 body, as a server sends it before any handshake.
  const std::string body = std::string("\xff\x6a\x04", 3) + "Host '10.0.0.9' is not allowed to connect";
  std::string packet = {static_cast<char>(body.size()), 0, 0, 0};
  CannedServer server(packet + body, false);
  ASSERT_TRUE(server.Start());
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(server.port()), "--ca-file", Cert("ca.pem")}, &out), 3)
      << out;
  EXPECT_TRUE(Contains(out, "refused the connection before the handshake: ERROR 1130: Host '10.0.0.9' is not "
                            "allowed to connect"))
      << out;
}

TEST_F(ProbeTcpTest, UsageErrorsExit2) {
  std::string out;
  EXPECT_EQ(Probe({"--backend", "127.0.0.1:1"}, &out), 2) << out;
  EXPECT_TRUE(Contains(out, "--protocol is required")) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "no-port"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "h:99999"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "h:1", "--timeout", "soon"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "h:1", "--format", "xml"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", "h:1", "--tds-strict"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "h:1", "--bogus"}, &out), 2) << out;
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", "127.0.0.1:1", "--ca-file", "/no/such/ca.pem"}, &out), 2)
      << out;
  EXPECT_TRUE(Contains(out, "cannot read CA file /no/such/ca.pem")) << out;
}

class ProbePgTest : public ScriptedServerSuite<PostgresScript> {};

TEST_F(ProbePgTest, GoodCaVerifiesAndTls12And13AreAccepted) {
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", Backend(port_), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "server:   PostgreSQL (SSLRequest answered 'S')")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  accepted     TLS_")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted     TLS_ECDHE_ECDSA_WITH_")) << out;
  // ssl_min_protocol_version = TLSv1.2: older versions are refused (or, in a
  // BoringSSL without them, not tested).
  EXPECT_FALSE(Contains(out, "TLSv1.0  accepted")) << out;
  EXPECT_FALSE(Contains(out, "TLSv1.1  accepted")) << out;
  EXPECT_TRUE(Contains(out, "subject   CN=localhost")) << out;
  EXPECT_TRUE(Contains(out, "verify-full  would succeed")) << out;
}

TEST_F(ProbePgTest, WrongServerNameIsTheTargetPrincipalName) {
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", Backend(port_), "--ca-file", Cert("ca.pem"),
                   "--server-name", "db.example.com"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "The target principal name is incorrect")) << out;
  EXPECT_TRUE(Contains(out, "verify-ca    would succeed")) << out;
}

TEST_F(ProbePgTest, JsonWithSystemStoreIsUntrusted) {
  std::string out;
  int rc = Probe({"--protocol", "postgres", "--backend", "localhost:" + std::to_string(port_), "--format", "json"},
                 &out);
  ASSERT_FALSE(Contains(out, "no ca_file given and no system CA bundle found")) << "install ca-certificates";
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(JsonQuery(out, "d['verify_full']['cause'], d['trust'].startswith('system trust store')"),
            "untrusted True");
  EXPECT_EQ(JsonQuery(out, "d['verify_full']['message']"),
            "The certificate chain was issued by an authority that is not trusted.");
  EXPECT_EQ(JsonQuery(out, "d['server'], len(d['chain'])"), "PostgreSQL (SSLRequest answered 'S') 1");
}

TEST_F(ProbePgTest, OtherProtocolsAgainstPostgresExit3) {
  std::string out;
  // PostgreSQL waits for the client: no MySQL greeting ever comes.
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(port_), "--ca-file", Cert("ca.pem"), "--timeout", "1s"},
                  &out),
            3)
      << out;
  EXPECT_TRUE(Contains(out, "does not speak the MySQL protocol")) << out;
  // A ClientHello read as a startup packet: PostgreSQL hangs up.
  EXPECT_EQ(Probe({"--protocol", "tcp", "--backend", Backend(port_), "--ca-file", Cert("ca.pem")}, &out), 3) << out;
  EXPECT_TRUE(Contains(out, "the server refuses TLS")) << out;
}

class ProbeMysqlTest : public ScriptedServerSuite<MariadbScript> {};

TEST_F(ProbeMysqlTest, GoodCaVerifies) {
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(port_), "--ca-file", Cert("ca.pem"), "--server-name",
                   "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "server:   MariaDB 10.")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  accepted")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted")) << out;
  EXPECT_FALSE(Contains(out, "TLSv1.1  accepted")) << out;
  EXPECT_TRUE(Contains(out, "subject   CN=localhost")) << out;
  EXPECT_TRUE(Contains(out, "verify-full  would succeed")) << out;
}

TEST_F(ProbeMysqlTest, WrongNameAndWrongCa) {
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(port_), "--ca-file", Cert("ca.pem"), "--server-name",
                   "db.example.com"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "The target principal name is incorrect")) << out;
  EXPECT_EQ(Probe({"--protocol", "mysql", "--backend", Backend(port_), "--ca-file", Cert("other-ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "The certificate chain was issued by an authority that is not trusted")) << out;
}

TEST_F(ProbeMysqlTest, PostgresProbeAgainstMariadbExit3) {
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "postgres", "--backend", Backend(port_), "--ca-file", Cert("ca.pem")}, &out), 3)
      << out;
  EXPECT_TRUE(Contains(out, "does not speak the PostgreSQL protocol")) << out;
  EXPECT_TRUE(Contains(out, "not a PostgreSQL server")) << out;
}


class ProbeTdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  std::unique_ptr<TdsServer> StartServer(TdsServer::Encryption encryption, bool strict = false,
                                         const std::string& cert = "server") {
    TdsServer::Options o;
    o.encryption = encryption;
    o.strict = strict;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    auto server = std::make_unique<TdsServer>(o);
    std::string error;
    EXPECT_TRUE(server->Start(&error)) << error;
    return server;
  }
};

TEST_F(ProbeTdsTest, TlsInsidePreloginVerifies) {
  auto s = StartServer(TdsServer::Encryption::kOff);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "server:   SQL Server")) << out;
  EXPECT_TRUE(Contains(out, "PRELOGIN ENCRYPTION=ON")) << out;
  // TDS 7.x carries TLS 1.2 in PRELOGIN packets.
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  rejected")) << out;
  EXPECT_TRUE(Contains(out, "subject   CN=localhost")) << out;
  EXPECT_TRUE(s->WaitIdle());
  // verify-full and the accepted versions completed handshakes inside
  // PRELOGIN; only TLS 1.3 failed. The probe never logs in.
  EXPECT_GE(s->tls_handshakes(), 2);
  EXPECT_EQ(s->tls_failures(), 1);
  EXPECT_EQ(s->last_client_encryption(), 1);
  EXPECT_EQ(s->logins_ok() + s->logins_failed(), 0);
}

TEST_F(ProbeTdsTest, ServerRequiringEncryptionAnswersReq) {
  auto s = StartServer(TdsServer::Encryption::kRequired);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "PRELOGIN ENCRYPTION=REQ")) << out;
}

TEST_F(ProbeTdsTest, WrongNameIsTheTargetPrincipalName) {
  auto s = StartServer(TdsServer::Encryption::kOff, false, "wrongname");
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            1)
      << out;
  EXPECT_TRUE(Contains(out, "verify-full  would FAIL: The target principal name is incorrect.")) << out;
  EXPECT_TRUE(Contains(out, "subject   CN=db.example.net")) << out;
}

TEST_F(ProbeTdsTest, ServerWithoutCertificateRefusesTls) {
  auto s = StartServer(TdsServer::Encryption::kNotSupported);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem")}, &out), 3)
      << out;
  EXPECT_TRUE(Contains(out, "the server refuses TLS")) << out;
  EXPECT_TRUE(Contains(out, "ENCRYPTION=NOT_SUP")) << out;
}

TEST_F(ProbeTdsTest, StrictServerWithTdsStrict) {
  auto s = StartServer(TdsServer::Encryption::kOff, true);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--tds-strict", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem"),
                   "--server-name", "localhost"},
                  &out),
            0)
      << out;
  EXPECT_TRUE(Contains(out, "ALPN tds/8.0")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.3  accepted")) << out;
  EXPECT_TRUE(Contains(out, "TLSv1.2  accepted")) << out;
  EXPECT_TRUE(s->WaitIdle());
  EXPECT_EQ(s->last_alpn(), "tds/8.0");
}

TEST_F(ProbeTdsTest, StrictServerWithoutTdsStrictSuggestsIt) {
  auto s = StartServer(TdsServer::Encryption::kOff, true);
  std::string out;
  EXPECT_EQ(Probe({"--protocol", "tds", "--backend", Backend(s->port()), "--ca-file", Cert("ca.pem"), "--timeout",
                   "2s"},
                  &out),
            3)
      << out;
  EXPECT_TRUE(Contains(out, "try --tds-strict")) << out;
}


}  // namespace
}  // namespace dbward::testing

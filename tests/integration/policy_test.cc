// From seeing to enforcing, end to end with real clients: policy rules that
// warn, deny (with each protocol's own error naming the rule), switch on a
// date, and require proof of validation (a canary refused, or a client
// certificate); client certificates with allow-lists; SPKI pins and CRLs
// on the backend leg; HAProxy in front of dbward (PROXY v2 in) and behind it
// (PROXY v2 out); `report --policy` on the audit file those runs wrote. Each
// scenario runs for PostgreSQL (psql), MySQL (mariadb) and TDS (tsql, jTDS,
// tedious) wherever the protocol has it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "harness.h"
#include "mysql8_backend.h"
#include "tls_backend.h"
#include "protocol/proxy_header.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string Pin(const std::string& name) { return Trim(ReadFileText(Cert(name))); }

// One listener's lines; extra is indented four spaces.
std::string Listener(const std::string& name, const std::string& protocol, uint16_t backend_port,
                     const std::string& extra, bool client_tls = true, const std::string& backend_extra = "") {
  std::string l = "  - name: " + name + "\n    protocol: " + protocol +
                  "\n    listen: 127.0.0.1:0\n    backend: 127.0.0.1:" + std::to_string(backend_port) +
                  "\n    backend_tls:\n      ca_file: " + Cert("ca.pem") + "\n      server_name: localhost\n" +
                  backend_extra;
  if (client_tls) {
    l += "    client_tls:\n      cert_file: " + Cert("proxy.pem") + "\n      key_file: " + Cert("proxy.key") + "\n";
  }
  return l + extra;
}

std::string Config(const std::string& listeners, const std::string& top = "") {
  return "workers: 2\n" + top + "listeners:\n" + listeners + "log:\n  level: debug\n  audit: ${AUDIT}\n";
}

int Psql(uint16_t port, const std::string& conninfo, std::string* out, const std::string& host = "127.0.0.1") {
  return RunCommand({"timeout", "30", "psql", "host=" + host + " port=" + std::to_string(port) + " dbname=app " + conninfo,
                     "-XAtc", "select 1"},
                    out);
}

// Whether 127.0.0.1:port is in LISTEN state (/proc/net/tcp: local address
// in hex, state 0A).
bool Listening(uint16_t port) {
  char want[32];
  snprintf(want, sizeof want, "0100007F:%04X 00000000:0000 0A", port);
  return ReadFileText("/proc/net/tcp").find(want) != std::string::npos;
}

// HAProxy in TCP mode, in the foreground, logging each connection to its
// output: the client address it saw and the PROXY TLVs it received.
class Haproxy {
 public:
  ~Haproxy() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (WaitPid(pid_, std::chrono::seconds(5)) < 0) {
        kill(pid_, SIGKILL);
        WaitPid(pid_, std::chrono::seconds(5));
      }
    }
  }
  // bind_options: after "bind 127.0.0.1:PORT"; server_options: after
  // "server s 127.0.0.1:TARGET".
  // frontend_extra: more lines for the frontend (e.g. a set-src rule).
  bool Start(uint16_t target, const std::string& bind_options, const std::string& server_options,
             const std::string& frontend_extra = "") {
    port_ = FreePort();
    std::string cfg =
        "global\n"
        "  log stdout format raw local0\n"
        "  maxconn 200\n"
        "defaults\n"
        "  mode tcp\n"
        "  log global\n"
        "  timeout connect 5s\n"
        "  timeout client 30s\n"
        "  timeout server 30s\n"
        "frontend fe\n"
        "  bind 127.0.0.1:" + std::to_string(port_) + " " + bind_options + "\n" +
        "  log-format \"seen %ci:%cp uid=%[fc_pp_unique_id] authority=%[fc_pp_authority]\"\n"
        + frontend_extra +
        "  default_backend be\n"
        "backend be\n"
        "  server s 127.0.0.1:" + std::to_string(target) + " " + server_options + "\n";
    std::string path = dir_.Write("haproxy.cfg", cfg);
    log_ = dir_.path() + "/haproxy.log";
    pid_ = SpawnBackground({"haproxy", "-db", "-f", path}, log_);
    if (pid_ < 0) return false;
    // Ready when its socket listens (a test connection would travel on to
    // dbward and be audited).
    for (int i = 0; i < 400; i++) {
      if (Listening(port_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  uint16_t port() const { return port_; }
  std::string Log() const { return ReadFileText(log_); }
  // The first log line holding needle (HAProxy logs a TCP session at its end).
  std::string WaitLine(const std::string& needle) const {
    for (int i = 0; i < 400; i++) {
      std::string log = Log();
      for (size_t at = 0; at < log.size();) {
        size_t end = log.find('\n', at);
        if (end == std::string::npos) break;
        std::string line = log.substr(at, end - at);
        if (line.find(needle) != std::string::npos) return line;
        at = end + 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return "";
  }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string log_;
};

// A raw loopback connection from a chosen source address (127.0.0.0/8 is all
// local), to play a client or a balancer byte by byte.
int ConnectFrom(const char* source, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The validated-rule runs below (one per protocol) share a rule and what
// the audit must say: on listener "strict" a client that refuses the canary,
// then logs in as remembered; on "lax" a client that takes it, refused twice.
const char kProvenRule[] =
    "    canary: {sample: 0}\n"
    "    policy:\n"
    "      - name: proven\n"
    "        match: {}\n"
    "        require: validated\n";
const char kLaxRefusal[] =
    "dbward: listener lax: policy[1] (proven) requires validated, this connection is tls (the client accepted a "
    "test certificate it should have refused: it does not validate certificates)";

void ExpectValidatedRuleAudit(const DbwardProcess& d, std::vector<JsonFields>* lax) {
  auto ev = d.WaitAuditEvents(4);
  ASSERT_EQ(ev.size(), 4u) << d.Log();
  std::vector<JsonFields> strict;
  for (auto& e : ev) (e["listener"] == "strict" ? strict : *lax).push_back(e);
  ASSERT_EQ(strict.size(), 2u);
  ASSERT_EQ(lax->size(), 2u);
  EXPECT_EQ(strict[0]["outcome"], "canary_rejected");
  EXPECT_EQ(strict[1]["outcome"], "ok") << strict[1]["error"];
  EXPECT_EQ(strict[1]["canary"], "remembered");
  EXPECT_EQ(strict[1]["validates"], "true");
  EXPECT_EQ(strict[1]["policy_action"], "allow");
  for (auto& e : *lax) {
    EXPECT_EQ(e["outcome"], "refused");
    EXPECT_EQ(e["cause"], "policy_denied");
    EXPECT_EQ(e["canary"], "untrusted") << "tested again after accepting once";
    EXPECT_EQ(e["validates"], "false");
  }
}

// --- PostgreSQL: psql against the shared TLS-only server ------------------

class PolicyPgTest : public ScriptedServerSuite<PostgresScript> {};

TEST_F(PolicyPgTest, WarnRuleAuditsAndCountsDenyRuleRefusesInPsqlsWords) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_,
                                      "    policy:\n"
                                      "      - name: md5-apps\n"
                                      "        match: {users: [md5_user]}\n"
                                      "        require: tls\n"
                                      "        action: warn\n"
                                      "      - name: everyone\n"
                                      "        match: {}\n"
                                      "        require: tls\n"
                                      "        action: deny\n"),
                             "admin:\n  listen: 127.0.0.1:0\n")))
      << d.Log();
  const uint16_t admin = d.admin_port();
  std::string out;
  // The warn rule: through, recorded, logged.
  ASSERT_EQ(Psql(d.port(), "user=md5_user password=md5_pw sslmode=disable", &out), 0) << out;
  EXPECT_EQ(out, "1\n");
  // The deny rule: refused before any password, in psql's own words.
  EXPECT_NE(Psql(d.port(), "user=scram_user password=scram_pw sslmode=disable", &out), 0);
  EXPECT_NE(out.find("FATAL:  dbward: listener pg: policy[2] (everyone) requires tls, this connection is plaintext"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("HINT:  Connect with sslmode=require, or better sslmode=verify-full."), std::string::npos) << out;
  // The same user over TLS meets the rule.
  ASSERT_EQ(Psql(d.port(), "user=scram_user password=scram_pw sslmode=require channel_binding=disable", &out), 0)
      << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["policy_rule"], "policy[1] (md5-apps)");
  EXPECT_EQ(ev[0]["policy_action"], "warn");
  EXPECT_EQ(ev[1]["outcome"], "refused");
  EXPECT_EQ(ev[1]["cause"], "policy_denied");
  EXPECT_EQ(ev[1]["policy_rule"], "policy[2] (everyone)");
  EXPECT_EQ(ev[1]["policy_action"], "deny");
  EXPECT_EQ(ev[1]["user"], "scram_user");
  EXPECT_EQ(ev[1]["backend_addr"], "null") << "no backend connection for a denied client";
  EXPECT_EQ(ev[2]["outcome"], "ok") << ev[2]["error"];
  EXPECT_EQ(ev[2]["policy_rule"], "policy[2] (everyone)");
  EXPECT_EQ(ev[2]["policy_action"], "allow");
  EXPECT_TRUE(d.WaitLog("policy warning: listener pg: policy[1] (md5-apps) requires tls, this connection is plaintext "
                        "(action: warn)"))
      << d.Log();
  std::string metrics;
  RunCommand({"curl", "-s", "http://127.0.0.1:" + std::to_string(admin) + "/metrics"}, &metrics);
  EXPECT_NE(metrics.find("dbward_policy_violations_total{listener=\"pg\",protocol=\"postgres\",rule=\"policy[1] "
                         "(md5-apps)\",action=\"warn\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("dbward_policy_violations_total{listener=\"pg\",protocol=\"postgres\",rule=\"policy[2] "
                         "(everyone)\",action=\"deny\"} 1"),
            std::string::npos)
      << metrics;
}

TEST_F(PolicyPgTest, DateSwitchedRulesWarnBeforeAndDenyAfter) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_,
                                      "    policy:\n"
                                      "      - name: past\n"
                                      "        match: {users: [md5_user]}\n"
                                      "        require: tls\n"
                                      "        from: 2020-01-15\n"
                                      "      - name: future\n"
                                      "        match: {}\n"
                                      "        require: tls\n"
                                      "        from: 2999-01-15\n"))))
      << d.Log();
  std::string out;
  EXPECT_NE(Psql(d.port(), "user=md5_user password=md5_pw sslmode=disable", &out), 0);
  EXPECT_NE(out.find("dbward: listener pg: policy[1] (past) requires tls, this connection is plaintext"),
            std::string::npos)
      << out;
  ASSERT_EQ(Psql(d.port(), "user=scram_user password=scram_pw sslmode=disable", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  EXPECT_EQ(ev[0]["policy_action"], "deny");
  EXPECT_EQ(ev[0]["cause"], "policy_denied");
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
  EXPECT_EQ(ev[1]["policy_rule"], "policy[2] (future)");
  EXPECT_EQ(ev[1]["policy_action"], "warn");
  EXPECT_TRUE(d.WaitLog("policy[2] (future) requires tls, this connection is plaintext (denied from 2999-01-15)"))
      << d.Log();
}

// Canary memory is per listener and per client address; every client here
// is 127.0.0.1, so the validating and the non-validating client each get a
// listener of their own.
TEST_F(PolicyPgTest, ValidatedRuleLetsACanaryRefusingClientInAndKeepsSslmodeRequireOut) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("strict", "postgres", port_, kProvenRule) + Listener("lax", "postgres", port_, kProvenRule)),
                      2))
      << d.Log();
  const std::string verify_full = "user=md5_user password=md5_pw sslmode=verify-full sslrootcert=" + Cert("ca.pem");
  std::string out;
  // sample: 0, yet the validated rule has the client tested: verify-full
  // refuses the canary (its first connection fails), then is let in.
  EXPECT_NE(Psql(d.port(0), verify_full, &out, "localhost"), 0);
  EXPECT_NE(out.find("certificate verify failed"), std::string::npos) << out;
  ASSERT_EQ(Psql(d.port(0), verify_full, &out, "localhost"), 0) << out;
  // sslmode=require takes the canary and is kept out, each time.
  for (int i = 0; i < 2; i++) {
    EXPECT_NE(Psql(d.port(1), "user=md5_user password=md5_pw sslmode=require", &out), 0);
    EXPECT_NE(out.find(kLaxRefusal),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("HINT:  Connect with sslmode=verify-full and sslrootcert="), std::string::npos) << out;
  }
  std::vector<JsonFields> lax;
  ExpectValidatedRuleAudit(d, &lax);
  for (auto& e : lax) EXPECT_EQ(e["bypass_reason"], "accepted-untrusted-certificate");
}

TEST_F(PolicyPgTest, ClientCertificatesIdentifyAndGateClients) {
  const std::string certs =
      "      ca_file: " + Cert("client-ca.pem") + "\n" +
      "      verify: optional\n"
      "      allow:\n"
      "        uri: [\"spiffe://dbward.test/ns/reports/*\"]\n";
  const std::string policy =
      "    policy:\n"
      "      - name: reports\n"
      "        match: {identities: [\"spiffe://dbward.test/ns/reports/*\"]}\n"
      "        require: validated\n"
      "      - name: others\n"
      "        match: {}\n"
      "        require: validated\n";
  const std::string required = "      ca_file: " + Cert("client-ca.pem") + "\n      verify: required\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("certs", "postgres", port_, certs + policy) +
                                 Listener("required", "postgres", port_, required)),
                      2))
      << d.Log();
  auto with = [&](const std::string& name) {
    return "user=md5_user password=md5_pw sslmode=require sslcert=" + Cert(name + ".pem") +
           " sslkey=" + Cert(name + ".key");
  };
  std::string out;
  ASSERT_EQ(Psql(d.port(0), with("app-client"), &out), 0) << out;
  EXPECT_NE(Psql(d.port(0), with("intruder-client"), &out), 0);
  EXPECT_NE(out.find("dbward: listener certs: the client certificate (CN=intruder, SPKI=sha256//"), std::string::npos)
      << out;
  EXPECT_NE(out.find("is valid but not in client_tls.allow"), std::string::npos) << out;
  EXPECT_NE(Psql(d.port(0), "user=md5_user password=md5_pw sslmode=require", &out), 0);
  EXPECT_NE(out.find("policy[2] (others) requires validated, this connection is tls (not yet proven to validate "
                     "certificates)"),
            std::string::npos)
      << out;
  EXPECT_NE(Psql(d.port(0), with("rogue-client"), &out), 0);
  EXPECT_NE(out.find("unknown ca"), std::string::npos) << out;
  EXPECT_NE(Psql(d.port(1), "user=md5_user password=md5_pw sslmode=require", &out), 0);
  EXPECT_NE(out.find("dbward: listener required requires a client certificate (client_tls.verify: required) and the "
                     "client sent none"),
            std::string::npos)
      << out;
  ASSERT_EQ(Psql(d.port(1), with("intruder-client"), &out), 0) << out << " (no allow-list there)";
  // Not using TLS at all does not get around the requirement.
  EXPECT_NE(Psql(d.port(1), "user=md5_user password=md5_pw sslmode=disable", &out), 0);
  EXPECT_NE(out.find("requires a client certificate (client_tls.verify: required), which needs TLS, and this client "
                     "did not use TLS"),
            std::string::npos)
      << out;

  auto ev = d.WaitAuditEvents(7);
  ASSERT_EQ(ev.size(), 7u) << d.Log();
  std::map<std::string, JsonFields> by_outcome;
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_identity"], "spiffe://dbward.test/ns/reports/sa/reader");
  EXPECT_EQ(ev[0]["policy_rule"], "policy[1] (reports)");
  EXPECT_EQ(ev[0]["policy_action"], "allow");
  EXPECT_EQ(ev[1]["cause"], "client_cert_not_allowed");
  EXPECT_EQ(ev[1]["client_identity"], "intruder");
  EXPECT_EQ(ev[2]["cause"], "policy_denied");
  EXPECT_EQ(ev[2]["client_identity"], "null");
  EXPECT_EQ(ev[3]["outcome"], "client_tls_failed");
  EXPECT_EQ(ev[3]["cause"], "client_cert_rejected");
  EXPECT_NE(ev[3]["error"].find("did not verify against client_tls.ca_file"), std::string::npos) << ev[3]["error"];
  EXPECT_EQ(ev[4]["cause"], "client_cert_missing");
  EXPECT_EQ(ev[5]["outcome"], "ok") << ev[5]["error"];
  EXPECT_EQ(ev[5]["client_identity"], "intruder");
  EXPECT_EQ(ev[6]["cause"], "client_cert_missing");
  EXPECT_EQ(ev[6]["client_encryption"], "none");
}

// client_tls.allow by CN, by DNS SAN and by SPKI pin, each on a listener of
// its own: an allowed certificate gets in, another from the same CA does not.
TEST_F(PolicyPgTest, ClientCertificateAllowListsByCnDnsAndSpki) {
  std::string pin;
  ASSERT_EQ(RunCommand({"sh", "-c",
                        "openssl x509 -in '" + Cert("intruder-client.pem") +
                            "' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | "
                            "base64"},
                       &pin),
            0)
      << pin;
  pin = Trim(pin);
  auto allow = [&](const std::string& list) {
    return "      ca_file: " + Cert("client-ca.pem") + "\n      verify: required\n      allow:\n        " + list + "\n";
  };
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("bycn", "postgres", port_, allow("cn: [\"report-*\"]")) +
                                 Listener("bydns", "postgres", port_, allow("dns: [\"*.apps.test\"]")) +
                                 Listener("byspki", "postgres", port_, allow("spki: [\"sha256//" + pin + "\"]"))),
                      3))
      << d.Log();
  auto with = [&](const std::string& name) {
    return "user=md5_user password=md5_pw sslmode=require sslcert=" + Cert(name + ".pem") +
           " sslkey=" + Cert(name + ".key");
  };
  std::string out;
  for (size_t l : {0u, 1u}) {
    EXPECT_EQ(Psql(d.port(l), with("app-client"), &out), 0) << l << ": " << out;
    EXPECT_NE(Psql(d.port(l), with("intruder-client"), &out), 0) << l;
    EXPECT_NE(out.find("is valid but not in client_tls.allow"), std::string::npos) << out;
  }
  EXPECT_EQ(Psql(d.port(2), with("intruder-client"), &out), 0) << out;
  EXPECT_NE(Psql(d.port(2), with("app-client"), &out), 0);
  EXPECT_NE(out.find("is valid but not in client_tls.allow"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(6);
  ASSERT_EQ(ev.size(), 6u) << d.Log();
  std::map<std::string, std::vector<JsonFields>> by;
  for (auto& e : ev) by[e["listener"]].push_back(e);
  for (const char* l : {"bycn", "bydns"}) {
    ASSERT_EQ(by[l].size(), 2u) << l;
    EXPECT_EQ(by[l][0]["outcome"], "ok") << l << by[l][0]["error"];
    EXPECT_EQ(by[l][0]["client_identity"], "spiffe://dbward.test/ns/reports/sa/reader");
    EXPECT_EQ(by[l][1]["cause"], "client_cert_not_allowed") << l;
  }
  ASSERT_EQ(by["byspki"].size(), 2u);
  EXPECT_EQ(by["byspki"][0]["outcome"], "ok") << by["byspki"][0]["error"];
  EXPECT_EQ(by["byspki"][0]["client_identity"], "intruder");
  EXPECT_EQ(by["byspki"][1]["cause"], "client_cert_not_allowed");
}

TEST_F(PolicyPgTest, PinMismatchFailsClosedWithThePinInTheError) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("wrongpin", "postgres", port_, "", true,
                                      "      pin_spki: [\"sha256//" + Pin("wrongname.spki") + "\"]\n") +
                                 Listener("rightpin", "postgres", port_, "", true,
                                          "      pin_spki: [" + Pin("wrongname.spki") + ", " + Pin("server.spki") +
                                              "]\n")),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Psql(d.port(0), "user=md5_user password=md5_pw sslmode=disable", &out), 0);
  EXPECT_NE(out.find("its SPKI is sha256//" + Pin("server.spki") + ", backend_tls.pin_spki allows [sha256//" +
                     Pin("wrongname.spki") + "]"),
            std::string::npos)
      << out;
  ASSERT_EQ(Psql(d.port(1), "user=md5_user password=md5_pw sslmode=disable", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "wrongpin" ? ev[0] : ev[1];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "pin_mismatch");
  EXPECT_EQ(bad["backend_verified"], "false");
}

TEST_F(PolicyPgTest, HaproxyInFrontSendsProxyV2AndTheAuditHasTheOriginalClient) {
  // HAProxy connects to dbward from 127.0.0.3, the only trusted balancer;
  // psql connects to HAProxy from 127.0.0.1. The policy matches by address:
  // the balancer's address would be denied, the client's is allowed.
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_,
                                      "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"
                                      "    policy:\n"
                                      "      - name: balancer\n"
                                      "        match: {clients: [127.0.0.3/32]}\n"
                                      "        require: tls\n"
                                      "      - name: clients\n"
                                      "        match: {clients: [127.0.0.1/32]}\n"
                                      "        require: plaintext\n"))))
      << d.Log();
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.Start(d.port(), "", "send-proxy-v2 source 127.0.0.3")) << haproxy.Log();
  std::string out;
  ASSERT_EQ(Psql(haproxy.port(), "user=md5_user password=md5_pw sslmode=disable", &out), 0) << out << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u) << ev[0]["client"];
  EXPECT_EQ(ev[0]["via"].rfind("127.0.0.3:", 0), 0u) << ev[0]["via"];
  EXPECT_EQ(ev[0]["policy_rule"], "policy[2] (clients)");
  // The client port is the one HAProxy saw psql connect from.
  std::string line = haproxy.WaitLine("seen " + ev[0]["client"] + " ");
  EXPECT_FALSE(line.empty()) << haproxy.Log();

  // A PROXY header from an untrusted address is refused, not believed.
  namespace ph = protocol::proxy_header;
  ph::Outgoing forged;
  forged.src_addr = {10, 9, 9, 9};
  forged.dst_addr = {127, 0, 0, 1};
  forged.src_port = 1;
  forged.dst_port = d.port();
  std::vector<uint8_t> header = ph::EncodeV2(forged);
  int fd = ConnectFrom("127.0.0.1", d.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, header.data(), header.size()));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  // The trusted balancer must send one: plain bytes from it are refused.
  fd = ConnectFrom("127.0.0.3", d.port());
  ASSERT_GE(fd, 0);
  const uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
  ASSERT_TRUE(SendAll(fd, ssl_request, sizeof ssl_request));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[1]["outcome"], "refused");
  EXPECT_EQ(ev[1]["cause"], "proxy_untrusted");
  EXPECT_EQ(ev[1]["client"].rfind("127.0.0.1:", 0), 0u) << "the forged address is not taken";
  EXPECT_EQ(ev[2]["outcome"], "client_error");
  EXPECT_EQ(ev[2]["cause"], "proxy_header");
  EXPECT_NE(ev[2]["error"].find("does not begin with a PROXY protocol header"), std::string::npos) << ev[2]["error"];
}

// Behind a balancer the canary's memory is keyed on the original client,
// not on the balancer: two HAProxies on the same address (127.0.0.3), one
// passing psql's own address, one saying the client is 10.1.1.1.
TEST_F(PolicyPgTest, BehindABalancerTheCanaryRemembersTheOriginalClient) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_,
                                      "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"
                                      "    canary: {sample: 1.0}\n"))))
      << d.Log();
  Haproxy direct, relabelled;
  ASSERT_TRUE(direct.Start(d.port(), "", "send-proxy-v2 source 127.0.0.3")) << direct.Log();
  ASSERT_TRUE(relabelled.Start(d.port(), "", "send-proxy-v2 source 127.0.0.3",
                               "  tcp-request connection set-src ipv4(10.1.1.1)\n"))
      << relabelled.Log();
  const std::string verify_full = "user=md5_user password=md5_pw sslmode=verify-full sslrootcert=" + Cert("ca.pem");
  std::string out;
  EXPECT_NE(Psql(direct.port(), verify_full, &out, "localhost"), 0) << "refuses the canary";
  ASSERT_EQ(Psql(direct.port(), verify_full, &out, "localhost"), 0) << out;
  // Same balancer address, another client: tested, not remembered.
  EXPECT_NE(Psql(relabelled.port(), verify_full, &out, "localhost"), 0) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u) << ev[0]["client"];
  EXPECT_EQ(ev[0]["outcome"], "canary_rejected");
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
  EXPECT_EQ(ev[1]["canary"], "remembered");
  EXPECT_EQ(ev[2]["client"].rfind("10.1.1.1:", 0), 0u) << ev[2]["client"];
  EXPECT_EQ(ev[2]["via"].rfind("127.0.0.3:", 0), 0u) << ev[2]["via"];
  EXPECT_EQ(ev[2]["outcome"], "canary_rejected") << "a new client behind the same balancer is tested";
}

TEST_F(PolicyPgTest, HaproxyProxyV1AlsoCarriesTheOriginalClient) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_, "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"))))
      << d.Log();
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.Start(d.port(), "", "send-proxy source 127.0.0.3")) << haproxy.Log();
  std::string out;
  ASSERT_EQ(Psql(haproxy.port(), "user=md5_user password=md5_pw sslmode=disable", &out), 0) << out << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u) << ev[0]["client"];
  EXPECT_EQ(ev[0]["via"].rfind("127.0.0.3:", 0), 0u) << ev[0]["via"];
  EXPECT_FALSE(haproxy.WaitLine("seen " + ev[0]["client"] + " ").empty()) << haproxy.Log();
}

TEST_F(PolicyPgTest, BackendProxyProtocolV2ReachesHaproxyWithTheClientAndTlvs) {
  // dbward -> HAProxy (accept-proxy) -> PostgreSQL: the TLS to PostgreSQL
  // passes through HAProxy and is still verified by dbward.
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.Start(port_, "accept-proxy", "")) << haproxy.Log();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", haproxy.port(), "    backend_proxy_protocol: v2\n"))))
      << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d.port(), "user=md5_user password=md5_pw sslmode=require", &out, "localhost"), 0) << out << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["backend_verified"], "true");
  std::string line = haproxy.WaitLine("uid=pg/" + ev[0]["session_id"]);
  EXPECT_EQ(line, "seen " + ev[0]["client"] + " uid=pg/" + ev[0]["session_id"] + " authority=localhost")
      << haproxy.Log();
}

TEST_F(PolicyPgTest, ClientCaAndCrlReloadWhenTheirFilesChange) {
  DbwardProcess d;
  std::string client_ca = d.dir().Write("clients.pem", ReadFileText(Cert("client-ca.pem")));
  std::string crl = d.dir().Write("backend.crl", ReadFileText(Cert("ca-clean.crl")));
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_,
                                      "      ca_file: " + client_ca + "\n      verify: required\n", true,
                                      "      crl_file: " + crl + "\n"))))
      << d.Log();
  auto with = [&](const std::string& name) {
    return "user=md5_user password=md5_pw sslmode=require sslcert=" + Cert(name + ".pem") +
           " sslkey=" + Cert(name + ".key");
  };
  std::string out;
  ASSERT_EQ(Psql(d.port(), with("app-client"), &out), 0) << out;
  EXPECT_NE(Psql(d.port(), with("rogue-client"), &out), 0);
  // Trust the other CA for clients instead (renamed into place, as a
  // Kubernetes Secret update does).
  std::string next = d.dir().Write("clients.pem.new", ReadFileText(Cert("other-ca.pem")));
  ASSERT_EQ(rename(next.c_str(), client_ca.c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material")) << d.Log();
  ASSERT_EQ(Psql(d.port(), with("rogue-client"), &out), 0) << out;
  EXPECT_NE(Psql(d.port(), with("app-client"), &out), 0);
  // A CRL that turns stale is taken too, and then every backend handshake
  // fails closed.
  next = d.dir().Write("backend.crl.new", ReadFileText(Cert("ca-stale.crl")));
  ASSERT_EQ(rename(next.c_str(), crl.c_str()), 0);
  for (int i = 0; i < 100 && d.Log().find("reloaded TLS material") == d.Log().rfind("reloaded TLS material"); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(Psql(d.port(), with("rogue-client"), &out), 0);
  EXPECT_NE(out.find("could not be checked for revocation: CRL has expired"), std::string::npos) << out;
}

TEST_F(PolicyPgTest, RevokedBackendCertificateIsRefusedAndTheClientIsTold) {
  // A stand-in PostgreSQL (SSLRequest, then TLS) with the revoked
  // certificate, and the real server with a good one; the same CRL for both.
  TlsBackend::Options o;
  o.cert = Cert("revoked.pem");
  o.key = Cert("revoked.key");
  o.pg_ssl_request = true;
  TlsBackend revoked(o);
  std::string error;
  ASSERT_TRUE(revoked.Start(&error)) << error;
  const std::string crl = "      crl_file: " + Cert("ca.crl") + "\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("revoked", "postgres", revoked.port(), "", true, crl) +
                                 Listener("good", "postgres", port_, "", true, crl)),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Psql(d.port(0), "user=md5_user password=md5_pw sslmode=disable", &out), 0);
  EXPECT_NE(out.find("has been revoked"), std::string::npos) << out;
  EXPECT_EQ(revoked.bytes_received(), 0u) << "no StartupMessage reaches a revoked server";
  ASSERT_EQ(Psql(d.port(1), "user=md5_user password=md5_pw sslmode=disable", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "revoked" ? ev[0] : ev[1];
  JsonFields& ok = ev[0]["listener"] == "revoked" ? ev[1] : ev[0];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "revoked");
  EXPECT_EQ(bad["backend_verified"], "false");
  EXPECT_NE(bad["error"].find("it is on the CRL in " + Cert("ca.crl")), std::string::npos) << bad["error"];
  EXPECT_EQ(ok["outcome"], "ok") << ok["error"];
}

TEST_F(PolicyPgTest, ReportPolicyPreviewsEnforcementOnARealAuditFile) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("pg", "postgres", port_, "")))) << d.Log();
  std::string out;
  ASSERT_EQ(Psql(d.port(), "user=md5_user password=md5_pw sslmode=disable application_name=cron-export", &out), 0)
      << out;
  ASSERT_EQ(Psql(d.port(), "user=md5_user password=md5_pw sslmode=require application_name=web", &out), 0) << out;
  ASSERT_EQ(d.WaitAuditEvents(2).size(), 2u) << d.Log();
  std::string policy_yaml = Config(Listener("pg", "postgres", port_,
                                            "    policy:\n"
                                            "      - name: tls-only\n"
                                            "        match: {}\n"
                                            "        require: tls\n"));
  std::string audit = d.dir().path() + "/audit.jsonl";
  policy_yaml.replace(policy_yaml.find("${AUDIT}"), 8, audit);
  TempDir dir;
  std::string policy = dir.Write("policy.yaml", policy_yaml);
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy, "--format", "json"}, &out), 0) << out;
  size_t cron = out.find("\"application\":\"cron-export\"");
  ASSERT_NE(cron, std::string::npos) << out;
  std::string cron_row = out.substr(cron, out.find('\n', cron) - cron);
  EXPECT_NE(cron_row.find("\"policy_rules\":[\"policy[1] (tls-only)\"],\"would_deny\":1,\"would_warn\":0"),
            std::string::npos)
      << out;
  size_t web = out.find("\"application\":\"web\"");
  ASSERT_NE(web, std::string::npos) << out;
  std::string web_row = out.substr(web, out.find('\n', web) - web);
  EXPECT_NE(web_row.find("\"would_deny\":0,\"would_warn\":0"), std::string::npos) << web_row;
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy}, &out), 0) << out;
  EXPECT_NE(out.find("1 clients would be denied (1 sessions), 0 warned (0 sessions), of 2 sessions judged"),
            std::string::npos)
      << out;
}

// --- PROXY protocol on a tcp listener (dbward never reads that protocol) --

class ProxyProtocolTcpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    ASSERT_TRUE(server_.Start({"-cert", Cert("server.pem"), "-key", Cert("server.key"), "-rev", "-quiet"}));
    ASSERT_TRUE(d_.Start(Config(Listener("raw", "tcp", server_.port(),
                                         "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"
                                         "    timeouts: {handshake: 500ms}\n",
                                         false))))
        << d_.Log();
  }
  static std::vector<uint8_t> Header(std::vector<uint8_t> src) {
    namespace ph = protocol::proxy_header;
    ph::Outgoing o;
    o.src_addr = std::move(src);
    o.dst_addr = {127, 0, 0, 1};
    o.src_port = 40000;
    o.dst_port = 5000;
    return ph::EncodeV2(o);
  }
  OpensslServer server_;
  DbwardProcess d_;
};

TEST_F(ProxyProtocolTcpTest, TrustedBalancerHeaderIsTakenAndTheStreamRelayed) {
  int fd = ConnectFrom("127.0.0.3", d_.port());
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> bytes = Header({10, 1, 2, 3});
  const std::string line = "hello\n";
  bytes.insert(bytes.end(), line.begin(), line.end());
  ASSERT_TRUE(SendAll(fd, bytes.data(), bytes.size()));
  std::string got;
  RecvAll(fd, &got, 6, 5000);
  EXPECT_EQ(got, "olleh\n");
  close(fd);
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d_.Log();
  EXPECT_EQ(ev[0]["client"], "10.1.2.3:40000");
  EXPECT_EQ(ev[0]["via"].rfind("127.0.0.3:", 0), 0u) << ev[0]["via"];
  EXPECT_EQ(ev[0]["bytes_up"], "6") << "the header is not payload";
}

TEST_F(ProxyProtocolTcpTest, UntrustedHeaderIsRefusedBeforeAnyByteReachesTheBackend) {
  int fd = ConnectFrom("127.0.0.1", d_.port());
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> bytes = Header({10, 9, 9, 9});
  // (A header split across reads is held by the relay: RelayUnitTest.)
  ASSERT_TRUE(SendAll(fd, bytes.data(), bytes.size()));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d_.Log();
  EXPECT_EQ(ev[0]["outcome"], "refused");
  EXPECT_EQ(ev[0]["cause"], "proxy_untrusted");
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(ev[0]["bytes_up"], "0");
}

TEST_F(ProxyProtocolTcpTest, SecondHeaderBehindTheBalancersIsRefused) {
  int fd = ConnectFrom("127.0.0.3", d_.port());
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> bytes = Header({10, 1, 2, 3});
  std::vector<uint8_t> forged = Header({10, 6, 6, 6});
  bytes.insert(bytes.end(), forged.begin(), forged.end());
  ASSERT_TRUE(SendAll(fd, bytes.data(), bytes.size()));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d_.Log();
  EXPECT_EQ(ev[0]["cause"], "proxy_untrusted");
  EXPECT_EQ(ev[0]["client"], "10.1.2.3:40000");
  EXPECT_NE(ev[0]["error"].find("a second PROXY protocol header, from the client 10.1.2.3:40000 behind balancer "
                                "127.0.0.3:"),
            std::string::npos)
      << ev[0]["error"];
}

TEST_F(ProxyProtocolTcpTest, SilentTrustedBalancerTimesOutWithTheReason) {
  int fd = ConnectFrom("127.0.0.3", d_.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  auto ev = d_.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d_.Log();
  EXPECT_EQ(ev[0]["outcome"], "timeout");
  EXPECT_EQ(ev[0]["cause"], "proxy_header");
  EXPECT_NE(ev[0]["error"].find("sent no complete PROXY protocol header within 500 ms"), std::string::npos)
      << ev[0]["error"];
}

// --- MySQL: the mariadb client against the shared MariaDB -----------------

class PolicyMysqlTest : public ScriptedServerSuite<MariadbScript> {
 protected:
  int Cli(uint16_t port, const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {"timeout", "30", "mariadb", "--no-defaults", "-h", "127.0.0.1",
                                     "-P", std::to_string(port), "--batch", "--skip-column-names"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"-e", "SELECT 1"});
    return RunCommand(argv, out);
  }
};

TEST_F(PolicyMysqlTest, WarnAndDenyRulesWithTheErrorTheClientPrints) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("my", "mysql", port_,
                                      "    policy:\n"
                                      "      - name: native\n"
                                      "        match: {users: [native_user]}\n"
                                      "        require: tls\n"
                                      "        action: warn\n"
                                      "      - match: {}\n"
                                      "        require: tls\n"))))
      << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0) << out;
  EXPECT_NE(Cli(d.port(), {"-u", "ed_user", "-ped_pw", "--skip-ssl", "app"}, &out), 0);
  EXPECT_NE(out.find("ERROR 3159 (HY000): dbward: listener my: policy[2] requires tls, this connection is plaintext; "
                     "connect with ssl-mode=REQUIRED or stronger (MariaDB client: --ssl)"),
            std::string::npos)
      << out;
  ASSERT_EQ(Cli(d.port(), {"-u", "ed_user", "-ped_pw", "--ssl", "app"}, &out), 0) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[0]["policy_action"], "warn");
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[1]["policy_action"], "deny");
  EXPECT_EQ(ev[1]["cause"], "policy_denied");
  EXPECT_EQ(ev[2]["policy_action"], "allow");
}

TEST_F(PolicyMysqlTest, DateSwitchedRulesWarnBeforeAndDenyAfter) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("my", "mysql", port_,
                                      "    policy:\n"
                                      "      - name: past\n"
                                      "        match: {users: [native_user]}\n"
                                      "        require: tls\n"
                                      "        from: 2020-01-15\n"
                                      "      - name: future\n"
                                      "        match: {}\n"
                                      "        require: tls\n"
                                      "        from: 2999-01-15\n"))))
      << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0);
  EXPECT_NE(out.find("ERROR 3159 (HY000): dbward: listener my: policy[1] (past) requires tls, this connection is "
                     "plaintext"),
            std::string::npos)
      << out;
  ASSERT_EQ(Cli(d.port(), {"-u", "ed_user", "-ped_pw", "--skip-ssl", "app"}, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  EXPECT_EQ(ev[0]["policy_action"], "deny");
  EXPECT_EQ(ev[0]["cause"], "policy_denied");
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
  EXPECT_EQ(ev[1]["policy_rule"], "policy[2] (future)");
  EXPECT_EQ(ev[1]["policy_action"], "warn");
  EXPECT_TRUE(d.WaitLog("policy[2] (future) requires tls, this connection is plaintext (denied from 2999-01-15)"))
      << d.Log();
}

// One listener per client kind: canary memory is per listener and address.
TEST_F(PolicyMysqlTest, ValidatedRuleLetsACanaryRefusingClientInAndKeepsAnUnverifyingTlsClientOut) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("strict", "mysql", port_, kProvenRule) + Listener("lax", "mysql", port_, kProvenRule)), 2))
      << d.Log();
  const std::vector<std::string> verify = {"-u", "native_user", "-pnative_pw", "--ssl", "--ssl-ca=" + Cert("ca.pem"),
                                           "--ssl-verify-server-cert", "app"};
  std::string out;
  EXPECT_NE(Cli(d.port(0), verify, &out), 0);  // refuses the canary
  ASSERT_EQ(Cli(d.port(0), verify, &out), 0) << out;
  for (int i = 0; i < 2; i++) {
    EXPECT_NE(Cli(d.port(1), {"-u", "native_user", "-pnative_pw", "--ssl", "app"}, &out), 0);
    EXPECT_NE(out.find(kLaxRefusal),
              std::string::npos)
        << out;
  }
  std::vector<JsonFields> lax;
  ExpectValidatedRuleAudit(d, &lax);
}

TEST_F(PolicyMysqlTest, ClientCertificatesIdentifyAndGateClients) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("my", "mysql", port_,
                                      "      ca_file: " + Cert("client-ca.pem") + "\n" +
                                          "      verify: optional\n"
                                          "      allow:\n"
                                          "        uri: [\"spiffe://dbward.test/ns/reports/*\"]\n"
                                          "    policy:\n"
                                          "      - name: reports\n"
                                          "        match: {identities: [\"spiffe://dbward.test/ns/reports/*\"]}\n"
                                          "        require: validated\n"
                                          "      - name: others\n"
                                          "        match: {}\n"
                                          "        require: validated\n"))))
      << d.Log();
  auto with = [&](const std::string& name) {
    return std::vector<std::string>{"-u", "native_user", "-pnative_pw", "--ssl", "--ssl-cert=" + Cert(name + ".pem"),
                                    "--ssl-key=" + Cert(name + ".key"), "app"};
  };
  std::string out;
  ASSERT_EQ(Cli(d.port(), with("app-client"), &out), 0) << out;
  EXPECT_NE(Cli(d.port(), with("intruder-client"), &out), 0);
  EXPECT_NE(out.find("is valid but not in client_tls.allow"), std::string::npos) << out;
  EXPECT_NE(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--ssl", "app"}, &out), 0);
  EXPECT_NE(out.find("policy[2] (others) requires validated, this connection is tls (not yet proven to validate "
                     "certificates)"),
            std::string::npos)
      << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_identity"], "spiffe://dbward.test/ns/reports/sa/reader");
  EXPECT_EQ(ev[0]["policy_rule"], "policy[1] (reports)");
  EXPECT_EQ(ev[0]["policy_action"], "allow");
  EXPECT_EQ(ev[1]["cause"], "client_cert_not_allowed");
  EXPECT_EQ(ev[1]["client_identity"], "intruder");
  EXPECT_EQ(ev[2]["cause"], "policy_denied");
}

TEST_F(PolicyMysqlTest, PinMismatchFailsClosedWithThePinInTheError) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("wrongpin", "mysql", port_, "", true,
                                      "      pin_spki: [\"sha256//" + Pin("wrongname.spki") + "\"]\n") +
                                 Listener("rightpin", "mysql", port_, "", true,
                                          "      pin_spki: [" + Pin("wrongname.spki") + ", " + Pin("server.spki") +
                                              "]\n")),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(0), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0);
  EXPECT_NE(out.find("its SPKI is sha256//" + Pin("server.spki") + ", backend_tls.pin_spki allows [sha256//" +
                     Pin("wrongname.spki") + "]"),
            std::string::npos)
      << out;
  ASSERT_EQ(Cli(d.port(1), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "wrongpin" ? ev[0] : ev[1];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "pin_mismatch");
  EXPECT_EQ(bad["backend_verified"], "false");
}

TEST_F(PolicyMysqlTest, RevokedBackendCertificateIsRefusedAndTheClientIsTold) {
  // A MySQL 8 stand-in with the revoked certificate; the real MariaDB with
  // a good one; the same CRL for both.
  Mysql8Backend::Options o;
  o.cert = Cert("revoked.pem");
  o.key = Cert("revoked.key");
  Mysql8Backend revoked(o);
  std::string error;
  ASSERT_TRUE(revoked.Start(&error)) << error;
  const std::string crl = "      crl_file: " + Cert("ca.crl") + "\n";
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("revoked", "mysql", revoked.port(), "", true, crl) +
                                 Listener("good", "mysql", port_, "", true, crl)),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Cli(d.port(0), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0);
  EXPECT_NE(out.find("has been revoked"), std::string::npos) << out;
  ASSERT_EQ(Cli(d.port(1), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "revoked" ? ev[0] : ev[1];
  JsonFields& ok = ev[0]["listener"] == "revoked" ? ev[1] : ev[0];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "revoked");
  EXPECT_EQ(ok["outcome"], "ok") << ok["error"];
}

// MySQL's server speaks first: dbward reads the balancer's header, then
// sends the greeting.
TEST_F(PolicyMysqlTest, HaproxyInFrontSendsProxyV2AndTheAuditHasTheOriginalClient) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("my", "mysql", port_,
                                      "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"
                                      "    policy:\n"
                                      "      - name: balancer\n"
                                      "        match: {clients: [127.0.0.3/32]}\n"
                                      "        require: tls\n"
                                      "      - name: clients\n"
                                      "        match: {clients: [127.0.0.1/32]}\n"
                                      "        require: plaintext\n"))))
      << d.Log();
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.Start(d.port(), "", "send-proxy-v2 source 127.0.0.3")) << haproxy.Log();
  std::string out;
  ASSERT_EQ(Cli(haproxy.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0)
      << out << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u) << ev[0]["client"];
  EXPECT_EQ(ev[0]["via"].rfind("127.0.0.3:", 0), 0u) << ev[0]["via"];
  EXPECT_EQ(ev[0]["policy_rule"], "policy[2] (clients)");
  EXPECT_FALSE(haproxy.WaitLine("seen " + ev[0]["client"] + " ").empty()) << haproxy.Log();
}

TEST_F(PolicyMysqlTest, ReportPolicyPreviewsEnforcementOnARealAuditFile) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("my", "mysql", port_, "")))) << d.Log();
  std::string out;
  ASSERT_EQ(Cli(d.port(), {"-u", "native_user", "-pnative_pw", "--skip-ssl", "app"}, &out), 0) << out;
  ASSERT_EQ(Cli(d.port(), {"-u", "ed_user", "-ped_pw", "--ssl", "app"}, &out), 0) << out;
  ASSERT_EQ(d.WaitAuditEvents(2).size(), 2u) << d.Log();
  std::string policy_yaml = Config(Listener("my", "mysql", port_,
                                            "    policy:\n"
                                            "      - name: tls-only\n"
                                            "        match: {}\n"
                                            "        require: tls\n"));
  std::string audit = d.dir().path() + "/audit.jsonl";
  policy_yaml.replace(policy_yaml.find("${AUDIT}"), 8, audit);
  TempDir dir;
  std::string policy = dir.Write("policy.yaml", policy_yaml);
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy}, &out), 0) << out;
  EXPECT_NE(out.find("1 clients would be denied (1 sessions), 0 warned (0 sessions), of 2 sessions judged"),
            std::string::npos)
      << out;
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy, "--format", "json"}, &out), 0) << out;
  EXPECT_NE(out.find("\"policy_rules\":[\"policy[1] (tls-only)\"],\"would_deny\":1,\"would_warn\":0"),
            std::string::npos)
      << out;
}

// --- TDS: real clients against the TDS fixture ----------------------------

class PolicyTdsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(CertDir().empty()) << kNoCerts; }
  std::unique_ptr<TdsServer> Fixture(const std::string& cert = "server") {
    TdsServer::Options o;
    o.cert = Cert(cert + ".pem");
    o.key = Cert(cert + ".key");
    auto s = std::make_unique<TdsServer>(o);
    std::string error;
    EXPECT_TRUE(s->Start(&error)) << error;
    return s;
  }
  int Tsql(uint16_t port, const std::string& encryption, std::string* out) {
    std::string conf = dir_.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                      std::to_string(port) + "\n\ttds version = 7.4\n\tencryption = " +
                                                      encryption + "\n");
    std::string input = dir_.Write("input.sql", "SELECT 1\ngo\n");
    return RunCommand({"sh", "-c",
                       "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P sa_pw < '" + input + "'"},
                      out);
  }
  int Jtds(uint16_t port, const std::string& props, std::string* out) {
    EXPECT_FALSE(std::string(DBWARD_JAVA_CLASSES).empty()) << "no javac at configure time";
    return RunCommand({"timeout", "60", "java", "-cp", std::string(DBWARD_JTDS_JAR) + ":" + DBWARD_JAVA_CLASSES,
                       "JtdsClient", "jdbc:jtds:sqlserver://127.0.0.1:" + std::to_string(port) + ";" + props,
                       "sa_user", "sa_pw", "SELECT 1"},
                      out);
  }
  std::string Tedious(uint16_t port, const std::string& extra_json) {
    std::string opts = "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\"," +
                       "\"port\":" + std::to_string(port) +
                       ",\"user\":\"sa_user\",\"password\":\"sa_pw\",\"appName\":\"orders-app\",\"database\":"
                       "\"appdb\",\"queries\":[\"SELECT 1\"]" + extra_json + "}";
    std::string out;
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js", opts}, &out);
    return out;
  }
  TempDir dir_;
};

TEST_F(PolicyTdsTest, RulesByLibraryWarnAndDenyEachClientInItsOwnWords) {
  auto fixture = Fixture();
  DbwardProcess d;
  // jTDS and tedious: at least TLS; everyone else (FreeTDS) only warned.
  ASSERT_TRUE(d.Start(Config(Listener("mssql", "tds", fixture->port(),
                                      "    policy:\n"
                                      "      - name: jtds\n"
                                      "        match: {libraries: [\"jTDS*\"]}\n"
                                      "        require: tls\n"
                                      "      - name: tedious\n"
                                      "        match: {libraries: [\"Tedious*\", \"tedious*\"]}\n"
                                      "        require: tls\n"
                                      "      - name: rest\n"
                                      "        match: {}\n"
                                      "        require: tls\n"
                                      "        action: warn\n"))))
      << d.Log();
  std::string out;
  // jTDS default (ssl=off: LOGIN7 without PRELOGIN) is refused by a login error.
  EXPECT_NE(Jtds(d.port(), "ssl=off", &out), 0);
  EXPECT_NE(out.find("policy[1] (jtds) requires tls, this connection is plaintext; set Encrypt=True (jTDS: "
                     "ssl=require"),
            std::string::npos)
      << out;
  // tedious with encrypt: false goes plaintext (dbward does not offer
  // login-only encryption unless asked to): refused too, in a login error.
  out = Tedious(d.port(), ",\"encrypt\":false");
  EXPECT_NE(out.find("\"error\":\"dbward: listener mssql: policy[2] (tedious) requires tls, this connection is "
                     "plaintext; set Encrypt=True"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"code\":\"ELOGIN\""), std::string::npos) << out;
  // tsql encryption = off is only warned about.
  ASSERT_EQ(Tsql(d.port(), "off", &out), 0) << out;
  // And a TLS client passes its rule.
  out = Tedious(d.port(), ",\"encrypt\":true,\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"");
  EXPECT_NE(out.find("{\"ok\":true"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(4);
  ASSERT_EQ(ev.size(), 4u) << d.Log();
  EXPECT_EQ(ev[0]["cause"], "policy_denied");
  EXPECT_EQ(ev[0]["policy_rule"], "policy[1] (jtds)");
  EXPECT_EQ(ev[0]["client_library"], "jTDS");
  EXPECT_EQ(ev[1]["cause"], "policy_denied");
  EXPECT_EQ(ev[1]["policy_rule"], "policy[2] (tedious)");
  EXPECT_EQ(ev[2]["outcome"], "ok") << ev[2]["error"];
  EXPECT_EQ(ev[2]["policy_rule"], "policy[3] (rest)");
  EXPECT_EQ(ev[2]["policy_action"], "warn");
  EXPECT_EQ(ev[3]["policy_rule"], "policy[2] (tedious)");
  EXPECT_EQ(ev[3]["policy_action"], "allow");
}

TEST_F(PolicyTdsTest, RevokedBackendCertificateIsRefusedAndTheClientIsTold) {
  auto revoked = Fixture("revoked");
  auto good = Fixture("server");
  DbwardProcess d;
  const std::string crl = "      crl_file: " + Cert("ca.crl") + "\n";
  ASSERT_TRUE(d.Start(Config(Listener("revoked", "tds", revoked->port(), "", true, crl) +
                                 Listener("good", "tds", good->port(), "", true, crl)),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Tsql(d.port(0), "off", &out), 0);
  EXPECT_NE(out.find("has been revoked"), std::string::npos) << out;
  EXPECT_EQ(revoked->logins_ok(), 0);
  ASSERT_EQ(Tsql(d.port(1), "off", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "revoked" ? ev[0] : ev[1];
  JsonFields& ok = ev[0]["listener"] == "revoked" ? ev[1] : ev[0];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "revoked");
  EXPECT_NE(bad["error"].find("it is on the CRL in " + Cert("ca.crl")), std::string::npos) << bad["error"];
  EXPECT_EQ(ok["outcome"], "ok") << ok["error"];
}

TEST_F(PolicyTdsTest, DateSwitchedRulesWarnBeforeAndDenyAfter) {
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("mssql", "tds", fixture->port(),
                                      "    policy:\n"
                                      "      - name: past\n"
                                      "        match: {libraries: [\"jTDS*\"]}\n"
                                      "        require: tls\n"
                                      "        from: 2020-01-15\n"
                                      "      - name: future\n"
                                      "        match: {}\n"
                                      "        require: tls\n"
                                      "        from: 2999-01-15\n"))))
      << d.Log();
  std::string out;
  EXPECT_NE(Jtds(d.port(), "ssl=off", &out), 0);
  EXPECT_NE(out.find("policy[1] (past) requires tls, this connection is plaintext"), std::string::npos) << out;
  ASSERT_EQ(Tsql(d.port(), "off", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  EXPECT_EQ(ev[0]["policy_action"], "deny");
  EXPECT_EQ(ev[0]["cause"], "policy_denied");
  EXPECT_EQ(ev[1]["outcome"], "ok") << ev[1]["error"];
  EXPECT_EQ(ev[1]["policy_rule"], "policy[2] (future)");
  EXPECT_EQ(ev[1]["policy_action"], "warn");
  EXPECT_TRUE(d.WaitLog("policy[2] (future) requires tls, this connection is plaintext (denied from 2999-01-15)"))
      << d.Log();
}

TEST_F(PolicyTdsTest, ValidatedRuleLetsACanaryRefusingClientInAndKeepsTrustServerCertificateOut) {
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("strict", "tds", fixture->port(), kProvenRule) +
                                 Listener("lax", "tds", fixture->port(), kProvenRule)),
                      2))
      << d.Log();
  const std::string verify = ",\"encrypt\":true,\"ca\":\"" + Cert("ca.pem") + "\",\"serverName\":\"localhost\"";
  EXPECT_NE(Tedious(d.port(0), verify).find("{\"ok\":false"), std::string::npos);  // refuses the canary
  std::string out = Tedious(d.port(0), verify);
  EXPECT_NE(out.find("{\"ok\":true"), std::string::npos) << out;
  for (int i = 0; i < 2; i++) {
    out = Tedious(d.port(1), ",\"encrypt\":true,\"trustServerCertificate\":true");
    EXPECT_NE(out.find(kLaxRefusal),
              std::string::npos)
        << out;
  }
  std::vector<JsonFields> lax;
  ExpectValidatedRuleAudit(d, &lax);
}

// tedious sends a client certificate when the server asks for one (TLS 1.2
// inside PRELOGIN); FreeTDS and jTDS cannot.
TEST_F(PolicyTdsTest, ClientCertificatesIdentifyAndGateClients) {
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("mssql", "tds", fixture->port(),
                                      "      ca_file: " + Cert("client-ca.pem") + "\n" +
                                          "      verify: optional\n"
                                          "      allow:\n"
                                          "        uri: [\"spiffe://dbward.test/ns/reports/*\"]\n"
                                          "    policy:\n"
                                          "      - name: reports\n"
                                          "        match: {identities: [\"spiffe://dbward.test/ns/reports/*\"]}\n"
                                          "        require: validated\n"
                                          "      - name: others\n"
                                          "        match: {}\n"
                                          "        require: validated\n"))))
      << d.Log();
  auto with = [&](const std::string& name) {
    return ",\"encrypt\":true,\"trustServerCertificate\":true,\"clientCert\":\"" + Cert(name + ".pem") +
           "\",\"clientKey\":\"" + Cert(name + ".key") + "\"";
  };
  std::string out = Tedious(d.port(), with("app-client"));
  EXPECT_NE(out.find("{\"ok\":true"), std::string::npos) << out;
  out = Tedious(d.port(), with("intruder-client"));
  EXPECT_NE(out.find("is valid but not in client_tls.allow"), std::string::npos) << out;
  out = Tedious(d.port(), ",\"encrypt\":true,\"trustServerCertificate\":true");
  EXPECT_NE(out.find("policy[2] (others) requires validated, this connection is tls (not yet proven to validate "
                     "certificates)"),
            std::string::npos)
      << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client_identity"], "spiffe://dbward.test/ns/reports/sa/reader");
  EXPECT_EQ(ev[0]["policy_rule"], "policy[1] (reports)");
  EXPECT_EQ(ev[0]["policy_action"], "allow");
  EXPECT_EQ(ev[1]["cause"], "client_cert_not_allowed");
  EXPECT_EQ(ev[1]["client_identity"], "intruder");
  EXPECT_EQ(ev[2]["cause"], "policy_denied");
}

TEST_F(PolicyTdsTest, PinMismatchFailsClosedWithThePinInTheError) {
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("wrongpin", "tds", fixture->port(), "", true,
                                      "      pin_spki: [\"sha256//" + Pin("wrongname.spki") + "\"]\n") +
                                 Listener("rightpin", "tds", fixture->port(), "", true,
                                          "      pin_spki: [" + Pin("wrongname.spki") + ", " + Pin("server.spki") +
                                              "]\n")),
                      2))
      << d.Log();
  std::string out;
  EXPECT_NE(Tsql(d.port(0), "off", &out), 0);
  EXPECT_NE(out.find("its SPKI is sha256//" + Pin("server.spki") + ", backend_tls.pin_spki allows [sha256//" +
                     Pin("wrongname.spki") + "]"),
            std::string::npos)
      << out;
  EXPECT_EQ(fixture->logins_ok(), 0);
  ASSERT_EQ(Tsql(d.port(1), "off", &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u) << d.Log();
  JsonFields& bad = ev[0]["listener"] == "wrongpin" ? ev[0] : ev[1];
  EXPECT_EQ(bad["outcome"], "backend_tls_failed");
  EXPECT_EQ(bad["cause"], "pin_mismatch");
  EXPECT_EQ(bad["backend_verified"], "false");
}

TEST_F(PolicyTdsTest, HaproxyInFrontSendsProxyV2AndTheAuditHasTheOriginalClient) {
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("mssql", "tds", fixture->port(),
                                      "    proxy_protocol: {trusted: [127.0.0.3/32]}\n"
                                      "    policy:\n"
                                      "      - name: balancer\n"
                                      "        match: {clients: [127.0.0.3/32]}\n"
                                      "        require: tls\n"
                                      "      - name: clients\n"
                                      "        match: {clients: [127.0.0.1/32]}\n"
                                      "        require: plaintext\n"))))
      << d.Log();
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.Start(d.port(), "", "send-proxy-v2 source 127.0.0.3")) << haproxy.Log();
  std::string out;
  ASSERT_EQ(Tsql(haproxy.port(), "off", &out), 0) << out << d.Log();
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u) << d.Log();
  EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
  EXPECT_EQ(ev[0]["client"].rfind("127.0.0.1:", 0), 0u) << ev[0]["client"];
  EXPECT_EQ(ev[0]["via"].rfind("127.0.0.3:", 0), 0u) << ev[0]["via"];
  EXPECT_EQ(ev[0]["policy_rule"], "policy[2] (clients)");
  EXPECT_FALSE(haproxy.WaitLine("seen " + ev[0]["client"] + " ").empty()) << haproxy.Log();
}

// --- report --policy on a real audit file ---------------------------------

TEST_F(PolicyTdsTest, ReportPolicyPreviewsEnforcementOnARealAuditFile) {
  // Run the clients with no policy at all, then ask what a policy would do.
  auto fixture = Fixture();
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(Listener("mssql", "tds", fixture->port(), "")))) << d.Log();
  std::string out;
  ASSERT_EQ(Jtds(d.port(), "ssl=off", &out), 0) << out;
  ASSERT_EQ(Tsql(d.port(), "off", &out), 0) << out;
  ASSERT_EQ(Tsql(d.port(), "require", &out), 0) << out;
  ASSERT_EQ(d.WaitAuditEvents(3).size(), 3u) << d.Log();
  std::string policy_yaml = Config(Listener("mssql", "tds", fixture->port(),
                                                                 "    policy:\n"
                                                                 "      - name: no-plaintext\n"
                                                                 "        match: {}\n"
                                                                 "        require: login-only\n"
                                                                 "        from: 2027-03-01\n"
                                                                 "      - match: {}\n"
                                                                 "        require: tls\n"
                                                                 "        action: warn\n"));
  std::string audit = d.dir().path() + "/audit.jsonl";
  policy_yaml.replace(policy_yaml.find("${AUDIT}"), 8, audit);  // what DbwardProcess does for its own file
  std::string policy = dir_.Write("policy.yaml", policy_yaml);
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy, "--format", "json"}, &out), 0) << out;
  // jTDS ssl=off and tsql encryption = off (both plaintext here) would be
  // denied; tsql with TLS passes the first rule, and is not warned (first
  // match wins).
  EXPECT_NE(out.find("\"client_library\":\"jTDS\""), std::string::npos) << out;
  size_t jtds = out.find("\"client_library\":\"jTDS\"");
  size_t jtds_end = out.find('\n', jtds);
  std::string jtds_row = out.substr(jtds, jtds_end - jtds);
  EXPECT_NE(jtds_row.find("\"policy_rules\":[\"policy[1] (no-plaintext)\"],\"would_deny\":1,\"would_warn\":0"),
            std::string::npos)
      << out;
  size_t tsql = out.find("\"client_library\":\"TDS-Library\"");
  ASSERT_NE(tsql, std::string::npos) << out;
  std::string tsql_row = out.substr(tsql, out.find('\n', tsql) - tsql);
  EXPECT_NE(tsql_row.find("\"client_encryption\":[\"none\",\"tls\"]"), std::string::npos) << tsql_row;
  EXPECT_NE(tsql_row.find("\"sessions\":2,"), std::string::npos) << tsql_row;
  EXPECT_NE(tsql_row.find("\"would_deny\":1,\"would_warn\":0"), std::string::npos) << tsql_row;
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", audit, "--policy", policy}, &out), 0) << out;
  EXPECT_NE(out.find("(every deny rule in force): 2 clients would be denied (2 sessions), 0 warned (0 sessions), of 3 "
                     "sessions judged"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("listener mssql: policy[1] (no-plaintext) warns until 2027-03-01, then denies"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace dbward::testing

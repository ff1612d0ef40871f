// SCRAM mediation end to end: real libpq (psql, pgbench) and node-postgres
// clients with their default settings, through a listener whose client_tls
// is dbward's own certificate (or a canary), to the TLS-only PostgreSQL 15 of
// the test run, whose verifiers dbward reads with auth_query (as dbward_auth,
// through dbward.user_lookup) or from an auth_file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "harness.h"
#include "protocol/scram.h"
#include "tls/scram_keys.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

class PgMediationTest : public ScriptedServerSuite<PostgresScript> {
 protected:
  // What the server itself says, as postgres over its Unix socket.
  std::string Admin(const std::string& sql) {
    std::string out;
    EXPECT_EQ(RunCommand({"psql", "-h", server_->dir(), "-p", std::to_string(port_), "-U", "postgres", "-d", "postgres",
                          "-XAtqc", sql},
                         &out),
              0)
        << sql << ": " << out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  std::string Config(const std::string& scram, const std::string& extra = "",
                     const std::string& client_cert = "proxy") {
    const std::string pass = dir_.Write("auth.pass", "auth_pw\n");
    std::string s = scram;
    for (size_t at; (at = s.find("${PASS}")) != std::string::npos;) s.replace(at, 7, pass);
    return "workers: 2\n"
           "listeners:\n"
           "  - name: pg\n"
           "    protocol: postgres\n"
           "    listen: 127.0.0.1:0\n"
           "    backend: 127.0.0.1:" + std::to_string(port_) + "\n" +
           "    backend_tls:\n"
           "      ca_file: " + Cert("ca.pem") + "\n" +
           "      server_name: localhost\n"
           "    client_tls:\n"
           "      cert_file: " + Cert(client_cert + ".pem") + "\n" +
           "      key_file: " + Cert(client_cert + ".key") + "\n" + s + extra +
           "log:\n  level: debug\n  audit: ${AUDIT}\n";
  }

  static std::string AuthQuery(const std::string& cache = "60s") {
    return "    scram:\n"
           "      verifiers: auth_query\n"
           "      auth_user: dbward_auth\n"
           "      auth_password_file: ${PASS}\n"
           "      cache: " + cache + "\n";
  }

  int Psql(const DbwardProcess& d, const std::string& conninfo, const std::string& sql, std::string* out) {
    return RunCommand({"timeout", "30", "psql",
                       "host=localhost port=" + std::to_string(d.port()) + " dbname=app " + conninfo, "-XAtc", sql},
                      out);
  }

  // No password, key or verifier reaches dbward's log or audit file.
  void ExpectNoSecrets(const DbwardProcess& d, const std::vector<std::string>& secrets) {
    const std::string log = d.Log();
    const std::string audit = ReadFileText(d.dir().path() + "/audit.jsonl");
    for (const std::string& s : secrets) {
      EXPECT_EQ(log.find(s), std::string::npos) << "in the log: " << s;
      EXPECT_EQ(audit.find(s), std::string::npos) << "in the audit: " << s;
    }
  }

  // The stored keys of a role's verifier, as text that must never be logged.
  std::vector<std::string> VerifierParts(const std::string& role) {
    std::string v = Admin("select rolpassword from pg_authid where rolname = '" + role + "'");
    std::vector<std::string> parts;
    size_t dollar = v.rfind('$');
    if (dollar == std::string::npos) return parts;
    std::string keys = v.substr(dollar + 1);
    parts.push_back(keys.substr(0, keys.find(':')));
    parts.push_back(keys.substr(keys.find(':') + 1));
    return parts;
  }

  TempDir dir_;
};

constexpr char kTlsQuery[] = "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()";

// libpq's defaults (channel_binding=prefer), and channel_binding=require,
// through dbward's own certificate: -PLUS on the client leg, bound to
// dbward's certificate; -PLUS to PostgreSQL, bound to its own.
TEST_F(PgMediationTest, LibpqWithChannelBindingThroughDbwardsOwnCertificate) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery()))) << d.Log();
  std::string out;
  for (const std::string& conn : std::vector<std::string>{"sslmode=require", "sslmode=require channel_binding=require",
                                 "sslmode=verify-full sslrootcert=" + Cert("ca.pem"),
                                 "sslmode=verify-full channel_binding=require sslrootcert=" + Cert("ca.pem")}) {
    EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw " + conn, kTlsQuery, &out), 0) << conn << ": " << out;
    EXPECT_EQ(out, "true\n") << conn;
  }
  auto ev = d.WaitAuditEvents(4);
  ASSERT_EQ(ev.size(), 4u);
  for (auto& e : ev) {
    EXPECT_EQ(e["outcome"], "ok");
    EXPECT_EQ(e["client_encryption"], "tls");
    EXPECT_EQ(e["note"], "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
    EXPECT_EQ(e["backend_verified"], "true");
  }
  // channel_binding=disable: plain SCRAM to the client, still -PLUS upstream.
  EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require channel_binding=disable", kTlsQuery, &out), 0)
      << out;
  ev = d.WaitAuditEvents(5);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[4]["note"], "SCRAM mediated: SCRAM-SHA-256 to the client, SCRAM-SHA-256-PLUS to the backend");
  std::vector<std::string> secrets = VerifierParts("scram_user");
  secrets.insert(secrets.end(), {"scram_pw", "auth_pw"});
  ExpectNoSecrets(d, secrets);
}

TEST_F(PgMediationTest, WrongPasswordIsPostgresOwn28P01) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery()))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=nope sslmode=require", "select 1", &out), 0);
  EXPECT_NE(out.find("FATAL:  password authentication failed for user \"scram_user\""), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["outcome"], "auth_failed");
  EXPECT_NE(ev[0]["error"].find("no proof was sent to the backend"), std::string::npos) << ev[0]["error"];
  EXPECT_EQ(ev[0]["backend_verified"], "true");
  // The SQLSTATE itself, as a driver sees it (libpq's message does not show it).
  const std::string opts = "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(d.port()) +
                           ",\"user\":\"scram_user\",\"password\":\"nope\",\"database\":\"app\",\"ssl\":{\"ca\":\"" +
                           Cert("ca.pem") + "\",\"servername\":\"localhost\"}}";
  EXPECT_NE(RunCommand({"timeout", "30", "node", SourceDir() + "/tests/integration/node/pg_client.js", opts}, &out), 0);
  EXPECT_NE(out.find("\"code\":\"28P01\""), std::string::npos) << out;
  EXPECT_NE(out.find("password authentication failed for user \\\"scram_user\\\""), std::string::npos) << out;
  ExpectNoSecrets(d, {"nope", "auth_pw"});
}

TEST_F(PgMediationTest, RepeatedFailuresFromOneAddressAreRateLimited) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery()))) << d.Log();
  std::string out;
  for (int i = 0; i < 5; i++) EXPECT_NE(Psql(d, "user=scram_user password=nope sslmode=require", "select 1", &out), 0);
  // The sixth attempt, even with the right password, waits its turn.
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=require", "select 1", &out), 0);
  EXPECT_NE(out.find("too many failed logins from 127.0.0.1; try again in"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(6);
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_EQ(ev[5]["outcome"], "refused");
  EXPECT_EQ(ev[5]["cause"], "rate_limited");
}

// The canary no longer breaks a libpq SCRAM client: dbward binds the client
// leg to whatever certificate it presented, the canary included.
TEST_F(PgMediationTest, CanariedLibpqClientsLogIn) {
  // Default channel_binding (prefer) and channel_binding=require, each the
  // first client of its own dbward, so each gets the canary.
  for (const std::string binding : {"", " channel_binding=require"}) {
    SCOPED_TRACE(binding);
    DbwardProcess d;
    ASSERT_TRUE(d.Start(Config(AuthQuery(), "    canary:\n      mode: untrusted\n      sample: 1.0\n"))) << d.Log();
    std::string out;
    EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require" + binding, kTlsQuery, &out), 0) << out;
    EXPECT_EQ(out, "true\n");
    auto ev = d.WaitAuditEvents(1);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0]["outcome"], "ok");
    EXPECT_EQ(ev[0]["canary"], "untrusted");
    EXPECT_EQ(ev[0]["validates"], "false");
    EXPECT_EQ(ev[0]["bypass_reason"], "accepted-untrusted-certificate");
    EXPECT_EQ(ev[0]["note"], "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
  }
}

// Without mediation, a client that accepts the canary and then cannot log
// in pays for it once: its address is remembered, its next sessions get the
// real certificate, and the audit carries the verdict.
TEST_F(PgMediationTest, WithoutMediationTheCanaryCostsOneFailedAttempt) {
  DbwardProcess d;
  // The server's own certificate on the client leg lets -PLUS pass through;
  // the canary's does not.
  ASSERT_TRUE(d.Start(Config("", "    canary:\n      mode: untrusted\n      sample: 1.0\n", "server"))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw sslmode=require", kTlsQuery, &out), 0) << out;
  EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require", kTlsQuery, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  JsonFields canaried = EventWhere(ev, "canary", "untrusted");
  EXPECT_EQ(canaried["validates"], "false");
  EXPECT_NE(canaried["outcome"], "ok");
  JsonFields next = EventWhere(ev, "canary", "remembered");
  EXPECT_EQ(next["outcome"], "ok");
  EXPECT_EQ(next["validates"], "false");
  EXPECT_EQ(next["trust_bypass"], "false") << "this session used the real certificate";
}

// libpq's default sslmode=prefer retries in plaintext as soon as a TLS
// login fails. A canaried client without mediation fails once (channel
// binding), and its plaintext retry is refused, not let through: the canary
// must not downgrade it. Its next connection is TLS with the real certificate.
TEST_F(PgMediationTest, WithoutMediationTheCanaryDoesNotDowngradeSslmodePrefer) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config("", "    canary:\n      mode: untrusted\n      sample: 1.0\n", "server"))) << d.Log();
  std::string out;
  EXPECT_NE(Psql(d, "user=scram_user password=scram_pw", kTlsQuery, &out), 0) << out;
  EXPECT_NE(out.find("its plaintext retry (libpq sslmode=prefer does this) is refused"), std::string::npos) << out;
  EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw", kTlsQuery, &out), 0) << out;
  EXPECT_EQ(out, "true\n") << "TLS, not plaintext";
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u) << d.Log();
  // The TLS session may end after its plaintext retry was refused.
  JsonFields canaried = EventWhere(ev, "canary", "untrusted");
  EXPECT_EQ(canaried["validates"], "false");
  EXPECT_EQ(canaried["client_encryption"], "tls");
  EXPECT_NE(canaried["outcome"], "ok");
  JsonFields retry = EventWhere(ev, "client_encryption", "none");
  EXPECT_EQ(retry["outcome"], "refused");
  EXPECT_EQ(retry["cause"], "canary_retry");
  JsonFields next = EventWhere(ev, "canary", "remembered");
  EXPECT_EQ(next["outcome"], "ok") << next["error"];
  EXPECT_EQ(next["client_encryption"], "tls");
}

TEST_F(PgMediationTest, AuthFileVerifiers) {
  const std::string verifier = Admin("select rolpassword from pg_authid where rolname = 'scram_user'");
  ASSERT_EQ(verifier.rfind("SCRAM-SHA-256$", 0), 0u);
  const std::string file = dir_.Write("users.txt", "# dbward users\n\"scram_user\" \"" + verifier + "\"\n");
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config("    scram:\n      verifiers: auth_file\n      auth_file: " + file + "\n"))) << d.Log();
  std::string out;
  EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require channel_binding=require", kTlsQuery, &out), 0)
      << out;
  // md5_user is not in the file: it passes through as without scram.
  EXPECT_EQ(Psql(d, "user=md5_user password=md5_pw sslmode=require", kTlsQuery, &out), 0) << out;
  auto ev = d.WaitAuditEvents(2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["note"], "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
  EXPECT_EQ(ev[1]["outcome"], "ok");
  EXPECT_EQ(ev[1]["note"], "null") << "md5 logins do not reach SASL";
  ExpectNoSecrets(d, VerifierParts("scram_user"));
}

// A password changed while dbward runs, with the old verifier cached: the
// backend's salt gives it away, dbward looks it up again, the new password
// works at once and the old one fails.
TEST_F(PgMediationTest, PasswordChangeWhileRunning) {
  const std::string role = "pwchange_" + std::to_string(getpid());
  Admin("drop role if exists " + role);
  Admin("create role " + role + " login password 'first_pw'");
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery("10m")))) << d.Log();
  std::string out;
  EXPECT_EQ(Psql(d, "user=" + role + " password=first_pw sslmode=require", kTlsQuery, &out), 0) << out;
  Admin("alter role " + role + " password 'second_pw'");
  EXPECT_EQ(Psql(d, "user=" + role + " password=second_pw sslmode=require", kTlsQuery, &out), 0) << out;
  EXPECT_NE(Psql(d, "user=" + role + " password=first_pw sslmode=require", kTlsQuery, &out), 0) << out;
  EXPECT_NE(out.find("password authentication failed"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(3);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_EQ(ev[1]["outcome"], "ok");
  EXPECT_EQ(ev[2]["outcome"], "auth_failed");
  Admin("drop role " + role);
}

// The same with auth_file: until the file has the new verifier, the new
// password is refused (dbward checks it against the file, and the server's
// new salt shows the file is stale); once the file is replaced, dbward
// reloads it and the new password works, the old one no longer.
TEST_F(PgMediationTest, PasswordChangeWhileRunningWithAnAuthFile) {
  const std::string role = "pwfile_" + std::to_string(getpid());
  Admin("drop role if exists " + role);
  Admin("create role " + role + " login password 'first_pw'");
  auto line = [&] {
    return "\"" + role + "\" \"" + Admin("select rolpassword from pg_authid where rolname = '" + role + "'") + "\"\n";
  };
  const std::string file = dir_.Write("users.txt", line());
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config("    scram:\n      verifiers: auth_file\n      auth_file: " + file + "\n"))) << d.Log();
  std::string out;
  EXPECT_EQ(Psql(d, "user=" + role + " password=first_pw sslmode=require", kTlsQuery, &out), 0) << out;
  Admin("alter role " + role + " password 'second_pw'");
  EXPECT_NE(Psql(d, "user=" + role + " password=second_pw sslmode=require", kTlsQuery, &out), 0) << out;
  // Replaced by a rename, as a Secret update does.
  std::string next = dir_.Write("users.txt.new", line());
  ASSERT_EQ(rename(next.c_str(), file.c_str()), 0);
  ASSERT_TRUE(d.WaitLog("reloaded TLS material")) << d.Log();
  EXPECT_EQ(Psql(d, "user=" + role + " password=second_pw sslmode=require", kTlsQuery, &out), 0) << out;
  EXPECT_NE(Psql(d, "user=" + role + " password=first_pw sslmode=require", kTlsQuery, &out), 0) << out;
  EXPECT_NE(out.find("password authentication failed"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(4);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0]["outcome"], "ok");
  EXPECT_NE(ev[1]["outcome"], "ok");
  EXPECT_EQ(ev[2]["outcome"], "ok") << ev[2]["error"];
  EXPECT_EQ(ev[2]["note"], "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
  EXPECT_EQ(ev[3]["outcome"], "auth_failed");
  Admin("drop role " + role);
}

// A scripted PostgreSQL over real TLS, to see the backend leg from the
// server's side: dbward chose SCRAM-SHA-256-PLUS and bound it to this
// server's certificate; a server that cannot sign as the verifier says is
// caught as an impostor, and the client never logs in.
TEST_F(PgMediationTest, AScriptedBackendSeesPlusBoundToItsCertificateAndAnImpostorIsCaught) {
  for (bool fake : {false, true}) {
    SCOPED_TRACE(fake ? "impostor" : "honest");
    TlsBackend::Options o;
    o.mode = TlsBackend::Mode::kPgScram;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    o.scram_password = "scripted_pw";
    o.fake_server_signature = fake;
    TlsBackend backend(o);
    std::string error;
    ASSERT_TRUE(backend.Start(&error)) << error;
    // The verifier dbward holds for the user: the scripted server's salt and
    // count, derived from the same password.
    const std::vector<uint8_t> salt = {'d', 'b', 'w', 'a', 'r', 'd', '-', 's', 'a', 'l', 't', '!'};
    tls::scram::DerivedKeys k = tls::scram::DeriveKeys("scripted_pw", salt, 4096);
    const std::string verifier = "SCRAM-SHA-256$4096:" + protocol::scram::Base64Encode(salt) + "$" +
                                 protocol::scram::Base64Encode(k.stored_key.span()) + ":" +
                                 protocol::scram::Base64Encode(k.server_key.span());
    const std::string file = dir_.Write("scripted-users.txt", "\"scripted\" \"" + verifier + "\"\n");
    std::string config = Config("    scram:\n      verifiers: auth_file\n      auth_file: " + file + "\n");
    config.replace(config.find("127.0.0.1:" + std::to_string(port_)), 10 + std::to_string(port_).size(),
                   "127.0.0.1:" + std::to_string(backend.port()));
    DbwardProcess d;
    ASSERT_TRUE(d.Start(config)) << d.Log();
    std::string out;
    int rc = Psql(d, "user=scripted password=scripted_pw sslmode=require channel_binding=require", "select 1", &out);
    TlsBackend::ScramSeen seen = backend.last_scram();
    EXPECT_EQ(seen.mechanism, "SCRAM-SHA-256-PLUS");
    EXPECT_EQ(seen.gs2_header, "p=tls-server-end-point,,");
    EXPECT_TRUE(seen.binding_matched) << "dbward bound the backend leg to the backend's own certificate";
    EXPECT_TRUE(seen.proof_ok) << "dbward proved the client's ClientKey to the server";
    auto ev = d.WaitAuditEvents(1);
    ASSERT_EQ(ev.size(), 1u) << d.Log();
    if (!fake) {
      EXPECT_EQ(rc, 0) << out;
      EXPECT_EQ(out, "1\n");
      EXPECT_EQ(ev[0]["outcome"], "ok") << ev[0]["error"];
      EXPECT_EQ(ev[0]["note"], "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
    } else {
      EXPECT_NE(rc, 0) << out;
      EXPECT_EQ(ev[0]["cause"], "scram_server_signature") << ev[0]["error"];
      EXPECT_NE(out.find("dbward"), std::string::npos) << out;
    }
    ExpectNoSecrets(d, {"scripted_pw", protocol::scram::Base64Encode(k.stored_key.span()),
                        protocol::scram::Base64Encode(k.server_key.span())});
  }
}

TEST_F(PgMediationTest, NodePostgresAndPgbenchKeepWorking) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery()))) << d.Log();
  std::string out;
  const std::string opts = "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(d.port()) +
                           ",\"user\":\"scram_user\",\"password\":\"scram_pw\",\"database\":\"app\",\"ssl\":{\"ca\":\"" +
                           Cert("ca.pem") + "\",\"servername\":\"localhost\"}}";
  ASSERT_EQ(RunCommand({"timeout", "30", "node", SourceDir() + "/tests/integration/node/pg_client.js", opts}, &out), 0)
      << out;
  EXPECT_NE(out.find("\"ok\":true"), std::string::npos) << out;
  EXPECT_NE(out.find("\"sum\":500500"), std::string::npos) << out;
  // pgbench: a new connection per transaction (-C), each a mediated login.
  const std::string script = dir_.Write("select.sql", "select 1;\n");
  ASSERT_EQ(RunCommand({"sh", "-c",
                        "PGPASSWORD=scram_pw timeout 60 pgbench -n -C -t 20 -c 2 -f " + script +
                            " \"host=localhost port=" + std::to_string(d.port()) +
                            " user=scram_user dbname=app sslmode=require\""},
                       &out),
            0)
      << out;
  EXPECT_NE(out.find("number of transactions actually processed: 40/40"), std::string::npos) << out;
  auto ev = d.WaitAuditEvents(41);
  size_t mediated = 0;
  for (auto& e : ev) mediated += e["note"].rfind("SCRAM mediated", 0) == 0 ? 1 : 0;
  EXPECT_GE(mediated, 41u);
}

// application_name set after the startup message, as JDBC drivers do.
TEST_F(PgMediationTest, ApplicationNameSetAfterStartupIsAudited) {
  DbwardProcess d;
  ASSERT_TRUE(d.Start(Config(AuthQuery()))) << d.Log();
  std::string out;
  EXPECT_EQ(Psql(d, "user=scram_user password=scram_pw sslmode=require", "SET application_name = 'billing-batch'", &out),
            0)
      << out;
  auto ev = d.WaitAuditEvents(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["application"], "billing-batch");
}

}  // namespace
}  // namespace dbward::testing

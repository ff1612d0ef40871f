// Proves the scripted MySQL 8.0 backend against real clients, without dbward
// in between: node mysql2 (caching_sha2_password full authentication over TLS
// and over RSA, fast authentication with a warm cache) and the mariadb CLI.
// Also checks the greeting and a refusal byte for byte.
#include "mysql8_backend.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "harness.h"

namespace dbward::testing {
namespace {

// Connects with mysql2, runs SELECT 1, SHOW STATUS LIKE 'Ssl_version' and a
// ping, and prints one JSON line. argv[1]: mysql2 connection options, where
// "ssl" is false or {"ca": path}.
constexpr char kMysql2Script[] = R"JS(
'use strict';
const fs = require('fs');
const mysql = require('mysql2/promise');
(async () => {
  const o = JSON.parse(process.argv[1]);
  if (o.ssl) o.ssl = { ca: fs.readFileSync(o.ssl.ca, 'utf8'), rejectUnauthorized: true };
  else delete o.ssl;
  const c = await mysql.createConnection(o);
  const [one] = await c.query('SELECT 1');
  const [st] = await c.query("SHOW STATUS LIKE 'Ssl_version'");
  await c.ping();
  await c.end();
  console.log(JSON.stringify({ ok: true, one: one[0]['1'], ssl_version: st[0].Value }));
})().catch((e) => {
  console.log(JSON.stringify({ ok: false, errno: e.errno || 0, error: String(e.message || e) }));
  process.exit(1);
});
)JS";

class Mysql8BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }

  Mysql8Backend::Options TlsOptions() {
    Mysql8Backend::Options o;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    return o;
  }

  // Runs the mysql2 script; returns the JSON line it printed.
  JsonFields Mysql2(uint16_t port, bool ssl, const std::string& password = "sha2_pw") {
    // A NODE_PATH from the environment (a scratch install) goes first.
    std::string node_path = SourceDir() + "/tests/integration/node/node_modules";
    if (const char* env = getenv("NODE_PATH"); env != nullptr && *env != '\0') {
      node_path = std::string(env) + ":" + node_path;
    }
    std::string opts = "{\"host\":\"127.0.0.1\",\"port\":" + std::to_string(port) +
                       ",\"user\":\"sha2_user\",\"password\":\"" + password + "\",\"database\":\"app\"," +
                       "\"ssl\":" + (ssl ? "{\"ca\":\"" + Cert("ca.pem") + "\"}" : std::string("false")) + "}";
    std::string out;
    RunCommand({"env", "NODE_PATH=" + node_path, "timeout", "30", "node", "-e", kMysql2Script, opts}, &out);
    size_t brace = out.rfind("\n{");
    std::string line = out.substr(brace == std::string::npos ? 0 : brace + 1);
    JsonFields f = ParseJsonFields(line);
    if (f.empty()) f["error"] = out;
    return f;
  }

  int Mariadb(uint16_t port, const std::vector<std::string>& extra, std::string* out) {
    std::vector<std::string> argv = {"timeout", "30", "mariadb", "--no-defaults", "-h", "127.0.0.1",
                                     "-P", std::to_string(port), "-u", "sha2_user", "-psha2_pw"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv, out);
  }
};

TEST_F(Mysql8BackendTest, GreetingIsAMysql80HandshakeV10) {
  Mysql8Backend backend(TlsOptions());
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  int fd = ConnectLoopback(backend.port());
  ASSERT_GE(fd, 0);
  std::string g;
  ASSERT_EQ(RecvAll(fd, &g, 78, 5000), 78);
  close(fd);
  auto b = [&](size_t i) { return static_cast<uint8_t>(g[i]); };
  EXPECT_EQ(b(0), 74);  // payload length
  EXPECT_EQ(b(3), 0);   // sequence id
  EXPECT_EQ(b(4), 0x0a);
  EXPECT_EQ(g.substr(5, 7), std::string("8.0.36\0", 7));
  EXPECT_EQ(b(24), 0);  // filler after scramble part 1
  EXPECT_EQ(g.substr(25, 8), std::string("\xff\xff\xff\x02\x00\xff\xdf\x15", 8));
  EXPECT_EQ(g.substr(33, 10), std::string(10, '\0'));
  EXPECT_EQ(b(55), 0);  // scramble NUL
  EXPECT_EQ(g.substr(56), std::string("caching_sha2_password\0", 22));
  for (size_t i : {16, 17, 18, 19, 20, 21, 22, 23, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54}) {
    EXPECT_TRUE(b(i) >= 1 && b(i) <= 0x7f && b(i) != '$') << "scramble byte " << i;
  }
}

TEST_F(Mysql8BackendTest, PlaintextHandshakeResponseGetsErr3159WithSeq2) {
  Mysql8Backend backend(TlsOptions());
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  int fd = ConnectLoopback(backend.port());
  ASSERT_GE(fd, 0);
  std::string g;
  ASSERT_EQ(RecvAll(fd, &g, 78, 5000), 78);
  // HandshakeResponse41: PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH, user, empty auth.
  std::string body = std::string("\x00\x82\x08\x00", 4) + std::string("\x00\x00\x00\x01\xff", 5) +
                     std::string(23, '\0') + std::string("sha2_user\0\0caching_sha2_password\0", 33);
  std::string pkt = std::string(1, static_cast<char>(body.size())) + std::string("\x00\x00\x01", 3) + body;
  ASSERT_TRUE(SendAll(fd, pkt.data(), pkt.size()));
  std::string err;
  RecvAll(fd, &err, 4096, 5000);
  close(fd);
  const std::string msg =
      "Connections using insecure transport are prohibited while --require_secure_transport=ON.";
  ASSERT_EQ(err.size(), 4 + 9 + msg.size());
  EXPECT_EQ(static_cast<uint8_t>(err[3]), 2);  // sequence id
  EXPECT_EQ(err.substr(4, 9), "\xff\x57\x0c#HY000");
  EXPECT_EQ(err.substr(13), msg);
  EXPECT_FALSE(backend.saw_tls());
  EXPECT_EQ(backend.last_user(), "sha2_user");
  EXPECT_EQ(backend.logins_ok(), 0);
}

// No client at hand sets CLIENT_DEPRECATE_EOF (mysql2 and libmariadb do not),
// so this speaks it by hand: fast authentication in plaintext, then SELECT 1,
// COM_PING and COM_QUIT, comparing every byte the server sends.
TEST_F(Mysql8BackendTest, DeprecateEofResultsetByteForByte) {
  Mysql8Backend::Options o = TlsOptions();
  o.require_secure_transport = false;
  o.cache_warm = true;
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  int fd = ConnectLoopback(backend.port());
  ASSERT_GE(fd, 0);
  std::string g;
  ASSERT_EQ(RecvAll(fd, &g, 78, 5000), 78);
  std::string scramble = g.substr(16, 8) + g.substr(43, 12);

  auto sha256 = [](const std::string& in) {
    std::string out(SHA256_DIGEST_LENGTH, '\0');
    SHA256(reinterpret_cast<const uint8_t*>(in.data()), in.size(), reinterpret_cast<uint8_t*>(out.data()));
    return out;
  };
  std::string stage1 = sha256("sha2_pw");
  std::string token = sha256(sha256(stage1) + scramble);
  for (size_t i = 0; i < token.size(); i++) token[i] ^= stage1[i];
  // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | PLUGIN_AUTH_LENENC_CLIENT_DATA | DEPRECATE_EOF
  std::string body = std::string("\x00\x82\x28\x01", 4) + std::string("\x00\x00\x00\x01\xff", 5) +
                     std::string(23, '\0') + std::string("sha2_user\0", 10) + "\x20" + token +
                     std::string("caching_sha2_password\0", 22);
  std::string pkt = std::string(1, static_cast<char>(body.size())) + std::string("\x00\x00\x01", 3) + body;
  ASSERT_TRUE(SendAll(fd, pkt.data(), pkt.size()));
  std::string got;
  const std::string fast_ok = std::string("\x02\x00\x00\x02\x01\x03", 6) +
                              std::string("\x07\x00\x00\x03\x00\x00\x00\x02\x00\x00\x00", 11);
  ASSERT_EQ(RecvAll(fd, &got, fast_ok.size(), 5000), static_cast<ssize_t>(fast_ok.size()));
  EXPECT_EQ(got, fast_ok);
  EXPECT_EQ(backend.last_auth_path(), "fast");

  const std::string query = std::string("\x09\x00\x00\x00\x03", 5) + "SELECT 1";
  ASSERT_TRUE(SendAll(fd, query.data(), query.size()));
  const std::string resultset =
      std::string("\x01\x00\x00\x01\x01", 5) +
      std::string("\x17\x00\x00\x02\x03" "def\x00\x00\x00\x01" "1\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00",
                  27) +
      std::string("\x02\x00\x00\x03\x01" "1", 6) +
      std::string("\x07\x00\x00\x04\xfe\x00\x00\x02\x00\x00\x00", 11);
  got.clear();
  ASSERT_EQ(RecvAll(fd, &got, resultset.size(), 5000), static_cast<ssize_t>(resultset.size()));
  EXPECT_EQ(got, resultset);

  ASSERT_TRUE(SendAll(fd, "\x01\x00\x00\x00\x0e", 5));
  got.clear();
  ASSERT_EQ(RecvAll(fd, &got, 11, 5000), 11);
  EXPECT_EQ(got, std::string("\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00", 11));
  ASSERT_TRUE(SendAll(fd, "\x01\x00\x00\x00\x01", 5));
  EXPECT_TRUE(ClosedWithoutData(fd, 5000));
  close(fd);
  EXPECT_EQ(backend.last_client_capabilities(), 0x01288200u);
}

TEST_F(Mysql8BackendTest, Mysql2FullAuthOverTlsThenFastAuth) {
  Mysql8Backend backend(TlsOptions());
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;

  JsonFields r = Mysql2(backend.port(), true);
  ASSERT_EQ(r["ok"], "true") << r["error"] << " / backend: " << backend.last_error();
  EXPECT_EQ(r["one"], "1");
  EXPECT_EQ(r["ssl_version"], "TLSv1.3");
  EXPECT_TRUE(backend.saw_tls());
  EXPECT_EQ(backend.last_auth_path(), "full-tls");
  EXPECT_EQ(backend.last_user(), "sha2_user");
  EXPECT_EQ(backend.last_database(), "app");
  EXPECT_EQ(backend.logins_ok(), 1);

  backend.set_cache_warm(true);
  r = Mysql2(backend.port(), true);
  ASSERT_EQ(r["ok"], "true") << r["error"] << " / backend: " << backend.last_error();
  EXPECT_EQ(r["one"], "1");
  EXPECT_EQ(backend.last_auth_path(), "fast");
  EXPECT_EQ(backend.logins_ok(), 2);
}

TEST_F(Mysql8BackendTest, Mysql2FullAuthOverRsaWithoutTls) {
  Mysql8Backend::Options o = TlsOptions();
  o.require_secure_transport = false;
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;

  JsonFields r = Mysql2(backend.port(), false);
  ASSERT_EQ(r["ok"], "true") << r["error"] << " / backend: " << backend.last_error();
  EXPECT_EQ(r["one"], "1");
  EXPECT_EQ(r["ssl_version"], "");
  EXPECT_FALSE(backend.saw_tls());
  EXPECT_EQ(backend.last_auth_path(), "full-rsa");
  EXPECT_EQ(backend.logins_ok(), 1);

  // A warm cache lets a plaintext client in without the key exchange too.
  backend.set_cache_warm(true);
  r = Mysql2(backend.port(), false);
  ASSERT_EQ(r["ok"], "true") << r["error"];
  EXPECT_EQ(backend.last_auth_path(), "fast");
}

// The sha256_password path, proven with mysql2 directly: in clear over TLS,
// and with the server's RSA key (asked for with 0x01) without TLS.
TEST_F(Mysql8BackendTest, Mysql2Sha256PasswordOverTlsAndRsa) {
  Mysql8Backend::Options o = TlsOptions();
  o.plugin = "sha256_password";
  o.require_secure_transport = false;
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  JsonFields r = Mysql2(backend.port(), true);
  ASSERT_EQ(r["ok"], "true") << r["error"] << " / backend: " << backend.last_error();
  EXPECT_EQ(r["one"], "1");
  EXPECT_EQ(backend.last_auth_path(), "sha256-tls");
  r = Mysql2(backend.port(), false);
  ASSERT_EQ(r["ok"], "true") << r["error"] << " / backend: " << backend.last_error();
  EXPECT_EQ(backend.last_auth_path(), "sha256-rsa");
  r = Mysql2(backend.port(), false, "wrong");
  EXPECT_EQ(r["ok"], "false");
  EXPECT_EQ(backend.logins_ok(), 2);
}

TEST_F(Mysql8BackendTest, Mysql2WrongPasswordAndPlaintextAreRefused) {
  Mysql8Backend backend(TlsOptions());
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;

  JsonFields r = Mysql2(backend.port(), true, "not_the_pw");
  EXPECT_EQ(r["ok"], "false");
  EXPECT_EQ(r["errno"], "1045");
  EXPECT_EQ(r["error"], "Access denied for user 'sha2_user'@'localhost' (using password: YES)");
  EXPECT_EQ(backend.last_auth_path(), "full-tls");

  backend.set_cache_warm(true);  // a wrong scramble answer falls back to full authentication
  r = Mysql2(backend.port(), true, "not_the_pw");
  EXPECT_EQ(r["errno"], "1045");
  EXPECT_EQ(backend.last_auth_path(), "full-tls");

  r = Mysql2(backend.port(), false);
  EXPECT_EQ(r["ok"], "false");
  EXPECT_EQ(r["errno"], "3159");
  EXPECT_FALSE(backend.saw_tls());
  EXPECT_EQ(backend.logins_ok(), 0);
}

TEST_F(Mysql8BackendTest, MariadbCliFullAuthOverTlsThenFastAuth) {
  Mysql8Backend backend(TlsOptions());
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;
  const std::vector<std::string> tls = {"--ssl", "--ssl-ca=" + Cert("ca.pem"), "--ssl-verify-server-cert"};

  std::string out;
  std::vector<std::string> args = tls;
  args.insert(args.end(), {"-N", "-e", "SELECT 1"});
  ASSERT_EQ(Mariadb(backend.port(), args, &out), 0) << out << " / backend: " << backend.last_error();
  EXPECT_EQ(out, "1\n");
  EXPECT_TRUE(backend.saw_tls());
  EXPECT_EQ(backend.last_auth_path(), "full-tls");
  EXPECT_EQ(backend.last_attribute("_client_name"), "libmariadb");
  EXPECT_EQ(backend.last_client_capabilities() & 0x01000000u, 0u);  // no CLIENT_DEPRECATE_EOF

  backend.set_cache_warm(true);
  args = tls;
  args.insert(args.end(), {"-N", "-e", "SHOW STATUS LIKE 'Ssl_version'"});
  ASSERT_EQ(Mariadb(backend.port(), args, &out), 0) << out << " / backend: " << backend.last_error();
  EXPECT_EQ(out, "Ssl_version\tTLSv1.3\n");
  EXPECT_EQ(backend.last_auth_path(), "fast");
  EXPECT_EQ(backend.logins_ok(), 2);
}

TEST_F(Mysql8BackendTest, MariadbCliRsaWithoutTlsAndAuthSwitch) {
  Mysql8Backend::Options o = TlsOptions();
  o.require_secure_transport = false;
  Mysql8Backend backend(o);
  std::string error;
  ASSERT_TRUE(backend.Start(&error)) << error;

  // libmariadb asks for the server's RSA key by itself.
  std::string out;
  ASSERT_EQ(Mariadb(backend.port(), {"--skip-ssl", "-N", "-e", "SHOW STATUS LIKE 'Ssl_version'"}, &out), 0)
      << out << " / backend: " << backend.last_error();
  EXPECT_EQ(out, "Ssl_version\t\n");
  EXPECT_FALSE(backend.saw_tls());
  EXPECT_EQ(backend.last_auth_path(), "full-rsa");

  // Answering with mysql_native_password draws an AuthSwitchRequest.
  ASSERT_EQ(Mariadb(backend.port(),
                    {"--ssl", "--ssl-ca=" + Cert("ca.pem"), "--ssl-verify-server-cert",
                     "--default-auth=mysql_native_password", "-N", "-e", "SELECT 1"},
                    &out),
            0)
      << out << " / backend: " << backend.last_error();
  EXPECT_EQ(out, "1\n");
  EXPECT_EQ(backend.last_auth_path(), "full-tls");
  EXPECT_EQ(backend.logins_ok(), 2);
}

}  // namespace
}  // namespace dbward::testing

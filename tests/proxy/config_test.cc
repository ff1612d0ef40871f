#include "proxy/common/config.h"

#include "proxy/common/address.h"
#include "proxy/common/duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

namespace dbward::proxy {
namespace {

constexpr char kPath[] = "/etc/dbward/x.yaml";

// Every key proxy/config.h knows. Line numbers matter: the position tests below
// refer to them.
constexpr char kFullConfig[] =
    "workers: 4\n"                                  // 1
    "drain_timeout: 45s\n"                          // 2
    "log:\n"                                        // 3
    "  level: debug\n"                              // 4
    "  audit: audit/events.jsonl\n"                 // 5
    "listeners:\n"                                  // 6
    "  - name: pg-main\n"                           // 7
    "    protocol: tcp\n"                           // 8
    "    listen: 127.0.0.1:6432\n"                  // 9
    "    backend: db.internal:5432\n"               // 10
    "    backend_tls:\n"                            // 11
    "      verify: ca\n"                            // 12
    "      ca_file: certs/ca.pem\n"                 // 13
    "      server_name: db-primary.internal\n"      // 14
    "      cert_file: certs/client.pem\n"           // 15
    "      key_file: /secure/client.key\n"          // 16
    "      key_password_file: certs/client.pass\n"  // 17
    "      min_version: \"1.3\"\n"                  // 18
    "    client_tls:\n"                             // 19
    "      cert_file: certs/proxy.pem\n"            // 20
    "      key_file: certs/proxy.key\n"             // 21
    "      key_password_file: /run/proxy.pass\n"    // 22
    "      min_version: \"1.3\"\n"                  // 23
    "    timeouts:\n"                               // 24
    "      connect: 1500ms\n"                       // 25
    "      handshake: 20s\n"                        // 26
    "      idle: 5m\n"                              // 27
    "    max_connections: 250\n"                    // 28
    "  - name: replica\n"                           // 29
    "    protocol: tcp\n"                           // 30
    "    listen: \"[::1]:6433\"\n"                  // 31
    "    backend: 10.0.0.5:5433\n"                  // 32
    "    backend_tls:\n"                            // 33
    "      ca_file: ca.pem\n";                      // 34

// The smallest valid listener; error tests append to or edit it.
constexpr char kMinimal[] =
    "listeners:\n"                     // 1
    "  - name: main\n"                 // 2
    "    protocol: tcp\n"              // 3
    "    listen: 127.0.0.1:6432\n"     // 4
    "    backend: db.internal:5432\n"  // 5
    "    backend_tls:\n"               // 6
    "      ca_file: ca.pem\n";         // 7

void ExpectPos(const Position& pos, int line, int column) {
  EXPECT_EQ(pos.line, line);
  EXPECT_EQ(pos.column, column);
}

Config ParseOk(const std::string& text) {
  Config cfg;
  ConfigError err;
  EXPECT_TRUE(ParseConfigText(text, kPath, &cfg, &err)) << err.ToString();
  return cfg;
}

// Returns "FILE:LINE:COLUMN: message" for a config that must be rejected.
std::string ParseError(const std::string& text) {
  Config cfg;
  ConfigError err;
  if (ParseConfigText(text, kPath, &cfg, &err)) {
    ADD_FAILURE() << "config was accepted:\n" << text;
    return "";
  }
  EXPECT_EQ(err.file, kPath);
  return err.ToString();
}

TEST(ConfigTest, FullConfigTopLevel) {
  Config cfg = ParseOk(kFullConfig);
  EXPECT_EQ(cfg.path, kPath);
  EXPECT_EQ(cfg.workers, 4);
  EXPECT_EQ(cfg.drain_timeout_ms, 45'000u);
  EXPECT_EQ(cfg.log_level, LogLevel::kDebug);
  EXPECT_EQ(cfg.audit, "/etc/dbward/audit/events.jsonl");
  ASSERT_EQ(cfg.listeners.size(), 2u);
}

TEST(ConfigTest, FullConfigListener) {
  Config cfg = ParseOk(kFullConfig);
  ASSERT_EQ(cfg.listeners.size(), 2u);
  const ListenerConfig& l = cfg.listeners[0];
  EXPECT_EQ(l.name, "pg-main");
  EXPECT_EQ(l.protocol, Protocol::kTcp);
  EXPECT_STREQ(ProtocolName(l.protocol), "tcp");
  EXPECT_EQ(l.listen_host, "127.0.0.1");
  EXPECT_EQ(l.listen_port, 6432);
  EXPECT_EQ(l.backend_host, "db.internal");
  EXPECT_EQ(l.backend_port, 5432);
  EXPECT_EQ(l.timeouts.connect_ms, 1500u);
  EXPECT_EQ(l.timeouts.handshake_ms, 20'000u);
  EXPECT_EQ(l.timeouts.idle_ms, 300'000u);
  EXPECT_EQ(l.max_connections, 250u);
  ExpectPos(l.pos, 7, 5);
}

TEST(ConfigTest, FullConfigBackendTlsResolvesRelativePaths) {
  Config cfg = ParseOk(kFullConfig);
  ASSERT_EQ(cfg.listeners.size(), 2u);
  const BackendTlsConfig& b = cfg.listeners[0].backend_tls;
  EXPECT_FALSE(b.full_verify);
  EXPECT_EQ(b.ca_file, "/etc/dbward/certs/ca.pem");
  EXPECT_EQ(b.server_name, "db-primary.internal");
  EXPECT_EQ(b.cert_file, "/etc/dbward/certs/client.pem");
  EXPECT_EQ(b.key_file, "/secure/client.key");  // absolute: unchanged
  EXPECT_EQ(b.key_password_file, "/etc/dbward/certs/client.pass");
  EXPECT_EQ(b.min_version, 0x0304);
  ExpectPos(b.pos, 12, 7);
  ExpectPos(b.ca_pos, 13, 16);
  ExpectPos(b.cert_pos, 15, 18);
  ExpectPos(b.key_pos, 16, 17);
  ExpectPos(b.password_pos, 17, 26);
}

TEST(ConfigTest, FullConfigClientTls) {
  Config cfg = ParseOk(kFullConfig);
  ASSERT_EQ(cfg.listeners.size(), 2u);
  ASSERT_TRUE(cfg.listeners[0].client_tls.has_value());
  const ClientTlsConfig& c = *cfg.listeners[0].client_tls;
  EXPECT_EQ(c.cert_file, "/etc/dbward/certs/proxy.pem");
  EXPECT_EQ(c.key_file, "/etc/dbward/certs/proxy.key");
  EXPECT_EQ(c.key_password_file, "/run/proxy.pass");
  EXPECT_EQ(c.min_version, 0x0304);
  ExpectPos(c.pos, 20, 7);
  ExpectPos(c.cert_pos, 20, 18);
  ExpectPos(c.key_pos, 21, 17);
  ExpectPos(c.password_pos, 22, 26);
}

TEST(ConfigTest, OmittedKeysTakeDefaults) {
  Config cfg = ParseOk(kFullConfig);
  ASSERT_EQ(cfg.listeners.size(), 2u);
  const ListenerConfig& l = cfg.listeners[1];
  EXPECT_EQ(l.name, "replica");
  EXPECT_EQ(l.listen_host, "::1");
  EXPECT_EQ(l.listen_port, 6433);
  EXPECT_EQ(l.backend_host, "10.0.0.5");
  EXPECT_EQ(l.backend_port, 5433);
  EXPECT_TRUE(l.backend_tls.full_verify);
  EXPECT_EQ(l.backend_tls.ca_file, "/etc/dbward/ca.pem");
  EXPECT_EQ(l.backend_tls.server_name, "10.0.0.5");  // defaults to the backend host
  EXPECT_EQ(l.backend_tls.cert_file, "");
  EXPECT_EQ(l.backend_tls.key_file, "");
  EXPECT_EQ(l.backend_tls.min_version, 0x0303);
  EXPECT_FALSE(l.client_tls.has_value());
  EXPECT_EQ(l.timeouts.connect_ms, 5'000u);
  EXPECT_EQ(l.timeouts.handshake_ms, 15'000u);
  EXPECT_EQ(l.timeouts.idle_ms, 0u);
  EXPECT_EQ(l.max_connections, 10'000u);
  ExpectPos(l.pos, 29, 5);
}

TEST(ConfigTest, MinimalConfigDefaults) {
  Config cfg = ParseOk(kMinimal);
  unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(cfg.workers, cores == 0 ? 1 : static_cast<int>(cores));
  EXPECT_EQ(cfg.drain_timeout_ms, 30'000u);
  EXPECT_EQ(cfg.log_level, LogLevel::kInfo);
  EXPECT_EQ(cfg.audit, "stdout");
  ASSERT_EQ(cfg.listeners.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].backend_tls.server_name, "db.internal");
}

TEST(ConfigTest, AuditKeywordsAreNotPaths) {
  for (const char* a : {"stdout", "stderr", "off"}) {
    Config cfg = ParseOk(std::string(kMinimal) + "log:\n  audit: " + a + "\n");
    EXPECT_EQ(cfg.audit, a);
  }
}

TEST(ConfigTest, IPv6BackendHostIsDefaultServerName) {
  std::string text = kMinimal;
  text.replace(text.find("db.internal:5432"), 16, "\"[fd00::5]:5432\"");
  Config cfg = ParseOk(text);
  ASSERT_EQ(cfg.listeners.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].backend_host, "fd00::5");
  EXPECT_EQ(cfg.listeners[0].backend_tls.server_name, "fd00::5");
}

TEST(ConfigTest, RelativeConfigPathResolvesAgainstCurrentDirectory) {
  Config cfg;
  ConfigError err;
  ASSERT_TRUE(ParseConfigText(kMinimal, "dbward.yaml", &cfg, &err)) << err.ToString();
  EXPECT_EQ(cfg.listeners[0].backend_tls.ca_file, "./ca.pem");
}

TEST(ConfigTest, LoadConfigResolvesAgainstFileDirectory) {
  std::string dir = testing::TempDir();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  std::string path = dir + "/dbward_config_test.yaml";
  {
    std::ofstream out(path);
    out << kMinimal;
  }
  Config cfg;
  ConfigError err;
  ASSERT_TRUE(LoadConfig(path, &cfg, &err)) << err.ToString();
  EXPECT_EQ(cfg.path, path);
  EXPECT_EQ(cfg.listeners[0].backend_tls.ca_file, dir + "/ca.pem");
  std::remove(path.c_str());
}

TEST(ConfigTest, LoadConfigMissingFile) {
  Config cfg;
  ConfigError err;
  ASSERT_FALSE(LoadConfig("/nonexistent/dbward.yaml", &cfg, &err));
  EXPECT_EQ(err.file, "/nonexistent/dbward.yaml");
  EXPECT_EQ(err.message, "cannot read configuration file: No such file or directory");
}

TEST(ConfigErrorTest, ToStringFormat) {
  ConfigError e{"/etc/dbward/x.yaml", {12, 7}, "boom"};
  EXPECT_EQ(e.ToString(), "/etc/dbward/x.yaml:12:7: boom");
}

TEST(ConfigErrorTest, UnknownTopLevelKey) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "bogus: 1\n"),
            "/etc/dbward/x.yaml:8:1: unknown key 'bogus' in the top level "
            "(allowed: admin, drain_timeout, listeners, log, reload_interval, shutdown_delay, sql_browser, workers)");
}

TEST(ConfigErrorTest, UnknownKeyInBackendTls) {
  std::string error = ParseError(std::string(kMinimal) + "      verify_depth: 3\n");
  // The allowed list grows with new features; pin its start and a few members.
  const std::string prefix =
      "/etc/dbward/x.yaml:8:7: unknown key 'verify_depth' in backend_tls (allowed: ca_file, ";
  EXPECT_EQ(error.substr(0, prefix.size()), prefix);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, " min_version, pin_spki, server_name, session_resumption, tds_strict, verify)",
                      error);
  EXPECT_EQ(error.back(), ')');
}

TEST(ConfigErrorTest, VerifyNoneIsRejected) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      verify: none\n"),
            "/etc/dbward/x.yaml:8:15: backend_tls.verify must be 'full' (chain and name) or "
            "'ca' (chain only); verification cannot be turned off");
}

TEST(ConfigErrorTest, VerifyFalseIsRejected) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      verify: false\n"),
            "/etc/dbward/x.yaml:8:15: backend_tls.verify must be 'full' (chain and name) or "
            "'ca' (chain only); verification cannot be turned off");
}

TEST(ConfigErrorTest, MinVersionOneOneIsRejected) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      min_version: \"1.1\"\n"),
            "/etc/dbward/x.yaml:8:20: min_version must be \"1.2\" or \"1.3\" "
            "(older TLS versions are not offered)");
}

TEST(ConfigErrorTest, MissingBackendTls) {
  std::string text = kMinimal;
  text.erase(text.find("    backend_tls:"));
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:2:5: listener is missing 'backend_tls' (the backend leg is "
            "always TLS; give at least backend_tls: {ca_file: ...})");
}

TEST(ConfigErrorTest, DuplicateListenerName) {
  std::string text = std::string(kMinimal) +
                     "  - name: main\n"                 // 8
                     "    protocol: tcp\n"              // 9
                     "    listen: 127.0.0.1:6433\n"     // 10
                     "    backend: db.internal:5432\n"  // 11
                     "    backend_tls: {ca_file: ca.pem}\n";
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:8:11: duplicate listener name 'main'");
}

TEST(ConfigErrorTest, DuplicateListenAddress) {
  std::string text = std::string(kMinimal) +
                     "  - name: other\n"                // 8
                     "    protocol: tcp\n"              // 9
                     "    listen: 127.0.0.1:6432\n"     // 10
                     "    backend: db.internal:5432\n"  // 11
                     "    backend_tls: {ca_file: ca.pem}\n";
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:10:13: another listener already uses 127.0.0.1:6432");
}

TEST(ConfigErrorTest, ListenWithoutPort) {
  std::string text = kMinimal;
  text.replace(text.find("127.0.0.1:6432"), 14, "6432");
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:4:13: listen must be HOST:PORT (e.g. 127.0.0.1:6432 or "
            "[::1]:6432)");
}

TEST(ConfigErrorTest, BackendPortZero) {
  std::string text = kMinimal;
  text.replace(text.find("db.internal:5432"), 16, "db.internal:0");
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:5:14: backend must be HOST:PORT with a non-zero port");
}

TEST(ConfigErrorTest, BadDuration) {
  std::string text = std::string(kMinimal) +
                     "    timeouts:\n"       // 8
                     "      connect: 5x\n";  // 9
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:9:16: timeouts.connect must be a duration such as 500ms, 10s, "
            "5m or 1h");
}

TEST(ConfigErrorTest, ZeroHandshakeTimeout) {
  std::string text = std::string(kMinimal) +
                     "    timeouts:\n"         // 8
                     "      handshake: 0s\n";  // 9
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:9:7: timeouts.connect and timeouts.handshake must be greater "
            "than zero");
}

TEST(ConfigErrorTest, TdsClientEncryptionRequireNeedsClientTls) {
  std::string text = kMinimal;
  text.replace(text.find("protocol: tcp"), 13, "protocol: tds");
  text += "    client_encryption: require\n";
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:8:24: client_encryption: require needs client_tls (dbward's certificate for "
            "clients)");
}

TEST(ConfigErrorTest, TdsStrictOnlyForTds) {
  std::string text = std::string(kMinimal) + "      tds_strict: true\n";
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:8:19: backend_tls.tds_strict is for protocol: tds (TDS 8.0)");
}

TEST(ConfigErrorTest, UnknownProtocol) {
  std::string text = kMinimal;
  text.replace(text.find("protocol: tcp"), 13, "protocol: redis");
  EXPECT_EQ(ParseError(text),
            "/etc/dbward/x.yaml:3:15: unknown protocol 'redis' (expected tcp, postgres, mysql or tds)");
}

TEST(ConfigErrorTest, YamlSyntaxError) {
  std::string text =
      "listeners:\n"
      "  - name: main\n"
      "    protocol: [tcp\n"
      "    listen: 127.0.0.1:6432\n";
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:4:11: YAML: end of sequence flow not found");
}

TEST(ConfigErrorTest, CertFileWithoutKeyFile) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      cert_file: client.pem\n"),
            "/etc/dbward/x.yaml:7:7: backend_tls: cert_file and key_file go together "
            "(client certificate)");
}

TEST(ConfigErrorTest, KeyPasswordFileWithoutKeyFile) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      key_password_file: pw\n"),
            "/etc/dbward/x.yaml:8:26: backend_tls.key_password_file needs key_file");
}

TEST(ConfigErrorTest, ClientTlsWithoutKeyFile) {
  std::string text = std::string(kMinimal) +
                     "    client_tls:\n"              // 8
                     "      cert_file: proxy.pem\n";  // 9
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:9:7: client_tls needs cert_file and key_file");
}

TEST(ConfigErrorTest, MissingListeners) {
  EXPECT_EQ(ParseError("workers: 2\n"), "/etc/dbward/x.yaml:1:1: missing 'listeners'");
}

TEST(ConfigErrorTest, BadLogLevel) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "log:\n  level: verbose\n"),
            "/etc/dbward/x.yaml:9:10: log.level must be debug, info, warn or error");
}

TEST(ConfigErrorTest, WorkersOutOfRange) {
  EXPECT_EQ(ParseError(std::string(kMinimal) + "workers: 0\n"),
            "/etc/dbward/x.yaml:8:10: workers must be between 1 and 256");
}

TEST(ParseDurationTest, Units) {
  uint64_t ms = 0;
  ASSERT_TRUE(ParseDuration("1500ms", &ms));
  EXPECT_EQ(ms, 1500u);
  ASSERT_TRUE(ParseDuration("10s", &ms));
  EXPECT_EQ(ms, 10'000u);
  ASSERT_TRUE(ParseDuration("5m", &ms));
  EXPECT_EQ(ms, 300'000u);
  ASSERT_TRUE(ParseDuration("1h", &ms));
  EXPECT_EQ(ms, 3'600'000u);
  ASSERT_TRUE(ParseDuration("0ms", &ms));
  EXPECT_EQ(ms, 0u);
}

TEST(ParseDurationTest, BareNumberIsSeconds) {
  uint64_t ms = 0;
  ASSERT_TRUE(ParseDuration("7", &ms));
  EXPECT_EQ(ms, 7'000u);
}

TEST(ParseDurationTest, RejectsMalformed) {
  for (const char* bad :
       {"", "ms", "s", "10 s", "1.5s", "-1s", "10d", "10S", "s10", "10sec", "100000000001s"}) {
    uint64_t ms = 42;
    EXPECT_FALSE(ParseDuration(bad, &ms)) << "accepted \"" << bad << "\"";
    EXPECT_EQ(ms, 42u) << bad;
  }
}

TEST(SplitHostPortTest, HostAndPort) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort("db.internal:5432", &host, &port));
  EXPECT_EQ(host, "db.internal");
  EXPECT_EQ(port, 5432);
  ASSERT_TRUE(SplitHostPort("127.0.0.1:65535", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 65535);
  ASSERT_TRUE(SplitHostPort("127.0.0.1:0", &host, &port));
  EXPECT_EQ(port, 0);
}

TEST(SplitHostPortTest, BracketedIPv6) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort("[::1]:5432", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 5432);
  ASSERT_TRUE(SplitHostPort("[fd00:1::7]:6432", &host, &port));
  EXPECT_EQ(host, "fd00:1::7");
  EXPECT_EQ(port, 6432);
}

TEST(SplitHostPortTest, RejectsMalformed) {
  for (const char* bad :
       {"::1:5432", "db:65536", "db:99999", "db:000001", "db", "db:", ":5432", "[::1]", "[::1]5432",
        "[::1]:", "[]:5432", "[::1:5432", "db:54a2", "db:-1", ""}) {
    std::string host = "unchanged";
    uint16_t port = 7;
    EXPECT_FALSE(SplitHostPort(bad, &host, &port)) << "accepted \"" << bad << "\"";
    EXPECT_EQ(host, "unchanged") << bad;
    EXPECT_EQ(port, 7) << bad;
  }
}

}  // namespace
}  // namespace dbward::proxy

namespace dbward::proxy {
namespace {

// A second "verify: full" appended to tighten security must not be ignored.
TEST(ConfigDuplicates, DuplicateKeyIsAnError) {
  std::string text = std::string(kMinimal) + "      verify: ca\n      verify: full\n";
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:9:7: duplicate key 'verify' in backend_tls");
}

TEST(ConfigPostgres, PlaintextClientsAndDirect) {
  std::string text =
      "listeners:\n"
      "  - name: pg\n"
      "    protocol: postgres\n"
      "    listen: 127.0.0.1:6432\n"
      "    backend: db.internal:5432\n"
      "    plaintext_clients: deny\n"
      "    backend_tls:\n"
      "      direct: true\n";
  Config cfg;
  ConfigError err;
  ASSERT_TRUE(ParseConfigText(text, kPath, &cfg, &err)) << err.ToString();
  EXPECT_EQ(cfg.listeners[0].protocol, Protocol::kPostgres);
  EXPECT_FALSE(cfg.listeners[0].plaintext_clients);
  EXPECT_TRUE(cfg.listeners[0].backend_tls.direct);
}

TEST(ConfigPostgres, DirectIsOnlyForPostgres) {
  std::string text = std::string(kMinimal) + "      direct: true\n";
  EXPECT_EQ(ParseError(text), "/etc/dbward/x.yaml:8:15: backend_tls.direct is for protocol: postgres "
                              "(PostgreSQL 17 direct TLS)");
}

TEST(ConfigPostgres, TcpCannotDenyPlaintext) {
  std::string text = std::string(kMinimal) + "    plaintext_clients: deny\n";
  EXPECT_NE(ParseError(text).find("a tcp listener only has plaintext clients"), std::string::npos);
}


// ---------------------------------------------------------------------------
// TDS: named instances, routing, the SQL Server Browser.

constexpr const char* kTds =
    "listeners:\n"                       // 1
    "  - name: mssql\n"                  // 2
    "    protocol: tds\n"                // 3
    "    listen: 127.0.0.1:1433\n"       // 4
    "    backend: db1\\SQLEXPRESS\n"     // 5
    "    backend_tls:\n"                 // 6
    "      ca_file: ca.pem\n";           // 7

TEST(ConfigTds, NamedInstanceBackend) {
  Config cfg = ParseOk(kTds);
  const ListenerConfig& l = cfg.listeners[0];
  EXPECT_EQ(l.backend_host, "db1");
  EXPECT_EQ(l.backend_instance, "SQLEXPRESS");
  EXPECT_EQ(l.backend_port, 0);
  EXPECT_EQ(l.backend_tls.server_name, "db1") << "the certificate names the host, not the instance";
  EXPECT_EQ(BackendText(l), "db1\\SQLEXPRESS");
  // Quoted YAML spells the backslash twice.
  std::string quoted = kTds;
  quoted.replace(quoted.find("db1\\SQLEXPRESS"), 14, "\"db1\\\\SQLEXPRESS\"");
  EXPECT_EQ(ParseOk(quoted).listeners[0].backend_instance, "SQLEXPRESS");
}

TEST(ConfigTds, BadNamedInstances) {
  auto with = [](const std::string& backend, const std::string& protocol = "tds") {
    std::string t = kTds;
    t.replace(t.find("db1\\SQLEXPRESS"), 14, backend);
    t.replace(t.find("protocol: tds"), 13, "protocol: " + protocol);
    return t;
  };
  EXPECT_EQ(ParseError(with("db1\\")), "/etc/dbward/x.yaml:5:14: backend HOST\\INSTANCE needs a host and an instance "
                                        "name of 1 to 32 characters without ';', ':' or '\\' (e.g. db1\\SQLEXPRESS)");
  EXPECT_NE(ParseError(with("\\SQLEXPRESS")).find("needs a host"), std::string::npos);
  EXPECT_NE(ParseError(with("db1\\A;B")).find("needs a host"), std::string::npos);
  EXPECT_NE(ParseError(with("db1\\" + std::string(33, 'A'))).find("needs a host"), std::string::npos);
  EXPECT_EQ(ParseError(with("db1\\SQLEXPRESS", "postgres")),
            "/etc/dbward/x.yaml:5:14: backend HOST\\INSTANCE (a named instance) is for protocol: tds");
  EXPECT_EQ(ParseError(with("db1")), "/etc/dbward/x.yaml:5:14: backend must be HOST:PORT with a non-zero port (or "
                                      "HOST\\INSTANCE for a named instance)");
}

TEST(ConfigTds, RoutingAllow) {
  EXPECT_FALSE(ParseOk(kTds).listeners[0].routing.allow) << "absent: any routed name, verified";
  Config cfg = ParseOk(std::string(kTds) + "    routing:\n      allow: [\"*.worker.database.windows.net\", db2.corp]\n");
  ASSERT_TRUE(cfg.listeners[0].routing.allow);
  EXPECT_EQ(*cfg.listeners[0].routing.allow,
            (std::vector<std::string>{"*.worker.database.windows.net", "db2.corp"}));
  cfg = ParseOk(std::string(kTds) + "    routing:\n      allow: []\n");
  ASSERT_TRUE(cfg.listeners[0].routing.allow);
  EXPECT_TRUE(cfg.listeners[0].routing.allow->empty()) << "empty: routing refused";
  EXPECT_EQ(ParseError(std::string(kTds) + "    routing:\n      allow: [\"db.*.corp\"]\n"),
            "/etc/dbward/x.yaml:9:15: routing.allow entry 'db.*.corp' is not a host name or a pattern like "
            "*.example.net");
  EXPECT_EQ(ParseError(std::string(kTds) + "    routing:\n      follow: yes\n"),
            "/etc/dbward/x.yaml:9:7: unknown key 'follow' in routing (allowed: allow)");
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    routing:\n      allow: [a]\n"),
            "/etc/dbward/x.yaml:9:7: routing is for protocol: tds (SQL Server routing answers)");
}

TEST(ConfigTds, SqlBrowser) {
  Config cfg = ParseOk(std::string(kTds) + "sql_browser:\n  listen: 0.0.0.0:1434\n  instances:\n    SQLEXPRESS: mssql\n");
  ASSERT_TRUE(cfg.sql_browser);
  EXPECT_EQ(cfg.sql_browser->listen_host, "0.0.0.0");
  EXPECT_EQ(cfg.sql_browser->listen_port, 1434);
  ASSERT_EQ(cfg.sql_browser->instances.size(), 1u);
  EXPECT_EQ(cfg.sql_browser->instances[0].name, "SQLEXPRESS");
  EXPECT_EQ(cfg.sql_browser->instances[0].listener, "mssql");
  EXPECT_EQ(ParseError(std::string(kTds) + "sql_browser:\n  listen: 0.0.0.0:1434\n  instances:\n    A: nope\n"),
            "/etc/dbward/x.yaml:11:8: sql_browser.instances.A: no listener is named 'nope'");
  EXPECT_EQ(ParseError(std::string(kTds) + "sql_browser:\n  listen: 0.0.0.0:1434\n  instances:\n    A: mssql\n    a: mssql\n"),
            "/etc/dbward/x.yaml:12:5: instance 'a' is listed twice (names are case-insensitive)");
  EXPECT_EQ(ParseError(std::string(kTds) + "sql_browser:\n  instances:\n    A: mssql\n"),
            "/etc/dbward/x.yaml:9:3: sql_browser.listen must be HOST:PORT, normally 0.0.0.0:1434");
  std::string pg = kMinimal;
  EXPECT_EQ(ParseError(pg + "sql_browser:\n  listen: 0.0.0.0:1434\n  instances:\n    A: main\n"),
            "/etc/dbward/x.yaml:11:8: sql_browser.instances.A: listener 'main' is not a tds listener");
}

TEST(HostPatternTest, Matching) {
  EXPECT_TRUE(HostMatchesPattern("*.worker.database.windows.net", "a1.tr5.westeurope1-a.worker.database.windows.net"));
  EXPECT_TRUE(HostMatchesPattern("*.worker.database.windows.net", "A1.Worker.Database.Windows.Net."));
  EXPECT_FALSE(HostMatchesPattern("*.worker.database.windows.net", "worker.database.windows.net"));
  EXPECT_FALSE(HostMatchesPattern("*.worker.database.windows.net", "evilworker.database.windows.net"));
  EXPECT_FALSE(HostMatchesPattern("*.worker.database.windows.net", "x.worker.database.windows.net.evil.com"));
  EXPECT_TRUE(HostMatchesPattern("db2.corp", "DB2.corp"));
  EXPECT_FALSE(HostMatchesPattern("db2.corp", "db22.corp"));
  EXPECT_TRUE(ValidHostPattern("*.a.b"));
  EXPECT_TRUE(ValidHostPattern("10.0.0.5"));
  for (const char* bad : {"", "*", "*.", "a..b", "a.*.b", "*a.b", ".a", "a b"}) EXPECT_FALSE(ValidHostPattern(bad)) << bad;
}


// ---------------------------------------------------------------------------
// postgres: SCRAM mediation.

constexpr const char* kPg =
    "listeners:\n"                       // 1
    "  - name: pg\n"                     // 2
    "    protocol: postgres\n"           // 3
    "    listen: 127.0.0.1:6432\n"       // 4
    "    backend: db.internal:5432\n"    // 5
    "    backend_tls:\n"                 // 6
    "      ca_file: ca.pem\n";           // 7

TEST(ConfigScram, AuthQueryAndAuthFile) {
  Config cfg = ParseOk(std::string(kPg) +
                       "    scram:\n      verifiers: auth_query\n      auth_user: dbward_auth\n"
                       "      auth_password_file: auth.pass\n      cache: 30s\n");
  ASSERT_TRUE(cfg.listeners[0].scram);
  const ScramConfig& s = *cfg.listeners[0].scram;
  EXPECT_EQ(s.source, ScramConfig::Source::kAuthQuery);
  EXPECT_EQ(s.auth_user, "dbward_auth");
  EXPECT_EQ(s.auth_password_file, "/etc/dbward/auth.pass");
  EXPECT_EQ(s.auth_query, "SELECT usename, passwd FROM dbward.user_lookup($1)");
  EXPECT_EQ(s.cache_ms, 30'000u);
  ExpectPos(s.password_pos, 11, 27);
  cfg = ParseOk(std::string(kPg) + "    scram:\n      verifiers: auth_file\n      auth_file: users.txt\n");
  EXPECT_EQ(cfg.listeners[0].scram->source, ScramConfig::Source::kAuthFile);
  EXPECT_EQ(cfg.listeners[0].scram->auth_file, "/etc/dbward/users.txt");
  EXPECT_FALSE(ParseOk(kPg).listeners[0].scram) << "off unless present";
}

TEST(ConfigScram, Mistakes) {
  const std::string scram = std::string(kPg) + "    scram:\n";
  EXPECT_EQ(ParseError(scram + "      auth_user: a\n"),
            "/etc/dbward/x.yaml:9:7: scram needs verifiers: auth_query or auth_file (where dbward gets the users' SCRAM "
            "verifiers)");
  EXPECT_EQ(ParseError(scram + "      verifiers: ldap\n"),
            "/etc/dbward/x.yaml:9:18: scram.verifiers must be auth_query or auth_file");
  EXPECT_EQ(ParseError(scram + "      verifiers: auth_query\n      auth_user: a\n"),
            "/etc/dbward/x.yaml:9:7: scram with verifiers: auth_query needs auth_user and auth_password_file (the role "
            "that runs auth_query)");
  EXPECT_EQ(ParseError(scram + "      verifiers: auth_query\n      auth_user: a\n      auth_password_file: p\n"
                               "      auth_query: SELECT passwd FROM pg_shadow WHERE usename = 'x'\n"),
            "/etc/dbward/x.yaml:12:19: scram.auth_query must take the user name as $1 (it is sent as a parameter, never "
            "spliced)");
  EXPECT_EQ(ParseError(scram + "      verifiers: auth_file\n"),
            "/etc/dbward/x.yaml:9:7: scram with verifiers: auth_file needs auth_file (\"user\" \"SCRAM-SHA-256$...\" "
            "lines)");
  EXPECT_EQ(ParseError(scram + "      verifiers: auth_file\n      auth_file: u\n      auth_user: a\n"),
            "/etc/dbward/x.yaml:11:18: scram.auth_user is for verifiers: auth_query");
  std::string tds = kPg;
  tds.replace(tds.find("postgres"), 8, "tds");
  EXPECT_EQ(ParseError(tds + "    scram:\n      verifiers: auth_file\n      auth_file: u\n"),
            "/etc/dbward/x.yaml:9:7: scram is for protocol: postgres (SCRAM mediation)");
}

}  // namespace
}  // namespace dbward::proxy

namespace dbward::proxy {
namespace {

// A postgres listener with client TLS and a canary; policy tests append.
constexpr char kPgListener[] =
    "listeners:\n"                          // 1
    "  - name: pg\n"                        // 2
    "    protocol: postgres\n"              // 3
    "    listen: 127.0.0.1:6432\n"          // 4
    "    backend: db.internal:5432\n"       // 5
    "    backend_tls: {ca_file: ca.pem}\n"  // 6
    "    client_tls: {cert_file: p.pem, key_file: p.key}\n"  // 7
    "    canary: {sample: 0}\n";            // 8

TEST(ConfigPolicyTest, RulesParseInOrder) {
  Config cfg = ParseOk(std::string(kPgListener) +
                       "    policy:\n"                                                     // 9
                       "      - name: legacy\n"                                            // 10
                       "        match: {clients: [10.20.0.0/16], users: [report_ro], applications: [\"legacy-*\"],"
                       " libraries: [\"jTDS*\"], databases: [sales]}\n"                    // 11
                       "        require: tls\n"                                            // 12
                       "        action: deny\n"                                            // 13
                       "        from: 2027-01-15\n"                                        // 14
                       "      - match: {}\n"                                               // 15
                       "        require: validated\n"                                      // 16
                       "        action: warn\n");                                          // 17
  const std::vector<PolicyRule>& p = cfg.listeners[0].policy;
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "legacy");
  EXPECT_EQ(p[0].clients.size(), 1u);
  EXPECT_EQ(p[0].users, std::vector<std::string>{"report_ro"});
  EXPECT_EQ(p[0].applications, std::vector<std::string>{"legacy-*"});
  EXPECT_EQ(p[0].libraries, std::vector<std::string>{"jTDS*"});
  EXPECT_EQ(p[0].databases, std::vector<std::string>{"sales"});
  EXPECT_EQ(p[0].require, ProtectionLevel::kTls);
  EXPECT_EQ(p[0].action, PolicyRule::Action::kDeny);
  ASSERT_TRUE(p[0].from_ms);
  EXPECT_EQ(*p[0].from_ms, 1799971200000);
  EXPECT_EQ(p[0].line, 10);
  EXPECT_EQ(p[0].column, 9);
  EXPECT_EQ(p[1].require, ProtectionLevel::kValidated);
  EXPECT_EQ(p[1].action, PolicyRule::Action::kWarn);
  EXPECT_EQ(p[1].line, 15);
}

TEST(ConfigPolicyTest, Errors) {
  const std::string base = kPgListener;
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: encrypted\n"),
            "/etc/dbward/x.yaml:11:18: require must be plaintext, login-only, tls or validated");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: tls\n        action: block\n"),
            "/etc/dbward/x.yaml:12:17: action must be deny or warn (warn: audit and count only, a dry run)");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {user: [x]}\n        require: tls\n"),
            "/etc/dbward/x.yaml:10:17: unknown key 'user' in policy match (allowed: applications, clients, databases, "
            "identities, libraries, users)");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {clients: [10.0.0.0/33]}\n        require: tls\n"),
            "/etc/dbward/x.yaml:10:27: match.clients entry '10.0.0.0/33' is not a CIDR like 10.0.0.0/8 or fd00::/8");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: tls\n        from: soon\n"),
            "/etc/dbward/x.yaml:12:15: from must be a date like 2027-01-15 (UTC) or an ISO 8601 time");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: tls\n        action: warn\n"
                              "        from: 2027-01-15\n"),
            "/etc/dbward/x.yaml:13:15: from applies to action: deny (warn until then)");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: login-only\n"),
            "/etc/dbward/x.yaml:10:9: policy rule requires login-only, which only TDS has; use plaintext or tls");
  EXPECT_EQ(ParseError(base + "    policy:\n      - require: tls\n"),
            "/etc/dbward/x.yaml:10:9: policy rule needs match: a mapping ({} matches every client)");
  EXPECT_EQ(ParseError(base + "    policy: []\n"),
            "/etc/dbward/x.yaml:9:13: policy must be a list of rules, e.g. - {match: {clients: [10.0.0.0/8]}, require: "
            "tls, action: deny}");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {identities: [\"spiffe://*\"]}\n        require: tls\n"),
            "/etc/dbward/x.yaml:10:9: match.identities needs client certificates (client_tls.ca_file)");
  // validated needs a way to prove it.
  std::string no_canary = base.substr(0, base.find("    canary:"));
  std::string err = ParseError(no_canary + "    policy:\n      - match: {}\n        require: validated\n");
  EXPECT_EQ(err.substr(0, err.find(',')), "/etc/dbward/x.yaml:9:9: policy rule requires validated");
}

// Every key of the policy and PROXY protocol features, wrong, points at
// its own place.
TEST(ConfigPolicyTest, EveryWrongKeyNamesItsPlace) {
  const std::string base = kPgListener;
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {clients: 10.0.0.0/8}\n        require: tls\n"),
            "/etc/dbward/x.yaml:10:26: match.clients must be a list of CIDRs");
  EXPECT_EQ(ParseError(base + "    policy:\n      - name: \"\"\n        match: {}\n        require: tls\n"),
            "/etc/dbward/x.yaml:10:15: policy rule name must not be empty");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n        require: tls\n        when: now\n"),
            "/etc/dbward/x.yaml:12:9: unknown key 'when' in policy rule (allowed: action, from, match, name, require)");
  EXPECT_EQ(ParseError(base + "    policy:\n      - match: {}\n"),
            "/etc/dbward/x.yaml:10:9: policy rule needs require: plaintext, login-only, tls or validated");
  EXPECT_EQ(ParseError(base + "    proxy_protocol: {trusted: [10.0.0.0/8], versions: [2]}\n"),
            "/etc/dbward/x.yaml:9:45: unknown key 'versions' in proxy_protocol (allowed: trusted)");
  EXPECT_EQ(ParseError(base + "    proxy_protocol: {}\n"),
            "/etc/dbward/x.yaml:9:21: proxy_protocol must be a mapping with trusted: [CIDRs of the load balancers that "
            "send the header]");
  EXPECT_EQ(ParseError(base + "    proxy_protocol: {trusted: 10.0.0.1}\n"),
            "/etc/dbward/x.yaml:9:31: proxy_protocol.trusted must be a non-empty list of CIDRs");
  EXPECT_EQ(ParseError(base + "    backend_proxy_protocol: v3\n"),
            "/etc/dbward/x.yaml:9:29: backend_proxy_protocol must be v2 or off (v1 carries no TLS facts)");
}

TEST(ConfigClientCertTest, Parse) {
  Config cfg = ParseOk(
      "listeners:\n"
      "  - name: pg\n"
      "    protocol: postgres\n"
      "    listen: 127.0.0.1:6432\n"
      "    backend: db.internal:5432\n"
      "    backend_tls: {ca_file: ca.pem}\n"
      "    client_tls:\n"
      "      cert_file: p.pem\n"
      "      key_file: p.key\n"
      "      ca_file: clients.pem\n"
      "      verify: optional\n"
      "      allow:\n"
      "        cn: [\"report-*\"]\n"
      "        dns: [\"*.apps.test\"]\n"
      "        uri: [\"spiffe://dbward.test/ns/reports/*\"]\n"
      "        spki: [\"sha256//p4KKa2DIHE2dNzvPYcS4ntgY9/iyOzqERq6BC09mjlM=\"]\n");
  const ListenerConfig& l = cfg.listeners[0];
  ASSERT_TRUE(l.client_tls && l.client_tls->client_certs);
  const ClientCertConfig& c = *l.client_tls->client_certs;
  EXPECT_EQ(c.ca_file, "/etc/dbward/clients.pem");
  EXPECT_EQ(c.verify, ClientCertConfig::Verify::kOptional);
  EXPECT_EQ(c.allow.cns, std::vector<std::string>{"report-*"});
  EXPECT_EQ(c.allow.spki, std::vector<std::string>{"p4KKa2DIHE2dNzvPYcS4ntgY9/iyOzqERq6BC09mjlM="});
}

TEST(ConfigClientCertTest, Errors) {
  const std::string head =
      "listeners:\n"                          // 1
      "  - name: pg\n"                        // 2
      "    protocol: postgres\n"              // 3
      "    listen: 127.0.0.1:6432\n"          // 4
      "    backend: db.internal:5432\n"       // 5
      "    backend_tls: {ca_file: ca.pem}\n"  // 6
      "    client_tls:\n"                     // 7
      "      cert_file: p.pem\n"              // 8
      "      key_file: p.key\n";              // 9
  EXPECT_EQ(ParseError(head + "      verify: required\n"),
            "/etc/dbward/x.yaml:10:15: client certificates need client_tls.ca_file: the CA that issues them");
  EXPECT_EQ(ParseError(head + "      ca_file: c.pem\n      verify: yes\n"),
            "/etc/dbward/x.yaml:11:15: client_tls.verify must be 'required' (every TLS client presents a certificate) "
            "or 'optional' (a certificate is asked for; one that is sent must verify)");
  EXPECT_EQ(ParseError(head + "      ca_file: c.pem\n      allow: {}\n"),
            "/etc/dbward/x.yaml:11:14: client_tls.allow is empty; remove it to allow any certificate from ca_file");
  EXPECT_EQ(ParseError(head + "      ca_file: c.pem\n      allow: {spki: [abc]}\n"),
            "/etc/dbward/x.yaml:11:22: client_tls.allow.spki entry must be a SHA-256 SPKI pin, sha256//BASE64");
  EXPECT_EQ(ParseError(head + "      ca_file: c.pem\n      allow: {subject: [x]}\n"),
            "/etc/dbward/x.yaml:11:15: unknown key 'subject' in client_tls.allow (allowed: cn, dns, spki, uri)");
}

TEST(ConfigBackendTrustTest, PinsAndCrl) {
  Config cfg = ParseOk(std::string(kMinimal) +
                       "      pin_spki: [\"sha256//p4KKa2DIHE2dNzvPYcS4ntgY9/iyOzqERq6BC09mjlM=\","
                       " \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n"
                       "      crl_file: ca.crl\n");
  const BackendTlsConfig& b = cfg.listeners[0].backend_tls;
  EXPECT_EQ(b.pin_spki, (std::vector<std::string>{"p4KKa2DIHE2dNzvPYcS4ntgY9/iyOzqERq6BC09mjlM=",
                                                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}));
  EXPECT_EQ(b.crl_file, "/etc/dbward/ca.crl");
  // One pin may be written without a list.
  cfg = ParseOk(std::string(kMinimal) + "      pin_spki: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
  EXPECT_EQ(cfg.listeners[0].backend_tls.pin_spki.size(), 1u);
  std::string err = ParseError(std::string(kMinimal) + "      pin_spki: [md5//abc]\n");
  EXPECT_EQ(err.substr(0, err.find(',')),
            "/etc/dbward/x.yaml:8:18: backend_tls.pin_spki entry must be a SHA-256 SPKI pin");
  EXPECT_EQ(ParseError(std::string(kMinimal) + "      pin_spki: []\n"),
            "/etc/dbward/x.yaml:8:17: backend_tls.pin_spki needs at least one pin (remove the key to pin nothing)");
}

TEST(ConfigProxyProtocolTest, InboundAndOutbound) {
  Config cfg = ParseOk(std::string(kMinimal) +
                       "    proxy_protocol: {trusted: [10.0.0.0/8, \"fd00::/8\"]}\n"
                       "    backend_proxy_protocol: v2\n");
  ASSERT_TRUE(cfg.listeners[0].proxy_protocol);
  EXPECT_EQ(cfg.listeners[0].proxy_protocol->trusted.size(), 2u);
  EXPECT_TRUE(cfg.listeners[0].backend_proxy_protocol);
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    proxy_protocol: {trusted: []}\n"),
            "/etc/dbward/x.yaml:8:31: proxy_protocol.trusted must be a non-empty list of CIDRs");
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    proxy_protocol: on\n"),
            "/etc/dbward/x.yaml:8:21: proxy_protocol must be a mapping with trusted: [CIDRs of the load balancers that "
            "send the header]");
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    proxy_protocol: {trusted: [balancer]}\n"),
            "/etc/dbward/x.yaml:8:32: proxy_protocol.trusted entry 'balancer' is not a CIDR like 10.0.0.0/8 or "
            "fd00::/8");
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    backend_proxy_protocol: v1\n"),
            "/etc/dbward/x.yaml:8:29: backend_proxy_protocol must be v2 or off (v1 carries no TLS facts)");
}

TEST(ConfigTest, ShutdownDelayParsesAndDefaultsToZero) {
  EXPECT_EQ(ParseOk(kMinimal).shutdown_delay_ms, 0u);
  EXPECT_EQ(ParseOk(std::string("shutdown_delay: 5s\n") + kMinimal).shutdown_delay_ms, 5000u);
  EXPECT_NE(ParseError(std::string("shutdown_delay: soon\n") + kMinimal).find("shutdown_delay"), std::string::npos);
}

// ---- ${VAR} from the environment ----

class ConfigEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("DBWARD_TEST_BACKEND", "db.prod.internal:5433", 1);
    setenv("DBWARD_TEST_EMPTY", "", 1);
    setenv("DBWARD_TEST_TRICKY", "x: y\n- z", 1);
    unsetenv("DBWARD_TEST_UNSET");
  }
  void TearDown() override {
    unsetenv("DBWARD_TEST_BACKEND");
    unsetenv("DBWARD_TEST_EMPTY");
    unsetenv("DBWARD_TEST_TRICKY");
  }
  static std::string With(const std::string& backend, const std::string& name = "main") {
    return "listeners:\n"
           "  - name: " + name + "\n"
           "    protocol: tcp\n"
           "    listen: 127.0.0.1:6432\n"
           "    backend: " + backend + "\n"
           "    backend_tls:\n"
           "      ca_file: ca.pem\n";
  }
};

TEST_F(ConfigEnvTest, VariablesExpandInsideScalars) {
  Config cfg = ParseOk(With("${DBWARD_TEST_BACKEND}"));
  ASSERT_EQ(cfg.listeners.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].backend_host, "db.prod.internal");
  EXPECT_EQ(cfg.listeners[0].backend_port, 5433);
  cfg = ParseOk(With("\"db-${DBWARD_TEST_EMPTY}1:5432\""));
  EXPECT_EQ(cfg.listeners[0].backend_host, "db-1");
}

TEST_F(ConfigEnvTest, DefaultsApplyWhenUnsetOrEmpty) {
  EXPECT_EQ(ParseOk(With("${DBWARD_TEST_UNSET:-fallback:5432}")).listeners[0].backend_host, "fallback");
  EXPECT_EQ(ParseOk(With("${DBWARD_TEST_EMPTY:-fallback:5432}")).listeners[0].backend_host, "fallback");
}

TEST_F(ConfigEnvTest, UnsetVariableIsNamedAtItsPosition) {
  std::string err = ParseError(With("${DBWARD_TEST_UNSET}"));
  EXPECT_EQ(err.rfind("/etc/dbward/x.yaml:5:14: environment variable DBWARD_TEST_UNSET is not set", 0), 0u)
      << err;
  EXPECT_NE(err.find("${DBWARD_TEST_UNSET:-value}"), std::string::npos) << err;
}

// The policy's application glob is free text: what a variable holds lands there verbatim.
std::string AppGlob(const std::string& yaml_scalar) {
  Config cfg = ParseOk(std::string(kPgListener) + "    policy:\n      - match: {applications: [" + yaml_scalar +
                       "]}\n        require: tls\n        action: warn\n");
  return cfg.listeners.empty() || cfg.listeners[0].policy.empty() || cfg.listeners[0].policy[0].applications.empty()
             ? "?"
             : cfg.listeners[0].policy[0].applications[0];
}

TEST_F(ConfigEnvTest, AValueCannotChangeTheDocumentsStructure) {
  // The variable holds YAML syntax; it stays one scalar.
  EXPECT_EQ(AppGlob("\"${DBWARD_TEST_TRICKY}\""), "x: y\n- z");
  // Unquoted inside a flow list, "${" is YAML syntax: the parser says so.
  EXPECT_NE(ParseError(std::string(kPgListener) + "    policy:\n      - match: {applications: [${DBWARD_TEST_TRICKY}]}\n"
                                                 "        require: tls\n        action: warn\n")
                .find("YAML: end of sequence flow not found"),
            std::string::npos);
}

TEST_F(ConfigEnvTest, DollarDollarIsALiteralDollarAndBadReferencesAreErrors) {
  EXPECT_EQ(AppGlob("\"a$${DBWARD_TEST_BACKEND}\""), "a${DBWARD_TEST_BACKEND}");
  EXPECT_EQ(AppGlob("cost$5"), "cost$5");
  EXPECT_NE(ParseError(With("${DBWARD_TEST_BACKEND")).find("unterminated '${'"), std::string::npos);
  EXPECT_NE(ParseError(With("${1BAD}")).find("is not an environment variable reference"), std::string::npos);
}

TEST(ConfigWarmBackendsTest, PostgresOnlyWithACountAndAMaxAgeBelowTheServersTimeouts) {
  std::string pg = kMinimal;
  pg.replace(pg.find("protocol: tcp"), 13, "protocol: postgres");
  Config cfg = ParseOk(pg + "    warm_backends: {count: 4}\n");
  ASSERT_TRUE(cfg.listeners[0].warm_backends);
  EXPECT_EQ(cfg.listeners[0].warm_backends->count, 4u);
  EXPECT_EQ(cfg.listeners[0].warm_backends->max_age_ms, 20'000u);
  EXPECT_EQ(ParseOk(pg + "    warm_backends: {count: 1, max_age: 5s}\n").listeners[0].warm_backends->max_age_ms, 5000u);
  EXPECT_FALSE(ParseOk(pg).listeners[0].warm_backends);
  EXPECT_EQ(ParseError(std::string(kMinimal) + "    warm_backends: {count: 4}\n"),
            "/etc/dbward/x.yaml:8:20: warm_backends is for protocol: postgres (a tcp listener has no protocol "
            "step to do in advance)");
  std::string mysql = kMinimal;
  mysql.replace(mysql.find("protocol: tcp"), 13, "protocol: mysql");
  EXPECT_EQ(ParseError(mysql + "    warm_backends: {count: 4}\n"),
            "/etc/dbward/x.yaml:8:20: warm_backends is for protocol: postgres: MariaDB and MySQL (by default) "
            "count every unused leg closed before its login as a connection error and, after max_connect_errors "
            "of them (100 by default), refuse dbward's address until FLUSH HOSTS; session_resumption (on by default "
            "here) makes backend handshakes cheap instead");
  std::string tds = kMinimal;
  tds.replace(tds.find("protocol: tcp"), 13, "protocol: tds");
  EXPECT_NE(ParseError(tds + "    warm_backends: {count: 4}\n")
                .find("carries the client's own options (instance name, MARS, trace ID)"),
            std::string::npos);
  EXPECT_EQ(ParseError(pg + "    warm_backends: {max_age: 5s}\n"),
            "/etc/dbward/x.yaml:8:20: warm_backends needs count: how many verified backend legs to keep ready (1 to "
            "256)");
  EXPECT_NE(ParseError(pg + "    warm_backends: {count: 0}\n").find("warm_backends.count"), std::string::npos);
  EXPECT_EQ(ParseError(pg + "    warm_backends: {count: 2, max_age: 500ms}\n"),
            "/etc/dbward/x.yaml:8:40: warm_backends.max_age must be between 1s and 10m, and below the server's "
            "authentication_timeout (PostgreSQL's default is 60s)");
  EXPECT_EQ(ParseError(pg + "    backend_proxy_protocol: v2\n    warm_backends: {count: 2}\n"),
            "/etc/dbward/x.yaml:9:20: warm_backends cannot be combined with backend_proxy_protocol: the PROXY header "
            "names the client, and a warm leg is opened before there is one");
  EXPECT_NE(ParseError(pg + "    warm_backends: {count: 2, size: 3}\n").find("size"), std::string::npos);
}

TEST(ConfigSessionResumptionTest, OnForMysqlAndTdsOptInForTcpRefusedForPostgres) {
  auto with = [](const char* protocol, const std::string& extra) {
    std::string c = kMinimal;
    c.replace(c.find("protocol: tcp"), 13, std::string("protocol: ") + protocol);
    return c + extra;
  };
  EXPECT_TRUE(ParseOk(with("mysql", "")).listeners[0].backend_tls.session_resumption);
  EXPECT_TRUE(ParseOk(with("tds", "")).listeners[0].backend_tls.session_resumption);
  EXPECT_FALSE(ParseOk(with("tcp", "")).listeners[0].backend_tls.session_resumption);
  EXPECT_FALSE(ParseOk(with("postgres", "")).listeners[0].backend_tls.session_resumption);
  EXPECT_TRUE(ParseOk(with("tcp", "      session_resumption: true\n")).listeners[0].backend_tls.session_resumption);
  EXPECT_FALSE(ParseOk(with("mysql", "      session_resumption: false\n")).listeners[0].backend_tls.session_resumption);
  EXPECT_FALSE(
      ParseOk(with("postgres", "      session_resumption: false\n")).listeners[0].backend_tls.session_resumption);
  EXPECT_EQ(ParseError(with("postgres", "      session_resumption: true\n")),
            "/etc/dbward/x.yaml:8:27: backend_tls.session_resumption does nothing for protocol: postgres: PostgreSQL "
            "turns TLS session resumption off (no session tickets, no session cache), so every backend leg is a full "
            "handshake; remove the key (warm_backends takes the handshake off the client's path instead)");
  EXPECT_NE(ParseError(with("mysql", "      session_resumption: maybe\n")).find("x.yaml:8:27: backend_tls.session_resumption"),
            std::string::npos);
}

}  // namespace
}  // namespace dbward::proxy


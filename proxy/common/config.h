// dbward's configuration: parsed from YAML, validated completely before
// anything starts. Errors carry file:line:column so editors can jump to them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/common/address.h"
#include "proxy/common/log.h"
#include "proxy/common/policy.h"
#include "tls/canary.h"

namespace dbward::proxy {

enum class Protocol { kTcp, kPostgres, kMysql, kTds };
const char* ProtocolName(Protocol p);
// "tcp", "postgres" (or "postgresql"), "mysql" (or "mariadb"), "tds".
std::optional<Protocol> ParseProtocol(const std::string& name);

struct Position {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

struct BackendTlsConfig {
  bool full_verify = true;  // verify: full | ca
  std::string ca_file;
  std::string server_name;  // defaults to the backend host
  std::string cert_file;
  std::string key_file;
  std::string key_password_file;
  uint16_t min_version = 0x0303;
  bool direct = false;      // postgres: PostgreSQL 17 direct TLS (ALPN postgresql), no SSLRequest
  bool tds_strict = false;  // tds: TDS 8.0, TLS first with ALPN tds/8.0 (SQL Server 2022, Azure SQL)
  // Stronger trust, never weaker: each only adds a reason to refuse.
  std::vector<std::string> pin_spki;  // base64 SHA-256 SPKI pins (sha256// prefix optional); any one matches
  std::string crl_file;               // PEM CRLs of the backend certificate's issuer; reloaded
  // Offer the TLS session of an earlier verified handshake to the same
  // server name (mysql and tds: on unless turned off; tcp: opt-in;
  // postgres: refused, PostgreSQL never resumes).
  bool session_resumption = false;
  Position pos, ca_pos, cert_pos, key_pos, password_pos, pin_pos, crl_pos;
};

// Client certificates on the client leg.
struct ClientCertConfig {
  enum class Verify : uint8_t { kOptional, kRequired };
  std::string ca_file;  // the CAs that issue client certificates
  Verify verify = Verify::kRequired;
  CertAllowList allow;  // empty: any certificate from ca_file
  Position pos, ca_pos;
};

struct ClientTlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string key_password_file;
  uint16_t min_version = 0x0303;
  std::optional<ClientCertConfig> client_certs;  // ca_file given: certificates are asked for
  Position pos, cert_pos, key_pos, password_pos;
};

// PROXY protocol (v1 and v2) from load balancers in front of dbward.
struct ProxyProtocolConfig {
  std::vector<Cidr> trusted;  // only these peers may (and must) send a header
  Position pos;
};

// Canary certificates: offered to a sample of TLS clients to find out which
// ones do not validate certificates.
struct CanaryConfig {
  tls::CanaryMode mode = tls::CanaryMode::kUntrusted;  // untrusted | wrong-name | expired
  double sample = 0.0;             // share of TLS client connections tested
  std::vector<Cidr> clients;       // empty: every client
  uint64_t remember_ms = 24 * 3'600'000ULL;  // a validating address is not tested again for this long
  Position pos;
};

struct Timeouts {
  uint64_t connect_ms = 5'000;
  uint64_t handshake_ms = 15'000;  // from accept until the relay starts
  uint64_t idle_ms = 0;            // 0: no idle limit
};

// postgres: dbward as the SCRAM server to clients and the SCRAM client to
// the backend, from the user's stored verifier, so that channel binding
// holds on both legs.
struct ScramConfig {
  enum class Source { kAuthQuery, kAuthFile };
  Source source = Source::kAuthQuery;
  std::string auth_user;           // auth_query: logs in over the verified backend leg
  std::string auth_password_file;  // its password
  std::string auth_query = "SELECT usename, passwd FROM dbward.user_lookup($1)";
  std::string auth_database;       // where auth_query runs; empty: the client's database
  std::string auth_file;           // "user" "SCRAM-SHA-256$..." lines (PgBouncer's format)
  uint64_t cache_ms = 60'000;      // verifier cache; 0: look up every time
  Position pos, password_pos, file_pos;
};

// tds: following a server's routing answer (Always On read-only routing,
// Azure SQL redirection).
struct RoutingConfig {
  // Host name patterns a login may be routed to; absent: any name, still
  // verified against its certificate; empty: routing is refused.
  std::optional<std::vector<std::string>> allow;
  Position pos;
};

// postgres: backend legs kept connected, TLS-upgraded and verified before
// any client asks, each handed to the next client (warm_backends).
struct WarmBackendsConfig {
  uint32_t count = 0;          // per listener, shared out among the workers
  uint64_t max_age_ms = 20'000;  // recycled before PostgreSQL's authentication_timeout (60 s)
  Position pos;
};

struct ListenerConfig {
  std::string name;
  Protocol protocol = Protocol::kTcp;
  std::string listen_host;
  uint16_t listen_port = 0;
  std::string backend_host;
  uint16_t backend_port = 0;       // 0 with backend_instance: from the SQL Server Browser
  std::string backend_instance;    // tds: backend written HOST\INSTANCE
  RoutingConfig routing;
  std::optional<ScramConfig> scram;  // postgres: SCRAM mediation, off unless present
  std::vector<PolicyRule> policy;    // first match wins; empty: everything allowed
  BackendTlsConfig backend_tls;
  std::optional<ClientTlsConfig> client_tls;
  Timeouts timeouts;
  uint32_t max_connections = 10'000;
  // Connections still before authentication (each may hold a backend
  // connection: MySQL's greeting, a TLS handshake, a CancelRequest), per
  // listener and per client address. Keep them below the backend's own
  // connection limit, so that slow handshakes cannot lock real users out.
  uint32_t max_handshakes = 256;
  uint32_t max_handshakes_per_client = 32;
  bool plaintext_clients = true;  // plaintext_clients: allow | deny
  std::string rsa_key_file;       // mysql: key for caching_sha2 full auth on plaintext legs
  bool require_client_encryption = false;  // tds: client_encryption: require
  std::optional<CanaryConfig> canary;
  std::optional<ProxyProtocolConfig> proxy_protocol;  // inbound headers; off unless present
  bool backend_proxy_protocol = false;  // send a PROXY v2 header (with TLS facts) to the backend
  std::optional<WarmBackendsConfig> warm_backends;
  Position rsa_key_pos;
  Position pos;
};

// The SQL Server Browser dbward answers (UDP): named instances that are
// dbward's own tds listeners.
struct SqlBrowserConfig {
  std::string listen_host;
  uint16_t listen_port = 1434;
  struct Instance {
    std::string name;      // as clients write it after the backslash
    std::string listener;  // a tds listener's name
  };
  std::vector<Instance> instances;
  Position pos;
};

struct Config {
  std::string path;
  int workers = 0;  // 0: one per core
  uint64_t drain_timeout_ms = 30'000;
  // After SIGTERM, how long dbward goes on accepting (with /readyz failing)
  // before it drains: the application container beside it may still be
  // finishing its own work through it.
  uint64_t shutdown_delay_ms = 0;
  std::vector<ListenerConfig> listeners;
  LogLevel log_level = LogLevel::kInfo;
  std::string admin_host;  // empty: no admin listener
  uint16_t admin_port = 0;
  uint64_t admin_check_interval_ms = 30'000;
  uint64_t reload_interval_ms = 2'000;  // how often TLS files are checked for changes
  std::string audit = "stdout";  // stdout | stderr | off | a file path
  std::optional<SqlBrowserConfig> sql_browser;
};

// The backend as the configuration wrote it: "db:1433", "db\\SQLEXPRESS".
std::string BackendText(const ListenerConfig& l);

struct ConfigError {
  std::string file;
  Position pos;
  std::string message;
  // "FILE:LINE:COLUMN: message"
  std::string ToString() const;
};

// Parses and validates the file; relative paths inside it are resolved
// against the file's directory. Does not touch certificates (see
// LoadTlsMaterial in runtime.h).
bool LoadConfig(const std::string& path, Config* out, ConfigError* error);
bool ParseConfigText(const std::string& text, const std::string& path, Config* out,
                     ConfigError* error);


}  // namespace dbward::proxy

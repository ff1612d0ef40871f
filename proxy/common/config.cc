#include "proxy/common/config.h"

#include "proxy/common/time.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <set>
#include <sstream>
#include <thread>

#include "proxy/common/duration.h"
#include "tls/context.h"

namespace dbward::proxy {
namespace {

// Thrown only inside this file, caught in ParseConfigText: yaml-cpp's own
// exceptions and ours stop here and become a ConfigError.
struct Failure {
  Position pos;
  std::string message;
};

Position PosOf(const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.line < 0) return {};
  return {m.line + 1, m.column + 1};
}

[[noreturn]] void Fail(const YAML::Node& n, const std::string& msg) { throw Failure{PosOf(n), msg}; }
[[noreturn]] void FailAt(const PolicyRule& r, const std::string& msg) { throw Failure{{r.line, r.column}, msg}; }

// ${VAR} and ${VAR:-default} in scalar values come from the environment (a
// Kubernetes Secret or the downward API). Expansion happens after YAML
// parsing, so a value from the environment is always one whole scalar and
// can never add keys or change the document's structure; "$$" is a
// literal "$". An unset variable without a default is an error at the
// scalar's position, never an empty string.
std::string ExpandScalar(const YAML::Node& n, const std::string& in) {
  if (in.find('$') == std::string::npos) return in;
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); i++) {
    char c = in[i];
    if (c != '$' || i + 1 == in.size()) {
      out += c;
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      i++;
      continue;
    }
    if (in[i + 1] != '{') {
      out += c;
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string::npos) Fail(n, "unterminated '${' (write $$ for a literal $)");  // the value itself may be a secret
    std::string body = in.substr(i + 2, close - i - 2);
    std::string name = body, fallback;
    bool has_default = false;
    if (size_t d = body.find(":-"); d != std::string::npos) {
      name = body.substr(0, d);
      fallback = body.substr(d + 2);
      has_default = true;
    }
    bool valid = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
    for (char ch : name) {
      if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) valid = false;
    }
    if (!valid) {
      Fail(n, "'${" + body + "}' is not an environment variable reference: use ${NAME} or ${NAME:-default} with "
              "NAME made of letters, digits and '_' (write $$ for a literal $)");
    }
    const char* value = std::getenv(name.c_str());
    if (value != nullptr && (*value != '\0' || !has_default)) {
      out += value;
    } else if (has_default) {
      out += fallback;
    } else {
      Fail(n, "environment variable " + name + " is not set (used as ${" + name + "}); set it, or give a default "
              "with ${" + name + ":-value}");
    }
    i = close;
  }
  return out;
}

void ExpandEnvironment(YAML::Node n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      std::string expanded = ExpandScalar(n, n.Scalar());
      if (expanded != n.Scalar()) n = expanded;  // keeps the node's mark for later errors
      return;
    }
    case YAML::NodeType::Sequence:
      for (auto item : n) ExpandEnvironment(item);
      return;
    case YAML::NodeType::Map:
      for (auto kv : n) ExpandEnvironment(kv.second);
      return;
    default: return;
  }
}

void CheckKeys(const YAML::Node& map, const std::string& where, const std::set<std::string>& allowed) {
  if (!map.IsMap()) Fail(map, where + " must be a mapping");
  std::set<std::string> seen;
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    // yaml-cpp keeps the first of two equal keys; a second "verify: full"
    // appended to tighten security would be ignored silently.
    if (!seen.insert(key).second) Fail(kv.first, "duplicate key '" + key + "' in " + where);
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      Fail(kv.first, "unknown key '" + key + "' in " + where + " (allowed: " + list + ")");
    }
  }
}

std::string Scalar(const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) Fail(n, what + " must be a string");
  return n.Scalar();
}

std::string NonEmpty(const YAML::Node& n, const std::string& what) {
  std::string s = Scalar(n, what);
  if (s.empty()) Fail(n, what + " must not be empty");
  return s;
}

uint64_t Duration(const YAML::Node& n, const std::string& what) {
  uint64_t ms;
  if (!n.IsScalar() || !ParseDuration(n.Scalar(), &ms)) {
    Fail(n, what + " must be a duration such as 500ms, 10s, 5m or 1h");
  }
  return ms;
}

uint64_t Unsigned(const YAML::Node& n, const std::string& what, uint64_t lo, uint64_t hi) {
  std::string s = Scalar(n, what);
  uint64_t v = 0;
  if (s.empty() || s.size() > 12) Fail(n, what + " must be a whole number");
  for (char c : s) {
    if (c < '0' || c > '9') Fail(n, what + " must be a whole number");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < lo || v > hi) {
    Fail(n, what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return v;
}

bool Bool(const YAML::Node& n, const std::string& what) {
  std::string s = n.IsScalar() ? n.Scalar() : "";
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(n, what + " must be true or false");
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

uint16_t TlsVersion(const YAML::Node& n) {
  uint16_t v;
  if (!n.IsScalar() || !tls::ParseTlsVersion(n.Scalar(), &v)) {
    Fail(n, "min_version must be \"1.2\" or \"1.3\" (older TLS versions are not offered)");
  }
  return v;
}

BackendTlsConfig ParseBackendTls(const YAML::Node& n, const std::string& dir) {
  CheckKeys(n, "backend_tls",
            {"verify", "ca_file", "server_name", "cert_file", "key_file", "key_password_file",
             "min_version", "direct", "tds_strict", "pin_spki", "crl_file", "session_resumption"});
  BackendTlsConfig t;
  t.pos = PosOf(n);
  if (n["verify"]) {
    std::string v = Scalar(n["verify"], "backend_tls.verify");
    if (v == "full") {
      t.full_verify = true;
    } else if (v == "ca") {
      t.full_verify = false;
    } else {
      Fail(n["verify"], "backend_tls.verify must be 'full' (chain and name) or 'ca' (chain only); "
                        "verification cannot be turned off");
    }
  }
  if (n["ca_file"]) {
    t.ca_file = Resolve(dir, NonEmpty(n["ca_file"], "backend_tls.ca_file"));
    t.ca_pos = PosOf(n["ca_file"]);
  }
  if (n["server_name"]) t.server_name = NonEmpty(n["server_name"], "backend_tls.server_name");
  if (n["cert_file"]) {
    t.cert_file = Resolve(dir, NonEmpty(n["cert_file"], "backend_tls.cert_file"));
    t.cert_pos = PosOf(n["cert_file"]);
  }
  if (n["key_file"]) {
    t.key_file = Resolve(dir, NonEmpty(n["key_file"], "backend_tls.key_file"));
    t.key_pos = PosOf(n["key_file"]);
  }
  if (n["key_password_file"]) {
    t.key_password_file = Resolve(dir, NonEmpty(n["key_password_file"], "backend_tls.key_password_file"));
    t.password_pos = PosOf(n["key_password_file"]);
  }
  if (t.cert_file.empty() != t.key_file.empty()) {
    Fail(n, "backend_tls: cert_file and key_file go together (client certificate)");
  }
  if (!t.key_password_file.empty() && t.key_file.empty()) {
    Fail(n["key_password_file"], "backend_tls.key_password_file needs key_file");
  }
  if (n["min_version"]) t.min_version = TlsVersion(n["min_version"]);
  if (n["direct"]) t.direct = Bool(n["direct"], "backend_tls.direct");
  if (n["tds_strict"]) t.tds_strict = Bool(n["tds_strict"], "backend_tls.tds_strict");
  if (n["pin_spki"]) {
    const YAML::Node& p = n["pin_spki"];
    t.pin_pos = PosOf(p);
    std::vector<YAML::Node> items;
    if (p.IsSequence()) {
      for (const auto& item : p) items.push_back(item);
    } else {
      items.push_back(p);
    }
    if (items.empty()) Fail(p, "backend_tls.pin_spki needs at least one pin (remove the key to pin nothing)");
    for (const YAML::Node& item : items) {
      std::string pin = tls::NormalizeSpkiPin(Scalar(item, "backend_tls.pin_spki entry"));
      if (pin.empty()) {
        Fail(item, "backend_tls.pin_spki entry must be a SHA-256 SPKI pin, sha256//BASE64 (44 characters); get it "
                   "with: openssl x509 -in CERT -pubkey -noout | openssl pkey -pubin -outform der | "
                   "openssl dgst -sha256 -binary | base64");
      }
      t.pin_spki.push_back(pin);
    }
  }
  if (n["crl_file"]) {
    t.crl_file = Resolve(dir, NonEmpty(n["crl_file"], "backend_tls.crl_file"));
    t.crl_pos = PosOf(n["crl_file"]);
  }
  return t;
}

std::vector<std::string> Patterns(const YAML::Node& n, const std::string& what) {
  std::vector<std::string> out;
  if (!n.IsSequence()) Fail(n, what + " must be a list");
  for (const auto& item : n) out.push_back(NonEmpty(item, what + " entry"));
  return out;
}

ClientCertConfig ParseClientCerts(const YAML::Node& n, const std::string& dir) {
  ClientCertConfig c;
  c.pos = PosOf(n);
  c.ca_file = Resolve(dir, NonEmpty(n["ca_file"], "client_tls.ca_file"));
  c.ca_pos = PosOf(n["ca_file"]);
  if (n["verify"]) {
    std::string v = Scalar(n["verify"], "client_tls.verify");
    if (v == "required") {
      c.verify = ClientCertConfig::Verify::kRequired;
    } else if (v == "optional") {
      c.verify = ClientCertConfig::Verify::kOptional;
    } else {
      Fail(n["verify"], "client_tls.verify must be 'required' (every TLS client presents a certificate) or "
                        "'optional' (a certificate is asked for; one that is sent must verify)");
    }
  }
  if (n["allow"]) {
    const YAML::Node& a = n["allow"];
    if (!a.IsMap()) Fail(a, "client_tls.allow must be a mapping with cn, dns, uri or spki lists");
    CheckKeys(a, "client_tls.allow", {"cn", "dns", "uri", "spki"});
    if (a["cn"]) c.allow.cns = Patterns(a["cn"], "client_tls.allow.cn");
    if (a["dns"]) c.allow.dns = Patterns(a["dns"], "client_tls.allow.dns");
    if (a["uri"]) c.allow.uris = Patterns(a["uri"], "client_tls.allow.uri");
    if (a["spki"]) {
      if (!a["spki"].IsSequence()) Fail(a["spki"], "client_tls.allow.spki must be a list");
      for (const auto& item : a["spki"]) {
        std::string pin = tls::NormalizeSpkiPin(Scalar(item, "client_tls.allow.spki entry"));
        if (pin.empty()) Fail(item, "client_tls.allow.spki entry must be a SHA-256 SPKI pin, sha256//BASE64");
        c.allow.spki.push_back(pin);
      }
    }
    if (!c.allow.restricted()) Fail(a, "client_tls.allow is empty; remove it to allow any certificate from ca_file");
  }
  return c;
}

ClientTlsConfig ParseClientTls(const YAML::Node& n, const std::string& dir) {
  CheckKeys(n, "client_tls", {"cert_file", "key_file", "key_password_file", "min_version", "ca_file", "verify", "allow"});
  ClientTlsConfig t;
  t.pos = PosOf(n);
  if (!n["cert_file"] || !n["key_file"]) Fail(n, "client_tls needs cert_file and key_file");
  t.cert_file = Resolve(dir, NonEmpty(n["cert_file"], "client_tls.cert_file"));
  t.cert_pos = PosOf(n["cert_file"]);
  t.key_file = Resolve(dir, NonEmpty(n["key_file"], "client_tls.key_file"));
  t.key_pos = PosOf(n["key_file"]);
  if (n["key_password_file"]) {
    t.key_password_file = Resolve(dir, NonEmpty(n["key_password_file"], "client_tls.key_password_file"));
    t.password_pos = PosOf(n["key_password_file"]);
  }
  if (n["min_version"]) t.min_version = TlsVersion(n["min_version"]);
  if (n["ca_file"]) {
    t.client_certs = ParseClientCerts(n, dir);
  } else if (n["verify"] || n["allow"]) {
    Fail(n["verify"] ? n["verify"] : n["allow"],
         "client certificates need client_tls.ca_file: the CA that issues them");
  }
  return t;
}

// A SQL Server instance name as MC-SQLR carries it.
bool ValidInstanceName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (c == ';' || c == ':' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

std::vector<PolicyRule> ParsePolicy(const YAML::Node& n) {
  if (!n.IsSequence() || n.size() == 0) {
    Fail(n, "policy must be a list of rules, e.g. - {match: {clients: [10.0.0.0/8]}, require: tls, action: deny}");
  }
  std::vector<PolicyRule> rules;
  for (const auto& r : n) {
    if (!r.IsMap()) Fail(r, "a policy rule must be a mapping with match, require and action");
    CheckKeys(r, "policy rule", {"name", "match", "require", "action", "from"});
    PolicyRule rule;
    rule.line = PosOf(r).line;
    rule.column = PosOf(r).column;
    if (r["name"]) rule.name = NonEmpty(r["name"], "policy rule name");
    if (!r["match"] || !r["match"].IsMap()) {
      Fail(r["match"] ? r["match"] : r, "policy rule needs match: a mapping ({} matches every client)");
    }
    const YAML::Node& m = r["match"];
    CheckKeys(m, "policy match", {"clients", "users", "applications", "libraries", "databases", "identities"});
    if (m["clients"]) {
      if (!m["clients"].IsSequence()) Fail(m["clients"], "match.clients must be a list of CIDRs");
      for (const auto& item : m["clients"]) {
        std::string cidr = Scalar(item, "match.clients entry");
        std::optional<Cidr> c = Cidr::Parse(cidr);
        if (!c) Fail(item, "match.clients entry '" + cidr + "' is not a CIDR like 10.0.0.0/8 or fd00::/8");
        rule.clients.push_back(*c);
      }
    }
    if (m["users"]) rule.users = Patterns(m["users"], "match.users");
    if (m["applications"]) rule.applications = Patterns(m["applications"], "match.applications");
    if (m["libraries"]) rule.libraries = Patterns(m["libraries"], "match.libraries");
    if (m["databases"]) rule.databases = Patterns(m["databases"], "match.databases");
    if (m["identities"]) rule.identities = Patterns(m["identities"], "match.identities");
    if (!r["require"]) Fail(r, "policy rule needs require: plaintext, login-only, tls or validated");
    std::optional<ProtectionLevel> level = ParseProtectionLevel(Scalar(r["require"], "require"));
    if (!level) Fail(r["require"], "require must be plaintext, login-only, tls or validated");
    rule.require = *level;
    if (r["action"]) {
      std::string a = Scalar(r["action"], "action");
      if (a == "deny") {
        rule.action = PolicyRule::Action::kDeny;
      } else if (a == "warn") {
        rule.action = PolicyRule::Action::kWarn;
      } else {
        Fail(r["action"], "action must be deny or warn (warn: audit and count only, a dry run)");
      }
    }
    if (r["from"]) {
      rule.from_text = Scalar(r["from"], "from");
      std::optional<int64_t> t = ParseIsoTime(rule.from_text);
      if (!t) Fail(r["from"], "from must be a date like 2027-01-15 (UTC) or an ISO 8601 time");
      if (rule.action != PolicyRule::Action::kDeny) Fail(r["from"], "from applies to action: deny (warn until then)");
      rule.from_ms = *t;
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

ScramConfig ParseScram(const YAML::Node& n, const std::string& dir, Protocol protocol) {
  if (protocol != Protocol::kPostgres) Fail(n, "scram is for protocol: postgres (SCRAM mediation)");
  if (!n.IsMap()) Fail(n, "scram must be a mapping with verifiers: auth_query or auth_file");
  CheckKeys(n, "scram", {"verifiers", "auth_user", "auth_password_file", "auth_query", "auth_database", "auth_file",
                         "cache"});
  ScramConfig s;
  s.pos = PosOf(n);
  if (!n["verifiers"]) Fail(n, "scram needs verifiers: auth_query or auth_file (where dbward gets the users' SCRAM verifiers)");
  std::string source = Scalar(n["verifiers"], "scram.verifiers");
  if (source == "auth_query") {
    s.source = ScramConfig::Source::kAuthQuery;
  } else if (source == "auth_file") {
    s.source = ScramConfig::Source::kAuthFile;
  } else {
    Fail(n["verifiers"], "scram.verifiers must be auth_query or auth_file");
  }
  if (n["auth_user"]) s.auth_user = NonEmpty(n["auth_user"], "scram.auth_user");
  if (n["auth_password_file"]) {
    s.auth_password_file = Resolve(dir, NonEmpty(n["auth_password_file"], "scram.auth_password_file"));
    s.password_pos = PosOf(n["auth_password_file"]);
  }
  if (n["auth_query"]) s.auth_query = NonEmpty(n["auth_query"], "scram.auth_query");
  if (n["auth_database"]) s.auth_database = NonEmpty(n["auth_database"], "scram.auth_database");
  if (n["auth_file"]) {
    s.auth_file = Resolve(dir, NonEmpty(n["auth_file"], "scram.auth_file"));
    s.file_pos = PosOf(n["auth_file"]);
  }
  if (n["cache"]) s.cache_ms = Duration(n["cache"], "scram.cache");
  if (s.source == ScramConfig::Source::kAuthQuery) {
    if (s.auth_user.empty() || s.auth_password_file.empty()) {
      Fail(n, "scram with verifiers: auth_query needs auth_user and auth_password_file (the role that runs auth_query)");
    }
    if (s.auth_query.find("$1") == std::string::npos) {
      Fail(n["auth_query"], "scram.auth_query must take the user name as $1 (it is sent as a parameter, never spliced)");
    }
    if (n["auth_file"]) Fail(n["auth_file"], "scram.auth_file is for verifiers: auth_file");
  } else {
    if (s.auth_file.empty()) Fail(n, "scram with verifiers: auth_file needs auth_file (\"user\" \"SCRAM-SHA-256$...\" lines)");
    for (const char* k : {"auth_user", "auth_password_file", "auth_query", "auth_database"}) {
      if (n[k]) Fail(n[k], std::string("scram.") + k + " is for verifiers: auth_query");
    }
  }
  return s;
}

ListenerConfig ParseListener(const YAML::Node& n, const std::string& dir) {
  CheckKeys(n, "listener",
            {"name", "protocol", "listen", "backend", "backend_tls", "client_tls", "timeouts",
             "max_connections", "plaintext_clients", "rsa_key_file", "client_encryption", "canary", "routing", "scram", "max_handshakes",
             "max_handshakes_per_client", "policy", "proxy_protocol", "backend_proxy_protocol", "warm_backends"});
  ListenerConfig l;
  l.pos = PosOf(n);
  for (const char* required : {"name", "protocol", "listen", "backend", "backend_tls"}) {
    if (!n[required]) {
      Fail(n, std::string("listener is missing '") + required + "'" +
                  (std::string(required) == "backend_tls"
                       ? " (the backend leg is always TLS; give at least backend_tls: {ca_file: ...})"
                       : ""));
    }
  }
  l.name = NonEmpty(n["name"], "name");
  for (char c : l.name) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      Fail(n["name"], "listener name may contain only letters, digits, '-', '_' and '.'");
    }
  }
  std::string proto = Scalar(n["protocol"], "protocol");
  if (proto == "tcp") {
    l.protocol = Protocol::kTcp;
  } else if (proto == "postgres") {
    l.protocol = Protocol::kPostgres;
  } else if (proto == "mysql") {
    l.protocol = Protocol::kMysql;
  } else if (proto == "tds") {
    l.protocol = Protocol::kTds;
  } else {
    Fail(n["protocol"], "unknown protocol '" + proto + "' (expected tcp, postgres, mysql or tds)");
  }
  if (!SplitHostPort(Scalar(n["listen"], "listen"), &l.listen_host, &l.listen_port)) {
    Fail(n["listen"], "listen must be HOST:PORT (e.g. 127.0.0.1:6432 or [::1]:6432)");
  }
  const std::string backend = Scalar(n["backend"], "backend");
  if (size_t slash = backend.find('\\'); slash != std::string::npos) {
    // HOST\INSTANCE: a SQL Server named instance, its port from the Browser.
    l.backend_host = backend.substr(0, slash);
    l.backend_instance = backend.substr(slash + 1);
    if (l.protocol != Protocol::kTds) Fail(n["backend"], "backend HOST\\INSTANCE (a named instance) is for protocol: tds");
    if (l.backend_host.empty() || !ValidInstanceName(l.backend_instance)) {
      Fail(n["backend"], "backend HOST\\INSTANCE needs a host and an instance name of 1 to 32 characters without ';', "
                         "':' or '\\' (e.g. db1\\SQLEXPRESS)");
    }
  } else if (!SplitHostPort(backend, &l.backend_host, &l.backend_port) || l.backend_port == 0) {
    Fail(n["backend"], "backend must be HOST:PORT with a non-zero port" +
                           std::string(l.protocol == Protocol::kTds ? " (or HOST\\INSTANCE for a named instance)" : ""));
  }
  if (!n["backend_tls"].IsMap()) {
    Fail(n["backend_tls"], "backend_tls must be a mapping (the backend leg is always TLS)");
  }
  l.backend_tls = ParseBackendTls(n["backend_tls"], dir);
  if (l.backend_tls.server_name.empty()) l.backend_tls.server_name = l.backend_host;
  if (n["client_tls"]) l.client_tls = ParseClientTls(n["client_tls"], dir);
  if (n["timeouts"]) {
    const YAML::Node& t = n["timeouts"];
    CheckKeys(t, "timeouts", {"connect", "handshake", "idle"});
    if (t["connect"]) l.timeouts.connect_ms = Duration(t["connect"], "timeouts.connect");
    if (t["handshake"]) l.timeouts.handshake_ms = Duration(t["handshake"], "timeouts.handshake");
    if (t["idle"]) l.timeouts.idle_ms = Duration(t["idle"], "timeouts.idle");
    if (l.timeouts.connect_ms == 0 || l.timeouts.handshake_ms == 0) {
      Fail(t, "timeouts.connect and timeouts.handshake must be greater than zero");
    }
  }
  if (n["plaintext_clients"]) {
    std::string v = Scalar(n["plaintext_clients"], "plaintext_clients");
    if (v == "allow") {
      l.plaintext_clients = true;
    } else if (v == "deny") {
      l.plaintext_clients = false;
    } else {
      Fail(n["plaintext_clients"], "plaintext_clients must be 'allow' or 'deny'");
    }
    if (l.protocol == Protocol::kTcp && !l.plaintext_clients) {
      Fail(n["plaintext_clients"], "a tcp listener only has plaintext clients; 'deny' would refuse every connection");
    }
  }
  if (n["rsa_key_file"]) {
    if (l.protocol != Protocol::kMysql) Fail(n["rsa_key_file"], "rsa_key_file is for protocol: mysql");
    l.rsa_key_file = Resolve(dir, NonEmpty(n["rsa_key_file"], "rsa_key_file"));
    l.rsa_key_pos = PosOf(n["rsa_key_file"]);
  }
  if (n["client_encryption"]) {
    if (l.protocol != Protocol::kTds) Fail(n["client_encryption"], "client_encryption is for protocol: tds");
    std::string v = Scalar(n["client_encryption"], "client_encryption");
    if (v == "require") {
      l.require_client_encryption = true;
    } else if (v != "as-requested") {
      Fail(n["client_encryption"], "client_encryption must be 'as-requested' or 'require'");
    }
  }
  if (n["canary"]) {
    const YAML::Node& c = n["canary"];
    CheckKeys(c, "canary", {"mode", "sample", "clients", "remember"});
    CanaryConfig cc;
    cc.pos = PosOf(c);
    if (c["mode"]) {
      std::string mode = Scalar(c["mode"], "canary.mode");
      if (mode == "untrusted") {
        cc.mode = tls::CanaryMode::kUntrusted;
      } else if (mode == "wrong-name") {
        cc.mode = tls::CanaryMode::kWrongName;
      } else if (mode == "expired") {
        cc.mode = tls::CanaryMode::kExpired;
      } else {
        Fail(c["mode"], "canary.mode must be untrusted, wrong-name or expired");
      }
    }
    if (!c["sample"]) Fail(c, "canary needs sample (0.0 to 1.0: the share of TLS clients to test)");
    std::string sample = Scalar(c["sample"], "canary.sample");
    char* end = nullptr;
    cc.sample = strtod(sample.c_str(), &end);
    if (sample.empty() || *end != '\0' || cc.sample < 0 || cc.sample > 1) {
      Fail(c["sample"], "canary.sample must be a number from 0.0 to 1.0");
    }
    if (c["clients"]) {
      if (!c["clients"].IsSequence()) Fail(c["clients"], "canary.clients must be a list of CIDRs");
      for (const auto& item : c["clients"]) {
        std::string cidr = Scalar(item, "canary.clients entry");
        std::optional<Cidr> parsed = Cidr::Parse(cidr);
        if (!parsed) Fail(item, "canary.clients entry '" + cidr + "' is not a CIDR like 10.0.0.0/8 or fd00::/8");
        cc.clients.push_back(*parsed);
      }
    }
    if (c["remember"]) cc.remember_ms = Duration(c["remember"], "canary.remember");
    if (l.protocol == Protocol::kTcp) Fail(c, "a tcp listener has no TLS clients to test; canary needs postgres, mysql or tds");
    if (!l.client_tls) Fail(c, "canary needs client_tls: canary certificates are offered to clients that ask for TLS");
    l.canary = cc;
  }
  if (l.backend_tls.tds_strict && l.protocol != Protocol::kTds) {
    Fail(n["backend_tls"]["tds_strict"], "backend_tls.tds_strict is for protocol: tds (TDS 8.0)");
  }
  if (l.require_client_encryption && !l.client_tls) {
    Fail(n["client_encryption"], "client_encryption: require needs client_tls (dbward's certificate for clients)");
  }
  {
    const YAML::Node& bt = n["backend_tls"];
    if (bt["session_resumption"]) {
      l.backend_tls.session_resumption = Bool(bt["session_resumption"], "backend_tls.session_resumption");
      if (l.backend_tls.session_resumption && l.protocol == Protocol::kPostgres) {
        Fail(bt["session_resumption"],
             "backend_tls.session_resumption does nothing for protocol: postgres: PostgreSQL turns TLS session "
             "resumption off (no session tickets, no session cache), so every backend leg is a full handshake; "
             "remove the key (warm_backends takes the handshake off the client's path instead)");
      }
    } else {
      l.backend_tls.session_resumption = l.protocol == Protocol::kMysql || l.protocol == Protocol::kTds;
    }
  }
  if (l.backend_tls.direct && l.protocol != Protocol::kPostgres) {
    Fail(n["backend_tls"]["direct"], "backend_tls.direct is for protocol: postgres (PostgreSQL 17 direct TLS)");
  }
  if (n["scram"]) l.scram = ParseScram(n["scram"], dir, l.protocol);
  if (n["policy"]) {
    l.policy = ParsePolicy(n["policy"]);
    for (const PolicyRule& r : l.policy) {
      if (r.require == ProtectionLevel::kLoginOnly && l.protocol != Protocol::kTds) {
        FailAt(r, "policy rule requires login-only, which only TDS has; use plaintext or tls");
      }
      if (r.require == ProtectionLevel::kValidated && !l.canary &&
          !(l.client_tls && l.client_tls->client_certs)) {
        FailAt(r, "policy rule requires validated, which a client proves by refusing a canary certificate "
                       "or by presenting a client certificate: add canary: (sample may be 0; clients a validated "
                       "rule covers are always tested until they pass) or client_tls.ca_file");
      }
      if (r.require > ProtectionLevel::kPlaintext && l.protocol == Protocol::kTcp) {
        FailAt(r, "a tcp listener only has plaintext clients; this rule would refuse every one it matches");
      }
      if (!r.identities.empty() && !(l.client_tls && l.client_tls->client_certs)) {
        FailAt(r, "match.identities needs client certificates (client_tls.ca_file)");
      }
    }
  }
  if (n["proxy_protocol"]) {
    const YAML::Node& p = n["proxy_protocol"];
    if (!p.IsMap() || !p["trusted"]) {
      Fail(p, "proxy_protocol must be a mapping with trusted: [CIDRs of the load balancers that send the header]");
    }
    CheckKeys(p, "proxy_protocol", {"trusted"});
    ProxyProtocolConfig pp;
    pp.pos = PosOf(p);
    if (!p["trusted"].IsSequence() || p["trusted"].size() == 0) {
      Fail(p["trusted"], "proxy_protocol.trusted must be a non-empty list of CIDRs");
    }
    for (const auto& item : p["trusted"]) {
      std::string cidr = Scalar(item, "proxy_protocol.trusted entry");
      std::optional<Cidr> c = Cidr::Parse(cidr);
      if (!c) Fail(item, "proxy_protocol.trusted entry '" + cidr + "' is not a CIDR like 10.0.0.0/8 or fd00::/8");
      pp.trusted.push_back(*c);
    }
    l.proxy_protocol = pp;
  }
  if (n["backend_proxy_protocol"]) {
    std::string v = Scalar(n["backend_proxy_protocol"], "backend_proxy_protocol");
    if (v == "v2") {
      l.backend_proxy_protocol = true;
    } else if (v != "off") {
      Fail(n["backend_proxy_protocol"], "backend_proxy_protocol must be v2 or off (v1 carries no TLS facts)");
    }
  }
  if (n["warm_backends"]) {
    const YAML::Node& w = n["warm_backends"];
    if (l.protocol != Protocol::kPostgres) {
      if (l.protocol == Protocol::kMysql) {
        Fail(w, "warm_backends is for protocol: postgres: MariaDB and MySQL (by default) count every unused "
                "leg closed before its login as a connection error and, after max_connect_errors of them (100 "
                "by default), refuse dbward's address until FLUSH HOSTS; session_resumption (on by default here) "
                "makes backend handshakes cheap instead");
      }
      if (l.protocol == Protocol::kTds) {
        Fail(w, "warm_backends is for protocol: postgres: dbward's PRELOGIN to a TDS server carries the "
                "client's own options (instance name, MARS, trace ID), which a leg made in advance does not "
                "have; session_resumption (on by default here) makes backend handshakes cheap instead");
      }
      Fail(w, "warm_backends is for protocol: postgres (a tcp listener has no protocol step to do in advance)");
    }
    if (!w.IsMap()) Fail(w, "warm_backends must be a mapping, e.g. warm_backends: {count: 4, max_age: 20s}");
    CheckKeys(w, "warm_backends", {"count", "max_age"});
    WarmBackendsConfig wb;
    wb.pos = PosOf(w);
    if (!w["count"]) Fail(w, "warm_backends needs count: how many verified backend legs to keep ready (1 to 256)");
    wb.count = static_cast<uint32_t>(Unsigned(w["count"], "warm_backends.count", 1, 256));
    if (w["max_age"]) {
      wb.max_age_ms = Duration(w["max_age"], "warm_backends.max_age");
      // PostgreSQL closes a connection that has not authenticated within
      // authentication_timeout (60 s by default; 1 s to 600 s).
      if (wb.max_age_ms < 1000 || wb.max_age_ms > 600'000) {
        Fail(w["max_age"], "warm_backends.max_age must be between 1s and 10m, and below the server's "
                           "authentication_timeout (PostgreSQL's default is 60s)");
      }
    }
    if (l.backend_proxy_protocol) {
      Fail(w, "warm_backends cannot be combined with backend_proxy_protocol: the PROXY header names the client, "
              "and a warm leg is opened before there is one");
    }
    l.warm_backends = wb;
  }
  if (n["routing"]) {
    const YAML::Node& r = n["routing"];
    if (l.protocol != Protocol::kTds) Fail(r, "routing is for protocol: tds (SQL Server routing answers)");
    if (!r.IsMap()) Fail(r, "routing must be a mapping, e.g. routing: {allow: [\"*.worker.database.windows.net\"]}");
    CheckKeys(r, "routing", {"allow"});
    l.routing.pos = PosOf(r);
    if (r["allow"]) {
      if (!r["allow"].IsSequence()) Fail(r["allow"], "routing.allow must be a list of host name patterns");
      std::vector<std::string> allow;
      for (const auto& item : r["allow"]) {
        std::string pattern = Scalar(item, "routing.allow entry");
        if (!ValidHostPattern(pattern)) {
          Fail(item, "routing.allow entry '" + pattern + "' is not a host name or a pattern like *.example.net");
        }
        allow.push_back(pattern);
      }
      l.routing.allow = std::move(allow);
    }
  }
  if (n["max_connections"]) {
    l.max_connections = static_cast<uint32_t>(Unsigned(n["max_connections"], "max_connections", 1, 1'000'000));
  }
  if (n["max_handshakes"]) {
    l.max_handshakes = static_cast<uint32_t>(Unsigned(n["max_handshakes"], "max_handshakes", 1, 1'000'000));
  }
  if (n["max_handshakes_per_client"]) {
    l.max_handshakes_per_client =
        static_cast<uint32_t>(Unsigned(n["max_handshakes_per_client"], "max_handshakes_per_client", 1, 1'000'000));
  }
  if (l.max_handshakes_per_client > l.max_handshakes) {
    Fail(n["max_handshakes_per_client"] ? n["max_handshakes_per_client"] : n,
         "max_handshakes_per_client (" + std::to_string(l.max_handshakes_per_client) + ") is above max_handshakes (" +
             std::to_string(l.max_handshakes) + ")");
  }
  return l;
}

SqlBrowserConfig ParseSqlBrowser(const YAML::Node& n, const std::vector<ListenerConfig>& listeners) {
  if (!n.IsMap()) Fail(n, "sql_browser must be a mapping with listen and instances");
  CheckKeys(n, "sql_browser", {"listen", "instances"});
  SqlBrowserConfig b;
  b.pos = PosOf(n);
  if (!n["listen"] || !SplitHostPort(Scalar(n["listen"], "sql_browser.listen"), &b.listen_host, &b.listen_port) ||
      b.listen_port == 0) {
    Fail(n["listen"] ? n["listen"] : n, "sql_browser.listen must be HOST:PORT, normally 0.0.0.0:1434");
  }
  const YAML::Node& inst = n["instances"];
  if (!inst || !inst.IsMap() || inst.size() == 0) {
    Fail(inst ? inst : n, "sql_browser.instances must map instance names to tds listeners, e.g. {SQLEXPRESS: mssql}");
  }
  std::set<std::string> seen;
  for (const auto& kv : inst) {
    std::string name = Scalar(kv.first, "sql_browser instance name");
    std::string listener = Scalar(kv.second, "sql_browser.instances." + name);
    if (!ValidInstanceName(name)) {
      Fail(kv.first, "instance name '" + name + "' must have 1 to 32 characters without ';', ':' or '\\'");
    }
    std::string upper = name;
    for (char& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    if (!seen.insert(upper).second) Fail(kv.first, "instance '" + name + "' is listed twice (names are case-insensitive)");
    const ListenerConfig* l = nullptr;
    for (const ListenerConfig& c : listeners) {
      if (c.name == listener) l = &c;
    }
    if (l == nullptr) Fail(kv.second, "sql_browser.instances." + name + ": no listener is named '" + listener + "'");
    if (l->protocol != Protocol::kTds) {
      Fail(kv.second, "sql_browser.instances." + name + ": listener '" + listener + "' is not a tds listener");
    }
    b.instances.push_back({name, listener});
  }
  return b;
}

}  // namespace

std::string BackendText(const ListenerConfig& l) {
  if (!l.backend_instance.empty()) return l.backend_host + "\\" + l.backend_instance;
  return JoinHostPort(l.backend_host, l.backend_port);
}

namespace {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::optional<Protocol> ParseProtocol(const std::string& name) {
  if (name == "tcp") return Protocol::kTcp;
  if (name == "postgres" || name == "postgresql") return Protocol::kPostgres;
  if (name == "mysql" || name == "mariadb") return Protocol::kMysql;
  if (name == "tds") return Protocol::kTds;
  return std::nullopt;
}

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "tcp";
    case Protocol::kPostgres: return "postgres";
    case Protocol::kMysql: return "mysql";
    case Protocol::kTds: return "tds";
  }
  return "?";
}

std::string ConfigError::ToString() const {
  std::ostringstream out;
  out << file << ":" << pos.line << ":" << pos.column << ": " << message;
  return out.str();
}

bool ParseConfigText(const std::string& text, const std::string& path, Config* out,
                     ConfigError* error) {
  Config cfg;
  cfg.path = path;
  std::string dir = DirName(path);
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) throw Failure{PosOf(root), "the configuration must be a mapping with 'listeners'"};
    ExpandEnvironment(root);
    CheckKeys(root, "the top level",
              {"listeners", "log", "workers", "drain_timeout", "shutdown_delay", "admin", "reload_interval", "sql_browser"});
    if (root["reload_interval"]) {
      cfg.reload_interval_ms = Duration(root["reload_interval"], "reload_interval");
      if (cfg.reload_interval_ms < 10) Fail(root["reload_interval"], "reload_interval must be at least 10ms");
    }
    if (root["admin"]) {
      const YAML::Node& admin = root["admin"];
      CheckKeys(admin, "admin", {"listen", "backend_check_interval"});
      if (!admin["listen"] || !SplitHostPort(Scalar(admin["listen"], "admin.listen"), &cfg.admin_host, &cfg.admin_port)) {
        Fail(admin["listen"] ? admin["listen"] : admin, "admin.listen must be HOST:PORT (e.g. 0.0.0.0:9090)");
      }
      if (admin["backend_check_interval"]) {
        cfg.admin_check_interval_ms = Duration(admin["backend_check_interval"], "admin.backend_check_interval");
        if (cfg.admin_check_interval_ms < 1000) Fail(admin["backend_check_interval"], "admin.backend_check_interval must be at least 1s");
      }
    }
    if (root["workers"]) {
      cfg.workers = static_cast<int>(Unsigned(root["workers"], "workers", 1, 256));
    }
    if (root["drain_timeout"]) cfg.drain_timeout_ms = Duration(root["drain_timeout"], "drain_timeout");
    if (root["shutdown_delay"]) cfg.shutdown_delay_ms = Duration(root["shutdown_delay"], "shutdown_delay");
    if (root["log"]) {
      const YAML::Node& log = root["log"];
      CheckKeys(log, "log", {"level", "audit"});
      if (log["level"]) {
        std::string lv = Scalar(log["level"], "log.level");
        if (lv == "debug") {
          cfg.log_level = LogLevel::kDebug;
        } else if (lv == "info") {
          cfg.log_level = LogLevel::kInfo;
        } else if (lv == "warn") {
          cfg.log_level = LogLevel::kWarn;
        } else if (lv == "error") {
          cfg.log_level = LogLevel::kError;
        } else {
          Fail(log["level"], "log.level must be debug, info, warn or error");
        }
      }
      if (log["audit"]) {
        std::string a = NonEmpty(log["audit"], "log.audit");
        cfg.audit = (a == "stdout" || a == "stderr" || a == "off") ? a : Resolve(dir, a);
      }
    }
    const YAML::Node& ls = root["listeners"];
    if (!ls) throw Failure{PosOf(root), "missing 'listeners'"};
    if (!ls.IsSequence() || ls.size() == 0) Fail(ls, "listeners must be a non-empty list");
    std::set<std::string> names;
    std::set<std::pair<std::string, uint16_t>> addrs;
    for (const auto& item : ls) {
      ListenerConfig l = ParseListener(item, dir);
      if (!names.insert(l.name).second) Fail(item["name"], "duplicate listener name '" + l.name + "'");
      if (l.listen_port != 0 && !addrs.insert({l.listen_host, l.listen_port}).second) {
        Fail(item["listen"], "another listener already uses " + l.listen_host + ":" +
                                 std::to_string(l.listen_port));
      }
      cfg.listeners.push_back(std::move(l));
    }
    if (root["sql_browser"]) cfg.sql_browser = ParseSqlBrowser(root["sql_browser"], cfg.listeners);
  } catch (const Failure& f) {
    *error = {path, f.pos, f.message};
    return false;
  } catch (const YAML::Exception& e) {
    Position pos;
    if (e.mark.line >= 0) pos = {e.mark.line + 1, e.mark.column + 1};
    *error = {path, pos, "YAML: " + e.msg};
    return false;
  }
  if (cfg.workers == 0) {
    unsigned n = std::thread::hardware_concurrency();
    cfg.workers = n == 0 ? 1 : static_cast<int>(n);
  }
  *out = std::move(cfg);
  return true;
}

bool LoadConfig(const std::string& path, Config* out, ConfigError* error) {
  std::ifstream in(path);
  if (!in) {
    *error = {path, {}, "cannot read configuration file: " + std::string(strerror(errno))};
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfigText(ss.str(), path, out, error);
}

}  // namespace dbward::proxy

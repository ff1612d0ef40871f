// `dbward probe`: the command line, the verdict and its two renderings (text
// for people, one JSON object for scripts). The checks live in probe_check.
#include "proxy/probe.h"

#include <openssl/ssl.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/json.h"
#include "proxy/probe_check.h"

namespace dbward::proxy {
namespace {

using probe::Attempt;
using probe::Findings;
using probe::Protocol;
using probe::VersionResult;

constexpr int kExitVerified = 0;
constexpr int kExitNotVerified = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

void Usage(FILE* out) {
  fprintf(out,
          "usage: dbward probe --protocol tds|postgres|mysql|tcp --backend HOST:PORT [--ca-file FILE]\n"
          "                    [--server-name NAME] [--tds-strict] [--timeout 5s] [--format text|json]\n"
          "Performs the protocol's TLS upgrade, shows the server's certificate chain and TLS versions,\n"
          "and tells whether verify-full and verify-ca would succeed.\n"
          "exit status: 0 verify-full would succeed, 1 it would not, 2 usage error,\n"
          "             3 server unreachable, not speaking the protocol, or refusing TLS\n");
}

struct Options {
  probe::Target target;
  bool json = false;
};

// "5s", "500ms", "2m", or plain seconds.
bool ParseTimeout(const std::string& text, std::chrono::milliseconds* out) {
  char* end = nullptr;
  errno = 0;
  double value = strtod(text.c_str(), &end);
  if (end == text.c_str() || errno != 0 || !(value > 0)) return false;
  std::string_view unit(end);
  double ms;
  if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "m") {
    ms = value * 60000;
  } else {
    return false;
  }
  if (ms < 1 || ms > 3600 * 1000) return false;
  *out = std::chrono::milliseconds(static_cast<int64_t>(ms));
  return true;
}

// HOST:PORT or [IPv6]:PORT.
bool ParseBackend(const std::string& text, std::string* host, uint16_t* port) {
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    *host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    *host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host->empty() || port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  long p = strtol(port_text.c_str(), nullptr, 10);
  if (p < 1 || p > 65535) return false;
  *port = static_cast<uint16_t>(p);
  return true;
}

bool ParseArgs(int argc, char** argv, Options* o, std::string* error) {
  std::string protocol, backend, timeout, format = "text";
  bool have_name = false;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (arg == "--tds-strict") {
      if (inline_value) {
        *error = "--tds-strict takes no value";
        return false;
      }
      o->target.tds_strict = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      *error = "";
      return false;
    }
    std::string* slot = nullptr;
    if (arg == "--protocol") {
      slot = &protocol;
    } else if (arg == "--backend") {
      slot = &backend;
    } else if (arg == "--ca-file") {
      slot = &o->target.ca_file;
    } else if (arg == "--server-name") {
      slot = &o->target.server_name;
      have_name = true;
    } else if (arg == "--timeout") {
      slot = &timeout;
    } else if (arg == "--format") {
      slot = &format;
    } else {
      *error = "unknown argument '" + arg + "'";
      return false;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        *error = arg + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    *slot = value;
  }
  if (protocol == "tds") {
    o->target.protocol = Protocol::kTds;
  } else if (protocol == "postgres" || protocol == "postgresql") {
    o->target.protocol = Protocol::kPostgres;
  } else if (protocol == "mysql" || protocol == "mariadb") {
    o->target.protocol = Protocol::kMysql;
  } else if (protocol == "tcp") {
    o->target.protocol = Protocol::kTcp;
  } else {
    *error = protocol.empty() ? "--protocol is required" : "unknown protocol '" + protocol + "' (tds, postgres, mysql, tcp)";
    return false;
  }
  if (o->target.tds_strict && o->target.protocol != Protocol::kTds) {
    *error = "--tds-strict applies only to --protocol tds";
    return false;
  }
  if (backend.empty()) {
    *error = "--backend HOST:PORT is required";
    return false;
  }
  if (!ParseBackend(backend, &o->target.host, &o->target.port)) {
    *error = "--backend '" + backend + "' is not HOST:PORT";
    return false;
  }
  if (have_name && o->target.server_name.empty()) {
    *error = "--server-name must not be empty";
    return false;
  }
  if (!have_name) o->target.server_name = o->target.host;
  if (!timeout.empty() && !ParseTimeout(timeout, &o->target.timeout)) {
    *error = "--timeout '" + timeout + "' is not a duration such as 5s or 500ms";
    return false;
  }
  if (format == "json") {
    o->json = true;
  } else if (format != "text") {
    *error = "--format must be text or json";
    return false;
  }
  return true;
}

std::string HostPort(const probe::Target& t) {
  std::string port = std::to_string(t.port);
  return t.host.find(':') != std::string::npos ? "[" + t.host + "]:" + port : t.host + ":" + port;
}

// ---- the verdict ----

struct Verdict {
  int exit_code = kExitNotVerified;
  std::string status;   // ok, verify_failed, unreachable, not_protocol, refuses_tls
  std::string summary;  // one sentence
};

bool AnyAccepted(const Findings& f) {
  for (const auto& v : f.versions) {
    if (v.status == VersionResult::kAccepted) return true;
  }
  return false;
}

std::string ProtocolWord(const probe::Target& t) {
  switch (t.protocol) {
    case Protocol::kPostgres: return "the PostgreSQL protocol";
    case Protocol::kMysql: return "the MySQL protocol";
    case Protocol::kTds: return t.tds_strict ? "TDS 8.0 (strict)" : "TDS";
    case Protocol::kTcp: return "TLS";
  }
  return "the protocol";
}

// The sentence a database driver prints for this failure, so users can match
// it against the error they saw.
std::string DriverWords(const Attempt& a) {
  const tls::CertSummary& c = a.failed_cert;
  switch (a.cause) {
    case tls::FailureCause::kUntrusted:
      return "The certificate chain was issued by an authority that is not trusted.";
    case tls::FailureCause::kNameMismatch:
      return "The target principal name is incorrect.";
    case tls::FailureCause::kExpired:
      return "The certificate has expired (valid from " + c.not_before + " to " + c.not_after + ").";
    case tls::FailureCause::kNotYetValid:
      return "The certificate is not yet valid (valid from " + c.not_before + " to " + c.not_after + ").";
    case tls::FailureCause::kBadPurpose:
      return "The certificate is not valid for server authentication (extended key usage).";
    case tls::FailureCause::kVerifyOther:
      return "The certificate failed verification: " + a.detail + ".";
    case tls::FailureCause::kProtocolVersion:
      return "No TLS protocol version in common with the server.";
    case tls::FailureCause::kNoSharedCipher:
      return "No cipher suite in common with the server.";
    case tls::FailureCause::kClientCertRequired:
      return "The server requires a client certificate.";
    case tls::FailureCause::kNotTls:
      return "The server did not answer with TLS.";
    case tls::FailureCause::kReset:
      return a.timed_out ? "The server did not answer during the TLS handshake." :
                           "The server closed the connection during the TLS handshake.";
    default:
      return "The TLS handshake failed.";
  }
}

// Explain() ends with "; fix: ..."; the two halves are shown apart, and the
// fix gains the probe option that tries it out.
void SplitExplanation(const Attempt& a, std::string* why, std::string* fix) {
  const std::string kFix = "; fix: ";
  size_t at = a.explanation.rfind(kFix);
  *why = at == std::string::npos ? a.explanation : a.explanation.substr(0, at);
  *fix = at == std::string::npos ? "" : a.explanation.substr(at + kFix.size());
  if (!a.message.empty() && why->find(a.message) == std::string::npos) *why = a.message + "; " + *why;
  if (a.cause == tls::FailureCause::kUntrusted) {
    *fix += " (probe again with --ca-file FILE to test a CA)";
  } else if (a.cause == tls::FailureCause::kNameMismatch) {
    *fix += " (probe again with --server-name NAME to test a name)";
  }
}

Verdict Judge(const Findings& f) {
  Verdict v;
  const Attempt& a = f.full;
  const std::string where = HostPort(f.target);
  if (a.stage == Attempt::kConnect) {
    v.exit_code = kExitUnreachable;
    v.status = "unreachable";
    v.summary = "the server cannot be reached: " + a.message;
    return v;
  }
  if (a.stage == Attempt::kUpgrade) {
    v.exit_code = kExitUnreachable;
    if (a.upgrade.status == probe::Upgrade::kDenied) {
      v.status = "unreachable";
      v.summary = a.message;
    } else if (a.upgrade.status == probe::Upgrade::kRefused) {
      v.status = "refuses_tls";
      v.summary = "the server refuses TLS: " + a.message;
    } else {
      v.status = "not_protocol";
      v.summary = where + " does not speak " + ProtocolWord(f.target) + ": " + a.message;
    }
    return v;
  }
  if (a.ok()) {
    v.exit_code = kExitVerified;
    v.status = "ok";
    v.summary = "verify-full would succeed (" + a.version + ", " + a.cipher + ")";
    return v;
  }
  bool no_tls = a.cause == tls::FailureCause::kNotTls ||
                ((a.cause == tls::FailureCause::kReset || a.timed_out) && !AnyAccepted(f));
  if (no_tls) {
    v.exit_code = kExitUnreachable;
    v.status = "refuses_tls";
    std::string detail = a.message.empty() ? a.detail : a.message;
    size_t colon = detail.rfind(':');  // BoringSSL's "error:...:REASON" → REASON
    if (a.message.empty() && colon != std::string::npos) detail = detail.substr(colon + 1);
    v.summary = "the server refuses TLS: " + DriverWords(a) + (detail.empty() ? "" : " (" + detail + ")");
    return v;
  }
  v.exit_code = kExitNotVerified;
  v.status = "verify_failed";
  v.summary = "verify-full would fail: " + DriverWords(a);
  return v;
}

// ---- rendering ----

std::string VersionLabel(uint16_t v) {
  switch (v) {
    case TLS1_VERSION: return "TLSv1.0";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    default: return "unknown";
  }
}

const char* VersionStatus(VersionResult::Status s) {
  switch (s) {
    case VersionResult::kAccepted: return "accepted";
    case VersionResult::kRejected: return "rejected";
    case VersionResult::kNotTested: return "not tested";
    case VersionResult::kUndetermined: return "undetermined";
  }
  return "?";
}

std::string NowIso() {
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "now" against the ISO 8601 UTC dates of CertSummary (same format, so the
// strings compare like the times).
std::string ValidityNote(const tls::CertSummary& c, const std::string& now) {
  if (!c.not_after.empty() && now > c.not_after) return "  EXPIRED";
  if (!c.not_before.empty() && now < c.not_before) return "  NOT YET VALID";
  return "";
}

std::string Fingerprint(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    if (i) out.push_back(':');
    out.push_back(static_cast<char>(toupper(static_cast<unsigned char>(hex[i]))));
    out.push_back(static_cast<char>(toupper(static_cast<unsigned char>(hex[i + 1]))));
  }
  return out;
}

std::string Join(const std::vector<std::string>& v, const char* none = "(none)") {
  if (v.empty()) return none;
  std::string out;
  for (size_t i = 0; i < v.size(); i++) out += (i ? ", " : "") + v[i];
  return out;
}

std::string ServerInfo(const Findings& f) {
  if (!f.full.upgrade.server_info.empty()) return f.full.upgrade.server_info;
  if (f.target.protocol == Protocol::kTds && f.target.tds_strict) return "TDS 8.0: TLS first, ALPN tds/8.0";
  return "";
}

void PrintVerification(const char* label, const Attempt& a, bool run, const Attempt& full, std::string* out) {
  std::string line = std::string("  ") + label;
  line.resize(15, ' ');
  if (label == std::string("verify-ca") && !run) {
    if (full.ok()) {
      *out += line + "would succeed (implied by verify-full)\n";
    } else {
      *out += line + "not determined (the handshake did not reach certificate verification)\n";
    }
    return;
  }
  if (a.ok()) {
    *out += line + "would succeed\n";
    return;
  }
  if (a.stage < Attempt::kHandshake) {
    *out += line + "not determined: " + a.message + "\n";
    return;
  }
  std::string why, fix;
  SplitExplanation(a, &why, &fix);
  *out += line + "would FAIL: " + DriverWords(a) + "\n";
  *out += "               cause: " + why + "\n";
  if (!fix.empty()) *out += "               fix:   " + fix + "\n";
}

std::string RenderText(const Findings& f, const Verdict& v) {
  const probe::Target& t = f.target;
  std::string out;
  out += "dbward probe: " + std::string(probe::ProtocolName(t.protocol)) + (t.tds_strict ? " (TDS 8.0 strict)" : "") +
         " " + HostPort(t) + ", server name \"" + t.server_name + "\"\n";
  out += "trust:    " + f.trust + "\n";
  std::string info = ServerInfo(f);
  if (!info.empty()) out += "server:   " + info + "\n";
  if (f.full.stage < Attempt::kHandshake) {
    out += "\nresult: " + v.summary + " (exit " + std::to_string(v.exit_code) + ")\n";
    return out;
  }
  if (f.full.ok()) {
    out += "TLS:      " + f.full.version + ", " + f.full.cipher +
           (f.full.alpn.empty() ? "" : ", ALPN " + f.full.alpn) + "\n";
  }

  const std::string now = NowIso();
  out += "\ncertificate chain presented by the server";
  if (!f.chain.captured) {
    out += ": none received\n";
  } else {
    out += " (" + std::to_string(f.chain.certs.size()) + (f.chain.certs.size() == 1 ? " certificate" : " certificates") +
           ", leaf first):\n";
    for (size_t i = 0; i < f.chain.certs.size(); i++) {
      const tls::CertSummary& c = f.chain.certs[i];
      std::string idx = "  [" + std::to_string(i) + "] ";
      out += idx + "subject   " + c.subject + "\n";
      std::string pad(idx.size(), ' ');
      out += pad + "issuer    " + c.issuer + (c.subject == c.issuer ? "  (self-signed)" : "") + "\n";
      out += pad + "SANs      " + Join(c.sans) + "\n";
      out += pad + "validity  " + c.not_before + " to " + c.not_after + ValidityNote(c, now) + "\n";
      out += pad + "EKU       " + Join(c.eku, "(none: any purpose)") + "\n";
      out += pad + "key       " + c.key + "\n";
      out += pad + "SHA-256   " + Fingerprint(c.sha256) + "\n";
    }
    out += "  server name \"" + t.server_name + "\" " +
           (f.chain.name_matches ? "matches the certificate" : "does NOT match the certificate") + "\n";
  }

  out += "\nTLS versions (each offered alone):\n";
  for (const auto& r : f.versions) {
    std::string line = "  " + VersionLabel(r.version);
    line.resize(11, ' ');
    std::string status = VersionStatus(r.status);
    status.resize(13, ' ');
    line += status;
    line += r.status == VersionResult::kAccepted ? r.cipher : r.reason;
    if (r.status == VersionResult::kAccepted && r.version < TLS1_2_VERSION) line += "  (deprecated: RFC 8996)";
    out += line + "\n";
  }

  out += "\nverification (trust: " + f.trust + "):\n";
  PrintVerification("verify-full", f.full, true, f.full, &out);
  PrintVerification("verify-ca", f.ca, f.ca_run, f.full, &out);

  out += "\nresult: " + v.summary + " (exit " + std::to_string(v.exit_code) + ")\n";
  return out;
}

// json.h writes flat objects; the probe's report nests, so values that are
// already JSON are spliced in by this small writer (strings still go through
// AppendJsonString).
class JsonWriter {
 public:
  JsonWriter& Raw(std::string_view key, std::string_view json) {
    Key(key);
    text_ += json;
    return *this;
  }
  JsonWriter& Str(std::string_view key, std::string_view value) {
    Key(key);
    AppendJsonString(&text_, value);
    return *this;
  }
  JsonWriter& StrOrNull(std::string_view key, std::string_view value) {
    return value.empty() ? Raw(key, "null") : Str(key, value);
  }
  JsonWriter& Bool(std::string_view key, bool value) { return Raw(key, value ? "true" : "false"); }
  JsonWriter& Int(std::string_view key, int64_t value) { return Raw(key, std::to_string(value)); }
  std::string Finish() { return text_ + "}"; }

  static std::string Array(const std::vector<std::string>& json_items) {
    std::string out = "[";
    for (size_t i = 0; i < json_items.size(); i++) out += (i ? "," : "") + json_items[i];
    return out + "]";
  }
  static std::string Strings(const std::vector<std::string>& items) {
    std::vector<std::string> quoted;
    for (const auto& s : items) {
      std::string q;
      AppendJsonString(&q, s);
      quoted.push_back(q);
    }
    return Array(quoted);
  }

 private:
  void Key(std::string_view key) {
    if (text_.size() > 1) text_.push_back(',');
    AppendJsonString(&text_, key);
    text_.push_back(':');
  }
  std::string text_ = "{";
};

std::string CertJson(const tls::CertSummary& c, const std::string& now) {
  return JsonWriter()
      .Str("subject", c.subject)
      .Str("issuer", c.issuer)
      .Raw("sans", JsonWriter::Strings(c.sans))
      .Str("not_before", c.not_before)
      .Str("not_after", c.not_after)
      .Bool("expired", !c.not_after.empty() && now > c.not_after)
      .Bool("not_yet_valid", !c.not_before.empty() && now < c.not_before)
      .Raw("eku", JsonWriter::Strings(c.eku))
      .Str("key", c.key)
      .Str("sha256", c.sha256)
      .Finish();
}

std::string VerificationJson(const Attempt& a, bool run, const Attempt& full) {
  JsonWriter w;
  if (!run) {
    w.Raw("ok", full.ok() ? "true" : "null").Bool("tested", false);
    return w.Finish();
  }
  w.Raw("ok", a.ok() ? "true" : (a.stage < Attempt::kHandshake ? "null" : "false")).Bool("tested", true);
  if (a.ok() || a.stage < Attempt::kHandshake) {
    w.StrOrNull("error", a.message);
    return w.Finish();
  }
  std::string why, fix;
  SplitExplanation(a, &why, &fix);
  return w.Str("cause", tls::CauseToken(a.cause))
      .Str("message", DriverWords(a))
      .Str("explanation", why)
      .StrOrNull("fix", fix)
      .StrOrNull("detail", a.detail)
      .Finish();
}

std::string RenderJson(const Findings& f, const Verdict& v) {
  const probe::Target& t = f.target;
  const std::string now = NowIso();
  JsonWriter w;
  w.Str("protocol", probe::ProtocolName(t.protocol))
      .Bool("tds_strict", t.tds_strict)
      .Str("backend", HostPort(t))
      .Str("server_name", t.server_name)
      .Str("trust", f.trust)
      .Str("status", v.status)
      .Int("exit_code", v.exit_code)
      .Str("summary", v.summary)
      .StrOrNull("server", ServerInfo(f));
  if (f.full.ok()) {
    w.Str("tls_version", f.full.version).Str("cipher", f.full.cipher).StrOrNull("alpn", f.full.alpn);
  }
  std::vector<std::string> certs;
  for (const auto& c : f.chain.certs) certs.push_back(CertJson(c, now));
  w.Raw("chain", JsonWriter::Array(certs));
  w.Raw("name_matches", f.chain.captured ? (f.chain.name_matches ? "true" : "false") : "null");
  std::vector<std::string> versions;
  for (const auto& r : f.versions) {
    versions.push_back(JsonWriter()
                           .Str("version", VersionLabel(r.version))
                           .Str("status", VersionStatus(r.status))
                           .StrOrNull("cipher", r.cipher)
                           .StrOrNull("reason", r.reason)
                           .Finish());
  }
  w.Raw("versions", JsonWriter::Array(versions));
  if (f.full.stage >= Attempt::kHandshake) {
    w.Raw("verify_full", VerificationJson(f.full, true, f.full));
    w.Raw("verify_ca", VerificationJson(f.ca, f.ca_run, f.full));
  }
  return w.Finish() + "\n";
}

}  // namespace

int RunProbe(int argc, char** argv) {
  Options o;
  std::string error;
  if (!ParseArgs(argc, argv, &o, &error)) {
    if (error.empty()) {
      Usage(stdout);
      return kExitVerified;
    }
    fprintf(stderr, "dbward probe: %s\n", error.c_str());
    Usage(stderr);
    return kExitUsage;
  }
  probe::Prober prober(o.target);
  if (!prober.Init(&error)) {
    fprintf(stderr, "dbward probe: %s\n", error.c_str());
    return kExitUsage;
  }
  Findings f = prober.Run();
  Verdict v = Judge(f);
  std::string text = o.json ? RenderJson(f, v) : RenderText(f, v);
  fwrite(text.data(), 1, text.size(), stdout);
  fflush(stdout);
  return v.exit_code;
}

}  // namespace dbward::proxy

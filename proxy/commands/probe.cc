// `dbward probe`: the verdict and its two renderings (text for people, one
// JSON object for scripts). The checks live in probe_check, the connections
// in backend_probe, the options in cli.
#include "proxy/commands/probe.h"

#include <openssl/ssl.h>

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "proxy/commands/probe_check.h"
#include "proxy/common/address.h"
#include "proxy/common/json.h"
#include "proxy/common/text.h"
#include "proxy/common/time.h"
#include "proxy/common/tls_text.h"

namespace dbward::proxy {
namespace {

using probe::Attempt;
using probe::Findings;
using probe::VersionResult;

constexpr int kExitVerified = kProbeVerified;
constexpr int kExitNotVerified = kProbeNotVerified;
constexpr int kExitUnreachable = kProbeUnreachable;

std::string HostPort(const probe::Target& t) { return JoinHostPort(t.host, t.port); }

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
    case Protocol::kPostgres: return t.pg_direct ? "PostgreSQL direct TLS" : "the PostgreSQL protocol";
    case Protocol::kMysql: return "the MySQL protocol";
    case Protocol::kTds: return t.tds_strict ? "TDS 8.0 (strict)" : "TDS";
    case Protocol::kTcp: return "TLS";
  }
  return "the protocol";
}

// The sentence a database driver prints for this failure, so users can match
// it against the error they saw.
std::string DriverWords(const Attempt& a) {
  const tls::CertSummary& c = a.diagnosis.failed;
  switch (a.diagnosis.cause) {
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
      return "The certificate failed verification: " + a.diagnosis.detail + ".";
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

// The explanation's two halves are shown apart, and the fix gains the probe
// option that tries it out.
void SplitExplanation(const Attempt& a, std::string* why, std::string* fix) {
  Explanation e = ExplainHandshake(a.diagnosis, "backend_tls");
  *why = e.why;
  *fix = e.fix;
  if (!a.message.empty() && why->find(a.message) == std::string::npos) *why = a.message + "; " + *why;
  if (a.diagnosis.cause == tls::FailureCause::kUntrusted) {
    *fix += " (probe again with --ca-file FILE to test a CA)";
  } else if (a.diagnosis.cause == tls::FailureCause::kNameMismatch) {
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
    if (a.upgrade == Attempt::Upgrade::kDenied) {
      v.status = "unreachable";
      v.summary = a.message;
    } else if (a.upgrade == Attempt::Upgrade::kRefused) {
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
  bool no_tls = a.diagnosis.cause == tls::FailureCause::kNotTls ||
                ((a.diagnosis.cause == tls::FailureCause::kReset || a.timed_out) && !AnyAccepted(f));
  if (no_tls) {
    v.exit_code = kExitUnreachable;
    v.status = "refuses_tls";
    std::string detail = a.message.empty() ? a.diagnosis.detail : a.message;
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

std::string VersionLabel(uint16_t v) { return tls::TlsVersionName(v); }

const char* VersionStatus(VersionResult::Status s) {
  switch (s) {
    case VersionResult::kAccepted: return "accepted";
    case VersionResult::kRejected: return "rejected";
    case VersionResult::kNotTested: return "not tested";
    case VersionResult::kUndetermined: return "undetermined";
  }
  return "?";
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

std::string ServerInfo(const Findings& f) {
  if (!f.full.server_info.empty()) return f.full.server_info;
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
  out += "dbward probe: " + std::string(ProtocolName(t.protocol)) + (t.tds_strict ? " (TDS 8.0 strict)" : "") +
         (t.pg_direct ? " (direct TLS)" : "") +
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
      out += pad + "SANs      " + Join(c.sans, ", ", "(none)") + "\n";
      out += pad + "validity  " + c.not_before + " to " + c.not_after + ValidityNote(c, now) + "\n";
      out += pad + "EKU       " + Join(c.eku, ", ", "(none: any purpose)") + "\n";
      out += pad + "key       " + c.key + "\n";
      out += pad + "SHA-256   " + Fingerprint(c.sha256) + "\n";
      out += pad + "SPKI pin  sha256//" + c.spki + "\n";
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

std::string CertJson(const tls::CertSummary& c, const std::string& now) {
  return JsonObject()
      .Str("subject", c.subject)
      .Str("issuer", c.issuer)
      .Raw("sans", JsonArray::Strings(c.sans))
      .Str("not_before", c.not_before)
      .Str("not_after", c.not_after)
      .Bool("expired", !c.not_after.empty() && now > c.not_after)
      .Bool("not_yet_valid", !c.not_before.empty() && now < c.not_before)
      .Raw("eku", JsonArray::Strings(c.eku))
      .Str("key", c.key)
      .Str("sha256", c.sha256)
      .Str("spki_sha256", c.spki)
      .Finish();
}

std::string VerificationJson(const Attempt& a, bool run, const Attempt& full) {
  JsonObject w;
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
  return w.Str("cause", Token(CauseOf(a.diagnosis.cause)))
      .Str("message", DriverWords(a))
      .Str("explanation", why)
      .StrOrNull("fix", fix)
      .StrOrNull("detail", a.diagnosis.detail)
      .Finish();
}

std::string RenderJson(const Findings& f, const Verdict& v) {
  const probe::Target& t = f.target;
  const std::string now = NowIso();
  JsonObject w;
  w.Str("protocol", ProtocolName(t.protocol))
      .Bool("tds_strict", t.tds_strict)
      .Bool("direct", t.pg_direct)
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
  JsonArray certs;
  for (const auto& c : f.chain.certs) certs.Raw(CertJson(c, now));
  w.Raw("chain", certs.Finish());
  w.Raw("name_matches", f.chain.captured ? (f.chain.name_matches ? "true" : "false") : "null");
  JsonArray versions;
  for (const auto& r : f.versions) {
    versions.Raw(JsonObject()
                     .Str("version", VersionLabel(r.version))
                     .Str("status", VersionStatus(r.status))
                     .StrOrNull("cipher", r.cipher)
                     .StrOrNull("reason", r.reason)
                     .Finish());
  }
  w.Raw("versions", versions.Finish());
  if (f.full.stage >= Attempt::kHandshake) {
    w.Raw("verify_full", VerificationJson(f.full, true, f.full));
    w.Raw("verify_ca", VerificationJson(f.ca, f.ca_run, f.full));
  }
  return w.Finish() + "\n";
}

}  // namespace

int RunProbe(const ProbeOptions& o, std::string* out, std::string* err) {
  probe::Prober prober(o.target);
  std::string error;
  if (!prober.Init(&error)) {
    *err += "dbward probe: " + error + "\n";
    return kProbeUsage;
  }
  Findings f = prober.Run();
  Verdict v = Judge(f);
  *out += o.json ? RenderJson(f, v) : RenderText(f, v);
  return v.exit_code;
}

}  // namespace dbward::proxy

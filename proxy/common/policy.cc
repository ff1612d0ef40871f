#include "proxy/common/policy.h"

namespace dbward::proxy {

const char* Token(ProtectionLevel level) {
  switch (level) {
    case ProtectionLevel::kPlaintext: return "plaintext";
    case ProtectionLevel::kLoginOnly: return "login-only";
    case ProtectionLevel::kTls: return "tls";
    case ProtectionLevel::kValidated: return "validated";
  }
  return "?";
}

std::optional<ProtectionLevel> ParseProtectionLevel(const std::string& t) {
  for (ProtectionLevel l : {ProtectionLevel::kPlaintext, ProtectionLevel::kLoginOnly, ProtectionLevel::kTls,
                            ProtectionLevel::kValidated}) {
    if (t == Token(l)) return l;
  }
  return std::nullopt;
}

bool GlobMatch(const std::string& p, const std::string& t) {
  // Iterative * and ? matching with one backtrack point.
  size_t pi = 0, ti = 0, star = std::string::npos, mark = 0;
  while (ti < t.size()) {
    // A '*' in the pattern is always the wildcard, also where the text has
    // a '*' of its own (clients choose their application names).
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      pi++;
      ti++;
    } else if (star != std::string::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') pi++;
  return pi == p.size();
}

ProtectionLevel LevelOf(const PolicySubject& s) {
  switch (s.encryption) {
    case ClientEncryption::kNone: return ProtectionLevel::kPlaintext;
    // Whatever it proved, the session after LOGIN7 is cleartext.
    case ClientEncryption::kLoginOnly: return ProtectionLevel::kLoginOnly;
    case ClientEncryption::kTls:
    case ClientEncryption::kTlsDirect:
    case ClientEncryption::kTlsStrict:
      // A client that just took a canary does not validate, whatever else
      // it showed.
      if (!s.accepted_bad_certificate && (s.client_certificate || s.validates == true)) {
        return ProtectionLevel::kValidated;
      }
      return ProtectionLevel::kTls;
  }
  return ProtectionLevel::kPlaintext;
}

namespace {

bool AnyGlob(const std::vector<std::string>& patterns, const std::string& value) {
  if (patterns.empty()) return true;
  for (const std::string& p : patterns) {
    if (GlobMatch(p, value)) return true;
  }
  return false;
}

bool Matches(const PolicyRule& r, const PolicySubject& s) {
  if (!r.clients.empty()) {
    bool in = false;
    for (const Cidr& c : r.clients) in = in || c.Contains(s.ip);
    if (!in) return false;
  }
  return AnyGlob(r.users, s.user) && AnyGlob(r.applications, s.application) && AnyGlob(r.libraries, s.library) &&
         AnyGlob(r.databases, s.database) && AnyGlob(r.identities, s.identity);
}

}  // namespace

bool PolicyWantsProof(const std::vector<PolicyRule>& rules, const std::string& ip, int64_t now_ms) {
  for (const PolicyRule& r : rules) {
    bool in = r.clients.empty();
    for (const Cidr& c : r.clients) in = in || c.Contains(ip);
    if (!in) continue;
    const bool address_only = r.users.empty() && r.applications.empty() && r.libraries.empty() &&
                              r.databases.empty() && r.identities.empty();
    const bool denies = r.action == PolicyRule::Action::kDeny && (!r.from_ms || now_ms >= *r.from_ms);
    if (r.require == ProtectionLevel::kValidated && denies) return true;
    // This rule decides for every client of this address: later ones never
    // see it.
    if (address_only) return false;
  }
  return false;
}

std::string PolicyVerdict::Label() const {
  if (rule == nullptr) return "";
  std::string label = "policy[" + std::to_string(index) + "]";
  if (!rule->name.empty()) label += " (" + rule->name + ")";
  return label;
}

std::string CertIdentity::Name() const {
  if (!uris.empty()) return uris.front();
  if (!cn.empty()) return cn;
  if (!dns.empty()) return dns.front();
  return "";
}

std::string CertIdentity::Describe() const {
  std::string out = "CN=" + (cn.empty() ? std::string("(none)") : cn);
  for (const std::string& u : uris) out += ", URI=" + u;
  for (const std::string& d : dns) out += ", DNS=" + d;
  return out + ", SPKI=sha256//" + spki;
}

bool CertAllowList::Allows(const CertIdentity& id) const {
  if (!restricted()) return true;
  auto any = [](const std::vector<std::string>& patterns, const std::vector<std::string>& values) {
    for (const std::string& p : patterns) {
      for (const std::string& v : values) {
        if (GlobMatch(p, v)) return true;
      }
    }
    return false;
  };
  if (!id.cn.empty() && any(cns, {id.cn})) return true;
  if (any(dns, id.dns) || any(uris, id.uris)) return true;
  for (const std::string& pin : spki) {
    if (pin == id.spki) return true;
  }
  return false;
}

PolicyVerdict EvaluatePolicy(const std::vector<PolicyRule>& rules, const PolicySubject& s, int64_t now_ms) {
  PolicyVerdict v;
  v.level = LevelOf(s);
  for (size_t i = 0; i < rules.size(); i++) {
    if (!Matches(rules[i], s)) continue;
    v.rule = &rules[i];
    v.index = i + 1;
    v.violates = v.level < rules[i].require;
    v.action = rules[i].action;
    if (v.action == PolicyRule::Action::kDeny && rules[i].from_ms && now_ms < *rules[i].from_ms) {
      v.action = PolicyRule::Action::kWarn;
    }
    return v;
  }
  return v;
}

}  // namespace dbward::proxy

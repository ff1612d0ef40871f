// Per-listener policy (pg_hba style, first match wins): which clients must
// use which protection, and whether a violation is denied or only warned
// about (a dry run before enforcing). Pure evaluation over what a session
// learnt about its client; the engines ask at the point their protocol
// names the user (before any password is solicited where it allows).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proxy/common/address.h"
#include "proxy/common/records.h"

namespace dbward::proxy {

// What a client's connection proved, weakest first.
enum class ProtectionLevel : uint8_t {
  kPlaintext,
  kLoginOnly,  // TDS: TLS for LOGIN7 only
  kTls,        // encrypted, but the client may not check the certificate
  kValidated,  // it refused a canary, or authenticated with a client certificate
};
const char* Token(ProtectionLevel level);
std::optional<ProtectionLevel> ParseProtectionLevel(const std::string& text);

struct PolicyRule {
  std::string name;  // optional, for messages
  std::vector<Cidr> clients;
  // Glob patterns (* and ?), case-sensitive; empty: any.
  std::vector<std::string> users, applications, libraries, databases, identities;
  ProtectionLevel require = ProtectionLevel::kPlaintext;
  enum class Action : uint8_t { kDeny, kWarn };
  Action action = Action::kDeny;
  std::optional<int64_t> from_ms;  // before it a deny rule only warns (Unix ms, UTC midnight)
  std::string from_text;           // as written
  int line = 0, column = 0;        // in the configuration file, for messages and the report
};

struct PolicySubject {
  std::string ip, user, application, library, database, identity;
  ClientEncryption encryption = ClientEncryption::kNone;
  bool accepted_bad_certificate = false;  // went on with a canary
  std::optional<bool> validates;          // from a canary, this session or remembered
  bool client_certificate = false;        // presented a verified client certificate
};

ProtectionLevel LevelOf(const PolicySubject& s);

struct PolicyVerdict {
  const PolicyRule* rule = nullptr;  // the first rule that matched; null: none
  size_t index = 0;                  // 1-based, for messages
  bool violates = false;             // the client is below the rule's requirement
  PolicyRule::Action action = PolicyRule::Action::kWarn;  // effective (from date applied)
  ProtectionLevel level = ProtectionLevel::kPlaintext;    // what the client had
  // "policy[2] (report-readers)"
  std::string Label() const;
  bool denied() const { return violates && action == PolicyRule::Action::kDeny; }
};

// A verified client certificate, as policy and allow-lists see it.
struct CertIdentity {
  std::string cn;
  std::vector<std::string> dns, uris;
  std::string spki;  // base64 SHA-256 of the SubjectPublicKeyInfo
  // The name audit and policy use: the first URI SAN (a SPIFFE ID), else the
  // CN, else the first DNS SAN.
  std::string Name() const;
  // "CN=reader, URI=spiffe://..., DNS=..., SPKI=sha256//..." for messages.
  std::string Describe() const;
};

// client_tls.allow: a certificate is allowed when any entry of any list
// matches (cn, dns, uri: globs; spki: exact pins).
struct CertAllowList {
  std::vector<std::string> cns, dns, uris, spki;
  bool restricted() const { return !cns.empty() || !dns.empty() || !uris.empty() || !spki.empty(); }
  bool Allows(const CertIdentity& id) const;
};

PolicyVerdict EvaluatePolicy(const std::vector<PolicyRule>& rules, const PolicySubject& subject, int64_t now_ms);
// Whether a deny rule in force that requires validated could decide for a
// client from ip (before TLS only the address is known): then the client
// must prove itself with a canary. Warn rules do not force one (a dry run
// changes nothing), and an earlier rule that matches by address alone
// decides first.
bool PolicyWantsProof(const std::vector<PolicyRule>& rules, const std::string& ip, int64_t now_ms);
bool GlobMatch(const std::string& pattern, const std::string& text);

}  // namespace dbward::proxy

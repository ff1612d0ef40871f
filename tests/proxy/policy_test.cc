// Policy evaluation (first match wins, dates, protection levels) and the
// client certificate allow-list.
#include "proxy/common/policy.h"

#include <gtest/gtest.h>

namespace dbward::proxy {
namespace {

PolicyRule Rule(ProtectionLevel require, PolicyRule::Action action = PolicyRule::Action::kDeny) {
  PolicyRule r;
  r.require = require;
  r.action = action;
  return r;
}

PolicySubject Subject(ClientEncryption e, const std::string& ip = "10.20.1.5") {
  PolicySubject s;
  s.ip = ip;
  s.user = "report_ro";
  s.application = "legacy-billing";
  s.library = "jTDS 1.3.1";
  s.database = "sales";
  s.encryption = e;
  return s;
}

constexpr int64_t kJan1 = 1798761600000;   // 2027-01-01T00:00:00Z
constexpr int64_t kJan15 = 1799971200000;  // 2027-01-15T00:00:00Z

TEST(GlobTest, StarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("legacy-*", "legacy-billing"));
  EXPECT_TRUE(GlobMatch("legacy-*", "legacy-"));
  EXPECT_FALSE(GlobMatch("legacy-*", "new-legacy-billing"));
  EXPECT_TRUE(GlobMatch("*billing", "legacy-billing"));
  EXPECT_TRUE(GlobMatch("jTDS*", "jTDS 1.3.1"));
  EXPECT_FALSE(GlobMatch("jtds*", "jTDS 1.3.1"));  // case matters
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_FALSE(GlobMatch("a?c", "ac"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_FALSE(GlobMatch("", "x"));
  EXPECT_TRUE(GlobMatch("a*b*c", "a--b--b--c"));
  EXPECT_FALSE(GlobMatch("a*b*c", "a--b--b--"));
  EXPECT_TRUE(GlobMatch("spiffe://prod/ns/*/sa/reader", "spiffe://prod/ns/billing/sa/reader"));
  // A '*' in the text is matched by the pattern's wildcard like any byte.
  EXPECT_TRUE(GlobMatch("*", "*x"));
  EXPECT_TRUE(GlobMatch("report-*", "report-*x"));
  EXPECT_TRUE(GlobMatch("legacy-*", "legacy-**"));
}

TEST(PolicyTest, LevelsFromWhatTheClientDid) {
  EXPECT_EQ(LevelOf(Subject(ClientEncryption::kNone)), ProtectionLevel::kPlaintext);
  EXPECT_EQ(LevelOf(Subject(ClientEncryption::kLoginOnly)), ProtectionLevel::kLoginOnly);
  EXPECT_EQ(LevelOf(Subject(ClientEncryption::kTls)), ProtectionLevel::kTls);
  EXPECT_EQ(LevelOf(Subject(ClientEncryption::kTlsStrict)), ProtectionLevel::kTls);
  PolicySubject refused = Subject(ClientEncryption::kTls);
  refused.validates = true;
  EXPECT_EQ(LevelOf(refused), ProtectionLevel::kValidated);
  PolicySubject accepted = Subject(ClientEncryption::kTls);
  accepted.validates = false;
  EXPECT_EQ(LevelOf(accepted), ProtectionLevel::kTls);
  PolicySubject cert = Subject(ClientEncryption::kTls);
  cert.client_certificate = true;
  EXPECT_EQ(LevelOf(cert), ProtectionLevel::kValidated);
}

TEST(PolicyTest, LoginOnlyIsNeverValidatedAndATakenCanaryOutweighsACertificate) {
  PolicySubject login_only = Subject(ClientEncryption::kLoginOnly);
  login_only.client_certificate = true;
  login_only.validates = true;
  EXPECT_EQ(LevelOf(login_only), ProtectionLevel::kLoginOnly);
  PolicySubject plaintext = Subject(ClientEncryption::kNone);
  plaintext.validates = true;
  EXPECT_EQ(LevelOf(plaintext), ProtectionLevel::kPlaintext);
  PolicySubject took_canary = Subject(ClientEncryption::kTls);
  took_canary.client_certificate = true;
  took_canary.accepted_bad_certificate = true;
  EXPECT_EQ(LevelOf(took_canary), ProtectionLevel::kTls);
}

TEST(PolicyTest, ProofIsForcedOnlyByDenyRulesInForceThatCanDecide) {
  auto validated = [](PolicyRule::Action a) { return Rule(ProtectionLevel::kValidated, a); };
  EXPECT_TRUE(PolicyWantsProof({validated(PolicyRule::Action::kDeny)}, "10.0.0.1", kJan1));
  EXPECT_FALSE(PolicyWantsProof({validated(PolicyRule::Action::kWarn)}, "10.0.0.1", kJan1)) << "a dry run";
  PolicyRule later = validated(PolicyRule::Action::kDeny);
  later.from_ms = kJan15;
  EXPECT_FALSE(PolicyWantsProof({later}, "10.0.0.1", kJan1)) << "warns until its date";
  EXPECT_TRUE(PolicyWantsProof({later}, "10.0.0.1", kJan15));
  PolicyRule office = validated(PolicyRule::Action::kDeny);
  office.clients = {*Cidr::Parse("10.20.0.0/16")};
  EXPECT_FALSE(PolicyWantsProof({office}, "10.0.0.1", kJan1));
  EXPECT_TRUE(PolicyWantsProof({office}, "10.20.3.4", kJan1));
  // An earlier rule that matches by address alone decides first...
  PolicyRule lab = Rule(ProtectionLevel::kTls);
  lab.clients = {*Cidr::Parse("10.0.0.0/8")};
  EXPECT_FALSE(PolicyWantsProof({lab, validated(PolicyRule::Action::kDeny)}, "10.1.1.1", kJan1));
  // ... one that also needs a user may not.
  lab.users = {"admin"};
  EXPECT_TRUE(PolicyWantsProof({lab, validated(PolicyRule::Action::kDeny)}, "10.1.1.1", kJan1));
}

TEST(PolicyTest, FirstMatchWins) {
  std::vector<PolicyRule> rules;
  PolicyRule strict = Rule(ProtectionLevel::kTls);
  strict.name = "legacy-apps";
  strict.clients = {*Cidr::Parse("10.20.0.0/16")};
  strict.users = {"report_ro"};
  strict.applications = {"legacy-*"};
  strict.libraries = {"jTDS*"};
  rules.push_back(strict);
  rules.push_back(Rule(ProtectionLevel::kPlaintext));

  PolicyVerdict v = EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan1);
  ASSERT_NE(v.rule, nullptr);
  EXPECT_EQ(v.index, 1u);
  EXPECT_TRUE(v.violates);
  EXPECT_TRUE(v.denied());
  EXPECT_EQ(v.Label(), "policy[1] (legacy-apps)");

  v = EvaluatePolicy(rules, Subject(ClientEncryption::kTls), kJan1);
  EXPECT_EQ(v.index, 1u);
  EXPECT_FALSE(v.violates);

  // Any field that does not match sends the client to the default rule.
  for (auto change : std::vector<void (*)(PolicySubject&)>{
           [](PolicySubject& s) { s.ip = "10.21.0.1"; }, [](PolicySubject& s) { s.user = "admin"; },
           [](PolicySubject& s) { s.application = "psql"; }, [](PolicySubject& s) { s.library = "tedious"; }}) {
    PolicySubject s = Subject(ClientEncryption::kNone);
    change(s);
    v = EvaluatePolicy(rules, s, kJan1);
    EXPECT_EQ(v.index, 2u);
    EXPECT_FALSE(v.violates);
    EXPECT_EQ(v.Label(), "policy[2]");
  }
}

TEST(PolicyTest, NoMatchingRuleAllows) {
  std::vector<PolicyRule> rules{Rule(ProtectionLevel::kTls)};
  rules[0].users = {"someone"};
  PolicyVerdict v = EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan1);
  EXPECT_EQ(v.rule, nullptr);
  EXPECT_FALSE(v.violates);
}

TEST(PolicyTest, WarnOnlyWarns) {
  std::vector<PolicyRule> rules{Rule(ProtectionLevel::kTls, PolicyRule::Action::kWarn)};
  PolicyVerdict v = EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan1);
  EXPECT_TRUE(v.violates);
  EXPECT_FALSE(v.denied());
}

TEST(PolicyTest, FromDateWarnsBeforeAndDeniesAfter) {
  std::vector<PolicyRule> rules{Rule(ProtectionLevel::kTls)};
  rules[0].from_ms = kJan15;
  EXPECT_FALSE(EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan1).denied());
  EXPECT_TRUE(EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan1).violates);
  EXPECT_TRUE(EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan15).denied());
  EXPECT_TRUE(EvaluatePolicy(rules, Subject(ClientEncryption::kNone), kJan15 + 1).denied());
}

TEST(PolicyTest, ValidatedRule) {
  std::vector<PolicyRule> rules{Rule(ProtectionLevel::kValidated)};
  PolicySubject s = Subject(ClientEncryption::kTls);
  EXPECT_TRUE(EvaluatePolicy(rules, s, kJan1).denied());  // not proven yet
  s.validates = false;
  s.accepted_bad_certificate = true;
  EXPECT_TRUE(EvaluatePolicy(rules, s, kJan1).denied());
  s = Subject(ClientEncryption::kTls);
  s.validates = true;
  EXPECT_FALSE(EvaluatePolicy(rules, s, kJan1).violates);
}

TEST(PolicyTest, IdentityPatterns) {
  std::vector<PolicyRule> rules{Rule(ProtectionLevel::kTls), Rule(ProtectionLevel::kValidated)};
  rules[0].identities = {"spiffe://prod/ns/reports/*"};
  PolicySubject s = Subject(ClientEncryption::kTls);
  s.identity = "spiffe://prod/ns/reports/sa/reader";
  s.client_certificate = true;
  EXPECT_EQ(EvaluatePolicy(rules, s, kJan1).index, 1u);
  s.identity = "spiffe://prod/ns/other/sa/x";
  EXPECT_EQ(EvaluatePolicy(rules, s, kJan1).index, 2u);
}

TEST(CertAllowListTest, AnyListMatches) {
  CertIdentity id;
  id.cn = "report-reader";
  id.dns = {"reader.apps.test"};
  id.uris = {"spiffe://dbward.test/ns/reports/sa/reader"};
  id.spki = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  EXPECT_EQ(id.Name(), "spiffe://dbward.test/ns/reports/sa/reader");
  CertAllowList open;
  EXPECT_TRUE(open.Allows(id));
  CertAllowList by_cn{{"report-*"}, {}, {}, {}};
  EXPECT_TRUE(by_cn.Allows(id));
  CertAllowList by_dns{{}, {"*.apps.test"}, {}, {}};
  EXPECT_TRUE(by_dns.Allows(id));
  CertAllowList by_uri{{}, {}, {"spiffe://dbward.test/ns/reports/*"}, {}};
  EXPECT_TRUE(by_uri.Allows(id));
  CertAllowList by_pin{{}, {}, {}, {id.spki}};
  EXPECT_TRUE(by_pin.Allows(id));
  CertAllowList none{{"admin"}, {"*.prod.test"}, {"spiffe://other/*"}, {"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="}};
  EXPECT_FALSE(none.Allows(id));
  CertIdentity bare;
  bare.cn = "only-cn";
  EXPECT_EQ(bare.Name(), "only-cn");
  EXPECT_EQ(bare.Describe(), "CN=only-cn, SPKI=sha256//");
}

}  // namespace
}  // namespace dbward::proxy

namespace dbward::proxy {
namespace {

TEST(CidrTest, Ipv4BlocksCoverIpv4MappedClientsOfDualStackListeners) {
  Cidr ten = *Cidr::Parse("10.0.0.0/8");
  EXPECT_TRUE(ten.Contains("10.1.2.3"));
  EXPECT_TRUE(ten.Contains("::ffff:10.1.2.3"));
  EXPECT_FALSE(ten.Contains("::ffff:11.1.2.3"));
  EXPECT_FALSE(ten.Contains("::10.1.2.3")) << "IPv4-compatible is not mapped";
  Cidr v6 = *Cidr::Parse("fd00::/8");
  EXPECT_TRUE(v6.Contains("fd00::5"));
  EXPECT_FALSE(v6.Contains("10.1.2.3"));
}

}  // namespace
}  // namespace dbward::proxy

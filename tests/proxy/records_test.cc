#include "proxy/common/records.h"

#include <gtest/gtest.h>

namespace dbward::proxy {
namespace {

TEST(RecordsTest, EveryTokenParsesBackToItsEnum) {
#define CHECK_OUTCOME(name, ...) EXPECT_EQ(ParseOutcome(Token(Outcome::name)), Outcome::name);
  DBWARD_OUTCOMES(CHECK_OUTCOME)
#undef CHECK_OUTCOME
#define CHECK_CAUSE(name, ...) EXPECT_EQ(ParseCause(Token(Cause::name)), Cause::name);
  DBWARD_CAUSES(CHECK_CAUSE)
#undef CHECK_CAUSE
#define CHECK_ENC(name, ...) EXPECT_EQ(ParseClientEncryption(Token(ClientEncryption::name)), ClientEncryption::name);
  DBWARD_CLIENT_ENCRYPTIONS(CHECK_ENC)
#undef CHECK_ENC
  EXPECT_FALSE(ParseOutcome("nope"));
  EXPECT_FALSE(ParseCause(""));
}

TEST(RecordsTest, TokensAreWhatAuditFilesSay) {
  EXPECT_STREQ(Token(Outcome::kInternalError), "error");
  EXPECT_STREQ(Token(Cause::kTlsReset), "reset");
  EXPECT_STREQ(Token(ClientEncryption::kLoginOnly), "login-only");
  EXPECT_STREQ(Token(BypassReason::kAcceptedUntrusted), "accepted-untrusted-certificate");
}

TEST(RecordsTest, ColumnsOfTheTables) {
  EXPECT_EQ(LogLevelOf(Outcome::kReset), LogLevel::kInfo);
  EXPECT_EQ(LogLevelOf(Outcome::kBackendTlsFailed), LogLevel::kWarn);
  EXPECT_TRUE(IsBackendFault(Outcome::kBackendUnreachable));
  EXPECT_FALSE(IsBackendFault(Outcome::kClientError));
  EXPECT_FALSE(CountsAsSetupFailure(Outcome::kClientClosed));
  EXPECT_TRUE(CountsAsSetupFailure(Outcome::kCanaryRejected));
  EXPECT_TRUE(IsBackendSide(Cause::kDns));
  // A client that never finishes its handshake says nothing about the backend.
  EXPECT_FALSE(IsBackendSide(Cause::kClientHandshakeTimeout));
}

TEST(RecordsTest, TlsCausesMapOntoRecordCauses) {
  EXPECT_EQ(CauseOf(tls::FailureCause::kNameMismatch), Cause::kNameMismatch);
  EXPECT_EQ(CauseOf(tls::FailureCause::kVerifyOther), Cause::kVerifyFailed);
  EXPECT_EQ(CauseOf(tls::FailureCause::kReset), Cause::kTlsReset);
  EXPECT_STREQ(Token(CauseOf(tls::FailureCause::kUntrusted)), "untrusted");
  EXPECT_STREQ(Token(CauseOf(tls::FailureCause::kNotTls)), "not_tls");
}

TEST(BypassSetTest, RendersInTableOrderAndParsesBack) {
  BypassSet s{BypassReason::kAcceptedUntrusted, BypassReason::kLoginOnly};
  EXPECT_EQ(s.Render(), "login-only-encryption,accepted-untrusted-certificate");
  EXPECT_EQ(BypassSet::Parse(s.Render()), s);
  EXPECT_TRUE(BypassSet{}.empty());
  EXPECT_EQ(BypassSet{}.Render(), "");
}

TEST(BypassSetTest, UnknownReasonsAreReportedNotDropped) {
  std::vector<std::string> unknown;
  BypassSet s = BypassSet::Parse("plaintext,,accepted-future-thing", &unknown);
  EXPECT_TRUE(s.Has(BypassReason::kPlaintext));
  EXPECT_EQ(unknown, std::vector<std::string>{"accepted-future-thing"});
}

TEST(BypassSetTest, CanaryModesHaveTheirOwnReason) {
  EXPECT_EQ(CanaryAccepted(tls::CanaryMode::kExpired), BypassReason::kAcceptedExpired);
  EXPECT_EQ(CanaryAccepted(tls::CanaryMode::kWrongName), BypassReason::kAcceptedWrongName);
}

}  // namespace
}  // namespace dbward::proxy

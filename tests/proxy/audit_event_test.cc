#include "proxy/common/audit_event.h"

#include <gtest/gtest.h>

#include <set>
#include <variant>

namespace dbward::proxy {
namespace {

AuditEvent Sample() {
  AuditEvent e;
  e.ts = "2026-11-27T04:20:21.101Z";
  e.event = "session";
  e.session_id = 513;
  e.listener = "orders";
  e.client = "10.1.2.3:52734";
  e.trust_bypass = true;
  e.bypass_reason = "plaintext";
  e.user = "app\"\x01";
  e.validates = false;
  e.bytes_up = 353;
  return e;
}

TEST(AuditEventTest, EveryFieldIsWrittenInSchemaOrderAbsentOnesAsNull) {
  std::string line = FormatAuditLine(AuditEvent{});
  size_t at = 0;
  for (const AuditFieldInfo& f : AuditSchema()) {
    std::string needle = std::string(1, '"').append(f.name).append("\":null");
    size_t next = line.find(needle, at);
    ASSERT_NE(next, std::string::npos) << f.name << " in " << line;
    at = next;
  }
}

TEST(AuditEventTest, WhatIsWrittenReadsBackTheSame) {
  AuditEvent e = Sample();
  auto parsed = ParseAuditLine(FormatAuditLine(e));
  ASSERT_TRUE(std::holds_alternative<AuditEvent>(parsed));
  EXPECT_EQ(AuditFieldTexts(std::get<AuditEvent>(parsed)), AuditFieldTexts(e));
  EXPECT_EQ(std::get<AuditEvent>(parsed).user, "app\"\x01");
}

TEST(AuditEventTest, WrongTypesAreErrorsNotAbsences) {
  // "trust_bypass":"true" silently dropped would hide a bypass.
  for (const char* line : {R"({"trust_bypass":"true"})", R"({"bytes_up":"12"})", R"({"bytes_up":1.5})",
                           R"({"user":7})"}) {
    auto parsed = ParseAuditLine(line);
    ASSERT_TRUE(std::holds_alternative<AuditLineError>(parsed)) << line;
    EXPECT_NE(std::get<AuditLineError>(parsed).reason.find("field"), std::string::npos);
  }
}

TEST(AuditEventTest, UnknownKeysAreListed) {
  std::vector<std::string> unknown;
  auto parsed = ParseAuditLine(R"({"event":"session","from_the_future":1})", &unknown);
  ASSERT_TRUE(std::holds_alternative<AuditEvent>(parsed));
  EXPECT_EQ(unknown, std::vector<std::string>{"from_the_future"});
}

TEST(AuditEventTest, SchemaNamesAreUnique) {
  std::set<std::string> names;
  for (const AuditFieldInfo& f : AuditSchema()) EXPECT_TRUE(names.insert(f.name).second) << f.name;
  EXPECT_EQ(names.size(), 43u);
}

}  // namespace
}  // namespace dbward::proxy

// scram.auth_file in PgBouncer's format, and the failure limiter that guards
// mediated logins.
#include <gtest/gtest.h>

#include "proxy/common/limiter.h"
#include "proxy/ops/auth_file.h"

namespace dbward::proxy {
namespace {

TEST(AuthFileTest, PgBouncerFormat) {
  std::unordered_map<std::string, std::string> users;
  int line = 0;
  std::string error;
  ASSERT_TRUE(ParseAuthFile("# comment\n"
                            "; also a comment\n"
                            "\n"
                            "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$a:b\"\n"
                            "  \"o\"\"brien\"\t\"md5abc\" trailing words are ignored\r\n",
                            &users, &line, &error))
      << error;
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users["alice"], "SCRAM-SHA-256$4096:c2FsdA==$a:b");
  EXPECT_EQ(users["o\"brien"], "md5abc");
}

TEST(AuthFileTest, ErrorsNameTheLineNotTheSecret) {
  std::unordered_map<std::string, std::string> users = {{"kept", "x"}};
  int line = 0;
  std::string error;
  EXPECT_FALSE(ParseAuthFile("\"a\" \"s1\"\nalice SCRAM-SHA-256$secret\n", &users, &line, &error));
  EXPECT_EQ(line, 2);
  EXPECT_EQ(error, "expected two double-quoted fields: \"user\" \"SCRAM-SHA-256$...\"");
  EXPECT_EQ(users.size(), 1u) << "a bad file changes nothing";
  EXPECT_FALSE(ParseAuthFile("\"a\" \"s1\"\n\"a\" \"s2\"\n", &users, &line, &error));
  EXPECT_EQ(line, 2);
  EXPECT_EQ(error, "user \"a\" is listed twice");
  EXPECT_FALSE(ParseAuthFile("\"a\" \"unterminated\n", &users, &line, &error));
  EXPECT_EQ(error.find("unterminated"), std::string::npos);
  EXPECT_FALSE(ParseAuthFile("\"\" \"s\"\n", &users, &line, &error));
  EXPECT_EQ(error, "empty user name");
}

TEST(FailureLimiterTest, BurstThenOneTryPerInterval) {
  FailureLimiter l(3, 1000);
  EXPECT_TRUE(l.Allowed("a", 0));
  for (int i = 0; i < 3; i++) l.Failed("a", 0);
  uint64_t retry = 0;
  EXPECT_FALSE(l.Allowed("a", 0, &retry));
  EXPECT_EQ(retry, 1000u);
  EXPECT_FALSE(l.Allowed("a", 999));
  EXPECT_TRUE(l.Allowed("a", 1000));
  EXPECT_TRUE(l.Allowed("b", 0)) << "per key";
  l.Failed("a", 1000);
  EXPECT_FALSE(l.Allowed("a", 1500));
  EXPECT_TRUE(l.Allowed("a", 100'000)) << "the whole burst comes back";
}

}  // namespace
}  // namespace dbward::proxy

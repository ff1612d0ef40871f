#include "proxy/common/json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace dbward::proxy {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(JsonTest, PlainStringIsQuoted) { EXPECT_EQ(Quote("db01"), R"("db01")"); }

TEST(JsonTest, EmptyString) { EXPECT_EQ(Quote(""), R"("")"); }

TEST(JsonTest, EscapesQuoteAndBackslash) {
  EXPECT_EQ(Quote(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
}

TEST(JsonTest, EscapesNewlineCarriageReturnTab) {
  EXPECT_EQ(Quote("a\nb\rc\td"), R"("a\nb\rc\td")");
}

TEST(JsonTest, EscapesOtherControlCharsAsUnicode) {
  EXPECT_EQ(Quote("\x01"), R"("\u0001")");
  EXPECT_EQ(Quote("\x1f"), R"("\u001f")");
  EXPECT_EQ(Quote("\x08\x0c"), R"("\u0008\u000c")");
  EXPECT_EQ(Quote("\x7f"), R"("\u007f")");
}

TEST(JsonTest, EscapesEmbeddedNul) {
  EXPECT_EQ(Quote(std::string_view("a\0b", 3)), R"("a\u0000b")");
}

TEST(JsonTest, PassesUtf8Through) {
  EXPECT_EQ(Quote("caf\xc3\xa9 \xe2\x9c\x93"), "\"caf\xc3\xa9 \xe2\x9c\x93\"");
}

TEST(JsonTest, AppendsToExistingText) {
  std::string out = "x=";
  AppendJsonString(&out, "y");
  EXPECT_EQ(out, R"(x="y")");
}

TEST(JsonTest, EmptyObject) { EXPECT_EQ(JsonObject().Finish(), "{}"); }

TEST(JsonTest, KeysKeepInsertionOrder) {
  std::string s = JsonObject()
                      .Str("zeta", "1")
                      .Int("alpha", 2)
                      .Bool("mid", true)
                      .Bool("off", false)
                      .Null("none")
                      .Finish();
  EXPECT_EQ(s, R"({"zeta":"1","alpha":2,"mid":true,"off":false,"none":null})");
}

TEST(JsonTest, IntExtremes) {
  std::string s = JsonObject()
                      .Int("min", std::numeric_limits<int64_t>::min())
                      .Int("max", std::numeric_limits<int64_t>::max())
                      .Int("zero", 0)
                      .Finish();
  EXPECT_EQ(s, R"({"min":-9223372036854775808,"max":9223372036854775807,"zero":0})");
}

TEST(JsonTest, KeysAndValuesAreEscaped) {
  std::string s = JsonObject().Str("a\"b", "line1\nline2\x01").Finish();
  EXPECT_EQ(s, R"({"a\"b":"line1\nline2\u0001"})");
}

TEST(JsonTest, StrOrNullWritesNullForEmpty) {
  std::string s = JsonObject().StrOrNull("sni", "").StrOrNull("user", "alice").Finish();
  EXPECT_EQ(s, R"({"sni":null,"user":"alice"})");
}

}  // namespace
}  // namespace dbward::proxy

namespace dbward::proxy {
namespace {

TEST(JsonUtf8, InvalidBytesBecomeReplacementCharacter) {
  std::string out;
  AppendJsonString(&out, std::string("a\xff" "b\xc3\xa9" "c\xe2\x82" "d", 9));
  EXPECT_EQ(out, "\"a\\ufffdb\xc3\xa9" "c\\ufffd\\ufffdd\"");
}

TEST(JsonUtf8, OverlongAndSurrogateEncodingsAreRejected) {
  std::string out;
  AppendJsonString(&out, std::string("\xc0\xaf\xed\xa0\x80", 5));
  EXPECT_EQ(out, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

TEST(JsonUtf8, FourByteSequencePassesThrough) {
  std::string out;
  AppendJsonString(&out, "\xf0\x9f\x90\x98");
  EXPECT_EQ(out, "\"\xf0\x9f\x90\x98\"");
}

}  // namespace
}  // namespace dbward::proxy

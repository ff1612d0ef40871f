#include "protocol/builder.h"

#include <gtest/gtest.h>

#include "protocol/cursor.h"
#include "tests/protocol/bytes_util.h"

namespace dbward::protocol {
namespace {

using testutil::Bytes;
using testutil::FromHex;

TEST(BuilderTest, IntegersInBothByteOrders) {
  Builder b;
  b.U8(0x01).U16BE(0x0203).U16LE(0x0504).U24LE(0x080706).U32BE(0x090a0b0c).U32LE(0x100f0e0d).U64LE(0x1817161514131211);
  EXPECT_EQ(b.Take(), FromHex("0102030405060708090a0b0c0d0e0f101112131415161718"));
}

TEST(BuilderTest, CStringTerminatesAndReplacesEmbeddedNul) {
  Builder b;
  b.CString(std::string_view("a\0b", 3)).CString("");
  EXPECT_EQ(b.Take(), FromHex("6120620000"));
}

TEST(BuilderTest, PrefixesCountTheirBodyAndOptionallyThemselves) {
  Builder b;
  b.Prefixed(Builder::Width::kU32BE, Builder::Counts::kInclusive, [&] { b.Text("abcd"); });
  b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] { b.U8(1).U8(2).U8(3); });
  EXPECT_EQ(b.Take(), FromHex("0000000861626364" "0300010203"));
}

TEST(BuilderTest, NestedPrefixes) {
  Builder b;
  b.Prefixed(Builder::Width::kU16BE, Builder::Counts::kBodyOnly, [&] {
    b.U8(0xaa);
    b.Prefixed(Builder::Width::kU24LE, Builder::Counts::kBodyOnly, [&] { b.Zeros(2); });
  });
  EXPECT_EQ(b.Take(), FromHex("0006aa0200000000"));
}

TEST(BuilderTest, OverflowingPrefixMarksTheBuilder) {
  Builder b;
  EXPECT_TRUE(b.ok());
  b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] { b.Zeros(70000); });
  EXPECT_FALSE(b.ok());
}

TEST(BuilderTest, WhatItBuildsTheCursorReads) {
  Builder b;
  b.U16LE(7).Prefixed(Builder::Width::kU16BE, Builder::Counts::kBodyOnly, [&] { b.CString("hi"); });
  Bytes bytes = b.Take();
  Cursor c(bytes);
  uint16_t v, len;
  std::string_view s;
  ASSERT_TRUE(c.GetU16LE(&v) && c.GetU16BE(&len));
  Cursor child;
  ASSERT_TRUE(c.GetBytes(len, &child) && child.GetCString(&s));
  EXPECT_EQ(v, 7);
  EXPECT_EQ(s, "hi");
  EXPECT_TRUE(c.Empty() && child.Empty());
}

}  // namespace
}  // namespace dbward::protocol

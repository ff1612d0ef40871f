#include "protocol/cursor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace dbward::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(CursorTest, DefaultCursorIsEmptyAndEveryGetFails) {
  Cursor c;
  EXPECT_TRUE(c.Empty());
  EXPECT_EQ(c.size(), 0u);
  uint8_t u8 = 0xaa;
  EXPECT_FALSE(c.GetU8(&u8));
  EXPECT_FALSE(c.PeekU8(&u8));
  EXPECT_EQ(u8, 0xaa);
  EXPECT_TRUE(c.Skip(0));
  EXPECT_FALSE(c.Skip(1));
}

TEST(CursorTest, GetU8ReadsInOrderAndAdvances) {
  const Bytes data = {0x01, 0xfe};
  Cursor c(data);
  uint8_t v = 0;
  ASSERT_TRUE(c.GetU8(&v));
  EXPECT_EQ(v, 0x01);
  EXPECT_EQ(c.size(), 1u);
  ASSERT_TRUE(c.GetU8(&v));
  EXPECT_EQ(v, 0xfe);
  EXPECT_TRUE(c.Empty());
  EXPECT_FALSE(c.GetU8(&v));
  EXPECT_EQ(v, 0xfe);
}

TEST(CursorTest, PeekU8DoesNotAdvance) {
  const Bytes data = {0x42, 0x43};
  Cursor c(data);
  uint8_t v = 0;
  ASSERT_TRUE(c.PeekU8(&v));
  EXPECT_EQ(v, 0x42);
  ASSERT_TRUE(c.PeekU8(&v));
  EXPECT_EQ(v, 0x42);
  EXPECT_EQ(c.size(), 2u);
  ASSERT_TRUE(c.GetU8(&v));
  EXPECT_EQ(v, 0x42);
  ASSERT_TRUE(c.PeekU8(&v));
  EXPECT_EQ(v, 0x43);
}

TEST(CursorTest, BigEndianIntegers) {
  const Bytes data = {0x12, 0x34, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98};
  Cursor c(data);
  uint16_t u16 = 0;
  uint32_t u24 = 0;
  uint32_t u32 = 0;
  ASSERT_TRUE(c.GetU16BE(&u16));
  EXPECT_EQ(u16, 0x1234);
  ASSERT_TRUE(c.GetU24BE(&u24));
  EXPECT_EQ(u24, 0xabcdefu);
  ASSERT_TRUE(c.GetU32BE(&u32));
  EXPECT_EQ(u32, 0xfedcba98u);
  EXPECT_TRUE(c.Empty());
}

TEST(CursorTest, LittleEndianIntegers) {
  const Bytes data = {0x34, 0x12, 0xef, 0xcd, 0xab, 0x98, 0xba, 0xdc, 0xfe,
                      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
  Cursor c(data);
  uint16_t u16 = 0;
  uint32_t u24 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  ASSERT_TRUE(c.GetU16LE(&u16));
  EXPECT_EQ(u16, 0x1234);
  ASSERT_TRUE(c.GetU24LE(&u24));
  EXPECT_EQ(u24, 0xabcdefu);
  ASSERT_TRUE(c.GetU32LE(&u32));
  EXPECT_EQ(u32, 0xfedcba98u);
  ASSERT_TRUE(c.GetU64LE(&u64));
  EXPECT_EQ(u64, 0x8877665544332211ull);
  EXPECT_TRUE(c.Empty());
}

TEST(CursorTest, HighBitsSurviveInEveryWidth) {
  const Bytes ff(8, 0xff);
  {
    Cursor c(ff);
    uint16_t v = 0;
    ASSERT_TRUE(c.GetU16BE(&v));
    EXPECT_EQ(v, 0xffff);
  }
  {
    Cursor c(ff);
    uint32_t v = 0;
    ASSERT_TRUE(c.GetU24LE(&v));
    EXPECT_EQ(v, 0x00ffffffu);
  }
  {
    Cursor c(ff);
    uint32_t v = 0;
    ASSERT_TRUE(c.GetU32LE(&v));
    EXPECT_EQ(v, 0xffffffffu);
  }
  {
    Cursor c(ff);
    uint64_t v = 0;
    ASSERT_TRUE(c.GetU64LE(&v));
    EXPECT_EQ(v, 0xffffffffffffffffull);
  }
}

TEST(CursorTest, FailedIntegerGetDoesNotAdvanceOrWrite) {
  const Bytes data = {0x01, 0x02, 0x03};
  Cursor c(data);
  uint32_t u32 = 0xdeadbeef;
  EXPECT_FALSE(c.GetU32BE(&u32));
  EXPECT_FALSE(c.GetU32LE(&u32));
  EXPECT_EQ(u32, 0xdeadbeefu);
  uint64_t u64 = 7;
  EXPECT_FALSE(c.GetU64LE(&u64));
  EXPECT_EQ(u64, 7u);
  EXPECT_EQ(c.size(), 3u);
  // The bytes are still there for a narrower read.
  uint32_t u24 = 0;
  ASSERT_TRUE(c.GetU24BE(&u24));
  EXPECT_EQ(u24, 0x010203u);
}

TEST(CursorTest, GetBytesCarvesChildCursor) {
  const Bytes data = {0xaa, 0xbb, 0xcc, 0xdd};
  Cursor c(data);
  Cursor child;
  ASSERT_TRUE(c.GetBytes(3, &child));
  EXPECT_EQ(child.size(), 3u);
  EXPECT_EQ(c.size(), 1u);
  uint8_t v = 0;
  ASSERT_TRUE(child.GetU8(&v));
  EXPECT_EQ(v, 0xaa);
  ASSERT_TRUE(c.GetU8(&v));
  EXPECT_EQ(v, 0xdd);
}

TEST(CursorTest, GetBytesBeyondEndFailsWithoutAdvancing) {
  const Bytes data = {0xaa, 0xbb};
  Cursor c(data);
  Cursor child;
  EXPECT_FALSE(c.GetBytes(3, &child));
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(child.Empty());
}

TEST(CursorTest, GetSpanReturnsExactBytes) {
  const Bytes data = {1, 2, 3, 4, 5};
  Cursor c(data);
  std::span<const uint8_t> s;
  ASSERT_TRUE(c.GetSpan(2, &s));
  EXPECT_EQ(Bytes(s.begin(), s.end()), (Bytes{1, 2}));
  EXPECT_EQ(s.data(), data.data());  // a view, not a copy
  EXPECT_FALSE(c.GetSpan(4, &s));
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(Bytes(s.begin(), s.end()), (Bytes{1, 2}));
  std::span<const uint8_t> rest = c.Rest();
  EXPECT_EQ(Bytes(rest.begin(), rest.end()), (Bytes{3, 4, 5}));
}

TEST(CursorTest, GetCStringConsumesTerminator) {
  const Bytes data = {'u', 's', 'e', 'r', 0, 'x', 0, 0};
  Cursor c(data);
  std::string_view s;
  ASSERT_TRUE(c.GetCString(&s));
  EXPECT_EQ(s, "user");
  EXPECT_EQ(c.size(), 3u);
  ASSERT_TRUE(c.GetCString(&s));
  EXPECT_EQ(s, "x");
  ASSERT_TRUE(c.GetCString(&s));
  EXPECT_EQ(s, "");
  EXPECT_TRUE(c.Empty());
}

TEST(CursorTest, GetCStringWithoutNulFailsWithoutAdvancing) {
  const Bytes data = {'a', 'b', 'c'};
  Cursor c(data);
  std::string_view s = "untouched";
  EXPECT_FALSE(c.GetCString(&s));
  EXPECT_EQ(s, "untouched");
  EXPECT_EQ(c.size(), 3u);
}

TEST(CursorTest, U8LengthPrefixed) {
  const Bytes data = {2, 'h', 'i', 0, 9};
  Cursor c(data);
  Cursor child;
  ASSERT_TRUE(c.GetU8LengthPrefixed(&child));
  ASSERT_EQ(child.size(), 2u);
  std::span<const uint8_t> s = child.Rest();
  EXPECT_EQ(Bytes(s.begin(), s.end()), (Bytes{'h', 'i'}));
  // A zero length is a valid, empty field.
  ASSERT_TRUE(c.GetU8LengthPrefixed(&child));
  EXPECT_TRUE(child.Empty());
  EXPECT_EQ(c.size(), 1u);
}

TEST(CursorTest, U8LengthPrefixedWithLyingLengthRestoresPosition) {
  const Bytes data = {5, 'a', 'b'};  // claims 5 bytes, has 2
  Cursor c(data);
  Cursor child;
  EXPECT_FALSE(c.GetU8LengthPrefixed(&child));
  EXPECT_EQ(c.size(), 3u);  // the length byte is not consumed either
  uint8_t v = 0;
  ASSERT_TRUE(c.GetU8(&v));
  EXPECT_EQ(v, 5);
}

TEST(CursorTest, U8LengthPrefixedOnEmptyFails) {
  Cursor c;
  Cursor child;
  EXPECT_FALSE(c.GetU8LengthPrefixed(&child));
}

TEST(CursorTest, SkipWithinAndBeyondEnd) {
  const Bytes data = {1, 2, 3};
  Cursor c(data);
  EXPECT_FALSE(c.Skip(4));
  EXPECT_EQ(c.size(), 3u);
  ASSERT_TRUE(c.Skip(2));
  uint8_t v = 0;
  ASSERT_TRUE(c.PeekU8(&v));
  EXPECT_EQ(v, 3);
  EXPECT_FALSE(c.Skip(2));
  EXPECT_EQ(c.size(), 1u);
  ASSERT_TRUE(c.Skip(1));
  EXPECT_TRUE(c.Empty());
}

TEST(CursorTest, SkipHugeCountDoesNotWrap) {
  const Bytes data = {1, 2, 3};
  Cursor c(data);
  EXPECT_FALSE(c.Skip(SIZE_MAX));
  EXPECT_EQ(c.size(), 3u);
}

}  // namespace
}  // namespace dbward::protocol

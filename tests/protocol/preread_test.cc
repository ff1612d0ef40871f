#include "protocol/preread.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace dbward::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

FirstBytes Classify(const Bytes& b) { return ClassifyFirstBytes(b); }

TEST(PrereadTest, TlsClientHelloRecord) {
  // Record header (handshake, TLS 1.0 record version, length 0x0200) and the
  // start of a ClientHello, as OpenSSL and BoringSSL clients send it.
  EXPECT_EQ(Classify({0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}),
            FirstBytes::kTlsHandshake);
}

TEST(PrereadTest, TlsRecordVersions) {
  EXPECT_EQ(Classify({0x16, 0x03, 0x00}), FirstBytes::kTlsHandshake);  // SSL 3.0 record
  EXPECT_EQ(Classify({0x16, 0x03, 0x03}), FirstBytes::kTlsHandshake);  // TLS 1.2 record
  EXPECT_EQ(Classify({0x16, 0x03, 0x04}), FirstBytes::kTlsHandshake);
  EXPECT_EQ(Classify({0x16, 0x03, 0x05}), FirstBytes::kOther);
  EXPECT_EQ(Classify({0x16, 0x02, 0x01}), FirstBytes::kOther);
}

TEST(PrereadTest, PostgresSslRequestIsNotTls) {
  // Int32 length 8, Int32 code 80877103 (0x04d2162f).
  EXPECT_EQ(Classify({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f}), FirstBytes::kOther);
}

TEST(PrereadTest, PostgresStartupMessageIsNotTls) {
  // Int32 length 0x16 (22), protocol 3.0.
  EXPECT_EQ(Classify({0x00, 0x00, 0x00, 0x16, 0x00, 0x03, 0x00, 0x00}), FirstBytes::kOther);
}

TEST(PrereadTest, TdsPreloginIsNotTls) {
  // Type 0x12 PRELOGIN, status 0x01 EOM, length 0x002f, SPID 0, packet 1, window 0.
  EXPECT_EQ(Classify({0x12, 0x01, 0x00, 0x2f, 0x00, 0x00, 0x01, 0x00}), FirstBytes::kOther);
}

TEST(PrereadTest, DecidesOtherOnFirstByte) {
  EXPECT_EQ(Classify({0x12}), FirstBytes::kOther);
  EXPECT_EQ(Classify({0x00}), FirstBytes::kOther);
  EXPECT_EQ(Classify({0x17}), FirstBytes::kOther);  // application data record
}

TEST(PrereadTest, NeedsMoreForPrefixesOfTlsHeader) {
  EXPECT_EQ(Classify({}), FirstBytes::kNeedMore);
  EXPECT_EQ(Classify({0x16}), FirstBytes::kNeedMore);
  EXPECT_EQ(Classify({0x16, 0x03}), FirstBytes::kNeedMore);
}

TEST(PrereadTest, DecidesOtherOnSecondByte) {
  EXPECT_EQ(Classify({0x16, 0x00}), FirstBytes::kOther);
}

}  // namespace
}  // namespace dbward::protocol

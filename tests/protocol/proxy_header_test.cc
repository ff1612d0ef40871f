// PROXY protocol headers: the specification's examples, every split point,
// what HAProxy sends for health checks, and the inputs a receiver must drop.
#include <gtest/gtest.h>

#include "bytes_util.h"
#include "protocol/proxy_header.h"

namespace dbward::protocol::proxy_header {
namespace {

using namespace dbward::protocol::testutil;

const Bytes kSig = FromHex("0d0a0d0a000d0a515549540a");

Bytes V2(uint8_t ver_cmd, uint8_t fam, const Bytes& body) {
  Bytes out = kSig;
  out.push_back(ver_cmd);
  out.push_back(fam);
  out.push_back(static_cast<uint8_t>(body.size() >> 8));
  out.push_back(static_cast<uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

TEST(ProxyHeaderTest, Crc32cCheckValue) {
  // RFC 3720 B.4 / the usual "123456789" check value of CRC-32C.
  EXPECT_EQ(Crc32c(StrBytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c(Bytes(32, 0x00)), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(ProxyHeaderTest, V1Tcp4WithDataBehind) {
  Bytes in = StrBytes("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n");
  Header h;
  ASSERT_TRUE(Parse(in, &h).ok());
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.command, Command::kProxy);
  ASSERT_TRUE(h.has_addresses);
  EXPECT_EQ(h.src_addr, (Bytes{192, 168, 0, 1}));
  EXPECT_EQ(h.dst_addr, (Bytes{192, 168, 0, 11}));
  EXPECT_EQ(h.src_port, 56324);
  EXPECT_EQ(h.dst_port, 443);
  EXPECT_EQ(h.length, 47u);
}

TEST(ProxyHeaderTest, V1Tcp6AndUnknown) {
  Header h;
  ASSERT_TRUE(Parse(StrBytes("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.5 65535 0\r\n"), &h).ok());
  EXPECT_EQ(h.src_addr, FromHex("20010db8000000000000000000000001"));
  EXPECT_EQ(h.dst_addr, FromHex("00000000000000000000ffff0a000005"));
  EXPECT_EQ(h.src_port, 65535);
  EXPECT_EQ(h.dst_port, 0);
  // UNKNOWN: the real endpoints stand; anything after it is ignored.
  ASSERT_TRUE(Parse(StrBytes("PROXY UNKNOWN\r\n"), &h).ok());
  EXPECT_FALSE(h.has_addresses);
  EXPECT_EQ(h.command, Command::kLocal);
  ASSERT_TRUE(Parse(StrBytes("PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n"), &h).ok());
  EXPECT_FALSE(h.has_addresses);
}

TEST(ProxyHeaderTest, V1Malformed) {
  for (const char* bad : {
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // a field short
           "PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n",   // two spaces
           "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",   // leading zero (octal confusion)
           "PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n",  // octet out of range
           "PROXY TCP4 ::1 ::1 1 2\r\n",                           // IPv6 under TCP4
           "PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n",                 // IPv4 under TCP6
           "PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",             // port out of range
           "PROXY TCP4 10.0.0.1 10.0.0.2 080 2\r\n",               // port with a leading zero
           "PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n",
           "PROXY TCP6 1::2::3 ::1 1 2\r\n",                       // two gaps
           "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",             // nine groups
           "PROXY TCP6 12345::1 ::1 1 2\r\n",                      // a five-digit group
           "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\x01\r\n",
       }) {
    Header h;
    EXPECT_TRUE(Parse(StrBytes(bad), &h).malformed()) << bad;
  }
  // No CRLF within 107 bytes.
  Header h;
  EXPECT_TRUE(Parse(StrBytes("PROXY TCP4 " + std::string(120, '1')), &h).malformed());
}

TEST(ProxyHeaderTest, V1EveryPrefixNeedsMore) {
  Bytes in = StrBytes("PROXY TCP6 2001:db8::1 2001:db8::2 5432 6432\r\n");
  for (size_t n = 0; n < in.size(); n++) {
    Header h;
    EXPECT_TRUE(Parse(Bytes(in.begin(), in.begin() + n), &h).need_more()) << n;
  }
}

TEST(ProxyHeaderTest, V2Tcp4WithTlvsAndCrc) {
  Outgoing o;
  o.src_addr = {10, 1, 2, 3};
  o.dst_addr = {10, 9, 8, 7};
  o.src_port = 40000;
  o.dst_port = 5432;
  o.alpn = "postgresql";
  o.authority = "db.internal";
  o.unique_id = "dbward-7";
  o.ssl = SslInfo{kClientSsl | kClientCertConn, 0, "TLSv1.3", "reporter", "TLS_AES_128_GCM_SHA256", "", ""};
  Bytes wire = EncodeV2(o);
  ASSERT_FALSE(wire.empty());
  EXPECT_EQ(Bytes(wire.begin(), wire.begin() + 12), kSig);
  EXPECT_EQ(wire[12], 0x21);
  EXPECT_EQ(wire[13], 0x11);
  Bytes with_data = wire;
  with_data.push_back(0x00);  // the client's first byte
  Header h;
  ASSERT_TRUE(Parse(with_data, &h).ok());
  EXPECT_EQ(h.length, wire.size());
  EXPECT_EQ(h.version, 2);
  EXPECT_TRUE(h.crc_checked);
  EXPECT_EQ(h.src_addr, o.src_addr);
  EXPECT_EQ(h.dst_addr, o.dst_addr);
  EXPECT_EQ(h.src_port, 40000);
  EXPECT_EQ(h.dst_port, 5432);
  EXPECT_EQ(h.alpn, "postgresql");
  EXPECT_EQ(h.authority, "db.internal");
  EXPECT_EQ(h.unique_id, "dbward-7");
  ASSERT_TRUE(h.ssl);
  EXPECT_EQ(h.ssl->client, kClientSsl | kClientCertConn);
  EXPECT_EQ(h.ssl->verify, 0u);
  EXPECT_EQ(h.ssl->version, "TLSv1.3");
  EXPECT_EQ(h.ssl->cn, "reporter");
  EXPECT_EQ(h.ssl->cipher, "TLS_AES_128_GCM_SHA256");
  for (size_t n = 0; n < wire.size(); n++) {
    Header part;
    EXPECT_TRUE(Parse(Bytes(wire.begin(), wire.begin() + n), &part).need_more()) << n;
  }
  // Any flipped bit in the header fails the checksum (or the structure).
  for (size_t i = 16; i < wire.size(); i++) {
    Bytes bad = wire;
    bad[i] ^= 0x01;
    Header b;
    Result r = Parse(bad, &b);
    EXPECT_FALSE(r.ok() && b.src_addr == o.src_addr && b.authority == o.authority && b.ssl &&
                 b.ssl->cn == "reporter" && b.src_port == 40000 && b.dst_port == 5432 && b.alpn == o.alpn &&
                 b.unique_id == o.unique_id && b.dst_addr == o.dst_addr)
        << "byte " << i;
  }
}

// What HAProxy 2.6 sent (send-proxy-v2 proxy-v2-options
// crc32c,unique-id,authority,ssl), with a PostgreSQL SSLRequest behind it.
TEST(ProxyHeaderTest, RealHaproxyV2WithCrc32c) {
  const Bytes wire = FromHex(
      "0d0a0d0a000d0a515549540a2111001e7f0000017f000001949add13030004654a611d05000020000500000000000000000804d2162f");
  Header h;
  ASSERT_TRUE(Parse(wire, &h).ok());
  EXPECT_EQ(h.length, 46u);
  EXPECT_TRUE(h.crc_checked) << "HAProxy's CRC32C matches ours";
  EXPECT_EQ(h.src_addr, (Bytes{127, 0, 0, 1}));
  EXPECT_EQ(h.src_port, 0x949a);
  EXPECT_EQ(h.dst_port, 0xdd13);
  ASSERT_TRUE(h.ssl);
  EXPECT_EQ(h.ssl->client, 0) << "the client did not use TLS towards HAProxy";
  EXPECT_EQ(h.unique_id, "");
  // One bit off in the checksummed part, and it is refused.
  Bytes bad = wire;
  bad[20] ^= 0x01;
  EXPECT_TRUE(Parse(bad, &h).malformed());
}

TEST(ProxyHeaderTest, RealHaproxyV1AndV2) {
  Header h;
  ASSERT_TRUE(Parse(FromHex("50524f58592054435034203132372e302e302e31203132372e302e302e312036303533342033343433370d0a"
                            "0000000804d2162f"),
                    &h)
                  .ok());
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.src_port, 60534);
  EXPECT_EQ(h.dst_port, 34437);
  ASSERT_TRUE(Parse(FromHex("0d0a0d0a000d0a515549540a2111000c7f0000017f000001ce68e92f0000000804d2162f"), &h).ok());
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.length, 28u);
  EXPECT_FALSE(h.crc_checked);
  EXPECT_EQ(h.src_port, 0xce68);
}

TEST(ProxyHeaderTest, V2Tcp6) {
  Outgoing o;
  o.src_addr = FromHex("20010db8000000000000000000000001");
  o.dst_addr = FromHex("20010db8000000000000000000000002");
  o.src_port = 1;
  o.dst_port = 2;
  Bytes wire = EncodeV2(o);
  Header h;
  ASSERT_TRUE(Parse(wire, &h).ok());
  EXPECT_EQ(wire[13], 0x21);
  EXPECT_EQ(h.src_addr, o.src_addr);
  EXPECT_EQ(h.dst_port, 2);
}

TEST(ProxyHeaderTest, V2LocalAsHaproxyHealthChecksSendIt) {
  // LOCAL with UNSPEC and no address: the receiver uses the real endpoints.
  Header h;
  ASSERT_TRUE(Parse(V2(0x20, 0x00, {}), &h).ok());
  EXPECT_EQ(h.command, Command::kLocal);
  EXPECT_FALSE(h.has_addresses);
  EXPECT_EQ(h.length, 16u);
  // LOCAL with an address block anyway: skipped, not used.
  ASSERT_TRUE(Parse(V2(0x20, 0x11, Bytes(12, 7)), &h).ok());
  EXPECT_FALSE(h.has_addresses);
  EXPECT_EQ(h.length, 28u);
  // Our own LOCAL header parses back.
  Outgoing local;
  local.command = Command::kLocal;
  ASSERT_TRUE(Parse(EncodeV2(local), &h).ok());
  EXPECT_EQ(h.command, Command::kLocal);
}

TEST(ProxyHeaderTest, V2UnspecAndUnixProxyKeepRealEndpoints) {
  Header h;
  ASSERT_TRUE(Parse(V2(0x21, 0x00, {}), &h).ok());
  EXPECT_FALSE(h.has_addresses);
  ASSERT_TRUE(Parse(V2(0x21, 0x31, Bytes(216, 'a')), &h).ok());
  EXPECT_FALSE(h.has_addresses);
}

TEST(ProxyHeaderTest, V2Malformed) {
  Header h;
  EXPECT_TRUE(Parse(V2(0x11, 0x11, Bytes(12, 0)), &h).malformed());  // version 1 in the binary form
  EXPECT_TRUE(Parse(V2(0x22, 0x11, Bytes(12, 0)), &h).malformed());  // command 2
  EXPECT_TRUE(Parse(V2(0x21, 0x41, Bytes(12, 0)), &h).malformed());  // family 4
  EXPECT_TRUE(Parse(V2(0x21, 0x13, Bytes(12, 0)), &h).malformed());  // transport 3
  EXPECT_TRUE(Parse(V2(0x21, 0x11, Bytes(11, 0)), &h).malformed());  // address block cut short
  EXPECT_TRUE(Parse(V2(0x21, 0x12, Bytes(12, 0)), &h).malformed());  // UDP on a stream listener
  Bytes tlv_past_end = Bytes(12, 0);
  tlv_past_end.insert(tlv_past_end.end(), {kTlvAuthority, 0x00, 0x05, 'a', 'b'});
  EXPECT_TRUE(Parse(V2(0x21, 0x11, tlv_past_end), &h).malformed());
  Bytes bad_crc = Bytes(12, 0);
  bad_crc.insert(bad_crc.end(), {kTlvCrc32c, 0x00, 0x04, 1, 2, 3, 4});
  EXPECT_TRUE(Parse(V2(0x21, 0x11, bad_crc), &h).malformed());
  Bytes long_id = Bytes(12, 0);
  long_id.insert(long_id.end(), {kTlvUniqueId, 0x00, 129});
  long_id.insert(long_id.end(), 129, 'x');
  EXPECT_TRUE(Parse(V2(0x21, 0x11, long_id), &h).malformed());
  Bytes short_ssl = Bytes(12, 0);
  short_ssl.insert(short_ssl.end(), {kTlvSsl, 0x00, 0x02, 1, 0});
  EXPECT_TRUE(Parse(V2(0x21, 0x11, short_ssl), &h).malformed());
  // Above dbward's cap, before the bytes even arrive.
  Bytes huge = kSig;
  huge.insert(huge.end(), {0x21, 0x11, 0xff, 0xff});
  EXPECT_TRUE(Parse(huge, &h).malformed());
}

TEST(ProxyHeaderTest, UnknownTlvsAreKeptAndIgnored) {
  Bytes body = Bytes(12, 0);
  body.insert(body.end(), {0xE0, 0x00, 0x02, 'h', 'i', kTlvNoop, 0x00, 0x00});
  Header h;
  ASSERT_TRUE(Parse(V2(0x21, 0x11, body), &h).ok());
  ASSERT_EQ(h.tlvs.size(), 2u);
  EXPECT_EQ(h.tlvs[0].type, 0xE0);
  EXPECT_EQ(h.tlvs[0].value, StrBytes("hi"));
}

TEST(ProxyHeaderTest, Sniff) {
  EXPECT_EQ(SniffHeader(kSig), Sniff::kYes);
  EXPECT_EQ(SniffHeader(Bytes(kSig.begin(), kSig.begin() + 5)), Sniff::kMaybe);
  EXPECT_EQ(SniffHeader(StrBytes("PROXY TCP4")), Sniff::kYes);
  EXPECT_EQ(SniffHeader(StrBytes("PRO")), Sniff::kMaybe);
  // What database clients send first: a PostgreSQL SSLRequest, TDS PRELOGIN,
  // a TLS ClientHello, a MySQL handshake response.
  EXPECT_EQ(SniffHeader(FromHex("0000000804d2162f")), Sniff::kNo);
  EXPECT_EQ(SniffHeader(FromHex("1201002f00000100")), Sniff::kNo);
  EXPECT_EQ(SniffHeader(FromHex("160301020001")), Sniff::kNo);
  EXPECT_EQ(SniffHeader(FromHex("50000001")), Sniff::kNo);  // length 0x50, sequence 1
  Header h;
  EXPECT_TRUE(Parse(FromHex("0000000804d2162f"), &h).malformed());
}

TEST(ProxyHeaderTest, EncodeRefusesMixedFamilies) {
  Outgoing o;
  o.src_addr = {1, 2, 3, 4};
  o.dst_addr = Bytes(16, 0);
  EXPECT_TRUE(EncodeV2(o).empty());
  o.dst_addr = {5, 6, 7, 8};
  o.unique_id = std::string(129, 'x');
  EXPECT_TRUE(EncodeV2(o).empty());
}

TEST(ProxyHeaderTest, Ipv6Forms) {
  Bytes v;
  ASSERT_TRUE(ParseIpv6("::", &v));
  EXPECT_EQ(v, Bytes(16, 0));
  ASSERT_TRUE(ParseIpv6("::1", &v));
  EXPECT_EQ(v.back(), 1);
  ASSERT_TRUE(ParseIpv6("fe80::", &v));
  EXPECT_EQ(v[0], 0xfe);
  ASSERT_TRUE(ParseIpv6("1:2:3:4:5:6:7:8", &v));
  EXPECT_EQ(v[15], 8);
  ASSERT_TRUE(ParseIpv6("1:2:3:4:5:6:1.2.3.4", &v));
  EXPECT_EQ(v[12], 1);
  for (const char* bad : {"", ":", ":::", "1:2:3:4:5:6:7", "1::2:3:4:5:6:7:8", "g::1", "1.2.3.4::", "::1.2.3"}) {
    EXPECT_FALSE(ParseIpv6(bad, &v)) << bad;
  }
}

}  // namespace
}  // namespace dbward::protocol::proxy_header

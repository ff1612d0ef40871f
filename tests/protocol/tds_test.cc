#include "protocol/tds.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tests/protocol/bytes_util.h"

namespace dbward::protocol::tds {
namespace {

using namespace dbward::protocol::testutil;  // Bytes, FromHex, Append..., Concat, Prefix

// Real TDS wire bytes, copied from the shared vector file (vectors/tds.json)
// so that CI does not depend on where it lives. Each constant names its vector
// and where it was taken from; "packet" means the 8-byte header is included,
// "payload" that the vector is the payload only.

// "mstds_spec_prelogin_request_encrypt_on" (packet): the MS-TDS 4.1 Pre-Login
// Request example, via gravitational/teleport
// lib/srv/db/sqlserver/protocol/fixtures/packets.go. VERSION 9.0.0, ON.
constexpr std::string_view kSpecPreloginHex =
    "1201002f0000010000001a00060100200001020021000103002200040400260001ff0900000000000100b80d000001";
// "msoledbsql18_prelogin_request_encrypt_off" (packet): Excel / MSOLEDBSQL
// 18.7.5 to SQL Server 2025, WilliamSmithEdward/pySQLbridge tests/captured.py.
constexpr std::string_view kMsoledbsql18PreloginHex =
    "120100580000010000001f000601002500010200260001030027000404002b000105002c0024ff1207000500000000483e000000"
    "4f9ccf1f076f8c4a8a2c701cf600230e1141e2d4671440499c86b81a5580359002000000";
// "nmap_ms-sql-s_probe_prelogin_encrypt_off" (packet, packet id 0): nmap
// nmap-service-probes "Probe TCP ms-sql-s". INSTOPT "MSSQLServer".
constexpr std::string_view kNmapPreloginHex =
    "1201003400000000000015000601001b000102001c000c0300280004ff080001550000004d5353514c53657276657200480f0000";
// "tedious_prelogin_request_payload_encrypt_on" (payload): tediousjs/tedious
// issue #610, tedious debug packet dump.
constexpr std::string_view kTediousPreloginPayloadHex =
    "00001a00060100200001020021000103002200040400260001ff00000001000101000000000000";
// "sqlserver2008sp3_prelogin_response_encrypt_not_sup" (packet): SQL Server
// 10.0.5512, denisenkom/pytds tests/unit_test.py. THREADID of length 0.
constexpr std::string_view kSql2008PreloginResponseHex =
    "0401002b0000010000001a00060100200001020021000103002200000400220001ff0a0015880000020000";
// "sqlserver2014_prelogin_response_fedauthrequired" (packet): SQL Server
// 12.0.5349 with FEDAUTHREQUIRED, denisenkom/pytds tests/unit_test.py.
constexpr std::string_view kSql2014PreloginResponseHex =
    "040100310000010000001f000601002500010200260001030027000004002700010600280001ff0c0014e5000002000001";
// "sqlserver2017_prelogin_response_payload_encrypt_on_no_instopt" (payload):
// SQL Server 14.0.2027, elixir-ecto/tds issue #109. No INSTOPT.
constexpr std::string_view kSql2017PreloginResponsePayloadHex =
    "00001a00060100200001030021000004002100010600220001ff0e0007eb0000010000";
// "sqlserver2022_prelogin_response_payload_encrypt_not_sup" (payload): SQL
// Server 16.0.1000, rapid7/metasploit-framework
// spec/lib/rex/proto/mssql/client_spec.rb.
constexpr std::string_view kSql2022PreloginResponsePayloadHex =
    "000015000601001b000102001c000103001d0000ff100003e800000200";
// SQL Server 2025 (17.0.1000.7) answering MSOLEDBSQL 18.7.5 (packet), from
// the same capture, WilliamSmithEdward/pySQLbridge tests/captured.py
// SERVER_PRELOGIN: THREADID and TRACEID present with no data, ENCRYPTION OFF.
constexpr std::string_view kSql2025PreloginResponseHex =
    "040100300000010000001f000601002500010200260001030027000004002700010500280000ff110003e80000000000";
// "mstds_spec_login7_sa" (packet): the MS-TDS 4.2 Login Request example via
// gravitational/teleport packets.go. TDS 7.2, user "sa", empty password.
constexpr std::string_view kSpecLogin7Hex =
    "1001009000000100880000000200097200100000000000070001000000000000e003000000000000090400005e0008006e000200"
    "7200000072000700800000008000000080000400880000008800000000508be2b78f88000000880000008800000000000000"
    "73006b006f00730074006f0076003100730061004f00530051004c002d00330032004f00440042004300";
// "go-mssqldb_login7_golden_tds73" (packet): microsoft/go-mssqldb tds_test.go
// TestSendLogin. TDS 7.3, user "test", password "testpwd" (obfuscated).
constexpr std::string_view kGoMssqldbLogin7Hex =
    "100100de00000100d600000003000a7300100000000106016400000000000000e000000810ffffff040200005e0007006c000400"
    "740007008200070090000a0000000000a4000700b2000200b60008001234567890abc6000000c6000800d6000000000000007300"
    "7500620064006500760031007400650073007400e2a5f3a592a5e2a5a2a5d2a5e3a56100700070006e0061006d00650073006500"
    "72007600650072006e0061006d0065006c0069006200720061007200790065006e00640061007400610062006100730065006600"
    "69006c0065007000610074006800";
// "packetbeat_sql15x_login_response" (packet, SPID 0x38): SQL Server 15.x
// login answer, 0x5CE/beats packetbeat/protos/mssql/mssql_test.go.
constexpr std::string_view kLoginResponseHex =
    "040101fb00380100e31b0001066d0061007300740065007200066d0061007300740065007200ab84004516000002002500430068"
    "0061006e00670065006400200064006100740061006200610073006500200063006f006e007400650078007400200074006f0020"
    "0027006d006100730074006500720027002e00166d00750061007a007a0061006d002d004c006100740069007400750064006500"
    "2d00450035003400370030000001000000e3080007050904d0003400e31700020a750073005f0065006e0067006c006900730068"
    "0000ab880047160000010027004300680061006e0067006500640020006c0061006e00670075006100670065002000730065007400"
    "740069006e006700200074006f002000750073005f0065006e0067006c006900730068002e00166d00750061007a007a0061006d00"
    "2d004c0061007400690074007500640065002d00450035003400370030000001000000ad36000174000004164d006900630072006f"
    "0073006f00660074002000530051004c002000530065007200760065007200000000000f00108ce3130004043400300039003600"
    "043400300039003600ae090200000001010a0100000001012e000000000900608114ffe7ffff0002020701040100050"
    "4ffffffff060100070102080800000000000000000904fffffffffffd000000000000000000000000";


void PutU16BE(Bytes* b, size_t at, uint16_t v) {
  (*b)[at] = static_cast<uint8_t>(v >> 8);
  (*b)[at + 1] = static_cast<uint8_t>(v);
}
void PutU16LE(Bytes* b, size_t at, uint16_t v) {
  (*b)[at] = static_cast<uint8_t>(v);
  (*b)[at + 1] = static_cast<uint8_t>(v >> 8);
}
void PutU32LE(Bytes* b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; i++) (*b)[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// One hand-built packet: the header fields as given, length computed.
Bytes Packet(uint8_t type, uint8_t status, const Bytes& payload, uint8_t packet_id = 1, uint16_t spid = 0) {
  Bytes out = {type, status, 0, 0, static_cast<uint8_t>(spid >> 8), static_cast<uint8_t>(spid), packet_id, 0};
  PutU16BE(&out, 2, static_cast<uint16_t>(payload.size() + kHeaderSize));
  return Concat(out, payload);
}

// ---------------------------------------------------------------------------
// DecodeHeader / EncodeHeader.

TEST(TdsHeaderTest, LoginResponseVectorFields) {
  const Bytes in = FromHex(kLoginResponseHex);
  Header h;
  Result r = DecodeHeader(in, &h);
  ASSERT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(h.type, kTabularResult);
  EXPECT_EQ(h.status, kStatusEom);
  EXPECT_EQ(h.length, 507);
  EXPECT_EQ(h.length, in.size());
  EXPECT_EQ(h.spid, 0x38);
  EXPECT_EQ(h.packet_id, 1);
  EXPECT_EQ(h.window, 0);
  uint8_t out[kHeaderSize];
  EncodeHeader(h, out);
  EXPECT_EQ(Bytes(out, out + kHeaderSize), Prefix(in, kHeaderSize));
}

TEST(TdsHeaderTest, EncodeExactBytes) {
  Header h;
  h.type = 0x12;
  h.status = 0x09;
  h.length = 0x1234;
  h.spid = 0xabcd;
  h.packet_id = 0xfe;
  h.window = 0x7f;
  uint8_t out[kHeaderSize];
  EncodeHeader(h, out);
  EXPECT_EQ(Bytes(out, out + kHeaderSize), (Bytes{0x12, 0x09, 0x12, 0x34, 0xab, 0xcd, 0xfe, 0x7f}));
}

TEST(TdsHeaderTest, ShortBufferNeedsMoreAndLeavesTheOutputAlone) {
  const Bytes in = FromHex(kSpecPreloginHex);
  for (size_t n = 0; n < kHeaderSize; n++) {
    Header h;
    h.length = 999;
    Result r = DecodeHeader(std::span<const uint8_t>(in).first(n), &h);
    EXPECT_EQ(r.status, Status::kNeedMore) << n;
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(h.length, 999);
  }
  Header h;
  ASSERT_EQ(DecodeHeader(Prefix(in, kHeaderSize), &h).status, Status::kOk);
  EXPECT_EQ(h.length, 47);
}

TEST(TdsHeaderTest, LengthBelowEightIsMalformed) {
  for (uint8_t len = 0; len < 8; len++) {
    Header h;
    h.type = 0x77;
    Result r = DecodeHeader(Bytes{0x12, 0x01, 0x00, len, 0, 0, 1, 0}, &h);
    EXPECT_EQ(r.status, Status::kMalformed);
    EXPECT_EQ(r.error, "TDS packet length " + std::to_string(len) + " is below 8");
    EXPECT_EQ(h.type, 0x77);
  }
  Header h;
  EXPECT_EQ(DecodeHeader(Bytes{0x12, 0x01, 0x00, 0x08, 0, 0, 1, 0}, &h).status, Status::kOk);
  EXPECT_EQ(h.length, 8);
}

// ---------------------------------------------------------------------------
// DecodeMessage.

constexpr size_t kCap = kMaxPreLoginMessage;

Message MustDecode(const Bytes& in, size_t max_payload = kCap) {
  Message m;
  Result r = DecodeMessage(in, max_payload, &m);
  EXPECT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  return m;
}

std::string MalformedMessage(const Bytes& in, size_t max_payload = kCap) {
  Message m;
  m.type = 0x77;
  m.consumed = 12345;
  Result r = DecodeMessage(in, max_payload, &m);
  EXPECT_EQ(r.status, Status::kMalformed);
  EXPECT_EQ(m.type, 0x77);
  EXPECT_EQ(m.consumed, 12345u);
  EXPECT_TRUE(m.payload.empty());
  return r.error;
}

// A LOGIN7 in three packets (EOM only on the last), as a client with a small
// packet size sends it.
Bytes ThreePacketLogin7() {
  const Bytes payload = Suffix(FromHex(kGoMssqldbLogin7Hex), kHeaderSize);
  return Concat(Concat(Packet(kLogin7, 0, Prefix(payload, 100), 1, 0x0102),
                       Packet(kLogin7, 0, Bytes(payload.begin() + 100, payload.begin() + 200), 2, 0x0102)),
                Packet(kLogin7, kStatusEom, Suffix(payload, 200), 3, 0x0102));
}

std::vector<Bytes> WholeMessages() {
  return {FromHex(kSpecPreloginHex),
          FromHex(kMsoledbsql18PreloginHex),
          FromHex(kNmapPreloginHex),
          FromHex(kSql2008PreloginResponseHex),
          FromHex(kSql2014PreloginResponseHex),
          FromHex(kSpecLogin7Hex),
          FromHex(kGoMssqldbLogin7Hex),
          FromHex(kLoginResponseHex),
          ThreePacketLogin7(),
          Packet(kPrelogin, kStatusEom, {})};
}

TEST(TdsMessageTest, SinglePacketVectors) {
  struct Case {
    std::string_view hex;
    uint8_t type;
  };
  for (const Case& c : {Case{kSpecPreloginHex, kPrelogin}, Case{kMsoledbsql18PreloginHex, kPrelogin},
                        Case{kNmapPreloginHex, kPrelogin}, Case{kSql2008PreloginResponseHex, kTabularResult},
                        Case{kSql2014PreloginResponseHex, kTabularResult}, Case{kSpecLogin7Hex, kLogin7},
                        Case{kGoMssqldbLogin7Hex, kLogin7}, Case{kLoginResponseHex, kTabularResult}}) {
    const Bytes in = FromHex(c.hex);
    Message m = MustDecode(in);
    EXPECT_EQ(m.type, c.type) << c.hex;
    EXPECT_EQ(m.consumed, in.size());
    EXPECT_EQ(m.payload, Suffix(in, kHeaderSize));
  }
  EXPECT_EQ(MustDecode(FromHex(kSpecPreloginHex)).payload.size(), 39u);
  EXPECT_EQ(MustDecode(FromHex(kGoMssqldbLogin7Hex)).payload.size(), 214u);
}

TEST(TdsMessageTest, EmptyPayload) {
  Message m = MustDecode(Bytes{0x12, 0x01, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00});
  EXPECT_EQ(m.type, kPrelogin);
  EXPECT_EQ(m.consumed, 8u);
  EXPECT_TRUE(m.payload.empty());
}

TEST(TdsMessageTest, MultiPacketMessageIsReassembled) {
  const Bytes in = ThreePacketLogin7();
  ASSERT_EQ(in.size(), 214u + 3 * kHeaderSize);
  Message m = MustDecode(in);
  EXPECT_EQ(m.type, kLogin7);
  EXPECT_EQ(m.consumed, in.size());
  EXPECT_EQ(m.payload, Suffix(FromHex(kGoMssqldbLogin7Hex), kHeaderSize));
  // Status bits other than EOM (here RESETCONNECTION 0x08) do not end it.
  Bytes other_bits = in;
  other_bits[1] = 0x08;
  EXPECT_EQ(MustDecode(other_bits).payload, m.payload);
  // Empty packets without EOM are legal and add nothing.
  const Bytes with_empty = Concat(Concat(Packet(kPrelogin, 0, {}), Packet(kPrelogin, 0, {0xaa}, 2)),
                                  Packet(kPrelogin, kStatusEom, {0xbb}, 3));
  Message e = MustDecode(with_empty);
  EXPECT_EQ(e.payload, (Bytes{0xaa, 0xbb}));
  EXPECT_EQ(e.consumed, 26u);
}

TEST(TdsMessageTest, EveryPrefixNeedsMoreAndLeavesTheOutputAlone) {
  for (const Bytes& whole : WholeMessages()) {
    for (size_t n = 0; n < whole.size(); n++) {
      Message m;
      m.type = 0x77;
      m.consumed = 999;
      Result r = DecodeMessage(std::span<const uint8_t>(whole).first(n), kCap, &m);
      EXPECT_EQ(r.status, Status::kNeedMore) << "prefix " << n << " of " << whole.size();
      EXPECT_EQ(r.error, "");
      EXPECT_EQ(m.type, 0x77) << "output written before the message was complete";
      EXPECT_EQ(m.consumed, 999u);
      EXPECT_TRUE(m.payload.empty());
    }
    EXPECT_EQ(MustDecode(whole).consumed, whole.size());
  }
}

TEST(TdsMessageTest, SplitAtEveryOffsetAndReassembled) {
  for (const Bytes& whole : WholeMessages()) {
    const Message expected = MustDecode(whole);
    for (size_t split = 1; split < whole.size(); split++) {
      Bytes buffer = Prefix(whole, split);
      Message m;
      EXPECT_EQ(DecodeMessage(buffer, kCap, &m).status, Status::kNeedMore) << "split " << split;
      buffer.insert(buffer.end(), whole.begin() + static_cast<ptrdiff_t>(split), whole.end());
      ASSERT_EQ(DecodeMessage(buffer, kCap, &m).status, Status::kOk) << "split " << split;
      EXPECT_EQ(m.type, whole[0]);
      EXPECT_EQ(m.consumed, whole.size());
      EXPECT_EQ(m.payload, expected.payload);
    }
  }
}

TEST(TdsMessageTest, TwoMessagesInOneBufferConsumeOnlyTheFirst) {
  // PRELOGIN and LOGIN7 in one read: the LOGIN7 is not part of the PRELOGIN.
  const Bytes prelogin = FromHex(kSpecPreloginHex);
  const Bytes login = FromHex(kSpecLogin7Hex);
  const Bytes both = Concat(prelogin, login);
  Message first = MustDecode(both);
  EXPECT_EQ(first.type, kPrelogin);
  EXPECT_EQ(first.consumed, 47u);
  EXPECT_EQ(first.payload, Suffix(prelogin, kHeaderSize));

  Message second;
  ASSERT_EQ(DecodeMessage(std::span<const uint8_t>(both).subspan(first.consumed), kCap, &second).status,
            Status::kOk);
  EXPECT_EQ(second.type, kLogin7);
  EXPECT_EQ(second.consumed, 144u);
  EXPECT_EQ(second.payload, Suffix(login, kHeaderSize));

  // A partial second message, or one of another type, does not disturb the
  // first, which ended with EOM.
  EXPECT_EQ(MustDecode(Concat(prelogin, Prefix(login, 3))).consumed, 47u);
  EXPECT_EQ(MustDecode(Concat(prelogin, Bytes{0x16, 0x03, 0x01})).consumed, 47u);
  // The same for a multi-packet message followed by another.
  const Bytes three = ThreePacketLogin7();
  EXPECT_EQ(MustDecode(Concat(three, prelogin)).consumed, three.size());
}

TEST(TdsMessageTest, PacketOfAnotherTypeInsideAMessageIsMalformed) {
  const Bytes first = Packet(kLogin7, 0, {1, 2, 3});
  EXPECT_EQ(MalformedMessage(Concat(first, Packet(kPrelogin, kStatusEom, {4}, 2))),
            "TDS packet of type 0x12 inside a message of type 0x10");
  EXPECT_EQ(MalformedMessage(Concat(first, Packet(kTabularResult, kStatusEom, {}, 2))),
            "TDS packet of type 0x04 inside a message of type 0x10");
  // Found on the header alone, before the rest of that packet arrives.
  EXPECT_EQ(MalformedMessage(Concat(first, Bytes{0xff, 0x01, 0x00, 0x40, 0, 0, 2, 0})),
            "TDS packet of type 0xff inside a message of type 0x10");
  // The same type continues it.
  EXPECT_EQ(MustDecode(Concat(first, Packet(kLogin7, kStatusEom, {4}, 2))).payload, (Bytes{1, 2, 3, 4}));
}

TEST(TdsMessageTest, LengthBelowEightIsMalformedInAnyPacket) {
  EXPECT_EQ(MalformedMessage(Bytes{0x12, 0x01, 0x00, 0x07, 0, 0, 1, 0, 0xff}), "TDS packet length 7 is below 8");
  EXPECT_EQ(MalformedMessage(Bytes{0x12, 0x01, 0x00, 0x00, 0, 0, 1, 0}), "TDS packet length 0 is below 8");
  EXPECT_EQ(MalformedMessage(Concat(Packet(kPrelogin, 0, {1}), Bytes{0x12, 0x01, 0x00, 0x05, 0, 0, 2, 0})),
            "TDS packet length 5 is below 8");
}

TEST(TdsMessageTest, PayloadAboveCapIsMalformedOnTheHeaderAlone) {
  const Bytes spec = FromHex(kSpecPreloginHex);  // 39-byte payload
  EXPECT_EQ(MalformedMessage(spec, 38), "TDS message exceeds the pre-login limit of 38 bytes");
  EXPECT_EQ(MustDecode(spec, 39).consumed, 47u);
  // Only the header is needed to refuse it: no waiting for the body.
  EXPECT_EQ(MalformedMessage(Prefix(spec, kHeaderSize), 38), "TDS message exceeds the pre-login limit of 38 bytes");
  // The cap counts the reassembled payload, not the packet.
  const Bytes three = ThreePacketLogin7();  // 100 + 100 + 14 bytes
  EXPECT_EQ(MalformedMessage(three, 199), "TDS message exceeds the pre-login limit of 199 bytes");
  EXPECT_EQ(MalformedMessage(Prefix(three, 108 + 8), 199), "TDS message exceeds the pre-login limit of 199 bytes");
  EXPECT_EQ(MalformedMessage(three, 213), "TDS message exceeds the pre-login limit of 213 bytes");
  EXPECT_EQ(MustDecode(three, 214).payload.size(), 214u);
  // The real cap: 64 KiB of payload, whatever the packet sizes.
  const Bytes at_cap = EncodeMessage(kLogin7, Bytes(kMaxPreLoginMessage, 0x5a));
  EXPECT_EQ(MustDecode(at_cap).payload.size(), kMaxPreLoginMessage);
  EXPECT_EQ(MalformedMessage(EncodeMessage(kLogin7, Bytes(kMaxPreLoginMessage + 1, 0x5a))),
            "TDS message exceeds the pre-login limit of 65536 bytes");
  // A single packet at the largest length the header can carry fits.
  Message m;
  EXPECT_EQ(DecodeMessage(Bytes{0x10, 0x00, 0xff, 0xff, 0, 0, 1, 0}, kCap, &m).status, Status::kNeedMore);
}

TEST(TdsMessageTest, TruncatedNeedsMore) {
  Message m;
  EXPECT_EQ(DecodeMessage(Bytes{}, kCap, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeMessage(Bytes{0x12}, kCap, &m).status, Status::kNeedMore);
  // A length larger than the buffer.
  Bytes spec = FromHex(kSpecPreloginHex);
  spec[3] = 0x30;
  EXPECT_EQ(DecodeMessage(spec, kCap, &m).status, Status::kNeedMore);
  spec.push_back(0xee);
  Message longer = MustDecode(spec);
  EXPECT_EQ(longer.consumed, 48u);
  EXPECT_EQ(longer.payload.back(), 0xee);
  // Complete packets without EOM.
  const Bytes three = ThreePacketLogin7();
  EXPECT_EQ(DecodeMessage(Prefix(three, 108), kCap, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeMessage(Prefix(three, 216), kCap, &m).status, Status::kNeedMore);
  EXPECT_EQ(m.consumed, 0u);
}

// ---------------------------------------------------------------------------
// EncodeMessage.

struct Split {
  std::vector<Header> headers;
  Bytes payload;
};

// Walks encoded packets one by one, independently of DecodeMessage.
Split SplitPackets(const Bytes& wire) {
  Split s;
  size_t off = 0;
  while (off < wire.size()) {
    Header h;
    EXPECT_EQ(DecodeHeader(Suffix(wire, off), &h).status, Status::kOk);
    if (h.length < kHeaderSize || off + h.length > wire.size()) {
      ADD_FAILURE() << "bad packet at " << off;
      break;
    }
    s.headers.push_back(h);
    s.payload.insert(s.payload.end(), wire.begin() + static_cast<ptrdiff_t>(off + kHeaderSize),
                     wire.begin() + static_cast<ptrdiff_t>(off + h.length));
    off += h.length;
  }
  return s;
}

TEST(TdsEncodeMessageTest, SmallPayloadReproducesTheSpecVector) {
  const Bytes spec = FromHex(kSpecPreloginHex);
  EXPECT_EQ(EncodeMessage(kPrelogin, Suffix(spec, kHeaderSize)), spec);
  EXPECT_EQ(EncodeMessage(kTabularResult, Suffix(FromHex(kSql2008PreloginResponseHex), kHeaderSize)),
            FromHex(kSql2008PreloginResponseHex));
  EXPECT_EQ(EncodeMessage(kPrelogin, {}), (Bytes{0x12, 0x01, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00}));
}

TEST(TdsEncodeMessageTest, SplitsIntoPacketsOfTheDefaultSize) {
  Bytes payload(10000);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 7);
  const Bytes wire = EncodeMessage(kLogin7, payload);
  ASSERT_EQ(wire.size(), 10000u + 3 * kHeaderSize);
  Split s = SplitPackets(wire);
  ASSERT_EQ(s.headers.size(), 3u);
  const uint16_t lengths[] = {4096, 4096, 10000 - 2 * 4088 + 8};
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(s.headers[i].type, kLogin7);
    EXPECT_EQ(s.headers[i].length, lengths[i]) << i;
    EXPECT_EQ(s.headers[i].packet_id, i + 1) << i;
    EXPECT_EQ(s.headers[i].status, i == 2 ? kStatusEom : 0) << i;
    EXPECT_EQ(s.headers[i].spid, 0);
    EXPECT_EQ(s.headers[i].window, 0);
  }
  EXPECT_EQ(s.payload, payload);
  Message m = MustDecode(wire);
  EXPECT_EQ(m.type, kLogin7);
  EXPECT_EQ(m.consumed, wire.size());
  EXPECT_EQ(m.payload, payload);
}

TEST(TdsEncodeMessageTest, PacketBoundaries) {
  // Exactly one full packet, then one byte more.
  Split one = SplitPackets(EncodeMessage(kPrelogin, Bytes(4088, 1)));
  ASSERT_EQ(one.headers.size(), 1u);
  EXPECT_EQ(one.headers[0].length, 4096);
  EXPECT_EQ(one.headers[0].status, kStatusEom);
  Split two = SplitPackets(EncodeMessage(kPrelogin, Bytes(4089, 1)));
  ASSERT_EQ(two.headers.size(), 2u);
  EXPECT_EQ(two.headers[0].length, 4096);
  EXPECT_EQ(two.headers[0].status, 0);
  EXPECT_EQ(two.headers[1].length, 9);
  EXPECT_EQ(two.headers[1].status, kStatusEom);
  EXPECT_EQ(two.headers[1].packet_id, 2);
  // A negotiated packet size.
  Split small = SplitPackets(EncodeMessage(kSqlBatch, Bytes(1000, 2), 512));
  ASSERT_EQ(small.headers.size(), 2u);
  EXPECT_EQ(small.headers[0].length, 512);
  EXPECT_EQ(small.headers[1].length, 1000 - 504 + 8);
}

TEST(TdsEncodeMessageTest, PacketIdWrapsAfter255) {
  Bytes payload(300);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i);
  const Bytes wire = EncodeMessage(kPrelogin, payload, kHeaderSize + 1);
  Split s = SplitPackets(wire);
  ASSERT_EQ(s.headers.size(), 300u);
  EXPECT_EQ(s.headers[0].packet_id, 1);
  EXPECT_EQ(s.headers[254].packet_id, 255);
  EXPECT_EQ(s.headers[255].packet_id, 0);
  EXPECT_EQ(s.headers[299].packet_id, 44);
  EXPECT_EQ(s.headers[299].status, kStatusEom);
  EXPECT_EQ(s.headers[298].status, 0);
  EXPECT_EQ(MustDecode(wire).payload, payload);
}

TEST(TdsEncodeMessageTest, UnusablePacketSizesAreClamped) {
  // Packet sizes that leave no room for payload used to loop forever; sizes
  // above the 16-bit length field used to wrap it.
  for (size_t size : {size_t{0}, size_t{1}, kHeaderSize}) {
    const Bytes wire = EncodeMessage(kPrelogin, Bytes{1, 2, 3}, size);
    Split s = SplitPackets(wire);
    ASSERT_EQ(s.headers.size(), 3u) << size;
    EXPECT_EQ(s.headers[0].length, 9);
    EXPECT_EQ(s.payload, (Bytes{1, 2, 3}));
  }
  const Bytes big(70000, 3);
  const Bytes wire = EncodeMessage(kSqlBatch, big, 1 << 20);
  Split s = SplitPackets(wire);
  ASSERT_EQ(s.headers.size(), 2u);
  EXPECT_EQ(s.headers[0].length, 0xffff);
  EXPECT_EQ(s.headers[1].length, 70000 - (0xffff - 8) + 8);
  EXPECT_EQ(MustDecode(wire, SIZE_MAX).payload, big);
}

// ---------------------------------------------------------------------------
// ParsePrelogin on the real vectors.

Prelogin MustParsePrelogin(const Bytes& payload) {
  Prelogin p;
  Result r = ParsePrelogin(payload, &p);
  EXPECT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  return p;
}

std::string MalformedPrelogin(const Bytes& payload) {
  Prelogin p;
  p.options.push_back({0x42, {0x99}});
  Result r = ParsePrelogin(payload, &p);
  EXPECT_EQ(r.status, Status::kMalformed);
  EXPECT_EQ(p.options.size(), 1u);
  return r.error;
}

std::vector<uint8_t> Tokens(const Prelogin& p) {
  std::vector<uint8_t> out;
  for (const auto& o : p.options) out.push_back(o.token);
  return out;
}

Bytes OptionData(const Prelogin& p, uint8_t token) {
  const PreloginOption* o = p.Find(token);
  return o == nullptr ? Bytes{0xde, 0xad} : o->data;
}

struct PreloginVector {
  std::string_view name;
  std::string_view hex;
  bool packet;  // with the 8-byte header
  int encryption;
  std::string_view version;
  std::vector<uint8_t> tokens;
};

std::vector<PreloginVector> PreloginVectors() {
  return {
      {"MS-TDS spec request", kSpecPreloginHex, true, kEncryptOn, "9.0.0", {0, 1, 2, 3, 4}},
      {"MSOLEDBSQL 18", kMsoledbsql18PreloginHex, true, kEncryptOff, "18.7.5", {0, 1, 2, 3, 4, 5}},
      {"nmap", kNmapPreloginHex, true, kEncryptOff, "8.0.341", {0, 1, 2, 3}},
      {"tedious", kTediousPreloginPayloadHex, false, kEncryptOn, "0.0.1", {0, 1, 2, 3, 4}},
      {"SQL Server 2008 SP3", kSql2008PreloginResponseHex, true, kEncryptNotSup, "10.0.5512", {0, 1, 2, 3, 4}},
      {"SQL Server 2014 FEDAUTHREQUIRED", kSql2014PreloginResponseHex, true, kEncryptNotSup, "12.0.5349",
       {0, 1, 2, 3, 4, 6}},
      {"SQL Server 2017 without INSTOPT", kSql2017PreloginResponsePayloadHex, false, kEncryptOn, "14.0.2027",
       {0, 1, 3, 4, 6}},
      {"SQL Server 2022", kSql2022PreloginResponsePayloadHex, false, kEncryptNotSup, "16.0.1000", {0, 1, 2, 3}},
      {"SQL Server 2025", kSql2025PreloginResponseHex, true, kEncryptOff, "17.0.1000", {0, 1, 2, 3, 4, 5}},
  };
}

Bytes PayloadOf(const PreloginVector& v) {
  const Bytes in = FromHex(v.hex);
  return v.packet ? Suffix(in, kHeaderSize) : in;
}

TEST(TdsPreloginTest, RealVectors) {
  for (const PreloginVector& v : PreloginVectors()) {
    SCOPED_TRACE(std::string(v.name));
    Prelogin p = MustParsePrelogin(PayloadOf(v));
    EXPECT_EQ(p.encryption(), v.encryption);
    EXPECT_EQ(p.Version(), v.version);
    EXPECT_EQ(Tokens(p), v.tokens);
  }
}

TEST(TdsPreloginTest, RealVectorOptionBytes) {
  Prelogin spec = MustParsePrelogin(Suffix(FromHex(kSpecPreloginHex), kHeaderSize));
  EXPECT_EQ(OptionData(spec, kOptVersion), (Bytes{0x09, 0x00, 0x00, 0x00, 0x00, 0x00}));
  EXPECT_EQ(OptionData(spec, kOptInstOpt), (Bytes{0x00}));
  EXPECT_EQ(OptionData(spec, kOptThreadId), (Bytes{0xb8, 0x0d, 0x00, 0x00}));
  EXPECT_EQ(OptionData(spec, kOptMars), (Bytes{0x01}));

  Prelogin ole = MustParsePrelogin(Suffix(FromHex(kMsoledbsql18PreloginHex), kHeaderSize));
  EXPECT_EQ(OptionData(ole, kOptThreadId), (Bytes{0x48, 0x3e, 0x00, 0x00}));
  EXPECT_EQ(OptionData(ole, kOptTraceId),
            FromHex("4f9ccf1f076f8c4a8a2c701cf600230e1141e2d4671440499c86b81a5580359002000000"));

  Prelogin nmap = MustParsePrelogin(Suffix(FromHex(kNmapPreloginHex), kHeaderSize));
  EXPECT_EQ(OptionData(nmap, kOptInstOpt), StrBytes(std::string_view("MSSQLServer\0", 12)));
  EXPECT_EQ(OptionData(nmap, kOptThreadId), (Bytes{0x48, 0x0f, 0x00, 0x00}));

  // Server answers carry THREADID with no data.
  Prelogin s2008 = MustParsePrelogin(Suffix(FromHex(kSql2008PreloginResponseHex), kHeaderSize));
  ASSERT_NE(s2008.Find(kOptThreadId), nullptr);
  EXPECT_TRUE(s2008.Find(kOptThreadId)->data.empty());
  EXPECT_EQ(OptionData(s2008, kOptMars), (Bytes{0x00}));

  Prelogin s2014 = MustParsePrelogin(Suffix(FromHex(kSql2014PreloginResponseHex), kHeaderSize));
  EXPECT_EQ(OptionData(s2014, kOptFedAuthRequired), (Bytes{0x01}));
  Prelogin s2017 = MustParsePrelogin(FromHex(kSql2017PreloginResponsePayloadHex));
  EXPECT_EQ(s2017.Find(kOptInstOpt), nullptr);
  EXPECT_EQ(OptionData(s2017, kOptFedAuthRequired), (Bytes{0x00}));
  // SQL Server 2025 sends TRACEID empty as well.
  Prelogin s2025 = MustParsePrelogin(Suffix(FromHex(kSql2025PreloginResponseHex), kHeaderSize));
  ASSERT_NE(s2025.Find(kOptTraceId), nullptr);
  EXPECT_TRUE(s2025.Find(kOptTraceId)->data.empty());
  EXPECT_TRUE(s2025.Find(kOptThreadId)->data.empty());
  Prelogin s2022 = MustParsePrelogin(FromHex(kSql2022PreloginResponsePayloadHex));
  EXPECT_EQ(s2022.Find(kOptMars), nullptr);
  EXPECT_EQ(OptionData(s2022, kOptVersion), (Bytes{0x10, 0x00, 0x03, 0xe8, 0x00, 0x00}));
}

TEST(TdsPreloginTest, EncodeReproducesEveryRealVectorByteForByte) {
  // Every real sender lays the option data out in table order right behind
  // the terminator, as EncodePrelogin does, so the round trip is exact.
  for (const PreloginVector& v : PreloginVectors()) {
    SCOPED_TRACE(std::string(v.name));
    const Bytes payload = PayloadOf(v);
    EXPECT_EQ(EncodePrelogin(MustParsePrelogin(payload)), payload);
    if (v.packet) {
      Bytes expected = FromHex(v.hex);
      expected[6] = 1;  // nmap sends packet id 0; EncodeMessage numbers from 1
      EXPECT_EQ(EncodeMessage(expected[0], EncodePrelogin(MustParsePrelogin(payload))), expected);
    }
  }
}

// A PRELOGIN payload laid out as EncodePrelogin does, from (token, data).
Bytes BuildPrelogin(const std::vector<PreloginOption>& options) {
  Prelogin p;
  p.options = options;
  return EncodePrelogin(p);
}

TEST(TdsPreloginTest, EncodeExactBytes) {
  EXPECT_EQ(EncodePrelogin(Prelogin{}), (Bytes{0xff}));
  EXPECT_EQ(BuildPrelogin({{kOptEncryption, {0x03}}}), (Bytes{0x01, 0x00, 0x06, 0x00, 0x01, 0xff, 0x03}));
  EXPECT_EQ(BuildPrelogin({{kOptThreadId, {}}, {kOptMars, {0x01}}}),
            (Bytes{0x03, 0x00, 0x0b, 0x00, 0x00, 0x04, 0x00, 0x0b, 0x00, 0x01, 0xff, 0x01}));
}

TEST(TdsPreloginTest, EmptyTableIsValid) {
  Prelogin p = MustParsePrelogin(Bytes{0xff});
  EXPECT_TRUE(p.options.empty());
  EXPECT_EQ(p.encryption(), -1);
  EXPECT_EQ(p.Version(), "");
  // Bytes after the terminator that no option points at are ignored.
  EXPECT_TRUE(MustParsePrelogin(Bytes{0xff, 0x01, 0x02}).options.empty());
}

TEST(TdsPreloginTest, OffsetsPointingOutsideAreMalformed) {
  const Bytes spec = Suffix(FromHex(kSpecPreloginHex), kHeaderSize);  // 39 bytes
  Bytes b = spec;
  PutU16BE(&b, 6, 0x0030);  // ENCRYPTION at 48
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 1 points outside the message");
  b = spec;
  PutU16BE(&b, 21, 0x0027);  // MARS at 39, one byte: one past the end
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 4 points outside the message");
  b = spec;
  PutU16BE(&b, 16, 0x0024);  // THREADID at 36, 4 bytes: runs one past the end
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 3 points outside the message");
  b = spec;
  PutU16BE(&b, 1, 0xffff);  // VERSION at 65535
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 0 points outside the message");
  b = spec;
  PutU16BE(&b, 13, 0x0100);  // INSTOPT 256 bytes long
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 2 points outside the message");
  // An empty option may sit right at the end.
  b = FromHex(kSql2022PreloginResponsePayloadHex);
  PutU16BE(&b, 16, static_cast<uint16_t>(b.size()));  // THREADID, length 0
  EXPECT_TRUE(MustParsePrelogin(b).Find(kOptThreadId)->data.empty());
  PutU16BE(&b, 16, static_cast<uint16_t>(b.size() + 1));
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 3 points outside the message");
}

TEST(TdsPreloginTest, FixedSizesAreEnforced) {
  struct Case {
    uint8_t token;
    size_t good;
    size_t bad;
  };
  for (const Case& c : {Case{kOptVersion, 6, 5}, Case{kOptVersion, 6, 7}, Case{kOptEncryption, 1, 2},
                        Case{kOptMars, 1, 2}, Case{kOptTraceId, 36, 35}, Case{kOptFedAuthRequired, 1, 2},
                        Case{kOptNonce, 32, 33}}) {
    EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{c.token, Bytes(c.good, 1)}})).options.size(), 1u);
    EXPECT_EQ(MalformedPrelogin(BuildPrelogin({{c.token, Bytes(c.bad, 1)}})),
              "PRELOGIN option " + std::to_string(c.token) + " has length " + std::to_string(c.bad));
  }
  // Every option may be empty, as servers send some (SQL Server 2025: TRACEID).
  for (uint8_t token = kOptVersion; token <= kOptNonce; token++) {
    EXPECT_TRUE(MustParsePrelogin(BuildPrelogin({{token, {}}})).Find(token)->data.empty()) << int(token);
  }
  // An empty ENCRYPTION reads as absent.
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptEncryption, {}}})).encryption(), -1);
  // THREADID: 4 bytes from clients, 0 from servers, nothing else.
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptThreadId, Bytes(4, 1)}})).options.size(), 1u);
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptThreadId, {}}})).options.size(), 1u);
  for (size_t n : {1, 2, 3, 5, 8}) {
    EXPECT_EQ(MalformedPrelogin(BuildPrelogin({{kOptThreadId, Bytes(n, 1)}})),
              "PRELOGIN option 3 has length " + std::to_string(n));
  }
  // INSTOPT has no fixed size (and its NUL is not checked).
  for (size_t n : {0, 1, 12, 300}) {
    EXPECT_EQ(OptionData(MustParsePrelogin(BuildPrelogin({{kOptInstOpt, Bytes(n, 'x')}})), kOptInstOpt),
              Bytes(n, 'x'));
  }
  // The size check applies in a real vector too: VERSION of 5 bytes.
  Bytes b = Suffix(FromHex(kSpecPreloginHex), kHeaderSize);
  PutU16BE(&b, 3, 5);
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 0 has length 5");
}

TEST(TdsPreloginTest, DuplicateOptionsAreMalformed) {
  EXPECT_EQ(MalformedPrelogin(BuildPrelogin({{kOptEncryption, {0}}, {kOptVersion, Bytes(6)}, {kOptEncryption, {1}}})),
            "PRELOGIN option 1 appears twice");
  EXPECT_EQ(MalformedPrelogin(BuildPrelogin({{0x42, {}}, {0x42, {1, 2}}})), "PRELOGIN option 66 appears twice");
  // In a real vector: MARS's entry turned into a second ENCRYPTION entry.
  Bytes b = Suffix(FromHex(kSpecPreloginHex), kHeaderSize);
  b[20] = kOptEncryption;
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN option 1 appears twice");
}

TEST(TdsPreloginTest, TableWithoutTerminatorIsMalformed) {
  EXPECT_EQ(MalformedPrelogin(Bytes{}), "PRELOGIN option table has no terminator");
  // ENCRYPTION pointing at its own token byte, and nothing after the entry.
  EXPECT_EQ(MalformedPrelogin(Bytes{0x01, 0x00, 0x00, 0x00, 0x01}), "PRELOGIN option table has no terminator");
  // A cut entry.
  EXPECT_EQ(MalformedPrelogin(Bytes{0x01}), "truncated PRELOGIN option table");
  EXPECT_EQ(MalformedPrelogin(Bytes{0x01, 0x00, 0x05, 0x00}), "truncated PRELOGIN option table");
  // Options whose data sits before the end of the table, and no terminator.
  EXPECT_EQ(MalformedPrelogin(Bytes{0x04, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x05, 0x00, 0x01}),
            "PRELOGIN option table has no terminator");
}

TEST(TdsPreloginTest, TooManyOptionsAreMalformed) {
  std::vector<PreloginOption> options;
  for (uint8_t t = 0x20; t < 0x20 + 32; t++) options.push_back({t, {}});
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin(options)).options.size(), 32u);
  options.push_back({0x60, {}});
  EXPECT_EQ(MalformedPrelogin(BuildPrelogin(options)), "PRELOGIN has too many options");
}

TEST(TdsPreloginTest, UnknownTokensAreKeptInOrder) {
  const Bytes in = BuildPrelogin({{kOptVersion, {16, 0, 0x03, 0xe8, 0, 0}},
                                  {0x08, {0xaa, 0xbb, 0xcc}},
                                  {kOptEncryption, {kEncryptReq}},
                                  {0xfe, {}},
                                  {0x42, Bytes(40, 0x11)}});
  Prelogin p = MustParsePrelogin(in);
  EXPECT_EQ(Tokens(p), (std::vector<uint8_t>{0x00, 0x08, 0x01, 0xfe, 0x42}));
  EXPECT_EQ(OptionData(p, 0x08), (Bytes{0xaa, 0xbb, 0xcc}));
  EXPECT_TRUE(OptionData(p, 0xfe).empty());
  EXPECT_EQ(OptionData(p, 0x42), Bytes(40, 0x11));
  EXPECT_EQ(p.encryption(), kEncryptReq);
  EXPECT_EQ(p.Version(), "16.0.1000");
  EXPECT_EQ(EncodePrelogin(p), in);
}

// Option data may overlap (and may overlap the table), so a small message can
// describe options that re-encode to more than 16-bit offsets reach. Those
// used to parse, and EncodePrelogin then wrapped the offsets of the PRELOGIN
// forwarded to the backend.
TEST(TdsPreloginTest, OptionsThatCannotBeReEncodedAreMalformed) {
  // Two 40000-byte unknown options over the same bytes of a 40011-byte message.
  Bytes b = {0x40, 0x00, 0x0b, 0x9c, 0x40, 0x41, 0x00, 0x0b, 0x9c, 0x40, 0xff};
  b.resize(11 + 40000, 0x33);
  EXPECT_EQ(MalformedPrelogin(b), "PRELOGIN options add up to more than 65529 bytes");
  // The limit leaves room for SetEncryption's 6 bytes: 65529 re-encodes and
  // still round-trips with ENCRYPTION added; one byte more is refused.
  auto overlapping = [](uint16_t second_length) {
    Bytes in = {0x40, 0x00, 0x0b, 0x80, 0x00, 0x41, 0x00, 0x0b, 0x00, 0x00, 0xff};
    PutU16BE(&in, 8, second_length);
    in.resize(11 + 0x8000, 0x44);
    return in;
  };
  const uint16_t fits = 65529 - 11 - 0x8000;
  Prelogin p = MustParsePrelogin(overlapping(fits));
  Bytes encoded = EncodePrelogin(p);
  EXPECT_EQ(encoded.size(), 65529u);
  p.SetEncryption(kEncryptOn);
  encoded = EncodePrelogin(p);
  ASSERT_EQ(encoded.size(), 65535u);
  // Every offset still fits: ENCRYPTION at 16, 0x40 at 17, 0x41 at 17 + 0x8000.
  EXPECT_EQ(Prefix(encoded, 17), (Bytes{0x01, 0x00, 0x10, 0x00, 0x01, 0x40, 0x00, 0x11, 0x80, 0x00, 0x41, 0x80,
                                        0x11, 0x7f, 0xee, 0xff, kEncryptOn}));
  EXPECT_EQ(encoded[17], 0x44);
  EXPECT_EQ(encoded.back(), 0x44);
  EXPECT_EQ(MalformedPrelogin(overlapping(fits + 1)), "PRELOGIN options add up to more than 65529 bytes");
}

TEST(TdsPreloginTest, EncryptionAndVersionAccessors) {
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptEncryption, {0x81}}})).encryption(), 0x81);
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptEncryption, {0x04}}})).encryption(), 0x04);  // TDS 8 'strict'
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptVersion, Bytes(6)}})).encryption(), -1);
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptVersion, {255, 255, 255, 255, 1, 2}}})).Version(),
            "255.255.65535");
  EXPECT_EQ(MustParsePrelogin(BuildPrelogin({{kOptEncryption, {1}}})).Version(), "");
}

TEST(TdsPreloginTest, SetEncryptionReplacesInPlace) {
  const Bytes spec = Suffix(FromHex(kSpecPreloginHex), kHeaderSize);
  Prelogin p = MustParsePrelogin(spec);
  const Prelogin before = p;
  p.SetEncryption(kEncryptNotSup);
  EXPECT_EQ(p.encryption(), kEncryptNotSup);
  ASSERT_EQ(Tokens(p), Tokens(before));
  for (size_t i = 0; i < p.options.size(); i++) {
    if (p.options[i].token != kOptEncryption) {
      EXPECT_EQ(p.options[i].data, before.options[i].data);
    }
  }
  // Same layout: only the ENCRYPTION byte (offset 0x20) changes.
  Bytes expected = spec;
  expected[0x20] = kEncryptNotSup;
  EXPECT_EQ(EncodePrelogin(p), expected);
  p.SetEncryption(kEncryptOn | kEncryptClientCert);
  EXPECT_EQ(p.encryption(), 0x81);
  EXPECT_EQ(p.options.size(), 5u);
}

TEST(TdsPreloginTest, SetEncryptionInsertsAfterVersion) {
  // nmap's request without its ENCRYPTION option.
  Prelogin p = MustParsePrelogin(Suffix(FromHex(kNmapPreloginHex), kHeaderSize));
  p.options.erase(p.options.begin() + 1);
  ASSERT_EQ(p.encryption(), -1);
  p.SetEncryption(kEncryptOn);
  EXPECT_EQ(Tokens(p), (std::vector<uint8_t>{0, 1, 2, 3}));
  // The same layout as nmap's: only the ENCRYPTION byte (offset 0x1b) differs.
  Bytes expected = Suffix(FromHex(kNmapPreloginHex), kHeaderSize);
  expected[0x1b] = kEncryptOn;
  EXPECT_EQ(EncodePrelogin(p), expected);

  // Without VERSION first, ENCRYPTION goes first.
  Prelogin q;
  q.options = {{kOptThreadId, {1, 2, 3, 4}}, {kOptVersion, Bytes(6, 9)}};
  q.SetEncryption(kEncryptReq);
  EXPECT_EQ(Tokens(q), (std::vector<uint8_t>{1, 3, 0}));
  Prelogin empty;
  empty.SetEncryption(kEncryptOff);
  EXPECT_EQ(EncodePrelogin(empty), (Bytes{0x01, 0x00, 0x06, 0x00, 0x01, 0xff, 0x00}));
  // The result parses back with every other option intact.
  Prelogin back = MustParsePrelogin(EncodePrelogin(q));
  EXPECT_EQ(back.encryption(), kEncryptReq);
  EXPECT_EQ(OptionData(back, kOptThreadId), (Bytes{1, 2, 3, 4}));
  EXPECT_EQ(OptionData(back, kOptVersion), Bytes(6, 9));
}

// ---------------------------------------------------------------------------
// ParseLogin7.

Login7 MustParseLogin7(const Bytes& payload) {
  Login7 l;
  Result r = ParseLogin7(payload, &l);
  EXPECT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  return l;
}

std::string MalformedLogin7(const Bytes& payload) {
  Login7 l;
  l.user_name = "untouched";
  Result r = ParseLogin7(payload, &l);
  EXPECT_EQ(r.status, Status::kMalformed);
  EXPECT_EQ(l.user_name, "untouched");
  EXPECT_EQ(l.tds_version, 0u);
  return r.error;
}

std::vector<std::string> Fields(const Login7& l) {
  return {l.host_name, l.user_name, l.app_name, l.server_name, l.library, l.language, l.database};
}

Bytes SpecLogin7() { return Suffix(FromHex(kSpecLogin7Hex), kHeaderSize); }
Bytes GoLogin7() { return Suffix(FromHex(kGoMssqldbLogin7Hex), kHeaderSize); }

// Offsets of the (offset, length) entries in the table from payload offset 36.
constexpr size_t kHostEntry = 36;
constexpr size_t kUserEntry = 40;
constexpr size_t kPasswordEntry = 44;
constexpr size_t kDatabaseEntry = 68;

TEST(TdsLogin7Test, SpecVectorSa) {
  Login7 l = MustParseLogin7(SpecLogin7());
  EXPECT_EQ(l.tds_version, 0x72090002u);
  EXPECT_EQ(TdsVersionName(l.tds_version), "7.2");
  EXPECT_EQ(l.packet_size, 4096u);
  EXPECT_EQ(l.client_pid, 256u);
  EXPECT_EQ(l.host_name, "skostov1");
  EXPECT_EQ(l.user_name, "sa");
  EXPECT_EQ(l.app_name, "OSQL-32");
  EXPECT_EQ(l.server_name, "");
  EXPECT_EQ(l.library, "ODBC");
  EXPECT_EQ(l.language, "");
  EXPECT_EQ(l.database, "");
  EXPECT_FALSE(l.integrated_security);
}

TEST(TdsLogin7Test, GoMssqldbVectorTds73) {
  Login7 l = MustParseLogin7(GoLogin7());
  EXPECT_EQ(l.tds_version, 0x730A0003u);
  EXPECT_EQ(TdsVersionName(l.tds_version), "7.3A");
  EXPECT_EQ(l.packet_size, 4096u);
  EXPECT_EQ(l.client_pid, 100u);
  EXPECT_EQ(l.host_name, "subdev1");
  EXPECT_EQ(l.user_name, "test");
  EXPECT_EQ(l.app_name, "appname");
  EXPECT_EQ(l.server_name, "servername");
  EXPECT_EQ(l.library, "library");
  EXPECT_EQ(l.language, "en");
  EXPECT_EQ(l.database, "database");
  EXPECT_FALSE(l.integrated_security);
}

TEST(TdsLogin7Test, PasswordIsNeverDecoded) {
  const Bytes payload = GoLogin7();
  // The obfuscated password: 7 characters at offset 116.
  const Bytes obfuscated(payload.begin() + 116, payload.begin() + 130);
  ASSERT_EQ(obfuscated, FromHex("e2a5f3a592a5e2a5a2a5d2a5e3a5"));
  const std::string as_text = Utf16LeToUtf8(obfuscated);
  Login7 l = MustParseLogin7(payload);
  for (const std::string& f : Fields(l)) {
    EXPECT_EQ(f.find("testpwd"), std::string::npos) << f;
    EXPECT_EQ(f.find("pwd"), std::string::npos) << f;
    EXPECT_EQ(f.find(as_text), std::string::npos) << f;
  }
  // Other password bytes leave every field as it was.
  Bytes other = payload;
  for (size_t i = 116; i < 130; i++) other[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Fields(MustParseLogin7(other)), Fields(l));
  // A field pointed at the password bytes shows them, proving the offsets are
  // followed for the fields that are read (and only for those).
  Bytes aimed = payload;
  PutU16LE(&aimed, kDatabaseEntry, 116);
  PutU16LE(&aimed, kDatabaseEntry + 2, 7);
  EXPECT_EQ(MustParseLogin7(aimed).database, as_text);
}

TEST(TdsLogin7Test, IntegratedSecurityAndNonAsciiNames) {
  // The spec vector with OptionFlags2 fIntSecurity and a user name of two
  // characters changed to "é" and U+1F600 (a surrogate pair: 3 code units;
  // the user is made 3 characters long over "sa" + the first app character).
  Bytes b = SpecLogin7();
  b[25] |= 0x80;
  const Bytes user = {0xe9, 0x00, 0x3d, 0xd8, 0x00, 0xde};
  std::copy(user.begin(), user.end(), b.begin() + 110);
  PutU16LE(&b, kUserEntry + 2, 3);
  Login7 l = MustParseLogin7(b);
  EXPECT_TRUE(l.integrated_security);
  EXPECT_EQ(l.user_name, "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(l.host_name, "skostov1");
}

TEST(TdsLogin7Test, TruncatedFixedPartIsMalformed) {
  const Bytes spec = SpecLogin7();
  for (size_t n = 0; n < 36; n++) {
    EXPECT_EQ(MalformedLogin7(Prefix(spec, n)), "LOGIN7 is shorter than its fixed part") << n;
  }
}

TEST(TdsLogin7Test, LengthFieldMismatchIsMalformed) {
  Bytes b = SpecLogin7();
  PutU32LE(&b, 0, 137);
  EXPECT_EQ(MalformedLogin7(b), "LOGIN7 length field 137 does not match the message size 136");
  PutU32LE(&b, 0, 0xffffffff);
  EXPECT_EQ(MalformedLogin7(b), "LOGIN7 length field 4294967295 does not match the message size 136");
  b = SpecLogin7();
  b.push_back(0);
  EXPECT_EQ(MalformedLogin7(b), "LOGIN7 length field 136 does not match the message size 137");
  // Cut short anywhere after the fixed part: the length no longer matches.
  for (size_t n = 36; n < 136; n++) {
    EXPECT_EQ(MalformedLogin7(Prefix(SpecLogin7(), n)),
              "LOGIN7 length field 136 does not match the message size " + std::to_string(n));
  }
}

TEST(TdsLogin7Test, LyingOffsetsAndLengthsAreMalformed) {
  struct Case {
    size_t entry;
    uint16_t offset;
    uint16_t chars;
  };
  const Bytes go = GoLogin7();  // 214 bytes
  for (const Case& c : {Case{kHostEntry, 0x1000, 7}, Case{kHostEntry, 94, 0x8000}, Case{kUserEntry, 207, 4},
                        Case{kUserEntry, 0xffff, 1}, Case{kDatabaseEntry, 200, 8}, Case{kDatabaseEntry, 213, 1},
                        Case{kDatabaseEntry, 214, 1}, Case{60, 0, 108} /* library: 216 bytes */}) {
    Bytes b = go;
    PutU16LE(&b, c.entry, c.offset);
    PutU16LE(&b, c.entry + 2, c.chars);
    EXPECT_EQ(MalformedLogin7(b), "LOGIN7 field points outside the message") << c.entry << " " << c.offset;
  }
  // A field ending exactly at the end is fine, and so is an empty field
  // wherever it points.
  Bytes b = go;
  PutU16LE(&b, kDatabaseEntry, 212);
  PutU16LE(&b, kDatabaseEntry + 2, 1);
  EXPECT_EQ(MustParseLogin7(b).database, "h");
  PutU16LE(&b, kDatabaseEntry, 0xffff);
  PutU16LE(&b, kDatabaseEntry + 2, 0);
  EXPECT_EQ(MustParseLogin7(b).database, "");
  // An odd offset is followed as given.
  PutU16LE(&b, kHostEntry, 95);
  PutU16LE(&b, kHostEntry + 2, 1);
  EXPECT_EQ(MustParseLogin7(b).host_name, "\xe7\x94\x80");  // 0x00 0x75 -> U+7500
}

TEST(TdsLogin7Test, TruncatedOffsetTableIsMalformed) {
  // A fixed part whose length field says 36..71: the table is cut.
  for (uint32_t n : {36u, 40u, 71u}) {
    Bytes b = Prefix(SpecLogin7(), n);
    PutU32LE(&b, 0, n);
    EXPECT_EQ(MalformedLogin7(b), "LOGIN7 field points outside the message") << n;
  }
  // The table up to Database is all that is read.
  Bytes b = Prefix(SpecLogin7(), 72);
  PutU32LE(&b, 0, 72);
  for (size_t e = kHostEntry; e <= kDatabaseEntry; e += 4) PutU32LE(&b, e, 0);
  Login7 l = MustParseLogin7(b);
  EXPECT_EQ(l.tds_version, 0x72090002u);
  EXPECT_EQ(l.user_name, "");
}

TEST(TdsLogin7Test, PasswordEntryIsNotFollowed) {
  // Only the fields dbward reads are bounds-checked; the password is
  // forwarded untouched, and the server judges it.
  Bytes b = SpecLogin7();
  PutU16LE(&b, kPasswordEntry, 0xfff0);
  PutU16LE(&b, kPasswordEntry + 2, 0x100);
  EXPECT_EQ(MustParseLogin7(b).user_name, "sa");
}

// ---------------------------------------------------------------------------
// TdsVersionName.

TEST(TdsVersionNameTest, KnownAndUnknown) {
  EXPECT_EQ(TdsVersionName(0x70000000), "7.0");
  EXPECT_EQ(TdsVersionName(0x71000000), "7.1");
  EXPECT_EQ(TdsVersionName(0x71000001), "7.1");
  EXPECT_EQ(TdsVersionName(0x72090002), "7.2");
  EXPECT_EQ(TdsVersionName(0x730A0003), "7.3A");
  EXPECT_EQ(TdsVersionName(0x730B0003), "7.3B");
  EXPECT_EQ(TdsVersionName(0x74000004), "7.4");
  EXPECT_EQ(TdsVersionName(0x08000000), "8.0");
  EXPECT_EQ(TdsVersionName(0x12345678), "0x12345678");
  EXPECT_EQ(TdsVersionName(0), "0x00000000");
  EXPECT_EQ(TdsVersionName(0xffffffff), "0xffffffff");
  EXPECT_EQ(TdsVersionName(0x04000074), "0x04000074");  // 7.4 byte-swapped
}

// ---------------------------------------------------------------------------
// EncodeLoginError.

TEST(TdsLoginErrorTest, ExactBytes) {
  const Bytes expected = {
      0xaa, 0x16, 0x00,              // ERROR, 22 bytes
      0x18, 0x48, 0x00, 0x00,        // number 18456
      0x01,                          // state
      0x0e,                          // class 14
      0x02, 0x00, 'N', 0, 'o', 0,    // message (US_VARCHAR)
      0x02, 'd', 0, 'b', 0,          // server name (B_VARCHAR)
      0x00,                          // procedure name: empty
      0x01, 0x00, 0x00, 0x00,        // line number
      0xfd, 0x02, 0x00, 0x00, 0x00,  // DONE, DONE_ERROR, curcmd 0
      0, 0, 0, 0, 0, 0, 0, 0,        // row count (u64)
  };
  EXPECT_EQ(EncodeLoginError(18456, 1, 14, "No", "db"), expected);
}

TEST(TdsLoginErrorTest, FieldsAndLimits) {
  Bytes e = EncodeLoginError(-2, 0xff, 20, "\xc3\xa9", "");
  EXPECT_EQ(e, (Bytes{0xaa, 0x10, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 20, 0x01, 0x00, 0xe9, 0x00, 0x00, 0x00,
                      0x01, 0x00, 0x00, 0x00, 0xfd, 0x02, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}));
  // Long texts are cut: 4000 bytes of message, 120 of server name.
  e = EncodeLoginError(1, 1, 16, std::string(5000, 'm'), std::string(200, 's'));
  const size_t body = 4 + 1 + 1 + 2 + 8000 + 1 + 240 + 1 + 4;
  ASSERT_EQ(e.size(), 3 + body + 13);
  EXPECT_EQ(e[1] | e[2] << 8, static_cast<int>(body));
  EXPECT_EQ(e[9] | e[10] << 8, 4000);
  EXPECT_EQ(e[11 + 8000], 120);
  EXPECT_EQ(e[3 + body], 0xfd);
  // Framed as the server would send it.
  const Bytes framed = EncodeMessage(kTabularResult, EncodeLoginError(18456, 1, 14, "No", "db"));
  EXPECT_EQ(Prefix(framed, 8), (Bytes{0x04, 0x01, 0x00, 0x2e, 0x00, 0x00, 0x01, 0x00}));
  EXPECT_EQ(MustDecode(framed).payload, EncodeLoginError(18456, 1, 14, "No", "db"));
}

// ---------------------------------------------------------------------------
// UTF-16LE <-> UTF-8.

Bytes U16(std::initializer_list<uint16_t> units) {
  Bytes out;
  for (uint16_t u : units) AppendU16LE(&out, u);
  return out;
}

TEST(TdsUtf16Test, Utf16ToUtf8) {
  EXPECT_EQ(Utf16LeToUtf8(U16({'s', 'a'})), "sa");
  EXPECT_EQ(Utf16LeToUtf8({}), "");
  EXPECT_EQ(Utf16LeToUtf8(U16({0})), std::string(1, '\0'));
  EXPECT_EQ(Utf16LeToUtf8(U16({0x7f, 0x80, 0x7ff, 0x800})), "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80");
  EXPECT_EQ(Utf16LeToUtf8(U16({0xe9, 0x20ac, 0x4e2d, 0xfffd, 0xffff})),
            "\xc3\xa9\xe2\x82\xac\xe4\xb8\xad\xef\xbf\xbd\xef\xbf\xbf");
  // Surrogate pairs: U+1F600, U+10000, U+10FFFF.
  EXPECT_EQ(Utf16LeToUtf8(U16({0xd83d, 0xde00})), "\xf0\x9f\x98\x80");
  EXPECT_EQ(Utf16LeToUtf8(U16({0xd800, 0xdc00, 0xdbff, 0xdfff})), "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
}

TEST(TdsUtf16Test, LoneSurrogatesBecomeReplacementCharacters) {
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(Utf16LeToUtf8(U16({0xd83d})), r);                      // high at the end
  EXPECT_EQ(Utf16LeToUtf8(U16({0xde00})), r);                      // low alone
  EXPECT_EQ(Utf16LeToUtf8(U16({0xd83d, 'A'})), r + "A");           // high then not a low
  EXPECT_EQ(Utf16LeToUtf8(U16({0xde00, 0xd83d})), r + r);          // reversed pair
  EXPECT_EQ(Utf16LeToUtf8(U16({0xd83d, 0xd83d, 0xde00})), r + "\xf0\x9f\x98\x80");
  EXPECT_EQ(Utf16LeToUtf8(Concat(U16({0xd83d}), Bytes{0x00})), r);  // high, then half a unit
}

TEST(TdsUtf16Test, OddByteCountsDropTheLastByte) {
  EXPECT_EQ(Utf16LeToUtf8(Bytes{0x41}), "");
  EXPECT_EQ(Utf16LeToUtf8(Bytes{0x41, 0x00, 0x42}), "A");
  EXPECT_EQ(Utf16LeToUtf8(Bytes{0x3d, 0xd8, 0x00, 0xde, 0x43}), "\xf0\x9f\x98\x80");
}

TEST(TdsUtf16Test, Utf8ToUtf16) {
  EXPECT_EQ(Utf8ToUtf16Le("sa"), U16({'s', 'a'}));
  EXPECT_EQ(Utf8ToUtf16Le(""), Bytes{});
  EXPECT_EQ(Utf8ToUtf16Le(std::string(1, '\0')), U16({0}));
  EXPECT_EQ(Utf8ToUtf16Le("\xc3\xa9\xe2\x82\xac\xe4\xb8\xad"), U16({0xe9, 0x20ac, 0x4e2d}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf0\x9f\x98\x80"), U16({0xd83d, 0xde00}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf4\x8f\xbf\xbf"), U16({0xdbff, 0xdfff}));
}

// Ill-formed UTF-8 used to produce lone surrogates (CESU-8 ED A0 80), wrapped
// surrogate pairs (F4 90 80 80 is above U+10FFFF), overlong forms and to
// swallow the ASCII byte after a cut sequence. Each maximal ill-formed
// subpart now becomes one U+FFFD, as Unicode recommends (and Python does).
TEST(TdsUtf16Test, IllFormedUtf8BecomesReplacementCharacters) {
  const uint16_t r = 0xfffd;
  EXPECT_EQ(Utf8ToUtf16Le("\xc3("), U16({r, '('}));
  EXPECT_EQ(Utf8ToUtf16Le("a\x80" "b"), U16({'a', r, 'b'}));
  EXPECT_EQ(Utf8ToUtf16Le("\xed\xa0\x80"), U16({r, r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xed\x9f\xbf"), U16({0xd7ff}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf4\x90\x80\x80"), U16({r, r, r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xc0\x80"), U16({r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xe0\x80\xaf"), U16({r, r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf0\x80\x80\x80"), U16({r, r, r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xff\xfe"), U16({r, r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xe2\x82"), U16({r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf0\x9f\x98"), U16({r}));
  EXPECT_EQ(Utf8ToUtf16Le("\xf0\x9f\x98" "A"), U16({r, 'A'}));
  EXPECT_EQ(Utf8ToUtf16Le("\xe2\x82\xac\xe2"), U16({0x20ac, r}));
  // A message cut in the middle of a character by EncodeLoginError's limit.
  const Bytes e = EncodeLoginError(1, 1, 16, std::string(3999, 'x') + "\xc3\xa9", "");
  EXPECT_EQ(e[9] | e[10] << 8, 4000);
  EXPECT_EQ(e[11 + 2 * 3999], 0xfd);
  EXPECT_EQ(e[12 + 2 * 3999], 0xff);
}

TEST(TdsUtf16Test, EveryScalarValueRoundTrips) {
  for (uint32_t cp = 0; cp <= 0x10ffff; cp += (cp < 0x10000 ? 1 : 97)) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    Bytes u16;
    if (cp < 0x10000) {
      AppendU16LE(&u16, static_cast<uint16_t>(cp));
    } else {
      AppendU16LE(&u16, static_cast<uint16_t>(0xd800 + ((cp - 0x10000) >> 10)));
      AppendU16LE(&u16, static_cast<uint16_t>(0xdc00 + ((cp - 0x10000) & 0x3ff)));
    }
    const std::string u8 = Utf16LeToUtf8(u16);
    ASSERT_EQ(u8.size(), cp < 0x80 ? 1u : cp < 0x800 ? 2u : cp < 0x10000 ? 3u : 4u) << cp;
    ASSERT_EQ(Utf8ToUtf16Le(u8), u16) << cp;
  }
  EXPECT_EQ(Utf8ToUtf16Le(Utf16LeToUtf8(U16({0xdbff, 0xdfff}))), U16({0xdbff, 0xdfff}));
}

// ---------------------------------------------------------------------------
// Random and mutated buffers: never crash, never report more than was given.

bool ValidUtf8(const std::string& s) {
  // Re-encoding valid UTF-8 to UTF-16 and back is the identity; anything
  // ill-formed gains a U+FFFD on the way.
  return Utf16LeToUtf8(Utf8ToUtf16Le(s)) == s;
}

void CheckPayloadInvariants(const Bytes& payload) {
  Prelogin p;
  Result r = ParsePrelogin(payload, &p);
  EXPECT_NE(r.status, Status::kNeedMore);
  EXPECT_EQ(r.error.empty(), r.status == Status::kOk);
  if (r.status == Status::kOk) {
    EXPECT_LE(p.options.size(), 32u);
    const Bytes encoded = EncodePrelogin(p);
    Prelogin back;
    ASSERT_EQ(ParsePrelogin(encoded, &back).status, Status::kOk);
    ASSERT_EQ(back.options.size(), p.options.size());
    for (size_t i = 0; i < p.options.size(); i++) {
      EXPECT_EQ(back.options[i].token, p.options[i].token);
      EXPECT_EQ(back.options[i].data, p.options[i].data);
    }
    (void)p.Version();
  }
  Login7 l;
  r = ParseLogin7(payload, &l);
  EXPECT_NE(r.status, Status::kNeedMore);
  EXPECT_EQ(r.error.empty(), r.status == Status::kOk);
  if (r.status == Status::kOk) {
    EXPECT_GE(payload.size(), 72u);
    size_t total = 0;
    for (const std::string& f : Fields(l)) {
      EXPECT_TRUE(ValidUtf8(f));
      total += f.size();
    }
    EXPECT_LE(total, 7 * 3 * payload.size() / 2);
    EXPECT_FALSE(TdsVersionName(l.tds_version).empty());
  }
  EXPECT_TRUE(ValidUtf8(Utf16LeToUtf8(payload)));
}

void CheckAll(const Bytes& in) {
  Message m;
  m.consumed = 777;
  Result r = DecodeMessage(in, 256, &m);
  if (r.status != Status::kOk) {
    EXPECT_EQ(r.error.empty(), r.status == Status::kNeedMore);
    EXPECT_EQ(m.consumed, 777u);
  } else {
    EXPECT_EQ(r.error, "");
    ASSERT_LE(m.consumed, in.size());
    EXPECT_GE(m.consumed, kHeaderSize + m.payload.size());
    EXPECT_EQ((m.consumed - m.payload.size()) % kHeaderSize, 0u);
    EXPECT_LE(m.payload.size(), 256u);
    EXPECT_EQ(m.type, in[0]);
    CheckPayloadInvariants(m.payload);
  }
  CheckPayloadInvariants(in);
}

TEST(TdsRandomTest, RandomBuffersKeepInvariants) {
  std::mt19937 rng(20240617);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> small(0, 120);
  for (int i = 0; i < 6000; i++) {
    Bytes in(static_cast<size_t>(small(rng)));
    for (uint8_t& b : in) b = static_cast<uint8_t>(byte(rng));
    // Plausible headers and tables often enough to reach the inner parsers.
    switch (i % 4) {
      case 0:
        if (in.size() >= 8) {
          in[0] = kPrelogin;
          in[1] = static_cast<uint8_t>(byte(rng) % 2);
          PutU16BE(&in, 2, static_cast<uint16_t>(8 + byte(rng) % 64));
        }
        break;
      case 1:
        for (size_t at = 0; at + 5 <= in.size() && at < 30; at += 5) {
          in[at] = static_cast<uint8_t>(byte(rng) % 9);
          PutU16BE(&in, at + 1, static_cast<uint16_t>(byte(rng) % 64));
          PutU16BE(&in, at + 3, static_cast<uint16_t>(byte(rng) % 8));
          if (byte(rng) < 60) {
            in[at] = 0xff;
            break;
          }
        }
        break;
      case 2:
        if (in.size() >= 72) {
          PutU32LE(&in, 0, static_cast<uint32_t>(in.size()));
          for (size_t e = 36; e < 72; e += 4) {
            PutU16LE(&in, e, static_cast<uint16_t>(byte(rng) % 130));
            PutU16LE(&in, e + 2, static_cast<uint16_t>(byte(rng) % 8));
          }
        }
        break;
      default:
        break;
    }
    CheckAll(in);
    if (HasFatalFailure()) return;
  }
}

TEST(TdsRandomTest, MutatedVectorsKeepInvariants) {
  std::mt19937 rng(17);
  std::vector<Bytes> seeds;
  for (std::string_view hex : {kSpecPreloginHex, kMsoledbsql18PreloginHex, kNmapPreloginHex, kTediousPreloginPayloadHex,
                               kSql2008PreloginResponseHex, kSql2014PreloginResponseHex,
                               kSql2017PreloginResponsePayloadHex, kSql2022PreloginResponsePayloadHex, kSpecLogin7Hex,
                               kGoMssqldbLogin7Hex}) {
    seeds.push_back(FromHex(hex));
  }
  seeds.push_back(SpecLogin7());
  seeds.push_back(GoLogin7());
  seeds.push_back(ThreePacketLogin7());
  seeds.push_back(EncodeLoginError(18456, 1, 14, "Login failed", "dbward"));
  for (int i = 0; i < 8000; i++) {
    Bytes in = seeds[static_cast<size_t>(i) % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; e++) {
      size_t at = rng() % in.size();
      switch (rng() % 5) {
        case 0: in[at] = static_cast<uint8_t>(rng()); break;
        case 1: in[at] = 0; break;
        case 2: in[at] = static_cast<uint8_t>(0xd8 + rng() % 8); break;  // surrogates, 0xff
        case 3: in.erase(in.begin() + static_cast<ptrdiff_t>(at)); break;
        default: in.insert(in.begin() + static_cast<ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
      }
      if (in.empty()) in.push_back(0);
    }
    CheckAll(in);
    // Every prefix of a mutated buffer, now and then.
    if (i % 50 == 0) {
      for (size_t n = 0; n < in.size(); n++) CheckAll(Prefix(in, n));
    }
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace dbward::protocol::tds

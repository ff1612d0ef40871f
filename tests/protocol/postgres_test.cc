#include "protocol/postgres.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/protocol/bytes_util.h"

namespace dbward::protocol::pg {
namespace {

using namespace dbward::protocol::testutil;  // Bytes, FromHex, Append..., Concat, Prefix
using Params = std::vector<std::pair<std::string, std::string>>;

// Real PostgreSQL wire bytes, copied from the shared vector file
// (vectors/pgsql.json) so that CI does not depend on where it lives. Each
// constant names its vector and where the vector was taken from.

// "sslrequest": suricata rust/src/pgsql/parser.rs test_parse_request.
constexpr std::string_view kSslRequestHex = "0000000804d2162f";
// "gssencrequest": stunnel src/protocol.c gss_request[].
constexpr std::string_view kGssEncRequestHex = "0000000804d21630";
// "startupmessage_user_oryx_db_mailstore": suricata test_parse_request.
constexpr std::string_view kStartupOryxHex =
    "000000260003000075736572006f727978006461746162617365006d61696c73746f72650000";
// "startupmessage_sqlx_user_postgres_db_postgres": sqlx test_encode_startup.
constexpr std::string_view kStartupSqlxHex =
    "00000029000300007573657200706f73746772657300646174616261736500706f7374677265730000";
// "authenticationsasl_scram_plus_and_scram": suricata
// test_parse_sasl_authentication_message; what PostgreSQL >= 11 sends over TLS.
constexpr std::string_view kAuthSaslHex =
    "520000002a0000000a534352414d2d5348412d3235362d504c555300534352414d2d5348412d3235360000";
// "saslinitialresponse_scram_sha_256": suricata test_parse_sasl_frontend_messages.
constexpr std::string_view kSaslInitialResponseHex =
    "7000000036534352414d2d5348412d32353600000000206e2c2c6e3d2c723d2f7a2b67695a6954784148377238734e4165487237637670";


void AppendU32(Bytes* out, uint32_t v) {
  out->push_back(static_cast<uint8_t>(v >> 24));
  out->push_back(static_cast<uint8_t>(v >> 16));
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

// An untyped first message: length (self-included) + code + body, with the
// length computed from what follows unless the test wants it to lie.
Bytes FirstWithLength(uint32_t length, uint32_t code, const Bytes& body = {}) {
  Bytes out;
  AppendU32(&out, length);
  AppendU32(&out, code);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
Bytes First(uint32_t code, const Bytes& body = {}) {
  return FirstWithLength(static_cast<uint32_t>(8 + body.size()), code, body);
}
// Startup parameter bytes: each string NUL-terminated, nothing added.
Bytes Strings(std::initializer_list<std::string_view> strings) {
  Bytes out;
  for (std::string_view s : strings) AppendCString(&out, s);
  return out;
}

Result DecodeFirst(const Bytes& in, FirstMessage* out) { return DecodeFirstMessage(in, out); }

FirstMessage MustDecodeFirst(const Bytes& in) {
  FirstMessage m;
  Result r = DecodeFirstMessage(in, &m);
  EXPECT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  return m;
}

std::string MalformedFirst(const Bytes& in) {
  FirstMessage m;
  m.cancel_pid = 0x5a5a5a5a;  // must be left alone
  Result r = DecodeFirstMessage(in, &m);
  EXPECT_EQ(r.status, Status::kMalformed);
  EXPECT_EQ(m.cancel_pid, 0x5a5a5a5au);
  return r.error;
}

void ExpectSameFirst(const FirstMessage& a, const FirstMessage& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.protocol, b.protocol);
  EXPECT_EQ(a.cancel_pid, b.cancel_pid);
  EXPECT_EQ(a.cancel_secret, b.cancel_secret);
  EXPECT_EQ(a.params, b.params);
}

constexpr size_t kCap = 16 * 1024;  // the proxy's pre-authentication cap

// ---------------------------------------------------------------------------
// DecodeFirstMessage: the real vectors.

TEST(PgFirstMessageTest, SslRequestVector) {
  const Bytes in = FromHex(kSslRequestHex);
  FirstMessage m = MustDecodeFirst(in);
  EXPECT_EQ(m.kind, FirstMessageKind::kSslRequest);
  EXPECT_EQ(m.length, 8u);
  EXPECT_EQ(m.protocol, 0u);
  EXPECT_TRUE(m.params.empty());
  EXPECT_EQ(EncodeSslRequest(), in);
}

TEST(PgFirstMessageTest, GssEncRequestVector) {
  FirstMessage m = MustDecodeFirst(FromHex(kGssEncRequestHex));
  EXPECT_EQ(m.kind, FirstMessageKind::kGssEncRequest);
  EXPECT_EQ(m.length, 8u);
}

TEST(PgFirstMessageTest, StartupVectorOryx) {
  FirstMessage m = MustDecodeFirst(FromHex(kStartupOryxHex));
  EXPECT_EQ(m.kind, FirstMessageKind::kStartup);
  EXPECT_EQ(m.length, 38u);
  EXPECT_EQ(m.protocol, 0x00030000u);
  EXPECT_EQ(m.protocol, kProtocol3);
  EXPECT_EQ(m.params, (Params{{"user", "oryx"}, {"database", "mailstore"}}));
  EXPECT_EQ(m.Param("user"), "oryx");
  EXPECT_EQ(m.Param("database"), "mailstore");
  EXPECT_EQ(m.Param("application_name"), "");
}

TEST(PgFirstMessageTest, StartupVectorSqlx) {
  FirstMessage m = MustDecodeFirst(FromHex(kStartupSqlxHex));
  EXPECT_EQ(m.kind, FirstMessageKind::kStartup);
  EXPECT_EQ(m.length, 41u);
  EXPECT_EQ(m.protocol, kProtocol3);
  EXPECT_EQ(m.params, (Params{{"user", "postgres"}, {"database", "postgres"}}));
}

TEST(PgFirstMessageTest, CancelRequestEncodeAndDecode) {
  const Bytes in = EncodeCancelRequest(0x01020304, 0xdeadbeef);
  EXPECT_EQ(in, (Bytes{0x00, 0x00, 0x00, 0x10, 0x04, 0xd2, 0x16, 0x2e, 0x01, 0x02, 0x03, 0x04, 0xde, 0xad, 0xbe,
                       0xef}));
  FirstMessage m = MustDecodeFirst(in);
  EXPECT_EQ(m.kind, FirstMessageKind::kCancelRequest);
  EXPECT_EQ(m.length, 16u);
  EXPECT_EQ(m.cancel_pid, 0x01020304u);
  EXPECT_EQ(m.cancel_secret, 0xdeadbeefu);
  EXPECT_TRUE(m.params.empty());
}

TEST(PgFirstMessageTest, StartupWithMoreParameters) {
  const Bytes in = First(kProtocol3, Strings({"user", "alice", "database", "shop", "application_name", "psql",
                                              "client_encoding", "UTF8", ""}));
  FirstMessage m = MustDecodeFirst(in);
  EXPECT_EQ(m.length, in.size());
  EXPECT_EQ(m.params, (Params{{"user", "alice"},
                              {"database", "shop"},
                              {"application_name", "psql"},
                              {"client_encoding", "UTF8"}}));
}

TEST(PgFirstMessageTest, StartupWithoutDatabaseIsAccepted) {
  FirstMessage m = MustDecodeFirst(First(kProtocol3, Strings({"user", "alice", ""})));
  EXPECT_EQ(m.params, (Params{{"user", "alice"}}));
  EXPECT_EQ(m.Param("database"), "");
}

TEST(PgFirstMessageTest, EmptyParameterValueIsKept) {
  FirstMessage m = MustDecodeFirst(First(kProtocol3, Strings({"user", "alice", "options", "", ""})));
  EXPECT_EQ(m.params, (Params{{"user", "alice"}, {"options", ""}}));
}

// PostgreSQL keeps the last value of a repeated key, and dbward forwards the
// startup packet untouched: the audit must name the user the backend sees.
TEST(PgFirstMessageTest, RepeatedKeyLastValueWinsAsInPostgres) {
  FirstMessage m = MustDecodeFirst(
      First(kProtocol3, Strings({"user", "alice", "database", "a", "user", "mallory", "database", "b", ""})));
  EXPECT_EQ(m.params.size(), 4u);
  EXPECT_EQ(m.Param("user"), "mallory");
  EXPECT_EQ(m.Param("database"), "b");
}

TEST(PgFirstMessageTest, RepeatedUserEndingEmptyIsMissingUser) {
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({"user", "alice", "user", "", ""}))),
            "no PostgreSQL user name specified in startup packet");
}

TEST(PgFirstMessageTest, ProtocolMinorVersionsOfThreeAreAccepted) {
  // libpq 18 may ask for 3.2; the server answers NegotiateProtocolVersion.
  FirstMessage m = MustDecodeFirst(First(0x00030002, Strings({"user", "alice", ""})));
  EXPECT_EQ(m.protocol, 0x00030002u);
}

TEST(PgFirstMessageTest, StartupAtExactlyTheServerLimit) {
  Bytes body = Strings({"user", "alice", "options"});
  std::string value(kMaxStartupPacket - 8 - body.size() - 2, 'x');
  AppendCString(&body, value);
  body.push_back(0);
  const Bytes in = First(kProtocol3, body);
  ASSERT_EQ(in.size(), kMaxStartupPacket);
  FirstMessage m = MustDecodeFirst(in);
  EXPECT_EQ(m.length, 10000u);
  EXPECT_EQ(m.Param("options"), value);
}

// ---------------------------------------------------------------------------
// DecodeFirstMessage: framing.

std::vector<Bytes> FirstMessageVectors() {
  return {FromHex(kSslRequestHex), FromHex(kGssEncRequestHex), FromHex(kStartupOryxHex), FromHex(kStartupSqlxHex),
          EncodeCancelRequest(7, 9)};
}

TEST(PgFirstMessageTest, EveryPrefixNeedsMoreThenTheWholeIsOk) {
  for (const Bytes& whole : FirstMessageVectors()) {
    const FirstMessage expected = MustDecodeFirst(whole);
    for (size_t n = 0; n < whole.size(); n++) {
      FirstMessage m;
      m.cancel_pid = 0x77;
      Result r = DecodeFirstMessage(std::span<const uint8_t>(whole).first(n), &m);
      EXPECT_EQ(r.status, Status::kNeedMore) << "prefix " << n << " of " << whole.size();
      EXPECT_EQ(r.error, "");
      EXPECT_EQ(m.cancel_pid, 0x77u) << "output written before the message was complete";
    }
    ExpectSameFirst(MustDecodeFirst(whole), expected);
  }
}

TEST(PgFirstMessageTest, SplitAtEveryOffsetAndReassembled) {
  // The caller appends what arrives and retries: every split point must give
  // NeedMore for the first part and the same message once both are there.
  for (const Bytes& whole : FirstMessageVectors()) {
    const FirstMessage expected = MustDecodeFirst(whole);
    for (size_t split = 1; split < whole.size(); split++) {
      Bytes buffer(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(split));
      FirstMessage m;
      EXPECT_EQ(DecodeFirst(buffer, &m).status, Status::kNeedMore);
      buffer.insert(buffer.end(), whole.begin() + static_cast<ptrdiff_t>(split), whole.end());
      ASSERT_EQ(DecodeFirst(buffer, &m).status, Status::kOk) << "split " << split;
      ExpectSameFirst(m, expected);
    }
  }
}

TEST(PgFirstMessageTest, TwoMessagesInOneBufferConsumeOnlyTheFirst) {
  const Bytes ssl = FromHex(kSslRequestHex);
  const Bytes startup = FromHex(kStartupOryxHex);

  FirstMessage m = MustDecodeFirst(Concat(ssl, startup));
  EXPECT_EQ(m.kind, FirstMessageKind::kSslRequest);
  EXPECT_EQ(m.length, 8u);  // the proxy sees 38 more bytes: plaintext after SSLRequest

  m = MustDecodeFirst(Concat(startup, ssl));
  EXPECT_EQ(m.kind, FirstMessageKind::kStartup);
  EXPECT_EQ(m.length, 38u);
  EXPECT_EQ(m.params, (Params{{"user", "oryx"}, {"database", "mailstore"}}));

  m = MustDecodeFirst(Concat(startup, FromHex(kStartupSqlxHex)));
  EXPECT_EQ(m.length, 38u);
  EXPECT_EQ(m.Param("user"), "oryx");
}

TEST(PgFirstMessageTest, ShortBuffersNeedMore) {
  FirstMessage m;
  EXPECT_EQ(DecodeFirst({}, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeFirst({0x00}, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeFirst({0x00, 0x00, 0x00}, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeFirst({0x00, 0x00, 0x00, 0x08}, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeFirst({0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16}, &m).status, Status::kNeedMore);
}

TEST(PgFirstMessageTest, LengthBelowEightIsMalformedAtOnce) {
  for (uint32_t len = 0; len < 8; len++) {
    Bytes in;
    AppendU32(&in, len);  // nothing else: the length alone is enough to refuse
    EXPECT_EQ(MalformedFirst(in), "invalid length of startup packet (" + std::to_string(len) + ")");
  }
}

TEST(PgFirstMessageTest, LengthAboveServerLimitIsMalformedAtOnce) {
  for (uint32_t len : {10001u, 65536u, 0x7fffffffu, 0x80000000u, 0xffffffffu}) {
    Bytes in;
    AppendU32(&in, len);
    EXPECT_EQ(MalformedFirst(in), "startup packet too long (" + std::to_string(len) +
                                      " bytes, the limit is 10000)");
  }
  // Even when the whole announced packet is present.
  Bytes body = Strings({"user", "alice", "options"});
  AppendCString(&body, std::string(kMaxStartupPacket, 'x'));
  body.push_back(0);
  EXPECT_EQ(MalformedFirst(First(kProtocol3, body)),
            "startup packet too long (" + std::to_string(8 + body.size()) + " bytes, the limit is 10000)");
}

TEST(PgFirstMessageTest, LengthLargerThanBufferNeedsMoreNotMalformed) {
  Bytes in = FromHex(kStartupOryxHex);
  in[3] = 100;  // announces 100 bytes, 38 present
  FirstMessage m;
  EXPECT_EQ(DecodeFirst(in, &m).status, Status::kNeedMore);
  Bytes limit = FirstWithLength(10000, kProtocol3);
  EXPECT_EQ(DecodeFirst(limit, &m).status, Status::kNeedMore);
}

TEST(PgFirstMessageTest, LengthShorterThanParametersIsMalformed) {
  Bytes in = FromHex(kStartupOryxHex);
  in[3] = 37;  // leaves the final NUL outside; it would be read as the next message
  EXPECT_EQ(MalformedFirst(in), "startup packet is not NUL-terminated");
}

TEST(PgFirstMessageTest, SslRequestWithWrongLength) {
  EXPECT_EQ(MalformedFirst(FirstWithLength(12, kSslRequestCode, {0, 0, 0, 0})),
            "SSLRequest/GSSENCRequest with length 12");
  EXPECT_EQ(MalformedFirst(FirstWithLength(16, kGssEncRequestCode, Bytes(8, 0))),
            "SSLRequest/GSSENCRequest with length 16");
  // Until the announced 12 bytes are there it is only incomplete.
  FirstMessage m;
  EXPECT_EQ(DecodeFirst(FirstWithLength(12, kSslRequestCode), &m).status, Status::kNeedMore);
}

TEST(PgFirstMessageTest, CancelRequestWithWrongLength) {
  EXPECT_EQ(MalformedFirst(FirstWithLength(12, kCancelRequestCode, {0, 0, 0, 1})), "CancelRequest with length 12");
  EXPECT_EQ(MalformedFirst(FirstWithLength(8, kCancelRequestCode)), "CancelRequest with length 8");
  // Protocol 3.2 keys may be up to 256 bytes; one more is too long.
  EXPECT_EQ(MalformedFirst(FirstWithLength(269, kCancelRequestCode, Bytes(261, 1))), "CancelRequest with length 269");
}

TEST(PgFirstMessageTest, Protocol32CancelRequestWithLongKey) {
  Bytes rest = {0, 0, 0x30, 0x39};  // pid 12345
  Bytes key(32, 0xab);
  rest.insert(rest.end(), key.begin(), key.end());
  FirstMessage m = MustDecodeFirst(FirstWithLength(44, kCancelRequestCode, rest));
  EXPECT_EQ(m.kind, FirstMessageKind::kCancelRequest);
  EXPECT_EQ(m.length, 44u);
  EXPECT_EQ(m.cancel_pid, 12345u);
  EXPECT_EQ(m.cancel_secret, 0xababababu);
}

TEST(PgErrorTest, HintIsReplacedAndOtherFieldsKept) {
  // S, V (unlocalized), C, M, H, F, L, R as a real server sends them.
  static const char kBody[] = "SFEHLER\0VFATAL\0C28000\0Mbad\0Hold hint\0Fauth.c\0L42\0Rfn\0";  // + final NUL
  std::string body(kBody, sizeof kBody);
  std::vector<uint8_t> out;
  ASSERT_TRUE(ErrorResponseWithHint(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size()),
                                    "new hint", &out));
  static const char kExpected[] = "E\0\0\0\x3aSFEHLER\0VFATAL\0C28000\0Mbad\0Fauth.c\0L42\0Rfn\0Hnew hint\0";
  std::string expected(kExpected, sizeof kExpected);
  EXPECT_EQ(std::string(out.begin(), out.end()), expected);
  Bytes truncated(body.begin(), body.end() - 1);
  EXPECT_FALSE(ErrorResponseWithHint(truncated, "x", &out));
}

TEST(PgFirstMessageTest, OtherProtocolVersionsAreRejected) {
  EXPECT_EQ(MalformedFirst(First(0x00020000, Strings({"user", "alice", ""}))),
            "unsupported frontend protocol 2.0: dbward supports protocol 3.0");
  EXPECT_EQ(MalformedFirst(First(0x00040001, Strings({"user", "alice", ""}))),
            "unsupported frontend protocol 4.1: dbward supports protocol 3.0");
  // An unknown request code in the 1234.x space is not a startup packet either.
  EXPECT_EQ(MalformedFirst(First(80877105)), "unsupported frontend protocol 1234.5681: dbward supports protocol 3.0");
}

TEST(PgFirstMessageTest, MissingUser) {
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({"database", "shop", ""}))),
            "no PostgreSQL user name specified in startup packet");
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({"user", "", ""}))),
            "no PostgreSQL user name specified in startup packet");
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({""}))), "no PostgreSQL user name specified in startup packet");
  // No parameters and no terminator at all.
  EXPECT_EQ(MalformedFirst(First(kProtocol3)), "startup packet is not NUL-terminated");
}

TEST(PgFirstMessageTest, MissingFinalNul) {
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({"user", "alice"}))), "startup packet is not NUL-terminated");
  Bytes body = Strings({"user", "alice"});
  Append(&body, "datab");  // a key cut short
  EXPECT_EQ(MalformedFirst(First(kProtocol3, body)), "startup packet is not NUL-terminated");
}

TEST(PgFirstMessageTest, ParameterWithoutValue) {
  EXPECT_EQ(MalformedFirst(First(kProtocol3, Strings({"user", "alice", "database"}))),
            "startup parameter 'database' has no value");
  Bytes body = Strings({"user"});
  Append(&body, "alice");  // value not terminated
  EXPECT_EQ(MalformedFirst(First(kProtocol3, body)), "startup parameter 'user' has no value");
}

TEST(PgFirstMessageTest, TrailingBytesInsideTheAnnouncedLength) {
  Bytes body = Strings({"user", "alice", ""});
  body.push_back('X');
  EXPECT_EQ(MalformedFirst(First(kProtocol3, body)), "trailing bytes after the startup parameters");
  body = Strings({"user", "alice", "", ""});
  EXPECT_EQ(MalformedFirst(First(kProtocol3, body)), "trailing bytes after the startup parameters");
}

// ---------------------------------------------------------------------------
// DecodeMessage.

Message MustDecode(const Bytes& in, size_t max_body = kCap) {
  Message m;
  Result r = DecodeMessage(in, max_body, &m);
  EXPECT_EQ(r.status, Status::kOk) << r.error;
  EXPECT_EQ(r.error, "");
  return m;
}

std::string MalformedMessage(const Bytes& in, size_t max_body = kCap) {
  Message m;
  m.wire_length = 12345;
  Result r = DecodeMessage(in, max_body, &m);
  EXPECT_EQ(r.status, Status::kMalformed);
  EXPECT_EQ(m.wire_length, 12345u);
  return r.error;
}

Bytes BodyOf(const Message& m) { return Bytes(m.body.begin(), m.body.end()); }

TEST(PgMessageTest, AuthenticationSaslVector) {
  const Bytes in = FromHex(kAuthSaslHex);
  Message m = MustDecode(in);
  EXPECT_EQ(m.type, 'R');
  EXPECT_EQ(m.wire_length, 43u);
  EXPECT_EQ(m.body.size(), 38u);
  EXPECT_EQ(m.body.data(), in.data() + 5);  // a view into the input, not a copy
  uint32_t code = 0;
  ASSERT_TRUE(ParseAuthCode(m.body, &code));
  EXPECT_EQ(code, kAuthSasl);
}

TEST(PgMessageTest, SaslInitialResponseVector) {
  const Bytes in = FromHex(kSaslInitialResponseHex);
  Message m = MustDecode(in);
  EXPECT_EQ(m.type, 'p');
  EXPECT_EQ(m.wire_length, 55u);
  Bytes expected = Strings({"SCRAM-SHA-256"});
  AppendU32(&expected, 32);
  Append(&expected, "n,,n=,r=/z+giZiTxAH7r8sNAeHr7cvp");
  EXPECT_EQ(BodyOf(m), expected);
}

TEST(PgMessageTest, EmptyBody) {
  Message m = MustDecode({'N', 0, 0, 0, 4});
  EXPECT_EQ(m.type, 'N');
  EXPECT_EQ(m.wire_length, 5u);
  EXPECT_TRUE(m.body.empty());
}

TEST(PgMessageTest, EveryPrefixNeedsMoreAndEverySplitReassembles) {
  for (const Bytes& whole : {FromHex(kAuthSaslHex), FromHex(kSaslInitialResponseHex)}) {
    const Bytes expected_body = BodyOf(MustDecode(whole));
    for (size_t split = 0; split < whole.size(); split++) {
      Bytes buffer(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(split));
      Message m;
      m.wire_length = 999;
      Result r = DecodeMessage(buffer, kCap, &m);
      EXPECT_EQ(r.status, Status::kNeedMore) << "prefix " << split;
      EXPECT_EQ(m.wire_length, 999u);
      buffer.insert(buffer.end(), whole.begin() + static_cast<ptrdiff_t>(split), whole.end());
      m = MustDecode(buffer);
      EXPECT_EQ(m.type, whole[0]);
      EXPECT_EQ(m.wire_length, whole.size());
      EXPECT_EQ(BodyOf(m), expected_body);
    }
  }
}

TEST(PgMessageTest, TwoMessagesInOneBufferConsumeOnlyTheFirst) {
  const Bytes sasl = FromHex(kAuthSaslHex);
  const Bytes auth_ok = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
  const Bytes both = Concat(sasl, auth_ok);
  Message m = MustDecode(both);
  EXPECT_EQ(m.wire_length, 43u);
  EXPECT_EQ(m.body.size(), 38u);
  EXPECT_EQ(BodyOf(m), Bytes(sasl.begin() + 5, sasl.end()));

  Message second;
  ASSERT_EQ(DecodeMessage(std::span<const uint8_t>(both).subspan(m.wire_length), kCap, &second).status,
            Status::kOk);
  EXPECT_EQ(second.type, 'R');
  EXPECT_EQ(second.wire_length, 9u);
  uint32_t code = 99;
  ASSERT_TRUE(ParseAuthCode(second.body, &code));
  EXPECT_EQ(code, kAuthOk);

  // A partial second message does not disturb the first.
  const Bytes with_partial = Concat(sasl, {'R', 0, 0});
  EXPECT_EQ(MustDecode(with_partial).wire_length, 43u);
}

TEST(PgMessageTest, LengthBelowFourIsMalformed) {
  for (uint8_t len = 0; len < 4; len++) {
    EXPECT_EQ(MalformedMessage({'R', 0, 0, 0, len}),
              "message length " + std::to_string(len) + " is below the minimum of 4");
  }
}

TEST(PgMessageTest, LengthAboveCapIsMalformedWithAClearMessage) {
  const Bytes sasl = FromHex(kAuthSaslHex);  // length field 42: a 38-byte body
  EXPECT_EQ(MalformedMessage(sasl, 37), "message 'R' of 42 bytes exceeds the pre-authentication limit of 37");
  EXPECT_EQ(MustDecode(sasl, 38).wire_length, 43u);
  // The cap is checked before waiting for the body: a huge announcement is
  // refused on its 5-byte header, not buffered.
  EXPECT_EQ(MalformedMessage({'E', 0x7f, 0xff, 0xff, 0xff}),
            "message 'E' of 2147483647 bytes exceeds the pre-authentication limit of 16384");
  EXPECT_EQ(MalformedMessage({'E', 0xff, 0xff, 0xff, 0xff}),
            "message 'E' of 4294967295 bytes exceeds the pre-authentication limit of 16384");
  EXPECT_EQ(MalformedMessage({'R', 0, 0, 0x40, 0x05}),
            "message 'R' of 16389 bytes exceeds the pre-authentication limit of 16384");
  Message m;
  EXPECT_EQ(DecodeMessage(Bytes{'R', 0, 0, 0x40, 0x04}, kCap, &m).status, Status::kNeedMore);
}

TEST(PgMessageTest, LengthLargerThanBufferNeedsMore) {
  Bytes in = FromHex(kAuthSaslHex);
  in[4] = 0x2b;  // one byte more than present
  Message m;
  EXPECT_EQ(DecodeMessage(in, kCap, &m).status, Status::kNeedMore);
  in.push_back(0);
  EXPECT_EQ(MustDecode(in).wire_length, 44u);
}

TEST(PgMessageTest, TruncatedHeaderNeedsMore) {
  Message m;
  EXPECT_EQ(DecodeMessage(Bytes{}, kCap, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeMessage(Bytes{'R'}, kCap, &m).status, Status::kNeedMore);
  EXPECT_EQ(DecodeMessage(Bytes{'R', 0, 0, 0}, kCap, &m).status, Status::kNeedMore);
}

// ---------------------------------------------------------------------------
// AuthenticationSASL.

TEST(PgSaslTest, ParseMechanismsVector) {
  const Bytes in = FromHex(kAuthSaslHex);
  Message m = MustDecode(in);
  std::vector<std::string> mechs;
  ASSERT_TRUE(ParseSaslMechanisms(m.body, &mechs));
  EXPECT_EQ(mechs, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(PgSaslTest, EncodeReproducesTheVector) {
  EXPECT_EQ(EncodeAuthenticationSasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}), FromHex(kAuthSaslHex));
}

TEST(PgSaslTest, PlusRemovedExactBytes) {
  const Bytes in = FromHex(kAuthSaslHex);
  std::vector<std::string> mechs;
  ASSERT_TRUE(ParseSaslMechanisms(MustDecode(in).body, &mechs));
  mechs.erase(mechs.begin());  // SCRAM-SHA-256-PLUS, as the proxy withdraws it
  const Bytes out = EncodeAuthenticationSasl(mechs);
  Bytes expected = {'R', 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0a};  // length 23 = 4 + 4 + 14 + 1
  AppendCString(&expected, "SCRAM-SHA-256");
  expected.push_back(0);
  EXPECT_EQ(out, expected);
  EXPECT_EQ(out.size(), 24u);

  Message m = MustDecode(out);
  EXPECT_EQ(m.wire_length, out.size());
  std::vector<std::string> again;
  ASSERT_TRUE(ParseSaslMechanisms(m.body, &again));
  EXPECT_EQ(again, (std::vector<std::string>{"SCRAM-SHA-256"}));
}

TEST(PgSaslTest, RoundTrip) {
  for (const std::vector<std::string>& list : std::vector<std::vector<std::string>>{
           {"SCRAM-SHA-256"}, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, {"a", "bb", "ccc"}, {}}) {
    const Bytes out = EncodeAuthenticationSasl(list);
    Message m = MustDecode(out);
    EXPECT_EQ(m.type, 'R');
    EXPECT_EQ(m.wire_length, out.size());
    std::vector<std::string> parsed{"stale"};
    ASSERT_TRUE(ParseSaslMechanisms(m.body, &parsed));
    EXPECT_EQ(parsed, list);
  }
}

Bytes SaslBody(uint32_t code, const Bytes& rest) {
  Bytes out;
  AppendU32(&out, code);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

TEST(PgSaslTest, MalformedLists) {
  std::vector<std::string> mechs;
  EXPECT_FALSE(ParseSaslMechanisms(Bytes{}, &mechs));
  EXPECT_FALSE(ParseSaslMechanisms(Bytes{0, 0, 0}, &mechs));                            // short code
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthOk, Strings({""})), &mechs));          // not SASL
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(11, Strings({"SCRAM-SHA-256", ""})), &mechs));  // SASLContinue
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthSasl, {}), &mechs));                   // no list at all
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthSasl, Strings({"SCRAM-SHA-256"})), &mechs));  // no final NUL
  Bytes cut;
  Append(&cut, "SCRAM-SHA");
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthSasl, cut), &mechs));  // name not terminated
  Bytes trailing = Strings({"SCRAM-SHA-256", ""});
  trailing.push_back('x');
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthSasl, trailing), &mechs));
  EXPECT_FALSE(ParseSaslMechanisms(SaslBody(kAuthSasl, Strings({"SCRAM-SHA-256", "", ""})), &mechs));
}

TEST(PgSaslTest, EmptyListParsesAsEmpty) {
  // Well-formed framing; the proxy decides what an empty offer means.
  std::vector<std::string> mechs{"stale"};
  ASSERT_TRUE(ParseSaslMechanisms(SaslBody(kAuthSasl, {0}), &mechs));
  EXPECT_TRUE(mechs.empty());
}

TEST(PgAuthCodeTest, Codes) {
  uint32_t code = 0;
  ASSERT_TRUE(ParseAuthCode(Bytes{0, 0, 0, 0}, &code));
  EXPECT_EQ(code, kAuthOk);
  ASSERT_TRUE(ParseAuthCode(Bytes{0, 0, 0, 5, 1, 2, 3, 4}, &code));  // MD5 with its salt
  EXPECT_EQ(code, 5u);
  code = 77;
  EXPECT_FALSE(ParseAuthCode(Bytes{0, 0, 0}, &code));
  EXPECT_EQ(code, 77u);
}

// ---------------------------------------------------------------------------
// ErrorResponse.

TEST(PgErrorTest, SmallErrorExactBytes) {
  ErrorFields f;
  f.sqlstate = "28000";
  f.message = "no";
  Bytes expected = {'E', 0x00, 0x00, 0x00, 0x1e};  // 4 + 7 + 7 + 7 + 4 + 1 = 30
  Append(&expected, std::string_view("SFATAL\0VFATAL\0C28000\0Mno\0\0", 26));
  EXPECT_EQ(EncodeErrorResponse(f), expected);
}

TEST(PgErrorTest, RoundTrip) {
  ErrorFields f;
  f.severity = "FATAL";
  f.sqlstate = "08006";
  f.message = "dbward: backend 10.0.0.1:5432 refused the TLS handshake";
  f.detail = "certificate verify failed";
  f.hint = "Check backend_tls.ca.";
  const Bytes out = EncodeErrorResponse(f);
  Message m = MustDecode(out);
  EXPECT_EQ(m.type, 'E');
  EXPECT_EQ(m.wire_length, out.size());
  ErrorFields back;
  ASSERT_TRUE(ParseErrorResponse(m.body, &back));
  EXPECT_EQ(back.severity, f.severity);
  EXPECT_EQ(back.sqlstate, f.sqlstate);
  EXPECT_EQ(back.message, f.message);
  EXPECT_EQ(back.detail, f.detail);
  EXPECT_EQ(back.hint, f.hint);
}

TEST(PgErrorTest, EmbeddedNulCannotEndTheFieldEarly) {
  ErrorFields f;
  f.message = std::string("bad\0user", 8);
  const Bytes out = EncodeErrorResponse(f);
  ErrorFields back;
  ASSERT_TRUE(ParseErrorResponse(MustDecode(out).body, &back));
  EXPECT_EQ(back.message, "bad user");
}

TEST(PgErrorTest, ParsesServerErrorAndSkipsUnknownFields) {
  Bytes body = Strings({"SFATAL", "VFATAL", "C28P01", "Mpassword authentication failed for user \"alice\"",
                        "Fauth.c", "L326", "Rauth_failed"});
  body.push_back(0);
  ErrorFields f;
  ASSERT_TRUE(ParseErrorResponse(body, &f));
  EXPECT_EQ(f.severity, "FATAL");
  EXPECT_EQ(f.sqlstate, "28P01");
  EXPECT_EQ(f.message, "password authentication failed for user \"alice\"");
  EXPECT_EQ(f.detail, "");
  EXPECT_EQ(f.hint, "");
}

TEST(PgErrorTest, MissingSeverityStaysEmpty) {
  ErrorFields f;
  ASSERT_TRUE(ParseErrorResponse(Bytes{'M', 'x', 0, 0}, &f));
  EXPECT_EQ(f.severity, "");
  EXPECT_EQ(f.message, "x");
}

TEST(PgErrorTest, MalformedBodiesLeaveOutputAlone) {
  const std::vector<Bytes> bad = {
      {},                           // no terminator
      {'M', 'x', 0},                // no final NUL
      {'M', 'x'},                   // value not terminated
      {'M'},                        // code without value
      {'M', 'x', 0, 0, 'C'},        // trailing bytes
      {0, 0},                       // trailing NUL
  };
  for (const Bytes& body : bad) {
    ErrorFields f;
    f.message = "untouched";
    EXPECT_FALSE(ParseErrorResponse(body, &f)) << body.size();
    EXPECT_EQ(f.message, "untouched");
    EXPECT_EQ(f.severity, "FATAL");
  }
}

// ---------------------------------------------------------------------------
// Random buffers: never crash, never claim more bytes than were given.

void CheckFirstInvariants(const Bytes& in) {
  FirstMessage m;
  Result r = DecodeFirstMessage(in, &m);
  switch (r.status) {
    case Status::kNeedMore:
      EXPECT_EQ(r.error, "");
      break;
    case Status::kMalformed:
      EXPECT_FALSE(r.error.empty());
      break;
    case Status::kOk:
      ASSERT_LE(m.length, in.size());
      EXPECT_GE(m.length, 8u);
      EXPECT_LE(m.length, kMaxStartupPacket);
      if (m.kind == FirstMessageKind::kStartup) {
        EXPECT_FALSE(m.Param("user").empty());
        EXPECT_EQ(m.protocol >> 16, 3u);
      }
      break;
  }
}

void CheckMessageInvariants(const Bytes& in) {
  Message m;
  Result r = DecodeMessage(in, 64, &m);
  if (r.status != Status::kOk) {
    EXPECT_EQ(r.error.empty(), r.status == Status::kNeedMore);
    return;
  }
  ASSERT_LE(m.wire_length, in.size());
  EXPECT_EQ(m.wire_length, 5 + m.body.size());
  EXPECT_LE(m.body.size(), 64u);
  EXPECT_EQ(m.body.data(), in.data() + 5);
  std::vector<std::string> mechs;
  if (ParseSaslMechanisms(m.body, &mechs)) {
    // The parser accepts only the canonical layout, so re-encoding gives the
    // same length field and body (the type byte is whatever the input had).
    const Bytes encoded = EncodeAuthenticationSasl(mechs);
    EXPECT_EQ(Bytes(encoded.begin() + 1, encoded.end()),
              Bytes(in.begin() + 1, in.begin() + static_cast<ptrdiff_t>(m.wire_length)));
  }
  ErrorFields f;
  (void)ParseErrorResponse(m.body, &f);
}

TEST(PgRandomTest, RandomBuffersKeepInvariants) {
  std::mt19937 rng(20240607);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> small(0, 48);
  for (int i = 0; i < 4000; i++) {
    Bytes in(static_cast<size_t>(small(rng)));
    for (uint8_t& b : in) b = static_cast<uint8_t>(byte(rng));
    // Make the header plausible often enough to reach the inner parsers.
    if (i % 2 == 0 && in.size() >= 8) {
      in[0] = 0;
      in[1] = 0;
      in[2] = 0;
      in[3] = static_cast<uint8_t>(8 + byte(rng) % 48);
      in[4] = 0;
      in[5] = static_cast<uint8_t>(i % 4 == 0 ? 3 : byte(rng) % 5);
    }
    CheckFirstInvariants(in);
    if (i % 2 == 1 && in.size() >= 5) {
      in[0] = 'R';
      in[1] = 0;
      in[2] = 0;
      in[3] = 0;
      in[4] = static_cast<uint8_t>(byte(rng) % 56);
      if (in.size() >= 9 && i % 4 == 1) {
        in[5] = 0;
        in[6] = 0;
        in[7] = 0;
        in[8] = 10;
      }
    }
    CheckMessageInvariants(in);
    if (HasFatalFailure()) return;
  }
}

TEST(PgRandomTest, MutatedVectorsKeepInvariants) {
  std::mt19937 rng(7);
  const std::vector<Bytes> seeds = {FromHex(kStartupOryxHex), FromHex(kStartupSqlxHex), FromHex(kSslRequestHex),
                                    FromHex(kAuthSaslHex), EncodeCancelRequest(1, 2)};
  for (int i = 0; i < 4000; i++) {
    Bytes in = seeds[static_cast<size_t>(i) % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; e++) {
      size_t at = rng() % in.size();
      switch (rng() % 4) {
        case 0: in[at] = static_cast<uint8_t>(rng()); break;
        case 1: in[at] = 0; break;
        case 2: in.erase(in.begin() + static_cast<ptrdiff_t>(at)); break;
        default: in.insert(in.begin() + static_cast<ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
      }
      if (in.empty()) in.push_back(0);
    }
    CheckFirstInvariants(in);
    CheckMessageInvariants(in);
    if (HasFatalFailure()) return;
  }
}


// The messages of SCRAM mediation and of dbward's own auth_query client.
TEST(PgAuthMessagesTest, SaslInitialResponseBothWays) {
  Bytes m = EncodeSaslInitialResponse("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc");
  Message msg;
  ASSERT_TRUE(DecodeMessage(m, 1024, &msg).ok());
  EXPECT_EQ(msg.type, 'p');
  SaslInitialResponse r;
  ASSERT_TRUE(ParseSaslInitialResponse(msg.body, &r));
  EXPECT_EQ(r.mechanism, "SCRAM-SHA-256-PLUS");
  EXPECT_TRUE(r.has_data);
  EXPECT_EQ(r.data, "p=tls-server-end-point,,n=,r=abc");
  // -1: no initial response.
  Bytes none = {'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0, 0xff, 0xff, 0xff, 0xff};
  ASSERT_TRUE(ParseSaslInitialResponse(none, &r));
  EXPECT_FALSE(r.has_data);
  // Lying lengths and trailing bytes are refused.
  Bytes lying = none;
  lying[14] = 0;
  lying[17] = 9;
  EXPECT_FALSE(ParseSaslInitialResponse(lying, &r));
  Bytes trailing = none;
  trailing.push_back(1);
  EXPECT_FALSE(ParseSaslInitialResponse(trailing, &r));
}

TEST(PgAuthMessagesTest, SaslDataOkAndMd5) {
  Message msg;
  Bytes c = EncodeAuthenticationSaslContinue("r=abc,s=QUJD,i=4096");
  ASSERT_TRUE(DecodeMessage(c, 1024, &msg).ok());
  std::string data;
  ASSERT_TRUE(ParseSaslData(msg.body, kAuthSaslContinue, &data));
  EXPECT_EQ(data, "r=abc,s=QUJD,i=4096");
  EXPECT_FALSE(ParseSaslData(msg.body, kAuthSaslFinal, &data));
  EXPECT_EQ(EncodeAuthenticationOk(), (Bytes{'R', 0, 0, 0, 8, 0, 0, 0, 0}));
  std::array<uint8_t, 4> salt;
  ASSERT_TRUE(ParseMd5Salt(Bytes{0, 0, 0, 5, 1, 2, 3, 4}, &salt));
  EXPECT_EQ(salt, (std::array<uint8_t, 4>{1, 2, 3, 4}));
  EXPECT_FALSE(ParseMd5Salt(Bytes{0, 0, 0, 5, 1, 2, 3}, &salt));
}

TEST(PgAuthMessagesTest, ExtendedQueryAndRows) {
  Bytes q = EncodeExtendedQuery("SELECT $1", {"alice"});
  std::vector<uint8_t> types;
  size_t off = 0;
  while (off < q.size()) {
    Message m;
    ASSERT_TRUE(DecodeMessage(std::span<const uint8_t>(q).subspan(off), 1024, &m).ok());
    types.push_back(m.type);
    off += m.wire_length;
  }
  EXPECT_EQ(types, (std::vector<uint8_t>{'P', 'B', 'E', 'S'}));
  std::vector<std::optional<std::string>> row;
  ASSERT_TRUE(ParseDataRow(Bytes{0, 2, 0, 0, 0, 2, 'h', 'i', 0xff, 0xff, 0xff, 0xff}, &row));
  ASSERT_EQ(row.size(), 2u);
  EXPECT_EQ(row[0], "hi");
  EXPECT_FALSE(row[1]);
  EXPECT_FALSE(ParseDataRow(Bytes{0, 1, 0, 0, 0, 9, 'x'}, &row));
  std::string name, value;
  ASSERT_TRUE(ParseParameterStatus(StrBytes(std::string_view("application_name\0psql\0", 22)), &name, &value));
  EXPECT_EQ(name, "application_name");
  EXPECT_EQ(value, "psql");
}

}  // namespace
}  // namespace dbward::protocol::pg

// Typed message framing and the pre-authentication bodies dbward looks into
// (Authentication*, AuthenticationSASL, ErrorResponse), on arbitrary backend
// bytes, walking the buffer message by message as the PostgreSQL handler does.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/postgres.h"
#include "tests/fuzz/fuzz_check.h"

namespace pg = dbward::protocol::pg;

namespace {

// Same cap as the proxy's kMaxAuthMessage.
constexpr size_t kMaxBody = 16 * 1024;

void CheckBody(std::span<const uint8_t> body, std::span<const uint8_t> raw) {
  uint32_t code = 0;
  bool has_code = pg::ParseAuthCode(body, &code);
  FUZZ_CHECK(has_code == (body.size() >= 4));

  std::vector<std::string> mechs;
  if (pg::ParseSaslMechanisms(body, &mechs)) {
    FUZZ_CHECK(has_code && code == pg::kAuthSasl);
    std::vector<uint8_t> encoded = pg::EncodeAuthenticationSasl(mechs);
    pg::Message m;
    pg::Result r = pg::DecodeMessage(encoded, SIZE_MAX, &m);
    FUZZ_CHECK(r.status == pg::Status::kOk);
    FUZZ_CHECK(m.type == 'R');
    FUZZ_CHECK(m.wire_length == encoded.size());
    std::vector<std::string> back;
    FUZZ_CHECK(pg::ParseSaslMechanisms(m.body, &back));
    FUZZ_CHECK(back == mechs);
    // Only the canonical layout parses, so the encoding is the input again.
    if (!raw.empty()) {
      FUZZ_CHECK(std::vector<uint8_t>(encoded.begin() + 1, encoded.end()) ==
                 std::vector<uint8_t>(raw.begin() + 1, raw.end()));
    }
  }

  pg::ErrorFields f;
  if (pg::ParseErrorResponse(body, &f)) {
    std::vector<uint8_t> encoded = pg::EncodeErrorResponse(f);
    pg::Message m;
    FUZZ_CHECK(pg::DecodeMessage(encoded, SIZE_MAX, &m).status == pg::Status::kOk);
    FUZZ_CHECK(m.type == 'E' && m.wire_length == encoded.size());
    pg::ErrorFields back;
    FUZZ_CHECK(pg::ParseErrorResponse(m.body, &back));
    FUZZ_CHECK(back.severity == f.severity && back.sqlstate == f.sqlstate && back.message == f.message &&
               back.detail == f.detail && back.hint == f.hint);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The body parsers also get the raw input, so they are reached without the
  // fuzzer first having to find a consistent length field.
  CheckBody(in, {});

  size_t off = 0;
  while (off < in.size()) {
    std::span<const uint8_t> rest = in.subspan(off);
    pg::Message m;
    pg::Result r = pg::DecodeMessage(rest, kMaxBody, &m);
    if (r.status == pg::Status::kNeedMore) {
      FUZZ_CHECK(r.error.empty());
      break;
    }
    if (r.status == pg::Status::kMalformed) {
      FUZZ_CHECK(!r.error.empty());
      break;
    }
    FUZZ_CHECK(r.error.empty());
    FUZZ_CHECK(m.wire_length >= 5);
    FUZZ_CHECK(m.wire_length <= rest.size());
    FUZZ_CHECK(m.wire_length == 5 + m.body.size());
    FUZZ_CHECK(m.body.size() <= kMaxBody);
    FUZZ_CHECK(m.type == rest[0]);
    FUZZ_CHECK(m.body.data() == rest.data() + 5);
    CheckBody(m.body, rest.first(m.wire_length));
    off += m.wire_length;
  }
  return 0;
}

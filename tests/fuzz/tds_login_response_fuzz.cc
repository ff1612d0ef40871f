// The login response walker on arbitrary bytes, in both token layouts: it
// never reads past its input, what it reports lies inside the input, and
// every ERROR/INFO token it reports encodes back to the bytes it came from
// when the token used the line-number field as dbward writes it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/tds.h"
#include "protocol/tds_tokens.h"
#include "tests/fuzz/fuzz_check.h"

namespace tds = dbward::protocol::tds;

namespace {

void Walk(std::span<const uint8_t> in, uint32_t version) {
  tds::LoginResponse r;
  r.server_program = "untouched";
  tds::Result res = tds::ParseLoginResponse(in, version, &r);
  FUZZ_CHECK(!res.need_more());
  if (!res.ok()) {
    FUZZ_CHECK(!res.error.empty() && r.server_program == "untouched");
    return;
  }
  FUZZ_CHECK(r.complete_walk || r.stopped_at_token != 0 || in.size() > 0);
  if (r.routing) {
    FUZZ_CHECK(r.routing->port != 0 && !r.routing->server.empty());
    // Re-encoding and walking the routing token alone gives it back.
    tds::LoginResponse again;
    FUZZ_CHECK(tds::ParseLoginResponse(tds::EncodeRoutingEnvChange(*r.routing), version, &again).ok());
    FUZZ_CHECK(again.routing && again.routing->port == r.routing->port && again.routing->enhanced == r.routing->enhanced);
  }
  size_t last_end = 0;
  for (const tds::ServerMessage& m : r.messages) {
    FUZZ_CHECK(m.offset >= last_end && m.offset + m.size <= in.size() && m.size >= 3);
    FUZZ_CHECK(in[m.offset] == (m.error ? tds::kTokenError : tds::kTokenInfo));
    last_end = m.offset + m.size;
    // The re-encoded token walks back to the same message.
    tds::LoginResponse one;
    FUZZ_CHECK(tds::ParseLoginResponse(tds::EncodeMessageToken(m, version), version, &one).ok());
    FUZZ_CHECK(one.messages.size() == 1 && one.messages[0].number == m.number && one.messages[0].cls == m.cls);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  Walk(in, 0x74000004);
  Walk(in, 0x71000001);
  return 0;
}

// ParseGreeting and GreetingWithSsl on arbitrary backend bytes: the first
// thing dbward parses from a MySQL/MariaDB server, and the one rewrite it
// makes of it (offering or withdrawing CLIENT_SSL towards the client).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/mysql.h"
#include "tests/fuzz/fuzz_check.h"

namespace my = dbward::protocol::mysql;

namespace {

void CheckGreeting(std::span<const uint8_t> payload) {
  my::Greeting g;
  my::Result r = my::ParseGreeting(payload, &g);
  // A greeting payload is complete by construction: never "need more".
  FUZZ_CHECK(r.status != my::Status::kNeedMore);
  if (r.status == my::Status::kMalformed) {
    FUZZ_CHECK(!r.error.empty());
    if (!payload.empty() && payload[0] == 0xff) {
      FUZZ_CHECK(r.error.rfind("server sent an error instead of a greeting: ", 0) == 0);
    }
    return;
  }
  FUZZ_CHECK(r.error.empty());
  FUZZ_CHECK(g.protocol_version == 10);
  FUZZ_CHECK(g.server_version.find('\0') == std::string::npos);
  // The offset GreetingWithSsl writes to is derived from the parse, and the
  // two capability bytes it names are inside the payload.
  FUZZ_CHECK(g.caps_low_offset == 1 + g.server_version.size() + 1 + 4 + 8 + 1);
  FUZZ_CHECK(g.caps_low_offset + 2 <= payload.size());
  const uint32_t low = static_cast<uint32_t>(payload[g.caps_low_offset] | payload[g.caps_low_offset + 1] << 8);
  FUZZ_CHECK((g.capabilities & 0xffff) == low);
  // Part 1 alone, or part 1 + at least 13 bytes of part 2 less its NUL.
  FUZZ_CHECK(g.scramble.size() == 8 || g.scramble.size() >= 20);
  FUZZ_CHECK(g.scramble.size() + g.server_version.size() + g.auth_plugin.size() <= payload.size());

  for (bool ssl : {true, false}) {
    std::vector<uint8_t> out = my::GreetingWithSsl(payload, g, ssl);
    FUZZ_CHECK(out.size() == payload.size());
    for (size_t i = 0; i < out.size(); i++) {
      if (i == g.caps_low_offset + 1) {
        // Only bit 0x800 of the low capability word may differ.
        FUZZ_CHECK((out[i] & ~0x08) == (payload[i] & ~0x08));
        FUZZ_CHECK(((out[i] & 0x08) != 0) == ssl);
      } else {
        FUZZ_CHECK(out[i] == payload[i]);
      }
    }
    my::Greeting again;
    FUZZ_CHECK(my::ParseGreeting(out, &again).status == my::Status::kOk);
    FUZZ_CHECK(again.capabilities == (ssl ? (g.capabilities | my::kClientSsl) : (g.capabilities & ~my::kClientSsl)));
    FUZZ_CHECK(again.server_version == g.server_version && again.connection_id == g.connection_id &&
               again.scramble == g.scramble && again.auth_plugin == g.auth_plugin && again.charset == g.charset &&
               again.status == g.status && again.caps_low_offset == g.caps_low_offset);
    // Idempotent.
    FUZZ_CHECK(my::GreetingWithSsl(out, again, ssl) == out);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The input as a payload (the vectors are payloads), and as a packet with
  // its header, as the handler reads it off the backend socket.
  CheckGreeting(in);
  my::Packet p;
  my::Result r = my::DecodePacket(in, my::kMaxPreAuthPayload, &p);
  if (r.status == my::Status::kOk) {
    FUZZ_CHECK(p.wire_length == 4 + p.payload.size() && p.wire_length <= size);
    CheckGreeting(p.payload);
  } else {
    FUZZ_CHECK(r.error.empty() == (r.status == my::Status::kNeedMore));
  }
  return 0;
}

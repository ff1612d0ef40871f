// DecodeFirstMessage on arbitrary client bytes: the first thing dbward parses
// from an unauthenticated peer.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/postgres.h"
#include "tests/fuzz/fuzz_check.h"

namespace pg = dbward::protocol::pg;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  pg::FirstMessage m;
  pg::Result r = pg::DecodeFirstMessage(in, &m);
  switch (r.status) {
    case pg::Status::kNeedMore:
      FUZZ_CHECK(r.error.empty());
      return 0;
    case pg::Status::kMalformed:
      FUZZ_CHECK(!r.error.empty());
      return 0;
    case pg::Status::kOk:
      break;
  }
  FUZZ_CHECK(r.error.empty());
  FUZZ_CHECK(m.length >= 8);
  FUZZ_CHECK(m.length <= size);
  FUZZ_CHECK(m.length <= pg::kMaxStartupPacket);
  switch (m.kind) {
    case pg::FirstMessageKind::kSslRequest:
    case pg::FirstMessageKind::kGssEncRequest:
      FUZZ_CHECK(m.length == 8);
      break;
    case pg::FirstMessageKind::kCancelRequest:
      // Protocol 3.2 keys are 4 to 256 bytes; the message is the key's length
      // plus 12, and re-encoding it gives back the same bytes.
      FUZZ_CHECK(m.length >= 16 && m.length <= 12 + pg::kMaxCancelKey);
      FUZZ_CHECK(m.cancel_key.size() == m.length - 12);
      FUZZ_CHECK(pg::EncodeCancelRequest(m.cancel_pid, m.cancel_key) ==
                 std::vector<uint8_t>(in.begin(), in.begin() + static_cast<ptrdiff_t>(m.length)));
      break;
    case pg::FirstMessageKind::kStartup:
      FUZZ_CHECK(m.protocol >> 16 == 3);
      FUZZ_CHECK(!m.Param("user").empty());
      // What the server will use: the last value of a repeated key (seed
      // duplicate_user). The audit must not name a different user.
      for (const std::string key : {"user", "database"}) {
        std::string last;
        for (const auto& [k, v] : m.params) {
          if (k == key) last = v;
        }
        FUZZ_CHECK(m.Param(key) == last);
      }
      break;
  }
  // Only the first message counts: the same bytes without what follows decode
  // to the same message, and one byte less is incomplete, not malformed.
  pg::FirstMessage again;
  FUZZ_CHECK(pg::DecodeFirstMessage(in.first(m.length), &again).status == pg::Status::kOk);
  FUZZ_CHECK(again.kind == m.kind && again.length == m.length && again.params == m.params &&
             again.protocol == m.protocol && again.cancel_pid == m.cancel_pid &&
             again.cancel_secret == m.cancel_secret && again.cancel_key == m.cancel_key);
  FUZZ_CHECK(pg::DecodeFirstMessage(in.first(m.length - 1), &again).status == pg::Status::kNeedMore);
  return 0;
}

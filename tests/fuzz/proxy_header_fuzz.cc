// PROXY protocol headers on arbitrary bytes: a parse never reads past the
// input, a header's length never exceeds it, every prefix of a parsed header
// needs more (nothing is decided early), and a v2 PROXY header re-encodes and
// parses back to the same addresses and TLVs dbward uses.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/proxy_header.h"
#include "tests/fuzz/fuzz_check.h"

namespace ph = dbward::protocol::proxy_header;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  ph::Header h;
  dbward::protocol::Result r = ph::Parse(in, &h);
  if (!r.ok()) return 0;
  FUZZ_CHECK(h.length > 0 && h.length <= size);
  FUZZ_CHECK(h.version == 1 || h.version == 2);
  FUZZ_CHECK(h.version != 1 || h.length <= ph::kV1MaxLine);
  FUZZ_CHECK(h.version != 2 || h.length <= ph::kMaxHeader);
  if (h.has_addresses) {
    FUZZ_CHECK(h.command == ph::Command::kProxy);
    FUZZ_CHECK((h.src_addr.size() == 4 || h.src_addr.size() == 16) && h.src_addr.size() == h.dst_addr.size());
  }
  FUZZ_CHECK(h.unique_id.size() <= ph::kMaxUniqueId);
  // The header alone, and anything behind it, parse the same.
  ph::Header alone;
  FUZZ_CHECK(ph::Parse(in.first(h.length), &alone).ok() && alone.length == h.length);
  ph::Header part;
  FUZZ_CHECK(ph::Parse(in.first(h.length - 1), &part).need_more());
  if (h.version == 2 && h.has_addresses && h.authority.size() <= 255 && h.alpn.size() <= 255) {
    ph::Outgoing o;
    o.src_addr = h.src_addr;
    o.dst_addr = h.dst_addr;
    o.src_port = h.src_port;
    o.dst_port = h.dst_port;
    o.alpn = h.alpn;
    o.authority = h.authority;
    o.unique_id = h.unique_id;
    o.ssl = h.ssl;
    std::vector<uint8_t> wire = ph::EncodeV2(o);
    ph::Header back;
    if (wire.size() > ph::kMaxHeader) return 0;  // the CRC TLV added to a header at the cap
    FUZZ_CHECK(!wire.empty() && ph::Parse(wire, &back).ok());
    FUZZ_CHECK(back.crc_checked && back.src_addr == h.src_addr && back.dst_addr == h.dst_addr &&
               back.src_port == h.src_port && back.dst_port == h.dst_port && back.unique_id == h.unique_id &&
               back.authority == h.authority && back.alpn == h.alpn);
  }
  return 0;
}

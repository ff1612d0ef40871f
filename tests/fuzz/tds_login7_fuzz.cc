// LOGIN7 as dbward audits it, the UTF-16LE <-> UTF-8 conversions its fields
// and login errors go through, and the ERROR + DONE answer, on arbitrary
// bytes: the input is taken as a LOGIN7 payload and also walked message by
// message as the TDS handler does.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/tds.h"
#include "tests/fuzz/fuzz_check.h"

namespace tds = dbward::protocol::tds;

namespace {

uint16_t U16LE(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] | b[at + 1] << 8); }
uint32_t U32LE(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(b[at]) | static_cast<uint32_t>(b[at + 1]) << 8 |
         static_cast<uint32_t>(b[at + 2]) << 16 | static_cast<uint32_t>(b[at + 3]) << 24;
}

// Well-formed UTF-8 (Unicode table 3-7), written independently of tds.cc.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      lo = c == 0xe0 ? 0xa0 : 0x80;
      hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      lo = c == 0xf0 ? 0x90 : 0x80;
      hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; k++) {
      const uint8_t b = static_cast<uint8_t>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
    }
    i += n;
  }
  return true;
}

// Even length, every surrogate in a high-low pair.
bool ValidUtf16(std::span<const uint8_t> b) {
  if (b.size() % 2 != 0) return false;
  for (size_t i = 0; i < b.size(); i += 2) {
    const uint16_t u = U16LE(b, i);
    if (u >= 0xdc00 && u <= 0xdfff) return false;
    if (u >= 0xd800 && u <= 0xdbff) {
      if (i + 3 >= b.size()) return false;
      const uint16_t lo = U16LE(b, i + 2);
      if (lo < 0xdc00 || lo > 0xdfff) return false;
      i += 2;
    }
  }
  return true;
}

void CheckConversions(std::span<const uint8_t> in) {
  // UTF-16LE -> UTF-8: always valid; an odd last byte is dropped; exact
  // round trip back exactly when the input was well-formed.
  const std::string u8 = tds::Utf16LeToUtf8(in);
  FUZZ_CHECK(ValidUtf8(u8));
  FUZZ_CHECK(u8.size() <= in.size() / 2 * 3);
  const std::span<const uint8_t> even = in.first(in.size() & ~size_t{1});
  const std::vector<uint8_t> back = tds::Utf8ToUtf16Le(u8);
  FUZZ_CHECK(ValidUtf16(back));
  FUZZ_CHECK((back == std::vector<uint8_t>(even.begin(), even.end())) == ValidUtf16(even));

  // UTF-8 -> UTF-16LE: always well-formed; round trip exactly when the input
  // was valid UTF-8.
  const std::string s(in.begin(), in.end());
  const std::vector<uint8_t> w = tds::Utf8ToUtf16Le(s);
  FUZZ_CHECK(ValidUtf16(w));
  FUZZ_CHECK(w.size() <= 2 * s.size());
  FUZZ_CHECK((tds::Utf16LeToUtf8(w) == s) == ValidUtf8(s));
}

void CheckLoginError(std::span<const uint8_t> in) {
  const size_t cut = in.empty() ? 0 : in[0] % (in.size() + 1);
  const std::string message(in.begin() + static_cast<ptrdiff_t>(cut), in.end());
  const std::string server(in.begin(), in.begin() + static_cast<ptrdiff_t>(cut));
  const int32_t number = in.size() >= 4 ? static_cast<int32_t>(U32LE(in, 0)) : 18456;
  const std::vector<uint8_t> e = tds::EncodeLoginError(number, 1, 14, message, server);
  const std::vector<uint8_t> msg16 = tds::Utf8ToUtf16Le(message.substr(0, 4000));
  const std::vector<uint8_t> srv16 = tds::Utf8ToUtf16Le(server.substr(0, 120));
  const size_t body = 4 + 1 + 1 + 2 + msg16.size() + 1 + srv16.size() + 1 + 4;
  FUZZ_CHECK(e.size() == 3 + body + 13);
  FUZZ_CHECK(e[0] == 0xaa && U16LE(e, 1) == body);
  FUZZ_CHECK(static_cast<int32_t>(U32LE(e, 3)) == number && e[7] == 1 && e[8] == 14);
  FUZZ_CHECK(U16LE(e, 9) * 2u == msg16.size() && U16LE(e, 9) <= 4000);
  FUZZ_CHECK(std::vector<uint8_t>(e.begin() + 11, e.begin() + 11 + static_cast<ptrdiff_t>(msg16.size())) == msg16);
  const size_t s = 11 + msg16.size();
  FUZZ_CHECK(e[s] * 2u == srv16.size() && e[s] <= 120);
  FUZZ_CHECK(e[s + 1 + srv16.size()] == 0);                  // procedure name
  FUZZ_CHECK(U32LE(e, s + 2 + srv16.size()) == 1);           // line number
  const size_t done = 3 + body;
  FUZZ_CHECK(e[done] == 0xfd && U16LE(e, done + 1) == 0x0002 && U16LE(e, done + 3) == 0);
  for (size_t i = done + 5; i < e.size(); i++) FUZZ_CHECK(e[i] == 0);
}

void CheckLogin7(std::span<const uint8_t> payload) {
  tds::Login7 l;
  l.user_name = "untouched";
  tds::Result r = tds::ParseLogin7(payload, &l);
  FUZZ_CHECK(r.status != tds::Status::kNeedMore);
  if (r.status == tds::Status::kMalformed) {
    FUZZ_CHECK(!r.error.empty());
    FUZZ_CHECK(l.user_name == "untouched" && l.tds_version == 0);
    return;
  }
  FUZZ_CHECK(r.error.empty());
  // The fixed part and the table up to Database were there, and the
  // length field matched.
  FUZZ_CHECK(payload.size() >= 72);
  FUZZ_CHECK(U32LE(payload, 0) == payload.size());
  FUZZ_CHECK(l.tds_version == U32LE(payload, 4));
  FUZZ_CHECK(l.packet_size == U32LE(payload, 8));
  FUZZ_CHECK(l.client_pid == U32LE(payload, 16));
  FUZZ_CHECK(l.integrated_security == ((payload[25] & 0x80) != 0));
  FUZZ_CHECK(!tds::TdsVersionName(l.tds_version).empty());

  // The password entry (bytes 44..47) is never followed: pointing it
  // anywhere changes nothing, except in what covers those bytes: a field, or
  // the extension block (its 4-byte FeatureExt offset, or the feature data
  // when that offset is below 48), which may then no longer parse.
  std::vector<uint8_t> other(payload.begin(), payload.end());
  other[44] = other[45] = other[46] = other[47] = 0xff;
  bool extension_covers = false;
  if ((payload[27] & 0x10) != 0 && U16LE(payload, 58) >= 4) {
    const size_t ib = U16LE(payload, 56);
    extension_covers = (ib < 48 && ib + 4 > 44) || (ib + 4 <= payload.size() && U32LE(payload, ib) < 48);
  }
  tds::Login7 o;
  const bool other_ok = tds::ParseLogin7(other, &o).status == tds::Status::kOk;
  FUZZ_CHECK(other_ok || extension_covers);

  // Each field is its (offset, characters) entry decoded, nothing else.
  struct Field {
    size_t entry;
    std::string tds::Login7::*value;
  };
  for (const Field& f : {Field{36, &tds::Login7::host_name}, Field{40, &tds::Login7::user_name},
                         Field{48, &tds::Login7::app_name}, Field{52, &tds::Login7::server_name},
                         Field{60, &tds::Login7::library}, Field{64, &tds::Login7::language},
                         Field{68, &tds::Login7::database}}) {
    const std::string& value = l.*f.value;
    const size_t off = U16LE(payload, f.entry);
    const size_t chars = U16LE(payload, f.entry + 2);
    FUZZ_CHECK(ValidUtf8(value));
    if (chars == 0) {
      FUZZ_CHECK(value.empty());
      if (other_ok) FUZZ_CHECK(o.*f.value == value);
      continue;
    }
    FUZZ_CHECK(off + 2 * chars <= payload.size());
    FUZZ_CHECK(value == tds::Utf16LeToUtf8(payload.subspan(off, 2 * chars)));
    if (other_ok && (off >= 48 || off + 2 * chars <= 44)) FUZZ_CHECK(o.*f.value == value);
  }
}

// A LOGIN7 that parses can be given another ServerName, or is refused with a
// reason; the rewritten one parses to the same fields but that one.
void CheckRewrite(std::span<const uint8_t> payload) {
  tds::Login7 before;
  if (!tds::ParseLogin7(payload, &before).ok()) return;
  std::vector<uint8_t> out = {7};
  tds::Result r = tds::RewriteLogin7ServerName(payload, "routed.example.net", &out);
  if (!r.ok()) {
    FUZZ_CHECK(r.malformed() && !r.error.empty() && out == std::vector<uint8_t>{7});
    return;
  }
  tds::Login7 after;
  FUZZ_CHECK(tds::ParseLogin7(out, &after).ok());
  FUZZ_CHECK(after.server_name == "routed.example.net");
  FUZZ_CHECK(after.host_name == before.host_name && after.user_name == before.user_name &&
             after.app_name == before.app_name && after.library == before.library &&
             after.language == before.language && after.database == before.database);
  FUZZ_CHECK(after.tds_version == before.tds_version && after.features == before.features &&
             after.sspi_bytes == before.sspi_bytes && after.read_only_intent == before.read_only_intent);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The body parser also gets the raw input, so it is reached without the
  // fuzzer first having to find a consistent packet header.
  CheckLogin7(in);
  CheckRewrite(in);
  CheckConversions(in);
  CheckLoginError(in);

  size_t off = 0;
  while (off < in.size()) {
    std::span<const uint8_t> rest = in.subspan(off);
    tds::Message m;
    m.consumed = 12345;
    tds::Result r = tds::DecodeMessage(rest, tds::kMaxPreLoginMessage, &m);
    if (r.status == tds::Status::kNeedMore) {
      FUZZ_CHECK(r.error.empty());
      FUZZ_CHECK(m.consumed == 12345 && m.payload.empty());
      break;
    }
    if (r.status == tds::Status::kMalformed) {
      FUZZ_CHECK(!r.error.empty());
      FUZZ_CHECK(rest.size() >= tds::kHeaderSize);
      FUZZ_CHECK(m.consumed == 12345 && m.payload.empty());
      break;
    }
    FUZZ_CHECK(r.error.empty());
    FUZZ_CHECK(m.consumed >= tds::kHeaderSize + m.payload.size());
    FUZZ_CHECK(m.consumed <= rest.size());
    FUZZ_CHECK(m.payload.size() <= tds::kMaxPreLoginMessage);
    FUZZ_CHECK(m.type == rest[0]);
    // Framing round trip of what was reassembled.
    const std::vector<uint8_t> framed = tds::EncodeMessage(m.type, m.payload);
    tds::Message again;
    FUZZ_CHECK(tds::DecodeMessage(framed, tds::kMaxPreLoginMessage, &again).status == tds::Status::kOk);
    FUZZ_CHECK(again.type == m.type && again.consumed == framed.size() && again.payload == m.payload);
    CheckLogin7(m.payload);
    off += m.consumed;
  }
  return 0;
}

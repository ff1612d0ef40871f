// TDS message reassembly under the pre-login cap and the PRELOGIN option
// table, on arbitrary bytes, walking the buffer message by message as the TDS
// handler does; every PRELOGIN that parses is also put through the rewrite
// dbward forwards (SetEncryption, EncodePrelogin, EncodeMessage).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/tds.h"
#include "tests/fuzz/fuzz_check.h"

namespace tds = dbward::protocol::tds;

namespace {

// ParsePrelogin's own limits: 32 options, and 65529 bytes once re-encoded.
constexpr size_t kMaxOptions = 32;
constexpr size_t kMaxEncoded = 0xffff - 6;

bool SameOptions(const tds::Prelogin& a, const tds::Prelogin& b) {
  if (a.options.size() != b.options.size()) return false;
  for (size_t i = 0; i < a.options.size(); i++) {
    if (a.options[i].token != b.options[i].token || a.options[i].data != b.options[i].data) return false;
  }
  return true;
}

uint16_t U16BE(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }

// Reads an encoded option table without ParsePrelogin: every entry must
// point inside the buffer, at the bytes of the option it describes.
void CheckEncodedTable(const std::vector<uint8_t>& encoded, const tds::Prelogin& p) {
  FUZZ_CHECK(encoded.size() == p.options.size() * 5 + 1 + [&] {
    size_t n = 0;
    for (const auto& o : p.options) n += o.data.size();
    return n;
  }());
  FUZZ_CHECK(encoded[p.options.size() * 5] == tds::kOptTerminator);
  size_t expected_offset = p.options.size() * 5 + 1;
  for (size_t i = 0; i < p.options.size(); i++) {
    const auto& o = p.options[i];
    const size_t offset = U16BE(encoded, i * 5 + 1);
    const size_t length = U16BE(encoded, i * 5 + 3);
    FUZZ_CHECK(encoded[i * 5] == o.token);
    FUZZ_CHECK(offset == expected_offset);  // no 16-bit wrap
    FUZZ_CHECK(length == o.data.size());
    FUZZ_CHECK(offset + length <= encoded.size());
    FUZZ_CHECK(std::vector<uint8_t>(encoded.begin() + static_cast<ptrdiff_t>(offset),
                                    encoded.begin() + static_cast<ptrdiff_t>(offset + length)) == o.data);
    expected_offset += length;
  }
}

void CheckPrelogin(std::span<const uint8_t> payload) {
  tds::Prelogin p;
  tds::Result r = tds::ParsePrelogin(payload, &p);
  FUZZ_CHECK(r.status != tds::Status::kNeedMore);
  if (r.status == tds::Status::kMalformed) {
    FUZZ_CHECK(!r.error.empty());
    FUZZ_CHECK(p.options.empty());
    return;
  }
  FUZZ_CHECK(r.error.empty());
  FUZZ_CHECK(p.options.size() <= kMaxOptions);
  static const int kFixedSize[] = {6, 1, -1, 4, 1, 36, 1, 32};  // -1: any
  for (size_t i = 0; i < p.options.size(); i++) {
    const auto& o = p.options[i];
    FUZZ_CHECK(o.token != tds::kOptTerminator);
    FUZZ_CHECK(o.data.size() <= payload.size());
    for (size_t j = 0; j < i; j++) FUZZ_CHECK(p.options[j].token != o.token);
    if (o.token <= tds::kOptNonce) {
      const int want = kFixedSize[o.token];
      // Empty is allowed for every option (servers send empty TRACEID and
      // THREADID options).
      const size_t fixed = static_cast<size_t>(want);
      FUZZ_CHECK(o.data.empty() || want == -1 || o.data.size() == fixed);
    }
    FUZZ_CHECK(p.Find(o.token) == &o);
  }
  const tds::PreloginOption* enc = p.Find(tds::kOptEncryption);
  FUZZ_CHECK(p.encryption() == (enc == nullptr || enc->data.empty() ? -1 : enc->data[0]));
  const tds::PreloginOption* version = p.Find(tds::kOptVersion);
  FUZZ_CHECK(p.Version().empty() == (version == nullptr || version->data.empty()));

  // Re-encoding: the canonical layout, which parses to the same options and
  // is a fixed point.
  const std::vector<uint8_t> encoded = tds::EncodePrelogin(p);
  CheckEncodedTable(encoded, p);
  FUZZ_CHECK(encoded.size() <= kMaxEncoded);
  tds::Prelogin back;
  FUZZ_CHECK(tds::ParsePrelogin(encoded, &back).status == tds::Status::kOk);
  FUZZ_CHECK(SameOptions(back, p));
  FUZZ_CHECK(tds::EncodePrelogin(back) == encoded);

  // The rewrite: ENCRYPTION set (in place, or inserted after VERSION), every
  // other option kept in order with its bytes.
  for (uint8_t value : {tds::kEncryptOn, static_cast<uint8_t>(payload.empty() ? 0x80 : payload.back())}) {
    tds::Prelogin s = p;
    s.SetEncryption(value);
    FUZZ_CHECK(s.encryption() == value);
    if (enc != nullptr) {
      FUZZ_CHECK(s.options.size() == p.options.size());
      for (size_t i = 0; i < p.options.size(); i++) {
        FUZZ_CHECK(s.options[i].token == p.options[i].token);
        if (p.options[i].token != tds::kOptEncryption) FUZZ_CHECK(s.options[i].data == p.options[i].data);
      }
    } else {
      FUZZ_CHECK(s.options.size() == p.options.size() + 1);
      const size_t at = !p.options.empty() && p.options[0].token == tds::kOptVersion ? 1 : 0;
      FUZZ_CHECK(s.options[at].token == tds::kOptEncryption);
      for (size_t i = 0; i < p.options.size(); i++) {
        const auto& o = s.options[i < at ? i : i + 1];
        FUZZ_CHECK(o.token == p.options[i].token && o.data == p.options[i].data);
      }
    }
    const std::vector<uint8_t> forwarded = tds::EncodePrelogin(s);
    FUZZ_CHECK(forwarded.size() <= 0xffff);
    CheckEncodedTable(forwarded, s);
    if (forwarded.size() <= kMaxEncoded && s.options.size() <= kMaxOptions) {
      tds::Prelogin again;
      FUZZ_CHECK(tds::ParsePrelogin(forwarded, &again).status == tds::Status::kOk);
      FUZZ_CHECK(SameOptions(again, s));
    }
    // Framed as dbward sends it.
    const std::vector<uint8_t> framed = tds::EncodeMessage(tds::kPrelogin, forwarded);
    tds::Message m;
    FUZZ_CHECK(tds::DecodeMessage(framed, tds::kMaxPreLoginMessage, &m).status == tds::Status::kOk);
    FUZZ_CHECK(m.type == tds::kPrelogin && m.consumed == framed.size() && m.payload == forwarded);
  }
}

// Walks the packets of a decoded message without DecodeMessage: same type
// throughout, EOM on the last one only, payloads concatenated.
void CheckReassembly(std::span<const uint8_t> wire, const tds::Message& m) {
  std::vector<uint8_t> payload;
  size_t off = 0;
  for (;;) {
    FUZZ_CHECK(off + tds::kHeaderSize <= wire.size());
    const size_t length = U16BE(wire, off + 2);
    FUZZ_CHECK(length >= tds::kHeaderSize && off + length <= wire.size());
    FUZZ_CHECK(wire[off] == m.type);
    payload.insert(payload.end(), wire.begin() + static_cast<ptrdiff_t>(off + tds::kHeaderSize),
                   wire.begin() + static_cast<ptrdiff_t>(off + length));
    off += length;
    if (wire[off - length + 1] & tds::kStatusEom) break;
  }
  FUZZ_CHECK(off == wire.size());
  FUZZ_CHECK(payload == m.payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The option parser also gets the raw input, so it is reached without the
  // fuzzer first having to find a consistent packet header.
  CheckPrelogin(in);

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
    FUZZ_CHECK(m.consumed >= tds::kHeaderSize);
    FUZZ_CHECK(m.consumed <= rest.size());
    FUZZ_CHECK(m.payload.size() <= tds::kMaxPreLoginMessage);
    FUZZ_CHECK(m.payload.size() + tds::kHeaderSize <= m.consumed);
    FUZZ_CHECK(m.type == rest[0]);
    CheckReassembly(rest.first(m.consumed), m);
    CheckPrelogin(m.payload);
    off += m.consumed;
  }
  return 0;
}

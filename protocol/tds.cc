#include "protocol/tds.h"

#include "protocol/builder.h"
#include "protocol/cursor.h"

#include <algorithm>
#include <cstdio>

namespace dbward::protocol::tds {
namespace {

Result Malformed(std::string why) { return Result::Malformed(std::move(why)); }
Result Ok() { return Result::Ok(); }

void PutU16LE(std::vector<uint8_t>* out, uint16_t v) {
  out->push_back(static_cast<uint8_t>(v));
  out->push_back(static_cast<uint8_t>(v >> 8));
}

std::string Hex8(uint8_t v) {
  char buf[8];
  snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

// EncodePrelogin lays the options out one after the other behind their table
// with 16-bit offsets, and SetEncryption may add one option (a 5-byte entry
// and a 1-byte value) first. Option data may overlap on the wire, so what
// parsed can re-encode larger than it came; beyond this the offsets would wrap.
constexpr size_t kMaxEncodedPrelogin = 0xffff - 6;

}  // namespace

Result DecodeHeader(std::span<const uint8_t> in, Header* out) {
  Cursor c(in);
  Header h;
  if (!c.GetU8(&h.type) || !c.GetU8(&h.status) || !c.GetU16BE(&h.length) || !c.GetU16BE(&h.spid) ||
      !c.GetU8(&h.packet_id) || !c.GetU8(&h.window)) {
    return {};
  }
  if (h.length < kHeaderSize) return Malformed("TDS packet length " + std::to_string(h.length) + " is below 8");
  *out = h;
  return Ok();
}

int PeekPacketType(std::span<const uint8_t> in) {
  Cursor c(in);
  uint8_t type;
  return c.PeekU8(&type) ? type : -1;
}

void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]) {
  out[0] = h.type;
  out[1] = h.status;
  out[2] = static_cast<uint8_t>(h.length >> 8);
  out[3] = static_cast<uint8_t>(h.length);
  out[4] = static_cast<uint8_t>(h.spid >> 8);
  out[5] = static_cast<uint8_t>(h.spid);
  out[6] = h.packet_id;
  out[7] = h.window;
}

Result DecodeMessage(std::span<const uint8_t> in, size_t max_payload, Message* out) {
  Cursor c(in);
  Message m;
  bool first = true;
  for (;;) {
    Header h;
    Result r = DecodeHeader(c.Rest(), &h);
    if (r.status != Status::kOk) return r;
    if (first) {
      m.type = h.type;
      first = false;
    } else if (h.type != m.type) {
      return Malformed("TDS packet of type " + Hex8(h.type) + " inside a message of type " + Hex8(m.type));
    }
    if (m.payload.size() + (h.length - kHeaderSize) > max_payload) {
      return Malformed("TDS message exceeds the pre-login limit of " + std::to_string(max_payload) + " bytes");
    }
    std::span<const uint8_t> packet;
    if (!c.GetSpan(h.length, &packet)) return {};
    m.payload.insert(m.payload.end(), packet.begin() + kHeaderSize, packet.end());
    if (h.status & kStatusEom) break;
  }
  m.consumed = in.size() - c.size();
  *out = std::move(m);
  return Ok();
}

std::vector<uint8_t> EncodeMessage(uint8_t type, std::span<const uint8_t> payload, size_t packet_size) {
  std::vector<uint8_t> out;
  // At least one payload byte per packet (or the loop never ends) and no
  // more than the 16-bit length field can say.
  packet_size = std::clamp(packet_size, kHeaderSize + 1, size_t{0xffff});
  size_t chunk = packet_size - kHeaderSize;
  size_t off = 0;
  uint8_t id = 1;
  do {
    size_t n = std::min(chunk, payload.size() - off);
    Header h;
    h.type = type;
    h.status = off + n == payload.size() ? kStatusEom : 0;
    h.length = static_cast<uint16_t>(n + kHeaderSize);
    h.packet_id = id++;
    uint8_t hdr[kHeaderSize];
    EncodeHeader(h, hdr);
    out.insert(out.end(), hdr, hdr + kHeaderSize);
    out.insert(out.end(), payload.begin() + static_cast<ptrdiff_t>(off),
               payload.begin() + static_cast<ptrdiff_t>(off + n));
    off += n;
  } while (off < payload.size());
  return out;
}

const PreloginOption* Prelogin::Find(uint8_t token) const {
  for (const auto& o : options) {
    if (o.token == token) return &o;
  }
  return nullptr;
}

int Prelogin::encryption() const {
  const PreloginOption* o = Find(kOptEncryption);
  if (o == nullptr || o->data.size() != 1) return -1;
  return o->data[0];
}

void Prelogin::SetEncryption(uint8_t value) {
  for (auto& o : options) {
    if (o.token == kOptEncryption) {
      o.data.assign(1, value);
      return;
    }
  }
  // ENCRYPTION goes right after VERSION, as every client and server orders it.
  size_t at = (!options.empty() && options[0].token == kOptVersion) ? 1 : 0;
  options.insert(options.begin() + static_cast<ptrdiff_t>(at), PreloginOption{kOptEncryption, {value}});
}

std::string Prelogin::Version() const {
  const PreloginOption* o = Find(kOptVersion);
  if (o == nullptr || o->data.size() < 4) return "";
  Cursor c(o->data);
  uint8_t major, minor;
  uint16_t build;
  c.GetU8(&major);
  c.GetU8(&minor);
  c.GetU16BE(&build);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(build);
}

Result ParsePrelogin(std::span<const uint8_t> payload, Prelogin* out) {
  Cursor table(payload);
  Prelogin p;
  size_t encoded = 1;  // the terminator
  for (int i = 0;; i++) {
    uint8_t token;
    if (!table.GetU8(&token)) return Malformed("PRELOGIN option table has no terminator");
    if (token == kOptTerminator) break;
    if (i >= 32) return Malformed("PRELOGIN has too many options");
    uint16_t offset, length;
    if (!table.GetU16BE(&offset) || !table.GetU16BE(&length)) return Malformed("truncated PRELOGIN option table");
    Cursor all(payload);
    Cursor data;
    if (!all.Skip(offset) || !all.GetBytes(length, &data)) {
      return Malformed("PRELOGIN option " + std::to_string(token) + " points outside the message");
    }
    // Each option has its size, or none at all: servers send empty options
    // (SQL Server 2025 an empty TRACEID, older ones an empty THREADID), and
    // an empty ENCRYPTION reads as absent.
    static const int kFixedSize[] = {6, 1, -1, 4, 1, 36, 1, 32};  // -1: NUL-terminated, any length
    if (token <= kOptNonce) {
      int want = kFixedSize[token];
      bool ok = length == 0 || want < 0 || length == want;
      if (!ok) {
        return Malformed("PRELOGIN option " + std::to_string(token) + " has length " + std::to_string(length));
      }
    }
    for (const auto& o : p.options) {
      if (o.token == token) return Malformed("PRELOGIN option " + std::to_string(token) + " appears twice");
    }
    encoded += 5 + length;
    if (encoded > kMaxEncodedPrelogin) {
      return Malformed("PRELOGIN options add up to more than " + std::to_string(kMaxEncodedPrelogin) + " bytes");
    }
    auto bytes = data.Rest();
    p.options.push_back({token, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  }
  *out = std::move(p);
  return Ok();
}

std::vector<uint8_t> EncodePrelogin(const Prelogin& p) {
  Builder b;
  size_t offset = p.options.size() * 5 + 1;
  for (const auto& o : p.options) {
    b.U8(o.token).U16BE(static_cast<uint16_t>(offset)).U16BE(static_cast<uint16_t>(o.data.size()));
    offset += o.data.size();
  }
  b.U8(kOptTerminator);
  for (const auto& o : p.options) b.Bytes(o.data);
  return b.Take();
}

Prelogin DefaultClientPrelogin() {
  Prelogin p;
  p.options.push_back({kOptVersion, {0x10, 0x00, 0x00, 0x00, 0x00, 0x00}});
  p.options.push_back({kOptEncryption, {kEncryptOn}});
  p.options.push_back({kOptInstOpt, {0}});
  p.options.push_back({kOptThreadId, {0, 0, 0, 0}});
  p.options.push_back({kOptMars, {0}});
  return p;
}

Prelogin OwnServerPrelogin(uint8_t encryption) {
  Prelogin p;
  // VERSION 16.0.1000: what SQL Server 2022 answers; drivers only display it.
  p.options.push_back({kOptVersion, {16, 0, 0x03, 0xe8, 0, 0}});
  p.options.push_back({kOptEncryption, {encryption}});
  p.options.push_back({kOptInstOpt, {0}});
  p.options.push_back({kOptThreadId, {}});
  p.options.push_back({kOptMars, {0}});
  return p;
}

int EncryptionBase(int encryption) { return encryption < 0 ? -1 : (encryption & 0x7f); }

std::string EncryptionName(int encryption) {
  switch (EncryptionBase(encryption)) {
    case kEncryptOff: return "OFF";
    case kEncryptOn: return "ON";
    case kEncryptNotSup: return "NOT_SUP";
    case kEncryptReq: return "REQ";
    case -1: return "(absent)";
    default: return Hex8(static_cast<uint8_t>(encryption));
  }
}

std::string Utf16LeToUtf8(std::span<const uint8_t> in) {
  std::string out;
  for (size_t i = 0; i + 1 < in.size(); i += 2) {
    uint32_t cp = static_cast<uint32_t>(in[i] | (in[i + 1] << 8));
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 3 < in.size()) {
      uint32_t lo = static_cast<uint32_t>(in[i + 2] | (in[i + 3] << 8));
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 2;
      } else {
        cp = 0xFFFD;
      }
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

std::vector<uint8_t> Utf8ToUtf16Le(const std::string& in) {
  std::vector<uint8_t> out;
  size_t i = 0;
  while (i < in.size()) {
    uint8_t c = static_cast<uint8_t>(in[i]);
    // Well-formed sequences as in Unicode table 3-7: the lead byte fixes the
    // length and the range of the second byte, which rules out overlong forms,
    // surrogates (ED A0..BF) and code points above U+10FFFF.
    size_t n = 0;
    uint32_t cp = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      n = 1;
      cp = c;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      cp = c & 0x0Fu;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      cp = c & 0x07u;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    // An ill-formed sequence becomes one U+FFFD for its longest valid prefix
    // (at least the lead byte), and decoding resumes at the first byte that
    // did not fit, so an ASCII byte after a cut sequence is kept.
    size_t used = 1;
    for (; n != 0 && used < n; used++) {
      if (i + used >= in.size()) break;
      uint8_t b = static_cast<uint8_t>(in[i + used]);
      if (b < (used == 1 ? lo : 0x80) || b > (used == 1 ? hi : 0xBF)) break;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if (n == 0 || used < n) cp = 0xFFFD;
    i += used;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      PutU16LE(&out, static_cast<uint16_t>(0xD800 + (cp >> 10)));
      PutU16LE(&out, static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      PutU16LE(&out, static_cast<uint16_t>(cp));
    }
  }
  return out;
}

std::string TdsVersionName(uint32_t v) {
  switch (v) {
    case 0x70000000: return "7.0";
    case 0x71000000:
    case 0x71000001: return "7.1";
    case 0x72090002: return "7.2";
    case 0x730A0003: return "7.3A";
    case 0x730B0003: return "7.3B";
    case 0x74000004: return "7.4";
    case 0x08000000: return "8.0";
    default: {
      char buf[16];
      snprintf(buf, sizeof buf, "0x%08x", v);
      return buf;
    }
  }
}

bool HasWideTokens(uint32_t tds_version) { return tds_version >= 0x72000000 || tds_version == 0x08000000; }

std::vector<uint8_t> EncodeLoginError(int32_t number, uint8_t state, uint8_t cls, const std::string& message,
                                      const std::string& server_name, uint32_t tds_version) {
  const bool wide = HasWideTokens(tds_version);
  std::vector<uint8_t> msg16 = Utf8ToUtf16Le(message.size() > 4000 ? message.substr(0, 4000) : message);
  std::vector<uint8_t> srv16 = Utf8ToUtf16Le(server_name.size() > 120 ? server_name.substr(0, 120) : server_name);
  Builder b;
  b.U8(0xAA);  // ERROR
  b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] {
    b.U32LE(static_cast<uint32_t>(number)).U8(state).U8(cls);
    b.U16LE(static_cast<uint16_t>(msg16.size() / 2)).Bytes(msg16);
    b.U8(static_cast<uint8_t>(srv16.size() / 2)).Bytes(srv16);
    b.U8(0);  // procedure name: empty
    if (wide) {
      b.U32LE(1);  // line number
    } else {
      b.U16LE(1);
    }
  });
  b.U8(0xFD);       // DONE
  b.U16LE(0x0002);  // DONE_ERROR, final
  b.U16LE(0);       // current command
  if (wide) {
    b.U64LE(0);  // row count
  } else {
    b.U32LE(0);
  }
  return b.Take();
}

}  // namespace dbward::protocol::tds

#include "protocol/proxy_header.h"

#include <array>
#include <cstring>
#include <string_view>

#include "protocol/builder.h"
#include "protocol/cursor.h"

namespace dbward::protocol::proxy_header {
namespace {

constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Signature = "PROXY ";

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

bool Digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Decimal without leading zeros, at most max.
bool ParseDecimal(std::string_view s, uint32_t max, uint32_t* out) {
  if (!Digits(s) || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint32_t>(c - '0');
  if (v > max) return false;
  *out = v;
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Colon-separated groups of 1 to 4 hex digits; the last may be dotted IPv4
// when allowed (two groups). Appends 16-bit groups.
bool ParseGroups(std::string_view s, bool ipv4_tail, std::vector<uint16_t>* groups) {
  if (s.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t colon = s.find(':', start);
    std::string_view g = s.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (colon == std::string_view::npos && ipv4_tail && g.find('.') != std::string_view::npos) {
      std::vector<uint8_t> v4;
      if (!ParseIpv4(g, &v4)) return false;
      groups->push_back(static_cast<uint16_t>(v4[0] << 8 | v4[1]));
      groups->push_back(static_cast<uint16_t>(v4[2] << 8 | v4[3]));
      return true;
    }
    if (g.empty() || g.size() > 4) return false;
    uint16_t v = 0;
    for (char c : g) {
      int h = HexValue(c);
      if (h < 0) return false;
      v = static_cast<uint16_t>(v << 4 | h);
    }
    groups->push_back(v);
    if (colon == std::string_view::npos) return true;
    start = colon + 1;
  }
}

Result ParseV1(std::span<const uint8_t> in, Header* out) {
  size_t limit = std::min(in.size(), kV1MaxLine);
  size_t end = std::string_view::npos;
  for (size_t i = 0; i + 1 < limit; i++) {
    if (in[i] == '\r' && in[i + 1] == '\n') {
      end = i;
      break;
    }
  }
  if (end == std::string_view::npos) {
    if (in.size() >= kV1MaxLine) return Result::Malformed("PROXY v1 line without CRLF in its first 107 bytes");
    return Result::NeedMore();
  }
  std::string_view line(reinterpret_cast<const char*>(in.data()), end);
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      return Result::Malformed("PROXY v1 line holds a byte that is not printable ASCII");
    }
  }
  Header h;
  h.version = 1;
  h.length = end + 2;
  std::string_view rest = line.substr(kV1Signature.size());
  if (rest == "UNKNOWN" || rest.rfind("UNKNOWN ", 0) == 0) {
    // The sender does not know the addresses: the receiver uses the real
    // endpoints and ignores the rest of the line.
    h.command = Command::kLocal;
    *out = std::move(h);
    return Result::Ok();
  }
  std::vector<std::string_view> f;
  size_t start = 0;
  while (start <= rest.size()) {
    size_t sp = rest.find(' ', start);
    f.push_back(rest.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  if (f.size() != 5) {
    return Result::Malformed("PROXY v1 line must be PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT (single spaces)");
  }
  bool v6;
  if (f[0] == "TCP4") {
    v6 = false;
  } else if (f[0] == "TCP6") {
    v6 = true;
  } else {
    return Result::Malformed("PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN");
  }
  bool ok = v6 ? ParseIpv6(f[1], &h.src_addr) && ParseIpv6(f[2], &h.dst_addr)
               : ParseIpv4(f[1], &h.src_addr) && ParseIpv4(f[2], &h.dst_addr);
  if (!ok) return Result::Malformed(std::string("PROXY v1 addresses are not ") + (v6 ? "IPv6" : "IPv4"));
  uint32_t sp = 0, dp = 0;
  if (!ParseDecimal(f[3], 65535, &sp) || !ParseDecimal(f[4], 65535, &dp)) {
    return Result::Malformed("PROXY v1 ports must be decimal 0 to 65535 without leading zeros");
  }
  h.src_port = static_cast<uint16_t>(sp);
  h.dst_port = static_cast<uint16_t>(dp);
  h.command = Command::kProxy;
  h.has_addresses = true;
  *out = std::move(h);
  return Result::Ok();
}

Result ParseSsl(std::span<const uint8_t> value, SslInfo* out) {
  Cursor c(value);
  SslInfo s;
  if (!c.GetU8(&s.client) || !c.GetU32BE(&s.verify)) return Result::Malformed("PP2_TYPE_SSL shorter than 5 bytes");
  while (!c.Empty()) {
    uint8_t type;
    uint16_t len;
    Cursor v;
    if (!c.GetU8(&type) || !c.GetU16BE(&len) || !c.GetBytes(len, &v)) {
      return Result::Malformed("PP2_TYPE_SSL sub-TLV runs past its end");
    }
    std::string text(reinterpret_cast<const char*>(v.Rest().data()), v.size());
    switch (type) {
      case kSubSslVersion: s.version = std::move(text); break;
      case kSubSslCn: s.cn = std::move(text); break;
      case kSubSslCipher: s.cipher = std::move(text); break;
      case kSubSslSigAlg: s.sig_alg = std::move(text); break;
      case kSubSslKeyAlg: s.key_alg = std::move(text); break;
      default: break;  // unknown sub-TLVs are ignored
    }
  }
  *out = std::move(s);
  return Result::Ok();
}

Result ParseV2(std::span<const uint8_t> in, Header* out) {
  if (in.size() < kV2Fixed) return Result::NeedMore();
  Cursor c(in);
  c.Skip(sizeof(kV2Signature));
  uint8_t ver_cmd, fam;
  uint16_t len;
  c.GetU8(&ver_cmd);
  c.GetU8(&fam);
  c.GetU16BE(&len);
  if ((ver_cmd >> 4) != 2) return Result::Malformed("PROXY v2 header with version " + std::to_string(ver_cmd >> 4));
  uint8_t cmd = ver_cmd & 0x0f;
  if (cmd > 1) return Result::Malformed("PROXY v2 header with unassigned command " + std::to_string(cmd));
  if (kV2Fixed + len > kMaxHeader) {
    return Result::Malformed("PROXY v2 header of " + std::to_string(kV2Fixed + len) + " bytes (dbward accepts up to " +
                             std::to_string(kMaxHeader) + ")");
  }
  if (in.size() < kV2Fixed + len) return Result::NeedMore();
  Header h;
  h.version = 2;
  h.length = kV2Fixed + len;
  h.command = cmd == 0 ? Command::kLocal : Command::kProxy;
  Cursor body;
  c.GetBytes(len, &body);
  size_t addr_len = 0;
  switch (fam >> 4) {
    case 0: addr_len = 0; break;
    case 1: addr_len = 12; break;
    case 2: addr_len = 36; break;
    case 3: addr_len = 216; break;
    default: return Result::Malformed("PROXY v2 header with unknown address family " + std::to_string(fam >> 4));
  }
  uint8_t transport = fam & 0x0f;
  if (transport > 2) return Result::Malformed("PROXY v2 header with unknown transport " + std::to_string(transport));
  if (h.command == Command::kLocal) {
    // The family is to be ignored; the length still says what to skip.
    addr_len = std::min<size_t>(addr_len, body.size());
  }
  Cursor addrs;
  if (!body.GetBytes(addr_len, &addrs)) {
    return Result::Malformed("PROXY v2 header too short for its address family (" + std::to_string(len) + " bytes)");
  }
  if (h.command == Command::kProxy && (fam == 0x11 || fam == 0x21)) {
    size_t n = fam == 0x11 ? 4 : 16;
    std::span<const uint8_t> a = addrs.Rest();
    h.src_addr.assign(a.begin(), a.begin() + static_cast<ptrdiff_t>(n));
    h.dst_addr.assign(a.begin() + static_cast<ptrdiff_t>(n), a.begin() + static_cast<ptrdiff_t>(2 * n));
    Cursor ports(a.subspan(2 * n));
    ports.GetU16BE(&h.src_port);
    ports.GetU16BE(&h.dst_port);
    h.has_addresses = true;
  } else if (h.command == Command::kProxy && (fam == 0x12 || fam == 0x22 || fam == 0x32)) {
    return Result::Malformed("PROXY v2 header for a datagram connection on a stream listener");
  }
  size_t crc_at = 0;
  uint32_t crc_sent = 0;
  bool crc_present = false;
  while (!body.Empty()) {
    Tlv t;
    uint16_t tlen;
    Cursor v;
    size_t at = h.length - body.size();
    if (!body.GetU8(&t.type) || !body.GetU16BE(&tlen) || !body.GetBytes(tlen, &v)) {
      return Result::Malformed("PROXY v2 TLV runs past the end of the header");
    }
    t.value.assign(v.Rest().begin(), v.Rest().end());
    std::string text(t.value.begin(), t.value.end());
    switch (t.type) {
      case kTlvAlpn: h.alpn = text; break;
      case kTlvAuthority: h.authority = text; break;
      case kTlvUniqueId:
        if (t.value.size() > kMaxUniqueId) return Result::Malformed("PP2_TYPE_UNIQUE_ID longer than 128 bytes");
        h.unique_id = text;
        break;
      case kTlvCrc32c:
        if (t.value.size() != 4 || crc_present) return Result::Malformed("PP2_TYPE_CRC32C must be one 4-byte value");
        crc_present = true;
        crc_at = at + 3;
        crc_sent = static_cast<uint32_t>(t.value[0]) << 24 | static_cast<uint32_t>(t.value[1]) << 16 |
                   static_cast<uint32_t>(t.value[2]) << 8 | t.value[3];
        break;
      case kTlvSsl: {
        SslInfo s;
        Result r = ParseSsl(t.value, &s);
        if (!r.ok()) return r;
        h.ssl = std::move(s);
        break;
      }
      default: break;  // NOOP, NETNS, custom: kept in tlvs, otherwise ignored
    }
    h.tlvs.push_back(std::move(t));
  }
  if (crc_present) {
    std::vector<uint8_t> copy(in.begin(), in.begin() + static_cast<ptrdiff_t>(h.length));
    std::memset(copy.data() + crc_at, 0, 4);
    if (Crc32c(copy) != crc_sent) return Result::Malformed("PROXY v2 header fails its CRC32C check");
    h.crc_checked = true;
  }
  *out = std::move(h);
  return Result::Ok();
}

// Values are short names; one that is not is cut rather than overflowing its
// length field.
void AddTlv(Builder& b, uint8_t type, std::string_view value) {
  value = value.substr(0, 1024);
  b.U8(type).U16BE(static_cast<uint16_t>(value.size())).Text(value);
}

}  // namespace

uint32_t Crc32c(std::span<const uint8_t> bytes) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

bool ParseIpv4(std::string_view text, std::vector<uint8_t>* out) {
  std::vector<uint8_t> v;
  size_t start = 0;
  for (int i = 0; i < 4; i++) {
    size_t dot = text.find('.', start);
    if ((i < 3) != (dot != std::string_view::npos)) return false;
    std::string_view part = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    uint32_t n = 0;
    if (part.size() > 3 || !ParseDecimal(part, 255, &n)) return false;
    v.push_back(static_cast<uint8_t>(n));
    start = dot + 1;
  }
  *out = std::move(v);
  return true;
}

bool ParseIpv6(std::string_view text, std::vector<uint8_t>* out) {
  if (text.size() < 2 || text.size() > 45) return false;
  std::vector<uint16_t> head, tail;
  size_t gap = text.find("::");
  if (gap != std::string_view::npos) {
    if (text.find("::", gap + 1) != std::string_view::npos) return false;
    std::string_view left = text.substr(0, gap), right = text.substr(gap + 2);
    if (!ParseGroups(left, false, &head) || !ParseGroups(right, true, &tail)) return false;
    if (head.size() + tail.size() > 7) return false;
  } else {
    if (!ParseGroups(text, true, &head) || head.size() != 8) return false;
  }
  std::vector<uint8_t> v(16, 0);
  for (size_t i = 0; i < head.size(); i++) {
    v[2 * i] = static_cast<uint8_t>(head[i] >> 8);
    v[2 * i + 1] = static_cast<uint8_t>(head[i]);
  }
  for (size_t i = 0; i < tail.size(); i++) {
    size_t at = 8 - tail.size() + i;
    v[2 * at] = static_cast<uint8_t>(tail[i] >> 8);
    v[2 * at + 1] = static_cast<uint8_t>(tail[i]);
  }
  *out = std::move(v);
  return true;
}

Sniff SniffHeader(std::span<const uint8_t> bytes) {
  auto prefix = [&](std::span<const uint8_t> sig) {
    size_t n = std::min(bytes.size(), sig.size());
    if (std::memcmp(bytes.data(), sig.data(), n) != 0) return Sniff::kNo;
    return n == sig.size() ? Sniff::kYes : Sniff::kMaybe;
  };
  if (bytes.empty()) return Sniff::kMaybe;
  Sniff v2 = prefix(kV2Signature);
  if (v2 != Sniff::kNo) return v2;
  return prefix({reinterpret_cast<const uint8_t*>(kV1Signature.data()), kV1Signature.size()});
}

Result Parse(std::span<const uint8_t> bytes, Header* out) {
  switch (SniffHeader(bytes)) {
    case Sniff::kMaybe: return Result::NeedMore();
    case Sniff::kNo: return Result::Malformed("the connection does not begin with a PROXY protocol header");
    case Sniff::kYes: break;
  }
  return bytes[0] == 0x0D ? ParseV2(bytes, out) : ParseV1(bytes, out);
}

std::vector<uint8_t> EncodeV2(const Outgoing& h) {
  const bool proxy = h.command == Command::kProxy;
  if (proxy && (h.src_addr.size() != h.dst_addr.size() || (h.src_addr.size() != 4 && h.src_addr.size() != 16))) {
    return {};
  }
  if (h.unique_id.size() > kMaxUniqueId || h.alpn.size() > 255 || h.authority.size() > 255) return {};
  Builder b(256);
  b.Bytes(kV2Signature);
  b.U8(proxy ? 0x21 : 0x20);
  b.U8(!proxy ? 0x00 : h.src_addr.size() == 4 ? 0x11 : 0x21);
  b.Prefixed(Builder::Width::kU16BE, Builder::Counts::kBodyOnly, [&] {
    if (proxy) b.Bytes(h.src_addr).Bytes(h.dst_addr).U16BE(h.src_port).U16BE(h.dst_port);
    if (!h.alpn.empty()) AddTlv(b, kTlvAlpn, h.alpn);
    if (!h.authority.empty()) AddTlv(b, kTlvAuthority, h.authority);
    if (!h.unique_id.empty()) AddTlv(b, kTlvUniqueId, h.unique_id);
    if (h.ssl) {
      b.U8(kTlvSsl).Prefixed(Builder::Width::kU16BE, Builder::Counts::kBodyOnly, [&] {
        b.U8(h.ssl->client).U32BE(h.ssl->verify);
        if (!h.ssl->version.empty()) AddTlv(b, kSubSslVersion, h.ssl->version);
        if (!h.ssl->cn.empty()) AddTlv(b, kSubSslCn, h.ssl->cn);
        if (!h.ssl->cipher.empty()) AddTlv(b, kSubSslCipher, h.ssl->cipher);
        if (!h.ssl->sig_alg.empty()) AddTlv(b, kSubSslSigAlg, h.ssl->sig_alg);
        if (!h.ssl->key_alg.empty()) AddTlv(b, kSubSslKeyAlg, h.ssl->key_alg);
      });
    }
    b.U8(kTlvCrc32c).U16BE(4).U32BE(0);
  });
  if (!b.ok()) return {};
  std::vector<uint8_t> out = b.Take();
  uint32_t crc = Crc32c(out);
  size_t at = out.size() - 4;
  out[at] = static_cast<uint8_t>(crc >> 24);
  out[at + 1] = static_cast<uint8_t>(crc >> 16);
  out[at + 2] = static_cast<uint8_t>(crc >> 8);
  out[at + 3] = static_cast<uint8_t>(crc);
  return out;
}

}  // namespace dbward::protocol::proxy_header

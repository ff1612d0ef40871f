#include "protocol/mysql.h"

#include "protocol/builder.h"
#include "protocol/cursor.h"

namespace dbward::protocol::mysql {
namespace {

Result Malformed(std::string why) { return Result::Malformed(std::move(why)); }
Result Ok() { return Result::Ok(); }

bool GetLenenc(Cursor* c, uint64_t* out) {
  uint8_t first;
  if (!c->GetU8(&first)) return false;
  if (first < 0xfb) {
    *out = first;
    return true;
  }
  if (first == 0xfc) {
    uint16_t v;
    if (!c->GetU16LE(&v)) return false;
    *out = v;
    return true;
  }
  if (first == 0xfd) {
    uint32_t v;
    if (!c->GetU24LE(&v)) return false;
    *out = v;
    return true;
  }
  if (first == 0xfe) return c->GetU64LE(out);
  return false;  // 0xfb (NULL) and 0xff are not lengths
}

bool GetLenencString(Cursor* c, std::string* out) {
  uint64_t len;
  std::span<const uint8_t> bytes;
  if (!GetLenenc(c, &len) || len > c->size() || !c->GetSpan(static_cast<size_t>(len), &bytes)) return false;
  out->assign(bytes.begin(), bytes.end());
  return true;
}

}  // namespace

bool ReadLenenc(std::span<const uint8_t>* in, uint64_t* out) {
  Cursor c(*in);
  if (!GetLenenc(&c, out)) return false;
  *in = c.Rest();
  return true;
}

Result DecodePacket(std::span<const uint8_t> in, size_t max_payload, Packet* out) {
  Cursor c(in);
  uint32_t len;
  uint8_t seq;
  if (!c.GetU24LE(&len) || !c.GetU8(&seq)) return {};
  if (len > max_payload) {
    return Malformed("packet of " + std::to_string(len) + " bytes exceeds the connection-phase limit of " +
                     std::to_string(max_payload));
  }
  std::span<const uint8_t> payload;
  if (!c.GetSpan(len, &payload)) return {};
  out->seq = seq;
  out->payload = payload;
  out->wire_length = 4 + static_cast<size_t>(len);
  return Ok();
}

int PeekSequenceId(std::span<const uint8_t> in) {
  Cursor c(in);
  uint8_t seq;
  return c.Skip(3) && c.GetU8(&seq) ? seq : -1;
}

std::span<const uint8_t> ComQuitPacket() {
  static constexpr uint8_t kComQuit[] = {1, 0, 0, 0, 0x01};
  return kComQuit;
}

std::vector<uint8_t> EncodePacket(uint8_t seq, std::span<const uint8_t> payload) {
  Builder b(4 + payload.size());
  b.U24LE(static_cast<uint32_t>(payload.size())).U8(seq).Bytes(payload);
  return b.Take();
}

Result ParseGreeting(std::span<const uint8_t> payload, Greeting* out) {
  Cursor c(payload);
  Greeting g;
  if (!c.GetU8(&g.protocol_version)) return Malformed("empty greeting");
  if (g.protocol_version == 0xff) {
    ErrInfo err;
    ParseErr(payload, &err);
    return Malformed("server sent an error instead of a greeting: " + std::to_string(err.code) + " " + err.message);
  }
  if (g.protocol_version != 10) {
    return Malformed("unsupported handshake protocol version " + std::to_string(g.protocol_version));
  }
  std::string_view version;
  std::span<const uint8_t> part1;
  uint8_t filler;
  uint16_t caps_low;
  if (!c.GetCString(&version) || !c.GetU32LE(&g.connection_id) || !c.GetSpan(8, &part1) || !c.GetU8(&filler)) {
    return Malformed("truncated greeting");
  }
  g.server_version = version;
  g.caps_low_offset = payload.size() - c.size();
  if (!c.GetU16LE(&caps_low)) return Malformed("truncated greeting capabilities");
  g.capabilities = caps_low;
  g.scramble.assign(part1.begin(), part1.end());
  if (c.Empty()) {
    *out = std::move(g);
    return Ok();
  }
  uint16_t caps_high;
  uint8_t auth_len;
  if (!c.GetU8(&g.charset) || !c.GetU16LE(&g.status) || !c.GetU16LE(&caps_high) || !c.GetU8(&auth_len) ||
      !c.Skip(10)) {
    return Malformed("truncated greeting");
  }
  g.capabilities |= static_cast<uint32_t>(caps_high) << 16;
  if (g.capabilities & kClientSecureConnection) {
    size_t part2_len = auth_len > 8 ? auth_len - 8u : 13u;
    if (part2_len < 13) part2_len = 13;
    std::span<const uint8_t> part2;
    if (!c.GetSpan(part2_len, &part2)) return Malformed("truncated scramble");
    g.scramble.insert(g.scramble.end(), part2.begin(), part2.end());
    if (!g.scramble.empty() && g.scramble.back() == 0) g.scramble.pop_back();
  }
  if (g.capabilities & kClientPluginAuth) {
    std::string_view plugin;
    if (c.GetCString(&plugin)) {
      g.auth_plugin = plugin;
    } else {
      // Some servers omit the terminator on the last field.
      auto rest = c.Rest();
      g.auth_plugin.assign(rest.begin(), rest.end());
    }
  }
  *out = std::move(g);
  return Ok();
}

std::vector<uint8_t> GreetingWithSsl(std::span<const uint8_t> payload, const Greeting& g, bool ssl) {
  std::vector<uint8_t> out(payload.begin(), payload.end());
  if (g.caps_low_offset + 2 > out.size()) return out;  // not a greeting ParseGreeting accepted
  uint16_t low = static_cast<uint16_t>(out[g.caps_low_offset] | (out[g.caps_low_offset + 1] << 8));
  low = ssl ? static_cast<uint16_t>(low | kClientSsl) : static_cast<uint16_t>(low & ~kClientSsl);
  out[g.caps_low_offset] = static_cast<uint8_t>(low);
  out[g.caps_low_offset + 1] = static_cast<uint8_t>(low >> 8);
  return out;
}

std::string HandshakeResponse::Attribute(const std::string& key) const {
  for (const auto& [k, v] : attributes) {
    if (k == key) return v;
  }
  return "";
}

Result ParseHandshakeResponse(std::span<const uint8_t> payload, HandshakeResponse* out) {
  Cursor c(payload);
  HandshakeResponse r;
  if (payload.size() < 4) return Malformed("handshake response too short");
  uint32_t caps;
  c.GetU32LE(&caps);
  r.capabilities = caps;
  if (!(caps & kClientProtocol41)) {
    return Malformed("client uses the pre-4.1 handshake (HandshakeResponse320), which dbward does not support");
  }
  if (!c.GetU32LE(&r.max_packet) || !c.GetU8(&r.charset) || !c.Skip(23)) {
    return Malformed("truncated handshake response");
  }
  if (c.Empty()) {
    if (payload.size() != kSslRequestLength || !(caps & kClientSsl)) {
      return Malformed("handshake response without a user name");
    }
    r.ssl_request = true;
    *out = std::move(r);
    return Ok();
  }
  std::string_view user;
  if (!c.GetCString(&user)) return Malformed("user name is not NUL-terminated");
  r.user = user;
  if (caps & kClientPluginAuthLenencData) {
    uint64_t len;
    std::span<const uint8_t> auth;
    if (!GetLenenc(&c, &len) || len > c.size() || !c.GetSpan(static_cast<size_t>(len), &auth)) {
      return Malformed("bad auth response length");
    }
    r.auth_response.assign(auth.begin(), auth.end());
  } else if (caps & kClientSecureConnection) {
    Cursor auth;
    if (!c.GetU8LengthPrefixed(&auth)) return Malformed("bad auth response length");
    auto a = auth.Rest();
    r.auth_response.assign(a.begin(), a.end());
  } else {
    std::string_view auth;
    if (!c.GetCString(&auth)) return Malformed("auth response is not NUL-terminated");
    r.auth_response.assign(auth.begin(), auth.end());
  }
  if ((caps & kClientConnectWithDb) && !c.Empty()) {
    std::string_view db;
    if (!c.GetCString(&db)) return Malformed("database name is not NUL-terminated");
    r.database = db;
  }
  if ((caps & kClientPluginAuth) && !c.Empty()) {
    std::string_view plugin;
    if (!c.GetCString(&plugin)) return Malformed("auth plugin name is not NUL-terminated");
    r.auth_plugin = plugin;
  }
  if ((caps & kClientConnectAttrs) && !c.Empty()) {
    uint64_t total;
    if (!GetLenenc(&c, &total) || total > c.size()) return Malformed("bad connect attributes length");
    Cursor attrs;
    c.GetBytes(static_cast<size_t>(total), &attrs);
    while (!attrs.Empty()) {
      std::string k, v;
      if (!GetLenencString(&attrs, &k) || !GetLenencString(&attrs, &v)) {
        return Malformed("malformed connect attribute");
      }
      r.attributes.emplace_back(std::move(k), std::move(v));
    }
  }
  // MariaDB clients may append fields of their own; they are passed through.
  *out = std::move(r);
  return Ok();
}

std::vector<uint8_t> SslRequestFrom(std::span<const uint8_t> response_payload) {
  if (response_payload.size() < kSslRequestLength) return {};
  std::vector<uint8_t> out(response_payload.begin(), response_payload.begin() + kSslRequestLength);
  out[1] = static_cast<uint8_t>(out[1] | (kClientSsl >> 8));
  return out;
}

void SetSslBit(std::vector<uint8_t>* payload) {
  if (payload->size() >= 2) (*payload)[1] = static_cast<uint8_t>((*payload)[1] | (kClientSsl >> 8));
}

std::string ServerProduct(const Greeting& g) {
  std::string version = g.server_version;
  // MariaDB prefixes "5.5.5-" for clients that parse the major version.
  if (version.starts_with("5.5.5-")) version = version.substr(6);
  return (version.find("MariaDB") != std::string::npos ? "MariaDB " : "MySQL ") + version;
}

std::vector<uint8_t> DefaultSslRequest(const Greeting& g) {
  uint32_t caps = (g.capabilities & (kClientLongPassword | kClientSecureConnection | kClientPluginAuth |
                                     kClientPluginAuthLenencData)) |
                  kClientProtocol41 | kClientSsl;
  Builder b(kSslRequestLength);
  b.U32LE(caps).U32LE(16 * 1024 * 1024).U8(g.charset != 0 ? g.charset : 45 /* utf8mb4_general_ci */);
  b.Zeros(kSslRequestLength - b.size());
  return b.Take();
}

std::string ClientLibrary(const HandshakeResponse& r) {
  std::string lib = r.Attribute("_client_name");
  std::string version = r.Attribute("_client_version");
  if (!version.empty()) {
    if (!lib.empty()) lib.push_back(' ');
    lib.append(version);
  }
  return lib;
}

AuthPacket ClassifyServerAuthPacket(std::span<const uint8_t> payload) {
  Cursor c(payload);
  uint8_t first, second;
  if (!c.GetU8(&first)) return AuthPacket::kOther;
  switch (first) {
    case 0x00: return AuthPacket::kOk;
    case 0xff: return AuthPacket::kErr;
    case 0xfe: return AuthPacket::kAuthSwitch;
    case 0x01:
      if (c.size() == 1 && c.GetU8(&second)) {
        if (second == 0x03) return AuthPacket::kFastAuthOk;
        if (second == 0x04) return AuthPacket::kFullAuthRequired;
      }
      return AuthPacket::kOther;
    default: return AuthPacket::kOther;
  }
}

bool IsPublicKeyRequest(std::span<const uint8_t> payload) {
  return payload.size() == 1 && (payload[0] == 0x02 || payload[0] == 0x01);
}

std::vector<uint8_t> EncodePublicKeyResponse(const std::string& pem) {
  Builder b(1 + pem.size());
  b.U8(0x01).Text(pem);
  return b.Take();
}

bool IsOk(std::span<const uint8_t> payload) { return !payload.empty() && payload[0] == 0x00; }
bool IsErr(std::span<const uint8_t> payload) { return !payload.empty() && payload[0] == 0xff; }

bool ParseErr(std::span<const uint8_t> payload, ErrInfo* out) {
  Cursor c(payload);
  uint8_t marker;
  ErrInfo e;
  if (!c.GetU8(&marker) || marker != 0xff || !c.GetU16LE(&e.code)) return false;
  uint8_t hash;
  if (c.PeekU8(&hash) && hash == '#' && c.size() >= 6) {
    std::span<const uint8_t> state;
    c.Skip(1);
    c.GetSpan(5, &state);
    e.sqlstate.assign(state.begin(), state.end());
  }
  auto rest = c.Rest();
  e.message.assign(rest.begin(), rest.end());
  *out = std::move(e);
  return true;
}

std::vector<uint8_t> EncodeErr(uint16_t code, const std::string& sqlstate, const std::string& message) {
  Builder b(9 + message.size());
  b.U8(0xff).U16LE(code);
  if (!sqlstate.empty()) b.U8('#').Text(sqlstate.size() == 5 ? sqlstate : "HY000");
  b.Text(message);
  return b.Take();
}

bool ParseAuthSwitch(std::span<const uint8_t> payload, std::string* plugin, std::vector<uint8_t>* scramble) {
  Cursor c(payload);
  uint8_t marker;
  std::string_view name;
  if (!c.GetU8(&marker) || marker != 0xfe || !c.GetCString(&name)) return false;
  *plugin = name;
  auto rest = c.Rest();
  scramble->assign(rest.begin(), rest.end());
  if (!scramble->empty() && scramble->back() == 0) scramble->pop_back();
  return true;
}

}  // namespace dbward::protocol::mysql

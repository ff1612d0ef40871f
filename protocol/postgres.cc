#include "protocol/postgres.h"

#include "protocol/cursor.h"

namespace dbward::protocol::pg {
namespace {

Result Malformed(std::string why) { return {Status::kMalformed, std::move(why)}; }
Result Ok() { return {Status::kOk, {}}; }

void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  out->push_back(static_cast<uint8_t>(v >> 24));
  out->push_back(static_cast<uint8_t>(v >> 16));
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

void PatchLength(std::vector<uint8_t>* out, size_t at) {
  uint32_t len = static_cast<uint32_t>(out->size() - at);
  (*out)[at] = static_cast<uint8_t>(len >> 24);
  (*out)[at + 1] = static_cast<uint8_t>(len >> 16);
  (*out)[at + 2] = static_cast<uint8_t>(len >> 8);
  (*out)[at + 3] = static_cast<uint8_t>(len);
}

}  // namespace

// The server keeps the last value of a repeated key (ProcessStartupPacket
// overwrites user_name and database_name, GUCs apply in order), and the startup
// packet is forwarded as is: answering with the first would let a client be
// audited as one user while the backend authenticates another.
std::string FirstMessage::Param(std::string_view key) const {
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return "";
}

Result DecodeFirstMessage(std::span<const uint8_t> in, FirstMessage* out) {
  Cursor c(in);
  uint32_t len;
  if (!c.GetU32BE(&len)) return {};
  if (len < 8) return Malformed("invalid length of startup packet (" + std::to_string(len) + ")");
  if (len > kMaxStartupPacket) {
    return Malformed("startup packet too long (" + std::to_string(len) + " bytes, the limit is " +
                     std::to_string(kMaxStartupPacket) + ")");
  }
  Cursor body;
  if (!c.GetBytes(len - 4, &body)) return {};
  uint32_t code;
  body.GetU32BE(&code);  // len >= 8 guarantees 4 bytes
  FirstMessage m;
  m.length = len;
  if (code == kSslRequestCode || code == kGssEncRequestCode) {
    if (len != 8) return Malformed("SSLRequest/GSSENCRequest with length " + std::to_string(len));
    m.kind = code == kSslRequestCode ? FirstMessageKind::kSslRequest : FirstMessageKind::kGssEncRequest;
    *out = std::move(m);
    return Ok();
  }
  if (code == kCancelRequestCode) {
    if (len < 16 || len > 12 + kMaxCancelKey || !body.GetU32BE(&m.cancel_pid) || !body.GetU32BE(&m.cancel_secret)) {
      return Malformed("CancelRequest with length " + std::to_string(len));
    }
    m.kind = FirstMessageKind::kCancelRequest;
    *out = std::move(m);
    return Ok();
  }
  uint16_t major = static_cast<uint16_t>(code >> 16);
  uint16_t minor = static_cast<uint16_t>(code & 0xffff);
  if (major != 3) {
    return Malformed("unsupported frontend protocol " + std::to_string(major) + "." + std::to_string(minor) +
                     ": dbward supports protocol 3.0");
  }
  m.kind = FirstMessageKind::kStartup;
  m.protocol = code;
  for (;;) {
    std::string_view key;
    if (!body.GetCString(&key)) return Malformed("startup packet is not NUL-terminated");
    if (key.empty()) break;
    std::string_view value;
    if (!body.GetCString(&value)) return Malformed("startup parameter '" + std::string(key) + "' has no value");
    m.params.emplace_back(std::string(key), std::string(value));
  }
  if (!body.Empty()) return Malformed("trailing bytes after the startup parameters");
  if (m.Param("user").empty()) return Malformed("no PostgreSQL user name specified in startup packet");
  *out = std::move(m);
  return Ok();
}

Result DecodeMessage(std::span<const uint8_t> in, size_t max_body, Message* out) {
  Cursor c(in);
  uint8_t type;
  uint32_t len;
  if (!c.GetU8(&type) || !c.GetU32BE(&len)) return {};
  if (len < 4) return Malformed("message length " + std::to_string(len) + " is below the minimum of 4");
  if (len - 4 > max_body) {
    return Malformed("message '" + std::string(1, static_cast<char>(type)) + "' of " + std::to_string(len) +
                     " bytes exceeds the pre-authentication limit of " + std::to_string(max_body));
  }
  std::span<const uint8_t> body;
  if (!c.GetSpan(len - 4, &body)) return {};
  out->type = type;
  out->body = body;
  out->wire_length = 1 + static_cast<size_t>(len);
  return Ok();
}

bool ParseAuthCode(std::span<const uint8_t> body, uint32_t* code) {
  Cursor c(body);
  return c.GetU32BE(code);
}

bool ParseSaslMechanisms(std::span<const uint8_t> body, std::vector<std::string>* mechanisms) {
  Cursor c(body);
  uint32_t code;
  if (!c.GetU32BE(&code) || code != kAuthSasl) return false;
  mechanisms->clear();
  for (;;) {
    std::string_view name;
    if (!c.GetCString(&name)) return false;
    if (name.empty()) break;
    mechanisms->emplace_back(name);
  }
  return c.Empty();
}

std::vector<uint8_t> EncodeAuthenticationSasl(const std::vector<std::string>& mechanisms) {
  std::vector<uint8_t> out{'R', 0, 0, 0, 0};
  PutU32(&out, kAuthSasl);
  for (const auto& m : mechanisms) {
    out.insert(out.end(), m.begin(), m.end());
    out.push_back(0);
  }
  out.push_back(0);
  PatchLength(&out, 1);
  return out;
}

std::vector<uint8_t> EncodeErrorResponse(const ErrorFields& f) {
  std::vector<uint8_t> out{'E', 0, 0, 0, 0};
  auto field = [&](char code, const std::string& value) {
    if (value.empty()) return;
    out.push_back(static_cast<uint8_t>(code));
    for (char ch : value) out.push_back(ch == '\0' ? ' ' : static_cast<uint8_t>(ch));
    out.push_back(0);
  };
  field('S', f.severity);
  field('V', f.severity);
  field('C', f.sqlstate);
  field('M', f.message);
  field('D', f.detail);
  field('H', f.hint);
  out.push_back(0);
  PatchLength(&out, 1);
  return out;
}

bool ParseErrorResponse(std::span<const uint8_t> body, ErrorFields* out) {
  Cursor c(body);
  ErrorFields f;
  f.severity.clear();
  for (;;) {
    uint8_t code;
    if (!c.GetU8(&code)) return false;
    if (code == 0) break;
    std::string_view value;
    if (!c.GetCString(&value)) return false;
    switch (code) {
      case 'S': f.severity = value; break;
      case 'C': f.sqlstate = value; break;
      case 'M': f.message = value; break;
      case 'D': f.detail = value; break;
      case 'H': f.hint = value; break;
      default: break;
    }
  }
  if (!c.Empty()) return false;
  *out = std::move(f);
  return true;
}

bool ErrorResponseWithHint(std::span<const uint8_t> body, const std::string& hint, std::vector<uint8_t>* out) {
  Cursor c(body);
  std::vector<uint8_t> msg{'E', 0, 0, 0, 0};
  for (;;) {
    uint8_t code;
    if (!c.GetU8(&code)) return false;
    if (code == 0) break;
    std::string_view value;
    if (!c.GetCString(&value)) return false;
    if (code == 'H') continue;
    msg.push_back(code);
    msg.insert(msg.end(), value.begin(), value.end());
    msg.push_back(0);
  }
  if (!c.Empty()) return false;
  msg.push_back('H');
  for (char ch : hint) msg.push_back(ch == '\0' ? ' ' : static_cast<uint8_t>(ch));
  msg.push_back(0);
  msg.push_back(0);
  PatchLength(&msg, 1);
  *out = std::move(msg);
  return true;
}

std::vector<uint8_t> EncodeSslRequest() {
  std::vector<uint8_t> out;
  PutU32(&out, 8);
  PutU32(&out, kSslRequestCode);
  return out;
}

std::vector<uint8_t> EncodeCancelRequest(uint32_t pid, uint32_t secret) {
  std::vector<uint8_t> out;
  PutU32(&out, 16);
  PutU32(&out, kCancelRequestCode);
  PutU32(&out, pid);
  PutU32(&out, secret);
  return out;
}

}  // namespace dbward::protocol::pg

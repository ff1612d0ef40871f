#include "protocol/postgres.h"

#include "protocol/builder.h"
#include "protocol/cursor.h"

namespace dbward::protocol::pg {
namespace {

using Width = Builder::Width;
using Counts = Builder::Counts;

// A typed message: type byte, then an int32 length that counts itself.
template <typename Body>
std::vector<uint8_t> Typed(uint8_t type, Body&& body) {
  Builder b;
  b.U8(type).Prefixed(Width::kU32BE, Counts::kInclusive, [&] { body(b); });
  return b.Take();
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
  if (!c.GetU32BE(&len)) return Result::NeedMore();
  if (len < 8) return Result::Malformed("invalid length of startup packet (" + std::to_string(len) + ")");
  if (len > kMaxStartupPacket) {
    return Result::Malformed("startup packet too long (" + std::to_string(len) + " bytes, the limit is " +
                             std::to_string(kMaxStartupPacket) + ")");
  }
  Cursor body;
  if (!c.GetBytes(len - 4, &body)) return Result::NeedMore();
  uint32_t code;
  body.GetU32BE(&code);  // len >= 8 guarantees 4 bytes
  FirstMessage m;
  m.length = len;
  if (code == kSslRequestCode || code == kGssEncRequestCode) {
    if (len != 8) return Result::Malformed("SSLRequest/GSSENCRequest with length " + std::to_string(len));
    m.kind = code == kSslRequestCode ? FirstMessageKind::kSslRequest : FirstMessageKind::kGssEncRequest;
    *out = std::move(m);
    return Result::Ok();
  }
  if (code == kCancelRequestCode) {
    Cursor key;
    if (len < 16 || len > 12 + kMaxCancelKey || !body.GetU32BE(&m.cancel_pid)) {
      return Result::Malformed("CancelRequest with length " + std::to_string(len));
    }
    key = body;
    key.GetU32BE(&m.cancel_secret);  // at least 4 bytes: len >= 16
    auto k = body.Rest();
    m.cancel_key.assign(k.begin(), k.end());
    m.kind = FirstMessageKind::kCancelRequest;
    *out = std::move(m);
    return Result::Ok();
  }
  uint16_t major = static_cast<uint16_t>(code >> 16);
  uint16_t minor = static_cast<uint16_t>(code & 0xffff);
  if (major != 3) {
    return Result::Malformed("unsupported frontend protocol " + std::to_string(major) + "." +
                             std::to_string(minor) + ": dbward supports protocol 3.0");
  }
  m.kind = FirstMessageKind::kStartup;
  m.protocol = code;
  for (;;) {
    std::string_view key;
    if (!body.GetCString(&key)) return Result::Malformed("startup packet is not NUL-terminated");
    if (key.empty()) break;
    std::string_view value;
    if (!body.GetCString(&value)) {
      return Result::Malformed("startup parameter '" + std::string(key) + "' has no value");
    }
    m.params.emplace_back(std::string(key), std::string(value));
  }
  if (!body.Empty()) return Result::Malformed("trailing bytes after the startup parameters");
  if (m.Param("user").empty()) return Result::Malformed("no PostgreSQL user name specified in startup packet");
  *out = std::move(m);
  return Result::Ok();
}

std::string ProtocolVersionName(uint32_t protocol) {
  return std::to_string(protocol >> 16) + "." + std::to_string(protocol & 0xffff);
}

Result ParseEncryptionAnswer(std::span<const uint8_t> in, EncryptionAnswer* out) {
  Cursor c(in);
  uint8_t byte;
  if (!c.GetU8(&byte)) return Result::NeedMore();
  EncryptionAnswer a;
  a.byte = byte;
  a.kind = byte == 'S'   ? EncryptionAnswer::kAccepted
           : byte == 'N' ? EncryptionAnswer::kRefused
           : byte == 'E' ? EncryptionAnswer::kErrorMessage
                         : EncryptionAnswer::kOther;
  a.trailing = !c.Empty();
  *out = a;
  return Result::Ok();
}

Result DecodeMessage(std::span<const uint8_t> in, size_t max_body, Message* out) {
  Cursor c(in);
  uint8_t type;
  uint32_t len;
  if (!c.GetU8(&type) || !c.GetU32BE(&len)) return Result::NeedMore();
  if (len < 4) return Result::Malformed("message length " + std::to_string(len) + " is below the minimum of 4");
  if (len - 4 > max_body) {
    return Result::Malformed("message '" + std::string(1, static_cast<char>(type)) + "' of " + std::to_string(len) +
                             " bytes exceeds the pre-authentication limit of " + std::to_string(max_body));
  }
  std::span<const uint8_t> body;
  if (!c.GetSpan(len - 4, &body)) return Result::NeedMore();
  out->type = type;
  out->body = body;
  out->wire_length = 1 + static_cast<size_t>(len);
  return Result::Ok();
}

AuthMessage ClassifyAuthMessage(const Message& m) {
  if (m.type == 'E') return AuthMessage::kError;
  uint32_t code;
  if (m.type != 'R' || !ParseAuthCode(m.body, &code)) return AuthMessage::kOther;
  if (code == kAuthOk) return AuthMessage::kOk;
  if (code == kAuthSasl) return AuthMessage::kSasl;
  return AuthMessage::kOtherRequest;
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
  return Typed('R', [&](Builder& b) {
    b.U32BE(kAuthSasl);
    for (const auto& m : mechanisms) b.CString(m);
    b.U8(0);
  });
}

bool IsChannelBindingMechanism(std::string_view m) { return m.size() > 5 && m.ends_with("-PLUS"); }

std::vector<uint8_t> EncodeErrorResponse(const ErrorFields& f) {
  return Typed('E', [&](Builder& b) {
    auto field = [&](char code, const std::string& value) {
      if (value.empty()) return;
      b.U8(static_cast<uint8_t>(code)).CString(value);
    };
    field('S', f.severity);
    field('V', f.severity);
    field('C', f.sqlstate);
    field('M', f.message);
    field('D', f.detail);
    field('H', f.hint);
    b.U8(0);
  });
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
  // Parse first: nothing is built from a body that does not hold together.
  struct Field {
    uint8_t code;
    std::string_view value;
  };
  std::vector<Field> fields;
  Cursor c(body);
  for (;;) {
    uint8_t code;
    if (!c.GetU8(&code)) return false;
    if (code == 0) break;
    std::string_view value;
    if (!c.GetCString(&value)) return false;
    if (code != 'H') fields.push_back({code, value});
  }
  if (!c.Empty()) return false;
  *out = Typed('E', [&](Builder& b) {
    for (const Field& f : fields) b.U8(f.code).CString(f.value);
    b.U8('H').CString(hint).U8(0);
  });
  return true;
}

bool IsAuthorizationFailure(std::string_view sqlstate) { return sqlstate.starts_with("28"); }

std::vector<uint8_t> EncodeAuthenticationSaslContinue(std::string_view data) {
  return Typed('R', [&](Builder& b) { b.U32BE(kAuthSaslContinue).Text(data); });
}

std::vector<uint8_t> EncodeAuthenticationSaslFinal(std::string_view data) {
  return Typed('R', [&](Builder& b) { b.U32BE(kAuthSaslFinal).Text(data); });
}

std::vector<uint8_t> EncodeAuthenticationOk() {
  return Typed('R', [&](Builder& b) { b.U32BE(kAuthOk); });
}

bool ParseSaslData(std::span<const uint8_t> body, uint32_t want_code, std::string* data) {
  Cursor c(body);
  uint32_t code;
  if (!c.GetU32BE(&code) || code != want_code) return false;
  data->assign(body.begin() + 4, body.end());
  return true;
}

bool ParseMd5Salt(std::span<const uint8_t> body, std::array<uint8_t, 4>* salt) {
  Cursor c(body);
  uint32_t code;
  std::span<const uint8_t> s;
  if (!c.GetU32BE(&code) || code != 5 || !c.GetSpan(4, &s) || !c.Empty()) return false;
  std::copy(s.begin(), s.end(), salt->begin());
  return true;
}

bool ParseSaslInitialResponse(std::span<const uint8_t> body, SaslInitialResponse* out) {
  Cursor c(body);
  std::string_view mech;
  uint32_t len;
  if (!c.GetCString(&mech) || !c.GetU32BE(&len)) return false;
  SaslInitialResponse r;
  r.mechanism = std::string(mech);
  if (len == 0xFFFFFFFFu) {
    if (!c.Empty()) return false;
  } else {
    std::span<const uint8_t> data;
    if (!c.GetSpan(len, &data) || !c.Empty()) return false;
    r.data.assign(data.begin(), data.end());
    r.has_data = true;
  }
  *out = std::move(r);
  return true;
}

std::vector<uint8_t> EncodeSaslInitialResponse(std::string_view mechanism, std::string_view data) {
  return Typed('p', [&](Builder& b) { b.CString(mechanism).U32BE(static_cast<uint32_t>(data.size())).Text(data); });
}

std::vector<uint8_t> EncodeSaslResponse(std::string_view data) {
  return Typed('p', [&](Builder& b) { b.Text(data); });
}

std::vector<uint8_t> EncodePasswordMessage(std::string_view password) {
  return Typed('p', [&](Builder& b) { b.CString(password); });
}

std::vector<uint8_t> EncodeStartup(const std::vector<std::pair<std::string, std::string>>& params) {
  Builder b;
  b.Prefixed(Width::kU32BE, Counts::kInclusive, [&] {
    b.U32BE(kProtocol3);
    for (const auto& [k, v] : params) b.CString(k).CString(v);
    b.U8(0);
  });
  return b.Take();
}

bool ParseParameterStatus(std::span<const uint8_t> body, std::string* name, std::string* value) {
  Cursor c(body);
  std::string_view n, v;
  if (!c.GetCString(&n) || !c.GetCString(&v) || !c.Empty()) return false;
  *name = std::string(n);
  *value = std::string(v);
  return true;
}

std::vector<uint8_t> EncodeExtendedQuery(std::string_view sql, const std::vector<std::string>& params) {
  std::vector<uint8_t> out = Typed('P', [&](Builder& b) {
    b.CString("").CString(sql).U16BE(0);  // unnamed statement, parameter types inferred
  });
  std::vector<uint8_t> bind = Typed('B', [&](Builder& b) {
    b.CString("").CString("").U16BE(0);  // unnamed portal and statement, text parameters
    b.U16BE(static_cast<uint16_t>(params.size()));
    for (const std::string& p : params) b.U32BE(static_cast<uint32_t>(p.size())).Text(p);
    b.U16BE(0);  // text results
  });
  std::vector<uint8_t> execute = Typed('E', [&](Builder& b) { b.CString("").U32BE(0); });
  std::vector<uint8_t> sync = Typed('S', [](Builder&) {});
  for (const auto* m : {&bind, &execute, &sync}) out.insert(out.end(), m->begin(), m->end());
  return out;
}

std::vector<uint8_t> EncodeTerminate() {
  return Typed('X', [](Builder&) {});
}

std::span<const uint8_t> TerminateMessage() {
  static constexpr uint8_t kTerminate[] = {'X', 0, 0, 0, 4};
  return kTerminate;
}

std::span<const uint8_t> EncryptionAnswerByte(bool accept) {
  static constexpr uint8_t kAccept[] = {'S'};
  static constexpr uint8_t kRefuse[] = {'N'};
  return accept ? std::span<const uint8_t>(kAccept) : std::span<const uint8_t>(kRefuse);
}

bool ParseDataRow(std::span<const uint8_t> body, std::vector<std::optional<std::string>>* columns) {
  Cursor c(body);
  uint16_t n;
  if (!c.GetU16BE(&n)) return false;
  std::vector<std::optional<std::string>> cols;
  for (uint16_t i = 0; i < n; i++) {
    uint32_t len;
    if (!c.GetU32BE(&len)) return false;
    if (len == 0xFFFFFFFFu) {
      cols.emplace_back(std::nullopt);
      continue;
    }
    std::span<const uint8_t> v;
    if (!c.GetSpan(len, &v)) return false;
    cols.emplace_back(std::string(v.begin(), v.end()));
  }
  if (!c.Empty()) return false;
  *columns = std::move(cols);
  return true;
}

std::vector<uint8_t> EncodeSslRequest() {
  Builder b;
  b.U32BE(8).U32BE(kSslRequestCode);
  return b.Take();
}

std::vector<uint8_t> EncodeCancelRequest(uint32_t pid, std::span<const uint8_t> key) {
  Builder b;
  b.Prefixed(Width::kU32BE, Counts::kInclusive, [&] { b.U32BE(kCancelRequestCode).U32BE(pid).Bytes(key); });
  return b.Take();
}

std::vector<uint8_t> EncodeCancelRequest(uint32_t pid, uint32_t secret) {
  const uint8_t key[4] = {static_cast<uint8_t>(secret >> 24), static_cast<uint8_t>(secret >> 16),
                          static_cast<uint8_t>(secret >> 8), static_cast<uint8_t>(secret)};
  return EncodeCancelRequest(pid, key);
}

}  // namespace dbward::protocol::pg

#include "protocol/tds_tokens.h"

#include <cstdio>

#include "protocol/builder.h"
#include "protocol/cursor.h"
#include "protocol/tds.h"

namespace dbward::protocol::tds {
namespace {

constexpr uint8_t kEnvPromoteTransaction = 15;  // its Length does not cover its data

Result Malformed(std::string why) { return Result::Malformed(std::move(why)); }

std::string TokenName(uint8_t token) {
  char buf[8];
  snprintf(buf, sizeof buf, "0x%02X", token);
  return buf;
}

// B_VARCHAR (u8 character count) or US_VARCHAR (u16), UTF-16LE.
bool GetVarChar(Cursor* c, bool wide_count, std::string* out) {
  size_t chars;
  if (wide_count) {
    uint16_t n;
    if (!c->GetU16LE(&n)) return false;
    chars = n;
  } else {
    uint8_t n;
    if (!c->GetU8(&n)) return false;
    chars = n;
  }
  std::span<const uint8_t> bytes;
  if (!c->GetSpan(chars * 2, &bytes)) return false;
  *out = Utf16LeToUtf8(bytes);
  return true;
}

Result ParseMessage(Cursor body, bool error, ServerMessage* m) {
  uint32_t number;
  std::string proc;
  m->error = error;
  if (!body.GetU32LE(&number) || !body.GetU8(&m->state) || !body.GetU8(&m->cls) || !GetVarChar(&body, true, &m->text) ||
      !GetVarChar(&body, false, &m->server) || !GetVarChar(&body, false, &proc)) {
    return Malformed(std::string(error ? "ERROR" : "INFO") + " token is cut short");
  }
  m->number = static_cast<int32_t>(number);
  return Result::Ok();  // the line number (2 or 4 bytes) is not needed
}

Result ParseLoginAck(Cursor body, LoginResponse* out) {
  uint8_t interface, major, minor, build_hi, build_lo;
  if (!body.GetU8(&interface) || !body.GetU32BE(&out->tds_version) || !GetVarChar(&body, false, &out->server_program) ||
      !body.GetU8(&major) || !body.GetU8(&minor) || !body.GetU8(&build_hi) || !body.GetU8(&build_lo)) {
    return Malformed("LOGINACK token is cut short");
  }
  // SQL Server pads the name with NULs ("Microsoft SQL Server\0\0").
  while (!out->server_program.empty() && out->server_program.back() == '\0') out->server_program.pop_back();
  out->login_ack = true;
  out->server_version = std::to_string(major) + "." + std::to_string(minor) + "." +
                        std::to_string((build_hi << 8) | build_lo);
  return Result::Ok();
}

Result ParseRouting(Cursor body, bool enhanced, Routing* r) {
  uint16_t rdvl;
  Cursor data;
  uint8_t protocol;
  if (!body.GetU16LE(&rdvl) || !body.GetBytes(rdvl, &data) || !data.GetU8(&protocol) || !data.GetU16LE(&r->port) ||
      !GetVarChar(&data, true, &r->server) || (enhanced && !GetVarChar(&data, true, &r->database))) {
    return Malformed("routing ENVCHANGE is cut short");
  }
  if (protocol != 0) return Malformed("routing ENVCHANGE names protocol " + std::to_string(protocol) + ", not TCP");
  if (r->port == 0) return Malformed("routing ENVCHANGE names port 0");
  if (r->server.empty()) return Malformed("routing ENVCHANGE names no server");
  r->enhanced = enhanced;
  return Result::Ok();
}

}  // namespace

const ServerMessage* LoginResponse::FirstError() const {
  for (const ServerMessage& m : messages) {
    if (m.error) return &m;
  }
  return nullptr;
}

Result ParseLoginResponse(std::span<const uint8_t> payload, uint32_t tds_version, LoginResponse* out) {
  LoginResponse r;
  Cursor c(payload);
  while (!c.Empty()) {
    const size_t offset = payload.size() - c.size();
    uint8_t token;
    c.GetU8(&token);
    const std::string cut = "login response token " + TokenName(token) + " is cut short";
    uint16_t len16;
    uint32_t len32;
    Cursor body;
    switch (token) {
      case kTokenError:
      case kTokenInfo: {
        if (!c.GetU16LE(&len16) || !c.GetBytes(len16, &body)) return Malformed(cut);
        ServerMessage m;
        if (Result e = ParseMessage(body, token == kTokenError, &m); !e.ok()) return e;
        m.offset = offset;
        m.size = payload.size() - c.size() - offset;
        r.messages.push_back(std::move(m));
        break;
      }
      case kTokenLoginAck:
        if (!c.GetU16LE(&len16) || !c.GetBytes(len16, &body)) return Malformed(cut);
        if (Result e = ParseLoginAck(body, &r); !e.ok()) return e;
        tds_version = r.tds_version;
        break;
      case kTokenEnvChange: {
        if (!c.GetU16LE(&len16) || !c.GetBytes(len16, &body)) return Malformed(cut);
        uint8_t type;
        if (!body.PeekU8(&type)) return Malformed("ENVCHANGE token is empty");
        if (type == kEnvPromoteTransaction) {
          r.complete_walk = false;
          r.stopped_at_token = token;
          *out = std::move(r);
          return Result::Ok();
        }
        if (type == kEnvRouting || type == kEnvEnhancedRouting) {
          body.Skip(1);
          Routing routing;
          if (Result e = ParseRouting(body, type == kEnvEnhancedRouting, &routing); !e.ok()) return e;
          r.routing = std::move(routing);
        }
        break;
      }
      case kTokenSspi:
        if (!c.GetU16LE(&len16) || !c.Skip(len16)) return Malformed(cut);
        r.sspi = true;
        break;
      case kTokenSessionState:
      case kTokenFedAuthInfo:
        if (!c.GetU32LE(&len32) || !c.Skip(len32)) return Malformed(cut);
        if (token == kTokenFedAuthInfo) r.fedauth_info = true;
        break;
      case kTokenFeatureExtAck:
        for (int n = 0;; n++) {
          uint8_t id;
          if (!c.GetU8(&id) || n > 64) return Malformed(cut);
          if (id == kFeatureTerminator) break;
          if (!c.GetU32LE(&len32) || !c.Skip(len32)) return Malformed(cut);
          r.acked_features.push_back(id);
        }
        break;
      case kTokenReturnStatus:
        if (!c.Skip(4)) return Malformed(cut);
        break;
      case kTokenDone:
      case kTokenDoneProc:
      case kTokenDoneInProc: {
        uint16_t status, cur_cmd;
        if (!c.GetU16LE(&status) || !c.GetU16LE(&cur_cmd) || !c.Skip(HasWideTokens(tds_version) ? 8 : 4)) {
          return Malformed(cut);
        }
        // Azure Synapse sends DONEINPROC before LOGINACK: only a DONE ends it.
        if (token == kTokenDone && (status & kDoneMore) == 0) {
          r.done = true;
          r.done_error = (status & kDoneError) != 0;
        }
        break;
      }
      default:
        r.complete_walk = false;
        r.stopped_at_token = token;
        *out = std::move(r);
        return Result::Ok();
    }
  }
  *out = std::move(r);
  return Result::Ok();
}

std::vector<uint8_t> EncodeMessageToken(const ServerMessage& m, uint32_t tds_version) {
  std::vector<uint8_t> text = Utf8ToUtf16Le(m.text.size() > 4000 ? m.text.substr(0, 4000) : m.text);
  std::vector<uint8_t> server = Utf8ToUtf16Le(m.server.size() > 120 ? m.server.substr(0, 120) : m.server);
  Builder b;
  b.U8(m.error ? kTokenError : kTokenInfo);
  b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] {
    b.U32LE(static_cast<uint32_t>(m.number)).U8(m.state).U8(m.cls);
    b.U16LE(static_cast<uint16_t>(text.size() / 2)).Bytes(text);
    b.U8(static_cast<uint8_t>(server.size() / 2)).Bytes(server);
    b.U8(0);  // procedure name
    if (HasWideTokens(tds_version)) {
      b.U32LE(1);
    } else {
      b.U16LE(1);
    }
  });
  return b.Take();
}

std::vector<uint8_t> EncodeRoutingEnvChange(const Routing& r) {
  std::vector<uint8_t> server = Utf8ToUtf16Le(r.server);
  std::vector<uint8_t> database = Utf8ToUtf16Le(r.database);
  Builder b;
  b.U8(kTokenEnvChange);
  b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] {
    b.U8(r.enhanced ? kEnvEnhancedRouting : kEnvRouting);
    b.Prefixed(Builder::Width::kU16LE, Builder::Counts::kBodyOnly, [&] {
      b.U8(0).U16LE(r.port);
      b.U16LE(static_cast<uint16_t>(server.size() / 2)).Bytes(server);
      if (r.enhanced) b.U16LE(static_cast<uint16_t>(database.size() / 2)).Bytes(database);
    });
    b.U16LE(0);  // old value: none
  });
  return b.Take();
}

}  // namespace dbward::protocol::tds

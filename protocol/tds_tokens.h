// The server's answer to LOGIN7, token by token (MS-TDS 2.2.7): enough to
// tell a completed login from a refused one, a routing redirect, another
// round of Windows (SSPI) authentication or an Azure AD token request, and
// to rewrite one ERROR token. Tokens that do not occur in login responses
// stop the walk instead of being guessed at.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::tds {

constexpr uint8_t kTokenReturnStatus = 0x79;
constexpr uint8_t kTokenError = 0xAA;
constexpr uint8_t kTokenInfo = 0xAB;
constexpr uint8_t kTokenLoginAck = 0xAD;
constexpr uint8_t kTokenFeatureExtAck = 0xAE;
constexpr uint8_t kTokenEnvChange = 0xE3;
constexpr uint8_t kTokenSessionState = 0xE4;
constexpr uint8_t kTokenSspi = 0xED;
constexpr uint8_t kTokenFedAuthInfo = 0xEE;
constexpr uint8_t kTokenDone = 0xFD;
constexpr uint8_t kTokenDoneProc = 0xFE;
constexpr uint8_t kTokenDoneInProc = 0xFF;

// Client message types during login.
constexpr uint8_t kSspiMessage = 0x11;     // the next SSPI blob, raw
constexpr uint8_t kFedAuthToken = 0x08;    // the token FEDAUTHINFO asked for

constexpr uint8_t kEnvRouting = 20;
constexpr uint8_t kEnvEnhancedRouting = 21;
constexpr uint16_t kDoneMore = 0x0001;
constexpr uint16_t kDoneError = 0x0002;

// ERROR numbers dbward interprets.
constexpr int32_t kErrorLoginFailed = 18456;
constexpr int32_t kErrorUntrustedDomain = 18452;  // Windows login refused (also Extended Protection)

// ENVCHANGE 20 (routing) or 21 (enhanced routing, with a database).
struct Routing {
  uint16_t port = 0;
  std::string server;    // may be "host\instance"
  std::string database;  // enhanced routing only
  bool enhanced = false;
};

struct ServerMessage {
  bool error = false;  // ERROR, not INFO
  int32_t number = 0;
  uint8_t state = 0;
  uint8_t cls = 0;
  std::string text;
  std::string server;
  size_t offset = 0;  // where the token starts in the payload
  size_t size = 0;    // its wire size
};

struct LoginResponse {
  bool login_ack = false;
  uint32_t tds_version = 0;   // LOGINACK's
  std::string server_program;  // "Microsoft SQL Server"
  std::string server_version;  // "16.0.1000"
  std::vector<ServerMessage> messages;
  std::optional<Routing> routing;
  bool sspi = false;          // an SSPI token: the client answers with kSspiMessage
  bool fedauth_info = false;  // FEDAUTHINFO: the client answers with kFedAuthToken
  std::vector<uint8_t> acked_features;
  bool done = false;       // a DONE without DONE_MORE ended the response
  bool done_error = false;
  // A token dbward does not walk stopped the walk at stopped_at; what it
  // read up to there is above.
  bool complete_walk = true;
  uint8_t stopped_at_token = 0;

  const ServerMessage* FirstError() const;
};

// Walks one complete login response message (the payload of a tabular
// result up to EOM). tds_version: what the client asked for in LOGIN7;
// LOGINACK's version takes over once it is read (it sets the DONE layout).
Result ParseLoginResponse(std::span<const uint8_t> payload, uint32_t tds_version, LoginResponse* out);

// One ERROR or INFO token, in the layout of tds_version.
std::vector<uint8_t> EncodeMessageToken(const ServerMessage& m, uint32_t tds_version);
// The ENVCHANGE token for r (for tests and fixtures of routing).
std::vector<uint8_t> EncodeRoutingEnvChange(const Routing& r);

}  // namespace dbward::protocol::tds

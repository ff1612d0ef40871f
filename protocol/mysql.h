// MySQL / MariaDB client-server protocol, the connection phase: packet
// framing, the server's Initial Handshake (v10), SSLRequest, HandshakeResponse41
// (with connect attributes), ERR packets and the auth-phase packets a proxy
// has to recognise.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::mysql {

constexpr uint32_t kClientLongPassword = 0x1;
constexpr uint32_t kClientConnectWithDb = 0x8;
constexpr uint32_t kClientProtocol41 = 0x200;
constexpr uint32_t kClientSsl = 0x800;
constexpr uint32_t kClientSecureConnection = 0x8000;
constexpr uint32_t kClientPluginAuth = 0x80000;
constexpr uint32_t kClientConnectAttrs = 0x100000;
constexpr uint32_t kClientPluginAuthLenencData = 0x200000;
constexpr uint32_t kClientDeprecateEof = 0x1000000;

// Connection-phase packets are small; connect attributes are the largest
// legitimate part (the server's own limit is 64 KiB).
constexpr size_t kMaxPreAuthPayload = 64 * 1024;
constexpr size_t kSslRequestLength = 32;

using protocol::Result;
using protocol::Status;

struct Packet {
  uint8_t seq = 0;
  std::span<const uint8_t> payload;
  size_t wire_length = 0;  // 4 + payload size
};
Result DecodePacket(std::span<const uint8_t> in, size_t max_payload, Packet* out);
std::vector<uint8_t> EncodePacket(uint8_t seq, std::span<const uint8_t> payload);
// COM_QUIT: a one-byte command packet, sequence id 0.
std::span<const uint8_t> ComQuitPacket();
// The sequence id in a packet header, even when the rest cannot be decoded
// (an error then answers that packet); -1 before the header is complete.
int PeekSequenceId(std::span<const uint8_t> in);

struct Greeting {
  uint8_t protocol_version = 0;
  std::string server_version;
  uint32_t connection_id = 0;
  std::vector<uint8_t> scramble;  // auth-plugin-data, without the trailing NUL
  uint32_t capabilities = 0;
  uint8_t charset = 0;
  uint16_t status = 0;
  std::string auth_plugin;
  size_t caps_low_offset = 0;  // where the low capability bytes sit in the payload
};
// An ERR packet in place of the greeting is reported as kMalformed with the
// server's message (use IsErr first to tell them apart).
Result ParseGreeting(std::span<const uint8_t> payload, Greeting* out);
// The greeting payload with CLIENT_SSL set or cleared, every other byte kept.
std::vector<uint8_t> GreetingWithSsl(std::span<const uint8_t> payload, const Greeting& g, bool ssl);
// "MariaDB 10.11.6" or "MySQL 8.0.36" (MariaDB's "5.5.5-" prefix removed).
std::string ServerProduct(const Greeting& g);

struct HandshakeResponse {
  bool ssl_request = false;  // the 32-byte SSLRequest
  uint32_t capabilities = 0;
  uint32_t max_packet = 0;
  uint8_t charset = 0;
  std::string user;
  std::vector<uint8_t> auth_response;
  std::string database;
  std::string auth_plugin;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string Attribute(const std::string& key) const;
};
Result ParseHandshakeResponse(std::span<const uint8_t> payload, HandshakeResponse* out);

// The SSLRequest dbward sends to the backend: the first 32 bytes of the
// client's own response (capabilities, max packet, charset and the filler that
// MariaDB uses for extended capabilities) with CLIENT_SSL set.
std::vector<uint8_t> SslRequestFrom(std::span<const uint8_t> response_payload);
// Sets CLIENT_SSL in a HandshakeResponse41 payload (in place, same length).
void SetSslBit(std::vector<uint8_t>* response_payload);
// The SSLRequest dbward sends when it has no client response to take the
// capabilities from (dbward probe, /readyz): protocol 4.1, secure
// connection and plugin auth as far as the server offers them, the server's
// character set (utf8mb4 when it names none).
std::vector<uint8_t> DefaultSslRequest(const Greeting& g);
// "_client_name _client_version" from the connect attributes, or "".
std::string ClientLibrary(const HandshakeResponse& r);

// What a server packet means during authentication.
enum class AuthPacket {
  kOk,                // authentication is over
  kErr,               // refused
  kAuthSwitch,        // 0xFE: another plugin, with its own scramble
  kFastAuthOk,        // caching_sha2_password 0x01 0x03
  kFullAuthRequired,  // caching_sha2_password 0x01 0x04: the password itself is needed
  kOther,             // other AuthMoreData (e.g. a public key) and anything else
};
AuthPacket ClassifyServerAuthPacket(std::span<const uint8_t> payload);
// A client's request for the server's RSA public key during full
// authentication: 0x02 (caching_sha2_password) or 0x01 (sha256_password).
bool IsPublicKeyRequest(std::span<const uint8_t> payload);
// AuthMoreData carrying a PEM public key, as servers answer that request.
std::vector<uint8_t> EncodePublicKeyResponse(const std::string& pem);

bool IsOk(std::span<const uint8_t> payload);
bool IsErr(std::span<const uint8_t> payload);
struct ErrInfo {
  uint16_t code = 0;
  std::string sqlstate;
  std::string message;
};
bool ParseErr(std::span<const uint8_t> payload, ErrInfo* out);
// An empty sqlstate leaves out the '#XXXXX' marker (pre-4.1 style, used
// before the handshake has agreed on protocol 4.1).
std::vector<uint8_t> EncodeErr(uint16_t code, const std::string& sqlstate, const std::string& message);

// AuthSwitchRequest (0xFE): plugin name and its scramble.
bool ParseAuthSwitch(std::span<const uint8_t> payload, std::string* plugin, std::vector<uint8_t>* scramble);

// Length-encoded integer (protocol::LengthEncodedInteger).
bool ReadLenenc(std::span<const uint8_t>* in, uint64_t* out);

}  // namespace dbward::protocol::mysql

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

enum class Status { kNeedMore, kOk, kMalformed };

struct Result {
  Status status = Status::kNeedMore;
  std::string error;
};

struct Packet {
  uint8_t seq = 0;
  std::span<const uint8_t> payload;
  size_t wire_length = 0;  // 4 + payload size
};
Result DecodePacket(std::span<const uint8_t> in, size_t max_payload, Packet* out);
std::vector<uint8_t> EncodePacket(uint8_t seq, std::span<const uint8_t> payload);

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

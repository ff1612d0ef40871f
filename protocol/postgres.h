// PostgreSQL frontend/backend protocol, the parts a TLS-upgrading proxy needs
// before authentication completes: the untyped first message (SSLRequest,
// GSSENCRequest, CancelRequest, StartupMessage), the one-byte answer to an
// encryption request, typed message framing and the authentication messages
// a proxy has to tell apart, AuthenticationSASL mechanism lists, and
// ErrorResponse.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::pg {

using protocol::Result;
using protocol::Status;

constexpr uint32_t kSslRequestCode = 80877103;     // 0x04D2162F
constexpr uint32_t kGssEncRequestCode = 80877104;  // 0x04D21630
constexpr uint32_t kCancelRequestCode = 80877102;  // 0x04D2162E
constexpr uint32_t kProtocol3 = 0x00030000;
// The server's own cap on the startup packet (MAX_STARTUP_PACKET_LENGTH).
constexpr size_t kMaxStartupPacket = 10000;
constexpr uint32_t kAuthOk = 0;
constexpr uint32_t kAuthCleartext = 3;
constexpr uint32_t kAuthMd5 = 5;
constexpr uint32_t kAuthSasl = 10;
constexpr uint32_t kAuthSaslContinue = 11;
constexpr uint32_t kAuthSaslFinal = 12;
// Protocol 3.2 (PostgreSQL 18) allows cancel keys of up to 256 bytes.
constexpr size_t kMaxCancelKey = 256;

enum class FirstMessageKind { kSslRequest, kGssEncRequest, kCancelRequest, kStartup };

struct FirstMessage {
  FirstMessageKind kind = FirstMessageKind::kStartup;
  size_t length = 0;              // bytes on the wire
  uint32_t protocol = 0;          // StartupMessage: requested protocol version
  uint32_t cancel_pid = 0;        // CancelRequest
  uint32_t cancel_secret = 0;     // first 4 bytes of the key
  std::vector<uint8_t> cancel_key;  // the whole key (4 bytes before protocol 3.2, up to 256 after)
  std::vector<std::pair<std::string, std::string>> params;  // StartupMessage
  std::string Param(std::string_view key) const;
};

// Decodes the first message a client sends on a connection (no type byte).
Result DecodeFirstMessage(std::span<const uint8_t> in, FirstMessage* out);
// "3.0" for 0x00030000.
std::string ProtocolVersionName(uint32_t protocol);

// The server's one-byte answer to SSLRequest or GSSENCRequest.
struct EncryptionAnswer {
  enum Kind { kAccepted, kRefused, kErrorMessage, kOther };
  Kind kind = kOther;  // 'S', 'N', 'E' (a pre-7.0 server or a proxy refusing), anything else
  uint8_t byte = 0;
  // Bytes behind the answer before the TLS handshake: a man-in-the-middle
  // could have injected them (CVE-2021-23222).
  bool trailing = false;
};
Result ParseEncryptionAnswer(std::span<const uint8_t> in, EncryptionAnswer* out);
// What a server answers: 'S' (go on with TLS) or 'N'.
std::span<const uint8_t> EncryptionAnswerByte(bool accept);

// A typed message: type byte + int32 length (self-included) + body.
struct Message {
  uint8_t type = 0;
  std::span<const uint8_t> body;
  size_t wire_length = 0;  // 5 + body size
};
// max_body caps the length a peer may announce before authentication.
Result DecodeMessage(std::span<const uint8_t> in, size_t max_body, Message* out);

// What a backend message during authentication means to a proxy.
enum class AuthMessage {
  kOk,            // AuthenticationOk: authentication is over
  kSasl,          // AuthenticationSASL: the mechanism list
  kOtherRequest,  // any other Authentication request (md5, SASL continue/final, ...)
  kError,         // ErrorResponse
  kOther,         // NoticeResponse, NegotiateProtocolVersion, ...
};
AuthMessage ClassifyAuthMessage(const Message& m);

// AuthenticationXXX ('R'): the int32 request code.
bool ParseAuthCode(std::span<const uint8_t> body, uint32_t* code);
// AuthenticationSASL body: int32 10, NUL-terminated names, final NUL.
bool ParseSaslMechanisms(std::span<const uint8_t> body, std::vector<std::string>* mechanisms);
std::vector<uint8_t> EncodeAuthenticationSasl(const std::vector<std::string>& mechanisms);
// SCRAM-SHA-256-PLUS and other channel-binding ("-PLUS") mechanisms.
bool IsChannelBindingMechanism(std::string_view mechanism);

struct ErrorFields {
  std::string severity = "FATAL";
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
};
std::vector<uint8_t> EncodeErrorResponse(const ErrorFields& fields);
// Parses 'E' / 'N' bodies; unknown field codes are kept out of ErrorFields.
bool ParseErrorResponse(std::span<const uint8_t> body, ErrorFields* out);
// The same ErrorResponse with its hint (H) replaced or added; every other
// field (localized and unlocalized severity, file, line, routine, ...) is kept.
bool ErrorResponseWithHint(std::span<const uint8_t> body, const std::string& hint, std::vector<uint8_t>* out);
// SQLSTATE class 28: invalid authorization specification (wrong password,
// no pg_hba.conf entry, ...).
bool IsAuthorizationFailure(std::string_view sqlstate);

// --- SASL and the rest of authentication, both directions ---------------

// AuthenticationSASLContinue / AuthenticationSASLFinal / AuthenticationOk.
std::vector<uint8_t> EncodeAuthenticationSaslContinue(std::string_view data);
std::vector<uint8_t> EncodeAuthenticationSaslFinal(std::string_view data);
std::vector<uint8_t> EncodeAuthenticationOk();
// AuthenticationSASLContinue/Final body (after the int32 code): the data.
bool ParseSaslData(std::span<const uint8_t> body, uint32_t want_code, std::string* data);
// AuthenticationMD5Password body: the 4-byte salt.
bool ParseMd5Salt(std::span<const uint8_t> body, std::array<uint8_t, 4>* salt);

// SASLInitialResponse ('p'): mechanism, int32 length (-1: none), data.
struct SaslInitialResponse {
  std::string mechanism;
  std::string data;
  bool has_data = false;
};
bool ParseSaslInitialResponse(std::span<const uint8_t> body, SaslInitialResponse* out);
std::vector<uint8_t> EncodeSaslInitialResponse(std::string_view mechanism, std::string_view data);
// SASLResponse and PasswordMessage ('p' with raw bytes).
std::vector<uint8_t> EncodeSaslResponse(std::string_view data);
std::vector<uint8_t> EncodePasswordMessage(std::string_view password);  // NUL-terminated

// StartupMessage (protocol 3.0) with these parameters.
std::vector<uint8_t> EncodeStartup(const std::vector<std::pair<std::string, std::string>>& params);

// ParameterStatus ('S'): name and value.
bool ParseParameterStatus(std::span<const uint8_t> body, std::string* name, std::string* value);

// The extended query protocol, for one statement with text parameters:
// Parse (unnamed), Bind, Execute, Sync.
std::vector<uint8_t> EncodeExtendedQuery(std::string_view sql, const std::vector<std::string>& params);
std::vector<uint8_t> EncodeTerminate();
// The same Terminate message, as static bytes (a session's goodbye).
std::span<const uint8_t> TerminateMessage();
// DataRow ('D'): columns, null as nullopt.
bool ParseDataRow(std::span<const uint8_t> body, std::vector<std::optional<std::string>>* columns);

std::vector<uint8_t> EncodeSslRequest();
std::vector<uint8_t> EncodeCancelRequest(uint32_t pid, uint32_t secret);
std::vector<uint8_t> EncodeCancelRequest(uint32_t pid, std::span<const uint8_t> key);

}  // namespace dbward::protocol::pg

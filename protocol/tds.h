// TDS (SQL Server) before login: the 8-byte packet header, message
// reassembly, PRELOGIN option tables, the LOGIN7 fields worth auditing, and
// the ERROR + DONE tokens used to refuse a login.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::tds {

constexpr uint8_t kSqlBatch = 0x01;
constexpr uint8_t kTabularResult = 0x04;
constexpr uint8_t kLogin7 = 0x10;
constexpr uint8_t kPrelogin = 0x12;
constexpr uint8_t kStatusEom = 0x01;
constexpr size_t kHeaderSize = 8;
// Packet size before LOGIN7 negotiates another one.
constexpr size_t kDefaultPacketSize = 4096;
// PRELOGIN and LOGIN7 messages are small; this caps what dbward buffers
// before authentication (LOGIN7 with SSPI or feature extensions included).
constexpr size_t kMaxPreLoginMessage = 64 * 1024;

// ENCRYPTION option values; CLIENT_CERT (0x80) may be ORed in.
constexpr uint8_t kEncryptOff = 0x00;
constexpr uint8_t kEncryptOn = 0x01;
constexpr uint8_t kEncryptNotSup = 0x02;
constexpr uint8_t kEncryptReq = 0x03;
constexpr uint8_t kEncryptClientCert = 0x80;

// PRELOGIN option tokens.
constexpr uint8_t kOptVersion = 0x00;
constexpr uint8_t kOptEncryption = 0x01;
constexpr uint8_t kOptInstOpt = 0x02;
constexpr uint8_t kOptThreadId = 0x03;
constexpr uint8_t kOptMars = 0x04;
constexpr uint8_t kOptTraceId = 0x05;
constexpr uint8_t kOptFedAuthRequired = 0x06;
constexpr uint8_t kOptNonce = 0x07;
constexpr uint8_t kOptTerminator = 0xff;

using protocol::Result;
using protocol::Status;

// The ENCRYPTION value without the CLIENT_CERT bit; -1 (absent) stays -1.
int EncryptionBase(int encryption);
// "OFF", "ON", "NOT_SUP", "REQ", "(absent)" for -1, or "0x.." for other values
// (the CLIENT_CERT bit is ignored).
std::string EncryptionName(int encryption);

struct Header {
  uint8_t type = 0;
  uint8_t status = 0;
  uint16_t length = 0;  // header included
  uint16_t spid = 0;
  uint8_t packet_id = 0;
  uint8_t window = 0;
};
Result DecodeHeader(std::span<const uint8_t> in, Header* out);
// The type of the packet that in starts with, or -1 with no byte yet.
int PeekPacketType(std::span<const uint8_t> in);
void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]);

// A message: consecutive packets of one type up to the one with EOM.
struct Message {
  uint8_t type = 0;
  std::vector<uint8_t> payload;  // reassembled
  size_t consumed = 0;           // wire bytes, headers included
};
Result DecodeMessage(std::span<const uint8_t> in, size_t max_payload, Message* out);
// Splits payload into packets of at most packet_size bytes.
std::vector<uint8_t> EncodeMessage(uint8_t type, std::span<const uint8_t> payload,
                                   size_t packet_size = kDefaultPacketSize);

struct PreloginOption {
  uint8_t token = 0;
  std::vector<uint8_t> data;
};
struct Prelogin {
  std::vector<PreloginOption> options;  // in wire order
  const PreloginOption* Find(uint8_t token) const;
  // The ENCRYPTION byte, or -1 when the option is absent.
  int encryption() const;
  void SetEncryption(uint8_t value);
  // "16.0.1000" from VERSION, or "".
  std::string Version() const;
};
Result ParsePrelogin(std::span<const uint8_t> payload, Prelogin* out);
std::vector<uint8_t> EncodePrelogin(const Prelogin& p);
// The PRELOGIN dbward sends as a client when it has none of a client's to
// pass on (dbward probe, /readyz): VERSION, ENCRYPTION=ON, INSTOPT, THREADID
// and MARS off, as drivers send it.
Prelogin DefaultClientPrelogin();
// The PRELOGIN answer dbward gives a client in place of a server's (when the
// backend failed and the failure is reported as the answer to LOGIN7).
Prelogin OwnServerPrelogin(uint8_t encryption);

// LOGIN7 feature extension ids (FeatureExt, MS-TDS 2.2.6.4).
constexpr uint8_t kFeatureSessionRecovery = 0x01;
constexpr uint8_t kFeatureFedAuth = 0x02;
constexpr uint8_t kFeatureUtf8Support = 0x0A;
constexpr uint8_t kFeatureEnhancedRouting = 0x0F;
constexpr uint8_t kFeatureTerminator = 0xFF;
// FEDAUTH libraries (the Options byte's upper seven bits).
constexpr uint8_t kFedAuthSecurityToken = 0x01;  // an access token inline
constexpr uint8_t kFedAuthMsal = 0x02;           // ADAL/MSAL: FEDAUTHINFO, then a token message

struct Login7 {
  uint32_t tds_version = 0;
  uint32_t packet_size = 0;
  uint32_t client_pid = 0;
  std::string host_name;
  std::string user_name;
  std::string app_name;
  std::string server_name;
  std::string library;  // CltIntName: "ODBC", "Tedious", "DB-Library", ...
  std::string language;
  std::string database;
  bool integrated_security = false;  // SSPI / Windows authentication
  bool read_only_intent = false;     // ApplicationIntent=ReadOnly (TypeFlags fReadOnlyIntent)
  size_t sspi_bytes = 0;             // the first SSPI (NTLM/Kerberos/SPNEGO) blob
  std::vector<uint8_t> features;     // FeatureExt ids, in wire order
  int fedauth_library = -1;          // kFedAuthSecurityToken, kFedAuthMsal, other; -1: no FEDAUTH
  bool fedauth_echo = false;         // fFedAuthEcho: the server's FEDAUTHREQUIRED was 1
  bool HasFeature(uint8_t id) const;
};
// Parses LOGIN7 for auditing and routing; the password field is never
// decoded, the SSPI blob and access tokens are not copied.
Result ParseLogin7(std::span<const uint8_t> payload, Login7* out);
// LOGIN7 with another ServerName, every offset behind it moved (the
// FeatureExt pointer inside the extension block included), as a client
// connecting to server_name would have sent it. The output holds the
// (obfuscated) password: the caller wipes it.
// database, when given, replaces Database too (enhanced routing names one).
Result RewriteLogin7ServerName(std::span<const uint8_t> payload, const std::string& server_name,
                               std::vector<uint8_t>* out, const std::string* database = nullptr);
// 0x74000004 -> "7.4", 0x730B0003 -> "7.3B", 0x08000000 -> "8.0".
std::string TdsVersionName(uint32_t version);

// A tabular-result payload with an ERROR token and a final DONE(error), as
// SQL Server sends to refuse a login (e.g. number 18456, class 14), in the
// token layout of the client's TDS version (7.0 and 7.1 have shorter line
// numbers and row counts).
std::vector<uint8_t> EncodeLoginError(int32_t number, uint8_t state, uint8_t cls, const std::string& message,
                                      const std::string& server_name, uint32_t tds_version = 0x74000004);
// Whether tokens use TDS 7.2's wider fields (DONE row counts, line numbers).
bool HasWideTokens(uint32_t tds_version);

std::string Utf16LeToUtf8(std::span<const uint8_t> in);
std::vector<uint8_t> Utf8ToUtf16Le(const std::string& in);

}  // namespace dbward::protocol::tds

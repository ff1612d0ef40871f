// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS messages (RFC 5802, RFC 7677) as
// PostgreSQL and libpq exchange them, and the stored verifier (RFC 5803 form,
// pg_authid.rolpassword): parsing and building only. The arithmetic
// (HMAC, SHA-256) lives in tls/scram_keys.h; protocol/ stays free of crypto.
//
// Errors carry PostgreSQL's own SQLSTATE and wording, so that a client that
// talks to dbward reads what PostgreSQL would have said.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dbward::protocol::scram {

constexpr std::string_view kMechanism = "SCRAM-SHA-256";
constexpr std::string_view kMechanismPlus = "SCRAM-SHA-256-PLUS";
constexpr std::string_view kChannelBindingType = "tls-server-end-point";
constexpr size_t kKeySize = 32;         // SHA-256
constexpr size_t kRawNonceSize = 18;    // as PostgreSQL and libpq
constexpr size_t kMaxMessage = 1024;    // PostgreSQL's PG_MAX_SASL_MESSAGE_LENGTH

struct Error {
  std::string sqlstate;  // "08P01", "28000", "0A000", "28P01"
  std::string message;
  std::string detail;
};

// RFC 4648 base64 with padding; decoding accepts only the canonical form
// (PostgreSQL compares c= as text).
std::string Base64Encode(std::span<const uint8_t> data);
bool Base64Decode(std::string_view text, std::vector<uint8_t>* out);

// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
struct Verifier {
  uint32_t iterations = 0;
  std::vector<uint8_t> salt;
  std::vector<uint8_t> stored_key;  // 32 bytes
  std::vector<uint8_t> server_key;  // 32 bytes
  // Overwrites the keys; the verifier is a secret (ServerKey lets anyone
  // impersonate the server, StoredKey check a guessed password).
  void Wipe();
};
// *why says what is wrong without repeating the text (it is a secret).
bool ParseVerifier(std::string_view text, Verifier* out, std::string* why);

// The gs2 channel-binding flag of client-first-message.
enum class Binding {
  kNone,        // "n": the client does not support channel binding
  kClientOnly,  // "y": it does, but thinks the server does not
  kBound,       // "p=tls-server-end-point"
};

struct ClientFirst {
  Binding binding = Binding::kNone;
  std::string gs2_header;  // "n,," / "y,," / "p=tls-server-end-point,,"
  std::string bare;        // client-first-message-bare, for AuthMessage
  std::string nonce;
};
std::optional<Error> ParseClientFirst(std::string_view message, ClientFirst* out);
// PostgreSQL's checks of the flag against the mechanism the client chose
// and whether the connection is TLS; server_offers_plus: whether the server
// listed SCRAM-SHA-256-PLUS (a "y" client then tried to downgrade).
std::optional<Error> CheckBindingChoice(const ClientFirst& first, bool chose_plus, bool server_offers_plus);

// server-first-message: r=<client nonce + server nonce>,s=<salt>,i=<iterations>
std::string EncodeServerFirst(std::string_view nonce, std::span<const uint8_t> salt, uint32_t iterations);
struct ServerFirst {
  std::string nonce;
  std::vector<uint8_t> salt;
  uint32_t iterations = 0;
};
// *why in libpq's words ("invalid SCRAM response (nonce mismatch)").
bool ParseServerFirst(std::string_view message, std::string_view client_nonce, ServerFirst* out, std::string* why);

struct ClientFinal {
  std::string channel_binding;  // the c= value, base64 as sent
  std::string nonce;
  std::vector<uint8_t> proof;   // 32 bytes
  std::string without_proof;    // client-final-message-without-proof, for AuthMessage
};
std::optional<Error> ParseClientFinal(std::string_view message, ClientFinal* out);
// What c= must be: base64 of the gs2 header, followed for "p=" by the
// tls-server-end-point hash of the server certificate.
std::string ExpectedChannelBinding(const ClientFirst& first, std::span<const uint8_t> certificate_hash);

// dbward as the client: client-first-message and the final message.
std::string EncodeClientFirst(Binding binding, std::string_view nonce);
std::string GsHeader(Binding binding);
std::string EncodeClientFinalWithoutProof(Binding binding, std::span<const uint8_t> certificate_hash,
                                          std::string_view nonce);
std::string WithProof(std::string_view without_proof, std::span<const uint8_t> proof);

// server-final-message: "v=" signature, or "e=" error (*error set).
std::string EncodeServerFinal(std::span<const uint8_t> signature);
bool ParseServerFinal(std::string_view message, std::vector<uint8_t>* signature, std::string* error);

// client-first-message-bare "," server-first-message "," client-final-message-without-proof
std::string AuthMessage(std::string_view client_first_bare, std::string_view server_first,
                        std::string_view client_final_without_proof);

// The printable nonce alphabet: %x21-2B / %x2D-7E.
bool ValidNonce(std::string_view nonce);

}  // namespace dbward::protocol::scram

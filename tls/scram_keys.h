// The arithmetic of SCRAM-SHA-256 (RFC 5802 section 3) for a party that holds
// only the stored verifier (StoredKey, ServerKey), never the password:
// check a client's proof and recover its ClientKey, prove to the client that
// it knows ServerKey, and compute a proof of its own to a server holding the
// same verifier. Message syntax is protocol/scram.h's business.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dbward::tls::scram {

constexpr size_t kKeySize = 32;

// A key that wipes itself.
class Key {
 public:
  Key() { bytes_.fill(0); }
  ~Key();
  Key(const Key& other) = default;
  Key& operator=(const Key& other) = default;
  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  static constexpr size_t size() { return kKeySize; }
  std::span<const uint8_t> span() const { return bytes_; }
  operator std::span<const uint8_t>() const { return bytes_; }

 private:
  std::array<uint8_t, kKeySize> bytes_;
};

Key Sha256(std::span<const uint8_t> data);
Key HmacSha256(std::span<const uint8_t> key, std::string_view message);
// Equal length and contents, in time independent of the contents.
bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);
// Base64 of `raw` random bytes: a SCRAM nonce (printable, no ',').
std::string RandomNonce(size_t raw = 18);

// Server side. The client's proof is right when H(proof XOR HMAC(StoredKey,
// AuthMessage)) == StoredKey; *client_key gets what the XOR recovered.
bool VerifyClientProof(std::span<const uint8_t> stored_key, std::string_view auth_message,
                       std::span<const uint8_t> proof, Key* client_key);
// HMAC(ServerKey, AuthMessage): the "v=" a server sends, and what a client
// expects back.
Key ServerSignature(std::span<const uint8_t> server_key, std::string_view auth_message);
// Client side: ClientKey XOR HMAC(H(ClientKey), AuthMessage).
Key ClientProof(std::span<const uint8_t> client_key, std::string_view auth_message);

// From a password, as PostgreSQL builds a verifier (for tests and fixtures;
// dbward itself never sees a password). SaltedPassword via PBKDF2.
struct DerivedKeys {
  Key client_key, stored_key, server_key;
};
DerivedKeys DeriveKeys(std::string_view password, std::span<const uint8_t> salt, uint32_t iterations);

}  // namespace dbward::tls::scram

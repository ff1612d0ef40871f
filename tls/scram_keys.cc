#include "tls/scram_keys.h"

#include <openssl/crypto.h>
#include <openssl/digest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <vector>

namespace dbward::tls::scram {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64(std::span<const uint8_t> data) {
  std::string out;
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = data[i] << 16;
    if (rest == 2) v |= data[i + 1] << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace

Key::~Key() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

Key Sha256(std::span<const uint8_t> data) {
  Key k;
  SHA256(data.data(), data.size(), k.data());
  return k;
}

Key HmacSha256(std::span<const uint8_t> key, std::string_view message) {
  Key k;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), key.size(), reinterpret_cast<const uint8_t*>(message.data()), message.size(), k.data(),
       &len);
  return k;
}

bool ConstantTimeEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomNonce(size_t raw) {
  std::vector<uint8_t> bytes(raw);
  RAND_bytes(bytes.data(), bytes.size());
  return Base64(bytes);
}

bool VerifyClientProof(std::span<const uint8_t> stored_key, std::string_view auth_message,
                       std::span<const uint8_t> proof, Key* client_key) {
  if (proof.size() != kKeySize || stored_key.size() != kKeySize) return false;
  Key signature = HmacSha256(stored_key, auth_message);
  Key recovered;
  for (size_t i = 0; i < kKeySize; i++) recovered.data()[i] = proof[i] ^ signature.data()[i];
  bool ok = ConstantTimeEqual(Sha256(recovered), stored_key);
  if (ok) *client_key = recovered;
  return ok;
}

Key ServerSignature(std::span<const uint8_t> server_key, std::string_view auth_message) {
  return HmacSha256(server_key, auth_message);
}

Key ClientProof(std::span<const uint8_t> client_key, std::string_view auth_message) {
  Key stored = Sha256(client_key);
  Key signature = HmacSha256(stored, auth_message);
  Key proof;
  for (size_t i = 0; i < kKeySize; i++) proof.data()[i] = client_key[i] ^ signature.data()[i];
  return proof;
}

DerivedKeys DeriveKeys(std::string_view password, std::span<const uint8_t> salt, uint32_t iterations) {
  Key salted;
  PKCS5_PBKDF2_HMAC(password.data(), password.size(), salt.data(), salt.size(), iterations, EVP_sha256(), kKeySize,
                    salted.data());
  DerivedKeys d;
  d.client_key = HmacSha256(salted, "Client Key");
  d.stored_key = Sha256(d.client_key);
  d.server_key = HmacSha256(salted, "Server Key");
  return d;
}

}  // namespace dbward::tls::scram

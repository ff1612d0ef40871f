// The RSA key dbward uses for MySQL's caching_sha2_password / sha256_password
// "full authentication" on a plaintext client leg: the client encrypts its
// password to this key (RSA-OAEP), dbward decrypts it and hands it to the
// backend over the verified TLS leg.
#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dbward::tls {

class RsaKey {
 public:
  // Loads a PEM private key (RSA, at least 2048 bits).
  static std::shared_ptr<RsaKey> Load(const std::string& path, std::string* error);
  static std::shared_ptr<RsaKey> Generate(int bits, std::string* error);
  ~RsaKey();

  // "-----BEGIN PUBLIC KEY-----..." as MySQL servers send it.
  const std::string& public_pem() const { return public_pem_; }
  // RSA-OAEP (SHA-1, MySQL's choice) decryption; false if it does not decrypt.
  bool DecryptOaep(std::span<const uint8_t> in, std::vector<uint8_t>* out) const;

 private:
  explicit RsaKey(EVP_PKEY* key);
  EVP_PKEY* key_;
  std::string public_pem_;
};

}  // namespace dbward::tls

#include "tls/rsa_key.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "tls/context.h"

namespace dbward::tls {

RsaKey::RsaKey(EVP_PKEY* key) : key_(key) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), key_);
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  public_pem_.assign(reinterpret_cast<const char*>(data), len);
}

RsaKey::~RsaKey() { EVP_PKEY_free(key_); }

std::shared_ptr<RsaKey> RsaKey::Load(const std::string& path, std::string* error) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    *error = "cannot open RSA key " + path + ": " + TakeErrors();
    return nullptr;
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    *error = "cannot load RSA key " + path + " (PEM private key without password expected): " + TakeErrors();
    return nullptr;
  }
  if (EVP_PKEY_id(key) != EVP_PKEY_RSA || EVP_PKEY_bits(key) < 2048) {
    EVP_PKEY_free(key);
    *error = "RSA key " + path + " must be an RSA key of at least 2048 bits";
    return nullptr;
  }
  return std::shared_ptr<RsaKey>(new RsaKey(key));
}

std::shared_ptr<RsaKey> RsaKey::Generate(int bits, std::string* error) {
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  BN_set_word(e.get(), RSA_F4);
  if (!RSA_generate_key_ex(rsa.get(), bits, e.get(), nullptr)) {
    *error = "cannot generate RSA key: " + TakeErrors();
    return nullptr;
  }
  EVP_PKEY* key = EVP_PKEY_new();
  EVP_PKEY_assign_RSA(key, rsa.release());
  return std::shared_ptr<RsaKey>(new RsaKey(key));
}

bool RsaKey::DecryptOaep(std::span<const uint8_t> in, std::vector<uint8_t>* out) const {
  bssl::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key_, nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1) {
    TakeErrors();
    return false;
  }
  size_t len = 0;
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in.data(), in.size()) != 1) {
    TakeErrors();
    return false;
  }
  out->resize(len);
  if (EVP_PKEY_decrypt(ctx.get(), out->data(), &len, in.data(), in.size()) != 1) {
    TakeErrors();
    out->clear();
    return false;
  }
  out->resize(len);
  return true;
}

}  // namespace dbward::tls

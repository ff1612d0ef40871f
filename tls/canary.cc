#include "tls/canary.h"

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace dbward::tls {
namespace {

bssl::UniquePtr<EVP_PKEY> NewEcKey() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get())) return nullptr;
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) return nullptr;
  return key;
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1);
}

bssl::UniquePtr<X509> NewCert(X509_NAME* subject, X509_NAME* issuer, EVP_PKEY* key, long not_before, long not_after) {
  bssl::UniquePtr<X509> cert(X509_new());
  uint8_t serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  bssl::UniquePtr<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!cert || !X509_set_version(cert.get(), X509_VERSION_3) ||
      !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) ||
      !X509_set_subject_name(cert.get(), subject) || !X509_set_issuer_name(cert.get(), issuer) ||
      !X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after) || !X509_set_pubkey(cert.get(), key)) {
    return nullptr;
  }
  return cert;
}

bssl::UniquePtr<X509> FirstCert(const std::string& path) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  return bssl::UniquePtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

}  // namespace

const char* CanaryModeName(CanaryMode mode) {
  switch (mode) {
    case CanaryMode::kUntrusted: return "untrusted";
    case CanaryMode::kWrongName: return "wrong-name";
    case CanaryMode::kExpired: return "expired";
  }
  return "?";
}

std::shared_ptr<Context> NewCanaryContext(CanaryMode mode, const ServerOptions& options, std::string* error) {
  bssl::UniquePtr<X509> real = FirstCert(options.cert.cert_file);
  if (!real) {
    *error = "canary: cannot read " + options.cert.cert_file;
    return nullptr;
  }
  bssl::UniquePtr<EVP_PKEY> ca_key = NewEcKey();
  bssl::UniquePtr<EVP_PKEY> leaf_key = NewEcKey();
  if (!ca_key || !leaf_key) {
    *error = "canary: key generation failed";
    return nullptr;
  }
  bssl::UniquePtr<X509_NAME> ca_name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(ca_name.get(), "O", MBSTRING_ASC,
                             reinterpret_cast<const uint8_t*>("dbward canary"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(ca_name.get(), "CN", MBSTRING_ASC,
                             reinterpret_cast<const uint8_t*>("dbward canary CA - never trust this"), -1, -1, 0);
  constexpr long kDay = 24 * 3600;
  bssl::UniquePtr<X509> ca = NewCert(ca_name.get(), ca_name.get(), ca_key.get(), -kDay, 365 * kDay);
  if (!ca || !AddExt(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExt(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !X509_sign(ca.get(), ca_key.get(), EVP_sha256())) {
    *error = "canary: cannot build the canary CA";
    return nullptr;
  }
  long not_before = -kDay, not_after = 30 * kDay;
  if (mode == CanaryMode::kExpired) {
    not_before = -60 * kDay;
    not_after = -30 * kDay;
  }
  bssl::UniquePtr<X509_NAME> subject;
  if (mode == CanaryMode::kWrongName) {
    subject.reset(X509_NAME_new());
    X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_ASC,
                               reinterpret_cast<const uint8_t*>("dbward-canary.invalid"), -1, -1, 0);
  } else {
    subject.reset(X509_NAME_dup(X509_get_subject_name(real.get())));
  }
  bssl::UniquePtr<X509> leaf = NewCert(subject.get(), ca_name.get(), leaf_key.get(), not_before, not_after);
  bool ok = leaf != nullptr;
  if (ok && mode == CanaryMode::kWrongName) {
    ok = AddExt(leaf.get(), ca.get(), NID_subject_alt_name, "DNS:dbward-canary.invalid");
  } else if (ok) {
    // Copy the real certificate's names, so only trust (or time) is wrong.
    int at = X509_get_ext_by_NID(real.get(), NID_subject_alt_name, -1);
    if (at >= 0) ok = X509_add_ext(leaf.get(), X509_get_ext(real.get(), at), -1);
  }
  ok = ok && AddExt(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth") &&
       AddExt(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE") &&
       X509_sign(leaf.get(), ca_key.get(), EVP_sha256());
  if (!ok) {
    *error = "canary: cannot build the canary certificate";
    return nullptr;
  }
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), options.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), std::max(options.min_version, options.max_version));
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (!SSL_CTX_use_certificate(ctx.get(), leaf.get()) || !SSL_CTX_add1_chain_cert(ctx.get(), ca.get()) ||
      !SSL_CTX_use_PrivateKey(ctx.get(), leaf_key.get())) {
    *error = "canary: cannot install the canary certificate";
    return nullptr;
  }
  // The same client certificate request as the real context: a canary must
  // differ only in dbward's own certificate.
  if (!options.client_ca_file.empty()) {
    LoadError load;
    if (!RequestClientCertificates(ctx.get(), options.client_ca_file, &load)) {
      *error = "canary: " + load.Message();
      return nullptr;
    }
  }
  return Context::WrapServer(ctx.release(), options.alpn);
}

}  // namespace dbward::tls

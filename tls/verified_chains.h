// Chains a client context has already validated, so the next handshake with
// the same server skips X509_verify_cert (its CA signature check is most of
// a backend handshake's CPU; a connect-per-request client pays it on every
// connection). What is remembered is exactly the input that was judged --
// every certificate the server sent, byte for byte, and the name checked --
// with the verdict "valid", until the earliest of: kTtlSeconds, any
// certificate of the validated path expiring, the store's CRLs going stale.
// Failures are never remembered: each one is validated again and explained.
// The cache belongs to one Context, and a reload builds a new one, so a
// changed CA, CRL, pin or verify mode never meets an old verdict. The
// server still proves on every handshake that it holds the key
// (CertificateVerify); only the chain's validation is reused.
#pragma once

#include <openssl/base.h>
#include <openssl/pool.h>  // STACK_OF(CRYPTO_BUFFER)

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace dbward::tls {

class VerifiedChains {
 public:
  static constexpr int64_t kTtlSeconds = 300;
  static constexpr size_t kMaxEntries = 256;
  using Key = std::array<uint8_t, 32>;

  // SHA-256 over the name and each certificate's DER, length-prefixed.
  static Key KeyOf(const std::string& server_name, const STACK_OF(CRYPTO_BUFFER)* chain);

  // The leaf's notAfter when this exact chain was found valid for this name
  // and the verdict still holds at `now`.
  bool Find(const Key& key, int64_t now, int64_t* leaf_not_after);
  // valid_until: the verdict's own end (path expiry, CRL nextUpdate).
  void Remember(const Key& key, int64_t now, int64_t valid_until, int64_t leaf_not_after);

  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  size_t size() const;

 private:
  struct Entry {
    int64_t until;
    int64_t leaf_not_after;
  };
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::atomic<uint64_t> hits_{0};
};

}  // namespace dbward::tls

#include "tls/verified_chains.h"

#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/stack.h>

#include <algorithm>

namespace dbward::tls {

namespace {

void AddLength(SHA256_CTX* sha, size_t n) {
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (56 - 8 * i));
  SHA256_Update(sha, len, sizeof(len));
}

}  // namespace

VerifiedChains::Key VerifiedChains::KeyOf(const std::string& server_name, const STACK_OF(CRYPTO_BUFFER)* chain) {
  SHA256_CTX sha;
  SHA256_Init(&sha);
  AddLength(&sha, server_name.size());
  SHA256_Update(&sha, server_name.data(), server_name.size());
  const size_t n = chain != nullptr ? sk_CRYPTO_BUFFER_num(chain) : 0;
  AddLength(&sha, n);
  for (size_t i = 0; i < n; i++) {
    const CRYPTO_BUFFER* cert = sk_CRYPTO_BUFFER_value(chain, i);
    AddLength(&sha, CRYPTO_BUFFER_len(cert));
    SHA256_Update(&sha, CRYPTO_BUFFER_data(cert), CRYPTO_BUFFER_len(cert));
  }
  Key key;
  SHA256_Final(key.data(), &sha);
  return key;
}

bool VerifiedChains::Find(const Key& key, int64_t now, int64_t* leaf_not_after) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  if (now >= it->second.until) {
    entries_.erase(it);
    return false;
  }
  *leaf_not_after = it->second.leaf_not_after;
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void VerifiedChains::Remember(const Key& key, int64_t now, int64_t valid_until, int64_t leaf_not_after) {
  const int64_t until = std::min(now + kTtlSeconds, valid_until);
  if (until <= now) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= kMaxEntries && entries_.find(key) == entries_.end()) {
    // Full: expired verdicts go first, and if none has, all of them (a
    // backend fleet this large is re-validated once, not mis-served).
    std::erase_if(entries_, [now](const auto& e) { return now >= e.second.until; });
    if (entries_.size() >= kMaxEntries) entries_.clear();
  }
  entries_[key] = {until, leaf_not_after};
}

size_t VerifiedChains::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace dbward::tls

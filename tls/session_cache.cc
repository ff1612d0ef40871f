#include "tls/session_cache.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>

#include "tls/cert_info.h"

namespace dbward::tls {

namespace {

bool Usable(const SSL_SESSION* s, int64_t now) {
  int64_t made = static_cast<int64_t>(SSL_SESSION_get_time(s));
  int64_t lifetime = std::min<int64_t>(static_cast<int64_t>(SSL_SESSION_get_timeout(s)), SessionCache::kMaxAgeSeconds);
  if (now < made || now >= made + lifetime) return false;
  // The leaf's notAfter, from the DER the session keeps (client contexts
  // parse no X509 objects into their sessions).
  const STACK_OF(CRYPTO_BUFFER)* chain = SSL_SESSION_get0_peer_certificates(s);
  if (chain == nullptr || sk_CRYPTO_BUFFER_num(chain) == 0) return false;
  bssl::UniquePtr<X509> leaf(X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(chain, 0)));
  return leaf != nullptr && now < NotAfterUnix(leaf.get());
}

}  // namespace

bssl::UniquePtr<SSL_SESSION> SessionCache::Take(const std::string& name, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  it->second.used = ++clock_;
  auto& q = it->second.sessions;
  bssl::UniquePtr<SSL_SESSION> out;
  while (!q.empty() && !out) {
    bssl::UniquePtr<SSL_SESSION>& newest = q.back();
    if (!Usable(newest.get(), now)) {
      q.pop_back();
      continue;
    }
    if (SSL_SESSION_should_be_single_use(newest.get())) {
      out = std::move(newest);
      q.pop_back();
    } else {
      SSL_SESSION_up_ref(newest.get());
      out.reset(newest.get());
    }
  }
  if (q.empty()) by_name_.erase(it);
  return out;
}

void SessionCache::Put(const std::string& name, bssl::UniquePtr<SSL_SESSION> session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    if (by_name_.size() >= kNames) {
      by_name_.erase(std::min_element(by_name_.begin(), by_name_.end(), [](const auto& a, const auto& b) {
        return a.second.used < b.second.used;
      }));
    }
    it = by_name_.emplace(name, Entry{}).first;
  }
  it->second.used = ++clock_;
  auto& q = it->second.sessions;
  // A TLS 1.2 server hands out one session per full handshake; the newest
  // replaces the others, since they all resume the same way.
  if (!SSL_SESSION_should_be_single_use(session.get())) q.clear();
  q.push_back(std::move(session));
  while (q.size() > kPerName) q.pop_front();
}

size_t SessionCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [name, entry] : by_name_) n += entry.sessions.size();
  return n;
}

}  // namespace dbward::tls

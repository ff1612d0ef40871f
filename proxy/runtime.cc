#include "proxy/runtime.h"

#include "tls/canary.h"

#include <openssl/mem.h>
#include <openssl/rand.h>

#include <arpa/inet.h>

#include <chrono>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dbward::proxy {

bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read key password file " + path + ": " + strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string pw = ss.str();
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (pw.empty()) {
    *error = "key password file " + path + " is empty";
    return false;
  }
  *out = std::move(pw);
  return true;
}

namespace {

// Wipes a password once the key is decrypted; it is never needed again.
struct Secret {
  std::string value;
  ~Secret() { OPENSSL_cleanse(value.data(), value.size()); }
};

Position PickPosition(const std::string& msg, const BackendTlsConfig& t) {
  if (!t.key_password_file.empty() && msg.find("password") != std::string::npos) return t.password_pos;
  if (!t.key_file.empty() && msg.find(t.key_file) != std::string::npos &&
      msg.find("does not match") == std::string::npos) {
    return t.key_pos;
  }
  if (!t.cert_file.empty() && msg.find(t.cert_file) != std::string::npos) return t.cert_pos;
  if (!t.ca_file.empty() && msg.find(t.ca_file) != std::string::npos) return t.ca_pos;
  return t.pos;
}

Position PickPosition(const std::string& msg, const ClientTlsConfig& t) {
  if (!t.key_password_file.empty() && msg.find("password") != std::string::npos) return t.password_pos;
  if (msg.find(t.key_file) != std::string::npos && msg.find("does not match") == std::string::npos) {
    return t.key_pos;
  }
  if (msg.find(t.cert_file) != std::string::npos) return t.cert_pos;
  return t.pos;
}

}  // namespace

bool BuildTlsMaterial(const Config& config, const ListenerConfig& l, const TlsMaterial* previous,
                      std::shared_ptr<const TlsMaterial>* out, ConfigError* error) {
  auto m = std::make_shared<TlsMaterial>();
  const BackendTlsConfig& b = l.backend_tls;
  tls::ClientOptions co;
  co.verify = b.full_verify ? tls::VerifyMode::kFull : tls::VerifyMode::kCa;
  co.ca_file = b.ca_file;
  co.min_version = b.min_version;
  if (l.protocol == Protocol::kPostgres && b.direct) co.alpn = {"postgresql"};
  if (l.protocol == Protocol::kTds && b.tds_strict) co.alpn = {"tds/8.0"};
  co.client_cert.cert_file = b.cert_file;
  co.client_cert.key_file = b.key_file;
  std::string msg;
  Secret pw;
  if (!b.key_password_file.empty() && !ReadPasswordFile(b.key_password_file, &pw.value, &msg)) {
    *error = {config.path, b.password_pos, "listener " + l.name + ": " + msg};
    return false;
  }
  co.client_cert.key_password = pw.value;
  m->backend = tls::Context::NewClient(co, &msg);
  OPENSSL_cleanse(co.client_cert.key_password.data(), co.client_cert.key_password.size());
  if (!m->backend) {
    *error = {config.path, PickPosition(msg, b), "listener " + l.name + ": backend_tls: " + msg};
    return false;
  }
  if (l.client_tls) {
    const ClientTlsConfig& c = *l.client_tls;
    tls::ServerOptions so;
    so.cert.cert_file = c.cert_file;
    so.cert.key_file = c.key_file;
    so.min_version = c.min_version;
    if (l.protocol == Protocol::kPostgres) so.alpn = {"postgresql"};
    if (l.protocol == Protocol::kTds) so.max_version = 0x0303;
    Secret cpw;
    if (!c.key_password_file.empty() && !ReadPasswordFile(c.key_password_file, &cpw.value, &msg)) {
      *error = {config.path, c.password_pos, "listener " + l.name + ": " + msg};
      return false;
    }
    so.cert.key_password = cpw.value;
    m->client = tls::Context::NewServer(so, &msg);
    tls::CanaryMode mode = tls::CanaryMode::kUntrusted;
    if (l.canary) {
      mode = l.canary->mode == "expired" ? tls::CanaryMode::kExpired
             : l.canary->mode == "wrong-name" ? tls::CanaryMode::kWrongName
                                              : tls::CanaryMode::kUntrusted;
      if (m->client) {
        m->canary_client = tls::NewCanaryContext(mode, so, &msg);
        if (!m->canary_client) m->client.reset();
      }
    }
    if (m->client && l.protocol == Protocol::kTds) {
      so.max_version = 0x0304;
      so.alpn = {"tds/8.0"};
      m->client_strict = tls::Context::NewServer(so, &msg);
      if (!m->client_strict) m->client.reset();
      if (m->client && l.canary) {
        m->canary_client_strict = tls::NewCanaryContext(mode, so, &msg);
        if (!m->canary_client_strict) m->client.reset();
      }
    }
    OPENSSL_cleanse(so.cert.key_password.data(), so.cert.key_password.size());
    if (!m->client) {
      *error = {config.path, PickPosition(msg, c), "listener " + l.name + ": client_tls: " + msg};
      return false;
    }
  }
  if (l.protocol == Protocol::kMysql) {
    // caching_sha2_password clients on a plaintext leg encrypt the password
    // to this key; without a configured one dbward makes its own (once).
    if (!l.rsa_key_file.empty()) {
      m->rsa_key = tls::RsaKey::Load(l.rsa_key_file, &msg);
    } else if (previous != nullptr && previous->rsa_key) {
      m->rsa_key = previous->rsa_key;
    } else {
      m->rsa_key = tls::RsaKey::Generate(2048, &msg);
    }
    if (!m->rsa_key) {
      *error = {config.path, l.rsa_key_pos, "listener " + l.name + ": " + msg};
      return false;
    }
  }
  *out = std::move(m);
  return true;
}

bool BuildListenerRuntimes(const Config& config,
                           std::vector<std::unique_ptr<ListenerRuntime>>* out,
                           ConfigError* error) {
  out->clear();
  for (const ListenerConfig& l : config.listeners) {
    auto rt = std::make_unique<ListenerRuntime>();
    rt->config = l;
    std::shared_ptr<const TlsMaterial> tls;
    if (!BuildTlsMaterial(config, l, nullptr, &tls, error)) return false;
    rt->SetTls(std::move(tls));
    if (l.canary) rt->canary = std::make_unique<CanaryPolicy>(*l.canary);
    out->push_back(std::move(rt));
  }
  return true;
}

CanaryPolicy::CanaryPolicy(const CanaryConfig& config) : config_(config) {
  for (const std::string& cidr : config.clients) {
    Net n{};
    size_t slash = cidr.find('/');
    std::string addr = cidr.substr(0, slash);
    if (inet_pton(AF_INET, addr.c_str(), n.addr) == 1) {
      n.family = AF_INET;
      n.prefix = 32;
    } else if (inet_pton(AF_INET6, addr.c_str(), n.addr) == 1) {
      n.family = AF_INET6;
      n.prefix = 128;
    } else {
      continue;  // the config loader already rejected it
    }
    if (slash != std::string::npos) n.prefix = std::stoi(cidr.substr(slash + 1));
    nets_.push_back(n);
  }
  uint8_t seed[8];
  RAND_bytes(seed, sizeof seed);
  memcpy(&rng_state_, seed, sizeof rng_state_);
  rng_state_ |= 1;
}

bool CanaryPolicy::InScope(const std::string& ip) const {
  if (nets_.empty()) return true;
  uint8_t a[16];
  int family = inet_pton(AF_INET, ip.c_str(), a) == 1 ? AF_INET : inet_pton(AF_INET6, ip.c_str(), a) == 1 ? AF_INET6 : 0;
  for (const Net& n : nets_) {
    if (n.family != family) continue;
    int full = n.prefix / 8, rest = n.prefix % 8;
    if (memcmp(a, n.addr, static_cast<size_t>(full)) != 0) continue;
    if (rest != 0) {
      uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((a[full] & mask) != (n.addr[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

bool CanaryPolicy::ShouldTest(const std::string& ip) {
  if (config_.sample <= 0 || !InScope(ip)) return false;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = validating_until_ms_.find(ip);
  if (it != validating_until_ms_.end()) {
    if (it->second > now) return false;
    validating_until_ms_.erase(it);
  }
  if (config_.sample >= 1.0) return true;
  // xorshift64: sampling needs spread, not secrecy.
  rng_state_ ^= rng_state_ << 13;
  rng_state_ ^= rng_state_ >> 7;
  rng_state_ ^= rng_state_ << 17;
  return static_cast<double>(rng_state_ >> 11) / static_cast<double>(1ULL << 53) < config_.sample;
}

void CanaryPolicy::RememberValidating(const std::string& ip) {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  std::lock_guard<std::mutex> lock(mu_);
  if (validating_until_ms_.size() > 100'000) validating_until_ms_.clear();  // bound the memory
  validating_until_ms_[ip] = now + static_cast<int64_t>(config_.remember_ms);
}

std::vector<std::string> TlsFiles(const ListenerConfig& l) {
  std::vector<std::string> files;
  auto add = [&](const std::string& f) {
    if (!f.empty()) files.push_back(f);
  };
  add(l.backend_tls.ca_file);
  add(l.backend_tls.cert_file);
  add(l.backend_tls.key_file);
  add(l.backend_tls.key_password_file);
  if (l.client_tls) {
    add(l.client_tls->cert_file);
    add(l.client_tls->key_file);
    add(l.client_tls->key_password_file);
  }
  add(l.rsa_key_file);
  return files;
}

}  // namespace dbward::proxy

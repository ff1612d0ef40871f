// What a listener needs at run time, built once from the configuration and
// shared read-only by all workers: TLS contexts and counters.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "tls/context.h"
#include "tls/rsa_key.h"

namespace dbward::proxy {

// Everything a listener loads from certificate, key, CA and password files.
// Immutable once built; a reload builds a new one and swaps it in, so a
// session keeps the set it started with.
struct TlsMaterial {
  std::shared_ptr<tls::Context> backend;
  std::shared_ptr<tls::Context> client;         // null when client_tls is not configured
  // tds only: TLS inside PRELOGIN packets is capped at TLS 1.2 as SQL Server
  // does for TDS 7.x; TDS 8.0 (strict) requires ALPN tds/8.0.
  std::shared_ptr<tls::Context> client_strict;
  std::shared_ptr<tls::RsaKey> rsa_key;         // mysql only
};

struct ListenerRuntime {
  ListenerConfig config;
  uint16_t bound_port = 0;  // the real port when listen used port 0
  std::atomic<uint32_t> active{0};
  std::atomic<uint64_t> total{0};

  std::shared_ptr<const TlsMaterial> tls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tls_;
  }
  void SetTls(std::shared_ptr<const TlsMaterial> tls) {
    std::lock_guard<std::mutex> lock(mu_);
    tls_ = std::move(tls);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const TlsMaterial> tls_;
};

// Loads every certificate, key, password and CA named by the listener's
// configuration and builds its TLS contexts. Errors point at the config line
// of the file at fault. previous (may be null) keeps a generated MySQL RSA key
// across reloads.
bool BuildTlsMaterial(const Config& config, const ListenerConfig& l, const TlsMaterial* previous,
                      std::shared_ptr<const TlsMaterial>* out, ConfigError* error);

// Builds a runtime (with its TLS material) for every listener.
bool BuildListenerRuntimes(const Config& config,
                           std::vector<std::unique_ptr<ListenerRuntime>>* out,
                           ConfigError* error);

// The files a listener's TLS material is built from (for change detection).
std::vector<std::string> TlsFiles(const ListenerConfig& l);

// Reads a key password file; trailing CR/LF are stripped.
bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error);

}  // namespace dbward::proxy

// What a listener needs at run time, built once from the configuration and
// shared read-only by all workers: TLS contexts and counters.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "tls/context.h"
#include "tls/rsa_key.h"

namespace dbward::proxy {

struct ListenerRuntime {
  ListenerConfig config;
  std::shared_ptr<tls::Context> backend_tls;
  std::shared_ptr<tls::Context> client_tls;  // null when client_tls is not configured
  std::shared_ptr<tls::RsaKey> rsa_key;       // mysql only
  // tds only: TLS inside PRELOGIN packets is capped at TLS 1.2 as SQL Server
  // does for TDS 7.x; TDS 8.0 (strict) requires ALPN tds/8.0.
  std::shared_ptr<tls::Context> client_tls_strict;
  uint16_t bound_port = 0;                    // the real port when listen used port 0
  std::atomic<uint32_t> active{0};
  std::atomic<uint64_t> total{0};
};

// Loads every certificate, key, password and CA named by the configuration and
// builds the TLS contexts. Errors point at the config line of the file at fault.
bool BuildListenerRuntimes(const Config& config,
                           std::vector<std::unique_ptr<ListenerRuntime>>* out,
                           ConfigError* error);

// Reads a key password file; trailing CR/LF are stripped.
bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error);

}  // namespace dbward::proxy

// What a listener needs at run time, built once from the configuration and
// shared read-only by all workers: TLS contexts and counters.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "proxy/common/config.h"
#include "proxy/common/limiter.h"
#include "proxy/ops/metrics.h"
#include "proxy/ops/verifiers.h"
#include "tls/context.h"
#include "tls/rsa_key.h"

namespace dbward::proxy {

// Everything a listener loads from certificate, key, CA and password files.
// Immutable once built; a reload builds a new one and swaps it in, so a
// session keeps the set it started with.
// SCRAM mediation's secrets: the auth_query role's password and the
// auth_file's verifiers. Wiped when the material goes.
struct ScramSecrets {
  std::string auth_password;
  std::unordered_map<std::string, std::string> file_verifiers;  // user -> secret text
  ~ScramSecrets();
};

struct TlsMaterial {
  std::shared_ptr<tls::Context> backend;
  std::shared_ptr<tls::Context> client;         // null when client_tls is not configured
  // tds only: TLS inside PRELOGIN packets is capped at TLS 1.2 as SQL Server
  // does for TDS 7.x; TDS 8.0 (strict) requires ALPN tds/8.0.
  std::shared_ptr<tls::Context> client_strict;
  std::shared_ptr<tls::RsaKey> rsa_key;         // mysql only
  // Canary variants of client / client_strict (null without a canary).
  std::shared_ptr<tls::Context> canary_client;
  std::shared_ptr<tls::Context> canary_client_strict;
  std::shared_ptr<const ScramSecrets> scram;    // postgres with scram only
};

// Which TLS clients get the canary certificate, and which addresses have
// already shown that they validate (they are not tested again for a while,
// so a validating client sees at most one failed attempt).
class CanaryPolicy {
 public:
  explicit CanaryPolicy(const CanaryConfig& config);
  bool ShouldTest(const std::string& client_ip);
  void RememberValidating(const std::string& client_ip);
  // A client that accepted the canary and then could not log in: it does
  // not validate; it is not tested again for `remember`, so the canary costs
  // it one failed attempt at most.
  void RememberNotValidating(const std::string& client_ip);
  // The verdict remembered for this address, if any (and still fresh).
  std::optional<bool> Remembered(const std::string& client_ip);
  // A client that accepted the canary and whose login then failed, by
  // address, user and database: libpq with sslmode=prefer retries at once
  // in plaintext, and that retry must not succeed (the canary would have
  // turned a TLS client into a plaintext one). Taken once, within
  // kRetryWindowMs.
  static constexpr int64_t kRetryWindowMs = 30'000;
  void RememberFailedLogin(const std::string& client_ip, const std::string& user, const std::string& database);
  bool TakeFailedLogin(const std::string& client_ip, const std::string& user, const std::string& database);
  const CanaryConfig& config() const { return config_; }

 private:
  bool InScope(const std::string& ip) const;
  CanaryConfig config_;
  std::mutex mu_;
  struct Verdict {
    bool validates;
    int64_t until_ms;
  };
  std::unordered_map<std::string, Verdict> remembered_;
  std::unordered_map<std::string, int64_t> failed_logins_;  // "ip\0user\0database" -> until
  uint64_t rng_state_;
};

// Connections before authentication, per listener and per client address
// (max_handshakes, max_handshakes_per_client).
class HandshakeGate {
 public:
  // False when a limit is reached; *why says which.
  bool Enter(const std::string& ip, uint32_t max_total, uint32_t max_per_client, std::string* why);
  void Leave(const std::string& ip);
  uint32_t in_progress() const { return total_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> total_{0};
  std::mutex mu_;
  std::unordered_map<std::string, uint32_t> per_client_;
};

struct ListenerRuntime {
  ListenerConfig config;
  uint16_t bound_port = 0;  // the real port when listen used port 0
  std::atomic<uint32_t> active{0};
  std::atomic<uint64_t> total{0};
  ListenerMetrics metrics;
  std::unique_ptr<CanaryPolicy> canary;  // null without canary
  // SCRAM mediation's verifiers (null without scram); set by the command
  // that runs the listener (proxy/backend implements it).
  std::unique_ptr<VerifierSource> verifiers;
  // Failed mediated SCRAM logins per client address: five, then one try
  // every ten seconds.
  FailureLimiter auth_failures{5, 10'000};
  HandshakeGate handshakes;

  // What /readyz reports for the backend: the latest verdict from a session
  // or from the periodic check.
  void SetBackendHealth(bool ok, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    backend_known_ = true;
    backend_ok_ = ok;
    backend_reason_ = reason;
  }
  // Whether a session or the periodic check has given a verdict yet.
  bool BackendChecked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return backend_known_;
  }
  bool BackendHealthy(std::string* reason) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (!backend_known_) {
      *reason = "backend not checked yet";
      return false;
    }
    *reason = backend_reason_;
    return backend_ok_;
  }

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
  bool backend_known_ = false;
  bool backend_ok_ = false;
  std::string backend_reason_;
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

// Reads a password file; trailing CR/LF are stripped. what names it in
// errors ("key password file").
bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error,
                      const std::string& what = "key password file");

}  // namespace dbward::proxy

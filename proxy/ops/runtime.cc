#include "proxy/ops/runtime.h"

#include "proxy/common/tls_text.h"
#include "proxy/ops/auth_file.h"
#include "tls/canary.h"

#include <openssl/mem.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>


#include <chrono>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dbward::proxy {

namespace {

// Reads a file that holds a secret straight into *out, sized once, so no
// stream buffer or reallocation leaves a copy behind; false with *why saying
// what is wrong. Only a regular file will do (a Kubernetes Secret's symlinks
// lead to one); the open does not wait, so a FIFO is refused at once instead
// of stalling a start or a reload until something writes to it.
bool ReadSecretFile(const std::string& path, std::string* out, std::string* why) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *why = strerror(errno);
    return false;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    *why = strerror(errno);
  } else if (S_ISDIR(st.st_mode)) {
    *why = strerror(EISDIR);
  } else if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
  } else if (st.st_size > (64 << 20)) {
    *why = strerror(EFBIG);
  }
  if (!why->empty()) {
    close(fd);
    return false;
  }
  out->assign(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out->size()) {
    ssize_t n = read(fd, out->data() + got, out->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *why = strerror(errno);
      OPENSSL_cleanse(out->data(), out->size());
      out->clear();
      close(fd);
      return false;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  out->resize(got);  // shrinking never moves the bytes
  return true;
}

}  // namespace

bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error, const std::string& what) {
  // Read straight into *out: a local string moved into it would leave a
  // short password's bytes in its own inline buffer.
  OPENSSL_cleanse(out->data(), out->size());
  out->clear();
  std::string why;
  if (!ReadSecretFile(path, out, &why)) {
    *error = "cannot read " + what + " " + path + ": " + why;
    return false;
  }
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  if (out->empty()) {
    *error = what + " " + path + " is empty";
    return false;
  }
  return true;
}

namespace {

// Wipes a password once the key is decrypted; it is never needed again.
struct Secret {
  std::string value;
  ~Secret() { OPENSSL_cleanse(value.data(), value.size()); }
};

// The configuration line of the file a load error is about.
Position PositionOf(const tls::LoadError& e, const BackendTlsConfig& t) {
  using File = tls::LoadError::File;
  using Kind = tls::LoadError::Kind;
  if ((e.kind == Kind::kWrongPassword || e.kind == Kind::kKeyEncrypted) && !t.key_password_file.empty()) {
    return t.password_pos;
  }
  switch (e.kind == Kind::kKeyMismatch ? File::kCert : e.file) {
    case File::kCa: return t.ca_file.empty() ? t.pos : t.ca_pos;
    case File::kCert: return t.cert_pos;
    case File::kKey: return t.key_pos;
    case File::kCrl: return t.crl_pos;
    case File::kClientCa:
    case File::kNone: break;
  }
  if (e.kind == Kind::kInternal && !t.pin_spki.empty()) return t.pin_pos;
  return t.pos;
}

Position PositionOf(const tls::LoadError& e, const ClientTlsConfig& t) {
  using File = tls::LoadError::File;
  using Kind = tls::LoadError::Kind;
  if ((e.kind == Kind::kWrongPassword || e.kind == Kind::kKeyEncrypted) && !t.key_password_file.empty()) {
    return t.password_pos;
  }
  switch (e.kind == Kind::kKeyMismatch ? File::kCert : e.file) {
    case File::kCert: return t.cert_pos;
    case File::kKey: return t.key_pos;
    case File::kClientCa: return t.client_certs ? t.client_certs->ca_pos : t.pos;
    default: break;
  }
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
  co.crl_file = b.crl_file;
  co.spki_pins = b.pin_spki;
  co.min_version = b.min_version;
  if (l.protocol == Protocol::kPostgres && b.direct) co.alpn = {"postgresql"};
  if (l.protocol == Protocol::kTds && b.tds_strict) co.alpn = {"tds/8.0"};
  co.resume_sessions = b.session_resumption;
  co.client_cert.cert_file = b.cert_file;
  co.client_cert.key_file = b.key_file;
  std::string msg;
  Secret pw;
  if (!b.key_password_file.empty() && !ReadPasswordFile(b.key_password_file, &pw.value, &msg)) {
    *error = {config.path, b.password_pos, "listener " + l.name + ": " + msg};
    return false;
  }
  co.client_cert.key_password = pw.value;
  tls::LoadError load;
  m->backend = tls::Context::NewClient(co, &load);
  OPENSSL_cleanse(co.client_cert.key_password.data(), co.client_cert.key_password.size());
  if (!m->backend) {
    *error = {config.path, PositionOf(load, b), "listener " + l.name + ": backend_tls: " + ExplainLoadError(load)};
    return false;
  }
  if (l.client_tls) {
    const ClientTlsConfig& c = *l.client_tls;
    tls::ServerOptions so;
    so.cert.cert_file = c.cert_file;
    so.cert.key_file = c.key_file;
    so.min_version = c.min_version;
    if (c.client_certs) so.client_ca_file = c.client_certs->ca_file;
    if (l.protocol == Protocol::kPostgres) so.alpn = {"postgresql"};
    if (l.protocol == Protocol::kTds) so.max_version = 0x0303;
    Secret cpw;
    if (!c.key_password_file.empty() && !ReadPasswordFile(c.key_password_file, &cpw.value, &msg)) {
      *error = {config.path, c.password_pos, "listener " + l.name + ": " + msg};
      return false;
    }
    so.cert.key_password = cpw.value;
    // A certificate that does not load fails the first context; the canary
    // variants are made from the same (already loaded) files.
    Position at = c.pos;
    m->client = tls::Context::NewServer(so, &load);
    if (!m->client) {
      msg = ExplainLoadError(load);
      at = PositionOf(load, c);
    }
    if (m->client && l.canary) {
      m->canary_client = tls::NewCanaryContext(l.canary->mode, so, &msg);
      if (!m->canary_client) m->client.reset();
    }
    if (m->client && l.protocol == Protocol::kTds) {
      so.max_version = 0x0304;
      so.alpn = {"tds/8.0"};
      m->client_strict = tls::Context::NewServer(so, &load);
      if (!m->client_strict) {
        m->client.reset();
        msg = ExplainLoadError(load);
        at = PositionOf(load, c);
      }
      if (m->client && l.canary) {
        m->canary_client_strict = tls::NewCanaryContext(l.canary->mode, so, &msg);
        if (!m->canary_client_strict) m->client.reset();
      }
    }
    OPENSSL_cleanse(so.cert.key_password.data(), so.cert.key_password.size());
    if (!m->client) {
      *error = {config.path, at, "listener " + l.name + ": client_tls: " + msg};
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
  if (l.scram) {
    auto secrets = std::make_shared<ScramSecrets>();
    const ScramConfig& sc = *l.scram;
    if (!sc.auth_password_file.empty() &&
        !ReadPasswordFile(sc.auth_password_file, &secrets->auth_password, &msg, "scram.auth_password_file")) {
      *error = {config.path, sc.password_pos, "listener " + l.name + ": " + msg};
      return false;
    }
    if (!sc.auth_file.empty()) {
      std::string text;
      std::string why;
      if (!ReadSecretFile(sc.auth_file, &text, &why)) {
        *error = {config.path, sc.file_pos,
                  "listener " + l.name + ": cannot read scram.auth_file " + sc.auth_file + ": " + why};
        return false;
      }
      int line = 0;
      bool ok = ParseAuthFile(text, &secrets->file_verifiers, &line, &msg);
      OPENSSL_cleanse(text.data(), text.size());
      if (!ok) {
        *error = {config.path, sc.file_pos,
                  "listener " + l.name + ": scram.auth_file " + sc.auth_file + ":" + std::to_string(line) + ": " + msg};
        return false;
      }
    }
    m->scram = std::move(secrets);
  }
  *out = std::move(m);
  return true;
}

bool HandshakeGate::Enter(const std::string& ip, uint32_t max_total, uint32_t max_per_client, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t total = total_.load(std::memory_order_relaxed);
  if (total >= max_total) {
    *why = "max_handshakes (" + std::to_string(max_total) + ") connections of this listener are still setting up";
    return false;
  }
  uint32_t& mine = per_client_[ip];
  if (mine >= max_per_client) {
    if (mine == 0) per_client_.erase(ip);
    *why = "max_handshakes_per_client (" + std::to_string(max_per_client) + ") connections from " + ip +
           " are still setting up";
    return false;
  }
  mine++;
  total_.store(total + 1, std::memory_order_relaxed);
  return true;
}

void HandshakeGate::Leave(const std::string& ip) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_client_.find(ip);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
  total_.fetch_sub(1, std::memory_order_relaxed);
}

ScramSecrets::~ScramSecrets() {
  OPENSSL_cleanse(auth_password.data(), auth_password.size());
  for (auto& [user, secret] : file_verifiers) OPENSSL_cleanse(secret.data(), secret.size());
}

bool BuildListenerRuntimes(const Config& config,
                           std::vector<std::unique_ptr<ListenerRuntime>>* out,
                           ConfigError* error) {
  out->clear();
  for (const ListenerConfig& l : config.listeners) {
    auto rt = std::make_unique<ListenerRuntime>();
    rt->config = l;
    rt->metrics.DeclareSeries(l);
    std::shared_ptr<const TlsMaterial> tls;
    if (!BuildTlsMaterial(config, l, nullptr, &tls, error)) return false;
    rt->SetTls(std::move(tls));
    if (l.canary) rt->canary = std::make_unique<CanaryPolicy>(*l.canary);
    out->push_back(std::move(rt));
  }
  return true;
}

CanaryPolicy::CanaryPolicy(const CanaryConfig& config) : config_(config) {
  uint8_t seed[8];
  RAND_bytes(seed, sizeof seed);
  memcpy(&rng_state_, seed, sizeof rng_state_);
  rng_state_ |= 1;
}

bool CanaryPolicy::InScope(const std::string& ip) const {
  if (config_.clients.empty()) return true;
  for (const Cidr& net : config_.clients) {
    if (net.Contains(ip)) return true;
  }
  return false;
}

namespace {
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::optional<bool> CanaryPolicy::Remembered(const std::string& ip) {
  int64_t now = SteadyMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = remembered_.find(ip);
  if (it == remembered_.end()) return std::nullopt;
  if (it->second.until_ms <= now) {
    remembered_.erase(it);
    return std::nullopt;
  }
  return it->second.validates;
}

bool CanaryPolicy::ShouldTest(const std::string& ip) {
  if (config_.sample <= 0 || !InScope(ip)) return false;
  if (Remembered(ip)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (config_.sample >= 1.0) return true;
  // xorshift64: sampling needs spread, not secrecy.
  rng_state_ ^= rng_state_ << 13;
  rng_state_ ^= rng_state_ >> 7;
  rng_state_ ^= rng_state_ << 17;
  return static_cast<double>(rng_state_ >> 11) / static_cast<double>(1ULL << 53) < config_.sample;
}

void CanaryPolicy::RememberValidating(const std::string& ip) {
  int64_t now = SteadyMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (remembered_.size() > 100'000) remembered_.clear();  // bound the memory
  remembered_[ip] = {true, now + static_cast<int64_t>(config_.remember_ms)};
}

void CanaryPolicy::RememberNotValidating(const std::string& ip) {
  int64_t now = SteadyMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (remembered_.size() > 100'000) remembered_.clear();
  remembered_[ip] = {false, now + static_cast<int64_t>(config_.remember_ms)};
}

void CanaryPolicy::RememberFailedLogin(const std::string& ip, const std::string& user, const std::string& database) {
  int64_t now = SteadyMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_logins_.size() > 10'000) failed_logins_.clear();
  failed_logins_[ip + '\0' + user + '\0' + database] = now + kRetryWindowMs;
}

bool CanaryPolicy::TakeFailedLogin(const std::string& ip, const std::string& user, const std::string& database) {
  int64_t now = SteadyMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failed_logins_.find(ip + '\0' + user + '\0' + database);
  if (it == failed_logins_.end()) return false;
  bool fresh = it->second > now;
  failed_logins_.erase(it);
  return fresh;
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
  add(l.backend_tls.crl_file);
  if (l.client_tls) {
    add(l.client_tls->cert_file);
    add(l.client_tls->key_file);
    add(l.client_tls->key_password_file);
    if (l.client_tls->client_certs) add(l.client_tls->client_certs->ca_file);
  }
  add(l.rsa_key_file);
  if (l.scram) {
    add(l.scram->auth_password_file);
    add(l.scram->auth_file);
  }
  return files;
}

}  // namespace dbward::proxy

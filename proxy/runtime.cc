#include "proxy/runtime.h"

#include <openssl/mem.h>

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
    if (m->client && l.protocol == Protocol::kTds) {
      so.max_version = 0x0304;
      so.alpn = {"tds/8.0"};
      m->client_strict = tls::Context::NewServer(so, &msg);
      if (!m->client_strict) m->client.reset();
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
    out->push_back(std::move(rt));
  }
  return true;
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

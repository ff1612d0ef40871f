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

bool BuildListenerRuntimes(const Config& config,
                           std::vector<std::unique_ptr<ListenerRuntime>>* out,
                           ConfigError* error) {
  out->clear();
  for (const ListenerConfig& l : config.listeners) {
    auto rt = std::make_unique<ListenerRuntime>();
    rt->config = l;
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
    rt->backend_tls = tls::Context::NewClient(co, &msg);
    OPENSSL_cleanse(co.client_cert.key_password.data(), co.client_cert.key_password.size());
    if (!rt->backend_tls) {
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
      rt->client_tls = tls::Context::NewServer(so, &msg);
      if (rt->client_tls && l.protocol == Protocol::kTds) {
        so.max_version = 0x0304;
        so.alpn = {"tds/8.0"};
        rt->client_tls_strict = tls::Context::NewServer(so, &msg);
        if (!rt->client_tls_strict) rt->client_tls.reset();
      }
      OPENSSL_cleanse(so.cert.key_password.data(), so.cert.key_password.size());
      if (!rt->client_tls) {
        *error = {config.path, PickPosition(msg, c), "listener " + l.name + ": client_tls: " + msg};
        return false;
      }
    }
    if (l.protocol == Protocol::kMysql) {
      // caching_sha2_password clients on a plaintext leg encrypt the password
      // to this key; without a configured one dbward makes its own.
      rt->rsa_key = l.rsa_key_file.empty() ? tls::RsaKey::Generate(2048, &msg) : tls::RsaKey::Load(l.rsa_key_file, &msg);
      if (!rt->rsa_key) {
        *error = {config.path, l.rsa_key_pos, "listener " + l.name + ": " + msg};
        return false;
      }
    }
    out->push_back(std::move(rt));
  }
  return true;
}

}  // namespace dbward::proxy

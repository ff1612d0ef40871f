// A scripted MySQL 8.0 server for end-to-end tests (MySQL 8 has no Debian
// package). It speaks the 8.0.36 connection phase byte for byte: Handshake v10
// offering caching_sha2_password, SSLRequest + TLS, AuthSwitchRequest for
// clients that answer with another plugin, fast authentication, and full
// authentication over TLS (clear password) or plaintext (RSA public key
// request, RSA-OAEP). After login it answers COM_QUERY for `SELECT 1` and
// `SHOW STATUS LIKE 'Ssl_version'`, COM_PING and COM_QUIT. BoringSSL,
// blocking sockets, a thread per connection, like TlsBackend.
#pragma once

#include <openssl/base.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dbward::testing {

class Mysql8Backend {
 public:
  struct Options {
    std::string cert;  // PEM file names; empty: no TLS (CLIENT_SSL not offered)
    std::string key;
    // As --require_secure_transport=ON: a HandshakeResponse that arrives
    // without TLS gets ERR 3159.
    bool require_secure_transport = true;
    std::string user = "sha2_user";
    std::string password = "sha2_pw";
    // The server's authentication cache holds the user: a correct scramble
    // answer gets fast-auth success. When false, every login takes full
    // authentication (as for the first login after a server restart).
    bool cache_warm = false;
    // The user's plugin: caching_sha2_password (MySQL 8's default) or
    // sha256_password, which the server switches to after the handshake.
    std::string plugin = "caching_sha2_password";
    // Print every packet (direction, sequence id, first bytes) to stderr.
    bool trace = false;
  };

  explicit Mysql8Backend(Options options);
  ~Mysql8Backend();
  Mysql8Backend(const Mysql8Backend&) = delete;
  Mysql8Backend& operator=(const Mysql8Backend&) = delete;

  // Generates the RSA-2048 key, loads the certificate, binds 127.0.0.1:0.
  bool Start(std::string* error);
  uint16_t port() const { return port_; }
  void set_cache_warm(bool warm) { cache_warm_ = warm; }
  // The RSA public key (PEM, SubjectPublicKeyInfo) sent to clients that ask.
  std::string public_key_pem() const { return public_key_pem_; }

  // What the last connection that sent a HandshakeResponse showed.
  bool saw_tls() const;
  std::string last_tls_version() const;  // "TLSv1.3", or "" for plaintext
  std::string last_user() const;
  std::string last_database() const;
  std::string last_attribute(const std::string& key) const;  // connect attrs
  // "fast", "full-tls" or "full-rsa": the path the last login attempt took
  // after the scramble answer (set whether or not the password matched).
  std::string last_auth_path() const;
  // Why the last connection that failed was refused or dropped.
  std::string last_error() const;
  uint32_t last_client_capabilities() const;  // from the HandshakeResponse
  int logins_ok() const { return logins_ok_; }
  int connections() const { return connections_; }

 private:
  class Conn;
  void AcceptLoop();
  void Serve(int fd);
  bool Login(Conn* conn, uint32_t* client_caps);
  void CommandLoop(Conn* conn, uint32_t client_caps);
  void Fail(const std::string& why);

  Options options_;
  std::atomic<bool> cache_warm_;
  bssl::UniquePtr<SSL_CTX> ctx_;  // null when no certificate is configured
  bssl::UniquePtr<EVP_PKEY> rsa_key_;
  std::string public_key_pem_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> next_connection_id_{8};
  std::atomic<int> logins_ok_{0};
  std::atomic<int> connections_{0};

  mutable std::mutex mu_;
  bool saw_tls_ = false;
  uint32_t last_client_capabilities_ = 0;
  std::string last_tls_version_;
  std::string last_user_;
  std::string last_database_;
  std::map<std::string, std::string> last_attributes_;
  std::string last_auth_path_;
  std::string last_error_;
  std::vector<int> fds_;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace dbward::testing

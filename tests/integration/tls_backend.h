// A real TLS server for end-to-end tests, built on BoringSSL with blocking
// sockets and a thread per connection. It plays the database's part: echo,
// flood, or misbehave (never answer, answer in plaintext).
#pragma once

#include <openssl/base.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dbward::testing {

class TlsBackend {
 public:
  enum class Mode {
    kEcho,       // TLS, echo every byte; on EOF finish sending and close_notify
    kFlood,      // TLS, send an endless stream until the peer goes away
    kSilent,     // accept TCP, never say a word
    kPlaintext,  // accept TCP, answer with a non-TLS banner
    // Echo the first chunk, then end while the client is still there:
    kEchoThenClose,     // with close_notify (a server that ends the session)
    kEchoThenTruncate,  // TCP FIN without close_notify (a process killed)
    kEchoThenReset,     // a TCP reset (SO_LINGER 0)
    // A scripted PostgreSQL (implies pg_ssl_request): offers
    // SCRAM-SHA-256-PLUS and SCRAM-SHA-256, plays the SCRAM server for
    // scram_password, records the mechanism the client chose and whether its
    // channel binding matched this server's certificate, then answers every
    // Query with one row "1".
    kPgScram,
    // A scripted PostgreSQL that logs anyone in (trust), answers every Query
    // with one row "1", and on Terminate closes TCP without close_notify,
    // as servers that never send one do.
    kPgTrustNoCloseNotify,
    // The same server that answers the first Query and then resets the TCP
    // connection (SO_LINGER 0), while dbward still watches the first answers.
    kPgTrustThenReset,
  };
  struct Options {
    Mode mode = Mode::kEcho;
    std::string cert;            // PEM file names
    std::string key;
    std::string client_ca;       // non-empty: require a client certificate from this CA
    uint16_t max_version = 0;    // 0: library default
    // PostgreSQL's upgrade first: read the 8-byte SSLRequest, answer 'S',
    // then TLS (a stand-in PostgreSQL with a chosen certificate).
    bool pg_ssl_request = false;
    std::string scram_password;          // kPgScram
    bool fake_server_signature = false;  // kPgScram: a server that does not know the verifier
  };

  explicit TlsBackend(Options options);
  ~TlsBackend();
  bool Start(std::string* error);
  uint16_t port() const { return port_; }

  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  int handshakes() const { return handshakes_; }
  int connections() const { return connections_; }
  std::string last_sni() const;
  std::string last_client_subject() const;
  // kPgScram: what the last SCRAM exchange showed.
  struct ScramSeen {
    std::string mechanism;     // from SASLInitialResponse
    std::string gs2_header;    // "p=tls-server-end-point,," when bound
    bool binding_matched = false;  // c= carried this server's certificate hash
    bool proof_ok = false;
  };
  ScramSeen last_scram() const;

 private:
  void AcceptLoop();
  void Serve(int fd);
  void ServePgScram(SSL* ssl);
  bool ReadStartup(SSL* ssl);
  void ServePgTrust(SSL* ssl, size_t max_queries = SIZE_MAX);
  void ServePgQueries(SSL* ssl, size_t max_queries = SIZE_MAX);
  void Reset(int fd);  // a TCP reset (SO_LINGER 0); the destructor will not close fd again

  Options options_;
  void* ctx_ = nullptr;  // SSL_CTX*
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<int> handshakes_{0};
  std::atomic<int> connections_{0};
  ScramSeen scram_;
  mutable std::mutex mu_;
  std::string last_sni_;
  std::string last_client_subject_;
  std::vector<int> fds_;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace dbward::testing

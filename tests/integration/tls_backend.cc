#include "tls_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace dbward::testing {

TlsBackend::TlsBackend(Options options) : options_(std::move(options)) {}

TlsBackend::~TlsBackend() {
  stop_ = true;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int fd : fds_) close(fd);
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

bool TlsBackend::Start(std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  ctx_ = ctx;
  if (options_.mode != Mode::kSilent && options_.mode != Mode::kPlaintext) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options_.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options_.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      *error = "cannot load " + options_.cert;
      return false;
    }
    if (!options_.client_ca.empty()) {
      SSL_CTX_load_verify_locations(ctx, options_.client_ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    if (options_.max_version != 0) SSL_CTX_set_max_proto_version(ctx, options_.max_version);
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(listen_fd_, 64) != 0) {
    *error = strerror(errno);
    return false;
  }
  socklen_t len = sizeof sa;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void TlsBackend::AcceptLoop() {
  while (!stop_) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stop_) return;
      continue;
    }
    connections_++;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

std::string TlsBackend::last_sni() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_sni_;
}

std::string TlsBackend::last_client_subject() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_client_subject_;
}

void TlsBackend::Serve(int fd) {
  if (options_.mode == Mode::kSilent) {
    char buf[4096];
    while (!stop_ && recv(fd, buf, sizeof buf, 0) > 0) {
    }
    return;
  }
  if (options_.mode == Mode::kPlaintext) {
    const char kBanner[] = "220 hello, this is not TLS\r\n";
    send(fd, kBanner, sizeof kBanner - 1, MSG_NOSIGNAL);
    char buf[4096];
    while (!stop_ && recv(fd, buf, sizeof buf, 0) > 0) {
    }
    return;
  }
  if (options_.pg_ssl_request) {
    uint8_t request[8];
    size_t got = 0;
    while (got < sizeof request) {
      ssize_t n = recv(fd, request + got, sizeof request - got, 0);
      if (n <= 0) return;
      got += static_cast<size_t>(n);
    }
    if (send(fd, "S", 1, MSG_NOSIGNAL) != 1) return;
  }
  bssl::UniquePtr<SSL> ssl(SSL_new(static_cast<SSL_CTX*>(ctx_)));
  SSL_set_fd(ssl.get(), fd);
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    return;
  }
  handshakes_++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
    last_sni_ = sni ? sni : "";
    bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl.get()));
    if (peer) {
      char name[256];
      X509_NAME_oneline(X509_get_subject_name(peer.get()), name, sizeof name);
      last_client_subject_ = name;
    }
  }
  if (options_.mode == Mode::kFlood) {
    std::vector<uint8_t> chunk(16384, 'f');
    while (!stop_) {
      int n = SSL_write(ssl.get(), chunk.data(), static_cast<int>(chunk.size()));
      if (n <= 0) break;
      bytes_sent_ += static_cast<uint64_t>(n);
    }
    return;
  }
  std::vector<uint8_t> buf(65536);
  const bool once = options_.mode != Mode::kEcho;
  for (;;) {
    int n = SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()));
    if (n <= 0) break;
    bytes_received_ += static_cast<uint64_t>(n);
    int off = 0;
    while (off < n) {
      int w = SSL_write(ssl.get(), buf.data() + off, n - off);
      if (w <= 0) return;
      off += w;
      bytes_sent_ += static_cast<uint64_t>(w);
    }
    if (once) break;
  }
  if (options_.mode == Mode::kEchoThenTruncate) {
    shutdown(fd, SHUT_WR);  // no close_notify: as the kernel does for a killed process
    return;
  }
  if (options_.mode == Mode::kEchoThenReset) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    std::lock_guard<std::mutex> lock(mu_);
    for (int& f : fds_) {
      if (f == fd) f = -1;  // closed here, with a reset, not by the destructor
    }
    close(fd);
    return;
  }
  // The client finished sending: say goodbye properly, then close.
  SSL_shutdown(ssl.get());
  shutdown(fd, SHUT_WR);
}

}  // namespace dbward::testing

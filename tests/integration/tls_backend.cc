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

#include "protocol/postgres.h"
#include "protocol/scram.h"
#include "tls/cert_info.h"
#include "tls/scram_keys.h"

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
  if (options_.pg_ssl_request || options_.mode == Mode::kPgScram || options_.mode == Mode::kPgTrustNoCloseNotify ||
      options_.mode == Mode::kPgTrustThenReset) {
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
  if (options_.mode == Mode::kPgTrustNoCloseNotify) {
    ServePgTrust(ssl.get());
    shutdown(fd, SHUT_WR);  // no close_notify
    return;
  }
  if (options_.mode == Mode::kPgTrustThenReset) {
    ServePgTrust(ssl.get(), 1);
    Reset(fd);
    return;
  }
  if (options_.mode == Mode::kPgScram) {
    ServePgScram(ssl.get());
    SSL_shutdown(ssl.get());
    shutdown(fd, SHUT_WR);
    return;
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
    Reset(fd);
    return;
  }
  // The client finished sending: say goodbye properly, then close.
  SSL_shutdown(ssl.get());
  shutdown(fd, SHUT_WR);
}

void TlsBackend::Reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  std::lock_guard<std::mutex> lock(mu_);
  for (int& f : fds_) {
    if (f == fd) f = -1;  // closed here, with a reset, not by the destructor
  }
  close(fd);
}

namespace {

namespace pg = protocol::pg;
namespace scram = protocol::scram;
namespace keys = tls::scram;

// Reads exactly n bytes; false on EOF or error.
bool ReadFull(SSL* ssl, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    int r = SSL_read(ssl, out + got, static_cast<int>(n - got));
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(SSL* ssl, const std::vector<uint8_t>& bytes) {
  return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size());
}

// One typed message: its type and body.
bool ReadMessage(SSL* ssl, uint8_t* type, std::vector<uint8_t>* body) {
  uint8_t head[5];
  if (!ReadFull(ssl, head, 5)) return false;
  *type = head[0];
  uint32_t len = static_cast<uint32_t>(head[1]) << 24 | head[2] << 16 | head[3] << 8 | head[4];
  if (len < 4 || len > (1 << 20)) return false;
  body->resize(len - 4);
  return ReadFull(ssl, body->data(), body->size());
}

std::vector<uint8_t> Msg(char type, const std::string& body) {
  std::vector<uint8_t> out = {static_cast<uint8_t>(type)};
  uint32_t len = static_cast<uint32_t>(body.size() + 4);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(len >> shift));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

TlsBackend::ScramSeen TlsBackend::last_scram() const {
  std::lock_guard<std::mutex> lock(mu_);
  return scram_;
}

bool TlsBackend::ReadStartup(SSL* ssl) {
  // StartupMessage: length, then the rest, unread.
  uint8_t len_bytes[4];
  if (!ReadFull(ssl, len_bytes, 4)) return false;
  uint32_t len = static_cast<uint32_t>(len_bytes[0]) << 24 | len_bytes[1] << 16 | len_bytes[2] << 8 | len_bytes[3];
  if (len < 8 || len > 10000) return false;
  std::vector<uint8_t> startup(len - 4);
  if (!ReadFull(ssl, startup.data(), startup.size())) return false;
  bytes_received_ += len;
  return true;
}

// The login answer a trust login gets, then queries.
void TlsBackend::ServePgTrust(SSL* ssl, size_t max_queries) {
  if (!ReadStartup(ssl)) return;
  std::vector<uint8_t> out;
  for (const auto& m : {pg::EncodeAuthenticationOk(), Msg('S', std::string("application_name\0\0", 18)),
                        Msg('K', std::string("\0\0\0\1\0\0\0\2", 8)), Msg('Z', "I")}) {
    out.insert(out.end(), m.begin(), m.end());
  }
  if (WriteAll(ssl, out)) ServePgQueries(ssl, max_queries);
}

void TlsBackend::ServePgScram(SSL* ssl) {
  if (!ReadStartup(ssl)) return;
  if (!WriteAll(ssl, pg::EncodeAuthenticationSasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}))) return;

  ScramSeen seen;
  uint8_t type;
  std::vector<uint8_t> body;
  pg::SaslInitialResponse initial;
  if (!ReadMessage(ssl, &type, &body) || type != 'p' || !pg::ParseSaslInitialResponse(body, &initial)) return;
  seen.mechanism = initial.mechanism;
  scram::ClientFirst first;
  if (scram::ParseClientFirst(initial.data, &first)) return;  // an error
  seen.gs2_header = first.gs2_header;
  const std::vector<uint8_t> salt = {'d', 'b', 'w', 'a', 'r', 'd', '-', 's', 'a', 'l', 't', '!'};
  const uint32_t iterations = 4096;
  keys::DerivedKeys k = keys::DeriveKeys(options_.scram_password, salt, iterations);
  const std::string server_first = scram::EncodeServerFirst(first.nonce + keys::RandomNonce(), salt, iterations);
  if (!WriteAll(ssl, pg::EncodeAuthenticationSaslContinue(server_first))) return;

  if (!ReadMessage(ssl, &type, &body) || type != 'p') return;
  scram::ClientFinal final_msg;
  if (scram::ParseClientFinal(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()), &final_msg)) {
    return;
  }
  seen.binding_matched =
      final_msg.channel_binding == scram::ExpectedChannelBinding(first, tls::ServerEndPoint(SSL_get_certificate(ssl)));
  const std::string auth = scram::AuthMessage(first.bare, server_first, final_msg.without_proof);
  keys::Key client_key;
  seen.proof_ok = keys::VerifyClientProof(k.stored_key, auth, final_msg.proof, &client_key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    scram_ = seen;
  }
  if (!seen.proof_ok) {
    pg::ErrorFields e;
    e.severity = "FATAL";
    e.sqlstate = "28P01";
    e.message = "password authentication failed";
    WriteAll(ssl, pg::EncodeErrorResponse(e));
    return;
  }
  keys::Key signature = keys::ServerSignature(k.server_key, auth);
  if (options_.fake_server_signature) signature.data()[0] ^= 0xff;
  std::vector<uint8_t> out = pg::EncodeAuthenticationSaslFinal(scram::EncodeServerFinal(signature));
  for (const auto& m : {pg::EncodeAuthenticationOk(), Msg('S', std::string("application_name\0\0", 18)),
                        Msg('K', std::string("\0\0\0\1\0\0\0\2", 8)), Msg('Z', "I")}) {
    out.insert(out.end(), m.begin(), m.end());
  }
  if (!WriteAll(ssl, out)) return;
  ServePgQueries(ssl);
}

// Every Query gets one row, "1", until Terminate (or max_queries answers).
void TlsBackend::ServePgQueries(SSL* ssl, size_t max_queries) {
  uint8_t type;
  std::vector<uint8_t> body;
  for (size_t answered = 0; answered < max_queries && ReadMessage(ssl, &type, &body);) {
    if (type == 'X') return;
    if (type != 'Q') continue;
    // One text column: count, name, table OID, column, type OID 25 (text),
    // size -1, modifier -1, format 0.
    std::string row_description = std::string("\0\1", 2) + std::string("?column?\0", 9) + std::string(6, '\0') +
                                  std::string("\0\0\0\x19", 4) + std::string(6, '\xff') + std::string(2, '\0');
    std::vector<uint8_t> answer = Msg('T', row_description);
    for (const auto& m : {Msg('D', std::string("\0\1\0\0\0\1" "1", 7)), Msg('C', std::string("SELECT 1\0", 9)),
                          Msg('Z', "I")}) {
      answer.insert(answer.end(), m.begin(), m.end());
    }
    if (!WriteAll(ssl, answer)) return;
    answered++;
  }
}

}  // namespace dbward::testing

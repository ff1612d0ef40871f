// tls_sink: a deliberately plain TLS server that sits behind a proxy (or is hit
// directly by loadgen --tls) during throughput benchmarks. It is meant to be
// cheap and predictable rather than clever, so that what the numbers measure is
// the thing in front of it: one blocking thread per connection, no event loop.
//
//   tls_sink --listen 127.0.0.1:0 --cert server.pem --key server.key
//            --mode discard|echo|source [--min-version 1.2|1.3] [--chunk BYTES]
//            [--protocol postgres]
//
// --protocol postgres makes it a minimal PostgreSQL server for idle-session
// benchmarks: it answers an SSLRequest with 'S', takes TLS, answers the
// StartupMessage with AuthenticationOk (trust), a few ParameterStatus, a
// BackendKeyData and ReadyForQuery, then answers every simple Query with an
// empty result and ReadyForQuery, until Terminate. --mode is not used then.
//
// Once bound it prints "listening on ADDR:PORT" on stdout so that scripts can
// use port 0 and learn the real port. SIGTERM/SIGINT stop it; totals go to
// stderr.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

enum class Mode { kDiscard, kEcho, kSource };
enum class Protocol { kRaw, kPostgres };

struct Options {
  std::string listen;
  std::string cert_file;
  std::string key_file;
  Mode mode = Mode::kDiscard;
  Protocol protocol = Protocol::kRaw;
  uint16_t min_version = TLS1_2_VERSION;
  size_t chunk = 64 * 1024;
};

struct Stats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
};

// Connection threads are detached, so the only way to get them to finish on
// SIGTERM is to shut their sockets down from outside; this keeps the set of
// live sockets for that, and lets main wait until every thread has let go.
class Registry {
 public:
  bool Add(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    fds_.insert(fd);
    return true;
  }

  // Must run before close(fd): once the fd number is closed it can be reused
  // by another accept, and StopAll must never shut down a stranger.
  void Remove(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    fds_.erase(fd);
    if (fds_.empty()) idle_.notify_all();
  }

  void StopAll() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }

  void WaitIdle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return fds_.empty(); });
  }

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  std::unordered_set<int> fds_;
  bool stopping_ = false;
};

[[noreturn]] void Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --listen HOST:PORT --cert FILE --key FILE\n"
               "          [--mode discard|echo|source] [--min-version 1.2|1.3] [--chunk BYTES]\n"
               "          [--protocol postgres]\n",
               argv0);
  std::exit(2);
}

std::string TakeSslErrors() {
  std::string out;
  while (uint32_t err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string(std::strerror(errno)) : out;
}

bool ParseOptions(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (arg == "-h" || arg == "--help") {
      Usage(argv[0]);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "tls_sink: %s needs a value\n", arg.c_str());
      return false;
    }
    if (arg == "--listen") {
      opt->listen = value;
    } else if (arg == "--cert") {
      opt->cert_file = value;
    } else if (arg == "--key") {
      opt->key_file = value;
    } else if (arg == "--mode") {
      if (value == "discard") {
        opt->mode = Mode::kDiscard;
      } else if (value == "echo") {
        opt->mode = Mode::kEcho;
      } else if (value == "source") {
        opt->mode = Mode::kSource;
      } else {
        std::fprintf(stderr, "tls_sink: unknown mode '%s'\n", value.c_str());
        return false;
      }
    } else if (arg == "--protocol") {
      if (value == "postgres") {
        opt->protocol = Protocol::kPostgres;
      } else {
        std::fprintf(stderr, "tls_sink: unknown protocol '%s' (only postgres)\n", value.c_str());
        return false;
      }
    } else if (arg == "--min-version") {
      if (value == "1.2") {
        opt->min_version = TLS1_2_VERSION;
      } else if (value == "1.3") {
        opt->min_version = TLS1_3_VERSION;
      } else {
        std::fprintf(stderr, "tls_sink: --min-version must be 1.2 or 1.3\n");
        return false;
      }
    } else if (arg == "--chunk") {
      char* end = nullptr;
      unsigned long long n = std::strtoull(value.c_str(), &end, 10);
      if (*end != '\0' || n == 0 || n > (1u << 30)) {
        std::fprintf(stderr, "tls_sink: bad --chunk '%s'\n", value.c_str());
        return false;
      }
      opt->chunk = static_cast<size_t>(n);
    } else {
      std::fprintf(stderr, "tls_sink: unknown option '%s'\n", arg.c_str());
      return false;
    }
  }
  if (opt->listen.empty() || opt->cert_file.empty() || opt->key_file.empty()) {
    std::fprintf(stderr, "tls_sink: --listen, --cert and --key are required\n");
    return false;
  }
  return true;
}

// Accepts "1.2.3.4:N" and "[::1]:N"; numeric only, since a benchmark that
// silently resolves a name to an unexpected address measures the wrong thing.
bool ParseAddress(const std::string& text, sockaddr_storage* out, socklen_t* len) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || colon + 1 == text.size() || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::memset(out, 0, sizeof(*out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string FormatAddress(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  char out[INET6_ADDRSTRLEN + 16];
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
    std::snprintf(out, sizeof(out), "%s:%u", host, ntohs(v4->sin_port));
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
    std::snprintf(out, sizeof(out), "[%s]:%u", host, ntohs(v6->sin6_port));
  }
  return out;
}

bssl::UniquePtr<SSL_CTX> NewServerContext(const Options& opt) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return nullptr;
  if (!SSL_CTX_set_min_proto_version(ctx.get(), opt.min_version) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION)) {
    std::fprintf(stderr, "tls_sink: cannot set protocol versions: %s\n", TakeSslErrors().c_str());
    return nullptr;
  }
  if (!SSL_CTX_use_certificate_chain_file(ctx.get(), opt.cert_file.c_str())) {
    std::fprintf(stderr, "tls_sink: cannot load certificate %s: %s\n", opt.cert_file.c_str(),
                 TakeSslErrors().c_str());
    return nullptr;
  }
  if (!SSL_CTX_use_PrivateKey_file(ctx.get(), opt.key_file.c_str(), SSL_FILETYPE_PEM)) {
    std::fprintf(stderr, "tls_sink: cannot load key %s: %s\n", opt.key_file.c_str(),
                 TakeSslErrors().c_str());
    return nullptr;
  }
  if (!SSL_CTX_check_private_key(ctx.get())) {
    std::fprintf(stderr, "tls_sink: %s does not match %s\n", opt.key_file.c_str(),
                 opt.cert_file.c_str());
    return nullptr;
  }
  return ctx;
}

// Peers going away mid-stream is the normal end of a source connection and a
// common one elsewhere, so only a failure that is neither EOF nor a reset by
// the peer is worth a line on stderr.
bool IsPeerGone(SSL* ssl, int ret) {
  int err = SSL_get_error(ssl, ret);
  if (err == SSL_ERROR_ZERO_RETURN) return true;
  if (err == SSL_ERROR_SYSCALL) {
    return ERR_peek_error() == 0 &&
           (ret == 0 || errno == 0 || errno == EPIPE || errno == ECONNRESET);
  }
  return false;
}

void ReportFailure(const char* what, SSL* ssl, int ret) {
  if (IsPeerGone(ssl, ret)) {
    ERR_clear_error();
    return;
  }
  std::fprintf(stderr, "tls_sink: %s failed: %s\n", what, TakeSslErrors().c_str());
}

// Blocking helpers for --protocol postgres (a benchmark peer, not a parser:
// whatever does not look like the expected message ends the connection).
bool ReadFull(int fd, uint8_t* out, size_t n) {
  while (n > 0) {
    ssize_t got = recv(fd, out, n, 0);
    if (got <= 0) {
      if (got < 0 && errno == EINTR) continue;
      return false;
    }
    out += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool SslReadFull(SSL* ssl, uint8_t* out, size_t n) {
  while (n > 0) {
    int got = SSL_read(ssl, out, static_cast<int>(n));
    if (got <= 0) return false;
    out += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void PutMessage(std::string* out, char type, const std::string& body) {
  uint32_t len = static_cast<uint32_t>(body.size() + 4);
  out->push_back(type);
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(len >> shift));
  out->append(body);
}

std::string Cstr(const char* s) { return std::string(s, std::strlen(s) + 1); }

// SSLRequest in the clear, then 'S'.
bool PostgresPreamble(int fd) {
  uint8_t req[8];
  if (!ReadFull(fd, req, sizeof(req)) || Be32(req) != 8 || Be32(req + 4) != 80877103) return false;
  return send(fd, "S", 1, MSG_NOSIGNAL) == 1;
}

// StartupMessage, the login answer, then queries until Terminate.
void ServePostgres(SSL* ssl, Stats* stats) {
  uint8_t head[5];
  if (!SslReadFull(ssl, head, 4)) return;
  uint32_t len = Be32(head);
  if (len < 8 || len > 10000) return;
  std::vector<uint8_t> body(len - 4);
  if (!SslReadFull(ssl, body.data(), body.size())) return;
  std::string out;
  PutMessage(&out, 'R', std::string("\0\0\0\0", 4));  // AuthenticationOk
  PutMessage(&out, 'S', Cstr("server_version") + Cstr("15.0 (tls_sink)"));
  PutMessage(&out, 'S', Cstr("server_encoding") + Cstr("UTF8"));
  PutMessage(&out, 'S', Cstr("client_encoding") + Cstr("UTF8"));
  PutMessage(&out, 'S', Cstr("integer_datetimes") + Cstr("on"));
  PutMessage(&out, 'K', std::string("\0\0\x30\x39\x12\x34\x56\x78", 8));
  PutMessage(&out, 'Z', "I");
  if (SSL_write(ssl, out.data(), static_cast<int>(out.size())) <= 0) return;
  std::string answer;
  PutMessage(&answer, 'I', "");  // EmptyQueryResponse
  PutMessage(&answer, 'Z', "I");
  for (;;) {
    if (!SslReadFull(ssl, head, 5)) return;
    len = Be32(head + 1);
    if (len < 4 || len > (1u << 20)) return;
    body.resize(len - 4);
    if (!SslReadFull(ssl, body.data(), body.size())) return;
    stats->bytes_in.fetch_add(5 + body.size(), std::memory_order_relaxed);
    if (head[0] == 'X') {
      SSL_shutdown(ssl);
      return;
    }
    if (head[0] != 'Q') return;
    if (SSL_write(ssl, answer.data(), static_cast<int>(answer.size())) <= 0) return;
    stats->bytes_out.fetch_add(answer.size(), std::memory_order_relaxed);
  }
}

void ServeConnection(int fd, SSL_CTX* ctx, const Options& opt,
                     const std::vector<uint8_t>& source_data, Stats* stats) {
  if (opt.protocol == Protocol::kPostgres && !PostgresPreamble(fd)) return;
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx));
  if (!ssl || !SSL_set_fd(ssl.get(), fd)) {
    std::fprintf(stderr, "tls_sink: SSL_new failed: %s\n", TakeSslErrors().c_str());
    return;
  }
  int ret = SSL_accept(ssl.get());
  if (ret != 1) {
    stats->handshake_failures.fetch_add(1, std::memory_order_relaxed);
    // Readiness probes that connect and hang up are expected; do not log them.
    ReportFailure("handshake", ssl.get(), ret);
    return;
  }
  if (opt.protocol == Protocol::kPostgres) {
    ServePostgres(ssl.get(), stats);
    return;
  }

  if (opt.mode == Mode::kSource) {
    // Nothing is ever read here, so the loop ends only when the peer's close
    // makes a write fail (EPIPE/ECONNRESET), which is the intended stop.
    for (;;) {
      ret = SSL_write(ssl.get(), source_data.data(), static_cast<int>(opt.chunk));
      if (ret <= 0) {
        ReportFailure("write", ssl.get(), ret);
        return;
      }
      stats->bytes_out.fetch_add(static_cast<uint64_t>(ret), std::memory_order_relaxed);
    }
  }

  std::vector<uint8_t> buf(opt.chunk);
  for (;;) {
    ret = SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()));
    if (ret <= 0) {
      if (SSL_get_error(ssl.get(), ret) == SSL_ERROR_ZERO_RETURN) {
        // Answer close_notify with ours so a client that waits for a clean
        // close (loadgen upload does) sees one instead of a truncation.
        SSL_shutdown(ssl.get());
      } else {
        ReportFailure("read", ssl.get(), ret);
      }
      return;
    }
    stats->bytes_in.fetch_add(static_cast<uint64_t>(ret), std::memory_order_relaxed);
    if (opt.mode == Mode::kEcho) {
      // Blocking socket and no partial-write mode: SSL_write returns only
      // once all of it is written or the connection failed.
      int wrote = SSL_write(ssl.get(), buf.data(), ret);
      if (wrote <= 0) {
        ReportFailure("write", ssl.get(), wrote);
        return;
      }
      stats->bytes_out.fetch_add(static_cast<uint64_t>(wrote), std::memory_order_relaxed);
    }
  }
}

int Run(const Options& opt) {
  bssl::UniquePtr<SSL_CTX> ctx = NewServerContext(opt);
  if (!ctx) return 1;

  // Source mode sends the same buffer forever; random rather than zero bytes
  // so nothing on the path can get an unfair advantage from compressibility.
  std::vector<uint8_t> source_data;
  if (opt.mode == Mode::kSource) {
    source_data.resize(opt.chunk);
    std::mt19937_64 rng(0x5eed);
    for (auto& b : source_data) b = static_cast<uint8_t>(rng());
  }

  sockaddr_storage addr;
  socklen_t addr_len = 0;
  if (!ParseAddress(opt.listen, &addr, &addr_len)) {
    std::fprintf(stderr, "tls_sink: bad --listen '%s' (want IP:PORT)\n", opt.listen.c_str());
    return 2;
  }
  int listen_fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) {
    std::perror("tls_sink: socket");
    return 1;
  }
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0 ||
      listen(listen_fd, 512) != 0) {
    std::fprintf(stderr, "tls_sink: cannot listen on %s: %s\n", opt.listen.c_str(),
                 std::strerror(errno));
    return 1;
  }
  addr_len = sizeof(addr);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len);

  // SIGTERM and SIGINT arrive through a signalfd polled next to the listening
  // socket: no async-signal-safety concerns, and accept() never has to be
  // interrupted. They are blocked before any thread starts so that every
  // thread inherits the mask and none of them takes the signal itself.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sig_fd < 0) {
    std::perror("tls_sink: signalfd");
    return 1;
  }

  std::printf("listening on %s\n", FormatAddress(addr).c_str());
  std::fflush(stdout);

  Stats stats;
  Registry registry;
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("tls_sink: poll");
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents == 0) continue;
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Transient (the peer gave up, fd limit); keep serving the others.
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        std::perror("tls_sink: accept");
      }
      continue;
    }
    if (!registry.Add(fd)) {
      close(fd);
      continue;
    }
    stats.connections.fetch_add(1, std::memory_order_relaxed);
    try {
      std::thread([fd, &ctx, &opt, &source_data, &stats, &registry] {
        ServeConnection(fd, ctx.get(), opt, source_data, &stats);
        registry.Remove(fd);
        close(fd);
      }).detach();
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "tls_sink: cannot start a thread: %s\n", e.what());
      registry.Remove(fd);
      close(fd);
    }
  }

  close(listen_fd);
  registry.StopAll();
  // Threads reference ctx, opt and stats from this frame; it must outlive them.
  registry.WaitIdle();
  std::fprintf(stderr,
               "tls_sink: connections=%llu handshake_failures=%llu bytes_in=%llu "
               "bytes_out=%llu\n",
               static_cast<unsigned long long>(stats.connections.load()),
               static_cast<unsigned long long>(stats.handshake_failures.load()),
               static_cast<unsigned long long>(stats.bytes_in.load()),
               static_cast<unsigned long long>(stats.bytes_out.load()));
  close(sig_fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that vanishes mid-write must surface as EPIPE from SSL_write,
  // not kill the whole sink.
  signal(SIGPIPE, SIG_IGN);
  Options opt;
  if (!ParseOptions(argc, argv, &opt)) Usage(argv[0]);
  return Run(opt);
}

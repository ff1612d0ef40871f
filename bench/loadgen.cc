// loadgen: pushes bulk bytes through a TCP (or, with --tls, a direct TLS)
// connection and reports throughput, for comparing dbward with other TLS
// relays and with no relay at all.
//
//   loadgen --connect 127.0.0.1:PORT --connections N --bytes B
//           --mode upload|download|echo [--chunk 65536]
//           [--tls --ca FILE --server-name NAME] [--idle-timeout SECONDS]
//
// B is per connection and may carry a K/M/G suffix (powers of 1024). The one
// line of output uses MB = 1e6 bytes:
//   mode=upload connections=N bytes=TOTAL seconds=S MBps=X
// Exit status: 0 on success, 1 if any connection failed or echoed wrong data,
// 2 on bad usage.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

enum class Mode { kUpload, kDownload, kEcho };

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kUpload: return "upload";
    case Mode::kDownload: return "download";
    case Mode::kEcho: return "echo";
  }
  return "?";
}

struct Options {
  std::string connect;
  int connections = 1;
  uint64_t bytes = 0;
  Mode mode = Mode::kUpload;
  size_t chunk = 64 * 1024;
  bool tls = false;
  std::string ca_file;
  std::string server_name;
  int idle_timeout_s = 30;
};

// Every connection sends the same pseudo-random stream, entered at a
// different offset so that connections are not byte-identical. Stream byte i
// of a connection is pattern[(offset + i) % kPeriod]; the buffer is one chunk
// longer than the period so that any chunk starting inside the period can be
// handed to write() (and compared after an echo) without wrapping.
constexpr size_t kPeriod = 1 << 20;

struct Pattern {
  std::vector<uint8_t> bytes;
  explicit Pattern(size_t chunk) : bytes(kPeriod + chunk) {
    std::mt19937_64 rng(0xdb3a4d);
    for (size_t i = 0; i < kPeriod; ++i) bytes[i] = static_cast<uint8_t>(rng());
    for (size_t i = kPeriod; i < bytes.size(); ++i) bytes[i] = bytes[i - kPeriod];
  }
  const uint8_t* At(uint64_t offset, uint64_t pos) const {
    return bytes.data() + (offset + pos) % kPeriod;
  }
};

[[noreturn]] void Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --connect HOST:PORT --bytes B --mode upload|download|echo\n"
               "          [--connections N] [--chunk BYTES] [--idle-timeout SECONDS]\n"
               "          [--tls --ca FILE [--server-name NAME]]\n",
               argv0);
  std::exit(2);
}

bool ParseSize(const std::string& text, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || errno != 0) return false;
  std::string suffix = end;
  uint64_t scale = 1;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") {
    scale = 1ull << 10;
  } else if (suffix == "M" || suffix == "m" || suffix == "MiB") {
    scale = 1ull << 20;
  } else if (suffix == "G" || suffix == "g" || suffix == "GiB") {
    scale = 1ull << 30;
  } else if (!suffix.empty()) {
    return false;
  }
  if (n > UINT64_MAX / scale) return false;
  *out = n * scale;
  return true;
}

bool ParseOptions(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") Usage(argv[0]);
    if (arg == "--tls") {
      opt->tls = true;
      continue;
    }
    std::string value;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "loadgen: %s needs a value\n", arg.c_str());
      return false;
    }
    uint64_t n = 0;
    if (arg == "--connect") {
      opt->connect = value;
    } else if (arg == "--connections") {
      if (!ParseSize(value, &n) || n == 0 || n > 10000) {
        std::fprintf(stderr, "loadgen: bad --connections '%s'\n", value.c_str());
        return false;
      }
      opt->connections = static_cast<int>(n);
    } else if (arg == "--bytes") {
      if (!ParseSize(value, &n)) {
        std::fprintf(stderr, "loadgen: bad --bytes '%s'\n", value.c_str());
        return false;
      }
      opt->bytes = n;
    } else if (arg == "--chunk") {
      if (!ParseSize(value, &n) || n == 0 || n > (64u << 20)) {
        std::fprintf(stderr, "loadgen: bad --chunk '%s'\n", value.c_str());
        return false;
      }
      opt->chunk = static_cast<size_t>(n);
    } else if (arg == "--idle-timeout") {
      if (!ParseSize(value, &n) || n == 0 || n > 86400) {
        std::fprintf(stderr, "loadgen: bad --idle-timeout '%s'\n", value.c_str());
        return false;
      }
      opt->idle_timeout_s = static_cast<int>(n);
    } else if (arg == "--mode") {
      if (value == "upload") {
        opt->mode = Mode::kUpload;
      } else if (value == "download") {
        opt->mode = Mode::kDownload;
      } else if (value == "echo") {
        opt->mode = Mode::kEcho;
      } else {
        std::fprintf(stderr, "loadgen: unknown mode '%s'\n", value.c_str());
        return false;
      }
    } else if (arg == "--ca") {
      opt->ca_file = value;
    } else if (arg == "--server-name") {
      opt->server_name = value;
    } else {
      std::fprintf(stderr, "loadgen: unknown option '%s'\n", arg.c_str());
      return false;
    }
  }
  if (opt->connect.empty() || opt->bytes == 0) {
    std::fprintf(stderr, "loadgen: --connect and a non-zero --bytes are required\n");
    return false;
  }
  if (opt->tls && opt->ca_file.empty()) {
    // No system trust store is assumed: an unverified baseline would skip
    // work the relays under test are doing, and flatter the direct numbers.
    std::fprintf(stderr, "loadgen: --tls needs --ca\n");
    return false;
  }
  return true;
}

bool ParseAddress(const std::string& text, sockaddr_storage* out, socklen_t* len,
                  std::string* host_out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || colon + 1 == text.size() || port == 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  *host_out = host;
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

std::string TakeSslErrors(int saved_errno) {
  std::string out;
  while (uint32_t err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  if (out.empty()) out = saved_errno != 0 ? std::strerror(saved_errno) : "unexpected EOF";
  return out;
}

struct IoResult {
  enum Kind { kOk, kWantRead, kWantWrite, kEof, kError };
  Kind kind;
  size_t n = 0;
  std::string error;
};

// One socket, optionally with TLS on top, behind the same four calls so the
// transfer loop does not care which it is driving.
class Endpoint {
 public:
  Endpoint(int fd, bssl::UniquePtr<SSL> ssl) : fd_(fd), ssl_(std::move(ssl)) {}
  ~Endpoint() { close(fd_); }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  int fd() const { return fd_; }

  IoResult Read(uint8_t* buf, size_t len) {
    if (!ssl_) {
      ssize_t n = read(fd_, buf, len);
      if (n > 0) return {IoResult::kOk, static_cast<size_t>(n), {}};
      if (n == 0) return {IoResult::kEof, 0, {}};
      return FromErrno(IoResult::kWantRead);
    }
    int n = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
    if (n > 0) return {IoResult::kOk, static_cast<size_t>(n), {}};
    return FromSsl(n);
  }

  IoResult Write(const uint8_t* buf, size_t len) {
    if (!ssl_) {
      ssize_t n = write(fd_, buf, len);
      if (n >= 0) return {IoResult::kOk, static_cast<size_t>(n), {}};
      return FromErrno(IoResult::kWantWrite);
    }
    int n = SSL_write(ssl_.get(), buf, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
    if (n > 0) return {IoResult::kOk, static_cast<size_t>(n), {}};
    return FromSsl(n);
  }

  // Signals "no more data" the way a client of a database would: with TLS a
  // close_notify and then a FIN, without it just the FIN. Reading stays open
  // so the caller can wait for the far end to finish.
  IoResult ShutdownWrite() {
    if (ssl_) {
      int ret = SSL_shutdown(ssl_.get());
      if (ret < 0) return FromSsl(ret);
    }
    if (shutdown(fd_, SHUT_WR) != 0) return FromErrno(IoResult::kWantWrite);
    return {IoResult::kOk, 0, {}};
  }

 private:
  static IoResult FromErrno(IoResult::Kind would_block) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return {would_block, 0, {}};
    return {IoResult::kError, 0, std::strerror(err)};
  }

  IoResult FromSsl(int ret) {
    int saved_errno = errno;
    switch (SSL_get_error(ssl_.get(), ret)) {
      case SSL_ERROR_WANT_READ: return {IoResult::kWantRead, 0, {}};
      case SSL_ERROR_WANT_WRITE: return {IoResult::kWantWrite, 0, {}};
      case SSL_ERROR_ZERO_RETURN: return {IoResult::kEof, 0, {}};
      case SSL_ERROR_SYSCALL:
        // A bare FIN without close_notify: a truncation in TLS terms, but
        // byte counts are checked by the caller, which is what matters here.
        if (ret == 0 && ERR_peek_error() == 0) return {IoResult::kEof, 0, {}};
        if (saved_errno == EAGAIN || saved_errno == EINTR) return {IoResult::kWantRead, 0, {}};
        [[fallthrough]];
      default:
        return {IoResult::kError, 0, TakeSslErrors(saved_errno)};
    }
  }

  int fd_;
  bssl::UniquePtr<SSL> ssl_;
};

struct Shared {
  const Options* opt;
  sockaddr_storage addr;
  socklen_t addr_len;
  std::string server_name;
  SSL_CTX* ssl_ctx;  // null without --tls
  const Pattern* pattern;
};

struct ConnResult {
  bool ok = false;
  std::string error;
};

void SetBlocking(int fd, bool blocking) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
}

std::unique_ptr<Endpoint> Connect(const Shared& shared, std::string* error) {
  int fd = socket(shared.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return nullptr;
  }
  // Bounded waits even in blocking mode, so a relay that stops forwarding
  // turns into a reported failure instead of a benchmark that never ends.
  timeval tv{shared.opt->idle_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&shared.addr), shared.addr_len) != 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  if (!shared.ssl_ctx) return std::make_unique<Endpoint>(fd, nullptr);

  bssl::UniquePtr<SSL> ssl(SSL_new(shared.ssl_ctx));
  if (!ssl || !SSL_set_fd(ssl.get(), fd)) {
    *error = "SSL_new: " + TakeSslErrors(0);
    close(fd);
    return nullptr;
  }
  const std::string& name = shared.server_name;
  in6_addr scratch;
  bool is_ip = inet_pton(AF_INET, name.c_str(), &scratch) == 1 ||
               inet_pton(AF_INET6, name.c_str(), &scratch) == 1;
  bool named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str())
                     : SSL_set_tlsext_host_name(ssl.get(), name.c_str()) &&
                           SSL_set1_host(ssl.get(), name.c_str());
  if (!named) {
    *error = "cannot set server name '" + name + "': " + TakeSslErrors(0);
    close(fd);
    return nullptr;
  }
  int ret = SSL_connect(ssl.get());
  if (ret != 1) {
    int saved_errno = errno;
    long verify = SSL_get_verify_result(ssl.get());
    *error = "TLS handshake: " + TakeSslErrors(saved_errno);
    if (verify != X509_V_OK) {
      *error += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
    close(fd);
    return nullptr;
  }
  return std::make_unique<Endpoint>(fd, std::move(ssl));
}

// Runs one connection's transfer. Upload and download use a blocking socket
// (one syscall per chunk, the cheapest client possible, so that the client is
// not what gets measured); echo needs to write and read at once on a single
// SSL object, which is not safe from two threads, so it goes non-blocking and
// polls.
ConnResult Transfer(Endpoint* ep, int index, const Shared& shared) {
  const Options& opt = *shared.opt;
  const Pattern& pattern = *shared.pattern;
  const uint64_t total = opt.bytes;
  const uint64_t offset = static_cast<uint64_t>(index) * 7919 % kPeriod;
  const bool blocking = opt.mode != Mode::kEcho;
  SetBlocking(ep->fd(), blocking);

  std::vector<uint8_t> buf(opt.chunk);
  uint64_t sent = 0;
  uint64_t received = 0;
  bool write_done = opt.mode == Mode::kDownload;
  bool eof = false;
  ConnResult result;

  auto fail = [&](const std::string& what) {
    result.error = "connection " + std::to_string(index) + ": " + what + " (sent " +
                   std::to_string(sent) + ", received " + std::to_string(received) + ")";
    return result;
  };

  for (;;) {
    bool progressed = false;
    short events = 0;

    if (!write_done) {
      IoResult r;
      if (sent < total) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(opt.chunk, total - sent));
        r = ep->Write(pattern.At(offset, sent), n);
        if (r.kind == IoResult::kOk) sent += r.n;
      } else if (opt.mode == Mode::kUpload) {
        r = ep->ShutdownWrite();
        if (r.kind == IoResult::kOk) write_done = true;
      } else {
        // Echo keeps its write side open: a relay is free to treat a
        // half-close as the end of the session, and echo is about the data.
        r = {IoResult::kOk, 0, {}};
        write_done = true;
      }
      switch (r.kind) {
        case IoResult::kOk: progressed = true; break;
        case IoResult::kWantRead: events |= POLLIN; break;
        case IoResult::kWantWrite: events |= POLLOUT; break;
        case IoResult::kEof: return fail("peer closed while we were writing");
        case IoResult::kError: return fail("write: " + r.error);
      }
    }

    // Upload reads only after its last byte, to catch the far end's close;
    // download and echo read from the start.
    bool want_read = opt.mode == Mode::kUpload ? write_done && !eof : received < total;
    if (want_read) {
      // Never ask for more than is still owed: a source relay keeps sending
      // past B, and bytes beyond it belong to nobody's measurement.
      size_t want = buf.size();
      if (opt.mode != Mode::kUpload) {
        want = static_cast<size_t>(std::min<uint64_t>(want, total - received));
      }
      IoResult r = ep->Read(buf.data(), want);
      switch (r.kind) {
        case IoResult::kOk:
          progressed = true;
          if (opt.mode == Mode::kUpload) break;  // nothing is expected back; ignore it
          if (opt.mode == Mode::kEcho) {
            if (received + r.n > sent) return fail("echo returned bytes that were never sent");
            const uint8_t* expect = pattern.At(offset, received);
            if (std::memcmp(buf.data(), expect, r.n) != 0) {
              size_t at = 0;
              while (buf[at] == expect[at]) ++at;
              return fail("echo mismatch at byte " + std::to_string(received + at));
            }
          }
          received += r.n;
          break;
        case IoResult::kWantRead: events |= POLLIN; break;
        case IoResult::kWantWrite: events |= POLLOUT; break;
        case IoResult::kEof:
          if (opt.mode != Mode::kUpload) return fail("peer closed early");
          eof = true;
          progressed = true;
          break;
        case IoResult::kError: return fail("read: " + r.error);
      }
    }

    bool done = opt.mode == Mode::kUpload ? eof : received == total && write_done;
    if (done) break;
    if (progressed) continue;
    if (blocking) {
      // A blocking call only comes back empty-handed when SO_RCVTIMEO or
      // SO_SNDTIMEO fired.
      return fail("no progress for " + std::to_string(opt.idle_timeout_s) + "s");
    }
    pollfd pfd{ep->fd(), events, 0};
    int ready = poll(&pfd, 1, opt.idle_timeout_s * 1000);
    if (ready == 0) return fail("no progress for " + std::to_string(opt.idle_timeout_s) + "s");
    if (ready < 0 && errno != EINTR) return fail(std::string("poll: ") + std::strerror(errno));
  }
  result.ok = true;
  return result;
}

bssl::UniquePtr<SSL_CTX> NewClientContext(const Options& opt) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION)) {
    std::fprintf(stderr, "loadgen: cannot create TLS context: %s\n", TakeSslErrors(0).c_str());
    return nullptr;
  }
  if (!SSL_CTX_load_verify_locations(ctx.get(), opt.ca_file.c_str(), nullptr)) {
    std::fprintf(stderr, "loadgen: cannot load CA file %s: %s\n", opt.ca_file.c_str(),
                 TakeSslErrors(errno).c_str());
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (opt.mode == Mode::kEcho) {
    // Non-blocking echo hands SSL_write a fresh pointer into the pattern on
    // every call, and wants progress reported per record, not per chunk.
    SSL_CTX_set_mode(ctx.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  return ctx;
}

}  // namespace

int main(int argc, char** argv) {
  // A relay closing on us must show up as EPIPE from write(), with a message.
  signal(SIGPIPE, SIG_IGN);

  Options opt;
  if (!ParseOptions(argc, argv, &opt)) Usage(argv[0]);

  Shared shared{};
  shared.opt = &opt;
  std::string host;
  if (!ParseAddress(opt.connect, &shared.addr, &shared.addr_len, &host)) {
    std::fprintf(stderr, "loadgen: bad --connect '%s' (want IP:PORT)\n", opt.connect.c_str());
    return 2;
  }
  shared.server_name = opt.server_name.empty() ? host : opt.server_name;
  bssl::UniquePtr<SSL_CTX> ctx;
  if (opt.tls) {
    ctx = NewClientContext(opt);
    if (!ctx) return 1;
    shared.ssl_ctx = ctx.get();
  }
  Pattern pattern(opt.chunk);
  shared.pattern = &pattern;

  // Connections (and TLS handshakes) are set up before the clock starts, so
  // the figure is steady-state throughput rather than setup cost.
  const int n = opt.connections;
  std::vector<ConnResult> results(static_cast<size_t>(n));
  std::latch connected(n + 1);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([i, &shared, &results, &connected] {
      ConnResult& result = results[static_cast<size_t>(i)];
      std::string error;
      std::unique_ptr<Endpoint> ep = Connect(shared, &error);
      connected.arrive_and_wait();
      if (!ep) {
        result.error = "connection " + std::to_string(i) + ": " + error;
        return;
      }
      result = Transfer(ep.get(), i, shared);
    });
  }
  connected.arrive_and_wait();
  auto start = std::chrono::steady_clock::now();
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  int failures = 0;
  for (const ConnResult& r : results) {
    if (r.ok) continue;
    if (++failures <= 5) std::fprintf(stderr, "loadgen: %s\n", r.error.c_str());
  }
  if (failures > 0) {
    std::fprintf(stderr, "loadgen: %d of %d connections failed\n", failures, n);
    return 1;
  }
  uint64_t total = opt.bytes * static_cast<uint64_t>(n);
  std::printf("mode=%s connections=%d bytes=%llu seconds=%.3f MBps=%.1f\n", ModeName(opt.mode), n,
              static_cast<unsigned long long>(total), seconds,
              static_cast<double>(total) / 1e6 / seconds);
  return 0;
}

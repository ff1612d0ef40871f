#include "proxy/backend/probe_io.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>


namespace dbward::proxy::probe {


SocketIo::~SocketIo() {
  if (fd_ >= 0) ::close(fd_);
}

bool SocketIo::Wait(short events) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) {
      timed_out_ = true;
      errno = ETIMEDOUT;
      return false;
    }
    pollfd pfd{fd_, events, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 60000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool SocketIo::Connect(const std::string& host, uint16_t port, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int gai = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (gai != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(gai);
    return false;
  }
  std::string why = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = strerror(errno);
      continue;
    }
    fd_ = fd;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (Wait(POLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
      }
    }
    if (rc == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo(res);
      return true;
    }
    why = timed_out_ ? "no answer before the timeout" : strerror(errno);
    ::close(fd);
    fd_ = -1;
    if (timed_out_) break;
  }
  freeaddrinfo(res);
  std::string where = host.find(':') != std::string::npos ? "[" + host + "]:" + service : host + ":" + service;
  *error = "cannot connect to " + where + ": " + why;
  return false;
}

tls::IoResult SocketIo::Read(std::span<uint8_t> out) {
  for (;;) {
    ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
    if (n > 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    if (n == 0) return tls::IoResult::Eof();
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return tls::IoResult::Error(errno);
    if (!Wait(POLLIN)) return tls::IoResult::Error(errno);
  }
}

tls::IoResult SocketIo::Write(std::span<const uint8_t> in) {
  size_t done = 0;
  while (done < in.size()) {
    ssize_t n = ::send(fd_, in.data() + done, in.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return tls::IoResult::Error(errno);
    if (!Wait(POLLOUT)) return tls::IoResult::Error(errno);
  }
  return tls::IoResult::Ok(done);
}

bool SocketIo::ReadExact(std::span<uint8_t> out, std::string* error) {
  size_t done = 0;
  while (done < out.size()) {
    tls::IoResult r = Read(out.subspan(done));
    if (r.kind == tls::IoResult::kEof) {
      *error = "the server closed the connection";
      return false;
    }
    if (!r.ok()) {
      *error = timed_out_ ? "no answer before the timeout" : strerror(r.err);
      return false;
    }
    done += r.n;
  }
  return true;
}

bool SocketIo::WriteAll(std::span<const uint8_t> in, std::string* error) {
  tls::IoResult r = Write(in);
  if (r.ok()) return true;
  *error = timed_out_ ? "the server did not accept data before the timeout" : strerror(r.err);
  return false;
}

}  // namespace dbward::proxy::probe

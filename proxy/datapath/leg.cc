#include "proxy/datapath/leg.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace dbward::proxy {

Leg::~Leg() { Close(); }

void Leg::Close() {
  tls_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

tls::IoResult Leg::Read(std::span<uint8_t> out) {
  if (!unread_.empty()) {
    size_t n = std::min(out.size(), unread_.size());
    std::copy(unread_.begin(), unread_.begin() + static_cast<ptrdiff_t>(n), out.begin());
    unread_.erase(unread_.begin(), unread_.begin() + static_cast<ptrdiff_t>(n));
    return tls::IoResult::Ok(n);
  }
  for (;;) {
    ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
    if (n > 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    if (n == 0) return tls::IoResult::Eof();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return tls::IoResult::WantRead();
    return tls::IoResult::Error(errno);
  }
}

tls::IoResult Leg::Write(std::span<const uint8_t> in) {
  for (;;) {
    ssize_t n = ::send(fd_, in.data(), in.size(), MSG_NOSIGNAL);
    if (n >= 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return tls::IoResult::WantWrite();
    return tls::IoResult::Error(errno);
  }
}

tls::IoResult Leg::ShutdownWrite() {
  if (tls_) {
    tls::IoResult r = tls_->Shutdown();
    if (!r.ok()) return r;
  }
  if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) return tls::IoResult::Error(errno);
  return tls::IoResult::Ok(0);
}

}  // namespace dbward::proxy

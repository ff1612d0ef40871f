#include "proxy/datapath/leg.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace dbward::proxy {

Leg::~Leg() { Close(); }

void Leg::Close() {
  tls_.reset();
  ahead_.reset();
  ahead_off_ = ahead_len_ = 0;
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
  if (ahead_off_ < ahead_len_) {
    size_t n = std::min(out.size(), ahead_len_ - ahead_off_);
    std::copy_n(ahead_.get() + ahead_off_, n, out.data());
    ahead_off_ += n;
    if (ahead_off_ == ahead_len_) {
      ahead_.reset();
      ahead_off_ = ahead_len_ = 0;
    }
    return tls::IoResult::Ok(n);
  }
  if (read_ahead_ && tls_ && out.size() < kReadAhead) return ReadAhead(out);
  for (;;) {
    ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
    if (n > 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    if (n == 0) return tls::IoResult::Eof();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return tls::IoResult::WantRead();
    return tls::IoResult::Error(errno);
  }
}

std::vector<uint8_t> Leg::TakeBuffered() {
  std::vector<uint8_t> out = std::move(unread_);
  unread_.clear();
  out.insert(out.end(), ahead_.get() + ahead_off_, ahead_.get() + ahead_len_);
  ahead_.reset();
  ahead_off_ = ahead_len_ = 0;
  return out;
}

tls::IoResult Leg::ReadAhead(std::span<uint8_t> out) {
  // One scratch area per thread: what is left over after out is filled is
  // copied to a block of exactly its size.
  thread_local uint8_t scratch[kReadAhead];
  iovec iov[2] = {{out.data(), out.size()}, {scratch, sizeof scratch}};
  for (;;) {
    ssize_t n = ::readv(fd_, iov, 2);
    if (n > 0) {
      size_t got = static_cast<size_t>(n);
      if (got <= out.size()) return tls::IoResult::Ok(got);
      ahead_len_ = got - out.size();
      ahead_off_ = 0;
      ahead_ = std::make_unique_for_overwrite<uint8_t[]>(ahead_len_);
      std::copy_n(scratch, ahead_len_, ahead_.get());
      return tls::IoResult::Ok(out.size());
    }
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

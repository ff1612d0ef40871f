// One side of a session: a socket, optionally with TLS layered on it. The
// relay only sees Recv/Send/ShutdownWrite, so it never asks whether a leg is
// TLS (the transport table idea of PgBouncer's sbuf and h2o's socket layer).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "tls/connection.h"
#include "tls/io.h"

namespace dbward::proxy {

class Leg final : public tls::Io {
 public:
  Leg() = default;
  ~Leg() override;
  void set_fd(int fd) { fd_ = fd; }
  int fd() const { return fd_; }
  void Close();

  // Raw socket I/O: the TLS BIO reads ciphertext straight into BoringSSL's
  // record buffer through these, and the raw relay path uses them directly.
  tls::IoResult Read(std::span<uint8_t> out) override;
  tls::IoResult Write(std::span<const uint8_t> in) override;

  // Stream I/O: plaintext in and out, through TLS when the leg has it.
  tls::IoResult Recv(std::span<uint8_t> out) { return tls_ ? tls_->Read(out) : Read(out); }
  tls::IoResult Send(std::span<const uint8_t> in) { return tls_ ? tls_->Write(in) : Write(in); }
  // Ends our sending side: close_notify first when TLS, then TCP FIN.
  tls::IoResult ShutdownWrite();

  void AttachTls(std::unique_ptr<tls::Connection> conn) { tls_ = std::move(conn); }
  // Bytes already taken off the socket by a classifier (e.g. a ClientHello
  // that announced direct TLS) are handed back and read again first.
  void Unread(std::span<const uint8_t> bytes) { unread_.insert(unread_.end(), bytes.begin(), bytes.end()); }
  tls::Connection* tls() const { return tls_.get(); }
  // Once enabled (from the TLS handshake on, where the leg stays in TLS): a
  // small read BoringSSL asks for (a record header, the rest of a short
  // record) takes up to kReadAhead bytes from the socket in the same recv,
  // so a short record costs one recv instead of two. Only ciphertext is
  // ever kept back, and only until BoringSSL asks for it.
  void EnableReadAhead() { read_ahead_ = true; }
  // Input that readiness on the socket will not announce: bytes handed back,
  // ciphertext read ahead, or records BoringSSL holds.
  bool HasBufferedInput() const {
    return !unread_.empty() || ahead_off_ < ahead_len_ || (tls_ && tls_->HasBufferedInput());
  }
  static constexpr size_t kReadAhead = 8192;
  // TDS login-only encryption: after LOGIN7 the leg goes back to plaintext
  // without a close_notify, exactly as the protocol says.
  // Both happen before the relay, so no ciphertext is read ahead yet.
  void DetachTls() {
    tls_.reset();
    read_ahead_ = false;
  }
  // A warm backend leg changes hands: its TLS and its socket go to a session,
  // and so does ciphertext already off the socket (TakeBuffered, which the
  // new leg Unread()s), or the next record would be lost.
  std::unique_ptr<tls::Connection> TakeTls() {
    read_ahead_ = false;
    return std::move(tls_);
  }
  std::vector<uint8_t> TakeBuffered();
  void ReleaseFd() { fd_ = -1; }

 private:
  tls::IoResult ReadAhead(std::span<uint8_t> out);

  int fd_ = -1;
  std::unique_ptr<tls::Connection> tls_;
  std::vector<uint8_t> unread_;
  bool read_ahead_ = false;
  // Ciphertext read ahead and not yet asked for; freed once taken, so an
  // idle leg holds none.
  std::unique_ptr<uint8_t[]> ahead_;
  size_t ahead_off_ = 0, ahead_len_ = 0;
};

}  // namespace dbward::proxy

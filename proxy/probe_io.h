// Blocking transports for `dbward probe`. The probe is a one-shot CLI, not the
// event loop: every read and write waits with poll() until the connection's
// deadline, so tls::Connection never sees WantRead/WantWrite and a handshake
// is a plain loop. The TDS 7.x variant carries TLS records inside PRELOGIN
// packets, one message per TLS flight, as SQL Server's drivers send them.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tls/io.h"

namespace dbward::proxy::probe {

using Clock = std::chrono::steady_clock;

class SocketIo final : public tls::Io {
 public:
  explicit SocketIo(Clock::time_point deadline) : deadline_(deadline) {}
  ~SocketIo() override;
  SocketIo(const SocketIo&) = delete;
  SocketIo& operator=(const SocketIo&) = delete;

  // Resolves host and connects to the first address that answers before the
  // deadline. *error reads like "connection refused (127.0.0.1:5432)".
  bool Connect(const std::string& host, uint16_t port, std::string* error);

  // At least one byte, EOF, or an error (ETIMEDOUT once the deadline passed).
  tls::IoResult Read(std::span<uint8_t> out) override;
  // Everything, or an error.
  tls::IoResult Write(std::span<const uint8_t> in) override;

  // Exactly out.size() bytes; *error names EOF, the errno or the timeout.
  bool ReadExact(std::span<uint8_t> out, std::string* error);
  bool WriteAll(std::span<const uint8_t> in, std::string* error);

  bool timed_out() const { return timed_out_; }
  int fd() const { return fd_; }

 private:
  // Waits for events; false (errno set) on timeout or poll failure.
  bool Wait(short events);

  Clock::time_point deadline_;
  int fd_ = -1;
  bool timed_out_ = false;
};

// TDS 7.x: what BoringSSL writes is collected until it flushes the flight and
// then sent as one PRELOGIN (0x12) message; what it reads is the payload of
// the server's PRELOGIN packets. Used only for the handshake.
class PreloginIo final : public tls::Io {
 public:
  explicit PreloginIo(SocketIo* socket) : socket_(socket) {}
  tls::IoResult Read(std::span<uint8_t> out) override;
  tls::IoResult Write(std::span<const uint8_t> in) override;
  bool Flush() override;
  // Why the framing failed (a non-PRELOGIN packet, a lost connection), or "".
  const std::string& error() const { return error_; }

 private:
  SocketIo* socket_;
  size_t in_remaining_ = 0;  // payload bytes left in the current packet
  std::vector<uint8_t> out_;
  int failed_errno_ = 0;     // a failed flush; the next read reports it
  std::string error_;
};

}  // namespace dbward::proxy::probe

// Blocking transports for `dbward probe`. The probe is a one-shot CLI, not the
// event loop: every read and write waits with poll() until the connection's
// deadline, so tls::Connection never sees WantRead/WantWrite and a handshake
// is a plain loop. TDS 7.x wraps this socket in proxy/engine/tds_framing's
// PreloginFramingIo, the same framing the sessions use.
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

}  // namespace dbward::proxy::probe

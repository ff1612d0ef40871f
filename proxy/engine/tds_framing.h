// TDS 7.x carries the TLS handshake inside PRELOGIN (0x12) packets, in both
// directions; once the handshake is over, TLS records go straight on TCP.
// This Io wraps what BoringSSL writes into PRELOGIN messages and unwraps what
// it reads; the owner swaps the raw transport in when the handshake is done.
// It runs over any raw Io: a session's non-blocking Leg or the probe's
// blocking socket. Only the handshake goes through here (a few KiB), so
// copying is fine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tls/io.h"

namespace dbward::proxy {

class PreloginFramingIo final : public tls::Io {
 public:
  explicit PreloginFramingIo(tls::Io* raw) : raw_(raw) {}
  tls::IoResult Read(std::span<uint8_t> out) override;
  tls::IoResult Write(std::span<const uint8_t> in) override;
  bool Flush() override;
  int flush_error() const override { return failed_ ? error_code_ : 0; }
  // True when no partial packet is pending in either direction: the only
  // safe moment to hand the socket back to raw TLS.
  bool Idle() const { return in_remaining_ == 0 && header_fill_ == 0 && out_.empty(); }
  // Why the framing failed (a non-PRELOGIN packet, a lost connection), or "".
  const std::string& error() const { return error_; }

 private:
  tls::Io* raw_;
  uint8_t header_[8];
  size_t header_fill_ = 0;
  size_t in_remaining_ = 0;   // payload bytes left in the current packet
  std::vector<uint8_t> out_;  // framed bytes not yet on the socket
  bool failed_ = false;       // the socket failed under a write: stop retrying
  int error_code_ = 0;
  std::string error_;
};

}  // namespace dbward::proxy

// TDS 7.x carries the TLS handshake inside PRELOGIN (0x12) packets, in both
// directions; once the handshake is over, TLS records go straight on TCP.
// This Io wraps what BoringSSL writes into PRELOGIN packets and unwraps what
// it reads; the handler swaps the raw socket in when the handshake is done.
// Only the handshake goes through here (a few KiB), so copying is fine.
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/leg.h"
#include "tls/io.h"

namespace dbward::proxy {

class PreloginFramingIo final : public tls::Io {
 public:
  explicit PreloginFramingIo(Leg* leg) : leg_(leg) {}
  tls::IoResult Read(std::span<uint8_t> out) override;
  tls::IoResult Write(std::span<const uint8_t> in) override;
  bool Flush() override;
  int flush_error() const override { return failed_ ? error_code_ : 0; }
  // True when no partial packet is pending in either direction: the only
  // safe moment to hand the socket back to raw TLS.
  bool Idle() const { return in_remaining_ == 0 && header_fill_ == 0 && out_.empty(); }
  const std::string& error() const { return error_; }

 private:
  Leg* leg_;
  uint8_t header_[8];
  size_t header_fill_ = 0;
  size_t in_remaining_ = 0;   // payload bytes left in the current packet
  std::vector<uint8_t> out_;  // framed bytes not yet on the socket
  uint8_t packet_id_ = 1;
  bool failed_ = false;  // the socket failed under a write: stop retrying
  int error_code_ = 0;
  std::string error_;
};

}  // namespace dbward::proxy

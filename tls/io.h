// The byte pipe a TLS connection runs over. tls/ knows no sockets: proxy/
// implements Io on a file descriptor (read/write straight into BoringSSL's
// record buffers, no staging copy) or on a framing layer such as TDS PRELOGIN
// packets; tests implement it in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace dbward::tls {

struct IoResult {
  enum Kind : uint8_t {
    kOk,          // n bytes moved
    kWantRead,    // would block until the transport is readable
    kWantWrite,   // would block until the transport is writable
    kEof,         // orderly end of stream from the peer
    kError,       // hard failure; err holds an errno-style code where known
  };
  Kind kind = kOk;
  size_t n = 0;
  int err = 0;

  static IoResult Ok(size_t n) { return {kOk, n, 0}; }
  static IoResult WantRead() { return {kWantRead, 0, 0}; }
  static IoResult WantWrite() { return {kWantWrite, 0, 0}; }
  static IoResult Eof() { return {kEof, 0, 0}; }
  static IoResult Error(int err) { return {kError, 0, err}; }
  bool ok() const { return kind == kOk; }
  bool blocked() const { return kind == kWantRead || kind == kWantWrite; }
};

class Io {
 public:
  virtual ~Io() = default;
  virtual IoResult Read(std::span<uint8_t> out) = 0;
  virtual IoResult Write(std::span<const uint8_t> in) = 0;
  // Pushes out anything the Io buffered itself (framing layers do); false
  // while it would block.
  virtual bool Flush() { return true; }
  // Non-zero (an errno) once Flush can never succeed.
  virtual int flush_error() const { return 0; }
};

}  // namespace dbward::tls

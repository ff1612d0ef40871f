// Classifies the first bytes a client sends, before any protocol state exists.
// Listeners use it to tell a TLS ClientHello (PostgreSQL direct TLS, TDS 8.0
// strict) from the protocol's own first message.
#pragma once

#include <cstdint>
#include <span>

namespace dbward::protocol {

enum class FirstBytes {
  kNeedMore,      // not enough bytes to decide
  kTlsHandshake,  // a TLS handshake record (content type 22, version 3.x)
  kOther,         // anything else: the protocol's own framing
};

// Looks at up to the first 3 bytes: 0x16 0x03 0x0X is a TLS handshake record.
FirstBytes ClassifyFirstBytes(std::span<const uint8_t> data);

}  // namespace dbward::protocol

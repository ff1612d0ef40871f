// Byte-building helpers shared by the protocol decoder tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace dbward::protocol::testutil {

using Bytes = std::vector<uint8_t>;

// Lower-case hex, as the vectors in /work/shared/vectors are written.
inline Bytes FromHex(std::string_view hex) {
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    return static_cast<uint8_t>(c - 'a' + 10);
  };
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

inline void Append(Bytes* out, std::string_view s) { out->insert(out->end(), s.begin(), s.end()); }
inline void AppendBytes(Bytes* out, const Bytes& b) { out->insert(out->end(), b.begin(), b.end()); }
inline void AppendCString(Bytes* out, std::string_view s) {
  Append(out, s);
  out->push_back(0);
}
inline void AppendU16LE(Bytes* out, uint16_t v) {
  out->push_back(static_cast<uint8_t>(v));
  out->push_back(static_cast<uint8_t>(v >> 8));
}
inline Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
inline Bytes Prefix(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + static_cast<ptrdiff_t>(n)); }
inline Bytes Suffix(const Bytes& b, size_t from) { return Bytes(b.begin() + static_cast<ptrdiff_t>(from), b.end()); }
inline Bytes StrBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

}  // namespace dbward::protocol::testutil

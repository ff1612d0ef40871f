// Bounds-checked, read-only view over untrusted bytes, in the style of
// BoringSSL's CBS: every Get* advances only on success, length-prefixed fields
// carve out a child cursor, and callers finish with Empty() to reject trailing
// garbage. Protocol code never does pointer arithmetic of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace dbward::protocol {

class Cursor {
 public:
  Cursor() = default;
  explicit Cursor(std::span<const uint8_t> data) : data_(data) {}

  size_t size() const { return data_.size(); }
  bool Empty() const { return data_.empty(); }
  std::span<const uint8_t> Rest() const { return data_; }

  bool Skip(size_t n) {
    if (n > data_.size()) return false;
    data_ = data_.subspan(n);
    return true;
  }
  bool GetU8(uint8_t* out) {
    if (data_.empty()) return false;
    *out = data_[0];
    data_ = data_.subspan(1);
    return true;
  }
  bool PeekU8(uint8_t* out) const {
    if (data_.empty()) return false;
    *out = data_[0];
    return true;
  }
  bool GetU16BE(uint16_t* out) { return GetBE(out, 2); }
  bool GetU24BE(uint32_t* out) { return GetBE(out, 3); }
  bool GetU32BE(uint32_t* out) { return GetBE(out, 4); }
  bool GetU16LE(uint16_t* out) { return GetLE(out, 2); }
  bool GetU24LE(uint32_t* out) { return GetLE(out, 3); }
  bool GetU32LE(uint32_t* out) { return GetLE(out, 4); }
  bool GetU64LE(uint64_t* out) { return GetLE(out, 8); }

  // Carves out the next n bytes as a child cursor.
  bool GetBytes(size_t n, Cursor* out) {
    if (n > data_.size()) return false;
    *out = Cursor(data_.first(n));
    data_ = data_.subspan(n);
    return true;
  }
  bool GetSpan(size_t n, std::span<const uint8_t>* out) {
    if (n > data_.size()) return false;
    *out = data_.first(n);
    data_ = data_.subspan(n);
    return true;
  }
  // A NUL-terminated string; the terminator is consumed but not returned.
  bool GetCString(std::string_view* out) {
    for (size_t i = 0; i < data_.size(); i++) {
      if (data_[i] == 0) {
        *out = std::string_view(reinterpret_cast<const char*>(data_.data()), i);
        data_ = data_.subspan(i + 1);
        return true;
      }
    }
    return false;
  }
  bool GetU8LengthPrefixed(Cursor* out) {
    uint8_t len;
    Cursor save = *this;
    if (!GetU8(&len) || !GetBytes(len, out)) {
      *this = save;
      return false;
    }
    return true;
  }

 private:
  template <typename T>
  bool GetBE(T* out, size_t n) {
    if (n > data_.size()) return false;
    T v = 0;
    for (size_t i = 0; i < n; i++) v = static_cast<T>((v << 8) | data_[i]);
    *out = v;
    data_ = data_.subspan(n);
    return true;
  }
  template <typename T>
  bool GetLE(T* out, size_t n) {
    if (n > data_.size()) return false;
    T v = 0;
    for (size_t i = 0; i < n; i++) v |= static_cast<T>(static_cast<T>(data_[i]) << (8 * i));
    *out = v;
    data_ = data_.subspan(n);
    return true;
  }

  std::span<const uint8_t> data_;
};

}  // namespace dbward::protocol

// Builds wire bytes the way Cursor reads them, in the style of BoringSSL's
// CBB: fixed-width integers in either byte order, and length-prefixed
// children whose prefix is written when the child is complete, so no caller
// patches a length afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace dbward::protocol {

class Builder {
 public:
  // Messages before authentication are small; one allocation covers most.
  Builder() { out_.reserve(64); }
  explicit Builder(size_t reserve) { out_.reserve(reserve); }

  Builder& U8(uint8_t v) {
    out_.push_back(v);
    return *this;
  }
  Builder& U16BE(uint16_t v) { return BE(v, 2); }
  Builder& U32BE(uint32_t v) { return BE(v, 4); }
  Builder& U16LE(uint16_t v) { return LE(v, 2); }
  Builder& U24LE(uint32_t v) { return LE(v, 3); }
  Builder& U32LE(uint32_t v) { return LE(v, 4); }
  Builder& U64LE(uint64_t v) { return LE(v, 8); }
  Builder& Bytes(std::span<const uint8_t> bytes) {
    out_.insert(out_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  Builder& Text(std::string_view s) {
    out_.insert(out_.end(), s.begin(), s.end());
    return *this;
  }
  // A NUL-terminated string. A C string cannot carry NUL itself: embedded NULs
  // become spaces rather than cutting the string (and the message) short.
  Builder& CString(std::string_view s) {
    for (char c : s) out_.push_back(c == '\0' ? ' ' : static_cast<uint8_t>(c));
    out_.push_back(0);
    return *this;
  }
  Builder& Zeros(size_t n) {
    out_.resize(out_.size() + n);
    return *this;
  }

  // Length prefixes. The prefix counts the bytes body() adds, plus its own
  // width when Inclusive (PostgreSQL's int32 lengths count themselves). A
  // length that does not fit its field marks the builder as failed.
  enum class Width { kU16BE, kU32BE, kU16LE, kU24LE };
  enum class Counts { kBodyOnly, kInclusive };
  template <typename Body>
  Builder& Prefixed(Width width, Counts counts, Body&& body) {
    size_t at = out_.size();
    size_t n = WidthBytes(width);
    out_.resize(at + n);
    body();
    size_t len = out_.size() - at - (counts == Counts::kInclusive ? 0 : n);
    Patch(at, width, len);
    return *this;
  }

  size_t size() const { return out_.size(); }
  std::span<const uint8_t> bytes() const { return out_; }
  // False when a length prefix overflowed its field.
  bool ok() const { return ok_; }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  template <typename T>
  Builder& BE(T v, int n) {
    for (int i = n - 1; i >= 0; i--) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  template <typename T>
  Builder& LE(T v, int n) {
    for (int i = 0; i < n; i++) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  static size_t WidthBytes(Width w) {
    switch (w) {
      case Width::kU16BE:
      case Width::kU16LE: return 2;
      case Width::kU24LE: return 3;
      case Width::kU32BE: return 4;
    }
    return 4;
  }
  void Patch(size_t at, Width w, size_t len) {
    size_t n = WidthBytes(w);
    if (n < 8 && len >= (size_t{1} << (8 * n))) ok_ = false;
    bool big = w == Width::kU16BE || w == Width::kU32BE;
    for (size_t i = 0; i < n; i++) {
      size_t shift = 8 * (big ? n - 1 - i : i);
      out_[at + i] = static_cast<uint8_t>(len >> shift);
    }
  }

  std::vector<uint8_t> out_;
  bool ok_ = true;
};

}  // namespace dbward::protocol

// Fixed-size relay buffers, recycled per worker thread (no locking: a pool
// belongs to one event loop). Idle sessions hold no buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace dbward::proxy {

class BufferPool {
 public:
  static constexpr size_t kBufferSize = 64 * 1024;
  explicit BufferPool(size_t max_free = 512) : max_free_(max_free) {}
  ~BufferPool() {
    for (uint8_t* b : free_) std::free(b);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  uint8_t* Get() {
    in_use_++;
    if (!free_.empty()) {
      uint8_t* b = free_.back();
      free_.pop_back();
      return b;
    }
    return static_cast<uint8_t*>(std::malloc(kBufferSize));
  }
  void Put(uint8_t* b) {
    in_use_--;
    if (free_.size() < max_free_) {
      free_.push_back(b);
    } else {
      std::free(b);
    }
  }
  size_t in_use() const { return in_use_; }

 private:
  size_t max_free_;
  size_t in_use_ = 0;
  std::vector<uint8_t*> free_;
};

}  // namespace dbward::proxy

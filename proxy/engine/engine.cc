#include "proxy/engine/engine.h"

#include <openssl/mem.h>

#include "proxy/engine/engines.h"

namespace dbward::proxy::engine {

ByteQueue::~ByteQueue() { OPENSSL_cleanse(buf_.data(), buf_.size()); }

void ByteQueue::Append(std::span<const uint8_t> bytes) {
  if (start_ > 0 && start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  if (buf_.size() + bytes.size() > buf_.capacity()) {
    // Grown by hand, not by the vector: the old block is wiped before it is
    // freed, since what it holds may be a password or a SCRAM verifier.
    std::vector<uint8_t> next;
    next.reserve(2 * (size() + bytes.size()));
    next.insert(next.end(), buf_.begin() + static_cast<ptrdiff_t>(start_), buf_.end());
    OPENSSL_cleanse(buf_.data(), buf_.size());
    buf_.swap(next);
    start_ = 0;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

void ByteQueue::Consume(size_t n) {
  n = std::min(n, size());
  // Consumed bytes may be a password (MySQL full authentication, SASL).
  OPENSSL_cleanse(buf_.data() + start_, n);
  start_ += n;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
}

std::vector<uint8_t> ByteQueue::TakeAll() {
  std::vector<uint8_t> out(buf_.begin() + static_cast<ptrdiff_t>(start_), buf_.end());
  Clear();
  return out;
}

void ByteQueue::Clear() {
  OPENSSL_cleanse(buf_.data(), buf_.size());
  std::vector<uint8_t>().swap(buf_);  // the memory goes too: an idle session keeps none
  start_ = 0;
}

std::unique_ptr<Engine> NewEngine(Driver& driver, const EngineContext& context) {
  switch (context.listener->protocol) {
    case Protocol::kTcp: return NewTcpEngine(driver, context);
    case Protocol::kPostgres: return NewPostgresEngine(driver, context);
    case Protocol::kMysql: return NewMysqlEngine(driver, context);
    case Protocol::kTds: return NewTdsEngine(driver, context);
  }
  return nullptr;
}

}  // namespace dbward::proxy::engine

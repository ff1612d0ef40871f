// Where SCRAM mediation gets a user's stored verifier: an interface the
// data path calls and proxy/backend implements (auth_file in memory,
// auth_query on a worker thread, with a cache).
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "proxy/common/verifier_answer.h"

namespace dbward::proxy {

// Cancels a lookup's callback (the session went away).
class VerifierTicket {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

class VerifierSource {
 public:
  using Callback = std::function<void(VerifierAnswer)>;
  virtual ~VerifierSource() = default;
  // Calls cb on loop's thread: at once when the answer is at hand, else
  // later. refresh: bypass the cache.
  virtual std::shared_ptr<VerifierTicket> Lookup(uv_loop_t* loop, const std::string& user, const std::string& database,
                                                 bool refresh, Callback cb) = 0;
  // The backend disagreed with this user's verifier: drop the cached one.
  virtual void Forget(const std::string& user) = 0;
};

}  // namespace dbward::proxy

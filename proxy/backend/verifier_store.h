// SCRAM mediation's verifiers for one listener (ops/verifiers.h):
//   auth_file   from the listener's material (reloaded with it), at once
//   auth_query  the backend itself, asked as auth_user over the verified TLS
//               leg on libuv's thread pool; answers are cached for
//               scram.cache, and concurrent lookups of one user on one loop
//               share a query
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/ops/runtime.h"
#include "proxy/ops/verifiers.h"

namespace dbward::proxy::backend {

class VerifierStore final : public VerifierSource {
 public:
  explicit VerifierStore(ListenerRuntime* listener) : listener_(listener) {}
  ~VerifierStore() override;

  std::shared_ptr<VerifierTicket> Lookup(uv_loop_t* loop, const std::string& user, const std::string& database,
                                         bool refresh, Callback cb) override;
  void Forget(const std::string& user) override;

 private:
  struct Waiter {
    std::shared_ptr<VerifierTicket> ticket;
    Callback cb;
  };
  struct Work;
  struct CacheEntry {
    VerifierAnswer answer;
    uint64_t at_ms = 0;
  };
  VerifierAnswer FromFile(const std::string& user) const;
  void Finished(Work* work);

  ListenerRuntime* listener_;
  std::mutex mu_;
  std::map<std::string, CacheEntry> cache_;
  // (loop, user) -> callbacks waiting for the query in flight.
  std::map<std::pair<uv_loop_t*, std::string>, std::vector<Waiter>> pending_;
};

// What a SCRAM secret text means for mediation: kScram, or kNone with the
// reason (md5, no password).
VerifierAnswer Classify(const std::optional<std::string>& secret, const std::string& user);

}  // namespace dbward::proxy::backend

#include "proxy/backend/verifier_store.h"

#include <openssl/mem.h>

#include <chrono>

#include "proxy/backend/pg_query.h"
#include "proxy/common/log.h"

namespace dbward::proxy::backend {
namespace {

uint64_t NowMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

// secret: null when there is none. Taken by pointer so that no copy of it
// is made on the way (an optional<string> argument would be one).
VerifierAnswer Classify(const std::string* secret, const std::string& user) {
  VerifierAnswer a;
  if (!secret || secret->empty()) {
    a.kind = VerifierAnswer::Kind::kNone;
    a.detail = "user " + user + " has no password (or it expired)";
  } else if (secret->rfind("SCRAM-SHA-256$", 0) == 0) {
    a.kind = VerifierAnswer::Kind::kScram;
    a.verifier = *secret;
  } else {
    a.kind = VerifierAnswer::Kind::kNone;
    a.detail = "user " + user + "'s password is " + (secret->rfind("md5", 0) == 0 ? "an md5 hash" : "not a SCRAM verifier");
  }
  return a;
}

struct VerifierStore::Work {
  uv_work_t req;
  VerifierStore* store;
  uv_loop_t* loop;
  std::string user, database;
  PgQuery query;
  std::shared_ptr<tls::Context> ctx;
  PgQueryResult result;
};

VerifierStore::~VerifierStore() = default;

VerifierAnswer VerifierStore::FromFile(const std::string& user) const {
  std::shared_ptr<const TlsMaterial> m = listener_->tls();
  if (!m->scram) return Classify(nullptr, user);
  auto it = m->scram->file_verifiers.find(user);
  if (it == m->scram->file_verifiers.end()) {
    VerifierAnswer a;
    a.detail = "user " + user + " is not in scram.auth_file";
    return a;
  }
  return Classify(&it->second, user);
}

std::shared_ptr<VerifierTicket> VerifierStore::Lookup(uv_loop_t* loop, const std::string& user,
                                                      const std::string& database, bool refresh, Callback cb) {
  auto ticket = std::make_shared<VerifierTicket>();
  const ScramConfig& sc = *listener_->config.scram;
  if (sc.source == ScramConfig::Source::kAuthFile) {
    cb(FromFile(user));
    return ticket;
  }
  const uint64_t now = NowMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto hit = cache_.find(user);
    if (!refresh && hit != cache_.end() && sc.cache_ms > 0 && now - hit->second.at_ms < sc.cache_ms) {
      VerifierAnswer a = hit->second.answer;
      a.from_cache = true;
      cb(std::move(a));
      return ticket;
    }
    auto& waiters = pending_[{loop, user}];
    waiters.push_back({ticket, std::move(cb)});
    if (waiters.size() > 1) return ticket;  // a query for this user is on its way
  }
  auto* work = new Work;
  work->req.data = work;
  work->store = this;
  work->loop = loop;
  work->user = user;
  work->database = database;
  const ListenerConfig& l = listener_->config;
  std::shared_ptr<const TlsMaterial> m = listener_->tls();
  work->ctx = m->backend;
  PgQuery& q = work->query;
  q.target.protocol = Protocol::kPostgres;
  q.target.pg_direct = l.backend_tls.direct;
  q.target.host = l.backend_host;
  q.target.port = l.backend_port;
  q.target.server_name = l.backend_tls.server_name;
  q.target.proxy_local = l.backend_proxy_protocol;
  q.target.timeout = std::chrono::milliseconds(l.timeouts.connect_ms + l.timeouts.handshake_ms / 2);
  q.user = sc.auth_user;
  q.password = m->scram ? m->scram->auth_password : std::string();
  q.database = sc.auth_database.empty() ? database : sc.auth_database;
  q.sql = sc.auth_query;
  q.params = {user};
  int rc = uv_queue_work(
      loop, &work->req,
      [](uv_work_t* req) {
        auto* w = static_cast<Work*>(req->data);
        w->result = RunPgQuery(w->query, w->ctx);
        OPENSSL_cleanse(w->query.password.data(), w->query.password.size());
      },
      [](uv_work_t* req, int) {
        auto* w = static_cast<Work*>(req->data);
        w->store->Finished(w);
        delete w;
      });
  if (rc != 0) {
    work->result.error = std::string("cannot start the lookup: ") + uv_strerror(rc);
    Finished(work);
    OPENSSL_cleanse(work->query.password.data(), work->query.password.size());
    delete work;
  }
  return ticket;
}

void VerifierStore::Finished(Work* w) {
  VerifierAnswer a;
  if (!w->result.ok) {
    a.kind = VerifierAnswer::Kind::kFailed;
    a.detail = "auth_query as " + w->query.user + " failed: " + w->result.error;
    LOG_WARN("listener={} scram: {}", listener_->config.name, a.detail);
  } else if (w->result.rows.empty()) {
    a.kind = VerifierAnswer::Kind::kNone;
    a.detail = "auth_query found no user " + w->user;
  } else {
    const auto& row = w->result.rows.front();
    // (name, secret) as PgBouncer's queries return them, or the secret alone.
    const std::string* secret = row.empty() || !row.back() ? nullptr : &*row.back();
    a = Classify(secret, w->user);
  }
  for (auto& row : w->result.rows) {
    for (auto& col : row) {
      if (col) OPENSSL_cleanse(col->data(), col->size());
    }
  }
  std::vector<Waiter> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (a.kind != VerifierAnswer::Kind::kFailed) cache_[w->user] = {a, NowMs()};
    if (cache_.size() > 100'000) cache_.clear();  // bound the memory
    auto it = pending_.find({w->loop, w->user});
    if (it != pending_.end()) {
      waiters = std::move(it->second);
      pending_.erase(it);
    }
  }
  for (Waiter& waiter : waiters) {
    if (!waiter.ticket->cancelled()) waiter.cb(a);
  }
}

void VerifierStore::Forget(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(user);
}

}  // namespace dbward::proxy::backend

#include "proxy/datapath/worker.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/common/address.h"
#include "proxy/common/log.h"
#include "proxy/common/time.h"
#include "proxy/datapath/session.h"
#include "proxy/datapath/socket.h"
#include "proxy/ops/audit_sink.h"

namespace dbward::proxy {
namespace {
// Connections accepted per readiness event before yielding, so one busy
// listener cannot starve relaying sessions on the same loop.
constexpr int kAcceptBatch = 64;
}  // namespace

Worker::Worker(int index, int count, const std::vector<ListenerRuntime*>& listeners)
    : index_(index), count_(count), listeners_(listeners) {
  uv_loop_init(&loop_);
}

WarmPool* Worker::warm(const ListenerRuntime* listener) {
  for (size_t i = 0; i < listeners_.size() && i < warm_.size(); i++) {
    if (listeners_[i] == listener) return warm_[i].get();
  }
  return nullptr;
}

Worker::~Worker() {
  warm_.clear();
  for (auto& a : acceptors_) {
    if (a->fd >= 0) close(a->fd);
  }
  uv_loop_close(&loop_);
}

bool Worker::Bind(std::string* error) {
  for (ListenerRuntime* l : listeners_) {
    auto a = std::make_unique<Acceptor>();
    a->worker = this;
    a->listener = l;
    uint16_t port = l->bound_port != 0 ? l->bound_port : l->config.listen_port;
    a->fd = ListenTcp(l->config.listen_host, port, true, error);
    if (a->fd < 0) {
      *error = "listener " + l->config.name + ": " + *error;
      return false;
    }
    if (l->bound_port == 0) l->bound_port = LocalPort(a->fd);
    acceptors_.push_back(std::move(a));
  }
  return true;
}

void Worker::Start() {
  uv_async_init(&loop_, &async_, OnAsync);
  async_.data = this;
  for (auto& a : acceptors_) {
    uv_poll_init_socket(&loop_, &a->poll, a->fd);
    a->poll.data = a.get();
    uv_timer_init(&loop_, &a->backoff);
    a->backoff.data = a.get();
    uv_poll_start(&a->poll, UV_READABLE, OnAccept);
  }
  for (ListenerRuntime* l : listeners_) {
    std::unique_ptr<WarmPool> pool;
    if (l->config.warm_backends) {
      // count is per listener, shared out: worker i keeps count / workers,
      // and one more while i < count % workers.
      const uint32_t workers = static_cast<uint32_t>(std::max(count_, 1));
      const uint32_t count = l->config.warm_backends->count;
      const uint32_t share = count / workers + (static_cast<uint32_t>(index_) < count % workers ? 1 : 0);
      if (share > 0) {
        pool = std::make_unique<WarmPool>(&loop_, l, share);
        pool->Start();
      }
    }
    warm_.push_back(std::move(pool));
  }
  accepting_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Worker::Run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Close anything still open (handles closed in the last iteration).
  uv_run(&loop_, UV_RUN_NOWAIT);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::Notify() {
  std::lock_guard<std::mutex> lock(async_mu_);
  if (!async_closed_) uv_async_send(&async_);
}

void Worker::RequestDrain() {
  drain_requested_ = true;
  Notify();
}

void Worker::RequestAbort() {
  abort_requested_ = true;
  Notify();
}

// Once draining and empty, close the last handles so uv_run returns.
void Worker::MaybeFinish() {
  if (accepting_ || sessions_ != nullptr) return;
  std::lock_guard<std::mutex> lock(async_mu_);
  if (async_closed_) return;
  async_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

void Worker::StopAccepting() {
  if (!accepting_) return;
  accepting_ = false;
  for (auto& pool : warm_) {
    if (pool) pool->Stop();
  }
  for (auto& a : acceptors_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&a->backoff), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&a->poll), [](uv_handle_t* h) {
      auto* acc = static_cast<Acceptor*>(h->data);
      close(acc->fd);
      acc->fd = -1;
    });
  }
}

void Worker::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<Worker*>(handle->data);
  if (self->drain_requested_ || self->abort_requested_) {
    self->StopAccepting();
  }
  if (self->abort_requested_) {
    // Abort unlinks sessions as they finish; walk a snapshot.
    std::vector<Session*> all;
    for (Session* s = self->sessions_; s != nullptr; s = s->next) all.push_back(s);
    for (Session* s : all) s->Abort();
  }
  self->MaybeFinish();
}

void Worker::OnAccept(uv_poll_t* handle, int status, int /*events*/) {
  auto* a = static_cast<Acceptor*>(handle->data);
  Worker* self = a->worker;
  if (status < 0) {
    LOG_ERROR("listener={} accept poll error: {}", a->listener->config.name, uv_strerror(status));
    return;
  }
  for (int i = 0; i < kAcceptBatch; i++) {
    int fd = accept4(a->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (errno == ECONNABORTED) continue;
      // EMFILE and friends: the listening socket stays readable, so a
      // level-triggered poll would spin. Pause accepting for a moment.
      LOG_ERROR("listener={} accept failed: {}; pausing accepts for 250 ms", a->listener->config.name,
                strerror(errno));
      uv_poll_stop(&a->poll);
      uv_timer_start(&a->backoff, [](uv_timer_t* t) {
        auto* acc = static_cast<Acceptor*>(t->data);
        if (acc->worker->accepting_) uv_poll_start(&acc->poll, UV_READABLE, OnAccept);
      }, 250, 0);
      return;
    }
    ListenerRuntime* l = a->listener;
    uint32_t active = l->active.fetch_add(1, std::memory_order_relaxed);
    if (active >= l->config.max_connections) {
      l->active.fetch_sub(1, std::memory_order_relaxed);
      l->metrics.refused_total.fetch_add(1, std::memory_order_relaxed);
      std::string peer = PeerAddress(fd);
      close(fd);
      LOG_WARN("listener={} refused {}: max_connections ({}) reached", l->config.name, peer,
               l->config.max_connections);
      AuditEvent e;
      e.ts = NowIsoMillis();
      e.event = "refused";
      e.listener = l->config.name;
      e.protocol = ProtocolName(l->config.protocol);
      e.client = peer;
      e.backend = BackendText(l->config);
      // client_encryption stays null: refused before the client said anything.
      e.backend_server_name = l->config.backend_tls.server_name;
      e.backend_verify = l->config.backend_tls.full_verify ? "full" : "ca";
      e.outcome = Token(Outcome::kRefused);
      e.error = "max_connections reached";
      e.cause = Token(Cause::kMaxConnections);
      e.bytes_up = 0;
      e.bytes_down = 0;
      e.duration_ms = 0;
      e.worker = self->index_;
      Audit().Emit(e);
      continue;
    }
    l->total.fetch_add(1, std::memory_order_relaxed);
    l->metrics.sessions_total.fetch_add(1, std::memory_order_relaxed);
    SetNoDelay(fd);
    auto* s = new Session(self, l, fd, (self->next_id_++ << 8) | static_cast<uint64_t>(self->index_));
    s->Start();
  }
}

void Worker::AddSession(Session* s) {
  s->next = sessions_;
  s->prev = nullptr;
  if (sessions_ != nullptr) sessions_->prev = s;
  sessions_ = s;
  sessions_count_++;
}

void Worker::RemoveSession(Session* s) {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else {
    sessions_ = s->next;
  }
  if (s->next != nullptr) s->next->prev = s->prev;
  s->next = s->prev = nullptr;
  sessions_count_--;
  MaybeFinish();
}

}  // namespace dbward::proxy

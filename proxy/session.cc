#include "proxy/session.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/json.h"
#include "proxy/log.h"
#include "proxy/net.h"
#include "proxy/worker.h"

namespace dbward::proxy {
namespace {

// Read only when at least this much room is left: reading tiny slivers into a
// nearly full buffer costs a syscall per few bytes.
constexpr size_t kMinReadRoom = 16 * 1024;
// Rounds of read/write per wake-up before yielding to other sessions.
constexpr int kMaxRounds = 16;

}  // namespace

Session::Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id)
    : worker_(worker), listener_(listener), id_(id) {
  client_.set_fd(client_fd);
  client_addr_ = PeerAddress(client_fd);
  up_.src = &client_;
  up_.dst = &backend_;
  down_.src = &backend_;
  down_.dst = &client_;
  worker_->AddSession(this);
}

Session::~Session() {
  if (addrs_ != nullptr) uv_freeaddrinfo(addrs_);
  worker_->RemoveSession(this);
}

uv_poll_t* Session::NewPoll(int fd) {
  auto* poll = new uv_poll_t;
  if (uv_poll_init_socket(worker_->loop(), poll, fd) != 0) {
    delete poll;
    return nullptr;
  }
  poll->data = this;
  open_handles_++;
  return poll;
}

void Session::ClosePoll(uv_poll_t** poll) {
  if (*poll == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(*poll), OnClosed);
  *poll = nullptr;
}

void Session::Start() {
  uv_loop_t* loop = worker_->loop();
  start_ms_ = uv_now(loop);
  last_activity_ms_ = start_ms_;
  deadline_ms_ = start_ms_ + listener_->config.timeouts.handshake_ms;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  uv_timer_init(loop, &repump_);
  repump_.data = this;
  open_handles_ += 2;
  client_poll_ = NewPoll(client_.fd());
  if (client_poll_ == nullptr) {
    Fail("error", "cannot watch client socket", "internal");
    return;
  }
  ArmTimer(listener_->config.timeouts.handshake_ms);

  const ListenerConfig& cfg = listener_->config;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(cfg.backend_port);
  // Numeric addresses resolve inline; names go to libuv's thread pool so a slow
  // DNS server never stalls the loop.
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(cfg.backend_host.c_str(), port.c_str(), &hints, &res) == 0) {
    addrs_ = res;
    next_addr_ = res;
    state_ = State::kConnecting;
    ConnectNext();
    return;
  }
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  resolve_req_.data = this;
  int rc = uv_getaddrinfo(loop, &resolve_req_, OnResolved, cfg.backend_host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    Fail("backend_unreachable", "cannot resolve backend " + cfg.backend_host + ": " + uv_strerror(rc), "dns");
    return;
  }
  resolving_ = true;
}

void Session::OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<Session*>(req->data);
  self->resolving_ = false;
  if (self->state_ == State::kClosing) {
    if (res != nullptr) uv_freeaddrinfo(res);
    if (self->open_handles_ == 0) delete self;
    return;
  }
  if (status != 0) {
    self->Fail("backend_unreachable",
               "cannot resolve backend " + self->listener_->config.backend_host + ": " + uv_strerror(status),
               "dns");
    return;
  }
  self->addrs_ = res;
  self->next_addr_ = res;
  self->state_ = State::kConnecting;
  self->ConnectNext();
}

void Session::ConnectNext() {
  const ListenerConfig& cfg = listener_->config;
  while (next_addr_ != nullptr) {
    addrinfo* ai = next_addr_;
    next_addr_ = ai->ai_next;
    backend_addr_ = FormatAddress(ai->ai_addr);
    int err = 0;
    int fd = ConnectTcp(ai->ai_addr, ai->ai_addrlen, &err);
    if (fd < 0) {
      last_connect_error_ = backend_addr_ + ": " + strerror(err);
      continue;
    }
    backend_.set_fd(fd);
    backend_poll_ = NewPoll(fd);
    if (backend_poll_ == nullptr) {
      backend_.Close();
      last_connect_error_ = backend_addr_ + ": cannot watch socket";
      continue;
    }
    backend_events_ = 0;
    SetPoll(backend_poll_, &backend_events_, UV_WRITABLE);
    uint64_t now = uv_now(worker_->loop());
    connect_deadline_ms_ = std::min(deadline_ms_, now + cfg.timeouts.connect_ms);
    ArmTimer(connect_deadline_ms_ - now);
    return;
  }
  Fail("backend_unreachable",
       "cannot connect to backend " + cfg.backend_host + ":" + std::to_string(cfg.backend_port) + " (" +
           last_connect_error_ + "); check that the server is running and reachable from this host",
       "connect");
}

void Session::OnBackendWritableWhileConnecting() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(backend_.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    last_connect_error_ = backend_addr_ + ": " + strerror(err);
    LOG_DEBUG("listener=%s session=%lu connect to %s failed: %s", listener_->config.name.c_str(),
              static_cast<unsigned long>(id_), backend_addr_.c_str(), strerror(err));
    ClosePoll(&backend_poll_);
    backend_.Close();
    ConnectNext();
    return;
  }
  uint64_t now = uv_now(worker_->loop());
  ArmTimer(deadline_ms_ > now ? deadline_ms_ - now : 1);
  StartBackendTls();
}

void Session::StartBackendTls() {
  state_ = State::kBackendTls;
  std::string error;
  auto conn = tls::Connection::NewClient(listener_->backend_tls, listener_->config.backend_tls.server_name,
                                         &backend_, &error);
  if (!conn) {
    Fail("backend_tls_failed", error, "tls_error");
    return;
  }
  backend_.AttachTls(std::move(conn));
  DriveBackendHandshake();
}

void Session::DriveBackendHandshake() {
  tls::Connection* conn = backend_.tls();
  switch (conn->Handshake()) {
    case tls::Connection::HandshakeStatus::kWantRead:
      SetPoll(backend_poll_, &backend_events_, UV_READABLE);
      return;
    case tls::Connection::HandshakeStatus::kWantWrite:
      SetPoll(backend_poll_, &backend_events_, UV_WRITABLE);
      return;
    case tls::Connection::HandshakeStatus::kFailed:
      Fail("backend_tls_failed", "backend " + backend_addr_ + ": " + conn->Explain("backend_tls"),
           tls::CauseToken(conn->failure_cause()));
      return;
    case tls::Connection::HandshakeStatus::kDone:
      LOG_DEBUG("listener=%s session=%lu backend %s verified, %s %s", listener_->config.name.c_str(),
                static_cast<unsigned long>(id_), backend_addr_.c_str(), conn->version_name(),
                conn->cipher().c_str());
      StartRelay();
      return;
  }
}

void Session::StartRelay() {
  state_ = State::kRelaying;
  uv_loop_t* loop = worker_->loop();
  last_activity_ms_ = uv_now(loop);
  uint64_t idle = listener_->config.timeouts.idle_ms;
  if (idle > 0) {
    ArmTimer(idle);
  } else {
    uv_timer_stop(&timer_);
  }
  Pump();
}

void Session::ReleaseBuffer(Direction* d) {
  if (d->buf != nullptr && d->start == d->end) {
    worker_->pool().Put(d->buf);
    d->buf = nullptr;
    d->start = d->end = 0;
  }
}

bool Session::PumpDirection(Direction* d, bool* progressed) {
  d->src_wait = Wait::kNone;
  d->dst_wait = Wait::kNone;
  if (d->shut) return true;
  for (int round = 0; round < kMaxRounds; round++) {
    bool moved = false;
    if (d->end > d->start) {
      tls::IoResult r = d->dst->Send(std::span<const uint8_t>(d->buf + d->start, d->end - d->start));
      if (r.ok()) {
        d->start += r.n;
        d->bytes += r.n;
        if (d->start == d->end) d->start = d->end = 0;
        moved = r.n > 0;
      } else if (r.blocked()) {
        d->dst_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
      } else {
        std::string who = d->dst == &client_ ? "client" : "backend";
        Fail("reset", "cannot send to " + who + ": " + (r.err ? strerror(r.err) : "connection closed"),
             who + "_write");
        return false;
      }
    }
    if (!d->src_eof && (d->buf == nullptr || BufferPool::kBufferSize - d->end >= kMinReadRoom)) {
      if (d->buf == nullptr) d->buf = worker_->pool().Get();
      tls::IoResult r = d->src->Recv(std::span<uint8_t>(d->buf + d->end, BufferPool::kBufferSize - d->end));
      if (r.ok()) {
        d->end += r.n;
        moved = true;
      } else if (r.kind == tls::IoResult::kEof) {
        d->src_eof = true;
        moved = true;
      } else if (r.blocked()) {
        d->src_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
      } else {
        std::string who = d->src == &client_ ? "client" : "backend";
        tls::Connection* t = d->src->tls();
        if (r.err == EPROTO && t != nullptr && d->src == &backend_ &&
            (t->failure_cause() == tls::FailureCause::kClientCertRequired ||
             t->failure_cause() == tls::FailureCause::kPeerRejectedUs)) {
          Fail("backend_tls_failed", "backend " + backend_addr_ + ": " + t->Explain("backend_tls"),
               tls::CauseToken(t->failure_cause()));
          return false;
        }
        std::string why = r.err == EPROTO && t != nullptr ? t->failure_detail() : std::string(strerror(r.err));
        Fail("reset", "cannot read from " + who + ": " + why, who + "_read");
        return false;
      }
    }
    if (d->src_eof && d->start == d->end) {
      // Everything the source sent is delivered: pass the half-close on.
      tls::IoResult r = d->dst->ShutdownWrite();
      if (r.blocked()) {
        d->dst_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
      } else {
        d->shut = true;
        d->src_wait = d->dst_wait = Wait::kNone;
        moved = true;
      }
      ReleaseBuffer(d);
      *progressed |= moved;
      return true;
    }
    *progressed |= moved;
    if (!moved) break;
    if (round == kMaxRounds - 1) {
      // Still busy: let other sessions run, then come back without waiting for
      // readiness (TLS may hold decrypted bytes the socket no longer signals).
      if (!repump_pending_) {
        repump_pending_ = true;
        uv_timer_start(&repump_, OnRepump, 0, 0);
      }
    }
  }
  ReleaseBuffer(d);
  return true;
}

void Session::Pump() {
  if (state_ != State::kRelaying) return;
  bool progressed = false;
  if (!PumpDirection(&up_, &progressed)) return;
  if (!PumpDirection(&down_, &progressed)) return;
  if (up_.shut && down_.shut) {
    Finish();
    return;
  }
  UpdatePolls();
}

void Session::UpdatePolls() {
  auto events = [](Wait a, Wait b) {
    int ev = 0;
    if (a == Wait::kRead || b == Wait::kRead) ev |= UV_READABLE;
    if (a == Wait::kWrite || b == Wait::kWrite) ev |= UV_WRITABLE;
    return ev;
  };
  SetPoll(client_poll_, &client_events_, events(up_.src_wait, down_.dst_wait));
  SetPoll(backend_poll_, &backend_events_, events(down_.src_wait, up_.dst_wait));
}

void Session::SetPoll(uv_poll_t* poll, int* current, int events) {
  if (poll == nullptr || *current == events) return;
  *current = events;
  if (events == 0) {
    uv_poll_stop(poll);
  } else {
    uv_poll_start(poll, events, poll == client_poll_ ? OnClientPoll : OnBackendPoll);
  }
}

void Session::OnClientPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<Session*>(handle->data);
  if (status < 0 && self->state_ != State::kRelaying) {
    self->Fail("reset", std::string("client socket error: ") + uv_strerror(status), "client_read");
    return;
  }
  self->last_activity_ms_ = uv_now(self->worker_->loop());
  self->Pump();
}

void Session::OnBackendPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<Session*>(handle->data);
  switch (self->state_) {
    case State::kConnecting:
      self->OnBackendWritableWhileConnecting();
      return;
    case State::kBackendTls:
      self->DriveBackendHandshake();
      return;
    case State::kRelaying:
      (void)status;  // errors surface from the read or write that follows
      self->last_activity_ms_ = uv_now(self->worker_->loop());
      self->Pump();
      return;
    default:
      return;
  }
}

void Session::OnRepump(uv_timer_t* timer) {
  auto* self = static_cast<Session*>(timer->data);
  self->repump_pending_ = false;
  self->Pump();
}

void Session::ArmTimer(uint64_t ms) { uv_timer_start(&timer_, OnTimer, ms == 0 ? 1 : ms, 0); }

void Session::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Session*>(timer->data);
  const ListenerConfig& cfg = self->listener_->config;
  uint64_t now = uv_now(self->worker_->loop());
  switch (self->state_) {
    case State::kResolving:
      self->Fail("timeout", "resolving backend " + cfg.backend_host + " timed out", "dns");
      return;
    case State::kConnecting:
      if (now < self->deadline_ms_ && self->next_addr_ != nullptr) {
        self->last_connect_error_ = self->backend_addr_ + ": connect timed out";
        self->ClosePoll(&self->backend_poll_);
        self->backend_.Close();
        self->ConnectNext();
        return;
      }
      self->Fail("backend_unreachable",
                 "connect to backend " + self->backend_addr_ + " timed out after " +
                     std::to_string(std::min(cfg.timeouts.connect_ms, cfg.timeouts.handshake_ms)) +
                     " ms (timeouts.connect); check firewalls and that the server is up",
                 "connect_timeout");
      return;
    case State::kBackendTls:
      self->Fail("timeout",
                 "TLS handshake with backend " + self->backend_addr_ + " did not complete within " +
                     std::to_string(cfg.timeouts.handshake_ms) +
                     " ms (timeouts.handshake); is this a TLS port?",
                 "handshake_timeout");
      return;
    case State::kRelaying: {
      uint64_t idle = cfg.timeouts.idle_ms;
      if (idle == 0) return;
      uint64_t quiet = now - self->last_activity_ms_;
      if (quiet >= idle) {
        self->Fail("idle_timeout", "no traffic for " + std::to_string(quiet) + " ms (timeouts.idle)", "idle");
        return;
      }
      self->ArmTimer(idle - quiet);
      return;
    }
    case State::kClosing:
      return;
  }
}

void Session::Fail(const std::string& outcome, const std::string& error, const std::string& cause) {
  if (state_ == State::kClosing) return;
  outcome_ = outcome;
  error_ = error;
  cause_ = cause;
  bool quiet = outcome == "reset" || outcome == "idle_timeout";
  if (quiet) {
    LOG_INFO("listener=%s session=%lu client=%s %s: %s", listener_->config.name.c_str(),
             static_cast<unsigned long>(id_), client_addr_.c_str(), outcome.c_str(), error.c_str());
  } else {
    LOG_WARN("listener=%s session=%lu client=%s %s: %s", listener_->config.name.c_str(),
             static_cast<unsigned long>(id_), client_addr_.c_str(), outcome.c_str(), error.c_str());
  }
  Finish();
}

void Session::Abort(const char* outcome) {
  Fail(outcome, "closed by dbward shutdown after the drain timeout", "shutdown");
}

void Session::Finish() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  EmitAudit();
  // Unsent bytes are dropped with the connection; buffers go back to the pool.
  up_.start = up_.end = 0;
  down_.start = down_.end = 0;
  ReleaseBuffer(&up_);
  ReleaseBuffer(&down_);
  ClosePoll(&client_poll_);
  ClosePoll(&backend_poll_);
  client_.Close();
  backend_.Close();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&repump_), OnClosed);
  if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_req_));
  listener_->active.fetch_sub(1, std::memory_order_relaxed);
}

void Session::OnClosed(uv_handle_t* handle) {
  auto* self = static_cast<Session*>(handle->data);
  if (handle->type == UV_POLL) delete reinterpret_cast<uv_poll_t*>(handle);
  if (--self->open_handles_ == 0 && !self->resolving_ && self->state_ == State::kClosing) delete self;
}

void Session::EmitAudit() {
  const ListenerConfig& cfg = listener_->config;
  tls::Connection* btls = backend_.tls();
  bool tls_up = btls != nullptr && btls->handshake_done();
  JsonObject j;
  j.Str("ts", NowIsoMillis())
      .Str("event", "session")
      .Int("session_id", static_cast<int64_t>(id_))
      .Str("listener", cfg.name)
      .Str("protocol", ProtocolName(cfg.protocol))
      .Str("client", client_addr_)
      .Str("backend", cfg.backend_host + ":" + std::to_string(cfg.backend_port))
      .StrOrNull("backend_addr", backend_addr_)
      .Str("backend_server_name", cfg.backend_tls.server_name)
      .Str("client_encryption", "none")
      .Bool("trust_bypass", true)
      .Str("bypass_reason", "plaintext")
      .StrOrNull("backend_tls", tls_up ? btls->version_name() : "")
      .StrOrNull("backend_cipher", tls_up ? btls->cipher() : "")
      .Bool("backend_verified", tls_up && btls->verified())
      .Str("backend_verify", cfg.backend_tls.full_verify ? "full" : "ca")
      .Str("outcome", outcome_)
      .StrOrNull("error", error_)
      .StrOrNull("cause", cause_)
      .Int("bytes_up", static_cast<int64_t>(up_.bytes))
      .Int("bytes_down", static_cast<int64_t>(down_.bytes))
      .Int("duration_ms", static_cast<int64_t>(uv_now(worker_->loop()) - start_ms_))
      .Int("worker", worker_->index());
  Audit().Emit(j.Finish());
}

}  // namespace dbward::proxy

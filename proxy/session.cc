#include "proxy/session.h"

#include <netdb.h>
#include <openssl/mem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/bypass_reasons.h"
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
constexpr size_t kMaxTlsPlaintextRecord = 16384;

}  // namespace

Session::Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id)
    : worker_(worker),
      listener_(listener),
      id_(id),
      tls_(listener->tls()),
      handler_(NewHandler(listener->config.protocol)) {
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
    FailWithMessage("error", "cannot watch client socket", "internal", {});
    return;
  }
  ArmTimer(listener_->config.timeouts.handshake_ms);
  handler_->OnStart(*this);
  Advance();
}

void Session::SendToClient(std::span<const uint8_t> bytes) {
  client_out_.insert(client_out_.end(), bytes.begin(), bytes.end());
}

void Session::SendToBackend(std::span<const uint8_t> bytes) {
  backend_out_.insert(backend_out_.end(), bytes.begin(), bytes.end());
}

void Session::HandOffToRelay(size_t backend_consumed) {
  SendToClient(std::span<const uint8_t>(backend_in_).subspan(backend_consumed));
  backend_in_.clear();
  SendToBackend(client_in_);
  client_in_.clear();
  backend_reading_ = false;
  client_reading_ = false;
  relay_requested_ = true;
}

void Session::StartClientTls(tls::Io* io, std::shared_ptr<tls::Context> ctx) {
  client_tls_pending_ = true;
  client_tls_io_ = io;
  client_tls_ctx_ = std::move(ctx);
}

void Session::ConnectBackend() {
  if (backend_phase_ != BackendPhase::kNone) return;
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
    backend_phase_ = BackendPhase::kConnecting;
    ConnectNext();
    return;
  }
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  resolve_req_.data = this;
  int rc = uv_getaddrinfo(worker_->loop(), &resolve_req_, OnResolved, cfg.backend_host.c_str(), port.c_str(),
                          &hints);
  if (rc != 0) {
    BackendFailed("backend_unreachable", "cannot resolve backend " + cfg.backend_host + ": " + uv_strerror(rc), "dns");
    return;
  }
  backend_phase_ = BackendPhase::kResolving;
  resolving_ = true;
}

void Session::OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<Session*>(req->data);
  self->resolving_ = false;
  if (self->closing() || self->backend_failed_) {
    // Closed, or the handler already took over after a backend failure (a
    // cancel that came too late for a lookup already running).
    if (res != nullptr) uv_freeaddrinfo(res);
    if (self->closing() && self->open_handles_ == 0) delete self;
    return;
  }
  if (status != 0) {
    self->BackendFailed("backend_unreachable",
                        "cannot resolve backend " + self->listener_->config.backend_host + ": " + uv_strerror(status),
                        "dns");
    return;
  }
  self->addrs_ = res;
  self->next_addr_ = res;
  self->backend_phase_ = BackendPhase::kConnecting;
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
    ArmTimer(connect_deadline_ms_ > now ? connect_deadline_ms_ - now : 1);
    return;
  }
  BackendFailed("backend_unreachable",
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
  backend_phase_ = BackendPhase::kOpen;
  handler_->OnBackendConnected(*this);
  Advance();
}

void Session::StartBackendTls(tls::Io* io) {
  backend_tls_pending_ = true;
  backend_tls_io_ = io;
}

void Session::BeginBackendTls() {
  backend_tls_pending_ = false;
  std::string error;
  auto conn = tls::Connection::NewClient(tls_->backend, listener_->config.backend_tls.server_name,
                                         backend_tls_io_ != nullptr ? backend_tls_io_ : &backend_, &error);
  if (!conn) {
    BackendFailed("backend_tls_failed", error, "tls_error");
    return;
  }
  backend_.AttachTls(std::move(conn));
  backend_phase_ = BackendPhase::kHandshaking;
}

namespace {
int EventFor(tls::IoResult::Kind k) { return k == tls::IoResult::kWantWrite ? UV_WRITABLE : UV_READABLE; }
constexpr size_t kMaxStaged = 64 * 1024;
}  // namespace

bool Session::AdvanceClient(int* events) {
  bool progress = false;
  if (client_handshaking_) {
    tls::Connection* conn = client_.tls();
    switch (conn->Handshake()) {
      case tls::Connection::HandshakeStatus::kWantRead:
        *events |= UV_READABLE;
        return false;
      case tls::Connection::HandshakeStatus::kWantWrite:
        *events |= UV_WRITABLE;
        return false;
      case tls::Connection::HandshakeStatus::kFailed:
        if (canary_active_) {
          CanaryRejected(conn->failure_detail());
          return false;
        }
        FailWithMessage("client_tls_failed",
                        "TLS handshake with the client failed: " + conn->failure_detail() +
                            (conn->io_eof() ? " (the client closed the connection; it may not trust dbward's "
                                              "certificate)"
                                            : ""),
                        tls::CauseToken(conn->failure_cause()), {});
        return false;
      case tls::Connection::HandshakeStatus::kDone:
        client_handshaking_ = false;
        canary_pending_ = canary_active_;
        audit_.client_tls_version = conn->version_name();
        audit_.client_tls_cipher = conn->cipher();
        audit_.client_alpn = conn->alpn();
        handler_->OnClientTlsReady(*this);
        return true;
    }
  }
  if (!client_out_.empty()) {
    tls::IoResult r = client_.Send(client_out_);
    if (r.ok()) {
      client_out_.erase(client_out_.begin(), client_out_.begin() + static_cast<ptrdiff_t>(r.n));
      down_.bytes += r.n;
      progress = true;
    } else if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      client_out_.clear();
      FailWithMessage("reset", "client went away: " + std::string(r.err ? strerror(r.err) : "closed"),
                      "client_write", {});
      return false;
    }
  }
  if (client_out_.empty() && client_tls_pending_) {
    client_tls_pending_ = false;
    std::string error;
    std::shared_ptr<tls::Context> ctx = client_tls_ctx_ ? client_tls_ctx_ : tls_->client;
    if (ctx && listener_->canary && tls_->canary_client && listener_->canary->ShouldTest(ClientIp())) {
      ctx = ctx == tls_->client_strict ? tls_->canary_client_strict : tls_->canary_client;
      canary_active_ = true;
      audit_.canary = listener_->canary->config().mode;
    }
    if (!ctx) {
      FailWithMessage("error", "client TLS requested but client_tls is not configured", "internal", {});
      return false;
    }
    auto conn = tls::Connection::NewServer(ctx, client_tls_io_ != nullptr ? client_tls_io_ : &client_, &error);
    if (!conn) {
      FailWithMessage("error", error, "internal", {});
      return false;
    }
    client_.AttachTls(std::move(conn));
    client_handshaking_ = true;
    return true;
  }
  if (state_ == State::kLingering || (client_reading_ && client_out_.empty())) {
    uint8_t buf[16 * 1024];
    tls::IoResult r = client_.Recv(buf);
    if (r.ok() && canary_pending_) {
      // The client goes on over a connection with the canary certificate:
      // it does not validate.
      canary_pending_ = false;
      audit_.validates = 0;
      std::string accepted = listener_->canary->config().mode == "expired"      ? "accepted-expired"
                             : listener_->canary->config().mode == "wrong-name" ? "accepted-wrong-name"
                                                                                : "accepted-untrusted-certificate";
      // Login-only encryption stays on record next to the canary verdict.
      audit_.bypass_reason = audit_.trust_bypass && !audit_.bypass_reason.empty()
                                 ? audit_.bypass_reason + "," + accepted
                                 : accepted;
      audit_.trust_bypass = true;
    }
    if (r.ok()) {
      if (state_ == State::kLingering) return true;  // discard until the client closes
      if (client_in_.size() + r.n > kMaxStaged) {
        FailWithMessage("client_error", "client sent more than 64 KiB before authentication", "too_large", {});
        return false;
      }
      client_in_.insert(client_in_.end(), buf, buf + r.n);
      handler_->OnClientData(*this);
      return true;
    }
    if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      if (state_ == State::kLingering) {
        Finish();
        return false;
      }
      if (canary_pending_) {
        CanaryRejected(r.kind == tls::IoResult::kEof ? "closed the connection after the handshake"
                                                     : "reset the connection after the handshake");
        return false;
      }
      bool eof = r.kind == tls::IoResult::kEof;
      FailWithMessage(eof ? "client_closed" : "reset",
                      eof ? "client closed the connection before the session was set up"
                          : "client connection error: " + std::string(strerror(r.err)),
                      eof ? "client_eof" : "client_read", {});
      return false;
    }
  }
  return progress;
}

bool Session::AdvanceBackend(int* events) {
  if (backend_phase_ == BackendPhase::kHandshaking) {
    tls::Connection* conn = backend_.tls();
    switch (conn->Handshake()) {
      case tls::Connection::HandshakeStatus::kWantRead:
        *events |= UV_READABLE;
        return false;
      case tls::Connection::HandshakeStatus::kWantWrite:
        *events |= UV_WRITABLE;
        return false;
      case tls::Connection::HandshakeStatus::kFailed:
        BackendFailed("backend_tls_failed", "backend " + backend_addr_ + ": " + conn->Explain("backend_tls"),
                      tls::CauseToken(conn->failure_cause()));
        return false;
      case tls::Connection::HandshakeStatus::kDone:
        LOG_DEBUG("listener=%s session=%lu backend %s verified, %s %s", listener_->config.name.c_str(),
                  static_cast<unsigned long>(id_), backend_addr_.c_str(), conn->version_name(),
                  conn->cipher().c_str());
        backend_phase_ = BackendPhase::kOpen;
        handler_->OnBackendTlsReady(*this);
        return true;
    }
  }
  if (backend_phase_ != BackendPhase::kOpen) return false;
  bool progress = false;
  if (backend_out_.empty() && backend_tls_pending_) {
    BeginBackendTls();
    return true;
  }
  if (!backend_out_.empty()) {
    tls::IoResult r = backend_.Send(backend_out_);
    if (r.ok()) {
      // Staged bytes may hold a password (MySQL full authentication): wipe
      // them once sent.
      OPENSSL_cleanse(backend_out_.data(), r.n);
      backend_out_.erase(backend_out_.begin(), backend_out_.begin() + static_cast<ptrdiff_t>(r.n));
      up_.bytes += r.n;
      progress = true;
    } else if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      BackendFailed("backend_closed", "backend " + backend_addr_ + " went away: " + strerror(r.err), "backend_write");
      return false;
    }
  }
  if (backend_reading_) {
    uint8_t buf[16 * 1024];
    tls::IoResult r = backend_.Recv(buf);
    if (r.ok()) {
      if (backend_in_.size() + r.n > kMaxStaged) {
        Fail("backend_error", "backend sent more than 64 KiB before authentication completed", "too_large");
        return false;
      }
      backend_in_.insert(backend_in_.end(), buf, buf + r.n);
      handler_->OnBackendData(*this);
      return true;
    }
    if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      tls::Connection* t = backend_.tls();
      if (r.err == EPROTO && t != nullptr &&
          (t->failure_cause() == tls::FailureCause::kClientCertRequired ||
           t->failure_cause() == tls::FailureCause::kPeerRejectedUs)) {
        BackendFailed("backend_tls_failed", "backend " + backend_addr_ + ": " + t->Explain("backend_tls"),
                      tls::CauseToken(t->failure_cause()));
      } else {
        BackendFailed("backend_closed",
                      "backend " + backend_addr_ + " closed the connection during the handshake" +
                          (r.kind == tls::IoResult::kEof ? std::string() : ": " + std::string(strerror(r.err))),
                      "backend_eof");
      }
      return false;
    }
  }
  return progress;
}

void Session::Advance() {
  for (int round = 0; round < 64; round++) {
    if (state_ == State::kClosing || state_ == State::kRelaying) return;
    int cev = 0, bev = 0;
    bool progress = AdvanceClient(&cev);
    if (closing()) return;
    progress |= AdvanceBackend(&bev);
    if (closing()) return;
    if (close_after_flush_ && client_out_.empty() && state_ == State::kPreRelay) {
      // The error is out: half-close and wait briefly for the client to
      // hang up, so unread input does not turn our close into a reset that
      // destroys the message before the client reads it.
      client_.ShutdownWrite();
      state_ = State::kLingering;
      ClosePoll(&backend_poll_);
      backend_.Close();
      ArmTimer(1000);
      continue;
    }
    if (relay_requested_ && client_out_.empty() && backend_out_.empty() && !client_handshaking_ &&
        !client_tls_pending_ && !backend_tls_pending_ && backend_phase_ == BackendPhase::kOpen) {
      StartRelay();
      return;
    }
    if (!progress) {
      SetPoll(client_poll_, &client_events_, cev);
      if (backend_phase_ == BackendPhase::kOpen || backend_phase_ == BackendPhase::kHandshaking) {
        SetPoll(backend_poll_, &backend_events_, bev);
      }
      return;
    }
  }
  // Still moving: yield to other sessions and continue on the next loop turn.
  if (!repump_pending_) {
    repump_pending_ = true;
    uv_timer_start(&repump_, OnRepump, 0, 0);
  }
}

void Session::StartRelay() {
  // The one rule dbward never bends, checked where it matters rather than
  // trusted to every protocol handler: no relay without a verified TLS
  // backend leg.
  tls::Connection* btls = backend_.tls();
  if (btls == nullptr || !btls->handshake_done() || !btls->verified()) {
    FailWithMessage("error", "internal: refusing to relay without a verified TLS backend leg", "internal", {});
    return;
  }
  state_ = State::kRelaying;
  uv_loop_t* loop = worker_->loop();
  last_activity_ms_ = uv_now(loop);
  listener_->metrics.handshake_seconds.Observe(static_cast<double>(last_activity_ms_ - start_ms_) / 1000.0);
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

namespace {
bool IsResetError(int err) { return err == ECONNRESET || err == EPIPE; }
}  // namespace

// For direction d (src -> dst): whether the reverse direction already saw EOF
// from dst, i.e. the peer we now fail to talk to had finished on its own.
bool Session::PeerAlreadyClosed(const Direction* d) const {
  const Direction* reverse = d == &up_ ? &down_ : &up_;
  return reverse->src_eof;
}

bool Session::PumpDirection(Direction* d, bool* progressed) {
  d->src_wait = Wait::kNone;
  d->dst_wait = Wait::kNone;
  if (d->shut) return true;
  // A short read from a plain socket means its receive queue is empty: wait
  // for readiness instead of paying for a read that returns EAGAIN. A TLS read
  // returns one record; a record below the maximum size with nothing else
  // buffered in BoringSSL is the same sign (bulk transfers use full records).
  bool drained = false;
  for (int round = 0; round < kMaxRounds; round++) {
    bool moved = false;
    // Fill: batch several reads (TLS records) into one buffer so the other
    // side gets one large write instead of one per record.
    while (!d->src_eof && !drained && d->src_wait == Wait::kNone &&
           (d->buf == nullptr || BufferPool::kBufferSize - d->end >= kMinReadRoom)) {
      if (!d->src_readable && (d->src->tls() == nullptr || !d->src->tls()->HasBufferedInput())) {
        d->src_wait = Wait::kRead;
        break;
      }
      if (d->buf == nullptr) d->buf = worker_->pool().Get();
      size_t room = BufferPool::kBufferSize - d->end;
      tls::IoResult r = d->src->Recv(std::span<uint8_t>(d->buf + d->end, room));
      if (r.ok()) {
        d->end += r.n;
        moved = true;
        tls::Connection* t = d->src->tls();
        bool short_read = t == nullptr ? r.n < room
                                       : r.n < kMaxTlsPlaintextRecord && r.n < room && !t->HasBufferedInput();
        if (short_read) {
          drained = true;
          d->src_readable = false;
          d->src_wait = Wait::kRead;
        }
      } else if (r.kind == tls::IoResult::kEof || (PeerAlreadyClosed(d) && IsResetError(r.err))) {
        // A reset from a peer whose other side already hung up is how many
        // clients end (close() with unread TLS records): not a failure.
        d->src_eof = true;
        moved = true;
      } else if (r.blocked()) {
        d->src_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
        if (r.kind == tls::IoResult::kWantRead) d->src_readable = false;
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
        FailWithMessage("reset", "cannot read from " + who + ": " + why, who + "_read", {});
        return false;
      }
    }
    // Drain.
    while (d->end > d->start) {
      tls::IoResult r = d->dst->Send(std::span<const uint8_t>(d->buf + d->start, d->end - d->start));
      if (r.ok()) {
        d->start += r.n;
        d->bytes += r.n;
        if (d->start == d->end) d->start = d->end = 0;
        moved |= r.n > 0;
        if (r.n == 0) break;
      } else if (r.blocked()) {
        d->dst_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
        break;
      } else if (PeerAlreadyClosed(d) && IsResetError(r.err)) {
        // The destination has already gone away after its own EOF: nothing
        // more can be delivered, and nothing went wrong.
        d->start = d->end = 0;
        d->src_eof = true;
        break;
      } else {
        std::string who = d->dst == &client_ ? "client" : "backend";
        FailWithMessage("reset", "cannot send to " + who + ": " + (r.err ? strerror(r.err) : "connection closed"),
                        who + "_write", {});
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
    // Blocked on the destination with a full buffer, or nothing moved: done.
    if (!moved || d->dst_wait != Wait::kNone || (d->src_wait != Wait::kNone && d->start == d->end)) break;
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
  UpdateRelayPolls();
}

void Session::UpdateRelayPolls() {
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

void Session::OnClientPoll(uv_poll_t* handle, int status, int events) {
  // Errors on the socket surface from the read or write that follows. libuv
  // stops the poll on an error, so forget the cached interest to re-arm it.
  auto* self = static_cast<Session*>(handle->data);
  if (status < 0) self->client_events_ = 0;
  if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) self->up_.src_readable = true;
  self->last_activity_ms_ = uv_now(self->worker_->loop());
  if (self->state_ == State::kRelaying) {
    self->Pump();
  } else {
    self->Advance();
  }
}

void Session::OnBackendPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Session*>(handle->data);
  if (status < 0) self->backend_events_ = 0;
  if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) self->down_.src_readable = true;
  self->last_activity_ms_ = uv_now(self->worker_->loop());
  if (self->state_ == State::kRelaying) {
    self->Pump();
  } else if (self->backend_phase_ == BackendPhase::kConnecting) {
    self->OnBackendWritableWhileConnecting();
  } else {
    self->Advance();
  }
}

void Session::OnRepump(uv_timer_t* timer) {
  auto* self = static_cast<Session*>(timer->data);
  self->repump_pending_ = false;
  // Yielded with work left: both sources may still hold data.
  self->up_.src_readable = true;
  self->down_.src_readable = true;
  if (self->state_ == State::kRelaying) {
    self->Pump();
  } else {
    self->Advance();
  }
}

void Session::ArmTimer(uint64_t ms) { uv_timer_start(&timer_, OnTimer, ms == 0 ? 1 : ms, 0); }

void Session::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Session*>(timer->data);
  const ListenerConfig& cfg = self->listener_->config;
  uint64_t now = uv_now(self->worker_->loop());
  if (self->state_ == State::kLingering || self->close_after_flush_) {
    self->Finish();
    return;
  }
  if (self->state_ == State::kRelaying) {
    uint64_t idle = cfg.timeouts.idle_ms;
    if (idle == 0) return;
    uint64_t quiet = now - self->last_activity_ms_;
    if (quiet >= idle) {
      self->FailWithMessage("idle_timeout", "no traffic for " + std::to_string(quiet) + " ms (timeouts.idle)",
                            "idle", {});
      return;
    }
    self->ArmTimer(idle - quiet);
    return;
  }
  if (self->state_ != State::kPreRelay) return;
  switch (self->backend_phase_) {
    case BackendPhase::kResolving:
      self->BackendFailed("timeout", "resolving backend " + cfg.backend_host + " timed out", "dns");
      return;
    case BackendPhase::kConnecting:
      if (now < self->deadline_ms_ && self->next_addr_ != nullptr) {
        self->last_connect_error_ = self->backend_addr_ + ": connect timed out";
        self->ClosePoll(&self->backend_poll_);
        self->backend_.Close();
        self->ConnectNext();
        return;
      }
      self->BackendFailed("backend_unreachable",
                 "connect to backend " + self->backend_addr_ + " timed out after " +
                     std::to_string(std::min(cfg.timeouts.connect_ms, cfg.timeouts.handshake_ms)) +
                     " ms (timeouts.connect); check firewalls and that the server is up",
                 "connect_timeout");
      return;
    case BackendPhase::kHandshaking:
      self->BackendFailed("timeout",
                 "TLS handshake with backend " + self->backend_addr_ + " did not complete within " +
                     std::to_string(cfg.timeouts.handshake_ms) + " ms (timeouts.handshake); is this a TLS port?",
                 "handshake_timeout");
      return;
    case BackendPhase::kNone:
      self->FailWithMessage("timeout",
                            "the client did not complete its handshake within " +
                                std::to_string(cfg.timeouts.handshake_ms) + " ms (timeouts.handshake)",
                            "client_handshake_timeout", {});
      return;
    case BackendPhase::kOpen:
      self->Fail("timeout",
                 "the session was not set up within " + std::to_string(cfg.timeouts.handshake_ms) +
                     " ms (timeouts.handshake)",
                 "handshake_timeout");
      return;
  }
}

std::string Session::ClientIp() const {
  if (!client_addr_.empty() && client_addr_[0] == '[') return client_addr_.substr(1, client_addr_.find(']') - 1);
  return client_addr_.substr(0, client_addr_.rfind(':'));
}

void Session::CanaryRejected(const std::string& how) {
  canary_pending_ = false;
  audit_.validates = 1;
  // A canary is only offered to a client that asked for TLS.
  if (audit_.client_encryption == "none") audit_.client_encryption = "tls";
  audit_.trust_bypass = false;
  audit_.bypass_reason.clear();
  listener_->canary->RememberValidating(ClientIp());
  FailWithMessage("canary_rejected",
                  "client refused the canary certificate (" + audit_.canary + "; " + how +
                      "): it validates certificates; its next connections get dbward's real certificate",
                  "canary_rejected", {});
}

void Session::LogFailure(const std::string& outcome, const std::string& error) {
  bool quiet = outcome == "reset" || outcome == "idle_timeout" || outcome == "client_closed" ||
               outcome == "canary_rejected";
  if (quiet) {
    LOG_INFO("listener=%s session=%lu client=%s %s: %s", listener_->config.name.c_str(),
             static_cast<unsigned long>(id_), client_addr_.c_str(), outcome.c_str(), error.c_str());
  } else {
    LOG_WARN("listener=%s session=%lu client=%s %s: %s", listener_->config.name.c_str(),
             static_cast<unsigned long>(id_), client_addr_.c_str(), outcome.c_str(), error.c_str());
  }
}

void Session::BackendFailed(const std::string& outcome, const std::string& error, const std::string& cause) {
  if (state_ != State::kPreRelay || close_after_flush_) return;
  if (!backend_failed_ && handler_->OnBackendFailure(*this, error)) {
    backend_failed_ = true;
    outcome_ = outcome;
    error_ = error;
    cause_ = cause;
    LogFailure(outcome, error);
    // The handler goes on with the client alone; the backend is done.
    ClosePoll(&backend_poll_);
    backend_.Close();
    backend_phase_ = BackendPhase::kNone;
    backend_reading_ = false;
    backend_out_.clear();
    backend_in_.clear();
    backend_tls_pending_ = false;
    if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_req_));
    // The client still has to finish within the handshake deadline.
    uint64_t now = uv_now(worker_->loop());
    ArmTimer(deadline_ms_ > now ? deadline_ms_ - now : 1);
    if (!repump_pending_) {
      repump_pending_ = true;
      uv_timer_start(&repump_, OnRepump, 0, 0);
    }
    return;
  }
  Fail(outcome, error, cause);
}

void Session::Fail(const std::string& outcome, const std::string& error, const std::string& cause) {
  std::vector<uint8_t> msg;
  if (state_ == State::kPreRelay) msg = handler_->ErrorForClient(error, cause);
  FailWithMessage(outcome, error, cause, std::move(msg));
}

void Session::FailWithMessage(const std::string& outcome, const std::string& error, const std::string& cause,
                              std::vector<uint8_t> message) {
  if (state_ == State::kClosing || state_ == State::kLingering || close_after_flush_) return;
  if (!backend_failed_) {
    // After a backend failure the handler reports that one; keep it.
    outcome_ = outcome;
    error_ = error;
    cause_ = cause;
    LogFailure(outcome, error);
  }
  if ((message.empty() && client_out_.empty()) || state_ != State::kPreRelay || client_handshaking_) {
    Finish();
    return;
  }
  // Say it to the client in its own protocol, then close gracefully.
  client_out_.insert(client_out_.end(), message.begin(), message.end());
  close_after_flush_ = true;
  client_reading_ = false;
  backend_reading_ = false;
  relay_requested_ = false;
  client_tls_pending_ = false;
  if (backend_phase_ != BackendPhase::kNone) {
    ClosePoll(&backend_poll_);
    backend_.Close();
    backend_phase_ = BackendPhase::kNone;
  }
  ArmTimer(2000);  // the client has two seconds to take the message
  if (!repump_pending_) {
    repump_pending_ = true;
    uv_timer_start(&repump_, OnRepump, 0, 0);
  }
}

void Session::Abort(const char* outcome) {
  Fail(outcome, "closed by dbward shutdown after the drain timeout", "shutdown");
}

void Session::Finish() {
  if (closing()) return;
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
  if (--self->open_handles_ == 0 && !self->resolving_ && self->closing()) delete self;
}

void Session::RecordMetrics(bool backend_verified) {
  ListenerMetrics& m = listener_->metrics;
  m.bytes_up_total.fetch_add(up_.bytes, std::memory_order_relaxed);
  m.bytes_down_total.fetch_add(down_.bytes, std::memory_order_relaxed);
  m.client_encryption.Inc(audit_.client_encryption);
  if (audit_.trust_bypass) {
    for (std::string_view reason : SplitBypassReasons(audit_.bypass_reason)) m.trust_bypass.Inc(std::string(reason));
  }
  m.outcome.Inc(outcome_);
  if (backend_verified) {
    m.backend_verified_total.fetch_add(1, std::memory_order_relaxed);
    listener_->SetBackendHealth(true, "backend " + backend_addr_ + " verified");
  }
  bool backend_fault = outcome_ == "backend_unreachable" || outcome_ == "backend_tls_failed" ||
                       outcome_ == "backend_tls_refused" || outcome_ == "timeout";
  if (outcome_ != "ok" && !cause_.empty() && outcome_ != "reset" && outcome_ != "idle_timeout" &&
      outcome_ != "client_closed") {
    m.handshake_failures.Inc(cause_);
  }
  if (backend_fault && !backend_verified) listener_->SetBackendHealth(false, error_);
}

void Session::EmitAudit() {
  const ListenerConfig& cfg = listener_->config;
  tls::Connection* btls = backend_.tls();
  bool tls_up = btls != nullptr && btls->handshake_done();
  RecordMetrics(tls_up && btls->verified());
  if (tls_up) {
    int64_t not_after = btls->PeerNotAfterUnix();
    if (not_after != 0) listener_->metrics.backend_cert_not_after.store(not_after, std::memory_order_relaxed);
  }
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
      .Str("client_encryption", audit_.client_encryption)
      .Bool("trust_bypass", audit_.trust_bypass)
      .StrOrNull("bypass_reason", audit_.trust_bypass ? audit_.bypass_reason : "")
      .StrOrNull("client_tls", audit_.client_tls_version)
      .StrOrNull("client_cipher", audit_.client_tls_cipher)
      .StrOrNull("client_alpn", audit_.client_alpn)
      .StrOrNull("user", audit_.user)
      .StrOrNull("database", audit_.database)
      .StrOrNull("application", audit_.application)
      .StrOrNull("client_library", audit_.client_library)
      .StrOrNull("client_host", audit_.client_host)
      .StrOrNull("client_protocol_version", audit_.client_protocol_version)
      .StrOrNull("backend_tls", tls_up ? btls->version_name() : "")
      .StrOrNull("backend_cipher", tls_up ? btls->cipher() : "")
      .Bool("backend_verified", tls_up && btls->verified())
      .Str("backend_verify", cfg.backend_tls.full_verify ? "full" : "ca")
      .Str("outcome", outcome_)
      .StrOrNull("error", error_)
      .StrOrNull("cause", cause_)
      .StrOrNull("note", audit_.note)
      .StrOrNull("canary", audit_.canary);
  if (audit_.validates < 0) {
    j.Null("validates");
  } else {
    j.Bool("validates", audit_.validates == 1);
  }
  j
      .Int("bytes_up", static_cast<int64_t>(up_.bytes))
      .Int("bytes_down", static_cast<int64_t>(down_.bytes))
      .Int("duration_ms", static_cast<int64_t>(uv_now(worker_->loop()) - start_ms_))
      .Int("worker", worker_->index());
  Audit().Emit(j.Finish());
}

}  // namespace dbward::proxy

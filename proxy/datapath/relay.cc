#include "proxy/datapath/relay.h"

#include "protocol/proxy_header.h"

#include <cerrno>
#include <cstring>

#include "tls/connection.h"

namespace dbward::proxy {
namespace {

// Read only when at least this much room is left: reading tiny slivers into a
// nearly full buffer costs a syscall per few bytes.
constexpr size_t kMinReadRoom = 16 * 1024;
// Rounds of read/write per wake-up before yielding to other sessions.
constexpr int kMaxRounds = 16;
constexpr size_t kMaxTlsPlaintextRecord = 16384;

bool IsResetError(int err) { return err == ECONNRESET || err == EPIPE; }

}  // namespace

Relay::Relay(BufferPool& pool, Leg& client, Leg& backend, Watch* client_watch, Watch* backend_watch,
             Callbacks& callbacks)
    : pool_(pool),
      client_(client),
      backend_(backend),
      client_watch_(client_watch),
      backend_watch_(backend_watch),
      callbacks_(callbacks) {
  up_.src = &client_;
  up_.dst = &backend_;
  down_.src = &backend_;
  down_.dst = &client_;
}

Relay::~Relay() { Stop(); }

void Relay::Start() {
  running_ = true;
  client_watch_->SetHandler(this);
  backend_watch_->SetHandler(this);
  Pump();
}

void Relay::Stop() {
  if (!running_ && up_.buf == nullptr && down_.buf == nullptr) return;
  running_ = false;
  // Unsent bytes are dropped with the connection; buffers go back to the pool.
  for (Direction* d : {&up_, &down_}) {
    d->start = d->end = 0;
    ReleaseBuffer(d);
  }
}

void Relay::OnSocketEvent(Watch* watch, int status, int events) {
  if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) {
    (watch == client_watch_ ? up_ : down_).src_readable = true;
  }
  callbacks_.OnRelayActivity();
  Pump();
}

void Relay::Pump() {
  if (!running_) return;
  if (!PumpDirection(&up_)) return;
  if (!PumpDirection(&down_)) return;
  if (up_.shut && down_.shut) {
    End({});
    return;
  }
  UpdatePolls();
}

void Relay::Repump() {
  // Yielded with work left: both sources may still hold data.
  up_.src_readable = true;
  down_.src_readable = true;
  Pump();
}

void Relay::SetGoodbye(std::span<const uint8_t> message) {
  goodbye_len_ = std::min(message.size(), sizeof goodbye_);
  std::copy(message.begin(), message.begin() + static_cast<ptrdiff_t>(goodbye_len_), goodbye_);
}

void Relay::RefuseProxyHeader(std::span<const uint8_t> sent) {
  sniff_up_ = true;
  sniff_prefix_len_ = std::min(sent.size(), sizeof sniff_prefix_);
  std::copy(sent.begin(), sent.begin() + static_cast<ptrdiff_t>(sniff_prefix_len_), sniff_prefix_);
}

Relay::SniffStep Relay::SniffUpstream(Direction* d) {
  uint8_t probe[sizeof sniff_prefix_];
  size_t n = sniff_prefix_len_;
  std::copy(sniff_prefix_, sniff_prefix_ + n, probe);
  size_t more = std::min(sizeof probe - n, d->end - d->start);
  std::copy(d->buf + d->start, d->buf + d->start + more, probe + n);
  switch (protocol::proxy_header::SniffHeader(std::span<const uint8_t>(probe, n + more))) {
    case protocol::proxy_header::Sniff::kYes: {
      RelayEnd end;
      end.kind = RelayEnd::Kind::kProxyHeader;
      end.client_side = true;
      End(std::move(end));
      return SniffStep::kEnded;
    }
    case protocol::proxy_header::Sniff::kMaybe:
      if (!d->src_eof) return SniffStep::kHold;
      [[fallthrough]];
    case protocol::proxy_header::Sniff::kNo: break;
  }
  sniff_up_ = false;
  return SniffStep::kPass;
}

void Relay::End(RelayEnd end) {
  end.client_ended_first = client_ended_first_;
  end.backend_truncated = backend_truncated_;
  end.client_said_goodbye = goodbye_len_ > 0 && tail_len_ >= goodbye_len_ &&
                            std::equal(goodbye_, goodbye_ + goodbye_len_, tail_ + tail_len_ - goodbye_len_);
  Stop();
  callbacks_.OnRelayEnd(end);
}

void Relay::RememberTail(const uint8_t* p, size_t n) {
  // The last sizeof tail_ bytes of everything sent upstream.
  if (n >= sizeof tail_) {
    std::copy(p + n - sizeof tail_, p + n, tail_);
    tail_len_ = sizeof tail_;
    return;
  }
  size_t keep = std::min(tail_len_, sizeof tail_ - n);
  std::copy(tail_ + tail_len_ - keep, tail_ + tail_len_, tail_);
  std::copy(p, p + n, tail_ + keep);
  tail_len_ = keep + n;
}

void Relay::ReleaseBuffer(Direction* d) {
  if (d->buf != nullptr && d->start == d->end) {
    pool_.Put(d->buf);
    d->buf = nullptr;
    d->start = d->end = 0;
  }
}

// For direction d (src -> dst): whether the reverse direction already saw EOF
// from dst, i.e. the peer we now fail to talk to had finished on its own.
bool Relay::PeerAlreadyClosed(const Direction* d) const {
  const Direction* reverse = d == &up_ ? &down_ : &up_;
  return reverse->src_eof;
}

bool Relay::PumpDirection(Direction* d) {
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
      if (!d->src_readable && !d->src->HasBufferedInput()) {
        d->src_wait = Wait::kRead;
        break;
      }
      if (d->buf == nullptr) d->buf = pool_.Get();
      size_t room = BufferPool::kBufferSize - d->end;
      tls::IoResult r = d->src->Recv(std::span<uint8_t>(d->buf + d->end, room));
      if (r.ok()) {
        d->end += r.n;
        moved = true;
        tls::Connection* t = d->src->tls();
        bool short_read = t == nullptr ? r.n < room
                                       : r.n < kMaxTlsPlaintextRecord && r.n < room && !d->src->HasBufferedInput();
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
        if (!any_eof_) {
          any_eof_ = true;
          client_ended_first_ = d->src == &client_;
        }
        tls::Connection* t = d->src->tls();
        if (d->src == &backend_ && r.kind == tls::IoResult::kEof && t != nullptr && t->truncated()) {
          backend_truncated_ = true;
        }
      } else if (r.blocked()) {
        d->src_wait = r.kind == tls::IoResult::kWantRead ? Wait::kRead : Wait::kWrite;
        if (r.kind == tls::IoResult::kWantRead) d->src_readable = false;
      } else {
        tls::Connection* t = d->src->tls();
        RelayEnd end;
        end.client_side = d->src == &client_;
        if (r.err == EPROTO && t != nullptr && d->src == &backend_ &&
            (t->failure_cause() == tls::FailureCause::kClientCertRequired ||
             t->failure_cause() == tls::FailureCause::kPeerRejectedUs)) {
          end.kind = RelayEnd::Kind::kBackendRefusedUs;
          end.diagnosis = t->diagnosis();
        } else if (d->src == &backend_ && IsResetError(r.err)) {
          end.kind = RelayEnd::Kind::kBackendReset;
          end.detail = strerror(r.err);
        } else {
          end.kind = RelayEnd::Kind::kReadFailed;
          end.detail = r.err == EPROTO && t != nullptr ? t->failure_detail() : std::string(strerror(r.err));
        }
        End(std::move(end));
        return false;
      }
    }
    // Drain (the first upstream bytes only once they cannot be a PROXY header).
    if (d == &up_ && sniff_up_ && d->end > d->start) {
      const SniffStep step = SniffUpstream(d);
      if (step == SniffStep::kEnded) return false;
      if (step == SniffStep::kHold) break;
    }
    while (d->end > d->start) {
      tls::IoResult r = d->dst->Send(std::span<const uint8_t>(d->buf + d->start, d->end - d->start));
      if (r.ok()) {
        if (d == &up_ && goodbye_len_ > 0 && r.n > 0) RememberTail(d->buf + d->start, r.n);
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
        RelayEnd end;
        end.kind = RelayEnd::Kind::kWriteFailed;
        end.client_side = d->dst == &client_;
        end.detail = r.err ? strerror(r.err) : "connection closed";
        End(std::move(end));
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
      }
      ReleaseBuffer(d);
      return true;
    }
    // Blocked on the destination with a full buffer, or nothing moved: done.
    if (!moved || d->dst_wait != Wait::kNone || (d->src_wait != Wait::kNone && d->start == d->end)) break;
    if (round == kMaxRounds - 1) {
      // Still busy: let other sessions run, then come back without waiting for
      // readiness (TLS may hold decrypted bytes the socket no longer signals).
      callbacks_.ScheduleRepump();
    }
  }
  ReleaseBuffer(d);
  return true;
}

void Relay::UpdatePolls() {
  auto events = [](Wait a, Wait b) {
    int ev = 0;
    if (a == Wait::kRead || b == Wait::kRead) ev |= UV_READABLE;
    if (a == Wait::kWrite || b == Wait::kWrite) ev |= UV_WRITABLE;
    return ev;
  };
  client_watch_->Want(events(up_.src_wait, down_.dst_wait));
  backend_watch_->Want(events(down_.src_wait, up_.dst_wait));
}

}  // namespace dbward::proxy

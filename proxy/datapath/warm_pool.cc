#include "proxy/datapath/warm_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include <fmt/format.h>

#include "proxy/common/log.h"
#include "proxy/common/tls_text.h"
#include "proxy/datapath/connector.h"
#include "proxy/datapath/leg.h"
#include "proxy/engine/upgrade.h"

namespace dbward::proxy {
namespace {
constexpr uint64_t kFirstBackoffMs = 1000;
constexpr uint64_t kMaxBackoffMs = 30'000;
}  // namespace

// One leg on its way to ready: connect, the protocol's plaintext upgrade
// (engine/upgrade.h, as a session does it), the verified TLS handshake.
class WarmPool::Leg final : Connector::Callbacks, Watch::Handler, engine::UpgradeSink {
 public:
  // kClosed: the server ended a ready leg (failure() is empty then).
  enum class State { kConnecting, kUpgrading, kTlsHandshake, kReady, kFailed, kClosed, kGone };

  Leg(uv_loop_t* loop, WarmPool* pool, std::shared_ptr<const TlsMaterial> material)
      : pool_(pool),
        material_(std::move(material)),
        connector_(loop, *this, pool->listener_->config.backend_host, pool->listener_->config.backend_port,
                   pool->listener_->config.timeouts.connect_ms),
        born_ms_(uv_now(loop)),
        loop_(loop) {}

  ~Leg() override {
    connector_.Cancel();
    if (watch_ != nullptr) watch_->Close();
  }

  void Start() {
    connector_.Start(born_ms_ + pool_->listener_->config.timeouts.handshake_ms);
  }

  State state() const { return state_; }
  uint64_t born_ms() const { return born_ms_; }
  uint64_t ready_ms() const { return ready_ms_; }
  const std::shared_ptr<const TlsMaterial>& material() const { return material_; }
  const std::string& failure() const { return failure_; }

  bool CertificateValid() const {
    const int64_t not_after = leg_.tls()->PeerNotAfterUnix();
    return not_after == 0 || not_after > static_cast<int64_t>(time(nullptr));
  }

  // Still open, with nothing from the server: PostgreSQL says nothing before
  // a StartupMessage, so bytes or an EOF mean it is ending the connection
  // (authentication_timeout, a shutdown). TLS records it may send that carry
  // no data (a session ticket) are taken and the leg stays.
  bool Alive() {
    if (!leg_.HasBufferedInput()) {
      uint8_t b;
      ssize_t n = ::recv(leg_.fd(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n <= 0) return false;
    }
    uint8_t buf[512];
    return leg_.Recv(buf).kind == tls::IoResult::kWantRead;
  }

  WarmHandoff Hand() {
    WarmHandoff h;
    h.fd = leg_.fd();
    h.watch = watch_;
    h.tls = leg_.TakeTls();
    h.buffered = leg_.TakeBuffered();
    h.address = address_;
    h.server_name = pool_->listener_->config.backend_tls.server_name;
    leg_.ReleaseFd();
    watch_->Want(0);
    watch_->SetHandler(nullptr);
    watch_ = nullptr;
    state_ = State::kGone;
    return h;
  }

  // Closes unused: close_notify (before any StartupMessage: the server logs
  // nothing), then the socket.
  void Close() {
    if (leg_.tls() != nullptr && state_ == State::kReady) leg_.ShutdownWrite();
    if (watch_ != nullptr) {
      watch_->Close();
      watch_ = nullptr;
    }
    leg_.Close();
    state_ = State::kGone;
  }

 private:
  // Connector::Callbacks
  void OnConnected(int fd, Watch* watch, const std::string& address) override {
    leg_.set_fd(fd);
    watch_ = watch;
    watch_->SetHandler(this);
    address_ = address;
    state_ = State::kUpgrading;
    upgrade_ = engine::BackendUpgrade::New(
        {.protocol = Protocol::kPostgres, .pg_direct = pool_->listener_->config.backend_tls.direct}, *this);
    if (upgrade_->OnConnected(address) == engine::BackendUpgrade::State::kFailed) {
      Failed(upgrade_->failure().error);
      return;
    }
    Advance();
  }
  void OnConnectFailed(const engine::Failure& failure) override { Failed(failure.error); }

  // engine::UpgradeSink
  void SendToBackend(std::span<const uint8_t> bytes) override { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
  void ReadBackend(bool on) override { reading_ = on; }
  void StartBackendTls(engine::TlsTransport /*transport*/) override { tls_pending_ = true; }

  // Watch::Handler
  void OnSocketEvent(Watch* /*watch*/, int status, int /*events*/) override {
    if (state_ == State::kReady) {
      if (status < 0 || !Alive()) {
        state_ = State::kClosed;
        pool_->Poke();
      } else {
        watch_->Want(UV_READABLE);
      }
      return;
    }
    Advance();
  }

  void Advance() {
    for (;;) {
      int events = 0;
      if (state_ == State::kTlsHandshake) {
        tls::Connection* conn = leg_.tls();
        switch (conn->Handshake()) {
          case tls::Connection::HandshakeStatus::kWantRead: events |= UV_READABLE; break;
          case tls::Connection::HandshakeStatus::kWantWrite: events |= UV_WRITABLE; break;
          case tls::Connection::HandshakeStatus::kFailed:
            Failed("backend " + address_ + ": " + ExplainHandshake(conn->diagnosis(), "backend_tls").Sentence());
            return;
          case tls::Connection::HandshakeStatus::kDone:
            if (!conn->verified()) {
              Failed("backend " + address_ + ": the TLS handshake ended without a verified certificate");
              return;
            }
            upgrade_->OnTlsReady();
            if (upgrade_->state() != engine::BackendUpgrade::State::kDone) {
              Failed("backend " + address_ + ": " + upgrade_->failure().error);
              return;
            }
            state_ = State::kReady;
            ready_ms_ = uv_now(loop_);
            upgrade_.reset();
            watch_->Want(UV_READABLE);
            pool_->Poke();
            return;
        }
        watch_->Want(events);
        return;
      }
      bool progress = false;
      if (!out_.empty()) {
        tls::IoResult r = leg_.Write(out_);
        if (r.ok()) {
          out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(r.n));
          progress = true;
        } else if (r.blocked()) {
          events |= UV_WRITABLE;
        } else {
          Failed("backend " + address_ + " went away: " + strerror(r.err));
          return;
        }
      }
      if (out_.empty() && tls_pending_) {
        tls_pending_ = false;
        std::string error;
        auto conn = tls::Connection::NewClient(material_->backend, pool_->listener_->config.backend_tls.server_name,
                                               &leg_, &error);
        if (!conn) {
          Failed(error);
          return;
        }
        leg_.AttachTls(std::move(conn));
        // The server's flight is several records: with the read-ahead they
        // come off the socket together, not as a header and a body apiece.
        leg_.EnableReadAhead();
        state_ = State::kTlsHandshake;
        continue;
      }
      if (reading_) {
        uint8_t buf[256];
        tls::IoResult r = leg_.Read(buf);
        if (r.ok()) {
          in_.Append(std::span<const uint8_t>(buf, r.n));
          if (upgrade_->OnData(in_) == engine::BackendUpgrade::State::kFailed) {
            Failed(upgrade_->failure().error);
            return;
          }
          progress = true;
        } else if (r.blocked()) {
          events |= UV_READABLE;
        } else {
          Failed("backend " + address_ + " closed the connection before answering SSLRequest");
          return;
        }
      }
      if (!progress) {
        watch_->Want(events);
        return;
      }
    }
  }

  void Failed(std::string why) {
    state_ = State::kFailed;
    failure_ = std::move(why);
    pool_->Poke();
  }

  WarmPool* pool_;
  std::shared_ptr<const TlsMaterial> material_;
  Connector connector_;
  proxy::Leg leg_;
  Watch* watch_ = nullptr;
  std::unique_ptr<engine::BackendUpgrade> upgrade_;
  std::vector<uint8_t> out_;
  engine::ByteQueue in_;
  bool reading_ = false;
  bool tls_pending_ = false;
  State state_ = State::kConnecting;
  std::string address_;
  std::string failure_;
  uint64_t born_ms_;
  uint64_t ready_ms_ = 0;
  uv_loop_t* loop_;
};

WarmPool::WarmPool(uv_loop_t* loop, ListenerRuntime* listener, uint32_t target)
    : loop_(loop), listener_(listener), target_(target) {}

WarmPool::~WarmPool() { Stop(); }

void WarmPool::Start() {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  Poke();
}

void WarmPool::Poke() {
  if (timer_ == nullptr || stopped_) return;
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<WarmPool*>(t->data)->OnTick(); }, 0, 0);
}

size_t WarmPool::ready_count() const {
  return static_cast<size_t>(
      std::count_if(legs_.begin(), legs_.end(), [](const auto& l) { return l->state() == Leg::State::kReady; }));
}

void WarmPool::Recycle(size_t index, const char* reason) {
  LOG_DEBUG("listener={} warm backend leg closed unused ({})", listener_->config.name, reason);
  legs_[index]->Close();
  listener_->metrics.warm_recycled.Inc(reason);
  legs_.erase(legs_.begin() + static_cast<ptrdiff_t>(index));
}

void WarmPool::OnTick() {
  const uint64_t now = uv_now(loop_);
  const WarmBackendsConfig& cfg = *listener_->config.warm_backends;
  const uint64_t handshake_ms = listener_->config.timeouts.handshake_ms;
  const std::shared_ptr<const TlsMaterial> current = listener_->tls();
  // One failure (or many in the same tick) is one step of the backoff.
  std::string failure;
  for (size_t i = 0; i < legs_.size();) {
    Leg& leg = *legs_[i];
    if (leg.state() == Leg::State::kClosed) {
      // Closed by the server before max_age: a restart, or a server (or a
      // balancer) whose own limit is shorter than max_age. Not retried at
      // once, or such a server would see a connection storm.
      failure = fmt::format("the server closed a warm leg {} s after it was ready, before warm_backends.max_age "
                            "({} s); if that is its authentication_timeout, set max_age below it",
                            (now - leg.ready_ms()) / 1000, cfg.max_age_ms / 1000);
      Recycle(i, "backend_closed");
      continue;
    }
    if (leg.state() == Leg::State::kFailed) {
      failure = leg.failure();
      legs_.erase(legs_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    if (leg.state() == Leg::State::kReady) {
      if (now >= leg.born_ms() + cfg.max_age_ms) {
        Recycle(i, "max_age");
        // A leg that lived its whole age: the backend is fine again.
        backoff_ms_ = 0;
        continue;
      }
      if (leg.material() != current) {
        Recycle(i, "reload");
        continue;
      }
    } else if (now >= leg.born_ms() + handshake_ms) {
      // The connector keeps its own deadline; the upgrade and TLS steps are
      // bounded here.
      failure = "no answer to SSLRequest or the TLS handshake within timeouts.handshake";
      legs_[i]->Close();
      legs_.erase(legs_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    i++;
  }
  if (!failure.empty()) {
    if (backoff_ms_ == 0) {
      LOG_WARN("listener={} warm backend leg: {}; sessions connect on their own meanwhile", listener_->config.name,
               failure);
    }
    backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, kMaxBackoffMs);
    next_attempt_ms_ = now + backoff_ms_;
  }
  if (!stopped_) Refill();
  // The next wake-up, once the legs Refill made are counted too: each
  // ready leg's max_age, each unready one's deadline, the next attempt;
  // at once for a leg that already failed (a connect refused inside Refill).
  uint64_t next = UINT64_MAX;
  for (const auto& leg : legs_) {
    switch (leg->state()) {
      case Leg::State::kReady: next = std::min(next, leg->born_ms() + cfg.max_age_ms); break;
      case Leg::State::kFailed:
      case Leg::State::kClosed: next = now; break;
      default: next = std::min(next, leg->born_ms() + handshake_ms); break;
    }
  }
  if (legs_.size() < target_ && next_attempt_ms_ > now) next = std::min(next, next_attempt_ms_);
  const int64_t ready = static_cast<int64_t>(ready_count());
  if (ready != ready_reported_) {
    LOG_DEBUG("listener={} warm backend legs ready: {} of {}", listener_->config.name, ready, target_);
  }
  listener_->metrics.warm_ready.fetch_add(ready - ready_reported_, std::memory_order_relaxed);
  ready_reported_ = ready;
  if (next != UINT64_MAX && timer_ != nullptr && !stopped_) {
    uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<WarmPool*>(t->data)->OnTick(); },
                   next > now ? next - now : 0, 0);
  }
}

void WarmPool::Refill() {
  const uint64_t now = uv_now(loop_);
  if (now < next_attempt_ms_) return;
  // While the backend fails, one leg at a time probes it.
  const size_t want = backoff_ms_ != 0 ? 1 : target_;
  const std::shared_ptr<const TlsMaterial> material = listener_->tls();
  while (legs_.size() < want) {
    legs_.push_back(std::make_unique<Leg>(loop_, this, material));
    legs_.back()->Start();
  }
}

std::optional<WarmHandoff> WarmPool::Take() {
  if (stopped_) return std::nullopt;
  // Legs are judged against the material in force now (a session that began
  // before a reload still gets a leg verified after it, never one before).
  const std::shared_ptr<const TlsMaterial> material = listener_->tls();
  const uint64_t now = uv_now(loop_);
  const uint64_t max_age = listener_->config.warm_backends->max_age_ms;
  // The oldest ready leg first, so none waits longer than it must.
  std::optional<WarmHandoff> out;
  for (size_t i = 0; i < legs_.size() && !out;) {
    Leg& leg = *legs_[i];
    if (leg.state() != Leg::State::kReady) {
      i++;
      continue;
    }
    if (leg.material() != material) {
      Recycle(i, "reload");
    } else if (now >= leg.born_ms() + max_age) {
      Recycle(i, "max_age");
    } else if (!leg.CertificateValid()) {
      Recycle(i, "certificate_expired");
    } else if (!leg.Alive()) {
      Recycle(i, "backend_closed");
    } else {
      out = leg.Hand();
      legs_.erase(legs_.begin() + static_cast<ptrdiff_t>(i));
      if (backoff_ms_ != 0) {
        LOG_INFO("listener={} warm backend legs in use again", listener_->config.name);
        backoff_ms_ = 0;
      }
    }
  }
  listener_->metrics.warm_takes.Inc(out ? "hit" : "miss");
  Poke();  // refill in the background, after this session's own work
  return out;
}

void WarmPool::Stop() {
  if (stopped_) return;
  stopped_ = true;
  while (!legs_.empty()) {
    if (legs_.back()->state() == Leg::State::kReady) listener_->metrics.warm_recycled.Inc("shutdown");
    legs_.back()->Close();
    legs_.pop_back();
  }
  listener_->metrics.warm_ready.fetch_sub(ready_reported_, std::memory_order_relaxed);
  ready_reported_ = 0;
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

}  // namespace dbward::proxy

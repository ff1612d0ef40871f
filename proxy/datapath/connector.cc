#include "proxy/datapath/connector.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "proxy/common/address.h"
#include "proxy/common/log.h"
#include "proxy/datapath/socket.h"

namespace dbward::proxy {

struct Connector::Resolve {
  uv_getaddrinfo_t req;
  Connector* owner;  // null once the connector gave up on it
};

Connector::Connector(uv_loop_t* loop, Callbacks& callbacks, std::string host, uint16_t port,
                     uint64_t connect_timeout_ms)
    : loop_(loop),
      callbacks_(callbacks),
      host_(std::move(host)),
      port_(port),
      lookup_(loop, *this),
      connect_timeout_ms_(connect_timeout_ms) {}

void Connector::SetTarget(std::string host, uint16_t port, std::string instance) {
  Cancel();
  host_ = std::move(host);
  port_ = port;
  instance_ = std::move(instance);
}

Connector::~Connector() {
  Cancel();
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void Connector::Start(uint64_t deadline_ms) {
  if (state_ != State::kIdle) return;
  deadline_ms_ = deadline_ms;
  uint64_t now = uv_now(loop_);
  budget_ms_ = deadline_ms > now ? deadline_ms - now : 0;
  if (timer_ == nullptr) {
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
  }
  uint16_t port_now = port_;
  port_from_cache_ = false;
  if (!instance_.empty()) {
    std::optional<uint16_t> cached = InstanceLookup::Cached(host_, instance_, now);
    port_now = cached.value_or(0);
    port_from_cache_ = cached.has_value();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(port_now);
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(host_.c_str(), port.c_str(), &hints, &res) == 0) {
    Resolved(res, false);
    return;
  }
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  resolve_ = new Resolve{{}, this};
  resolve_->req.data = resolve_;
  int rc = uv_getaddrinfo(
      loop_, &resolve_->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* result) {
        auto* r = static_cast<Resolve*>(req->data);
        Connector* owner = r->owner;
        delete r;
        if (owner == nullptr) {
          if (result != nullptr) uv_freeaddrinfo(result);
          return;
        }
        owner->resolve_ = nullptr;
        owner->OnResolved(status, result);
      },
      host_.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete resolve_;
    resolve_ = nullptr;
    Report({Outcome::kBackendUnreachable, Cause::kDns, fmt::format("cannot resolve backend {}: {}", host_, uv_strerror(rc))});
    return;
  }
  state_ = State::kResolving;
  ArmTimer(deadline_ms_);
}

void Connector::OnResolved(int status, addrinfo* res) {
  if (status != 0) {
    Report({Outcome::kBackendUnreachable, Cause::kDns,
            fmt::format("cannot resolve backend {}: {}", host_, uv_strerror(status))});
    return;
  }
  Resolved(res, true);
}

void Connector::Resolved(addrinfo* res, bool from_uv) {
  addrs_ = next_ = res;
  addrs_from_uv_ = from_uv;
  if (!instance_.empty() && !port_from_cache_) {
    state_ = State::kLookup;
    uv_timer_stop(timer_);
    // The Browser's answer counts as part of connecting: within
    // timeouts.connect, so that a silent Browser leaves time to tell the
    // client why.
    lookup_.Start(res->ai_addr, host_, instance_, std::min(deadline_ms_, uv_now(loop_) + connect_timeout_ms_));
    return;
  }
  state_ = State::kConnecting;
  ConnectNext();
}

void Connector::UsePort(uint16_t port) {
  for (addrinfo* ai = addrs_; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET6) {
      reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_port = htons(port);
    } else if (ai->ai_family == AF_INET) {
      reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_port = htons(port);
    }
  }
}

void Connector::OnInstancePort(uint16_t port) {
  UsePort(port);
  state_ = State::kConnecting;
  ConnectNext();
}

void Connector::OnInstanceLookupFailed(const engine::Failure& failure) { Report(failure); }

void Connector::ConnectNext() {
  while (next_ != nullptr) {
    addrinfo* ai = next_;
    next_ = ai->ai_next;
    address_ = FormatAddress(ai->ai_addr);
    int err = 0;
    int fd = ConnectTcp(ai->ai_addr, ai->ai_addrlen, &err);
    if (fd < 0) {
      last_error_ = address_ + ": " + strerror(err);
      continue;
    }
    watch_ = Watch::Open(loop_, fd, this);
    if (watch_ == nullptr) {
      close(fd);
      last_error_ = address_ + ": cannot watch socket";
      continue;
    }
    fd_ = fd;
    watch_->Want(UV_WRITABLE);
    uint64_t now = uv_now(loop_);
    ArmTimer(std::min(deadline_ms_, now + connect_timeout_ms_));
    return;
  }
  if (!instance_.empty()) {
    // The Browser's answer may be stale (the instance moved): ask again next time.
    InstanceLookup::Forget(host_, instance_);
    Report({Outcome::kBackendUnreachable, Cause::kConnect,
            fmt::format("cannot connect to backend {}\\{} ({}); check that the instance is running and reachable "
                        "from this host",
                        host_, instance_, last_error_)});
    return;
  }
  Report({Outcome::kBackendUnreachable, Cause::kConnect,
          fmt::format("cannot connect to backend {} ({}); check that the server is running and reachable from this host",
                      JoinHostPort(host_, port_), last_error_)});
}

void Connector::OnSocketEvent(Watch* /*watch*/, int /*status*/, int /*events*/) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    last_error_ = address_ + ": " + strerror(err);
    LOG_DEBUG("connect to {} failed: {}", address_, strerror(err));
    CloseAttempt();
    ConnectNext();
    return;
  }
  int fd = fd_;
  Watch* watch = watch_;
  fd_ = -1;
  watch_ = nullptr;
  watch->SetHandler(nullptr);
  watch->Want(0);
  uv_timer_stop(timer_);
  state_ = State::kIdle;
  callbacks_.OnConnected(fd, watch, address_);
}

void Connector::ArmTimer(uint64_t at_ms) {
  uint64_t now = uv_now(loop_);
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<Connector*>(t->data)->OnTimeout(); },
                 at_ms > now ? at_ms - now : 1, 0);
}

void Connector::OnTimeout() {
  if (state_ == State::kResolving) {
    if (resolve_ != nullptr) {
      resolve_->owner = nullptr;
      uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_->req));
      resolve_ = nullptr;
    }
    Report({Outcome::kTimeout, Cause::kDns, fmt::format("resolving backend {} timed out", host_)});
    return;
  }
  if (state_ != State::kConnecting) return;
  uint64_t now = uv_now(loop_);
  if (now < deadline_ms_ && next_ != nullptr) {
    last_error_ = address_ + ": connect timed out";
    CloseAttempt();
    ConnectNext();
    return;
  }
  Report({Outcome::kBackendUnreachable, Cause::kConnectTimeout,
          fmt::format("connect to backend {} timed out after {} ms (timeouts.connect); check firewalls and that the "
                      "server is up",
                      address_, std::min(connect_timeout_ms_, budget_ms_))});
}

void Connector::CloseAttempt() {
  if (watch_ != nullptr) {
    watch_->Close();
    watch_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void Connector::Cancel() {
  lookup_.Cancel();
  if (resolve_ != nullptr) {
    resolve_->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_->req));
    resolve_ = nullptr;
  }
  CloseAttempt();
  if (timer_ != nullptr) uv_timer_stop(timer_);
  if (addrs_ != nullptr) {
    if (addrs_from_uv_) {
      uv_freeaddrinfo(addrs_);
    } else {
      freeaddrinfo(addrs_);
    }
    addrs_ = next_ = nullptr;
  }
  state_ = State::kIdle;
}

void Connector::Report(const engine::Failure& failure) {
  Cancel();
  callbacks_.OnConnectFailed(failure);
}

}  // namespace dbward::proxy

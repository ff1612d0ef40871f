#include "proxy/datapath/instance_lookup.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "protocol/ssrp.h"
#include "proxy/common/log.h"
#include "proxy/datapath/socket.h"

namespace dbward::proxy {
namespace {

namespace ssrp = protocol::ssrp;

constexpr uint64_t kResendMs = 1000;
constexpr uint64_t kCacheMs = 60'000;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

struct CacheEntry {
  uint16_t port;
  uint64_t until_ms;
};
std::mutex g_cache_mu;
std::map<std::string, CacheEntry>& Cache() {
  static auto* cache = new std::map<std::string, CacheEntry>;
  return *cache;
}
std::string Key(const std::string& host, const std::string& instance) { return Upper(host) + "\\" + Upper(instance); }

}  // namespace

struct InstanceLookup::Socket {
  uv_udp_t udp;
  InstanceLookup* owner;  // null once the lookup is over
  uint8_t buf[4096];
};

std::optional<uint16_t> InstanceLookup::Cached(const std::string& host, const std::string& instance, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = Cache().find(Key(host, instance));
  if (it == Cache().end() || it->second.until_ms <= now_ms) return std::nullopt;
  return it->second.port;
}

void InstanceLookup::Remember(const std::string& host, const std::string& instance, uint16_t port, uint64_t now_ms) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  Cache()[Key(host, instance)] = {port, now_ms + kCacheMs};
}

void InstanceLookup::Forget(const std::string& host, const std::string& instance) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  Cache().erase(Key(host, instance));
}

void InstanceLookup::Start(const sockaddr* address, const std::string& host, const std::string& instance,
                           uint64_t deadline_ms) {
  Cancel();
  host_ = host;
  instance_ = instance;
  deadline_ms_ = deadline_ms;
  sends_ = 0;
  last_problem_.clear();
  memset(&browser_, 0, sizeof browser_);
  if (address->sa_family == AF_INET6) {
    memcpy(&browser_, address, sizeof(sockaddr_in6));
    reinterpret_cast<sockaddr_in6*>(&browser_)->sin6_port = htons(ssrp::kPort);
  } else {
    memcpy(&browser_, address, sizeof(sockaddr_in));
    reinterpret_cast<sockaddr_in*>(&browser_)->sin_port = htons(ssrp::kPort);
  }
  browser_text_ = FormatAddress(reinterpret_cast<const sockaddr*>(&browser_));
  socket_ = new Socket;
  socket_->owner = this;
  socket_->udp.data = socket_;
  uv_udp_init(loop_, &socket_->udp);
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  int rc = uv_udp_recv_start(
      &socket_->udp,
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* s = static_cast<Socket*>(h->data);
        *buf = uv_buf_init(reinterpret_cast<char*>(s->buf), sizeof s->buf);
      },
      [](uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* from, unsigned) {
        auto* s = static_cast<Socket*>(h->data);
        if (s->owner == nullptr || from == nullptr) return;
        if (n < 0) {
          s->owner->last_problem_ = uv_strerror(static_cast<int>(n));  // e.g. ICMP port unreachable
          return;
        }
        s->owner->OnDatagram(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n));
      });
  if (rc != 0) {
    last_problem_ = uv_strerror(rc);
  }
  Send();
}

void InstanceLookup::Send() {
  sends_++;
  auto* req = new uv_udp_send_t;
  auto* payload = new std::vector<uint8_t>(ssrp::EncodeInstanceRequest(instance_));
  req->data = payload;
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(payload->data()), static_cast<unsigned>(payload->size()));
  int rc = uv_udp_send(req, &socket_->udp, &b, 1, reinterpret_cast<const sockaddr*>(&browser_),
                       [](uv_udp_send_t* r, int) {
                         delete static_cast<std::vector<uint8_t>*>(r->data);
                         delete r;
                       });
  if (rc != 0) {
    delete payload;
    delete req;
    last_problem_ = uv_strerror(rc);
  }
  uint64_t now = uv_now(loop_);
  uint64_t at = std::min(deadline_ms_, now + kResendMs);
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<InstanceLookup*>(t->data)->OnTimer(); },
                 at > now ? at - now : 1, 0);
}

void InstanceLookup::OnTimer() {
  if (uv_now(loop_) < deadline_ms_ && sends_ < 3) {
    Send();
    return;
  }
  Finish();
  callbacks_.OnInstanceLookupFailed(
      {Outcome::kBackendUnreachable, Cause::kInstanceLookup,
       fmt::format("the SQL Server Browser at {} (UDP) did not tell the port of instance {}\\{} after {} queries{}; "
                   "check that the SQL Server Browser service runs and UDP 1434 is open, or configure the "
                   "instance's port: backend: {}:PORT",
                   browser_text_, host_, instance_, sends_, last_problem_.empty() ? "" : " (" + last_problem_ + ")",
                   host_)});
}

void InstanceLookup::OnDatagram(const uint8_t* data, size_t size) {
  std::vector<ssrp::Instance> instances;
  protocol::Result r = ssrp::ParseResponse(std::span<const uint8_t>(data, size), &instances);
  if (!r.ok()) {
    last_problem_ = "an answer that is not MC-SQLR: " + r.error;
    return;
  }
  std::vector<std::string> names;
  for (const ssrp::Instance& i : instances) {
    if (Upper(i.instance_name) != Upper(instance_)) {
      names.push_back(i.instance_name);
      continue;
    }
    if (i.tcp_port == 0) {
      Finish();
      callbacks_.OnInstanceLookupFailed(
          {Outcome::kBackendUnreachable, Cause::kInstanceLookup,
           fmt::format("the SQL Server Browser at {} lists instance {} without a TCP port: enable TCP/IP for the "
                       "instance in SQL Server Configuration Manager",
                       browser_text_, instance_)});
      return;
    }
    uint16_t port = i.tcp_port;
    Remember(host_, instance_, port, uv_now(loop_));
    Finish();
    LOG_DEBUG("SQL Server Browser {}: instance {} is on TCP port {}", browser_text_, instance_, port);
    callbacks_.OnInstancePort(port);
    return;
  }
  std::string listed;
  for (const std::string& n : names) listed += (listed.empty() ? "" : ", ") + n;
  last_problem_ = "it lists " + (listed.empty() ? std::string("no instances") : "only " + listed);
}

void InstanceLookup::Finish() {
  if (socket_ != nullptr) {
    socket_->owner = nullptr;
    uv_udp_recv_stop(&socket_->udp);
    uv_close(reinterpret_cast<uv_handle_t*>(&socket_->udp),
             [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
    socket_ = nullptr;
  }
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void InstanceLookup::Cancel() { Finish(); }

}  // namespace dbward::proxy

#include "proxy/datapath/sql_browser.h"

#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "protocol/ssrp.h"
#include "proxy/common/log.h"
#include "proxy/datapath/socket.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {
namespace {

namespace ssrp = protocol::ssrp;

// Per source address: a burst of 20 answers, then 10 a second.
constexpr double kBurst = 20;
constexpr double kPerSecond = 10;
constexpr size_t kMaxTracked = 4096;
// What the answers give as the version: SQL Server 2022's, which clients
// read (if at all) to pick a TDS version; dbward relays whatever its backend
// speaks.
constexpr const char* kVersion = "16.0.1000.6";

bool ParseIpPort(const std::string& host, uint16_t port, sockaddr_storage* out) {
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(out)) == 0) return true;
  return uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(out)) == 0;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

struct SqlBrowser::Handle {
  uv_udp_t udp;
  SqlBrowser* owner;
  uint8_t buf[2048];
};

SqlBrowser::SqlBrowser(uv_loop_t* loop, const SqlBrowserConfig& config, const std::vector<ListenerRuntime*>& listeners)
    : loop_(loop), config_(config), listeners_(listeners) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') strcpy(host, "DBWARD");
  std::string name = host;
  server_name_ = Upper(name.substr(0, name.find('.')));
}

SqlBrowser::~SqlBrowser() { Close(); }

bool SqlBrowser::Start(std::string* error) {
  sockaddr_storage addr{};
  if (!ParseIpPort(config_.listen_host, config_.listen_port, &addr)) {
    *error = "sql_browser.listen: " + config_.listen_host + " is not an IP address";
    return false;
  }
  handle_ = new Handle;
  handle_->owner = this;
  handle_->udp.data = handle_;
  uv_udp_init(loop_, &handle_->udp);
  int rc = uv_udp_bind(&handle_->udp, reinterpret_cast<const sockaddr*>(&addr), UV_UDP_REUSEADDR);
  if (rc == 0) {
    rc = uv_udp_recv_start(
        &handle_->udp,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Handle*>(h->data);
          *buf = uv_buf_init(reinterpret_cast<char*>(self->buf), sizeof self->buf);
        },
        [](uv_udp_t* h, ssize_t n, const uv_buf_t* buf, const sockaddr* from, unsigned) {
          auto* self = static_cast<Handle*>(h->data);
          if (self->owner == nullptr || n <= 0 || from == nullptr) return;
          self->owner->OnDatagram(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n), from);
        });
  }
  if (rc != 0) {
    *error = "sql_browser: cannot listen on UDP " + JoinHostPort(config_.listen_host, config_.listen_port) + ": " +
             uv_strerror(rc) + (rc == UV_EADDRINUSE ? " (is SQL Server Browser running on this host?)" : "");
    Close();
    return false;
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_udp_getsockname(&handle_->udp, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::string names;
  for (const auto& i : config_.instances) names += (names.empty() ? "" : ", ") + i.name + " -> " + i.listener;
  LOG_INFO("sql_browser answering on UDP {} as {} for instances {}", JoinHostPort(config_.listen_host, port_),
           server_name_, names);
  return true;
}

void SqlBrowser::Close() {
  if (handle_ == nullptr) return;
  handle_->owner = nullptr;
  uv_udp_recv_stop(&handle_->udp);
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->udp), [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
  handle_ = nullptr;
}

bool SqlBrowser::Allow(const std::string& ip, uint64_t now_ms) {
  if (buckets_.size() > kMaxTracked) {
    // Forget sources that have been quiet long enough to have a full bucket.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      it = now_ms - it->second.at_ms > 2000 * kBurst / kPerSecond ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() > kMaxTracked) return false;
  }
  auto [it, fresh] = buckets_.try_emplace(ip, Bucket{kBurst, now_ms});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(kBurst, b.tokens + static_cast<double>(now_ms - b.at_ms) * kPerSecond / 1000.0);
    b.at_ms = now_ms;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void SqlBrowser::OnDatagram(const uint8_t* data, size_t size, const sockaddr* from) {
  const std::string peer = FormatAddress(from);
  ssrp::Request req;
  protocol::Result r = ssrp::ParseRequest(std::span<const uint8_t>(data, size), &req);
  if (!r.ok()) {
    LOG_DEBUG("sql_browser: ignored a datagram from {}: {}", peer, r.error);
    return;
  }
  std::vector<ssrp::Instance> answer;
  for (const SqlBrowserConfig::Instance& i : config_.instances) {
    if (req.type == ssrp::kClientUnicastInst && Upper(i.name) != Upper(req.instance)) continue;
    auto l = std::find_if(listeners_.begin(), listeners_.end(),
                          [&](const ListenerRuntime* lr) { return lr->config.name == i.listener; });
    if (l == listeners_.end() || (*l)->bound_port == 0) continue;
    answer.push_back({server_name_, i.name, kVersion, false, (*l)->bound_port});
  }
  if (req.type == ssrp::kClientUnicastDac || answer.empty()) {
    LOG_DEBUG("sql_browser: no answer to {} for {}{}", peer, req.instance.empty() ? "the instance list" : req.instance,
              req.type == ssrp::kClientUnicastDac ? " (dbward has no dedicated admin connection)" : " (no such instance)");
    return;
  }
  if (!Allow(IpOf(peer), uv_now(loop_))) {
    LOG_DEBUG("sql_browser: {} asks too often; not answered", peer);
    return;
  }
  std::vector<uint8_t> datagram = ssrp::EncodeResponse(
      answer, req.type == ssrp::kClientUnicastInst ? ssrp::kMaxInstanceResponse : ssrp::kMaxResponse);
  if (datagram.empty()) return;
  LOG_DEBUG("sql_browser: told {} the port of {}", peer, req.instance.empty() ? "every instance" : req.instance);
  Answer(datagram, from);
}

void SqlBrowser::Answer(const std::vector<uint8_t>& datagram, const sockaddr* from) {
  // Small and rare: a non-blocking send straight away; a full socket buffer
  // drops the answer, as UDP may.
  uv_buf_t b = uv_buf_init(reinterpret_cast<char*>(const_cast<uint8_t*>(datagram.data())),
                           static_cast<unsigned>(datagram.size()));
  uv_udp_try_send(&handle_->udp, &b, 1, from);
}

}  // namespace dbward::proxy

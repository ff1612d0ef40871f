#include "proxy/ops/admin.h"

#include <netdb.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <list>
#include <memory>
#include <sstream>

#include "proxy/common/log.h"
#include "proxy/ops/audit_sink.h"
#include "proxy/ops/reloader.h"

namespace dbward::proxy {
namespace {

constexpr size_t kMaxRequest = 8192;
// A probe sends its whole request at once: 2 s is generous for a request and
// short for a connection that only sits there.
constexpr uint64_t kRequestTimeoutMs = 2000;
constexpr uint64_t kResponseTimeoutMs = 5000;
constexpr size_t kMaxConnections = 256;

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

struct AdminServer::Conn {
  uv_tcp_t tcp;
  uv_timer_t timer;  // a request must arrive within kRequestTimeoutMs
  int open = 2;      // handles still to close
  uv_write_t write;
  AdminServer* server;
  std::string request;
  std::string response;
  bool waiting = true;  // in server->waiting_: no complete request yet
  std::list<Conn*>::iterator in_waiting;
};

AdminServer::AdminServer(uv_loop_t* loop, std::vector<ListenerRuntime*> listeners, const Reloader* reloader,
                         BackendCheck check, uint64_t check_interval_ms)
    : loop_(loop),
      listeners_(std::move(listeners)),
      reloader_(reloader),
      check_(std::move(check)),
      check_interval_ms_(check_interval_ms) {}

AdminServer::~AdminServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (checker_.joinable()) checker_.join();
}

bool AdminServer::Listen(const std::string& host, uint16_t port, std::string* error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr) {
    *error = "admin: cannot resolve " + host;
    return false;
  }
  uv_tcp_init(loop_, &server_);
  server_.data = this;
  int rc = uv_tcp_bind(&server_, res->ai_addr, 0);
  freeaddrinfo(res);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 511, OnConnection);
  if (rc != 0) {
    *error = "admin: cannot listen on " + host + ":" + std::to_string(port) + ": " + uv_strerror(rc);
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
    return false;
  }
  listening_ = true;
  sockaddr_storage ss{};
  int len = sizeof ss;
  uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (check_) checker_ = std::thread([this] { CheckLoop(); });
  return true;
}

void AdminServer::Close() {
  if (listening_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
    listening_ = false;
  }
}

void AdminServer::CheckLoop() {
  for (;;) {
    for (ListenerRuntime* l : listeners_) {
      std::string reason;
      bool ok = check_(*l, &reason);
      l->SetBackendHealth(ok, reason);
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(check_interval_ms_), [this] { return stop_; })) return;
  }
}

void AdminServer::StopWaiting(Conn* c) {
  if (!c->waiting) return;
  waiting_.erase(c->in_waiting);
  c->waiting = false;
}

void AdminServer::CloseConn(Conn* c) {
  StopWaiting(c);
  auto done = [](uv_handle_t* h) {
    auto* conn = static_cast<Conn*>(h->data);
    if (--conn->open == 0) {
      conn->server->connections_--;
      delete conn;
    }
  };
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp))) uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), done);
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->timer))) uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), done);
}

void AdminServer::OnConnection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* self = static_cast<AdminServer*>(server->data);
  auto* c = new Conn;
  c->server = self;
  self->connections_++;
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->in_waiting = self->waiting_.insert(self->waiting_.end(), c);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    self->CloseConn(c);
    return;
  }
  // At the cap, the connection that has waited longest without sending a
  // request makes room: idle connections can delay a probe, never deny it.
  if (self->connections_ > kMaxConnections) {
    if (self->waiting_.front() != c) {
      self->evicted_++;
      self->CloseConn(self->waiting_.front());
    } else {
      self->CloseConn(c);
      return;
    }
  }
  // A client that connects and says nothing must not hold the socket.
  uv_timer_start(&c->timer, [](uv_timer_t* t) {
    auto* conn = static_cast<Conn*>(t->data);
    conn->server->CloseConn(conn);
  }, kRequestTimeoutMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static thread_local char scratch[2048];
        buf->base = scratch;
        buf->len = sizeof scratch;
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<Conn*>(stream->data);
        if (n < 0) {
          conn->server->CloseConn(conn);
          return;
        }
        conn->request.append(buf->base, static_cast<size_t>(n));
        if (conn->request.size() > kMaxRequest) {
          conn->server->CloseConn(conn);
          return;
        }
        if (conn->request.find("\r\n\r\n") == std::string::npos) return;
        uv_read_stop(stream);
        conn->server->StopWaiting(conn);
        uv_timer_start(&conn->timer, [](uv_timer_t* t) {
          auto* late = static_cast<Conn*>(t->data);
          late->server->CloseConn(late);
        }, kResponseTimeoutMs, 0);
        conn->server->Handle(conn);
      });
}

void AdminServer::Respond(Conn* conn, int code, const std::string& type, const std::string& body,
                          const std::string& headers) {
  const char* reason = code == 200   ? "OK"
                       : code == 503 ? "Service Unavailable"
                       : code == 500 ? "Internal Server Error"
                       : code == 405 ? "Method Not Allowed"
                                     : "Not Found";
  conn->response = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
                   "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + headers +
                   "Connection: close\r\n\r\n" + body;
  uv_buf_t out = uv_buf_init(conn->response.data(), static_cast<unsigned>(conn->response.size()));
  conn->write.data = conn;
  uv_write(&conn->write, reinterpret_cast<uv_stream_t*>(&conn->tcp), &out, 1, [](uv_write_t* w, int) {
    auto* cc = static_cast<Conn*>(w->data);
    cc->server->CloseConn(cc);
  });
}

struct AdminServer::ReportJob {
  uv_work_t work;
  Conn* conn;
  ReportRenderer render;
  std::string html, error;
  bool ok = false;
};

void AdminServer::Handle(Conn* conn) {
  std::string line = conn->request.substr(0, conn->request.find("\r\n"));
  const std::string text = "text/plain; charset=utf-8";
  if (line.rfind("GET ", 0) != 0) return Respond(conn, 405, text, "only GET\n");
  std::string path = line.substr(4, line.find(' ', 4) - 4);
  if (path == "/metrics") return Respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics());
  if (path == "/healthz") return Respond(conn, 200, text, "ok\n");
  std::string body;
  if (path == "/startup") {
    int code = Started(&body);
    return Respond(conn, code, text, body);
  }
  if (path == "/readyz") {
    int code = Ready(&body);
    return Respond(conn, code, text, body);
  }
  if (path == "/report") {
    if (!report_) {
      return Respond(conn, 404, text,
                     "no report: /report reads the audit file, and log.audit is not a file (stdout, stderr or off)\n");
    }
    // Reading the audit file can take a while: off the loop, and without the
    // response deadline (the job holds the connection until it is done).
    uv_timer_stop(&conn->timer);
    auto* job = new ReportJob;
    job->work.data = job;
    job->conn = conn;
    job->render = report_;
    uv_queue_work(
        loop_, &job->work, [](uv_work_t* w) {
          auto* j = static_cast<ReportJob*>(w->data);
          j->ok = j->render(&j->html, &j->error);
        },
        [](uv_work_t* w, int) {
          std::unique_ptr<ReportJob> j(static_cast<ReportJob*>(w->data));
          Conn* c = j->conn;
          uv_timer_start(&c->timer, [](uv_timer_t* t) {
            auto* late = static_cast<Conn*>(t->data);
            late->server->CloseConn(late);
          }, kResponseTimeoutMs, 0);
          if (!j->ok) return c->server->Respond(c, 500, "text/plain; charset=utf-8", j->error + "\n");
          c->server->Respond(c, 200, "text/html; charset=utf-8", j->html,
                             "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
                             "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n");
        });
    return;
  }
  Respond(conn, 404, text, "not found\n");
}

int AdminServer::Started(std::string* body) const {
  std::string waiting;
  for (ListenerRuntime* l : listeners_) {
    if (!l->BackendChecked()) waiting += " " + l->config.name;
  }
  if (waiting.empty()) {
    *body = "started\n";
    return 200;
  }
  *body = "starting: the first backend check has not finished for listener(s)" + waiting + "\n";
  return 503;
}

int AdminServer::Ready(std::string* body) const {
  std::string reasons;
  if (draining_) reasons += "draining: dbward is shutting down\n";
  for (ListenerRuntime* l : listeners_) {
    std::string why;
    if (!l->BackendHealthy(&why)) reasons += "listener " + l->config.name + ": " + why + "\n";
  }
  if (reasons.empty()) {
    *body = "ready\n";
    return 200;
  }
  *body = reasons;
  return 503;
}

std::string AdminServer::RenderMetrics() const {
  std::ostringstream out;
  auto labels = [](const ListenerRuntime* l) {
    return "listener=\"" + Escape(l->config.name) + "\",protocol=\"" + ProtocolName(l->config.protocol) + "\"";
  };
#define DBWARD_RENDER_COUNTER(name, help)                                                   \
  out << "# HELP dbward_" #name " " help "\n# TYPE dbward_" #name " counter\n";           \
  for (const ListenerRuntime* l : listeners_) {                                             \
    out << "dbward_" #name "{" << labels(l) << "} " << l->metrics.name.load() << "\n";      \
  }
  DBWARD_LISTENER_COUNTERS(DBWARD_RENDER_COUNTER)
#undef DBWARD_RENDER_COUNTER

  out << "# HELP dbward_sessions_active Open client connections\n# TYPE dbward_sessions_active gauge\n";
  for (const ListenerRuntime* l : listeners_) out << "dbward_sessions_active{" << labels(l) << "} " << l->active.load() << "\n";
  out << "# HELP dbward_handshakes_in_progress Connections not yet authenticated (limit: max_handshakes)\n"
         "# TYPE dbward_handshakes_in_progress gauge\n";
  for (const ListenerRuntime* l : listeners_) {
    out << "dbward_handshakes_in_progress{" << labels(l) << "} " << l->handshakes.in_progress() << "\n";
  }
  out << "# HELP dbward_handshakes_limit The listener's max_handshakes and max_handshakes_per_client\n"
         "# TYPE dbward_handshakes_limit gauge\n";
  for (const ListenerRuntime* l : listeners_) {
    out << "dbward_handshakes_limit{" << labels(l) << ",scope=\"listener\"} " << l->config.max_handshakes << "\n";
    out << "dbward_handshakes_limit{" << labels(l) << ",scope=\"client\"} " << l->config.max_handshakes_per_client
        << "\n";
  }

  auto labeled = [&](const char* name, const char* help, const char* label, const LabeledCounter ListenerMetrics::*field) {
    out << "# HELP dbward_" << name << " " << help << "\n# TYPE dbward_" << name << " counter\n";
    for (const ListenerRuntime* l : listeners_) {
      for (const auto& [value, count] : (l->metrics.*field).Snapshot()) {
        out << "dbward_" << name << "{" << labels(l) << "," << label << "=\"" << Escape(value) << "\"} " << count << "\n";
      }
    }
  };
  labeled("client_encryption_total", "Sessions by the encryption the client used", "client_encryption",
          &ListenerMetrics::client_encryption);
  labeled("trust_bypass_total", "Sessions whose client bypassed trust, by how", "bypass_reason",
          &ListenerMetrics::trust_bypass);
  labeled("sessions_outcome_total", "Finished sessions by outcome", "outcome", &ListenerMetrics::outcome);
  labeled("handshake_failures_total", "Sessions that failed before the relay, by cause", "cause",
          &ListenerMetrics::handshake_failures);
  labeled("warm_backend_takes_total", "Sessions that found a warm verified backend leg (hit) or opened one (miss)",
          "result", &ListenerMetrics::warm_takes);
  labeled("backend_tls_resumptions_total",
          "Backend TLS legs that resumed a session verified earlier (hit), had none to offer (miss), or were refused "
          "it (rejected)",
          "result", &ListenerMetrics::backend_resumption);
  labeled("warm_backend_recycled_total", "Warm backend legs closed unused, by why", "reason",
          &ListenerMetrics::warm_recycled);
  out << "# HELP dbward_warm_backends_ready Warm verified backend legs ready for the next client\n"
         "# TYPE dbward_warm_backends_ready gauge\n";
  for (const ListenerRuntime* l : listeners_) {
    if (l->config.warm_backends) {
      out << "dbward_warm_backends_ready{" << labels(l) << "} " << l->metrics.warm_ready.load() << "\n";
    }
  }
  out << "# HELP dbward_policy_violations_total Connections that broke a policy rule, by rule and action\n"
         "# TYPE dbward_policy_violations_total counter\n";
  for (const ListenerRuntime* l : listeners_) {
    for (const auto& [value, count] : l->metrics.policy.Snapshot()) {
      size_t bar = value.rfind('|');
      out << "dbward_policy_violations_total{" << labels(l) << ",rule=\"" << Escape(value.substr(0, bar))
          << "\",action=\"" << value.substr(bar + 1) << "\"} " << count << "\n";
    }
  }

  out << "# HELP dbward_handshake_seconds Time from accept to relay start (both TLS legs, protocol set-up, "
         "authentication up to the relay)\n# TYPE dbward_handshake_seconds histogram\n";
  for (const ListenerRuntime* l : listeners_) {
    uint64_t counts[Histogram::kBuckets];
    uint64_t count;
    double sum;
    l->metrics.handshake_seconds.Snapshot(counts, &count, &sum);
    for (size_t i = 0; i < Histogram::kBuckets; i++) {
      out << "dbward_handshake_seconds_bucket{" << labels(l) << ",le=\"" << Histogram::kBounds[i] << "\"} "
          << counts[i] << "\n";
    }
    out << "dbward_handshake_seconds_bucket{" << labels(l) << ",le=\"+Inf\"} " << count << "\n";
    out << "dbward_handshake_seconds_sum{" << labels(l) << "} " << sum << "\n";
    out << "dbward_handshake_seconds_count{" << labels(l) << "} " << count << "\n";
  }

  out << "# HELP dbward_backend_certificate_expiry_seconds Seconds until the backend certificate seen last "
         "expires\n# TYPE dbward_backend_certificate_expiry_seconds gauge\n";
  int64_t now = static_cast<int64_t>(time(nullptr));
  for (const ListenerRuntime* l : listeners_) {
    int64_t not_after = l->metrics.backend_cert_not_after.load();
    if (not_after != 0) {
      out << "dbward_backend_certificate_expiry_seconds{" << labels(l) << "} " << (not_after - now) << "\n";
    }
  }
  out << "# HELP dbward_backend_ready Whether the backend was reachable with a valid certificate at the last "
         "check\n# TYPE dbward_backend_ready gauge\n";
  for (const ListenerRuntime* l : listeners_) {
    std::string why;
    out << "dbward_backend_ready{" << labels(l) << "} " << (l->BackendHealthy(&why) ? 1 : 0) << "\n";
  }
  if (reloader_ != nullptr) {
    out << "# HELP dbward_tls_reloads_total Successful reloads of certificates and keys\n"
           "# TYPE dbward_tls_reloads_total counter\ndbward_tls_reloads_total "
        << reloader_->reloads() << "\n";
    out << "# HELP dbward_tls_reload_failures_total Reloads that kept the previous material\n"
           "# TYPE dbward_tls_reload_failures_total counter\ndbward_tls_reload_failures_total "
        << reloader_->failures() << "\n";
  }
  out << "# HELP dbward_admin_evicted_total Admin connections closed to make room because they sent no request\n"
         "# TYPE dbward_admin_evicted_total counter\ndbward_admin_evicted_total "
      << evicted_.load() << "\n";
  out << "# HELP dbward_audit_dropped_total Audit events dropped because the writer fell behind\n"
         "# TYPE dbward_audit_dropped_total counter\ndbward_audit_dropped_total "
      << Audit().dropped() << "\n";
  return out.str();
}

}  // namespace dbward::proxy

// The admin HTTP listener: GET /metrics (Prometheus text format), /healthz
// (the process is alive and its loops turn), /startup (every backend checked
// once), /report (the migration report page from the audit file) and /readyz (listeners bound, not draining, and every backend
// reachable with a certificate that validates).
// It runs on the main thread's loop, away from the relay workers.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/ops/runtime.h"

namespace dbward::proxy {

class Reloader;

// Answers whether dbward could open a verified backend connection now.
using BackendCheck = std::function<bool(const ListenerRuntime&, std::string* reason)>;
// Renders the migration report page from the audit file (on a thread of
// libuv's pool); false and *error when it cannot.
using ReportRenderer = std::function<bool(std::string* html, std::string* error)>;

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, std::vector<ListenerRuntime*> listeners, const Reloader* reloader,
              BackendCheck check, uint64_t check_interval_ms);
  ~AdminServer();
  bool Listen(const std::string& host, uint16_t port, std::string* error);
  uint16_t port() const { return port_; }
  void SetDraining() { draining_ = true; }
  // GET /report; without one, /report says why there is none.
  void SetReport(ReportRenderer render) { report_ = std::move(render); }
  void Close();

  std::string RenderMetrics() const;
  // 200 and "ready", or 503 and the reasons.
  int Ready(std::string* body) const;
  // 200 once every listener's backend has been checked at least once
  // (whatever the verdict), 503 before: a startupProbe.
  int Started(std::string* body) const;

 private:
  struct Conn;
  struct ReportJob;
  void Handle(Conn* conn);
  void Respond(Conn* conn, int code, const std::string& type, const std::string& body, const std::string& headers = "");
  ReportRenderer report_;
  static void OnConnection(uv_stream_t* server, int status);
  void CloseConn(Conn* c);
  void StopWaiting(Conn* c);
  size_t connections_ = 0;     // loop thread only
  std::list<Conn*> waiting_;   // accepted, no complete request yet; oldest first
  std::atomic<uint64_t> evicted_{0};
  void CheckLoop();

  uv_loop_t* loop_;
  uv_tcp_t server_;
  bool listening_ = false;
  uint16_t port_ = 0;
  std::vector<ListenerRuntime*> listeners_;
  const Reloader* reloader_;
  BackendCheck check_;
  uint64_t check_interval_ms_;
  std::atomic<bool> draining_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread checker_;
};

}  // namespace dbward::proxy

#include "proxy/commands/run.h"

#include <uv.h>

#include <csignal>
#include <memory>
#include <vector>

#include "proxy/backend/backend_probe.h"
#include "proxy/backend/instance_query.h"
#include "proxy/backend/verifier_store.h"
#include "proxy/commands/report.h"
#include "proxy/common/address.h"
#include "proxy/common/log.h"
#include "proxy/common/tls_text.h"
#include "proxy/datapath/sql_browser.h"
#include "proxy/datapath/worker.h"
#include "proxy/ops/admin.h"
#include "proxy/ops/audit_sink.h"
#include "proxy/ops/reloader.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {
namespace {

struct MainLoop {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint, sighup;
  uv_timer_t drain_timer, check_timer, reload_timer, delay_timer;
  Reloader* reloader = nullptr;
  AdminServer* admin = nullptr;
  SqlBrowser* browser = nullptr;
  std::vector<std::unique_ptr<Worker>>* workers;
  uint64_t drain_timeout_ms;
  uint64_t shutdown_delay_ms;
  int signum = 0;
  bool stopping = false;  // a signal came: /readyz fails
  bool draining = false;  // listeners closed, open sessions finishing
};

size_t ActiveSessions(const MainLoop* m) {
  size_t n = 0;
  for (const auto& w : *m->workers) n += w->session_count();
  return n;
}

void CloseMainHandles(MainLoop* m) {
  if (m->admin != nullptr) m->admin->Close();
  if (m->browser != nullptr) m->browser->Close();
  for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&m->sigterm), reinterpret_cast<uv_handle_t*>(&m->sigint),
                         reinterpret_cast<uv_handle_t*>(&m->sighup), reinterpret_cast<uv_handle_t*>(&m->drain_timer),
                         reinterpret_cast<uv_handle_t*>(&m->check_timer),
                         reinterpret_cast<uv_handle_t*>(&m->reload_timer),
                         reinterpret_cast<uv_handle_t*>(&m->delay_timer)}) {
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  }
}

const char* SignalName(int signum) { return signum == SIGINT ? "SIGINT" : "SIGTERM"; }

void StartDrain(MainLoop* m) {
  uv_timer_stop(&m->delay_timer);
  m->draining = true;
  // Clients asking for an instance port now would find no listener.
  if (m->browser != nullptr) m->browser->Close();
  LOG_INFO("{}: no longer accepting; draining {} open sessions (up to {} ms)", SignalName(m->signum),
           ActiveSessions(m), m->drain_timeout_ms);
  for (auto& w : *m->workers) w->RequestDrain();
  uv_timer_start(&m->drain_timer, [](uv_timer_t* t) {
    auto* mm = static_cast<MainLoop*>(t->data);
    size_t left = ActiveSessions(mm);
    if (left > 0) LOG_WARN("drain timeout reached: closing {} open sessions", left);
    for (auto& w : *mm->workers) w->RequestAbort();
  }, m->drain_timeout_ms, 0);
  uv_timer_start(&m->check_timer, [](uv_timer_t* t) {
    auto* mm = static_cast<MainLoop*>(t->data);
    if (ActiveSessions(mm) == 0) CloseMainHandles(mm);
  }, 50, 50);
}

void OnSignal(uv_signal_t* handle, int signum) {
  auto* m = static_cast<MainLoop*>(handle->data);
  if (m->draining) {
    LOG_WARN("second {}: closing {} open sessions now", SignalName(signum), ActiveSessions(m));
    for (auto& w : *m->workers) w->RequestAbort();
    return;
  }
  if (m->stopping) {
    LOG_WARN("second {}: skipping the rest of shutdown_delay", SignalName(signum));
    StartDrain(m);
    return;
  }
  m->stopping = true;
  m->signum = signum;
  if (m->admin != nullptr) m->admin->SetDraining();
  if (m->shutdown_delay_ms == 0) {
    StartDrain(m);
    return;
  }
  LOG_INFO("{}: /readyz now fails; still accepting for {} ms (shutdown_delay), then draining {} open sessions",
           SignalName(signum), m->shutdown_delay_ms, ActiveSessions(m));
  uv_timer_start(&m->delay_timer, [](uv_timer_t* t) { StartDrain(static_cast<MainLoop*>(t->data)); },
                 m->shutdown_delay_ms, 0);
}

// /readyz's active check: the protocol's own TLS upgrade (the engine's
// backend half, as sessions run it) and a verified handshake with the
// listener's current backend context, without sending credentials.
bool CheckBackend(const ListenerRuntime& l, std::string* reason) {
  const ListenerConfig& c = l.config;
  probe::Target t;
  t.protocol = c.protocol;
  t.pg_direct = c.backend_tls.direct;
  t.tds_strict = c.backend_tls.tds_strict;
  t.host = c.backend_host;
  t.port = c.backend_port;
  if (!c.backend_instance.empty()) {
    std::string why;
    t.port = probe::QueryInstancePort(c.backend_host, c.backend_instance, std::chrono::milliseconds(c.timeouts.connect_ms),
                                      &why);
    if (t.port == 0) {
      *reason = why;
      return false;
    }
  }
  t.server_name = c.backend_tls.server_name;
  t.timeout = std::chrono::milliseconds(c.timeouts.connect_ms);
  t.proxy_local = c.backend_proxy_protocol;
  probe::Attempt a = probe::ProbeBackend(t, l.tls()->backend, probe::Completion::kUpgrade);
  if (a.ok()) {
    *reason = "backend " + BackendText(c) + " verified (" + a.version + ")";
    return true;
  }
  *reason = a.stage == probe::Attempt::kHandshake ? ExplainHandshake(a.diagnosis, "backend_tls").Sentence() : a.message;
  return false;
}

}  // namespace

int RunServer(const Config& config) {
  SetLogLevel(config.log_level);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::unique_ptr<ListenerRuntime>> listeners;
  ConfigError cerr;
  if (!BuildListenerRuntimes(config, &listeners, &cerr)) {
    LOG_ERROR("{}", cerr.ToString());
    return 1;
  }
  std::string error;
  if (!Audit().Open(config.audit, &error)) {
    LOG_ERROR("{}", error);
    return 1;
  }
  std::vector<ListenerRuntime*> raw;
  for (auto& l : listeners) {
    if (l->config.scram) l->verifiers = std::make_unique<backend::VerifierStore>(l.get());
    raw.push_back(l.get());
  }
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < config.workers; i++) {
    auto w = std::make_unique<Worker>(i, config.workers, raw);
    if (!w->Bind(&error)) {
      LOG_ERROR("{}", error);
      Audit().Close();
      return 1;
    }
    workers.push_back(std::move(w));
  }
  for (auto& l : listeners) {
    const ListenerConfig& c = l->config;
    const tls::TrustStore& trust = l->tls()->backend->trust();
    LOG_INFO("listener {} ({}) listening on {}:{} -> {} (TLS verify-{}, server name {}, {}) with {} workers", c.name,
             ProtocolName(c.protocol), c.listen_host, l->bound_port, BackendText(c),
             c.backend_tls.full_verify ? "full" : "ca", c.backend_tls.server_name,
             TrustDescription(trust.path, trust.system), config.workers);
  }

  MainLoop m;
  uv_loop_init(&m.loop);
  m.workers = &workers;
  m.drain_timeout_ms = config.drain_timeout_ms;
  m.shutdown_delay_ms = config.shutdown_delay_ms;
  uv_signal_init(&m.loop, &m.sigterm);
  uv_signal_init(&m.loop, &m.sigint);
  uv_timer_init(&m.loop, &m.drain_timer);
  uv_timer_init(&m.loop, &m.check_timer);
  uv_timer_init(&m.loop, &m.delay_timer);
  m.sigterm.data = m.sigint.data = m.drain_timer.data = m.check_timer.data = m.delay_timer.data = &m;
  uv_signal_start(&m.sigterm, OnSignal, SIGTERM);
  uv_signal_start(&m.sigint, OnSignal, SIGINT);
  Reloader reloader(config, raw);
  m.reloader = &reloader;
  uv_signal_init(&m.loop, &m.sighup);
  uv_timer_init(&m.loop, &m.reload_timer);
  m.sighup.data = m.reload_timer.data = &m;
  uv_signal_start(&m.sighup, [](uv_signal_t* h, int) {
    static_cast<MainLoop*>(h->data)->reloader->Check(true);
  }, SIGHUP);
  // Files are polled rather than watched: inotify misses the symlink swap a
  // Kubernetes Secret update does on some kernels and volume types.
  uv_timer_start(&m.reload_timer, [](uv_timer_t* t) {
    static_cast<MainLoop*>(t->data)->reloader->Check(false);
  }, config.reload_interval_ms, config.reload_interval_ms);

  std::unique_ptr<AdminServer> admin;
  if (!config.admin_host.empty()) {
    admin = std::make_unique<AdminServer>(&m.loop, raw, &reloader, CheckBackend, config.admin_check_interval_ms);
    if (!admin->Listen(config.admin_host, config.admin_port, &error)) {
      LOG_ERROR("{}", error);
      admin.reset();
      Audit().Close();
      return 1;
    }
    if (config.audit != "stdout" && config.audit != "stderr" && config.audit != "off") {
      admin->SetReport([path = config.audit](std::string* html, std::string* error) {
        ReportOptions o;
        o.path = path;
        o.format = ReportFormat::kHtml;
        std::string err;
        int rc = RunReport(o, html, &err);
        if (rc != 0) *error = err.empty() ? "cannot make the report" : err;
        return rc == 0;
      });
    }
    m.admin = admin.get();
    LOG_INFO("admin listening on {}:{} (/metrics, /healthz, /startup, /readyz, /report)", config.admin_host, admin->port());
  }
  std::unique_ptr<SqlBrowser> browser;
  if (config.sql_browser) {
    browser = std::make_unique<SqlBrowser>(&m.loop, *config.sql_browser, raw);
    if (!browser->Start(&error)) {
      LOG_ERROR("{}", error);
      Audit().Close();
      return 1;
    }
    m.browser = browser.get();
  }
  for (auto& w : workers) w->Start();
  uv_run(&m.loop, UV_RUN_DEFAULT);
  for (auto& w : workers) w->Join();
  uv_loop_close(&m.loop);
  workers.clear();
  uint64_t total = 0;
  for (auto& l : listeners) total += l->total.load();
  LOG_INFO("stopped after {} sessions", total);
  Audit().Close();
  return 0;
}

}  // namespace dbward::proxy

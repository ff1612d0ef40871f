// dbward's metrics as Prometheus really reads them: promtool lints the
// exposition and the shipped alert rules, a real Prometheus scrapes the admin
// port and answers queries, the shipped alerts fire on real data, and every
// expression of the Grafana dashboard runs and names only metrics that a live
// scrape has.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "harness.h"
#include "tls_backend.h"

namespace dbward::testing {
namespace {

std::string Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"curl", "-s", "--max-time", "5"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  RunCommand(argv, &out);
  return out;
}

// Every dbward_[a-z_]+ word in a PromQL expression (std::regex trips GCC 12's
// -Wmaybe-uninitialized under -O2 -fsanitize, so this is scanned by hand).
std::vector<std::string> MetricNames(const std::string& expr) {
  std::vector<std::string> names;
  for (size_t at = expr.find("dbward_"); at != std::string::npos; at = expr.find("dbward_", at)) {
    size_t end = at + 7;
    while (end < expr.size() && ((expr[end] >= 'a' && expr[end] <= 'z') || expr[end] == '_')) end++;
    if (end > at + 7) names.push_back(expr.substr(at, end - at));
    at = end;
  }
  return names;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    if (access("/usr/bin/prometheus", X_OK) != 0 || access("/usr/bin/promtool", X_OK) != 0) {
      FAIL() << "Debian's prometheus package is not installed (scripts/install-deps.sh installs it)";
    }
    for (auto* b : {&good_, &wrong_}) {
      TlsBackend::Options o;
      o.mode = TlsBackend::Mode::kEcho;
      o.cert = Cert(b == &good_ ? "server.pem" : "wrongname.pem");
      o.key = Cert(b == &good_ ? "server.key" : "wrongname.key");
      *b = std::make_unique<TlsBackend>(o);
      std::string error;
      ASSERT_TRUE((*b)->Start(&error)) << error;
    }
    auto listener = [](const std::string& name, uint16_t port) {
      return "  - name: " + name + "\n    protocol: tcp\n    listen: 127.0.0.1:0\n    backend: 127.0.0.1:" +
             std::to_string(port) + "\n    backend_tls:\n      ca_file: " + Cert("ca.pem") +
             "\n      server_name: localhost\n";
    };
    ASSERT_TRUE(d_.Start(std::string("admin:\n  listen: 127.0.0.1:0\n  backend_check_interval: 1h\n") +
                             "workers: 1\nlisteners:\n" + listener("orders", good_->port()) +
                             listener("erp", wrong_->port()) + "log:\n  audit: ${AUDIT}\n",
                         2))
        << d_.Log();
    admin_ = d_.admin_port();
    // Two relayed plaintext sessions.
    for (int i = 0; i < 2; i++) {
      int fd = ConnectLoopback(d_.port(0));
      ASSERT_GE(fd, 0);
      std::string got;
      ASSERT_TRUE(SendAll(fd, "ping", 4));
      ASSERT_EQ(RecvAll(fd, &got, 4, 5000), 4);
      close(fd);
    }
    ASSERT_EQ(d_.WaitAuditEvents(2).size(), 2u) << d_.Log();
  }
  // One client on erp, whose backend certificate names another host.
  void RefuseOnce() {
    int fd = ConnectLoopback(d_.port(1));
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "ping", 4));
    std::string got;
    RecvAll(fd, &got, 4, 5000);
    close(fd);
    ASSERT_EQ(d_.WaitAuditEvents(3).size(), 3u) << d_.Log();
  }
  void TearDown() override {
    if (prometheus_ > 0) {
      kill(prometheus_, SIGTERM);
      if (WaitPid(prometheus_, std::chrono::seconds(10)) < 0) kill(prometheus_, SIGKILL);
    }
  }
  std::string Metrics() { return Curl({"http://127.0.0.1:" + std::to_string(admin_) + "/metrics"}); }

  void StartPrometheus(const std::string& consoles = "") {
    web_ = FreePort();
    std::string cfg = dir_.Write("prometheus.yml",
                                 "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                 "rule_files:\n  - " + SourceDir() + "/deploy/prometheus/alerts.yaml\n"
                                 "scrape_configs:\n  - job_name: dbward\n    static_configs:\n"
                                 "      - targets: ['127.0.0.1:" + std::to_string(admin_) + "']\n");
    prometheus_ = SpawnBackground({"/usr/bin/prometheus", "--config.file=" + cfg,
                                   "--storage.tsdb.path=" + dir_.path() + "/tsdb",
                                   "--web.listen-address=127.0.0.1:" + std::to_string(web_), "--log.level=warn",
                                   "--web.console.templates=" + (consoles.empty() ? dir_.path() : consoles),
                                   "--web.console.libraries=" + (consoles.empty() ? dir_.path() : consoles)},
                                  dir_.path() + "/prometheus.log");
    ASSERT_GT(prometheus_, 0);
  }
  // An instant query through Prometheus's HTTP API; the raw JSON answer.
  std::string Query(const std::string& promql) {
    return Curl({"-G", "http://127.0.0.1:" + std::to_string(web_) + "/api/v1/query", "--data-urlencode",
                 "query=" + promql});
  }
  // Polls until the answer contains needle: Prometheus scrapes every second
  // and evaluates rules every second; this waits for those, not for time.
  std::string QueryUntil(const std::string& promql, const std::string& needle) {
    std::string got;
    for (int i = 0; i < 150; i++) {
      got = Query(promql);
      if (got.find(needle) != std::string::npos) break;
      usleep(100'000);
    }
    return got;
  }

  std::unique_ptr<TlsBackend> good_, wrong_;
  DbwardProcess d_;
  TempDir dir_;
  uint16_t admin_ = 0, web_ = 0;
  pid_t prometheus_ = -1;
};

TEST_F(PrometheusTest, PromtoolAcceptsTheExpositionAndTheShippedRules) {
  RefuseOnce();
  std::string exposition = dir_.Write("metrics.txt", Metrics());
  std::string out;
  EXPECT_EQ(RunCommand({"sh", "-c", "promtool check metrics < " + exposition}, &out), 0) << out;
  EXPECT_EQ(RunCommand({"promtool", "check", "rules", SourceDir() + "/deploy/prometheus/alerts.yaml"}, &out), 0) << out;
  EXPECT_NE(out.find("SUCCESS: 5 rules found"), std::string::npos) << out;
  EXPECT_EQ(RunCommand({"promtool", "test", "rules", SourceDir() + "/deploy/prometheus/alerts_test.yaml"}, &out), 0)
      << out;
}

TEST_F(PrometheusTest, ARealPrometheusScrapesAndTheAlertsFireOnRealData) {
  StartPrometheus();
  std::string up = QueryUntil("up{job=\"dbward\"}", "\"1\"]");
  ASSERT_NE(up.find("\"1\"]"), std::string::npos) << up << ReadFileText(dir_.path() + "/prometheus.log");
  // The refusal comes after Prometheus saw the series at 0, as in production
  // (dbward exports verification causes at 0 from the start for this).
  std::string zero = QueryUntil("dbward_handshake_failures_total{listener=\"erp\",cause=\"name_mismatch\"}", "\"0\"]");
  ASSERT_NE(zero.find("\"0\"]"), std::string::npos) << zero;
  RefuseOnce();
  // Sessions by outcome, bypass by reason, days to expiry: as dbward counted them.
  std::string ok = QueryUntil("sum by (outcome) (dbward_sessions_outcome_total{listener=\"orders\"})", "\"2\"]");
  EXPECT_NE(ok.find("{\"outcome\":\"ok\"},\"value\":["), std::string::npos) << ok;
  EXPECT_NE(ok.find("\"2\"]"), std::string::npos) << ok;
  std::string bypass = Query("dbward_trust_bypass_total{listener=\"orders\"}");
  EXPECT_NE(bypass.find("\"bypass_reason\":\"plaintext\""), std::string::npos) << bypass;
  EXPECT_NE(bypass.find("\"2\"]"), std::string::npos) << bypass;
  std::string refused =
      QueryUntil("dbward_sessions_outcome_total{listener=\"erp\",outcome=\"backend_tls_failed\"}", "\"1\"]");
  EXPECT_NE(refused.find("\"1\"]"), std::string::npos) << refused;
  // The certificate's own notAfter, through Prometheus, in days.
  std::string days = Query("floor(dbward_backend_certificate_expiry_seconds{listener=\"orders\"} / 86400)");
  std::string enddate;
  RunCommand({"sh", "-c", "echo $(( ($(date -d \"$(openssl x509 -in " + Cert("server.pem") +
                              " -noout -enddate | cut -d= -f2)\" +%s) - $(date +%s)) / 86400 ))"},
             &enddate);
  enddate.erase(enddate.find_last_not_of("\n") + 1);
  EXPECT_NE(days.find("\"" + enddate + "\"]"), std::string::npos) << days << " vs " << enddate;
  // The shipped rule sees the refused certificate on erp (and nothing on orders).
  std::string alerts = QueryUntil("ALERTS{alertname=\"DbwardBackendVerificationFailing\",alertstate=\"firing\"}",
                                  "\"cause\":\"name_mismatch\"");
  EXPECT_NE(alerts.find("\"listener\":\"erp\""), std::string::npos) << alerts;
  EXPECT_EQ(alerts.find("\"listener\":\"orders\""), std::string::npos) << alerts;
}

TEST_F(PrometheusTest, EveryDashboardExpressionRunsAndNamesOnlyLiveMetrics) {
  RefuseOnce();
  std::string exprs;
  ASSERT_EQ(RunCommand({"python3", "-c",
                        "import json,sys\n"
                        "d=json.load(open(sys.argv[1]))\n"
                        "for p in d['panels']:\n"
                        "  for t in p.get('targets',[]): print(t['expr'])\n"
                        "for v in d['templating']['list']:\n"
                        "  q=v.get('query')\n"
                        "  if isinstance(q,dict): print(q['query'])\n",
                        SourceDir() + "/deploy/grafana/dbward-dashboard.json"},
                       &exprs),
            0)
      << exprs;
  std::set<std::string> live;
  std::istringstream scrape(Metrics());
  for (std::string line; std::getline(scrape, line);) {
    if (line.rfind("# TYPE ", 0) == 0) live.insert(line.substr(7, line.find(' ', 7) - 7));
    if (line.empty() || line[0] == '#') continue;
    live.insert(line.substr(0, line.find_first_of("{ ")));
  }
  ASSERT_GT(live.size(), 10u);
  StartPrometheus();
  ASSERT_NE(QueryUntil("up{job=\"dbward\"}", "\"1\"]").find("\"1\"]"), std::string::npos);
  std::istringstream in(exprs);
  int checked = 0;
  for (std::string e; std::getline(in, e);) {
    if (e.empty()) continue;
    for (const std::string& metric : MetricNames(e)) {
      EXPECT_TRUE(live.count(metric)) << metric << " is not in a live scrape (" << e << ")";
    }
    if (e.rfind("label_values(", 0) == 0) continue;  // Grafana's own function, not PromQL
    std::string q = ReplaceAll(ReplaceAll(e, "$__rate_interval", "1m"), "$listener", ".*");
    std::string answer = Query(q);
    EXPECT_NE(answer.find("\"status\":\"success\""), std::string::npos) << q << "\n" << answer;
    checked++;
  }
  EXPECT_GE(checked, 15);
}

// Grafana is not in Debian 12: the shipped dashboard's panels (same PromQL,
// titles and grid) are laid out as a Prometheus console template and drawn
// by the real Prometheus from this run's scrapes, in headless Chromium. The
// screenshot is what the README shows.
TEST_F(PrometheusTest, TheDashboardsPanelsAreDrawnByPrometheusInAHeadlessBrowser) {
  if (access("/usr/bin/chromium", X_OK) != 0) {
    FAIL() << "Debian's chromium is not installed (scripts/install-deps.sh installs it)";
  }
  std::string consoles = dir_.path() + "/consoles";
  std::string out;
  ASSERT_EQ(RunCommand({"mkdir", "-p", consoles}, &out), 0);
  ASSERT_EQ(RunCommand({"python3", SourceDir() + "/tests/integration/grafana_console.py",
                        SourceDir() + "/deploy/grafana/dbward-dashboard.json", consoles + "/dbward.html", "15"},
                       &out),
            0)
      << out;
  StartPrometheus(consoles);
  ASSERT_NE(QueryUntil("up{job=\"dbward\"}", "\"1\"]").find("\"1\"]"), std::string::npos);
  // Traffic over a few scrapes, so that rates have points to draw: relayed
  // sessions, and refusals on the listener whose backend names another host.
  const std::string rate = "sum(rate(dbward_sessions_total[1m]))";
  for (int i = 0; i < 60 && Query(rate).find("\"value\":[") == std::string::npos; i++) {
    int fd = ConnectLoopback(d_.port(i % 2));
    ASSERT_GE(fd, 0);
    std::string got;
    ASSERT_TRUE(SendAll(fd, "ping", 4));
    RecvAll(fd, &got, 4, 5000);
    close(fd);
    usleep(100'000);
  }
  ASSERT_NE(Query(rate).find("\"value\":["), std::string::npos) << Query(rate);

  const std::string url = "http://127.0.0.1:" + std::to_string(web_) + "/consoles/dbward.html";
  auto chromium = [&](const std::string& what) {
    std::string cmd = "timeout 90 /usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run "
                      "--user-data-dir='" + dir_.path() + "/chromium' --window-size=1400,1750 "
                      "--virtual-time-budget=15000 " + what + " '" + url + "' 2>'" + dir_.path() + "/chromium.log'";
    std::string result;
    EXPECT_EQ(RunCommand({"sh", "-c", cmd}, &result), 0) << result << ReadFileText(dir_.path() + "/chromium.log");
    return result;
  };
  std::string dom = chromium("--dump-dom");
  // Every panel is on the page; every graph panel was drawn (Rickshaw makes
  // an <svg> per graph) and the value panels carry Prometheus's answers.
  std::string titles;
  ASSERT_EQ(RunCommand({"python3", "-c",
                        "import json,sys\n"
                        "for p in json.load(open(sys.argv[1]))['panels']: print(p['type'] + '|' + p['title'])\n",
                        SourceDir() + "/deploy/grafana/dbward-dashboard.json"},
                       &titles),
            0);
  std::istringstream in(titles);
  int graphs = 0;
  for (std::string line; std::getline(in, line);) {
    std::string title = ReplaceAll(line.substr(line.find('|') + 1), "&", "&amp;");
    EXPECT_NE(dom.find("<h2>" + title + "</h2>"), std::string::npos) << title;
    graphs += line.rfind("timeseries|", 0) == 0;
  }
  ASSERT_GE(graphs, 8);
  size_t svgs = 0;
  for (size_t at = dom.find("<svg"); at != std::string::npos; at = dom.find("<svg", at + 1)) svgs++;
  EXPECT_GE(svgs, static_cast<size_t>(graphs)) << dom;
  EXPECT_NE(dom.find("listener=orders"), std::string::npos) << "the backend certificate's days, per listener";
  EXPECT_EQ(dom.find("Error"), std::string::npos) << dom;

  std::string artifacts = std::string(DBWARD_BINARY).substr(0, std::string(DBWARD_BINARY).rfind('/')) + "/test-artifacts";
  ASSERT_EQ(RunCommand({"mkdir", "-p", artifacts}, &out), 0);
  chromium("--screenshot='" + artifacts + "/dashboard.png'");
  std::string png = ReadFileText(artifacts + "/dashboard.png");
  ASSERT_GT(png.size(), 20'000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

}  // namespace
}  // namespace dbward::testing

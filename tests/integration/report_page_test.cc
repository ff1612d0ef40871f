// The migration report as a page: GET /report on the admin port and `dbward
// report --format html`, loaded in a real headless Chromium. Its rows match
// the audit file that real TDS clients produced, client-supplied names never
// become markup, and a screenshot is kept as a test artifact.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <tuple>

#include "harness.h"
#include "tests/fixtures/tds_server.h"

namespace dbward::testing {
namespace {

const char kPayload[] = "<img src=x onerror=alert(1)>\"'&";

class ReportPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
    if (access("/usr/bin/chromium", X_OK) != 0) {
      FAIL() << "Debian's chromium is not installed (scripts/install-deps.sh installs it)";
    }
    TdsServer::Options o;
    o.cert = Cert("server.pem");
    o.key = Cert("server.key");
    fixture_ = std::make_unique<TdsServer>(o);
    std::string error;
    ASSERT_TRUE(fixture_->Start(&error)) << error;
    ASSERT_TRUE(d_.Start(std::string("admin:\n  listen: 127.0.0.1:0\n  backend_check_interval: 1h\n") +
                         "workers: 1\nlisteners:\n  - name: erp-mssql\n    protocol: tds\n    listen: 127.0.0.1:0\n"
                         "    backend: 127.0.0.1:" + std::to_string(fixture_->port()) +
                         "\n    backend_tls:\n      ca_file: " + Cert("ca.pem") + "\n      server_name: localhost\n" +
                         "    client_tls:\n      cert_file: " + Cert("proxy.pem") + "\n      key_file: " +
                         Cert("proxy.key") + "\nlog:\n  audit: ${AUDIT}\n"))
        << d_.Log();
    admin_ = d_.admin_port();
    std::string out;
    // jTDS by default (plaintext), FreeTDS encryption = off (login-only) and
    // = require (TLS), tedious encrypt: false with a hostile application name.
    ASSERT_EQ(Run({"timeout", "60", "java", "-cp", std::string(DBWARD_JTDS_JAR) + ":" + DBWARD_JAVA_CLASSES,
                   "JtdsClient", "jdbc:jtds:sqlserver://127.0.0.1:" + std::to_string(d_.port()) + ";ssl=off",
                   "sa_user", "sa_pw", "SELECT 1"}),
              0);
    for (const char* enc : {"off", "off", "require"}) {
      std::string conf = dir_.Write("freetds.conf", "[global]\n[dbward]\n\thost = 127.0.0.1\n\tport = " +
                                                        std::to_string(d_.port()) +
                                                        "\n\ttds version = 7.4\n\tencryption = " + enc + "\n");
      std::string input = dir_.Write("input.sql", "SELECT 1\ngo\n");
      ASSERT_EQ(Run({"sh", "-c", "FREETDSCONF='" + conf + "' timeout 30 tsql -S dbward -U sa_user -P sa_pw < '" +
                                     input + "'"}),
                0);
    }
    std::string app;
    for (const char* c = kPayload; *c != '\0'; c++) app += *c == '"' ? std::string("\\\"") : std::string(1, *c);
    RunCommand({"timeout", "60", "node", SourceDir() + "/tests/fixtures/tds_tedious_client.js",
                "{\"tedious\":\"" + SourceDir() + "/tests/integration/node/node_modules/tedious\",\"port\":" +
                    std::to_string(d_.port()) + ",\"user\":\"sa_user\",\"password\":\"sa_pw\",\"appName\":\"" + app +
                    "\",\"queries\":[\"SELECT 1\"],\"encrypt\":false}"},
               &out);
    ASSERT_NE(out.find("\"ok\":true"), std::string::npos) << out;
    events_ = d_.WaitAuditEvents(5);
    ASSERT_EQ(events_.size(), 5u) << d_.Log();
  }
  int Run(const std::vector<std::string>& argv) {
    std::string out;
    int rc = RunCommand(argv, &out);
    if (rc != 0) ADD_FAILURE() << out;
    return rc;
  }
  // Chromium's DOM after loading url (scripts could not run: the page has
  // none, and its Content-Security-Policy forbids them).
  std::string Dom(const std::string& url, const std::string& screenshot = "") {
    std::vector<std::string> argv = {"timeout", "60", "/usr/bin/chromium", "--headless", "--no-sandbox",
                                     "--disable-gpu", "--no-first-run", "--user-data-dir=" + dir_.path() + "/chromium",
                                     "--window-size=1400,1000"};
    if (!screenshot.empty()) {
      argv.push_back("--screenshot=" + screenshot);
    } else {
      argv.push_back("--dump-dom");
    }
    argv.push_back(url);
    // Chromium's own log (D-Bus complaints and the like) goes to a file; the
    // DOM is what it prints on stdout.
    std::string cmd;
    for (const std::string& a : argv) cmd += "'" + a + "' ";
    std::string out;
    EXPECT_EQ(RunCommand({"sh", "-c", cmd + "2>'" + dir_.path() + "/chromium.log'"}, &out), 0)
        << out << ReadFileText(dir_.path() + "/chromium.log");
    return out;
  }
  // Per (application, library) of the listener: sessions, and those that
  // bypassed trust; only groups with a bypass are rows of the page.
  std::map<std::pair<std::string, std::string>, std::pair<int, int>> Expected() {
    std::map<std::pair<std::string, std::string>, std::pair<int, int>> groups;
    for (auto& e : events_) {
      auto& g = groups[{e["application"], e["client_library"]}];
      g.first++;
      if (e["trust_bypass"] == "true") g.second++;
    }
    std::erase_if(groups, [](const auto& g) { return g.second.second == 0; });
    return groups;
  }
  void ExpectRows(const std::string& dom) {
    auto groups = Expected();
    ASSERT_EQ(groups.size(), 3u);  // jTDS, FreeTDS, tedious
    size_t rows = 0;
    for (size_t at = dom.find("<tr class=\"group\""); at != std::string::npos; at = dom.find("<tr class=\"group\"", at + 1)) {
      rows++;
    }
    EXPECT_EQ(rows, groups.size()) << dom;
    for (const auto& [key, sessions] : groups) {
      if (key.first == kPayload) continue;  // checked as text below
      std::string row = "data-listener=\"erp-mssql\" data-application=\"" + key.first + "\" data-library=\"" +
                        key.second + "\" data-sessions=\"" + std::to_string(sessions.first) +
                        "\" data-bypass-sessions=\"" + std::to_string(sessions.second) + "\"";
      EXPECT_NE(dom.find(row), std::string::npos) << row << "\n" << dom;
    }
    // The hostile name is text, never an element.
    EXPECT_EQ(dom.find("<img"), std::string::npos) << dom;
    EXPECT_NE(dom.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos) << dom;
    // Clients are (address, application, library, user): tsql's three
    // sessions are one client; the TLS one did not bypass.
    EXPECT_NE(dom.find("<b id=\"clients\">3</b>"), std::string::npos);
    EXPECT_NE(dom.find("<b id=\"bypass-clients\">3</b>"), std::string::npos);
    EXPECT_NE(dom.find("<b id=\"sessions\">5</b>"), std::string::npos);
    EXPECT_NE(dom.find("<b id=\"bypass-sessions\">4</b>"), std::string::npos);
    // Each says what to change in its own driver's words.
    EXPECT_NE(dom.find("jTDS: ssl=authenticate"), std::string::npos);
    EXPECT_NE(dom.find("FreeTDS: encryption = require (freetds.conf)"), std::string::npos);
    EXPECT_NE(dom.find("tedious: encrypt: true"), std::string::npos);
    EXPECT_NE(dom.find("<svg class=\"chart\""), std::string::npos);
  }

  std::unique_ptr<TdsServer> fixture_;
  DbwardProcess d_;
  TempDir dir_;
  uint16_t admin_ = 0;
  std::vector<JsonFields> events_;
};

TEST_F(ReportPageTest, AdminReportPageInChromiumMatchesTheAuditFile) {
  std::string headers;
  RunCommand({"curl", "-s", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:" + std::to_string(admin_) + "/report"},
             &headers);
  EXPECT_NE(headers.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << headers;
  EXPECT_NE(headers.find("Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'"), std::string::npos)
      << headers;
  ExpectRows(Dom("http://127.0.0.1:" + std::to_string(admin_) + "/report"));
  // The screenshot the README shows, kept with the build's test artifacts.
  std::string artifacts = std::string(DBWARD_BINARY).substr(0, std::string(DBWARD_BINARY).rfind('/')) + "/test-artifacts";
  std::string out;
  RunCommand({"mkdir", "-p", artifacts}, &out);
  Dom("http://127.0.0.1:" + std::to_string(admin_) + "/report", artifacts + "/report.png");
  std::string png = ReadFileText(artifacts + "/report.png");
  ASSERT_GT(png.size(), 10'000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

TEST_F(ReportPageTest, OfflineHtmlReportOfTheSameFileHasTheSameRows) {
  std::string html;
  ASSERT_EQ(RunCommand({DBWARD_BINARY, "report", d_.dir().path() + "/audit.jsonl", "--format", "html"}, &html), 0)
      << html;
  std::string page = dir_.Write("report.html", html);
  ExpectRows(Dom("file://" + page));
}

}  // namespace
}  // namespace dbward::testing

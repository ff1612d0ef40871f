#include "proxy/commands/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proxy/commands/cli.h"
#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"
#include "proxy/common/time.h"

namespace dbward::proxy {
namespace {

// Events with EmitAudit's field set (and worker.cc's for `refused`), as the
// proxy writes them. Line 10 is what a crash mid-write leaves behind.
constexpr std::string_view kAudit =
    // 1: psql over plaintext to a postgres listener.
    R"({"ts":"2026-11-27T04:09:08.875Z","event":"session","session_id":257,"listener":"orders-pg","protocol":"postgres","client":"10.0.0.7:51234","backend":"db.internal:5432","backend_addr":"10.0.9.5:5432","backend_server_name":"db.internal","client_encryption":"none","trust_bypass":true,"bypass_reason":"plaintext","client_tls":null,"client_cipher":null,"client_alpn":null,"user":"app","database":"orders","application":"psql","client_library":null,"client_host":null,"client_protocol_version":"3.0","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"ok","error":null,"cause":null,"note":null,"bytes_up":812,"bytes_down":4410,"duration_ms":35,"worker":1})"
    "\n"
    // 2: MySQL over TLS.
    R"({"ts":"2026-11-27T04:10:00.000Z","event":"session","session_id":513,"listener":"billing-my","protocol":"mysql","client":"10.0.0.8:40000","backend":"mysql.internal:3306","backend_addr":"10.0.9.6:3306","backend_server_name":"mysql.internal","client_encryption":"tls","trust_bypass":false,"bypass_reason":null,"client_tls":"TLSv1.3","client_cipher":"TLS_AES_256_GCM_SHA384","client_alpn":null,"user":"billing","database":"billing","application":"billing-svc","client_library":"libmysql 8.0.36","client_host":null,"client_protocol_version":"10","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"ok","error":null,"cause":null,"note":null,"bytes_up":300,"bytes_down":900,"duration_ms":12,"worker":2})"
    "\n"
    // 3: SQL Server client that encrypts only the login packet.
    R"({"ts":"2026-11-27T04:11:00.000Z","event":"session","session_id":769,"listener":"erp-sql","protocol":"tds","client":"10.0.1.20:49801","backend":"sql.internal:1433","backend_addr":"10.0.9.7:1433","backend_server_name":"sql.internal","client_encryption":"login-only","trust_bypass":true,"bypass_reason":"login-only-encryption","client_tls":"TLSv1.2","client_cipher":"ECDHE-RSA-AES256-GCM-SHA384","client_alpn":null,"user":"erp","database":"ERP","application":"ERP Client, v2","client_library":"ODBC","client_host":"WKS-017","client_protocol_version":"7.4","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"ok","error":null,"cause":null,"note":null,"bytes_up":1500,"bytes_down":52000,"duration_ms":800,"worker":3})"
    "\n"
    // 4: TDS 8.0 strict client whose backend leg failed.
    R"({"ts":"2026-11-27T04:12:00.000Z","event":"session","session_id":1025,"listener":"erp-sql","protocol":"tds","client":"10.0.1.21:50000","backend":"sql.internal:1433","backend_addr":"10.0.9.7:1433","backend_server_name":"sql.internal","client_encryption":"tls-strict","trust_bypass":false,"bypass_reason":null,"client_tls":"TLSv1.3","client_cipher":"TLS_AES_256_GCM_SHA384","client_alpn":"tds/8.0","user":"reporting","database":"ERP","application":"Report \"Builder\"","client_library":"Microsoft SqlClient Data Provider","client_host":"RPT-1","client_protocol_version":"8.0","backend_tls":null,"backend_cipher":null,"backend_verified":false,"backend_verify":"full","outcome":"backend_tls_failed","error":"backend certificate is not trusted","cause":"untrusted","note":null,"bytes_up":0,"bytes_down":0,"duration_ms":20,"worker":0})"
    "\n"
    // 5: a raw TCP listener, IPv6 client.
    R"({"ts":"2026-11-27T04:13:00.000Z","event":"session","session_id":1281,"listener":"legacy","protocol":"tcp","client":"[fd00::5]:41000","backend":"legacy.internal:7000","backend_addr":"10.0.9.8:7000","backend_server_name":"legacy.internal","client_encryption":"none","trust_bypass":true,"bypass_reason":"plaintext","client_tls":null,"client_cipher":null,"client_alpn":null,"user":null,"database":null,"application":null,"client_library":null,"client_host":null,"client_protocol_version":null,"backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"ca","outcome":"ok","error":null,"cause":null,"note":null,"bytes_up":10,"bytes_down":10,"duration_ms":1,"worker":1})"
    "\n"
    // 6: turned away at max_connections.
    R"({"ts":"2026-11-27T04:14:00.000Z","event":"refused","listener":"orders-pg","protocol":"postgres","client":"10.0.0.9:60000","outcome":"refused","error":"max_connections reached"})"
    "\n"
    // 7: a canary session: the client accepted a certificate it should not have.
    R"({"ts":"2026-11-27T04:15:00.000Z","event":"session","session_id":1537,"listener":"orders-pg","protocol":"postgres","client":"10.0.0.10:5555","backend":"db.internal:5432","backend_addr":"10.0.9.5:5432","backend_server_name":"db.internal","client_encryption":"tls","trust_bypass":true,"bypass_reason":"accepted-untrusted-certificate","validates":false,"client_tls":"TLSv1.3","client_cipher":"TLS_AES_128_GCM_SHA256","client_alpn":null,"user":"batch","database":"orders","application":"nightly-etl","client_library":null,"client_host":null,"client_protocol_version":"3.0","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"ok","error":null,"cause":null,"note":"canary certificate","bytes_up":50,"bytes_down":60,"duration_ms":5,"worker":1})"
    "\n"
    // 8: the MySQL client again, proven to validate certificates.
    R"({"ts":"2026-11-27T04:16:00.000Z","event":"session","session_id":1793,"listener":"billing-my","protocol":"mysql","client":"10.0.0.8:40001","backend":"mysql.internal:3306","backend_addr":"10.0.9.6:3306","backend_server_name":"mysql.internal","client_encryption":"tls","trust_bypass":false,"bypass_reason":null,"validates":true,"client_tls":"TLSv1.3","client_cipher":"TLS_AES_256_GCM_SHA384","client_alpn":null,"user":"billing","database":"billing","application":"billing-svc","client_library":"libmysql 8.0.36","client_host":null,"client_protocol_version":"10","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"ok","error":null,"cause":null,"note":null,"bytes_up":300,"bytes_down":900,"duration_ms":12,"worker":2})"
    "\n"
    // 9: psql again, later, reset mid-session.
    R"({"ts":"2026-11-27T05:00:00.000Z","event":"session","session_id":2049,"listener":"orders-pg","protocol":"postgres","client":"10.0.0.7:51300","backend":"db.internal:5432","backend_addr":"10.0.9.5:5432","backend_server_name":"db.internal","client_encryption":"none","trust_bypass":true,"bypass_reason":"plaintext","client_tls":null,"client_cipher":null,"client_alpn":null,"user":"app","database":"orders","application":"psql","client_library":null,"client_host":null,"client_protocol_version":"3.0","backend_tls":"TLSv1.3","backend_cipher":"TLS_AES_128_GCM_SHA256","backend_verified":true,"backend_verify":"full","outcome":"reset","error":"client reset the connection","cause":"reset","note":null,"bytes_up":100,"bytes_down":20,"duration_ms":900,"worker":1})"
    "\n"
    // 10: cut short.
    R"({"ts":"2026-11-27T05:01:00.000Z","event":"session","session_id":2305,"listener")"
    "\n";

class ReportTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : files_) unlink(path.c_str());
  }

  std::string WriteFile(std::string_view contents) {
    std::string path = ::testing::TempDir() + "dbward_report_XXXXXX";
    int fd = mkstemp(path.data());
    EXPECT_GE(fd, 0);
    files_.push_back(path);
    EXPECT_EQ(write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    close(fd);
    return path;
  }

  // Runs `dbward report ARGS...`; "FILE" in args is replaced by the path.
  int Run(std::vector<std::string> args, std::string_view contents = kAudit) {
    std::string path;
    for (std::string& a : args) {
      if (a == "FILE") {
        if (path.empty()) path = WriteFile(contents);
        a = path;
      }
    }
    path_ = path;
    args.insert(args.begin(), "report");
    out_.clear();
    err_.clear();
    return RunCommandLine(args, &out_, &err_);
  }

  std::vector<std::string> files_;
  std::string path_;
  std::string out_;
  std::string err_;
};

constexpr char kHint[] = "Run 'dbward report --help' for the options.\n";

constexpr std::string_view kTable =
    "CLIENT     LISTENER    PROTOCOL  APPLICATION       LIBRARY                            USER       VERSION  ENCRYPTION  LOGIN7_FIRST  BYPASS  BYPASS_REASONS                  VALIDATES  SESSIONS  FAILED  REFUSED  ROUTED_TO  FIRST_SEEN                LAST_SEEN\n"
    "10.0.0.7   orders-pg   postgres  psql              -                                  app        3.0      none        -             true    plaintext                       unknown           2       1        0  -          2026-11-27T04:09:08.875Z  2026-11-27T05:00:00.000Z\n"
    "10.0.0.10  orders-pg   postgres  nightly-etl       -                                  batch      3.0      tls         -             true    accepted-untrusted-certificate  false             1       0        0  -          2026-11-27T04:15:00.000Z  2026-11-27T04:15:00.000Z\n"
    "10.0.1.20  erp-sql     tds       ERP Client, v2    ODBC                               erp        7.4      login-only  -             true    login-only-encryption           unknown           1       0        0  -          2026-11-27T04:11:00.000Z  2026-11-27T04:11:00.000Z\n"
    "fd00::5    legacy      tcp       -                 -                                  -          -        none        -             true    plaintext                       unknown           1       0        0  -          2026-11-27T04:13:00.000Z  2026-11-27T04:13:00.000Z\n"
    "10.0.0.8   billing-my  mysql     billing-svc       libmysql 8.0.36                    billing    10       tls         -             false   -                               true              2       0        0  -          2026-11-27T04:10:00.000Z  2026-11-27T04:16:00.000Z\n"
    "10.0.1.21  erp-sql     tds       Report \"Builder\"  Microsoft SqlClient Data Provider  reporting  8.0      tls-strict  -             false   -                               unknown           1       1        0  -          2026-11-27T04:12:00.000Z  2026-11-27T04:12:00.000Z\n"
    "10.0.0.9   orders-pg   postgres  -                 -                                  -          -        -           -             false   -                               unknown           0       0        1  -          2026-11-27T04:14:00.000Z  2026-11-27T04:14:00.000Z\n"
    "7 clients, 4 bypass trust: 2 plaintext, 1 login-only, 1 accept untrusted certificates\n";

constexpr std::string_view kJson =
    "[\n"
    R"(  {"client":"10.0.0.7","listener":"orders-pg","protocol":"postgres","application":"psql","client_library":null,"user":"app","client_protocol_version":["3.0"],"client_encryption":["none"],"login7_first":null,"trust_bypass":true,"bypass_reasons":["plaintext"],"validates":null,"sessions":2,"failed":1,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:09:08.875Z","last_seen":"2026-11-27T05:00:00.000Z"},)" "\n"
    R"(  {"client":"10.0.0.10","listener":"orders-pg","protocol":"postgres","application":"nightly-etl","client_library":null,"user":"batch","client_protocol_version":["3.0"],"client_encryption":["tls"],"login7_first":null,"trust_bypass":true,"bypass_reasons":["accepted-untrusted-certificate"],"validates":false,"sessions":1,"failed":0,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:15:00.000Z","last_seen":"2026-11-27T04:15:00.000Z"},)" "\n"
    R"(  {"client":"10.0.1.20","listener":"erp-sql","protocol":"tds","application":"ERP Client, v2","client_library":"ODBC","user":"erp","client_protocol_version":["7.4"],"client_encryption":["login-only"],"login7_first":null,"trust_bypass":true,"bypass_reasons":["login-only-encryption"],"validates":null,"sessions":1,"failed":0,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:11:00.000Z","last_seen":"2026-11-27T04:11:00.000Z"},)" "\n"
    R"(  {"client":"fd00::5","listener":"legacy","protocol":"tcp","application":null,"client_library":null,"user":null,"client_protocol_version":[],"client_encryption":["none"],"login7_first":null,"trust_bypass":true,"bypass_reasons":["plaintext"],"validates":null,"sessions":1,"failed":0,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:13:00.000Z","last_seen":"2026-11-27T04:13:00.000Z"},)" "\n"
    R"(  {"client":"10.0.0.8","listener":"billing-my","protocol":"mysql","application":"billing-svc","client_library":"libmysql 8.0.36","user":"billing","client_protocol_version":["10"],"client_encryption":["tls"],"login7_first":null,"trust_bypass":false,"bypass_reasons":[],"validates":true,"sessions":2,"failed":0,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:10:00.000Z","last_seen":"2026-11-27T04:16:00.000Z"},)" "\n"
    R"(  {"client":"10.0.1.21","listener":"erp-sql","protocol":"tds","application":"Report \"Builder\"","client_library":"Microsoft SqlClient Data Provider","user":"reporting","client_protocol_version":["8.0"],"client_encryption":["tls-strict"],"login7_first":null,"trust_bypass":false,"bypass_reasons":[],"validates":null,"sessions":1,"failed":1,"refused":0,"routed_to":[],"first_seen":"2026-11-27T04:12:00.000Z","last_seen":"2026-11-27T04:12:00.000Z"},)" "\n"
    R"(  {"client":"10.0.0.9","listener":"orders-pg","protocol":"postgres","application":null,"client_library":null,"user":null,"client_protocol_version":[],"client_encryption":[],"login7_first":null,"trust_bypass":false,"bypass_reasons":[],"validates":null,"sessions":0,"failed":0,"refused":1,"routed_to":[],"first_seen":"2026-11-27T04:14:00.000Z","last_seen":"2026-11-27T04:14:00.000Z"})" "\n"
    "]\n";

constexpr std::string_view kCsvHeader =
    "client,listener,protocol,application,client_library,user,client_protocol_version,client_encryption,l"
    "ogin7_first,trust_bypass,bypass_reasons,validates,sessions,failed,refused,routed_to,first_seen,last_seen\r\n";

constexpr std::string_view kCsvRows =
    "10.0.0.7,orders-pg,postgres,psql,,app,3.0,none,,true,plaintext,unknown,2,1,0,,2026-11-27T04:09:08.875Z,2026-11-27T05:00:00.000Z\r\n"
    "10.0.0.10,orders-pg,postgres,nightly-etl,,batch,3.0,tls,,true,accepted-untrusted-certificate,false,1,0,0,,2026-11-27T04:15:00.000Z,2026-11-27T04:15:00.000Z\r\n"
    "10.0.1.20,erp-sql,tds,\"ERP Client, v2\",ODBC,erp,7.4,login-only,,true,login-only-encryption,unknown,1,0,0,,2026-11-27T04:11:00.000Z,2026-11-27T04:11:00.000Z\r\n"
    "fd00::5,legacy,tcp,,,,,none,,true,plaintext,unknown,1,0,0,,2026-11-27T04:13:00.000Z,2026-11-27T04:13:00.000Z\r\n"
    "10.0.0.8,billing-my,mysql,billing-svc,libmysql 8.0.36,billing,10,tls,,false,,true,2,0,0,,2026-11-27T04:10:00.000Z,2026-11-27T04:16:00.000Z\r\n"
    "10.0.1.21,erp-sql,tds,\"Report \"\"Builder\"\"\",Microsoft SqlClient Data Provider,reporting,8.0,tls-strict,,false,,unknown,1,1,0,,2026-11-27T04:12:00.000Z,2026-11-27T04:12:00.000Z\r\n"
    "10.0.0.9,orders-pg,postgres,,,,,,,false,,unknown,0,0,1,,2026-11-27T04:14:00.000Z,2026-11-27T04:14:00.000Z\r\n";

// With no rows the columns are as wide as their titles.
constexpr std::string_view kEmptyTable =
    "CLIENT  LISTENER  PROTOCOL  APPLICATION  LIBRARY  USER  VERSION  ENCRYPTION  LOGIN7_FIRST  BYPASS  BYPASS_REASONS  VALIDATES  SESSIONS  FAILED  REFUSED  ROUTED_TO  FIRST_SEEN  LAST_SEEN\n"
    "0 clients, 0 bypass trust: 0 plaintext, 0 login-only, 0 accept untrusted certificates\n";

// The first field of every CSV data row: the row order.
std::vector<std::string> CsvClients(const std::string& csv) {
  std::vector<std::string> clients;
  size_t pos = csv.find("\r\n") + 2;
  while (pos < csv.size()) {
    clients.push_back(csv.substr(pos, csv.find(',', pos) - pos));
    pos = csv.find("\r\n", pos) + 2;
  }
  return clients;
}

// --- output formats ---------------------------------------------------------

TEST_F(ReportTest, TableListsBypassersFirstThenTheRest) {
  ASSERT_EQ(Run({"FILE"}), 0);
  EXPECT_EQ(out_, kTable);
}

TEST_F(ReportTest, TableIsTheDefaultFormat) {
  ASSERT_EQ(Run({"FILE", "--format", "table"}), 0);
  EXPECT_EQ(out_, kTable);
}

TEST_F(ReportTest, Json) {
  ASSERT_EQ(Run({"--format", "json", "FILE"}), 0);
  EXPECT_EQ(out_, kJson);
}

TEST_F(ReportTest, CsvQuotesCommasAndQuotes) {
  ASSERT_EQ(Run({"FILE", "--format=csv"}), 0);
  EXPECT_EQ(out_, std::string(kCsvHeader) + std::string(kCsvRows));
}

TEST_F(ReportTest, CsvQuotesNewlines) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                R"({"event":"session","client":"10.0.0.1:1","application":"two\nlines","client_encryption":"tls"})"
                "\n"),
            0);
  EXPECT_EQ(out_, std::string(kCsvHeader) + "10.0.0.1,,,\"two\nlines\",,,,tls,,false,,unknown,1,0,0,,,\r\n");
}

TEST_F(ReportTest, EmptyFile) {
  ASSERT_EQ(Run({"FILE"}, ""), 0);
  EXPECT_EQ(out_, kEmptyTable);
  ASSERT_EQ(Run({"FILE", "--format", "json"}, ""), 0);
  EXPECT_EQ(out_, "[]\n");
  ASSERT_EQ(Run({"FILE", "--format", "csv"}, ""), 0);
  EXPECT_EQ(out_, kCsvHeader);
  EXPECT_EQ(err_, "");
}

// --- grouping, counting, sorting ---------------------------------------------

TEST_F(ReportTest, BypassersComeFirstBusiestFirst) {
  std::string audit;
  auto add = [&](std::string_view ip, bool bypass, int sessions) {
    for (int i = 0; i < sessions; i++) {
      audit += R"({"event":"session","client":")" + std::string(ip) + R"(:1000","trust_bypass":)" +
               (bypass ? R"(true,"bypass_reason":"plaintext"})" : "false}") + "\n";
    }
  };
  add("10.0.0.1", false, 9);
  add("10.0.0.2", true, 1);
  add("10.0.0.3", false, 3);
  add("10.0.0.4", true, 5);
  add("10.0.0.5", true, 1);
  ASSERT_EQ(Run({"FILE", "--format", "csv"}, audit), 0);
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"10.0.0.4", "10.0.0.2", "10.0.0.5", "10.0.0.1", "10.0.0.3"}));
}

TEST_F(ReportTest, SameClientOverTimeMergesEncryptionsAndReasons) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                R"({"ts":"2026-11-02T00:00:00Z","event":"session","client":"10.0.0.1:1","listener":"pg","client_encryption":"none","trust_bypass":true,"bypass_reason":"plaintext","outcome":"ok"})"
                "\n"
                R"({"ts":"2026-11-01T00:00:00Z","event":"session","client":"10.0.0.1:2","listener":"pg","client_encryption":"tls","trust_bypass":true,"bypass_reason":"accepted-expired","outcome":"timeout"})"
                "\n"
                R"({"ts":"2026-11-03T00:00:00Z","event":"session","client":"10.0.0.1:3","listener":"pg","client_encryption":"tls","trust_bypass":false,"outcome":"ok"})"
                "\n"),
            0);
  EXPECT_EQ(out_, std::string(kCsvHeader) +
                      "10.0.0.1,pg,,,,,,\"none,tls\",,true,\"accepted-expired,plaintext\",false,3,1,0,,"
                      "2026-11-01T00:00:00Z,2026-11-03T00:00:00Z\r\n");
}

// jTDS with ssl=off sends LOGIN7 first; an availability group routes
// read-only logins: both show, and the summary counts them.
TEST_F(ReportTest, Login7FirstAndRoutedTdsClients) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                R"({"event":"session","client":"10.0.2.1:1","protocol":"tds","client_library":"jTDS","client_protocol_version":"7.1","client_encryption":"none","trust_bypass":true,"bypass_reason":"plaintext","tds_prelogin":false})"
                "\n"
                R"({"event":"session","client":"10.0.2.1:2","protocol":"tds","client_library":"jTDS","client_protocol_version":"7.1","client_encryption":"tls","trust_bypass":false,"tds_prelogin":true})"
                "\n"
                R"({"event":"session","client":"10.0.2.2:1","protocol":"tds","client_library":"Tedious","client_protocol_version":"7.4","client_encryption":"tls","trust_bypass":false,"tds_prelogin":true,"routed_to":"replica-2.corp:1433"})"
                "\n"),
            0);
  EXPECT_EQ(out_, std::string(kCsvHeader) +
                      "10.0.2.1,,tds,,jTDS,,7.1,\"none,tls\",true,true,plaintext,unknown,2,0,0,,,\r\n"
                      "10.0.2.2,,tds,,Tedious,,7.4,tls,false,false,,unknown,1,0,0,replica-2.corp:1433,,\r\n");
  ASSERT_EQ(Run({"FILE"}, "{\"event\":\"session\",\"client\":\"10.0.2.1:1\",\"tds_prelogin\":false}\n"
                          "{\"event\":\"session\",\"client\":\"10.0.2.2:1\",\"routed_to\":\"r:1\"}\n"),
            0);
  EXPECT_NE(out_.find("tds: 1 send LOGIN7 without PRELOGIN (they cannot negotiate encryption; jTDS: ssl=require), 1 "
                      "routed by the server (dbward followed)\n"),
            std::string::npos)
      << out_;
}

TEST_F(ReportTest, ValidatesTrueWinsOverAnAcceptedCertificate) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                R"({"event":"session","client":"10.0.0.1:1","trust_bypass":true,"bypass_reason":"accepted-wrong-name"})"
                "\n"
                R"({"event":"session","client":"10.0.0.1:2","trust_bypass":false,"validates":true})"
                "\n"),
            0);
  EXPECT_EQ(out_, std::string(kCsvHeader) + "10.0.0.1,,,,,,,,,true,accepted-wrong-name,true,2,0,0,,,\r\n");
}

TEST_F(ReportTest, NullCountsAsAbsentAndOldEventsAreFine) {
  ASSERT_EQ(Run({"FILE"},
                R"({"event":"session","client":"10.0.0.1:1","user":null,"application":null,"validates":null,"trust_bypass":null,"bypass_reason":null,"outcome":null,"ts":null})"
                "\n"
                R"({"client":"10.0.0.1:2"})"
                "\n"),
            0);
  EXPECT_EQ(out_,
            "CLIENT    LISTENER  PROTOCOL  APPLICATION  LIBRARY  USER  VERSION  ENCRYPTION  LOGIN7_FIRST  BYPASS  BYPASS_REASONS  VALIDATES  SESSIONS  FAILED  REFUSED  ROUTED_TO  FIRST_SEEN  LAST_SEEN\n"
            "10.0.0.1  -         -         -            -        -     -        -           -             false   -               unknown           2       0        0  -          -           -\n"
            "1 clients, 0 bypass trust: 0 plaintext, 0 login-only, 0 accept untrusted certificates\n");
  EXPECT_EQ(err_, "");
}

TEST_F(ReportTest, ClientAddressesWithoutPorts) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                R"({"event":"session","client":"[::1]:5432"})" "\n"
                R"({"event":"session","client":"unix"})" "\n"
                R"({"event":"session","client":"192.0.2.1:7"})" "\n"
                R"({"event":"session","client":"192.0.2.1:8"})" "\n"),
            0);
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"192.0.2.1", "::1", "unix"}));
}

TEST_F(ReportTest, TableEscapesTerminalControlCharacters) {
  ASSERT_EQ(Run({"FILE"}, R"({"event":"session","client":"10.0.0.1:1","user":"x\u001b[2Jy\u009bz\tw"})" "\n"), 0);
  EXPECT_NE(out_.find(R"(x\u001b[2Jy\u009bz\u0009w)"), std::string::npos) << out_;
  EXPECT_EQ(out_.find('\x1b'), std::string::npos);
  ASSERT_EQ(Run({"FILE", "--format", "json"}, R"({"event":"session","client":"10.0.0.1:1","user":"x\u001by"})" "\n"),
            0);
  EXPECT_NE(out_.find(R"("user":"x\u001by")"), std::string::npos) << out_;
}

// --- invalid lines ------------------------------------------------------------

TEST_F(ReportTest, InvalidLineIsReportedWithItsNumber) {
  ASSERT_EQ(Run({"FILE"}), 0);
  EXPECT_EQ(err_, "dbward report: " + path_ + ":10: invalid audit line: column 80: expected ':' after key\n" +
                      "dbward report: 1 of 10 lines skipped as invalid\n");
  EXPECT_EQ(out_, kTable);
}

TEST_F(ReportTest, EachKindOfInvalidLine) {
  ASSERT_EQ(Run({"FILE", "--format", "csv"},
                "not json\n"
                R"({"event":"session","client":"10.0.0.1:1","trust_bypass":"true"})" "\n"
                R"({"event":"session","client":"10.0.0.1:1","user":7})" "\n"
                R"({"event":"session","ts":"yesterday"})" "\n"
                R"({"event":"session","event":"refused"})" "\n"
                R"({"event":"session","tags":["a"]})" "\n"
                R"({"event":"session"} {})" "\n"
                R"(["event"])" "\n"
                "\n"
                "  \r\n"
                R"({"event":"session","client":"10.0.0.1:1"})" "\r\n"
                R"({"event":"session","client":"10.0.0.2:1"})"),
            0);
  EXPECT_EQ(err_,
            "dbward report: " + path_ + ":1: invalid audit line: column 1: expected '{'\n" +
                "dbward report: " + path_ + ":2: invalid audit line: field \"trust_bypass\" is not a boolean\n" +
                "dbward report: " + path_ + ":3: invalid audit line: field \"user\" is not a string\n" +
                "dbward report: " + path_ + ":4: invalid audit line: field \"ts\" is not an ISO 8601 time\n" +
                "dbward report: " + path_ + ":5: invalid audit line: column 20: duplicate key\n" +
                "dbward report: " + path_ + ":6: invalid audit line: column 27: nested objects and arrays are not audit values\n" +
                "dbward report: " + path_ + ":7: invalid audit line: column 21: unexpected characters after the object\n" +
                "dbward report: " + path_ + ":8: invalid audit line: column 1: expected '{'\n" +
                "dbward report: 8 of 12 lines skipped as invalid\n");
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
}

TEST_F(ReportTest, ManyInvalidLinesAreCountedNotAllListed) {
  std::string audit;
  for (int i = 0; i < 25; i++) audit += "{\n";
  ASSERT_EQ(Run({"FILE", "--format", "json"}, audit), 0);
  EXPECT_EQ(out_, "[]\n");
  EXPECT_NE(err_.find(":20: invalid audit line"), std::string::npos);
  EXPECT_EQ(err_.find(":21: invalid audit line"), std::string::npos);
  EXPECT_NE(err_.find("dbward report: 5 more invalid lines not listed\n"
                      "dbward report: 25 of 25 lines skipped as invalid\n"),
            std::string::npos)
      << err_;
}

TEST_F(ReportTest, OverlongLineIsInvalid) {
  std::string audit = R"({"event":"session","client":"10.0.0.1:1","note":")" + std::string(2 << 20, 'a') + "\"}\n" +
                      R"({"event":"session","client":"10.0.0.2:1"})" + "\n";
  ASSERT_EQ(Run({"FILE", "--format", "csv"}, audit), 0);
  EXPECT_EQ(err_, "dbward report: " + path_ + ":1: invalid audit line: longer than 1048576 bytes\n" +
                      "dbward report: 1 of 2 lines skipped as invalid\n");
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"10.0.0.2"}));
}

// --- --since ------------------------------------------------------------------

TEST_F(ReportTest, SinceKeepsEventsAtOrAfterTheTime) {
  ASSERT_EQ(Run({"FILE", "--format", "csv", "--since", "2026-11-27T04:12:00Z"}), 0);
  EXPECT_EQ(out_,
            std::string(kCsvHeader) +
                "10.0.0.7,orders-pg,postgres,psql,,app,3.0,none,,true,plaintext,unknown,1,1,0,,2026-11-27T05:00:00.000Z,2026-11-27T05:00:00.000Z\r\n"
                "10.0.0.10,orders-pg,postgres,nightly-etl,,batch,3.0,tls,,true,accepted-untrusted-certificate,false,1,0,0,,2026-11-27T04:15:00.000Z,2026-11-27T04:15:00.000Z\r\n"
                "fd00::5,legacy,tcp,,,,,none,,true,plaintext,unknown,1,0,0,,2026-11-27T04:13:00.000Z,2026-11-27T04:13:00.000Z\r\n"
                "10.0.0.8,billing-my,mysql,billing-svc,libmysql 8.0.36,billing,10,tls,,false,,true,1,0,0,,2026-11-27T04:16:00.000Z,2026-11-27T04:16:00.000Z\r\n"
                "10.0.1.21,erp-sql,tds,\"Report \"\"Builder\"\"\",Microsoft SqlClient Data Provider,reporting,8.0,tls-strict,,false,,unknown,1,1,0,,2026-11-27T04:12:00.000Z,2026-11-27T04:12:00.000Z\r\n"
                "10.0.0.9,orders-pg,postgres,,,,,,,false,,unknown,0,0,1,,2026-11-27T04:14:00.000Z,2026-11-27T04:14:00.000Z\r\n");
  std::string utc = out_;
  ASSERT_EQ(Run({"FILE", "--format", "csv", "--since=2026-11-27T05:12:00+01:00"}), 0);
  EXPECT_EQ(out_, utc);
  ASSERT_EQ(Run({"FILE", "--format", "csv", "--since", "2026-11-27 04:11"}), 0);
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"10.0.0.7", "10.0.0.10", "10.0.1.20", "fd00::5", "10.0.0.8",
                                                        "10.0.1.21", "10.0.0.9"}));
}

TEST_F(ReportTest, SinceADateDropsEverythingBefore) {
  ASSERT_EQ(Run({"FILE", "--since", "2026-11-28"}), 0);
  EXPECT_EQ(out_, kEmptyTable);
  ASSERT_EQ(Run({"FILE", "--since", "2026-11-27", "--format", "csv"}), 0);
  EXPECT_EQ(out_, std::string(kCsvHeader) + std::string(kCsvRows));
}

TEST_F(ReportTest, SinceDropsEventsWithoutATime) {
  ASSERT_EQ(Run({"FILE", "--format", "csv", "--since", "2000-01-01"},
                R"({"event":"session","client":"10.0.0.1:1"})" "\n"),
            0);
  EXPECT_EQ(out_, kCsvHeader);
}

// --- usage and file errors ------------------------------------------------------

// The command line (CLI11) words usage errors; what matters here is that each
// is one, names what is wrong, and prints no report.
TEST_F(ReportTest, UsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{}, "AUDIT_FILE is required"},
      {{"--format", "json"}, "AUDIT_FILE is required"},
      {{"FILE", "--format"}, "--format: 1 required TEXT:{table,json,csv,html} missing"},
      {{"FILE", "--format", "xml"}, "--format: xml not in {table,json,csv,html}"},
      {{"FILE", "--since"}, "--since: 1 required TEXT:TIME missing"},
      {{"FILE", "--since", "last week"},
       "--since: 'last week' is not an ISO 8601 time (e.g. 2026-11-27 or 2026-11-27T04:09:08Z)"},
      {{"FILE", "--since", "2026-02-30"},
       "--since: '2026-02-30' is not an ISO 8601 time (e.g. 2026-11-27 or 2026-11-27T04:09:08Z)"},
      {{"FILE", "--verbose"}, "--verbose"},
      {{"FILE", "-x"}, "-x"},
      {{"FILE", "other.log"}, "other.log"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_EQ(Run(c.args), 2);
    EXPECT_EQ(err_.rfind("dbward report: ", 0), 0u) << err_;
    EXPECT_NE(err_.find(c.message), std::string::npos) << err_;
    EXPECT_TRUE(err_.ends_with(kHint)) << err_;
    EXPECT_EQ(out_, "");
  }
}

TEST_F(ReportTest, HelpDocumentsEveryOption) {
  EXPECT_EQ(Run({"--help"}), 0);
  for (const char* needle : {"AUDIT_FILE", "--format", "table", "json", "csv", "--since", "--policy"}) {
    EXPECT_NE(out_.find(needle), std::string::npos) << needle << "\n" << out_;
  }
  EXPECT_EQ(err_, "");
}

// --- --policy: what a policy would do to the clients of kAudit -------------

constexpr std::string_view kPolicyConfig =
    "listeners:\n"
    "  - name: orders-pg\n"
    "    protocol: postgres\n"
    "    listen: 127.0.0.1:6432\n"
    "    backend: db.internal:5432\n"
    "    backend_tls: {ca_file: ca.pem}\n"
    "    client_tls: {cert_file: p.pem, key_file: p.key}\n"
    "    canary: {sample: 0}\n"
    "    policy:\n"
    "      - name: etl\n"
    "        match: {applications: [\"nightly-*\"]}\n"
    "        require: validated\n"
    "      - name: everyone\n"
    "        match: {}\n"
    "        require: tls\n"
    "        action: deny\n"
    "        from: 2099-01-01\n"
    "  - name: erp-sql\n"
    "    protocol: tds\n"
    "    listen: 127.0.0.1:1433\n"
    "    backend: sql.internal:1433\n"
    "    backend_tls: {ca_file: ca.pem}\n"
    "    policy:\n"
    "      - match: {clients: [10.0.1.0/24]}\n"
    "        require: tls\n"
    "        action: warn\n";

TEST_F(ReportTest, PolicyPreviewsWhatItWouldDenyPerClient) {
  std::string config = WriteFile(kPolicyConfig);
  ASSERT_EQ(Run({"FILE", "--policy", config, "--format", "csv"}), 0) << err_;
  // Would-deny first (psql over plaintext twice; the ETL client that accepted
  // a canary), then would-warn (the login-only ERP client), then the rest.
  EXPECT_EQ(CsvClients(out_), (std::vector<std::string>{"10.0.0.7", "10.0.0.10", "10.0.1.20", "fd00::5", "10.0.0.8",
                                                         "10.0.1.21", "10.0.0.9"}));
  EXPECT_NE(out_.find(",policy_rules,would_deny,would_warn\r\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("2026-11-27T05:00:00.000Z,policy[2] (everyone),2,0\r\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("2026-11-27T04:15:00.000Z,policy[1] (etl),1,0\r\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("2026-11-27T04:11:00.000Z,policy[1],0,1\r\n"), std::string::npos) << out_;
  // The strict TDS client meets policy[1]; tcp and MySQL listeners are not in
  // the configuration; the refused event never reached a login.
  EXPECT_NE(out_.find("2026-11-27T04:12:00.000Z,policy[1],0,0\r\n"), std::string::npos) << out_;
  EXPECT_NE(out_.find("2026-11-27T04:14:00.000Z,,0,0\r\n"), std::string::npos) << out_;

  ASSERT_EQ(Run({"FILE", "--policy", config}), 0) << err_;
  EXPECT_NE(out_.find("policy " + config + " (every deny rule in force): 2 clients would be denied (3 sessions), "
                      "1 warned (1 sessions), of 5 sessions judged\n"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("  listener orders-pg: policy[2] (everyone) warns until 2099-01-01, then denies\n"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("  3 sessions of listeners that " + config + " does not have were not judged\n"),
            std::string::npos)
      << out_;
}

TEST_F(ReportTest, PolicyConfigErrorsSayWhere) {
  std::string config = WriteFile("listeners:\n  - name: x\n    bogus: 1\n");
  EXPECT_EQ(Run({"FILE", "--policy", config}), 2);
  EXPECT_NE(err_.find(config + ":3:5: unknown key 'bogus' in listener"), std::string::npos) << err_;
  EXPECT_EQ(out_, "");
}

TEST_F(ReportTest, UnreadableFile) {
  std::string missing = ::testing::TempDir() + "dbward_report_no_such_file";
  EXPECT_EQ(Run({missing}), 1);
  EXPECT_EQ(err_, "dbward report: cannot read " + missing + ": No such file or directory\n");
  EXPECT_EQ(out_, "");
  EXPECT_EQ(Run({"/"}), 1);
  EXPECT_EQ(err_, "dbward report: cannot read /: Is a directory\n");
  EXPECT_EQ(out_, "");
}

// --- the line parser ------------------------------------------------------------

const FlatJsonObject& Parsed(const FlatJsonResult& r) {
  static const FlatJsonObject kEmpty;
  if (const auto* e = std::get_if<FlatJsonError>(&r)) {
    ADD_FAILURE() << "column " << e->column << ": " << e->reason;
    return kEmpty;
  }
  return std::get<FlatJsonObject>(r);
}

std::string ErrorOf(std::string_view text) {
  FlatJsonResult r = ParseFlatJsonObject(text);
  const auto* e = std::get_if<FlatJsonError>(&r);
  return e == nullptr ? "ok" : std::to_string(e->column) + ": " + e->reason;
}

TEST(FlatJsonTest, ScalarsOfEachKind) {
  FlatJsonResult r = ParseFlatJsonObject(R"( {"s":"x","n":-12.5e+3,"z":0,"t":true,"f":false,"u":null} )");
  const FlatJsonObject& o = Parsed(r);
  ASSERT_EQ(o.size(), 6u);
  EXPECT_EQ(o.at("s").kind, JsonScalar::Kind::kString);
  EXPECT_EQ(o.at("s").text, "x");
  EXPECT_EQ(o.at("n").kind, JsonScalar::Kind::kNumber);
  EXPECT_EQ(o.at("n").text, "-12.5e+3");
  EXPECT_EQ(o.at("z").text, "0");
  EXPECT_TRUE(o.at("t").boolean);
  EXPECT_EQ(o.at("f").kind, JsonScalar::Kind::kBool);
  EXPECT_FALSE(o.at("f").boolean);
  EXPECT_EQ(o.at("u").kind, JsonScalar::Kind::kNull);
  EXPECT_TRUE(Parsed(ParseFlatJsonObject("{}")).empty());
}

TEST(FlatJsonTest, StringEscapes) {
  FlatJsonResult r = ParseFlatJsonObject(R"({"a":"q\"b\\s\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00\u0000","é":"ü"})");
  const FlatJsonObject& o = Parsed(r);
  EXPECT_EQ(o.at("a").text, std::string("q\"b\\s/\b\f\n\r\tA\xc3\xa9\xf0\x9f\x98\x80\0", 19));
  EXPECT_EQ(o.at("\xc3\xa9").text, "\xc3\xbc");
}

TEST(FlatJsonTest, RoundTripsJsonObject) {
  JsonObject j;
  j.Str("user", std::string_view("a\"\\\n\x01\x7f\xff", 7)).Int("n", -5).Bool("b", true).Null("x");
  FlatJsonResult r = ParseFlatJsonObject(j.Finish());
  const FlatJsonObject& o = Parsed(r);
  EXPECT_EQ(o.at("user").text, "a\"\\\n\x01\x7f\xef\xbf\xbd");
  EXPECT_EQ(o.at("n").text, "-5");
  EXPECT_TRUE(o.at("b").boolean);
  EXPECT_EQ(o.at("x").kind, JsonScalar::Kind::kNull);
}

TEST(FlatJsonTest, RejectsWhatIsNotStrictJson) {
  EXPECT_EQ(ErrorOf(""), "1: expected '{'");
  EXPECT_EQ(ErrorOf("{"), "2: expected a string key");
  EXPECT_EQ(ErrorOf(R"({"a":1,})"), "8: expected a string key");
  EXPECT_EQ(ErrorOf(R"({'a':1})"), "2: expected a string key");
  EXPECT_EQ(ErrorOf(R"({"a" 1})"), "6: expected ':' after key");
  EXPECT_EQ(ErrorOf(R"({"a":1 "b":2})"), "8: expected ',' or '}'");
  EXPECT_EQ(ErrorOf(R"({"a":01})"), "7: expected ',' or '}'");
  EXPECT_EQ(ErrorOf(R"({"a":1.})"), "8: invalid number");
  EXPECT_EQ(ErrorOf(R"({"a":-})"), "7: invalid number");
  EXPECT_EQ(ErrorOf(R"({"a":1e})"), "8: invalid number");
  EXPECT_EQ(ErrorOf(R"({"a":+1})"), "6: expected a value");
  EXPECT_EQ(ErrorOf(R"({"a":tru})"), "6: expected a value");
  EXPECT_EQ(ErrorOf(R"({"a":truex})"), "10: expected ',' or '}'");
  EXPECT_EQ(ErrorOf(R"({"a":{}})"), "6: nested objects and arrays are not audit values");
  EXPECT_EQ(ErrorOf(R"({"a":"x)"), "6: unterminated string");
  EXPECT_EQ(ErrorOf("{\"a\":\"x\ty\"}"), "8: control character in string");
  EXPECT_EQ(ErrorOf(std::string_view("{\"a\":\"\0\"}", 9)), "7: control character in string");
  EXPECT_EQ(ErrorOf(R"({"a":"\x"})"), "7: invalid escape");
  EXPECT_EQ(ErrorOf(R"({"a":"\u12"})"), "11: invalid \\u escape");
  EXPECT_EQ(ErrorOf(R"({"a":"\ud83d"})"), "7: unpaired surrogate");
  EXPECT_EQ(ErrorOf(R"({"a":"\ude00"})"), "7: unpaired surrogate");
  EXPECT_EQ(ErrorOf(R"({"a":"\ud83d\u0041"})"), "7: unpaired surrogate");
  EXPECT_EQ(ErrorOf("{\"a\":\"\xff\"}"), "7: invalid UTF-8");
  EXPECT_EQ(ErrorOf("{\"a\":\"\xc0\xaf\"}"), "7: invalid UTF-8");
  EXPECT_EQ(ErrorOf(R"({"a":1,"a":2})"), "8: duplicate key");
  EXPECT_EQ(ErrorOf(R"({"a":1}x)"), "8: unexpected characters after the object");
}

// Every prefix and every single-byte change of a real audit line either
// parses or fails at a column inside the line.
TEST(FlatJsonTest, TruncatedAndMutatedLinesNeverEscape) {
  std::string line(kAudit.substr(0, kAudit.find('\n')));
  auto check = [](std::string_view text) {
    FlatJsonResult r = ParseFlatJsonObject(text);
    if (const auto* e = std::get_if<FlatJsonError>(&r)) {
      EXPECT_GE(e->column, 1u);
      EXPECT_LE(e->column, text.size() + 1);
    }
  };
  for (size_t n = 0; n <= line.size(); n++) check(std::string_view(line).substr(0, n));
  uint32_t seed = 12345;
  for (size_t i = 0; i < line.size(); i++) {
    std::string mutated = line;
    seed = seed * 1103515245 + 12345;
    mutated[i] = static_cast<char>(seed >> 16);
    check(mutated);
  }
}

TEST(IsoTimeTest, Forms) {
  EXPECT_EQ(ParseIsoTime("1970-01-01"), 0);
  EXPECT_EQ(ParseIsoTime("1970-01-01T00:00:01Z"), 1000);
  EXPECT_EQ(ParseIsoTime("2026-11-27T04:09:08.875Z"), 1795752548875);
  EXPECT_EQ(ParseIsoTime("2026-11-27t04:09:08.8759z"), 1795752548875);
  EXPECT_EQ(ParseIsoTime("2026-11-27 04:09:08,8"), 1795752548800);
  EXPECT_EQ(ParseIsoTime("2026-11-27T05:09:08.875+01:00"), 1795752548875);
  EXPECT_EQ(ParseIsoTime("2026-11-27T03:39:08.875-0030"), 1795752548875);
  EXPECT_EQ(ParseIsoTime("2026-11-27T06:09:08.875+02"), 1795752548875);
  EXPECT_EQ(ParseIsoTime("2026-11-27T04:09"), 1795752540000);
  EXPECT_EQ(ParseIsoTime("2024-02-29"), 1709164800000);
  EXPECT_EQ(ParseIsoTime("1969-12-31T23:59:59Z"), -1000);
}

TEST(IsoTimeTest, Rejects) {
  for (const char* bad : {"", "2026", "2026-11", "2026-13-01", "2026-00-10", "2025-02-29", "2026-11-31",
                          "2026-11-27T", "2026-11-27T24:00", "2026-11-27T04:60", "2026-11-27T04:09:60",
                          "2026-11-27T04:09:08.", "2026-11-27T04:09:08Zjunk", "2026-11-27T04:09+25:00",
                          "2026-11-27Z", "26-11-27", "2026/11/27", "2026-11-27T4:09"}) {
    EXPECT_EQ(ParseIsoTime(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace dbward::proxy

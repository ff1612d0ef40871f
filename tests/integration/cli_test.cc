// The dbward command line: --version, check-config verdicts with
// FILE:LINE:COLUMN, and start-up refusing bad TLS material by name.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "harness.h"

namespace dbward::testing {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(CertDir().empty()) << kNoCerts;
  }
  std::string Config(const std::string& backend_tls_extra, const std::string& ca = "ca.pem") {
    return "listeners:\n"
           "  - name: orders\n"
           "    protocol: tcp\n"
           "    listen: 127.0.0.1:0\n"
           "    backend: db.internal:5432\n"
           "    backend_tls:\n"
           "      ca_file: " + Cert(ca) + "\n" + backend_tls_extra +
           "log:\n"
           "  audit: off\n";
  }
  TempDir dir_;
};

TEST_F(CliTest, VersionPrintsVersion) {
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "--version"}, &out), 0);
  EXPECT_EQ(out, "dbward 0.1.0\n");
}

// Every command and every option is documented in --help, and the help is
// printed on stdout with status 0.
TEST_F(CliTest, HelpDocumentsEveryCommandAndOption) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{"--help"}, {"run", "check-config", "report", "probe", "version", "--version", "dbward run --config FILE",
                    "dbward check-config FILE", "dbward report AUDIT_FILE", "dbward probe --protocol"}},
      {{"run", "--help"}, {"--config", "The configuration file", "SIGTERM"}},
      {{"check-config", "--help"}, {"FILE", "The configuration file", "certificate, key and CA"}},
      {{"probe", "--help"},
       {"--protocol", "--backend", "--ca-file", "--crl-file", "--pin-spki", "--server-name", "--tds-strict", "--direct",
        "--timeout", "--format", "Exit status: 0"}},
      {{"report", "--help"}, {"AUDIT_FILE", "--format", "--since", "--policy"}},
  };
  for (const auto& [args, needles] : cases) {
    std::vector<std::string> argv = {DBWARD_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    EXPECT_EQ(RunCommand(argv, &out), 0) << args[0];
    for (const std::string& n : needles) EXPECT_NE(out.find(n), std::string::npos) << args[0] << ": " << n << "\n" << out;
  }
}

TEST_F(CliTest, CheckConfigAcceptsGoodFile) {
  std::string path = dir_.Write("good.yaml", Config(""));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 0) << out;
  EXPECT_EQ(out, path + ": OK (1 listeners)\n");
}

TEST_F(CliTest, CheckConfigPointsAtUnknownKey) {
  std::string path = dir_.Write("bad.yaml", Config("      verfy: full\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_EQ(out.rfind(path + ":8:7: unknown key 'verfy' in backend_tls", 0), 0u) << out;
}

TEST_F(CliTest, CheckConfigExpandsEnvironmentAndNamesAnUnsetVariable) {
  std::string path = dir_.Write("env.yaml", "listeners:\n"
                                            "  - name: orders\n"
                                            "    protocol: tcp\n"
                                            "    listen: ${DBWARD_CLI_LISTEN:-127.0.0.1:0}\n"
                                            "    backend: ${DBWARD_CLI_BACKEND}\n"
                                            "    backend_tls:\n"
                                            "      ca_file: " + Cert("ca.pem") + "\n");
  unsetenv("DBWARD_CLI_BACKEND");
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_EQ(out.rfind(path + ":5:14: environment variable DBWARD_CLI_BACKEND is not set", 0), 0u) << out;
  setenv("DBWARD_CLI_BACKEND", "db.internal:5432", 1);
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 0) << out;
  EXPECT_EQ(out, path + ": OK (1 listeners)\n");
  unsetenv("DBWARD_CLI_BACKEND");
}

TEST_F(CliTest, CheckConfigRefusesToDisableVerification) {
  std::string path = dir_.Write("bad.yaml", Config("      verify: none\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":8:15: backend_tls.verify must be 'full'"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot be turned off"), std::string::npos) << out;
}

TEST_F(CliTest, CheckConfigNamesMissingCaFile) {
  std::string path = dir_.Write("bad.yaml", Config("", "no-such-ca.pem"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":7:16: listener orders: backend_tls: cannot read CA file " +
                     Cert("no-such-ca.pem") + ": No such file or directory"),
            std::string::npos)
      << out;
}

TEST_F(CliTest, CheckConfigReportsWrongKeyPasswordWithoutPrintingIt) {
  std::string path = dir_.Write(
      "bad.yaml", Config("      cert_file: " + Cert("client.pem") + "\n      key_file: " + Cert("client.key") +
                         "\n      key_password_file: " + Cert("wrong.pass") + "\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":10:26:"), std::string::npos) << out;
  EXPECT_NE(out.find("wrong password"), std::string::npos) << out;
  EXPECT_EQ(out.find("not the password"), std::string::npos) << out;
}

// A FIFO as key_password_file: refused at once by name, not waited on until
// something writes to it (a start or a reload would hang there).
TEST_F(CliTest, CheckConfigRefusesAFifoAsAPasswordFileAtOnce) {
  std::string fifo = dir_.path() + "/key.pass";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string path = dir_.Write(
      "bad.yaml", Config("      cert_file: " + Cert("client.pem") + "\n      key_file: " + Cert("client.key") +
                         "\n      key_password_file: " + fifo + "\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":10:26:"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot read key password file " + fifo + ": not a regular file"), std::string::npos) << out;
}

TEST_F(CliTest, CheckConfigReportsEncryptedKeyWithoutPassword) {
  std::string path = dir_.Write(
      "bad.yaml", Config("      cert_file: " + Cert("client.pem") + "\n      key_file: " + Cert("client.key") + "\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find("is encrypted: set key_password_file"), std::string::npos) << out;
}

TEST_F(CliTest, CheckConfigReportsKeyThatDoesNotMatchCertificate) {
  std::string path = dir_.Write(
      "bad.yaml", Config("      cert_file: " + Cert("server.pem") + "\n      key_file: " + Cert("proxy.key") + "\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find("private key " + Cert("proxy.key") + " does not match certificate " + Cert("server.pem")),
            std::string::npos)
      << out;
}

TEST_F(CliTest, CheckConfigLoadsTheCrlAndPointsAtIt) {
  std::string path = dir_.Write("bad.yaml", Config("      crl_file: " + Cert("ca.pem") + "\n"));
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":8:17: listener orders: backend_tls: cannot load CRLs from " + Cert("ca.pem") +
                     ": no X509 CRL in the file"),
            std::string::npos)
      << out;
  path = dir_.Write("good.yaml", Config("      crl_file: " + Cert("ca.crl") + "\n      pin_spki: [" +
                                        ReadFileText(Cert("server.spki")).substr(0, 44) + "]\n"));
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 0) << out;
}

TEST_F(CliTest, CheckConfigLoadsTheClientCaAndPointsAtIt) {
  std::string path = dir_.Write("bad.yaml",
                                "listeners:\n"
                                "  - name: pg\n"
                                "    protocol: postgres\n"
                                "    listen: 127.0.0.1:0\n"
                                "    backend: db.internal:5432\n"
                                "    backend_tls: {ca_file: " + Cert("ca.pem") + "}\n" +
                                "    client_tls:\n"
                                "      cert_file: " + Cert("proxy.pem") + "\n" +
                                "      key_file: " + Cert("proxy.key") + "\n" +
                                "      ca_file: " + Cert("no-such-client-ca.pem") + "\n");
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":10:16: listener pg: client_tls: cannot read client CA file " +
                     Cert("no-such-client-ca.pem")),
            std::string::npos)
      << out;
}

TEST_F(CliTest, CheckConfigPointsAtAPolicyRule) {
  // Config("") ends with the log section; the policy goes in the listener.
  std::string text = Config("");
  text.insert(text.find("log:"), "    policy:\n      - match: {}\n        require: validated\n");
  std::string path = dir_.Write("bad.yaml", text);
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "check-config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":9:9: policy rule requires validated"), std::string::npos) << out;
}

TEST_F(CliTest, RunRefusesBadConfigurationWithExitOne) {
  std::string path = dir_.Write("bad.yaml", "listeners: []\n");
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "run", "--config", path}, &out), 1);
  EXPECT_NE(out.find(path + ":1:12: listeners must be a non-empty list"), std::string::npos) << out;
}

// BoringSSL only: system OpenSSL must never be linked into the same binary.
TEST_F(CliTest, BinaryLinksBoringSslNotSystemOpenssl) {
  std::string out;
  ASSERT_EQ(RunCommand({"ldd", DBWARD_BINARY}, &out), 0) << out;
  EXPECT_NE(out.find("libssl"), std::string::npos) << out;
  EXPECT_EQ(out.find("libssl.so.3"), std::string::npos) << out;
  EXPECT_EQ(out.find("libcrypto.so.3"), std::string::npos) << out;
}

TEST_F(CliTest, UnknownCommandIsUsageError) {
  std::string out;
  EXPECT_EQ(RunCommand({DBWARD_BINARY, "frobnicate"}, &out), 2);
  EXPECT_NE(out.find("usage: dbward run --config FILE"), std::string::npos);
}

}  // namespace
}  // namespace dbward::testing

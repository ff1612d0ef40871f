#include "tls/context.h"

#include "tests/test_certs.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

namespace dbward::tls {
namespace {

// The PKI from tests/gen-test-certs.sh, found through DBWARD_TEST_CERTS.
class ContextTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_certs::Dir();
    ASSERT_FALSE(dir_.empty()) << test_certs::kMissing;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // The password as the runtime reads it from key_password_file: the file's
  // content without its trailing newline.
  std::string Password(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pw = ss.str();
    while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
    EXPECT_FALSE(pw.empty()) << "cannot read " << Path(name);
    return pw;
  }

  std::shared_ptr<Context> Server(const std::string& cert, const std::string& key,
                                  const std::string& password, LoadError* error) {
    ServerOptions o;
    o.cert = {Path(cert), Path(key), password};
    return Context::NewServer(o, error);
  }

  std::string dir_;
};

TEST_F(ContextTest, NewClientWithCaFile) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  LoadError error;
  std::shared_ptr<Context> ctx = Context::NewClient(o, &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
  EXPECT_TRUE(ctx->is_client());
  EXPECT_EQ(ctx->verify(), VerifyMode::kFull);
  EXPECT_EQ(ctx->trust().path, Path("ca.pem"));
  EXPECT_FALSE(ctx->trust().system);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->ssl_ctx()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx->ssl_ctx()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->ssl_ctx()), SSL_VERIFY_PEER);
}

TEST_F(ContextTest, NewClientKeepsVerifyModeAndMinVersion) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.verify = VerifyMode::kCa;
  o.min_version = TLS1_3_VERSION;
  LoadError error;
  std::shared_ptr<Context> ctx = Context::NewClient(o, &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
  EXPECT_EQ(ctx->verify(), VerifyMode::kCa);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->ssl_ctx()), TLS1_3_VERSION);
}

TEST_F(ContextTest, NewClientWithoutCaFileUsesSystemTrustStore) {
  std::string bundle = SystemCaBundle();
  ASSERT_FALSE(bundle.empty()) << "no system CA bundle: install ca-certificates";
  ClientOptions o;
  LoadError error;
  std::shared_ptr<Context> ctx = Context::NewClient(o, &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
  EXPECT_EQ(ctx->trust().path, bundle);
  EXPECT_TRUE(ctx->trust().system);
}

TEST_F(ContextTest, NewClientMissingCaFileNamesTheFile) {
  ClientOptions o;
  o.ca_file = Path("no-such-ca.pem");
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message(), "cannot read CA file " + Path("no-such-ca.pem") + ": No such file or directory");
}

TEST_F(ContextTest, NewClientCaFileThatIsADirectory) {
  ClientOptions o;
  o.ca_file = dir_;
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message(), "cannot read CA file " + dir_ + ": not a regular file");
}

TEST_F(ContextTest, NewClientCaFileWithoutCertificates) {
  ClientOptions o;
  o.ca_file = Path("client.pass");
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message().rfind("cannot load CA certificates from " + Path("client.pass") + ": ", 0), 0u)
      << error.Message();
}

TEST_F(ContextTest, NewClientRejectsEmptyAlpnName) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.alpn = {"postgresql", ""};
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message(), "invalid ALPN protocol name");
}

TEST_F(ContextTest, NewServerWithCertAndKey) {
  LoadError error;
  std::shared_ptr<Context> ctx = Server("server.pem", "server.key", "", &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
  EXPECT_FALSE(ctx->is_client());
  EXPECT_NE(SSL_CTX_get0_certificate(ctx->ssl_ctx()), nullptr);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->ssl_ctx()), TLS1_2_VERSION);
}

TEST_F(ContextTest, NewServerMismatchedKey) {
  LoadError error;
  EXPECT_EQ(Server("server.pem", "proxy.key", "", &error), nullptr);
  EXPECT_EQ(error.Message(), "private key " + Path("proxy.key") + " does not match certificate " +
                       Path("server.pem"));
}

TEST_F(ContextTest, NewServerMissingCertificate) {
  LoadError error;
  EXPECT_EQ(Server("no-such.pem", "server.key", "", &error), nullptr);
  EXPECT_EQ(error.Message(),
            "cannot read certificate " + Path("no-such.pem") + ": No such file or directory");
}

TEST_F(ContextTest, NewServerMissingKey) {
  LoadError error;
  EXPECT_EQ(Server("server.pem", "no-such.key", "", &error), nullptr);
  EXPECT_EQ(error.Message(),
            "cannot read private key " + Path("no-such.key") + ": No such file or directory");
}

TEST_F(ContextTest, NewServerCertificateFileWithoutCertificate) {
  LoadError error;
  EXPECT_EQ(Server("client.pass", "server.key", "", &error), nullptr);
  EXPECT_EQ(error.Message().rfind("cannot load certificate " + Path("client.pass") + ": ", 0), 0u) << error.Message();
}

TEST_F(ContextTest, LoadKeyPairNeedsBothFiles) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  LoadError error;
  EXPECT_FALSE(LoadKeyPair(ctx.get(), {Path("server.pem"), "", ""}, &error, false));
  EXPECT_EQ(error.Message(), "both a certificate and a private key are required");
}

TEST_F(ContextTest, EncryptedPkcs8KeyWithPassword) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.client_cert = {Path("client.pem"), Path("client.key"), Password("client.pass")};
  LoadError error;
  std::shared_ptr<Context> ctx = Context::NewClient(o, &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
  // A client context keeps its certificate as DER (TLS_with_buffers_method).
  EXPECT_NE(SSL_CTX_get0_chain(ctx->ssl_ctx()), nullptr);
  EXPECT_TRUE(ctx->presents_certificate());
}

TEST_F(ContextTest, EncryptedPkcs8KeyWithWrongPassword) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.client_cert = {Path("client.pem"), Path("client.key"), Password("wrong.pass")};
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message(), "cannot decrypt private key " + Path("client.key") +
                       ": wrong password");
}

TEST_F(ContextTest, EncryptedPkcs8KeyWithoutPassword) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.client_cert = {Path("client.pem"), Path("client.key"), ""};
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.Message(), "private key " + Path("client.key") + " is encrypted and no password was given");
}

TEST_F(ContextTest, TraditionalEncryptedKeyWithPassword) {
  LoadError error;
  std::shared_ptr<Context> ctx =
      Server("server.pem", "server.trad-enc.key", Password("client.pass"), &error);
  ASSERT_NE(ctx, nullptr) << error.Message();
}

TEST_F(ContextTest, TraditionalEncryptedKeyWithWrongPassword) {
  LoadError error;
  EXPECT_EQ(Server("server.pem", "server.trad-enc.key", Password("wrong.pass"), &error), nullptr);
  EXPECT_EQ(error.Message(), "cannot decrypt private key " + Path("server.trad-enc.key") +
                       ": wrong password");
}

TEST_F(ContextTest, TraditionalEncryptedKeyWithoutPassword) {
  LoadError error;
  EXPECT_EQ(Server("server.pem", "server.trad-enc.key", "", &error), nullptr);
  EXPECT_EQ(error.Message(),
            "private key " + Path("server.trad-enc.key") + " is encrypted and no password was given");
}

TEST(TlsVersionTest, ParseTlsVersion) {
  uint16_t v = 0;
  ASSERT_TRUE(ParseTlsVersion("1.2", &v));
  EXPECT_EQ(v, 0x0303);
  ASSERT_TRUE(ParseTlsVersion("1.3", &v));
  EXPECT_EQ(v, 0x0304);
  for (const char* bad : {"1.1", "1.0", "1", "", "TLSv1.2", "1.2 ", "1.30", "2"}) {
    uint16_t out = 7;
    EXPECT_FALSE(ParseTlsVersion(bad, &out)) << "accepted \"" << bad << "\"";
    EXPECT_EQ(out, 7) << bad;
  }
}

TEST(TlsVersionTest, TlsVersionName) {
  EXPECT_STREQ(TlsVersionName(0x0301), "TLSv1.0");
  EXPECT_STREQ(TlsVersionName(0x0302), "TLSv1.1");
  EXPECT_STREQ(TlsVersionName(0x0303), "TLSv1.2");
  EXPECT_STREQ(TlsVersionName(0x0304), "TLSv1.3");
  EXPECT_STREQ(TlsVersionName(0x0300), "unknown");
}

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(SystemCaBundleTest, FindsAnExistingFile) {
  ScopedEnv env("SSL_CERT_FILE", nullptr);
  std::string bundle = SystemCaBundle();
  ASSERT_NE(bundle, "") << "no system CA bundle: install ca-certificates";
  struct stat st;
  ASSERT_EQ(stat(bundle.c_str(), &st), 0) << bundle;
  EXPECT_TRUE(S_ISREG(st.st_mode)) << bundle;
  // On Debian the bundle comes from ca-certificates at the first candidate path.
  struct stat debian;
  if (stat("/etc/ssl/certs/ca-certificates.crt", &debian) == 0) {
    EXPECT_EQ(bundle, "/etc/ssl/certs/ca-certificates.crt");
  }
}

TEST(SystemCaBundleTest, SslCertFileWins) {
  ScopedEnv env("SSL_CERT_FILE", "/opt/custom/bundle.pem");
  EXPECT_EQ(SystemCaBundle(), "/opt/custom/bundle.pem");
}

}  // namespace
}  // namespace dbward::tls

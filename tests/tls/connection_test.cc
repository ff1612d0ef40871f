#include "tls/connection.h"
#include "tls/session_cache.h"
#include "tls/verified_chains.h"

#include "proxy/common/records.h"
#include "proxy/common/tls_text.h"
#include "tests/test_certs.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <memory>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace dbward::tls {

// Readable names in assertion failures (found by argument-dependent lookup).
static void PrintTo(FailureCause cause, std::ostream* os) { *os << proxy::Token(proxy::CauseOf(cause)); }
static void PrintTo(Connection::HandshakeStatus s, std::ostream* os) {
  switch (s) {
    case Connection::HandshakeStatus::kDone: *os << "kDone"; return;
    case Connection::HandshakeStatus::kWantRead: *os << "kWantRead"; return;
    case Connection::HandshakeStatus::kWantWrite: *os << "kWantWrite"; return;
    case Connection::HandshakeStatus::kFailed: *os << "kFailed"; return;
  }
}

namespace {

// The sentences are proxy/common/tls_text's; what this file checks is that
// the diagnosis they are made from carries the cause, names and dates.
std::string Explain(const Connection& c) { return proxy::ExplainHandshake(c.diagnosis(), "backend_tls").Sentence(); }


using HS = Connection::HandshakeStatus;

// One direction of an in-memory transport.
struct Pipe {
  std::deque<uint8_t> bytes;
  bool closed = false;  // the writer is gone: reads see Eof once drained
  int error = 0;        // when set, reads on an empty pipe fail with it
};

// An Io over two pipes: reads never block, they report WantRead when empty.
class MemIo : public Io {
 public:
  MemIo(Pipe* in, Pipe* out) : in_(in), out_(out) {}

  IoResult Read(std::span<uint8_t> out) override {
    if (in_->bytes.empty()) {
      if (in_->error != 0) return IoResult::Error(in_->error);
      return in_->closed ? IoResult::Eof() : IoResult::WantRead();
    }
    size_t n = std::min(out.size(), in_->bytes.size());
    std::copy_n(in_->bytes.begin(), n, out.begin());
    in_->bytes.erase(in_->bytes.begin(), in_->bytes.begin() + static_cast<ptrdiff_t>(n));
    return IoResult::Ok(n);
  }

  IoResult Write(std::span<const uint8_t> in) override {
    if (out_->closed) return IoResult::Error(EPIPE);
    out_->bytes.insert(out_->bytes.end(), in.begin(), in.end());
    return IoResult::Ok(in.size());
  }

 private:
  Pipe* in_;
  Pipe* out_;
};

bool Finished(HS s) { return s == HS::kDone || s == HS::kFailed; }

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return out;
}

class TlsConnectionTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_certs::Dir();
    ASSERT_FALSE(dir_.empty()) << test_certs::kMissing;
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string Password(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string pw = ss.str();
    while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
    return pw;
  }

  std::shared_ptr<Context> ClientCtx(ClientOptions o = {}) {
    if (o.ca_file.empty()) o.ca_file = Path("ca.pem");
    LoadError error;
    std::shared_ptr<Context> ctx = Context::NewClient(o, &error);
    EXPECT_NE(ctx, nullptr) << error.Message();
    return ctx;
  }

  std::shared_ptr<Context> ServerCtx(const std::string& cert = "server.pem",
                                     std::vector<std::string> alpn = {}) {
    ServerOptions o;
    std::string key = cert.substr(0, cert.size() - 4) + ".key";
    o.cert = {Path(cert), Path(key), ""};
    o.alpn = std::move(alpn);
    LoadError error;
    std::shared_ptr<Context> ctx = Context::NewServer(o, &error);
    EXPECT_NE(ctx, nullptr) << error.Message();
    return ctx;
  }

  // Creates both ends over the in-memory pipes.
  void Create(std::shared_ptr<Context> client_ctx, const std::string& server_name,
              std::shared_ptr<Context> server_ctx) {
    ASSERT_NE(client_ctx, nullptr);
    ASSERT_NE(server_ctx, nullptr);
    std::string error;
    client_ = Connection::NewClient(std::move(client_ctx), server_name, &client_io_, &error);
    ASSERT_NE(client_, nullptr) << error;
    server_ = Connection::NewServer(std::move(server_ctx), &server_io_, &error);
    ASSERT_NE(server_, nullptr) << error;
  }

  // Drives both handshakes until each side is done or failed (or stalls).
  void Pump() {
    for (int round = 0; round < 50 && !(Finished(client_hs_) && Finished(server_hs_)); round++) {
      if (!Finished(client_hs_)) client_hs_ = client_->Handshake();
      if (!Finished(server_hs_)) server_hs_ = server_->Handshake();
    }
  }

  void Connect(std::shared_ptr<Context> client_ctx, const std::string& server_name,
               std::shared_ptr<Context> server_ctx) {
    ASSERT_NO_FATAL_FAILURE(Create(std::move(client_ctx), server_name, std::move(server_ctx)));
    Pump();
  }

  // Forgets the connection pair so that another handshake can run.
  void Reset() {
    client_.reset();
    server_.reset();
    to_server_ = Pipe{};
    to_client_ = Pipe{};
    client_hs_ = server_hs_ = HS::kWantRead;
  }

  // Expects the client handshake to fail verification with the given cause.
  void ExpectClientFails(FailureCause cause) {
    EXPECT_EQ(client_hs_, HS::kFailed);
    EXPECT_EQ(client_->failure_cause(), cause) << client_->failure_detail();
    EXPECT_FALSE(client_->handshake_done());
    EXPECT_FALSE(client_->verified());
  }

  // Writes all of data on `from` and reads it back on `to`.
  static void Transfer(Connection* from, Connection* to, const std::vector<uint8_t>& data,
                       std::vector<uint8_t>* received) {
    size_t sent = 0;
    std::vector<uint8_t> buf(16 * 1024);
    for (int i = 0; i < 100'000 && received->size() < data.size(); i++) {
      if (sent < data.size()) {
        IoResult w = from->Write(std::span<const uint8_t>(data).subspan(sent));
        ASSERT_TRUE(w.ok() || w.blocked()) << "write failed: kind " << int(w.kind);
        sent += w.n;
      }
      for (;;) {
        IoResult r = to->Read(buf);
        if (!r.ok()) {
          ASSERT_EQ(r.kind, IoResult::kWantRead) << "read failed: kind " << int(r.kind);
          break;
        }
        received->insert(received->end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(r.n));
      }
    }
  }

  std::string dir_;
  Pipe to_server_;
  Pipe to_client_;
  MemIo client_io_{&to_client_, &to_server_};
  MemIo server_io_{&to_server_, &to_client_};
  std::unique_ptr<Connection> client_;
  std::unique_ptr<Connection> server_;
  HS client_hs_ = HS::kWantRead;
  HS server_hs_ = HS::kWantRead;
};

TEST_F(TlsConnectionTest, GoodCertificateFullVerify) {
  Connect(ClientCtx(), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_TRUE(client_->handshake_done());
  EXPECT_TRUE(server_->handshake_done());
  EXPECT_TRUE(client_->verified());
  EXPECT_EQ(client_->failure_cause(), FailureCause::kNone);
  EXPECT_EQ(client_->version(), TLS1_3_VERSION);
  EXPECT_STREQ(client_->version_name(), "TLSv1.3");
  EXPECT_STREQ(server_->version_name(), "TLSv1.3");
  EXPECT_EQ(client_->cipher(), server_->cipher());
  EXPECT_EQ(client_->alpn(), "");
  CertSummary peer = client_->PeerCertificate();
  EXPECT_TRUE(peer.present);
  EXPECT_EQ(peer.subject, "CN=localhost");
  EXPECT_EQ(peer.issuer, "CN=dbward Test Root CA,O=dbward tests");
  // The DNS name went out as SNI.
  const char* sni = SSL_get_servername(server_->ssl(), TLSEXT_NAMETYPE_host_name);
  ASSERT_NE(sni, nullptr);
  EXPECT_STREQ(sni, "localhost");
}

// A verified client leg keeps the server's chain as DER only: nothing
// parsed into X509 objects outlives the verification (an idle backend leg
// would otherwise carry about 4 KiB of them), and what is asked afterwards
// is read from the DER.
TEST_F(TlsConnectionTest, VerifiedClientLegKeepsThePeerChainAsDerOnly) {
  Connect(ClientCtx(), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_TRUE(client_->verified());
  EXPECT_EQ(SSL_get_peer_certificate(client_->ssl()), nullptr);
  EXPECT_EQ(SSL_get_peer_cert_chain(client_->ssl()), nullptr);
  const STACK_OF(CRYPTO_BUFFER)* der = SSL_get0_peer_certificates(client_->ssl());
  ASSERT_NE(der, nullptr);
  EXPECT_GE(sk_CRYPTO_BUFFER_num(der), 1u);
  EXPECT_GT(client_->PeerNotAfterUnix(), ::time(nullptr));
  EXPECT_EQ(client_->ServerEndPoint(), server_->ServerEndPoint());
  EXPECT_EQ(client_->PeerCertificate().subject, "CN=localhost");
}

// A chain validated once is not validated again for the same name while the
// verdict holds: the second handshake is a hit, and still verified.
TEST_F(TlsConnectionTest, AChainValidatedOnceIsRememberedForTheSameName) {
  std::shared_ptr<Context> ctx = ClientCtx();
  ASSERT_NE(ctx->verified_chains(), nullptr);
  Connect(ctx, "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(ctx->verified_chains()->hits(), 0u);
  EXPECT_EQ(ctx->verified_chains()->size(), 1u);
  const int64_t not_after = client_->PeerNotAfterUnix();
  Reset();
  Connect(ctx, "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
  EXPECT_EQ(ctx->verified_chains()->hits(), 1u);
  EXPECT_EQ(client_->PeerNotAfterUnix(), not_after);
  // Another name is judged on its own: 127.0.0.1 is in the certificate, a
  // name that is not fails even though the same chain was just accepted.
  Reset();
  Connect(ctx, "127.0.0.1", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(ctx->verified_chains()->hits(), 1u);
  Reset();
  Connect(ctx, "db.example.com", ServerCtx());
  ExpectClientFails(FailureCause::kNameMismatch);
  EXPECT_EQ(ctx->verified_chains()->hits(), 1u);
}

// Failures are never remembered, and another chain is never taken for one
// that was: a certificate from an untrusted issuer after a good one fails.
TEST_F(TlsConnectionTest, OnlyTheExactChainThatWasValidatedIsRemembered) {
  std::shared_ptr<Context> ctx = ClientCtx();
  Connect(ctx, "localhost", ServerCtx("selfsigned.pem"));
  ExpectClientFails(FailureCause::kUntrusted);
  Reset();
  Connect(ctx, "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  Reset();
  Connect(ctx, "localhost", ServerCtx("selfsigned.pem"));
  ExpectClientFails(FailureCause::kUntrusted);
  EXPECT_EQ(ctx->verified_chains()->hits(), 0u);
  EXPECT_EQ(ctx->verified_chains()->size(), 1u);
}

// Key share prediction: a server that takes only P-256 (PostgreSQL up to
// 17 by default) asks the first ClientHello, which offers X25519, for
// another key share; the next handshake offers P-256 first and needs no
// second round trip. A server that then wants X25519 only is learned again.
TEST_F(TlsConnectionTest, TheKeyShareAServerAskedForIsOfferedFirstNextTime) {
  std::shared_ptr<Context> ctx = ClientCtx();
  EXPECT_EQ(ctx->key_share_group(), 0);
  std::shared_ptr<Context> p256 = ServerCtx();
  ASSERT_EQ(SSL_CTX_set1_curves_list(p256->ssl_ctx(), "P-256"), 1);
  Connect(ctx, "localhost", p256);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_TRUE(client_->hello_retried());
  EXPECT_EQ(ctx->key_share_group(), SSL_CURVE_SECP256R1);
  Reset();
  Connect(ctx, "localhost", p256);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_FALSE(client_->hello_retried());
  EXPECT_EQ(SSL_get_curve_id(client_->ssl()), SSL_CURVE_SECP256R1);
  // A server that takes any group takes the P-256 share it is offered.
  Reset();
  Connect(ctx, "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_FALSE(client_->hello_retried());
  EXPECT_EQ(SSL_get_curve_id(client_->ssl()), SSL_CURVE_SECP256R1);
  std::shared_ptr<Context> x25519 = ServerCtx();
  ASSERT_EQ(SSL_CTX_set1_curves_list(x25519->ssl_ctx(), "X25519"), 1);
  Reset();
  Connect(ctx, "localhost", x25519);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_TRUE(client_->hello_retried());
  EXPECT_EQ(ctx->key_share_group(), SSL_CURVE_X25519);
}

TEST(VerifiedChainsTest, AVerdictEndsAtItsOwnLimitOrTheTtl) {
  VerifiedChains v;
  VerifiedChains::Key a{}, b{};
  b[0] = 1;
  int64_t not_after = 0;
  v.Remember(a, 1000, 1100, 5000);  // the path expires at 1100
  EXPECT_TRUE(v.Find(a, 1099, &not_after));
  EXPECT_EQ(not_after, 5000);
  EXPECT_FALSE(v.Find(a, 1100, &not_after));
  v.Remember(b, 1000, INT64_MAX, 5000);  // bounded by the TTL
  EXPECT_TRUE(v.Find(b, 1000 + VerifiedChains::kTtlSeconds - 1, &not_after));
  EXPECT_FALSE(v.Find(b, 1000 + VerifiedChains::kTtlSeconds, &not_after));
  v.Remember(a, 1000, 1000, 5000);  // already over: not kept
  EXPECT_FALSE(v.Find(a, 1000, &not_after));
  EXPECT_EQ(v.size(), 0u);
}

TEST_F(TlsConnectionTest, OneMebibyteEachWayIsByteExact) {
  Connect(ClientCtx(), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  const std::vector<uint8_t> up = Pattern(1 << 20, 1);
  const std::vector<uint8_t> down = Pattern(1 << 20, 2);
  std::vector<uint8_t> got_up, got_down;
  ASSERT_NO_FATAL_FAILURE(Transfer(client_.get(), server_.get(), up, &got_up));
  ASSERT_NO_FATAL_FAILURE(Transfer(server_.get(), client_.get(), down, &got_down));
  ASSERT_EQ(got_up.size(), up.size());
  EXPECT_TRUE(got_up == up);
  ASSERT_EQ(got_down.size(), down.size());
  EXPECT_TRUE(got_down == down);
  EXPECT_FALSE(client_->HasPendingPlaintext());
  EXPECT_FALSE(server_->HasPendingPlaintext());
}

TEST_F(TlsConnectionTest, ShutdownDeliversEofToPeer) {
  Connect(ClientCtx(), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_EQ(client_->Shutdown().kind, IoResult::kOk);
  size_t queued = to_server_.bytes.size();
  EXPECT_GT(queued, 0u);
  EXPECT_EQ(client_->Shutdown().kind, IoResult::kOk);  // sent once only
  EXPECT_EQ(to_server_.bytes.size(), queued);
  uint8_t buf[64];
  EXPECT_EQ(server_->Read(buf).kind, IoResult::kEof);
}

TEST_F(TlsConnectionTest, IpAddressSan) {
  Connect(ClientCtx(), "127.0.0.1", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
  // An IP literal is not a valid SNI host name and is not sent.
  EXPECT_EQ(SSL_get_servername(server_->ssl(), TLSEXT_NAMETYPE_host_name), nullptr);
}

TEST_F(TlsConnectionTest, FullVerifyNeedsServerName) {
  std::string error;
  EXPECT_EQ(Connection::NewClient(ClientCtx(), "", &client_io_, &error), nullptr);
  EXPECT_EQ(error, "name verification needs a server name");
}

TEST_F(TlsConnectionTest, NameMismatch) {
  Connect(ClientCtx(), "db.internal", ServerCtx());
  ExpectClientFails(FailureCause::kNameMismatch);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "the target principal name is incorrect", why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "DNS:localhost", why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "backend_tls.server_name \"db.internal\"", why);
  EXPECT_EQ(client_->leaf_certificate().subject, "CN=localhost");
  // The server hears about it as an alert against its certificate.
  EXPECT_EQ(server_hs_, HS::kFailed);
  EXPECT_EQ(server_->failure_cause(), FailureCause::kPeerRejectedUs);
}

TEST_F(TlsConnectionTest, VerifyCaAcceptsWrongName) {
  ClientOptions o;
  o.verify = VerifyMode::kCa;
  Connect(ClientCtx(o), "db.internal", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
  EXPECT_EQ(client_->failure_cause(), FailureCause::kNone);
}

TEST_F(TlsConnectionTest, VerifyCaStillChecksTheChain) {
  ClientOptions o;
  o.verify = VerifyMode::kCa;
  Connect(ClientCtx(o), "localhost", ServerCtx("selfsigned.pem"));
  ExpectClientFails(FailureCause::kUntrusted);
}

TEST_F(TlsConnectionTest, CertificateForAnotherName) {
  Connect(ClientCtx(), "localhost", ServerCtx("wrongname.pem"));
  ExpectClientFails(FailureCause::kNameMismatch);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "[DNS:db.example.net]",
                      Explain(*client_));
}

TEST_F(TlsConnectionTest, ExpiredCertificate) {
  Connect(ClientCtx(), "localhost", ServerCtx("expired.pem"));
  ExpectClientFails(FailureCause::kExpired);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "has expired", why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "valid until 2021-01-01T00:00:00Z", why);
  EXPECT_EQ(client_->failed_certificate().not_after, "2021-01-01T00:00:00Z");
}

TEST_F(TlsConnectionTest, NotYetValidCertificate) {
  Connect(ClientCtx(), "localhost", ServerCtx("notyet.pem"));
  ExpectClientFails(FailureCause::kNotYetValid);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "valid from 2099-01-01T00:00:00Z",
                      Explain(*client_));
}

TEST_F(TlsConnectionTest, SelfSignedCertificate) {
  Connect(ClientCtx(), "localhost", ServerCtx("selfsigned.pem"));
  ExpectClientFails(FailureCause::kUntrusted);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "issued by an authority that is not trusted", why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "at depth 0", why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "trusted: ca_file " + Path("ca.pem"), why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "fix: set backend_tls.ca_file", why);
}

TEST_F(TlsConnectionTest, ClientAuthOnlyCertificate) {
  Connect(ClientCtx(), "localhost", ServerCtx("clientauth-only.pem"));
  ExpectClientFails(FailureCause::kBadPurpose);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "(extended key usage: [clientAuth])",
                      Explain(*client_));
}

TEST_F(TlsConnectionTest, ClientTrustsAnotherCa) {
  ClientOptions o;
  o.ca_file = Path("other-ca.pem");
  Connect(ClientCtx(o), "localhost", ServerCtx());
  ExpectClientFails(FailureCause::kUntrusted);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "trusted: ca_file " + Path("other-ca.pem"), why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring,
                      "the CA that issued \"CN=dbward Test Root CA,O=dbward tests\"", why);
}

TEST_F(TlsConnectionTest, NoCommonProtocolVersion) {
  ClientOptions o;
  o.min_version = TLS1_3_VERSION;
  std::shared_ptr<Context> server = ServerCtx();
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(server->ssl_ctx(), TLS1_2_VERSION), 1);
  Connect(ClientCtx(o), "localhost", server);
  ExpectClientFails(FailureCause::kProtocolVersion);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "or set backend_tls.min_version: \"1.2\"",
                      Explain(*client_));
  EXPECT_EQ(server_hs_, HS::kFailed);
  EXPECT_EQ(server_->failure_cause(), FailureCause::kProtocolVersion);
}

TEST_F(TlsConnectionTest, TlsOneTwoWhenServerCapsIt) {
  std::shared_ptr<Context> server = ServerCtx();
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(server->ssl_ctx(), TLS1_2_VERSION), 1);
  Connect(ClientCtx(), "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_EQ(client_->version(), TLS1_2_VERSION);
  EXPECT_STREQ(client_->version_name(), "TLSv1.2");
}

class ClientCertTest : public TlsConnectionTest {
 protected:
  // A server that insists on a certificate issued by client-ca.
  std::shared_ptr<Context> RequiringServer(uint16_t max_version) {
    std::shared_ptr<Context> ctx = ServerCtx();
    if (ctx == nullptr) return nullptr;
    SSL_CTX_set_verify(ctx->ssl_ctx(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    EXPECT_EQ(SSL_CTX_load_verify_locations(ctx->ssl_ctx(), Path("client-ca.pem").c_str(), nullptr),
              1);
    EXPECT_EQ(SSL_CTX_set_max_proto_version(ctx->ssl_ctx(), max_version), 1);
    return ctx;
  }
};

TEST_F(ClientCertTest, MissingClientCertificateTls12) {
  Connect(ClientCtx(), "localhost", RequiringServer(TLS1_2_VERSION));
  ExpectClientFails(FailureCause::kClientCertRequired);
  EXPECT_PRED_FORMAT2(testing::IsSubstring,
                      "fix: set backend_tls.cert_file and backend_tls.key_file",
                      Explain(*client_));
  EXPECT_EQ(server_hs_, HS::kFailed);
}

TEST_F(ClientCertTest, MissingClientCertificateTls13ReportedOnFirstRead) {
  Connect(ClientCtx(), "localhost", RequiringServer(TLS1_3_VERSION));
  EXPECT_EQ(server_hs_, HS::kFailed);
  // In TLS 1.3 the client's handshake completes before the server has judged
  // its (empty) certificate; the refusal arrives as an alert on the first read.
  ASSERT_EQ(client_hs_, HS::kDone);
  uint8_t buf[64];
  EXPECT_EQ(client_->Read(buf).kind, IoResult::kError);
  EXPECT_EQ(client_->failure_cause(), FailureCause::kClientCertRequired)
      << client_->failure_detail();
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring,
                      "fix: set backend_tls.cert_file and backend_tls.key_file", why);
}

TEST_F(ClientCertTest, EncryptedClientCertificateAccepted) {
  ClientOptions o;
  o.client_cert = {Path("client.pem"), Path("client.key"), Password("client.pass")};
  Connect(ClientCtx(o), "localhost", RequiringServer(TLS1_3_VERSION));
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
  CertSummary peer = server_->PeerCertificate();
  EXPECT_TRUE(peer.present);
  EXPECT_EQ(peer.subject, "CN=dbward-client");
  EXPECT_EQ(SSL_get_verify_result(server_->ssl()), X509_V_OK);
}

TEST_F(TlsConnectionTest, PeerClosesBeforeAnswering) {
  ASSERT_NO_FATAL_FAILURE(Create(ClientCtx(), "localhost", ServerCtx()));
  ASSERT_EQ(client_->Handshake(), HS::kWantRead);
  ASSERT_FALSE(to_server_.bytes.empty());
  EXPECT_EQ(to_server_.bytes.front(), 0x16);  // the ClientHello went out
  to_client_.closed = true;
  EXPECT_EQ(client_->Handshake(), HS::kFailed);
  EXPECT_EQ(client_->failure_cause(), FailureCause::kReset);
  EXPECT_TRUE(client_->io_eof());
  EXPECT_EQ(client_->failure_detail(), "connection closed by peer");
  EXPECT_PRED_FORMAT2(testing::IsSubstring,
                      "connection reset during the TLS handshake with localhost",
                      Explain(*client_));
}

TEST_F(TlsConnectionTest, PeerClosesInTheMiddleOfARecord) {
  ASSERT_NO_FATAL_FAILURE(Create(ClientCtx(), "localhost", ServerCtx()));
  ASSERT_EQ(client_->Handshake(), HS::kWantRead);
  ASSERT_EQ(server_->Handshake(), HS::kWantRead);
  ASSERT_GT(to_client_.bytes.size(), 20u);
  to_client_.bytes.resize(20);  // part of the ServerHello, then FIN
  to_client_.closed = true;
  EXPECT_EQ(client_->Handshake(), HS::kFailed);
  EXPECT_EQ(client_->failure_cause(), FailureCause::kReset) << client_->failure_detail();
  EXPECT_TRUE(client_->io_eof());
}

TEST_F(TlsConnectionTest, TransportErrorDuringHandshake) {
  ASSERT_NO_FATAL_FAILURE(Create(ClientCtx(), "localhost", ServerCtx()));
  ASSERT_EQ(client_->Handshake(), HS::kWantRead);
  to_client_.error = ECONNRESET;
  EXPECT_EQ(client_->Handshake(), HS::kFailed);
  EXPECT_EQ(client_->failure_cause(), FailureCause::kReset);
  EXPECT_EQ(client_->io_error(), ECONNRESET);
  EXPECT_EQ(client_->failure_detail(), "Connection reset by peer");
}

TEST_F(TlsConnectionTest, PeerAnswersWithoutTls) {
  ASSERT_NO_FATAL_FAILURE(Create(ClientCtx(), "localhost", ServerCtx()));
  ASSERT_EQ(client_->Handshake(), HS::kWantRead);
  const std::string http = "HTTP/1.1 400 Bad Request\r\n\r\n";
  to_client_.bytes.assign(http.begin(), http.end());
  EXPECT_EQ(client_->Handshake(), HS::kFailed);
  EXPECT_EQ(client_->failure_cause(), FailureCause::kNotTls) << client_->failure_detail();
}

TEST_F(TlsConnectionTest, AlpnAgreed) {
  ClientOptions o;
  o.alpn = {"postgresql"};
  Connect(ClientCtx(o), "localhost", ServerCtx("server.pem", {"postgresql"}));
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_EQ(client_->alpn(), "postgresql");
  EXPECT_EQ(server_->alpn(), "postgresql");
}

TEST_F(TlsConnectionTest, AlpnServerPicksFirstOfItsOwnThatClientOffers) {
  ClientOptions o;
  o.alpn = {"h2", "postgresql", "mysql"};
  Connect(ClientCtx(o), "localhost", ServerCtx("server.pem", {"mysql", "postgresql"}));
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_EQ(client_->alpn(), "mysql");
}

TEST_F(TlsConnectionTest, AlpnWithoutCommonProtocolIsRefused) {
  ClientOptions o;
  o.alpn = {"h2"};
  Connect(ClientCtx(o), "localhost", ServerCtx("server.pem", {"postgresql"}));
  EXPECT_EQ(client_hs_, HS::kFailed);
  EXPECT_EQ(server_hs_, HS::kFailed);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "NO_APPLICATION_PROTOCOL", client_->failure_detail());
}

TEST_F(TlsConnectionTest, AlpnClientWithoutAlpnStillConnects) {
  Connect(ClientCtx(), "localhost", ServerCtx("server.pem", {"postgresql"}));
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_EQ(client_->alpn(), "");
}

// ---- stronger backend trust: SPKI pins and CRLs (never weaker) ----

class BackendTrustTest : public TlsConnectionTest {
 protected:
  std::string Pin(const std::string& name) {
    std::string pin = Password(name);  // one line of base64
    return pin;
  }
};

TEST_F(BackendTrustTest, MatchingPinConnects) {
  ClientOptions o;
  o.spki_pins = {"sha256//" + Pin("wrongname.spki"), Pin("server.spki")};
  Connect(ClientCtx(o), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
}

TEST_F(BackendTrustTest, PinMismatchFailsClosedAndNamesThePins) {
  ClientOptions o;
  o.spki_pins = {Pin("wrongname.spki")};
  Connect(ClientCtx(o), "localhost", ServerCtx());
  ExpectClientFails(FailureCause::kPinMismatch);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "its SPKI is sha256//" + Pin("server.spki"), why);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "backend_tls.pin_spki allows [sha256//" + Pin("wrongname.spki") + "]", why);
}

TEST_F(BackendTrustTest, PinNeverRescuesAnUntrustedChain) {
  // The self-signed certificate's own pin: chain validation still fails first.
  ClientOptions o;
  o.spki_pins = {Pin("server.spki")};
  Connect(ClientCtx(o), "localhost", ServerCtx("selfsigned.pem"));
  ExpectClientFails(FailureCause::kUntrusted);
}

TEST_F(BackendTrustTest, PinsAreValidated) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.spki_pins = {"not-a-pin"};
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "'not-a-pin' is not a SHA-256 SPKI pin", error.Message());
  EXPECT_EQ(NormalizeSpkiPin("sha256//" + Pin("server.spki")), Pin("server.spki"));
  EXPECT_EQ(NormalizeSpkiPin("sha1//" + Pin("server.spki")), "");
  EXPECT_EQ(NormalizeSpkiPin(std::string(44, '=')), "");
}

TEST_F(BackendTrustTest, CrlWithoutTheCertificateConnects) {
  ClientOptions o;
  o.crl_file = Path("ca.crl");
  Connect(ClientCtx(o), "localhost", ServerCtx());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_TRUE(client_->verified());
}

// A chain checked against CRLs is remembered no longer than the CRLs are
// current (their earliest nextUpdate), so a stale CRL is never outlived.
TEST_F(BackendTrustTest, TheCrlsNextUpdateBoundsARememberedVerdict) {
  ClientOptions o;
  o.crl_file = Path("ca.crl");
  std::shared_ptr<Context> ctx = ClientCtx(o);
  EXPECT_GT(ctx->crl_valid_until(), ::time(nullptr));
  EXPECT_LT(ctx->crl_valid_until(), INT64_MAX);
  EXPECT_EQ(ClientCtx()->crl_valid_until(), INT64_MAX);
}

TEST_F(BackendTrustTest, RevokedCertificateIsRefused) {
  ClientOptions o;
  o.crl_file = Path("ca.crl");
  Connect(ClientCtx(o), "localhost", ServerCtx("revoked.pem"));
  ExpectClientFails(FailureCause::kRevoked);
  std::string why = Explain(*client_);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "has been revoked: it is on the CRL in " + Path("ca.crl"), why);
  // Without the CRL the same certificate passes: the CRL is what refused it.
  ClientOptions plain;
  Pipe a, b;
  MemIo cio{&a, &b}, sio{&b, &a};
  std::string error;
  auto c = Connection::NewClient(ClientCtx(plain), "localhost", &cio, &error);
  auto s = Connection::NewServer(ServerCtx("revoked.pem"), &sio, &error);
  HS ch = HS::kWantRead, sh = HS::kWantRead;
  for (int i = 0; i < 50 && !(Finished(ch) && Finished(sh)); i++) {
    if (!Finished(ch)) ch = c->Handshake();
    if (!Finished(sh)) sh = s->Handshake();
  }
  EXPECT_EQ(ch, HS::kDone);
}

TEST_F(BackendTrustTest, StaleCrlFailsClosed) {
  ClientOptions o;
  o.crl_file = Path("ca-stale.crl");
  Connect(ClientCtx(o), "localhost", ServerCtx());
  ExpectClientFails(FailureCause::kCrl);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "could not be checked for revocation: CRL has expired", Explain(*client_));
}

TEST_F(BackendTrustTest, CrlFileProblemsAreLoadErrors) {
  ClientOptions o;
  o.ca_file = Path("ca.pem");
  o.crl_file = Path("nope.crl");
  LoadError error;
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_EQ(error.file, LoadError::File::kCrl);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "cannot read CRL file", error.Message());
  o.crl_file = Path("ca.pem");  // certificates, no CRL
  EXPECT_EQ(Context::NewClient(o, &error), nullptr);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "no X509 CRL in the file", error.Message());
}

// ---- client certificates on dbward's server side ----

class ClientIdentityTest : public TlsConnectionTest {
 protected:
  std::shared_ptr<Context> AskingServer() {
    ServerOptions o;
    o.cert = {Path("server.pem"), Path("server.key"), ""};
    o.client_ca_file = Path("client-ca.pem");
    LoadError error;
    std::shared_ptr<Context> ctx = Context::NewServer(o, &error);
    EXPECT_NE(ctx, nullptr) << error.Message();
    return ctx;
  }
  std::shared_ptr<Context> ClientWith(const std::string& name) {
    ClientOptions o;
    o.client_cert = {Path(name + ".pem"), Path(name + ".key"), ""};
    return ClientCtx(o);
  }
};

TEST_F(ClientIdentityTest, VerifiedCertificateNamesTheClient) {
  Connect(ClientWith("app-client"), "localhost", AskingServer());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  PeerIdentity id = server_->ClientIdentity();
  ASSERT_TRUE(id.present);
  EXPECT_EQ(id.cn, "report-reader");
  EXPECT_EQ(id.uris, std::vector<std::string>{"spiffe://dbward.test/ns/reports/sa/reader"});
  EXPECT_EQ(id.dns, std::vector<std::string>{"reader.apps.test"});
  EXPECT_EQ(id.spki.size(), 44u);
  // The client side has no client identity to report.
  EXPECT_FALSE(client_->ClientIdentity().present);
}

TEST_F(ClientIdentityTest, NoCertificateIsAllowedByTheTlsLayer) {
  // Whether one is required is decided after the handshake, in the
  // protocol's words.
  Connect(ClientCtx(), "localhost", AskingServer());
  ASSERT_EQ(client_hs_, HS::kDone);
  ASSERT_EQ(server_hs_, HS::kDone);
  EXPECT_FALSE(server_->ClientIdentity().present);
}

TEST_F(ClientIdentityTest, CertificateFromAnotherCaFailsTheHandshake) {
  Connect(ClientWith("rogue-client"), "localhost", AskingServer());
  EXPECT_EQ(server_hs_, HS::kFailed);
  EXPECT_TRUE(server_->rejected_peer_certificate());
  EXPECT_EQ(server_->failure_cause(), FailureCause::kUntrusted) << server_->failure_detail();
  EXPECT_EQ(server_->diagnosis().failed.subject, "CN=report-reader");
}

TEST_F(ClientIdentityTest, ServerCertificateAsClientCertificateIsRefused) {
  // proxy.pem is from ca with serverAuth only; trust ca for clients to reach
  // the purpose check.
  ServerOptions so;
  so.cert = {Path("server.pem"), Path("server.key"), ""};
  so.client_ca_file = Path("ca.pem");
  LoadError error;
  auto server = Context::NewServer(so, &error);
  ASSERT_NE(server, nullptr) << error.Message();
  Connect(ClientWith("proxy"), "localhost", server);
  EXPECT_EQ(server_hs_, HS::kFailed);
  EXPECT_EQ(server_->failure_cause(), FailureCause::kBadPurpose) << server_->failure_detail();
}

TEST_F(ClientIdentityTest, UnreadableClientCaIsALoadError) {
  ServerOptions so;
  so.cert = {Path("server.pem"), Path("server.key"), ""};
  so.client_ca_file = Path("missing-ca.pem");
  LoadError error;
  EXPECT_EQ(Context::NewServer(so, &error), nullptr);
  EXPECT_EQ(error.file, LoadError::File::kClientCa);
  EXPECT_PRED_FORMAT2(testing::IsSubstring, "cannot read client CA file", error.Message());
}

}  // namespace
// Session resumption towards backends: a session is kept only from a
// verified handshake, offered again to the same server name, and belongs to
// one client context (a reload builds a new one).
class ResumptionTest : public TlsConnectionTest {
 protected:
  // One connection over fresh pipes: handshake, then one byte from the
  // server, so the client reads the TLS 1.3 tickets that follow the handshake.
  void Once(std::shared_ptr<Context> client_ctx, const std::string& name, std::shared_ptr<Context> server_ctx) {
    to_server_ = Pipe{};
    to_client_ = Pipe{};
    client_hs_ = server_hs_ = HS::kWantRead;
    Connect(std::move(client_ctx), name, std::move(server_ctx));
    if (client_hs_ != HS::kDone || server_hs_ != HS::kDone) return;
    const std::vector<uint8_t> byte = {42};
    std::vector<uint8_t> got;
    ASSERT_NO_FATAL_FAILURE(Transfer(server_.get(), client_.get(), byte, &got));
    ASSERT_EQ(got, byte);
  }

  std::shared_ptr<Context> ResumingClient() {
    ClientOptions o;
    o.resume_sessions = true;
    return ClientCtx(o);
  }

  // dbward's own server contexts send no tickets; a backend does.
  std::shared_ptr<Context> TicketServer(uint16_t max_version = TLS1_3_VERSION) {
    std::shared_ptr<Context> s = ServerCtx();
    if (s == nullptr) return s;
    SSL_CTX_clear_options(s->ssl_ctx(), SSL_OP_NO_TICKET);
    SSL_CTX_set_max_proto_version(s->ssl_ctx(), max_version);
    return s;
  }
};

TEST_F(ResumptionTest, Tls13SecondHandshakeResumesAVerifiedSession) {
  std::shared_ptr<Context> client = ResumingClient();
  std::shared_ptr<Context> server = TicketServer();
  ASSERT_NE(client->sessions(), nullptr);
  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kNoSession);
  EXPECT_TRUE(client_->verified());
  // BoringSSL's server sends two tickets: both are kept.
  EXPECT_EQ(client->sessions()->size(), 2u);

  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kResumed);
  EXPECT_TRUE(SSL_session_reused(client_->ssl()));
  // The certificate was validated when the session was made; it is still
  // there to be audited.
  EXPECT_TRUE(client_->verified());
  EXPECT_EQ(client_->PeerCertificate().subject, "CN=localhost");
  EXPECT_GT(client_->PeerNotAfterUnix(), 0);
  // A TLS 1.3 ticket is used once: one left, plus the resumed handshake's new ones.
  EXPECT_GE(client->sessions()->size(), 1u);
}

TEST_F(ResumptionTest, Tls12SessionsResumeToo) {
  std::shared_ptr<Context> client = ResumingClient();
  std::shared_ptr<Context> server = TicketServer(TLS1_2_VERSION);
  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->version(), TLS1_2_VERSION);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kNoSession);
  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kResumed);
  EXPECT_TRUE(client_->verified());
  // A TLS 1.2 session may be offered again: it stays.
  EXPECT_EQ(client->sessions()->size(), 1u);
}

TEST_F(ResumptionTest, ANewContextStartsEmptyAsAReloadDoes) {
  std::shared_ptr<Context> server = TicketServer();
  Once(ResumingClient(), "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  Once(ResumingClient(), "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kNoSession);
  EXPECT_FALSE(SSL_session_reused(client_->ssl()));
}

TEST_F(ResumptionTest, SessionsAreKeptPerServerName) {
  std::shared_ptr<Context> client = ResumingClient();
  std::shared_ptr<Context> server = TicketServer();
  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  // server.pem also names 127.0.0.1; a session made for "localhost" is not
  // offered to it.
  Once(client, "127.0.0.1", server);
  ASSERT_EQ(client_hs_, HS::kDone) << client_->failure_detail();
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kNoSession);
}

TEST_F(ResumptionTest, AServerThatRefusesTheSessionIsVerifiedInFull) {
  std::shared_ptr<Context> client = ResumingClient();
  Once(client, "localhost", TicketServer());
  ASSERT_EQ(client_hs_, HS::kDone);
  // Another server context has other ticket keys: it cannot resume.
  Once(client, "localhost", TicketServer());
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kRejected);
  EXPECT_FALSE(SSL_session_reused(client_->ssl()));
  EXPECT_TRUE(client_->verified());
}

TEST_F(ResumptionTest, AFailedVerificationLeavesNoSession) {
  ClientOptions o;
  o.resume_sessions = true;
  o.ca_file = Path("other-ca.pem");
  std::shared_ptr<Context> client = ClientCtx(o);
  Once(client, "localhost", TicketServer());
  ASSERT_EQ(client_hs_, HS::kFailed);
  EXPECT_EQ(client->sessions()->size(), 0u);
}

TEST_F(ResumptionTest, ACheckThatMustSeeTheCertificateDoesNotOffer) {
  std::shared_ptr<Context> client = ResumingClient();
  std::shared_ptr<Context> server = TicketServer();
  Once(client, "localhost", server);
  ASSERT_EQ(client_hs_, HS::kDone);
  to_server_ = Pipe{};
  to_client_ = Pipe{};
  client_hs_ = server_hs_ = HS::kWantRead;
  std::string error;
  client_ = Connection::NewClient(client, "localhost", &client_io_, &error, /*offer_session=*/false);
  ASSERT_NE(client_, nullptr) << error;
  server_ = Connection::NewServer(server, &server_io_, &error);
  Pump();
  ASSERT_EQ(client_hs_, HS::kDone);
  EXPECT_FALSE(SSL_session_reused(client_->ssl()));
  EXPECT_EQ(client_->resumption(), Connection::Resumption::kNoSession);
}

TEST_F(ResumptionTest, OldSessionsAreNotOffered) {
  std::shared_ptr<Context> client = ResumingClient();
  Once(client, "localhost", TicketServer(TLS1_2_VERSION));
  ASSERT_EQ(client_hs_, HS::kDone);
  SessionCache* cache = client->sessions();
  ASSERT_EQ(cache->size(), 1u);
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  EXPECT_NE(cache->Take("localhost", now), nullptr);
  EXPECT_EQ(cache->Take("elsewhere", now), nullptr);
  // Past the cache's own limit, whatever lifetime the server gave it: dropped.
  EXPECT_EQ(cache->Take("localhost", now + SessionCache::kMaxAgeSeconds + 1), nullptr);
  EXPECT_EQ(cache->size(), 0u);
}

TEST_F(ResumptionTest, ANewNameInAFullCachePushesOutTheNameUsedLeastRecently) {
  std::shared_ptr<Context> client = ResumingClient();
  Once(client, "localhost", TicketServer(TLS1_2_VERSION));
  ASSERT_EQ(client_hs_, HS::kDone);
  SessionCache* cache = client->sessions();
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  // A TLS 1.2 session stays when taken, so one session can fill every name.
  bssl::UniquePtr<SSL_SESSION> session = cache->Take("localhost", now);
  ASSERT_NE(session, nullptr);
  auto copy = [&] {
    SSL_SESSION_up_ref(session.get());
    return bssl::UniquePtr<SSL_SESSION>(session.get());
  };
  for (size_t i = 0; i + 1 < SessionCache::kNames; ++i) cache->Put("replica" + std::to_string(i), copy());
  ASSERT_EQ(cache->size(), SessionCache::kNames);
  EXPECT_NE(cache->Take("localhost", now), nullptr);  // used again: now the most recent
  cache->Put("replica-new", copy());
  EXPECT_EQ(cache->size(), SessionCache::kNames);
  EXPECT_NE(cache->Take("replica-new", now), nullptr);
  EXPECT_EQ(cache->Take("replica0", now), nullptr);  // the least recently used went
  EXPECT_NE(cache->Take("replica1", now), nullptr);
  EXPECT_NE(cache->Take("localhost", now), nullptr);
}

}  // namespace dbward::tls

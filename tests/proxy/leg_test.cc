// proxy::Leg over a socket pair with real TLS: the read-ahead under
// BoringSSL, and what a leg hands on when its TLS changes hands (a warm
// backend leg given to a session).
#include "proxy/datapath/leg.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_certs.h"
#include "tls/context.h"

namespace dbward::proxy {
namespace {

using HS = tls::Connection::HandshakeStatus;

// The server's end: plain non-blocking socket I/O.
class FdIo : public tls::Io {
 public:
  explicit FdIo(int fd) : fd_(fd) {}
  tls::IoResult Read(std::span<uint8_t> out) override {
    ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
    if (n > 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    if (n == 0) return tls::IoResult::Eof();
    return errno == EAGAIN ? tls::IoResult::WantRead() : tls::IoResult::Error(errno);
  }
  tls::IoResult Write(std::span<const uint8_t> in) override {
    ssize_t n = ::send(fd_, in.data(), in.size(), MSG_NOSIGNAL);
    if (n >= 0) return tls::IoResult::Ok(static_cast<size_t>(n));
    return errno == EAGAIN ? tls::IoResult::WantWrite() : tls::IoResult::Error(errno);
  }

 private:
  int fd_;
};

class LegTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = test_certs::Dir();
    ASSERT_FALSE(dir.empty()) << test_certs::kMissing;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    leg_.set_fd(sv[0]);
    server_fd_ = sv[1];
    server_io_ = std::make_unique<FdIo>(server_fd_);
    tls::LoadError load_error;
    tls::ClientOptions co;
    co.ca_file = dir + "/ca.pem";
    auto client_ctx = tls::Context::NewClient(co, &load_error);
    ASSERT_NE(client_ctx, nullptr) << load_error.Message();
    tls::ServerOptions so;
    so.cert = {dir + "/server.pem", dir + "/server.key", ""};
    auto server_ctx = tls::Context::NewServer(so, &load_error);
    ASSERT_NE(server_ctx, nullptr) << load_error.Message();
    std::string error;
    server_ = tls::Connection::NewServer(server_ctx, server_io_.get(), &error);
    ASSERT_NE(server_, nullptr) << error;
    auto client = tls::Connection::NewClient(client_ctx, "localhost", &leg_, &error);
    ASSERT_NE(client, nullptr) << error;
    leg_.AttachTls(std::move(client));
  }
  void TearDown() override {
    server_.reset();
    if (server_fd_ >= 0) close(server_fd_);
  }

  void Handshake() {
    HS c = HS::kWantRead, s = HS::kWantRead;
    for (int i = 0; i < 100 && (c != HS::kDone || s != HS::kDone); i++) {
      if (c != HS::kDone) c = leg_.tls()->Handshake();
      if (s != HS::kDone) s = server_->Handshake();
      ASSERT_NE(c, HS::kFailed);
      ASSERT_NE(s, HS::kFailed);
    }
    ASSERT_EQ(c, HS::kDone);
    ASSERT_TRUE(leg_.tls()->verified());
  }

  // Two records from the server, written before the client reads.
  void ServerSendsTwoRecords() {
    ASSERT_TRUE(server_->Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("first"), 5)).ok());
    ASSERT_TRUE(server_->Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("second"), 6)).ok());
  }

  // Handshake done, read-ahead on, two records from the server and the
  // first one read.
  void ReadFirstOfTwoRecords() {
    ASSERT_NO_FATAL_FAILURE(Handshake());
    leg_.EnableReadAhead();
    ASSERT_NO_FATAL_FAILURE(ServerSendsTwoRecords());
    ASSERT_EQ(RecvString(leg_), "first");
  }

  static std::string RecvString(Leg& leg) {
    uint8_t buf[64];
    tls::IoResult r = leg.Recv(buf);
    return r.ok() ? std::string(reinterpret_cast<char*>(buf), r.n) : std::string();
  }

  Leg leg_;
  int server_fd_ = -1;
  std::unique_ptr<FdIo> server_io_;
  std::unique_ptr<tls::Connection> server_;
};

TEST_F(LegTlsTest, ReadAheadTakesAShortRecordInOneRecvAndKeepsTheNextOneForLater) {
  ASSERT_NO_FATAL_FAILURE(ReadFirstOfTwoRecords());
  // The second record came off the socket with the first: nothing on the
  // socket says so, the leg does.
  EXPECT_TRUE(leg_.HasBufferedInput());
  uint8_t peek;
  EXPECT_EQ(::recv(leg_.fd(), &peek, 1, MSG_PEEK | MSG_DONTWAIT), -1);
  EXPECT_EQ(RecvString(leg_), "second");
  EXPECT_FALSE(leg_.HasBufferedInput());
}

TEST_F(LegTlsTest, ALegThatChangesHandsTakesTheCiphertextItReadAheadAlong) {
  ASSERT_NO_FATAL_FAILURE(ReadFirstOfTwoRecords());
  ASSERT_TRUE(leg_.HasBufferedInput());

  // As a warm leg goes to a session: the socket, the TLS connection and the
  // bytes read ahead.
  std::vector<uint8_t> buffered = leg_.TakeBuffered();
  EXPECT_FALSE(buffered.empty());
  EXPECT_FALSE(leg_.HasBufferedInput());
  std::unique_ptr<tls::Connection> conn = leg_.TakeTls();
  Leg taker;
  taker.set_fd(leg_.fd());
  leg_.ReleaseFd();
  conn->set_io(&taker);
  taker.Unread(buffered);
  taker.AttachTls(std::move(conn));
  taker.EnableReadAhead();
  EXPECT_TRUE(taker.HasBufferedInput());
  EXPECT_EQ(RecvString(taker), "second");
  EXPECT_FALSE(taker.HasBufferedInput());
}

}  // namespace
}  // namespace dbward::proxy

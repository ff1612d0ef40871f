// The relay on its own, over socket pairs and a real libuv loop: bytes both
// ways, half-close passed on, back-pressure instead of buffering, and the end.
#include "proxy/datapath/relay.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace dbward::proxy {
namespace {

class RelayUnitTest : public ::testing::Test, public Relay::Callbacks {
 protected:
  void SetUp() override {
    uv_loop_init(&loop_);
    int a[2], b[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
    client_peer_ = a[0];
    client_.set_fd(a[1]);
    backend_.set_fd(b[0]);
    backend_peer_ = b[1];
    uv_timer_init(&loop_, &repump_);
    repump_.data = this;
    relay_ = std::make_unique<Relay>(pool_, client_, backend_, Watch::Open(&loop_, client_.fd(), nullptr),
                                     Watch::Open(&loop_, backend_.fd(), nullptr), *this);
    watches_ = true;
    relay_->Start();
  }
  void TearDown() override {
    relay_.reset();
    client_.Close();
    backend_.Close();
    close(client_peer_);
    close(backend_peer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&repump_), nullptr);
    uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  void OnRelayActivity() override { activity_++; }
  void ScheduleRepump() override {
    uv_timer_start(&repump_, [](uv_timer_t* t) { static_cast<RelayUnitTest*>(t->data)->relay_->Repump(); }, 0, 0);
  }
  void OnRelayEnd(const RelayEnd& end) override { end_ = end; }

  // Turns the loop until cond holds (or two seconds pass).
  bool RunUntil(const std::function<bool()>& cond) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!cond()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop_, UV_RUN_NOWAIT);
      std::this_thread::yield();
    }
    return true;
  }
  // A few turns of the loop: what is already in the sockets is handled.
  void Turn(int n = 20) {
    for (int i = 0; i < n; i++) uv_run(&loop_, UV_RUN_NOWAIT);
  }
  // Everything readable on fd now; *eof when the peer has closed.
  static std::string Drain(int fd, bool* eof = nullptr) {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 && eof != nullptr) *eof = true;
      return out;
    }
  }

  uv_loop_t loop_;
  uv_timer_t repump_;
  BufferPool pool_;
  Leg client_, backend_;
  int client_peer_ = -1, backend_peer_ = -1;
  std::unique_ptr<Relay> relay_;
  bool watches_ = false;
  int activity_ = 0;
  std::optional<RelayEnd> end_;
};

TEST_F(RelayUnitTest, BytesGoBothWays) {
  ASSERT_EQ(send(client_peer_, "select 1", 8, 0), 8);
  std::string up;
  ASSERT_TRUE(RunUntil([&] { return (up += Drain(backend_peer_)).size() == 8; }));
  EXPECT_EQ(up, "select 1");
  ASSERT_EQ(send(backend_peer_, "1 row", 5, 0), 5);
  std::string down;
  ASSERT_TRUE(RunUntil([&] { return (down += Drain(client_peer_)).size() == 5; }));
  EXPECT_EQ(down, "1 row");
  EXPECT_EQ(relay_->bytes_up(), 8u);
  EXPECT_EQ(relay_->bytes_down(), 5u);
  EXPECT_GT(activity_, 0);
  EXPECT_FALSE(end_);
}

// proxy_protocol listeners whose protocol dbward does not read (tcp): the
// client's first bytes are held until they cannot begin a PROXY header.
TEST_F(RelayUnitTest, HeldPrefixThatBecomesAProxyHeaderEndsTheRelay) {
  relay_->RefuseProxyHeader({});
  const std::string header = "PROXY TCP4 10.6.6.6 127.0.0.1 1 2\r\n";
  ASSERT_EQ(send(client_peer_, header.data(), 3, 0), 3);
  // The prefix is read and held: nothing reaches the backend.
  Turn();
  EXPECT_EQ(Drain(backend_peer_), "");
  EXPECT_FALSE(end_);
  ASSERT_EQ(send(client_peer_, header.data() + 3, header.size() - 3, 0), static_cast<ssize_t>(header.size() - 3));
  ASSERT_TRUE(RunUntil([&] { return end_.has_value(); }));
  EXPECT_EQ(end_->kind, RelayEnd::Kind::kProxyHeader);
  EXPECT_EQ(Drain(backend_peer_), "");
  EXPECT_EQ(relay_->bytes_up(), 0u);
}

TEST_F(RelayUnitTest, HeldPrefixThatIsNotAHeaderIsPassedOnWhole) {
  relay_->RefuseProxyHeader({});
  ASSERT_EQ(send(client_peer_, "PRO", 3, 0), 3);
  Turn();
  EXPECT_EQ(Drain(backend_peer_), "");
  ASSERT_EQ(send(client_peer_, "FILE\n", 5, 0), 5);
  std::string got;
  ASSERT_TRUE(RunUntil([&] {
    got += Drain(backend_peer_);
    return got.size() >= 8;
  }));
  EXPECT_EQ(got, "PROFILE\n");
  EXPECT_FALSE(end_);
}

TEST_F(RelayUnitTest, BytesSentBeforeTheRelayCountTowardsTheHeader) {
  const std::string sent = "PROX";
  relay_->RefuseProxyHeader(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(sent.data()), sent.size()));
  ASSERT_EQ(send(client_peer_, "Y TCP4 ", 7, 0), 7);
  ASSERT_TRUE(RunUntil([&] { return end_.has_value(); }));
  EXPECT_EQ(end_->kind, RelayEnd::Kind::kProxyHeader);
}

TEST_F(RelayUnitTest, HalfCloseIsPassedOnAndBothEndsFinish) {
  ASSERT_EQ(send(client_peer_, "bye", 3, 0), 3);
  shutdown(client_peer_, SHUT_WR);
  bool eof = false;
  std::string up;
  ASSERT_TRUE(RunUntil([&] {
    up += Drain(backend_peer_, &eof);
    return eof;
  }));
  EXPECT_EQ(up, "bye") << "everything the client sent arrives before the FIN";
  EXPECT_FALSE(end_) << "the other direction is still open";
  ASSERT_EQ(send(backend_peer_, "ok", 2, 0), 2);
  shutdown(backend_peer_, SHUT_WR);
  ASSERT_TRUE(RunUntil([&] { return end_.has_value(); }));
  EXPECT_EQ(end_->kind, RelayEnd::Kind::kClosed);
  EXPECT_EQ(Drain(client_peer_), "ok");
  EXPECT_EQ(pool_.in_use(), 0u) << "buffers go back to the pool";
}

TEST_F(RelayUnitTest, SlowReaderPushesBackInsteadOfBeingBuffered) {
  // The backend peer reads nothing: once its socket buffer and one relay
  // buffer are full, the relay stops reading the client.
  std::string chunk(65536, 'x');
  size_t sent = 0;
  auto fill = [&] {
    for (;;) {
      ssize_t n = send(client_peer_, chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  };
  for (int i = 0; i < 50; i++) {
    fill();
    uv_run(&loop_, UV_RUN_NOWAIT);
  }
  size_t relayed = relay_->bytes_up();
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  getsockopt(backend_.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  EXPECT_LE(relayed, 4u * static_cast<size_t>(sndbuf) + BufferPool::kBufferSize);
  EXPECT_LE(pool_.in_use(), 1u) << "one buffer at most for the stalled direction";
  // Reading resumes the flow, and nothing is lost.
  size_t got = 0;
  ASSERT_TRUE(RunUntil([&] {
    got += Drain(backend_peer_).size();
    return got == sent;
  })) << got << " of " << sent;
}

TEST_F(RelayUnitTest, StopGivesTheBuffersBack) {
  ASSERT_EQ(send(client_peer_, "x", 1, 0), 1);
  ASSERT_TRUE(RunUntil([&] { return relay_->bytes_up() == 1; }));
  relay_->Stop();
  EXPECT_EQ(pool_.in_use(), 0u);
}

}  // namespace
}  // namespace dbward::proxy

#include "proxy/backend/backend_probe.h"

#include "protocol/proxy_header.h"

#include <cstring>
#include <vector>

#include "proxy/backend/probe_io.h"
#include "proxy/engine/tds_framing.h"
#include "proxy/engine/upgrade.h"
#include "tls/connection.h"

namespace dbward::proxy::probe {
namespace {

using engine::BackendUpgrade;
using engine::ByteQueue;
using engine::TlsTransport;
using State = BackendUpgrade::State;

// The upgrade's sink on a blocking socket: sends go out at once, and a TLS
// start is noted for the loop below to perform.
class BlockingSink final : public engine::UpgradeSink {
 public:
  explicit BlockingSink(tls::Io* io) : io_(io) {}
  void SendToBackend(std::span<const uint8_t> bytes) override {
    if (failed_) return;
    tls::IoResult r = io_->Write(bytes);
    size_t done = r.ok() ? r.n : 0;
    while (r.ok() && done < bytes.size()) {
      r = io_->Write(bytes.subspan(done));
      done += r.ok() ? r.n : 0;
    }
    if (!r.ok()) {
      failed_ = true;
      error_ = r.kind == tls::IoResult::kEof ? "the server closed the connection" : strerror(r.err);
    }
  }
  void ReadBackend(bool /*on*/) override {}
  void StartBackendTls(TlsTransport transport) override { transport_ = transport; }
  void set_io(tls::Io* io) { io_ = io; }
  TlsTransport transport() const { return transport_; }
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }

 private:
  tls::Io* io_;
  TlsTransport transport_ = TlsTransport::kStream;
  bool failed_ = false;
  std::string error_;
};

// Plaintext through an established TLS connection, for what the upgrade
// sends after the handshake (TDS 8.0's PRELOGIN).
class TlsIo final : public tls::Io {
 public:
  explicit TlsIo(tls::Connection* conn) : conn_(conn) {}
  tls::IoResult Read(std::span<uint8_t> out) override { return conn_->Read(out); }
  tls::IoResult Write(std::span<const uint8_t> in) override { return conn_->Write(in); }

 private:
  tls::Connection* conn_;
};

Attempt::Upgrade KindOf(engine::UpgradeFailure::Kind k) {
  switch (k) {
    case engine::UpgradeFailure::Kind::kRefused: return Attempt::Upgrade::kRefused;
    case engine::UpgradeFailure::Kind::kDenied: return Attempt::Upgrade::kDenied;
    case engine::UpgradeFailure::Kind::kNotProtocol: return Attempt::Upgrade::kNotProtocol;
  }
  return Attempt::Upgrade::kNotProtocol;
}

}  // namespace

OpenBackend::~OpenBackend() {
  if (conn) conn->Shutdown();
}

Attempt ProbeBackend(const Target& target, const std::shared_ptr<tls::Context>& ctx, Completion completion,
                     std::unique_ptr<OpenBackend>* keep) {
  Attempt a;
  auto socket_owner = std::make_unique<SocketIo>(Clock::now() + target.timeout);
  SocketIo& socket = *socket_owner;
  if (!socket.Connect(target.host, target.port, &a.message)) {
    a.timed_out = socket.timed_out();
    return a;
  }
  if (target.proxy_local) {
    protocol::proxy_header::Outgoing local;
    local.command = protocol::proxy_header::Command::kLocal;
    if (!socket.WriteAll(protocol::proxy_header::EncodeV2(local), &a.message)) {
      a.timed_out = socket.timed_out();
      return a;
    }
  }
  a.stage = Attempt::kUpgrade;
  BlockingSink sink(&socket);
  BackendUpgrade::Options options;
  options.protocol = target.protocol;
  options.pg_direct = target.pg_direct;
  options.tds_strict = target.tds_strict;
  std::unique_ptr<BackendUpgrade> upgrade = BackendUpgrade::New(options, sink);
  std::unique_ptr<tls::Connection> conn;
  std::unique_ptr<TlsIo> tls_io;
  ByteQueue in;
  auto transport_failure = [&](const std::string& why) {
    a.stage = Attempt::kUpgrade;
    a.upgrade = Attempt::Upgrade::kTransport;
    a.timed_out = socket.timed_out();
    std::string waiting = upgrade->awaiting();
    a.message = a.timed_out ? "no " + waiting + " before the timeout" : why + " while waiting for the " + waiting;
    if (target.protocol == Protocol::kTds && !target.tds_strict && !conn) {
      a.message += " (a server that only accepts TDS 8.0 strict encryption closes the connection here: try --tds-strict)";
    }
    return a;
  };

  State state = upgrade->OnConnected(target.host + ":" + std::to_string(target.port));
  for (int steps = 0; steps < 64; steps++) {
    if (sink.failed()) return transport_failure(sink.error());
    switch (state) {
      case State::kFailed: {
        const engine::UpgradeFailure& f = upgrade->failure();
        a.stage = Attempt::kUpgrade;
        a.upgrade = KindOf(f.kind);
        a.message = f.fact;
        a.server_info = upgrade->server_info();
        return a;
      }
      case State::kGreeting:
        state = upgrade->Proceed();
        continue;
      case State::kWaiting: {
        uint8_t buf[4096];
        tls::IoResult r = conn ? conn->Read(buf) : socket.Read(buf);
        if (!r.ok()) {
          return transport_failure(r.kind == tls::IoResult::kEof ? "the server closed the connection"
                                                                 : std::string(strerror(r.err)));
        }
        in.Append(std::span<const uint8_t>(buf, r.n));
        state = upgrade->OnData(in);
        continue;
      }
      case State::kTls: {
        a.server_info = upgrade->server_info();
        a.stage = Attempt::kHandshake;
        PreloginFramingIo prelogin(&socket);
        bool framed = sink.transport() == TlsTransport::kTdsPrelogin;
        std::string error;
        // A check sees the server's certificate as it is now: it never
        // resumes a session (it may still leave one for sessions to resume).
        conn = tls::Connection::NewClient(ctx, target.server_name, framed ? static_cast<tls::Io*>(&prelogin) : &socket,
                                          &error, /*offer_session=*/false);
        if (!conn) {
          a.diagnosis.cause = tls::FailureCause::kTlsOther;
          a.diagnosis.detail = error;
          a.message = error;
          return a;
        }
        tls::Connection::HandshakeStatus status = tls::Connection::HandshakeStatus::kFailed;
        // The transports block, so "want" only repeats until BoringSSL is done.
        for (int spins = 0; spins < 1000; spins++) {
          status = conn->Handshake();
          if (status != tls::Connection::HandshakeStatus::kWantRead &&
              status != tls::Connection::HandshakeStatus::kWantWrite) {
            break;
          }
        }
        if (status != tls::Connection::HandshakeStatus::kDone) {
          a.timed_out = socket.timed_out();
          a.diagnosis = conn->diagnosis();
          if (a.diagnosis.cause == tls::FailureCause::kNone) a.diagnosis.cause = tls::FailureCause::kTlsOther;
          if (a.timed_out) {
            a.message = "no answer during the TLS handshake before the timeout";
          } else if (!prelogin.error().empty()) {
            a.message = "TLS inside TDS PRELOGIN packets failed: " + prelogin.error();
          }
          return a;
        }
        a.version = conn->version_name();
        a.cipher = conn->cipher();
        a.alpn = conn->alpn();
        // TDS 7.x: after the handshake TLS records go straight on TCP.
        conn->set_io(&socket);
        if (completion == Completion::kHandshake) {
          a.stage = Attempt::kDone;
          conn->Shutdown();
          return a;
        }
        tls_io = std::make_unique<TlsIo>(conn.get());
        sink.set_io(tls_io.get());
        state = upgrade->OnTlsReady();
        continue;
      }
      case State::kDone:
        a.stage = Attempt::kDone;
        a.server_info = upgrade->server_info();
        if (keep != nullptr) {
          auto open = std::make_unique<OpenBackend>();
          conn->set_io(&socket);
          open->socket = std::move(socket_owner);
          open->conn = std::move(conn);
          open->leftover = in.TakeAll();
          *keep = std::move(open);
          return a;
        }
        conn->Shutdown();
        return a;
    }
  }
  return transport_failure("the upgrade did not finish");
}

}  // namespace dbward::proxy::probe

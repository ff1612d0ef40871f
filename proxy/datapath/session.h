// A client connection and its backend connection, from accept to close.
//
// Before the relay, the session drives its protocol engine (engine/engine.h):
// it moves bytes between the sockets and small staging queues, runs the TLS
// handshakes the engine asks for, and offers the canary certificate. Then a
// Relay moves bytes with no copy of its own. The Connector reaches the
// backend; the SessionRecord is what the session leaves behind. Every libuv
// handle is freed in its close callback, and the session is deleted only
// after its own handles' close callbacks.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/datapath/connector.h"
#include "proxy/datapath/leg.h"
#include "proxy/datapath/relay.h"
#include "proxy/datapath/session_record.h"
#include "proxy/datapath/warm_pool.h"
#include "proxy/datapath/watch.h"
#include "proxy/engine/engine.h"
#include "proxy/engine/tds_framing.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {

class Worker;

class Session final : engine::Driver, Connector::Callbacks, Relay::Callbacks, Watch::Handler {
 public:
  Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id);
  void Start();
  // Closes both legs now (drain timeout, shutdown).
  void Abort();

  Session* next = nullptr;  // worker's intrusive list
  Session* prev = nullptr;

 private:
  enum class Phase {
    kHandshake,     // the engine's conversation, before the relay
    kFlushingError, // a native error is on its way to the client
    kLingering,     // half-closed after the error; waiting for the client to hang up
    kRelaying,
    kClosed,        // waiting for the handles' close callbacks
  };
  enum class BackendLeg { kNone, kConnecting, kOpen, kTlsHandshake, kGone };
  enum class ClientTls { kNone, kPending, kHandshake, kUp };

  ~Session() override;

  // engine::Driver
  void SendToClient(std::span<const uint8_t> bytes) override;
  void SendToBackend(std::span<const uint8_t> bytes) override;
  void ReadClient(bool on) override;
  void ReadBackend(bool on) override;
  void StartClientTls(engine::ClientTlsProfile profile, engine::TlsTransport transport) override;
  void EndClientTls() override;
  void ConnectBackend() override;
  Connector& connector();  // made on first use
  bool TlsLastsTheSession() const;
  void RedirectBackend(const engine::BackendTarget& target) override;
  void StartBackendTls(engine::TlsTransport transport) override;
  void FailBackend(const engine::Failure& failure) override;
  void HandOffToRelay() override;
  void Fail(const engine::Failure& failure, std::vector<uint8_t> message) override;
  void LookupVerifier(const std::string& user, const std::string& database, bool refresh) override;
  void SetupComplete() override;
  Admission Admit() override;

  // Connector::Callbacks
  void OnConnected(int fd, Watch* watch, const std::string& address) override;
  void OnConnectFailed(const engine::Failure& failure) override;
  // Relay::Callbacks
  void OnRelayActivity() override;
  void ScheduleRepump() override;
  void OnRelayEnd(const RelayEnd& end) override;
  // Watch::Handler, before the relay
  void OnSocketEvent(Watch* watch, int status, int events) override;

  // The pre-relay loop: flushes, handshakes, reads and engine callbacks
  // until nothing moves, then sets poll interest.
  void Advance();
  bool AdvanceClient(int* events);
  bool AdvanceBackend(int* events);
  bool BeginClientHandshake();
  void BeginBackendHandshake();
  void StartRelay();
  void FailNative(const engine::Failure& failure);
  void Record(const engine::Failure& failure);
  // The canary client refused the certificate (alert, or hung up before using
  // the connection): it validates. Ends the session.
  void CanaryRejected(const std::string& how);
  void CheckClientCertificate(const tls::Connection& conn);
  void CloseBackend();
  // A warm_backends leg instead of a connect: the engine hears of it from
  // Advance, never inside its own ConnectBackend call.
  void AdoptWarmBackend(WarmHandoff leg);
  std::optional<engine::TlsFacts> warm_ready_;
  void ArmTimer(uint64_t ms);
  void ArmHandshakeDeadline();
  void OnTimer();
  void Finish();
  void EmitRecord();
  std::string ClientIp() const;
  static void OnHandleClosed(uv_handle_t* handle);

  Worker* worker_;
  ListenerRuntime* listener_;
  // The TLS material this session started with (reloads do not change it).
  std::shared_ptr<const TlsMaterial> tls_;
  Leg client_;
  Leg backend_;
  Watch* client_watch_ = nullptr;
  Watch* backend_watch_ = nullptr;
  // Made when the session first connects its backend itself (a warm leg
  // needs none) and let go once the login is through: an idle session
  // does not keep a resolver and a timer it will not use again.
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<PreloginFramingIo> client_framing_;
  std::unique_ptr<PreloginFramingIo> backend_framing_;

  Phase phase_ = Phase::kHandshake;
  BackendLeg backend_leg_ = BackendLeg::kNone;
  ClientTls client_tls_ = ClientTls::kNone;
  engine::ClientTlsProfile client_tls_profile_ = engine::ClientTlsProfile::kStandard;
  engine::TlsTransport client_tls_transport_ = engine::TlsTransport::kStream;
  engine::TlsTransport backend_tls_transport_ = engine::TlsTransport::kStream;
  bool backend_tls_pending_ = false;
  bool client_reading_ = false;
  bool backend_reading_ = false;
  // Reading was turned on with bytes already queued: deliver them once.
  bool client_dirty_ = false;
  bool backend_dirty_ = false;
  bool relay_requested_ = false;
  // The engine took over a backend failure (TDS): the record keeps it.
  bool backend_failed_ = false;
  // The canary certificate for this client: not offered; offered (TLS
  // handshake under way); handshake done, waiting to see whether the client
  // goes on over it; decided (record_.validates says how).
  enum class Canary : uint8_t { kNone, kOffered, kAwaitingUse, kDecided };
  Canary canary_ = Canary::kNone;

  // Staging before the relay (a few hundred bytes per connection).
  engine::ByteQueue client_in_, backend_in_;
  std::vector<uint8_t> client_out_, backend_out_;
  uint64_t staged_up_ = 0, staged_down_ = 0;  // bytes sent from staging
  // The last client bytes sent upstream after the login, before the relay
  // (for its goodbye check).
  std::array<uint8_t, 8> up_tail_{};
  uint8_t up_tail_len_ = 0;

  uv_timer_t timer_;   // deadlines: handshake, error flush, linger, idle
  uv_timer_t repump_;  // run again on the next loop turn
  bool repump_pending_ = false;
  int open_handles_ = 0;
  uint64_t start_ms_ = 0;  // loop time at accept
  uint64_t deadline_ms_ = 0;
  uint64_t last_activity_ms_ = 0;

  // The name the backend's certificate must carry: backend_tls.server_name,
  // or the routed server's name.
  std::string backend_server_name_;
  // SCRAM mediation: the lookup in flight and its answer, delivered to the
  // engine from Advance (never from inside the engine's own call).
  std::shared_ptr<VerifierTicket> verifier_ticket_;
  std::optional<VerifierAnswer> verifier_answer_;
  bool setup_complete_ = false;  // logged in; the engine still watches
  bool in_handshake_gate_ = false;  // counted in the listener's max_handshakes
  // Client certificates: one was presented and verified; or why the client
  // is refused at Admit.
  bool client_certificate_ = false;
  std::optional<engine::Driver::Admission> cert_refusal_;
  std::string client_sni_;  // the name the client asked for (for the backend's PROXY header)
  std::string client_cert_cn_;
  // PROXY protocol. Inbound: a trusted balancer's header is read before the
  // protocol starts. Outbound (backend_proxy_protocol): the original
  // endpoints, from that header or the client socket, and the header bytes
  // sent (not payload).
  bool awaiting_proxy_header_ = false;
  bool proxy_sniffed_ = false;  // the first client bytes were checked for an untrusted header
  struct Origin {
    std::vector<uint8_t> src, dst;
    uint16_t src_port = 0, dst_port = 0;
  };
  std::unique_ptr<Origin> origin_;
  uint64_t proxy_header_bytes_ = 0;
  void BeginProtocol();
  void TakeProxyHeader();
  bool RefuseProxyHeader(std::span<const uint8_t> first);
  // The refusal of a PROXY header the client sent (before or in the relay).
  engine::Failure ProxyHeaderRefusal() const;
  std::vector<uint8_t> relay_sniff_prefix_;  // client bytes handed to the relay before it checks
  void SendBackendProxyHeader();
  void LeaveHandshakeGate();

  SessionRecord record_;
};

}  // namespace dbward::proxy

// A client connection and its backend connection, from accept to close.
//
// Before the relay, a ProtocolHandler drives the exchange through small
// staging buffers (a few hundred bytes per connection, copies are fine there).
// Then the relay moves bytes with no copy of its own: BoringSSL reads and
// writes the sockets directly and plaintext goes through one pooled buffer per
// direction. Every libuv handle lives inside the session, and the session is
// deleted only after the last close callback (libuv's rule for handle memory).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proxy/handler.h"
#include "proxy/leg.h"
#include "proxy/runtime.h"

namespace dbward::proxy {

class Worker;

// What the audit event says about the session; handlers fill in the
// protocol's part.
struct AuditInfo {
  std::string client_encryption = "none";
  bool trust_bypass = true;
  std::string bypass_reason = "plaintext";
  std::string user, database, application, client_library, client_host, client_protocol_version;
  std::string client_tls_version, client_tls_cipher, client_alpn;
  std::string note;  // e.g. "cancel request forwarded"
  std::string canary;  // canary mode offered to this client, or ""
  int validates = -1;  // canary verdict: 1 validates, 0 accepted the canary, -1 not tested
};

class Session {
 public:
  Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id);
  void Start();
  // Closes both legs now (drain timeout, shutdown).
  void Abort(const char* outcome);

  // --- for protocol handlers ---
  std::vector<uint8_t>& client_in() { return client_in_; }
  std::vector<uint8_t>& backend_in() { return backend_in_; }
  void SendToClient(std::span<const uint8_t> bytes);
  void SendToBackend(std::span<const uint8_t> bytes);
  void SetClientReading(bool on) { client_reading_ = on; }
  void SetBackendReading(bool on) { backend_reading_ = on; }
  // Starts dbward's TLS server handshake on the client leg once everything
  // queued for the client is flushed (e.g. PostgreSQL's 'S').
  // io: a framing layer to run the handshake over (TDS PRELOGIN packets);
  // ctx: another server context than the listener's client_tls.
  void StartClientTls(tls::Io* io = nullptr, std::shared_ptr<tls::Context> ctx = nullptr);
  void ConnectBackend();
  // Starts the verified TLS handshake with the backend once everything queued
  // for it is flushed (e.g. MySQL's SSLRequest).
  void StartBackendTls(tls::Io* io = nullptr);
  // Switches to the relay once both staging queues are flushed; handlers move
  // any leftover input to the other side first.
  void RequestRelay() { relay_requested_ = true; }
  // Authentication is over: staged input from either side after offset
  // `backend_consumed` of backend_in() goes to the other side as is, reading
  // stops, and the relay takes over once everything is flushed.
  void HandOffToRelay(size_t backend_consumed);
  // Ends the session with a protocol-native message to the client (flushed,
  // then a graceful close) or, when message is empty, a plain close.
  void FailWithMessage(const std::string& outcome, const std::string& error, const std::string& cause,
                       std::vector<uint8_t> message);
  // Ends the session; the handler's ErrorForClient decides what the client sees.
  void Fail(const std::string& outcome, const std::string& error, const std::string& cause);
  // A backend failure before the relay: the handler may take it over (see
  // ProtocolHandler::OnBackendFailure), otherwise Fail.
  void BackendFailed(const std::string& outcome, const std::string& error, const std::string& cause);
  bool backend_failed() const { return backend_failed_; }
  AuditInfo& audit() { return audit_; }
  const ListenerRuntime& listener() const { return *listener_; }
  // The TLS material this session started with (reloads do not change it).
  const TlsMaterial& tls() const { return *tls_; }
  Leg& client_leg() { return client_; }
  Leg& backend_leg() { return backend_; }
  uint64_t id() const { return id_; }
  const std::string& client_addr() const { return client_addr_; }
  const std::string& backend_addr() const { return backend_addr_; }

  Session* next = nullptr;  // worker's intrusive list
  Session* prev = nullptr;

 private:
  enum class State { kPreRelay, kRelaying, kLingering, kClosing };
  enum class BackendPhase { kNone, kResolving, kConnecting, kOpen, kHandshaking };
  enum class Wait : uint8_t { kNone, kRead, kWrite };

  // One direction of the relay. The buffer is the only queue between the two
  // legs: while it holds unsent bytes the source is not read (beyond the room
  // left), so TCP flow control pushes back on the sender.
  struct Direction {
    Leg* src = nullptr;
    Leg* dst = nullptr;
    uint8_t* buf = nullptr;
    size_t start = 0;
    size_t end = 0;
    bool src_eof = false;
    bool shut = false;
    Wait src_wait = Wait::kNone;
    Wait dst_wait = Wait::kNone;
    uint64_t bytes = 0;
    // The source socket may have data: set by its poll event, cleared when a
    // read finds it empty. Without it a wake-up for one direction would probe
    // the other with a read that can only return EAGAIN.
    bool src_readable = true;
  };

  ~Session();
  static void OnResolved(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void OnClientPoll(uv_poll_t* handle, int status, int events);
  static void OnBackendPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* timer);
  static void OnRepump(uv_timer_t* timer);
  static void OnClosed(uv_handle_t* handle);

  void ConnectNext();
  void OnBackendWritableWhileConnecting();
  void BeginBackendTls();
  // The pre-relay engine: flushes, handshakes, reads and handler callbacks
  // until nothing moves, then sets poll interest.
  void Advance();
  bool AdvanceClient(int* events);
  bool AdvanceBackend(int* events);
  void StartRelay();
  void Pump();
  bool PumpDirection(Direction* d, bool* progressed);
  bool PeerAlreadyClosed(const Direction* d) const;
  void UpdateRelayPolls();
  void SetPoll(uv_poll_t* poll, int* current, int events);
  uv_poll_t* NewPoll(int fd);
  void ClosePoll(uv_poll_t** poll);
  void ArmTimer(uint64_t ms);
  void Finish();
  void EmitAudit();
  void RecordMetrics(bool backend_verified);
  void ReleaseBuffer(Direction* d);
  void LogFailure(const std::string& outcome, const std::string& error);
  std::string ClientIp() const;
  // The canary client refused the certificate (alert, or hung up before using
  // the connection): it validates. Ends the session.
  void CanaryRejected(const std::string& how);
  bool closing() const { return state_ == State::kClosing; }

  Worker* worker_;
  ListenerRuntime* listener_;
  uint64_t id_;
  std::shared_ptr<const TlsMaterial> tls_;
  std::unique_ptr<ProtocolHandler> handler_;
  State state_ = State::kPreRelay;
  BackendPhase backend_phase_ = BackendPhase::kNone;
  Leg client_;
  Leg backend_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client

  // Pre-relay staging.
  std::vector<uint8_t> client_in_, client_out_, backend_in_, backend_out_;
  bool client_reading_ = false;
  bool backend_reading_ = false;
  bool client_tls_pending_ = false;
  bool backend_tls_pending_ = false;
  bool backend_failed_ = false;
  tls::Io* client_tls_io_ = nullptr;
  std::shared_ptr<tls::Context> client_tls_ctx_;
  tls::Io* backend_tls_io_ = nullptr;
  bool client_handshaking_ = false;
  bool relay_requested_ = false;
  bool close_after_flush_ = false;
  bool canary_active_ = false;   // this client got the canary certificate
  bool canary_pending_ = false;  // handshake done, waiting for the client to use it

  uv_poll_t* client_poll_ = nullptr;   // heap: a failed connect attempt's poll
  uv_poll_t* backend_poll_ = nullptr;  // is closed while the session goes on
  uv_timer_t timer_;
  uv_timer_t repump_;
  uv_getaddrinfo_t resolve_req_;
  int client_events_ = 0, backend_events_ = 0;
  bool resolving_ = false;
  bool repump_pending_ = false;
  int open_handles_ = 0;

  addrinfo* addrs_ = nullptr;
  addrinfo* next_addr_ = nullptr;
  std::string last_connect_error_;

  uint64_t start_ms_ = 0;  // loop time at accept
  uint64_t deadline_ms_ = 0;
  uint64_t connect_deadline_ms_ = 0;
  uint64_t last_activity_ms_ = 0;
  std::string client_addr_;
  std::string backend_addr_;
  std::string outcome_ = "ok";
  std::string error_;
  std::string cause_;
  AuditInfo audit_;
};

}  // namespace dbward::proxy

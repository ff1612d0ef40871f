// After the handshake: both directions of a session, one routine for each
// (nginx's ngx_stream_proxy_process). A direction reads its source only while
// its buffer has room, so a slow reader pushes back on the sender through TCP
// instead of making dbward buffer; when a source ends and everything it sent
// is delivered, the destination is half-closed. BoringSSL reads and writes
// the sockets itself, and plaintext passes through one pooled buffer per
// direction: the relay makes no copy of its own. It sees legs only through
// Recv/Send/ShutdownWrite, never whether they are TLS.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "proxy/datapath/buffer_pool.h"
#include "proxy/datapath/leg.h"
#include "proxy/datapath/watch.h"
#include "tls/cert_info.h"

namespace dbward::proxy {

// How the relay ended.
struct RelayEnd {
  enum class Kind {
    kClosed,         // both directions ended and were passed on
    kReadFailed,     // a read failed (err or TLS detail)
    kWriteFailed,    // a write failed
    kBackendRefusedUs,  // the backend's TLS judged dbward's certificate after the handshake (TLS 1.3)
    kBackendReset,      // the backend reset the connection while the client was still there
    kProxyHeader,       // the client's stream began with a PROXY protocol header (RefuseProxyHeader)
  };
  Kind kind = Kind::kClosed;
  bool client_side = false;  // which leg failed
  bool client_ended_first = false;  // kClosed: the client's side ended before the backend's
  bool backend_truncated = false;   // the backend's TLS stream ended without close_notify
  bool client_said_goodbye = false; // the client's last bytes were the protocol's goodbye (see SetGoodbye)
  std::string detail;        // errno text or TLS reason
  tls::Diagnosis diagnosis;  // kBackendRefusedUs
};

class Relay final : Watch::Handler {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // A socket signalled: traffic (for the idle timer).
    virtual void OnRelayActivity() = 0;
    // Call Repump() soon, without waiting for readiness (the relay yielded
    // to other sessions with work left).
    virtual void ScheduleRepump() = 0;
    virtual void OnRelayEnd(const RelayEnd& end) = 0;
  };

  Relay(BufferPool& pool, Leg& client, Leg& backend, Watch* client_watch, Watch* backend_watch, Callbacks& callbacks);
  ~Relay() override;
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // The message with which a client ends a session (PostgreSQL Terminate,
  // MySQL COM_QUIT): when the client's last bytes to the backend are these,
  // a backend that hangs up afterwards, close_notify or not, ended cleanly.
  void SetGoodbye(std::span<const uint8_t> message);
  // Client bytes the session sent upstream itself before the relay (a
  // PostgreSQL session's first commands, while the engine watches the
  // answers): they count for the goodbye check as if relayed.
  void NoteSentUp(std::span<const uint8_t> bytes) {
    if (goodbye_len_ > 0 && !bytes.empty()) RememberTail(bytes.data(), bytes.size());
  }
  // The client's stream must not begin with a PROXY protocol header (a
  // proxy_protocol listener whose protocol dbward does not read, tcp):
  // upstream bytes are held until they show they are not one. sent: the
  // stream's first bytes, already passed on before the relay.
  void RefuseProxyHeader(std::span<const uint8_t> sent);
  // Takes the watches over and moves what is ready.
  void Start();
  void Pump();
  // After ScheduleRepump: both sources may still hold data.
  void Repump();
  // Gives the buffers back; no callback after this.
  void Stop();

  uint64_t bytes_up() const { return up_.bytes; }
  uint64_t bytes_down() const { return down_.bytes; }

 private:
  enum class Wait : uint8_t { kNone, kRead, kWrite };
  // One direction. Its buffer is the only queue between the two legs.
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
    // The source may have data: set by its poll event, cleared when a read
    // finds it empty. Without it a wake-up for one direction would probe the
    // other with a read that can only return EAGAIN.
    bool src_readable = true;
  };

  void OnSocketEvent(Watch* watch, int status, int events) override;
  // False when the relay ended (reported).
  bool PumpDirection(Direction* d);
  bool PeerAlreadyClosed(const Direction* d) const;
  void UpdatePolls();
  void ReleaseBuffer(Direction* d);
  void RememberTail(const uint8_t* p, size_t n);
  void End(RelayEnd end);

  BufferPool& pool_;
  Leg& client_;
  Leg& backend_;
  Watch* client_watch_;
  Watch* backend_watch_;
  Callbacks& callbacks_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client
  bool running_ = false;
  bool any_eof_ = false;            // one side has ended
  bool client_ended_first_ = false;
  bool backend_truncated_ = false;
  // The last bytes sent to the backend, for the goodbye check.
  uint8_t goodbye_[8] = {};
  size_t goodbye_len_ = 0;
  uint8_t tail_[8] = {};
  size_t tail_len_ = 0;
  bool sniff_up_ = false;
  uint8_t sniff_prefix_[16] = {};
  size_t sniff_prefix_len_ = 0;
  // Whether the upstream bytes may pass, must wait (they may still begin a
  // PROXY header), or ended the relay (they do begin one).
  enum class SniffStep { kPass, kHold, kEnded };
  SniffStep SniffUpstream(Direction* d);
};

}  // namespace dbward::proxy

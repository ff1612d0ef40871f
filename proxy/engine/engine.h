// A protocol engine: the protocol-specific part of a session before the
// relay, as a state machine. It consumes bytes from either side and asks its
// Driver for actions (send this to the client, start TLS on the backend leg,
// hand off to the relay, fail with this native error). It never sees a
// socket, a TLS object or the session, so a unit test can drive it byte by
// byte with a fake Driver (Envoy's DecoderImpl + DecoderCallbacks; the
// driver owns the buffers as PgBouncer's sbuf does, the engine decides).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/common/config.h"
#include "proxy/common/limiter.h"
#include "proxy/common/policy.h"
#include "proxy/common/records.h"
#include "proxy/common/verifier_answer.h"

namespace dbward::tls {
class RsaKey;
}

namespace dbward::proxy::engine {

// Bytes received from one side and not yet used. The driver appends; the
// engine consumes from the front and leaves what it has no use for yet.
class ByteQueue {
 public:
  ByteQueue() = default;
  ByteQueue(ByteQueue&&) = default;
  ByteQueue& operator=(ByteQueue&&) = default;
  ~ByteQueue();  // wiped: it may hold a password or a SCRAM verifier
  std::span<const uint8_t> data() const { return std::span<const uint8_t>(buf_).subspan(start_); }
  size_t size() const { return buf_.size() - start_; }
  bool empty() const { return size() == 0; }
  void Append(std::span<const uint8_t> bytes);
  void Consume(size_t n);
  // Everything, and the queue is empty (and wiped: it may hold a password).
  std::vector<uint8_t> TakeAll();
  void Clear();

 private:
  std::vector<uint8_t> buf_;
  size_t start_ = 0;
};

// How a leg's TLS travels: as the byte stream itself, or (TDS 7.x) with its
// handshake inside PRELOGIN packets and raw on TCP once the handshake is done.
enum class TlsTransport : uint8_t { kStream, kTdsPrelogin };
// Which of dbward's server contexts the client leg gets: the listener's
// client_tls, or its TDS 8.0 variant (TLS 1.3, ALPN tds/8.0).
enum class ClientTlsProfile : uint8_t { kStandard, kTdsStrict };

// What the driver reports about a leg once its TLS handshake is done.
struct TlsFacts {
  std::string version;
  std::string cipher;
  std::string alpn;
  // tls-server-end-point binding data of the server certificate on this leg
  // (dbward's own on the client leg, the backend's on the backend leg).
  std::vector<uint8_t> server_end_point;
};

// Where a backend leg goes: the listener's backend, or (TDS) the server the
// backend routed the login to.
struct BackendTarget {
  std::string host;
  uint16_t port = 0;
  std::string server_name;  // the name its certificate must carry
};

struct Failure {
  Outcome outcome = Outcome::kInternalError;
  Cause cause = Cause::kInternal;
  std::string error;  // the explanation, with the fix
};

// What the backend half of an engine (engine/upgrade.h) needs: a session's
// Driver, or the blocking socket of `dbward probe` and /readyz.
class UpgradeSink {
 public:
  virtual ~UpgradeSink() = default;
  virtual void SendToBackend(std::span<const uint8_t> bytes) = 0;
  // Whether the engine wants the backend's bytes (OnBackendData). Turning it
  // on delivers what is already queued.
  virtual void ReadBackend(bool on) = 0;
  // The verified TLS handshake with the backend, once everything queued for
  // it is out.
  virtual void StartBackendTls(TlsTransport transport) = 0;
};

// What an engine may ask for. Actions take effect in order: a TLS start
// waits until what was queued for that side before it is sent.
class Driver : public UpgradeSink {
 public:
  virtual void SendToClient(std::span<const uint8_t> bytes) = 0;
  // Whether the engine wants the client's bytes (OnClientData). Turning it
  // on delivers what is already queued.
  virtual void ReadClient(bool on) = 0;
  // dbward's TLS server handshake on the client leg, once everything queued
  // for the client is out. Unconsumed client input is where the client's TLS
  // stream starts (a ClientHello that shared a read with the request).
  virtual void StartClientTls(ClientTlsProfile profile, TlsTransport transport) = 0;
  // TDS login-only encryption: the client leg returns to plaintext now,
  // without close_notify, as the protocol says.
  virtual void EndClientTls() = 0;
  virtual void ConnectBackend() = 0;
  // TDS routing: the backend leg closes without a failure and a new one
  // opens to target; OnBackendConnected follows as after ConnectBackend.
  virtual void RedirectBackend(const BackendTarget& target) = 0;
  // The backend side failed: the driver closes the backend leg and offers the
  // failure to Engine::OnBackendFailure; unless the engine takes it over, the
  // session fails with the engine's NativeError.
  virtual void FailBackend(const Failure& failure) = 0;
  // Authentication is over: once both directions are flushed, unconsumed
  // input from either side goes to the other and the relay takes over.
  virtual void HandOffToRelay() = 0;
  // The session ends: message (protocol-native; may be empty) goes to the
  // client, then the connection closes.
  virtual void Fail(const Failure& failure, std::vector<uint8_t> message) = 0;
  // SCRAM mediation: the user's stored verifier (refresh: not from a cache).
  // The answer arrives through Engine::OnVerifier, never inside this call.
  virtual void LookupVerifier(const std::string& user, const std::string& database, bool refresh) = 0;
  // Asked where the protocol names the user, before any password: the
  // client certificate requirement (client_tls.verify, client_tls.allow) and
  // then the listener's policy for the client as the engine knows it now
  // (user, application, library, encryption). Denied, with the reason
  // naming the rule or the certificate, or let through (a warn rule only
  // records itself).
  struct Admission {
    bool denied = false;
    Cause cause = Cause::kPolicyDenied;
    std::string error;
    // A policy denial: the protection the rule wants, for the engine to add
    // the protocol's own advice (sslmode=..., Encrypt=...). Unset: the
    // error already says what to change.
    std::optional<ProtectionLevel> required;
  };
  virtual Admission Admit() = 0;
  // The client is logged in; the engine still watches a little (PostgreSQL:
  // the first command, for a SET application_name). The session counts as
  // set up: the handshake deadline ends, the idle timeout applies.
  virtual void SetupComplete() = 0;
};

// What the audit event says about the client and its login, as the engine
// learnt it.
struct ClientFacts {
  ClientEncryption encryption = ClientEncryption::kNone;
  BypassSet bypass{BypassReason::kPlaintext};
  std::string user, database, application, client_library, client_host, protocol_version;
  std::string note;
  std::optional<bool> tds_prelogin;  // tds: the client began with PRELOGIN (false: LOGIN7 first)
  bool logged_in = false;            // the backend accepted the login
  // The client said what it wants (SSLRequest, StartupMessage, PRELOGIN,
  // LOGIN7, HandshakeResponse, a ClientHello). Until then there is nothing
  // to audit about its encryption: a health check or port scan.
  bool declared = false;
  std::string routed_to;             // tds: HOST:PORT the backend routed the login to
};

// What an engine needs to know about its listener.
struct EngineContext {
  const ListenerConfig* listener = nullptr;
  bool client_tls = false;         // client_tls is configured
  const tls::RsaKey* rsa_key = nullptr;  // mysql: for full authentication on a plaintext client leg
  bool scram_mediation = false;          // postgres: scram is configured and its verifiers are at hand
  FailureLimiter* auth_failures = nullptr;  // failed mediated logins per client address
  std::string client_ip;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Right after accept.
  virtual void Start() = 0;
  // The client's address changed before Start (a PROXY protocol header).
  void SetClientIp(std::string ip) { context_.client_ip = std::move(ip); }
  // Instead of Start, when the session may not go on (max_handshakes): the
  // client hears why in its protocol as soon as it can, and nothing is
  // asked of the backend.
  virtual void StartRefused(const Failure& failure) { driver_.Fail(failure, {}); }
  virtual void OnClientData(ByteQueue& /*in*/) {}
  virtual void OnClientTlsReady(const TlsFacts& /*facts*/) {}
  // TCP to the backend is up (still plaintext); address: what dbward connected to.
  virtual void OnBackendConnected(const std::string& address) = 0;
  // The backend's certificate validated and TLS is up.
  virtual void OnBackendTlsReady(const TlsFacts& facts) = 0;
  // warm_backends: whether the backend leg may be one made before this
  // client came, already past the protocol's TLS upgrade (PostgreSQL: TLS up
  // and verified, the server waiting for a StartupMessage).
  virtual bool TakesWarmBackend() const { return false; }
  // Instead of OnBackendConnected and OnBackendTlsReady: such a leg.
  virtual void OnBackendWarm(const std::string& /*address*/, const TlsFacts& /*facts*/) {}
  virtual void OnBackendData(ByteQueue& /*in*/) {}
  // The backend failed before the relay and dbward closed it. An engine
  // that can only report it later in its protocol (TDS answers LOGIN7 with
  // the error) returns true and carries on with the client alone.
  virtual bool OnBackendFailure(const Failure& /*failure*/) { return false; }
  // The protocol-native error for a failure the engine did not detect
  // itself (timeouts, backend failures); empty when the protocol has no way
  // to say it at this point and the connection is just closed.
  virtual std::vector<uint8_t> NativeError(const Failure& /*failure*/) { return {}; }
  // The answer to Driver::LookupVerifier.
  virtual void OnVerifier(VerifierAnswer /*answer*/) {}
  // The message a client ends a session with (PostgreSQL Terminate, MySQL
  // COM_QUIT); empty when the protocol has none.
  virtual std::span<const uint8_t> Goodbye() const { return {}; }

  const ClientFacts& facts() const { return facts_; }

 protected:
  Engine(Driver& driver, const EngineContext& context) : driver_(driver), context_(context) {}
  const ListenerConfig& listener() const { return *context_.listener; }
  void Fail(Outcome outcome, Cause cause, std::string error, std::vector<uint8_t> message = {}) {
    driver_.Fail(Failure{outcome, cause, std::move(error)}, std::move(message));
  }
  // Fails with the protocol-native error this engine gives at this point.
  void FailNative(Outcome outcome, Cause cause, std::string error) {
    Failure f{outcome, cause, std::move(error)};
    driver_.Fail(f, NativeError(f));
  }

  Driver& driver_;
  EngineContext context_;
  ClientFacts facts_;
};

std::unique_ptr<Engine> NewEngine(Driver& driver, const EngineContext& context);

}  // namespace dbward::proxy::engine

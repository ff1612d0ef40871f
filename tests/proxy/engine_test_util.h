// Driving a protocol engine byte by byte without sockets: FakeDriver records
// every action the engine asks for, in order, and behaves like the session
// where the engine depends on it (reading turned on delivers what is queued;
// a backend failure is offered to the engine first; unconsumed client bytes
// start the client's TLS).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/common/config.h"
#include "proxy/engine/engine.h"
#include "tests/protocol/bytes_util.h"

namespace dbward::proxy::engine::testing {

using protocol::testutil::Bytes;

struct Action {
  enum Kind {
    kSendClient,
    kSendBackend,
    kStartClientTls,
    kEndClientTls,
    kConnect,
    kRedirect,
    kStartBackendTls,
    kHandOff,
    kFail,
    kLookupVerifier,
    kSetupComplete,
  };
  Action(Kind k, Bytes b = {}) : kind(k), bytes(std::move(b)) {}
  Kind kind;
  Bytes bytes;  // sends, and a failure's native message
  ClientTlsProfile profile = ClientTlsProfile::kStandard;
  TlsTransport transport = TlsTransport::kStream;
  Failure failure;
  BackendTarget target;  // kRedirect
  std::string user;      // kLookupVerifier
  bool refresh = false;
};

const char* KindName(Action::Kind k);
// "send-client(5) connect start-backend-tls(stream) ..." for failure messages.
std::string Describe(const std::vector<Action>& actions);

class FakeDriver final : public Driver {
 public:
  void Bind(Engine* engine) { engine_ = engine; }

  void SendToClient(std::span<const uint8_t> b) override;
  void SendToBackend(std::span<const uint8_t> b) override;
  void ReadClient(bool on) override;
  void ReadBackend(bool on) override;
  void StartClientTls(ClientTlsProfile profile, TlsTransport transport) override;
  void EndClientTls() override { Record(Action(Action::kEndClientTls)); }
  void ConnectBackend() override { Record(Action(Action::kConnect)); }
  // As the session does: the old leg is gone, its unread bytes with it.
  void RedirectBackend(const BackendTarget& target) override;
  void StartBackendTls(TlsTransport transport) override;
  void FailBackend(const Failure& f) override;
  void HandOffToRelay() override;
  void Fail(const Failure& f, std::vector<uint8_t> message) override;
  void LookupVerifier(const std::string& user, const std::string& database, bool refresh) override;
  void SetupComplete() override { Record(Action(Action::kSetupComplete)); }
  // The policy answer the test sets; each question is counted.
  Admission Admit() override {
    ++admits;
    return admission;
  }

  // Bytes from a side, delivered as the session would (when reading).
  void FromClient(const Bytes& b);
  void FromBackend(const Bytes& b);
  // After the test called the engine itself: deliver what reading turned on.
  void Settle();

  std::vector<Action> actions;
  Bytes to_client, to_backend;   // everything sent, concatenated
  Bytes client_tls_start;        // unconsumed client bytes handed to TLS
  Bytes relayed_up, relayed_down;  // unconsumed bytes handed to the relay
  bool client_reading = false, backend_reading = false;
  bool handed_off = false;
  std::optional<Failure> failure;
  Bytes failure_message;
  bool backend_failed = false;
  Admission admission;
  int admits = 0;

  ByteQueue client_in, backend_in;

 private:
  void Record(Action a);
  Engine* engine_ = nullptr;
  bool client_dirty_ = false, backend_dirty_ = false;
  int depth_ = 0;
};

// An engine of one protocol with its fake driver.
struct Harness {
  explicit Harness(Protocol protocol, bool client_tls = true);
  void Start();
  void ClientTlsReady(const TlsFacts& facts);
  void BackendConnected();
  void BackendTlsReady(const TlsFacts& facts);
  // Actions recorded since the last call.
  std::vector<Action> Take();
  size_t seen = 0;
  ListenerConfig listener;
  // SCRAM mediation (postgres): on with verifiers at hand.
  bool scram_mediation = false;
  FailureLimiter* auth_failures = nullptr;
  std::string client_ip = "10.0.0.7";
  FakeDriver driver;
  std::unique_ptr<Engine> engine;
  bool client_tls;
};

// Facts of a finished TLS handshake as the session reports them.
TlsFacts Facts(const std::string& alpn = "", Bytes end_point = {0xaa});

}  // namespace dbward::proxy::engine::testing

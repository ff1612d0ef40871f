// The plaintext part of a protocol's TLS upgrade with the backend, where
// dbward is the client: PostgreSQL's SSLRequest and its one-byte answer, the
// MySQL greeting and SSLRequest, the TDS PRELOGIN exchange (before TLS for
// 7.x, inside it for 8.0). One implementation serves sessions, `dbward
// probe` and /readyz, so all three ask the server the same way and judge
// its answer by the same rules.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "protocol/mysql.h"
#include "protocol/tds.h"
#include "proxy/common/config.h"
#include "proxy/common/records.h"
#include "proxy/engine/engine.h"

namespace dbward::proxy::engine {

struct UpgradeFailure {
  enum class Kind {
    kRefused,      // it speaks the protocol but will not do TLS
    kDenied,       // it turned the connection away (e.g. MySQL ERR 1130)
    kNotProtocol,  // the answer is not this protocol
  };
  Kind kind = Kind::kNotProtocol;
  Outcome outcome = Outcome::kBackendError;
  Cause cause = Cause::kBackendError;
  std::string fact;   // what the server did, as `dbward probe` says it (no address)
  std::string error;  // the same for a session's log, audit and client, with the address and the fix
  std::vector<uint8_t> server_message;  // the server's own refusal, to pass on (MySQL ERR packet)
};

class BackendUpgrade {
 public:
  enum class State {
    kWaiting,   // for the backend's bytes (OnData)
    kGreeting,  // mysql: the greeting is in; RequestTls (or Proceed) sends the SSLRequest
    kTls,       // StartBackendTls was asked for; call OnTlsReady once the handshake is done
    kDone,      // the backend leg is verified TLS and the protocol's upgrade is complete
    kFailed,    // see failure()
  };

  struct Options {
    Protocol protocol = Protocol::kTcp;
    bool pg_direct = false;   // PostgreSQL 17 direct TLS: no SSLRequest
    bool tds_strict = false;  // TDS 8.0: TLS first, PRELOGIN inside it
    // TDS: the PRELOGIN to send (the client's, with ENCRYPTION set to ON);
    // DefaultClientPrelogin() when there is none.
    protocol::tds::Prelogin prelogin = protocol::tds::DefaultClientPrelogin();
  };

  static std::unique_ptr<BackendUpgrade> New(const Options& options, UpgradeSink& sink);
  virtual ~BackendUpgrade() = default;

  // TCP is up; address is what was connected to (for messages).
  virtual State OnConnected(const std::string& address) = 0;
  virtual State OnData(ByteQueue& in) = 0;
  virtual State OnTlsReady() = 0;
  // Go on without a client: the MySQL SSLRequest from the greeting alone.
  virtual State Proceed() { return state_; }
  // What kWaiting waits for, for timeout messages: "answer to SSLRequest".
  virtual const char* awaiting() const = 0;

  State state() const { return state_; }
  const UpgradeFailure& failure() const { return failure_; }
  // What the server told about itself: "PostgreSQL (SSLRequest answered
  // 'S')", "MariaDB 10.11.6", "SQL Server 16.0.1000, PRELOGIN ENCRYPTION=ON".
  const std::string& server_info() const { return server_info_; }

 protected:
  explicit BackendUpgrade(UpgradeSink& sink) : sink_(sink) {}
  State Failed(UpgradeFailure f) {
    failure_ = std::move(f);
    return state_ = State::kFailed;
  }

  UpgradeSink& sink_;
  State state_ = State::kWaiting;
  UpgradeFailure failure_;
  std::string server_info_;
  std::string address_;
};

// MySQL / MariaDB: the server speaks first.
class MysqlUpgrade final : public BackendUpgrade {
 public:
  explicit MysqlUpgrade(UpgradeSink& sink) : BackendUpgrade(sink) {}
  State OnConnected(const std::string& address) override;
  State OnData(ByteQueue& in) override;
  State OnTlsReady() override;
  State Proceed() override { return RequestTls({}); }
  const char* awaiting() const override { return "MySQL greeting"; }
  // Sends the SSLRequest (sequence id 1) built from the client's
  // HandshakeResponse payload, or from the greeting when it is empty, and
  // starts TLS.
  State RequestTls(std::span<const uint8_t> client_response);

  // kGreeting and later: the greeting as the server sent it.
  const protocol::mysql::Greeting& greeting() const { return greeting_; }
  const std::vector<uint8_t>& greeting_payload() const { return greeting_payload_; }

 private:
  protocol::mysql::Greeting greeting_;
  std::vector<uint8_t> greeting_payload_;
};

// TDS: PRELOGIN with ENCRYPTION=ON before TLS (7.x) or inside it (8.0).
class TdsUpgrade final : public BackendUpgrade {
 public:
  TdsUpgrade(UpgradeSink& sink, protocol::tds::Prelogin prelogin, bool strict)
      : BackendUpgrade(sink), prelogin_(std::move(prelogin)), strict_(strict) {}
  State OnConnected(const std::string& address) override;
  State OnData(ByteQueue& in) override;
  State OnTlsReady() override;
  const char* awaiting() const override { return "PRELOGIN answer"; }
  // The server's PRELOGIN answer (kTls or later for 7.x, kDone for 8.0).
  const protocol::tds::Prelogin& answer() const { return answer_; }

 private:
  void SendPrelogin();
  protocol::tds::Prelogin prelogin_;
  protocol::tds::Prelogin answer_;
  bool strict_;
};

}  // namespace dbward::proxy::engine

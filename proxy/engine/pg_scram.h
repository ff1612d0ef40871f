// SCRAM mediation (postgres listeners with `scram`): with the user's stored
// verifier, dbward is the SCRAM server to the client and the SCRAM client to
// the backend, each leg with its own nonces and its own channel binding.
//
//   client leg   AuthenticationSASL offers SCRAM-SHA-256-PLUS (on TLS) and
//                SCRAM-SHA-256; the binding is tls-server-end-point of the
//                certificate dbward presented (its own, or a canary). The
//                client's proof is checked against StoredKey and yields its
//                ClientKey: a wrong password ends here with PostgreSQL's
//                own 28P01, the backend never sees the attempt.
//   backend leg  SCRAM-SHA-256-PLUS when offered (always over the verified
//                TLS leg), bound to the backend's certificate, proved with
//                the recovered ClientKey; the server's signature is checked
//                against ServerKey: a backend that cannot produce it does
//                not hold the verifier and the login fails closed.
//
// The backend's server-first message carries the salt and iteration count
// of the verifier it holds. They are compared with dbward's before the
// client hears anything, so a password changed since dbward's lookup is
// noticed (and the verifier looked up afresh) instead of failing the user.
//
// Sans-I/O like the engines: it consumes message bodies and says what to
// send where. ClientKey, proofs and the verifier are wiped when it goes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/postgres.h"
#include "protocol/scram.h"
#include "proxy/engine/engine.h"
#include "tls/scram_keys.h"

namespace dbward::proxy::engine {

class ScramMediator {
 public:
  enum class Step {
    kContinue,      // send what Out holds, read the side wanted()
    kNeedVerifier,  // the backend holds another verifier: look it up afresh, then Refreshed()
    kLoggedIn,      // the backend said AuthenticationOk; Out holds the client's SASLFinal + AuthenticationOk
    kFailed,        // failure() says why; Out's client bytes are the client's ErrorResponse
  };
  enum class Side { kClient, kBackend };
  struct Out {
    std::vector<uint8_t> to_client, to_backend;
  };

  // client_end_point: tls-server-end-point hash of dbward's certificate on
  // the client leg (empty on a plaintext leg); backend_end_point: the
  // backend's.
  ScramMediator(protocol::scram::Verifier verifier, std::string user, std::vector<uint8_t> client_end_point,
                std::vector<uint8_t> backend_end_point, const std::vector<std::string>& backend_mechanisms);
  ~ScramMediator();
  ScramMediator(const ScramMediator&) = delete;
  ScramMediator& operator=(const ScramMediator&) = delete;

  // The AuthenticationSASL the client gets in place of the backend's.
  std::vector<uint8_t> ClientOffer() const;
  Step OnClient(const protocol::pg::Message& m, Out* out);
  Step OnBackend(const protocol::pg::Message& m, Out* out);
  // The verifier looked up afresh after kNeedVerifier (or none).
  Step Refreshed(const protocol::scram::Verifier* verifier, Out* out);

  Side wanted() const { return wanted_; }
  const Failure& failure() const { return failure_; }
  // "SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend".
  std::string Summary() const;
  // The client's proof was wrong (for the failure rate limit).
  bool wrong_password() const { return wrong_password_; }

 private:
  enum class State { kClientFirst, kClientFirstData, kBackendFirst, kClientFinal, kBackendFinal, kBackendOk, kDone };

  Step Fail(Outcome outcome, Cause cause, std::string error, const protocol::scram::Error* client_error, Out* out);
  Step ClientFirst(std::string_view data, Out* out);
  Step AnswerClientFirst(Out* out);

  protocol::scram::Verifier verifier_;
  std::string user_;
  std::vector<uint8_t> client_end_point_, backend_end_point_;
  bool backend_plus_ = false;
  bool client_plus_offered_ = false;
  State state_ = State::kClientFirst;
  Side wanted_ = Side::kClient;
  Failure failure_;
  bool wrong_password_ = false;
  bool refreshed_ = false;

  // Client leg (A) and backend leg (B).
  bool client_chose_plus_ = false;
  protocol::scram::ClientFirst first_a_;
  std::string server_first_a_, nonce_a_, auth_a_;
  protocol::scram::Binding binding_b_ = protocol::scram::Binding::kNone;
  std::string nonce_b_, bare_b_, server_first_b_, auth_b_;
  protocol::scram::ServerFirst sf_b_;
  tls::scram::Key client_key_;
};

}  // namespace dbward::proxy::engine

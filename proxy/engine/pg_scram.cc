#include "proxy/engine/pg_scram.h"

#include <openssl/mem.h>

#include <algorithm>

namespace dbward::proxy::engine {
namespace {

namespace pg = protocol::pg;
namespace scram = protocol::scram;
namespace keys = tls::scram;

std::vector<uint8_t> FatalError(const scram::Error& e) {
  pg::ErrorFields f;
  f.severity = "FATAL";
  f.sqlstate = e.sqlstate;
  f.message = e.message;
  f.detail = e.detail;
  return pg::EncodeErrorResponse(f);
}

void Wipe(std::string* s) {
  OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

bool Has(const std::vector<std::string>& list, std::string_view m) {
  return std::find(list.begin(), list.end(), m) != list.end();
}

}  // namespace

ScramMediator::ScramMediator(scram::Verifier verifier, std::string user, std::vector<uint8_t> client_end_point,
                             std::vector<uint8_t> backend_end_point, const std::vector<std::string>& backend_mechanisms)
    : verifier_(std::move(verifier)),
      user_(std::move(user)),
      client_end_point_(std::move(client_end_point)),
      backend_end_point_(std::move(backend_end_point)) {
  // -PLUS to the backend whenever it offers it: its leg is always verified TLS.
  backend_plus_ = Has(backend_mechanisms, scram::kMechanismPlus) && !backend_end_point_.empty();
  client_plus_offered_ = !client_end_point_.empty();
  binding_b_ = backend_plus_ ? scram::Binding::kBound : scram::Binding::kNone;
}

ScramMediator::~ScramMediator() {
  verifier_.Wipe();
  for (std::string* s : {&auth_a_, &auth_b_, &server_first_a_, &server_first_b_}) Wipe(s);
}

std::vector<uint8_t> ScramMediator::ClientOffer() const {
  std::vector<std::string> mechs;
  if (client_plus_offered_) mechs.emplace_back(scram::kMechanismPlus);
  mechs.emplace_back(scram::kMechanism);
  return pg::EncodeAuthenticationSasl(mechs);
}

std::string ScramMediator::Summary() const {
  return std::string(client_chose_plus_ ? scram::kMechanismPlus : scram::kMechanism) + " to the client, " +
         std::string(backend_plus_ ? scram::kMechanismPlus : scram::kMechanism) + " to the backend";
}

ScramMediator::Step ScramMediator::Fail(Outcome outcome, Cause cause, std::string error,
                                        const scram::Error* client_error, Out* out) {
  state_ = State::kDone;
  failure_ = {outcome, cause, std::move(error)};
  scram::Error e = client_error != nullptr ? *client_error
                                            : scram::Error{"08006", "dbward: " + failure_.error, ""};
  out->to_client = FatalError(e);
  return Step::kFailed;
}

ScramMediator::Step ScramMediator::OnClient(const pg::Message& m, Out* out) {
  if (m.type != 'p') {
    scram::Error e{"08P01", "expected SASL response, got message type " + std::to_string(m.type), ""};
    return Fail(Outcome::kClientError, Cause::kMalformed, e.message, &e, out);
  }
  if (m.body.size() > scram::kMaxMessage + 64) {
    scram::Error e{"08P01", "malformed SCRAM message", "The message is too long."};
    return Fail(Outcome::kClientError, Cause::kTooLarge, "SASL message longer than 1024 bytes", &e, out);
  }
  if (state_ == State::kClientFirst) {
    pg::SaslInitialResponse r;
    if (!pg::ParseSaslInitialResponse(m.body, &r)) {
      scram::Error e{"08P01", "malformed SASLInitialResponse", ""};
      return Fail(Outcome::kClientError, Cause::kMalformed, e.message, &e, out);
    }
    bool plus = r.mechanism == scram::kMechanismPlus;
    if ((plus && !client_plus_offered_) || (!plus && r.mechanism != scram::kMechanism)) {
      scram::Error e{"08P01", "client selected an invalid SASL authentication mechanism", ""};
      return Fail(Outcome::kClientError, Cause::kMalformed, e.message + " (" + r.mechanism + ")", &e, out);
    }
    client_chose_plus_ = plus;
    if (!r.has_data) {
      // The client-first message follows in a SASLResponse.
      state_ = State::kClientFirstData;
      out->to_client = pg::EncodeAuthenticationSaslContinue("");
      return Step::kContinue;
    }
    return ClientFirst(r.data, out);
  }
  if (state_ == State::kClientFirstData) {
    return ClientFirst(std::string_view(reinterpret_cast<const char*>(m.body.data()), m.body.size()), out);
  }
  if (state_ != State::kClientFinal) {
    scram::Error e{"08P01", "unexpected SASL response", ""};
    return Fail(Outcome::kClientError, Cause::kMalformed, e.message, &e, out);
  }
  // client-final-message: binding, nonce, proof.
  std::string_view text(reinterpret_cast<const char*>(m.body.data()), m.body.size());
  scram::ClientFinal cf;
  if (std::optional<scram::Error> e = scram::ParseClientFinal(text, &cf)) {
    return Fail(Outcome::kClientError, Cause::kMalformed, "SCRAM: " + e->message + ": " + e->detail, &*e, out);
  }
  const std::string expected = scram::ExpectedChannelBinding(first_a_, client_end_point_);
  if (cf.channel_binding != expected) {
    scram::Error e = first_a_.binding == scram::Binding::kBound
                         ? scram::Error{"28000", "SCRAM channel binding check failed", ""}
                         : scram::Error{"08P01", "unexpected SCRAM channel-binding attribute in client-final-message", ""};
    return Fail(Outcome::kAuthFailed, Cause::kAuthFailed,
                "the client's SCRAM channel binding does not match dbward's certificate (" + e.message + ")", &e, out);
  }
  if (cf.nonce != nonce_a_) {
    scram::Error e{"08P01", "invalid SCRAM response", "Nonce does not match."};
    return Fail(Outcome::kClientError, Cause::kMalformed, "SCRAM nonce does not match", &e, out);
  }
  auth_a_ = scram::AuthMessage(first_a_.bare, server_first_a_, cf.without_proof);
  if (!keys::VerifyClientProof(verifier_.stored_key, auth_a_, cf.proof, &client_key_)) {
    wrong_password_ = true;
    scram::Error e{"28P01", "password authentication failed for user \"" + user_ + "\"", ""};
    return Fail(Outcome::kAuthFailed, Cause::kAuthFailed,
                "password authentication failed for user " + user_ + " (checked by dbward against the user's SCRAM "
                "verifier; no proof was sent to the backend)",
                &e, out);
  }
  // The same ClientKey proves the user to the backend, over its own binding.
  const std::string without_proof = scram::EncodeClientFinalWithoutProof(binding_b_, backend_end_point_, sf_b_.nonce);
  auth_b_ = scram::AuthMessage(bare_b_, server_first_b_, without_proof);
  keys::Key proof = keys::ClientProof(client_key_, auth_b_);
  client_key_ = keys::Key();
  std::string final_b = scram::WithProof(without_proof, proof);
  out->to_backend = pg::EncodeSaslResponse(final_b);
  Wipe(&final_b);
  state_ = State::kBackendFinal;
  wanted_ = Side::kBackend;
  return Step::kContinue;
}

ScramMediator::Step ScramMediator::ClientFirst(std::string_view data, Out* out) {
  if (std::optional<scram::Error> e = scram::ParseClientFirst(data, &first_a_)) {
    Outcome o = e->sqlstate.rfind("28", 0) == 0 ? Outcome::kAuthFailed : Outcome::kClientError;
    return Fail(o, o == Outcome::kAuthFailed ? Cause::kAuthFailed : Cause::kMalformed,
                "SCRAM: " + e->message + (e->detail.empty() ? "" : ": " + e->detail), &*e, out);
  }
  if (std::optional<scram::Error> e = scram::CheckBindingChoice(first_a_, client_chose_plus_, client_plus_offered_)) {
    Outcome o = e->sqlstate.rfind("28", 0) == 0 ? Outcome::kAuthFailed : Outcome::kClientError;
    return Fail(o, o == Outcome::kAuthFailed ? Cause::kAuthFailed : Cause::kMalformed,
                "SCRAM: " + e->message + (e->detail.empty() ? "" : ": " + e->detail), &*e, out);
  }
  // Start the backend leg now: its server-first tells which verifier it holds.
  nonce_b_ = keys::RandomNonce();
  const std::string first_b = scram::EncodeClientFirst(binding_b_, nonce_b_);
  bare_b_ = first_b.substr(scram::GsHeader(binding_b_).size());
  out->to_backend = pg::EncodeSaslInitialResponse(backend_plus_ ? scram::kMechanismPlus : scram::kMechanism, first_b);
  state_ = State::kBackendFirst;
  wanted_ = Side::kBackend;
  return Step::kContinue;
}

ScramMediator::Step ScramMediator::AnswerClientFirst(Out* out) {
  if (sf_b_.salt != verifier_.salt || sf_b_.iterations != verifier_.iterations) {
    if (!refreshed_) {
      refreshed_ = true;
      return Step::kNeedVerifier;
    }
    return Fail(Outcome::kBackendError, Cause::kScramVerifierMismatch,
                "the backend holds another SCRAM verifier for user " + user_ +
                    " than the one dbward looked up (salt or iteration count differ, even after a fresh lookup); "
                    "check that scram.auth_query/auth_file reads the same server's pg_authid",
                nullptr, out);
  }
  nonce_a_ = first_a_.nonce + keys::RandomNonce();
  server_first_a_ = scram::EncodeServerFirst(nonce_a_, verifier_.salt, verifier_.iterations);
  out->to_client = pg::EncodeAuthenticationSaslContinue(server_first_a_);
  state_ = State::kClientFinal;
  wanted_ = Side::kClient;
  return Step::kContinue;
}

ScramMediator::Step ScramMediator::Refreshed(const scram::Verifier* verifier, Out* out) {
  if (verifier == nullptr) {
    return Fail(Outcome::kBackendError, Cause::kScramVerifierMismatch,
                "the backend holds another SCRAM verifier for user " + user_ +
                    " than the one dbward had, and a fresh lookup found none",
                nullptr, out);
  }
  verifier_.Wipe();
  verifier_ = *verifier;
  return AnswerClientFirst(out);
}

ScramMediator::Step ScramMediator::OnBackend(const pg::Message& m, Out* out) {
  uint32_t code = 0;
  if (m.type != 'R' || !pg::ParseAuthCode(m.body, &code)) {
    return Fail(Outcome::kBackendError, Cause::kMalformed,
                "backend sent message type " + std::to_string(m.type) + " during SCRAM authentication", nullptr, out);
  }
  std::string data;
  switch (state_) {
    case State::kBackendFirst: {
      std::string why;
      if (code != pg::kAuthSaslContinue || !pg::ParseSaslData(m.body, pg::kAuthSaslContinue, &data) ||
          !scram::ParseServerFirst(data, nonce_b_, &sf_b_, &why)) {
        return Fail(Outcome::kBackendError, Cause::kMalformed,
                    "backend's SCRAM server-first-message: " + (why.empty() ? "unexpected message" : why), nullptr, out);
      }
      server_first_b_ = std::move(data);
      return AnswerClientFirst(out);
    }
    case State::kBackendFinal: {
      std::vector<uint8_t> signature;
      std::string why;
      if (code != pg::kAuthSaslFinal || !pg::ParseSaslData(m.body, pg::kAuthSaslFinal, &data) ||
          !scram::ParseServerFinal(data, &signature, &why)) {
        return Fail(Outcome::kBackendError, Cause::kMalformed,
                    "backend's SCRAM server-final-message: " + (why.empty() ? "unexpected message" : why), nullptr, out);
      }
      if (!keys::ConstantTimeEqual(signature, keys::ServerSignature(verifier_.server_key, auth_b_))) {
        return Fail(Outcome::kBackendError, Cause::kScramServerSignature,
                    "the backend's SCRAM server signature for user " + user_ +
                        " is wrong: it does not hold the user's verifier, so it is not the server it claims to be "
                        "(or the verifier changed); dbward does not log in there",
                    nullptr, out);
      }
      state_ = State::kBackendOk;
      return Step::kContinue;
    }
    case State::kBackendOk: {
      if (code != pg::kAuthOk) {
        return Fail(Outcome::kBackendError, Cause::kMalformed,
                    "backend sent authentication code " + std::to_string(code) + " after SCRAM instead of "
                    "AuthenticationOk", nullptr, out);
      }
      // The client's own SASLFinal, signed for its leg, then Ok.
      out->to_client = pg::EncodeAuthenticationSaslFinal(
          scram::EncodeServerFinal(keys::ServerSignature(verifier_.server_key, auth_a_)));
      std::vector<uint8_t> ok = pg::EncodeAuthenticationOk();
      out->to_client.insert(out->to_client.end(), ok.begin(), ok.end());
      state_ = State::kDone;
      return Step::kLoggedIn;
    }
    default:
      return Fail(Outcome::kBackendError, Cause::kMalformed, "backend spoke out of turn during SCRAM", nullptr, out);
  }
}

}  // namespace dbward::proxy::engine

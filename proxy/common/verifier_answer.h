// A user's stored SCRAM verifier as SCRAM mediation gets it (from
// scram.auth_file or scram.auth_query): what the protocol engine needs and
// the operations layer produces.
#pragma once

#include <string>

namespace dbward::proxy {

struct VerifierAnswer {
  enum class Kind {
    kScram,   // verifier holds a SCRAM-SHA-256 secret
    kNone,    // the user has none (unknown, md5, no password, expired): no mediation
    kFailed,  // the lookup itself failed (detail says why): no mediation
  };
  Kind kind = Kind::kNone;
  std::string verifier;  // a secret: wiped when the answer goes
  bool from_cache = false;
  std::string detail;

  VerifierAnswer() = default;
  VerifierAnswer(const VerifierAnswer&) = default;
  VerifierAnswer& operator=(const VerifierAnswer&) = default;
  VerifierAnswer(VerifierAnswer&&) = default;
  VerifierAnswer& operator=(VerifierAnswer&&) = default;
  ~VerifierAnswer();
};

}  // namespace dbward::proxy

// The SCRAM message and verifier parsers on arbitrary bytes: they never read
// past their input, errors carry a SQLSTATE and wording, and what parses
// re-encodes consistently (base64 round trips; a parsed client-first's
// pieces are parts of the message).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/scram.h"
#include "tests/fuzz/fuzz_check.h"

namespace scram = dbward::protocol::scram;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<uint8_t> decoded;
  if (scram::Base64Decode(in, &decoded)) FUZZ_CHECK(scram::Base64Encode(decoded) == in);
  FUZZ_CHECK(scram::Base64Decode(scram::Base64Encode(std::span<const uint8_t>(data, size)), &decoded));
  FUZZ_CHECK(decoded == std::vector<uint8_t>(data, data + size));

  scram::ClientFirst first;
  if (std::optional<scram::Error> e = scram::ParseClientFirst(in, &first)) {
    FUZZ_CHECK(e->sqlstate.size() == 5 && !e->message.empty());
  } else {
    FUZZ_CHECK(in.substr(0, first.gs2_header.size()) == first.gs2_header);
    FUZZ_CHECK(in.substr(first.gs2_header.size()) == first.bare);
    FUZZ_CHECK(scram::ValidNonce(first.nonce) && first.bare.find(first.nonce) != std::string::npos);
    for (bool plus : {false, true}) {
      for (bool offered : {false, true}) {
        if (auto e = scram::CheckBindingChoice(first, plus, offered)) FUZZ_CHECK(e->sqlstate.size() == 5);
      }
    }
  }
  scram::ClientFinal fin;
  if (!scram::ParseClientFinal(in, &fin)) {
    FUZZ_CHECK(fin.proof.size() == scram::kKeySize);
    FUZZ_CHECK(in.substr(0, fin.without_proof.size()) == fin.without_proof);
    FUZZ_CHECK(scram::WithProof(fin.without_proof, fin.proof).size() <= in.size() + 64);
  }
  scram::ServerFirst sf;
  std::string why;
  const std::string nonce = size > 4 ? std::string(in.substr(2, 2)) : "ab";
  if (scram::ParseServerFirst(in, nonce, &sf, &why)) {
    FUZZ_CHECK(sf.iterations > 0 && !sf.salt.empty() && sf.nonce.rfind(nonce, 0) == 0);
  }
  std::vector<uint8_t> sig;
  std::string err;
  if (scram::ParseServerFinal(in, &sig, &err)) FUZZ_CHECK(sig.size() == scram::kKeySize);
  scram::Verifier v;
  if (scram::ParseVerifier(in, &v, &why)) {
    FUZZ_CHECK(v.iterations > 0 && v.stored_key.size() == 32 && v.server_key.size() == 32 && !v.salt.empty());
  } else {
    FUZZ_CHECK(!why.empty());  // fixed sentences: the secret is never repeated
  }
  return 0;
}

#include "proxy/common/verifier_answer.h"

#include <openssl/mem.h>

namespace dbward::proxy {

VerifierAnswer::~VerifierAnswer() { OPENSSL_cleanse(verifier.data(), verifier.size()); }

}  // namespace dbward::proxy

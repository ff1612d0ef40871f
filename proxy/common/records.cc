#include "proxy/common/records.h"

#include <iterator>

namespace dbward::proxy {
namespace {

struct OutcomeInfo {
  const char* token;
  LogLevel level;
  bool backend_fault;
  bool setup_failure;
};
#define DBWARD_OUTCOME_INFO(name, token, level, backend, setup) {token, LogLevel::level, backend, setup},
constexpr OutcomeInfo kOutcomes[] = {DBWARD_OUTCOMES(DBWARD_OUTCOME_INFO)};
#undef DBWARD_OUTCOME_INFO

struct CauseInfo {
  const char* token;
  bool backend;
};
#define DBWARD_CAUSE_INFO(name, token, backend) {token, backend},
constexpr CauseInfo kCauses[] = {DBWARD_CAUSES(DBWARD_CAUSE_INFO)};
#undef DBWARD_CAUSE_INFO

#define DBWARD_TOKEN(name, token) token,
constexpr const char* kEncryptions[] = {DBWARD_CLIENT_ENCRYPTIONS(DBWARD_TOKEN)};
constexpr const char* kBypassReasons[] = {DBWARD_BYPASS_REASONS(DBWARD_TOKEN)};
#undef DBWARD_TOKEN
static_assert(std::size(kBypassReasons) == BypassSet::kCount);

template <typename Enum, typename Table, typename Get>
std::optional<Enum> Lookup(const Table& table, std::string_view token, Get get) {
  for (size_t i = 0; i < std::size(table); i++) {
    if (token == get(table[i])) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

}  // namespace

const char* Token(Outcome o) { return kOutcomes[static_cast<size_t>(o)].token; }
const char* Token(Cause c) { return kCauses[static_cast<size_t>(c)].token; }
const char* Token(ClientEncryption e) { return kEncryptions[static_cast<size_t>(e)]; }
const char* Token(BypassReason r) { return kBypassReasons[static_cast<size_t>(r)]; }
LogLevel LogLevelOf(Outcome o) { return kOutcomes[static_cast<size_t>(o)].level; }
bool IsBackendFault(Outcome o) { return kOutcomes[static_cast<size_t>(o)].backend_fault; }
bool CountsAsSetupFailure(Outcome o) { return kOutcomes[static_cast<size_t>(o)].setup_failure; }
bool IsBackendSide(Cause c) { return kCauses[static_cast<size_t>(c)].backend; }
bool IsAcceptedCertificate(BypassReason r) {
  return r == BypassReason::kAcceptedUntrusted || r == BypassReason::kAcceptedWrongName ||
         r == BypassReason::kAcceptedExpired;
}
bool IsAcceptedCertificateToken(std::string_view token) {
  if (std::optional<BypassReason> r = ParseBypassReason(token)) return IsAcceptedCertificate(*r);
  return token.starts_with("accepted-");
}

std::optional<Outcome> ParseOutcome(std::string_view t) {
  return Lookup<Outcome>(kOutcomes, t, [](const OutcomeInfo& i) { return i.token; });
}
std::optional<Cause> ParseCause(std::string_view t) {
  return Lookup<Cause>(kCauses, t, [](const CauseInfo& i) { return i.token; });
}
std::optional<ClientEncryption> ParseClientEncryption(std::string_view t) {
  return Lookup<ClientEncryption>(kEncryptions, t, [](const char* s) { return s; });
}
std::optional<BypassReason> ParseBypassReason(std::string_view t) {
  return Lookup<BypassReason>(kBypassReasons, t, [](const char* s) { return s; });
}

Cause CauseOf(tls::FailureCause cause) {
  switch (cause) {
    case tls::FailureCause::kUntrusted: return Cause::kUntrusted;
    case tls::FailureCause::kNameMismatch: return Cause::kNameMismatch;
    case tls::FailureCause::kExpired: return Cause::kExpired;
    case tls::FailureCause::kNotYetValid: return Cause::kNotYetValid;
    case tls::FailureCause::kBadPurpose: return Cause::kBadPurpose;
    case tls::FailureCause::kVerifyOther: return Cause::kVerifyFailed;
    case tls::FailureCause::kRevoked: return Cause::kRevoked;
    case tls::FailureCause::kCrl: return Cause::kCrl;
    case tls::FailureCause::kPinMismatch: return Cause::kPinMismatch;
    case tls::FailureCause::kProtocolVersion: return Cause::kTlsVersion;
    case tls::FailureCause::kNoSharedCipher: return Cause::kNoSharedCipher;
    case tls::FailureCause::kClientCertRequired: return Cause::kClientCertRequired;
    case tls::FailureCause::kPeerRejectedUs: return Cause::kPeerRejectedCertificate;
    case tls::FailureCause::kNotTls: return Cause::kNotTls;
    case tls::FailureCause::kReset: return Cause::kTlsReset;
    case tls::FailureCause::kNone:
    case tls::FailureCause::kTlsOther: return Cause::kTlsError;
  }
  return Cause::kTlsError;
}

BypassReason CanaryAccepted(tls::CanaryMode mode) {
  switch (mode) {
    case tls::CanaryMode::kUntrusted: return BypassReason::kAcceptedUntrusted;
    case tls::CanaryMode::kWrongName: return BypassReason::kAcceptedWrongName;
    case tls::CanaryMode::kExpired: return BypassReason::kAcceptedExpired;
  }
  return BypassReason::kAcceptedUntrusted;
}

std::vector<BypassReason> BypassSet::Reasons() const {
  std::vector<BypassReason> out;
  for (size_t i = 0; i < kCount; i++) {
    if (bits_.test(i)) out.push_back(static_cast<BypassReason>(i));
  }
  return out;
}

std::string BypassSet::Render() const {
  std::string out;
  for (BypassReason r : Reasons()) {
    if (!out.empty()) out.push_back(',');
    out += Token(r);
  }
  return out;
}

BypassSet BypassSet::Parse(std::string_view text, std::vector<std::string>* unknown) {
  BypassSet set;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view one = text.substr(0, comma);
    if (!one.empty()) {
      if (auto r = ParseBypassReason(one)) {
        set.Add(*r);
      } else if (unknown != nullptr) {
        unknown->emplace_back(one);
      }
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return set;
}

}  // namespace dbward::proxy

#include "protocol/scram.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace dbward::protocol::scram {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

Error Malformed(std::string detail) { return {"08P01", "malformed SCRAM message", std::move(detail)}; }

// Reads "<name>=<value>" up to the next ',' (or the end) from *s.
bool TakeAttribute(std::string_view* s, char name, std::string_view* value) {
  if (s->size() < 2 || (*s)[0] != name || (*s)[1] != '=') return false;
  size_t end = s->find(',');
  *value = s->substr(2, end == std::string_view::npos ? std::string_view::npos : end - 2);
  *s = end == std::string_view::npos ? std::string_view() : s->substr(end + 1);
  return true;
}

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  out += s.substr(0, 40);
  return out + "\"";
}

}  // namespace

std::string Base64Encode(std::span<const uint8_t> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = data[i] << 16;
    if (rest == 2) v |= data[i + 1] << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool Base64Decode(std::string_view text, std::vector<uint8_t>* out) {
  if (text.size() % 4 != 0) return false;
  std::vector<uint8_t> bytes;
  bytes.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int pad = 0;
    if (last && text[i + 3] == '=') pad = text[i + 2] == '=' ? 2 : 1;
    int s[4];
    for (int k = 0; k < 4 - pad; k++) {
      s[k] = Sextet(text[i + k]);
      if (s[k] < 0) return false;
    }
    for (int k = 4 - pad; k < 4; k++) s[k] = 0;
    // Canonical: the bits a padded group does not use are zero.
    if (pad == 1 && (s[2] & 3) != 0) return false;
    if (pad == 2 && (s[1] & 15) != 0) return false;
    uint32_t v = (s[0] << 18) | (s[1] << 12) | (s[2] << 6) | s[3];
    bytes.push_back(static_cast<uint8_t>(v >> 16));
    if (pad < 2) bytes.push_back(static_cast<uint8_t>(v >> 8));
    if (pad < 1) bytes.push_back(static_cast<uint8_t>(v));
  }
  *out = std::move(bytes);
  return true;
}

void Verifier::Wipe() {
  for (std::vector<uint8_t>* v : {&salt, &stored_key, &server_key}) {
    volatile uint8_t* p = v->data();
    for (size_t i = 0; i < v->size(); i++) p[i] = 0;
    v->clear();
  }
  iterations = 0;
}

bool ParseVerifier(std::string_view text, Verifier* out, std::string* why) {
  constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    *why = text.substr(0, 3) == "md5" ? "an md5 hash, not a SCRAM verifier" : "not a SCRAM-SHA-256 verifier";
    return false;
  }
  std::string_view rest = text.substr(kPrefix.size());
  size_t colon = rest.find(':'), dollar = rest.find('$');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon > dollar) {
    *why = "a SCRAM verifier without iterations:salt$StoredKey:ServerKey";
    return false;
  }
  Verifier v;
  std::string_view iter = rest.substr(0, colon);
  auto [end, ec] = std::from_chars(iter.data(), iter.data() + iter.size(), v.iterations);
  if (ec != std::errc() || end != iter.data() + iter.size() || v.iterations == 0) {
    *why = "a SCRAM verifier with an invalid iteration count";
    return false;
  }
  std::string_view keys = rest.substr(dollar + 1);
  size_t key_colon = keys.find(':');
  if (!Base64Decode(rest.substr(colon + 1, dollar - colon - 1), &v.salt) || v.salt.empty() ||
      key_colon == std::string_view::npos || !Base64Decode(keys.substr(0, key_colon), &v.stored_key) ||
      !Base64Decode(keys.substr(key_colon + 1), &v.server_key) || v.stored_key.size() != kKeySize ||
      v.server_key.size() != kKeySize) {
    v.Wipe();
    *why = "a SCRAM verifier whose salt or keys are not valid base64 of the right size";
    return false;
  }
  *out = std::move(v);
  return true;
}

bool ValidNonce(std::string_view nonce) {
  return !nonce.empty() && std::all_of(nonce.begin(), nonce.end(), [](char c) { return c >= 0x21 && c <= 0x7e && c != ','; });
}

std::optional<Error> ParseClientFirst(std::string_view m, ClientFirst* out) {
  if (m.empty() || m.size() > kMaxMessage || m.find('\0') != std::string_view::npos) {
    return Malformed("The message is empty, too long or contains a NUL byte.");
  }
  ClientFirst f;
  std::string_view s = m;
  if (s.substr(0, 2) == "n,") {
    f.binding = Binding::kNone;
    s.remove_prefix(2);
  } else if (s.substr(0, 2) == "y,") {
    f.binding = Binding::kClientOnly;
    s.remove_prefix(2);
  } else if (s.substr(0, 2) == "p=") {
    size_t comma = s.find(',');
    if (comma == std::string_view::npos) return Malformed("Unexpected end of input.");
    std::string_view type = s.substr(2, comma - 2);
    if (type != kChannelBindingType) {
      return Error{"08P01", "unsupported SCRAM channel-binding type " + Quoted(type), ""};
    }
    f.binding = Binding::kBound;
    s.remove_prefix(comma + 1);
  } else {
    return Malformed("Unexpected channel-binding flag " + Quoted(s.substr(0, 1)) + ".");
  }
  if (!s.empty() && s[0] == 'a') {
    return Error{"0A000", "client uses authorization identity, but it is not supported", ""};
  }
  if (s.empty() || s[0] != ',') return Malformed("Unexpected attribute in client-first-message.");
  s.remove_prefix(1);
  f.gs2_header = std::string(m.substr(0, m.size() - s.size()));
  f.bare = std::string(s);
  if (s.substr(0, 2) == "m=") return Error{"0A000", "client requires an unsupported SCRAM extension", ""};
  std::string_view user, nonce;
  if (!TakeAttribute(&s, 'n', &user)) return Malformed("Expected attribute \"n\" in client-first-message.");
  if (!TakeAttribute(&s, 'r', &nonce)) return Malformed("Expected attribute \"r\" in client-first-message.");
  if (!ValidNonce(nonce)) return Malformed("Non-printable characters in SCRAM nonce.");
  f.nonce = std::string(nonce);
  *out = std::move(f);  // extensions after the nonce are ignored, as PostgreSQL does
  return std::nullopt;
}

std::optional<Error> CheckBindingChoice(const ClientFirst& first, bool chose_plus, bool server_offers_plus) {
  if (chose_plus && first.binding != Binding::kBound) {
    return Malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel "
                     "binding data.");
  }
  if (!chose_plus && first.binding == Binding::kBound) {
    return Malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes "
                     "channel binding data.");
  }
  if (!chose_plus && first.binding == Binding::kClientOnly && server_offers_plus) {
    return Error{"28000", "SCRAM channel binding negotiation error",
                 "The client supports SCRAM channel binding but thinks the server does not.  However, this server "
                 "does support channel binding."};
  }
  return std::nullopt;
}

std::string EncodeServerFirst(std::string_view nonce, std::span<const uint8_t> salt, uint32_t iterations) {
  return "r=" + std::string(nonce) + ",s=" + Base64Encode(salt) + ",i=" + std::to_string(iterations);
}

bool ParseServerFirst(std::string_view m, std::string_view client_nonce, ServerFirst* out, std::string* why) {
  std::string_view s = m, nonce, salt, iter;
  if (s.substr(0, 2) == "m=") {
    *why = "the server requires an unsupported SCRAM extension";
    return false;
  }
  if (!TakeAttribute(&s, 'r', &nonce) || !TakeAttribute(&s, 's', &salt) || !TakeAttribute(&s, 'i', &iter)) {
    *why = "malformed SCRAM server-first-message";
    return false;
  }
  if (nonce.size() <= client_nonce.size() || nonce.substr(0, client_nonce.size()) != client_nonce ||
      !ValidNonce(nonce)) {
    *why = "invalid SCRAM response (nonce mismatch)";
    return false;
  }
  ServerFirst f;
  f.nonce = std::string(nonce);
  auto [end, ec] = std::from_chars(iter.data(), iter.data() + iter.size(), f.iterations);
  if (!Base64Decode(salt, &f.salt) || f.salt.empty() || ec != std::errc() || end != iter.data() + iter.size() ||
      f.iterations == 0) {
    *why = "malformed SCRAM server-first-message (salt or iteration count)";
    return false;
  }
  *out = std::move(f);
  return true;
}

std::optional<Error> ParseClientFinal(std::string_view m, ClientFinal* out) {
  if (m.empty() || m.size() > kMaxMessage || m.find('\0') != std::string_view::npos) {
    return Malformed("The message is empty, too long or contains a NUL byte.");
  }
  ClientFinal f;
  std::string_view s = m, cb, nonce;
  if (!TakeAttribute(&s, 'c', &cb)) return Malformed("Expected attribute \"c\" in client-final-message.");
  if (!TakeAttribute(&s, 'r', &nonce)) return Malformed("Expected attribute \"r\" in client-final-message.");
  // Extensions until the proof, which comes last.
  while (!s.empty() && s.substr(0, 2) != "p=") {
    size_t comma = s.find(',');
    if (comma == std::string_view::npos) return Malformed("Expected attribute \"p\" in client-final-message.");
    s.remove_prefix(comma + 1);
  }
  if (s.substr(0, 2) != "p=") return Malformed("Expected attribute \"p\" in client-final-message.");
  std::string_view proof = s.substr(2);
  if (proof.find(',') != std::string_view::npos) return Malformed("Garbage found at the end of client-final-message.");
  if (!Base64Decode(proof, &f.proof) || f.proof.size() != kKeySize) return Malformed("Malformed proof in client-final-message.");
  f.channel_binding = std::string(cb);
  f.nonce = std::string(nonce);
  f.without_proof = std::string(m.substr(0, m.size() - s.size() - 1));
  *out = std::move(f);
  return std::nullopt;
}

std::string ExpectedChannelBinding(const ClientFirst& first, std::span<const uint8_t> certificate_hash) {
  std::vector<uint8_t> input(first.gs2_header.begin(), first.gs2_header.end());
  if (first.binding == Binding::kBound) input.insert(input.end(), certificate_hash.begin(), certificate_hash.end());
  return Base64Encode(input);
}

std::string GsHeader(Binding binding) {
  switch (binding) {
    case Binding::kNone: return "n,,";
    case Binding::kClientOnly: return "y,,";
    case Binding::kBound: return "p=" + std::string(kChannelBindingType) + ",,";
  }
  return "n,,";
}

std::string EncodeClientFirst(Binding binding, std::string_view nonce) {
  return GsHeader(binding) + "n=,r=" + std::string(nonce);
}

std::string EncodeClientFinalWithoutProof(Binding binding, std::span<const uint8_t> certificate_hash,
                                          std::string_view nonce) {
  ClientFirst f;
  f.binding = binding;
  f.gs2_header = GsHeader(binding);
  return "c=" + ExpectedChannelBinding(f, certificate_hash) + ",r=" + std::string(nonce);
}

std::string WithProof(std::string_view without_proof, std::span<const uint8_t> proof) {
  return std::string(without_proof) + ",p=" + Base64Encode(proof);
}

std::string EncodeServerFinal(std::span<const uint8_t> signature) { return "v=" + Base64Encode(signature); }

bool ParseServerFinal(std::string_view m, std::vector<uint8_t>* signature, std::string* error) {
  std::string_view s = m, value;
  if (TakeAttribute(&s, 'e', &value)) {
    *error = "error received from server in SCRAM exchange: " + std::string(value);
    return false;
  }
  if (!TakeAttribute(&s, 'v', &value) || !Base64Decode(value, signature) || signature->size() != kKeySize) {
    *error = "malformed SCRAM server-final-message";
    return false;
  }
  return true;
}

std::string AuthMessage(std::string_view client_first_bare, std::string_view server_first,
                        std::string_view client_final_without_proof) {
  std::string out;
  out.reserve(client_first_bare.size() + server_first.size() + client_final_without_proof.size() + 2);
  out.append(client_first_bare).append(",").append(server_first).append(",").append(client_final_without_proof);
  return out;
}

}  // namespace dbward::protocol::scram

// Reading audit lines back: a strict parser for the flat JSON objects that
// JsonObject writes. Audit files hold strings chosen by unauthenticated
// clients, so every input is untrusted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

namespace dbward::proxy {

struct JsonScalar {
  enum class Kind { kString, kNumber, kBool, kNull };
  Kind kind = Kind::kNull;
  std::string text;  // the decoded string, or a number's literal text
  bool boolean = false;
};

// Keyed by name: audit readers look fields up, they never need the order.
using FlatJsonObject = std::map<std::string, JsonScalar, std::less<>>;

struct FlatJsonError {
  size_t column = 0;  // 1-based byte offset where parsing stopped
  std::string reason;
};

using FlatJsonResult = std::variant<FlatJsonObject, FlatJsonError>;

// One RFC 8259 object, surrounding whitespace allowed, nothing after it.
// Values must be strings, numbers, booleans or null: nested objects and
// arrays, duplicate keys, invalid UTF-8 and unpaired surrogates are errors.
FlatJsonResult ParseFlatJsonObject(std::string_view text);

}  // namespace dbward::proxy

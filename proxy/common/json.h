// The one JSON writer: audit events, `dbward probe --format json` and
// `dbward report --format json`. Objects keep keys in insertion order;
// strings are escaped per RFC 8259; nested values are composed from finished
// objects and arrays.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dbward::proxy {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not valid.
inline size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto cont = [&](size_t k) { return k < s.size() && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if (c == 0xF0 && c1 < 0x90) return 0;
    if (c == 0xF4 && c1 > 0x8F) return 0;
    return 4;
  }
  return 0;
}

// Audit lines carry strings chosen by unauthenticated clients (user names,
// application names): control characters are escaped and invalid UTF-8 is
// replaced with U+FFFD so every line stays valid JSON.
inline void AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(s, i);
      if (n == 0) {
        out->append("\\ufffd");
        i++;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    i++;
  }
  out->push_back('"');
}

class JsonObject {
 public:
  JsonObject() : text_("{") {}
  JsonObject& Str(std::string_view key, std::string_view value) {
    Key(key);
    AppendJsonString(&text_, value);
    return *this;
  }
  JsonObject& Int(std::string_view key, int64_t value) {
    Key(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonObject& Bool(std::string_view key, bool value) {
    Key(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  JsonObject& Null(std::string_view key) {
    Key(key);
    text_ += "null";
    return *this;
  }
  // Adds the string, or null when it is empty.
  JsonObject& StrOrNull(std::string_view key, std::string_view value) {
    return value.empty() ? Null(key) : Str(key, value);
  }
  // A value that is already JSON: a finished JsonObject or JsonArray.
  JsonObject& Raw(std::string_view key, std::string_view json) {
    Key(key);
    text_ += json;
    return *this;
  }
  std::string Finish() {
    text_.push_back('}');
    return std::move(text_);
  }

 private:
  void Key(std::string_view key) {
    if (text_.size() > 1) text_.push_back(',');
    AppendJsonString(&text_, key);
    text_.push_back(':');
  }
  std::string text_;
};

class JsonArray {
 public:
  JsonArray() : text_("[") {}
  JsonArray& Str(std::string_view value) {
    Sep();
    AppendJsonString(&text_, value);
    return *this;
  }
  JsonArray& Raw(std::string_view json) {
    Sep();
    text_ += json;
    return *this;
  }
  std::string Finish() {
    text_.push_back(']');
    return std::move(text_);
  }
  static std::string Strings(const std::vector<std::string>& items) {
    JsonArray a;
    for (const auto& s : items) a.Str(s);
    return a.Finish();
  }

 private:
  void Sep() {
    if (text_.size() > 1) text_.push_back(',');
  }
  std::string text_;
};

}  // namespace dbward::proxy

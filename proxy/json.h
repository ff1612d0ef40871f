// A minimal JSON object writer for audit events and logs: one flat object,
// keys in insertion order, strings escaped per RFC 8259.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dbward::proxy {

inline void AppendJsonString(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
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

}  // namespace dbward::proxy

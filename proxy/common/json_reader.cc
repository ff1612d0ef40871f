#include "proxy/common/json_reader.h"

#include <utility>

#include "proxy/common/json.h"

namespace dbward::proxy {
namespace {

// A read-only cursor over one line; every method reports failure through
// Fail() and leaves the position where the problem is.
class JsonCursor {
 public:
  explicit JsonCursor(std::string_view text) : text_(text) {}

  FlatJsonResult ParseObject() {
    FlatJsonObject object;
    SkipSpace();
    if (!Consume('{')) return Fail("expected '{'");
    SkipSpace();
    if (!Consume('}')) {
      while (true) {
        std::string key;
        size_t key_pos = pos_;
        if (Peek() != '"') return Fail("expected a string key");
        if (!ParseString(&key)) return error_;
        SkipSpace();
        if (!Consume(':')) return Fail("expected ':' after key");
        SkipSpace();
        JsonScalar value;
        if (!ParseValue(&value)) return error_;
        if (!object.emplace(std::move(key), std::move(value)).second) {
          pos_ = key_pos;
          return Fail("duplicate key");
        }
        SkipSpace();
        if (Consume(',')) {
          SkipSpace();
          continue;
        }
        if (Consume('}')) break;
        return Fail("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Fail("unexpected characters after the object");
    return object;
  }

 private:
  static constexpr int kEnd = -1;

  int Peek() const { return pos_ < text_.size() ? static_cast<unsigned char>(text_[pos_]) : kEnd; }

  bool Consume(char c) {
    if (Peek() != static_cast<unsigned char>(c)) return false;
    pos_++;
    return true;
  }

  bool ConsumeWord(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  void SkipSpace() {
    while (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r') pos_++;
  }

  FlatJsonError Fail(std::string reason) {
    error_ = FlatJsonError{pos_ + 1, std::move(reason)};
    return error_;
  }

  bool FailBool(std::string reason) {
    Fail(std::move(reason));
    return false;
  }

  bool ParseValue(JsonScalar* value) {
    int c = Peek();
    if (c == '"') {
      value->kind = JsonScalar::Kind::kString;
      return ParseString(&value->text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      value->kind = JsonScalar::Kind::kNumber;
      return ParseNumber(&value->text);
    }
    if (ConsumeWord("true")) {
      value->kind = JsonScalar::Kind::kBool;
      value->boolean = true;
      return true;
    }
    if (ConsumeWord("false")) {
      value->kind = JsonScalar::Kind::kBool;
      value->boolean = false;
      return true;
    }
    if (ConsumeWord("null")) {
      value->kind = JsonScalar::Kind::kNull;
      return true;
    }
    if (c == '{' || c == '[') return FailBool("nested objects and arrays are not audit values");
    return FailBool("expected a value");
  }

  static bool IsDigit(int c) { return c >= '0' && c <= '9'; }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool ParseNumber(std::string* out) {
    size_t start = pos_;
    Consume('-');
    if (Consume('0')) {
      // A leading zero stands alone.
    } else if (IsDigit(Peek())) {
      while (IsDigit(Peek())) pos_++;
    } else {
      return FailBool("invalid number");
    }
    if (Consume('.')) {
      if (!IsDigit(Peek())) return FailBool("invalid number");
      while (IsDigit(Peek())) pos_++;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      pos_++;
      if (!Consume('+')) Consume('-');
      if (!IsDigit(Peek())) return FailBool("invalid number");
      while (IsDigit(Peek())) pos_++;
    }
    out->assign(text_.substr(start, pos_ - start));
    return true;
  }

  bool ParseHex4(uint32_t* out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      int c = Peek();
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return FailBool("invalid \\u escape");
      }
      v = (v << 4) | digit;
      pos_++;
    }
    *out = v;
    return true;
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // After the backslash of a \u escape; joins surrogate pairs and refuses
  // halves, which have no UTF-8 form.
  bool ParseUnicodeEscape(std::string* out) {
    size_t start = pos_ - 2;
    uint32_t cp = 0;
    if (!ParseHex4(&cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      pos_ = start;
      return FailBool("unpaired surrogate");
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t low = 0;
      if (!ConsumeWord("\\u") || !ParseHex4(&low) || low < 0xDC00 || low > 0xDFFF) {
        pos_ = start;
        return FailBool("unpaired surrogate");
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(out, cp);
    return true;
  }

  bool ParseString(std::string* out) {
    size_t start = pos_;
    pos_++;  // the opening quote, checked by the caller
    while (true) {
      int c = Peek();
      if (c == kEnd) {
        pos_ = start;
        return FailBool("unterminated string");
      }
      if (c == '"') {
        pos_++;
        return true;
      }
      if (c < 0x20) return FailBool("control character in string");
      if (c >= 0x80) {
        size_t n = Utf8SequenceLength(text_, pos_);
        if (n == 0) return FailBool("invalid UTF-8");
        out->append(text_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      pos_++;
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      int e = Peek();
      pos_++;
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u':
          if (!ParseUnicodeEscape(out)) return false;
          break;
        default:
          pos_ -= 2;
          return FailBool("invalid escape");
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  FlatJsonError error_;
};

}  // namespace

FlatJsonResult ParseFlatJsonObject(std::string_view text) { return JsonCursor(text).ParseObject(); }

}  // namespace dbward::proxy

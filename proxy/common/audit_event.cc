#include "proxy/common/audit_event.h"

#include <charconv>
#include <map>

#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"

namespace dbward::proxy {
namespace {

void Write(JsonObject* j, const char* key, const std::optional<std::string>& v) {
  if (v) {
    j->Str(key, *v);
  } else {
    j->Null(key);
  }
}
void Write(JsonObject* j, const char* key, const std::optional<int64_t>& v) {
  if (v) {
    j->Int(key, *v);
  } else {
    j->Null(key);
  }
}
void Write(JsonObject* j, const char* key, const std::optional<bool>& v) {
  if (v) {
    j->Bool(key, *v);
  } else {
    j->Null(key);
  }
}

// Reads one scalar into a typed field; "" when it fits, else the problem.
std::string Read(const JsonScalar& s, std::optional<std::string>* out) {
  if (s.kind == JsonScalar::Kind::kNull) return "";
  if (s.kind != JsonScalar::Kind::kString) return "is not a string";
  *out = s.text;
  return "";
}
std::string Read(const JsonScalar& s, std::optional<int64_t>* out) {
  if (s.kind == JsonScalar::Kind::kNull) return "";
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.text.data(), s.text.data() + s.text.size(), v);
  if (s.kind != JsonScalar::Kind::kNumber || ec != std::errc() || end != s.text.data() + s.text.size()) {
    return "is not a whole number";
  }
  *out = v;
  return "";
}
std::string Read(const JsonScalar& s, std::optional<bool>* out) {
  if (s.kind == JsonScalar::Kind::kNull) return "";
  if (s.kind != JsonScalar::Kind::kBool) return "is not a boolean";
  *out = s.boolean;
  return "";
}

std::string Text(const std::optional<std::string>& v) { return v ? *v : "null"; }
std::string Text(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "null"; }
std::string Text(const std::optional<bool>& v) { return v ? (*v ? "true" : "false") : "null"; }

}  // namespace

const std::vector<AuditFieldInfo>& AuditSchema() {
  static const std::vector<AuditFieldInfo> kSchema = {
#define DBWARD_AUDIT_INFO(name, kind, help) {#name, AuditFieldType::kind, help},
      DBWARD_AUDIT_FIELDS(DBWARD_AUDIT_INFO)
#undef DBWARD_AUDIT_INFO
  };
  return kSchema;
}

std::string FormatAuditLine(const AuditEvent& e) {
  JsonObject j;
#define DBWARD_AUDIT_WRITE(name, type, help) Write(&j, #name, e.name);
  DBWARD_AUDIT_FIELDS(DBWARD_AUDIT_WRITE)
#undef DBWARD_AUDIT_WRITE
  return j.Finish();
}

std::variant<AuditEvent, AuditLineError> ParseAuditLine(std::string_view line, std::vector<std::string>* unknown) {
  FlatJsonResult parsed = ParseFlatJsonObject(line);
  if (const auto* e = std::get_if<FlatJsonError>(&parsed)) return AuditLineError{e->column, e->reason};
  FlatJsonObject& object = std::get<FlatJsonObject>(parsed);
  AuditEvent event;
#define DBWARD_AUDIT_READ(name, type, help)                                              \
  if (auto it = object.find(#name); it != object.end()) {                                \
    if (std::string why = Read(it->second, &event.name); !why.empty()) {                \
      return AuditLineError{0, std::string("field \"") + #name + "\" " + why};           \
    }                                                                                    \
    object.erase(it);                                                                    \
  }
  DBWARD_AUDIT_FIELDS(DBWARD_AUDIT_READ)
#undef DBWARD_AUDIT_READ
  if (unknown != nullptr) {
    for (const auto& [key, value] : object) unknown->push_back(key);
  }
  return event;
}

std::vector<std::pair<std::string, std::string>> AuditFieldTexts(const AuditEvent& e) {
  std::vector<std::pair<std::string, std::string>> out;
#define DBWARD_AUDIT_TEXT(name, type, help) out.emplace_back(#name, Text(e.name));
  DBWARD_AUDIT_FIELDS(DBWARD_AUDIT_TEXT)
#undef DBWARD_AUDIT_TEXT
  return out;
}

}  // namespace dbward::proxy

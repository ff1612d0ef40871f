// `dbward report` reads audit files line by line; a line can be anything a
// disk or a hand edit made of it. ParseFlatJsonObject, ParseAuditLine and
// ParseIsoTime must never crash; an object they accept must be what the
// writer could have produced again: re-serialising it with proxy/common/json.h
// parses back to the same fields, and an audit event written back with
// FormatAuditLine reads back to the same event.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "proxy/common/audit_event.h"
#include "proxy/common/json.h"
#include "proxy/common/json_reader.h"
#include "proxy/common/time.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using dbward::proxy::FlatJsonObject;
using Kind = dbward::proxy::JsonScalar::Kind;

// Numbers go back as their literal text in a string: JsonObject writes only
// integers, and the literal is what the reader keeps.
std::string Reserialise(const FlatJsonObject& object) {
  dbward::proxy::JsonObject j;
  for (const auto& [key, value] : object) {
    switch (value.kind) {
      case Kind::kString:
      case Kind::kNumber: j.Str(key, value.text); break;
      case Kind::kBool: j.Bool(key, value.boolean); break;
      case Kind::kNull: j.Null(key); break;
    }
  }
  return j.Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  dbward::proxy::FlatJsonResult r = dbward::proxy::ParseFlatJsonObject(text);
  if (const auto* object = std::get_if<FlatJsonObject>(&r)) {
    dbward::proxy::FlatJsonResult again = dbward::proxy::ParseFlatJsonObject(Reserialise(*object));
    const auto* back = std::get_if<FlatJsonObject>(&again);
    FUZZ_CHECK(back != nullptr);
    FUZZ_CHECK(back->size() == object->size());
    for (const auto& [key, value] : *object) {
      auto it = back->find(key);
      FUZZ_CHECK(it != back->end());
      FUZZ_CHECK(it->second.kind == (value.kind == Kind::kNumber ? Kind::kString : value.kind));
      FUZZ_CHECK(it->second.text == value.text);
      FUZZ_CHECK(it->second.boolean == value.boolean);
    }
  } else {
    const auto& error = std::get<dbward::proxy::FlatJsonError>(r);
    FUZZ_CHECK(error.column >= 1 && error.column <= size + 1);
    FUZZ_CHECK(!error.reason.empty());
  }
  auto event = dbward::proxy::ParseAuditLine(text);
  if (const auto* e = std::get_if<dbward::proxy::AuditEvent>(&event)) {
    auto again = dbward::proxy::ParseAuditLine(dbward::proxy::FormatAuditLine(*e));
    const auto* back = std::get_if<dbward::proxy::AuditEvent>(&again);
    FUZZ_CHECK(back != nullptr);
    FUZZ_CHECK(dbward::proxy::AuditFieldTexts(*back) == dbward::proxy::AuditFieldTexts(*e));
  } else {
    FUZZ_CHECK(!std::get<dbward::proxy::AuditLineError>(event).reason.empty());
  }
  (void)dbward::proxy::ParseIsoTime(text);
  return 0;
}

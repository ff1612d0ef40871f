// LOGIN7 (MS-TDS 2.2.6.4): the fields dbward audits, and ServerName
// rewriting for routed logins.
//
// The fixed part is 94 bytes from TDS 7.2 on (ChangePassword and
// cbSSPILong were added) and 86 before; behind it lies the variable data,
// found through (offset, length) pairs. Lengths count UTF-16 characters,
// except those of the extension block and the SSPI blob, which count bytes.
#include <algorithm>

#include "protocol/builder.h"
#include "protocol/cursor.h"
#include "protocol/tds.h"

namespace dbward::protocol::tds {
namespace {

constexpr size_t kFixedWide = 94;    // TDS 7.2 and later
constexpr size_t kFixedNarrow = 86;  // TDS 7.0 and 7.1
constexpr uint8_t kIntSecurity = 0x80;   // OptionFlags2 fIntSecurity
constexpr uint8_t kReadOnlyIntent = 0x20;  // TypeFlags fReadOnlyIntent
constexpr uint8_t kExtension = 0x10;       // OptionFlags3 fExtension
constexpr size_t kMaxNameChars = 128;

// Offsets of the (ib, cch/cb) pairs in the fixed part.
constexpr size_t kOffServerName = 52;
constexpr size_t kOffExtension = 56;
constexpr size_t kOffDatabase = 68;
constexpr size_t kOffSspi = 78;
constexpr size_t kOffSspiLong = 90;

Result Malformed(std::string why) { return Result::Malformed(std::move(why)); }

uint16_t U16At(std::span<const uint8_t> p, size_t at) { return static_cast<uint16_t>(p[at] | (p[at + 1] << 8)); }
uint32_t U32At(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint32_t>(p[at]) | (static_cast<uint32_t>(p[at + 1]) << 8) |
         (static_cast<uint32_t>(p[at + 2]) << 16) | (static_cast<uint32_t>(p[at + 3]) << 24);
}
void PutU16At(std::vector<uint8_t>* p, size_t at, size_t v) {
  (*p)[at] = static_cast<uint8_t>(v);
  (*p)[at + 1] = static_cast<uint8_t>(v >> 8);
}
void PutU32At(std::vector<uint8_t>* p, size_t at, size_t v) {
  for (size_t i = 0; i < 4; i++) (*p)[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// One variable-data item of the offset table.
struct Item {
  size_t table;  // where its (ib, length) pair is
  bool bytes;    // the length counts bytes, not characters
};
// In table order. ClientID (72, six bytes) is not an item.
constexpr Item kNarrowItems[] = {{36, false}, {40, false}, {44, false}, {48, false}, {52, false}, {56, true},
                                 {60, false}, {64, false}, {68, false}, {78, true},  {82, false}};
constexpr Item kChangePassword = {86, false};

bool IsWide(uint32_t version, size_t size) { return HasWideTokens(version) && size >= kFixedWide; }

// The SSPI blob's length: cbSSPI, or cbSSPILong when cbSSPI is 0xFFFF.
size_t SspiLength(std::span<const uint8_t> p, bool wide) {
  size_t cb = U16At(p, kOffSspi + 2);
  if (cb == 0xFFFF && wide) return U32At(p, kOffSspiLong);
  return cb;
}

// The FeatureExt block starting at offset: {id u8, length u32le, data}* FF.
// *size gets its length with the terminator.
Result WalkFeatures(std::span<const uint8_t> p, size_t offset, Login7* l, size_t* size) {
  Cursor c(p);
  if (!c.Skip(offset)) return Malformed("LOGIN7 FeatureExt offset " + std::to_string(offset) + " is outside the message");
  const size_t start = c.size();
  for (int n = 0;; n++) {
    uint8_t id;
    if (!c.GetU8(&id) || n > 64) return Malformed("LOGIN7 FeatureExt has no terminator");
    if (id == kFeatureTerminator) break;
    uint32_t len;
    Cursor data;
    if (!c.GetU32LE(&len) || !c.GetBytes(len, &data)) {
      return Malformed("LOGIN7 feature " + std::to_string(id) + " runs past the message");
    }
    if (l == nullptr) continue;
    l->features.push_back(id);
    uint8_t options;
    if (id == kFeatureFedAuth && data.GetU8(&options)) {
      l->fedauth_library = options >> 1;
      l->fedauth_echo = (options & 1) != 0;
    }
  }
  *size = start - c.size();
  return Result::Ok();
}

}  // namespace

bool Login7::HasFeature(uint8_t id) const { return std::find(features.begin(), features.end(), id) != features.end(); }

Result ParseLogin7(std::span<const uint8_t> payload, Login7* out) {
  Cursor c(payload);
  Login7 l;
  uint32_t length, prog_ver, connection_id;
  uint8_t flags1, flags2, type_flags, flags3;
  uint32_t tz, lcid;
  if (!c.GetU32LE(&length) || !c.GetU32LE(&l.tds_version) || !c.GetU32LE(&l.packet_size) ||
      !c.GetU32LE(&prog_ver) || !c.GetU32LE(&l.client_pid) || !c.GetU32LE(&connection_id) ||
      !c.GetU8(&flags1) || !c.GetU8(&flags2) || !c.GetU8(&type_flags) || !c.GetU8(&flags3) ||
      !c.GetU32LE(&tz) || !c.GetU32LE(&lcid)) {
    return Malformed("LOGIN7 is shorter than its fixed part");
  }
  if (length != payload.size()) {
    return Malformed("LOGIN7 length field " + std::to_string(length) + " does not match the message size " +
                     std::to_string(payload.size()));
  }
  l.integrated_security = (flags2 & kIntSecurity) != 0;
  l.read_only_intent = (type_flags & kReadOnlyIntent) != 0;
  // (offset, length in characters) pairs, offsets from the start of LOGIN7.
  auto field = [&](std::string* dst) -> bool {
    uint16_t off, chars;
    if (!c.GetU16LE(&off) || !c.GetU16LE(&chars)) return false;
    if (dst == nullptr || chars == 0) return true;
    Cursor all(payload);
    std::span<const uint8_t> bytes;
    if (!all.Skip(off) || !all.GetSpan(static_cast<size_t>(chars) * 2, &bytes)) return false;
    *dst = Utf16LeToUtf8(bytes);
    return true;
  };
  std::string* const kSkip = nullptr;
  if (!field(&l.host_name) || !field(&l.user_name) || !field(kSkip) /* password: never decoded */ ||
      !field(&l.app_name) || !field(&l.server_name) || !field(kSkip) /* extension: below */ ||
      !field(&l.library) || !field(&l.language) || !field(&l.database)) {
    return Malformed("LOGIN7 field points outside the message");
  }
  if (payload.size() >= kFixedNarrow) {
    const bool wide = IsWide(l.tds_version, payload.size());
    size_t ib = U16At(payload, kOffSspi);
    l.sspi_bytes = SspiLength(payload, wide);
    if (ib + l.sspi_bytes > payload.size()) return Malformed("LOGIN7 SSPI data points outside the message");
  }
  if ((flags3 & kExtension) != 0) {
    size_t ib = U16At(payload, kOffExtension), cb = U16At(payload, kOffExtension + 2);
    if (cb < 4 || ib + cb > payload.size()) return Malformed("LOGIN7 extension block points outside the message");
    size_t feature_offset = U32At(payload, ib);
    size_t size;
    if (feature_offset != 0) {
      Result r = WalkFeatures(payload, feature_offset, &l, &size);
      if (!r.ok()) return r;
    }
  }
  *out = std::move(l);
  return Result::Ok();
}

Result RewriteLogin7ServerName(std::span<const uint8_t> p, const std::string& server_name, std::vector<uint8_t>* out,
                               const std::string* database) {
  Login7 parsed;
  if (Result r = ParseLogin7(p, &parsed); !r.ok()) return r;
  const bool wide = IsWide(parsed.tds_version, p.size());
  const size_t fixed = wide ? kFixedWide : kFixedNarrow;
  if (p.size() < fixed) return Malformed("LOGIN7 is shorter than its fixed part");
  const std::vector<uint8_t> name16 = Utf8ToUtf16Le(server_name);
  if (name16.size() / 2 > kMaxNameChars) return Malformed("server name \"" + server_name + "\" is longer than 128 characters");
  const std::vector<uint8_t> db16 = database != nullptr ? Utf8ToUtf16Le(*database) : std::vector<uint8_t>();
  if (db16.size() / 2 > kMaxNameChars) return Malformed("database name \"" + *database + "\" is longer than 128 characters");

  // In table order, except that the SSPI blob goes last: it may be larger
  // than the 16-bit offsets of anything behind it could reach.
  std::vector<Item> items;
  for (const Item& it : kNarrowItems) {
    if (it.table != kOffSspi) items.push_back(it);
  }
  if (wide) items.push_back(kChangePassword);
  items.push_back({kOffSspi, true});
  const bool extension = (p[27] & kExtension) != 0;
  size_t features_at = 0, features_size = 0;
  if (extension) {
    features_at = U32At(p, U16At(p, kOffExtension));
    if (features_at != 0) {
      if (Result r = WalkFeatures(p, features_at, nullptr, &features_size); !r.ok()) return r;
    }
  }

  // One allocation, so that no copy of the password is left behind in a
  // buffer a reallocation freed.
  std::vector<uint8_t> o;
  o.reserve(p.size() + name16.size() + db16.size() + 8);
  o.assign(p.begin(), p.begin() + static_cast<ptrdiff_t>(fixed));
  for (const Item& it : items) {
    size_t ib = U16At(p, it.table);
    size_t n = it.table == kOffSspi ? SspiLength(p, wide) : U16At(p, it.table + 2) * (it.bytes ? 1u : 2u);
    std::span<const uint8_t> data;
    if (it.table == kOffServerName) {
      data = name16;
    } else if (it.table == kOffDatabase && database != nullptr) {
      data = db16;
    } else if (ib + n <= p.size()) {
      data = p.subspan(ib, n);
    } else {
      return Malformed("LOGIN7 field points outside the message");
    }
    if (o.size() > 0xFFFF) return Malformed("LOGIN7 grows beyond what its 16-bit offsets reach");
    PutU16At(&o, it.table, o.size());
    if (it.table == kOffSspi) {
      PutU16At(&o, it.table + 2, n >= 0xFFFF && wide ? 0xFFFF : n);
      if (wide) PutU32At(&o, kOffSspiLong, n >= 0xFFFF ? n : 0);
    } else {
      PutU16At(&o, it.table + 2, it.bytes ? data.size() : data.size() / 2);
    }
    o.insert(o.end(), data.begin(), data.end());
  }
  if (features_size != 0) {
    // The extension block holds the absolute offset of the features.
    PutU32At(&o, U16At(o, kOffExtension), o.size());
    auto block = p.subspan(features_at, features_size);
    o.insert(o.end(), block.begin(), block.end());
  }
  PutU32At(&o, 0, o.size());
  *out = std::move(o);
  return Result::Ok();
}

}  // namespace dbward::protocol::tds

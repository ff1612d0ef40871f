#include "protocol/preread.h"

#include "protocol/cursor.h"

namespace dbward::protocol {

FirstBytes ClassifyFirstBytes(std::span<const uint8_t> data) {
  Cursor c(data);
  uint8_t type, major, minor;
  if (!c.GetU8(&type)) return FirstBytes::kNeedMore;
  if (type != 0x16) return FirstBytes::kOther;
  if (!c.GetU8(&major)) return FirstBytes::kNeedMore;
  if (major != 0x03) return FirstBytes::kOther;
  if (!c.GetU8(&minor)) return FirstBytes::kNeedMore;
  // SSL 3.0 .. TLS 1.3 record versions; ClientHello records use 0x0301 or 0x0303.
  return minor <= 0x04 ? FirstBytes::kTlsHandshake : FirstBytes::kOther;
}

}  // namespace dbward::protocol

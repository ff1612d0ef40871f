#include "protocol/ntlm.h"

#include <algorithm>
#include <string_view>

#include "protocol/cursor.h"
#include "protocol/tds.h"

namespace dbward::protocol::ntlm {
namespace {

constexpr std::string_view kSignature("NTLMSSP\0", 8);
constexpr uint32_t kAuthenticate = 3;
constexpr uint32_t kNegotiateUnicode = 0x00000001;

// A (length, max length, offset) field of the message, as text.
bool Field(std::span<const uint8_t> msg, size_t at, bool unicode, std::string* out) {
  Cursor c(msg);
  uint16_t len, max;
  uint32_t offset;
  if (!c.Skip(at) || !c.GetU16LE(&len) || !c.GetU16LE(&max) || !c.GetU32LE(&offset)) return false;
  if (offset > msg.size() || len > msg.size() - offset) return false;
  auto bytes = msg.subspan(offset, len);
  *out = unicode ? tds::Utf16LeToUtf8(bytes) : std::string(bytes.begin(), bytes.end());
  return true;
}

}  // namespace

bool AuthenticateUser(std::span<const uint8_t> blob, std::string* user) {
  auto at = std::search(blob.begin(), blob.end(), kSignature.begin(), kSignature.end());
  while (at != blob.end()) {
    std::span<const uint8_t> msg = blob.subspan(static_cast<size_t>(at - blob.begin()));
    Cursor c(msg);
    uint32_t type, flags;
    std::string domain, name;
    if (c.Skip(8) && c.GetU32LE(&type) && type == kAuthenticate && c.Skip(48) && c.GetU32LE(&flags)) {
      bool unicode = (flags & kNegotiateUnicode) != 0;
      // DomainNameFields at 28, UserNameFields at 36.
      if (Field(msg, 28, unicode, &domain) && Field(msg, 36, unicode, &name) && !name.empty()) {
        *user = domain.empty() ? name : domain + "\\" + name;
        return true;
      }
    }
    at = std::search(at + 1, blob.end(), kSignature.begin(), kSignature.end());
  }
  return false;
}

}  // namespace dbward::protocol::ntlm

#include "proxy/common/text.h"

namespace dbward::proxy {

std::string Join(const std::vector<std::string>& items, std::string_view separator, std::string_view none) {
  if (items.empty()) return std::string(none);
  std::string out;
  for (size_t i = 0; i < items.size(); i++) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

}  // namespace dbward::proxy

// Small string helpers shared by messages and reports.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dbward::proxy {

// "a, b, c" (or the given separator); `none` when the list is empty.
std::string Join(const std::vector<std::string>& items, std::string_view separator = ", ",
                 std::string_view none = "");

}  // namespace dbward::proxy

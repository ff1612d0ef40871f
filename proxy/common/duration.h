// The one duration grammar of the configuration and the command line:
// "1500ms", "10s", "5m", "1h", or a bare number of seconds.
#pragma once

#include <cstdint>
#include <string>

namespace dbward::proxy {

bool ParseDuration(const std::string& text, uint64_t* out_ms);

}  // namespace dbward::proxy

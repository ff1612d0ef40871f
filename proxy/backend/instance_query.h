// A blocking SQL Server Browser query (MC-SQLR over UDP 1434) for `dbward
// probe` and /readyz, which check a backend written HOST\INSTANCE the way a
// session reaches it. Sessions use the non-blocking datapath/instance_lookup.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dbward::proxy::probe {

// The instance's TCP port, or 0 with *error saying what happened.
uint16_t QueryInstancePort(const std::string& host, const std::string& instance, std::chrono::milliseconds timeout,
                           std::string* error);

}  // namespace dbward::proxy::probe

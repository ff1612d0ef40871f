// Start-up, signal handling and orderly shutdown around the workers.
#pragma once

#include "proxy/config.h"

namespace dbward::proxy {

// Runs until SIGTERM/SIGINT, then drains. Returns the process exit code.
int RunServer(const Config& config);

}  // namespace dbward::proxy

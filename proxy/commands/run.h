// `dbward run`: start-up, signal handling and orderly shutdown around the
// workers, the admin endpoint and the reloader.
#pragma once

#include "proxy/common/config.h"

namespace dbward::proxy {

// Runs until SIGTERM/SIGINT, then drains. Returns the process exit code.
int RunServer(const Config& config);

}  // namespace dbward::proxy

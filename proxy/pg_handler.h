#pragma once

#include <memory>

#include "proxy/handler.h"

namespace dbward::proxy {

// protocol: postgres. See pg_handler.cc.
std::unique_ptr<ProtocolHandler> NewPostgresHandler();

}  // namespace dbward::proxy

#pragma once

#include <memory>

#include "proxy/handler.h"

namespace dbward::proxy {

// protocol: tds (SQL Server). See tds_handler.cc.
std::unique_ptr<ProtocolHandler> NewTdsHandler();

}  // namespace dbward::proxy

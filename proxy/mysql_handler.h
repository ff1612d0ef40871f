#pragma once

#include <memory>

#include "proxy/handler.h"

namespace dbward::proxy {

// protocol: mysql. See mysql_handler.cc.
std::unique_ptr<ProtocolHandler> NewMysqlHandler();

}  // namespace dbward::proxy

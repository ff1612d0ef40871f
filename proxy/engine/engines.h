// The engine of each protocol (see engine.h); NewEngine picks by listener.
#pragma once

#include <memory>

#include "proxy/engine/engine.h"

namespace dbward::proxy::engine {

std::unique_ptr<Engine> NewTcpEngine(Driver& driver, const EngineContext& context);
std::unique_ptr<Engine> NewPostgresEngine(Driver& driver, const EngineContext& context);
std::unique_ptr<Engine> NewMysqlEngine(Driver& driver, const EngineContext& context);
std::unique_ptr<Engine> NewTdsEngine(Driver& driver, const EngineContext& context);

}  // namespace dbward::proxy::engine

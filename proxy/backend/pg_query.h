// One query on a backend PostgreSQL server as dbward's own user, over the
// verified TLS leg a session would use (SSLRequest or direct TLS): the
// auth_query that fetches a user's SCRAM verifier. Blocking; runs on a
// worker thread, never on an event loop. Authentication: SCRAM-SHA-256,
// with channel binding (-PLUS) when the server offers it, md5 and password
// (the leg is verified TLS). The statement goes through the extended query
// protocol with text parameters, so values are never spliced into SQL, and
// the startup packet carries only user, database and application_name.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/backend/backend_probe.h"

namespace dbward::proxy::backend {

struct PgQuery {
  probe::Target target;  // protocol postgres; host, port, server_name, direct, timeout
  std::string user;
  std::string password;  // wiped by the caller
  std::string database;
  std::string sql;
  std::vector<std::string> params;
};

struct PgQueryResult {
  bool ok = false;
  std::string error;  // what failed, for the log (never the password)
  std::vector<std::vector<std::optional<std::string>>> rows;
};

PgQueryResult RunPgQuery(const PgQuery& query, const std::shared_ptr<tls::Context>& ctx);

}  // namespace dbward::proxy::backend

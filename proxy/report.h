// `dbward report AUDIT_FILE [--format table|json|csv] [--since ISO8601]`: the
// migration to-do list, built from audit events. One row per client IP,
// listener, protocol, application, client library and user, saying how that
// client reaches dbward and whether it skips certificate trust.
#pragma once

#include <string>

namespace dbward::proxy {

int RunReport(int argc, char** argv);  // argv[0] is "report"

// The same command with its standard output and standard error captured,
// for tests. Returns the exit code: 0 done (even with invalid lines, which
// are listed on *err), 1 the file cannot be read, 2 usage error.
int RunReport(int argc, char** argv, std::string* out, std::string* err);

}  // namespace dbward::proxy

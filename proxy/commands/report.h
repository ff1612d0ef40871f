// `dbward report AUDIT_FILE [--format table|json|csv] [--since ISO8601]`: the
// migration to-do list, built from audit events. One row per client IP,
// listener, protocol, application, client library and user, saying how that
// client reaches dbward and whether it skips certificate trust.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dbward::proxy {

enum class ReportFormat { kTable, kJson, kCsv };

struct ReportOptions {
  std::string path;
  ReportFormat format = ReportFormat::kTable;
  std::optional<int64_t> since_ms;  // only events at or after this time
};

// Returns the exit code: 0 done (even with invalid lines, which are listed
// on *err), 1 the file cannot be read.
int RunReport(const ReportOptions& options, std::string* out, std::string* err);

}  // namespace dbward::proxy

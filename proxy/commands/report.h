// `dbward report AUDIT_FILE [--format table|json|csv|html] [--since ISO8601]
// [--policy CONFIG]`: the migration to-do list, built from audit events. One
// row per client IP, listener, protocol, application, client library and
// user, saying how that client reaches dbward and whether it skips
// certificate trust. With --policy, every session is also judged by the
// policy rules of CONFIG's listeners, as if they were in force: what the
// policy would deny or warn about, per client, before anyone turns it on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dbward::proxy {

enum class ReportFormat { kTable, kJson, kCsv, kHtml };

struct ReportOptions {
  std::string path;
  ReportFormat format = ReportFormat::kTable;
  std::optional<int64_t> since_ms;  // only events at or after this time
  std::string policy_config;        // a configuration whose listeners' policies judge the events
};

// Returns the exit code: 0 done (even with invalid lines, which are listed
// on *err), 1 the file cannot be read, 2 the policy configuration is invalid.
int RunReport(const ReportOptions& options, std::string* out, std::string* err);

}  // namespace dbward::proxy

#include "proxy/commands/cli.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <vector>

#include "proxy/backend/instance_query.h"
#include "proxy/commands/probe.h"
#include "proxy/commands/report.h"
#include "proxy/commands/run.h"
#include "proxy/common/address.h"
#include "proxy/common/config.h"
#include "proxy/common/duration.h"
#include "proxy/common/time.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {
namespace {

constexpr const char* kVersion = "0.1.0";
constexpr int kUsageError = 2;

constexpr const char* kSummary =
    "usage: dbward run --config FILE\n"
    "       dbward check-config FILE\n"
    "       dbward report AUDIT_FILE [--format table|json|csv|html] [--since TIME] [--policy CONFIG]\n"
    "       dbward probe --protocol tds|postgres|mysql|tcp --backend HOST:PORT [--ca-file FILE] [--server-name NAME]\n"
    "       dbward --version\n"
    "Run 'dbward COMMAND --help' for a command's options.\n";

CLI::Validator HostPortValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        std::string host;
        uint16_t port = 0;
        size_t slash = value.find('\\');
        if (slash != std::string::npos && slash > 0 && slash + 1 < value.size()) return "";  // HOST\INSTANCE
        if (!SplitHostPort(value, &host, &port) || port == 0) return "'" + value + "' is not HOST:PORT";
        return "";
      },
      "HOST:PORT");
}

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        uint64_t ms = 0;
        if (!ParseDuration(value, &ms) || ms == 0 || ms > 3'600'000) {
          return "'" + value + "' is not a duration such as 5s or 500ms (at most 1h)";
        }
        return "";
      },
      "DURATION");
}

CLI::Validator IsoTimeValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (!ParseIsoTime(value)) {
          return "'" + value + "' is not an ISO 8601 time (e.g. 2026-11-27 or 2026-11-27T04:09:08Z)";
        }
        return "";
      },
      "TIME");
}

// Parses the file and loads every certificate, key and CA it names, exactly
// as `run` would, without opening sockets.
int CheckConfig(const std::string& path, std::string* out, std::string* err) {
  Config config;
  ConfigError error;
  if (!LoadConfig(path, &config, &error)) {
    *err += error.ToString() + "\n";
    return 1;
  }
  std::vector<std::unique_ptr<ListenerRuntime>> runtimes;
  if (!BuildListenerRuntimes(config, &runtimes, &error)) {
    *err += error.ToString() + "\n";
    return 1;
  }
  *out += path + ": OK (" + std::to_string(config.listeners.size()) + " listeners)\n";
  return 0;
}

int Run(const std::string& path, std::string* err) {
  Config config;
  ConfigError error;
  if (!LoadConfig(path, &config, &error)) {
    *err += error.ToString() + "\n";
    return 1;
  }
  return RunServer(config);
}

}  // namespace

int RunCommandLine(int argc, const char* const* argv, std::string* out, std::string* err) {
  CLI::App app("dbward: a TLS-terminating database proxy. The backend leg is always verified TLS; every "
               "connection is audited.",
               "dbward");
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "Print the version and exit");

  // run
  std::string run_config;
  CLI::App* run = app.add_subcommand("run", "Run the proxy until SIGTERM or SIGINT, then drain open sessions");
  run->add_option("--config", run_config, "The configuration file (YAML)")->required()->check(CLI::ExistingFile);

  // check-config
  std::string check_path;
  CLI::App* check = app.add_subcommand(
      "check-config", "Validate a configuration and load every certificate, key and CA it names, as run would");
  check->add_option("FILE", check_path, "The configuration file (YAML)")->required();

  // report
  ReportOptions report_options;
  std::string report_format = "table";
  std::string report_since;
  CLI::App* report = app.add_subcommand(
      "report", "The migration to-do list from an audit file: one row per client, how it connects and whether it "
                "bypasses certificate trust");
  report->add_option("AUDIT_FILE", report_options.path, "An audit file (JSON lines) written by dbward")->required();
  report->add_option("--format", report_format, "Output format")
      ->check(CLI::IsMember({"table", "json", "csv", "html"}))
      ->capture_default_str();
  report->add_option("--since", report_since, "Only events at or after this ISO 8601 time (UTC unless a zone is given)")
      ->check(IsoTimeValidator());
  report->add_option("--policy", report_options.policy_config,
                     "Judge every session by the policy rules of this configuration's listeners, as if in force: "
                     "what they would deny or warn about, per client")
      ->check(CLI::ExistingFile);

  // probe
  ProbeOptions probe_options;
  std::string probe_protocol, probe_backend, probe_timeout, probe_format = "text";
  CLI::App* probe = app.add_subcommand(
      "probe",
      "Perform a protocol's TLS upgrade against a server, show its certificate chain and TLS versions, and tell "
      "whether verify-full and verify-ca would succeed. Exit status: 0 verify-full would succeed, 1 it would not, 2 "
      "usage error, 3 unreachable, not that protocol, or TLS refused");
  probe->add_option("--protocol", probe_protocol, "The server's protocol")
      ->required()
      ->check(CLI::IsMember({"tds", "postgres", "postgresql", "mysql", "mariadb", "tcp"}));
  probe->add_option("--backend", probe_backend,
                    "The server, HOST:PORT or [IPv6]:PORT (tds: also HOST\\INSTANCE, asking the SQL Server Browser)")
      ->required()
      ->check(HostPortValidator());
  probe->add_option("--ca-file", probe_options.target.ca_file, "CA certificates to trust (default: the system store)");
  probe->add_option("--crl-file", probe_options.target.crl_file,
                    "CRLs (PEM) of the certificate's issuer: a revoked or unchecked certificate fails (backend_tls.crl_file)");
  probe->add_option("--pin-spki", probe_options.target.spki_pins,
                    "sha256//BASE64 pin of the certificate's public key, repeatable: another must match "
                    "(backend_tls.pin_spki; the chain shows each certificate's pin)");
  CLI::Option* server_name =
      probe->add_option("--server-name", probe_options.target.server_name,
                        "The name the certificate must match, sent as SNI (default: the host of --backend)");
  probe->add_flag("--tds-strict", probe_options.target.tds_strict,
                  "tds: TDS 8.0 strict encryption (TLS first, ALPN tds/8.0)");
  probe->add_flag("--direct", probe_options.target.pg_direct,
                  "postgres: PostgreSQL 17 direct TLS (ALPN postgresql, no SSLRequest)");
  probe->add_option("--timeout", probe_timeout, "Per connection (default 5s)")->check(DurationValidator());
  probe->add_option("--format", probe_format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();

  // version
  CLI::App* version_cmd = app.add_subcommand("version", "Print the version");
  // After the subcommands, which would inherit it.
  app.footer(kSummary);

  auto usage_error = [&](const std::string& command, const std::string& message) {
    *err += (command.empty() ? "dbward" : "dbward " + command) + ": " + message + "\n";
    *err += command.empty() ? kSummary : "Run 'dbward " + command + " --help' for the options.\n";
    return kUsageError;
  };
  auto selected = [&]() -> std::string {
    auto subs = app.get_subcommands();
    return subs.empty() ? "" : subs[0]->get_name();
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *out += app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage_error(selected(), e.what());
  }

  if (version || *version_cmd) {
    *out += std::string("dbward ") + kVersion + "\n";
    return 0;
  }
  if (*run) return Run(run_config, err);
  if (*check) return CheckConfig(check_path, out, err);
  if (*report) {
    report_options.format = report_format == "json" ? ReportFormat::kJson
                            : report_format == "csv" ? ReportFormat::kCsv
                            : report_format == "html" ? ReportFormat::kHtml
                                                     : ReportFormat::kTable;
    if (!report_since.empty()) report_options.since_ms = ParseIsoTime(report_since);
    return RunReport(report_options, out, err);
  }
  if (*probe) {
    probe::Target& t = probe_options.target;
    t.protocol = *ParseProtocol(probe_protocol);
    std::string instance;
    if (size_t slash = probe_backend.find('\\'); slash != std::string::npos) {
      if (t.protocol != Protocol::kTds) return usage_error("probe", "--backend HOST\\INSTANCE is for --protocol tds");
      t.host = probe_backend.substr(0, slash);
      instance = probe_backend.substr(slash + 1);
    } else {
      SplitHostPort(probe_backend, &t.host, &t.port);
    }
    if (t.tds_strict && t.protocol != Protocol::kTds) {
      return usage_error("probe", "--tds-strict applies only to --protocol tds");
    }
    if (t.pg_direct && t.protocol != Protocol::kPostgres) {
      return usage_error("probe", "--direct applies only to --protocol postgres");
    }
    if (server_name->count() > 0 && t.server_name.empty()) return usage_error("probe", "--server-name must not be empty");
    if (server_name->count() == 0) t.server_name = t.host;
    if (!probe_timeout.empty()) {
      uint64_t ms = 0;
      ParseDuration(probe_timeout, &ms);
      t.timeout = std::chrono::milliseconds(ms);
    }
    probe_options.json = probe_format == "json";
    if (!instance.empty()) {
      std::string why;
      t.port = probe::QueryInstancePort(t.host, instance, t.timeout, &why);
      if (t.port == 0) {
        *err += "dbward probe: " + why + "\n";
        return 1;
      }
      if (!probe_options.json) *out += "instance " + instance + " is on TCP port " + std::to_string(t.port) + "\n";
    }
    return RunProbe(probe_options, out, err);
  }
  return usage_error("", "a command is required");
}

int RunCommandLine(const std::vector<std::string>& args, std::string* out, std::string* err) {
  std::vector<const char*> argv = {"dbward"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return RunCommandLine(static_cast<int>(argv.size()), argv.data(), out, err);
}

}  // namespace dbward::proxy

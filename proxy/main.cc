#include <cstdio>
#include <cstring>
#include <string>

#include "proxy/config.h"
#include "proxy/probe.h"
#include "proxy/report.h"
#include "proxy/runtime.h"
#include "proxy/server.h"

namespace {

constexpr const char* kVersion = "0.1.0";

void Usage(FILE* out) {
  fprintf(out,
          "usage: dbward run --config FILE\n"
          "       dbward check-config FILE\n"
          "       dbward report AUDIT_FILE [--format table|json|csv]\n"
          "       dbward probe --protocol tds|postgres|mysql|tcp --backend HOST:PORT [--ca-file F] [--server-name N]\n"
          "       dbward --version\n");
}

// Parses the file and loads every certificate, key and CA it names, exactly
// as 'run' would, without opening sockets.
bool LoadAndCheck(const std::string& path, dbward::proxy::Config* config) {
  dbward::proxy::ConfigError error;
  if (!dbward::proxy::LoadConfig(path, config, &error)) {
    fprintf(stderr, "%s\n", error.ToString().c_str());
    return false;
  }
  std::vector<std::unique_ptr<dbward::proxy::ListenerRuntime>> runtimes;
  if (!dbward::proxy::BuildListenerRuntimes(*config, &runtimes, &error)) {
    fprintf(stderr, "%s\n", error.ToString().c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--version" || cmd == "version") {
    printf("dbward %s\n", kVersion);
    return 0;
  }
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    Usage(stdout);
    return 0;
  }
  if (cmd == "report") return dbward::proxy::RunReport(argc - 1, argv + 1);
  if (cmd == "probe") return dbward::proxy::RunProbe(argc - 1, argv + 1);
  if (cmd == "check-config") {
    if (argc != 3) {
      Usage(stderr);
      return 2;
    }
    dbward::proxy::Config config;
    if (!LoadAndCheck(argv[2], &config)) return 1;
    printf("%s: OK (%zu listeners)\n", argv[2], config.listeners.size());
    return 0;
  }
  if (cmd == "run") {
    std::string path;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
        path = argv[++i];
      } else if (strncmp(argv[i], "--config=", 9) == 0) {
        path = argv[i] + 9;
      } else {
        Usage(stderr);
        return 2;
      }
    }
    if (path.empty()) {
      Usage(stderr);
      return 2;
    }
    dbward::proxy::Config config;
    dbward::proxy::ConfigError error;
    if (!dbward::proxy::LoadConfig(path, &config, &error)) {
      fprintf(stderr, "%s\n", error.ToString().c_str());
      return 1;
    }
    return dbward::proxy::RunServer(config);
  }
  Usage(stderr);
  return 2;
}

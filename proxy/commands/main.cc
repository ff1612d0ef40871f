// dbward's entry point: the command line lives in commands/cli.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "proxy/commands/cli.h"

int main(int argc, char** argv) {
  std::string out, err;
  int rc = dbward::proxy::RunCommandLine(argc, argv, &out, &err);
  fwrite(err.data(), 1, err.size(), stderr);
  fwrite(out.data(), 1, out.size(), stdout);
  // A full disk or closed pipe must not look like a complete report.
  if (fflush(stdout) != 0 && rc == 0) {
    fprintf(stderr, "dbward: writing the output: %s\n", strerror(errno));
    return 1;
  }
  return rc;
}

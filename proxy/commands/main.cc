// dbward's entry point: the command line lives in commands/cli.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "proxy/commands/cli.h"

int main(int argc, char** argv) {
  // libuv's thread pool resolves backend names and runs SCRAM auth_query
  // lookups; its default of four threads would let slow lookups hold up DNS.
  setenv("UV_THREADPOOL_SIZE", "16", /*overwrite=*/0);
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

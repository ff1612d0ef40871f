// The dbward command line (CLI11): subcommands run, check-config, report,
// probe and version, each with generated --help that documents every flag,
// validated values, and one style of usage error (exit 2).
#pragma once

#include <string>
#include <vector>

namespace dbward::proxy {

// The whole program: parses argv and runs the command. `run` writes to the
// real stdout and stderr as it goes; the others return their output in *out
// and *err, which main prints.
int RunCommandLine(int argc, const char* const* argv, std::string* out, std::string* err);
// The same with arguments after the program name, for tests.
int RunCommandLine(const std::vector<std::string>& args, std::string* out, std::string* err);

}  // namespace dbward::proxy

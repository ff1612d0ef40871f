// Where the test PKI is: $DBWARD_TEST_CERTS, or the build tree's copy that
// the ctest fixture generate_test_certs makes (tests/gen-test-certs.sh). A
// test that cannot find it fails rather than skips.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <string>

namespace dbward::test_certs {

inline constexpr const char* kMissing =
    "no test PKI: run through ctest (fixture generate_test_certs), or tests/gen-test-certs.sh DIR and set "
    "DBWARD_TEST_CERTS=DIR";

inline std::string Dir() {
  const char* env = getenv("DBWARD_TEST_CERTS");
  std::string dir = env != nullptr && *env != '\0' ? env : "";
#ifdef DBWARD_TEST_CERTS_DEFAULT
  if (dir.empty()) dir = DBWARD_TEST_CERTS_DEFAULT;
#endif
  struct stat st;
  if (dir.empty() || stat((dir + "/.complete").c_str(), &st) != 0) return "";
  return dir;
}

}  // namespace dbward::test_certs

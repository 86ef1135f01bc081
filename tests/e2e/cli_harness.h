#pragma once
// Runs the built `anvil` command from tests and checks its error reporting: one stderr line
// "anvil: error: ..." and exit code 1 (a crash would show as 128 + signal).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "anvil/common/tensor_io.h"
#include "scratch_dir_for_tests.h"

namespace anvil::test {

struct CliResult {
  int exit_code;
  std::string out, err;
};

/// A scratch folder for this process, unique to the call and named after `tag`; removed when the
/// test program exits.
inline std::string cli_tmpdir(const std::string& tag) {
  static std::vector<std::unique_ptr<ScratchDir>> folders;
  folders.push_back(std::make_unique<ScratchDir>(tag));
  return folders.back()->path();
}

/// Runs `anvil ARGS`, capturing stdout, stderr (through a file in `scratch`) and the exit code.
inline CliResult run_anvil(const std::string& args, const std::string& scratch) {
  const std::string err_file = scratch + "/stderr.txt";
  const std::string cmd = std::string(ANVIL_BINARY_DIR) + "/tools/anvil " + args + " 2>" + err_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_file(err_file);
  return r;
}

/// Expects a failure reported on exactly one stderr line, exit code 1 (not a crash), mentioning each of `needles`.
inline void expect_clear_error(const CliResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line expected, got: " << r.err;
  EXPECT_EQ(r.err.rfind("anvil: error: ", 0), 0u) << r.err;
  for (const std::string& s : needles) EXPECT_NE(r.err.find(s), std::string::npos) << "'" << s << "' not in: " << r.err;
}

}  // namespace anvil::test

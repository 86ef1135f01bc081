#pragma once
// Runs the built `anvil` command from tests and checks its error reporting: one stderr line
// "anvil: error: ..." and exit code 1 (a crash would show as 128 + signal).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "anvil/common/tensor_io.h"

namespace anvil::test {

struct CliResult {
  int exit_code;
  std::string out, err;
};

/// Removes the scratch folders of cli_tmpdir() when the test program exits, so runs of the suite
/// leave nothing behind in the system temp dir.
struct ScratchFolders {
  std::vector<std::filesystem::path> paths;
  ~ScratchFolders() {
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove_all(p, ec);
  }
};

/// A per-process scratch folder under the system temp dir, named after `tag`; removed at exit.
inline std::string cli_tmpdir(const std::string& tag) {
  static ScratchFolders folders;
  const std::filesystem::path p = std::filesystem::temp_directory_path() / (tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  folders.paths.push_back(p);
  return p.string();
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

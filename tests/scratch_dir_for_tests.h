#pragma once
// A scratch folder for one test: unique to the process and the call (mkdtemp under the system
// temp dir), removed with everything in it when it goes out of scope. Test cases run in parallel,
// also from other checkouts, so fixed names under /tmp would collide and accumulate.
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace anvil::test {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "anvil_test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (tag + "_XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a scratch folder " + pattern);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  /// `name` inside the folder.
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

}  // namespace anvil::test

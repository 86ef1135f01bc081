#pragma once
/// Logging (spdlog) and progress reporting for long work.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace anvil {

/// The anvil logger (stderr). Level from ANVIL_LOG (trace, debug, info, warn, error; default warn).
spdlog::logger& log();

/// Seconds of wall time (steady clock) since `start`: the host times the tools report.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A progress line on stderr for long loops (calibration, evaluation, sweeps): "label  k/n  (rate/s)".
/// Redrawn at most a few times per second; prints nothing when quiet or when stderr is not a TTY
/// unless ANVIL_PROGRESS=1.
class Progress {
 public:
  Progress(std::string label, int64_t total, bool quiet = false);
  ~Progress();
  void advance(int64_t n = 1);
  void done();

 private:
  void draw(bool final);
  std::string label_;
  int64_t total_, count_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace anvil

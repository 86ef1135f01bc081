#include "anvil/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace anvil {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("anvil");
    l->set_pattern("anvil: %l: %v");
    const char* level = std::getenv("ANVIL_LOG");
    l->set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
    return l;
  }();
  return *logger;
}

Progress::Progress(std::string label, int64_t total, bool quiet)
    : label_(std::move(label)), total_(total), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  const char* force = std::getenv("ANVIL_PROGRESS");
  enabled_ = !quiet && ((force && std::strcmp(force, "1") == 0) || isatty(STDERR_FILENO));
}

Progress::~Progress() { done(); }

void Progress::advance(int64_t n) {
  count_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ > std::chrono::milliseconds(250)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::done() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  const double secs = seconds_since(start_);
  std::fprintf(stderr, "\r%-28s %lld/%lld  %.1f s  (%.0f/s)%s", label_.c_str(), static_cast<long long>(count_),
               static_cast<long long>(total_), secs, secs > 0 ? count_ / secs : 0.0, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace anvil

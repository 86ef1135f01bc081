#pragma once
/// Where each layer's SRAM working set goes.
///
/// A layer's buffers (its inputs, its constant block, its output) are contiguous from a base
/// address. Layer k goes right after layer k-1 when k-1 sits at address 0 and both fit, so the
/// loads of layer k can run while layer k-1 computes and stores; otherwise it starts at 0 and the
/// dependency tracker makes its loads wait until layer k-1 is done with those bytes.
/// Tiling and finer-grained double buffering will replace this policy, not the callers.
#include <algorithm>
#include <cstdint>

namespace anvil::compiler {

constexpr uint64_t kSramAlignment = 64;  ///< bytes; every SRAM buffer starts aligned

class SramPlanner {
 public:
  explicit SramPlanner(uint64_t capacity) : capacity_(capacity) {}
  uint64_t capacity() const { return capacity_; }
  /// Base address for the next layer's working set of `bytes` (<= capacity()).
  uint64_t place(uint64_t bytes) {
    const uint64_t after_prev = (prev_end_ + kSramAlignment - 1) / kSramAlignment * kSramAlignment;
    const uint64_t base = (prev_base_ == 0 && prev_end_ > 0 && after_prev + bytes <= capacity_) ? after_prev : 0;
    prev_base_ = base;
    prev_end_ = base + bytes;
    peak_ = std::max(peak_, prev_end_);
    return base;
  }
  /// Highest SRAM address used, plus one.
  uint64_t peak() const { return peak_; }

 private:
  uint64_t capacity_;
  uint64_t prev_base_ = 0, prev_end_ = 0, peak_ = 0;
};

}  // namespace anvil::compiler

#pragma once
/// Next-fit allocation of SRAM buffers (64-byte aligned) with explicit release.
///
/// The lowering keeps values resident in SRAM between layers and releases a buffer one layer after
/// its last use, so the next layer's loads go to bytes the current layer does not touch and the
/// DMA runs under the current layer's compute (the dependency tracker orders what remains).
#include <cstdint>
#include <map>
#include <optional>

namespace anvil::compiler {

constexpr uint64_t kSramAlignment = 64;  ///< bytes; every SRAM buffer starts aligned

class SramAllocator {
 public:
  explicit SramAllocator(uint64_t capacity);
  uint64_t capacity() const { return capacity_; }
  /// An aligned address with `bytes` free (bytes > 0), or nothing when no gap is large enough.
  /// Next fit: the search starts where the previous allocation ended and wraps around, so bytes
  /// just released are reused last and a load into SRAM rarely waits for the compute that last
  /// read those bytes (the DMA unit can run layers ahead, e.g. streaming weights).
  std::optional<uint64_t> allocate(uint64_t bytes);
  /// The next search starts at address 0 (with nothing allocated, buffers then pack from 0).
  void rewind() { cursor_ = 0; }
  /// Frees the buffer that allocate() returned at `addr`.
  void release(uint64_t addr);
  /// Bytes currently allocated (aligned sizes).
  uint64_t used() const { return used_; }
  /// Highest SRAM address ever allocated, plus one (exact: the end of the last byte requested).
  uint64_t peak() const { return peak_; }

 private:
  uint64_t capacity_, used_ = 0, peak_ = 0, cursor_ = 0;
  std::map<uint64_t, uint64_t> live_;  ///< addr -> requested bytes
};

}  // namespace anvil::compiler

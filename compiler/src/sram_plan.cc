#include "sram_plan.h"

#include <algorithm>

#include "anvil/common/status.h"

namespace anvil::compiler {

namespace {
uint64_t align_up(uint64_t v) { return (v + kSramAlignment - 1) / kSramAlignment * kSramAlignment; }
}  // namespace

SramAllocator::SramAllocator(uint64_t capacity) : capacity_(capacity) {}

std::optional<uint64_t> SramAllocator::allocate(uint64_t bytes) {
  uint64_t candidate = 0;
  for (const auto& [addr, size] : live_) {
    if (candidate + bytes <= addr) break;
    candidate = std::max(candidate, align_up(addr + size));
  }
  if (candidate + bytes > capacity_) return std::nullopt;
  live_[candidate] = bytes;
  used_ += align_up(bytes);
  peak_ = std::max(peak_, candidate + bytes);
  return candidate;
}

void SramAllocator::release(uint64_t addr) {
  const auto it = live_.find(addr);
  ANVIL_CHECK(it != live_.end(), "SRAM release of an address that is not allocated");
  used_ -= align_up(it->second);
  live_.erase(it);
}

}  // namespace anvil::compiler

#include "sram_plan.h"

#include <algorithm>

#include "anvil/common/status.h"

namespace anvil::compiler {

namespace {
uint64_t align_up(uint64_t v) { return (v + kSramAlignment - 1) / kSramAlignment * kSramAlignment; }
}  // namespace

SramAllocator::SramAllocator(uint64_t capacity) : capacity_(capacity) {}

std::optional<uint64_t> SramAllocator::allocate(uint64_t bytes) {
  // Next fit: the first place at or after the cursor, else the first gap from address 0.
  std::optional<uint64_t> after_cursor, first;
  uint64_t gap_begin = 0;
  auto gap = [&](uint64_t gap_end) {  // the free bytes [gap_begin, gap_end)
    if (!first && gap_begin + bytes <= gap_end) first = gap_begin;
    const uint64_t at = std::max(gap_begin, align_up(cursor_));
    if (!after_cursor && at + bytes <= gap_end) after_cursor = at;
  };
  for (const auto& [addr, size] : live_) {
    gap(addr);
    if (after_cursor) break;
    gap_begin = std::max(gap_begin, align_up(addr + size));
  }
  if (!after_cursor) gap(capacity_);
  const std::optional<uint64_t> found = after_cursor ? after_cursor : first;
  if (!found) return std::nullopt;
  live_[*found] = bytes;
  used_ += align_up(bytes);
  peak_ = std::max(peak_, *found + bytes);
  cursor_ = *found + bytes;
  return found;
}

void SramAllocator::release(uint64_t addr) {
  const auto it = live_.find(addr);
  ANVIL_CHECK(it != live_.end(), "SRAM release of an address that is not allocated");
  used_ -= align_up(it->second);
  live_.erase(it);
}

}  // namespace anvil::compiler

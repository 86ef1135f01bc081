#include "scratch_allocator.h"

#include <algorithm>

namespace anvil::compiler {

namespace {
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

ScratchLayout first_fit(const std::vector<LiveBuffer>& buffers, uint64_t alignment) {
  ScratchLayout layout;
  layout.offsets.resize(buffers.size());
  struct Busy {
    uint64_t begin, end;
  };
  for (size_t i = 0; i < buffers.size(); ++i) {
    const LiveBuffer& b = buffers[i];
    std::vector<Busy> busy;  // placed buffers alive at the same time, by address
    for (size_t j = 0; j < i; ++j)
      if (buffers[j].first <= b.last && b.first <= buffers[j].last && buffers[j].bytes > 0)
        busy.push_back({layout.offsets[j], layout.offsets[j] + buffers[j].bytes});
    std::sort(busy.begin(), busy.end(), [](const Busy& x, const Busy& y) { return x.begin < y.begin; });
    uint64_t offset = 0;
    for (const Busy& r : busy) {
      if (offset + b.bytes <= r.begin) break;  // fits in the gap before r
      offset = std::max(offset, align_up(r.end, alignment));
    }
    layout.offsets[i] = offset;
    layout.peak = std::max(layout.peak, offset + b.bytes);
  }
  return layout;
}

}  // namespace anvil::compiler

// The compiler's planning units on their own: first-fit scratch placement and the dependency
// tracker's waits.
#include <gtest/gtest.h>

#include "dependency_tracker.h"
#include "scratch_allocator.h"
#include "sram_plan.h"

using namespace anvil;
using namespace anvil::compiler;

TEST(FirstFit, ReusesBytesOfDeadBuffersOnly) {
  // a [0,1] and b [1,2] overlap in time; c [2,3] may reuse a's bytes; d [0,3] lives throughout.
  const ScratchLayout l = first_fit({{100, 0, 1}, {50, 1, 2}, {100, 2, 3}, {10, 0, 3}}, 64);
  ASSERT_EQ(l.offsets.size(), 4u);
  EXPECT_EQ(l.offsets[0], 0u);
  EXPECT_EQ(l.offsets[1], 128u);  // after a, aligned
  EXPECT_EQ(l.offsets[2], 0u);    // a is dead by op 2; c fits below b
  EXPECT_EQ(l.offsets[3], 192u);  // alive with everyone: after b
  EXPECT_EQ(l.peak, 202u);
}

TEST(FirstFit, FillsGapsBetweenLiveBuffers) {
  // x [0,0] 64 B and y [0,9] 64 B; z [1,9] 32 B goes into x's hole at 0.
  const ScratchLayout l = first_fit({{64, 0, 0}, {64, 0, 9}, {32, 1, 9}}, 64);
  EXPECT_EQ(l.offsets[1], 64u);
  EXPECT_EQ(l.offsets[2], 0u);
  EXPECT_EQ(l.peak, 128u);
}

namespace {
isa::Instruction load(uint32_t sram, uint32_t bytes, uint64_t dram, isa::Region region = isa::Region::kScratch) {
  isa::Instruction i;
  i.opcode = isa::Opcode::kDmaLoad;
  i.dma.sram_addr = sram;
  i.dma.row_bytes = bytes;
  i.dma.rows = 1;
  i.dma.dram_offset = dram;
  i.dma.region = static_cast<uint8_t>(region);
  return i;
}
isa::Instruction store(uint32_t sram, uint32_t bytes, uint64_t dram) {
  isa::Instruction i = load(sram, bytes, dram);
  i.opcode = isa::Opcode::kDmaStore;
  return i;
}
isa::Instruction requant(uint32_t in, uint32_t out, uint32_t count) {
  isa::Instruction i;
  i.opcode = isa::Opcode::kRequant;
  i.requant.in_addr = in;
  i.requant.out_addr = out;
  i.requant.count = count;
  return i;
}
}  // namespace

TEST(DependencyTracker, WaitsFollowTheBytes) {
  DependencyTracker t;
  isa::Instruction l0 = load(0, 64, 0);  // dma 0
  t.schedule(l0);
  EXPECT_EQ(l0.wait[0], 0u);
  isa::Instruction l1 = load(64, 64, 64);  // dma 1: independent bytes
  t.schedule(l1);
  EXPECT_EQ(l1.wait[0], 0u);
  isa::Instruction v0 = requant(0, 128, 64);  // vec 0 reads what dma 0 wrote
  t.schedule(v0);
  EXPECT_EQ(v0.wait[0], 1u);
  EXPECT_EQ(v0.wait[2], 0u);
  isa::Instruction s0 = store(128, 64, 512);  // dma 2 reads vec 0's output
  t.schedule(s0);
  EXPECT_EQ(s0.wait[2], 1u);
  EXPECT_EQ(s0.wait[0], 0u);
  isa::Instruction l2 = load(0, 32, 1024);  // dma 3 overwrites what vec 0 reads: write after read
  t.schedule(l2);
  EXPECT_EQ(l2.wait[2], 1u);
  EXPECT_EQ(l2.wait[0], 1u);  // and after dma 0, the previous writer of those bytes
  isa::Instruction l3 = load(256, 64, 512);  // dma 4 reads the DRAM dma 2 stored: read after write
  t.schedule(l3);
  EXPECT_EQ(l3.wait[0], 3u);
  isa::Instruction l4 = load(64, 64, 4096, isa::Region::kIo);  // dma 5: SRAM last written by dma 1
  t.schedule(l4);
  EXPECT_EQ(l4.wait[0], 2u);
  EXPECT_EQ(t.issued()[0], 6u);
  EXPECT_EQ(t.issued()[2], 1u);
}

TEST(DependencyTracker, RegionsAreSeparateSpaces) {
  DependencyTracker t;
  isa::Instruction s = store(0, 64, 0);  // scratch [0, 64)
  t.schedule(s);
  isa::Instruction l = load(64, 64, 0, isa::Region::kIo);  // io [0, 64): other bytes
  t.schedule(l);
  EXPECT_EQ(l.wait[0], 0u);
}

TEST(SramAllocator, NextFitWithReleaseAndExactPeak) {
  SramAllocator a(1000);
  EXPECT_EQ(a.allocate(300), 0u);
  EXPECT_EQ(a.allocate(300), 320u);  // after the first, 64-aligned
  a.release(0);
  EXPECT_EQ(a.allocate(200), 640u);  // after the cursor, although [0, 320) is free
  EXPECT_EQ(a.allocate(150), 0u);    // [896, 1000) is too small: wraps to the first gap
  EXPECT_EQ(a.allocate(100), 192u);  // after the cursor (150 -> 192 aligned), in the same gap
  EXPECT_FALSE(a.allocate(200).has_value());  // no gap of 200 left
  EXPECT_EQ(a.peak(), 840u);         // end of the last byte requested, not aligned
  EXPECT_EQ(a.used(), 320u + 256u + 192u + 128u);
  for (uint64_t addr : {0u, 192u, 320u, 640u}) a.release(addr);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.allocate(600), 320u);  // from the cursor (292 -> 320) in the empty SRAM
  a.release(320);
  a.rewind();
  EXPECT_EQ(a.allocate(600), 0u);
}

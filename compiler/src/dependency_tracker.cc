#include "dependency_tracker.h"

#include <algorithm>

#include "anvil/common/requant.h"

namespace anvil::compiler {

namespace {

bool overlaps(const MemRange& a, const MemRange& b) {
  return a.space == b.space && a.begin < b.end && b.begin < a.end;
}
bool contains(const MemRange& outer, const MemRange& inner) {
  return outer.space == inner.space && outer.begin <= inner.begin && inner.end <= outer.end;
}
MemRange sram(uint64_t addr, uint64_t bytes) { return {MemRange::kSram, addr, addr + bytes}; }
uint64_t u64(uint64_t v) { return v; }

}  // namespace

MemAccess instruction_access(const isa::Instruction& inst) {
  using isa::Opcode;
  MemAccess a;
  switch (inst.opcode) {
    case Opcode::kDmaLoad:
    case Opcode::kDmaStore: {
      const isa::DmaArgs& d = inst.dma;
      const uint64_t rows = d.rows == 0 ? 0 : d.rows - 1;
      const MemRange dram{d.region, d.dram_offset, d.dram_offset + rows * d.dram_stride + d.row_bytes};
      const MemRange s = sram(d.sram_addr, rows * d.sram_stride + d.row_bytes);
      if (inst.opcode == Opcode::kDmaLoad) {
        a.reads.push_back(dram);
        a.writes.push_back(s);
      } else {
        a.reads.push_back(s);
        a.writes.push_back(dram);
      }
      break;
    }
    case Opcode::kConv: {
      const isa::ConvArgs& c = inst.conv;
      const uint64_t groups = c.groups ? c.groups : 1;
      a.reads.push_back(sram(c.in_addr, u64(c.n) * c.in_c * c.in_h * c.in_w));
      a.reads.push_back(sram(c.weight_addr, u64(c.out_c) * (c.in_c / groups) * c.kernel_h * c.kernel_w));
      for (uint32_t addr : {c.bias_addr, c.mult_addr, c.shift_addr}) a.reads.push_back(sram(addr, u64(c.out_c) * 4));
      a.writes.push_back(sram(c.out_addr, u64(c.n) * c.out_c * c.out_h * c.out_w));
      break;
    }
    case Opcode::kAdd:
      a.reads.push_back(sram(inst.add.a_addr, inst.add.count));
      a.reads.push_back(sram(inst.add.b_addr, inst.add.count));
      a.writes.push_back(sram(inst.add.out_addr, inst.add.count));
      break;
    case Opcode::kMaxPool:
    case Opcode::kAvgPool: {
      const isa::PoolArgs& p = inst.pool;
      a.reads.push_back(sram(p.in_addr, u64(p.n) * p.c * p.in_h * p.in_w));
      a.writes.push_back(sram(p.out_addr, u64(p.n) * p.c * p.out_h * p.out_w));
      break;
    }
    case Opcode::kRequant:
      a.reads.push_back(sram(inst.requant.in_addr, inst.requant.count));
      a.writes.push_back(sram(inst.requant.out_addr, inst.requant.count));
      break;
    case Opcode::kBinary: {
      const isa::BinaryArgs& b = inst.binary;
      a.reads.push_back(sram(b.a_addr, isa::binary_extent(b, b.a_stride)));
      a.reads.push_back(sram(b.b_addr, isa::binary_extent(b, b.b_stride)));
      a.writes.push_back(sram(b.out_addr, isa::binary_count(b)));
      break;
    }
    case Opcode::kLut:
      a.reads.push_back(sram(inst.lut.in_addr, inst.lut.count));
      a.reads.push_back(sram(inst.lut.table_addr, 256));
      a.writes.push_back(sram(inst.lut.out_addr, inst.lut.count));
      break;
    case Opcode::kCopy: {  // the envelope of the strided box
      const isa::CopyArgs& c = inst.copy;
      const isa::CopySpan out = isa::copy_span(c.shape, c.out_stride);
      if (c.mode != static_cast<uint8_t>(isa::CopyMode::kFill)) {
        const isa::CopySpan in = isa::copy_span(c.shape, c.in_stride);
        a.reads.push_back(sram(c.in_addr + in.lo, in.hi - in.lo + 1));
      }
      a.writes.push_back(sram(c.out_addr + out.lo, out.hi - out.lo + 1));
      break;
    }
    case Opcode::kMatMul: {
      const isa::MatMulArgs& m = inst.matmul;
      a.reads.push_back(sram(m.a_addr, (m.a_step ? u64(m.batch - 1) * m.a_step : 0) + u64(m.m) * m.k));
      a.reads.push_back(sram(m.b_addr, (m.b_step ? u64(m.batch - 1) * m.b_step : 0) + u64(m.k) * m.n));
      a.writes.push_back(sram(m.out_addr, u64(m.batch) * m.m * m.n));
      break;
    }
    case Opcode::kSoftmax: {
      const isa::SoftmaxArgs& s = inst.softmax;
      a.reads.push_back(sram(s.in_addr, u64(s.outer) * s.length * s.inner));
      a.reads.push_back(sram(s.table_addr, sizeof(math::SoftmaxTable)));
      a.writes.push_back(sram(s.out_addr, u64(s.outer) * s.length * s.inner));
      break;
    }
    case Opcode::kResize: {
      const isa::ResizeArgs& r = inst.resize;
      a.reads.push_back(sram(r.in_addr, u64(r.planes) * r.in_h * r.in_w));
      a.reads.push_back(sram(r.rows_addr, u64(r.out_h) * isa::kResizeTapBytes));
      a.reads.push_back(sram(r.cols_addr, u64(r.out_w) * isa::kResizeTapBytes));
      a.writes.push_back(sram(r.out_addr, u64(r.planes) * r.out_h * r.out_w));
      break;
    }
    case Opcode::kNop: break;
  }
  return a;
}

uint32_t DependencyTracker::schedule(isa::Instruction& inst) {
  const MemAccess access = instruction_access(inst);
  auto wait_for = [&inst](const Record& r) {
    uint32_t& w = inst.wait[static_cast<int>(r.unit)];
    w = std::max(w, r.index + 1);
  };
  for (const Record& r : records_) {
    bool conflict = false;
    for (const MemRange& m : access.reads) conflict |= r.write && overlaps(r.range, m);
    for (const MemRange& m : access.writes) conflict |= overlaps(r.range, m);
    if (conflict) wait_for(r);
  }
  const isa::Unit unit = isa::opcode_unit(inst.opcode);
  const uint32_t index = issued_[static_cast<int>(unit)]++;
  // A record wholly covered by this write is superseded: whoever conflicts with it later also
  // conflicts with this instruction, which already waited for it.
  for (const MemRange& m : access.writes)
    records_.erase(std::remove_if(records_.begin(), records_.end(), [&](const Record& r) { return contains(m, r.range); }),
                   records_.end());
  for (const MemRange& m : access.reads) records_.push_back({m, unit, index, false});
  for (const MemRange& m : access.writes) records_.push_back({m, unit, index, true});
  return index;
}

}  // namespace anvil::compiler

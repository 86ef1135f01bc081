// TEST-ONLY: see isa_interpreter_for_tests.h. Not part of any library.
#include "isa_interpreter_for_tests.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "anvil/common/requant.h"
#include "anvil/common/status.h"

namespace anvil::testing {

namespace {

constexpr int kSram = 3;

class Memory {
 public:
  Memory(const isa::Program& p, std::vector<uint8_t> io) {
    spaces_[0] = p.constants;
    spaces_[1].assign(p.scratch_bytes, 0xCD);  // garbage: nothing may read scratch before writing it
    spaces_[2] = std::move(io);
    spaces_[kSram].assign(p.sram_bytes, 0xCD);
  }
  uint8_t read(int space, uint64_t addr) {
    check(space, addr);
    reads_[space].push_back(addr);
    return spaces_[space][addr];
  }
  void write(int space, uint64_t addr, uint8_t v) {
    check(space, addr);
    writes_[space].push_back(addr);
    spaces_[space][addr] = v;
  }
  int8_t read_i8(uint64_t addr) { return static_cast<int8_t>(read(kSram, addr)); }
  int32_t read_i32(uint64_t addr) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= static_cast<uint32_t>(read(kSram, addr + b)) << (8 * b);
    return static_cast<int32_t>(v);
  }
  void write_i8(uint64_t addr, int8_t v) { write(kSram, addr, static_cast<uint8_t>(v)); }
  /// The accesses since the last call, as sorted disjoint ranges.
  TouchedBytes take_log() {
    TouchedBytes t;
    for (int s = 0; s < 4; ++s) {
      compress(reads_[s], s, t.reads);
      compress(writes_[s], s, t.writes);
    }
    return t;
  }
  std::vector<uint8_t>& io() { return spaces_[2]; }

 private:
  void check(int space, uint64_t addr) const {
    if (space < 0 || space > kSram || addr >= spaces_[space].size())
      fail(ErrorCode::kDeviceError, "interpreter: access to byte " + std::to_string(addr) + " of space " +
                                        std::to_string(space) + " (size " +
                                        std::to_string(space >= 0 && space <= kSram ? spaces_[space].size() : 0) + ")");
  }
  static void compress(std::vector<uint64_t>& addrs, int space, std::vector<TouchedRange>& out) {
    std::sort(addrs.begin(), addrs.end());
    addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
    for (size_t i = 0; i < addrs.size();) {
      size_t j = i + 1;
      while (j < addrs.size() && addrs[j] == addrs[j - 1] + 1) ++j;
      out.push_back({space, addrs[i], addrs[j - 1] + 1});
      i = j;
    }
    addrs.clear();
  }
  std::array<std::vector<uint8_t>, 4> spaces_;
  std::array<std::vector<uint64_t>, 4> reads_, writes_;
};

void run_dma(const isa::Instruction& inst, Memory& m) {
  const isa::DmaArgs& d = inst.dma;
  if (d.region >= isa::kNumRegions) fail(ErrorCode::kDeviceError, "interpreter: bad DMA region");
  if (inst.opcode == isa::Opcode::kDmaStore && d.region == static_cast<uint8_t>(isa::Region::kConst))
    fail(ErrorCode::kDeviceError, "interpreter: store into the constant region");
  for (uint64_t r = 0; r < d.rows; ++r)
    for (uint64_t b = 0; b < d.row_bytes; ++b) {
      const uint64_t dram = d.dram_offset + r * d.dram_stride + b, sram = d.sram_addr + r * d.sram_stride + b;
      if (inst.opcode == isa::Opcode::kDmaLoad)
        m.write(kSram, sram, m.read(d.region, dram));
      else
        m.write(d.region, dram, m.read(kSram, sram));
    }
}

void run_conv(const isa::ConvArgs& c, Memory& m) {
  if (c.groups == 0 || c.in_c % c.groups || c.out_c % c.groups || c.stride_h == 0 || c.stride_w == 0)
    fail(ErrorCode::kDeviceError, "interpreter: bad conv arguments");
  const int cin_g = c.in_c / c.groups, cout_g = c.out_c / c.groups;
  for (int n = 0; n < c.n; ++n)
    for (int o = 0; o < c.out_c; ++o) {
      const int g = o / cout_g;
      const math::QuantizedMultiplier q{m.read_i32(c.mult_addr + 4u * o), m.read_i32(c.shift_addr + 4u * o)};
      const int32_t bias = m.read_i32(c.bias_addr + 4u * o);
      for (int oy = 0; oy < c.out_h; ++oy)
        for (int ox = 0; ox < c.out_w; ++ox) {
          int32_t acc = bias;
          for (int ci = 0; ci < cin_g; ++ci)
            for (int ky = 0; ky < c.kernel_h; ++ky)
              for (int kx = 0; kx < c.kernel_w; ++kx) {
                const int iy = oy * c.stride_h - c.pad_top + ky * c.dilation_h;
                const int ix = ox * c.stride_w - c.pad_left + kx * c.dilation_w;
                if (iy < 0 || iy >= c.in_h || ix < 0 || ix >= c.in_w) continue;  // padding: x == in_zero_point
                const int ch = g * cin_g + ci;
                const int32_t x = m.read_i8(c.in_addr + ((uint64_t(n) * c.in_c + ch) * c.in_h + iy) * c.in_w + ix);
                const int32_t w = m.read_i8(c.weight_addr + ((uint64_t(o) * cin_g + ci) * c.kernel_h + ky) * c.kernel_w + kx);
                acc += (x - c.in_zero_point) * w;
              }
          m.write_i8(c.out_addr + ((uint64_t(n) * c.out_c + o) * c.out_h + oy) * c.out_w + ox,
                     math::requantize(acc, q, c.out_zero_point, c.act_min, c.act_max));
        }
    }
}

void run_pool(const isa::Instruction& inst, Memory& m) {
  const isa::PoolArgs& p = inst.pool;
  const bool avg = inst.opcode == isa::Opcode::kAvgPool;
  for (int n = 0; n < p.n; ++n)
    for (int c = 0; c < p.c; ++c)
      for (int oy = 0; oy < p.out_h; ++oy)
        for (int ox = 0; ox < p.out_w; ++ox) {
          int32_t sum = 0, max = -128;
          for (int ky = 0; ky < p.kernel_h; ++ky)
            for (int kx = 0; kx < p.kernel_w; ++kx) {
              const int iy = oy * p.stride_h - p.pad_top + ky, ix = ox * p.stride_w - p.pad_left + kx;
              if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
              const int32_t x = m.read_i8(p.in_addr + ((uint64_t(n) * p.c + c) * p.in_h + iy) * p.in_w + ix);
              sum += x - p.in_zero_point;
              max = std::max(max, x);
            }
          const int8_t out = avg ? math::requantize(sum, {p.mult, p.shift}, p.out_zero_point, p.act_min, p.act_max)
                                 : static_cast<int8_t>(std::clamp(max, p.act_min, p.act_max));
          m.write_i8(p.out_addr + ((uint64_t(n) * p.c + c) * p.out_h + oy) * p.out_w + ox, out);
        }
}

void run_matmul(const isa::MatMulArgs& a, Memory& m) {
  for (uint64_t p = 0; p < a.batch; ++p)
    for (uint64_t i = 0; i < a.m; ++i)
      for (uint64_t j = 0; j < a.n; ++j) {
        int32_t acc = 0;
        for (uint64_t k = 0; k < a.k; ++k)
          acc += (m.read_i8(a.a_addr + p * a.a_step + i * a.k + k) - a.a_zero_point) *
                 (m.read_i8(a.b_addr + p * a.b_step + k * a.n + j) - a.b_zero_point);
        m.write_i8(a.out_addr + (p * a.m + i) * a.n + j,
                   math::requantize(acc, {a.mult, a.shift}, a.out_zero_point, a.act_min, a.act_max));
      }
}

/// kSoftmax: each row gathered into a buffer, math::softmax_row, scattered back.
void run_softmax(const isa::SoftmaxArgs& s, Memory& m) {
  math::SoftmaxTable table;
  for (size_t d = 0; d < table.size(); ++d) table[d] = m.read_i32(s.table_addr + 4 * d);
  std::vector<int8_t> row(s.length), out(s.length);
  const uint64_t plane = static_cast<uint64_t>(s.length) * s.inner;
  for (uint64_t o = 0; o < s.outer; ++o)
    for (uint64_t i = 0; i < s.inner; ++i) {
      for (uint64_t l = 0; l < s.length; ++l) row[l] = m.read_i8(s.in_addr + o * plane + l * s.inner + i);
      math::softmax_row(row.data(), out.data(), s.length, 1, table, {s.mult, s.shift}, s.out_zero_point);
      for (uint64_t l = 0; l < s.length; ++l) m.write_i8(s.out_addr + o * plane + l * s.inner + i, out[l]);
    }
}

/// kResize: each plane and the tap tables gathered from memory, math::resize_plane, scattered back.
void run_resize(const isa::ResizeArgs& r, Memory& m) {
  const auto taps = [&](uint32_t addr, uint32_t n, uint32_t in) {
    std::vector<math::ResizeTap> t(n);
    for (uint32_t i = 0; i < n; ++i)
      t[i] = {m.read_i32(addr + 12 * i), m.read_i32(addr + 12 * i + 4), m.read_i32(addr + 12 * i + 8)};
    if (!math::resize_taps_valid(t.data(), n, in)) fail(ErrorCode::kDeviceError, "interpreter: bad resize tap");
    return t;
  };
  const std::vector<math::ResizeTap> rows = taps(r.rows_addr, r.out_h, r.in_h), cols = taps(r.cols_addr, r.out_w, r.in_w);
  const uint64_t in_plane = static_cast<uint64_t>(r.in_h) * r.in_w, out_plane = static_cast<uint64_t>(r.out_h) * r.out_w;
  std::vector<int8_t> in(in_plane), out(out_plane);
  for (uint64_t p = 0; p < r.planes; ++p) {
    for (uint64_t i = 0; i < in_plane; ++i) in[i] = m.read_i8(r.in_addr + p * in_plane + i);
    math::resize_plane(in.data(), r.in_w, out.data(), rows.data(), r.out_h, cols.data(), r.out_w, r.in_zero_point,
                       {r.mult, r.shift}, r.out_zero_point);
    for (uint64_t i = 0; i < out_plane; ++i) m.write_i8(r.out_addr + p * out_plane + i, out[i]);
  }
}

/// kCopy, one element at a time over a 6-deep index (no span arithmetic: each address is computed
/// and bounds-checked by Memory itself).
void run_copy(const isa::CopyArgs& c, Memory& m) {
  if (c.mode > 2) fail(ErrorCode::kDeviceError, "interpreter: bad copy mode");
  const auto mode = static_cast<isa::CopyMode>(c.mode);
  const auto& s = c.shape;
  for (uint64_t a = 0; a < s[0]; ++a)
    for (uint64_t b = 0; b < s[1]; ++b)
      for (uint64_t d = 0; d < s[2]; ++d)
        for (uint64_t e = 0; e < s[3]; ++e)
          for (uint64_t f = 0; f < s[4]; ++f)
            for (uint64_t g = 0; g < s[5]; ++g) {
              const uint64_t i[isa::kCopyDims] = {a, b, d, e, f, g};
              int64_t in = c.in_addr, out = c.out_addr;
              for (int k = 0; k < isa::kCopyDims; ++k) {
                in += static_cast<int64_t>(i[k]) * c.in_stride[k];
                out += static_cast<int64_t>(i[k]) * c.out_stride[k];
              }
              if (in < 0 || out < 0) fail(ErrorCode::kDeviceError, "interpreter: copy below SRAM address 0");
              int8_t v = c.fill_value;
              if (mode == isa::CopyMode::kCopy) v = m.read_i8(in);
              if (mode == isa::CopyMode::kRequant)
                v = math::requantize(m.read_i8(in) - c.in_zero_point, {c.mult, c.shift}, c.out_zero_point, -128, 127);
              m.write_i8(out, v);
            }
}

}  // namespace

InterpreterRun interpret_for_tests(const isa::Program& program, std::vector<uint8_t> io) {
  if (io.size() != program.io_bytes) fail(ErrorCode::kInvalidArgument, "interpreter: IO buffer size mismatch");
  Memory m(program, std::move(io));
  InterpreterRun run;
  for (const isa::Instruction& inst : program.instructions) {
    switch (inst.opcode) {
      case isa::Opcode::kDmaLoad:
      case isa::Opcode::kDmaStore: run_dma(inst, m); break;
      case isa::Opcode::kConv: run_conv(inst.conv, m); break;
      case isa::Opcode::kAdd: {
        const isa::AddArgs& a = inst.add;
        const math::AddParams p = isa::add_params(a);
        for (uint32_t i = 0; i < a.count; ++i)
          m.write_i8(a.out_addr + i, math::add_int8(m.read_i8(a.a_addr + i), m.read_i8(a.b_addr + i), p));
        break;
      }
      case isa::Opcode::kMaxPool:
      case isa::Opcode::kAvgPool: run_pool(inst, m); break;
      case isa::Opcode::kRequant: {
        const isa::RequantArgs& r = inst.requant;
        for (uint32_t i = 0; i < r.count; ++i)
          m.write_i8(r.out_addr + i, math::requantize(m.read_i8(r.in_addr + i) - r.in_zero_point, {r.mult, r.shift},
                                                      r.out_zero_point, r.act_min, r.act_max));
        break;
      }
      case isa::Opcode::kLut: {
        const isa::LutArgs& l = inst.lut;
        for (uint32_t i = 0; i < l.count; ++i)
          m.write_i8(l.out_addr + i, m.read_i8(l.table_addr + 128 + m.read_i8(l.in_addr + i)));
        break;
      }
      case isa::Opcode::kCopy: run_copy(inst.copy, m); break;
      case isa::Opcode::kBinary: {
        const isa::BinaryArgs& b = inst.binary;
        const math::AddParams add = isa::add_params(b);
        const math::MulParams mul = isa::mul_params(b);
        uint64_t i = 0;
        for (uint64_t i0 = 0; i0 < b.shape[0]; ++i0)
          for (uint64_t i1 = 0; i1 < b.shape[1]; ++i1)
            for (uint64_t i2 = 0; i2 < b.shape[2]; ++i2)
              for (uint64_t i3 = 0; i3 < b.shape[3]; ++i3, ++i) {
                const int8_t u = m.read_i8(b.a_addr + i0 * b.a_stride[0] + i1 * b.a_stride[1] + i2 * b.a_stride[2] +
                                           i3 * b.a_stride[3]);
                const int8_t v = m.read_i8(b.b_addr + i0 * b.b_stride[0] + i1 * b.b_stride[1] + i2 * b.b_stride[2] +
                                           i3 * b.b_stride[3]);
                const auto op = static_cast<isa::BinaryOp>(b.op);
                m.write_i8(b.out_addr + i, op == isa::BinaryOp::kMul   ? math::mul_int8(u, v, mul)
                                           : op == isa::BinaryOp::kSub ? math::sub_int8(u, v, add)
                                                                       : math::add_int8(u, v, add));
              }
        break;
      }
      case isa::Opcode::kMatMul: run_matmul(inst.matmul, m); break;
      case isa::Opcode::kSoftmax: run_softmax(inst.softmax, m); break;
      case isa::Opcode::kResize: run_resize(inst.resize, m); break;
      case isa::Opcode::kNop: break;
    }
    run.accesses.push_back(m.take_log());
  }
  run.io = std::move(m.io());
  return run;
}

TensorMap run_program_for_tests(const isa::Program& program, const TensorMap& inputs, InterpreterRun* run) {
  std::vector<uint8_t> io(program.io_bytes, 0xEE);
  for (const isa::TensorDesc& d : program.inputs) {
    const Tensor& t = inputs.at(d.name);
    if (t.nbytes() != d.bytes()) fail(ErrorCode::kInvalidArgument, "input '" + d.name + "' has the wrong size");
    std::memcpy(io.data() + d.io_offset, t.raw(), t.nbytes());
  }
  InterpreterRun result = interpret_for_tests(program, std::move(io));
  TensorMap outputs;
  for (const isa::TensorDesc& d : program.outputs) {
    Tensor t(DType::kInt8, d.shape);
    std::memcpy(t.raw(), result.io.data() + d.io_offset, t.nbytes());
    outputs[d.name] = t;
  }
  if (run) *run = std::move(result);
  return outputs;
}

std::vector<std::string> find_unordered_conflicts(const isa::Program& program, const InterpreterRun& run) {
  using Clock = std::array<uint32_t, isa::kNumUnits>;  // per unit: instructions known complete
  auto merge = [](Clock& into, const Clock& c) {
    for (int u = 0; u < isa::kNumUnits; ++u) into[u] = std::max(into[u], c[u]);
  };
  const auto& insts = program.instructions;
  std::vector<int> unit(insts.size());
  std::vector<uint32_t> index(insts.size());
  std::vector<Clock> start(insts.size());
  // done_prefix[u][k]: what is known complete once instructions 0..k of unit u have completed.
  std::array<std::vector<Clock>, isa::kNumUnits> done_prefix;
  std::vector<std::string> problems;
  for (size_t i = 0; i < insts.size(); ++i) {
    unit[i] = static_cast<int>(isa::opcode_unit(insts[i].opcode));
    index[i] = static_cast<uint32_t>(done_prefix[unit[i]].size());
    Clock clock{};
    for (int u = 0; u < isa::kNumUnits; ++u) {
      const uint32_t w = insts[i].wait[u];
      if (w > done_prefix[u].size()) {
        problems.push_back("instruction " + std::to_string(i) + " waits for " + std::to_string(w) + " " +
                           isa::unit_name(static_cast<isa::Unit>(u)) + " instructions, only " +
                           std::to_string(done_prefix[u].size()) + " precede it (deadlock)");
        continue;
      }
      if (w > 0) merge(clock, done_prefix[u][w - 1]);
    }
    start[i] = clock;
    Clock done = clock;
    done[unit[i]] = std::max(done[unit[i]], index[i] + 1);
    if (!done_prefix[unit[i]].empty()) merge(done, done_prefix[unit[i]].back());
    done_prefix[unit[i]].push_back(done);
  }
  auto overlap = [](const std::vector<TouchedRange>& a, const std::vector<TouchedRange>& b) {
    for (const auto& x : a)
      for (const auto& y : b)
        if (x.space == y.space && x.begin < y.end && y.begin < x.end) return true;
    return false;
  };
  for (size_t i = 0; i < insts.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const TouchedBytes &a = run.accesses[j], &b = run.accesses[i];
      const bool conflict = overlap(a.writes, b.reads) || overlap(a.writes, b.writes) || overlap(a.reads, b.writes);
      if (conflict && start[i][unit[j]] < index[j] + 1)
        problems.push_back("instruction " + std::to_string(i) + " (" + isa::to_string(insts[i]) +
                           ") may run before instruction " + std::to_string(j) + " (" + isa::to_string(insts[j]) +
                           ") completes, and they touch the same bytes");
    }
  return problems;
}

}  // namespace anvil::testing

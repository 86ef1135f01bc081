#include "vector_engine.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "requant_rows.h"

namespace anvil::hw {

namespace {
bool clamp_valid(int32_t lo, int32_t hi) { return lo <= hi && lo >= -128 && hi <= 127; }
}  // namespace

VectorEngine::VectorEngine(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq)
    : ExecUnit(name, ctx, seq, isa::Unit::kVector) {}

uint64_t VectorEngine::lanes(const isa::Instruction& inst, const HwConfig& cfg, uint32_t fused_pes) {
  return static_cast<uint64_t>(inst.opcode == isa::Opcode::kLut ? cfg.lut_lanes : cfg.vector_lanes) * fused_pes;
}

uint64_t VectorEngine::vector_cycles(const isa::Instruction& inst, const HwConfig& cfg, uint32_t fused_pes) {
  const uint64_t l = lanes(inst, cfg, fused_pes);
  return cfg.vector_fill_cycles + (isa::vector_elements(inst) + l - 1) / l;
}

sc_core::sc_time VectorEngine::execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time&) {
  switch (inst.opcode) {
    case isa::Opcode::kAdd: add(inst.add, index); break;
    case isa::Opcode::kMaxPool: pool(inst.pool, false, index); break;
    case isa::Opcode::kAvgPool: pool(inst.pool, true, index); break;
    case isa::Opcode::kRequant: requant(inst.requant, index); break;
    case isa::Opcode::kLut: lut(inst.lut, index); break;
    case isa::Opcode::kCopy: copy(inst.copy, index); break;
    case isa::Opcode::kBinary: binary(inst.binary, index); break;
    case isa::Opcode::kSoftmax: softmax(inst.softmax, index); break;
    case isa::Opcode::kResize: resize(inst.resize, index); break;
    default: throw PeFault{isa::DeviceError::kBadProgram, index};
  }
  return ctx_.cycles(vector_cycles(inst, ctx_.config, seq_.launch().fused_pes));
}

void VectorEngine::add(const isa::AddArgs& a, uint32_t index) {
  const math::AddParams p = isa::add_params(a);
  if (!multiplier_valid(p.a) || !multiplier_valid(p.b) || !multiplier_valid(p.out) || !clamp_valid(a.act_min, a.act_max) ||
      std::abs(a.a_zero_point) > 255 || std::abs(a.b_zero_point) > 255)
    throw PeFault{isa::DeviceError::kBadProgram, index};
  check_sram(a.a_addr, a.count, index, "add a");
  check_sram(a.b_addr, a.count, index, "add b");
  check_sram(a.out_addr, a.count, index, "add out");
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(a.a_addr));
  const auto* y = reinterpret_cast<const int8_t*>(sram_.read_ptr(a.b_addr));
  out_.resize(a.count);
  if (a.count >= kAddTableMinCount) {
    // The result depends only on the two int8 inputs: tabulate math::add_int8 over all 256 x 256
    // pairs once, then look every element up (the same function computes every entry).
    if (add_pairs_a_.empty()) {
      add_pairs_a_.resize(65536), add_pairs_b_.resize(65536);
      for (int i = 0; i < 65536; ++i)
        add_pairs_a_[i] = static_cast<int8_t>((i >> 8) - 128), add_pairs_b_[i] = static_cast<int8_t>((i & 255) - 128);
    }
    add_table_.resize(65536);
    add_int8_row(add_pairs_a_.data(), add_pairs_b_.data(), add_table_.data(), 65536, p);
    for (uint32_t i = 0; i < a.count; ++i) out_[i] = add_table_[(x[i] + 128) << 8 | (y[i] + 128)];
  } else {
    add_int8_row(x, y, out_.data(), a.count, p);
  }
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(a.out_addr, a.count)));
}

void VectorEngine::pool(const isa::PoolArgs& p, bool average, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const math::QuantizedMultiplier q{p.mult, p.shift};
  if (p.n == 0 || p.c == 0 || p.in_h == 0 || p.in_w == 0 || p.out_h == 0 || p.out_w == 0 || p.kernel_h == 0 ||
      p.kernel_w == 0 || p.stride_h == 0 || p.stride_w == 0 || !clamp_valid(p.act_min, p.act_max) ||
      (average && !multiplier_valid(q)))
    throw bad;
  const int64_t planes = static_cast<int64_t>(p.n) * p.c, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  check_sram(p.in_addr, planes * H * W, index, "pool input");
  check_sram(p.out_addr, planes * OH * OW, index, "pool output");
  const auto* in = reinterpret_cast<const int8_t*>(sram_.read_ptr(p.in_addr));
  out_.resize(static_cast<size_t>(planes * OH * OW));
  std::vector<int8_t>& out = out_;
  const int64_t window = static_cast<int64_t>(p.kernel_h) * p.kernel_w;
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int8_t* x = in + pl * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = oh * p.stride_h - p.pad_top;
      const int64_t h_lo = std::max<int64_t>(h0, 0), h_hi = std::min<int64_t>(h0 + p.kernel_h, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = ow * p.stride_w - p.pad_left;
        const int64_t w_lo = std::max<int64_t>(w0, 0), w_hi = std::min<int64_t>(w0 + p.kernel_w, W);
        int32_t v;
        if (average) {
          if (!p.count_include_pad && (h_hi - h_lo) * (w_hi - w_lo) != window) throw bad;  // see header
          int32_t sum = 0;
          for (int64_t h = h_lo; h < h_hi; ++h)
            for (int64_t w = w_lo; w < w_hi; ++w) sum += x[h * W + w] - p.in_zero_point;
          v = math::requantize(sum, q, p.out_zero_point, p.act_min, p.act_max);
        } else {
          int32_t m = -128;
          for (int64_t h = h_lo; h < h_hi; ++h)
            for (int64_t w = w_lo; w < w_hi; ++w) m = std::max<int32_t>(m, x[h * W + w]);
          v = std::clamp(m, p.act_min, p.act_max);
        }
        out[(pl * OH + oh) * OW + ow] = static_cast<int8_t>(v);
      }
    }
  }
  std::copy(out.begin(), out.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(p.out_addr, out.size())));
}

void VectorEngine::requant(const isa::RequantArgs& r, uint32_t index) {
  const math::QuantizedMultiplier q{r.mult, r.shift};
  if (!multiplier_valid(q) || !clamp_valid(r.act_min, r.act_max)) throw PeFault{isa::DeviceError::kBadProgram, index};
  check_sram(r.in_addr, r.count, index, "requant input");
  check_sram(r.out_addr, r.count, index, "requant output");
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(r.in_addr));
  out_.resize(r.count);
  for (uint32_t i = 0; i < r.count; ++i)
    out_[i] = math::requantize(x[i] - r.in_zero_point, q, r.out_zero_point, r.act_min, r.act_max);
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(r.out_addr, r.count)));
}

void VectorEngine::lut(const isa::LutArgs& l, uint32_t index) {
  check_sram(l.table_addr, 256, index, "lut table");
  check_sram(l.in_addr, l.count, index, "lut input");
  check_sram(l.out_addr, l.count, index, "lut output");
  int8_t table[256];
  std::memcpy(table, sram_.read_ptr(l.table_addr), 256);
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(l.in_addr));
  out_.resize(l.count);
  for (uint32_t i = 0; i < l.count; ++i) out_[i] = table[x[i] + 128];
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(l.out_addr, l.count)));
}

void VectorEngine::softmax(const isa::SoftmaxArgs& s, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const math::QuantizedMultiplier q{s.mult, s.shift};
  if (s.outer == 0 || s.length == 0 || s.inner == 0 || !multiplier_valid(q) || s.out_zero_point < -128 ||
      s.out_zero_point > 127)
    throw bad;
  const uint64_t count = static_cast<uint64_t>(s.outer) * s.length * s.inner;
  check_sram(s.table_addr, sizeof(math::SoftmaxTable), index, "softmax table");
  check_sram(s.in_addr, count, index, "softmax input");
  check_sram(s.out_addr, count, index, "softmax output");
  math::SoftmaxTable table;
  for (size_t d = 0; d < table.size(); ++d) {
    table[d] = load_i32(sram_.read_ptr(s.table_addr), d);
    if (table[d] < 0 || table[d] > (1 << math::kSoftmaxFractionBits)) throw bad;
  }
  if (table[0] == 0) throw bad;
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(s.in_addr));
  out_.resize(count);
  const uint64_t plane = static_cast<uint64_t>(s.length) * s.inner;
  for (uint64_t o = 0; o < s.outer; ++o)
    for (uint64_t i = 0; i < s.inner; ++i)
      math::softmax_row(x + o * plane + i, out_.data() + o * plane + i, s.length, s.inner, table, q, s.out_zero_point);
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(s.out_addr, count)));
}

void VectorEngine::resize(const isa::ResizeArgs& r, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const math::QuantizedMultiplier q{r.mult, r.shift};
  if (r.planes == 0 || r.in_h == 0 || r.in_w == 0 || r.out_h == 0 || r.out_w == 0 || !multiplier_valid(q) ||
      std::abs(r.in_zero_point) > 255 || r.out_zero_point < -128 || r.out_zero_point > 127)
    throw bad;
  const uint64_t in_plane = static_cast<uint64_t>(r.in_h) * r.in_w, out_plane = static_cast<uint64_t>(r.out_h) * r.out_w;
  check_sram(r.in_addr, r.planes * in_plane, index, "resize input");
  check_sram(r.out_addr, r.planes * out_plane, index, "resize output");
  check_sram(r.rows_addr, static_cast<uint64_t>(r.out_h) * isa::kResizeTapBytes, index, "resize row taps");
  check_sram(r.cols_addr, static_cast<uint64_t>(r.out_w) * isa::kResizeTapBytes, index, "resize column taps");
  const auto taps = [&](uint32_t addr, uint32_t n) {
    std::vector<math::ResizeTap> t(n);
    for (uint32_t i = 0; i < n; ++i)
      t[i] = {load_i32(sram_.read_ptr(addr), 3 * i), load_i32(sram_.read_ptr(addr), 3 * i + 1),
              load_i32(sram_.read_ptr(addr), 3 * i + 2)};
    return t;
  };
  const std::vector<math::ResizeTap> rows = taps(r.rows_addr, r.out_h), cols = taps(r.cols_addr, r.out_w);
  if (!math::resize_taps_valid(rows.data(), r.out_h, r.in_h) || !math::resize_taps_valid(cols.data(), r.out_w, r.in_w))
    throw bad;
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(r.in_addr));
  out_.resize(r.planes * out_plane);
  for (uint64_t p = 0; p < r.planes; ++p)
    math::resize_plane(x + p * in_plane, r.in_w, out_.data() + p * out_plane, rows.data(), r.out_h, cols.data(), r.out_w,
                       r.in_zero_point, q, r.out_zero_point);
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(r.out_addr, out_.size())));
}

void VectorEngine::binary(const isa::BinaryArgs& b, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const auto op = static_cast<isa::BinaryOp>(b.op);
  const math::AddParams add = isa::add_params(b);
  const math::MulParams mul = isa::mul_params(b);
  const bool is_mul = op == isa::BinaryOp::kMul;
  if (b.op > static_cast<uint8_t>(isa::BinaryOp::kMul) || !multiplier_valid(add.out) ||
      (!is_mul && (!multiplier_valid(add.a) || !multiplier_valid(add.b))) || !clamp_valid(b.act_min, b.act_max) ||
      std::abs(b.a_zero_point) > 255 || std::abs(b.b_zero_point) > 255)
    throw bad;
  const uint64_t count = isa::binary_count(b);
  if (count == 0) throw bad;
  check_sram(b.a_addr, isa::binary_extent(b, b.a_stride), index, "binary a");
  check_sram(b.b_addr, isa::binary_extent(b, b.b_stride), index, "binary b");
  check_sram(b.out_addr, count, index, "binary out");
  const auto* x = reinterpret_cast<const int8_t*>(sram_.read_ptr(b.a_addr));
  const auto* y = reinterpret_cast<const int8_t*>(sram_.read_ptr(b.b_addr));
  out_.resize(count);
  int8_t* out = out_.data();
  for (uint32_t i0 = 0; i0 < b.shape[0]; ++i0)
    for (uint32_t i1 = 0; i1 < b.shape[1]; ++i1)
      for (uint32_t i2 = 0; i2 < b.shape[2]; ++i2) {
        const int8_t* xr =
            x + uint64_t{i0} * b.a_stride[0] + uint64_t{i1} * b.a_stride[1] + uint64_t{i2} * b.a_stride[2];
        const int8_t* yr =
            y + uint64_t{i0} * b.b_stride[0] + uint64_t{i1} * b.b_stride[1] + uint64_t{i2} * b.b_stride[2];
        const uint32_t sa = b.a_stride[3], sb = b.b_stride[3];
        for (uint32_t i3 = 0; i3 < b.shape[3]; ++i3) {
          const int8_t u = xr[uint64_t{i3} * sa], v = yr[uint64_t{i3} * sb];
          *out++ = is_mul ? math::mul_int8(u, v, mul)
                          : op == isa::BinaryOp::kSub ? math::sub_int8(u, v, add) : math::add_int8(u, v, add);
        }
      }
  std::copy(out_.begin(), out_.end(), reinterpret_cast<int8_t*>(sram_.write_ptr(b.out_addr, count)));
}

void VectorEngine::copy(const isa::CopyArgs& c, uint32_t index) {
  const PeFault bad{isa::DeviceError::kBadProgram, index};
  const auto mode = static_cast<isa::CopyMode>(c.mode);
  const uint64_t elements = isa::copy_elements(c);
  if (c.mode > static_cast<uint8_t>(isa::CopyMode::kFill) || elements == 0 || elements > UINT32_MAX ||
      (mode == isa::CopyMode::kRequant && (!multiplier_valid({c.mult, c.shift}) || std::abs(c.in_zero_point) > 255 ||
                                           std::abs(c.out_zero_point) > 255)))
    throw bad;
  const isa::CopySpan in = isa::copy_span(c.shape, c.in_stride), out = isa::copy_span(c.shape, c.out_stride);
  const int64_t in_lo = int64_t{c.in_addr} + in.lo, out_lo = int64_t{c.out_addr} + out.lo;
  if (out_lo < 0) throw bad;
  check_sram(static_cast<uint64_t>(out_lo), static_cast<uint64_t>(out.hi - out.lo + 1), index, "copy output");
  const bool reads = mode != isa::CopyMode::kFill;
  if (reads) {
    if (in_lo < 0) throw bad;
    check_sram(static_cast<uint64_t>(in_lo), static_cast<uint64_t>(in.hi - in.lo + 1), index, "copy input");
    if (in_lo <= int64_t{c.out_addr} + out.hi && out_lo <= int64_t{c.in_addr} + in.hi) throw bad;  // overlap
  }
  // Pointers to index 0; every offset below stays within the checked spans.
  const int8_t* src = reads ? reinterpret_cast<const int8_t*>(sram_.read_ptr(static_cast<uint64_t>(in_lo))) - in.lo : nullptr;
  int8_t* dst = reinterpret_cast<int8_t*>(sram_.write_ptr(static_cast<uint64_t>(out_lo), out.hi - out.lo + 1)) - out.lo;
  const math::QuantizedMultiplier q{c.mult, c.shift};
  uint32_t idx[isa::kCopyDims] = {};
  for (uint64_t e = 0; e < elements; e += c.shape[isa::kCopyDims - 1]) {
    int64_t i_off = 0, o_off = 0;
    for (int k = 0; k < isa::kCopyDims - 1; ++k) {
      i_off += int64_t{idx[k]} * c.in_stride[k];
      o_off += int64_t{idx[k]} * c.out_stride[k];
    }
    const int32_t is = c.in_stride[isa::kCopyDims - 1], os = c.out_stride[isa::kCopyDims - 1];
    for (uint32_t i = 0; i < c.shape[isa::kCopyDims - 1]; ++i, i_off += is, o_off += os) {
      switch (mode) {
        case isa::CopyMode::kCopy: dst[o_off] = src[i_off]; break;
        case isa::CopyMode::kRequant:
          dst[o_off] = math::requantize(src[i_off] - c.in_zero_point, q, c.out_zero_point, -128, 127);
          break;
        case isa::CopyMode::kFill: dst[o_off] = c.fill_value; break;
      }
    }
    for (int k = isa::kCopyDims - 2; k >= 0; --k) {  // odometer over the outer axes
      if (++idx[k] < c.shape[k]) break;
      idx[k] = 0;
    }
  }
}

nlohmann::json VectorEngine::trace_args(const isa::Instruction& inst) const {
  // "lookups": the elements of a kLut, which run at lut_lanes (layer_profile's vector roof).
  if (inst.opcode == isa::Opcode::kLut) return {{"elements", isa::vector_elements(inst)}, {"lookups", isa::vector_elements(inst)}};
  return {{"elements", isa::vector_elements(inst)}};
}

}  // namespace anvil::hw

#pragma once
/// A PE's vector engine: kAdd, kMaxPool, kAvgPool, kRequant, kLut and kBinary over int8 in SRAM.
///
/// Timing: cycles = vector_fill + ceil(isa::vector_elements / lanes), where isa::vector_elements is the
/// element count for kAdd, kRequant and kLut, the output elements for kBinary, and out elements x
/// kernel window for pooling (every window element is read once), and lanes = vector_lanes (x2 in
/// fused mode); kLut runs at lut_lanes lookups per cycle per PE instead (x2 in fused mode;
/// lut_lanes <= vector_lanes, HwConfig).
///
/// Arithmetic (bit-exact with anvil::ref::run_int8, all rounding in common/requant.h):
///   kAdd      math::add_int8 with AddParams from AddArgs
///   kMaxPool  max over the window's in-image elements (padding ignored), clamped to [act_min, act_max]
///   kAvgPool  math::requantize(sum of (x - in_zp) over the in-image elements, {mult, shift}, out_zp,
///             act_min, act_max). PoolArgs carries the multiplier of the full window only
///             (count = kernel_h * kernel_w), so a window that overlaps the padding is exact when
///             count_include_pad == 1 (padding adds 0 to the sum and the divisor stays the full
///             window) and is rejected (kBadProgram) when count_include_pad == 0: the divisor
///             would be the valid count, whose multiplier the instruction does not carry.
///   kRequant  math::requantize(x - in_zp, {mult, shift}, out_zp, act_min, act_max)
///   kBinary   math::add_int8 / sub_int8 (AddParams) or mul_int8 (MulParams) of the a and b
///             elements each output element's strides select (BinaryArgs); operands that do not
///             fit SRAM, an unknown op, an invalid multiplier or clamp, a zero extent, or a zero
///             point outside [-255, 255] is kBadProgram
///   kLut      out[i] = table[x[i] + 128], the 256-byte table read from SRAM at table_addr (the
///             compiler's copy of ref::make_lut; no arithmetic here). lut_lanes lookups per
///             cycle per PE (default = vector_lanes: each lane has its own copy of the table,
///             loaded once per instruction, which the fill cycles cover).
///   kSoftmax  math::softmax_row on each of the outer x inner rows of `length` elements, the
///             256 x int32 exponential table read from SRAM at table_addr (the compiler's copy of
///             math::make_softmax_table; entries must lie in [0, 2^30] with entry 0 > 0, else
///             kBadProgram). Timing: three passes over the elements (max, sum of exponentials,
///             normalise), so isa::vector_elements = 3 x outer x length x inner at vector_lanes.
///   kResize   math::resize_plane on each of `planes` packed planes, the row and column taps
///             (isa::ResizeArgs, 12 bytes each) read from SRAM; a tap outside its axis or a
///             weight outside [0, 2^11], an empty extent, a bad multiplier or zero point is
///             kBadProgram. Timing: four taps per output element (isa::vector_elements =
///             4 x planes x out_h x out_w) at vector_lanes.
///   kCopy     data movement (isa::CopyArgs): every element of the index box moved, requantized with
///             math::requantize(x - in_zp, {mult, shift}, out_zp, -128, 127), or filled, in
///             row-major order of the box; one element per lane per cycle (isa::vector_elements =
///             elements of the box). Rejected (kBadProgram): an unknown mode, an empty axis, more than
///             2^32 - 1 elements, a span outside SRAM, overlapping read and write spans, a bad multiplier or zero point (|zp| > 255).
#include <vector>

#include "exec_unit.h"

namespace anvil::hw {

class VectorEngine : public ExecUnit {
 public:
  VectorEngine(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq);
  /// Elements per cycle of `inst` on a run of `fused_pes` PEs: lut_lanes for kLut, vector_lanes otherwise.
  static uint64_t lanes(const isa::Instruction& inst, const HwConfig& cfg, uint32_t fused_pes);
  static uint64_t vector_cycles(const isa::Instruction& inst, const HwConfig& cfg, uint32_t fused_pes);

 private:
  sc_core::sc_time execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time& local) override;
  nlohmann::json trace_args(const isa::Instruction& inst) const override;
  void add(const isa::AddArgs& a, uint32_t index);
  void pool(const isa::PoolArgs& p, bool average, uint32_t index);
  void requant(const isa::RequantArgs& r, uint32_t index);
  void lut(const isa::LutArgs& l, uint32_t index);
  void copy(const isa::CopyArgs& c, uint32_t index);
  void binary(const isa::BinaryArgs& b, uint32_t index);
  void softmax(const isa::SoftmaxArgs& s, uint32_t index);
  void resize(const isa::ResizeArgs& r, uint32_t index);
  /// kAdd of at least this many elements looks its results up in a 64 Ki-entry table of
  /// math::add_int8 (building it costs 65 536 evaluations, so only long adds gain).
  static constexpr uint32_t kAddTableMinCount = 1u << 17;
  std::vector<int8_t> out_;  ///< result buffer, reused (the output may alias an input)
  std::vector<int8_t> add_pairs_a_, add_pairs_b_;  ///< every (a, b) int8 pair, a-major
  std::vector<int8_t> add_table_;  ///< add_table_[(a + 128) * 256 + (b + 128)] = add_int8(a, b)
};

}  // namespace anvil::hw

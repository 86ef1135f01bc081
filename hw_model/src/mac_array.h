#pragma once
/// The 64 slices' MAC arrays of a PE, executing kConv (int8 x int8 -> int32, requantizing epilogue).
///
/// Timing model: the slices split the N*OH*OW output pixels; each slice's mac_rows x mac_cols array
/// produces mac_rows output channels and consumes mac_cols reduction elements (of K = IC/groups *
/// KH * KW) per cycle, so
///   cycles = conv_fill + ceil(N*OH*OW / slices) * ceil(OC/groups / mac_rows) * ceil(K / mac_cols) * groups.
/// Arithmetic (bit-exact with anvil::ref::run_int8): acc = bias[o] + sum (x - in_zp) * w over the
/// window (padding contributes 0), out = math::requantize(acc, {mult[o], shift[o]}, out_zp,
/// act_min, act_max). |x - in_zp| <= 255 and |w| <= 128, so each product is below 2^15 and
/// the accumulator cannot overflow for K < 2^16 (every K an int16 shape field allows).
#include "exec_unit.h"

namespace anvil::hw {

class MacArray : public ExecUnit {
 public:
  MacArray(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq);
  uint64_t macs() const { return macs_; }
  void reset_counters() override { ExecUnit::reset_counters(); macs_ = 0; }
  /// The closed-form cycle count of a kConv on `slices` slices (exposed for tests and docs).
  static uint64_t conv_cycles(const isa::ConvArgs& c, const HwConfig& cfg, uint32_t slices);

 private:
  sc_core::sc_time execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time& local) override;
  nlohmann::json trace_args(const isa::Instruction& inst) const override;
  uint64_t macs_ = 0;
};

}  // namespace anvil::hw

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
/// Host kernel: one exact GEMM per image and group on oneDNN's sgemm (int8_gemm.h) over an im2col
/// of the window (skipped for 1x1 stride-1 convs), the epilogue through requant_rows.h; the
/// annotated time is the closed form above, per instruction, never per MAC.
///
/// kMatMul (two activations, isa::MatMulArgs): the slices split the batch*M output rows; each
/// slice's array produces mac_rows of the N output columns and consumes mac_cols of K per cycle:
///   cycles = conv_fill + ceil(batch*M / slices) * ceil(N / mac_rows) * ceil(K / mac_cols).
/// Arithmetic: acc = sum_k (a - a_zp) * (b - b_zp) in int32 (|products| <= 255^2, K <= 33025, so
/// no overflow: the instruction is rejected above that), math::requantize epilogue; a plain integer
/// loop on the host (attention matrices are small).
#include "exec_unit.h"
#include "int8_gemm.h"

namespace anvil::hw {

class MacArray : public ExecUnit {
 public:
  MacArray(sc_core::sc_module_name name, ChipContext& ctx, Sequencer& seq);
  uint64_t macs() const { return macs_; }
  void reset_counters() override { ExecUnit::reset_counters(); macs_ = 0; }
  /// The closed-form cycle count of a kConv on `slices` slices (exposed for tests and docs).
  static uint64_t conv_cycles(const isa::ConvArgs& c, const HwConfig& cfg, uint32_t slices);
  /// The closed-form cycle count of a kMatMul on `slices` slices.
  static uint64_t matmul_cycles(const isa::MatMulArgs& m, const HwConfig& cfg, uint32_t slices);

 private:
  sc_core::sc_time execute(const isa::Instruction& inst, uint32_t index, const sc_core::sc_time& local) override;
  nlohmann::json trace_args(const isa::Instruction& inst) const override;
  /// cols_[Kg x OH*OW] = the windows of `channels` input planes (x - in_zp, float; 0 in the padding).
  sc_core::sc_time matmul(const isa::MatMulArgs& m, uint32_t index);
  void im2col(const isa::ConvArgs& c, const float* planes, int64_t H, int64_t W, int64_t channels);
  uint64_t macs_ = 0;
  // Kernel buffers, reused across instructions (sizes of the largest conv so far).
  std::vector<float> xf_, wf_, cols_;
  std::vector<int32_t> acc_;
  std::vector<int8_t> out_;
  GemmScratch gemm_;
};

}  // namespace anvil::hw

// The vector engine's instructions end to end (load, op, store) against expectations computed
// directly with common/requant.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "anvil/common/requant.h"
#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::dma;
using anvil::testing::random_int8;

constexpr uint32_t kIn = 0, kIn2 = 1 << 16, kOut = 1 << 18;

/// A program: load "a" (and "b") from IO, one vector instruction, store "y".
isa::Program vector_program(const isa::Instruction& op, const Shape& in_shape, const Shape& out_shape, bool two_inputs) {
  isa::Program p;
  const uint32_t in_bytes = static_cast<uint32_t>(shape_numel(in_shape));
  const uint32_t out_bytes = static_cast<uint32_t>(shape_numel(out_shape));
  const uint32_t inputs = two_inputs ? 2 : 1;
  p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kIo, 0, kIn, in_bytes));
  if (two_inputs) p.instructions.push_back(dma(isa::Opcode::kDmaLoad, isa::Region::kIo, in_bytes, kIn2, in_bytes));
  isa::Instruction v = op;
  v.wait[0] = inputs;
  p.instructions.push_back(v);
  p.instructions.push_back(dma(isa::Opcode::kDmaStore, isa::Region::kIo, inputs * in_bytes, kOut, out_bytes, {inputs, 0, 1}));
  p.inputs.push_back({"a", DType::kInt8, isa::Layout::kNCHW, in_shape, 0.1f, 0, 0});
  if (two_inputs) p.inputs.push_back({"b", DType::kInt8, isa::Layout::kNCHW, in_shape, 0.1f, 0, in_bytes});
  p.outputs.push_back({"y", DType::kInt8, isa::Layout::kNCHW, out_shape, 0.1f, 0, inputs * in_bytes});
  p.io_bytes = inputs * in_bytes + out_bytes;
  return p;
}

class VectorOps : public ::testing::Test {
 protected:
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
};

TEST_F(VectorOps, AddMatchesAddInt8) {
  const Shape shape{2, 3, 5, 7};
  const auto params = math::make_add_params(0.07, 3, 0.11, -9, 0.13, 4, -20, 120);
  isa::Instruction add;
  add.opcode = isa::Opcode::kAdd;
  add.add = {kIn, kIn2, kOut, static_cast<uint32_t>(shape_numel(shape)), params.a_zero_point, params.b_zero_point,
             params.out_zero_point, params.a.multiplier, params.a.shift, params.b.multiplier, params.b.shift,
             params.out.multiplier, params.out.shift, params.act_min, params.act_max};
  Session s(dev, vector_program(add, shape, shape, true));
  const auto a = random_int8(shape_numel(shape), 1), b = random_int8(shape_numel(shape), 2);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, a)}, {"b", Tensor::from_vector<int8_t>(shape, b)}})
                     .at("y").to_vector<int8_t>();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(y[i], math::add_int8(a[i], b[i], params)) << i;
}

TEST_F(VectorOps, RequantMatchesRequantize) {
  const Shape shape{1, 4, 6, 6};
  const auto q = math::quantize_multiplier(0.37);
  isa::Instruction r;
  r.opcode = isa::Opcode::kRequant;
  r.requant = {kIn, kOut, static_cast<uint32_t>(shape_numel(shape)), 7, -3, q.multiplier, q.shift, -3, 127};
  Session s(dev, vector_program(r, shape, shape, false));
  const auto x = random_int8(shape_numel(shape), 3);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, x)}}).at("y").to_vector<int8_t>();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], math::requantize(x[i] - 7, q, -3, -3, 127)) << i;
}

isa::PoolArgs pool_args(int c, int h, int w, int oh, int ow, int k, int stride, int pad) {
  isa::PoolArgs p{};
  p.in_addr = kIn, p.out_addr = kOut, p.n = 1, p.c = c, p.in_h = h, p.in_w = w, p.out_h = oh, p.out_w = ow;
  p.kernel_h = p.kernel_w = k, p.stride_h = p.stride_w = stride, p.pad_top = p.pad_left = pad;
  p.act_min = -128, p.act_max = 127;
  return p;
}

TEST_F(VectorOps, MaxPoolIgnoresPaddingAndClamps) {
  isa::Instruction mp;
  mp.opcode = isa::Opcode::kMaxPool;
  mp.pool = pool_args(3, 7, 7, 4, 4, 3, 2, 1);
  mp.pool.act_min = -50, mp.pool.act_max = 90;
  Session s(dev, vector_program(mp, {1, 3, 7, 7}, {1, 3, 4, 4}, false));
  const auto x = random_int8(3 * 49, 4);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>({1, 3, 7, 7}, x)}}).at("y").to_vector<int8_t>();
  for (int c = 0; c < 3; ++c)
    for (int oy = 0; oy < 4; ++oy)
      for (int ox = 0; ox < 4; ++ox) {
        int m = -128;
        for (int r = 0; r < 3; ++r)
          for (int t = 0; t < 3; ++t) {
            const int iy = oy * 2 - 1 + r, ix = ox * 2 - 1 + t;
            if (iy >= 0 && iy < 7 && ix >= 0 && ix < 7) m = std::max<int>(m, x[(c * 7 + iy) * 7 + ix]);
          }
        ASSERT_EQ(y[(c * 4 + oy) * 4 + ox], std::clamp(m, -50, 90)) << c << oy << ox;
      }
}

TEST_F(VectorOps, AvgPoolCountIncludePadAndGlobal) {
  const auto q = math::average_multiplier(0.1, 0.08, 9);
  isa::Instruction ap;
  ap.opcode = isa::Opcode::kAvgPool;
  ap.pool = pool_args(2, 6, 6, 3, 3, 3, 2, 1);
  ap.pool.in_zero_point = 5, ap.pool.out_zero_point = -2, ap.pool.mult = q.multiplier, ap.pool.shift = q.shift;
  ap.pool.count_include_pad = 1;
  Session s(dev, vector_program(ap, {1, 2, 6, 6}, {1, 2, 3, 3}, false));
  const auto x = random_int8(2 * 36, 5);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>({1, 2, 6, 6}, x)}}).at("y").to_vector<int8_t>();
  for (int c = 0; c < 2; ++c)
    for (int oy = 0; oy < 3; ++oy)
      for (int ox = 0; ox < 3; ++ox) {
        int32_t sum = 0;
        for (int r = 0; r < 3; ++r)
          for (int t = 0; t < 3; ++t) {
            const int iy = oy * 2 - 1 + r, ix = ox * 2 - 1 + t;
            if (iy >= 0 && iy < 6 && ix >= 0 && ix < 6) sum += x[(c * 6 + iy) * 6 + ix] - 5;
          }
        ASSERT_EQ(y[(c * 3 + oy) * 3 + ox], math::requantize(sum, q, -2)) << c << oy << ox;
      }

  // Global average pool: the window is the whole image (no padding, so count_include_pad is moot).
  const auto gq = math::average_multiplier(0.1, 0.05, 36);
  isa::Instruction gap;
  gap.opcode = isa::Opcode::kAvgPool;
  gap.pool = pool_args(2, 6, 6, 1, 1, 6, 1, 0);
  gap.pool.in_zero_point = -1, gap.pool.mult = gq.multiplier, gap.pool.shift = gq.shift;
  Session g(dev, vector_program(gap, {1, 2, 6, 6}, {1, 2, 1, 1}, false));
  const auto gy = g.run({{"a", Tensor::from_vector<int8_t>({1, 2, 6, 6}, x)}}).at("y").to_vector<int8_t>();
  for (int c = 0; c < 2; ++c) {
    int32_t sum = 0;
    for (int i = 0; i < 36; ++i) sum += x[c * 36 + i] + 1;
    EXPECT_EQ(gy[c], math::requantize(sum, gq, 0));
  }
}

TEST_F(VectorOps, AvgPoolPartialWindowWithoutIncludePadIsABadProgram) {
  const auto q = math::average_multiplier(0.1, 0.1, 9);
  isa::Instruction ap;
  ap.opcode = isa::Opcode::kAvgPool;
  ap.pool = pool_args(1, 6, 6, 3, 3, 3, 2, 1);
  ap.pool.mult = q.multiplier, ap.pool.shift = q.shift;
  ap.pool.count_include_pad = 0;
  Session s(dev, vector_program(ap, {1, 1, 6, 6}, {1, 1, 3, 3}, false));
  try {
    s.run({{"a", Tensor::from_vector<int8_t>({1, 1, 6, 6}, random_int8(36, 6))}});
    FAIL() << "expected a device error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find("bad program"), std::string::npos) << e.what();
  }
}

/// vector_program with a 256-byte table loaded from the constant section to `table_addr` before
/// the vector instruction (which then waits for both loads).
isa::Program lut_program(const std::vector<int8_t>& table, uint32_t table_addr, uint32_t count, const Shape& shape) {
  isa::Instruction lut;
  lut.opcode = isa::Opcode::kLut;
  lut.lut = {kIn, table_addr, kOut, count};
  isa::Program p = vector_program(lut, shape, shape, false);
  p.constants.assign(reinterpret_cast<const uint8_t*>(table.data()), reinterpret_cast<const uint8_t*>(table.data()) + 256);
  p.instructions.insert(p.instructions.begin() + 1, dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, table_addr, 256));
  p.instructions[2].wait[0] = 2;
  p.instructions[3].wait[0] = 2;
  return p;
}

TEST_F(VectorOps, LutLooksEveryByteUpInTheSramTable) {
  const Shape shape{2, 3, 11, 13};
  std::vector<int8_t> table(256);
  for (int k = 0; k < 256; ++k) table[k] = static_cast<int8_t>((k * 37 + 11) % 256 - 128);  // a permutation
  Session s(dev, lut_program(table, 3 << 16, static_cast<uint32_t>(shape_numel(shape)), shape));
  auto x = random_int8(shape_numel(shape), 7);
  x[0] = -128, x[1] = 127;  // both ends of the table
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, x)}}).at("y").to_vector<int8_t>();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], table[x[i] + 128]) << i;
}

TEST_F(VectorOps, LutTableOutsideSramIsABadProgram) {
  const Shape shape{1, 1, 4, 4};
  const uint32_t past_end = static_cast<uint32_t>(hw::HwConfig::preset("warboy").sram_bytes_per_pe() - 128);
  isa::Program p = lut_program(std::vector<int8_t>(256, 0), 3 << 16, 16, shape);
  p.instructions[2].lut.table_addr = past_end;  // the table's last 128 bytes lie past the SRAM
  Session s(dev, p);
  try {
    s.run({{"a", Tensor::from_vector<int8_t>(shape, random_int8(16, 8))}});
    FAIL() << "expected a device error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find("bad program"), std::string::npos) << e.what();
  }
}

// ---- kSoftmax (vector engine) and kMatMul (MAC array), ISA version 3 ----------------------------

/// Runs `p` expecting the device to reject it as a bad program.
void expect_bad_program(Device& dev, const isa::Program& p, const TensorMap& inputs) {
  Session s(dev, p);
  try {
    s.run(inputs);
    FAIL() << "expected a device error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
    EXPECT_NE(std::string(e.what()).find("bad program"), std::string::npos) << e.what();
  }
}

/// One kSoftmax over `outer` x `length` x `inner` int8, its 1 KiB table loaded from the constants.
isa::Program softmax_program(const math::SoftmaxTable& table, uint32_t outer, uint32_t length, uint32_t inner,
                             math::QuantizedMultiplier out, int32_t out_zp) {
  constexpr uint32_t kTable = 3 << 16;
  isa::Instruction sm;
  sm.opcode = isa::Opcode::kSoftmax;
  sm.softmax = {kIn, kTable, kOut, outer, length, inner, out_zp, out.multiplier, out.shift};
  const Shape shape{1, outer, length, inner};
  isa::Program p = vector_program(sm, shape, shape, false);
  p.constants.assign(reinterpret_cast<const uint8_t*>(table.data()), reinterpret_cast<const uint8_t*>(table.data()) + 1024);
  p.instructions.insert(p.instructions.begin() + 1, dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, kTable, 1024));
  p.instructions[2].wait[0] = 2;
  p.instructions[3].wait[0] = 2;
  return p;
}

TEST_F(VectorOps, SoftmaxMatchesSoftmaxRowOnEveryAxisLine) {
  const uint32_t outer = 3, length = 17, inner = 5;
  const auto table = math::make_softmax_table(0.06);
  const auto out = math::softmax_output_multiplier(1.0 / 256);
  Session s(dev, softmax_program(table, outer, length, inner, out, -128));
  const Shape shape{1, outer, length, inner};
  const auto x = random_int8(shape_numel(shape), 9);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, x)}}).at("y").to_vector<int8_t>();
  std::vector<int8_t> want(x.size());
  for (uint32_t o = 0; o < outer; ++o)
    for (uint32_t i = 0; i < inner; ++i)
      math::softmax_row(x.data() + o * length * inner + i, want.data() + o * length * inner + i, length, inner, table,
                        out, -128);
  EXPECT_EQ(y, want);
}

TEST_F(VectorOps, SoftmaxWithABadTableIsABadProgram) {
  const Shape shape{1, 2, 8, 1};
  const TensorMap in{{"a", Tensor::from_vector<int8_t>(shape, random_int8(16, 10))}};
  auto table = math::make_softmax_table(0.06);
  table[0] = 0;  // every row's sum could be 0
  expect_bad_program(dev, softmax_program(table, 2, 8, 1, math::softmax_output_multiplier(1.0 / 256), -128), in);
  table = math::make_softmax_table(0.06);
  table[7] = (1 << 30) + 1;  // above 2^30: the int64 products are no longer bounded
  expect_bad_program(dev, softmax_program(table, 2, 8, 1, math::softmax_output_multiplier(1.0 / 256), -128), in);
}

/// One kMatMul of a 4 x 6 "a" by a 6 x 4 "b" (both loaded from IO), on the MAC unit.
isa::Program matmul_program(uint32_t k, math::QuantizedMultiplier q) {
  isa::Instruction mm;
  mm.opcode = isa::Opcode::kMatMul;
  mm.matmul = {kIn, kIn2, kOut, 1, 4, k, 4, 0, 0, 5, -7, 3, q.multiplier, q.shift, -128, 127};
  isa::Program p = vector_program(mm, {1, 1, 4, 6}, {1, 1, 4, 4}, true);
  p.instructions.back().wait[1] = 1;  // the store waits for the MAC unit, not the vector engine
  p.instructions.back().wait[2] = 0;
  return p;
}

TEST_F(VectorOps, MatMulOfTwoActivationsMatchesTheIntegerProduct) {
  const auto q = math::quantize_multiplier(0.011);
  Session s(dev, matmul_program(6, q));
  const auto a = random_int8(24, 11), b = random_int8(24, 12);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>({1, 1, 4, 6}, a)}, {"b", Tensor::from_vector<int8_t>({1, 1, 4, 6}, b)}})
                     .at("y").to_vector<int8_t>();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      int32_t acc = 0;
      for (int k = 0; k < 6; ++k) acc += (a[i * 6 + k] - 5) * (b[k * 4 + j] + 7);
      ASSERT_EQ(y[i * 4 + j], math::requantize(acc, q, 3)) << i << "," << j;
    }
}

TEST_F(VectorOps, MatMulWithAnOverlongReductionIsABadProgram) {
  // K = 40000 > 33025: K * 255^2 could overflow the int32 accumulator.
  const TensorMap in{{"a", Tensor::from_vector<int8_t>({1, 1, 4, 6}, random_int8(24, 13))},
                     {"b", Tensor::from_vector<int8_t>({1, 1, 4, 6}, random_int8(24, 14))}};
  expect_bad_program(dev, matmul_program(40000, math::quantize_multiplier(0.01)), in);
}

/// a [2,3,5,7] (loaded at kIn) times b broadcast from [3,1,1] (the first 3 bytes at kIn2).
isa::Instruction broadcast_mul(const math::MulParams& p) {
  isa::Instruction i;
  i.opcode = isa::Opcode::kBinary;
  isa::BinaryArgs& b = i.binary;
  b.a_addr = kIn, b.b_addr = kIn2, b.out_addr = kOut;
  b.op = static_cast<uint8_t>(isa::BinaryOp::kMul);
  const uint32_t shape[4] = {2, 3, 5, 7}, a_stride[4] = {105, 35, 7, 1}, b_stride[4] = {0, 1, 0, 0};
  std::copy(shape, shape + 4, b.shape);
  std::copy(a_stride, a_stride + 4, b.a_stride);
  std::copy(b_stride, b_stride + 4, b.b_stride);
  b.a_zero_point = p.a_zero_point, b.b_zero_point = p.b_zero_point, b.out_zero_point = p.out_zero_point;
  b.out_mult = p.out.multiplier, b.out_shift = p.out.shift, b.act_min = p.act_min, b.act_max = p.act_max;
  return i;
}

TEST_F(VectorOps, BinaryMulBroadcastsByStrides) {
  const Shape shape{2, 3, 5, 7};
  const auto params = math::make_mul_params(0.07, 3, 0.11, -9, 0.05, 4, -20, 120);
  Session s(dev, vector_program(broadcast_mul(params), shape, shape, true));
  const auto a = random_int8(shape_numel(shape), 1), b = random_int8(shape_numel(shape), 2);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, a)}, {"b", Tensor::from_vector<int8_t>(shape, b)}})
                     .at("y").to_vector<int8_t>();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(y[i], math::mul_int8(a[i], b[(i / 35) % 3], params)) << i;
}

TEST_F(VectorOps, CorruptBinaryIsABadProgram) {
  const Shape shape{2, 3, 5, 7};
  const auto params = math::make_mul_params(0.07, 3, 0.11, -9, 0.05, 4);
  const uint32_t sram = static_cast<uint32_t>(hw::HwConfig::preset("warboy").sram_bytes_per_pe());
  const std::function<void(isa::BinaryArgs&)> corruptions[] = {
      [](isa::BinaryArgs& b) { b.op = 7; },                   // no such operation
      [](isa::BinaryArgs& b) { b.shape[2] = 0; },             // an empty extent
      [](isa::BinaryArgs& b) { b.out_shift = 40; },           // outside requant.h's domain
      [](isa::BinaryArgs& b) { b.act_min = 5, b.act_max = -5; },
      [sram](isa::BinaryArgs& b) { b.b_stride[0] = sram; },  // b read past the end of SRAM
  };
  for (const auto& corrupt : corruptions) {
    isa::Instruction inst = broadcast_mul(params);
    corrupt(inst.binary);
    Session s(dev, vector_program(inst, shape, shape, true));
    try {
      s.run({{"a", Tensor(DType::kInt8, shape)}, {"b", Tensor(DType::kInt8, shape)}});
      ADD_FAILURE() << "expected a device error for " << isa::to_string(inst);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDeviceError);
      EXPECT_NE(std::string(e.what()).find("bad program"), std::string::npos) << e.what();
    }
  }
}

/// kCopy of a 2 x 3 x 5 x 7 input to an output of the same shape with the channels in reverse
/// order (a negative input stride).
isa::Instruction reverse_channels_copy() {
  isa::Instruction c;
  c.opcode = isa::Opcode::kCopy;
  isa::CopyArgs& a = c.copy;
  const uint32_t shape[isa::kCopyDims] = {1, 1, 2, 3, 5, 7};
  const int32_t in_stride[isa::kCopyDims] = {0, 0, 105, -35, 7, 1};
  const int32_t out_stride[isa::kCopyDims] = {0, 0, 105, 35, 7, 1};
  std::copy(shape, shape + isa::kCopyDims, a.shape);
  std::copy(in_stride, in_stride + isa::kCopyDims, a.in_stride);
  std::copy(out_stride, out_stride + isa::kCopyDims, a.out_stride);
  a.in_addr = kIn + 70;  // channel 2 of image 0
  a.out_addr = kOut;
  return c;
}

TEST_F(VectorOps, CopyMovesRequantizesAndFills) {
  const Shape shape{2, 3, 5, 7};
  const auto x = random_int8(shape_numel(shape), 21);
  for (const auto mode : {isa::CopyMode::kCopy, isa::CopyMode::kRequant, isa::CopyMode::kFill}) {
    isa::Instruction c = reverse_channels_copy();
    c.copy.mode = static_cast<uint8_t>(mode);
    const auto q = math::quantize_multiplier(0.61);
    c.copy.in_zero_point = -3, c.copy.out_zero_point = 9, c.copy.mult = q.multiplier, c.copy.shift = q.shift;
    c.copy.fill_value = -77;
    Session s(dev, vector_program(c, shape, shape, false));
    const auto y = s.run({{"a", Tensor::from_vector<int8_t>(shape, x)}}).at("y").to_vector<int8_t>();
    for (int n = 0; n < 2; ++n)
      for (int ch = 0; ch < 3; ++ch)
        for (int i = 0; i < 35; ++i) {
          const int8_t in = x[n * 105 + (2 - ch) * 35 + i];
          const int8_t want = mode == isa::CopyMode::kCopy    ? in
                              : mode == isa::CopyMode::kFill ? int8_t{-77}
                                                             : math::requantize(in + 3, q, 9, -128, 127);
          ASSERT_EQ(y[n * 105 + ch * 35 + i], want) << n << " " << ch << " " << i;
        }
  }
}

void expect_bad_program(Device& dev, const isa::Instruction& c, const std::string& what) {
  const Shape shape{2, 3, 5, 7};
  Session s(dev, vector_program(c, shape, shape, false));
  try {
    s.run({{"a", Tensor::from_vector<int8_t>(shape, random_int8(shape_numel(shape), 8))}});
    ADD_FAILURE() << what << ": expected a device error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeviceError) << what;
    EXPECT_NE(std::string(e.what()).find("bad program"), std::string::npos) << what << ": " << e.what();
  }
}

TEST_F(VectorOps, CorruptCopyIsABadProgram) {
  isa::Instruction c = reverse_channels_copy();
  c.copy.in_addr = 10;  // the reversed channels reach below address 0
  expect_bad_program(dev, c, "input below SRAM");
  c = reverse_channels_copy();
  c.copy.out_addr = static_cast<uint32_t>(hw::HwConfig::preset("warboy").sram_bytes_per_pe() - 100);
  expect_bad_program(dev, c, "output past SRAM");
  c = reverse_channels_copy();
  c.copy.out_addr = kIn + 100;  // writes over what it reads
  expect_bad_program(dev, c, "overlap");
  c = reverse_channels_copy();
  c.copy.mode = 3;
  expect_bad_program(dev, c, "mode");
  c = reverse_channels_copy();
  c.copy.shape[0] = 0;
  expect_bad_program(dev, c, "empty axis");
  c = reverse_channels_copy();
  c.copy.mode = static_cast<uint8_t>(isa::CopyMode::kRequant);
  c.copy.shift = 40;
  expect_bad_program(dev, c, "multiplier");
  c = reverse_channels_copy();
  for (uint32_t& d : c.copy.shape) d = 1u << 12;  // 2^72 elements
  for (int32_t& st : c.copy.in_stride) st = 0;
  for (int32_t& st : c.copy.out_stride) st = 0;
  expect_bad_program(dev, c, "too many elements");
}

// ---- kResize (vector engine), ISA version 4 ---------------------------------------------------

/// One kResize of 2 planes of 3 x 4 to 5 x 6, its row then column taps loaded from the constants.
isa::Program resize_program(const std::vector<math::ResizeTap>& rows, const std::vector<math::ResizeTap>& cols,
                            math::QuantizedMultiplier q) {
  constexpr uint32_t kTaps = 3 << 16;
  isa::Instruction r;
  r.opcode = isa::Opcode::kResize;
  r.resize = {kIn, kTaps, kTaps + 12 * static_cast<uint32_t>(rows.size()), kOut, 2, 3, 4,
              static_cast<uint32_t>(rows.size()), static_cast<uint32_t>(cols.size()), 5, -2, q.multiplier, q.shift};
  isa::Program p = vector_program(r, {1, 2, 3, 4}, {1, 2, static_cast<int64_t>(rows.size()), static_cast<int64_t>(cols.size())}, false);
  for (const auto* taps : {&rows, &cols})
    for (const math::ResizeTap& t : *taps)
      for (int32_t v : {t.first, t.second, t.weight})
        p.constants.insert(p.constants.end(), reinterpret_cast<const uint8_t*>(&v), reinterpret_cast<const uint8_t*>(&v) + 4);
  p.instructions.insert(p.instructions.begin() + 1,
                        dma(isa::Opcode::kDmaLoad, isa::Region::kConst, 0, kTaps, static_cast<uint32_t>(p.constants.size())));
  p.instructions[2].wait[0] = 2;
  p.instructions[3].wait[0] = 2;
  return p;
}

TEST_F(VectorOps, ResizeMatchesResizePlane) {
  const std::vector<math::ResizeTap> rows = {{0, 0, 0}, {0, 1, 700}, {1, 1, 0}, {1, 2, 2048}, {2, 2, 0}};
  const std::vector<math::ResizeTap> cols = {{0, 1, 1024}, {1, 2, 1}, {2, 3, 2047}, {3, 3, 0}, {3, 0, 300}, {0, 0, 0}};
  const auto q = math::resize_multiplier(0.03, 0.04);
  Session s(dev, resize_program(rows, cols, q));
  const auto x = random_int8(24, 21);
  const auto y = s.run({{"a", Tensor::from_vector<int8_t>({1, 2, 3, 4}, x)}}).at("y").to_vector<int8_t>();
  std::vector<int8_t> want(60);
  for (int p = 0; p < 2; ++p)
    math::resize_plane(x.data() + 12 * p, 4, want.data() + 30 * p, rows.data(), 5, cols.data(), 6, 5, q, -2);
  EXPECT_EQ(y, want);
}

TEST_F(VectorOps, ResizeWithABadTapIsABadProgram) {
  const TensorMap in{{"a", Tensor::from_vector<int8_t>({1, 2, 3, 4}, random_int8(24, 22))}};
  const std::vector<math::ResizeTap> rows = {{0, 1, 100}, {1, 2, 100}};
  const auto q = math::resize_multiplier(0.03, 0.03);
  expect_bad_program(dev, resize_program(rows, {{0, 4, 10}}, q), in);     // column 4 of 4
  expect_bad_program(dev, resize_program(rows, {{0, 1, 2049}}, q), in);   // weight above 2^11
  expect_bad_program(dev, resize_program({{-1, 0, 0}}, {{0, 1, 0}}, q), in);  // negative row
}

}  // namespace
}  // namespace anvil::rt

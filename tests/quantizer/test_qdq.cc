#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "anvil/common/onnx_model.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "../reference/int8_agreement_for_tests.h"
#include "model_builder.h"
#include "qdq.h"

using namespace anvil;
using namespace anvil::quant;
using namespace anvil::quant::test;

namespace {

/// x -> Conv -> Relu -> MaxPool -> Conv(1x1) -> Add(., pool) -> Relu -> GAP -> Flatten -> Gemm -> y
onnx::ModelProto small_cnn(int trans_b = 1) {
  ModelBuilder b;
  b.input("x", {2, 6, 6}).output("y", {3});
  b.init("w1", random_tensor({4, 2, 3, 3}, -0.5f, 0.5f, 1)).init("b1", random_tensor({4}, -0.2f, 0.2f, 2));
  b.init("w2", random_tensor({4, 4, 1, 1}, -0.5f, 0.5f, 3)).init("b2", random_tensor({4}, -0.2f, 0.2f, 4));
  b.init("B", random_tensor(trans_b ? Shape{3, 4} : Shape{4, 3}, -1.0f, 1.0f, 5));
  b.init("C", random_tensor({3}, -0.2f, 0.2f, 6));
  auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"});
  set_ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto& pool = b.node("MaxPool", {"r1"}, {"p"});
  set_ints(pool, "kernel_shape", {2, 2});
  set_ints(pool, "strides", {2, 2});
  b.node("Conv", {"p", "w2", "b2"}, {"c2"});
  b.node("Add", {"c2", "p"}, {"a"});
  b.node("Relu", {"a"}, {"ra"});
  b.node("GlobalAveragePool", {"ra"}, {"gap"});
  b.node("Flatten", {"gap"}, {"f"});
  auto& gemm = b.node("Gemm", {"f", "B", "C"}, {"y"});
  set_int(gemm, "transB", trans_b);
  return b.model();
}

Tensor inputs() { return random_tensor({16, 2, 6, 6}, -1.0f, 1.0f, 7); }

onnx::ModelProto quantized(const onnx::ModelProto& fp32, Method method = Method::kMinMaxAsym,
                           std::vector<std::string>* float_nodes = nullptr, const Tensor& x = inputs()) {
  const onnx::ModelProto opt = optimize(fp32);
  const Calibration calib = calibrate(opt, x, false);
  QuantizeOptions options;
  options.method = method;
  auto q = quantize(opt, calib, options, float_nodes);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().what());
  return q.ok() ? q.value() : onnx::ModelProto();
}

/// The QuantizeLinear reading `t` (nullptr when none).
const onnx::NodeProto* q_of(const onnx::ModelProto& m, const std::string& t) {
  for (const auto* n : consumers(m, t))
    if (n->op_type() == "QuantizeLinear") return n;
  return nullptr;
}

float scalar_f(const onnx::ModelProto& m, const std::string& name) { return initializer(m, name).data<float>()[0]; }

}  // namespace

TEST(Quantize, OutputPassesCheckerAndKeepsInterface) {
  const onnx::ModelProto fp32 = small_cnn();
  const onnx::ModelProto m = quantized(fp32);
  EXPECT_NO_THROW(check_onnx(m, "qdq"));
  EXPECT_EQ(onnx_opset(m), 13);
  ASSERT_EQ(m.graph().input_size(), 1);
  ASSERT_EQ(m.graph().output_size(), 1);
  EXPECT_EQ(m.graph().input(0).name(), "x");
  EXPECT_EQ(m.graph().output(0).name(), "y");
  EXPECT_EQ(m.graph().output(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "N");
  EXPECT_EQ(m.graph().output(0).type().tensor_type().shape().dim(0).dim_param(), "N");
  // input -> Q -> DQ; ... -> Q -> DQ -> y
  ASSERT_NE(q_of(m, "x"), nullptr);
  const onnx::NodeProto* out = producer(m, "y");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->op_type(), "DequantizeLinear");
  EXPECT_EQ(producer(m, out->input(0))->op_type(), "QuantizeLinear");
}

TEST(Quantize, ReluIsFusedIntoConvAndAdd) {
  const onnx::ModelProto m = quantized(small_cnn());
  for (const std::string t : {"c1", "a"}) {
    EXPECT_EQ(q_of(m, t), nullptr) << t;
    const auto readers = consumers(m, t);
    ASSERT_EQ(readers.size(), 1u) << t;
    EXPECT_EQ(readers[0]->op_type(), "Relu");
    EXPECT_NE(q_of(m, readers[0]->output(0)), nullptr);  // Conv -> Relu -> Q -> DQ
  }
  EXPECT_NE(q_of(m, "c2"), nullptr);  // Conv output read by Add: quantized
}

// A Conv output read by a Relu and by another node is not fused: the other reader needs the
// Conv's own values, so the Conv output gets its own Q/DQ. (Mutation testing: fusing whatever the
// number of readers failed no test.)
TEST(Quantize, ConvOutputWithASecondReaderIsNotFused) {
  ModelBuilder b;
  b.input("x", {2, 6, 6}).output("y", {3, 6, 6}).output("z", {3, 6, 6});
  b.init("w", random_tensor({3, 2, 1, 1}, -1.0f, 1.0f, 51));
  b.node("Conv", {"x", "w"}, {"c"});
  b.node("Relu", {"c"}, {"y"});
  b.node("Sigmoid", {"c"}, {"z"});
  const onnx::ModelProto m = quantized(b.model());
  EXPECT_NE(q_of(m, "c"), nullptr);
}

// With a SYM method an Add's constant operand is quantized symmetrically too: zero point 0 and
// scale max|c| / 127. (Mutation testing: quantizing it asymmetrically failed no test.)
TEST(Quantize, AddConstantIsSymmetricUnderASymMethod) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.init("k", Tensor::from_vector<float>({4}, {-1.0f, 0.5f, 2.0f, 3.0f}));
  b.node("Relu", {"x"}, {"r"});
  b.node("Add", {"r", "k"}, {"y"});
  const onnx::ModelProto m = quantized(b.model(), Method::kMinMaxSym, nullptr, random_tensor({8, 4}, -1, 1, 52));
  const onnx::NodeProto* add = nullptr;
  for (const auto& n : m.graph().node())
    if (n.op_type() == "Add") add = &n;
  ASSERT_NE(add, nullptr);
  const onnx::NodeProto* dq = producer(m, add->input(1));
  ASSERT_TRUE(dq && dq->op_type() == "DequantizeLinear");
  EXPECT_FLOAT_EQ(scalar_f(m, dq->input(1)), 3.0f / 127.0f);
  EXPECT_EQ(initializer(m, dq->input(2)).data<int8_t>()[0], 0);
}

TEST(Quantize, WeightsPerChannelInt8AndBiasInt32) {
  const onnx::ModelProto m = quantized(small_cnn());
  const onnx::NodeProto* conv = producer(m, "c1");
  ASSERT_NE(conv, nullptr);
  const onnx::NodeProto* wdq = producer(m, conv->input(1));
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  const Tensor wq = initializer(m, wdq->input(0)), ws = initializer(m, wdq->input(1)), wz = initializer(m, wdq->input(2));
  EXPECT_EQ(wq.dtype(), DType::kInt8);
  EXPECT_EQ(wq.shape(), (Shape{4, 2, 3, 3}));
  EXPECT_EQ(ws.shape(), (Shape{4}));
  EXPECT_EQ(wz.dtype(), DType::kInt8);
  ASSERT_EQ(wdq->attribute_size(), 1);
  EXPECT_EQ(wdq->attribute(0).i(), 0);  // axis
  for (int8_t v : wq.to_vector<int8_t>()) EXPECT_GE(v, -127);
  for (int8_t v : wz.to_vector<int8_t>()) EXPECT_EQ(v, 0);
  // Each channel's max |w| is 127.
  for (int o = 0; o < 4; ++o) {
    int max_abs = 0;
    for (int k = 0; k < 18; ++k) max_abs = std::max(max_abs, std::abs(int(wq.data<int8_t>()[o * 18 + k])));
    EXPECT_EQ(max_abs, 127);
  }
  // Bias: int32 with scale input_scale * weight_scale[c].
  const onnx::NodeProto* bdq = producer(m, conv->input(2));
  ASSERT_EQ(bdq->op_type(), "DequantizeLinear");
  const Tensor bq = initializer(m, bdq->input(0)), bs = initializer(m, bdq->input(1));
  EXPECT_EQ(bq.dtype(), DType::kInt32);
  const onnx::NodeProto* xdq = producer(m, conv->input(0));
  ASSERT_EQ(xdq->op_type(), "DequantizeLinear");
  const float in_scale = scalar_f(m, xdq->input(1));
  const Tensor b1 = initializer(small_cnn(), "b1");
  for (int o = 0; o < 4; ++o) {
    EXPECT_FLOAT_EQ(bs.data<float>()[o], in_scale * ws.data<float>()[o]);
    EXPECT_EQ(bq.data<int32_t>()[o], std::lround(b1.data<float>()[o] / bs.data<float>()[o]));
  }
  // Activations only (x, r1, p, c2, ra, gap, f, y): no QuantizeLinear on a weight or bias.
  EXPECT_EQ(count_ops(m, "QuantizeLinear"), 8);
}

TEST(Quantize, SameScaleOpsReuseInputParamsAndGapHasItsOwn) {
  const onnx::ModelProto m = quantized(small_cnn());
  const onnx::NodeProto* q_r1 = q_of(m, "r1");
  const onnx::NodeProto* q_p = q_of(m, "p");
  ASSERT_TRUE(q_r1 && q_p);
  EXPECT_EQ(scalar_f(m, q_r1->input(1)), scalar_f(m, q_p->input(1)));
  EXPECT_EQ(initializer(m, q_r1->input(2)).data<int8_t>()[0], initializer(m, q_p->input(2)).data<int8_t>()[0]);
  const onnx::NodeProto* q_ra = q_of(m, "ra");
  const onnx::NodeProto* q_gap = q_of(m, "gap");
  ASSERT_TRUE(q_ra && q_gap);
  EXPECT_NE(scalar_f(m, q_ra->input(1)), scalar_f(m, q_gap->input(1)));  // GAP output range is narrower
}

TEST(Quantize, GemmWithoutTransposeQuantizesAxis1) {
  const onnx::ModelProto m = quantized(small_cnn(0));
  const onnx::NodeProto* gemm = producer(m, producer(m, producer(m, "y")->input(0))->input(0));
  ASSERT_EQ(gemm->op_type(), "Gemm");
  const onnx::NodeProto* wdq = producer(m, gemm->input(1));
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  EXPECT_EQ(wdq->attribute(0).i(), 1);
  EXPECT_EQ(initializer(m, wdq->input(1)).shape(), (Shape{3}));
}

TEST(Quantize, QdqModelRunsAndTracksFp32) {
  const onnx::ModelProto fp32 = small_cnn();
  for (Method method : {Method::kMinMaxAsym, Method::kMinMaxSym}) {
    const onnx::ModelProto m = quantized(fp32, method);
    const Tensor x = inputs();
    auto ref = ref::Executor::create(fp32)->run({{"x", x}});
    auto exec = ref::Executor::create(m);
    ASSERT_TRUE(exec.ok()) << exec.error().what();
    auto out = exec->run({{"x", x}});
    ASSERT_TRUE(ref.ok() && out.ok());
    const Tensor& a = ref->at("y");
    const Tensor& b = out->at("y");
    ASSERT_EQ(a.shape(), b.shape());
    float lo = 0, hi = 0, err = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      lo = std::min(lo, a.data<float>()[i]);
      hi = std::max(hi, a.data<float>()[i]);
      err = std::max(err, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
    }
    // int8 through 5 layers: a few output quantization steps of error at most.
    EXPECT_LT(err, 0.05f * (hi - lo)) << method_name(method);
    EXPECT_GT(err, 0.0f);  // it really is quantized
  }
}

TEST(Quantize, MatMulWithConstantWeightQuantizesAxis1) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {3});
  b.init("W", random_tensor({4, 3}, -1.0f, 1.0f, 1));
  b.node("MatMul", {"x", "W"}, {"y"});
  const onnx::ModelProto m = quantized(b.model(), Method::kMinMaxAsym, nullptr, random_tensor({8, 4}, -1, 1, 2));
  const onnx::NodeProto* mm = producer(m, producer(m, producer(m, "y")->input(0))->input(0));
  ASSERT_EQ(mm->op_type(), "MatMul");
  const onnx::NodeProto* wdq = producer(m, mm->input(1));
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  EXPECT_EQ(wdq->attribute(0).i(), 1);
  EXPECT_EQ(initializer(m, wdq->input(0)).dtype(), DType::kInt8);
}

/// x [N, 3, 4] -> MatMul(W [4, 5]) -> h -> Add(h, bias) -> y: nn.Linear on a 3-D input as exported.
/// `bias_shape` is the constant's shape; `bias_first` writes Add(bias, h); `also_read` makes a
/// second node read h (Relu -> graph output r).
onnx::ModelProto linear_3d(const Shape& bias_shape, bool bias_first = false, bool also_read = false) {
  ModelBuilder b;
  b.input("x", {3, 4}).output("y", {3, 5});
  if (also_read) b.output("r", {3, 5});
  b.init("W", random_tensor({4, 5}, -1.0f, 1.0f, 1)).init("bias", random_tensor(bias_shape, -0.5f, 0.5f, 3));
  b.node("MatMul", {"x", "W"}, {"h"});
  b.node("Add", bias_first ? std::vector<std::string>{"bias", "h"} : std::vector<std::string>{"h", "bias"}, {"y"});
  if (also_read) b.node("Relu", {"h"}, {"r"});
  return b.model();
}

TEST(Quantize, MatMulBiasAddGetsAnInt32BiasOnTheAccumulatorScale) {
  // As Gemm's bias (TFLite's FullyConnected): int32 with scale input_scale x weight_scale[c], zero
  // point 0, per channel along the bias's last axis; the product gets no Q/DQ of its own.
  for (const bool bias_first : {false, true})
    for (const Shape& bias_shape : {Shape{5}, Shape{1, 1, 5}}) {
      SCOPED_TRACE(shape_str(bias_shape) + (bias_first ? " Add(bias, h)" : " Add(h, bias)"));
      const onnx::ModelProto fp32 = linear_3d(bias_shape, bias_first);
      const Tensor x = random_tensor({8, 3, 4}, -1, 1, 2);
      const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, nullptr, x);
      EXPECT_EQ(q_of(m, "h"), nullptr);
      const auto readers = consumers(m, "h");
      ASSERT_EQ(readers.size(), 1u);
      const onnx::NodeProto& add = *readers[0];
      ASSERT_EQ(add.op_type(), "Add");
      const onnx::NodeProto* bdq = producer(m, add.input(bias_first ? 0 : 1));
      ASSERT_NE(bdq, nullptr);
      ASSERT_EQ(bdq->op_type(), "DequantizeLinear");
      const Tensor bq = initializer(m, bdq->input(0)), bs = initializer(m, bdq->input(1)),
                   bz = initializer(m, bdq->input(2));
      EXPECT_EQ(bq.dtype(), DType::kInt32);
      EXPECT_EQ(bq.shape(), bias_shape);
      EXPECT_EQ(bz.dtype(), DType::kInt32);
      for (int32_t z : bz.to_vector<int32_t>()) EXPECT_EQ(z, 0);
      ASSERT_EQ(bdq->attribute_size(), 1);
      EXPECT_EQ(bdq->attribute(0).i(), static_cast<int64_t>(bias_shape.size()) - 1);  // axis: the last
      const onnx::NodeProto* mm = producer(m, "h");
      const onnx::NodeProto* wdq = producer(m, mm->input(1));
      const onnx::NodeProto* xdq = producer(m, mm->input(0));
      ASSERT_TRUE(wdq && xdq);
      const Tensor ws = initializer(m, wdq->input(1));
      const float in_scale = scalar_f(m, xdq->input(1));
      const Tensor b = initializer(fp32, "bias");
      ASSERT_EQ(bs.numel(), 5);
      for (int c = 0; c < 5; ++c) {
        EXPECT_FLOAT_EQ(bs.data<float>()[c], in_scale * ws.data<float>()[c]);
        EXPECT_EQ(bq.data<int32_t>()[c], std::lround(b.data<float>()[c] / bs.data<float>()[c]));
      }
      EXPECT_NE(q_of(m, "y_float"), nullptr);  // the sum is quantized once, as the graph output
      // It runs (the same shape as FP32) and tracks the FP32 model.
      const Tensor want = ref::Executor::create(fp32)->run({{"x", x}}).value().at("y");
      const Tensor got = ref::Executor::create(m)->run({{"x", x}}).value().at("y");
      ASSERT_EQ(got.shape(), want.shape());
      float err = 0.0f;
      for (int64_t i = 0; i < got.numel(); ++i) err = std::max(err, std::fabs(got.data<float>()[i] - want.data<float>()[i]));
      EXPECT_LT(err, 0.1f);
    }
}

TEST(Quantize, AddThatIsNotAMatMulBiasKeepsItsOwnQdq) {
  // A constant that is not one value per output channel, and a product that another node reads:
  // the Add stays an int8 Add (int8 constant operand) and the product is quantized.
  const Tensor x = random_tensor({8, 3, 4}, -1, 1, 2);
  for (const auto& [fp32, what] : std::vector<std::pair<onnx::ModelProto, std::string>>{
           {linear_3d({3, 5}), "bias of shape [3, 5]"}, {linear_3d({5}, false, true), "h read twice"}}) {
    SCOPED_TRACE(what);
    const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, nullptr, x);
    EXPECT_NE(q_of(m, "h"), nullptr);
    const onnx::NodeProto* add = producer(m, "y_float");
    ASSERT_NE(add, nullptr);
    ASSERT_EQ(add->op_type(), "Add");
    const onnx::NodeProto* cdq = producer(m, add->input(1));
    ASSERT_EQ(cdq->op_type(), "DequantizeLinear");
    EXPECT_EQ(initializer(m, cdq->input(0)).dtype(), DType::kInt8);
  }
}

TEST(QuantizeBias, AnInputCalibratedAllZeroKeepsItsBias) {
  // x is 0 in every calibration image, so its scale is kMinScale; the bias scale input_scale x
  // weight_scale would need codes far beyond int32. The weight scale is raised so that the bias
  // fits: the outputs are the biases, not 0.
  ModelBuilder conv;
  conv.input("x", {2, 3, 3}).output("y", {2, 3, 3});
  conv.init("w", Tensor::from_vector<float>({2, 2, 1, 1}, {0.7f, -0.3f, 0.2f, 0.9f}));
  conv.init("b", Tensor::from_vector<float>({2}, {0.5f, -0.25f}));
  conv.node("Conv", {"x", "w", "b"}, {"y"});
  const Tensor zeros(DType::kFloat32, {4, 2, 3, 3});
  const Tensor zeros_3d(DType::kFloat32, {4, 3, 4});
  for (const auto& [fp32, x] : {std::pair{conv.model(), zeros}, std::pair{linear_3d({5}), zeros_3d}}) {
    SCOPED_TRACE(fp32.graph().node(0).op_type());
    const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, nullptr, x);
    const Tensor want = ref::Executor::create(fp32)->run({{"x", x}}).value().at("y");
    const Tensor got = ref::Executor::create(m)->run({{"x", x}}).value().at("y");
    ASSERT_EQ(got.shape(), want.shape());
    float range = 0.0f;
    for (float v : want.to_vector<float>()) range = std::max(range, std::fabs(v));
    ASSERT_GT(range, 0.2f);
    for (int64_t i = 0; i < got.numel(); ++i)
      EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], range / 100) << i;
    // The TFLite rule still holds: bias scale = input scale x weight scale, and no code saturates.
    for (const onnx::NodeProto& n : m.graph().node()) {
      if (n.op_type() != "DequantizeLinear" || initializer(m, n.input(0)).dtype() != DType::kInt32) continue;
      for (int32_t v : initializer(m, n.input(0)).to_vector<int32_t>()) EXPECT_LE(std::abs(int64_t{v}), int64_t{1} << 30);
    }
  }
}

TEST(QuantizeConstants, NanOrInfiniteWeightsBiasesAndConstantsAreErrorsNamingThem) {
  // Calibrated on the clean model; the optimized model then gets one bad value in one constant.
  const onnx::ModelProto opt = optimize(small_cnn());
  const Calibration calib = calibrate(opt, inputs(), false);
  struct Case {
    std::string constant, node;
    float value;
  };
  std::string conv2;
  for (const auto& n : opt.graph().node())
    if (n.op_type() == "Conv" && n.input(1) == "w2") conv2 = n.name();
  for (const Case& c : {Case{"w1", "", NAN}, Case{"w2", conv2, INFINITY}, Case{"b1", "", NAN}, Case{"B", "", -INFINITY},
                        Case{"C", "", NAN}}) {
    SCOPED_TRACE(c.constant);
    onnx::ModelProto bad = opt;
    for (auto& t : *bad.mutable_graph()->mutable_initializer())
      if (t.name() == c.constant) {
        Tensor v = tensor_from_proto(t);
        v.data<float>()[1] = c.value;
        t = tensor_to_proto(v, c.constant);
      }
    QuantizeOptions options;
    auto q = quantize(bad, calib, options);
    ASSERT_FALSE(q.ok());
    const std::string msg = q.error().what();
    EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("constant '" + c.constant + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::isnan(c.value) ? "a NaN" : "an infinite value"), std::string::npos) << msg;
    EXPECT_NE(msg.find("element 1"), std::string::npos) << msg;
    if (!c.node.empty()) {
      EXPECT_NE(msg.find(c.node), std::string::npos) << msg;
    }
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // A non-finite constant of an Add (calibrated while it was finite).
  auto add_model = [](float k1) {
    ModelBuilder add;
    add.input("x", {4}).output("y", {4});
    add.init("k", Tensor::from_vector<float>({4}, {1.0f, k1, 2.0f, 3.0f}));
    add.node("Add", {"x", "k"}, {"y"});
    return optimize(add.model());
  };
  const Calibration add_calib = calibrate(add_model(1.5f), random_tensor({8, 4}, -1, 1, 9), false);
  auto q = quantize(add_model(NAN), add_calib, QuantizeOptions{});
  ASSERT_FALSE(q.ok());
  EXPECT_NE(std::string(q.error().what()).find("constant 'k' has a NaN at element 1"), std::string::npos)
      << q.error().what();
}

TEST(QuantizeSameScale, ACubicResizeAndAPadValueOutsideTheInputRangeGetTheirOwnParameters) {
  // x in [0, 1]: a cubic Resize of a step overshoots to about -0.1 and 1.1, and Pad's -5 is far
  // below 0; with the input's parameters both would be clamped. Nearest/linear Resize and a Pad by
  // 0.5 stay on the input's parameters.
  struct Case {
    std::string op, mode;
    float pad_value;
    bool own;
  };
  for (const Case& c : {Case{"Resize", "cubic", 0, true}, Case{"Resize", "linear", 0, false},
                        Case{"Resize", "nearest", 0, false}, Case{"Pad", "constant", -5.0f, true},
                        Case{"Pad", "constant", 0.5f, false}}) {
    SCOPED_TRACE(c.op + " " + c.mode + " " + std::to_string(c.pad_value));
    ModelBuilder b;
    b.input("x", {1, 4, 4}).output("y", {1, 8, 8});
    b.init("one", Tensor::from_vector<float>({4}, {1, 1, 1, 1}));
    b.node("Relu", {"x"}, {"r"});  // the op's input is an activation with its own Q/DQ
    if (c.op == "Resize") {
      b.init("scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2}));
      set_string(b.node("Resize", {"r", "", "scales"}, {"y"}), "mode", c.mode);
    } else {
      b.init("pads", Tensor::from_vector<int64_t>({8}, {0, 0, 2, 2, 0, 0, 2, 2})).init("v", Tensor::scalar<float>(c.pad_value));
      b.node("Pad", {"r", "pads", "v"}, {"y"});
    }
    // A 0/1 step along the last axis, every image.
    Tensor x(DType::kFloat32, {8, 1, 4, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = (i % 4) >= 2 ? 1.0f : 0.0f;
    const onnx::ModelProto fp32 = b.model();
    const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, nullptr, x);
    const onnx::NodeProto* in_q = q_of(m, "r");
    const onnx::NodeProto* out_q = q_of(m, "y_float");  // the graph output is its DequantizeLinear
    ASSERT_TRUE(in_q && out_q);
    const bool same = scalar_f(m, in_q->input(1)) == scalar_f(m, out_q->input(1)) &&
                      initializer(m, in_q->input(2)).data<int8_t>()[0] == initializer(m, out_q->input(2)).data<int8_t>()[0];
    EXPECT_EQ(same, !c.own);
    // Within one output step of FP32 everywhere, the overshoot and the border included.
    const Tensor want = ref::Executor::create(fp32)->run({{"x", x}}).value().at("y");
    const Tensor got = ref::Executor::create(m)->run({{"x", x}}).value().at("y");
    const float step = scalar_f(m, out_q->input(1));
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], step) << i;
  }
}

TEST(Quantize, UnhandledOperatorStaysFloatBetweenDqAndQ) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Relu", {"x"}, {"r"});
  b.node("Exp", {"r"}, {"m"});
  b.node("Relu", {"m"}, {"y"});
  std::vector<std::string> float_nodes;
  const onnx::ModelProto m = quantized(b.model(), Method::kMinMaxAsym, &float_nodes, random_tensor({8, 4}, -1, 1, 2));
  ASSERT_EQ(float_nodes.size(), 1u);
  EXPECT_NE(float_nodes[0].find("Exp"), std::string::npos);
  const onnx::NodeProto* mul = producer(m, "m");
  ASSERT_NE(mul, nullptr);
  for (const auto& in : mul->input()) EXPECT_EQ(producer(m, in)->op_type(), "DequantizeLinear");
  EXPECT_NE(q_of(m, "m"), nullptr);
}

TEST(Quantize, FixedParamsForSigmoidAndTanh) {
  ModelBuilder b;
  b.input("x", {4}).output("s", {4}).output("t", {4});
  b.node("Sigmoid", {"x"}, {"s"});
  b.node("Tanh", {"x"}, {"t"});
  Calibration calib;  // hand-made: the executor has no Sigmoid
  calib.tensors["x"] = TensorStats{-3.0f, 3.0f, 4, {}, 0.0f, {}, 0};
  auto q = quantize(optimize(b.model()), calib, {});
  ASSERT_TRUE(q.ok()) << q.error().what();
  const onnx::NodeProto* qs = producer(*q, producer(*q, "s")->input(0));
  ASSERT_EQ(qs->op_type(), "QuantizeLinear");
  EXPECT_EQ(scalar_f(*q, qs->input(1)), 1.0f / 256.0f);
  EXPECT_EQ(initializer(*q, qs->input(2)).data<int8_t>()[0], -128);
  const onnx::NodeProto* qt = producer(*q, producer(*q, "t")->input(0));
  ASSERT_EQ(qt->op_type(), "QuantizeLinear");
  EXPECT_EQ(scalar_f(*q, qt->input(1)), 1.0f / 128.0f);
  EXPECT_EQ(initializer(*q, qt->input(2)).data<int8_t>()[0], 0);
}

TEST(Quantize, MissingStatisticsNameTheTensor) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Relu", {"x"}, {"y"});
  Calibration calib;
  calib.tensors["x"] = TensorStats{-1.0f, 1.0f, 4, {}, 0.0f, {}, 0};
  auto q = quantize(b.model(), calib, {});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(q.error().what()).find("'y'"), std::string::npos);
}

TEST(Quantize, RejectsAnAlreadyQuantizedModel) {
  const onnx::ModelProto m = quantized(small_cnn());
  Calibration calib;
  auto q = quantize(m, calib, {});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(q.error().what()).find("already quantized"), std::string::npos);
}

TEST(Quantize, EveryMethodGivesARunnableModel) {
  const onnx::ModelProto opt = optimize(small_cnn());
  const Calibration calib = calibrate(opt, inputs(), false);
  for (const char* name : {"MIN_MAX_ASYM", "MIN_MAX_SYM", "ENTROPY_ASYM", "ENTROPY_SYM", "PERCENTILE_ASYM",
                           "PERCENTILE_SYM", "SQNR_ASYM", "SQNR_SYM", "MSE_ASYM", "MSE_SYM"}) {
    QuantizeOptions options;
    options.method = method_from_name(name);
    auto q = quantize(opt, calib, options);
    ASSERT_TRUE(q.ok()) << name << ": " << q.error().what();
    auto out = ref::Executor::create(*q)->run({{"x", inputs()}});
    EXPECT_TRUE(out.ok()) << name;
  }
}

TEST(Quantize, BadPercentileIsAnError) {
  const onnx::ModelProto opt = optimize(small_cnn());
  QuantizeOptions options;
  options.method = Method::kPercentileAsym;
  options.percentile = 0.0f;
  auto q = quantize(opt, calibrate(opt, inputs(), false), options);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
}

TEST(QuantizeModel, ChainsOptimizeCalibrateQuantize) {
  auto q = quantize_model(small_cnn(), inputs(), {});
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  auto bad = quantize_model(small_cnn(), Tensor(DType::kFloat32, {0, 2, 6, 6}), {});
  EXPECT_FALSE(bad.ok());
}

TEST(Quantize, ConcatInputsAndOutputShareParameters) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {8});
  b.node("Relu", {"x"}, {"r"});
  b.init("minus_one", Tensor::from_vector<float>({1}, {-1.0f}));
  b.node("Mul", {"x", "minus_one"}, {"n"});
  set_int(b.node("Concat", {"r", "n"}, {"y"}), "axis", 1);
  Calibration calib;
  calib.tensors["x"] = TensorStats{-1.0f, 3.0f, 4, {}, 0.0f, {}, 0};
  calib.tensors["r"] = TensorStats{0.0f, 3.0f, 4, {}, 0.0f, {}, 0};
  calib.tensors["n"] = TensorStats{-3.0f, 1.0f, 4, {}, 0.0f, {}, 0};
  calib.tensors["y"] = TensorStats{-3.0f, 3.0f, 8, {}, 0.0f, {}, 0};
  std::vector<std::string> float_nodes;
  auto q = quantize(optimize(b.model()), calib, {}, &float_nodes);
  ASSERT_TRUE(q.ok()) << q.error().what();
  const onnx::NodeProto* qr = q_of(*q, "r");
  const onnx::NodeProto* qn = q_of(*q, "n");
  const onnx::NodeProto* qy = producer(*q, producer(*q, "y")->input(0));
  ASSERT_TRUE(qr && qn && qy);
  for (const onnx::NodeProto* node : {qr, qn, qy}) {
    EXPECT_FLOAT_EQ(scalar_f(*q, node->input(1)), 6.0f / 255.0f);
    EXPECT_EQ(initializer(*q, node->input(2)).data<int8_t>()[0], 0);  // round(-128 + 3 / (6/255)) = 0 (-0.5 -> 0)
  }
  EXPECT_TRUE(float_nodes.empty()) << float_nodes[0];  // Mul by a constant is quantized too
  auto out = ref::Executor::create(*q);
  ASSERT_TRUE(out.ok()) << out.error().what();
}

TEST(Quantize, IndexArithmeticIsNotReportedAsFloat) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Relu", {"x"}, {"r"});
  b.node("Shape", {"r"}, {"s"});  // int64: not an activation
  b.node("Reshape", {"r", "s"}, {"y"});
  std::vector<std::string> float_nodes;
  const onnx::ModelProto m = quantized(b.model(), Method::kMinMaxAsym, &float_nodes, random_tensor({8, 4}, -1, 1, 2));
  EXPECT_TRUE(float_nodes.empty()) << float_nodes[0];
  EXPECT_EQ(q_of(m, "s"), nullptr);
}

/// x -> ConvTranspose -> LeakyRelu -> Slice -> Pad -> Resize -> SiLU (Mul(t, Sigmoid(t)))
///   -> Mul(., HardSigmoid(.)) -> HardSwish -> Mul(., constant) -> y: every node is quantized.
TEST(Quantize, TransposedConvActivationsAndSameScaleMovers) {
  ModelBuilder b(14);  // HardSwish is opset 14
  b.input("x", {2, 5, 5}).output("y", {3, 6, 6});
  b.init("w", random_tensor({2, 3, 2, 2}, -0.5f, 0.5f, 31)).init("bias", random_tensor({3}, -0.2f, 0.2f, 32));
  b.init("starts", Tensor::from_vector<int64_t>({2}, {1, 1})).init("ends", Tensor::from_vector<int64_t>({2}, {9, 9}));
  b.init("axes", Tensor::from_vector<int64_t>({2}, {2, 3}));
  b.init("pads", Tensor::from_vector<int64_t>({8}, {0, 0, 2, 2, 0, 0, 2, 2}));
  b.init("roi", Tensor(DType::kFloat32, {0}));
  b.init("scales", Tensor::from_vector<float>({4}, {1.0f, 1.0f, 0.5f, 0.5f}));
  b.init("k", Tensor::from_vector<float>({1}, {0.75f}));
  auto& ct = b.node("ConvTranspose", {"x", "w", "bias"}, {"t1"});
  set_ints(ct, "strides", {2, 2});
  b.node("LeakyRelu", {"t1"}, {"t2"});
  b.node("Slice", {"t2", "starts", "ends", "axes"}, {"t3"});
  b.node("Pad", {"t3", "pads"}, {"t4"});
  b.node("Resize", {"t4", "roi", "scales"}, {"t5"});
  b.node("Sigmoid", {"t5"}, {"sig"});
  b.node("Mul", {"t5", "sig"}, {"silu"});
  b.node("HardSigmoid", {"silu"}, {"hsig"});
  b.node("Mul", {"silu", "hsig"}, {"hswish"});
  b.node("HardSwish", {"hswish"}, {"hs2"});
  b.node("Mul", {"hs2", "k"}, {"y"});
  const onnx::ModelProto fp32 = b.model();
  std::vector<std::string> float_nodes;
  const Tensor x = random_tensor({16, 2, 5, 5}, -1.0f, 1.0f, 33);
  const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, &float_nodes, x);
  EXPECT_TRUE(float_nodes.empty()) << float_nodes[0];
  for (const char* t : {"t1", "t2", "t3", "t4", "t5", "silu", "hsig", "hswish", "hs2"})
    EXPECT_NE(q_of(m, t), nullptr) << t;
  EXPECT_EQ(producer(m, "y")->op_type(), "DequantizeLinear");  // ... -> Mul -> Q -> DQ -> y
  // Slice, Pad and Resize keep their input's parameters.
  for (const auto& [in, out] : std::vector<std::pair<std::string, std::string>>{{"t2", "t3"}, {"t3", "t4"}, {"t4", "t5"}}) {
    EXPECT_EQ(scalar_f(m, q_of(m, in)->input(1)), scalar_f(m, q_of(m, out)->input(1))) << out;
    EXPECT_EQ(initializer(m, q_of(m, in)->input(2)).data<int8_t>()[0],
              initializer(m, q_of(m, out)->input(2)).data<int8_t>()[0]) << out;
  }
  // ConvTranspose: per-output-channel weights along axis 1 (I x O x kH x kW), int32 bias.
  const onnx::NodeProto* conv = producer(m, "t1");
  ASSERT_NE(conv, nullptr);
  const onnx::NodeProto* wdq = producer(m, conv->input(1));
  const onnx::NodeProto* bdq = producer(m, conv->input(2));
  ASSERT_TRUE(wdq && bdq);
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  EXPECT_EQ(initializer(m, wdq->input(1)).numel(), 3);
  bool axis1 = false;
  for (const auto& a : wdq->attribute()) axis1 = axis1 || (a.name() == "axis" && a.i() == 1);
  EXPECT_TRUE(axis1);
  EXPECT_EQ(initializer(m, bdq->input(0)).dtype(), DType::kInt32);
  // The QDQ model tracks FP32 within a few output steps.
  const Tensor want = ref::Executor::create(fp32)->run({{"x", x}})->at("y");
  const Tensor got = ref::Executor::create(m)->run({{"x", x}})->at("y");
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = want.data<float>()[i] - got.data<float>()[i];
    signal += static_cast<double>(want.data<float>()[i]) * want.data<float>()[i];
    noise += d * d;
  }
  EXPECT_GT(10 * std::log10(signal / noise), 25.0);
  EXPECT_GT(noise, 0.0);
}

/// x -> ConvTranspose(group 2) -> Relu -> y: quantized like an ungrouped one. The weight scales run
/// along axis 1 (O/group of them, scale m serving output channel m of both groups), the int32
/// bias has one scale per output channel (input scale x that channel's weight scale), the Relu is
/// fused (no Q/DQ between ConvTranspose and Relu), and the integer lowering of the result equals
/// the QDQ model run in float within one output step.
TEST(Quantize, GroupedTransposedConvWithFusedRelu) {
  ModelBuilder b;
  b.input("x", {4, 5, 5}).output("y", {6, 10, 10});
  b.init("w", random_tensor({4, 3, 2, 2}, -0.5f, 0.5f, 61)).init("bias", random_tensor({6}, -0.2f, 0.2f, 62));
  auto& ct = b.node("ConvTranspose", {"x", "w", "bias"}, {"t"});
  set_ints(ct, "strides", {2, 2});
  set_int(ct, "group", 2);
  b.node("Relu", {"t"}, {"y"});
  const onnx::ModelProto fp32 = b.model();
  const Tensor x = random_tensor({8, 4, 5, 5}, -1.0f, 1.0f, 63);
  std::vector<std::string> float_nodes;
  const onnx::ModelProto m = quantized(fp32, Method::kMinMaxAsym, &float_nodes, x);
  EXPECT_TRUE(float_nodes.empty()) << float_nodes[0];
  EXPECT_EQ(q_of(m, "t"), nullptr);  // Relu fused: one range, after it
  const onnx::NodeProto* conv = producer(m, "t");
  ASSERT_NE(conv, nullptr);
  const onnx::NodeProto* xdq = producer(m, conv->input(0));
  const onnx::NodeProto* wdq = producer(m, conv->input(1));
  const onnx::NodeProto* bdq = producer(m, conv->input(2));
  ASSERT_TRUE(xdq && wdq && bdq);
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  const Tensor w_scale = initializer(m, wdq->input(1)), b_scale = initializer(m, bdq->input(1));
  ASSERT_EQ(w_scale.numel(), 3);
  bool axis1 = false;
  for (const auto& a : wdq->attribute()) axis1 = axis1 || (a.name() == "axis" && a.i() == 1);
  EXPECT_TRUE(axis1);
  EXPECT_EQ(initializer(m, bdq->input(0)).dtype(), DType::kInt32);
  ASSERT_EQ(b_scale.numel(), 6);
  const float x_scale = scalar_f(m, xdq->input(1));
  for (int o = 0; o < 6; ++o)
    EXPECT_FLOAT_EQ(b_scale.data<float>()[o], x_scale * w_scale.data<float>()[o % 3]) << o;
  // The integer lowering (what the NPU runs) against the QDQ model in float.
  EXPECT_LE(anvil::test::int8_agreement(m, {{"x", x}}, 8).max_diff, 1);
}

namespace {

/// x -> MatMul -> h; ReduceMean(h) -> m; Sub(h, m) -> d; Erf(d) -> e; Add(e, d) -> s; Mul(s, k) -> y;
/// Exp(s) -> z. Float nodes: ReduceMean, Sub, Erf, Exp. m passes between two float nodes; d is read
/// by a float node (Erf) and a quantized one (Add); e leaves the float region; z is a graph output.
onnx::ModelProto float_region_model() {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4}).output("z", {4});
  b.init("W", random_tensor({4, 4}, -1.0f, 1.0f, 41)).init("k", Tensor::from_vector<float>({1}, {0.5f}));
  b.node("MatMul", {"x", "W"}, {"h"});
  set_ints(b.node("ReduceMean", {"h"}, {"m"}), "axes", {1});
  b.node("Sub", {"h", "m"}, {"d"});
  b.node("Erf", {"d"}, {"e"});
  b.node("Add", {"e", "d"}, {"s"});
  b.node("Mul", {"s", "k"}, {"y"});
  b.node("Exp", {"s"}, {"z"});
  return b.model();
}

onnx::ModelProto quantized_with(const onnx::ModelProto& fp32, const Tensor& x, bool qdq_between_float_nodes,
                                std::vector<std::string>* float_nodes = nullptr) {
  const onnx::ModelProto opt = optimize(fp32);
  QuantizeOptions options;
  options.qdq_between_float_nodes = qdq_between_float_nodes;
  auto q = quantize(opt, calibrate(opt, x, false), options, float_nodes);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().what());
  return q.ok() ? q.value() : onnx::ModelProto();
}

/// The QuantizeLinear -> DequantizeLinear pair of activation t: {scale, zero point}.
std::pair<float, int> qdq_params(const onnx::ModelProto& m, const std::string& t) {
  const onnx::NodeProto* q = q_of(m, t);
  if (!q) return {0.0f, 0};
  return {scalar_f(m, q->input(1)), initializer(m, q->input(2)).data<int8_t>()[0]};
}

}  // namespace

TEST(QuantizeFloatRegion, TensorBetweenTwoFloatNodesStaysFloat) {
  const Tensor x = random_tensor({16, 4}, -1.0f, 1.0f, 42);
  std::vector<std::string> float_nodes;
  const onnx::ModelProto m = quantized_with(float_region_model(), x, false, &float_nodes);
  EXPECT_NO_THROW(check_onnx(m, "qdq"));
  EXPECT_EQ(float_nodes.size(), 4u);  // ReduceMean, Sub, Erf, Exp
  // m: ReduceMean -> Sub only: no Q/DQ, Sub reads it as it is.
  EXPECT_EQ(q_of(m, "m"), nullptr);
  const onnx::NodeProto* sub = producer(m, "d");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->input(1), "m");
  // h comes from a quantized node: the float Sub reads its DequantizeLinear (the region's boundary).
  EXPECT_EQ(producer(m, sub->input(0))->op_type(), "DequantizeLinear");
  // d: read by Erf (float) and Add (quantized): Q/DQ for Add only; Erf reads d itself.
  ASSERT_NE(q_of(m, "d"), nullptr);
  const onnx::NodeProto* erf = producer(m, "e");
  ASSERT_NE(erf, nullptr);
  EXPECT_EQ(erf->input(0), "d");
  const onnx::NodeProto* add = producer(m, "s");
  ASSERT_NE(add, nullptr);
  for (const auto& in : add->input()) EXPECT_EQ(producer(m, in)->op_type(), "DequantizeLinear") << in;
  // e leaves the float region into Add; z is a graph output: both keep Q -> DQ.
  EXPECT_NE(q_of(m, "e"), nullptr);
  EXPECT_EQ(producer(m, "z")->op_type(), "DequantizeLinear");
  // The range search sees only the tensors that are quantized.
  const onnx::ModelProto opt = optimize(float_region_model());
  const auto ranges = calibrate(opt, x, false).ranges(Method::kMinMaxAsym);
  const std::vector<std::string> order = calibrated_tensors(opt, ranges, {});
  EXPECT_EQ(std::count(order.begin(), order.end(), "m"), 0);
  EXPECT_EQ(std::count(order.begin(), order.end(), "d"), 1);
  // The model runs and tracks FP32.
  auto want = ref::Executor::create(float_region_model())->run({{"x", x}});
  auto got = ref::Executor::create(m)->run({{"x", x}});
  ASSERT_TRUE(want.ok() && got.ok());
  for (const char* out : {"y", "z"}) {
    const Tensor& f = want->at(out);
    const Tensor& q = got->at(out);
    double signal = 0, noise = 0;
    for (int64_t i = 0; i < f.numel(); ++i) {
      signal += static_cast<double>(f.data<float>()[i]) * f.data<float>()[i];
      noise += std::pow(static_cast<double>(f.data<float>()[i]) - q.data<float>()[i], 2);
    }
    EXPECT_GT(10 * std::log10(signal / noise), 20.0) << out;
  }
}

TEST(QuantizeFloatRegion, QuantizedTensorsKeepTheirParameters) {
  const Tensor x = random_tensor({16, 4}, -1.0f, 1.0f, 42);
  const onnx::ModelProto now = quantized_with(float_region_model(), x, false);
  const onnx::ModelProto before = quantized_with(float_region_model(), x, true);
  EXPECT_NO_THROW(check_onnx(before, "qdq"));
  // The earlier rule: Q/DQ on m as well, and every reader takes the DequantizeLinear.
  EXPECT_NE(q_of(before, "m"), nullptr);
  EXPECT_EQ(producer(before, producer(before, "e")->input(0))->op_type(), "DequantizeLinear");
  for (const char* t : {"x", "h", "d", "e", "s"}) {
    EXPECT_NE(q_of(now, t), nullptr) << t;
    EXPECT_EQ(qdq_params(now, t), qdq_params(before, t)) << t;
  }
  // The MatMul weight stays per-channel int8 on axis 1.
  const onnx::NodeProto* mm = producer(now, "h");
  ASSERT_NE(mm, nullptr);
  const onnx::NodeProto* wdq = producer(now, mm->input(1));
  ASSERT_EQ(wdq->op_type(), "DequantizeLinear");
  EXPECT_EQ(initializer(now, wdq->input(0)).dtype(), DType::kInt8);
  EXPECT_EQ(initializer(now, wdq->input(1)).numel(), 4);
}

TEST(QuantizeFloatRegion, ModelsWithoutFloatNodesAreUnchanged) {
  std::vector<std::string> float_nodes;
  const onnx::ModelProto now = quantized_with(small_cnn(), inputs(), false, &float_nodes);
  EXPECT_TRUE(float_nodes.empty());
  EXPECT_EQ(now.SerializeAsString(), quantized_with(small_cnn(), inputs(), true).SerializeAsString());
}

/// LayerNorm of `in` as the nine primitives torch exports below opset 17: ReduceMean(in) -> m;
/// Sub(in, m) -> d; Sqrt(Add(ReduceMean(Pow(d, two)), eps)) -> sd; Div(d, sd) -> n;
/// Mul(n, gamma) -> g; Add(g, beta) -> out. `axes` of both ReduceMeans. The caller adds the
/// initializers two, eps, gamma and beta.
void add_layer_norm_nodes(ModelBuilder& b, const std::string& in, const std::string& out,
                          const std::vector<int64_t>& axes) {
  set_ints(b.node("ReduceMean", {in}, {"m"}), "axes", axes);
  b.node("Sub", {in, "m"}, {"d"});
  b.node("Pow", {"d", "two"}, {"p"});
  set_ints(b.node("ReduceMean", {"p"}, {"var"}), "axes", axes);
  b.node("Add", {"var", "eps"}, {"ve"});
  b.node("Sqrt", {"ve"}, {"sd"});
  b.node("Div", {"d", "sd"}, {"n"});
  b.node("Mul", {"n", "gamma"}, {"g"});
  b.node("Add", {"g", "beta"}, {out});
}

/// Sum of squared differences between two float tensors of the same size.
double squared_error(const Tensor& want, const Tensor& got) {
  double e = 0;
  for (int64_t i = 0; i < want.numel(); ++i) e += std::pow(double(want.data<float>()[i]) - got.data<float>()[i], 2);
  return e;
}

/// x -> MatMul -> h, then LayerNorm(h) -> y as primitives (add_layer_norm_nodes). `axes` of both
/// ReduceMeans ([-1] as torch exports it; [1] is the same axis here, but not the pattern the
/// executor runs as one kernel); gamma has shape `gamma_shape`.
onnx::ModelProto layer_norm_after_matmul(const std::vector<int64_t>& axes, const Shape& gamma_shape = {4}) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.init("W", random_tensor({4, 4}, -1.0f, 1.0f, 43)).init("two", Tensor::from_vector<float>({1}, {2.0f}));
  b.init("eps", Tensor::from_vector<float>({1}, {1e-5f})).init("gamma", random_tensor(gamma_shape, 0.5f, 1.5f, 44));
  b.init("beta", random_tensor({4}, -0.5f, 0.5f, 45));
  b.node("MatMul", {"x", "W"}, {"h"});
  add_layer_norm_nodes(b, "h", "y", axes);
  return b.model();
}

TEST(QuantizeFloatRegion, LayerNormPatternIsOneFloatOperator) {
  // The nine nodes torch exports for nn.LayerNorm below opset 17 are LayerNormalization, which has
  // no int8 form: all nine stay float, "+ eps", "* gamma" and "+ beta" included, and only the
  // input h and the output y are quantized.
  const Tensor x = random_tensor({16, 4}, -1.0f, 1.0f, 46);
  const onnx::ModelProto opt = optimize(layer_norm_after_matmul({-1}));
  const Calibration calib = calibrate(opt, x, false);
  std::vector<std::string> float_nodes;
  auto q = quantize(opt, calib, {}, &float_nodes);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  EXPECT_EQ(float_nodes.size(), 9u);
  for (const char* t : {"m", "d", "p", "var", "ve", "sd", "n", "g"}) EXPECT_EQ(q_of(*q, t), nullptr) << t;
  for (const char* t : {"x", "h"}) EXPECT_NE(q_of(*q, t), nullptr) << t;
  EXPECT_EQ(producer(*q, "y")->op_type(), "DequantizeLinear");
  const onnx::NodeProto* mul = producer(*q, "g");
  ASSERT_NE(mul, nullptr);
  EXPECT_EQ(mul->input(1), "gamma");  // the float Mul reads gamma itself
  // Calibration runs the pattern as the executor's one kernel and records only its output, which
  // is all quantize() reads; also with the earlier Q/DQ-between-float-nodes rule.
  for (const char* t : {"m", "d", "p", "var", "ve", "sd", "n", "g"}) EXPECT_FALSE(calib.tensors.count(t)) << t;
  for (const char* t : {"x", "h", "y"}) EXPECT_TRUE(calib.tensors.count(t)) << t;
  QuantizeOptions between;
  between.qdq_between_float_nodes = true;
  auto qb = quantize(opt, calib, between);
  ASSERT_TRUE(qb.ok()) << qb.error().what();
  for (const char* t : {"m", "d", "p", "var", "ve", "sd", "n", "g"}) EXPECT_EQ(q_of(*qb, t), nullptr) << t;
  // The same nodes that are not the pattern (gamma of rank 2, which the executor's matcher does
  // not take either) keep the rule: Add and Mul are quantized.
  const onnx::ModelProto other = optimize(layer_norm_after_matmul({-1}, {1, 4}));
  auto q2 = quantize(other, calibrate(other, x, false), {}, &float_nodes);
  ASSERT_TRUE(q2.ok()) << q2.error().what();
  EXPECT_EQ(float_nodes.size(), 6u);  // ReduceMean x2, Sub, Pow, Sqrt, Div
  for (const char* t : {"var", "ve", "n", "g"}) EXPECT_NE(q_of(*q2, t), nullptr) << t;
}

/// extend_float_regions keeps "+ eps", "* gamma", "+ beta" in float also where the nodes are not the
/// LayerNorm pattern (here: ReduceMean over axes [1]).
TEST(QuantizeFloatRegion, ExtendedRegionTakesConstantAddAndMul) {
  const onnx::ModelProto opt = optimize(layer_norm_after_matmul({1}));
  const Tensor x = random_tensor({16, 4}, -1.0f, 1.0f, 46);
  const Calibration calib = calibrate(opt, x, false);
  // Default: the list, Add and Mul are quantized, so ve, n and g keep Q/DQ.
  std::vector<std::string> float_nodes;
  auto plain = quantize(opt, calib, {}, &float_nodes);
  ASSERT_TRUE(plain.ok()) << plain.error().what();
  EXPECT_EQ(float_nodes.size(), 6u);  // ReduceMean x2, Sub, Pow, Sqrt, Div
  for (const char* t : {"var", "ve", "n", "g"}) EXPECT_NE(q_of(*plain, t), nullptr) << t;
  // Extended: only h and the region's output y are quantized after x.
  QuantizeOptions options;
  options.extend_float_regions = true;
  auto ext = quantize(opt, calib, options, &float_nodes);
  ASSERT_TRUE(ext.ok()) << ext.error().what();
  EXPECT_NO_THROW(check_onnx(*ext, "qdq"));
  EXPECT_EQ(float_nodes.size(), 9u);  // and the two Adds and the Mul
  for (const char* t : {"m", "d", "p", "var", "ve", "sd", "n", "g"}) EXPECT_EQ(q_of(*ext, t), nullptr) << t;
  for (const char* t : {"x", "h"}) EXPECT_NE(q_of(*ext, t), nullptr) << t;
  EXPECT_EQ(producer(*ext, "y")->op_type(), "DequantizeLinear");
  // The float Mul reads gamma itself, not an int8 copy behind a DequantizeLinear.
  const onnx::NodeProto* mul = producer(*ext, "g");
  ASSERT_NE(mul, nullptr);
  EXPECT_EQ(mul->input(0), "n");
  EXPECT_EQ(mul->input(1), "gamma");
  // The extended model is closer to FP32 than the default one here (fewer roundings inside the norm).
  auto want = ref::Executor::create(opt)->run({{"x", x}});
  auto got_plain = ref::Executor::create(*plain)->run({{"x", x}});
  auto got_ext = ref::Executor::create(*ext)->run({{"x", x}});
  ASSERT_TRUE(want.ok() && got_plain.ok() && got_ext.ok());
  EXPECT_LT(squared_error(want->at("y"), got_ext->at("y")), squared_error(want->at("y"), got_plain->at("y")));
  // Without float nodes the option changes nothing.
  const onnx::ModelProto cnn = optimize(small_cnn());
  const Calibration cnn_calib = calibrate(cnn, inputs(), false);
  EXPECT_EQ(quantize(cnn, cnn_calib, options)->SerializeAsString(), quantize(cnn, cnn_calib, {})->SerializeAsString());
}

/// x -> MatMul "/att/qkv" (W1) -> h -> Relu -> r -> MatMul "/mlp/fc" (W2) -> y. exclude_nodes "/att/"
/// keeps the first MatMul in float with its float weight; the rest keeps the TFLite rules.
TEST(QuantizeScalarFactor, ScalingByAPositiveConstantKeepsTheInt8Values) {
  // h / 4 (attention's 1/sqrt(d), read by a MatMul) and h * 0.5 keep h's int8 values on a scaled
  // grid; a negative factor is calibrated as any other output.
  ModelBuilder b;
  b.input("x", {4}).output("y1", {4}).output("y2", {4});
  b.init("W", random_tensor({4, 4}, -1.0f, 1.0f, 11)).init("W2", random_tensor({4, 4}, -1.0f, 1.0f, 13));
  b.init("four", Tensor::scalar<float>(4.0f)).init("half", Tensor::from_vector<float>({1}, {0.5f}));
  b.init("minus", Tensor::scalar<float>(-2.0f));
  b.node("MatMul", {"x", "W"}, {"h"});
  b.node("Div", {"h", "four"}, {"d"});
  b.node("MatMul", {"d", "W2"}, {"y1"});
  b.node("Mul", {"half", "h"}, {"e"});
  b.node("Mul", {"e", "minus"}, {"y2"});
  const Tensor x = random_tensor({32, 4}, -1.0f, 1.0f, 12);
  for (Method method : {Method::kMinMaxAsym, Method::kMseSym, Method::kPercentileAsym}) {
    std::vector<std::string> float_nodes;
    const onnx::ModelProto m = quantized(b.model(), method, &float_nodes, x);
    ASSERT_EQ(float_nodes.size(), 1u);
    EXPECT_NE(float_nodes[0].find("Div"), std::string::npos);
    const auto [h_scale, h_zero] = qdq_params(m, "h");
    const auto [d_scale, d_zero] = qdq_params(m, "d");
    const auto [e_scale, e_zero] = qdq_params(m, "e");
    ASSERT_GT(h_scale, 0.0f);
    EXPECT_EQ(d_scale, h_scale * 0.25f);
    EXPECT_EQ(e_scale, h_scale * 0.5f);
    EXPECT_EQ(d_zero, h_zero);
    EXPECT_EQ(e_zero, h_zero);
    const onnx::ModelProto opt = optimize(b.model());
    QuantizeOptions options;
    options.method = method;
    EXPECT_EQ(calibrated_tensors(opt, calibrate(opt, x, false).ranges(method), options),
              (std::vector<std::string>{"x", "h", "y1", "y2"}));
    // The float run of the QDQ file: d and e hold h's int8 values exactly.
    std::map<std::string, Tensor> q;
    ref::RunOptions observe;
    observe.observe = [&](const std::string& name, const Tensor& value) {
      for (const char* t : {"h", "d", "e"})
        if (name == q_of(m, t)->output(0)) q[t] = value;
    };
    ASSERT_TRUE(ref::Executor::create(m).value().run({{"x", x}}, observe).ok());
    ASSERT_EQ(q.size(), 3u);
    EXPECT_EQ(q["d"].to_vector<int8_t>(), q["h"].to_vector<int8_t>()) << method_name(method);
    EXPECT_EQ(q["e"].to_vector<int8_t>(), q["h"].to_vector<int8_t>()) << method_name(method);
  }
  // The integer run keeps the int8 values too: x / 4 (a table) and x * 0.5 (an integer multiply)
  // give x's int8 input values back, as the float run of the file does.
  ModelBuilder scaled;
  scaled.input("x", {4}).output("d", {4}).output("e", {4});
  scaled.init("four", Tensor::scalar<float>(4.0f)).init("half", Tensor::from_vector<float>({1}, {0.5f}));
  scaled.node("Div", {"x", "four"}, {"d"});
  scaled.node("Mul", {"x", "half"}, {"e"});
  for (Method method : {Method::kMinMaxAsym, Method::kMseSym, Method::kPercentileAsym}) {
    const onnx::ModelProto m = quantized(scaled.model(), method, nullptr, x);
    auto g = ref::lower_qdq(m, 32);
    ASSERT_TRUE(g.ok()) << g.error().what();
    EXPECT_EQ(anvil::test::int8_agreement(m, *g, {{"x", x}}).max_diff, 0) << method_name(method);
    const Tensor qx = ref::quantize_tensor(x, g->values[g->inputs[0]].q);
    auto y = ref::run_int8(*g, {{"x", qx}});
    ASSERT_TRUE(y.ok()) << y.error().what();
    for (const char* t : {"d", "e"}) EXPECT_EQ(y->at(t).to_vector<int8_t>(), qx.to_vector<int8_t>()) << t;
  }
}

TEST(QuantizeUnaryRegion, GeluIsOneFloatOperatorQuantizedAtItsOutput) {
  // x * (1 + erf(x / sqrt 2)) * 0.5 as torch exports nn.GELU: the Add and Muls, which have int8
  // forms, stay float with the Div and Erf, so only the GELU's input and output are quantized.
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.init("W", random_tensor({4, 4}, -1.0f, 1.0f, 31)).init("W2", random_tensor({4, 4}, -1.0f, 1.0f, 32));
  b.init("sqrt2", Tensor::scalar<float>(1.4142135f)).init("one", Tensor::scalar<float>(1.0f));
  b.init("half", Tensor::scalar<float>(0.5f));
  b.node("MatMul", {"x", "W"}, {"h"});
  b.node("Div", {"h", "sqrt2"}, {"d"});
  b.node("Erf", {"d"}, {"e"});
  b.node("Add", {"e", "one"}, {"a"});
  b.node("Mul", {"h", "a"}, {"m"});
  b.node("Mul", {"m", "half"}, {"g"});
  b.node("MatMul", {"g", "W2"}, {"y"});
  const Tensor x = random_tensor({32, 4}, -2.0f, 2.0f, 33);
  std::vector<std::string> float_nodes;
  const onnx::ModelProto m = quantized(b.model(), Method::kMinMaxAsym, &float_nodes, x);
  EXPECT_EQ(float_nodes.size(), 5u);
  for (const char* t : {"d", "e", "a", "m"}) EXPECT_EQ(q_of(m, t), nullptr) << t;
  EXPECT_NE(q_of(m, "h"), nullptr);
  EXPECT_NE(q_of(m, "g"), nullptr);
  // The GELU reads h's DequantizeLinear twice (the Div and the first Mul).
  EXPECT_EQ(producer(m, producer(m, "d")->input(0))->op_type(), "DequantizeLinear");
  EXPECT_EQ(producer(m, "m")->input(0), producer(m, "d")->input(0));
  // The integer lowering runs it as one table, exactly the float QDQ semantics.
  auto g = ref::lower_qdq(m, 32);
  ASSERT_TRUE(g.ok()) << g.error().what();
  int tables = 0;
  for (const ref::Int8Op& op : g->ops) tables += op.kind == ref::Int8OpKind::kLut;
  EXPECT_EQ(tables, 1);
  // A second value leaving (the Erf also a graph output) makes it no single operator: the Add
  // and Muls are quantized as before.
  onnx::ModelProto two_exits = b.model();
  two_exits.mutable_graph()->add_output()->set_name("e");
  const onnx::ModelProto q2 = quantized(two_exits, Method::kMinMaxAsym, &float_nodes, x);
  EXPECT_EQ(float_nodes.size(), 2u);  // Div, Erf
  for (const char* t : {"a", "m"}) EXPECT_NE(q_of(q2, t), nullptr) << t;
}

TEST(QuantizeExcludeNodes, MatchingNodesStayFloatWithFloatWeights) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {3});
  b.init("W1", random_tensor({4, 4}, -1.0f, 1.0f, 51)).init("W2", random_tensor({4, 3}, -1.0f, 1.0f, 52));
  b.node("MatMul", {"x", "W1"}, {"h"}).set_name("/att/qkv");
  b.node("Relu", {"h"}, {"r"}).set_name("/act");
  b.node("MatMul", {"r", "W2"}, {"y"}).set_name("/mlp/fc");
  const onnx::ModelProto opt = optimize(b.model());
  const Tensor x = random_tensor({16, 4}, -1.0f, 1.0f, 53);
  const Calibration calib = calibrate(opt, x, false);
  QuantizeOptions options;
  options.exclude_nodes = "/att/";
  std::vector<std::string> float_nodes;
  auto q = quantize(opt, calib, options, &float_nodes);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  ASSERT_EQ(float_nodes.size(), 1u);
  EXPECT_NE(float_nodes[0].find("/att/qkv"), std::string::npos) << float_nodes[0];
  // The excluded MatMul reads the graph input through its Q -> DQ (every graph input has one) and
  // W1 as the float initializer.
  const onnx::NodeProto* att = producer(*q, "h");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(att->op_type(), "MatMul");
  EXPECT_EQ(producer(*q, att->input(0))->op_type(), "DequantizeLinear");
  EXPECT_EQ(att->input(1), "W1");
  EXPECT_EQ(initializer(*q, "W1").dtype(), DType::kFloat32);
  // h enters the quantized Relu/MatMul through Q -> DQ, and W2 stays per-channel int8.
  EXPECT_NE(q_of(*q, "h"), nullptr);
  const onnx::NodeProto* fc = producer(*q, "y");
  ASSERT_NE(fc, nullptr);
  if (fc->op_type() == "DequantizeLinear") fc = producer(*q, producer(*q, fc->input(0))->input(0));
  ASSERT_EQ(fc->op_type(), "MatMul");
  const onnx::NodeProto* wdq = producer(*q, fc->input(1));
  ASSERT_NE(wdq, nullptr);
  EXPECT_EQ(wdq->op_type(), "DequantizeLinear");
  EXPECT_EQ(initializer(*q, wdq->input(0)).dtype(), DType::kInt8);
  // Without the option both MatMuls are quantized; the same ranges give the same Relu parameters.
  auto all = quantize(opt, calib, {}, &float_nodes);
  ASSERT_TRUE(all.ok()) << all.error().what();
  EXPECT_TRUE(float_nodes.empty());
  EXPECT_EQ(qdq_params(*q, "r"), qdq_params(*all, "r"));
}

/// x -> Conv "/conv" -> c -> Relu "/act" -> r -> Conv "/out" -> y. Calibration runs the first Conv
/// and its Relu as one kernel and does not observe c; excluding the Conv keeps the Relu float too
/// (it could not be quantized at its input), and the pair is quantized only at r.
TEST(QuantizeExcludeNodes, AFusedActivationStaysFloatWithItsProducer) {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y", {2, 4, 4});
  b.init("w1", random_tensor({2, 2, 1, 1}, -1.0f, 1.0f, 61)).init("w2", random_tensor({2, 2, 1, 1}, -1.0f, 1.0f, 62));
  b.node("Conv", {"x", "w1"}, {"c"}).set_name("/conv");
  b.node("Relu", {"c"}, {"r"}).set_name("/act");
  b.node("Conv", {"r", "w2"}, {"y"}).set_name("/out");
  const onnx::ModelProto opt = optimize(b.model());
  const Calibration calib = calibrate(opt, random_tensor({8, 2, 4, 4}, -1.0f, 1.0f, 63), false);
  ASSERT_EQ(calib.tensors.count("c"), 0u) << "the test needs c unobserved (Conv + Relu as one kernel)";
  QuantizeOptions options;
  options.exclude_nodes = "^/conv$";
  std::vector<std::string> float_nodes;
  auto q = quantize(opt, calib, options, &float_nodes);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  ASSERT_EQ(float_nodes.size(), 2u);
  EXPECT_NE(float_nodes[0].find("/conv"), std::string::npos) << float_nodes[0];
  EXPECT_NE(float_nodes[1].find("/act"), std::string::npos) << float_nodes[1];
  EXPECT_EQ(q_of(*q, "c"), nullptr);
  EXPECT_NE(q_of(*q, "r"), nullptr);
  // The same ranges without the option: the pair gets r's range, as with it.
  auto all = quantize(opt, calib, {});
  ASSERT_TRUE(all.ok()) << all.error().what();
  EXPECT_EQ(qdq_params(*q, "r"), qdq_params(*all, "r"));
}

TEST(QuantizeExcludeNodes, BadPatternsAreErrorsNamingThePattern) {
  const onnx::ModelProto opt = optimize(small_cnn());
  const Calibration calib = calibrate(opt, inputs(), false);
  for (const char* pattern : {"(unclosed", "no-such-node"}) {
    QuantizeOptions options;
    options.exclude_nodes = pattern;
    auto q = quantize(opt, calib, options);
    ASSERT_FALSE(q.ok()) << pattern;
    EXPECT_EQ(q.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(q.error().what()).find(pattern), std::string::npos) << q.error().what();
  }
}

namespace {

/// x [N, 8] -> MatMul(x, W) -> h; a = Add(h, x), the residual Add; ln = LayerNorm(a) as the nine
/// nodes torch exports (add_layer_norm_nodes). With `int8_reader`, z = Add(a, ln) reads a as well (a
/// quantized reader) and is the output; otherwise ln is. With `bias`, a = Add(MatMul(x, W), b) is a MatMul bias Add instead.
/// With `a_output`, a is a graph output as well.
onnx::ModelProto residual_layer_norm(bool int8_reader, bool bias = false, bool a_output = false) {
  ModelBuilder b;
  b.input("x", {8}).output(int8_reader ? "z" : "ln", {8});
  if (a_output) b.output("a", {8});
  b.init("W", random_tensor({8, 8}, -0.05f, 0.05f, 61)).init("two", Tensor::from_vector<float>({1}, {2.0f}));
  b.init("eps", Tensor::from_vector<float>({1}, {1e-5f})).init("gamma", random_tensor({8}, 0.5f, 1.5f, 62));
  b.init("beta", random_tensor({8}, -0.5f, 0.5f, 63)).init("b", random_tensor({8}, -1.0f, 1.0f, 64));
  b.node("MatMul", {"x", "W"}, {"h"});
  b.node("Add", {"h", bias ? "b" : "x"}, {"a"});
  add_layer_norm_nodes(b, "a", "ln", {-1});
  if (int8_reader) b.node("Add", {"a", "ln"}, {"z"});
  return b.model();
}

/// Rows with a large offset and a small spread, as a transformer's residual stream: the range of a
/// is wide, and each row's spread, by which the LayerNorm divides, is small.
Tensor offset_rows() {
  Tensor x = random_tensor({64, 8}, -0.1f, 0.1f, 65);
  const Tensor offset = random_tensor({64}, -2.0f, 2.0f, 66);
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t c = 0; c < 8; ++c) x.data<float>()[r * 8 + c] += offset.data<float>()[r];
  return x;
}

}  // namespace

TEST(QuantizeFloatResidualSums, TheLayerNormReadsTheExactSumAndInt8ReadersItsQuantization) {
  const onnx::ModelProto opt = optimize(residual_layer_norm(true));
  const Tensor x = offset_rows();
  const Calibration calib = calibrate(opt, x, false);
  std::vector<std::string> plain_float, float_nodes;
  const onnx::ModelProto plain = quantize(opt, calib, {}, &plain_float).value();
  QuantizeOptions options;
  options.float_residual_sums = true;
  auto q = quantize(opt, calib, options, &float_nodes);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  // The residual Add reads the int8 operands (DequantizeLinear outputs); its output keeps the
  // default's Q -> DQ parameters, and the int8 reader z takes that DequantizeLinear.
  const onnx::NodeProto* add = producer(*q, "a");
  ASSERT_NE(add, nullptr);
  for (const auto& in : add->input()) EXPECT_EQ(producer(*q, in)->op_type(), "DequantizeLinear") << in;
  ASSERT_NE(q_of(*q, "a"), nullptr);
  EXPECT_EQ(qdq_params(*q, "a"), qdq_params(plain, "a"));
  const onnx::NodeProto* z = producer(*q, "z_float");
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(producer(*q, z->input(0))->op_type(), "DequantizeLinear");
  EXPECT_EQ(producer(*q, z->input(0))->input(0), q_of(*q, "a")->output(0));
  // Both LayerNorm nodes that read a (ReduceMean, Sub) read the float sum itself; by default they
  // read its DequantizeLinear.
  for (const char* t : {"m", "d"}) {
    EXPECT_EQ(producer(*q, t)->input(0), "a") << t;
    EXPECT_EQ(producer(plain, producer(plain, t)->input(0))->op_type(), "DequantizeLinear") << t;
  }
  // Reported with the float nodes: the nine of the LayerNorm and the Add.
  EXPECT_EQ(float_nodes.size(), plain_float.size() + 1);
  EXPECT_EQ(std::count_if(float_nodes.begin(), float_nodes.end(),
                          [](const std::string& s) { return s.find("float, on its int8 operands, for its float readers") != std::string::npos; }),
            1);
  // One rounding fewer before the LayerNorm: closer to FP32 than the default.
  auto want = ref::Executor::create(opt)->run({{"x", x}});
  auto got_plain = ref::Executor::create(plain)->run({{"x", x}});
  auto got = ref::Executor::create(*q)->run({{"x", x}});
  ASSERT_TRUE(want.ok() && got_plain.ok() && got.ok());
  EXPECT_LT(squared_error(want->at("z"), got->at("z")), squared_error(want->at("z"), got_plain->at("z")));
}

TEST(QuantizeFloatResidualSums, AnAddThatOnlyFloatNodesReadHasNoQdq) {
  const onnx::ModelProto opt = optimize(residual_layer_norm(false));
  const Calibration calib = calibrate(opt, offset_rows(), false);
  QuantizeOptions options;
  options.float_residual_sums = true;
  auto q = quantize(opt, calib, options);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  // No int8 sum without a reader: a has no Q, its Add reads the two DequantizeLinear outputs, and the
  // LayerNorm reads a itself.
  EXPECT_EQ(q_of(*q, "a"), nullptr);
  const onnx::NodeProto* add = producer(*q, "a");
  ASSERT_NE(add, nullptr);
  for (const auto& in : add->input()) EXPECT_EQ(producer(*q, in)->op_type(), "DequantizeLinear") << in;
  EXPECT_EQ(producer(*q, "m")->input(0), "a");
}

TEST(QuantizeFloatResidualSums, AGraphOutputKeepsItsNameAndItsQdq) {
  // a is read by the LayerNorm and is a graph output: the output a is Q -> DQ of the float sum, as
  // every quantized graph output, and the LayerNorm reads the float sum under the Add's new name.
  const onnx::ModelProto opt = optimize(residual_layer_norm(false, false, true));
  const Tensor x = offset_rows();
  const Calibration calib = calibrate(opt, x, false);
  QuantizeOptions options;
  options.float_residual_sums = true;
  auto q = quantize(opt, calib, options);
  ASSERT_TRUE(q.ok()) << q.error().what();
  EXPECT_NO_THROW(check_onnx(*q, "qdq"));
  EXPECT_EQ(producer(*q, "a")->op_type(), "DequantizeLinear");
  const onnx::NodeProto* add = producer(*q, "a_float");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->op_type(), "Add");
  EXPECT_EQ(producer(*q, "m")->input(0), "a_float");
  EXPECT_EQ(producer(*q, "d")->input(0), "a_float");
  // The output a equals the default's (Q of the same sum); ln is closer to FP32.
  const onnx::ModelProto plain = quantize(opt, calib, {}).value();
  auto want = ref::Executor::create(opt)->run({{"x", x}});
  auto got_plain = ref::Executor::create(plain)->run({{"x", x}});
  auto got = ref::Executor::create(*q)->run({{"x", x}});
  ASSERT_TRUE(want.ok() && got_plain.ok() && got.ok());
  EXPECT_TRUE(got->at("a") == got_plain->at("a"));
  EXPECT_LT(squared_error(want->at("ln"), got->at("ln")), squared_error(want->at("ln"), got_plain->at("ln")));
}

TEST(QuantizeFloatResidualSums, BiasAddsAndModelsWithoutFloatReadersAreUnchanged) {
  QuantizeOptions options;
  options.float_residual_sums = true;
  // A MatMul's bias Add before a LayerNorm: its int32 bias belongs to the MatMul, so it stays.
  const onnx::ModelProto opt = optimize(residual_layer_norm(true, true));
  const Calibration calib = calibrate(opt, offset_rows(), false);
  EXPECT_EQ(quantize(opt, calib, options).value().SerializeAsString(),
            quantize(opt, calib, {}).value().SerializeAsString());
  // An Add read only by quantized nodes (small_cnn's residual Add before a Relu).
  const onnx::ModelProto cnn = optimize(small_cnn());
  const Calibration cnn_calib = calibrate(cnn, inputs(), false);
  EXPECT_EQ(quantize(cnn, cnn_calib, options).value().SerializeAsString(),
            quantize(cnn, cnn_calib, {}).value().SerializeAsString());
}

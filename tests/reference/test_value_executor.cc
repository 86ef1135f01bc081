// Executor::run_values: sequence and optional graph inputs and outputs (value.h) through Identity,
// next to tensors; create() rejects any other node reading such a value, naming node and input.
#include <gtest/gtest.h>

#include "anvil/reference/executor.h"
#include "model_builder.h"

using namespace anvil;
using anvil::test::ModelBuilder;
using anvil::test::optional_of;
using anvil::test::sequence_of;
using anvil::test::tensor_type;

namespace {

/// x (of `type`) -> Identity -> a -> Identity -> y (of `type`), and t -> Relu -> r beside it.
onnx::ModelProto identity_model(const onnx::TypeProto& type) {
  ModelBuilder b(16);
  b.typed_input("x", type);
  b.input("t", DType::kFloat32, {2});
  b.node("Identity", {"x"}, {"a"}, "first");
  b.node("Identity", {"a"}, {"y"}, "second");
  b.node("Relu", {"t"}, {"r"}, "relu");
  b.typed_output("y", type);
  b.output("r");
  return b.model();
}

Tensor floats(Shape shape, float first) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + static_cast<float>(i);
  return t;
}

const Tensor kT = Tensor::from_vector<float>({2}, {-1.0f, 2.0f});
const Tensor kRelu = Tensor::from_vector<float>({2}, {0.0f, 2.0f});

/// Runs identity_model(type) on x and checks y == x and the tensor beside it.
void expect_forwarded(const onnx::TypeProto& type, const Value& x) {
  auto e = ref::Executor::create(identity_model(type));
  ASSERT_TRUE(e.ok()) << e.error().what();
  EXPECT_EQ(e->input_names(), (std::vector<std::string>{"x", "t"}));
  EXPECT_EQ(e->output_names(), (std::vector<std::string>{"y", "r"}));
  auto out = e->run_values({{"x", x}, {"t", kT}});
  ASSERT_TRUE(out.ok()) << out.error().what();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(out->at("y"), x) << out->at("y").describe();
  EXPECT_EQ(out->at("r"), Value(kRelu));
}

std::string create_error(const onnx::ModelProto& m, ErrorCode code) {
  auto e = ref::Executor::create(m);
  EXPECT_FALSE(e.ok());
  if (e.ok()) return "";
  EXPECT_EQ(e.error().code(), code) << e.error().what();
  return e.error().what();
}

const onnx::TypeProto kSeq = sequence_of(tensor_type(DType::kFloat32));

}  // namespace

TEST(ExecutorValues, IdentityForwardsASequence) {
  expect_forwarded(kSeq, Value::sequence({floats({1, 2}, 1.0f), floats({3}, 5.0f)}));
}

TEST(ExecutorValues, IdentityForwardsAnEmptySequence) { expect_forwarded(kSeq, Value::sequence({})); }

TEST(ExecutorValues, IdentityForwardsAnOptionalHoldingASequence) {
  expect_forwarded(optional_of(kSeq), Value::optional(Value::sequence({floats({5}, 1.0f)})));
}

TEST(ExecutorValues, IdentityForwardsAnOptionalHoldingATensor) {
  expect_forwarded(optional_of(tensor_type(DType::kFloat32)), Value::optional(floats({2, 2}, 0.5f)));
}

TEST(ExecutorValues, IdentityForwardsAnEmptyOptional) {
  expect_forwarded(optional_of(tensor_type(DType::kFloat32)), Value::optional());
  expect_forwarded(optional_of(kSeq), Value::optional());
}

TEST(ExecutorValues, AGraphInputThatIsAnOutput) {
  ModelBuilder b(16);
  b.typed_input("x", kSeq);
  b.typed_output("x", kSeq);
  auto e = ref::Executor::create(b.model());
  ASSERT_TRUE(e.ok()) << e.error().what();
  const Value x = Value::sequence({floats({1}, 3.0f)});
  auto out = e->run_values({{"x", x}});
  ASSERT_TRUE(out.ok()) << out.error().what();
  EXPECT_EQ(out->at("x"), x);
}

TEST(ExecutorValues, OtherNodeFedASequenceIsRejectedNamingNodeAndInput) {
  ModelBuilder b(16);
  b.typed_input("x", kSeq);
  b.node("Identity", {"x"}, {"a"}, "id");
  b.node("Relu", {"a"}, {"y"}, "relu");
  b.output("y");
  EXPECT_EQ(create_error(b.model(), ErrorCode::kInvalidArgument),
            "node 'relu' (Relu): input 'a' is a value of type sequence; only Identity takes sequence or optional values");
}

TEST(ExecutorValues, DropoutFedAnOptionalIsRejected) {
  ModelBuilder b(16);
  b.typed_input("x", optional_of(tensor_type(DType::kFloat32)));
  b.node("Dropout", {"x"}, {"y"}, "drop");
  b.output("y");
  EXPECT_EQ(create_error(b.model(), ErrorCode::kInvalidArgument),
            "node 'drop' (Dropout): input 'x' is a value of type optional; only Identity takes sequence or optional values");
}

TEST(ExecutorValues, OutputDeclaredAsAnotherKindIsRejected) {
  ModelBuilder b(16);
  b.typed_input("x", kSeq);
  b.input("t", DType::kFloat32, {2});
  b.node("Identity", {"x"}, {"y"}, "id");
  b.node("Relu", {"t"}, {"r"}, "relu");
  b.typed_output("y", tensor_type(DType::kFloat32));
  EXPECT_EQ(create_error(b.model(), ErrorCode::kInvalidArgument),
            "graph output 'y': declared of type tensor, but the graph makes a value of type sequence");
  onnx::ModelProto m = b.model();
  m.mutable_graph()->mutable_output(0)->set_name("r");
  *m.mutable_graph()->mutable_output(0)->mutable_type() = optional_of(tensor_type(DType::kFloat32));
  EXPECT_EQ(create_error(m, ErrorCode::kInvalidArgument),
            "graph output 'r': declared of type optional, but the graph makes a value of type tensor");
}

TEST(ExecutorValues, MapInputIsUnsupported) {
  ModelBuilder b(16);
  onnx::TypeProto map;
  map.mutable_map_type()->set_key_type(onnx::TensorProto::INT64);
  b.typed_input("m", sequence_of(map));
  b.node("Identity", {"m"}, {"y"}, "id");
  b.typed_output("y", sequence_of(map));
  EXPECT_EQ(create_error(b.model(), ErrorCode::kUnsupported),
            "graph input 'm' element: data type map is not supported (tensor, sequence or optional only)");
}

TEST(ExecutorValues, RunWithTensorsNamesTheValueAndPointsAtRunValues) {
  auto e = ref::Executor::create(identity_model(kSeq));
  ASSERT_TRUE(e.ok()) << e.error().what();
  auto out = e->run({{"t", kT}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(out.error().what(), "input 'x' is a value of type sequence: run this model with Executor::run_values");
}

TEST(ExecutorValues, InputsAreCheckedAgainstTheirDeclaredType) {
  auto e = ref::Executor::create(identity_model(kSeq));
  ASSERT_TRUE(e.ok()) << e.error().what();
  auto error_of = [&](const ValueMap& inputs) {
    auto out = e->run_values(inputs);
    EXPECT_FALSE(out.ok());
    return out.ok() ? std::string() : std::string(out.error().what());
  };
  EXPECT_EQ(error_of({{"x", floats({1}, 0.0f)}, {"t", kT}}), "input 'x': expected a value of type sequence, got one of type tensor");
  EXPECT_EQ(error_of({{"x", Value::sequence({floats({1}, 0.0f), Tensor::scalar<int64_t>(1)})}, {"t", kT}}),
            "input 'x' element 1: expected float32, got int64");
  EXPECT_EQ(error_of({{"x", Value::sequence({})}, {"t", Value::sequence({})}}),
            "input 't': expected a value of type tensor, got one of type sequence");
  EXPECT_EQ(error_of({{"t", kT}}), "input 'x' was not given");
  EXPECT_EQ(error_of({{"x", Value::sequence({})}}), "input 't' was not given");
  EXPECT_EQ(error_of({{"x", Value::sequence({})}, {"t", kT}, {"z", kT}}), "input 'z' is not an input of the model");
  EXPECT_EQ(error_of({{"x", Value::sequence({})}, {"t", floats({3}, 0.0f)}}),
            "input 't': expected shape [2], got [3]");
}

TEST(ExecutorValues, RunValuesOnATensorModelEqualsRun) {
  ModelBuilder b;
  b.input("x", DType::kFloat32, {-1, 2}).output("y");
  b.node("Relu", {"x"}, {"y"}, "relu");
  auto e = ref::Executor::create(b.model());
  ASSERT_TRUE(e.ok()) << e.error().what();
  const Tensor x = Tensor::from_vector<float>({2, 2}, {-1.0f, 1.0f, 2.0f, -3.0f});
  auto tensors = e->run({{"x", x}});
  auto values = e->run_values({{"x", x}});
  ASSERT_TRUE(tensors.ok() && values.ok());
  EXPECT_EQ(values->at("y"), Value(tensors->at("y")));
}

// anvil::Value (value.h) and its .pb files (tensor_io.h): ONNX SequenceProto / OptionalProto round
// trips, and the errors for malformed, wrong-kind and unsupported files, each naming the file.
#include <gtest/gtest.h>
#include <onnx/onnx-data_pb.h>


#include <filesystem>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "anvil/common/value.h"
#include "scratch_dir_for_tests.h"

using namespace anvil;

namespace {

/// A file in this process's scratch folder, which is removed when the test program exits.
std::string tmp(const std::string& name) {
  static const anvil::test::ScratchDir dir("anvil_value_io");
  return dir.file(name);
}

Tensor floats(Shape shape, float first) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + static_cast<float>(i);
  return t;
}

Value two_tensors() { return Value::sequence({floats({1, 2}, 1.0f), floats({3}, -4.0f)}); }

/// The Error `f` throws; fails the test when it throws none.
template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCode::kInternal, "");
}

std::string write_proto(const google::protobuf::Message& m, const std::string& name) {
  const std::string path = tmp(name);
  std::string bytes;
  m.SerializeToString(&bytes);
  write_file(path, bytes);
  return path;
}

}  // namespace

TEST(Value, KindsAndAccessors) {
  const Value t = floats({2}, 0.0f);
  EXPECT_EQ(t.kind(), ValueKind::kTensor);
  EXPECT_EQ(t.tensor(), floats({2}, 0.0f));
  const Value s = two_tensors();
  EXPECT_EQ(s.kind(), ValueKind::kSequence);
  ASSERT_EQ(s.elements().size(), 2u);
  EXPECT_EQ(s.elements()[1].tensor(), floats({3}, -4.0f));
  EXPECT_FALSE(Value::optional().has_value());
  EXPECT_TRUE(Value::optional(s).has_value());
  EXPECT_EQ(Value::optional(s).contents(), s);
  EXPECT_EQ(Value::sequence({}).elements().size(), 0u);
}

TEST(Value, WrongKindAccessIsAnError) {
  const Error e = error_of([] { two_tensors().tensor(); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "value: expected type tensor, got type sequence");
  EXPECT_EQ(error_of([] { Value(floats({1}, 0.0f)).elements(); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of([] { two_tensors().has_value(); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(error_of([] { Value::optional().contents(); }).what(), "value: the optional is empty");
}

TEST(Value, DescribeAndEquality) {
  EXPECT_EQ(two_tensors().describe(), "sequence(2)[float32[1, 2], float32[3]]");
  EXPECT_EQ(Value::optional().describe(), "optional(empty)");
  EXPECT_EQ(Value::optional(floats({5}, 0.0f)).describe(), "optional(float32[5])");
  EXPECT_EQ(two_tensors(), two_tensors());
  EXPECT_NE(two_tensors(), Value::sequence({floats({1, 2}, 1.0f)}));
  EXPECT_NE(Value::optional(), Value::sequence({}));
  EXPECT_NE(Value::optional(), Value::optional(Value::sequence({})));
}

TEST(ValuePb, SequenceRoundTrips) {
  const Value nested = Value::sequence({two_tensors(), Value::sequence({})});
  const Value with_optionals = Value::sequence({Value::optional(), Value::optional(floats({2}, 7.0f))});
  const Value ints = Value::sequence({Tensor::from_vector<int64_t>({2}, {-1, 1 << 30})});
  for (const Value& v : {two_tensors(), Value::sequence({}), nested, with_optionals, ints}) {
    const std::string path = tmp("anvil_value_seq.pb");
    write_value_pb(path, v, "seq");
    std::string name;
    EXPECT_EQ(read_value_pb(path, ValueKind::kSequence, &name), v) << v.describe();
    EXPECT_EQ(name, "seq");
  }
}

TEST(ValuePb, OptionalRoundTrips) {
  for (const Value& v : {Value::optional(), Value::optional(floats({5}, 1.0f)), Value::optional(two_tensors()),
                         Value::optional(Value::sequence({})), Value::optional(Value::optional(floats({1}, 0.0f)))}) {
    const std::string path = tmp("anvil_value_opt.pb");
    write_value_pb(path, v, "opt");
    std::string name;
    EXPECT_EQ(read_value_pb(path, ValueKind::kOptional, &name), v) << v.describe();
    EXPECT_EQ(name, "opt");
  }
}

TEST(ValuePb, TensorKindReadsATensorProto) {
  const std::string path = tmp("anvil_value_tensor.pb");
  write_value_pb(path, floats({2, 2}, 3.0f), "t");
  EXPECT_EQ(read_value_pb(path, ValueKind::kTensor), Value(floats({2, 2}, 3.0f)));
  EXPECT_EQ(read_tensor_pb(path), floats({2, 2}, 3.0f));
}

TEST(ValuePb, WritesWhatOnnxWrites) {  // elem_type from the contents; empty sequence TENSOR, empty optional UNDEFINED
  onnx::SequenceProto s;
  ASSERT_TRUE(s.ParseFromString((write_value_pb(tmp("anvil_value_w.pb"), two_tensors(), "s"),
                                 read_file(tmp("anvil_value_w.pb")))));
  EXPECT_EQ(s.elem_type(), onnx::SequenceProto::TENSOR);
  ASSERT_EQ(s.tensor_values_size(), 2);
  EXPECT_FALSE(s.tensor_values(0).has_name());
  write_value_pb(tmp("anvil_value_w.pb"), Value::sequence({}), "s");
  ASSERT_TRUE(s.ParseFromString(read_file(tmp("anvil_value_w.pb"))));
  EXPECT_EQ(s.elem_type(), onnx::SequenceProto::TENSOR);
  onnx::OptionalProto o;
  write_value_pb(tmp("anvil_value_w.pb"), Value::optional(), "o");
  ASSERT_TRUE(o.ParseFromString(read_file(tmp("anvil_value_w.pb"))));
  EXPECT_EQ(o.elem_type(), onnx::OptionalProto::UNDEFINED);
  write_value_pb(tmp("anvil_value_w.pb"), Value::optional(two_tensors()), "o");
  ASSERT_TRUE(o.ParseFromString(read_file(tmp("anvil_value_w.pb"))));
  EXPECT_EQ(o.elem_type(), onnx::OptionalProto::SEQUENCE);
  EXPECT_EQ(o.sequence_value().tensor_values_size(), 2);
}

TEST(ValuePb, MixedSequenceCannotBeWritten) {
  const std::string path = tmp("anvil_value_mixed.pb");
  const Error e = error_of([&] { write_value_pb(path, Value::sequence({floats({1}, 0.0f), two_tensors()}), "m"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()), path + ": sequence element 1 is of type sequence, element 0 of type tensor");
}

TEST(ValuePb, MissingFileNamesThePath) {
  const Error e = error_of([] { read_value_pb("/nonexistent/seq.pb", ValueKind::kSequence); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find("/nonexistent/seq.pb"), std::string::npos);
}

TEST(ValuePb, GarbageIsAParseErrorNamingTheFile) {
  const std::string path = tmp("anvil_value_garbage.pb");
  write_file(path, "\xff\xff\xff not a protobuf");
  for (ValueKind kind : {ValueKind::kSequence, ValueKind::kOptional}) {
    const Error e = error_of([&] { read_value_pb(path, kind); });
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_EQ(std::string(e.what()).rfind(path + ": not a serialized ONNX ", 0), 0u) << e.what();
  }
}

TEST(ValuePb, TensorFileReadAsSequenceOrOptionalIsAnError) {
  const std::string path = tmp("anvil_value_wrong_kind.pb");
  write_tensor_pb(path, floats({2, 3}, 1.0f), "x");
  Error e = error_of([&] { read_value_pb(path, ValueKind::kSequence); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()), path + ": not a serialized ONNX SequenceProto (fields it does not have)");
  e = error_of([&] { read_value_pb(path, ValueKind::kOptional); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()), path + ": not a serialized ONNX OptionalProto (fields it does not have)");
}

TEST(ValuePb, SequenceFileReadAsTensorIsAnErrorNamingTheFile) {
  const std::string path = tmp("anvil_value_seq_as_tensor.pb");
  write_value_pb(path, two_tensors(), "x");
  const Error e = error_of([&] { read_value_pb(path, ValueKind::kTensor); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()), path + ": not a serialized ONNX TensorProto (fields it does not have, or a segment)");
}

TEST(ValuePb, ElemTypeDisagreeingWithTheValuesIsAParseError) {
  onnx::SequenceProto s;
  s.set_elem_type(onnx::SequenceProto::SEQUENCE);
  *s.add_tensor_values() = tensor_to_proto(floats({1}, 0.0f), "");
  std::string path = write_proto(s, "anvil_value_bad_seq.pb");
  Error e = error_of([&] { read_value_pb(path, ValueKind::kSequence); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()), path + ": SequenceProto elem_type SEQUENCE, but 1 of its 1 values are of another type");

  s.set_elem_type(onnx::SequenceProto::UNDEFINED);
  path = write_proto(s, "anvil_value_bad_seq.pb");
  EXPECT_EQ(error_of([&] { read_value_pb(path, ValueKind::kSequence); }).code(), ErrorCode::kParseError);

  onnx::OptionalProto o;
  o.set_elem_type(onnx::OptionalProto::TENSOR);
  o.mutable_sequence_value()->set_elem_type(onnx::SequenceProto::TENSOR);
  path = write_proto(o, "anvil_value_bad_opt.pb");
  e = error_of([&] { read_value_pb(path, ValueKind::kOptional); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()), path + ": OptionalProto elem_type TENSOR but it holds a value of another type");
}

TEST(ValuePb, EmptyOptionalKeepsNoElemType) {  // ONNX writes an empty optional with any elem_type
  onnx::OptionalProto o;
  o.set_elem_type(onnx::OptionalProto::TENSOR);
  const std::string path = write_proto(o, "anvil_value_empty_opt.pb");
  EXPECT_EQ(read_value_pb(path, ValueKind::kOptional), Value::optional());
}

TEST(ValuePb, BadTensorInsideNamesFileAndElement) {
  onnx::SequenceProto s;
  s.set_elem_type(onnx::SequenceProto::TENSOR);
  *s.add_tensor_values() = tensor_to_proto(floats({1}, 0.0f), "");
  onnx::TensorProto* bad = s.add_tensor_values();
  *bad = tensor_to_proto(floats({4}, 0.0f), "t");
  bad->mutable_raw_data()->resize(6);
  const std::string path = write_proto(s, "anvil_value_bad_tensor.pb");
  const Error e = error_of([&] { read_value_pb(path, ValueKind::kSequence); });
  EXPECT_EQ(e.code(), ErrorCode::kParseError);
  EXPECT_EQ(std::string(e.what()).rfind(path + ": element 1: tensor 't': raw_data has 6 bytes", 0), 0u) << e.what();
}

TEST(ValuePb, MapsAreUnsupported) {
  onnx::SequenceProto s;
  s.set_elem_type(onnx::SequenceProto::MAP);
  s.add_map_values()->set_key_type(onnx::TensorProto::INT64);
  std::string path = write_proto(s, "anvil_value_map_seq.pb");
  Error e = error_of([&] { read_value_pb(path, ValueKind::kSequence); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(std::string(e.what()), path + ": sequences of maps or sparse tensors are not supported");
  onnx::OptionalProto o;
  o.set_elem_type(onnx::OptionalProto::MAP);
  o.mutable_map_value()->set_key_type(onnx::TensorProto::INT64);
  path = write_proto(o, "anvil_value_map_opt.pb");
  e = error_of([&] { read_value_pb(path, ValueKind::kOptional); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
}

TEST(ValueKindOf, FollowsTheOnnxType) {
  onnx::TypeProto t;
  t.mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  EXPECT_EQ(value_kind_of(t, "x"), ValueKind::kTensor);
  t.mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type();
  EXPECT_EQ(value_kind_of(t, "x"), ValueKind::kSequence);
  t.mutable_optional_type()->mutable_elem_type()->mutable_tensor_type();
  EXPECT_EQ(value_kind_of(t, "x"), ValueKind::kOptional);
  t.mutable_map_type()->set_key_type(onnx::TensorProto::INT64);
  Error e = error_of([&] { value_kind_of(t, "graph input 'm'"); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_STREQ(e.what(), "graph input 'm': data type map is not supported (tensor, sequence or optional only)");
  e = error_of([&] { value_kind_of(onnx::TypeProto(), "graph input 'n'"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "graph input 'n': has no type");
}

#include <gtest/gtest.h>

#include <filesystem>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor_io.h"
#include "scratch_dir_for_tests.h"

using namespace anvil;

namespace {
/// A file in this process's scratch folder, which is removed when the test program exits.
std::string tmp(const std::string& name) {
  static const anvil::test::ScratchDir dir("anvil_tensor_io");
  return dir.file(name);
}
}  // namespace

TEST(Npy, RoundTripsEveryRank) {
  for (const Shape& s : {Shape{}, Shape{5}, Shape{2, 3}, Shape{1, 1, 4, 4}}) {
    Tensor t(DType::kFloat32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.5f * static_cast<float>(i);
    const std::string p = tmp("anvil_rt.npy");
    write_npy(p, t);
    EXPECT_EQ(read_npy(p), t) << shape_str(s);
  }
}

TEST(Npy, Int8RoundTrip) {
  Tensor t = Tensor::from_vector<int8_t>({2, 2}, {-128, -1, 0, 127});
  EXPECT_EQ(parse_npy(serialize_npy(t), "mem"), t);
}

TEST(Npy, MissingFileNamesThePath) {
  try {
    read_npy("/nonexistent/x.npy");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.npy"), std::string::npos);
  }
}

TEST(Npy, GarbageIsAParseError) {
  try {
    parse_npy("hello world, not numpy", "junk.npy");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
  }
}

TEST(Npy, TruncatedDataIsAParseError) {
  std::string bytes = serialize_npy(Tensor(DType::kFloat32, {10}));
  bytes.resize(bytes.size() - 3);
  EXPECT_THROW(parse_npy(bytes, "t.npy"), Error);
}

TEST(TensorProto, RoundTrip) {
  Tensor t = Tensor::from_vector<int64_t>({3}, {1, -2, 3});
  const std::string p = tmp("anvil_rt.pb");
  write_tensor_pb(p, t, "x");
  std::string name;
  EXPECT_EQ(read_tensor_pb(p, &name), t);
  EXPECT_EQ(name, "x");
}

TEST(OnnxModel, NotOnnxIsAParseErrorNamingTheFile) {
  const std::string p = tmp("anvil_not_onnx.onnx");
  write_file(p, "this is not a protobuf");
  try {
    load_onnx(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
  }
}

TEST(OnnxModel, MissingFile) {
  try {
    load_onnx("/nonexistent/model.onnx");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

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

TEST(Npy, AShapeBeyondTheDataIsAParseErrorBeforeAnyAllocation) {
  // One 28 x 28 float image whose header claims more: a product that wraps 64 bits to exactly the
  // bytes present, one that overflows, and one that does not overflow but needs 4 TB.
  const std::string image = serialize_npy(Tensor(DType::kFloat32, {1, 1, 28, 28}));
  const auto claiming = [&](const std::string& shape) {
    std::string bytes = image;
    const std::string from = "(1, 1, 28, 28)";
    bytes.replace(bytes.find(from), from.size(), shape);
    // Keep the header length field and the 64-byte alignment honest: pad or trim the spaces.
    const size_t header_end = bytes.find('\n');
    std::string header = bytes.substr(10, header_end - 10);
    std::string data = bytes.substr(header_end + 1);
    while ((10 + header.size() + 1) % 64) header += ' ';
    std::string out = bytes.substr(0, 8);
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    return out + header + "\n" + data;
  };
  for (const std::string shape : {"(288230376151711745, 1, 28, 28)", "(1000000000, 1000000000, 28, 28)",
                                  "(1000000, 1000000)", "(-1, 28, 28)"}) {
    SCOPED_TRACE(shape);
    try {
      parse_npy(claiming(shape), "big.npy");
      FAIL() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kParseError);
      EXPECT_EQ(std::string(e.what()).rfind("big.npy: ", 0), 0u) << e.what();
    }
  }
  EXPECT_EQ(parse_npy(claiming("(1, 1, 28, 28)"), "ok.npy").numel(), 784);
}

TEST(TensorProto, DimsBeyondTheDataAreAParseErrorBeforeAnyAllocation) {
  for (const bool raw : {true, false}) {
    onnx::TensorProto p = tensor_to_proto(Tensor(DType::kFloat32, {2, 3}), "w");
    if (!raw) {
      p.clear_raw_data();
      for (int i = 0; i < 6; ++i) p.add_float_data(0.5f);
    }
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{int64_t{1} << 40, int64_t{1} << 40},
                                             std::vector<int64_t>{1000000, 1000000}, std::vector<int64_t>{3, 3}}) {
      p.clear_dims();
      for (int64_t d : dims) p.add_dims(d);
      try {
        tensor_from_proto(p);
        FAIL() << "accepted " << shape_str(dims);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kParseError);
        EXPECT_NE(std::string(e.what()).find("tensor 'w'"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Tensor, ShapesBeyond2To60ElementsAreRefused) {
  EXPECT_THROW(shape_numel({int64_t{1} << 31, int64_t{1} << 31, int64_t{1} << 31}), Error);
  EXPECT_THROW(Tensor(DType::kInt8, {int64_t{1} << 40, int64_t{1} << 30}), Error);
  EXPECT_EQ(shape_numel({int64_t{1} << 40, int64_t{1} << 40, 0}), 0);  // empty, whatever the others
  EXPECT_EQ(shape_numel({int64_t{1} << 30, int64_t{1} << 30}), int64_t{1} << 60);
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

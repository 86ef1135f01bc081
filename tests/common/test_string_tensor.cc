// String tensors: storage, cast to and from numbers (numpy's formatting), TensorProto round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "anvil/common/onnx_model.h"
#include "anvil/common/tensor.h"
#include "anvil/common/tensor_io.h"

using namespace anvil;

namespace {
Tensor strings(Shape s, std::vector<std::string> v) { return Tensor::from_vector<std::string>(std::move(s), v); }
}  // namespace

TEST(StringTensor, HoldsStringsApartFromBytes) {
  Tensor t(DType::kString, {2, 2});
  EXPECT_EQ(t.numel(), 4);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_EQ(t.data<std::string>()[3], "");
  t.data<std::string>()[1] = "b";
  EXPECT_THROW(t.data<uint8_t>(), Error);
  EXPECT_THROW(dtype_size(DType::kString), Error);
  EXPECT_EQ(dtype_from_name("string"), DType::kString);

  const Tensor s = strings({3, 1}, {"a", "bc", "def"});
  EXPECT_EQ(s.reshaped({3}).to_vector<std::string>(), (std::vector<std::string>{"a", "bc", "def"}));
  EXPECT_EQ(s.slice0(1, 3).to_vector<std::string>(), (std::vector<std::string>{"bc", "def"}));
  EXPECT_EQ(Tensor::concat0({s.slice0(0, 1), s.slice0(1, 3)}), s);
  EXPECT_FALSE(s == strings({3, 1}, {"a", "bc", "x"}));  // equality compares the strings
}

TEST(StringTensor, FloatToStringIsNumpyStr) {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor f = Tensor::from_vector<float>(
      {11}, {0.039187793f, 0.9767611f, 1.0f, -0.0f, 123456.5f, 1e-5f, 1e16f, 2.5e-4f,
             std::numeric_limits<float>::quiet_NaN(), inf, -inf});
  EXPECT_EQ(f.cast(DType::kString).to_vector<std::string>(),
            (std::vector<std::string>{"0.039187793", "0.9767611", "1.0", "-0.0", "123456.5", "1e-05", "1e+16",
                                      "0.00025", "nan", "inf", "-inf"}));
  // float64 prints its own shortest digits; integers print in decimal.
  EXPECT_EQ(Tensor::from_vector<double>({2}, {0.1, 1e300}).cast(DType::kString).to_vector<std::string>(),
            (std::vector<std::string>{"0.1", "1e+300"}));
  EXPECT_EQ(Tensor::from_vector<int8_t>({2}, {-128, 7}).cast(DType::kString).to_vector<std::string>(),
            (std::vector<std::string>{"-128", "7"}));
}

TEST(StringTensor, StringToFloat) {
  const Tensor s = strings({6}, {"0.47892547", "NaN", "INF", "+INF", "-INF", "-1e3"});
  const Tensor f = s.cast(DType::kFloat32);
  EXPECT_EQ(f.data<float>()[0], 0.47892547f);
  EXPECT_TRUE(std::isnan(f.data<float>()[1]));
  EXPECT_EQ(f.data<float>()[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f.data<float>()[3], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f.data<float>()[4], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f.data<float>()[5], -1000.0f);
  EXPECT_EQ(strings({1}, {"0.1"}).cast(DType::kFloat64).data<double>()[0], 0.1);
  EXPECT_EQ(strings({1}, {"1.5"}).cast(DType::kFloat16).data<Float16>()[0].bits, 0x3e00);
}

TEST(StringTensor, BadConversionsAreErrors) {
  for (const char* bad : {"abc", "", " 1", "1 ", "1.5x"}) {
    try {
      strings({2}, {"1", bad}).cast(DType::kFloat32);
      ADD_FAILURE() << "'" << bad << "' parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("element 1 '" + std::string(bad) + "'"), std::string::npos) << e.what();
    }
  }
  try {
    strings({1}, {"1"}).cast(DType::kInt32);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_STREQ(e.what(), "cast from string to int32");
  }
  // numpy prints bool and float16 its own way; those casts are declared unsupported, not guessed.
  EXPECT_THROW(Tensor::from_vector<bool>({1}, {true}).cast(DType::kString), Error);
  EXPECT_THROW(Tensor(DType::kFloat16, {1}).cast(DType::kString), Error);
  EXPECT_THROW(serialize_npy(strings({1}, {"a"})), Error);
}

TEST(StringTensor, TensorProtoRoundTrip) {
  const Tensor s = strings({2}, {"x", "yz"});
  const onnx::TensorProto p = tensor_to_proto(s, "s");
  EXPECT_EQ(p.data_type(), onnx::TensorProto::STRING);
  ASSERT_EQ(p.string_data_size(), 2);
  EXPECT_EQ(p.string_data(1), "yz");
  EXPECT_EQ(tensor_from_proto(p), s);

  onnx::TensorProto short_data = p;
  short_data.add_dims(2);  // shape [2, 2] needs four strings
  EXPECT_THROW(tensor_from_proto(short_data), Error);
}

TEST(Float16Tensor, TensorProtoAndNpy) {
  const Tensor h = Tensor::from_vector<float>({2}, {1.0f, -2.0f}).cast(DType::kFloat16);
  const onnx::TensorProto p = tensor_to_proto(h, "h");
  EXPECT_EQ(p.data_type(), onnx::TensorProto::FLOAT16);
  EXPECT_EQ(tensor_from_proto(p), h);
  // int32_data form: one bit pattern per value
  onnx::TensorProto typed;
  typed.set_data_type(onnx::TensorProto::BFLOAT16);
  typed.add_dims(2);
  typed.add_int32_data(0x3f80);
  typed.add_int32_data(0xc000);
  const Tensor b = tensor_from_proto(typed);
  ASSERT_EQ(b.dtype(), DType::kBFloat16);
  EXPECT_EQ(b.cast(DType::kFloat32).to_vector<float>(), (std::vector<float>{1.0f, -2.0f}));
  typed.add_int32_data(0);
  EXPECT_THROW(tensor_from_proto(typed), Error);  // three values for two elements

  EXPECT_EQ(parse_npy(serialize_npy(h), "h.npy"), h);  // numpy's '<f2'
  EXPECT_THROW(serialize_npy(b), Error);                // numpy has no bfloat16
}

// float16, bfloat16 and string values in the reference executor: Cast / CastLike / Identity /
// Shape carry them; every other operator rejects them with an error naming the node and input.
#include <gtest/gtest.h>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {
Tensor f16(std::vector<float> v) { return f32({static_cast<int64_t>(v.size())}, v).cast(DType::kFloat16); }
}  // namespace

TEST(ElementTypes, CastToAndFromFloat16) {
  OneNode to(13);
  to.in("x", f32({3}, {1.0f, 1.0f + 0x1p-11f, 70000.0f}));
  ModelBuilder::attr(to.node("Cast"), "to", int64_t{10});
  const Tensor y = to.run1();
  ASSERT_EQ(y.dtype(), DType::kFloat16);
  EXPECT_EQ(y, f16({1.0f, 1.0f, 1e9f}));  // tie to even; overflow to inf

  OneNode from(13);
  from.in("x", f16({0.5f, -3.0f}));
  ModelBuilder::attr(from.node("Cast"), "to", int64_t{1});
  expect_floats(from.run1(), {0.5f, -3.0f}, 0.0f);
}

TEST(ElementTypes, CastLikeTakesTheSecondInputsType) {
  OneNode n(15);
  n.in("x", f32({2}, {0.25f, 2.0f})).in("like", Tensor(DType::kBFloat16, {1}));
  n.node("CastLike");
  const Tensor r = n.run1();
  ASSERT_EQ(r.dtype(), DType::kBFloat16);
  EXPECT_EQ(r.cast(DType::kFloat32).to_vector<float>(), (std::vector<float>{0.25f, 2.0f}));

  OneNode s(15);
  s.in("x", f32({2}, {0.5f, 1e-5f})).in("like", Tensor(DType::kString, {0}));
  s.node("CastLike");
  EXPECT_EQ(s.run1().to_vector<std::string>(), (std::vector<std::string>{"0.5", "1e-05"}));
}

TEST(ElementTypes, IdentityAndShapeCarryStrings) {
  const Tensor words = Tensor::from_vector<std::string>({2}, {"a", "b"});
  OneNode id;
  id.in("x", words).node("Identity");
  EXPECT_EQ(id.run1(), words);
  OneNode shape;
  shape.in("x", words).node("Shape");
  EXPECT_EQ(shape.run1().to_vector<int64_t>(), (std::vector<int64_t>{2}));
}

TEST(ElementTypes, NumericOperatorsRejectThemNamingTheNode) {
  struct Case {
    Tensor x;
    const char* type;
  };
  const Case cases[] = {{f16({1.0f}), "float16"},
                        {f32({1}, {1.0f}).cast(DType::kBFloat16), "bfloat16"},
                        {Tensor::from_vector<std::string>({1}, {"1"}), "string"}};
  for (const Case& c : cases) {
    for (const char* op : {"Relu", "Sqrt", "Transpose", "Flatten", "Softmax"}) {
      OneNode n;
      n.in("x", c.x).node(op);
      auto e = ref::Executor::create(n.b.model());
      ASSERT_TRUE(e.ok()) << e.error().what();  // the type is known; the kernel is never reached
      auto r = e->run(n.feeds);
      ASSERT_FALSE(r.ok()) << op << " ran on " << c.type;
      EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
      EXPECT_EQ(std::string(r.error().what()),
                "node 'n' (" + std::string(op) + "): input 'x' has data type " + c.type + ", which " + op +
                    " does not support (convert it with Cast first)");
    }
  }
  // A value made inside the graph counts too: Mul of a Cast's float16 output.
  ModelBuilder b;
  b.input("x", DType::kFloat32, {1}).output("y");
  ModelBuilder::attr(b.node("Cast", {"x"}, {"h"}, "to_half"), "to", int64_t{10});
  b.node("Mul", {"h", "h"}, {"y"}, "mul");
  auto e = ref::Executor::create(b.model());
  ASSERT_TRUE(e.ok()) << e.error().what();
  auto r = e->run({{"x", f32({1}, {2.0f})}});
  ASSERT_FALSE(r.ok());
  EXPECT_STREQ(r.error().what(),
               "node 'mul' (Mul): input 'h' has data type float16, which Mul does not support (convert it with "
               "Cast first)");
}

TEST(ElementTypes, UnknownCastTargetIsUnsupported) {
  OneNode n;
  n.in("x", f32({1}, {1.0f}));
  ModelBuilder::attr(n.node("Cast"), "to", int64_t{14});  // complex64
  const std::string msg = n.error();
  EXPECT_NE(msg.find("node 'n' (Cast): attribute 'to': data type 14 is not supported"), std::string::npos) << msg;

  OneNode bad;
  bad.in("x", Tensor::from_vector<std::string>({1}, {"one"}));
  ModelBuilder::attr(bad.node("Cast"), "to", int64_t{1});
  const std::string parse = bad.error();
  EXPECT_NE(parse.find("node 'n' (Cast): cast from string: element 0 'one' is not a number"), std::string::npos)
      << parse;
}

// The row-based broadcast (Add/Sub/Mul/Div) and Transpose kernels against an element-by-element
// evaluation of the ONNX definitions, over shapes that exercise every row kind: equal shapes,
// scalars, trailing and leading broadcast, [N, T, 1] statistics, size-1 axes in the middle, and
// every permutation of a rank-4 tensor with and without size-1 axes.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

Tensor random_tensor(const Shape& s, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  Tensor t(DType::kFloat32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

/// Offset in `in` (right-aligned to out, size-1 axes broadcast) of the output element at `idx`.
int64_t broadcast_offset(const Shape& in, const Shape& out, const std::vector<int64_t>& idx) {
  int64_t off = 0, stride = 1;
  for (int64_t d = static_cast<int64_t>(in.size()) - 1, o = static_cast<int64_t>(out.size()) - 1; d >= 0; --d, --o) {
    if (in[d] != 1) off += idx[o] * stride;
    stride *= in[d];
  }
  return off;
}

std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

}  // namespace

TEST(BroadcastRows, EveryRowKindMatchesTheElementwiseDefinition) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4, 5}, {3, 4, 5}}, {{3, 4, 5}, {}},        {{}, {3, 4, 5}},        {{3, 4, 5}, {5}},
      {{5}, {3, 4, 5}},       {{2, 7, 9}, {2, 7, 1}}, {{2, 7, 1}, {2, 7, 9}}, {{2, 1, 3}, {4, 1}},
      {{4, 1, 6}, {1, 5, 1}}, {{1, 1, 8}, {3, 1, 1}}, {{2, 3, 1, 5}, {3, 4, 1}}, {{6, 1}, {1, 1}},
      {{2, 1, 1, 4}, {2, 1, 1, 4}}, {{64, 300}, {300}}, {{3, 700}, {3, 1}}};
  std::mt19937 rng(3);
  for (const auto& [sa, sb] : cases) {
    const Tensor a = random_tensor(sa, rng), b = random_tensor(sb, rng);
    for (const std::string op : {"Add", "Sub", "Mul", "Div"}) {
      OneNode n;
      n.in("a", a).in("b", b);
      n.node(op);
      const Tensor y = n.run1();
      Shape out(std::max(sa.size(), sb.size()), 1);
      for (size_t d = 0; d < out.size(); ++d) {
        const int64_t da = d + sa.size() >= out.size() ? sa[d + sa.size() - out.size()] : 1;
        const int64_t db = d + sb.size() >= out.size() ? sb[d + sb.size() - out.size()] : 1;
        out[d] = std::max(da, db);
      }
      ASSERT_EQ(y.shape(), out) << op << " " << shape_str(sa) << " " << shape_str(sb);
      for (int64_t i = 0; i < y.numel(); ++i) {
        const auto idx = unravel(i, out);
        const float x = a.data<float>()[broadcast_offset(sa, out, idx)], z = b.data<float>()[broadcast_offset(sb, out, idx)];
        const float want = op == "Add" ? x + z : op == "Sub" ? x - z : op == "Mul" ? x * z : x / z;
        ASSERT_EQ(y.data<float>()[i], want) << op << " " << shape_str(sa) << " " << shape_str(sb) << " element " << i;
      }
    }
  }
}

TEST(BroadcastRows, TransposeEveryPermutationOfRankFour) {
  std::mt19937 rng(5);
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{2, 1, 4, 1}, Shape{1, 3, 1, 5}, Shape{3, 40, 2, 50}}) {
    const Tensor x = random_tensor(s, rng);
    std::vector<int64_t> perm = {0, 1, 2, 3};
    do {
      OneNode n;
      n.in("x", x);
      ModelBuilder::attr(n.node("Transpose"), "perm", perm);
      const Tensor y = n.run1();
      Shape out;
      for (int64_t p : perm) out.push_back(s[p]);
      ASSERT_EQ(y.shape(), out);
      for (int64_t i = 0; i < y.numel(); ++i) {
        const auto oi = unravel(i, out);
        std::vector<int64_t> ii(4);
        for (int k = 0; k < 4; ++k) ii[perm[k]] = oi[k];
        const int64_t src = ((ii[0] * s[1] + ii[1]) * s[2] + ii[2]) * s[3] + ii[3];
        ASSERT_EQ(y.data<float>()[i], x.data<float>()[src]) << shape_str(s) << " element " << i;
      }
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(BroadcastRows, InPlaceIntoAnIntermediateOfTheOutputShape) {
  // Relu's output is read only by the Sub, so the Sub may compute into its storage; with the
  // intermediate as either operand and a broadcast [N, T, 1] other operand.
  for (const bool first : {true, false}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {2, 3, 4});
    b.input("m", DType::kFloat32, {2, 3, 1});
    b.output("y");
    b.node("Relu", {"x"}, {"r"}, "relu");
    b.node("Sub", first ? std::vector<std::string>{"r", "m"} : std::vector<std::string>{"m", "r"}, {"y"}, "sub");
    std::mt19937 rng(7);
    const Tensor x = random_tensor({2, 3, 4}, rng), m = random_tensor({2, 3, 1}, rng);
    auto e = ref::Executor::create(b.model());
    ASSERT_TRUE(e.ok()) << e.error().what();
    auto r = e->run({{"x", x}, {"m", m}});
    ASSERT_TRUE(r.ok()) << r.error().what();
    const Tensor& y = (*r)["y"];
    ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
    for (int64_t i = 0; i < 24; ++i) {
      const float relu = std::max(x.data<float>()[i], 0.0f), mean = m.data<float>()[i / 4];
      EXPECT_EQ(y.data<float>()[i], first ? relu - mean : mean - relu) << i;
    }
  }
}

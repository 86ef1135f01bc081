// Training-mode Dropout and BatchNormalization (opset 12 / 14). Expected values worked out by hand:
// Dropout's mask comes from numpy's legacy generator seeded with the `seed` attribute, whose first
// draws after np.random.seed(0) are the widely published 0.5488135039, 0.7151893664, 0.6027633761,
// 0.5448831830.
#include <gtest/gtest.h>

#include <cmath>

#include "one_node.h"

using namespace anvil;
using namespace anvil::test;

namespace {

Tensor boolean(bool v) {
  Tensor t(DType::kBool, {});
  t.data<bool>()[0] = v;
  return t;
}

}  // namespace

TEST(TrainingMode, DropoutDrawsNumpysMaskAndScalesTheKeptValues) {
  OneNode n(13);
  n.in("x", f32({4}, {1, 2, 3, 4})).constant("ratio", f32({}, {0.6f})).constant("training", boolean(true));
  ModelBuilder::attr(n.node("Dropout", 2), "seed", int64_t{0});
  TensorMap out = n.run();
  // Draws 0.549 < 0.6 (dropped), 0.715, 0.603 (kept, x / 0.4), 0.545 (dropped).
  expect_floats(out["y0"], {0, 5, 7.5f, 0});
  const bool* mask = out["y1"].data<bool>();
  EXPECT_EQ(std::vector<bool>(mask, mask + 4), (std::vector<bool>{false, true, true, false}));
}

TEST(TrainingMode, DropoutWithRatioZeroOrInInferenceIsTheIdentity) {
  for (const bool training : {false, true}) {
    OneNode n(13);
    n.in("x", f32({3}, {1, -2, 3})).constant("ratio", f32({}, {training ? 0.0f : 0.9f}));
    n.constant("training", boolean(training));
    n.node("Dropout", 2);
    TensorMap out = n.run();
    expect_floats(out["y0"], {1, -2, 3});
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(out["y1"].data<bool>()[i]);
  }
}

TEST(TrainingMode, DropoutRejectsARatioOfOne) {
  OneNode n(13);
  n.in("x", f32({2}, {1, 2})).constant("ratio", f32({}, {1.0f})).constant("training", boolean(true));
  n.node("Dropout");
  EXPECT_NE(n.error().find("ratio must be in [0, 1)"), std::string::npos) << n.error();
}

TEST(TrainingMode, BatchNormUsesTheBatchStatisticsAndOutputsRunningOnes) {
  // N=2, C=1, L=2: x = 1 2 | 3 4, batch mean 2.5, population variance 1.25.
  OneNode n(15);
  n.in("x", f32({2, 1, 2}, {1, 2, 3, 4}))
      .constant("scale", f32({1}, {2}))
      .constant("B", f32({1}, {1}))
      .constant("mean", f32({1}, {0}))
      .constant("var", f32({1}, {1}));
  auto& node = n.node("BatchNormalization", 3);
  ModelBuilder::attr(node, "training_mode", int64_t{1});
  ModelBuilder::attr(node, "epsilon", 0.0f);
  ModelBuilder::attr(node, "momentum", 0.9f);
  TensorMap out = n.run();
  const float s = 2.0f / std::sqrt(1.25f);
  expect_floats(out["y0"], {1 - 1.5f * s, 1 - 0.5f * s, 1 + 0.5f * s, 1 + 1.5f * s});
  expect_floats(out["y1"], {0.9f * 0 + 0.1f * 2.5f});      // running mean
  expect_floats(out["y2"], {0.9f * 1 + 0.1f * 1.25f});     // running variance
}

TEST(TrainingMode, BatchNormStatisticsOutputsNeedTrainingModeAndOpset14) {
  auto bn = [](int64_t opset, bool training, int outputs) {
    OneNode n(opset);
    n.in("x", f32({1, 1, 2}, {1, 2}));
    for (const char* name : {"scale", "B", "mean", "var"}) n.constant(name, f32({1}, {1}));
    auto& node = n.node("BatchNormalization", outputs);
    if (training) ModelBuilder::attr(node, "training_mode", int64_t{1});
    return n.error();
  };
  EXPECT_NE(bn(13, true, 1).find("exists from opset 14"), std::string::npos) << bn(13, true, 1);
  EXPECT_NE(bn(15, false, 3).find("only in training mode"), std::string::npos) << bn(15, false, 3);
  EXPECT_EQ(bn(15, true, 3), "");
}

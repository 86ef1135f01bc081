// Two independent PEs: the firmware runs requests on both at once and the runtime spreads a
// batch-1 stream over them, so throughput in simulated time is close to twice one PE's.
#include <gtest/gtest.h>

#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::random_int8;

/// The conv layer's program with its conv repeated `repeats` times on the same SRAM data (the
/// output is that of one conv): PE time dominates the request, as in a deep network, while the
/// simulation stays cheap.
isa::Program repeated_conv(const ConvLayer& g, int repeats) {
  isa::Program p = g.program();
  const isa::Instruction conv = p.instructions.at(3), store = p.instructions.at(4);
  p.instructions.resize(3);
  for (int i = 0; i < repeats; ++i) p.instructions.push_back(conv);
  p.instructions.push_back(store);
  p.instructions.back().wait[1] = static_cast<uint32_t>(repeats);
  return p;
}

struct StreamResult {
  SessionStats stats;
  bool outputs_ok = true;
};

/// Streams `requests` batch-1 requests (queue depth 4) through a fresh device `spec`.
StreamResult stream(const std::string& spec, const ConvLayer& g, const isa::Program& p, int requests) {
  Device dev = Device::open(spec, hw::HwConfig::preset("warboy-2pe"));
  SessionOptions o;
  o.queue_depth = 4;
  Session s(dev, p, o);
  std::vector<TensorMap> inputs;
  for (int i = 0; i < requests; ++i)
    inputs.push_back({{"x", Tensor::from_vector<int8_t>({1, g.ic, g.h, g.w}, random_int8(g.ic * g.h * g.w, 70 + i))}});
  StreamResult r;
  int submitted = 0;
  for (; submitted < 4; ++submitted) s.submit(inputs[submitted], submitted);
  for (int done = 0; done < requests; ++done) {
    Request q = s.receive(60.0);
    const int k = std::any_cast<int>(q.context());
    r.outputs_ok &= q.outputs().at("y").to_vector<int8_t>() == g.expected(inputs[k].at("x").to_vector<int8_t>());
    if (submitted < requests) s.submit(inputs[submitted], submitted), ++submitted;
  }
  r.stats = s.stats();
  return r;
}

TEST(TwoPes, BatchOneStreamOnTwoIndependentPesHasAboutTwiceTheThroughputOfOne) {
  const ConvLayer g = ConvLayer::random(61, ConvLayer{});
  const isa::Program p = repeated_conv(g, 1500);
  const StreamResult one = stream("warboy(1)*1", g, p, 16), two = stream("warboy(2)*1", g, p, 16);
  EXPECT_TRUE(one.outputs_ok);
  EXPECT_TRUE(two.outputs_ok);
  EXPECT_EQ(one.stats.completed, 16u);
  EXPECT_EQ(two.stats.completed, 16u);
  EXPECT_EQ(one.stats.per_unit, (std::vector<uint64_t>{16}));
  ASSERT_EQ(two.stats.per_unit.size(), 2u);
  EXPECT_EQ(two.stats.per_unit[0] + two.stats.per_unit[1], 16u);
  EXPECT_GE(two.stats.per_unit[0], 6u);
  EXPECT_GE(two.stats.per_unit[1], 6u);
  const double speedup = two.stats.throughput_per_sim_s / one.stats.throughput_per_sim_s;
  std::printf("throughput: one PE %.0f/s, two PEs %.0f/s (simulated), x%.2f\n", one.stats.throughput_per_sim_s,
              two.stats.throughput_per_sim_s, speedup);
  EXPECT_GT(speedup, 1.6);
  EXPECT_LT(speedup, 2.05);
}

TEST(TwoPes, ASpecListSpreadsOverItsUnitsAndBothPesRun) {
  const ConvLayer g = ConvLayer::random(62, ConvLayer{});
  const StreamResult r = stream("npu0pe1,npu0pe0", g, repeated_conv(g, 50), 8);
  EXPECT_TRUE(r.outputs_ok);
  EXPECT_EQ(r.stats.per_unit[0] + r.stats.per_unit[1], 8u);
  EXPECT_GT(r.stats.per_unit[0], 0u);
  EXPECT_GT(r.stats.per_unit[1], 0u);
}

}  // namespace
}  // namespace anvil::rt

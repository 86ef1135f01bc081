// lower_qdq + run_int8 for Resize (kResize): every nearest mode and coordinate transformation and
// bilinear, against the float execution of the same QDQ model; serialization; refusals (host).
#include <gtest/gtest.h>

#include <random>

#include "int8_agreement_for_tests.h"
#include "resize_model_for_tests.h"

using namespace anvil;
using anvil::test::ActParams;
using anvil::test::calibrate;
using anvil::test::ModelBuilder;
using anvil::test::QdqBuilder;
using anvil::test::random_tensor;
using anvil::test::resize_model;
using anvil::test::ResizeCase;

namespace {

using Build = std::function<onnx::ModelProto(const ActParams&)>;

/// Largest difference between run_int8 and the float model (both in the output's int8 domain);
/// the model lowers to one kResize.
int64_t max_diff(const onnx::ModelProto& model, const Tensor& x, ref::Int8Graph* graph = nullptr) {
  ref::Int8Graph g;
  const int64_t worst = test::int8_agreement(model, {{"x", x}}, x.dim(0), &g).max_diff;
  EXPECT_EQ(g.ops.size(), 1u);
  EXPECT_EQ(g.ops.empty() ? ref::Int8OpKind::kHost : g.ops[0].kind, ref::Int8OpKind::kResize);
  if (graph) *graph = std::move(g);
  return worst;
}

/// Random N x C x H x W (odd sizes included) and the scale / size variants of one mode.
std::vector<ResizeCase> variants(std::mt19937& rng, const std::string& mode, const std::string& transform,
                                 const std::string& nearest_mode) {
  std::uniform_int_distribution<int64_t> nc(1, 3), hw(2, 9);
  std::vector<ResizeCase> out;
  const std::vector<std::vector<float>> scales = {{2.0f, 2.0f}, {1.5f, 1.7f}, {0.6f, 0.5f}, {3.0f, 0.75f}};
  for (const auto& s : scales) {
    ResizeCase c;
    c.in = {nc(rng), nc(rng), hw(rng), hw(rng)};
    c.mode = mode, c.transform = transform, c.nearest_mode = nearest_mode;
    c.scales = {1.0f, 1.0f, s[0], s[1]};
    out.push_back(c);
  }
  ResizeCase c;  // sizes: odd targets, one axis up and one down
  c.in = {nc(rng), nc(rng), hw(rng), hw(rng)};
  c.mode = mode, c.transform = transform, c.nearest_mode = nearest_mode;
  c.sizes = {c.in[0], c.in[1], 2 * c.in[2] + 1, std::max<int64_t>(1, c.in[3] - 1)};
  out.push_back(c);
  return out;
}

}  // namespace

TEST(Int8Resize, NearestInEveryModeEqualsTheFloatModelExactly) {
  std::mt19937 rng(11);
  uint32_t seed = 1;
  for (const char* transform : {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"})
    for (const char* nearest : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"})
      for (ResizeCase c : variants(rng, "nearest", transform, nearest)) {
        // tf_half_pixel_for_nn maps o to o + 0.5 even at scale 1, so rounding up moves a batch or
        // channel index by one: a resize of N / C, refused (below); single planes only here.
        const bool shifts = std::string(transform) == "tf_half_pixel_for_nn" && std::string(nearest).find("ceil") != std::string::npos;
        if (shifts) {
          c.in[0] = c.in[1] = 1;
          if (!c.sizes.empty()) c.sizes[0] = c.sizes[1] = 1;
        }
        const Build build = resize_model(c);
        const Tensor x = random_tensor(c.in, -3.0f, 2.0f, seed++);
        ActParams p = calibrate(build, {"x"}, {{"x", x}});
        p["y"] = p["x"];  // the anvil quantizer's shared parameters: nearest moves bytes exactly
        ref::Int8Graph g;
        EXPECT_EQ(max_diff(build(p), x, &g), 0) << transform << " " << nearest << " " << shape_str(c.in);
        for (const math::ResizeTap& t : g.ops[0].resize_rows) EXPECT_EQ(t.weight, 0);
      }
}

TEST(Int8Resize, BilinearWithinOneStepOfTheFloatModel) {
  std::mt19937 rng(12);
  uint32_t seed = 100;
  for (const char* transform : {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"})
    for (int64_t exclude : {0, 1})
      for (ResizeCase c : variants(rng, "linear", transform, "round_prefer_floor")) {
        c.exclude_outside = exclude;
        const Build build = resize_model(c);
        const Tensor x = random_tensor(c.in, -2.0f, 4.0f, seed++);
        ActParams p = calibrate(build, {"x"}, {{"x", x}});
        p["y"] = p["x"];
        // Q11 weights and one rounding against double interpolation and QuantizeLinear: at most
        // one step (common/requant.h, resize_point).
        EXPECT_LE(max_diff(build(p), x), 1) << transform << " exclude " << exclude << " " << shape_str(c.in);
      }
}

TEST(Int8Resize, DifferentOutputParametersAreRequantizedWithinOneStep) {
  // ONNX Runtime QDQ models may quantize the output with their own parameters.
  uint32_t seed = 200;
  for (const char* mode : {"nearest", "linear"}) {
    ResizeCase c;
    c.in = {2, 3, 5, 7};
    c.mode = mode;
    c.scales = {1.0f, 1.0f, 2.0f, 1.5f};
    const Build build = resize_model(c);
    const Tensor x = random_tensor(c.in, -1.0f, 3.0f, seed++);
    ActParams p = calibrate(build, {"x", "y"}, {{"x", x}});
    p["y"] = {p["x"].scale * 1.37f, p["x"].zero_point + 9};
    ref::Int8Graph g;
    EXPECT_LE(max_diff(build(p), x, &g), 1) << mode;
    const auto m = math::resize_multiplier(p["x"].scale, p["y"].scale);
    EXPECT_EQ(g.ops[0].multiplier.multiplier, m.multiplier);
    EXPECT_EQ(g.ops[0].multiplier.shift, m.shift);
  }
}

TEST(Int8Resize, Opset10And11Forms) {
  uint32_t seed = 300;
  for (int64_t opset : {10, 11})
    for (const char* mode : {"nearest", "linear"}) {
      ResizeCase c;
      c.in = {1, 2, 4, 5};
      c.mode = mode;
      c.opset = opset;
      c.transform = "asymmetric";
      c.scales = {1.0f, 1.0f, 0.5f, 2.4f};
      const Build build = resize_model(c);
      const Tensor x = random_tensor(c.in, -1.0f, 1.0f, seed++);
      ActParams p = calibrate(build, {"x"}, {{"x", x}});
      p["y"] = p["x"];
      EXPECT_LE(max_diff(build(p), x), std::string(mode) == "nearest" ? 0 : 1) << opset << " " << mode;
    }
}

TEST(Int8Resize, UnsupportedFormsAreRefusedNamingTheNodeAndGoToTheHost) {
  ResizeCase base;
  base.in = {1, 2, 4, 4};
  base.scales = {1.0f, 1.0f, 2.0f, 2.0f};
  std::vector<std::pair<ResizeCase, std::string>> refused;
  ResizeCase c = base;
  c.mode = "cubic";
  refused.push_back({c, "mode 'cubic'"});
  c = base;
  c.transform = "tf_crop_and_resize";
  refused.push_back({c, "tf_crop_and_resize"});
  c = base;
  c.scales = {1.0f, 2.0f, 2.0f, 2.0f};
  refused.push_back({c, "axis 1"});
  c = base;
  c.in = {2, 1, 4, 4};
  c.transform = "tf_half_pixel_for_nn";
  c.nearest_mode = "ceil";  // batch index o reads o + 1 at scale 1
  refused.push_back({c, "axis 0"});
  c = base;
  c.extra_attr = "antialias";
  refused.push_back({c, "antialias"});
  for (const auto& [rc, why] : refused) {
    const onnx::ModelProto m = resize_model(rc)(ActParams{{"x", {0.05f, 0}}, {"y", {0.05f, 0}}});
    auto g = ref::lower_qdq(m, rc.in[0]);
    ASSERT_FALSE(g.ok()) << why;
    EXPECT_EQ(g.error().code(), ErrorCode::kUnsupported) << g.error().what();
    EXPECT_NE(std::string(g.error().what()).find("'resize'"), std::string::npos) << g.error().what();
    EXPECT_NE(std::string(g.error().what()).find(why), std::string::npos) << g.error().what();
    ref::LowerOptions host;
    host.host_fallback = true;
    auto h = ref::lower_qdq(m, rc.in[0], host);
    ASSERT_TRUE(h.ok()) << h.error().what();
    ASSERT_EQ(h->ops.size(), 1u);
    EXPECT_EQ(h->ops[0].kind, ref::Int8OpKind::kHost);
  }
  // Scales computed at run time (a graph input): not a constant.
  const ActParams params{{"x", {0.05f, 0}}, {"y", {0.05f, 0}}};  // QdqBuilder keeps a reference
  QdqBuilder q(params);
  q.b.input("x", DType::kFloat32, {1, 2, 4, 4});
  q.b.input("s", DType::kFloat32, {4});
  q.b.node("Resize", {q.qdq("x"), "", "s"}, {"y"}, "resize");
  q.b.output(q.qdq("y"));
  auto g = ref::lower_qdq(q.b.model(), 1);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(std::string(g.error().what()).find("computed scales"), std::string::npos) << g.error().what();
}

TEST(Int8Resize, SerializedGraphRunsTheSameAndOlderVersionsAndBadTapsAreRejected) {
  ResizeCase c;
  c.in = {2, 2, 5, 3};
  c.mode = "linear";
  c.scales = {1.0f, 1.0f, 1.6f, 2.5f};
  const Build build = resize_model(c);
  const Tensor x = random_tensor(c.in, -1.0f, 1.0f, 400);
  ActParams p = calibrate(build, {"x"}, {{"x", x}});
  p["y"] = p["x"];
  const ref::Int8Graph g = ref::lower_qdq(build(p), 2).value();
  const std::string bytes = ref::serialize_int8_graph(g);
  const ref::Int8Graph back = ref::parse_int8_graph(bytes, "resize.ai8g").value();
  ASSERT_EQ(back.ops[0].kind, ref::Int8OpKind::kResize);
  ASSERT_EQ(back.ops[0].resize_cols.size(), g.ops[0].resize_cols.size());
  for (size_t i = 0; i < g.ops[0].resize_cols.size(); ++i) {
    EXPECT_EQ(back.ops[0].resize_cols[i].first, g.ops[0].resize_cols[i].first);
    EXPECT_EQ(back.ops[0].resize_cols[i].weight, g.ops[0].resize_cols[i].weight);
  }
  EXPECT_EQ(ref::serialize_int8_graph(back), bytes);
  const TensorMap in{{"x", ref::quantize_tensor(x, g.values[g.inputs[0]].q)}};
  EXPECT_TRUE(ref::run_int8(back, in).value().at("y_dq") == ref::run_int8(g, in).value().at("y_dq"));

  std::string v3 = bytes;
  v3[4] = 3;  // u32 version, little endian
  auto old = ref::parse_int8_graph(v3, "v3.ai8g");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), ErrorCode::kParseError);
  EXPECT_NE(std::string(old.error().what()).find("op 'resize': resize needs format version 4"), std::string::npos)
      << old.error().what();

  ref::Int8Graph bad = g;
  bad.ops[0].resize_rows[0].second = 5;  // input height 5: index 5 is outside
  auto b = ref::parse_int8_graph(ref::serialize_int8_graph(bad), "tap.ai8g");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(std::string(b.error().what()).find("resize 'resize'"), std::string::npos) << b.error().what();
  auto r = ref::run_int8(bad, in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  bad = g;
  bad.ops[0].resize_cols.pop_back();
  r = ref::run_int8(bad, in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.error().what()).find("column taps"), std::string::npos) << r.error().what();
}

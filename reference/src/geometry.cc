#include "geometry.h"

#include "anvil/common/status.h"
#include "attributes.h"

namespace anvil::ref {

Window2d window_geometry(const onnx::NodeProto& node, int64_t in_h, int64_t in_w, std::array<int64_t, 2> kernel,
                         bool ceil_mode) {
  Window2d g;
  g.kernel = kernel;
  auto pair = [&](const char* name) {
    const std::vector<int64_t> v = attr_ints(node, name, {1, 1});
    if (v.size() != 2) fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must have 2 values");
    if (v[0] < 1 || v[1] < 1) fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must be >= 1");
    return std::array<int64_t, 2>{v[0], v[1]};
  };
  g.strides = pair("strides");
  g.dilations = pair("dilations");
  if (kernel[0] < 1 || kernel[1] < 1) fail(ErrorCode::kInvalidArgument, "kernel size must be >= 1");
  const std::array<int64_t, 2> in{in_h, in_w};
  std::array<int64_t, 2> extent;  // dilated kernel extent
  for (int i = 0; i < 2; ++i) extent[i] = (kernel[i] - 1) * g.dilations[i] + 1;
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> pads = attr_ints(node, "pads", {0, 0, 0, 0});
    if (pads.size() != 4) fail(ErrorCode::kInvalidArgument, "attribute 'pads' must have 4 values");
    for (int i = 0; i < 4; ++i) {
      if (pads[i] < 0) fail(ErrorCode::kInvalidArgument, "attribute 'pads' must be >= 0");
      g.pads[i] = pads[i];  // ONNX order: h_begin, w_begin, h_end, w_end
    }
  } else if (auto_pad == "VALID") {
    // pads stay 0
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int i = 0; i < 2; ++i) {
      const int64_t out = (in[i] + g.strides[i] - 1) / g.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * g.strides[i] + extent[i] - in[i]);
      const int64_t small = total / 2;
      g.pads[i] = auto_pad == "SAME_UPPER" ? small : total - small;  // SAME_UPPER puts the extra pad at the end
      g.pads[i + 2] = total - g.pads[i];
    }
  } else {
    fail(ErrorCode::kInvalidArgument, "attribute 'auto_pad' has unknown value '" + auto_pad + "'");
  }
  for (int i = 0; i < 2; ++i) {
    const int64_t span = in[i] + g.pads[i] + g.pads[i + 2] - extent[i];
    if (span < 0)
      fail(ErrorCode::kInvalidArgument, "kernel extent " + std::to_string(extent[i]) + " exceeds padded input " +
                                            std::to_string(in[i] + g.pads[i] + g.pads[i + 2]));
    // ONNX: floor (or ceil with ceil_mode) of span / stride, plus one.
    g.out[i] = (ceil_mode ? (span + g.strides[i] - 1) / g.strides[i] : span / g.strides[i]) + 1;
  }
  return g;
}

}  // namespace anvil::ref

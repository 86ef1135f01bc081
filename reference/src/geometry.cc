#include "geometry.h"

#include "anvil/common/status.h"
#include "attributes.h"

namespace anvil::ref {

Window2d window_geometry(const onnx::NodeProto& node, int64_t in_h, int64_t in_w, std::array<int64_t, 2> kernel,
                         bool ceil_mode) {
  const WindowNd nd = window_geometry_nd(node, {in_h, in_w}, {kernel[0], kernel[1]}, ceil_mode);
  Window2d g;
  for (int i = 0; i < 2; ++i) {
    g.kernel[i] = nd.kernel[i];
    g.strides[i] = nd.strides[i];
    g.dilations[i] = nd.dilations[i];
    g.pads[i] = nd.pads_begin[i];  // top, left, bottom, right
    g.pads[i + 2] = nd.pads_end[i];
    g.out[i] = nd.out[i];
  }
  return g;
}

WindowNd window_geometry_nd(const onnx::NodeProto& node, const std::vector<int64_t>& in,
                            const std::vector<int64_t>& kernel, bool ceil_mode) {
  const size_t rank = in.size();
  WindowNd g;
  g.kernel = kernel;
  auto per_dim = [&](const char* name) {
    const std::vector<int64_t> v = attr_ints(node, name, std::vector<int64_t>(rank, 1));
    if (v.size() != rank)
      fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must have " + std::to_string(rank) +
                                            " values");
    for (int64_t x : v)
      if (x < 1) fail(ErrorCode::kInvalidArgument, std::string("attribute '") + name + "' must be >= 1");
    return v;
  };
  g.strides = per_dim("strides");
  g.dilations = per_dim("dilations");
  if (kernel.size() != rank)
    fail(ErrorCode::kInvalidArgument, "kernel has " + std::to_string(kernel.size()) + " spatial dimensions, input " +
                                          std::to_string(rank));
  std::vector<int64_t> extent(rank);  // dilated kernel extent
  for (size_t i = 0; i < rank; ++i) {
    if (kernel[i] < 1) fail(ErrorCode::kInvalidArgument, "kernel size must be >= 1");
    extent[i] = (kernel[i] - 1) * g.dilations[i] + 1;
  }
  g.pads_begin.assign(rank, 0);
  g.pads_end.assign(rank, 0);
  const std::string auto_pad = attr_string(node, "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    const std::vector<int64_t> pads = attr_ints(node, "pads", std::vector<int64_t>(2 * rank, 0));
    if (pads.size() != 2 * rank)
      fail(ErrorCode::kInvalidArgument, "attribute 'pads' must have " + std::to_string(2 * rank) + " values");
    for (size_t i = 0; i < rank; ++i) {
      if (pads[i] < 0 || pads[i + rank] < 0) fail(ErrorCode::kInvalidArgument, "attribute 'pads' must be >= 0");
      g.pads_begin[i] = pads[i];  // ONNX order: all begins, then all ends
      g.pads_end[i] = pads[i + rank];
    }
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < rank; ++i) {
      const int64_t out = (in[i] + g.strides[i] - 1) / g.strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * g.strides[i] + extent[i] - in[i]);
      const int64_t small = total / 2;
      g.pads_begin[i] = auto_pad == "SAME_UPPER" ? small : total - small;  // SAME_UPPER: extra pad at the end
      g.pads_end[i] = total - g.pads_begin[i];
    }
  } else if (auto_pad != "VALID") {
    fail(ErrorCode::kInvalidArgument, "attribute 'auto_pad' has unknown value '" + auto_pad + "'");
  }
  g.out.resize(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t padded = in[i] + g.pads_begin[i] + g.pads_end[i];
    if (padded < extent[i])
      fail(ErrorCode::kInvalidArgument, "kernel extent " + std::to_string(extent[i]) + " exceeds padded input " +
                                            std::to_string(padded));
    const int64_t span = padded - extent[i];
    g.out[i] = (ceil_mode ? (span + g.strides[i] - 1) / g.strides[i] : span / g.strides[i]) + 1;
  }
  return g;
}

}  // namespace anvil::ref

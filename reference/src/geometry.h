#pragma once
/// Geometry of 2-D sliding windows (Conv and pooling), shared by the float executor and the
/// QDQ lowering so both read pads/auto_pad/strides/dilations/ceil_mode the same way.
#include <onnx/onnx_pb.h>

#include <array>
#include <cstdint>
#include <vector>

namespace anvil::ref {

struct Window2d {
  std::array<int64_t, 2> kernel{1, 1}, strides{1, 1}, dilations{1, 1};
  std::array<int64_t, 4> pads{0, 0, 0, 0};  ///< top, left, bottom, right
  std::array<int64_t, 2> out{0, 0};         ///< output height, width
};

/// Reads strides, dilations, pads and auto_pad of `node` for an input of in_h x in_w and the given
/// kernel. ceil_mode rounds the output size up (pooling). Throws kInvalidArgument / kUnsupported
/// naming the attribute.
Window2d window_geometry(const onnx::NodeProto& node, int64_t in_h, int64_t in_w, std::array<int64_t, 2> kernel,
                         bool ceil_mode);

/// The same geometry for any number of spatial dimensions (1-D, 2-D, 3-D windows), for the
/// operators that run their own N-D loops (ConvInteger, QLinearConv); window_geometry is this for
/// two dimensions. Every vector has one value per spatial dimension; pads are split into begin and end.
struct WindowNd {
  std::vector<int64_t> kernel, strides, dilations, pads_begin, pads_end, out;
};

/// window_geometry for `in` spatial sizes and a kernel of the same length: attributes must have
/// that many values (pads twice as many). Throws kInvalidArgument naming the attribute.
WindowNd window_geometry_nd(const onnx::NodeProto& node, const std::vector<int64_t>& in,
                            const std::vector<int64_t>& kernel, bool ceil_mode);

}  // namespace anvil::ref

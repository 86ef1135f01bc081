#pragma once
/// The declared shape of the graph inputs a caller feeds: what the tools and the quantizer need to
/// batch data for a model (a fixed leading dimension is the only batch the model takes) and to give
/// the samples the shape the model expects.
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

namespace anvil {

struct InputShape {
  std::string name;
  bool has_shape = false;     ///< false: the model declares no shape (not even the rank)
  std::vector<int64_t> dims;  ///< -1 where a dimension is dynamic (symbolic or not given); 0 is a size

  /// The size of a fixed leading (batch) dimension, or 0 when it is dynamic or unknown. A model
  /// exported without a dynamic batch axis (e.g. [1, 1, 28, 28]) only runs on batches of this size.
  int64_t fixed_batch() const { return has_shape && !dims.empty() && dims[0] > 0 ? dims[0] : 0; }
  /// "[?, 1, 28, 28]"; "[unknown]" without a shape.
  std::string str() const;
};

/// The declared shape of one graph input (also what the reference executor checks a fed tensor
/// against).
InputShape input_shape(const onnx::ValueInfoProto& vi);

/// The graph inputs that are fed (initializers listed as inputs, IR version < 4, excluded), in
/// graph order, with their declared shapes.
std::vector<InputShape> fed_inputs(const onnx::ModelProto& model);

/// The fed input named `name`; kInvalidArgument naming it when the model has no such input.
InputShape fed_input(const onnx::ModelProto& model, const std::string& name);

}  // namespace anvil

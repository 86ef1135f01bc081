#pragma once
/// The integer program a quantized (QDQ) ONNX model denotes, and its reference execution.
///
/// lower_qdq() recognises the QDQ patterns the quantizer emits (and ONNX Runtime's QDQ format):
///   DQ(x) , DQ(W int8 per-channel) , DQ(b int32) -> Conv|Gemm|MatMul [-> Relu|Clip] -> Q
///   DQ(a), DQ(b) -> Add [-> Relu|Clip] -> Q
///   DQ(a), DQ(b) -> Add|Sub|Mul [-> Relu|Clip] -> Q  (numpy broadcasting; either operand may be a
///                                        DQ of a constant int8 tensor, for Sub only the second)
///   DQ(x) -> MaxPool|AveragePool|GlobalAveragePool -> Q
///   DQ(x) -> Relu|Clip -> Q                       (standalone activation)
///   DQ(x) -> Sigmoid|Tanh|HardSigmoid|HardSwish|LeakyRelu -> Q          (lookup table)
///   DQ(x) -> Sigmoid|HardSigmoid -> Q -> DQ -> Mul(DQ(x), .) -> Q      (SiLU / hard swish as the
///                                        quantizer emits them: one lookup table, see make_lut)
///   DQ(x) -> float Add|Sub|Mul|Div|Pow|Sqrt|Erf nodes -> Q computing a function of x alone, from x,
///                                        each other's values and one-element float constants
///                                        (ref::unary_function_nodes: GELU, attention's Q / sqrt(d),
///                                        as the quantizer leaves them float): one lookup table of
///                                        the nodes' float arithmetic, run by the Executor on the
///                                        256 values
///   DQ(a), DQ(b) -> MatMul [-> Relu|Clip] -> Q    (two activations: kMatMul)
///   DQ(x) -> Softmax -> Q                         (integer softmax, math::softmax_row)
///   Flatten / Reshape / Squeeze / Unsqueeze on quantized values  (same bytes, new shape)
///   DQ(x) -> Transpose|Slice|Pad(constant, edge, reflect) -> Q, DQ(x) -> Split -> Q each, DQ(a), DQ(b).. -> Concat -> Q
///   DQ(x), DQ(W per-channel axis 1), DQ(b) -> ConvTranspose [-> Relu|Clip] -> Q (1-D, 2-D: a
///                                        zero-inserting kPad + a stride-1 kConv [+ a cropping kSlice])
///                                                  (data movement, requantizing where scales differ)
///   DQ(x) -> Resize(nearest|linear over the last two axes, constant scales or sizes) -> Q
///                                                  (kResize, math::resize_plane)
/// and turns each into one Int8Op whose arithmetic is fully integer: int32 accumulation and
/// math::requantize (common/requant.h). The compiler lowers the same Int8Graph to the ISA, so
/// run_int8() here is the golden model the hardware model is checked against bit for bit.
#include <onnx/onnx_pb.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "anvil/common/requant.h"
#include "anvil/common/status.h"
#include "anvil/common/tensor.h"
#include "anvil/reference/executor.h"

namespace anvil::ref {

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

/// A tensor of the integer graph: an int8 value, or a host value (see dtype).
struct Int8Value {
  std::string name;  ///< the ONNX tensor name (the quantized value's name)
  Shape shape;       ///< concrete, batch included
  QuantParams q;
  /// int8, except a host value: an output of a kHost op that is read unquantized (a float, an
  /// int64 shape) by later kHost ops or is an unquantized graph output; only kHost ops read or
  /// write host values, and their `q` is unused.
  DType dtype = DType::kInt8;
};

enum class Int8OpKind {
  kConv,     ///< Conv, and Gemm/MatMul with constant weights as a 1x1 conv over N x K x 1 x 1
  kAdd,      ///< elementwise add with numpy broadcasting, math::AddParams (see Int8Op::weight)
  kMaxPool,
  kAvgPool,  ///< AveragePool and GlobalAveragePool
  kRequant,  ///< scale change and/or clamp (standalone Relu/Clip)
  kReshape,  ///< Flatten/Reshape: same bytes, new shape
  kLut,      ///< elementwise lookup: out = lut[in + 128] (nonlinear activations, see make_lut)
  kHost,     ///< a region of the QDQ model run as float ONNX by the reference Executor (host fallback)
  // Data movement. Each output element is an input element, moved as it is when the input's
  // QuantParams equal the output's, else math::requantize(x - in_zp, multipliers[i], out_zp, -128,
  // 127) with multipliers[i] = in_scale / out_scale of input i (ONNX Runtime QDQ models).
  kTranspose = 8,  ///< out[i] = in[j] with j[perm[k]] = i[k]
  kSlice = 9,      ///< out[i] = in[starts + i * steps] per axis (Slice; Split gives one kSlice per output)
  kConcat = 10,    ///< inputs one after another along `axis`
  kPad = 11,       ///< Pad (Int8Op::pad_mode): constant: out = pad_value, then
                   ///< out[pad_begin + i * (interior + 1)] = in[i] (interior: ConvTranspose's zero
                   ///< insertion); edge / reflect: out[i] = in[clamp / mirror(i - pad_begin)]
  kResize = 12,    ///< Resize (nearest, bilinear) of the last two axes, math::resize_plane per plane
  kMul = 13,  ///< elementwise multiply with numpy broadcasting, math::MulParams (Int8Op::mul)
  kSub = 14,  ///< elementwise a - b with numpy broadcasting, math::AddParams (math::sub_int8)
  kMatMul = 15,   ///< MatMul of two int8 activations [..., M, K] x [..., K, N] (batch dims equal or broadcast)
  kSoftmax = 16,  ///< Softmax over `axis`, math::softmax_row with `softmax_table`
};
const char* int8_op_name(Int8OpKind k);

/// ONNX Pad's modes on the NPU (Int8Op::pad_mode; the values are serialized).
enum class PadMode : int32_t { kConstant = 0, kEdge = 1, kReflect = 2 };

struct Int8Op {
  Int8OpKind kind;
  std::string node;          ///< name of the ONNX node the op came from (errors, reports)
  std::vector<int> inputs;   ///< Int8Value indices
  int output = -1;

  // kConv: weight int8 O x I/groups x KH x KW (zero point 0), bias int32 [O],
  // one multiplier per output channel = in_scale * w_scale[o] / out_scale (data movement: one per input).
  Tensor weight, bias;
  std::vector<math::QuantizedMultiplier> multipliers;
  int groups = 1;
  // kConv and pooling geometry.
  std::array<int, 2> kernel{1, 1}, strides{1, 1}, dilations{1, 1};
  std::array<int, 4> pads{0, 0, 0, 0};  ///< top, left, bottom, right
  bool count_include_pad = false;       ///< kAvgPool
  // kAdd, kSub. kAdd, kSub and kMul broadcast their operands to the output's shape (numpy rules);
  // with one input, the second operand is the int8 constant `weight` (its quantization folded
  // into the params), e.g. a LayerNorm gamma.
  math::AddParams add;
  // kAvgPool (window multiplier, count = kernel area) and kRequant (scale ratio).
  math::QuantizedMultiplier multiplier;
  // Fused activation clamp, in the output's int8 domain (kConv, kAdd, kRequant, pooling).
  int32_t act_min = -128, act_max = 127;
  // kLut: the output byte of every input byte, indexed by input + 128 (built by make_lut).
  std::array<int8_t, 256> lut{};
  // kHost (only with LowerOptions::host_fallback): a node no integer pattern takes, with the
  // DequantizeLinear nodes that feed it and the QuantizeLinear nodes that consume it, as one ONNX
  // sub-model whose graph inputs and outputs are the values `inputs` and `host_outputs` (by value
  // name; int8 values and host values). run_int8 runs it with ref::Executor: exactly the float
  // QDQ semantics.
  std::string host_model;                ///< the sub-model, a serialized onnx::ModelProto
  std::shared_ptr<const Executor> host;  ///< host_model prepared (shared between copies)
  std::vector<int> host_outputs;         ///< every output value; output == host_outputs[0]
  std::vector<std::string> host_nodes;   ///< the op's compute node (reports)
  std::string host_reason;               ///< why: the node's refusal
  // Data movement (kTranspose, kSlice, kConcat, kPad); `multipliers` holds one per input (see
  // Int8OpKind). Shapes are the values' shapes; parameters cover every axis of the input.
  std::vector<int64_t> perm;            ///< kTranspose: output axis k is input axis perm[k]
  std::vector<int64_t> starts, steps;   ///< kSlice: first input index and step (nonzero) per axis
  int64_t axis = 0;                     ///< kConcat; kSoftmax (below)
  std::vector<int64_t> pad_begin;       ///< kPad: elements added before each axis (>= 0; after: from the shapes)
  int32_t pad_value = 0;                ///< kPad: the border, int8 in the output's quantization
  // kMul (fused activation clamp included, as math::AddParams does for kAdd).
  math::MulParams mul;
  // kMatMul: acc = sum_k (a - a_zp) * (b - b_zp), out = requantize(acc, multiplier = a_scale *
  // b_scale / out_scale, out_zp, act_min, act_max); the zero points are the input values'.
  // kSoftmax: the axis (>= 0, < rank) and math::make_softmax_table(input scale); `multiplier` is
  // math::softmax_output_multiplier(output scale).
  math::SoftmaxTable softmax_table{};
  // kSub with one input: true when the constant `weight` is the first operand (a = weight, b =
  // inputs[0]: constant - x, `add` built with the constant's parameters as a's); false: x - weight.
  bool constant_first = false;
  // kPad (AI8G version 4). kConstant with pad_interior: `pad_interior[k]` pad_value elements
  // between neighbours of axis k (empty: none), so out[pad_begin + i * (pad_interior + 1)] = in[i]
  // (ConvTranspose = this zero insertion + a stride-1 kConv). kEdge: out[i] = in[clamp(i -
  // pad_begin, 0, dim - 1)] per axis; kReflect: i - pad_begin mirrored about the first and last
  // element (without repeating them), which needs both pads of an axis < its size. Edge and
  // reflect take no interior and no pad_value.
  PadMode pad_mode = PadMode::kConstant;
  std::vector<int64_t> pad_interior;
  // kResize: the taps of every output row (axis rank - 2) and column (axis rank - 1), from the
  // float Resize's own coordinates (one tap per output index, Q11 weights); `multiplier` is
  // math::resize_multiplier(in_scale, out_scale). The leading axes are not resized.
  std::vector<math::ResizeTap> resize_rows, resize_cols;
};

struct Int8Graph {
  std::vector<Int8Value> values;
  std::vector<Int8Op> ops;  ///< topological order
  /// Graph inputs: the host quantizes the float input with the value's QuantParams
  /// (math::quantize_float). `input_names` are the float ONNX input names, in order.
  std::vector<int> inputs, outputs;
  std::vector<std::string> input_names, output_names;  ///< the float ONNX graph's I/O names
};

/// Builds the integer graph of a QDQ model for a concrete batch size. Errors name the node and
/// operator (kUnsupported) or the malformed pattern (kInvalidArgument).
Expected<Int8Graph> lower_qdq(const onnx::ModelProto& model, int64_t batch);

struct LowerOptions {
  /// Instead of failing on a node no pattern takes (an operator without integer lowering, or a
  /// pattern refused for its shapes or parameters), make the node a kHost op: it reads the int8
  /// values its DequantizeLinear inputs dequantize and other kHost ops' outputs, and writes the
  /// int8 outputs of the QuantizeLinear nodes that consume it and, where a node reads its output
  /// unquantized or the output is a graph output, that output as a host value (Int8Value::dtype;
  /// a graph output then stays float). A node nothing reads is dropped. Still errors: a kHost op
  /// that reads a float graph input, and malformed Q/DQ nodes.
  bool host_fallback = false;
  /// Constant-folds static values for the concrete batch: a Shape/Size of a value whose shape is
  /// known, and shape arithmetic (Gather, Unsqueeze, Concat, Cast, Slice, Add, Mul, Div, Where,
  /// ConstantOfShape, Range, ...) whose inputs are all constants, run once with ref::Executor.
  /// The folded nodes make no op; their consumers see constants (a Reshape's shape, a Slice's
  /// starts and ends), so those lower to integer ops. A fold that fails is an error naming the node.
  bool fold_shapes = true;
};
Expected<Int8Graph> lower_qdq(const onnx::ModelProto& model, int64_t batch, const LowerOptions& options);

/// The values an op writes: host_outputs for kHost, else {output}.
std::vector<int> op_outputs(const Int8Op& op);

/// A self-contained byte encoding of an integer graph (deterministic: equal graphs give equal
/// bytes), used for the host segments of a partitioned program. parse_int8_graph rebuilds the
/// graph (kHost ops prepared again); `what` names the source in its kParseError messages.
std::string serialize_int8_graph(const Int8Graph& graph);
Expected<Int8Graph> parse_int8_graph(const std::string& bytes, const std::string& what);

/// Runs the integer graph: int8 inputs (by float input name, shapes as values[inputs[i]]) to
/// int8 outputs (by float output name). Inputs and outputs that are host values (a sub-graph's
/// boundary, an unquantized graph output) have their value's dtype.
Expected<TensorMap> run_int8(const Int8Graph& graph, const TensorMap& int8_inputs);

/// The 256-entry table of an elementwise float function f between int8 values with parameters
/// `in` and `out`: lut[q + 128] = math::quantize_float(f(math::dequantize(q, in)), out) for every
/// q in [-128, 127], i.e. exactly DQ -> f -> Q of the float graph. lower_qdq builds every kLut
/// table here; the compiler and the hardware model copy the bytes and never evaluate f.
std::array<int8_t, 256> make_lut(const std::function<float(float)>& f, QuantParams in, QuantParams out);

/// The geometry of a kMatMul: `batch` products of an M x K and a K x N matrix, each operand's
/// matrices `a_step` / `b_step` elements apart (0: the operand has no batch dimensions, or only
/// ones, and is broadcast to every product). `out` = the broadcast batch dimensions + [M, N].
/// Product p (row-major over the broadcast batch dimensions) multiplies A's matrix a_index[p] by
/// B's matrix b_index[p]; when both operands' batch dimensions equal the broadcast ones or are all
/// ones, that is p or 0 (a_step / b_step alone describe it, `cross` is false); when the batch
/// dimensions broadcast across both operands (e.g. [2,1] x [1,3]) `cross` is true.
struct MatMulDims {
  int64_t batch = 1, m = 0, k = 0, n = 0, a_step = 0, b_step = 0;
  Shape out;
  std::vector<int64_t> a_index, b_index;  ///< per product; the matrix at a_index[p] * M * K (B: * K * N)
  bool cross = false;
};
/// Checks and flattens A [..., M, K] x B [..., K, N]: both ranks >= 2 (else kUnsupported), equal K
/// and numpy-broadcastable batch dimensions (else kInvalidArgument).
MatMulDims matmul_dims(const Shape& a, const Shape& b);

/// The geometry of a kResize: `planes` (product of the leading axes) planes of in_h x in_w to
/// out_h x out_w. Checks the shapes (rank >= 2, equal leading axes) and the op's taps (one per
/// output row / column, math::resize_taps_valid); kInvalidArgument naming the node otherwise.
struct ResizeDims {
  int64_t planes = 1, in_h = 1, in_w = 1, out_h = 1, out_w = 1;
};
ResizeDims resize_dims(const Int8Op& op, const Shape& in, const Shape& out);

/// Host-side conversions at the graph boundary (math::quantize_float / math::dequantize).
Tensor quantize_tensor(const Tensor& f32, QuantParams q);
Tensor dequantize_tensor(const Tensor& i8, QuantParams q);

}  // namespace anvil::ref

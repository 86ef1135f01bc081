#pragma once
/// The quantizer: FP32 ONNX -> QDQ ONNX (post-training static quantization, TFLite int8 spec).
///
/// Flow (each step usable on its own): optimize() -> calibrate() -> quantize(). quantize_model()
/// chains them. Activations are int8 per tensor (asymmetric, or symmetric for the *_SYM methods);
/// weights are int8 per output channel, symmetric in [-127, 127]; biases are int32 with
/// scale = input_scale * weight_scale[c]. The QDQ model is what anvil::ref::lower_qdq lowers.
#include <onnx/onnx_pb.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "anvil/common/status.h"
#include "anvil/common/tensor.h"

namespace anvil::quant {

/// How an activation's range is chosen from its calibration statistics (FuriosaAI SDK names).
enum class Method {
  kMinMaxAsym, kMinMaxSym, kEntropyAsym, kEntropySym, kPercentileAsym, kPercentileSym,
  kSqnrAsym, kSqnrSym, kMseAsym, kMseSym
};
/// "MIN_MAX_ASYM", "MIN_MAX_SYM", ...
const char* method_name(Method method);
/// Inverse of method_name (exact, upper case); throws Error(kInvalidArgument) listing valid names.
Method method_from_name(const std::string& name);

/// A real-valued range [min, max]; ranges used for quantization always contain 0.
struct Range {
  float min = 0.0f, max = 0.0f;
};

/// Graph optimisation before calibration: the passes listed in quantizer/src/passes.def, in order
/// (opset upgrade to 13, Constant nodes and constant subgraphs to initializers, Identity/Dropout
/// removal, BatchNormalization folding into Conv, Gemm and MatMul, dead initializer removal, shape
/// inference). Throws Error naming the node on a malformed graph.
onnx::ModelProto optimize(const onnx::ModelProto& model);

/// The first QuantizeLinear or DequantizeLinear node of the model's graph; nullptr when it has
/// none. A model with one is already quantized: quantize() refuses it.
const onnx::NodeProto* first_qdq_node(const onnx::ModelProto& model);

/// Bins of TensorStats::histogram.
constexpr int kHistogramBins = 4096;

/// Per-tensor statistics of one calibration run.
struct TensorStats {
  float min = 0.0f, max = 0.0f;  ///< observed extremes (not yet widened to contain 0)
  int64_t count = 0;             ///< number of values observed
  /// kHistogramBins counts over [-h, h], h = histogram_half_width (bin i covers [-h + i w,
  /// -h + (i+1) w), w = 2h / kHistogramBins; 0 is the edge between the two middle bins, so either
  /// half is the histogram of |x| for one sign). Empty for an all-zero tensor.
  std::vector<int64_t> histogram;
  /// h: the smallest kHistogramBins/2 * 2^e strictly above max(|min|, |max|), so the data's own
  /// range spans more than kHistogramBins / 2 bins. The grid depends only on the extremes, not on
  /// the order or batching of the values (quantizer/src/histogram.h).
  float histogram_half_width = 0.0f;
  /// Mean of each channel (axis `channel_axis`) of a tensor of rank >= 2 over all samples and
  /// positions, and the number of values behind each mean; what bias correction needs. Recorded by
  /// calibrate() only for the data input (input 0) of a Conv or Gemm (axis 1) and of a MatMul with a
  /// constant 2-D weight (the last axis, the one the weight reduces), the tensors bias correction
  /// reads; empty for other tensors and for rank < 2, and channel_samples = -1 when the channel
  /// axis changed size between batches (not a channel axis).
  std::vector<double> channel_mean;
  int64_t channel_samples = 0;
  int channel_axis = 1;  ///< 1, or -1: the last axis
};

/// Everything the range methods need, for every float tensor the FP32 model produces.
struct Calibration {
  std::map<std::string, TensorStats> tensors;  ///< by ONNX tensor name
  /// The inputs calibrate() observed: all it was given, or the whole batches of a fixed batch.
  /// Not part of the JSON (0 after from_json).
  int64_t samples = 0;

  /// {"format": "anvil-calibration", "version": 1,
  ///  "tensors": {name: {"min", "max", "count", "histogram": [kHistogramBins counts],
  ///                     "histogram_half_width"}}} (a missing half-width reads as max(|min|, |max|))
  nlohmann::json to_json() const;
  /// Inverse of to_json; throws Error(kParseError) naming the tensor or field that is wrong.
  static Calibration from_json(const nlohmann::json& j);
  /// The range of every tensor for `method`, each containing 0; *_SYM ranges are [-a, a], or [0, a]
  /// for an all-non-negative tensor. MIN_MAX: the observed extremes. PERCENTILE: the `percentile`
  /// (in (0, 100]) of the values (ASYM: (100 - p)/2 % cut from each tail; SYM: of |x|). ENTROPY, MSE,
  /// SQNR: the clipping range, searched on the histogram, minimising KL divergence (TensorRT),
  /// the mean squared error, or maximising SQNR with clipping noise weighted 3x (AIMET). The formulas
  /// are in quantizer/src/range_methods.h. Throws Error(kInvalidArgument) for a bad percentile or
  /// a histogram method on statistics without histograms.
  std::map<std::string, Range> ranges(Method method, float percentile = 99.99f) const;
};

/// Where calibrate()'s time went: the executor runs (wall time), and the time spent recording the
/// statistics (summarize, histograms, channel means), summed over the threads that record them:
/// Conv chains hand their values over chunk by chunk from both threads at once, and whole values
/// are recorded in tasks beside the model, so the statistics overlap the model and statistics_s is
/// thread time, not a part of pass_s.
struct CalibrationTime {
  double pass_s = 0.0;        ///< wall time of every Executor::run over the inputs, statistics included
  double statistics_s = 0.0;  ///< thread time recording the statistics
};

/// Runs the (optimized) FP32 model on `inputs` (N x ..., float32, fed to its single graph input in
/// batches of up to 64 images and 8 MiB; when that input has a fixed leading dimension B, as a
/// model exported without a dynamic batch axis has, in batches of exactly B over the first
/// N - N % B inputs, with a warning when some are left out, and kInvalidArgument for N < B; the
/// statistics do not depend on the batching) through the reference executor ONCE and records every
/// float tensor it produces: min/max, count and a histogram that grows (pairwise merge of bins, no
/// count lost) when a later batch widens the range; everything all ten methods need. The executor keeps its
/// fast paths (ref::RunOptions::observe_fast_paths), so a Conv/Gemm output read only by a Relu/Clip
/// fused into it is not recorded (quantize() gives that pair the activation's range), nor are the
/// values inside a LayerNorm written out as nodes (quantize() keeps it float as one operator).
/// Throws Error: kInvalidArgument for a model without exactly one input or a wrong input, and
/// naming the tensor when a value is NaN or infinite. `time`, when given, receives the time split.
Calibration calibrate(const onnx::ModelProto& optimized, const Tensor& inputs, bool show_progress,
                      CalibrationTime* time = nullptr);

struct QuantizeOptions {
  Method method = Method::kMinMaxAsym;
  float percentile = 99.99f;  ///< for the PERCENTILE methods
  /// Bias correction (beyond the FuriosaAI suite; Nagel et al., "Data-Free Quantization", sec. 4.2,
  /// with the input means measured in calibration instead of derived from BatchNorm): for each
  /// Conv/Gemm with a constant weight W and bias b, and each MatMul by a constant weight with its
  /// bias Add (nn.Linear on a 3-D input), the mean shift that weight rounding causes,
  /// E[(Wq - W) x]_o = sum_{i,k} (Wq - W)[o,i,k] * mean(x_i) (zero padding ignored), is subtracted
  /// from b before b is quantized. Needs the calibration statistics (TensorStats::channel_mean).
  bool bias_correction = false;
  /// Nodes without an int8 form (kQuantizable in quantizer/src/qdq.cc: e.g. Erf, Div, Sqrt, Pow,
  /// ReduceMean) compute in float. By default a tensor passes between two such nodes as float: Q -> DQ
  /// sits only where a float node's output leaves the float region (read by a quantized node, or a
  /// graph output), and float readers always take the float value (as PyTorch FX keeps LayerNorm and
  /// GELU in float). true: the earlier rule, Q -> DQ after every float activation, read by every node,
  /// except the values inside a LayerNorm written out as nodes (one operator; calibration does not
  /// observe them). Models without float nodes are the same either way.
  bool qdq_between_float_nodes = false;
  /// Beyond the list of quantized operators (off by default): an Add or Mul of a constant
  /// whose other operand is a float node's output stays float as well, so the float region grows
  /// over it (a decomposed LayerNorm's "+ eps", "* gamma", "+ beta"; GELU's "+ 1"), and is reported
  /// as a float node. PyTorch FX likewise quantizes LayerNorm only at its input and output.
  bool extend_float_regions = false;
  /// Beyond the TFLite spec (off by default): an Add of two int8 operands whose output a float node
  /// reads (a transformer's residual Add before its LayerNorm, which has no int8 form) computes in
  /// float on the DequantizeLinear outputs of its operands. Its float readers read that exact sum
  /// instead of the sum rounded to the Add's output grid (a LayerNorm divides by each token's
  /// spread, much smaller than the range that grid must cover, so the rounding is amplified); its
  /// int8 readers read Q -> DQ of it, the value the int8 Add gives (QuantizeLinear of the same sum).
  /// The integer lowering runs such an Add with its float readers on the host. MatMul bias Adds
  /// are left alone. Each such Add is reported among the float nodes ("...: float, on its int8
  /// operands, for its float readers").
  bool float_residual_sums = false;
  /// Nodes to keep in float, like ONNX Runtime's nodes_to_exclude but as a pattern: every node whose
  /// name contains a match of this ECMAScript regular expression (std::regex_search) computes in float
  /// with float weights, whatever its operator, and is reported as a float node. Empty: none. An
  /// invalid pattern, or one that matches no node, is a kInvalidArgument error naming the pattern.
  /// (PyTorch FX, for instance, keeps nn.MultiheadAttention in float: "/att/" on the shared vit.)
  /// A Relu/Clip fused into an excluded Conv/Gemm whose output calibration did not observe (the
  /// FP32 executor runs the pair as one kernel) stays float with it, also reported.
  std::string exclude_nodes;
};

/// Inserts QuantizeLinear/DequantizeLinear (opset 13) per the TFLite int8 spec into an optimized
/// model. The result keeps the graph's input/output names and float types (input -> Q -> DQ ...,
/// ... -> Q -> DQ -> output), the dynamic batch dimension, and passes the ONNX checker.
/// Nodes it cannot quantize stay float (DQ before, Q after the float region they form, see
/// QuantizeOptions::qdq_between_float_nodes); their "name (OpType)" are logged at
/// info level and, when `float_nodes` is given, returned there.
Expected<onnx::ModelProto> quantize(const onnx::ModelProto& optimized, const Calibration& calib,
                                    const QuantizeOptions& options,
                                    std::vector<std::string>* float_nodes = nullptr);

/// The same, from ranges already chosen (Calibration::ranges(options.method, options.percentile)),
/// so that a caller can time or reuse the range search; options.method still decides the
/// symmetric/asymmetric activation grid. A tensor without a range stays float.
/// `stats` (the calibration the ranges came from) is needed only for options.bias_correction
/// (Error kInvalidArgument without it).
Expected<onnx::ModelProto> quantize(const onnx::ModelProto& optimized, const std::map<std::string, Range>& ranges,
                                    const QuantizeOptions& options,
                                    std::vector<std::string>* float_nodes = nullptr,
                                    const Calibration* stats = nullptr);

/// Per-tensor choice of method (beyond the FuriosaAI suite). Every candidate assignment is scored
/// by the output SQNR of its QDQ model, run in float by the reference executor (fake quantization),
/// against the FP32 model on the first `samples` calibration inputs: SQNR = 10 log10(sum f^2 /
/// sum (f - q)^2) over all elements of all graph outputs.
struct TensorSearchOptions {
  std::vector<Method> candidates;  ///< the methods whose ranges are candidates; empty: all ten
  /// The options of every scored model and of the model the caller then writes, but for the
  /// method: quantize.percentile for the PERCENTILE candidates, bias correction, and the nodes
  /// kept in float (exclude_nodes, extend_float_regions), whose tensors are not searched.
  /// quantize.method is ignored (the search chooses the grid).
  QuantizeOptions quantize;
  /// Scoring inputs: the first N of the calibration inputs. A model whose input has a fixed batch
  /// B is scored on whole batches: the scoring and held-out sets are cut to multiples of B (a
  /// warning says so), and a set smaller than B is kInvalidArgument.
  int64_t samples = 64;
  /// Held-out check (0: none): inputs [samples, samples + holdout) of the calibration inputs. A
  /// change the scoring inputs accept is kept only if it raises the held-out SQNR as well, so
  /// that the search does not fit the noise of a small scoring set.
  int64_t holdout = 0;
};
struct TensorChoice {
  std::string tensor;
  Method method;     ///< the candidate whose range the tensor took (the first of equal ones)
  Range range;
  double sqnr_db;    ///< the model's scoring SQNR right after this choice
  double holdout_db; ///< its held-out SQNR (NaN without TensorSearchOptions::holdout)
};
struct TensorSearchResult {
  /// Quantize with these ranges and QuantizeOptions::method = grid (the grid is the start
  /// method's, symmetric or not, for every tensor).
  std::map<std::string, Range> ranges;
  Method grid = Method::kMinMaxAsym;
  std::vector<std::pair<Method, double>> method_sqnr_db;  ///< each candidate alone, scoring SQNR
  double start_sqnr_db = 0.0;                             ///< the best of those (the start)
  double sqnr_db = 0.0;                                   ///< after the search (>= start)
  std::vector<TensorChoice> choices;                      ///< tensors whose range changed
  double start_holdout_db = 0.0, holdout_db = 0.0;        ///< held-out SQNR at the start, after (NaN: none)
  std::vector<TensorChoice> rejected;  ///< changes the scoring inputs took and the held-out inputs refused
  int64_t evaluations = 0;                                ///< QDQ models built and scored
  /// The scoring and held-out inputs used: those asked for, cut to whole batches of a fixed batch.
  int64_t samples = 0, holdout = 0;
};
/// Starts from the candidate method with the best scoring SQNR, then visits the calibrated
/// activations in topological order and gives each the candidate range (of the same calibration)
/// that maximises the scoring SQNR given the choices made so far, keeping the current one on ties.
/// Cost: (candidates + distinct candidate ranges per tensor) QDQ builds and float runs over
/// `samples` inputs, plus a held-out run for each change the scoring inputs accept. Errors:
/// kInvalidArgument for a model without exactly one input, empty or non-float inputs, samples <= 0,
/// holdout < 0, or samples + holdout > the inputs given (when holdout > 0).
Expected<TensorSearchResult> search_tensor_ranges(const onnx::ModelProto& optimized, const Calibration& calib,
                                                  const Tensor& inputs, const TensorSearchOptions& options);

/// Diagnosis: the scoring SQNR (as above) with `base`'s ranges (base.method, base.percentile)
/// everywhere except `probe`'s range on one tensor, for each calibrated activation in topological
/// order. The other options of `base` (nodes kept in float, bias correction) apply to every
/// scored model.
struct TensorSensitivity {
  std::string tensor;
  Range base, probe;
  double base_sqnr_db = 0.0;  ///< base everywhere
  double sqnr_db = 0.0;       ///< probe on this tensor only (= base_sqnr_db when both give the same parameters)
};
Expected<std::vector<TensorSensitivity>> tensor_sensitivity(const onnx::ModelProto& optimized, const Calibration& calib,
                                                            const Tensor& inputs, const QuantizeOptions& base,
                                                            Method probe, int64_t samples = 64);

/// ModelEditor: changes the boundary types of a QDQ model made by quantize().
struct EditOptions {
  /// The model takes uint8 data: the input QuantizeLinear disappears and the DequantizeLinear(s)
  /// after it read the uint8 input. Without folding, the caller feeds u = q + 128 where q is the
  /// int8 quantization of the normalised float input (same scale, zero point + 128).
  bool input_uint8 = false;
  /// With input_uint8: the pixel normalisation x = (p / 255 - mean) / std is folded into that
  /// DequantizeLinear (scale 1 / (255 std), zero point round(255 mean)), so raw pixels p in 0..255
  /// are fed as they are; int32 biases of the Conv/Gemm reading it are re-quantized for the new
  /// input scale. The folded model differs from the float normalisation only by rounding the zero
  /// point: |255 mean - round(255 mean)| / (255 std) <= 0.5 / (255 std) per input value.
  bool fold_normalization = false;
  float mean = 0.0f, std = 1.0f;
  /// Outputs stay int8: the final DequantizeLinear disappears, the Q output takes the output's name.
  bool output_int8 = false;
};
/// What the caller must apply at one edited boundary tensor.
struct BoundaryParams {
  std::string tensor, dtype;  ///< graph input/output name; "uint8" or "int8"
  float scale = 1.0f;
  int zero_point = 0;
  std::string note;  ///< how to produce / read the data
};
struct EditResult {
  onnx::ModelProto model;
  std::vector<BoundaryParams> inputs, outputs;
};
/// Applies `options`. The parameters are also stored in the model's metadata_props as
/// anvil.input.NAME.{dtype,scale,zero_point,meaning} (and anvil.output.NAME.*). Errors
/// (kInvalidArgument) name the input/output or node whose pattern is not Q -> DQ at the boundary.
Expected<EditResult> edit_model(const onnx::ModelProto& qdq, const EditOptions& options);

/// Convenience: optimize + calibrate (no progress line) + quantize.
Expected<onnx::ModelProto> quantize_model(const onnx::ModelProto& fp32, const Tensor& calibration_inputs,
                                          const QuantizeOptions& options,
                                          std::vector<std::string>* float_nodes = nullptr);

}  // namespace anvil::quant

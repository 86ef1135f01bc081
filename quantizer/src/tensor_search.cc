/// Per-tensor choice of the calibration method (beyond the FuriosaAI suite) and the per-tensor
/// sensitivity diagnosis. Both score a range assignment by the output SQNR of the QDQ model,
/// executed in float by the reference executor (QuantizeLinear/DequantizeLinear as ONNX defines
/// them), against the FP32 model on the first `samples` calibration inputs.
#include <algorithm>
#include <cmath>
#include <optional>

#include "anvil/common/log.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "batches.h"
#include "qdq.h"
#include "quant_params.h"

namespace anvil::quant {

namespace {

constexpr int64_t kBatch = 64;  // inputs per Executor::run (a dynamic batch)

/// Output SQNR against the FP32 model on a fixed slice of the inputs.
class SqnrScorer {
 public:
  /// Inputs [first, first + count), `batch` per run, and the FP32 model's outputs for them.
  SqnrScorer(const ref::Executor& fp32, const Tensor& inputs, int64_t first, int64_t count, int64_t batch) {
    for (int64_t b = first; b < first + count; b += batch)
      batches_.push_back(inputs.slice0(b, std::min(first + count, b + batch)));
    for (const Tensor& x : batches_) reference_.push_back(fp32.run({{fp32.input_names()[0], x}}).value());
  }

  /// 10 log10(sum f^2 / sum (f - q)^2) over every element of every graph output of `exec`.
  double sqnr_db(const ref::Executor& exec) const {
    double signal = 0.0, noise = 0.0;
    for (size_t b = 0; b < batches_.size(); ++b) {
      const TensorMap out = exec.run({{exec.input_names()[0], batches_[b]}}).value();
      for (const auto& [name, want] : reference_[b]) {
        const Tensor& got = out.at(name);
        if (want.dtype() != DType::kFloat32 || got.numel() != want.numel()) continue;
        const float* pf = want.data<float>();
        const float* pq = got.data<float>();
        for (int64_t i = 0; i < want.numel(); ++i) {
          const double d = static_cast<double>(pf[i]) - pq[i];
          signal += static_cast<double>(pf[i]) * pf[i];
          noise += d * d;
        }
      }
    }
    if (noise == 0.0) return INFINITY;
    return signal > 0.0 ? 10.0 * std::log10(signal / noise) : -INFINITY;
  }

 private:
  std::vector<Tensor> batches_;
  std::vector<TensorMap> reference_;
};

/// Builds the QDQ model of a range assignment and scores it on the scoring inputs and, when
/// asked, on the held-out ones: SQNR of the QDQ model run in float (fake quantization).
class Scorer {
 public:
  /// `base`: the quantizer options of every scored model except its method (bias correction,
  /// nodes kept in float). Scoring inputs: [0, samples); held-out: [samples, samples + holdout).
  Scorer(const onnx::ModelProto& optimized, const Tensor& inputs, int64_t samples, int64_t holdout,
         const Calibration& calib, QuantizeOptions base)
      : optimized_(optimized), calib_(calib), base_(std::move(base)) {
    if (inputs.dtype() != DType::kFloat32 || inputs.rank() < 1 || inputs.dim(0) == 0)
      fail(ErrorCode::kInvalidArgument, "per-tensor search: non-empty float32 N x ... inputs expected, got " +
                                            std::string(dtype_name(inputs.dtype())) + " " + shape_str(inputs.shape()));
    if (samples <= 0) fail(ErrorCode::kInvalidArgument, "per-tensor search: samples must be > 0");
    if (holdout < 0) fail(ErrorCode::kInvalidArgument, "per-tensor search: holdout must be >= 0");
    if (holdout > 0 && samples + holdout > inputs.dim(0))
      fail(ErrorCode::kInvalidArgument, "per-tensor search: " + std::to_string(samples) + " scoring + " +
                                            std::to_string(holdout) + " held-out inputs asked, " +
                                            std::to_string(inputs.dim(0)) + " given");
    const ref::Executor fp32 = ref::Executor::create(optimized).value();
    if (fp32.input_names().size() != 1)
      fail(ErrorCode::kInvalidArgument, "per-tensor search: the model has " +
                                            std::to_string(fp32.input_names().size()) + " inputs; it feeds exactly one");
    // A fixed batch scores whole batches only (batches.h): each set is cut to a multiple of it.
    const std::string& input = fp32.input_names()[0];
    const Batches scoring = plan_batches(optimized, input, std::min(samples, inputs.dim(0)), kBatch,
                                         "per-tensor search: scoring inputs");
    scoring_.emplace(fp32, inputs, 0, scoring.used, scoring.size);
    samples_ = scoring.used;
    if (holdout > 0) {
      const Batches held = plan_batches(optimized, input, holdout, kBatch, "per-tensor search: held-out inputs");
      holdout_.emplace(fp32, inputs, samples, held.used, held.size);  // samples <= N here (checked above)
      holdout_samples_ = held.used;
    }
  }

  /// The QDQ model of `ranges` on `grid`'s activation grid, ready to run.
  ref::Executor build(const std::map<std::string, Range>& ranges, Method grid) {
    QuantizeOptions options = base_;
    options.method = grid;
    ++evaluations_;
    return ref::Executor::create(quantize(optimized_, ranges, options, nullptr, &calib_).value()).value();
  }
  double scoring_db(const ref::Executor& exec) const { return scoring_->sqnr_db(exec); }
  bool has_holdout() const { return holdout_.has_value(); }
  double holdout_db(const ref::Executor& exec) const { return holdout_ ? holdout_->sqnr_db(exec) : NAN; }
  double sqnr_db(const std::map<std::string, Range>& ranges, Method grid) { return scoring_db(build(ranges, grid)); }
  int64_t evaluations() const { return evaluations_; }
  int64_t samples() const { return samples_; }
  int64_t holdout_samples() const { return holdout_samples_; }

 private:
  const onnx::ModelProto& optimized_;
  const Calibration& calib_;
  QuantizeOptions base_;
  std::optional<SqnrScorer> scoring_, holdout_;
  int64_t evaluations_ = 0;
  int64_t samples_ = 0, holdout_samples_ = 0;  // the scoring and held-out inputs used
};

std::vector<Method> candidate_methods(const std::vector<Method>& given) {
  if (!given.empty()) return given;
  return {Method::kMinMaxAsym,     Method::kMinMaxSym,     Method::kEntropyAsym, Method::kEntropySym,
          Method::kPercentileAsym, Method::kPercentileSym, Method::kSqnrAsym,    Method::kSqnrSym,
          Method::kMseAsym,        Method::kMseSym};
}

/// Two ranges that give the same int8 parameters on `grid` build the same model.
bool same_params(Range a, Range b, bool sym) {
  const QuantParams pa = activation_params(a, sym), pb = activation_params(b, sym);
  return pa.scale == pb.scale && pa.zero_point == pb.zero_point;
}

}  // namespace

Expected<TensorSearchResult> search_tensor_ranges(const onnx::ModelProto& optimized, const Calibration& calib,
                                                  const Tensor& inputs, const TensorSearchOptions& options) {
  return capture([&] {
    const QuantizeOptions& base = options.quantize;
    Scorer scorer(optimized, inputs, options.samples, options.holdout, calib, base);
    const std::vector<Method> methods = candidate_methods(options.candidates);
    std::vector<std::map<std::string, Range>> method_ranges;
    for (Method m : methods) method_ranges.push_back(calib.ranges(m, base.percentile));

    // Start from the best single method on the scoring inputs; its grid (symmetric or not) is
    // kept for every tensor.
    TensorSearchResult result;
    result.samples = scorer.samples();
    result.holdout = scorer.holdout_samples();
    result.start_sqnr_db = -INFINITY;
    size_t start = 0;
    std::optional<ref::Executor> start_model;
    for (size_t k = 0; k < methods.size(); ++k) {
      ref::Executor exec = scorer.build(method_ranges[k], methods[k]);
      const double db = scorer.scoring_db(exec);
      result.method_sqnr_db.emplace_back(methods[k], db);
      if (db > result.start_sqnr_db) result.start_sqnr_db = db, start = k, start_model = std::move(exec);
    }
    result.grid = methods[start];
    result.ranges = method_ranges[start];
    result.sqnr_db = result.start_sqnr_db;
    if (!start_model) start_model = scorer.build(result.ranges, result.grid);  // no candidate above -inf dB
    result.start_holdout_db = result.holdout_db = scorer.holdout_db(*start_model);  // NaN without held-out inputs
    const bool sym = is_symmetric(result.grid);

    // Greedy, in topological order: each tensor takes the candidate range that maximises the
    // output SQNR given the choices already made (ties keep the current range). With held-out
    // inputs, a candidate the scoring inputs prefer is taken only if the held-out SQNR rises too.
    QuantizeOptions grid_options = base;
    grid_options.method = result.grid;
    for (const std::string& t : calibrated_tensors(optimized, result.ranges, grid_options)) {
      const Range current = result.ranges.at(t);
      std::vector<Range> tried{current};
      for (size_t k = 0; k < methods.size(); ++k) {
        const Range cand = method_ranges[k].at(t);
        if (std::any_of(tried.begin(), tried.end(), [&](Range r) { return same_params(r, cand, sym); })) continue;
        tried.push_back(cand);
        std::map<std::string, Range> trial = result.ranges;
        trial[t] = cand;
        const ref::Executor exec = scorer.build(trial, result.grid);
        const double db = scorer.scoring_db(exec);
        if (!(db > result.sqnr_db)) continue;
        const double held = scorer.holdout_db(exec);
        const TensorChoice c{t, methods[k], cand, db, held};
        if (scorer.has_holdout() && !(held > result.holdout_db)) {
          result.rejected.push_back(c);
          continue;
        }
        result.sqnr_db = db;
        result.holdout_db = held;
        result.ranges[t] = cand;
        auto it = std::find_if(result.choices.begin(), result.choices.end(),
                               [&](const TensorChoice& x) { return x.tensor == t; });
        if (it != result.choices.end()) *it = c; else result.choices.push_back(c);
      }
    }
    result.evaluations = scorer.evaluations();
    if (scorer.has_holdout())
      log().info("quantizer: per-tensor search: {} {:.2f} dB -> {:.2f} dB (held out: {:.2f} dB -> {:.2f} dB), "
                 "{} tensor(s) changed, {} change(s) the held-out inputs refused, {} evaluations",
                 method_name(result.grid), result.start_sqnr_db, result.sqnr_db, result.start_holdout_db,
                 result.holdout_db, result.choices.size(), result.rejected.size(), result.evaluations);
    else
      log().info("quantizer: per-tensor search: {} {:.2f} dB -> {:.2f} dB, {} tensor(s) changed, {} evaluations",
                 method_name(result.grid), result.start_sqnr_db, result.sqnr_db, result.choices.size(),
                 result.evaluations);
    return result;
  });
}

Expected<std::vector<TensorSensitivity>> tensor_sensitivity(const onnx::ModelProto& optimized, const Calibration& calib,
                                                            const Tensor& inputs, const QuantizeOptions& base,
                                                            Method probe, int64_t samples) {
  return capture([&] {
    Scorer scorer(optimized, inputs, samples, 0, calib, base);
    const std::map<std::string, Range> base_ranges = calib.ranges(base.method, base.percentile);
    const std::map<std::string, Range> probe_ranges = calib.ranges(probe, base.percentile);
    const double base_db = scorer.sqnr_db(base_ranges, base.method);
    std::vector<TensorSensitivity> out;
    for (const std::string& t : calibrated_tensors(optimized, base_ranges, base)) {
      TensorSensitivity s{t, base_ranges.at(t), probe_ranges.at(t), base_db, base_db};
      if (!same_params(s.base, s.probe, is_symmetric(base.method))) {
        std::map<std::string, Range> trial = base_ranges;
        trial[t] = s.probe;
        s.sqnr_db = scorer.sqnr_db(trial, base.method);
      }
      out.push_back(s);
    }
    return out;
  });
}

}  // namespace anvil::quant

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "anvil/common/log.h"
#include "anvil/quantizer/quantizer.h"
#include "anvil/reference/executor.h"
#include "batches.h"
#include "graph.h"
#include "histogram.h"

namespace anvil::quant {

namespace {
// Images per Executor::run: at most 64, and at most 8 MiB of input. The values a run holds whole
// (graph outputs, values outside Conv chains, a chain's outputs) grow with it: when chains still
// held every value whole, MobileNetV2 at 224 x 224 needed 1.15 GB at 64 images per run and 0.38 GB
// at 13 (what the cap gives), for the same CPU time. Small images keep 64 per run (fewer, larger
// observer calls: ResNet on Fashion-MNIST calibrated about 20% faster than at 16).
constexpr int64_t kMaxBatch = 64, kMaxBatchBytes = int64_t{8} << 20;
// Copies of whole values waiting for their statistics (calibrate's observer) hold at most this
// much; a value that would pass it is recorded in the observer, with the model waiting.
constexpr int64_t kMaxCopiedBytes = int64_t{64} << 20;

using Clock = std::chrono::steady_clock;
}  // namespace

Calibration calibrate(const onnx::ModelProto& optimized, const Tensor& inputs, bool show_progress,
                      CalibrationTime* time) {
  const ref::Executor exec = ref::Executor::create(optimized).value();
  if (exec.input_names().size() != 1)
    fail(ErrorCode::kInvalidArgument, "calibrate: the model has " + std::to_string(exec.input_names().size()) +
                                          " inputs; calibration feeds exactly one");
  const std::string& input_name = exec.input_names()[0];
  if (inputs.dtype() != DType::kFloat32 || inputs.rank() < 1 || inputs.dim(0) == 0)
    fail(ErrorCode::kInvalidArgument, "calibrate: input '" + input_name + "': non-empty float32 N x ... expected, got " +
                                          dtype_name(inputs.dtype()) + " " + shape_str(inputs.shape()));
  // One pass: min/max, count and the histogram grow together (histogram.h), so later batches
  // that widen a tensor's range re-grid it without re-running the model.
  // Per-channel means are read only by bias correction (qdq.cc corrected_bias), for the data
  // input of a Conv, Gemm or MatMul by a constant weight; other tensors skip that third read of
  // their values. The channel axis: 1 for Conv and Gemm, the last axis (-1) for a MatMul by a constant 2-D weight
  // (nn.Linear on a 3-D input), which reduces that axis; Conv/Gemm win a tensor both read.
  std::map<std::string, int> channel_means_read;
  for (const onnx::NodeProto& node : optimized.graph().node()) {
    if ((node.op_type() == "Conv" || node.op_type() == "Gemm") && node.input_size() > 0)
      channel_means_read[node.input(0)] = 1;
    const onnx::TensorProto* w = node.op_type() == "MatMul" && node.input_size() == 2
                                     ? graph::find_initializer(optimized.graph(), node.input(1)) : nullptr;
    if (w && w->dims_size() == 2) channel_means_read.emplace(node.input(0), -1);
  }
  Calibration calib;
  // Whole values are recorded in tasks beside the model, each on a copy of the value: the executor
  // calls `observe` from its own thread and waits for it, so recording there kept the model and the
  // other core idle (vit at 64 images per run: every tensor is one or two kGrain blocks of the
  // statistics, so they ran on one thread). Each tensor has its own lock; `mu` guards only the maps
  // and the first bad tensor. A tensor is observed once per run, whole or in parts, and every task
  // of a run ends before the next run starts, so each tensor's channel means are still folded run by
  // run in image order: the same statistics, bit for bit, as recording in the observer.
  std::mutex mu;
  std::map<std::string, std::mutex> tensor_mu;  // under mu; a tensor's statistics under its own
  std::string bad_tensor;
  int64_t bad_order = -1;  // the observation order of bad_tensor: the first bad one is named
  std::atomic<int64_t> observed{0};
  std::atomic<int64_t> statistics_ns{0};  // time recording the statistics, summed over threads
  std::atomic<int64_t> copied_bytes{0};   // held by copies whose task has not ended
  // The statistics and the lock of a tensor, or nullptr (after naming it) when a value is not finite.
  auto slot = [&](const std::string& name, const ValueSummary& summary,
                  int64_t order) -> std::pair<TensorStats*, std::mutex*> {
    std::lock_guard<std::mutex> lock(mu);
    if (!summary.finite) {
      if (bad_order < 0 || order < bad_order) bad_tensor = name, bad_order = order;
      return {nullptr, nullptr};
    }
    return {&calib.tensors[name], &tensor_mu[name]};
  };
  // A run's per-image channel row sums of the tensors observed in parts (row_sum of image b,
  // channel c at [b * channels + c]), added in image order once the run is done: the same means,
  // bit for bit, as a whole value gives, whichever thread observed which part. A value's images
  // are its own axis 0, which need not be the run's (a Reshape before a chain may fold or split it).
  struct Rows {
    int64_t channels = 0, inner = 0;
    std::vector<double> sums;
  };
  std::map<std::string, Rows> run_rows;  // under mu
  // One whole value's statistics. Isolated: the statistics' own parallel loops must not pick up
  // another task while this one holds a tensor's lock.
  auto record = [&](const std::string& name, const Tensor& value, int64_t order) {
    tbb::this_task_arena::isolate([&] {
      const auto start = Clock::now();
      const float* p = value.data<float>();
      const ValueSummary summary = summarize(p, value.numel());  // finiteness, min, max: one read
      auto [stats, stats_mu] = slot(name, summary, order);
      if (stats) {
        std::lock_guard<std::mutex> lock(*stats_mu);
        // The second read: binning, and the per-channel sums where bias correction needs them.
        auto axis = channel_means_read.find(name);
        if (value.rank() >= 2 && axis != channel_means_read.end() && axis->second == 1) {
          accumulate(*stats, p, summary, {value.dim(0), value.dim(1), value.numel() / (value.dim(0) * value.dim(1))});
        } else if (value.rank() >= 2 && axis != channel_means_read.end()) {
          const int64_t channels = value.dim(value.rank() - 1);
          accumulate_last_axis(*stats, p, summary, value.numel() / channels, channels);
        } else {
          accumulate(*stats, p, value.numel(), summary);
        }
      }
      statistics_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    });
  };
  tbb::task_group recording;  // after what its tasks use: destroyed (and waited for) first
  ref::RunOptions observe;
  // The FP32 fast paths run as without an observer; the Conv/Gemm outputs they fuse into a Relu/Clip
  // are not observed (the quantizer gives that pair the activation's range, qdq.cc is_fused), nor
  // the values inside a LayerNorm pattern, which runs as one kernel (qdq.cc keeps it float).
  observe.observe_fast_paths = true;
  // A whole value (node by node, or a chain value of a one-image run): copied and recorded in a task
  // while the model goes on, unless the copies would pass kMaxCopiedBytes (then recorded here).
  observe.observe = [&](const std::string& name, const Tensor& value) {
    if (value.dtype() != DType::kFloat32 || value.numel() == 0) return;
    const int64_t order = observed++;
    const int64_t bytes = value.numel() * static_cast<int64_t>(sizeof(float));
    if (copied_bytes + bytes > kMaxCopiedBytes) {
      record(name, value, order);
      return;
    }
    copied_bytes += bytes;
    recording.run([&, name, order, bytes, copy = std::make_shared<const Tensor>(value)] {
      record(name, *copy, order);
      copied_bytes -= bytes;
    });
  };
  // Images [first, first + n) of a Conv chain's value, from the chain's threads while the part is
  // in cache. Histogram, min, max and count do not depend on the order parts arrive in (histogram.h).
  // Isolated: the statistics' own parallel loops must not pick up another chunk of the chain (its
  // observer call would wait for the lock this thread holds).
  observe.observe_part = [&](const std::string& name, const Tensor& part, int64_t first) {
    if (part.dtype() != DType::kFloat32 || part.numel() == 0) return;
    const int64_t order = observed++;
    tbb::this_task_arena::isolate([&] {
      const auto start = Clock::now();
      const float* p = part.data<float>();
      const ValueSummary summary = summarize(p, part.numel());
      std::vector<double> rows;
      auto axis = channel_means_read.find(name);
      const bool means = part.rank() >= 2 && axis != channel_means_read.end() && axis->second == 1;
      const int64_t images = part.dim(0), channels = means ? part.dim(1) : 0;
      const int64_t inner = means ? part.numel() / (images * channels) : 0;
      if (means && summary.finite)
        for (int64_t r = 0; r < images * channels; ++r) rows.push_back(row_sum(p + r * inner, inner));
      auto [stats, stats_mu] = slot(name, summary, order);
      if (stats) {
        {
          std::lock_guard<std::mutex> lock(*stats_mu);
          accumulate(*stats, p, part.numel(), summary);
          if (axis != channel_means_read.end() && !means) {  // last-axis means are not kept from parts
            stats->channel_mean.clear();
            stats->channel_samples = -1;
          }
        }
        if (means) {
          std::lock_guard<std::mutex> lock(mu);
          Rows& r = run_rows[name];
          r.channels = channels, r.inner = inner;
          r.sums.resize(std::max(r.sums.size(), static_cast<size_t>((first + images) * channels)));
          std::copy(rows.begin(), rows.end(), r.sums.begin() + first * channels);
        }
      }
      statistics_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    });
  };

  const int64_t image_bytes = std::max<int64_t>(1, inputs.numel() / inputs.dim(0) * static_cast<int64_t>(sizeof(float)));
  // A fixed batch is the only one the model runs on (batches.h); the statistics do not depend on
  // the batching (histogram.h), so a fixed batch of 1 gives what a dynamic one does.
  const Batches plan = plan_batches(optimized, input_name, inputs.dim(0),
                                    std::clamp<int64_t>(kMaxBatchBytes / image_bytes, 1, kMaxBatch), "calibrate");
  const int64_t n = plan.used, batch = plan.size;
  Progress progress("calibrating", n, !show_progress);
  double pass_s = 0.0;
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    const auto start = Clock::now();
    exec.run({{input_name, inputs.slice0(begin, end)}}, observe).value();
    recording.wait();  // this run's statistics are recorded before the next run's begin
    for (auto& [name, r] : run_rows)  // the parts covered every image of the value once
      add_channel_row_sums(calib.tensors[name], r.sums.data(), static_cast<int64_t>(r.sums.size()) / r.channels,
                           r.channels, r.inner);
    run_rows.clear();
    pass_s += seconds_since(start);
    if (!bad_tensor.empty())
      fail(ErrorCode::kInvalidArgument, "calibrate: tensor '" + bad_tensor + "' has NaN or infinite values (samples " +
                                            std::to_string(begin) + ".." + std::to_string(end - 1) + ")");
    progress.advance(end - begin);
  }
  progress.done();
  if (time) *time = {pass_s, static_cast<double>(statistics_ns.load()) * 1e-9};
  calib.samples = n;
  log().info("quantizer: calibrated {} tensors on {} samples", calib.tensors.size(), n);
  return calib;
}

}  // namespace anvil::quant

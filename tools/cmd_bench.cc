/// anvil bench MODEL.onnx [--batch B] [--repeat R] [--threads T]
/// Times the reference executor's FP32 run of a model on one batch of deterministic inputs and
/// prints one JSON line: {"model", "batch", "threads", "input_shape", "ms_median", "ms_min",
/// "ms_first" (the warm-up run before them, a cold run), "peak_rss_mb"}.
/// benchmarks/ref_vs_ort.sh runs it side by side with ONNX Runtime.
#include <oneapi/tbb/global_control.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <random>

#include <nlohmann/json.hpp>

#include "anvil/common/onnx_model.h"
#include "anvil/reference/executor.h"
#include "cli_common.h"

namespace anvil::cli {

void register_bench(CLI::App& app) {
  struct Opts {
    std::string model;
    int64_t batch = 100, repeat = 5;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("bench", "time the reference executor (FP32) on one batch");
  cmd->add_option("model", o->model, "ONNX model with one float input N x ...")->required();
  cmd->add_option("--batch", o->batch, "batch size (replaces a dynamic batch dimension)")->check(CLI::Range(1, 100000));
  cmd->add_option("--repeat", o->repeat, "timed runs after one warm-up run")->check(CLI::Range(1, 1000));
  cmd->add_option("--threads", o->threads, "worker threads (default: all cores)")->check(thread_count());
  cmd->callback([o] {
    std::unique_ptr<tbb::global_control> limit;
    if (o->threads > 0)
      limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, o->threads);
    // The ModelProto (which holds a copy of every weight) is released once the executor is made,
    // as an application that only runs the model would do; peak_rss_mb counts what is left.
    auto model = std::make_unique<onnx::ModelProto>(load_onnx(o->model));
    const ref::Executor exec = ref::Executor::create(*model).value();
    // The input's shape from the graph, batch dimension replaced.
    Shape shape;
    for (const auto& in : model->graph().input()) {
      if (in.name() != exec.input_names().at(0)) continue;
      for (const auto& d : in.type().tensor_type().shape().dim()) shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
    model.reset();
    if (shape.empty()) fail(ErrorCode::kInvalidArgument, o->model + ": input has no shape");
    shape[0] = o->batch;
    for (int64_t& d : shape)
      if (d < 0) fail(ErrorCode::kInvalidArgument, o->model + ": input has a dynamic non-batch dimension");
    Tensor x(DType::kFloat32, shape);
    std::mt19937 rng(0);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = dist(rng);
    const TensorMap inputs{{exec.input_names().at(0), x}};
    // The warm-up run is timed too: a cold run (kernels set up, weights packed, pages first touched)
    // is what the first run of any fresh executor pays, calibration's first run included.
    const auto cold = std::chrono::steady_clock::now();
    exec.run(inputs).value();
    const double ms_first = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - cold).count();
    std::vector<double> ms;
    for (int64_t r = 0; r < o->repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      exec.run(inputs).value();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    nlohmann::json j{{"model", o->model},       {"batch", o->batch},  {"threads", o->threads}, {"input_shape", shape},
                     {"ms_median", ms[ms.size() / 2]}, {"ms_min", ms.front()}, {"ms_first", ms_first},
                     {"peak_rss_mb", ru.ru_maxrss / 1024.0}};
    std::cout << j.dump() << '\n';
  });
}

}  // namespace anvil::cli

// The calibration statistics per value (quantizer/src/histogram.h), on one thread: what the
// observers of `anvil calibrate` spend beside the FP32 pass. Never run by CI; numbers in
// docs/quantization.md ("Calibration cost") with the command that produced them:
//   build/benchmarks/bench_histogram --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include <tbb/task_arena.h>

#include "histogram.h"

using namespace anvil::quant;

namespace {

/// n values: Gaussian, or after a ReLU (about half exactly 0), as the activations of a CNN are.
std::vector<float> make_values(int64_t n, bool relu) {
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = relu ? std::max(0.0f, gauss(rng)) : gauss(rng);
  return v;
}

void run_one_thread(benchmark::State& state, const std::function<void()>& body) {
  tbb::task_arena one(1);
  for (auto _ : state) one.execute(body);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["ns/value"] = benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Summarize(benchmark::State& state) {
  const std::vector<float> v = make_values(state.range(0), state.range(1) != 0);
  run_one_thread(state, [&] { benchmark::DoNotOptimize(summarize(v.data(), static_cast<int64_t>(v.size()))); });
}

/// What one observer call costs: summarize() and accumulate() of a value the histogram already spans.
void BM_Observe(benchmark::State& state) {
  const std::vector<float> v = make_values(state.range(0), state.range(1) != 0);
  const int64_t n = static_cast<int64_t>(v.size());
  TensorStats stats;
  accumulate(stats, v.data(), n);
  run_one_thread(state, [&] { accumulate(stats, v.data(), n, summarize(v.data(), n)); });
}

/// Sizes: one chunk of a Conv chain's value (7x7x1280 to 112x112x32 per image at 224 x 224) and a
/// large whole value; second argument 1 = after a ReLU.
void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {int64_t{62720}, int64_t{401408}, int64_t{4} << 20})
    for (int relu : {0, 1}) b->Args({n, relu});
}

}  // namespace

BENCHMARK(BM_Summarize)->Apply(Sizes);
BENCHMARK(BM_Observe)->Apply(Sizes);
BENCHMARK_MAIN();

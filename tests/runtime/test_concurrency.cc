// Thread safety: several host threads share one device (two sessions, both units) through run(),
// submit + wait and submit + receive at once. Every request's output must equal the reference
// executor's int8 run (ref::run_int8) of its own input, and every request must finish exactly
// once. Built with -DANVIL_TSAN=ON this is the ThreadSanitizer test (docs/runtime.md).
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <map>
#include <mutex>
#include <thread>

#include "anvil/runtime/runtime.h"
#include "golden_conv.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::golden_graph;
using anvil::testing::random_int8;

struct Key {
  int thread, index;
  bool operator<(const Key& o) const { return std::tie(thread, index) < std::tie(o.thread, o.index); }
};

TEST(Concurrency, ThreadsSharingOneDeviceGetTheReferenceOutputForEveryRequestExactlyOnce) {
  ConvLayer g;
  g.ic = 8, g.h = 12, g.w = 12, g.oc = 16;
  g = ConvLayer::random(31, g);
  const isa::Program program = g.program();
  const ref::Int8Graph golden = golden_graph(g, program);
  constexpr int kThreads = 6, kPerThread = 10;
  // Inputs and reference outputs, computed before any thread starts; the reference runs on this
  // thread only (a one-slot TBB arena), so its worker threads stay out of the picture.
  std::map<Key, Tensor> inputs, want;
  tbb::task_arena one_thread(1);
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) {
      const Key k{t, i};
      inputs[k] = Tensor::from_vector<int8_t>({1, g.ic, g.h, g.w}, random_int8(g.ic * g.h * g.w, 1000 * t + i));
      one_thread.execute([&] { want[k] = ref::run_int8(golden, {{"x", inputs[k]}}).value().at("y"); });
    }

  Device dev = Device::open("warboy(2)*1", hw::HwConfig::preset("warboy-2pe"));
  SessionOptions a_opt, b_opt;
  a_opt.queue_depth = 3;
  b_opt.queue_depth = 5;
  Session a(dev, program, a_opt), b(dev, program, b_opt);

  std::mutex mutex;
  std::map<Key, int> finished;  ///< how often each request was seen finished
  std::vector<std::string> problems;
  auto record = [&](const Key& k, const Tensor& got) {
    std::lock_guard<std::mutex> lock(mutex);
    finished[k]++;
    if (!(got == want.at(k))) problems.push_back("request " + std::to_string(k.thread) + "." + std::to_string(k.index) + " differs from the reference");
  };
  std::vector<std::thread> threads;
  // Threads 0, 1: synchronous run() on session a.
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) record({t, i}, a.run({{"x", inputs.at({t, i})}}).at("y"));
    });
  // Thread 2: submit + wait on session a, two of its own requests in flight.
  threads.emplace_back([&] {
    std::vector<std::pair<int, Request>> open;
    for (int i = 0; i < kPerThread; ++i) {
      open.emplace_back(i, a.submit({{"x", inputs.at({2, i})}}));
      if (open.size() == 2 || i == kPerThread - 1)
        for (auto& [index, r] : open) {
          EXPECT_EQ(r.wait(60.0), RequestState::kCompleted) << r.error_message();
          record({2, index}, r.outputs().at("y"));
        }
      if (open.size() == 2) open.clear();
    }
  });
  // Threads 3, 4, 5: submit on session b with their key as context; two receivers collect them all.
  for (int t = 3; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) b.submit({{"x", inputs.at({t, i})}}, Key{t, i});
    });
  std::vector<std::thread> receivers;
  for (int r = 0; r < 2; ++r)
    receivers.emplace_back([&, r] {
      const int count = r == 0 ? 15 : 3 * kPerThread - 15;
      for (int n = 0; n < count; ++n) {
        Request q = b.receive(60.0);
        ASSERT_EQ(q.state(), RequestState::kCompleted) << q.error_message();
        record(std::any_cast<Key>(q.context()), q.outputs().at("y"));
      }
    });
  for (auto& t : threads) t.join();
  for (auto& t : receivers) t.join();

  EXPECT_TRUE(problems.empty()) << problems.front();
  ASSERT_EQ(finished.size(), static_cast<size_t>(kThreads * kPerThread)) << "lost completions";
  for (const auto& [k, n] : finished) EXPECT_EQ(n, 1) << "request " << k.thread << "." << k.index << " finished " << n << " times";
  EXPECT_EQ(a.in_flight() + b.in_flight(), 0u);
  EXPECT_THROW(b.receive(0.0), Error);  // nothing left over
  const SessionStats sa = a.stats(), sb = b.stats();
  EXPECT_EQ(sa.completed, 3u * kPerThread);
  EXPECT_EQ(sb.completed, 3u * kPerThread);
  EXPECT_EQ(sa.failed + sb.failed, 0u);
  // Both units served requests.
  EXPECT_GT(sa.per_unit[0] + sb.per_unit[0], 0u);
  EXPECT_GT(sa.per_unit[1] + sb.per_unit[1], 0u);
}

}  // namespace
}  // namespace anvil::rt

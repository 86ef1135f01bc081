// The runtime's session API: model introspection, the asynchronous queue (submit / wait /
// receive, queue depth, per-request context), device specs, and each typed error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <set>

#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::random_int8;

template <typename F>
Error error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  return Error(static_cast<ErrorCode>(-1), "(no error)");
}

ConvLayer layer(uint32_t seed) { return ConvLayer::random(seed, ConvLayer{}); }

TensorMap input_of(const ConvLayer& g, uint32_t seed) {
  return {{"x", Tensor::from_vector<int8_t>({g.n, g.ic, g.h, g.w}, random_int8(g.n * g.ic * g.h * g.w, seed))}};
}

std::vector<int8_t> expected_of(const ConvLayer& g, const TensorMap& in) { return g.expected(in.at("x").to_vector<int8_t>()); }

/// A device whose PE hangs at the first instruction of the next run until the firmware's
/// watchdog (the default 4e9 cycles = 2 simulated seconds, 200,000 simulation steps of 10 us)
/// ends it: a request that stays pending while the test checks the queue-full paths.
Device hanging_device() {
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  Device dev = Device::open("warboy(1)*1", cfg);
  hw::Platform::instance().write32(isa::reg::FAULT_INJECT, 2);
  hw::Platform::instance().write32(isa::reg::FAULT_ARG, 1);
  return dev;
}

TEST(Session, IntrospectionDescribesInputsAndOutputs) {
  const ConvLayer g = layer(1);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const std::vector<TensorInfo> in = s.inputs(), out = s.outputs();
  ASSERT_EQ(in.size(), 1u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(in[0].name, "x");
  EXPECT_EQ(in[0].shape, (Shape{1, 3, 8, 8}));
  EXPECT_EQ(in[0].dtype, DType::kInt8);
  EXPECT_EQ(in[0].layout, isa::Layout::kNCHW);
  EXPECT_FLOAT_EQ(in[0].scale, 0.05f);
  EXPECT_EQ(in[0].zero_point, 3);
  EXPECT_EQ(in[0].bytes, 192u);
  EXPECT_EQ(out[0].name, "y");
  EXPECT_EQ(out[0].shape, (Shape{1, 4, 8, 8}));
  EXPECT_FLOAT_EQ(out[0].scale, 0.1f);
  EXPECT_EQ(out[0].zero_point, -5);
  EXPECT_EQ(s.options().queue_depth, 2u);
}

TEST(Session, SubmitReceiveReturnsEveryRequestOnceWithItsContextAndOutputs) {
  const ConvLayer g = layer(2);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  SessionOptions o;
  o.queue_depth = 3;
  Session s(dev, g.program(), o);
  std::map<int, TensorMap> inputs;
  for (int i = 0; i < 10; ++i) inputs[i] = input_of(g, 100 + i);
  std::set<int> received;
  int submitted = 0;
  // Keep the queue full: submit until busy is impossible (blocking submit waits for a slot).
  for (; submitted < 3; ++submitted) s.submit(inputs[submitted], submitted);
  while (received.size() < 10) {
    Request r = s.receive(60.0);
    EXPECT_EQ(r.state(), RequestState::kCompleted);
    const int k = std::any_cast<int>(r.context());
    EXPECT_TRUE(received.insert(k).second) << "request " << k << " received twice";
    EXPECT_EQ(r.outputs().at("y").to_vector<int8_t>(), expected_of(g, inputs[k])) << "request " << k;
    EXPECT_GT(r.stats().cycles, 0u);
    EXPECT_GE(r.stats().end_cycle, r.stats().start_cycle);
    EXPECT_GE(r.stats().start_cycle, r.stats().submit_cycle);
    EXPECT_EQ(r.stats().pe_mask, 1u);
    if (submitted < 10) s.submit(inputs[submitted], submitted), ++submitted;
  }
  EXPECT_EQ(s.in_flight(), 0u);
  const SessionStats st = s.stats();
  EXPECT_EQ(st.completed, 10u);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_GT(st.throughput_per_sim_s, 0.0);
  EXPECT_EQ(st.per_unit, (std::vector<uint64_t>{10}));
  // Nothing left: receive times out with a typed queue timeout.
  const Error e = error_of([&] { s.receive(0.01); });
  EXPECT_EQ(e.code(), ErrorCode::kTimeout);
  EXPECT_NE(std::string(e.what()).find("queue timeout"), std::string::npos) << e.what();
}

TEST(Session, WaitReturnsTheStateAndWaitedRequestsAreNotReceivedAgain) {
  const ConvLayer g = layer(3);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const TensorMap in = input_of(g, 7);
  Request r = s.submit(in, std::string("ctx"));
  EXPECT_EQ(r.wait(60.0), RequestState::kCompleted);
  EXPECT_EQ(r.wait(0.0), RequestState::kCompleted);
  EXPECT_EQ(std::any_cast<std::string>(r.context()), "ctx");
  EXPECT_EQ(r.outputs().at("y").to_vector<int8_t>(), expected_of(g, in));
  EXPECT_EQ(r.id(), 0u);
  EXPECT_EQ(error_of([&] { s.receive(0.01); }).code(), ErrorCode::kTimeout);
  EXPECT_EQ(error_of([] { Request().wait(1.0); }).code(), ErrorCode::kClosed);
}

TEST(Session, HugeAndInfiniteTimeoutsMeanNoLimitAndNaNIsAnInvalidArgument) {
  const ConvLayer g = layer(12);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  const double inf = std::numeric_limits<double>::infinity();
  SessionOptions o;
  o.timeout_s = inf;
  o.device_timeout_s = 1e10;  // past int64 nanoseconds: once overflowed to a deadline in the past
  Session s(dev, g.program(), o);
  const TensorMap in = input_of(g, 3);
  EXPECT_EQ(s.run(in).at("y").to_vector<int8_t>(), expected_of(g, in));
  Request r = s.submit(in);
  EXPECT_EQ(r.wait(1e10), RequestState::kCompleted);
  s.submit(in);
  s.submit(in);
  EXPECT_EQ(s.receive(inf).state(), RequestState::kCompleted);
  EXPECT_EQ(s.receive(kNoTimeoutS).state(), RequestState::kCompleted);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Error bad_wait = error_of([&] { r.wait(nan); });
  EXPECT_EQ(bad_wait.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(bad_wait.what()).find("timeout_s is NaN"), std::string::npos) << bad_wait.what();
  EXPECT_EQ(error_of([&] { s.receive(nan); }).code(), ErrorCode::kInvalidArgument);
  o.device_timeout_s = nan;
  EXPECT_EQ(error_of([&] { Session(dev, g.program(), o); }).code(), ErrorCode::kInvalidArgument);
}

TEST(Session, PendingRequestTimesOutInWaitAndTheFullQueueIsBusyOrTimesOut) {
  const ConvLayer g = layer(4);
  Device dev = hanging_device();
  SessionOptions o;
  o.queue_depth = 1;
  o.blocking_submit = false;
  Session s(dev, g.program(), o);
  Request r = s.submit(input_of(g, 1), 1);
  EXPECT_EQ(r.wait(0.0), RequestState::kTimeout);
  EXPECT_EQ(r.state(), RequestState::kPending);
  EXPECT_EQ(error_of([&] { r.outputs(); }).code(), ErrorCode::kBusy);
  // Nothing the completion will write is handed out while it is pending.
  EXPECT_EQ(error_of([&] { r.stats(); }).code(), ErrorCode::kBusy);
  EXPECT_EQ(r.error_message(), "");
  const Error busy = error_of([&] { s.submit(input_of(g, 2), 2); });
  EXPECT_EQ(busy.code(), ErrorCode::kBusy);
  EXPECT_NE(std::string(busy.what()).find("device busy"), std::string::npos) << busy.what();
  // The watchdog ends the hung run: a typed device fault, then the runtime resets the device.
  EXPECT_EQ(r.wait(60.0), RequestState::kError);
  EXPECT_EQ(r.error_code(), ErrorCode::kDeviceError);
  EXPECT_NE(r.error_message().find("PE timeout"), std::string::npos) << r.error_message();
  EXPECT_EQ(error_of([&] { r.outputs(); }).code(), ErrorCode::kDeviceError);
  EXPECT_EQ(s.stats().failed, 1u);

  // Blocking submit on a full queue: a queue timeout after timeout_s.
  SessionOptions b;
  b.queue_depth = 1;
  b.timeout_s = 0.001;
  Session blocking(dev, g.program(), b);
  hw::Platform::instance().write32(isa::reg::FAULT_INJECT, 2);
  hw::Platform::instance().write32(isa::reg::FAULT_ARG, 1);
  Request hung = blocking.submit(input_of(g, 3));
  const Error timeout = error_of([&] { blocking.submit(input_of(g, 4)); });
  EXPECT_EQ(timeout.code(), ErrorCode::kTimeout);
  EXPECT_NE(std::string(timeout.what()).find("queue timeout"), std::string::npos) << timeout.what();
  EXPECT_EQ(hung.wait(60.0), RequestState::kError);
  // After the reset the device serves requests again.
  const TensorMap in = input_of(g, 5);
  Request ok = s.submit(in);
  EXPECT_EQ(ok.wait(60.0), RequestState::kCompleted);
  EXPECT_EQ(ok.outputs().at("y").to_vector<int8_t>(), expected_of(g, in));
}

TEST(Session, InvalidInputsAreRejectedBeforeAnythingIsQueued) {
  const ConvLayer g = layer(5);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const Tensor good = input_of(g, 1).at("x");
  const Error name = error_of([&] { s.submit({{"x", good}, {"q", good}}); });
  EXPECT_EQ(name.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(name.what()).find("'q'"), std::string::npos) << name.what();
  const Error missing = error_of([&] { s.submit({}); });
  EXPECT_EQ(missing.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(missing.what()).find("'x' is missing"), std::string::npos) << missing.what();
  const Error shape = error_of([&] { s.submit({{"x", Tensor(DType::kInt8, {1, 3, 8, 9})}}); });
  EXPECT_EQ(shape.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(shape.what()).find("[1, 3, 8, 9]"), std::string::npos) << shape.what();
  const Error dtype = error_of([&] { s.submit({{"x", good.cast(DType::kInt32)}}); });
  EXPECT_EQ(dtype.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(dtype.what()).find("int32"), std::string::npos) << dtype.what();
  EXPECT_EQ(s.in_flight(), 0u);
  EXPECT_EQ(s.stats().completed + s.stats().failed, 0u);
}

TEST(Session, BadOptionsAndProgramDeviceMismatchAreInvalidArguments) {
  const ConvLayer g = layer(6);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  SessionOptions o;
  o.queue_depth = 0;
  EXPECT_EQ(error_of([&] { Session(dev, g.program(), o); }).code(), ErrorCode::kInvalidArgument);
  o.queue_depth = 64;
  EXPECT_EQ(error_of([&] { Session(dev, g.program(), o); }).code(), ErrorCode::kInvalidArgument);
  o.queue_depth = 1;
  o.timeout_s = 0;
  EXPECT_EQ(error_of([&] { Session(dev, g.program(), o); }).code(), ErrorCode::kInvalidArgument);
  // A program compiled for the fused pair on a device of independent PEs, and the other way round.
  Device two = Device::open("warboy(2)*1", hw::HwConfig::preset("warboy-2pe"));
  const Error mismatch = error_of([&] { Session(two, g.program(2)); });
  EXPECT_EQ(mismatch.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(mismatch.what()).find("program/device mismatch"), std::string::npos) << mismatch.what();
  Device fused = Device::open("npu0pe0-1", hw::HwConfig::preset("warboy-2pe"));
  EXPECT_EQ(error_of([&] { Session(fused, g.program(1)); }).code(), ErrorCode::kInvalidArgument);
}

TEST(Session, ClosedSessionAndClosedDeviceAreClosedErrors) {
  const ConvLayer g = layer(7);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const TensorMap in = input_of(g, 1);
  Request r = s.submit(in);
  s.close();  // waits for r
  EXPECT_EQ(r.state(), RequestState::kCompleted);
  const Error closed = error_of([&] { s.submit(in); });
  EXPECT_EQ(closed.code(), ErrorCode::kClosed);
  EXPECT_NE(std::string(closed.what()).find("session closed"), std::string::npos) << closed.what();
  EXPECT_EQ(error_of([&] { s.run(in); }).code(), ErrorCode::kClosed);
  EXPECT_EQ(error_of([&] { s.receive(0.0); }).code(), ErrorCode::kClosed);
  Session moved_to = Session(dev, g.program());
  Session other(std::move(moved_to));
  EXPECT_EQ(error_of([&] { moved_to.submit(in); }).code(), ErrorCode::kClosed);  // NOLINT: use after move is the test
  dev.close();
  EXPECT_EQ(error_of([&] { other.submit(in); }).code(), ErrorCode::kClosed);
}

TEST(DeviceSpec, ParsesEveryFormAndTheEnvironmentDefault) {
  EXPECT_EQ(parse_device_spec("warboy(1)*1"), (std::vector<uint32_t>{1}));
  EXPECT_EQ(parse_device_spec("warboy(2)*1"), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(parse_device_spec("warboy(1)*2"), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(parse_device_spec("npu0pe0"), (std::vector<uint32_t>{1}));
  EXPECT_EQ(parse_device_spec("npu0pe1"), (std::vector<uint32_t>{2}));
  EXPECT_EQ(parse_device_spec("npu0pe0-1"), (std::vector<uint32_t>{3}));
  EXPECT_EQ(parse_device_spec("npu0pe1,npu0pe0"), (std::vector<uint32_t>{2, 1}));
  EXPECT_EQ(parse_device_spec("warboy-2pe"), (std::vector<uint32_t>{3}));
  for (const char* bad : {"warboy(3)*1", "warboy(2)*2", "warboy(0)*1", "npu0pe2", "npu0pe1-1", "gpu0", "npu0pe0,",
                          "npu0pe0,npu0pe0", "npu0pe0-1,npu0pe1", "warboy(1)*1,npu0pe0"}) {
    const Error e = error_of([&] { parse_device_spec(bad); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(e.what()).find("device spec"), std::string::npos) << e.what();
  }
  const char* saved = std::getenv("ANVIL_DEVICES");
  const std::string saved_value = saved ? saved : "";
  setenv("ANVIL_DEVICES", "npu0pe1", 1);
  EXPECT_EQ(parse_device_spec(""), (std::vector<uint32_t>{2}));
  Device dev = Device::open("", hw::HwConfig::preset("warboy-2pe"));
  EXPECT_EQ(dev.spec(), "npu0pe1");
  EXPECT_EQ(dev.units(), (std::vector<uint32_t>{2}));
  unsetenv("ANVIL_DEVICES");
  EXPECT_EQ(parse_device_spec(""), (std::vector<uint32_t>{1}));
  if (saved) setenv("ANVIL_DEVICES", saved_value.c_str(), 1);
  EXPECT_EQ(discover(hw::HwConfig::preset("warboy")), (std::vector<std::string>{"npu0pe0"}));
  EXPECT_EQ(discover(hw::HwConfig::preset("warboy-2pe")), (std::vector<std::string>{"npu0pe0", "npu0pe1", "npu0pe0-1"}));
  // A spec naming PE 1 needs a two-PE configuration.
  EXPECT_EQ(error_of([] { Device::open("warboy(2)*1", hw::HwConfig::preset("warboy")); }).code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace anvil::rt

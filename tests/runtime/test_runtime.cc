// End-to-end through the runtime: hand-written programs on the simulated chip, checked against
// expectations computed directly with common/requant.h.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "anvil/common/requant.h"
#include "anvil/hw/platform.h"
#include "anvil/isa/device.h"
#include "anvil/runtime/runtime.h"
#include "program_builder.h"

namespace anvil::rt {
namespace {

using anvil::testing::ConvLayer;
using anvil::testing::random_int8;

std::vector<int8_t> to_vec(const Tensor& t) { return t.to_vector<int8_t>(); }

Tensor input_tensor(const ConvLayer& g, const std::vector<int8_t>& x) {
  return Tensor::from_vector<int8_t>({g.n, g.ic, g.h, g.w}, x);
}

template <typename F>
ErrorCode code_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return static_cast<ErrorCode>(-1);
}

template <typename F>
std::string message_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Runtime, OneConvLayerMatchesTheDirectComputation) {
  ConvLayer g;
  g.ic = 5, g.h = 9, g.w = 7, g.oc = 6, g.kh = 3, g.kw = 3, g.stride = 2, g.pad = 1;
  g = ConvLayer::random(1, g);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 2);
  TensorMap out = s.run({{"x", input_tensor(g, x)}});
  ASSERT_EQ(out.count("y"), 1u);
  EXPECT_EQ(out["y"].shape(), (Shape{1, 6, g.oh(), g.ow()}));
  EXPECT_EQ(to_vec(out["y"]), g.expected(x));
  const RunStats& st = s.last_stats();
  EXPECT_GT(st.cycles, 0u);
  EXPECT_GT(st.request_cycles, st.cycles);  // the request adds PCIe transfers and firmware work
  EXPECT_EQ(st.macs, static_cast<uint64_t>(6) * g.oh() * g.ow() * 5 * 9);
  EXPECT_GT(st.mac_utilization, 0.0);
  EXPECT_LT(st.mac_utilization, 1.0);
  EXPECT_NEAR(st.latency_us, st.request_cycles / 2000.0, 1e-9);
}

TEST(Runtime, GroupedDilatedConvWithReluClampAndBatch) {
  ConvLayer g;
  g.n = 2, g.ic = 4, g.h = 10, g.w = 11, g.oc = 8, g.kh = 3, g.kw = 2, g.stride = 1, g.pad = 2, g.groups = 2;
  g.dilation = 2, g.act_min = g.out_zp, g.act_max = 100;
  g = ConvLayer::random(3, g);
  Device dev = Device::open("npu0pe0", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 4);
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}})["y"]), g.expected(x));
}

TEST(Runtime, FloatInputsAreQuantizedWithTheDescriptor) {
  ConvLayer g = ConvLayer::random(5, ConvLayer{});
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const isa::TensorDesc& d = s.program().inputs[0];
  std::vector<float> xf(g.n * g.ic * g.h * g.w);
  std::vector<int8_t> xq(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) {
    xf[i] = 0.037f * static_cast<float>(static_cast<int>(i % 97) - 48);
    xq[i] = math::quantize_float(xf[i], d.scale, d.zero_point);
  }
  const auto out = s.run({{"x", Tensor::from_vector<float>({g.n, g.ic, g.h, g.w}, xf)}});
  EXPECT_EQ(to_vec(out.at("y")), g.expected(xq));
}

TEST(Runtime, SameProgramAndInputGiveSameOutputsAndCycles) {
  ConvLayer g = ConvLayer::random(6, ConvLayer{});
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 7);
  std::vector<std::vector<int8_t>> outs;
  std::vector<uint64_t> cycles, request_cycles;
  for (int open = 0; open < 2; ++open) {
    Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
    Session s(dev, g.program());
    for (int r = 0; r < 3; ++r) {
      outs.push_back(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")));
      cycles.push_back(s.last_stats().cycles);
      request_cycles.push_back(s.last_stats().request_cycles);
    }
  }
  for (size_t i = 1; i < outs.size(); ++i) {
    EXPECT_EQ(outs[i], outs[0]);
    EXPECT_EQ(cycles[i], cycles[0]);
  }
  // A session's first request also validates the image (CRC over the whole program in DRAM);
  // later requests reuse that. Per position the two opens agree exactly.
  for (size_t r = 0; r < 3; ++r) EXPECT_EQ(request_cycles[r], request_cycles[r + 3]) << "request " << r;
  EXPECT_GT(request_cycles[0], request_cycles[1]);
  EXPECT_EQ(request_cycles[1], request_cycles[2]);
}

TEST(Runtime, OpenCloseReopenManyTimes) {
  ConvLayer g = ConvLayer::random(8, ConvLayer{});
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 9);
  const auto want = g.expected(x);
  Device previous;
  for (int i = 0; i < 25; ++i) {
    hw::HwConfig cfg = hw::HwConfig::preset(i % 2 ? "warboy-2pe" : "warboy");
    Device dev = Device::open(i % 3 == 2 ? "npu0pe0" : "warboy(1)*1", cfg);
    EXPECT_TRUE(static_cast<bool>(dev));
    {
      Session s(dev, g.program());
      EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), want) << "open #" << i;
    }
    if (previous) { EXPECT_EQ(code_of([&] { Session(previous, g.program()); }), ErrorCode::kClosed); }
    dev.close();
    EXPECT_FALSE(static_cast<bool>(dev));
    EXPECT_EQ(code_of([&] { Session(dev, g.program()); }), ErrorCode::kClosed);
    previous = dev;
  }
}

TEST(Runtime, OfTwoDevicesOpenedAtOnceOnlyTheLaterOwnsTheChip) {
  for (int round = 0; round < 20; ++round) {
    Device devices[2];
    std::atomic<int> ready{0};
    auto open = [&](int i) {
      ready++;
      while (ready < 2) std::this_thread::yield();
      devices[i] = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
    };
    std::thread a(open, 0), b(open, 1);
    a.join();
    b.join();
    // Exactly one reset came last: that device works, the other was reset under it.
    int usable = 0;
    for (const Device& d : devices) usable += code_of([&] { d.counters(); }) == static_cast<ErrorCode>(-1);
    EXPECT_EQ(usable, 1) << "round " << round;
  }
}

TEST(Runtime, WrongInputsAreClearErrors) {
  ConvLayer g = ConvLayer::random(10, ConvLayer{});
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 11);
  const std::string shape_msg = message_of([&] { s.run({{"x", Tensor::from_vector<int8_t>({1, 3, 64}, x)}}); });
  EXPECT_NE(shape_msg.find("'x'"), std::string::npos) << shape_msg;
  EXPECT_NE(shape_msg.find("[1, 3, 64]"), std::string::npos) << shape_msg;
  EXPECT_NE(shape_msg.find("[1, 3, 8, 8]"), std::string::npos) << shape_msg;
  EXPECT_EQ(code_of([&] { s.run({{"x", Tensor::from_vector<int8_t>({1, 3, 64}, x)}}); }), ErrorCode::kInvalidArgument);
  const Tensor as_int32 = input_tensor(g, x).cast(DType::kInt32);
  const std::string dtype_msg = message_of([&] { s.run({{"x", as_int32}}); });
  EXPECT_NE(dtype_msg.find("int32"), std::string::npos) << dtype_msg;
  EXPECT_EQ(code_of([&] { s.run({{"x", as_int32}}); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { s.run({}); }), ErrorCode::kInvalidArgument);
  const std::string name_msg = message_of([&] { s.run({{"x", input_tensor(g, x)}, {"z", input_tensor(g, x)}}); });
  EXPECT_NE(name_msg.find("'z'"), std::string::npos) << name_msg;
  // A float input is quantized on the host; int8 has no code for NaN or infinity.
  for (const float bad : {NAN, INFINITY}) {
    Tensor f = input_tensor(g, x).cast(DType::kFloat32);
    f.data<float>()[5] = bad;
    const std::string msg = message_of([&] { s.run({{"x", f}}); });
    EXPECT_NE(msg.find("input 'x' has " + std::string(std::isnan(bad) ? "a NaN" : "an infinite value") + " at element 5"),
              std::string::npos) << msg;
    EXPECT_EQ(code_of([&] { s.run({{"x", f}}); }), ErrorCode::kInvalidArgument);
  }
  // The session still works afterwards.
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
}

TEST(Runtime, BadSpecsAndPeMismatchesAreRejected) {
  const hw::HwConfig one = hw::HwConfig::preset("warboy");
  EXPECT_EQ(code_of([&] { Device::open("warboy(3)*1", one); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { Device::open("gpu0", one); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { Device::open("warboy-2pe", one); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { Device::open("npu0pe1", one); }), ErrorCode::kInvalidArgument);
  hw::HwConfig bad = one;
  bad.mac_rows = 0;
  EXPECT_NE(message_of([&] { Device::open("warboy(1)*1", bad); }).find("mac_rows"), std::string::npos);
  ConvLayer g = ConvLayer::random(12, ConvLayer{});
  Device dev = Device::open("warboy(1)*1", one);
  EXPECT_EQ(code_of([&] { Session(dev, g.program(2)); }), ErrorCode::kInvalidArgument);
  Device pair = Device::open("npu0pe0-1", hw::HwConfig::preset("warboy-2pe"));
  EXPECT_EQ(code_of([&] { Session(pair, g.program(1)); }), ErrorCode::kInvalidArgument);
}

TEST(Runtime, AProgramBeyondTheDevicesInstructionMemoryOrSramIsNamed) {
  // The firmware would refuse both as "bad program (ERROR_INFO 0x00000000)".
  ConvLayer g = ConvLayer::random(12, ConvLayer{});
  const isa::Program p = g.program(1);
  ASSERT_GE(p.instructions.size(), 2u);
  hw::HwConfig small = hw::HwConfig::preset("warboy");
  small.instr_mem_bytes = (p.instructions.size() - 1) * sizeof(isa::Instruction);
  {
    Device dev = Device::open("warboy(1)*1", small);
    const std::string m = message_of([&] { Session(dev, p); });
    EXPECT_NE(m.find("instr_mem_bytes"), std::string::npos) << m;
    EXPECT_EQ(code_of([&] { Session(dev, p); }), ErrorCode::kInvalidArgument);
  }
  ASSERT_GT(p.sram_bytes, 1024u);
  hw::HwConfig little_sram = hw::HwConfig::preset("warboy");
  little_sram.sram_per_slice = 1024;
  little_sram.slices_per_pe = static_cast<uint32_t>((p.sram_bytes - 1) / 1024);
  if (little_sram.slices_per_pe == 0) little_sram.slices_per_pe = 1;
  Device dev = Device::open("warboy(1)*1", little_sram);
  const std::string m = message_of([&] { Session(dev, p); });
  EXPECT_NE(m.find("bytes of SRAM"), std::string::npos) << m;
}

TEST(Runtime, SecondPeAndFusedPairComputeTheSame) {
  ConvLayer g;
  g.ic = 8, g.h = 16, g.w = 16, g.oc = 16;
  g = ConvLayer::random(13, g);
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 14);
  const hw::HwConfig two = hw::HwConfig::preset("warboy-2pe");
  uint64_t single_cycles = 0;
  {
    Device pe1 = Device::open("npu0pe1", two);
    Session s(pe1, g.program(1));
    EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
    single_cycles = s.last_stats().cycles;
    EXPECT_EQ(pe1.counters()["pe1"]["runs"], 1);
    EXPECT_EQ(pe1.counters()["pe0"]["runs"], 0);
  }
  Device pair = Device::open("warboy-2pe", two);
  Session s(pair, g.program(2));
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
  EXPECT_LT(s.last_stats().cycles, single_cycles);  // twice the slices for the conv
}

TEST(Runtime, InjectedDmaFaultIsADeviceFaultAndTheRuntimeResetsTheDevice) {
  ConvLayer g = ConvLayer::random(15, ConvLayer{});
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 16);
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, g.program());
  hw::Platform& p = hw::Platform::instance();
  p.write32(isa::reg::FAULT_INJECT, 1);
  p.write32(isa::reg::FAULT_ARG, 2);
  const std::string msg = message_of([&] { s.run({{"x", input_tensor(g, x)}}); });
  EXPECT_NE(msg.find("device fault: DMA fault"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reset"), std::string::npos) << msg;
  EXPECT_EQ(dev.recoveries(), 1u);
  // The reset cleared the latched error and the fault-injection register; the device works again.
  EXPECT_FALSE(p.read32(isa::reg::STATUS) & isa::field::STATUS_ERROR_MASK);
  EXPECT_EQ(p.read32(isa::reg::FAULT_INJECT), 0u);
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
  p.write32(isa::reg::FAULT_INJECT, 1);
  p.write32(isa::reg::FAULT_ARG, 1);
  EXPECT_EQ(code_of([&] { s.run({{"x", input_tensor(g, x)}}); }), ErrorCode::kDeviceError);
  EXPECT_EQ(dev.recoveries(), 2u);
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
}

TEST(Runtime, HungPeIsCaughtByTheWatchdog) {
  ConvLayer g = ConvLayer::random(17, ConvLayer{});
  hw::HwConfig cfg = hw::HwConfig::preset("warboy");
  cfg.watchdog_cycles = 1000000;
  Device dev = Device::open("warboy(1)*1", cfg);
  Session s(dev, g.program());
  hw::Platform::instance().write32(isa::reg::FAULT_INJECT, 2);
  hw::Platform::instance().write32(isa::reg::FAULT_ARG, 4);  // the conv never finishes
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 18);
  const std::string msg = message_of([&] { s.run({{"x", input_tensor(g, x)}}); });
  EXPECT_NE(msg.find("device fault: PE timeout"), std::string::npos) << msg;
  EXPECT_EQ(dev.recoveries(), 1u);
  hw::Platform::instance().write32(isa::reg::FAULT_INJECT, 2);
  hw::Platform::instance().write32(isa::reg::FAULT_ARG, 1);
  EXPECT_EQ(code_of([&] { s.run({{"x", input_tensor(g, x)}}); }), ErrorCode::kDeviceError);
  EXPECT_EQ(dev.counters()["command_processor"]["watchdog_timeouts"], 2);
  EXPECT_EQ(to_vec(s.run({{"x", input_tensor(g, x)}}).at("y")), g.expected(x));
}

TEST(Runtime, InvalidInstructionIsABadProgramError) {
  ConvLayer g = ConvLayer::random(19, ConvLayer{});
  isa::Program p = g.program();
  p.instructions[3].conv.out_addr = 0xFFFFFF00u;  // outside SRAM
  Device dev = Device::open("warboy(1)*1", hw::HwConfig::preset("warboy"));
  Session s(dev, p);
  const auto x = random_int8(g.n * g.ic * g.h * g.w, 20);
  const std::string msg = message_of([&] { s.run({{"x", input_tensor(g, x)}}); });
  EXPECT_NE(msg.find("bad program"), std::string::npos) << msg;
}

}  // namespace
}  // namespace anvil::rt

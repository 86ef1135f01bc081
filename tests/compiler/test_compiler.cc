// The compiler's lowering of hand-built integer graphs: instruction fields carry the graph's
// parameters exactly, DRAM/IO/SRAM planning, determinism, errors.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "anvil/compiler/compiler.h"
#include "graph_builder_for_tests.h"
#include "isa_interpreter_for_tests.h"

using namespace anvil;
using anvil::testing::GraphBuilder;

namespace {

compiler::CompileResult compile_ok(const ref::Int8Graph& g, const std::string& target = "warboy") {
  compiler::CompileOptions o;
  o.target = compiler::Target::from_name(target);
  o.model_name = "hand-built";
  auto r = compiler::compile_graph(g, o);
  if (!r) ADD_FAILURE() << r.error().what();
  return std::move(r).value();
}

Error compile_error(const ref::Int8Graph& g, const std::string& target = "warboy") {
  compiler::CompileOptions o;
  o.target = compiler::Target::from_name(target);
  o.host_fallback = false;  // the NPU-only compile's errors (test_partition.cc covers the fallback)
  auto r = compiler::compile_graph(g, o);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error(ErrorCode::kInternal, "compiled") : r.error();
}

std::vector<isa::Instruction> with_opcode(const isa::Program& p, isa::Opcode op) {
  std::vector<isa::Instruction> out;
  for (const auto& i : p.instructions)
    if (i.opcode == op) out.push_back(i);
  return out;
}

/// The DMA load that fills SRAM address `sram` (the most recent one before instruction `before`).
const isa::Instruction& load_of(const isa::Program& p, uint32_t sram, size_t before) {
  for (size_t i = before; i-- > 0;) {
    const auto& d = p.instructions[i];
    if (d.opcode == isa::Opcode::kDmaLoad && d.dma.sram_addr <= sram && sram < d.dma.sram_addr + d.dma.row_bytes)
      return d;
  }
  throw std::runtime_error("no load for SRAM address " + std::to_string(sram));
}

size_t index_of(const isa::Program& p, isa::Opcode op) {
  for (size_t i = 0; i < p.instructions.size(); ++i)
    if (p.instructions[i].opcode == op) return i;
  return p.instructions.size();
}

/// Bytes of the constant section that the program loads into SRAM address `sram`.
std::vector<uint8_t> constant_bytes(const isa::Program& p, uint32_t sram, size_t bytes, size_t before) {
  const isa::Instruction& load = load_of(p, sram, before);
  EXPECT_EQ(load.dma.region, static_cast<uint8_t>(isa::Region::kConst));
  const uint64_t off = load.dma.dram_offset + (sram - load.dma.sram_addr);
  EXPECT_LE(off + bytes, p.constants.size());
  return std::vector<uint8_t>(p.constants.begin() + off, p.constants.begin() + off + bytes);
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

/// input 1x4x7x9 -> conv 3x3 stride 2 pads (1,1,1,1) groups 2 -> 1x6x4x5
GraphBuilder strided_grouped_conv() {
  GraphBuilder b(7);
  const int x = b.input("image", {1, 4, 7, 9}, 0.02f, -5);
  const int y = b.value("conv_out", {1, 6, 4, 5}, 0.1f, 3);
  b.conv("conv0", x, y, 2, {3, 3}, {2, 2}, {1, 1, 1, 1});
  b.output(y, "features");
  return b;
}

}  // namespace

TEST(Target, Presets) {
  const auto one = compiler::Target::from_name("warboy");
  const auto two = compiler::Target::from_name("warboy-2pe");
  EXPECT_EQ(one.num_pes, 1);
  EXPECT_EQ(two.num_pes, 2);
  EXPECT_EQ(one.sram_capacity(), uint64_t(one.slices_per_pe) * one.sram_per_slice);
  EXPECT_EQ(two.sram_capacity(), 2 * one.sram_capacity());
  EXPECT_GT(one.mac_rows * one.mac_cols, 0);
}

TEST(Target, UnknownNameListsValidTargets) {
  try {
    compiler::Target::from_name("tpu");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string m = e.what();
    EXPECT_NE(m.find("tpu"), std::string::npos);
    EXPECT_NE(m.find("warboy-2pe"), std::string::npos);
  }
}

TEST(Compiler, ConvInstructionCarriesTheGraphParameters) {
  GraphBuilder b = strided_grouped_conv();
  const ref::Int8Op op = b.graph().ops[0];
  const auto r = compile_ok(b.graph());
  const isa::Program& p = r.program;
  // load input, load constants, conv, store
  ASSERT_EQ(p.instructions.size(), 4u);
  const size_t at = index_of(p, isa::Opcode::kConv);
  const isa::ConvArgs& c = p.instructions[at].conv;
  EXPECT_EQ(c.n, 1);
  EXPECT_EQ(c.in_c, 4);
  EXPECT_EQ(c.in_h, 7);
  EXPECT_EQ(c.in_w, 9);
  EXPECT_EQ(c.out_c, 6);
  EXPECT_EQ(c.out_h, 4);
  EXPECT_EQ(c.out_w, 5);
  EXPECT_EQ(c.kernel_h, 3);
  EXPECT_EQ(c.kernel_w, 3);
  EXPECT_EQ(c.stride_h, 2);
  EXPECT_EQ(c.stride_w, 2);
  EXPECT_EQ(c.pad_top, 1);
  EXPECT_EQ(c.pad_left, 1);
  EXPECT_EQ(c.dilation_h, 1);
  EXPECT_EQ(c.groups, 2);
  EXPECT_EQ(c.in_zero_point, -5);
  EXPECT_EQ(c.out_zero_point, 3);
  EXPECT_EQ(c.act_min, 3);
  EXPECT_EQ(c.act_max, 127);
  // The constants the program loads are exactly the op's weight, bias, multipliers and shifts.
  std::vector<uint8_t> weight(op.weight.raw(), op.weight.raw() + op.weight.nbytes());
  EXPECT_EQ(constant_bytes(p, c.weight_addr, weight.size(), at), weight);
  EXPECT_EQ(constant_bytes(p, c.bias_addr, 24, at), as_bytes(op.bias.to_vector<int32_t>()));
  std::vector<int32_t> mult, shift;
  for (const auto& q : op.multipliers) mult.push_back(q.multiplier), shift.push_back(q.shift);
  EXPECT_EQ(constant_bytes(p, c.mult_addr, 24, at), as_bytes(mult));
  EXPECT_EQ(constant_bytes(p, c.shift_addr, 24, at), as_bytes(shift));
  for (uint32_t a : {c.in_addr, c.weight_addr, c.bias_addr, c.mult_addr, c.shift_addr, c.out_addr}) EXPECT_EQ(a % 64, 0u);
  // The input comes from the IO region at the input's offset; the output goes to the output's.
  const isa::Instruction& in_load = load_of(p, c.in_addr, at);
  EXPECT_EQ(in_load.dma.region, static_cast<uint8_t>(isa::Region::kIo));
  EXPECT_EQ(in_load.dma.dram_offset, p.inputs[0].io_offset);
  EXPECT_EQ(in_load.dma.row_bytes * in_load.dma.rows, 4u * 7 * 9);
  const isa::Instruction& store = p.instructions.back();
  EXPECT_EQ(store.opcode, isa::Opcode::kDmaStore);
  EXPECT_EQ(store.dma.region, static_cast<uint8_t>(isa::Region::kIo));
  EXPECT_EQ(store.dma.dram_offset, p.outputs[0].io_offset);
  EXPECT_EQ(store.dma.sram_addr, c.out_addr);
  EXPECT_EQ(store.dma.row_bytes * store.dma.rows, 6u * 4 * 5);
  // Report: MACs of the layer, bytes moved, SRAM.
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].node, "conv0");
  EXPECT_EQ(r.layers[0].macs, uint64_t(6) * 4 * 5 * (4 / 2) * 3 * 3);
  EXPECT_EQ(r.layers[0].dram_bytes, 4u * 7 * 9 + 6 * 4 * 5 + load_of(p, c.weight_addr, at).dma.row_bytes);
  EXPECT_GE(r.layers[0].sram_bytes, 4u * 7 * 9 + 6 * 4 * 5 + 6 * 2 * 9 + 3 * 24);
  EXPECT_EQ(p.sram_bytes, r.layers[0].sram_bytes);
}

TEST(Compiler, IoDescriptors) {
  GraphBuilder b(3);
  const int x0 = b.input("left", {2, 3, 5, 5}, 0.03f, 4);
  const int x1 = b.input("right", {2, 3, 5, 5}, 0.07f, -9);
  const int s = b.value("sum", {2, 3, 5, 5}, 0.08f, 1);
  const int f = b.value("flat", {2, 75}, 0.08f, 1);
  b.add("add0", x0, x1, s);
  b.reshape("flatten0", s, f);
  b.output(f, "flat_out");
  b.output(s, "sum_out_unused_name");  // the same bytes as flat_out under another name: a copy of its own
  EXPECT_EQ(compile_ok(b.graph()).program.outputs.size(), 2u);  // test_compiler_gaps.cc runs such graphs
  b.graph().outputs.pop_back();
  b.graph().output_names.pop_back();

  const auto r = compile_ok(b.graph());
  const isa::Program& p = r.program;
  ASSERT_EQ(p.inputs.size(), 2u);
  ASSERT_EQ(p.outputs.size(), 1u);
  EXPECT_EQ(p.inputs[0].name, "left");
  EXPECT_EQ(p.inputs[0].io_offset, 0u);
  EXPECT_EQ(p.inputs[0].shape, (Shape{2, 3, 5, 5}));
  EXPECT_EQ(p.inputs[0].layout, isa::Layout::kNCHW);
  EXPECT_EQ(p.inputs[0].dtype, DType::kInt8);
  EXPECT_FLOAT_EQ(p.inputs[0].scale, 0.03f);
  EXPECT_EQ(p.inputs[0].zero_point, 4);
  EXPECT_EQ(p.inputs[1].name, "right");
  EXPECT_EQ(p.inputs[1].io_offset, 192u);  // 150 bytes rounded up to 64
  EXPECT_EQ(p.inputs[1].zero_point, -9);
  EXPECT_EQ(p.outputs[0].name, "flat_out");
  EXPECT_EQ(p.outputs[0].layout, isa::Layout::kNC);
  EXPECT_EQ(p.outputs[0].shape, (Shape{2, 75}));
  EXPECT_EQ(p.outputs[0].io_offset, 384u);
  EXPECT_EQ(p.outputs[0].zero_point, 1);
  EXPECT_EQ(p.io_bytes, 576u);
  EXPECT_EQ(p.batch, 2u);
  EXPECT_EQ(p.scratch_bytes, 0u);  // the add writes straight into the output (reshape aliases it)
  // Reshape emits nothing: load, load, add, store.
  EXPECT_EQ(p.instructions.size(), 4u);
  EXPECT_EQ(p.instructions.back().dma.dram_offset, 384u);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_EQ(r.layers[1].op, ref::int8_op_name(ref::Int8OpKind::kReshape));
  EXPECT_EQ(r.layers[1].dram_bytes, 0u);
}

TEST(Compiler, AddPoolRequantFields) {
  GraphBuilder b(5);
  const int x = b.input("x", {1, 8, 6, 6}, 0.05f, -2);
  const int m = b.value("max", {1, 8, 3, 3}, 0.05f, -2);
  const int a = b.value("avg", {1, 8, 2, 2}, 0.02f, 7);
  const int g = b.value("gap", {1, 8, 1, 1}, 0.01f, -1);
  const int r = b.value("rq", {1, 8, 1, 1}, 0.03f, 2);
  const int s = b.value("sum", {1, 8, 1, 1}, 0.04f, 0);
  b.pool(ref::Int8OpKind::kMaxPool, "maxpool", x, m, {3, 3}, {2, 2}, {1, 1, 0, 0});
  b.pool(ref::Int8OpKind::kAvgPool, "avgpool", m, a, {2, 2}, {1, 1});
  b.pool(ref::Int8OpKind::kAvgPool, "gap", a, g, {2, 2}, {1, 1});
  b.requant("relu6", g, r);
  b.add("residual", g, r, s);
  b.output(s, "y");
  const ref::Int8Graph graph = b.graph();
  const isa::Program p = compile_ok(graph).program;

  const auto pools = with_opcode(p, isa::Opcode::kMaxPool);
  ASSERT_EQ(pools.size(), 1u);
  const isa::PoolArgs& mp = pools[0].pool;
  EXPECT_EQ(mp.c, 8);
  EXPECT_EQ(mp.in_h, 6);
  EXPECT_EQ(mp.out_h, 3);
  EXPECT_EQ(mp.kernel_h, 3);
  EXPECT_EQ(mp.stride_w, 2);
  EXPECT_EQ(mp.pad_top, 1);
  EXPECT_EQ(mp.pad_left, 1);
  const auto avgs = with_opcode(p, isa::Opcode::kAvgPool);
  ASSERT_EQ(avgs.size(), 2u);
  EXPECT_EQ(avgs[0].pool.mult, graph.ops[1].multiplier.multiplier);
  EXPECT_EQ(avgs[0].pool.shift, graph.ops[1].multiplier.shift);
  EXPECT_EQ(avgs[0].pool.in_zero_point, -2);
  EXPECT_EQ(avgs[0].pool.out_zero_point, 7);
  EXPECT_EQ(avgs[0].pool.count_include_pad, 1);
  EXPECT_EQ(avgs[1].pool.kernel_h, 2);  // global: the whole 2x2 input
  EXPECT_EQ(avgs[1].pool.out_w, 1);
  const auto rq = with_opcode(p, isa::Opcode::kRequant);
  ASSERT_EQ(rq.size(), 1u);
  EXPECT_EQ(rq[0].requant.count, 8u);
  EXPECT_EQ(rq[0].requant.in_zero_point, -1);
  EXPECT_EQ(rq[0].requant.out_zero_point, 2);
  EXPECT_EQ(rq[0].requant.mult, graph.ops[3].multiplier.multiplier);
  EXPECT_EQ(rq[0].requant.shift, graph.ops[3].multiplier.shift);
  EXPECT_EQ(rq[0].requant.act_min, -50);
  EXPECT_EQ(rq[0].requant.act_max, 90);
  const auto adds = with_opcode(p, isa::Opcode::kAdd);
  ASSERT_EQ(adds.size(), 1u);
  const math::AddParams& ap = graph.ops[4].add;
  EXPECT_EQ(adds[0].add.count, 8u);
  EXPECT_EQ(adds[0].add.a_zero_point, ap.a_zero_point);
  EXPECT_EQ(adds[0].add.b_zero_point, ap.b_zero_point);
  EXPECT_EQ(adds[0].add.out_zero_point, ap.out_zero_point);
  EXPECT_EQ(adds[0].add.a_mult, ap.a.multiplier);
  EXPECT_EQ(adds[0].add.a_shift, ap.a.shift);
  EXPECT_EQ(adds[0].add.b_mult, ap.b.multiplier);
  EXPECT_EQ(adds[0].add.b_shift, ap.b.shift);
  EXPECT_EQ(adds[0].add.out_mult, ap.out.multiplier);
  EXPECT_EQ(adds[0].add.out_shift, ap.out.shift);
  EXPECT_EQ(adds[0].add.act_min, -100);
  EXPECT_EQ(adds[0].add.act_max, 127);
  EXPECT_NE(adds[0].add.a_addr, adds[0].add.b_addr);
}

TEST(Compiler, GemmAsOneByOneConv) {
  GraphBuilder b(11);
  const int x = b.input("features", {3, 20}, 0.1f, 0);
  const int y = b.value("logits_q", {3, 10}, 0.2f, -4);
  b.conv("fc", x, y, 1, {1, 1});
  b.output(y, "logits");
  const isa::Program p = compile_ok(b.graph()).program;
  const auto convs = with_opcode(p, isa::Opcode::kConv);
  ASSERT_EQ(convs.size(), 1u);
  EXPECT_EQ(convs[0].conv.n, 3);
  EXPECT_EQ(convs[0].conv.in_c, 20);
  EXPECT_EQ(convs[0].conv.in_h, 1);
  EXPECT_EQ(convs[0].conv.out_c, 10);
  EXPECT_EQ(convs[0].conv.out_w, 1);
  EXPECT_EQ(p.inputs[0].layout, isa::Layout::kNC);
  EXPECT_EQ(p.outputs[0].shape, (Shape{3, 10}));
  EXPECT_EQ(p.batch, 3u);
}

TEST(Compiler, ScratchIsReusedAcrossLifetimes) {
  // A chain of five convs: at most two intermediates are alive at once.
  GraphBuilder b(13);
  int v = b.input("x", {1, 16, 10, 10});
  for (int i = 0; i < 5; ++i) {
    const int out = b.value("t" + std::to_string(i), {1, 16, 10, 10}, 0.05f, 1);
    b.conv("conv" + std::to_string(i), v, out, 1, {3, 3}, {1, 1}, {1, 1, 1, 1});
    v = out;
  }
  b.output(v, "y");
  const isa::Program p = compile_ok(b.graph()).program;
  EXPECT_EQ(p.scratch_bytes, 2u * 1600);  // 4 intermediates, 2 alive at a time
  for (const auto& i : p.instructions) {
    if (i.opcode == isa::Opcode::kDmaStore && i.dma.region == static_cast<uint8_t>(isa::Region::kScratch)) {
      EXPECT_LE(i.dma.dram_offset + i.dma.row_bytes, p.scratch_bytes);
    }
  }
}

TEST(Compiler, DeterministicBytes) {
  GraphBuilder b = strided_grouped_conv();
  const std::string one = compile_ok(b.graph()).program.serialize();
  const std::string two = compile_ok(b.graph()).program.serialize();
  EXPECT_EQ(one, two);
}

TEST(Compiler, SerializeParseRoundTrip) {
  GraphBuilder b = strided_grouped_conv();
  const auto r = compile_ok(b.graph(), "warboy-2pe");
  const std::string bytes = r.program.serialize();
  const isa::Program q = isa::Program::parse(bytes, "compiled");
  EXPECT_EQ(q.num_pes, 2);
  EXPECT_EQ(q.instructions.size(), r.program.instructions.size());
  EXPECT_EQ(std::memcmp(q.instructions.data(), r.program.instructions.data(),
                        q.instructions.size() * sizeof(isa::Instruction)),
            0);
  EXPECT_EQ(q.constants, r.program.constants);
  EXPECT_EQ(q.outputs[0].io_offset, r.program.outputs[0].io_offset);
  EXPECT_EQ(q.sram_bytes, r.program.sram_bytes);
  EXPECT_EQ(q.serialize(), bytes);
  const auto meta = nlohmann::json::parse(q.metadata);
  EXPECT_EQ(meta.at("model"), "hand-built");
  EXPECT_EQ(meta.at("target"), "warboy-2pe");
  EXPECT_EQ(meta.at("batch"), 1);
  ASSERT_EQ(meta.at("layers").size(), 1u);
  EXPECT_EQ(meta.at("layers")[0].at("node"), "conv0");
  EXPECT_EQ(meta.at("layers")[0].at("macs"), r.layers[0].macs);
}

TEST(Compiler, LayerLargerThanSramIsTiled) {
  // 1 x 128 x 256 x 256 in and out (8 MiB each): over one PE's 16 MiB with the weights, so it is
  // tiled there; it fits the fused pair's 32 MiB whole.
  GraphBuilder b(17);
  const int x = b.input("x", {1, 128, 256, 256});
  const int y = b.value("y", {1, 128, 256, 256});
  b.conv("big_conv", x, y, 128, {1, 1});
  b.output(y, "y");
  const compiler::CompileResult one = compile_ok(b.graph(), "warboy");
  int convs = 0;
  for (const auto& inst : one.program.instructions) convs += inst.opcode == isa::Opcode::kConv;
  EXPECT_GT(convs, 1);
  EXPECT_LE(one.program.sram_bytes, one.target.sram_capacity());
  EXPECT_EQ(one.layers[0].macs, 128u * 256 * 256);  // the tiles add up to the layer
  const compiler::CompileResult two = compile_ok(b.graph(), "warboy-2pe");
  convs = 0;
  for (const auto& inst : two.program.instructions) convs += inst.opcode == isa::Opcode::kConv;
  EXPECT_EQ(convs, 1);
}

TEST(Compiler, TileThatCannotFitNamesTheNode) {
  // One output row needs 2 x 600 input bytes + 600 output bytes; the target has 1 KiB.
  GraphBuilder b(18);
  const int x = b.input("x", {1, 1, 3, 600});
  const int y = b.value("y", {1, 1, 1, 600});
  b.conv("wide_conv", x, y, 1, {3, 1});
  b.output(y, "y");
  compiler::CompileOptions o;
  o.target = compiler::Target::from_name("warboy");
  o.target.slices_per_pe = 1;
  o.target.sram_per_slice = 1024;
  o.host_fallback = false;
  const auto r = compiler::compile_graph(b.graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  const std::string m = r.error().what();
  EXPECT_NE(m.find("node 'wide_conv'"), std::string::npos) << m;
  EXPECT_NE(m.find("does not fit 1024 bytes of SRAM"), std::string::npos) << m;
}

TEST(Compiler, AProgramBeyondTheInstructionMemoryIsAnErrorNamingIt) {
  // The firmware would refuse it as "bad program"; with host fallback too, the compile fails
  // instead of moving the segment to the host.
  const ref::Int8Graph g = strided_grouped_conv().graph();
  const uint64_t needed = compile_ok(g).program.instructions.size() * sizeof(isa::Instruction);
  for (const bool fallback : {false, true}) {
    compiler::CompileOptions o;
    o.target = compiler::Target::from_name("warboy");
    o.target.instr_mem_bytes = needed - sizeof(isa::Instruction);
    o.host_fallback = fallback;
    const auto r = compiler::compile_graph(g, o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    const std::string m = r.error().what();
    EXPECT_NE(m.find("instr_mem_bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("compile a smaller batch"), std::string::npos) << m;
    o.target.instr_mem_bytes = needed;
    EXPECT_TRUE(compiler::compile_graph(g, o).ok());
  }
}

TEST(Compiler, BadTargetIsRejected) {
  compiler::CompileOptions o;
  o.target.num_pes = 3;
  auto r = compiler::compile_graph(strided_grouped_conv().graph(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  o.target = compiler::Target::from_name("warboy");
  o.target.sram_per_slice = uint64_t{1} << 30;  // 64 GiB: beyond 32-bit SRAM addresses
  EXPECT_FALSE(compiler::compile_graph(strided_grouped_conv().graph(), o).ok());
}

TEST(Compiler, MalformedGraphsNameTheNode) {
  auto expect = [](ref::Int8Graph g, ErrorCode code, const std::string& needle) {
    const Error e = compile_error(g);
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  };
  {  // input index out of range
    GraphBuilder b = strided_grouped_conv();
    b.graph().ops[0].inputs[0] = 42;
    expect(b.graph(), ErrorCode::kInvalidArgument, "conv0");
  }
  {  // not topologically ordered
    GraphBuilder b(1);
    const int x = b.input("x", {1, 2, 4, 4});
    const int t = b.value("t", {1, 2, 4, 4});
    const int y = b.value("y", {1, 2, 4, 4});
    b.requant("second", t, y);
    b.requant("first", x, t);
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "second");
  }
  {  // weight that does not fit the input's channels
    GraphBuilder b = strided_grouped_conv();
    b.graph().ops[0].groups = 1;
    expect(b.graph(), ErrorCode::kInvalidArgument, "conv0");
  }
  {  // output shape inconsistent with the geometry
    GraphBuilder b = strided_grouped_conv();
    b.graph().ops[0].strides = {1, 1};
    expect(b.graph(), ErrorCode::kInvalidArgument, "conv0");
  }
  {  // a table lookup whose output has another element count than its input
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 4, 4});
    const int y = b.value("y", {1, 2, 4, 5}, 1.0f / 256.0f, -128);
    b.lut("sig", x, y);
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "node 'sig' (lut): input [1, 2, 4, 4] and output [1, 2, 4, 5] differ in size");
  }
  {  // a kernel larger than the padded input
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 2, 3});
    const int y = b.value("y", {1, 2, 1, 1});
    b.conv("too_small", x, y, 1, {3, 3}, {2, 2});
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "too_small");
  }
  {  // an empty value
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 0, 3});
    const int y = b.value("y", {1, 2, 0, 3});
    b.requant("rq", x, y);
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "no elements");
  }
  {  // an average window clipped by padding without count_include_pad
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 4, 4});
    const int y = b.value("y", {1, 2, 2, 2});
    b.pool(ref::Int8OpKind::kAvgPool, "clipped_avg", x, y, {3, 3}, {2, 2}, {1, 1, 0, 0});
    b.graph().ops[0].count_include_pad = false;
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kUnsupported, "clipped_avg");
  }
  {  // a multiplier outside requant.h's domain
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 4, 4});
    const int y = b.value("y", {1, 2, 4, 4});
    b.requant("bad_shift", x, y).multiplier.shift = 40;
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "bad_shift");
  }
  {  // a clamp that is not an int8 range
    GraphBuilder b = strided_grouped_conv();
    b.graph().ops[0].act_min = 100;
    b.graph().ops[0].act_max = 50;
    expect(b.graph(), ErrorCode::kInvalidArgument, "conv0");
  }
  {  // a multiplier missing
    GraphBuilder b = strided_grouped_conv();
    b.graph().ops[0].multipliers.pop_back();
    expect(b.graph(), ErrorCode::kInvalidArgument, "multipliers");
  }
  {  // an add whose operands do not broadcast to its output (broadcasting itself is kBinary)
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 4, 4});
    const int c = b.input("c", {1, 3, 1, 1});
    const int y = b.value("y", {1, 2, 4, 4});
    b.add("bcast_add", x, c, y);
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kInvalidArgument, "node 'bcast_add' (add): operand b [1, 3, 1, 1] does not broadcast");
  }
  {  // dilated pooling
    GraphBuilder b(2);
    const int x = b.input("x", {1, 2, 5, 5});
    const int y = b.value("y", {1, 2, 1, 1});
    b.pool(ref::Int8OpKind::kMaxPool, "dilated_pool", x, y, {3, 3}, {1, 1});
    b.graph().ops[0].dilations = {2, 2};
    b.output(y, "y");
    expect(b.graph(), ErrorCode::kUnsupported, "dilated_pool");
  }
  // (a graph output that is a graph input is copied: test_compiler_gaps.cc)
  {  // a dimension beyond the 16-bit instruction fields
    GraphBuilder b(2);
    const int x = b.input("x", {1, 70000});
    const int y = b.value("y", {1, 70000});
    b.requant("ok_requant", x, y);
    const int z = b.value("z", {1, 1});
    ref::Int8Op& fc = b.conv("wide_fc", y, z, 1, {1, 1});
    (void)fc;
    b.output(z, "z");
    expect(b.graph(), ErrorCode::kUnsupported, "wide_fc");
  }
}

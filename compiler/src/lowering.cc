#include "lowering.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <string>

namespace anvil::compiler {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string where(const ref::Int8Op& op) { return "node '" + op.node + "' (" + ref::int8_op_name(op.kind) + ")"; }

/// A dimension or geometry parameter in a 16-bit instruction field.
uint16_t u16(int64_t v, const char* field, const ref::Int8Op& op) {
  if (v < 0 || v > std::numeric_limits<uint16_t>::max())
    fail(ErrorCode::kUnsupported, where(op) + ": " + field + " = " + std::to_string(v) +
                                      " does not fit the ISA's 16-bit field (tiling is not implemented yet)");
  return static_cast<uint16_t>(v);
}

/// N, C, H, W of an activation: rank 4 as is, rank 2 (N x C, fully connected) as N x C x 1 x 1.
std::array<int64_t, 4> nchw(const ref::Int8Value& v, const ref::Int8Op& op) {
  const Shape& s = v.shape;
  if (s.size() == 4) return {s[0], s[1], s[2], s[3]};
  if (s.size() == 2) return {s[0], s[1], 1, 1};
  fail(ErrorCode::kUnsupported, where(op) + ": value '" + v.name + "' has shape " + shape_str(s) +
                                    ", expected N x C x H x W or N x C");
}

/// Output extent of a window sweep (floor mode); 0 when the window is larger than the padded input.
int64_t sweep(int64_t in, int pad_begin, int pad_end, int64_t kernel, int stride, int dilation) {
  const int64_t room = in + pad_begin + pad_end - dilation * (kernel - 1) - 1;
  return room < 0 ? 0 : room / stride + 1;
}

void check_geometry(const ref::Int8Op& op) {
  for (int i = 0; i < 2; ++i)
    if (op.strides[i] < 1 || op.dilations[i] < 1)
      fail(ErrorCode::kInvalidArgument, where(op) + ": strides and dilations must be >= 1");
  for (int p : op.pads)
    if (p < 0) fail(ErrorCode::kInvalidArgument, where(op) + ": negative padding");
}

void check_arity(const ref::Int8Op& op, size_t inputs) {
  if (op.inputs.size() != inputs)
    fail(ErrorCode::kInvalidArgument, where(op) + ": has " + std::to_string(op.inputs.size()) + " inputs, expected " +
                                          std::to_string(inputs));
}

/// requant.h's domain (a non-negative Q31 mantissa, shift in [-31, 30]) and an int8 clamp range:
/// what the hardware accepts.
void check_requant(const ref::Int8Op& op, const math::QuantizedMultiplier& q, int32_t act_min, int32_t act_max) {
  if (q.multiplier < 0 || q.shift < -31 || q.shift > 30)
    fail(ErrorCode::kInvalidArgument, where(op) + ": multiplier " + std::to_string(q.multiplier) + " shift " +
                                          std::to_string(q.shift) + " is outside requant.h's domain");
  if (act_min < -128 || act_max > 127 || act_min > act_max)
    fail(ErrorCode::kInvalidArgument, where(op) + ": clamp [" + std::to_string(act_min) + ", " +
                                          std::to_string(act_max) + "] is not an int8 range");
}

std::string dims_str(const std::array<int64_t, 4>& d) { return shape_str(Shape(d.begin(), d.end())); }

}  // namespace

Lowering::Lowering(const ref::Int8Graph& graph, const Target& target, const DramPlan& plan, isa::Program& program)
    : graph_(graph), plan_(plan), program_(program), sram_(target.sram_capacity()) {}

uint64_t Lowering::add_constant(const void* data, size_t bytes) {
  const uint64_t offset = align_up(program_.constants.size(), kDramAlignment);
  program_.constants.resize(offset + bytes, 0);
  if (bytes > 0) std::memcpy(program_.constants.data() + offset, data, bytes);
  return offset;
}

Lowering::Layer Lowering::begin_layer(const ref::Int8Op& op, uint64_t const_dram, uint64_t const_bytes) {
  Layer layer;
  layer.op = &op;
  uint64_t end = 0;
  for (int v : op.inputs) {
    layer.input_offsets.push_back(end);
    end = align_up(end + shape_numel(graph_.values[v].shape), kSramAlignment);
  }
  layer.const_offset = end;
  layer.const_dram = const_dram;
  layer.const_bytes = const_bytes;
  end = align_up(end + const_bytes, kSramAlignment);
  layer.out_offset = end;
  layer.bytes = end + shape_numel(graph_.values[op.output].shape);
  if (layer.bytes > sram_.capacity())
    fail(ErrorCode::kUnsupported, "node '" + op.node + "': needs " + std::to_string(layer.bytes) +
                                      " bytes of SRAM, the target has " + std::to_string(sram_.capacity()) +
                                      " (tiling is not implemented yet)");
  layer.base = sram_.place(layer.bytes);
  layer.report.node = op.node;
  layer.report.op = ref::int8_op_name(op.kind);
  layer.report.sram_bytes = layer.bytes;
  return layer;
}

void Lowering::emit(isa::Instruction inst) {
  deps_.schedule(inst);
  program_.instructions.push_back(inst);
}

void Lowering::emit_dma(isa::Opcode opcode, isa::Region region, uint64_t dram, uint64_t sram, uint64_t bytes,
                        Layer& layer) {
  if (bytes == 0) return;
  isa::Instruction inst;
  inst.opcode = opcode;
  inst.dma.region = static_cast<uint8_t>(region);
  inst.dma.dram_offset = dram;
  inst.dma.sram_addr = static_cast<uint32_t>(sram);
  inst.dma.row_bytes = static_cast<uint32_t>(bytes);  // bytes <= SRAM capacity
  inst.dma.rows = 1;
  inst.dma.dram_stride = static_cast<uint32_t>(bytes);
  inst.dma.sram_stride = static_cast<uint32_t>(bytes);
  emit(inst);
  layer.report.dram_bytes += bytes;
}

void Lowering::emit_layer(Layer& layer, isa::Instruction compute) {
  const ref::Int8Op& op = *layer.op;
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    const int v = op.inputs[i];
    emit_dma(isa::Opcode::kDmaLoad, plan_.home[v].region, plan_.home[v].offset, layer.base + layer.input_offsets[i],
             shape_numel(graph_.values[v].shape), layer);
  }
  emit_dma(isa::Opcode::kDmaLoad, isa::Region::kConst, layer.const_dram, layer.base + layer.const_offset,
           layer.const_bytes, layer);
  emit(compute);
  emit_dma(isa::Opcode::kDmaStore, plan_.home[op.output].region, plan_.home[op.output].offset,
           layer.base + layer.out_offset, shape_numel(graph_.values[op.output].shape), layer);
}

LayerReport Lowering::lower(const ref::Int8Op& op) {
  switch (op.kind) {
    case ref::Int8OpKind::kConv: return lower_conv(op);
    case ref::Int8OpKind::kAdd: return lower_add(op);
    case ref::Int8OpKind::kMaxPool:
    case ref::Int8OpKind::kAvgPool: return lower_pool(op);
    case ref::Int8OpKind::kRequant: return lower_requant(op);
    case ref::Int8OpKind::kReshape: {  // the output shares the input's DRAM bytes (dram_plan)
      LayerReport r;
      r.node = op.node;
      r.op = ref::int8_op_name(op.kind);
      return r;
    }
  }
  fail(ErrorCode::kInvalidArgument, "node '" + op.node + "': unknown integer op kind");
}

LayerReport Lowering::lower_conv(const ref::Int8Op& op) {
  check_arity(op, 1);
  check_geometry(op);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  const auto in = nchw(x, op), out = nchw(y, op);
  const Tensor& weight = op.weight;
  if (weight.dtype() != DType::kInt8 || weight.rank() != 4)
    fail(ErrorCode::kInvalidArgument, where(op) + ": weight must be int8 O x I/groups x KH x KW, got " +
                                          dtype_name(weight.dtype()) + " " + shape_str(weight.shape()));
  const int64_t out_c = weight.dim(0), kh = weight.dim(2), kw = weight.dim(3);
  if (op.kernel[0] != kh || op.kernel[1] != kw)
    fail(ErrorCode::kInvalidArgument, where(op) + ": kernel " + std::to_string(op.kernel[0]) + "x" +
                                          std::to_string(op.kernel[1]) + " differs from the weight's " +
                                          shape_str(weight.shape()));
  const int groups = op.groups;
  if (groups < 1 || in[1] % groups != 0 || out_c % groups != 0 || weight.dim(1) != in[1] / groups)
    fail(ErrorCode::kInvalidArgument, where(op) + ": weight " + shape_str(weight.shape()) + " with groups=" +
                                          std::to_string(groups) + " does not fit input " + dims_str(in));
  const int64_t want_h = sweep(in[2], op.pads[0], op.pads[2], kh, op.strides[0], op.dilations[0]);
  const int64_t want_w = sweep(in[3], op.pads[1], op.pads[3], kw, op.strides[1], op.dilations[1]);
  if (out[0] != in[0] || out[1] != out_c || out[2] != want_h || out[3] != want_w)
    fail(ErrorCode::kInvalidArgument, where(op) + ": output " + dims_str(out) + " does not match input " +
                                          dims_str(in) + ", weight " + shape_str(weight.shape()) +
                                          ", pads, strides and dilations");

  // Per output channel int32 vectors: bias (zero when absent), Q31 multiplier, shift.
  std::vector<int32_t> bias(out_c, 0), mult(out_c), shift(out_c);
  if (!op.bias.empty()) {
    if (op.bias.dtype() != DType::kInt32 || op.bias.numel() != out_c)
      fail(ErrorCode::kInvalidArgument, where(op) + ": bias must be int32 [" + std::to_string(out_c) + "], got " +
                                            dtype_name(op.bias.dtype()) + " " + shape_str(op.bias.shape()));
    bias = op.bias.to_vector<int32_t>();
  }
  if (op.multipliers.size() != static_cast<size_t>(out_c))
    fail(ErrorCode::kInvalidArgument, where(op) + ": " + std::to_string(op.multipliers.size()) +
                                          " multipliers for " + std::to_string(out_c) + " output channels");
  for (int64_t o = 0; o < out_c; ++o) {
    check_requant(op, op.multipliers[o], op.act_min, op.act_max);
    mult[o] = op.multipliers[o].multiplier;
    shift[o] = op.multipliers[o].shift;
  }
  // One constant block per conv, loaded by one DMA: weight | bias | mult | shift, each 64-aligned.
  const uint64_t weight_dram = add_constant(weight.raw(), weight.nbytes());
  const uint64_t bias_dram = add_constant(bias.data(), bias.size() * 4);
  const uint64_t mult_dram = add_constant(mult.data(), mult.size() * 4);
  const uint64_t shift_dram = add_constant(shift.data(), shift.size() * 4);
  Layer layer = begin_layer(op, weight_dram, shift_dram + shift.size() * 4 - weight_dram);
  const uint64_t consts = layer.base + layer.const_offset - weight_dram;  // SRAM address = DRAM offset + consts

  isa::Instruction inst;
  inst.opcode = isa::Opcode::kConv;
  isa::ConvArgs& c = inst.conv;
  c.in_addr = static_cast<uint32_t>(layer.base + layer.input_offsets[0]);
  c.weight_addr = static_cast<uint32_t>(weight_dram + consts);
  c.bias_addr = static_cast<uint32_t>(bias_dram + consts);
  c.mult_addr = static_cast<uint32_t>(mult_dram + consts);
  c.shift_addr = static_cast<uint32_t>(shift_dram + consts);
  c.out_addr = static_cast<uint32_t>(layer.base + layer.out_offset);
  c.n = u16(in[0], "batch", op);
  c.in_c = u16(in[1], "input channels", op);
  c.in_h = u16(in[2], "input height", op);
  c.in_w = u16(in[3], "input width", op);
  c.out_c = u16(out_c, "output channels", op);
  c.out_h = u16(out[2], "output height", op);
  c.out_w = u16(out[3], "output width", op);
  c.kernel_h = u16(kh, "kernel height", op);
  c.kernel_w = u16(kw, "kernel width", op);
  c.stride_h = u16(op.strides[0], "stride", op);
  c.stride_w = u16(op.strides[1], "stride", op);
  c.pad_top = u16(op.pads[0], "pad", op);  // bottom/right padding is implied by out_h/out_w
  c.pad_left = u16(op.pads[1], "pad", op);
  c.dilation_h = u16(op.dilations[0], "dilation", op);
  c.dilation_w = u16(op.dilations[1], "dilation", op);
  c.groups = u16(groups, "groups", op);
  c.in_zero_point = x.q.zero_point;
  c.out_zero_point = y.q.zero_point;
  c.act_min = op.act_min;
  c.act_max = op.act_max;
  layer.report.macs = isa::conv_macs(c);
  emit_layer(layer, inst);
  return layer.report;
}

LayerReport Lowering::lower_add(const ref::Int8Op& op) {
  check_arity(op, 2);
  const ref::Int8Value &a = graph_.values[op.inputs[0]], &b = graph_.values[op.inputs[1]], &y = graph_.values[op.output];
  if (a.shape != y.shape || b.shape != y.shape)
    fail(ErrorCode::kUnsupported, where(op) + ": inputs " + shape_str(a.shape) + " and " + shape_str(b.shape) +
                                      " -> " + shape_str(y.shape) + " (broadcasting add is not implemented)");
  for (const math::QuantizedMultiplier& q : {op.add.a, op.add.b, op.add.out})
    check_requant(op, q, op.add.act_min, op.add.act_max);
  Layer layer = begin_layer(op, 0, 0);
  isa::Instruction inst;
  inst.opcode = isa::Opcode::kAdd;
  isa::AddArgs& d = inst.add;
  const math::AddParams& p = op.add;
  d.a_addr = static_cast<uint32_t>(layer.base + layer.input_offsets[0]);
  d.b_addr = static_cast<uint32_t>(layer.base + layer.input_offsets[1]);
  d.out_addr = static_cast<uint32_t>(layer.base + layer.out_offset);
  d.count = static_cast<uint32_t>(shape_numel(y.shape));  // <= SRAM capacity
  d.a_zero_point = p.a_zero_point;
  d.b_zero_point = p.b_zero_point;
  d.out_zero_point = p.out_zero_point;
  d.a_mult = p.a.multiplier;
  d.a_shift = p.a.shift;
  d.b_mult = p.b.multiplier;
  d.b_shift = p.b.shift;
  d.out_mult = p.out.multiplier;
  d.out_shift = p.out.shift;
  d.act_min = p.act_min;  // the fused activation is part of math::AddParams
  d.act_max = p.act_max;
  emit_layer(layer, inst);
  return layer.report;
}

LayerReport Lowering::lower_pool(const ref::Int8Op& op) {
  check_arity(op, 1);
  check_geometry(op);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  const auto in = nchw(x, op), out = nchw(y, op);
  // GlobalAveragePool arrives with the whole input as its kernel.
  const std::array<int64_t, 2> kernel{op.kernel[0], op.kernel[1]};
  if (kernel[0] < 1 || kernel[1] < 1) fail(ErrorCode::kInvalidArgument, where(op) + ": kernel must be >= 1");
  if (op.dilations[0] != 1 || op.dilations[1] != 1)
    fail(ErrorCode::kUnsupported, where(op) + ": dilated pooling is not supported by the ISA");
  // Floor or ceil mode: windows hanging past the end read only their in-bounds elements.
  auto fits = [&](int i) {
    const int64_t floor_out = sweep(in[2 + i], op.pads[i], op.pads[i + 2], kernel[i], op.strides[i], 1);
    const int64_t ceil_out = sweep(in[2 + i], op.pads[i], op.pads[i + 2] + op.strides[i] - 1, kernel[i], op.strides[i], 1);
    return floor_out >= 1 && out[2 + i] >= floor_out && out[2 + i] <= ceil_out;
  };
  if (out[0] != in[0] || out[1] != in[1] || !fits(0) || !fits(1))
    fail(ErrorCode::kInvalidArgument, where(op) + ": output " + dims_str(out) + " does not match input " +
                                          dims_str(in) + ", kernel, pads and strides");
  // An average window sums its in-bounds elements; op.multiplier divides by the kernel area. A
  // window clipped by the border therefore needs count_include_pad (padding counts as 0).
  if (op.kind == ref::Int8OpKind::kAvgPool && !op.count_include_pad) {
    const bool clipped = op.pads[0] > 0 || op.pads[1] > 0 || (out[2] - 1) * op.strides[0] - op.pads[0] + kernel[0] > in[2] ||
                         (out[3] - 1) * op.strides[1] - op.pads[1] + kernel[1] > in[3];
    if (clipped)
      fail(ErrorCode::kUnsupported, where(op) + ": average windows clipped by the border without count_include_pad "
                                                "(the ISA divides every window by the full kernel area)");
  }
  check_requant(op, op.kind == ref::Int8OpKind::kAvgPool ? op.multiplier : math::QuantizedMultiplier{}, op.act_min,
                op.act_max);
  Layer layer = begin_layer(op, 0, 0);
  isa::Instruction inst;
  inst.opcode = op.kind == ref::Int8OpKind::kMaxPool ? isa::Opcode::kMaxPool : isa::Opcode::kAvgPool;
  isa::PoolArgs& p = inst.pool;
  p.in_addr = static_cast<uint32_t>(layer.base + layer.input_offsets[0]);
  p.out_addr = static_cast<uint32_t>(layer.base + layer.out_offset);
  p.n = u16(in[0], "batch", op);
  p.c = u16(in[1], "channels", op);
  p.in_h = u16(in[2], "input height", op);
  p.in_w = u16(in[3], "input width", op);
  p.out_h = u16(out[2], "output height", op);
  p.out_w = u16(out[3], "output width", op);
  p.kernel_h = u16(kernel[0], "kernel height", op);
  p.kernel_w = u16(kernel[1], "kernel width", op);
  p.stride_h = u16(op.strides[0], "stride", op);
  p.stride_w = u16(op.strides[1], "stride", op);
  p.pad_top = u16(op.pads[0], "pad", op);
  p.pad_left = u16(op.pads[1], "pad", op);
  p.in_zero_point = x.q.zero_point;
  p.out_zero_point = y.q.zero_point;
  if (op.kind == ref::Int8OpKind::kAvgPool) {
    p.mult = op.multiplier.multiplier;
    p.shift = op.multiplier.shift;
    p.count_include_pad = op.count_include_pad ? 1 : 0;
  }
  p.act_min = op.act_min;
  p.act_max = op.act_max;
  emit_layer(layer, inst);
  return layer.report;
}

LayerReport Lowering::lower_requant(const ref::Int8Op& op) {
  check_arity(op, 1);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  if (shape_numel(x.shape) != shape_numel(y.shape))
    fail(ErrorCode::kInvalidArgument, where(op) + ": input " + shape_str(x.shape) + " and output " +
                                          shape_str(y.shape) + " differ in size");
  check_requant(op, op.multiplier, op.act_min, op.act_max);
  Layer layer = begin_layer(op, 0, 0);
  isa::Instruction inst;
  inst.opcode = isa::Opcode::kRequant;
  isa::RequantArgs& r = inst.requant;
  r.in_addr = static_cast<uint32_t>(layer.base + layer.input_offsets[0]);
  r.out_addr = static_cast<uint32_t>(layer.base + layer.out_offset);
  r.count = static_cast<uint32_t>(shape_numel(y.shape));
  r.in_zero_point = x.q.zero_point;
  r.out_zero_point = y.q.zero_point;
  r.mult = op.multiplier.multiplier;
  r.shift = op.multiplier.shift;
  r.act_min = op.act_min;
  r.act_max = op.act_max;
  emit_layer(layer, inst);
  return layer.report;
}

}  // namespace anvil::compiler

#include "lowering.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <string>

namespace anvil::compiler {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string where(const ref::Int8Op& op) { return "node '" + op.node + "' (" + ref::int8_op_name(op.kind) + ")"; }

/// A dimension or geometry parameter in a 16-bit instruction field.
uint16_t u16(int64_t v, const char* field, const ref::Int8Op& op) {
  if (v < 0 || v > std::numeric_limits<uint16_t>::max())
    fail(ErrorCode::kUnsupported, where(op) + ": " + field + " = " + std::to_string(v) +
                                      " does not fit the ISA's 16-bit field");
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



int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/// Cost of a tiling in DRAM-byte equivalents: bytes moved plus each DMA's fixed latency (about
/// 200 cycles x 33 bytes per cycle on warboy) so that many small transfers are not preferred.
constexpr uint64_t kBytesPerDma = 6600;

}  // namespace

Lowering::Lowering(const ref::Int8Graph& graph, const Target& target, const DramPlan& plan, isa::Program& program)
    : graph_(graph), target_(target), plan_(plan), program_(program), sram_(target.sram_capacity()) {
  const size_t num_values = graph.values.size();
  root_.resize(num_values);
  for (size_t v = 0; v < num_values; ++v) root_[v] = static_cast<int>(v);
  uses_.resize(num_values);
  graph_output_.assign(num_values, false);
  resident_.resize(num_values);
  // plan_dram validated indices and order.
  for (size_t k = 0; k < graph.ops.size(); ++k) {
    const ref::Int8Op& op = graph.ops[k];
    if (op.kind == ref::Int8OpKind::kReshape) {
      root_[op.output] = root_[op.inputs[0]];
      continue;
    }
    for (int v : op.inputs) {
      std::vector<int>& u = uses_[root_[v]];
      if (u.empty() || u.back() != static_cast<int>(k)) u.push_back(static_cast<int>(k));
    }
  }
  for (int v : graph.outputs) graph_output_[root_[v]] = true;
}

Lowering::AddConstants Lowering::constant_once(const void* data, size_t bytes) {
  auto offset = std::make_shared<std::optional<uint64_t>>();
  return [this, data, bytes, offset](int64_t, int64_t) {
    if (!*offset) *offset = add_constant(data, bytes);
    return **offset;
  };
}

uint64_t Lowering::add_constant(const void* data, size_t bytes) {
  const uint64_t offset = align_up(program_.constants.size(), kDramAlignment);
  program_.constants.resize(offset + bytes, 0);
  if (bytes > 0) std::memcpy(program_.constants.data() + offset, data, bytes);
  return offset;
}

uint64_t Lowering::bytes_of(int value) const { return static_cast<uint64_t>(shape_numel(graph_.values[value].shape)); }

void Lowering::emit(isa::Instruction inst) {
  // The firmware refuses a program its sequencer cannot hold; say so as soon as it happens, naming
  // the cause (a large batch would otherwise also pay for scheduling every instruction beyond it).
  // Not kUnsupported: host fallback must not quietly move a whole segment to the host for it.
  if ((program_.instructions.size() + 1) * sizeof(isa::Instruction) > target_.instr_mem_bytes)
    fail(ErrorCode::kInvalidArgument,
         "at node '" + report_->node + "' the program outgrows the " + std::to_string(target_.instr_mem_bytes / 1024) +
             " KiB instruction memory per PE of target '" + target_.name + "' (" +
             std::to_string(program_.instructions.size()) + " instructions, instr_mem_bytes): compile a smaller batch");
  deps_.schedule(inst);
  program_.instructions.push_back(inst);
}

void Lowering::emit_dma(isa::Opcode opcode, isa::Region region, uint64_t dram, uint64_t sram, uint64_t row_bytes,
                        uint64_t rows, uint64_t dram_stride) {
  if (row_bytes == 0 || rows == 0) return;
  isa::Instruction inst;
  inst.opcode = opcode;
  inst.dma.region = static_cast<uint8_t>(region);
  inst.dma.dram_offset = dram;
  inst.dma.sram_addr = static_cast<uint32_t>(sram);
  inst.dma.row_bytes = static_cast<uint32_t>(row_bytes);  // <= SRAM capacity <= 4 GiB
  inst.dma.rows = static_cast<uint32_t>(rows);
  inst.dma.dram_stride = static_cast<uint32_t>(rows == 1 ? row_bytes : dram_stride);
  inst.dma.sram_stride = static_cast<uint32_t>(row_bytes);
  emit(inst);
  report_->dram_bytes += rows * row_bytes;
}

void Lowering::emit_box(isa::Opcode opcode, const ValueHome& home, int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t c0, int64_t c1, int64_t h0, int64_t h1, uint64_t sram) {
  const uint64_t plane = static_cast<uint64_t>(h * w), image = static_cast<uint64_t>(c) * plane;
  const uint64_t box_rows = static_cast<uint64_t>(h1 - h0) * w, box_image = static_cast<uint64_t>(c1 - c0) * box_rows;
  if (h0 == 0 && h1 == h) {
    if (c0 == 0 && c1 == c) return emit_dma(opcode, home.region, home.offset, sram, image * n);
    // One row per image: channels [c0, c1) are contiguous within it.
    return emit_dma(opcode, home.region, home.offset + c0 * plane, sram, box_image, n, image);
  }
  for (int64_t i = 0; i < n; ++i)  // per image, one row per channel
    emit_dma(opcode, home.region, home.offset + i * image + c0 * plane + h0 * w, sram + i * box_image, box_rows,
             c1 - c0, plane);
}

int Lowering::next_use(int root) const {
  const std::vector<int>& u = uses_[root];
  const auto it = std::lower_bound(u.begin(), u.end(), current_);
  return it == u.end() ? std::numeric_limits<int>::max() : *it;
}

void Lowering::store(int root) {
  Resident& r = *resident_[root];
  emit_dma(isa::Opcode::kDmaStore, plan_.home[root].region, plan_.home[root].offset, r.addr, bytes_of(root));
  r.dirty = false;
}

void Lowering::evict(int root) {
  if (resident_[root]->dirty && (next_use(root) != std::numeric_limits<int>::max() || graph_output_[root]))
    store(root);
  sram_.release(resident_[root]->addr);
  resident_[root].reset();
}

void Lowering::release_deferred() {
  for (uint64_t a : releasing_) sram_.release(a);
  for (uint64_t a : deferred_) sram_.release(a);
  releasing_.clear();
  deferred_.clear();
}

void Lowering::flush() {
  release_deferred();
  for (size_t v = 0; v < resident_.size(); ++v)
    if (resident_[v]) evict(static_cast<int>(v));
  sram_.rewind();
}

uint64_t Lowering::allocate_in_empty_sram(uint64_t bytes) {
  const auto a = sram_.allocate(bytes);
  ANVIL_CHECK(a.has_value(), "tile buffers were sized to fit the flushed SRAM");
  return *a;
}

std::optional<uint64_t> Lowering::allocate(uint64_t bytes, const std::vector<int>& pinned) {
  for (;;) {
    if (const auto a = sram_.allocate(bytes)) return a;
    if (!releasing_.empty() || !deferred_.empty()) {
      release_deferred();
      continue;
    }
    // Evict the resident value needed again furthest in the future (ties: lowest index).
    int victim = -1, victim_use = -1;
    for (size_t v = 0; v < resident_.size(); ++v) {
      if (!resident_[v] || std::find(pinned.begin(), pinned.end(), static_cast<int>(v)) != pinned.end()) continue;
      const int use = next_use(static_cast<int>(v));
      if (use > victim_use) victim = static_cast<int>(v), victim_use = use;
    }
    if (victim < 0) return std::nullopt;
    evict(victim);
  }
}

LayerReport Lowering::lower(const ref::Int8Op& op) {
  current_ = static_cast<int>(&op - graph_.ops.data());
  LayerReport report;
  report.node = op.node;
  report.op = ref::int8_op_name(op.kind);
  report_ = &report;
  switch (op.kind) {
    case ref::Int8OpKind::kConv: lower_conv(op); break;
    case ref::Int8OpKind::kAdd: lower_add(op); break;
    case ref::Int8OpKind::kMaxPool:
    case ref::Int8OpKind::kAvgPool: lower_pool(op); break;
    case ref::Int8OpKind::kRequant: lower_requant(op); break;
    case ref::Int8OpKind::kLut: lower_lut(op); break;
    case ref::Int8OpKind::kTranspose:
    case ref::Int8OpKind::kSlice:
    case ref::Int8OpKind::kConcat:
    case ref::Int8OpKind::kPad: lower_movement(op); break;
    case ref::Int8OpKind::kMatMul: lower_matmul(op); break;
    case ref::Int8OpKind::kSoftmax: lower_softmax(op); break;
    case ref::Int8OpKind::kResize: lower_resize(op); break;
    case ref::Int8OpKind::kReshape: break;  // the output shares the input's bytes (DRAM and SRAM)
    case ref::Int8OpKind::kMul:
    case ref::Int8OpKind::kSub: lower_binary(op); break;
    default: fail(ErrorCode::kInvalidArgument, "node '" + op.node + "': unknown integer op kind");
  }
  report_ = nullptr;
  return report;
}

void Lowering::lower_op(const ref::Int8Op& op, const TileSpace& space, const Builder& build,
                        const AddConstants& consts, const std::function<void()>& tiled) {
  if (!lower_resident(op, space, build, consts)) {
    if (tiled) {
      tiled();
    } else {
      lower_tiled(op, space, build, consts);
    }
  }
  end_layer();
}

void Lowering::end_layer() {
  // Buffers released by the previous layer are free from now on; this layer's from the next.
  for (uint64_t a : releasing_) sram_.release(a);
  releasing_.swap(deferred_);
  deferred_.clear();
}

namespace {

Lowering::Tile whole(const Lowering::TileSpace& s) {
  Lowering::Tile t;
  t.u1 = s.units;
  t.r1 = s.out_h;
  t.in_r1 = s.in_h;
  return t;
}

}  // namespace

bool Lowering::lower_resident(const ref::Int8Op& op, const TileSpace& space, const Builder& build,
                              const AddConstants& consts) {
  std::vector<int> roots;
  for (int v : op.inputs)
    if (std::find(roots.begin(), roots.end(), root_[v]) == roots.end()) roots.push_back(root_[v]);
  std::vector<uint64_t> fresh;  // buffers allocated here, to undo when something does not fit
  auto take = [&](uint64_t bytes) -> std::optional<uint64_t> {
    const auto a = allocate(bytes, roots);
    if (a) fresh.push_back(*a);
    return a;
  };
  auto undo = [&] {
    for (uint64_t a : fresh) sram_.release(a);
    return false;
  };
  std::map<int, uint64_t> load_addr;
  uint64_t working_set = 0;
  for (int r : roots) {
    working_set += align_up(bytes_of(r), kSramAlignment);
    if (resident_[r]) continue;
    const auto a = take(bytes_of(r));
    if (!a) return undo();
    load_addr[r] = *a;
  }
  const uint64_t const_bytes = space.const_bytes ? space.const_bytes(space.units) : 0;
  uint64_t const_addr = 0;
  if (const_bytes > 0) {
    const auto a = take(const_bytes);
    if (!a) return undo();
    const_addr = *a;
  }
  const auto out_addr = take(bytes_of(op.output));
  if (!out_addr) return undo();
  for (const auto& [r, addr] : load_addr) {
    emit_dma(isa::Opcode::kDmaLoad, plan_.home[r].region, plan_.home[r].offset, addr, bytes_of(r));
    resident_[r] = Resident{addr, false};
  }
  if (const_bytes > 0) emit_dma(isa::Opcode::kDmaLoad, isa::Region::kConst, consts(0, space.units), const_addr, const_bytes);
  std::vector<uint64_t> in_addrs;
  for (int v : op.inputs) in_addrs.push_back(resident_[root_[v]]->addr);
  emit(build(whole(space), in_addrs, const_addr, *out_addr));
  report_->sram_bytes = working_set + align_up(const_bytes, kSramAlignment) + bytes_of(op.output);

  const int out = root_[op.output];
  resident_[out] = Resident{*out_addr, true};
  if (graph_output_[out]) store(out);
  if (const_bytes > 0) deferred_.push_back(const_addr);
  auto drop_if_dead = [&](int r) {
    if (resident_[r] && (uses_[r].empty() || uses_[r].back() <= current_)) {
      deferred_.push_back(resident_[r]->addr);
      resident_[r].reset();
    }
  };
  for (int r : roots) drop_if_dead(r);
  drop_if_dead(out);
  return true;
}

void Lowering::lower_tiled(const ref::Int8Op& op, const TileSpace& space, const Builder& build,
                           const AddConstants& consts) {
  flush();  // everything this op reads is in DRAM now, and all of SRAM is free
  const uint64_t cap = sram_.capacity();
  const ValueHome& out_home = plan_.home[op.output];

  if (!space.window) {  // elementwise: element ranges of every input and the output
    // Constants (a lookup table) do not depend on the element range: loaded once, before the tiles.
    const uint64_t const_b = space.const_bytes ? space.const_bytes(space.units) : 0;
    const uint64_t const_addr = const_b ? allocate_in_empty_sram(const_b) : 0;
    if (const_b) emit_dma(isa::Opcode::kDmaLoad, isa::Region::kConst, consts(0, space.units), const_addr, const_b);
    const uint64_t room = cap - align_up(const_b, kSramAlignment);
    const uint64_t arrays = op.inputs.size() + 1, total = static_cast<uint64_t>(space.units);
    auto chunk_for = [&](uint64_t slots) { return std::min(total, room / (slots * arrays) / kSramAlignment * kSramAlignment); };
    uint64_t slots = 2, chunk = chunk_for(2);
    if (chunk < std::min<uint64_t>(total, 4096)) slots = 1, chunk = chunk_for(1);
    if (chunk == 0)
      fail(ErrorCode::kUnsupported, "node '" + op.node + "': SRAM of " + std::to_string(cap) +
                                        " bytes holds no tile of " + std::to_string(arrays) + " aligned arrays");
    std::vector<uint64_t> base(slots);
    for (uint64_t s = 0; s < slots; ++s) base[s] = allocate_in_empty_sram(chunk * arrays);
    const uint64_t tiles = (total + chunk - 1) / chunk;
    auto in_addr = [&](uint64_t k, size_t i) { return base[k % slots] + i * chunk; };
    auto emit_loads = [&](uint64_t k) {
      const uint64_t e0 = k * chunk, e1 = std::min(total, e0 + chunk);
      for (size_t i = 0; i < op.inputs.size(); ++i) {
        const ValueHome& h = plan_.home[op.inputs[i]];
        emit_dma(isa::Opcode::kDmaLoad, h.region, h.offset + e0, in_addr(k, i), e1 - e0);
      }
    };
    // With two slots, software pipelined as for window ops below.
    if (slots > 1) emit_loads(0);
    for (uint64_t k = 0; k < tiles; ++k) {
      if (slots == 1) emit_loads(k);
      if (slots > 1 && k + 1 < tiles) emit_loads(k + 1);
      Tile t;
      t.u0 = static_cast<int64_t>(k * chunk);
      t.u1 = static_cast<int64_t>(std::min(total, (k + 1) * chunk));
      std::vector<uint64_t> in_addrs;
      for (size_t i = 0; i < op.inputs.size(); ++i) in_addrs.push_back(in_addr(k, i));
      const uint64_t out_addr = in_addr(k, op.inputs.size());
      emit(build(t, in_addrs, const_addr, out_addr));
      emit_dma(isa::Opcode::kDmaStore, out_home.region, out_home.offset + t.u0, out_addr, t.u1 - t.u0);
    }
    for (uint64_t b : base) sram_.release(b);
    if (const_b) sram_.release(const_addr);
    report_->sram_bytes = slots * chunk * arrays + const_b;
    return;
  }

  // Window ops: channel-unit tiles of size s (outer loop) x output-row tiles of rs rows (inner).
  const TileSpace& S = space;
  auto in_rows = [&](int64_t r0, int64_t r1) {
    const int64_t lo = std::max<int64_t>(0, r0 * S.stride_h - S.pad_top);
    const int64_t hi = std::min<int64_t>(S.in_h, (r1 - 1) * S.stride_h - S.pad_top + S.window_h);
    return std::make_pair(std::min(lo, S.in_h - 1), std::max(hi, std::min(lo, S.in_h - 1) + 1));
  };
  auto in_channels = [&](int64_t units) { return S.unit_in_c ? units * S.unit_in_c : S.in_c; };
  struct Choice {
    int64_t s = 0, rs = 0;
    uint64_t slots = 0, cost = std::numeric_limits<uint64_t>::max();
    bool shared_input = false;
    uint64_t in_b = 0, out_b = 0, const_b = 0;
  } best;
  auto sizes = [](int64_t extent) {  // tile sizes giving distinct tile counts, largest first
    std::vector<int64_t> v;
    for (int64_t count = 1; count <= extent; ++count) {
      const int64_t size = ceil_div(extent, count);
      if (v.empty() || size < v.back()) v.push_back(size);
    }
    return v;
  };
  const std::vector<int64_t> unit_sizes = sizes(S.units), row_sizes = sizes(S.out_h);
  for (uint64_t slots : {uint64_t{2}, uint64_t{1}}) {
    for (int64_t s : unit_sizes)
      for (int64_t rs : row_sizes) {
        const int64_t rows_in = std::min<int64_t>(S.in_h, (rs - 1) * S.stride_h + S.window_h);
        const uint64_t in_b = static_cast<uint64_t>(S.n * in_channels(s) * rows_in * S.in_w);
        const uint64_t out_b = static_cast<uint64_t>(S.n * s * S.unit_out_c * rs * S.out_w);
        const uint64_t const_b = S.const_bytes ? S.const_bytes(s) : 0;
        const uint64_t ct = ceil_div(S.units, s), rt = ceil_div(S.out_h, rs);
        const bool shared_input = rt == 1 && S.unit_in_c == 0 && ct > 1;  // the same input for every tile
        const uint64_t per_slot = align_up(out_b, kSramAlignment) + align_up(const_b, kSramAlignment) +
                                  (shared_input ? 0 : align_up(in_b, kSramAlignment));
        const uint64_t need = slots * per_slot + (shared_input ? align_up(in_b, kSramAlignment) : 0);
        if (need > cap) continue;
        const uint64_t dmas_per_box = (rt > 1 || ct > 1) ? static_cast<uint64_t>(S.n) : 1;
        const uint64_t in_total = shared_input ? in_b : ct * rt * in_b;
        const uint64_t out_total = static_cast<uint64_t>(S.n * S.units * S.unit_out_c * S.out_h * S.out_w);
        const uint64_t dmas = ct * (const_b > 0) + (shared_input ? 1 : ct * rt) * dmas_per_box + ct * rt * dmas_per_box;
        const uint64_t cost = in_total + out_total + (S.const_bytes ? S.const_bytes(S.units) : 0) + dmas * kBytesPerDma;
        if (cost < best.cost) best = {s, rs, slots, cost, shared_input, in_b, out_b, const_b};
      }
    if (best.slots) break;  // double buffering when any tiling allows it
  }
  if (!best.slots)
    fail(ErrorCode::kUnsupported, "node '" + op.node + "': even one output row of one channel group does not fit " +
                                      std::to_string(cap) + " bytes of SRAM");
  struct Slot {
    uint64_t in = 0, out = 0, consts = 0;
  };
  std::vector<Slot> slots(best.slots);
  uint64_t shared_in = 0;
  if (best.shared_input) shared_in = allocate_in_empty_sram(best.in_b);
  for (Slot& sl : slots) {
    if (!best.shared_input) sl.in = allocate_in_empty_sram(best.in_b);
    sl.out = allocate_in_empty_sram(best.out_b);
    if (best.const_b) sl.consts = allocate_in_empty_sram(best.const_b);
  }
  report_->sram_bytes = sram_.used();
  const ValueHome& in_home = plan_.home[op.inputs[0]];
  const int64_t out_c = S.units * S.unit_out_c;
  struct Step {
    Tile t;
    const Slot* slot;
    const Slot* const_slot;
    bool load_consts, load_input;
  };
  std::vector<Step> steps;
  uint64_t channel_tile = 0;
  for (int64_t u0 = 0; u0 < S.units; u0 += best.s, ++channel_tile) {
    const int64_t u1 = std::min(S.units, u0 + best.s);
    for (int64_t r0 = 0; r0 < S.out_h; r0 += best.rs) {
      Step st;
      st.t = Tile{u0, u1, r0, std::min(S.out_h, r0 + best.rs), 0, 0};
      std::tie(st.t.in_r0, st.t.in_r1) = in_rows(st.t.r0, st.t.r1);
      st.slot = &slots[steps.size() % slots.size()];
      st.const_slot = &slots[channel_tile % slots.size()];
      st.load_consts = best.const_b > 0 && r0 == 0;
      st.load_input = !best.shared_input || steps.empty();
      steps.push_back(st);
    }
  }
  auto in_addr = [&](const Step& st) { return best.shared_input ? shared_in : st.slot->in; };
  auto emit_loads = [&](const Step& st) {
    if (st.load_consts)
      emit_dma(isa::Opcode::kDmaLoad, isa::Region::kConst, consts(st.t.u0, st.t.u1), st.const_slot->consts,
               S.const_bytes(st.t.u1 - st.t.u0));
    const int64_t c0 = S.unit_in_c ? st.t.u0 * S.unit_in_c : 0, c1 = S.unit_in_c ? st.t.u1 * S.unit_in_c : S.in_c;
    if (st.load_input)
      emit_box(isa::Opcode::kDmaLoad, in_home, S.n, S.in_c, S.in_h, S.in_w, c0, c1, st.t.in_r0, st.t.in_r1, in_addr(st));
  };
  // With two slots, software pipelined: the loads of tile k+1 precede the store of tile k in the
  // DMA queue, which runs in order, so they can run while tile k computes.
  const bool pipelined = slots.size() > 1;
  if (pipelined) emit_loads(steps[0]);
  for (size_t k = 0; k < steps.size(); ++k) {
    if (!pipelined) emit_loads(steps[k]);
    if (pipelined && k + 1 < steps.size()) emit_loads(steps[k + 1]);
    const Step& st = steps[k];
    emit(build(st.t, {in_addr(st)}, st.const_slot->consts, st.slot->out));
    emit_box(isa::Opcode::kDmaStore, out_home, S.n, out_c, S.out_h, S.out_w, st.t.u0 * S.unit_out_c,
             st.t.u1 * S.unit_out_c, st.t.r0, st.t.r1, st.slot->out);
  }
  if (best.shared_input) sram_.release(shared_in);
  for (const Slot& sl : slots) {
    if (!best.shared_input) sram_.release(sl.in);
    sram_.release(sl.out);
    if (best.const_b) sram_.release(sl.consts);
  }
}

void Lowering::lower_conv(const ref::Int8Op& op) {
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
  // Constants per channel tile, one DMA each: weight | bias | mult | shift, each 64-aligned.
  const int64_t ocpg = out_c / groups, icpg = in[1] / groups, per_oc = icpg * kh * kw;
  TileSpace space;
  space.n = in[0], space.in_c = in[1], space.in_h = in[2], space.in_w = in[3];
  space.out_h = out[2], space.out_w = out[3];
  space.units = groups > 1 ? groups : out_c;
  space.unit_out_c = groups > 1 ? ocpg : 1;
  space.unit_in_c = groups > 1 ? icpg : 0;
  space.window_h = op.dilations[0] * (kh - 1) + 1;
  space.stride_h = op.strides[0];
  space.pad_top = op.pads[0];
  // Offsets of bias, mult, shift in a block of `oc` output channels, and its length.
  auto layout = [per_oc](int64_t oc) {
    const uint64_t w = align_up(oc * per_oc, kDramAlignment), v = align_up(oc * 4, kDramAlignment);
    return std::array<uint64_t, 4>{w, w + v, w + 2 * v, w + 2 * v + oc * 4};
  };
  space.const_bytes = [&, layout](int64_t units) { return layout(units * space.unit_out_c)[3]; };
  const AddConstants consts = [&](int64_t u0, int64_t u1) {
    const int64_t o0 = u0 * space.unit_out_c, o1 = u1 * space.unit_out_c;
    const uint64_t at = add_constant(weight.data<int8_t>() + o0 * per_oc, (o1 - o0) * per_oc);
    add_constant(bias.data() + o0, (o1 - o0) * 4);
    add_constant(mult.data() + o0, (o1 - o0) * 4);
    add_constant(shift.data() + o0, (o1 - o0) * 4);
    return at;
  };
  // Fields that do not change between tiles, checked once.
  isa::Instruction proto;
  proto.opcode = isa::Opcode::kConv;
  isa::ConvArgs& p = proto.conv;
  p.n = u16(in[0], "batch", op);
  p.in_w = u16(in[3], "input width", op);
  p.out_w = u16(out[3], "output width", op);
  p.kernel_h = u16(kh, "kernel height", op);
  p.kernel_w = u16(kw, "kernel width", op);
  p.stride_h = u16(op.strides[0], "stride", op);
  p.stride_w = u16(op.strides[1], "stride", op);
  p.pad_left = u16(op.pads[1], "pad", op);  // right padding is implied by out_w
  p.dilation_h = u16(op.dilations[0], "dilation", op);
  p.dilation_w = u16(op.dilations[1], "dilation", op);
  p.in_zero_point = x.q.zero_point;
  p.out_zero_point = y.q.zero_point;
  p.act_min = op.act_min;
  p.act_max = op.act_max;
  const Builder build = [&, layout](const Tile& t, const std::vector<uint64_t>& in_addrs, uint64_t const_addr,
                                    uint64_t out_addr) {
    isa::Instruction inst = proto;
    isa::ConvArgs& c = inst.conv;
    const int64_t units = t.u1 - t.u0, oc = units * space.unit_out_c;
    const auto off = layout(oc);
    c.in_addr = static_cast<uint32_t>(in_addrs[0]);
    c.weight_addr = static_cast<uint32_t>(const_addr);
    c.bias_addr = static_cast<uint32_t>(const_addr + off[0]);
    c.mult_addr = static_cast<uint32_t>(const_addr + off[1]);
    c.shift_addr = static_cast<uint32_t>(const_addr + off[2]);
    c.out_addr = static_cast<uint32_t>(out_addr);
    c.in_c = u16(space.unit_in_c ? units * space.unit_in_c : in[1], "input channels", op);
    c.out_c = u16(oc, "output channels", op);
    c.groups = u16(groups > 1 ? units : 1, "groups", op);
    c.in_h = u16(t.in_r1 - t.in_r0, "input height", op);
    c.out_h = u16(t.r1 - t.r0, "output height", op);
    // Output row r0 reads input row r0 * stride - pad_top, the tile's row t.in_r0 is its first;
    // bottom padding is implied by out_h.
    c.pad_top = u16(op.pads[0] - t.r0 * op.strides[0] + t.in_r0, "pad", op);
    report_->macs += isa::conv_macs(c);
    return inst;
  };
  lower_op(op, space, build, consts);
}

void Lowering::lower_add(const ref::Int8Op& op) {
  // Two values of the output's shape: kAdd. Broadcasting or a constant operand: kBinary.
  if (op.inputs.size() != 2 || !op.weight.empty()) return lower_binary(op);
  const ref::Int8Value &a = graph_.values[op.inputs[0]], &b = graph_.values[op.inputs[1]], &y = graph_.values[op.output];
  if (a.shape != y.shape || b.shape != y.shape) return lower_binary(op);
  for (const math::QuantizedMultiplier& q : {op.add.a, op.add.b, op.add.out})
    check_requant(op, q, op.add.act_min, op.add.act_max);
  TileSpace space;
  space.window = false;
  space.units = shape_numel(y.shape);
  const math::AddParams& p = op.add;
  const Builder build = [&](const Tile& t, const std::vector<uint64_t>& in_addrs, uint64_t, uint64_t out_addr) {
    isa::Instruction inst;
    inst.opcode = isa::Opcode::kAdd;
    isa::AddArgs& d = inst.add;
    d.a_addr = static_cast<uint32_t>(in_addrs[0]);
    d.b_addr = static_cast<uint32_t>(in_addrs[1]);
    d.out_addr = static_cast<uint32_t>(out_addr);
    d.count = static_cast<uint32_t>(t.u1 - t.u0);  // <= SRAM capacity
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
    return inst;
  };
  lower_op(op, space, build, nullptr);
}

void Lowering::lower_pool(const ref::Int8Op& op) {
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
  TileSpace space;
  space.n = in[0], space.in_c = in[1], space.in_h = in[2], space.in_w = in[3];
  space.out_h = out[2], space.out_w = out[3];
  space.units = in[1];
  space.unit_in_c = 1;
  space.unit_out_c = 1;
  space.window_h = kernel[0];
  space.stride_h = op.strides[0];
  space.pad_top = op.pads[0];
  isa::Instruction proto;
  proto.opcode = op.kind == ref::Int8OpKind::kMaxPool ? isa::Opcode::kMaxPool : isa::Opcode::kAvgPool;
  isa::PoolArgs& p = proto.pool;
  p.n = u16(in[0], "batch", op);
  p.in_w = u16(in[3], "input width", op);
  p.out_w = u16(out[3], "output width", op);
  p.kernel_h = u16(kernel[0], "kernel height", op);
  p.kernel_w = u16(kernel[1], "kernel width", op);
  p.stride_h = u16(op.strides[0], "stride", op);
  p.stride_w = u16(op.strides[1], "stride", op);
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
  const Builder build = [&](const Tile& t, const std::vector<uint64_t>& in_addrs, uint64_t, uint64_t out_addr) {
    isa::Instruction inst = proto;
    isa::PoolArgs& q = inst.pool;
    q.in_addr = static_cast<uint32_t>(in_addrs[0]);
    q.out_addr = static_cast<uint32_t>(out_addr);
    q.c = u16(t.u1 - t.u0, "channels", op);
    q.in_h = u16(t.in_r1 - t.in_r0, "input height", op);
    q.out_h = u16(t.r1 - t.r0, "output height", op);
    q.pad_top = u16(op.pads[0] - t.r0 * op.strides[0] + t.in_r0, "pad", op);
    return inst;
  };
  lower_op(op, space, build, nullptr);
}

Lowering::TileSpace Lowering::elementwise_space(const ref::Int8Op& op) const {
  check_arity(op, 1);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  if (shape_numel(x.shape) != shape_numel(y.shape))
    fail(ErrorCode::kInvalidArgument, where(op) + ": input " + shape_str(x.shape) + " and output " +
                                          shape_str(y.shape) + " differ in size");
  TileSpace space;
  space.window = false;
  space.units = shape_numel(y.shape);
  return space;
}

void Lowering::lower_requant(const ref::Int8Op& op) {
  TileSpace space = elementwise_space(op);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  check_requant(op, op.multiplier, op.act_min, op.act_max);
  const Builder build = [&](const Tile& t, const std::vector<uint64_t>& in_addrs, uint64_t, uint64_t out_addr) {
    isa::Instruction inst;
    inst.opcode = isa::Opcode::kRequant;
    isa::RequantArgs& r = inst.requant;
    r.in_addr = static_cast<uint32_t>(in_addrs[0]);
    r.out_addr = static_cast<uint32_t>(out_addr);
    r.count = static_cast<uint32_t>(t.u1 - t.u0);
    r.in_zero_point = x.q.zero_point;
    r.out_zero_point = y.q.zero_point;
    r.mult = op.multiplier.multiplier;
    r.shift = op.multiplier.shift;
    r.act_min = op.act_min;
    r.act_max = op.act_max;
    return inst;
  };
  lower_op(op, space, build, nullptr);
}

/// kLut: the op's 256-byte table (ref::make_lut's bytes, copied) is one constant, loaded into SRAM
/// once per layer; one kLut instruction per element tile. A conv or add producing the input leaves
/// it resident in SRAM when it fits, so the lookup then reads it there with no DRAM round trip.
void Lowering::lower_lut(const ref::Int8Op& op) {
  TileSpace space = elementwise_space(op);
  constexpr uint64_t kTableBytes = 256;
  static_assert(sizeof(op.lut) == kTableBytes, "a kLut table is 256 int8 bytes");
  space.const_bytes = [](int64_t) { return kTableBytes; };
  const AddConstants consts = constant_once(op.lut.data(), kTableBytes);  // however many tiles
  const Builder build = [&](const Tile& t, const std::vector<uint64_t>& in_addrs, uint64_t const_addr,
                            uint64_t out_addr) {
    isa::Instruction inst;
    inst.opcode = isa::Opcode::kLut;
    inst.lut.in_addr = static_cast<uint32_t>(in_addrs[0]);
    inst.lut.table_addr = static_cast<uint32_t>(const_addr);
    inst.lut.out_addr = static_cast<uint32_t>(out_addr);
    inst.lut.count = static_cast<uint32_t>(t.u1 - t.u0);  // <= SRAM capacity
    return inst;
  };
  lower_op(op, space, build, consts);
}


void Lowering::lower_rows(const ref::Int8Op& op, const RowTiling& tiling, const RowBuilder& build,
                          const AddConstants& consts) {
  TileSpace space;
  space.window = false;
  space.units = tiling.units;
  if (tiling.const_bytes) space.const_bytes = [&](int64_t) { return tiling.const_bytes; };
  const Builder whole_op = [&](const Tile&, const std::vector<uint64_t>& in_addrs, uint64_t const_addr,
                               uint64_t out_addr) { return build(0, tiling.units, in_addrs, const_addr, out_addr); };
  if (!lower_resident(op, space, whole_op, consts)) lower_rows_tiled(op, tiling, build, consts);
  end_layer();
}

void Lowering::lower_rows_tiled(const ref::Int8Op& op, const RowTiling& tiling, const RowBuilder& build,
                                const AddConstants& consts) {
  flush();  // everything this op reads is in DRAM now, and all of SRAM is free
  const uint64_t cap = sram_.capacity();
  const size_t inputs = op.inputs.size();
  // Whole inputs and constants: once, first.
  uint64_t fixed = align_up(tiling.const_bytes, kSramAlignment);
  for (size_t i = 0; i < inputs; ++i)
    if (tiling.in_unit_bytes[i] == 0) fixed += align_up(bytes_of(op.inputs[i]), kSramAlignment);
  auto slot_bytes = [&](int64_t units) {
    uint64_t b = align_up(units * tiling.out_unit_bytes, kSramAlignment);
    for (size_t i = 0; i < inputs; ++i) b += align_up(units * tiling.in_unit_bytes[i], kSramAlignment);
    return b;
  };
  // The largest tile that fits with two buffer sets, else with one.
  auto largest = [&](uint64_t slots) -> int64_t {
    if (fixed + slots * slot_bytes(1) > cap) return 0;
    int64_t lo = 1, hi = tiling.units;  // lo fits
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (fixed + slots * slot_bytes(mid) <= cap) lo = mid; else hi = mid - 1;
    }
    return lo;
  };
  uint64_t slots = tiling.units > 1 ? 2 : 1;
  int64_t chunk = largest(slots);
  if (chunk == 0 && slots == 2) slots = 1, chunk = largest(1);
  if (chunk == 0)
    fail(ErrorCode::kUnsupported, where(op) + ": one unit (" + std::to_string(slot_bytes(1)) + " bytes, plus " +
                                      std::to_string(fixed) + " shared) does not fit " + std::to_string(cap) +
                                      " bytes of SRAM");
  const uint64_t const_addr = tiling.const_bytes ? allocate_in_empty_sram(tiling.const_bytes) : 0;
  if (tiling.const_bytes)
    emit_dma(isa::Opcode::kDmaLoad, isa::Region::kConst, consts(0, tiling.units), const_addr, tiling.const_bytes);
  std::vector<uint64_t> whole(inputs, 0);
  for (size_t i = 0; i < inputs; ++i)
    if (tiling.in_unit_bytes[i] == 0) {
      whole[i] = allocate_in_empty_sram(bytes_of(op.inputs[i]));
      const ValueHome& h = plan_.home[op.inputs[i]];
      emit_dma(isa::Opcode::kDmaLoad, h.region, h.offset, whole[i], bytes_of(op.inputs[i]));
    }
  std::vector<std::vector<uint64_t>> in_bufs(slots, std::vector<uint64_t>(inputs));
  std::vector<uint64_t> out_bufs(slots);
  for (uint64_t s = 0; s < slots; ++s) {
    for (size_t i = 0; i < inputs; ++i)
      in_bufs[s][i] = tiling.in_unit_bytes[i] ? allocate_in_empty_sram(chunk * tiling.in_unit_bytes[i]) : whole[i];
    out_bufs[s] = allocate_in_empty_sram(chunk * tiling.out_unit_bytes);
  }
  report_->sram_bytes = sram_.used();
  const int64_t tiles = ceil_div(tiling.units, chunk);
  auto emit_loads = [&](int64_t k) {
    const int64_t u0 = k * chunk, u1 = std::min(tiling.units, u0 + chunk);
    for (size_t i = 0; i < inputs; ++i) {
      const uint64_t b = tiling.in_unit_bytes[i];
      if (b == 0) continue;
      const ValueHome& h = plan_.home[op.inputs[i]];
      emit_dma(isa::Opcode::kDmaLoad, h.region, h.offset + u0 * b, in_bufs[k % slots][i], (u1 - u0) * b);
    }
  };
  // With two buffer sets, software pipelined: tile k+1's loads precede tile k's store in the DMA queue.
  const ValueHome& out_home = plan_.home[op.output];
  if (slots > 1) emit_loads(0);
  for (int64_t k = 0; k < tiles; ++k) {
    if (slots == 1) emit_loads(k);
    if (slots > 1 && k + 1 < tiles) emit_loads(k + 1);
    const int64_t u0 = k * chunk, u1 = std::min(tiling.units, u0 + chunk);
    emit(build(u0, u1, in_bufs[k % slots], const_addr, out_bufs[k % slots]));
    emit_dma(isa::Opcode::kDmaStore, out_home.region, out_home.offset + u0 * tiling.out_unit_bytes, out_bufs[k % slots],
             (u1 - u0) * tiling.out_unit_bytes);
  }
  for (uint64_t s = 0; s < slots; ++s) {
    for (size_t i = 0; i < inputs; ++i)
      if (tiling.in_unit_bytes[i]) sram_.release(in_bufs[s][i]);
    sram_.release(out_bufs[s]);
  }
  for (size_t i = 0; i < inputs; ++i)
    if (tiling.in_unit_bytes[i] == 0) sram_.release(whole[i]);
  if (tiling.const_bytes) sram_.release(const_addr);
}

namespace {

/// A geometry value in a 32-bit instruction field.
uint32_t u32(int64_t v, const char* field, const ref::Int8Op& op) {
  if (v < 0 || v > std::numeric_limits<uint32_t>::max())
    fail(ErrorCode::kUnsupported, where(op) + ": " + field + " = " + std::to_string(v) +
                                      " does not fit the ISA's 32-bit field");
  return static_cast<uint32_t>(v);
}

}  // namespace

/// kMatMul: when B is one matrix for every product (or there is one product), A's batch*M rows are
/// contiguous and share B, so tiles are row ranges of A with B loaded once; otherwise tiles are
/// ranges of whole products (A broadcast: loaded once).
void Lowering::lower_matmul(const ref::Int8Op& op) {
  check_arity(op, 2);
  const ref::Int8Value &a = graph_.values[op.inputs[0]], &b = graph_.values[op.inputs[1]], &y = graph_.values[op.output];
  ref::MatMulDims d;
  try {
    d = ref::matmul_dims(a.shape, b.shape);
  } catch (const Error& e) {
    fail(e.code(), where(op) + ": " + e.what());
  }
  if (d.out != y.shape)
    fail(ErrorCode::kInvalidArgument, where(op) + ": output " + shape_str(y.shape) + " does not match " +
                                          shape_str(a.shape) + " x " + shape_str(b.shape));
  if (d.k * 255 * 255 > std::numeric_limits<int32_t>::max())
    fail(ErrorCode::kUnsupported, where(op) + ": K = " + std::to_string(d.k) + " can overflow the int32 accumulator");
  check_requant(op, op.multiplier, op.act_min, op.act_max);
  isa::Instruction proto;
  proto.opcode = isa::Opcode::kMatMul;
  isa::MatMulArgs& p = proto.matmul;
  p.k = u32(d.k, "K", op);
  p.n = u32(d.n, "N", op);
  p.a_zero_point = a.q.zero_point;
  p.b_zero_point = b.q.zero_point;
  p.out_zero_point = y.q.zero_point;
  p.mult = op.multiplier.multiplier;
  p.shift = op.multiplier.shift;
  p.act_min = op.act_min;
  p.act_max = op.act_max;
  if (d.cross) return lower_matmul_cross(op, d, proto);
  const bool by_rows = d.b_step == 0 || d.batch == 1;
  RowTiling tiling;
  if (by_rows) {
    tiling.units = d.batch * d.m;
    tiling.in_unit_bytes = {static_cast<uint64_t>(d.k), 0};
    tiling.out_unit_bytes = static_cast<uint64_t>(d.n);
  } else {
    tiling.units = d.batch;
    tiling.in_unit_bytes = {d.a_step ? static_cast<uint64_t>(d.m * d.k) : 0, static_cast<uint64_t>(d.k * d.n)};
    tiling.out_unit_bytes = static_cast<uint64_t>(d.m * d.n);
  }
  const RowBuilder build = [&](int64_t u0, int64_t u1, const std::vector<uint64_t>& in_addrs, uint64_t,
                               uint64_t out_addr) {
    isa::Instruction inst = proto;
    isa::MatMulArgs& m = inst.matmul;
    m.a_addr = static_cast<uint32_t>(in_addrs[0]);
    m.b_addr = static_cast<uint32_t>(in_addrs[1]);
    m.out_addr = static_cast<uint32_t>(out_addr);
    if (by_rows) {  // one product of (u1 - u0) rows of A with the shared B
      m.batch = 1;
      m.m = u32(u1 - u0, "rows", op);
    } else {
      m.batch = u32(u1 - u0, "batch", op);
      m.m = u32(d.m, "M", op);
      m.a_step = d.a_step ? u32(d.m * d.k, "A step", op) : 0;
      m.b_step = u32(d.k * d.n, "B step", op);
    }
    report_->macs += isa::matmul_macs(m);
    return inst;
  };
  if (smallest_row_tile(op, tiling) > sram_.capacity()) return lower_matmul_columns(op, d, proto);
  lower_rows(op, tiling, build, nullptr);
}

/// kSoftmax: the 1 KiB exponential table (math::make_softmax_table's entries, from lower_qdq) is
/// one constant loaded once per layer; tiles are ranges of the outer rows (dimensions before the axis).
void Lowering::lower_softmax(const ref::Int8Op& op) {
  check_arity(op, 1);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  if (x.shape != y.shape)
    fail(ErrorCode::kInvalidArgument, where(op) + ": input " + shape_str(x.shape) + " and output " + shape_str(y.shape) +
                                          " differ");
  if (op.axis < 0 || op.axis >= static_cast<int>(x.shape.size()))
    fail(ErrorCode::kInvalidArgument, where(op) + ": axis " + std::to_string(op.axis) + " is outside " + shape_str(x.shape));
  if (op.softmax_table[0] <= 0 ||
      std::any_of(op.softmax_table.begin(), op.softmax_table.end(),
                  [](int32_t e) { return e < 0 || e > (1 << math::kSoftmaxFractionBits); }))
    fail(ErrorCode::kInvalidArgument, where(op) + ": exponential table entries must lie in [0, 2^30], entry 0 > 0");
  check_requant(op, op.multiplier, -128, 127);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < op.axis; ++i) outer *= x.shape[i];
  for (size_t i = op.axis + 1; i < x.shape.size(); ++i) inner *= x.shape[i];
  const int64_t length = x.shape[op.axis];
  constexpr uint64_t kTableBytes = sizeof(math::SoftmaxTable);
  RowTiling tiling;
  tiling.units = outer;
  tiling.in_unit_bytes = {static_cast<uint64_t>(length * inner)};
  tiling.out_unit_bytes = static_cast<uint64_t>(length * inner);
  tiling.const_bytes = kTableBytes;
  const AddConstants consts = constant_once(op.softmax_table.data(), kTableBytes);
  const RowBuilder build = [&](int64_t u0, int64_t u1, const std::vector<uint64_t>& in_addrs, uint64_t const_addr,
                               uint64_t out_addr) {
    isa::Instruction inst;
    inst.opcode = isa::Opcode::kSoftmax;
    isa::SoftmaxArgs& s = inst.softmax;
    s.in_addr = static_cast<uint32_t>(in_addrs[0]);
    s.table_addr = static_cast<uint32_t>(const_addr);
    s.out_addr = static_cast<uint32_t>(out_addr);
    s.outer = u32(u1 - u0, "outer rows", op);
    s.length = u32(length, "axis length", op);
    s.inner = u32(inner, "inner size", op);
    s.out_zero_point = y.q.zero_point;
    s.mult = op.multiplier.multiplier;
    s.shift = op.multiplier.shift;
    return inst;
  };
  lower_rows(op, tiling, build, consts);
}

/// kResize: the row and column taps (from lower_qdq, math::ResizeTap) are one constant, rows then
/// columns, loaded once per layer; tiles are ranges of whole planes (the leading axes), so a
/// tensor larger than SRAM runs plane by plane; one plane that does not fit is kUnsupported.
void Lowering::lower_resize(const ref::Int8Op& op) {
  check_arity(op, 1);
  const ref::Int8Value &x = graph_.values[op.inputs[0]], &y = graph_.values[op.output];
  ref::ResizeDims d;
  try {
    d = ref::resize_dims(op, x.shape, y.shape);
  } catch (const Error& e) {
    fail(e.code(), where(op) + ": " + e.what());
  }
  check_requant(op, op.multiplier, -128, 127);
  std::vector<int32_t> table;
  for (const auto* taps : {&op.resize_rows, &op.resize_cols})
    for (const math::ResizeTap& t : *taps) table.insert(table.end(), {t.first, t.second, t.weight});
  const uint64_t table_bytes = table.size() * sizeof(int32_t);
  RowTiling tiling;
  tiling.units = d.planes;
  tiling.in_unit_bytes = {static_cast<uint64_t>(d.in_h * d.in_w)};
  tiling.out_unit_bytes = static_cast<uint64_t>(d.out_h * d.out_w);
  tiling.const_bytes = table_bytes;
  const AddConstants consts = constant_once(table.data(), table_bytes);
  const RowBuilder build = [&](int64_t u0, int64_t u1, const std::vector<uint64_t>& in_addrs, uint64_t const_addr,
                               uint64_t out_addr) {
    isa::Instruction inst;
    inst.opcode = isa::Opcode::kResize;
    isa::ResizeArgs& r = inst.resize;
    r.in_addr = static_cast<uint32_t>(in_addrs[0]);
    r.rows_addr = static_cast<uint32_t>(const_addr);
    r.cols_addr = static_cast<uint32_t>(const_addr + static_cast<uint64_t>(d.out_h) * isa::kResizeTapBytes);
    r.out_addr = static_cast<uint32_t>(out_addr);
    r.planes = u32(u1 - u0, "planes", op);
    r.in_h = u32(d.in_h, "input height", op);
    r.in_w = u32(d.in_w, "input width", op);
    r.out_h = u32(d.out_h, "output height", op);
    r.out_w = u32(d.out_w, "output width", op);
    r.in_zero_point = x.q.zero_point;
    r.out_zero_point = y.q.zero_point;
    r.mult = op.multiplier.multiplier;
    r.shift = op.multiplier.shift;
    return inst;
  };
  lower_rows(op, tiling, build, consts);
}

}  // namespace anvil::compiler

namespace anvil::compiler {

namespace {

/// The output of a kBinary as isa::kBinaryRank dimensions with each operand's element strides (0
/// where it is broadcast, numpy rules, operands right-aligned): output dimensions of extent 1 are
/// dropped and neighbours that both operands walk contiguously are merged, so [1,197,768] times a
/// [768] gamma is 197 x 768 with b strides 0, 1. kUnsupported when more than kBinaryRank remain.
Lowering::BinaryShape binary_shape(const Shape& a, const Shape& b, const Shape& y, const ref::Int8Op& op) {
  const size_t rank = y.size();
  auto strides = [&](const Shape& in, const char* name) {
    if (in.size() > rank)
      fail(ErrorCode::kInvalidArgument, where(op) + ": operand " + name + " " + shape_str(in) +
                                            " has a higher rank than the output " + shape_str(y));
    std::vector<int64_t> s(rank, 0);
    int64_t step = 1;
    for (size_t i = in.size(); i-- > 0;) {
      const size_t d = rank - in.size() + i;
      if (in[i] != 1 && in[i] != y[d])
        fail(ErrorCode::kInvalidArgument, where(op) + ": operand " + name + " " + shape_str(in) +
                                              " does not broadcast to the output " + shape_str(y));
      s[d] = in[i] == 1 ? 0 : step;
      step *= in[i];
    }
    return s;
  };
  const std::vector<int64_t> sa = strides(a, "a"), sb = strides(b, "b");
  std::vector<std::array<int64_t, 3>> dims;  // extent, a stride, b stride; outermost first
  for (size_t d = 0; d < rank; ++d) {
    if (y[d] == 1) continue;
    if (!dims.empty() && dims.back()[1] == sa[d] * y[d] && dims.back()[2] == sb[d] * y[d]) {
      dims.back() = {dims.back()[0] * y[d], sa[d], sb[d]};
      continue;
    }
    dims.push_back({y[d], sa[d], sb[d]});
  }
  if (dims.size() > static_cast<size_t>(isa::kBinaryRank))
    fail(ErrorCode::kUnsupported, where(op) + ": broadcasting " + shape_str(a) + " with " + shape_str(b) + " needs " +
                                      std::to_string(dims.size()) + " dimensions, kBinary has " +
                                      std::to_string(isa::kBinaryRank));
  Lowering::BinaryShape s;
  s.extent.fill(1);
  const size_t lead = isa::kBinaryRank - dims.size();
  for (size_t k = 0; k < dims.size(); ++k) {
    s.extent[lead + k] = dims[k][0];
    s.a_stride[lead + k] = dims[k][1];
    s.b_stride[lead + k] = dims[k][2];
  }
  s.tiled_dim = dims.empty() ? isa::kBinaryRank - 1 : static_cast<int>(lead);
  return s;
}

/// Bytes an operand with `stride` spans over `rows` rows of the tiled dimension (0 rows: none).
uint64_t binary_span(const Lowering::BinaryShape& s, const std::array<int64_t, isa::kBinaryRank>& stride,
                     int64_t rows) {
  if (rows == 0) return 0;
  uint64_t last = static_cast<uint64_t>(rows - 1) * stride[s.tiled_dim];
  for (int k = s.tiled_dim + 1; k < isa::kBinaryRank; ++k) last += static_cast<uint64_t>(s.extent[k] - 1) * stride[k];
  return last + 1;
}

}  // namespace

void Lowering::lower_binary(const ref::Int8Op& op) {
  const bool has_const = op.inputs.size() == 1;
  if (has_const ? op.weight.empty() || op.weight.dtype() != DType::kInt8 : op.inputs.size() != 2 || !op.weight.empty())
    fail(ErrorCode::kInvalidArgument, where(op) + ": expects two int8 values, or one and an int8 constant");
  // constant - x: the constant is operand a (kBinary reads a from any SRAM address with its strides).
  const bool const_first = op.constant_first;
  if (const_first && (op.kind != ref::Int8OpKind::kSub || !has_const))
    fail(ErrorCode::kInvalidArgument, where(op) + ": only a sub of one value takes its constant first");
  const ref::Int8Value& y = graph_.values[op.output];
  const Shape& a_shape = const_first ? op.weight.shape() : graph_.values[op.inputs[0]].shape;
  const Shape& b_shape = const_first ? graph_.values[op.inputs[0]].shape
                         : has_const ? op.weight.shape()
                                     : graph_.values[op.inputs[1]].shape;
  const BinaryShape shape = binary_shape(a_shape, b_shape, y.shape, op);
  isa::Instruction proto;
  proto.opcode = isa::Opcode::kBinary;
  isa::BinaryArgs& p = proto.binary;
  if (op.kind == ref::Int8OpKind::kMul) {
    check_requant(op, op.mul.out, op.mul.act_min, op.mul.act_max);
    p.op = static_cast<uint8_t>(isa::BinaryOp::kMul);
    p.a_zero_point = op.mul.a_zero_point;
    p.b_zero_point = op.mul.b_zero_point;
    p.out_zero_point = op.mul.out_zero_point;
    p.out_mult = op.mul.out.multiplier;
    p.out_shift = op.mul.out.shift;
    p.act_min = op.mul.act_min;
    p.act_max = op.mul.act_max;
  } else {
    for (const math::QuantizedMultiplier& q : {op.add.a, op.add.b, op.add.out})
      check_requant(op, q, op.add.act_min, op.add.act_max);
    p.op = static_cast<uint8_t>(op.kind == ref::Int8OpKind::kSub ? isa::BinaryOp::kSub : isa::BinaryOp::kAdd);
    p.a_zero_point = op.add.a_zero_point;
    p.b_zero_point = op.add.b_zero_point;
    p.out_zero_point = op.add.out_zero_point;
    p.a_mult = op.add.a.multiplier;
    p.a_shift = op.add.a.shift;
    p.b_mult = op.add.b.multiplier;
    p.b_shift = op.add.b.shift;
    p.out_mult = op.add.out.multiplier;
    p.out_shift = op.add.out.shift;
    p.act_min = op.add.act_min;
    p.act_max = op.add.act_max;
  }
  for (int k = 0; k < isa::kBinaryRank; ++k) {
    p.shape[k] = u32(shape.extent[k], "extent", op);
    p.a_stride[k] = u32(shape.a_stride[k], "stride", op);
    p.b_stride[k] = u32(shape.b_stride[k], "stride", op);
  }
  TileSpace space;
  space.window = false;
  space.units = shape_numel(y.shape);
  space.out_h = shape.extent[shape.tiled_dim];  // whole(space): every row of the tiled dimension
  AddConstants consts;  // the constant operand, once in the constant section
  if (has_const) {
    const uint64_t bytes = static_cast<uint64_t>(op.weight.nbytes());
    space.const_bytes = [bytes](int64_t) { return bytes; };
    consts = constant_once(op.weight.raw(), op.weight.nbytes());
  }
  const int td = shape.tiled_dim;
  const Builder build = [&, has_const, const_first, td](const Tile& t, const std::vector<uint64_t>& in_addrs,
                                                        uint64_t const_addr, uint64_t out_addr) {
    isa::Instruction inst = proto;
    isa::BinaryArgs& b = inst.binary;
    b.a_addr = static_cast<uint32_t>(const_first ? const_addr : in_addrs[0]);
    b.b_addr = static_cast<uint32_t>(const_first ? in_addrs[0] : has_const ? const_addr : in_addrs[1]);
    b.out_addr = static_cast<uint32_t>(out_addr);
    b.shape[td] = static_cast<uint32_t>(t.r1 - t.r0);
    return inst;
  };
  lower_op(op, space, build, consts, [&] { lower_binary_tiled(op, shape, build, consts); });
}

void Lowering::lower_binary_tiled(const ref::Int8Op& op, const BinaryShape& shape, const Builder& build,
                                  const AddConstants& consts) {
  flush();  // everything this op reads is in DRAM now, and all of SRAM is free
  const uint64_t cap = sram_.capacity();
  const int td = shape.tiled_dim;
  const int64_t rows = shape.extent[td];
  uint64_t row_out = 1;  // output bytes per row of the tiled dimension
  for (int k = td + 1; k < isa::kBinaryRank; ++k) row_out *= static_cast<uint64_t>(shape.extent[k]);
  struct Operand {
    isa::Region region;
    uint64_t offset;                                // DRAM
    std::array<int64_t, isa::kBinaryRank> stride;
    bool shared;                                    // broadcast along the tiled dimension: loaded once
    uint64_t addr = 0;                              // shared: its SRAM copy
  };
  std::vector<Operand> operands;
  const size_t const_operand = op.inputs.size() == 1 ? (op.constant_first ? 0 : 1) : 2;  // 2: none
  for (size_t i = 0; i < 2; ++i) {
    const auto& stride = i == 0 ? shape.a_stride : shape.b_stride;
    const bool constant = i == const_operand;
    const ValueHome h = constant ? ValueHome{} : plan_.home[op.inputs[op.constant_first ? 0 : i]];
    operands.push_back({constant ? isa::Region::kConst : h.region, constant ? consts(0, 0) : h.offset, stride,
                        stride[td] == 0 || rows == 1});
  }
  // SRAM for `rs` rows in `slots` buffers, plus the shared operands once.
  auto need = [&](int64_t rs, uint64_t slots) {
    uint64_t per_slot = align_up(rs * row_out, kSramAlignment), shared = 0;
    for (const Operand& o : operands)
      (o.shared ? shared : per_slot) += align_up(binary_span(shape, o.stride, o.shared ? rows : rs), kSramAlignment);
    return slots * per_slot + shared;
  };
  auto most_rows = [&](uint64_t slots) {  // need() grows with the rows: bisect for the most that fit
    int64_t lo = 0, hi = rows;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo + 1) / 2;
      if (need(mid, slots) <= cap) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  };
  // One slot when it takes every row in one tile, else two (double buffering) when a row fits.
  const int64_t one_slot = most_rows(1), two_slots = one_slot == rows ? 0 : most_rows(2);
  const uint64_t slots = two_slots > 0 ? 2 : 1;
  const int64_t rs = two_slots > 0 ? two_slots : one_slot;
  if (rs == 0)
    fail(ErrorCode::kUnsupported, where(op) + ": SRAM of " + std::to_string(cap) +
                                      " bytes holds no row of the output with its operands (an operand broadcast "
                                      "along the outermost dimension is loaded whole)");
  for (Operand& o : operands)
    if (o.shared) {
      o.addr = allocate_in_empty_sram(binary_span(shape, o.stride, rows));
      emit_dma(isa::Opcode::kDmaLoad, o.region, o.offset, o.addr, binary_span(shape, o.stride, rows));
    }
  struct Slot {
    uint64_t out = 0;
    std::array<uint64_t, 2> in{};
  };
  std::vector<Slot> slot(slots);
  for (Slot& sl : slot) {
    sl.out = allocate_in_empty_sram(rs * row_out);
    for (size_t i = 0; i < operands.size(); ++i)
      if (!operands[i].shared) sl.in[i] = allocate_in_empty_sram(binary_span(shape, operands[i].stride, rs));
  }
  report_->sram_bytes = sram_.used();
  const ValueHome& out_home = plan_.home[op.output];
  const int64_t tiles = ceil_div(rows, rs);
  auto emit_loads = [&](int64_t k) {
    const int64_t r0 = k * rs, r1 = std::min(rows, r0 + rs);
    for (size_t i = 0; i < operands.size(); ++i) {
      const Operand& o = operands[i];
      if (!o.shared)
        emit_dma(isa::Opcode::kDmaLoad, o.region, o.offset + r0 * o.stride[td], slot[k % slots].in[i],
                 binary_span(shape, o.stride, r1 - r0));
    }
  };
  // With two slots, software pipelined as lower_tiled does: tile k+1's loads overlap tile k.
  if (slots > 1) emit_loads(0);
  for (int64_t k = 0; k < tiles; ++k) {
    if (slots == 1) emit_loads(k);
    if (slots > 1 && k + 1 < tiles) emit_loads(k + 1);
    const Slot& sl = slot[k % slots];
    Tile t;
    t.r0 = k * rs;
    t.r1 = std::min(rows, t.r0 + rs);
    const uint64_t a = operands[0].shared ? operands[0].addr : sl.in[0];
    const uint64_t b = operands[1].shared ? operands[1].addr : sl.in[1];
    emit(const_operand == 0 ? build(t, {b}, a, sl.out) : build(t, {a, b}, b, sl.out));
    emit_dma(isa::Opcode::kDmaStore, out_home.region, out_home.offset + t.r0 * row_out, sl.out,
             (t.r1 - t.r0) * row_out);
  }
  for (const Operand& o : operands)
    if (o.shared) sram_.release(o.addr);
  for (const Slot& sl : slot) {
    sram_.release(sl.out);
    for (size_t i = 0; i < operands.size(); ++i)
      if (!operands[i].shared) sram_.release(sl.in[i]);
  }
}

}  // namespace anvil::compiler

namespace anvil::compiler {

namespace {

using Move = Lowering::Move;

std::vector<int64_t> row_major(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// Edge and reflect padding as copies from the input only (every output element is an input
/// element). Along each axis the output is up to three segments: the `before` pad, the input's
/// own range, the `after` pad; edge reads index 0 / dim - 1 for every pad element (stride 0),
/// reflect reads before, before - 1, .., 1 and dim - 2, dim - 3, .. (stride -1). The output is the
/// product of the axes' segments: one move per combination (3^padded axes, e.g. 9 for H and W),
/// together writing every output element once.
template <typename Bad>
void pad_mode_moves(const ref::Int8Op& op, const Shape& x, const Shape& y, const Bad& bad, std::vector<Move>* moves) {
  struct Segment {
    int64_t out_begin, count, in_begin, in_step;
  };
  const size_t rank = y.size();
  const bool reflect = op.pad_mode == ref::PadMode::kReflect;
  if (!reflect && op.pad_mode != ref::PadMode::kEdge) bad("unknown pad mode");
  std::vector<std::vector<Segment>> axes(rank);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t before = op.pad_begin[k], after = y[k] - x[k] - before;
    if (before < 0 || after < 0) bad("padding does not fit the output");
    if (x[k] < 1 || (reflect && (before >= x[k] || after >= x[k]) && (before || after)))
      bad("reflect padding of axis " + std::to_string(k) + " is not smaller than the axis");
    if (before > 0) axes[k].push_back({0, before, reflect ? before : 0, reflect ? -1 : 0});
    axes[k].push_back({before, x[k], 0, 1});
    if (after > 0) axes[k].push_back({before + x[k], after, reflect ? x[k] - 2 : x[k] - 1, reflect ? -1 : 0});
  }
  const std::vector<int64_t> ys = row_major(y), xs = row_major(x);
  std::vector<size_t> pick(rank, 0);
  for (;;) {
    Move m;
    m.input = 0;
    for (size_t k = 0; k < rank; ++k) {
      const Segment& s = axes[k][pick[k]];
      m.shape.push_back(s.count);
      m.in_strides.push_back(xs[k] * s.in_step);
      m.out_strides.push_back(ys[k]);
      m.in_offset += s.in_begin * xs[k];
      m.out_offset += s.out_begin * ys[k];
    }
    moves->push_back(m);
    size_t k = rank;
    while (k > 0 && ++pick[k - 1] == axes[k - 1].size()) pick[--k] = 0;
    if (k == 0) return;
  }
}

/// The moves of an op from its parameters, strides in elements of the row-major tensors.
std::vector<Move> plan_moves(const ref::Int8Graph& g, const ref::Int8Op& op) {
  const Shape& y = g.values[op.output].shape;
  const Shape& x = g.values[op.inputs[0]].shape;
  const size_t rank = y.size();
  const std::vector<int64_t> ys = row_major(y), xs = row_major(x);
  const auto bad = [&](const std::string& why) { fail(ErrorCode::kInvalidArgument, where(op) + ": " + why); };
  for (int v : op.inputs)
    if (g.values[v].shape.size() != rank) bad("input rank differs from the output's");
  std::vector<Move> moves;
  Move m;
  m.input = 0;
  m.shape = y;
  m.out_strides = ys;
  switch (op.kind) {
    case ref::Int8OpKind::kTranspose:
      if (op.perm.size() != rank) bad("perm has the wrong length");
      for (size_t k = 0; k < rank; ++k) {
        const int64_t p = op.perm[k];
        if (p < 0 || p >= static_cast<int64_t>(rank) || x[p] != y[k] ||
            std::find(op.perm.begin(), op.perm.begin() + k, p) != op.perm.begin() + k)
          bad("perm does not map " + shape_str(x) + " to " + shape_str(y));
        m.in_strides.push_back(xs[p]);
      }
      moves.push_back(m);
      break;
    case ref::Int8OpKind::kSlice:
      if (op.starts.size() != rank || op.steps.size() != rank) bad("starts/steps have the wrong length");
      for (size_t k = 0; k < rank; ++k) {
        const int64_t last = op.starts[k] + (y[k] - 1) * op.steps[k];
        if (op.steps[k] == 0 || op.starts[k] < 0 || op.starts[k] >= x[k] || last < 0 || last >= x[k])
          bad("slice of " + shape_str(y) + " leaves the input " + shape_str(x) + " or has a zero step");
        m.in_strides.push_back(xs[k] * op.steps[k]);
        m.in_offset += op.starts[k] * xs[k];
      }
      moves.push_back(m);
      break;
    case ref::Int8OpKind::kConcat: {
      if (op.axis < 0 || op.axis >= static_cast<int64_t>(rank)) bad("axis out of range");
      int64_t at = 0;
      for (size_t i = 0; i < op.inputs.size(); ++i) {
        const Shape& s = g.values[op.inputs[i]].shape;
        for (size_t k = 0; k < rank; ++k)
          if (static_cast<int64_t>(k) != op.axis && s[k] != y[k]) bad("inputs do not match the output");
        Move c;
        c.input = static_cast<int>(i);
        c.shape = s;
        c.in_strides = row_major(s);
        c.out_strides = ys;
        c.out_offset = at * ys[op.axis];
        at += s[op.axis];
        moves.push_back(c);
      }
      if (at != y[op.axis]) bad("inputs do not add up to the output along the axis");
      break;
    }
    case ref::Int8OpKind::kPad: {
      if (op.pad_begin.size() != rank) bad("pad_begin has the wrong length");
      if (!op.pad_interior.empty() && (op.pad_interior.size() != rank || op.pad_mode != ref::PadMode::kConstant))
        bad("pad_interior needs constant mode and one entry per axis");
      if (op.pad_mode != ref::PadMode::kConstant) {
        pad_mode_moves(op, x, y, bad, &moves);
        break;
      }
      Move fill;  // the whole output, then the input over it (interior: every (interior + 1)-th element)
      fill.shape = y;
      fill.in_strides.assign(rank, 0);
      fill.out_strides = ys;
      moves.push_back(fill);
      m.shape = x;
      m.in_strides = xs;
      for (size_t k = 0; k < rank; ++k) {
        const int64_t interior = op.pad_interior.empty() ? 0 : op.pad_interior[k];
        if (interior < 0 || op.pad_begin[k] < 0 || op.pad_begin[k] + (x[k] - 1) * (interior + 1) + 1 > y[k])
          bad("padding does not fit the output");
        m.out_offset += op.pad_begin[k] * ys[k];
        m.out_strides[k] = ys[k] * (interior + 1);
      }
      moves.push_back(m);
      break;
    }
    default: bad("not a data-movement op");
  }
  return moves;
}

/// Drops size-1 axes and merges neighbours that are contiguous in both tensors, so that e.g. a
/// channel slice of N x C x H x W is one run of H * W per channel.
void simplify(Move& m) {
  Move s = m;
  s.shape.clear(), s.in_strides.clear(), s.out_strides.clear();
  for (size_t k = 0; k < m.shape.size(); ++k) {
    if (m.shape[k] == 1) continue;
    if (!s.shape.empty() && s.in_strides.back() == m.in_strides[k] * m.shape[k] &&
        s.out_strides.back() == m.out_strides[k] * m.shape[k]) {
      s.shape.back() *= m.shape[k];
      s.in_strides.back() = m.in_strides[k];
      s.out_strides.back() = m.out_strides[k];
      continue;
    }
    s.shape.push_back(m.shape[k]);
    s.in_strides.push_back(m.in_strides[k]);
    s.out_strides.push_back(m.out_strides[k]);
  }
  m = std::move(s);
}

int32_t i32(int64_t v, const char* field, const ref::Int8Op& op) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    fail(ErrorCode::kUnsupported, where(op) + ": " + field + " " + std::to_string(v) + " does not fit the ISA's 32-bit field");
  return static_cast<int32_t>(v);
}

}  // namespace

/// The kCopy of one move, addresses relative to the input's and output's buffers (the caller
/// adds them). Inputs whose quantization differs from the output's are copied in kRequant mode.
isa::Instruction Lowering::copy_instruction(const ref::Int8Op& op, Move m) const {
  simplify(m);
  if (m.shape.size() > static_cast<size_t>(isa::kCopyDims))
    fail(ErrorCode::kUnsupported, where(op) + ": needs a copy over " + std::to_string(m.shape.size()) +
                                      " axes, the ISA's kCopy has " + std::to_string(isa::kCopyDims));
  const ref::Int8Value& y = graph_.values[op.output];
  isa::Instruction inst;
  inst.opcode = isa::Opcode::kCopy;
  isa::CopyArgs& c = inst.copy;
  const size_t lead = isa::kCopyDims - m.shape.size();  // unused outer axes: size 1, stride 0
  for (size_t k = 0; k < isa::kCopyDims; ++k) c.shape[k] = 1;
  for (size_t k = 0; k < m.shape.size(); ++k) {
    c.shape[lead + k] = static_cast<uint32_t>(m.shape[k]);  // <= the tensor's bytes, which fit SRAM
    c.in_stride[lead + k] = i32(m.in_strides[k], "input stride", op);
    c.out_stride[lead + k] = i32(m.out_strides[k], "output stride", op);
  }
  c.in_addr = static_cast<uint32_t>(m.in_offset);
  c.out_addr = static_cast<uint32_t>(m.out_offset);
  if (m.input < 0) {
    c.mode = static_cast<uint8_t>(isa::CopyMode::kFill);
    if (op.pad_value < -128 || op.pad_value > 127)
      fail(ErrorCode::kInvalidArgument, where(op) + ": pad value " + std::to_string(op.pad_value) + " is not int8");
    c.fill_value = static_cast<int8_t>(op.pad_value);
    c.in_addr = 0;
  } else {
    const ref::Int8Value& x = graph_.values[op.inputs[m.input]];
    if (x.q.scale != y.q.scale || x.q.zero_point != y.q.zero_point) {
      const math::QuantizedMultiplier& q = op.multipliers[m.input];
      check_requant(op, q, -128, 127);
      c.mode = static_cast<uint8_t>(isa::CopyMode::kRequant);
      c.in_zero_point = x.q.zero_point;
      c.out_zero_point = y.q.zero_point;
      c.mult = q.multiplier;
      c.shift = q.shift;
    }
  }
  return inst;
}

/// Data movement: resident when every input and the output fit in SRAM (one kCopy per move: a
/// transpose or slice one; concat one per input; pad a fill of the output, then the input), else
/// tiled over rows of the output's outermost axis (lower_movement_tiled). With the resident
/// Builder, all but the last kCopy are emitted by the Builder itself; lower_resident emits the last.
void Lowering::lower_movement(const ref::Int8Op& op) {
  if (op.inputs.empty() || (op.kind != ref::Int8OpKind::kConcat && op.inputs.size() != 1))
    fail(ErrorCode::kInvalidArgument, where(op) + ": has " + std::to_string(op.inputs.size()) + " inputs");
  if (op.multipliers.size() != op.inputs.size())
    fail(ErrorCode::kInvalidArgument, where(op) + ": needs one multiplier per input");
  const std::vector<Move> moves = plan_moves(graph_, op);
  std::vector<isa::Instruction> copies;
  for (const Move& m : moves) copies.push_back(copy_instruction(op, m));
  TileSpace space;
  space.window = false;
  space.units = shape_numel(graph_.values[op.output].shape);
  const Builder build = [&](const Tile&, const std::vector<uint64_t>& in_addrs, uint64_t, uint64_t out_addr) {
    for (size_t i = 0; i < copies.size(); ++i) {
      isa::Instruction inst = copies[i];
      if (moves[i].input >= 0) inst.copy.in_addr += static_cast<uint32_t>(in_addrs[moves[i].input]);
      inst.copy.out_addr += static_cast<uint32_t>(out_addr);
      if (i + 1 == copies.size()) return inst;
      emit(inst);
    }
    return isa::Instruction{};  // unreachable: every op has at least one move
  };
  if (!lower_resident(op, space, build, nullptr)) lower_movement_tiled(op, moves);
  end_layer();
}

/// Output rows [a, b) of the outermost axis per tile, from DRAM to DRAM. Every move writes whole
/// output rows along axis 0 (its output stride there is a row); it must also read whole input rows
/// along axis 0 (an input stride of a multiple of a row, the other axes within one row), so a tile
/// loads the input rows its output rows read, one contiguous DMA per move: true of slices, concats,
/// pads and transposes that keep axis 0 in place. Anything else, or a single row that does not
/// fit, is kUnsupported (the op then runs on the host). When two buffer sets fit, tiles alternate
/// between them and the loads of tile k+1 overlap the copies of tile k; else one set per tile.
void Lowering::lower_movement_tiled(const ref::Int8Op& op, const std::vector<Move>& moves) {
  const Shape& y = graph_.values[op.output].shape;
  if (y.empty()) fail(ErrorCode::kUnsupported, where(op) + ": a scalar that does not fit SRAM");
  const int64_t out_row = shape_numel(y) / y[0];
  struct Rows {
    int64_t out_row0 = 0, out_inner = 0;             ///< where index 0 of the move lands
    int64_t in_row = 0, in_row0 = 0, in_inner = 0, step = 0;  ///< input row bytes, first row, offset in it, rows per index
  };
  std::vector<Rows> rows;
  const auto refuse = [&](const std::string& why) {
    fail(ErrorCode::kUnsupported, where(op) + ": its inputs and output do not fit " + std::to_string(sram_.capacity()) +
                                      " bytes of SRAM together, and it cannot be tiled over the outermost axis: " + why);
  };
  for (const Move& m : moves) {
    Rows r;
    r.out_row0 = m.out_offset / out_row;
    r.out_inner = m.out_offset % out_row;
    if (m.out_strides[0] != out_row) refuse("a move does not write whole output rows");
    if (m.input >= 0) {
      const Shape& x = graph_.values[op.inputs[m.input]].shape;
      r.in_row = shape_numel(x) / x[0];
      if (m.in_strides[0] % r.in_row != 0) refuse("the outermost output axis is not the input's");
      r.step = m.in_strides[0] / r.in_row;
      r.in_row0 = m.in_offset / r.in_row;
      r.in_inner = m.in_offset % r.in_row;
      int64_t lo = r.in_inner, hi = r.in_inner;
      for (size_t k = 1; k < m.shape.size(); ++k) (m.in_strides[k] < 0 ? lo : hi) += (m.shape[k] - 1) * m.in_strides[k];
      if (lo < 0 || hi >= r.in_row) refuse("an inner axis reads across input rows");
    }
    rows.push_back(r);
  }
  // The index range [i0, i1) of move j that output rows [a, b) hold, and the input rows it reads.
  const auto range = [&](size_t j, int64_t a, int64_t b) {
    const int64_t i0 = std::max<int64_t>(0, a - rows[j].out_row0), i1 = std::min<int64_t>(moves[j].shape[0], b - rows[j].out_row0);
    return std::make_pair(i0, i1);
  };
  const auto in_rows = [&](size_t j, int64_t i0, int64_t i1) {
    const int64_t first = rows[j].in_row0 + i0 * rows[j].step, last = rows[j].in_row0 + (i1 - 1) * rows[j].step;
    return std::make_pair(std::min(first, last), std::max(first, last));
  };
  // Moves that read the same rows of the same input (an edge or reflect pad's copies) share one load.
  using Load = std::tuple<int, int64_t, int64_t>;  // input, first row, last row
  const auto tile_bytes = [&](int64_t a, int64_t b) {
    uint64_t bytes = align_up(static_cast<uint64_t>((b - a) * out_row), kSramAlignment);
    std::set<Load> loads;
    for (size_t j = 0; j < moves.size(); ++j) {
      const auto [i0, i1] = range(j, a, b);
      if (i0 >= i1 || moves[j].input < 0) continue;
      const auto [lo, hi] = in_rows(j, i0, i1);
      if (!loads.insert({moves[j].input, lo, hi}).second) continue;
      bytes += align_up(static_cast<uint64_t>((hi - lo + 1) * rows[j].in_row), kSramAlignment);
    }
    return bytes;
  };
  flush();  // everything this op reads is in DRAM now, and all of SRAM is free
  int64_t tile = y[0];
  for (;; tile = (tile + 1) / 2) {
    bool fits = true;
    for (int64_t a = 0; a < y[0] && fits; a += tile) fits = tile_bytes(a, std::min(y[0], a + tile)) <= sram_.capacity();
    if (fits) break;
    if (tile == 1) refuse("one output row does not fit");
  }
  // Moves that read the same rows of the same input in a tile share the first such move's load:
  // owner(j) is that move (j itself when it loads).
  const auto owner = [&](size_t j, int64_t a, int64_t b) {
    const auto [i0, i1] = range(j, a, b);
    const auto [lo, hi] = in_rows(j, i0, i1);
    for (size_t k = 0; k < j; ++k) {
      if (moves[k].input != moves[j].input) continue;
      const auto [k0, k1] = range(k, a, b);
      if (k0 < k1 && in_rows(k, k0, k1) == std::make_pair(lo, hi)) return k;
    }
    return j;
  };
  // Double buffering: two buffer sets, each an output buffer of `t` rows and per move the most
  // input bytes any tile of `t` rows loads for it (0 for a move that always shares another's
  // load); when two fit, the loads of tile k+1 precede the copies and store of tile k, so the DMA
  // overlaps them (as the other tiled paths do).
  const auto most_input = [&](size_t j, int64_t t) {  // bytes of move j's largest load over tiles of t rows
    uint64_t most = 0;
    for (int64_t a = 0; a < y[0] && moves[j].input >= 0; a += t) {
      const auto [i0, i1] = range(j, a, std::min(y[0], a + t));
      if (i0 >= i1 || owner(j, a, std::min(y[0], a + t)) != j) continue;
      const auto [lo, hi] = in_rows(j, i0, i1);
      most = std::max(most, static_cast<uint64_t>((hi - lo + 1) * rows[j].in_row));
    }
    return most;
  };
  const auto slot_bytes = [&](int64_t t) {
    uint64_t bytes = align_up(static_cast<uint64_t>(t * out_row), kSramAlignment);
    for (size_t j = 0; j < moves.size(); ++j) bytes += align_up(most_input(j, t), kSramAlignment);
    return bytes;
  };
  int64_t double_tile = 0;  // the largest tile two buffer sets hold (bisect: slot_bytes grows with t)
  if (tile < y[0]) {
    for (int64_t lo = 1, hi = tile; lo <= hi;) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (2 * slot_bytes(mid) <= sram_.capacity()) {
        double_tile = mid, lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
  }
  const ValueHome& out_home = plan_.home[op.output];
  // The input buffer of move j for output rows [a, b) is in_bufs[owner(j)]: loads, then copies and store.
  const auto emit_loads = [&](int64_t a, int64_t b, const std::vector<uint64_t>& in_bufs) {
    for (size_t j = 0; j < moves.size(); ++j) {
      const auto [i0, i1] = range(j, a, b);
      if (i0 >= i1 || moves[j].input < 0 || owner(j, a, b) != j) continue;
      const auto [lo, hi] = in_rows(j, i0, i1);
      const ValueHome& home = plan_.home[op.inputs[moves[j].input]];
      emit_dma(isa::Opcode::kDmaLoad, home.region, home.offset + static_cast<uint64_t>(lo * rows[j].in_row), in_bufs[j],
               static_cast<uint64_t>((hi - lo + 1) * rows[j].in_row));
    }
  };
  const auto emit_copies = [&](int64_t a, int64_t b, uint64_t out_buf, const std::vector<uint64_t>& in_bufs) {
    for (size_t j = 0; j < moves.size(); ++j) {
      const auto [i0, i1] = range(j, a, b);
      if (i0 >= i1) continue;
      Move m = moves[j];
      m.shape[0] = i1 - i0;
      m.out_offset = (rows[j].out_row0 + i0 - a) * out_row + rows[j].out_inner;
      if (m.input >= 0) {
        const int64_t lo = in_rows(j, i0, i1).first;
        m.in_offset = (rows[j].in_row0 + i0 * rows[j].step - lo) * rows[j].in_row + rows[j].in_inner;
      }
      isa::Instruction inst = copy_instruction(op, m);
      if (m.input >= 0) inst.copy.in_addr += static_cast<uint32_t>(in_bufs[owner(j, a, b)]);
      inst.copy.out_addr += static_cast<uint32_t>(out_buf);
      emit(inst);
    }
    emit_dma(isa::Opcode::kDmaStore, out_home.region, out_home.offset + static_cast<uint64_t>(a * out_row), out_buf,
             static_cast<uint64_t>((b - a) * out_row));
  };
  if (double_tile > 0) {
    tile = double_tile;
    struct Slot {
      uint64_t out = 0;
      std::vector<uint64_t> in;
    } slot[2];
    for (Slot& sl : slot) {
      sl.out = allocate_in_empty_sram(static_cast<uint64_t>(tile * out_row));
      sl.in.assign(moves.size(), 0);
      for (size_t j = 0; j < moves.size(); ++j)
        if (const uint64_t most = most_input(j, tile)) sl.in[j] = allocate_in_empty_sram(most);
    }
    report_->sram_bytes = std::max<uint64_t>(report_->sram_bytes, sram_.used());
    const int64_t tiles = ceil_div(y[0], tile);
    const auto rows_of = [&](int64_t k) { return std::make_pair(k * tile, std::min(y[0], (k + 1) * tile)); };
    emit_loads(rows_of(0).first, rows_of(0).second, slot[0].in);
    for (int64_t k = 0; k < tiles; ++k) {
      if (k + 1 < tiles) emit_loads(rows_of(k + 1).first, rows_of(k + 1).second, slot[(k + 1) % 2].in);
      emit_copies(rows_of(k).first, rows_of(k).second, slot[k % 2].out, slot[k % 2].in);
    }
    for (const Slot& sl : slot) {
      sram_.release(sl.out);
      for (uint64_t b : sl.in)
        if (b) sram_.release(b);
    }
    return;
  }
  for (int64_t a = 0; a < y[0]; a += tile) {  // one buffer set per tile, allocated for its rows
    const int64_t b = std::min(y[0], a + tile);
    std::vector<uint64_t> in_bufs(moves.size(), 0), buffers;
    const uint64_t out_buf = allocate_in_empty_sram(static_cast<uint64_t>((b - a) * out_row));
    buffers.push_back(out_buf);
    for (size_t j = 0; j < moves.size(); ++j) {
      const auto [i0, i1] = range(j, a, b);
      if (i0 >= i1 || moves[j].input < 0 || owner(j, a, b) != j) continue;
      const auto [lo, hi] = in_rows(j, i0, i1);
      in_bufs[j] = allocate_in_empty_sram(static_cast<uint64_t>((hi - lo + 1) * rows[j].in_row));
      buffers.push_back(in_bufs[j]);
    }
    emit_loads(a, b, in_bufs);
    emit_copies(a, b, out_buf, in_bufs);
    report_->sram_bytes = std::max<uint64_t>(report_->sram_bytes, sram_.used());
    for (uint64_t buf : buffers) sram_.release(buf);
  }
}

}  // namespace anvil::compiler

namespace anvil::compiler {

LayerReport Lowering::lower_io_copy(const IoCopy& copy) {
  LayerReport report;
  report.node = copy.output;
  report.op = "io_copy";
  report_ = &report;
  // Every op has run: residents still needed are graph outputs, already stored; SRAM is free after this.
  flush();
  const uint64_t chunk = std::min(copy.bytes, sram_.capacity());
  const uint64_t buf = allocate_in_empty_sram(chunk);
  for (uint64_t at = 0; at < copy.bytes; at += chunk) {
    const uint64_t n = std::min(chunk, copy.bytes - at);
    emit_dma(isa::Opcode::kDmaLoad, isa::Region::kIo, copy.from + at, buf, n);
    emit_dma(isa::Opcode::kDmaStore, isa::Region::kIo, copy.to + at, buf, n);
  }
  sram_.release(buf);
  report.sram_bytes = chunk;
  report_ = nullptr;
  return report;
}

}  // namespace anvil::compiler

namespace anvil::compiler {

void Lowering::lower_matmul_cross(const ref::Int8Op& op, const ref::MatMulDims& d, const isa::Instruction& proto) {
  const int64_t a_matrix = d.m * d.k, b_matrix = d.k * d.n, out_matrix = d.m * d.n;
  RowTiling tiling;
  tiling.units = d.batch;
  tiling.in_unit_bytes = {0, 0};  // both operands whole, loaded once
  tiling.out_unit_bytes = static_cast<uint64_t>(out_matrix);
  // Products [u0, u1) as runs [p0, p1) in which A's and B's matrix indices each advance by a
  // constant 0 or 1; all but the last run's instruction are emitted here (as lower_movement does).
  const RowBuilder build = [&](int64_t u0, int64_t u1, const std::vector<uint64_t>& in_addrs, uint64_t,
                               uint64_t out_addr) {
    std::optional<isa::Instruction> pending;
    for (int64_t p0 = u0; p0 < u1;) {
      int64_t p1 = p0 + 1, da = 0, db = 0;
      if (p1 < u1) {
        da = d.a_index[p1] - d.a_index[p0], db = d.b_index[p1] - d.b_index[p0];
        if (da >= 0 && da <= 1 && db >= 0 && db <= 1) {
          while (p1 < u1 && d.a_index[p1] == d.a_index[p1 - 1] + da && d.b_index[p1] == d.b_index[p1 - 1] + db) ++p1;
        } else {
          da = db = 0;  // a jump: a run of one product
        }
      }
      isa::Instruction inst = proto;
      isa::MatMulArgs& m = inst.matmul;
      m.a_addr = u32(static_cast<int64_t>(in_addrs[0]) + d.a_index[p0] * a_matrix, "A address", op);
      m.b_addr = u32(static_cast<int64_t>(in_addrs[1]) + d.b_index[p0] * b_matrix, "B address", op);
      m.out_addr = u32(static_cast<int64_t>(out_addr) + (p0 - u0) * out_matrix, "output address", op);
      m.batch = u32(p1 - p0, "batch", op);
      m.m = u32(d.m, "M", op);
      m.a_step = da ? u32(a_matrix, "A step", op) : 0;
      m.b_step = db ? u32(b_matrix, "B step", op) : 0;
      report_->macs += isa::matmul_macs(m);
      if (pending) emit(*pending);
      pending = inst;
      p0 = p1;
    }
    return *pending;  // u0 < u1: at least one run
  };
  if (smallest_row_tile(op, tiling) > sram_.capacity()) return lower_matmul_columns(op, d, proto);
  lower_rows(op, tiling, build, nullptr);
}

uint64_t Lowering::smallest_row_tile(const ref::Int8Op& op, const RowTiling& tiling) const {
  uint64_t bytes = align_up(tiling.const_bytes, kSramAlignment) + align_up(tiling.out_unit_bytes, kSramAlignment);
  for (size_t i = 0; i < op.inputs.size(); ++i)
    bytes += align_up(tiling.in_unit_bytes[i] ? tiling.in_unit_bytes[i] : bytes_of(op.inputs[i]), kSramAlignment);
  return bytes;
}

void Lowering::lower_matmul_columns(const ref::Int8Op& op, const ref::MatMulDims& d,
                                    const isa::Instruction& proto) {
  flush();  // everything this op reads is in DRAM now, and all of SRAM is free
  const uint64_t cap = sram_.capacity();
  const auto need = [&](int64_t rows, int64_t cols) {
    return align_up(d.k * cols, kSramAlignment) + align_up(rows * d.k, kSramAlignment) +
           align_up(rows * cols, kSramAlignment);
  };
  // A block of B's columns takes about half of SRAM (at least one column), then as many rows of A
  // with their outputs as fit beside it.
  int64_t cols = std::min<int64_t>(d.n, std::max<int64_t>(1, static_cast<int64_t>(cap / 2) / d.k));
  while (cols > 1 && need(1, cols) > cap) cols = (cols + 1) / 2;
  if (need(1, cols) > cap)
    fail(ErrorCode::kUnsupported, where(op) + ": one row of A with one column of B (K = " + std::to_string(d.k) +
                                      ") does not fit " + std::to_string(cap) + " bytes of SRAM");
  int64_t rows = 1;
  for (int64_t lo = 1, hi = d.m; lo <= hi;) {  // need() grows with the rows
    const int64_t mid = lo + (hi - lo) / 2;
    if (need(mid, cols) <= cap) {
      rows = mid, lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  const uint64_t b_buf = allocate_in_empty_sram(static_cast<uint64_t>(d.k * cols));
  const uint64_t a_buf = allocate_in_empty_sram(static_cast<uint64_t>(rows * d.k));
  const uint64_t o_buf = allocate_in_empty_sram(static_cast<uint64_t>(rows * cols));
  report_->sram_bytes = sram_.used();
  const ValueHome &a_home = plan_.home[op.inputs[0]], &b_home = plan_.home[op.inputs[1]], &o_home = plan_.home[op.output];
  // What each buffer holds (matrix, first row / column), so a block still there is not loaded again.
  std::pair<int64_t, int64_t> a_held{-1, -1}, b_held{-1, -1};
  for (int64_t p = 0; p < d.batch; ++p)
    for (int64_t n0 = 0; n0 < d.n; n0 += cols) {
      const int64_t nc = std::min(cols, d.n - n0);
      if (b_held != std::make_pair(d.b_index[p], n0)) {  // K rows of nc bytes, N apart in DRAM
        emit_dma(isa::Opcode::kDmaLoad, b_home.region, b_home.offset + d.b_index[p] * d.k * d.n + n0, b_buf, nc, d.k,
                 d.n);
        b_held = {d.b_index[p], n0};
      }
      for (int64_t m0 = 0; m0 < d.m; m0 += rows) {
        const int64_t mr = std::min(rows, d.m - m0);
        if (a_held != std::make_pair(d.a_index[p], m0)) {
          emit_dma(isa::Opcode::kDmaLoad, a_home.region, a_home.offset + (d.a_index[p] * d.m + m0) * d.k, a_buf, mr * d.k);
          a_held = {d.a_index[p], m0};
        }
        isa::Instruction inst = proto;
        isa::MatMulArgs& m = inst.matmul;
        m.a_addr = static_cast<uint32_t>(a_buf);
        m.b_addr = static_cast<uint32_t>(b_buf);
        m.out_addr = static_cast<uint32_t>(o_buf);
        m.batch = 1;
        m.m = u32(mr, "rows", op);
        m.n = u32(nc, "columns", op);
        m.a_step = m.b_step = 0;
        report_->macs += isa::matmul_macs(m);
        emit(inst);
        emit_dma(isa::Opcode::kDmaStore, o_home.region, o_home.offset + (p * d.m + m0) * d.n + n0, o_buf, nc, mr, d.n);
      }
    }
  for (uint64_t b : {b_buf, a_buf, o_buf}) sram_.release(b);
  end_layer();
}

}  // namespace anvil::compiler

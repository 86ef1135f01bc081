// serialize_int8_graph / parse_int8_graph: the integer graph as bytes, for the host segments of a
// partitioned program (docs/program-format.md). Little endian, no padding:
//   "AI8G" u32 version(4)
//   values:  u32 n, each: str name, shape, f32 scale, i32 zero_point, i32 dtype (version 2 only;
//            version 1 values are int8)
//   ops:     u32 n, each: u32 kind, str node, i32 list inputs, i32 output, tensor weight, tensor bias,
//            u32 n + (i32 multiplier, i32 shift) each, i32 groups, i32 x 2 kernel, strides,
//            dilations, i32 x 4 pads, u8 count_include_pad, add params (i32 x 12), multiplier
//            (i32 x 2), i32 act_min, i32 act_max, 256 bytes lut, str host_model, i32 list
//            host_outputs, u32 n + str host_nodes, str host_reason, then (version 3, only for
//            the kinds that use them) data movement (kTranspose..kPad): i64 list perm, starts,
//            steps, i64 axis, i64 list pad_begin, i32 pad_value; kMul: mul params (i32 x 3 zero
//            points, multiplier, i32 act_min, act_max); kSoftmax: i32 axis, 256 x i32 softmax_table;
//            then (version 4) kSub: u8 constant_first; (version 4, only a kPad whose kind word has
//            kPadExtension set) i32 pad_mode, i64 list pad_interior
//            then (version 4) kResize: u32 n + (i32 first, i32 second, i32 weight) each for the
//            row taps, the same for the column taps
//   graph:   i32 list inputs, i32 list outputs, u32 n + str input_names, u32 n + str output_names
// str = u32 length + bytes; shape = u32 rank + i64 dims; tensor = i32 dtype + shape + raw bytes.
#include "anvil/reference/int8_graph.h"

#include <cstring>

#include "anvil/common/byte_io.h"

namespace anvil::ref {

namespace {

constexpr char kMagic[4] = {'A', 'I', '8', 'G'};
// 2: values carry their dtype (host values); 3: the data-movement ops, kMul, kSub, kMatMul,
// kSoftmax and their fields. Earlier versions are still read (a version 3 kSub is x - constant or
// x - y).
// 4: kResize and its taps; kSub's constant_first (constant - x); kPad's pad_mode and
// pad_interior (edge / reflect padding, ConvTranspose's zero insertion).
constexpr uint32_t kVersion = 4;
/// Set in the u32 kind word of a kPad that is not plain constant padding: its version 4 fields
/// follow. Only such ops carry them, so a version 3 reader meets an unknown kind, never a
/// misread op, and this reader refuses the bit in an older file.
constexpr uint32_t kPadExtension = 1u << 16;

bool has_pad_extension(const Int8Op& op) {
  return op.kind == Int8OpKind::kPad && (op.pad_mode != PadMode::kConstant || !op.pad_interior.empty());
}

bool is_data_movement(Int8OpKind k) { return k >= Int8OpKind::kTranspose && k <= Int8OpKind::kPad; }

/// The integer graph's compound fields on top of the common byte stream.
class Writer : public ByteWriter {
 public:
  void str(const std::string& s) { put_str(s); }
  void ints(const std::vector<int>& v) {
    put<uint32_t>(static_cast<uint32_t>(v.size()));
    for (int x : v) put<int32_t>(x);
  }
  void shape(const Shape& s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    for (int64_t d : s) put<int64_t>(d);
  }
  void tensor(const Tensor& t) {
    put<int32_t>(t.empty() ? -1 : static_cast<int32_t>(t.dtype()));
    if (t.empty()) return;
    shape(t.shape());
    bytes().append(reinterpret_cast<const char*>(t.raw()), t.nbytes());
  }
  void multiplier(const math::QuantizedMultiplier& m) {
    put<int32_t>(m.multiplier);
    put<int32_t>(m.shift);
  }
  void int64s(const std::vector<int64_t>& v) {
    put<uint32_t>(static_cast<uint32_t>(v.size()));
    for (int64_t x : v) put<int64_t>(x);
  }
};

class Reader : public ByteReader {
 public:
  Reader(const std::string& s, std::string what) : ByteReader(s, 0, s.size()), what_(std::move(what)) {}
  uint32_t count(uint64_t max, const char* of) {
    const uint32_t n = get<uint32_t>();
    if (n > max) bad("truncated: " + std::to_string(n) + " " + of + " cannot fit in the remaining " + std::to_string(remaining()) + " bytes");
    return n;
  }
  std::string str() { return get_str(); }
  std::vector<int> ints() {
    std::vector<int> v(count(remaining() / 4, "indices"));
    for (int& x : v) x = get<int32_t>();
    return v;
  }
  Shape shape() {
    Shape s(count(8, "dimensions"));
    for (int64_t& d : s) {
      d = get<int64_t>();
      if (d < 0) bad("negative dimension");
    }
    return s;
  }
  Tensor tensor() {
    const int32_t dtype = get<int32_t>();
    if (dtype == -1) return Tensor();
    const Shape s = shape();
    Tensor t;
    try {
      t = Tensor(static_cast<DType>(dtype), s);
    } catch (const Error&) {
      bad("bad tensor dtype or shape");
    }
    get_bytes(t.raw(), t.nbytes());
    return t;
  }
  std::vector<int64_t> int64s() {
    std::vector<int64_t> v(count(remaining() / 8, "integers"));
    for (int64_t& x : v) x = get<int64_t>();
    return v;
  }
  math::QuantizedMultiplier multiplier() {
    math::QuantizedMultiplier m;
    m.multiplier = get<int32_t>();
    m.shift = get<int32_t>();
    return m;
  }
  [[noreturn]] void bad(const std::string& why) const {
    fail(ErrorCode::kParseError, what_ + ": integer graph: " + why + " (at byte " + std::to_string(pos()) + ")");
  }

 private:
  [[noreturn]] void truncated() const override { bad("truncated"); }
  std::string what_;
};

}  // namespace

std::string serialize_int8_graph(const Int8Graph& g) {
  Writer w;
  w.bytes().append(kMagic, 4);
  w.put<uint32_t>(kVersion);
  w.put<uint32_t>(static_cast<uint32_t>(g.values.size()));
  for (const Int8Value& v : g.values) {
    w.str(v.name);
    w.shape(v.shape);
    w.put<float>(v.q.scale);
    w.put<int32_t>(v.q.zero_point);
    w.put<int32_t>(static_cast<int32_t>(v.dtype));
  }
  w.put<uint32_t>(static_cast<uint32_t>(g.ops.size()));
  for (const Int8Op& op : g.ops) {
    w.put<uint32_t>(static_cast<uint32_t>(op.kind) | (has_pad_extension(op) ? kPadExtension : 0u));
    w.str(op.node);
    w.ints(op.inputs);
    w.put<int32_t>(op.output);
    w.tensor(op.weight);
    w.tensor(op.bias);
    w.put<uint32_t>(static_cast<uint32_t>(op.multipliers.size()));
    for (const auto& m : op.multipliers) w.multiplier(m);
    w.put<int32_t>(op.groups);
    for (const auto* a : {&op.kernel, &op.strides, &op.dilations})
      for (int x : *a) w.put<int32_t>(x);
    for (int x : op.pads) w.put<int32_t>(x);
    w.put<uint8_t>(op.count_include_pad ? 1 : 0);
    for (int32_t x : {op.add.a_zero_point, op.add.b_zero_point, op.add.out_zero_point}) w.put<int32_t>(x);
    for (const auto* m : {&op.add.a, &op.add.b, &op.add.out}) w.multiplier(*m);
    w.put<int32_t>(op.add.act_min);
    w.put<int32_t>(op.add.act_max);
    w.multiplier(op.multiplier);
    w.put<int32_t>(op.act_min);
    w.put<int32_t>(op.act_max);
    w.bytes().append(reinterpret_cast<const char*>(op.lut.data()), op.lut.size());
    w.str(op.host_model);
    w.ints(op.host_outputs);
    w.put<uint32_t>(static_cast<uint32_t>(op.host_nodes.size()));
    for (const std::string& n : op.host_nodes) w.str(n);
    w.str(op.host_reason);
    if (is_data_movement(op.kind)) {
      for (const auto* v : {&op.perm, &op.starts, &op.steps}) w.int64s(*v);
      w.put<int64_t>(op.axis);
      w.int64s(op.pad_begin);
      w.put<int32_t>(op.pad_value);
    }
    if (op.kind == Int8OpKind::kMul) {
      for (int32_t x : {op.mul.a_zero_point, op.mul.b_zero_point, op.mul.out_zero_point}) w.put<int32_t>(x);
      w.multiplier(op.mul.out);
      w.put<int32_t>(op.mul.act_min);
      w.put<int32_t>(op.mul.act_max);
    }
    if (op.kind == Int8OpKind::kSoftmax) {
      w.put<int32_t>(op.axis);
      for (int32_t e : op.softmax_table) w.put<int32_t>(e);
    }
    if (op.kind == Int8OpKind::kSub) w.put<uint8_t>(op.constant_first ? 1 : 0);
    if (has_pad_extension(op)) {
      w.put<int32_t>(static_cast<int32_t>(op.pad_mode));
      w.int64s(op.pad_interior);
    }
    if (op.kind == Int8OpKind::kResize)
      for (const auto* taps : {&op.resize_rows, &op.resize_cols}) {
        w.put<uint32_t>(static_cast<uint32_t>(taps->size()));
        for (const math::ResizeTap& t : *taps)
          for (int32_t x : {t.first, t.second, t.weight}) w.put<int32_t>(x);
      }
  }
  w.ints(g.inputs);
  w.ints(g.outputs);
  for (const auto* names : {&g.input_names, &g.output_names}) {
    w.put<uint32_t>(static_cast<uint32_t>(names->size()));
    for (const std::string& n : *names) w.str(n);
  }
  return std::move(w.bytes());
}

Expected<Int8Graph> parse_int8_graph(const std::string& bytes, const std::string& what) {
  return capture([&] {
    Reader r(bytes, what);
    if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 4) != 0) r.bad("bad magic (not an integer graph)");
    r.get<uint32_t>();
    const uint32_t version = r.get<uint32_t>();
    if (version < 1 || version > kVersion)
      r.bad("version " + std::to_string(version) + ", this anvil reads versions 1 to " + std::to_string(kVersion));
    Int8Graph g;
    g.values.resize(r.count(r.remaining() / 20, "values"));
    for (Int8Value& v : g.values) {
      v.name = r.str();
      v.shape = r.shape();
      v.q.scale = r.get<float>();
      v.q.zero_point = r.get<int32_t>();
      if (version >= 2) {
        const int32_t dtype = r.get<int32_t>();
        v.dtype = static_cast<DType>(dtype);
        try {
          (void)dtype_size(v.dtype);
        } catch (const Error&) {
          r.bad("value '" + v.name + "' has the unknown dtype " + std::to_string(dtype));
        }
      }
    }
    const int num_values = static_cast<int>(g.values.size());
    const auto check = [&](const std::vector<int>& indices) {
      for (int v : indices)
        if (v < 0 || v >= num_values) r.bad("value index " + std::to_string(v) + " out of range");
    };
    g.ops.resize(r.count(r.remaining() / 64, "ops"));
    for (Int8Op& op : g.ops) {
      const uint32_t word = r.get<uint32_t>(), kind = word & ~kPadExtension;
      const bool pad_extension = (word & kPadExtension) != 0;
      if (kind > static_cast<uint32_t>(Int8OpKind::kSoftmax) || std::string(int8_op_name(static_cast<Int8OpKind>(kind))) == "?")
        r.bad("unknown op kind " + std::to_string(kind));
      op.kind = static_cast<Int8OpKind>(kind);
      op.node = r.str();
      if (version < 3 && kind > static_cast<uint32_t>(Int8OpKind::kHost))
        r.bad("op '" + op.node + "': " + int8_op_name(op.kind) + " needs format version 3, the graph is version " +
              std::to_string(version));
      if (pad_extension && (version < 4 || op.kind != Int8OpKind::kPad))
        r.bad("op '" + op.node + "': " + int8_op_name(op.kind) + " with a pad mode or interior padding" +
              (version < 4 ? " needs format version 4, the graph is version " + std::to_string(version) : ""));
      op.inputs = r.ints();
      check(op.inputs);
      op.output = r.get<int32_t>();
      check({op.output});
      op.weight = r.tensor();
      op.bias = r.tensor();
      op.multipliers.resize(r.count(r.remaining() / 8, "multipliers"));
      for (auto& m : op.multipliers) m = r.multiplier();
      op.groups = r.get<int32_t>();
      for (auto* a : {&op.kernel, &op.strides, &op.dilations})
        for (int& x : *a) x = r.get<int32_t>();
      for (int& x : op.pads) x = r.get<int32_t>();
      op.count_include_pad = r.get<uint8_t>() != 0;
      for (int32_t* x : {&op.add.a_zero_point, &op.add.b_zero_point, &op.add.out_zero_point}) *x = r.get<int32_t>();
      for (auto* m : {&op.add.a, &op.add.b, &op.add.out}) *m = r.multiplier();
      op.add.act_min = r.get<int32_t>();
      op.add.act_max = r.get<int32_t>();
      op.multiplier = r.multiplier();
      op.act_min = r.get<int32_t>();
      op.act_max = r.get<int32_t>();
      for (int8_t& x : op.lut) x = r.get<int8_t>();
      op.host_model = r.str();
      op.host_outputs = r.ints();
      check(op.host_outputs);
      op.host_nodes.resize(r.count(r.remaining() / 4, "host nodes"));
      for (std::string& n : op.host_nodes) n = r.str();
      op.host_reason = r.str();
      if (is_data_movement(op.kind)) {
        for (auto* v : {&op.perm, &op.starts, &op.steps}) *v = r.int64s();
        op.axis = r.get<int64_t>();
        op.pad_begin = r.int64s();
        op.pad_value = r.get<int32_t>();
      }
      if (op.kind == Int8OpKind::kMul) {
        if (version < 3) r.bad("op '" + op.node + "': mul needs format version 3");
        for (int32_t* x : {&op.mul.a_zero_point, &op.mul.b_zero_point, &op.mul.out_zero_point}) *x = r.get<int32_t>();
        op.mul.out = r.multiplier();
        op.mul.act_min = r.get<int32_t>();
        op.mul.act_max = r.get<int32_t>();
      }
      if (op.kind == Int8OpKind::kSoftmax) {
        if (version < 3) r.bad("op '" + op.node + "': softmax in a version " + std::to_string(version) + " graph");
        op.axis = r.get<int32_t>();
        for (int32_t& e : op.softmax_table) e = r.get<int32_t>();
        if (op.axis < 0 || op.axis >= static_cast<int>(g.values[op.inputs.empty() ? op.output : op.inputs[0]].shape.size()))
          r.bad("softmax '" + op.node + "': axis " + std::to_string(op.axis) + " is outside its input's rank");
        if (op.softmax_table[0] <= 0)
          r.bad("softmax '" + op.node + "': exponential table entry 0 must be positive");
        for (int32_t e : op.softmax_table)
          if (e < 0 || e > (1 << math::kSoftmaxFractionBits))
            r.bad("softmax '" + op.node + "': exponential table entry " + std::to_string(e) + " is outside [0, 2^30]");
      }
      if (op.kind == Int8OpKind::kSub && version >= 4) {
        op.constant_first = r.get<uint8_t>() != 0;
        if (op.constant_first && op.inputs.size() != 1)
          r.bad("sub '" + op.node + "': a constant first operand with " + std::to_string(op.inputs.size()) + " inputs");
      }
      if (pad_extension) {
        const int32_t mode = r.get<int32_t>();
        if (mode < static_cast<int32_t>(PadMode::kConstant) || mode > static_cast<int32_t>(PadMode::kReflect))
          r.bad("pad '" + op.node + "': unknown pad mode " + std::to_string(mode));
        op.pad_mode = static_cast<PadMode>(mode);
        op.pad_interior = r.int64s();
      }
      if (op.kind == Int8OpKind::kResize) {
        if (version < 4)
          r.bad("op '" + op.node + "': resize needs format version 4, the graph is version " + std::to_string(version));
        for (auto* taps : {&op.resize_rows, &op.resize_cols}) {
          taps->resize(r.count(r.remaining() / 12, "resize taps"));
          for (math::ResizeTap& t : *taps) {
            t.first = r.get<int32_t>();
            t.second = r.get<int32_t>();
            t.weight = r.get<int32_t>();
          }
        }
        if (op.inputs.size() != 1) r.bad("op '" + op.node + "' (resize) has " + std::to_string(op.inputs.size()) + " inputs");
        try {
          (void)resize_dims(op, g.values[op.inputs[0]].shape, g.values[op.output].shape);
        } catch (const Error& e) {
          r.bad(e.what());
        }
      }
      if ((op.kind == Int8OpKind::kMatMul && op.inputs.size() != 2) || (op.kind == Int8OpKind::kSoftmax && op.inputs.size() != 1))
        r.bad("op '" + op.node + "' (" + int8_op_name(op.kind) + ") has " + std::to_string(op.inputs.size()) + " inputs");
      if (op.kind != Int8OpKind::kHost)  // only kHost ops read or write host values
        for (int v : op.inputs) {
          if (g.values[v].dtype != DType::kInt8)
            r.bad("op '" + op.node + "' (" + int8_op_name(op.kind) + ") reads the " + dtype_name(g.values[v].dtype) +
                  " value '" + g.values[v].name + "'; only host ops take values other than int8");
        }
      if (op.kind != Int8OpKind::kHost && g.values[op.output].dtype != DType::kInt8)
        r.bad("op '" + op.node + "' (" + int8_op_name(op.kind) + ") writes the " +
              dtype_name(g.values[op.output].dtype) + " value '" + g.values[op.output].name +
              "'; only host ops produce values other than int8");
      if (op.kind == Int8OpKind::kHost) {
        onnx::ModelProto m;
        if (!m.ParseFromString(op.host_model)) r.bad("host op '" + op.node + "': its ONNX sub-model does not parse");
        Expected<Executor> ex = Executor::create(m);
        if (!ex.ok()) r.bad("host op '" + op.node + "': " + ex.error().what());
        op.host = std::make_shared<const Executor>(std::move(ex.value()));
        if (op.host_outputs.empty() || op.host_outputs[0] != op.output) r.bad("host op '" + op.node + "': bad outputs");
      }
    }
    g.inputs = r.ints();
    g.outputs = r.ints();
    check(g.inputs);
    check(g.outputs);
    for (auto* names : {&g.input_names, &g.output_names}) {
      names->resize(r.count(r.remaining() / 4, "names"));
      for (std::string& n : *names) n = r.str();
    }
    if (g.input_names.size() != g.inputs.size() || g.output_names.size() != g.outputs.size())
      r.bad("input/output names do not match the inputs/outputs");
    if (r.remaining() != 0) r.bad("trailing bytes");
    return g;
  });
}

}  // namespace anvil::ref

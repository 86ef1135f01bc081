// Conv chains (conv_chain.h): Conv / Relu / Clip / Add / MaxPool runs on oneDNN, chunk by chunk of
// images, in oneDNN's own layouts.
#include "conv_chain.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "anvil/common/onnx_model.h"
#include "attributes.h"
#include "dnnl_util.h"
#include "geometry.h"
#include "kernels.h"

namespace anvil::ref {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

enum class Op { kConv, kRelu, kClip, kAdd, kMaxPool };

/// One step of a chain: a node, or a Conv with the Relu/Clip after it fused.
struct Step {
  Op op = Op::kConv;
  onnx::NodeProto node;  ///< the Conv / Relu / Clip / Add / MaxPool node
  std::vector<int> in;   ///< value ids of the data inputs (Conv, MaxPool, Relu, Clip: one; Add: two)
  int out = -1;
  const Tensor* w = nullptr;  ///< Conv weights and bias (initializers)
  const Tensor* b = nullptr;
  /// The activation applied to the output (a fused Relu/Clip, or the step's own for Relu/Clip):
  /// y = min(max(y, lo), hi). Chains admit only bounds with lo <= 0 <= hi, so the zero padding
  /// channels of a blocked layout stay zero.
  bool act = false;
  float lo = 0.0f, hi = 0.0f;
  /// Relu/Clip/Add may write into input 0 (Add: or input 1) when nobody else reads it.
  bool in_place[2] = {false, false};
};

struct Value {
  std::string name;
  bool external = false;  ///< read by the chain, produced before it
  bool output = false;    ///< produced by the chain and read after it (or a graph output)
  int last_use = -1;      ///< the last step reading it
};

bool admissible_bounds(float lo, float hi) { return !std::isnan(lo) && !std::isnan(hi) && lo <= 0.0f && 0.0f <= hi; }

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

memory::dims dims_of(int64_t n, const Shape& s) { return {n, s[1], s[2], s[3]}; }

}  // namespace

struct ConvChain::Spec {
  std::vector<size_t> nodes;
  std::vector<Step> steps;
  std::vector<Value> values;
};

/// A chain's oneDNN primitives for one chunk size (images per chunk).
struct ChunkPlan {
  int64_t n = 0;
  std::vector<memory::desc> desc;  ///< per value: its layout inside the chain
  std::vector<memory::desc> src;   ///< per step: the layout its (first) input must have
  std::vector<dnnl::primitive> prim;
  std::vector<memory::desc> scratch;
  std::vector<memory> weights;  ///< Conv steps: W in the primitive's layout
};

/// One part of a sliced step: a complete primitive over output channels [m0, m0 + m) of one image,
/// reading input channels [c0, c0 + c) (all of them when `whole_src`).
struct SlicePart {
  int64_t m0 = 0, m = 0, c0 = 0, c = 0;
  bool whole_src = true;
  dnnl::primitive prim;
  memory::desc src, dst, scratch;
  memory weights;  ///< Conv: this part's W in the primitive's layout
};

SlicePart slice_part(int64_t m0, int64_t m, int64_t c0, int64_t c, bool whole_src) {
  SlicePart p;
  p.m0 = m0, p.m = m, p.c0 = c0, p.c = c, p.whole_src = whole_src;
  return p;
}

/// A chain's plan for a single image on several threads. Every value made inside the chain is
/// nChw16c (nChw8c on CPUs whose oneDNN kernels block by 8, slice_block()): at batch 1 a range of
/// whole blocks is one contiguous run of it, so the parts of a
/// Conv (output channels; grouped Convs also input channels) or a MaxPool (channels) write disjoint
/// slices of one buffer side by side and the next step reads the whole buffer, with no reorder.
struct SlicedPlan {
  int64_t block = 16;  ///< channels per layout block: nChw16c, or nChw8c where oneDNN's kernels block by 8
  std::vector<memory::desc> desc;  ///< per value (externals: plain NCHW)
  std::vector<std::vector<SlicePart>> parts;  ///< per step; empty for Relu / Clip / Add
};

/// A chain's plan for one set of input shapes.
struct Plan {
  int64_t batch = 0;
  std::vector<Shape> shape;  ///< per value, whole batch
  std::vector<std::pair<int64_t, int64_t>> chunks;  ///< [first image, count)
  std::map<int64_t, ChunkPlan> by_size;
  /// Batch 1 on several threads: one image, every Conv/MaxPool split by channel blocks.
  std::shared_ptr<const SlicedPlan> sliced;
};

namespace {
/// Buffers by size, reused: a thread's between the chunks it processes, or (with an observer) the
/// whole-batch values between steps and runs.
class Pool {
 public:
  int acquire(size_t bytes) {
    int best = -1;
    for (size_t i = 0; i < bufs_.size(); ++i)
      if (!bufs_[i].used && bufs_[i].size >= bytes && (best < 0 || bufs_[i].size < bufs_[best].size))
        best = static_cast<int>(i);
    if (best < 0) {
      Buf b;
      b.size = (bytes + 63) / 64 * 64;
      b.data.reset(static_cast<float*>(std::aligned_alloc(64, b.size)));
      if (!b.data) fail(ErrorCode::kInternal, "out of memory for a Conv chain buffer");
      bufs_.push_back(std::move(b));
      best = static_cast<int>(bufs_.size()) - 1;
    }
    bufs_[best].used = true;
    return best;
  }
  void release(int i) { bufs_[i].used = false; }
  void release_all() {
    for (Buf& b : bufs_) b.used = false;
  }
  float* data(int i) { return bufs_[i].data.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  struct Buf {
    std::unique_ptr<float, Free> data;
    size_t size = 0;
    bool used = false;
  };
  std::vector<Buf> bufs_;
};

}  // namespace

struct ConvChain::State {
  std::mutex mutex;
  std::string key;
  std::shared_ptr<const Plan> plan;
  /// With an observer, the whole-batch buffers and the NCHW scratch of the last run, kept for the
  /// next: a calibration's runs reuse their pages instead of faulting in fresh ones each run (about
  /// 1 s of kernel time on MobileNetV2 at 224). A run takes them; a concurrent run makes its own.
  std::unique_ptr<Pool> batch_pool;
  Tensor scratch;
};

const std::vector<size_t>& ConvChain::nodes() const { return spec_->nodes; }

namespace {

/// Bounds of a Clip node when known before any input: attributes (opset < 11), or initializers
/// and Constant outputs. False when a bound is computed at run time.
bool clip_bounds(const onnx::NodeProto& node, int64_t opset, const std::map<std::string, const Tensor*>& constants,
                 float* lo, float* hi) {
  *lo = -std::numeric_limits<float>::infinity();
  *hi = std::numeric_limits<float>::infinity();
  if (opset < 11) {
    *lo = attr_float(node, "min", *lo);
    *hi = attr_float(node, "max", *hi);
  }
  for (int i = 1; opset >= 11 && i <= 2 && i < node.input_size(); ++i) {
    if (node.input(i).empty()) continue;
    auto it = constants.find(node.input(i));
    if (it == constants.end() || it->second->dtype() != DType::kFloat32 || it->second->numel() != 1) return false;
    (i == 1 ? *lo : *hi) = it->second->data<float>()[0];
  }
  // ONNX: with min > max every element becomes max, which min(max(x, max), max) also gives; oneDNN's
  // clip post-op (and admissible_bounds) take only lo <= hi.
  *lo = std::min(*lo, *hi);
  return true;
}

/// The value of a Constant node holding one float32 tensor, or nullptr.
std::unique_ptr<Tensor> constant_value(const onnx::NodeProto& node) {
  if (node.op_type() != "Constant" || node.input_size() != 0 || node.attribute_size() != 1) return nullptr;
  const onnx::AttributeProto& a = node.attribute(0);
  if (a.name() == "value_float") return std::make_unique<Tensor>(Tensor::scalar<float>(a.f()));
  if (a.name() == "value" && a.t().data_type() == onnx::TensorProto::FLOAT) {
    try {
      return std::make_unique<Tensor>(tensor_from_proto(a.t()));
    } catch (const Error&) {
      return nullptr;
    }
  }
  return nullptr;
}

/// Initializers, and the outputs of Identity nodes copying one (torch's exporter shares equal
/// constant tensors that way, e.g. the biases of a model with random weights): the tensors a
/// chain's Conv weights and biases may come from. Points into `initializers`.
std::map<std::string, const Tensor*> stored_constants(const std::vector<const onnx::NodeProto*>& nodes,
                                                      const TensorMap& initializers) {
  std::map<std::string, const Tensor*> stored;
  for (const auto& [name, t] : initializers) stored[name] = &t;
  for (const onnx::NodeProto* n : nodes)
    if (n->op_type() == "Identity" && (n->domain().empty() || n->domain() == "ai.onnx") && n->input_size() == 1 &&
        n->output_size() == 1 && !n->output(0).empty() && stored.count(n->input(0)))
      stored[n->output(0)] = stored.at(n->input(0));
  return stored;
}

}  // namespace

std::vector<ConvChain::Fusion> ConvChain::fusions(const std::vector<const onnx::NodeProto*>& nodes, int64_t opset,
                                                  const TensorMap& initializers,
                                                  const std::vector<std::string>& graph_outputs) {
  std::vector<std::unique_ptr<Tensor>> constant_storage;
  std::map<std::string, const Tensor*> constants;
  for (const auto& [name, t] : initializers) constants[name] = &t;
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i]->input()) readers[in].push_back(i);
    if (auto v = constant_value(*nodes[i])) {
      constants[nodes[i]->output(0)] = v.get();
      constant_storage.push_back(std::move(v));
    }
  }
  const std::set<std::string> outputs(graph_outputs.begin(), graph_outputs.end());
  std::vector<Fusion> found;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto& n = *nodes[i];
    if ((n.op_type() != "Conv" && n.op_type() != "Gemm") || !(n.domain().empty() || n.domain() == "ai.onnx") ||
        n.output_size() != 1 ||
        n.input_size() < 2 || !initializers.count(n.input(1)) ||
        initializers.at(n.input(1)).dtype() != DType::kFloat32 || outputs.count(n.output(0)))
      continue;
    const auto& r = readers[n.output(0)];
    if (r.size() != 1 || r[0] <= i) continue;
    const onnx::NodeProto& a = *nodes[r[0]];
    if (a.input_size() < 1 || a.input(0) != n.output(0) || a.output_size() != 1 || a.output(0).empty()) continue;
    Fusion f;
    f.conv = i, f.activation = r[0];
    if (a.op_type() == "Relu" && a.input_size() == 1) {
      f.lo = 0.0f, f.hi = std::numeric_limits<float>::infinity();
    } else if (a.op_type() == "Clip" && clip_bounds(a, opset, constants, &f.lo, &f.hi) && !std::isnan(f.lo) &&
               !std::isnan(f.hi)) {
    } else {
      continue;
    }
    found.push_back(f);
  }
  return found;
}

std::vector<ConvChain> ConvChain::find(const std::vector<const onnx::NodeProto*>& nodes, int64_t opset,
                                       const TensorMap& initializers, const std::vector<std::string>& graph_outputs) {
  // Constant-node values are kept here so Clip bounds may point at them (only while finding).
  std::vector<std::unique_ptr<Tensor>> constant_storage;
  const std::map<std::string, const Tensor*> stored = stored_constants(nodes, initializers);
  std::map<std::string, const Tensor*> constants = stored;
  std::map<std::string, int> readers;  // how many node inputs read each value
  for (const onnx::NodeProto* n : nodes) {
    for (const auto& in : n->input()) ++readers[in];
    if (auto v = constant_value(*n)) {
      constants[n->output(0)] = v.get();
      constant_storage.push_back(std::move(v));
    }
  }
  for (const auto& out : graph_outputs) readers[out] += 1 << 20;  // never fused away or overwritten
  auto is_initializer = [&](const std::string& name) { return stored.count(name) > 0; };

  std::vector<ConvChain> chains;
  std::vector<size_t> run;  // compute nodes of the chain being built
  auto close = [&] {
    size_t convs = 0;
    for (size_t i : run) convs += nodes[i]->op_type() == "Conv";
    if (convs > 0 && run.size() >= 2) {
      auto spec = std::make_shared<Spec>();
      spec->nodes = run;
      std::map<std::string, int> id;
      std::set<size_t> inside(run.begin(), run.end());
      auto value = [&](const std::string& name, bool produced) {
        auto it = id.find(name);
        if (it != id.end()) return it->second;
        Value v;
        v.name = name;
        v.external = !produced;
        spec->values.push_back(v);
        return id[name] = static_cast<int>(spec->values.size()) - 1;
      };
      for (size_t i : run) {
        const onnx::NodeProto& n = *nodes[i];
        Step s;
        s.node = n;
        const std::string& op = n.op_type();
        s.op = op == "Conv" ? Op::kConv : op == "Relu" ? Op::kRelu : op == "Clip" ? Op::kClip
             : op == "Add" ? Op::kAdd : Op::kMaxPool;
        const int data_inputs = s.op == Op::kAdd ? 2 : 1;
        for (int k = 0; k < data_inputs; ++k) s.in.push_back(value(n.input(k), false));
        if (s.op == Op::kConv) {
          s.w = stored.at(n.input(1));
          if (n.input_size() > 2 && !n.input(2).empty()) s.b = stored.at(n.input(2));
        }
        if (s.op == Op::kRelu) s.act = true, s.lo = 0.0f, s.hi = std::numeric_limits<float>::infinity();
        if (s.op == Op::kClip) {
          s.act = true;
          clip_bounds(n, opset, constants, &s.lo, &s.hi);
        }
        // Fuse a Relu/Clip into the Conv whose output only it reads.
        bool fused = false;
        if (s.act && !spec->values[s.in[0]].external && readers[n.input(0)] == 1)
          for (Step& p : spec->steps)
            if (p.op == Op::kConv && p.out == s.in[0] && !p.act) {
              // The Conv's own output is never materialised: its value becomes the Relu/Clip's.
              p.act = true, p.lo = s.lo, p.hi = s.hi;
              spec->values[p.out].name = n.output(0);
              id.erase(n.input(0));
              id[n.output(0)] = p.out;
              fused = true;
              break;
            }
        if (fused) continue;
        s.out = value(n.output(0), true);
        spec->steps.push_back(s);
      }
      // Outputs: produced here and read by a node outside the chain or a graph output.
      std::map<std::string, int> inner_readers;
      for (size_t i : run)
        for (const auto& in : nodes[i]->input()) ++inner_readers[in];
      for (Value& v : spec->values)
        if (!v.external) v.output = readers[v.name] > inner_readers[v.name];
      for (size_t k = 0; k < spec->steps.size(); ++k) {
        Step& s = spec->steps[k];
        for (size_t j = 0; j < s.in.size(); ++j) {
          Value& v = spec->values[s.in[j]];
          v.last_use = static_cast<int>(k);
          s.in_place[j] = !v.external && !v.output && readers[v.name] == 1 && s.op != Op::kConv &&
                          s.op != Op::kMaxPool && (s.in.size() == 1 || s.in[0] != s.in[1]);
        }
      }
      ConvChain c;
      c.spec_ = std::move(spec);
      c.state_ = std::make_shared<State>();
      chains.push_back(std::move(c));
    }
    run.clear();
  };

  for (size_t i = 0; i < nodes.size(); ++i) {
    const onnx::NodeProto& n = *nodes[i];
    const std::string& op = n.op_type();
    const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    bool ok = default_domain && n.output_size() == 1 && !n.output(0).empty();
    // Runs as usual, its value is known.
    if (ok && (op == "Constant" || (op == "Identity" && stored.count(n.output(0)))) && !run.empty()) continue;
    if (ok && op == "Conv") {
      ok = n.input_size() >= 2 && is_initializer(n.input(1)) && stored.at(n.input(1))->rank() == 4 &&
           stored.at(n.input(1))->dtype() == DType::kFloat32 &&
           (n.input_size() < 3 || n.input(2).empty() ||
            (is_initializer(n.input(2)) && stored.at(n.input(2))->dtype() == DType::kFloat32));
    } else if (ok && (op == "Relu" || op == "Add" || op == "MaxPool" || op == "Clip")) {
      ok = !run.empty() && !n.input(0).empty() && !is_initializer(n.input(0));
      if (ok && op == "Relu") ok = n.input_size() == 1;
      if (ok && op == "Add") ok = n.input_size() == 2 && !n.input(1).empty() && !is_initializer(n.input(1)) &&
                                  !constants.count(n.input(0)) && !constants.count(n.input(1));
      if (ok && op == "Clip") {
        float lo, hi;
        ok = clip_bounds(n, opset, constants, &lo, &hi) && admissible_bounds(lo, hi);
      }
      if (ok && op == "MaxPool") ok = n.input_size() == 1;
    } else {
      ok = false;
    }
    if (ok) {
      run.push_back(i);
    } else {
      close();
    }
  }
  close();
  return chains;
}

namespace {

/// Plain NCHW slice descriptor of `n` images.
memory::desc plain(int64_t n, const Shape& s) {
  return memory::desc(dims_of(n, s), memory::data_type::f32, tag::nchw);
}

bool usable(const std::string& impl) { return impl.find("ref") == std::string::npos && impl.find("gemm") == std::string::npos; }

/// Shapes of every value for these external shapes; false when a step does not fit the fast path.
bool infer_shapes(const ConvChain::Spec& spec, std::vector<Shape>* shape) {
  for (const Step& s : spec.steps) {
    const Shape& x = (*shape)[s.in[0]];
    Shape y = x;
    switch (s.op) {
      case Op::kConv: {
        const Tensor& w = *s.w;
        const int64_t c = x[1], m = w.dim(0), group = attr_int(s.node, "group", 1);
        if (group < 1 || c % group || m % group || w.dim(1) != c / group) return false;
        if (s.b && s.b->numel() != m) return false;
        const std::vector<int64_t> kernel{w.dim(2), w.dim(3)};
        if (find_attribute(s.node, "kernel_shape") && attr_ints(s.node, "kernel_shape") != kernel) return false;
        const WindowNd g = window_geometry_nd(s.node, {x[2], x[3]}, kernel, false);
        y = {x[0], m, g.out[0], g.out[1]};
        break;
      }
      case Op::kMaxPool: {
        const auto k = attr_ints(s.node, "kernel_shape");
        if (k.size() != 2 || attr_ints(s.node, "dilations", {1, 1}) != std::vector<int64_t>{1, 1}) return false;
        const WindowNd g = window_geometry_nd(s.node, {x[2], x[3]}, k, attr_int(s.node, "ceil_mode", 0) != 0);
        // Every window must hold a tap of the input (ONNX gives -inf otherwise, oneDNN does not).
        for (int a = 0; a < 2; ++a)
          if ((g.out[a] - 1) * g.strides[a] - g.pads_begin[a] >= x[2 + a] || g.pads_begin[a] >= k[a]) return false;
        y = {x[0], x[1], g.out[0], g.out[1]};
        break;
      }
      case Op::kAdd:
        if ((*shape)[s.in[1]] != x) return false;
        break;
      default:
        break;
    }
    for (int64_t d : y)
      if (d <= 0) return false;
    (*shape)[s.out] = y;
  }
  return true;
}

ChunkPlan make_chunk_plan(const ConvChain::Spec& spec, const Plan& plan, int64_t n,
                          const std::vector<memory::desc>* weights_of, std::vector<memory>* weights_made) {
  ChunkPlan cp;
  cp.n = n;
  const size_t steps = spec.steps.size();
  cp.desc.resize(spec.values.size());
  cp.src.resize(steps);
  cp.prim.resize(steps);
  cp.scratch.resize(steps);
  cp.weights.resize(steps);
  for (size_t v = 0; v < spec.values.size(); ++v)
    if (spec.values[v].external) cp.desc[v] = plain(n, plan.shape[v]);
  for (size_t k = 0; k < steps; ++k) {
    const Step& s = spec.steps[k];
    const memory::desc& in = cp.desc[s.in[0]];
    const Shape& ys = plan.shape[s.out];
    if (s.op == Op::kConv) {
      const Shape& xs = plan.shape[s.in[0]];
      const Tensor& w = *s.w;
      const int64_t group = attr_int(s.node, "group", 1), m = w.dim(0), c = xs[1];
      const std::vector<int64_t> kernel{w.dim(2), w.dim(3)};
      const WindowNd g = window_geometry_nd(s.node, {xs[2], xs[3]}, kernel, false);
      const memory::dims w_dims = group == 1 ? memory::dims{m, c, kernel[0], kernel[1]}
                                             : memory::dims{group, m / group, c / group, kernel[0], kernel[1]};
      const memory::dims gaps = dnnl_dilations(g.dilations);
      const dnnl::primitive_attr attr = user_scratchpad_with_clamp(s.act, s.lo, s.hi);
      const memory::desc bias_md = s.b ? memory::desc({m}, memory::data_type::f32, tag::x) : memory::desc();
      auto make = [&](const memory::desc& src) {
        const dnnl::convolution_forward::desc d(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
            memory::desc(w_dims, memory::data_type::f32, tag::any), bias_md,
            memory::desc(dims_of(n, ys), memory::data_type::f32, tag::any), g.strides, gaps, g.pads_begin, g.pads_end);
        return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
      };
      // Take the producer's layout as it is when oneDNN has a real kernel for it; else let oneDNN
      // choose (the input is then reordered).
      dnnl::convolution_forward::primitive_desc pd;
      bool have = false;
      if (!spec.values[s.in[0]].external) {
        try {
          pd = make(in);
          have = usable(pd.impl_info_str());
        } catch (const dnnl::error&) {
        }
      }
      if (!have) pd = make(memory::desc(in.dims(), memory::data_type::f32, tag::any));
      cp.src[k] = pd.src_desc();
      cp.desc[s.out] = pd.dst_desc();
      cp.prim[k] = dnnl::convolution_forward(pd);
      cp.scratch[k] = pd.scratchpad_desc();
      if (weights_of && (*weights_of)[k] == pd.weights_desc()) {
        cp.weights[k] = (*weights_made)[k];
      } else {
        const tag user_tag = group == 1 ? tag::oihw : tag::goihw;
        const memory user(memory::desc(w_dims, memory::data_type::f32, user_tag), cpu_engine(),
                          const_cast<float*>(w.data<float>()));
        cp.weights[k] = memory(pd.weights_desc(), cpu_engine());
        dnnl::stream stream(cpu_engine());
        reorder(user, cp.weights[k], stream);
        stream.wait();
      }
    } else if (s.op == Op::kMaxPool) {
      const Shape& xs = plan.shape[s.in[0]];
      const auto kernel = attr_ints(s.node, "kernel_shape");
      const WindowNd g = window_geometry_nd(s.node, {xs[2], xs[3]}, kernel, attr_int(s.node, "ceil_mode", 0) != 0);
      // oneDNN's output size is floor((in + pads - k) / stride) + 1: the end padding is set so it
      // equals ONNX's (ceil_mode included); padding taps never win a max.
      memory::dims pads_end(2);
      for (int a = 0; a < 2; ++a) pads_end[a] = (g.out[a] - 1) * g.strides[a] + kernel[a] - xs[2 + a] - g.pads_begin[a];
      const dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, in,
                                          memory::desc(dims_of(n, ys), memory::data_type::f32, tag::any), g.strides,
                                          kernel, g.pads_begin, pads_end);
      const dnnl::pooling_forward::primitive_desc pd(d, user_scratchpad(), cpu_engine());
      cp.src[k] = in;
      cp.desc[s.out] = pd.dst_desc();
      cp.prim[k] = dnnl::pooling_forward(pd);
      cp.scratch[k] = pd.scratchpad_desc();
    } else {
      cp.src[k] = in;
      cp.desc[s.out] = in;
    }
  }
  return cp;
}

/// Images per chunk: the largest value of a chunk stays within about half of a core's L2 cache.
constexpr int64_t kChunkBytes = int64_t{256} << 10;

/// A Relu / Clip / Add step over elements [begin, end) of its buffers (padding included: it stays
/// zero). `z` is Add's second input.
void elementwise(const Step& s, const float* x, const float* z, float* y, size_t begin, size_t end) {
  if (s.op == Op::kAdd) {
    for (size_t i = begin; i < end; ++i) y[i] = x[i] + z[i];
  } else {
    const float lo = s.lo, hi = s.hi;
    for (size_t i = begin; i < end; ++i) y[i] = std::min(std::max(x[i], lo), hi);
  }
}

/// nChw16c (block 16) or nChw8c (block 8) descriptor of one image with `c` channels.
memory::desc blocked(int64_t c, int64_t h, int64_t w, int64_t block) {
  return memory::desc({1, c, h, w}, memory::data_type::f32, block == 16 ? tag::nChw16c : tag::nChw8c);
}

/// The sliced plans' channel block: 16 where oneDNN has a real convolution kernel for nChw16c
/// (AVX-512 CPUs), else 8 (nChw8c, what its AVX2 kernels take). With 16 on an AVX2 CPU every Conv
/// fell back to one part in layouts of oneDNN's choosing, reordered around it: one thread per step.
int64_t slice_block() {
  static const int64_t block = [] {
    try {
      const memory::desc x = blocked(16, 8, 8, 16);
      const dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x,
          memory::desc({16, 16, 3, 3}, memory::data_type::f32, tag::any), x, {1, 1}, {1, 1}, {1, 1});
      return usable(dnnl::convolution_forward::primitive_desc(d, cpu_engine()).impl_info_str()) ? int64_t{16}
                                                                                                 : int64_t{8};
    } catch (const dnnl::error&) {
      return int64_t{8};
    }
  }();
  return block;
}

/// Channel ranges of a sliced step: multiples of `align` channels (whole layout blocks), at most
/// one per thread; one range when there are too few blocks to share.
std::vector<std::pair<int64_t, int64_t>> channel_ranges(int64_t total, int64_t align, int64_t threads) {
  const int64_t units = (total + align - 1) / align;
  const int64_t pieces = std::max<int64_t>(1, std::min(units, threads));
  std::vector<std::pair<int64_t, int64_t>> out;
  int64_t begin = 0;
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t end = p + 1 == pieces ? total : std::min(total, units * (p + 1) / pieces * align);
    if (end > begin) out.emplace_back(begin, end - begin);
    begin = end;
  }
  return out;
}

/// The sliced plan (see SlicedPlan), weights reordered per part. Throws dnnl::error, or returns
/// nullptr when oneDNN has no real kernel for a step in these layouts.
std::shared_ptr<const SlicedPlan> make_sliced_plan(const ConvChain::Spec& spec, const Plan& plan, int64_t threads) {
  auto sp = std::make_shared<SlicedPlan>();
  const int64_t block = sp->block = slice_block();
  sp->desc.resize(spec.values.size());
  sp->parts.resize(spec.steps.size());
  for (size_t v = 0; v < spec.values.size(); ++v) {
    const Shape& s = plan.shape[v];
    sp->desc[v] = spec.values[v].external ? plain(1, s) : blocked(s[1], s[2], s[3], block);
  }
  dnnl::stream stream(cpu_engine());
  for (size_t k = 0; k < spec.steps.size(); ++k) {
    const Step& s = spec.steps[k];
    const Shape& xs = plan.shape[s.in[0]];
    const Shape& ys = plan.shape[s.out];
    const bool external = spec.values[s.in[0]].external;
    std::vector<SlicePart>& parts = sp->parts[k];
    if (s.op == Op::kConv) {
      const Tensor& w = *s.w;
      const int64_t group = attr_int(s.node, "group", 1), m = w.dim(0), c = xs[1], mg = m / group, cg = c / group;
      const std::vector<int64_t> kernel{w.dim(2), w.dim(3)};
      const WindowNd g = window_geometry_nd(s.node, {xs[2], xs[3]}, kernel, false);
      const dnnl::primitive_attr attr = user_scratchpad_with_clamp(s.act, s.lo, s.hi);
      // Groups per range so that both channel ranges start on a layout block.
      int64_t align_g = 1;
      while ((align_g * mg) % block || (align_g * cg) % block) ++align_g;
      if (group == 1) {
        for (auto [m0, mm] : channel_ranges(m, block, threads)) parts.push_back(slice_part(m0, mm, 0, c, true));
      } else if (!external && align_g <= group) {
        for (auto [g0, gg] : channel_ranges(group, align_g, threads))
          parts.push_back(slice_part(g0 * mg, gg * mg, g0 * cg, gg * cg, false));
      } else {
        parts.push_back(slice_part(0, m, 0, c, true));
      }
      // A part in the blocked slices; with `any_layouts` (one part, when oneDNN has no real kernel
      // for them, e.g. groups of 5 channels) in the layouts it picks, reordered around the step.
      // False when oneDNN offers only a reference kernel for the slices (the layouts it picks are
      // taken whatever they are, as in make_chunk_plan).
      auto build = [&](SlicePart& p, bool any_layouts) {
        const int64_t groups = group == 1 ? 1 : p.m / mg;
        const memory::dims w_dims = group == 1 ? memory::dims{p.m, c, kernel[0], kernel[1]}
                                               : memory::dims{groups, mg, cg, kernel[0], kernel[1]};
        const memory::desc any_src(dims_of(1, xs), memory::data_type::f32, tag::any);
        // The whole input: the producer's blocked layout, or for a chain input the layout oneDNN picks
        // for the first part (a 3-channel image stays plain), shared by all parts.
        const memory::desc src = any_layouts        ? any_src
                                 : !p.whole_src     ? blocked(p.c, xs[2], xs[3], block)
                                 : !external        ? sp->desc[s.in[0]]
                                 : &p != &parts[0]  ? parts[0].src
                                                    : any_src;
        const memory::desc dst = any_layouts ? memory::desc(dims_of(1, ys), memory::data_type::f32, tag::any)
                                             : blocked(p.m, ys[2], ys[3], block);
        const dnnl::convolution_forward::desc d(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
            memory::desc(w_dims, memory::data_type::f32, tag::any),
            s.b ? memory::desc({p.m}, memory::data_type::f32, tag::x) : memory::desc(), dst, g.strides,
            dnnl_dilations(g.dilations), g.pads_begin, g.pads_end);
        const dnnl::convolution_forward::primitive_desc pd(d, attr, cpu_engine());
        if (!any_layouts && !usable(pd.impl_info_str())) return false;
        p.src = pd.src_desc(), p.dst = pd.dst_desc(), p.scratch = pd.scratchpad_desc();
        p.prim = dnnl::convolution_forward(pd);
        // This part's rows of W (OIHW / GOIHW): output channels [m0, m0 + m) are contiguous.
        const memory user(memory::desc(w_dims, memory::data_type::f32, group == 1 ? tag::oihw : tag::goihw),
                          cpu_engine(), const_cast<float*>(w.data<float>()) + p.m0 * cg * kernel[0] * kernel[1]);
        p.weights = memory(pd.weights_desc(), cpu_engine());
        reorder(user, p.weights, stream);
        return true;
      };
      if (!std::all_of(parts.begin(), parts.end(), [&](SlicePart& p) { return build(p, false); })) {
        parts.assign(1, slice_part(0, m, 0, c, true));
        build(parts[0], true);
      }
    } else if (s.op == Op::kMaxPool) {
      const auto kernel = attr_ints(s.node, "kernel_shape");
      const WindowNd g = window_geometry_nd(s.node, {xs[2], xs[3]}, kernel, attr_int(s.node, "ceil_mode", 0) != 0);
      memory::dims pads_end(2);  // as in make_chunk_plan: oneDNN's output size equals ONNX's
      for (int a = 0; a < 2; ++a) pads_end[a] = (g.out[a] - 1) * g.strides[a] + kernel[a] - xs[2 + a] - g.pads_begin[a];
      for (auto [c0, cc] : channel_ranges(xs[1], block, threads)) {
        SlicePart p = slice_part(c0, cc, c0, cc, false);
        const dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                            blocked(cc, xs[2], xs[3], block), blocked(cc, ys[2], ys[3], block), g.strides, kernel,
                                            g.pads_begin, pads_end);
        const dnnl::pooling_forward::primitive_desc pd(d, user_scratchpad(), cpu_engine());
        if (!usable(pd.impl_info_str())) return nullptr;
        p.src = pd.src_desc(), p.dst = pd.dst_desc(), p.scratch = pd.scratchpad_desc();
        p.prim = dnnl::pooling_forward(pd);
        parts.push_back(std::move(p));
      }
    }
  }
  stream.wait();
  return sp;
}

/// Runs a chain on one image with its sliced plan: the steps in order, each split over the pool.
/// With `observe`: each value made is observed after its step, the ones only the chain reads
/// reordered into `scratch` (see ConvChain::run).
void run_sliced(const ConvChain::Spec& spec, const Plan& plan, const std::vector<const Tensor*>& ext,
                std::vector<Tensor>* out, const ConvChain::Observe* observe, Tensor* scratch) {
  const SlicedPlan& sp = *plan.sliced;
  Pool pool;
  dnnl::stream stream(cpu_engine());
  std::vector<int> buf(spec.values.size(), -1);
  auto data = [&](int v) {
    return spec.values[v].external ? const_cast<float*>(ext[v]->data<float>()) : pool.data(buf[v]);
  };
  // Value v in layout `want` (a chain input in another layout goes through a temporary buffer).
  auto as = [&](int v, const memory::desc& want, int* temp) {
    if (sp.desc[v] == want) return data(v);
    SerialDnnl serial;
    *temp = pool.acquire(want.get_size());
    reorder(memory(sp.desc[v], cpu_engine(), data(v)), memory(want, cpu_engine(), pool.data(*temp)), stream);
    stream.wait();
    return pool.data(*temp);
  };
  for (size_t k = 0; k < spec.steps.size(); ++k) {
    const Step& s = spec.steps[k];
    const Shape& xs = plan.shape[s.in[0]];
    const Shape& ys = plan.shape[s.out];
    int temp[2] = {-1, -1};
    const std::vector<SlicePart>& parts = sp.parts[k];
    if (!parts.empty()) {
      const float* x = as(s.in[0], parts[0].whole_src ? parts[0].src : blocked(xs[1], xs[2], xs[3], sp.block), &temp[0]);
      buf[s.out] = pool.acquire(sp.desc[s.out].get_size());
      // One part in a layout of its own writes a temporary buffer, reordered into the blocked layout after.
      if (parts.size() == 1 && !(parts[0].dst == sp.desc[s.out])) temp[1] = pool.acquire(parts[0].dst.get_size());
      float* y = pool.data(temp[1] >= 0 ? temp[1] : buf[s.out]);
      tbb::parallel_for(size_t{0}, parts.size(), [&](size_t i) {
        const SlicePart& p = parts[i];
        SerialDnnl serial;
        dnnl::stream part_stream(cpu_engine());
        // A block range of one blocked image starts at channel * H * W floats.
        const float* src = p.whole_src ? x : x + p.c0 * xs[2] * xs[3];
        std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, memory(p.src, cpu_engine(), const_cast<float*>(src))},
            {DNNL_ARG_DST, memory(p.dst, cpu_engine(), y + p.m0 * ys[2] * ys[3])},
            {DNNL_ARG_SCRATCHPAD, scratchpad(p.scratch)}};
        if (s.op == Op::kConv) {
          args.emplace(DNNL_ARG_WEIGHTS, p.weights);
          if (s.b)
            args.emplace(DNNL_ARG_BIAS, memory(memory::desc({p.m}, memory::data_type::f32, tag::x), cpu_engine(),
                                               const_cast<float*>(s.b->data<float>()) + p.m0));
        }
        p.prim.execute(part_stream, args);
        part_stream.wait();
      });
      if (temp[1] >= 0) {
        SerialDnnl serial;
        reorder(memory(parts[0].dst, cpu_engine(), y), memory(sp.desc[s.out], cpu_engine(), data(s.out)), stream);
        stream.wait();
      }
    } else {
      const memory::desc& want = sp.desc[s.out];
      const float* x = as(s.in[0], want, &temp[0]);
      const float* z = s.op == Op::kAdd ? as(s.in[1], want, &temp[1]) : nullptr;
      if (s.in_place[0] && !spec.values[s.in[0]].external) {
        buf[s.out] = buf[s.in[0]];
        buf[s.in[0]] = -1;
      } else if (s.op == Op::kAdd && s.in_place[1] && !spec.values[s.in[1]].external) {
        buf[s.out] = buf[s.in[1]];
        buf[s.in[1]] = -1;
      } else {
        buf[s.out] = pool.acquire(want.get_size());
      }
      float* y = pool.data(buf[s.out]);
      const size_t count = want.get_size() / sizeof(float);
      tbb::parallel_for(tbb::blocked_range<size_t>(0, count, 16384), [&](const tbb::blocked_range<size_t>& r) {
        elementwise(s, x, z, y, r.begin(), r.end());
      });
    }
    for (int t : temp)
      if (t >= 0) pool.release(t);
    const Value& made = spec.values[s.out];
    if (made.output || observe) {
      Tensor& nchw = made.output ? (*out)[s.out] : scratch->resize_uninitialized(ys);
      {
        SerialDnnl serial;
        reorder(memory(sp.desc[s.out], cpu_engine(), data(s.out)), memory(plain(1, ys), cpu_engine(), nchw.data<float>()),
                stream);
        stream.wait();
      }
      if (observe) (*observe)(made.name, nchw);
    }
    for (int v : s.in)
      if (spec.values[v].last_use == static_cast<int>(k) && buf[v] >= 0) pool.release(buf[v]), buf[v] = -1;
    if (spec.values[s.out].last_use < 0 && buf[s.out] >= 0) pool.release(buf[s.out]), buf[s.out] = -1;
  }
}

}  // namespace

bool ConvChain::run(const Lookup& lookup, std::vector<std::pair<std::string, Tensor>>* outputs,
                    const Observe* observe, const ObservePart* observe_part) const {
  const Spec& spec = *spec_;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  std::vector<Shape> shape(spec.values.size());
  std::vector<const Tensor*> ext(spec.values.size(), nullptr);
  int64_t batch = -1;
  std::string key = std::to_string(threads);
  for (size_t v = 0; v < spec.values.size(); ++v) {
    if (!spec.values[v].external) continue;
    const Tensor* t = lookup(spec.values[v].name);
    if (!t || t->dtype() != DType::kFloat32 || t->rank() != 4) return false;
    if (batch >= 0 && t->dim(0) != batch) return false;
    batch = t->dim(0);
    ext[v] = t;
    shape[v] = t->shape();
    key += " " + shape_str(t->shape());
  }
  // One image on several threads: the sliced plan; otherwise at least one image per thread.
  const bool sliced = batch == 1 && threads > 1;
  if (batch < 1 || (batch < threads && !sliced)) return false;

  std::shared_ptr<const Plan> plan;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->plan && state_->key == key) plan = state_->plan;
  }
  if (!plan) {
    auto made = std::make_shared<Plan>();
    made->batch = batch;
    made->shape = shape;
    try {
      if (!infer_shapes(spec, &made->shape)) return false;
    } catch (const Error&) {
      return false;  // the node-by-node path reports it
    }
    int64_t image_bytes = 1;
    for (const Shape& s : made->shape) image_bytes = std::max(image_bytes, product({s[1], s[2], s[3]}) * 4);
    const int64_t per_chunk = std::max<int64_t>(1, std::min((batch + threads - 1) / threads, kChunkBytes / image_bytes));
    const int64_t pieces = (batch + per_chunk - 1) / per_chunk;
    int64_t first = 0;
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t end = batch * (p + 1) / pieces;
      made->chunks.emplace_back(first, end - first);
      first = end;
    }
    SerialDnnl serial;
    try {
      // Without a sliced plan (oneDNN has no real kernel for some step's slices, e.g. a MaxPool)
      // the image is one chunk, as on one thread.
      if (sliced) made->sliced = make_sliced_plan(spec, *made, threads);
      std::vector<memory::desc> w_desc;
      std::vector<memory> w_made;
      for (const auto& [n0, nn] : made->chunks) {
        if (made->sliced || made->by_size.count(nn)) continue;
        ChunkPlan cp = make_chunk_plan(spec, *made, nn, w_desc.empty() ? nullptr : &w_desc, &w_made);
        if (w_desc.empty()) {
          w_made = cp.weights;
          for (const memory& m : cp.weights) w_desc.push_back(m ? m.get_desc() : memory::desc());
        }
        made->by_size.emplace(nn, std::move(cp));
      }
    } catch (const dnnl::error&) {
      return false;
    }
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->key = key;
    state_->plan = made;
    plan = made;
  }

  // Every element of a value's NCHW copy is written by the reorders: no zero fill.
  std::vector<Tensor> out(spec.values.size());
  Tensor scratch;  // with an observer: the NCHW copy of each value only the chain reads, in turn
  int64_t scratch_numel = 0;
  for (size_t v = 0; v < spec.values.size(); ++v) {
    if (spec.values[v].output) out[v] = Tensor::uninitialized(DType::kFloat32, plan->shape[v]);
    if (!spec.values[v].output && !spec.values[v].external) scratch_numel = std::max(scratch_numel, product(plan->shape[v]));
  }
  // With a whole-value observer: the last run's batch buffers and scratch (State), or new ones;
  // given back below.
  std::unique_ptr<Pool> kept_pool;
  if (observe) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    kept_pool = std::move(state_->batch_pool);
    scratch = std::move(state_->scratch);
    if (!kept_pool) kept_pool = std::make_unique<Pool>();
    kept_pool->release_all();  // a run that failed part way may have left some marked
  }
  // One image observed in parts is observed whole, as the part at image 0.
  const Observe whole_part = [&](const std::string& name, const Tensor& t) { (*observe_part)(name, t, 0); };
  const Observe* sliced_observe = observe_part ? &whole_part : observe;
  if (observe || (plan->sliced && observe_part)) {
    // The largest value, allocated once (its storage kept when later ones are smaller).
    if (scratch.dtype() != DType::kFloat32) scratch = Tensor::uninitialized(DType::kFloat32, {scratch_numel});
    scratch.resize_uninitialized({scratch_numel});
  }

  if (plan->sliced) run_sliced(spec, *plan, ext, &out, sliced_observe, &scratch);
  tbb::enumerable_thread_specific<Pool> pools;  // each thread's buffers, reused between chunks
  tbb::enumerable_thread_specific<Tensor> parts;  // with observe_part: each thread's NCHW chunk copy
  // Chunk by chunk (no observer), a chunk's values live in its thread's pool (`buf`: each live
  // value's buffer) from their step to their last use, and the chunk runs every step while its
  // values are in cache. Step by step (an observer wants each value whole): every step runs over
  // all chunks before the next, each value is one buffer of `batch_pool` holding the chunks' parts
  // side by side (`part_offset` bytes in), given back after its last use, and is observed through
  // one NCHW scratch tensor, so only the values still to be read exist at once.
  Pool unused_pool;  // no whole-value observer: batch_pool is never used
  Pool& batch_pool = kept_pool ? *kept_pool : unused_pool;
  std::vector<size_t> batch_bytes(spec.values.size(), 0);
  std::vector<std::vector<size_t>> part_offset(plan->chunks.size(), std::vector<size_t>(spec.values.size(), 0));
  if (observe && !plan->sliced)
    for (size_t c = 0; c < plan->chunks.size(); ++c)
      for (size_t v = 0; v < spec.values.size(); ++v) {
        part_offset[c][v] = batch_bytes[v];
        batch_bytes[v] += (plan->by_size.at(plan->chunks[c].second).desc[v].get_size() + 63) / 64 * 64;
      }
  // Input 1 of an Add may be overwritten in place only when it needs no reorder (chunk plans of
  // other sizes may pick other layouts).
  auto same_layout = [&](const Step& s, const ChunkPlan* only) {
    for (const auto& [n, cp] : plan->by_size)
      if ((!only || &cp == only) && !(cp.desc[s.in[1]] == cp.desc[s.in[0]])) return false;
    return true;
  };
  // Where step s's output goes: over an input it may overwrite (Relu / Clip / Add), else a new
  // buffer. The input keeps pointing at it until release() (the step still reads it there).
  auto place = [&](const Step& s, std::vector<int>& buf, Pool& pool, size_t bytes, const ChunkPlan* only) {
    if (s.op != Op::kConv && s.op != Op::kMaxPool) {
      if (s.in_place[0] && !spec.values[s.in[0]].external) {
        buf[s.out] = buf[s.in[0]];
        return;
      }
      if (s.op == Op::kAdd && s.in_place[1] && !spec.values[s.in[1]].external && same_layout(s, only)) {
        buf[s.out] = buf[s.in[1]];
        return;
      }
    }
    buf[s.out] = pool.acquire(bytes);
  };
  // Gives back the buffers of the values step k read last (and of its output when nobody reads it);
  // an input overwritten in place hands its buffer to the output.
  auto release = [&](size_t k, std::vector<int>& buf, Pool& pool) {
    const Step& s = spec.steps[k];
    for (int v : s.in)
      if (buf[v] == buf[s.out]) buf[v] = -1;
    for (int v : s.in)
      if (spec.values[v].last_use == static_cast<int>(k) && buf[v] >= 0) pool.release(buf[v]), buf[v] = -1;
    if (spec.values[s.out].last_use < 0 && buf[s.out] >= 0) pool.release(buf[s.out]), buf[s.out] = -1;
  };
  // Step k on one chunk, its output placed in `buf` (of `pool`, or of batch_pool step by step);
  // then the output's NCHW copy: the value's tensor, or step by step the scratch.
  auto run_step = [&](size_t chunk, size_t k, Pool& pool, const std::vector<int>& buf, dnnl::stream& stream) {
    const Step& s = spec.steps[k];
    const auto [n0, nn] = plan->chunks[chunk];
    const ChunkPlan& cp = plan->by_size.at(nn);
    auto offset = [&](size_t v) { return n0 * product({plan->shape[v][1], plan->shape[v][2], plan->shape[v][3]}); };
    // Value v as memory in its chain layout (externals: their NCHW slice).
    auto mem = [&](int v) {
      if (spec.values[v].external)
        return memory(cp.desc[v], cpu_engine(), const_cast<float*>(ext[v]->data<float>()) + offset(v));
      if (observe)
        return memory(cp.desc[v], cpu_engine(), batch_pool.data(buf[v]) + part_offset[chunk][v] / sizeof(float));
      return memory(cp.desc[v], cpu_engine(), pool.data(buf[v]));
    };
    // Value v in layout `want`, through a temporary buffer (in *temp) when it is stored otherwise.
    auto as = [&](int v, const memory::desc& want, int* temp) {
      const memory m = mem(v);
      if (m.get_desc() == want) return m;
      *temp = pool.acquire(want.get_size());
      const memory t(want, cpu_engine(), pool.data(*temp));
      reorder(m, t, stream);
      return t;
    };
    int temp[2] = {-1, -1};
    const memory dst = mem(s.out);
    if (s.op == Op::kConv || s.op == Op::kMaxPool) {
      const memory src = as(s.in[0], cp.src[k], &temp[0]);
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
      args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad(cp.scratch[k]));
      if (s.op == Op::kConv) {
        args.emplace(DNNL_ARG_WEIGHTS, cp.weights[k]);
        if (s.b)
          args.emplace(DNNL_ARG_BIAS, memory(memory::desc({s.b->numel()}, memory::data_type::f32, tag::x),
                                             cpu_engine(), const_cast<float*>(s.b->data<float>())));
      }
      cp.prim[k].execute(stream, args);
    } else {
      // Relu / Clip / Add: elementwise over the whole buffer, padding included (it stays zero).
      const memory a = mem(s.in[0]);
      const memory b = s.op == Op::kAdd ? as(s.in[1], a.get_desc(), &temp[1]) : memory();
      elementwise(s, static_cast<const float*>(a.get_data_handle()),
                  s.op == Op::kAdd ? static_cast<const float*>(b.get_data_handle()) : nullptr,
                  static_cast<float*>(dst.get_data_handle()), 0, cp.desc[s.out].get_size() / sizeof(float));
    }
    for (int t : temp)
      if (t >= 0) pool.release(t);
    const Value& made = spec.values[s.out];
    if (observe_part) {
      // The chunk's NCHW copy in this thread's scratch, observed now (still in cache), then placed
      // in the value's tensor when the value leaves the chain.
      const Shape& whole = plan->shape[s.out];
      Tensor& part = parts.local();
      if (part.dtype() != DType::kFloat32) part = Tensor::uninitialized(DType::kFloat32, {0});
      part.resize_uninitialized({nn, whole[1], whole[2], whole[3]});
      reorder(dst, memory(plain(nn, whole), cpu_engine(), part.data<float>()), stream);
      stream.wait();
      (*observe_part)(made.name, part, n0);
      if (made.output) std::copy_n(part.data<float>(), part.numel(), out[s.out].data<float>() + offset(s.out));
      return;
    }
    Tensor* nchw = made.output ? &out[s.out] : observe ? &scratch : nullptr;
    if (nchw)
      reorder(dst, memory(plain(nn, plan->shape[s.out]), cpu_engine(), nchw->data<float>() + offset(s.out)), stream);
  };
  if (!plan->sliced && (!observe || observe_part)) tbb::parallel_for(size_t{0}, plan->chunks.size(), [&](size_t chunk) {
    SerialDnnl serial;
    Pool& pool = pools.local();
    dnnl::stream stream(cpu_engine());
    const ChunkPlan& cp = plan->by_size.at(plan->chunks[chunk].second);
    std::vector<int> buf(spec.values.size(), -1);
    for (size_t k = 0; k < spec.steps.size(); ++k) {
      place(spec.steps[k], buf, pool, cp.desc[spec.steps[k].out].get_size(), &cp);
      run_step(chunk, k, pool, buf, stream);
      release(k, buf, pool);
    }
    stream.wait();
  });
  if (!plan->sliced && observe) {
    std::vector<int> buf(spec.values.size(), -1);  // batch_pool buffer of each live value
    for (size_t k = 0; k < spec.steps.size(); ++k) {
      const Step& s = spec.steps[k];
      const Value& made = spec.values[s.out];
      place(s, buf, batch_pool, batch_bytes[s.out], nullptr);
      if (!made.output) scratch.resize_uninitialized(plan->shape[s.out]);
      tbb::parallel_for(size_t{0}, plan->chunks.size(), [&](size_t chunk) {
        SerialDnnl serial;
        dnnl::stream stream(cpu_engine());
        run_step(chunk, k, pools.local(), buf, stream);
        stream.wait();
      });
      (*observe)(made.name, made.output ? out[s.out] : scratch);
      release(k, buf, batch_pool);
    }
  }
  for (size_t v = 0; v < spec.values.size(); ++v)
    if (spec.values[v].output) outputs->emplace_back(spec.values[v].name, std::move(out[v]));
  if (observe) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->batch_pool = std::move(kept_pool);
    state_->scratch = std::move(scratch);
  }
  return true;
}

}  // namespace anvil::ref

// Elementwise operators: numpy-broadcasting arithmetic and activations.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>

#include "activations.h"
#include "attributes.h"
#include "broadcast.h"
#include "kernels.h"

namespace anvil::ref {

namespace {

/// The output tensor: the storage of input `a` or `b` when that input may be overwritten
/// (KernelContext::reusable) and has the output's shape and type, else a new tensor. Elementwise
/// kernels read element i of a full-shape input before writing element i, so computing in place
/// is exact.
Tensor output_like(Tensor* a, Tensor* b, DType dtype, const Shape& shape) {
  for (Tensor* t : {a, b})
    if (t && t->dtype() == dtype && t->shape() == shape) return std::move(*t);
  return Tensor::uninitialized(dtype, shape);  // every caller writes every element
}

/// A broadcast binary operation seen as rows: the output is `rows` x `inner` elements, and along a
/// row each operand is either contiguous (step 1) or one repeated element (step 0). Trailing
/// dimensions are merged into the row while both operands keep the same kind of step, so a bias
/// over [..., C], a scalar, equal shapes and LayerNorm's [N, T, 1] statistics over [N, T, D] all
/// become long rows whose inner loop the compiler vectorises.
struct BroadcastRows {
  int64_t rows = 1, inner = 1;
  int64_t step_a = 1, step_b = 1;        ///< 1 or 0 along a row
  std::vector<int64_t> outer;            ///< the output's dimensions outside the row
  std::vector<int64_t> outer_a, outer_b; ///< each operand's element strides along them
};

BroadcastRows broadcast_rows(const Shape& a, const Shape& b, const Shape& out) {
  const std::vector<int64_t> sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  BroadcastRows r;
  int d = static_cast<int>(out.size()) - 1;
  while (d >= 0 && out[d] == 1) --d;  // size-1 trailing dimensions change nothing
  if (d < 0) return r;
  r.step_a = sa[d] ? 1 : 0;
  r.step_b = sb[d] ? 1 : 0;
  // The row: dimensions from the last one inwards whose strides continue the row for both operands.
  int64_t extent_a = r.step_a, extent_b = r.step_b;  // stride a dimension must have to extend the row
  for (; d >= 0; --d) {
    if (out[d] == 1) continue;
    const bool a_ok = r.step_a ? sa[d] == extent_a : sa[d] == 0;
    const bool b_ok = r.step_b ? sb[d] == extent_b : sb[d] == 0;
    if (!a_ok || !b_ok) break;
    r.inner *= out[d];
    extent_a *= r.step_a ? out[d] : 1;
    extent_b *= r.step_b ? out[d] : 1;
  }
  for (int k = 0; k <= d; ++k) {
    if (out[k] == 1) continue;
    r.outer.push_back(out[k]);
    r.outer_a.push_back(sa[k]);
    r.outer_b.push_back(sb[k]);
  }
  r.rows = shape_numel(out) / r.inner;
  return r;
}

template <typename T, typename Op>
Tensor binary_typed(const Tensor& a, const Tensor& b, Op op, Tensor* reuse_a = nullptr, Tensor* reuse_b = nullptr) {
  const T* ad = a.data<T>();
  const T* bd = b.data<T>();
  const Shape out = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape());
  const BroadcastRows r = broadcast_rows(a.shape(), b.shape(), out);
  // In place only into an operand of the output's own shape: element i reads its position i.
  // (After this, a or b may be the moved-from tensor: only ad and bd are used.)
  Tensor y = output_like(reuse_a, reuse_b, dtype_of<T>(), out);
  T* yd = y.data<T>();
  if (y.numel() == 0) return y;
  const size_t depth = r.outer.size();
  // Whole rows per task, at least ~4096 elements each.
  const int64_t grain = std::max<int64_t>(1, 4096 / r.inner);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, r.rows, grain), [&](const tbb::blocked_range<int64_t>& range) {
    // Offsets of the first row of this range, then an odometer over the outer dimensions.
    std::vector<int64_t> idx(depth);
    int64_t oa = 0, ob = 0;
    for (int64_t rest = range.begin(), k = static_cast<int64_t>(depth) - 1; k >= 0; --k) {
      idx[k] = rest % r.outer[k];
      rest /= r.outer[k];
      oa += idx[k] * r.outer_a[k];
      ob += idx[k] * r.outer_b[k];
    }
    for (int64_t row = range.begin(); row < range.end(); ++row) {
      T* yr = yd + row * r.inner;
      const T* ar = ad + oa;
      const T* br = bd + ob;
      const int64_t n = r.inner;
      if (r.step_a && r.step_b) {
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<T>(op(ar[i], br[i]));
      } else if (r.step_a) {
        const T bv = br[0];
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<T>(op(ar[i], bv));
      } else if (r.step_b) {
        const T av = ar[0];
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<T>(op(av, br[i]));
      } else {
        const T v = static_cast<T>(op(ar[0], br[0]));
        std::fill_n(yr, n, v);
      }
      for (int64_t k = static_cast<int64_t>(depth) - 1; k >= 0; --k) {
        oa += r.outer_a[k];
        ob += r.outer_b[k];
        if (++idx[k] < r.outer[k]) break;
        oa -= r.outer_a[k] * idx[k];
        ob -= r.outer_b[k] * idx[k];
        idx[k] = 0;
      }
    }
  });
  return y;
}

/// Runs a numpy-broadcasting binary operator on operands of one type (float32/64, int8, uint8,
/// int32, int64). Integer results wrap to the type, as in ONNX Runtime.
template <typename Op>
void binary(KernelContext& ctx, Op op) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype())
    fail(ErrorCode::kInvalidArgument, std::string("operand types differ: ") + dtype_name(a.dtype()) + " and " +
                                          dtype_name(b.dtype()));
  Tensor* ra = ctx.reusable(0);
  Tensor* rb = ctx.reusable(1);
  switch (a.dtype()) {
    case DType::kFloat32: ctx.outputs[0] = binary_typed<float>(a, b, op, ra, rb); break;
    case DType::kFloat64: ctx.outputs[0] = binary_typed<double>(a, b, op, ra, rb); break;
    case DType::kInt8: ctx.outputs[0] = binary_typed<int8_t>(a, b, op, ra, rb); break;
    case DType::kUInt8: ctx.outputs[0] = binary_typed<uint8_t>(a, b, op, ra, rb); break;
    case DType::kInt32: ctx.outputs[0] = binary_typed<int32_t>(a, b, op, ra, rb); break;
    case DType::kInt64: ctx.outputs[0] = binary_typed<int64_t>(a, b, op, ra, rb); break;
    default: fail(ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(a.dtype()) + " is not supported");
  }
}

const Tensor& float_input(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string("input must be float32, got ") + dtype_name(t.dtype()));
  return t;
}

/// y = f(x) for every element of a float32 input, in parallel.
template <typename F>
void unary_float(KernelContext& ctx, F f) {
  const Tensor& x = float_input(ctx, 0);
  const float* xd = x.data<float>();
  const int64_t total = x.numel();
  Tensor y = output_like(ctx.reusable(0), nullptr, DType::kFloat32, x.shape());  // x is not read after this
  float* yd = y.data<float>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, total, 4096), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) yd[i] = f(xd[i]);
  });
  ctx.outputs[0] = std::move(y);
}

}  // namespace

void add_kernel(KernelContext& ctx) { binary(ctx, [](auto a, auto b) { return a + b; }); }
void sub_kernel(KernelContext& ctx) { binary(ctx, [](auto a, auto b) { return a - b; }); }
void mul_kernel(KernelContext& ctx) { binary(ctx, [](auto a, auto b) { return a * b; }); }
void div_kernel(KernelContext& ctx) {
  binary(ctx, [](auto a, auto b) {
    using T = decltype(a);
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail(ErrorCode::kInvalidArgument, "integer division by zero");
    }
    return static_cast<T>(a / b);
  });
}

namespace {

/// base^exponent in an integer type, exactly: by repeated squaring, wrapping modulo 2^bits like the
/// other integer operators (the products are formed unsigned, where wrapping is defined). A
/// negative exponent gives the truncated quotient 1 / base^-exponent: 0 unless base is 1 or -1.
template <typename T>
T integer_power(T base, T exponent) {
  if (exponent < 0) {
    if (base == 0) fail(ErrorCode::kInvalidArgument, "0 raised to a negative power");
    if (base == 1) return 1;
    if (base == -1) return exponent % 2 ? -1 : 1;
    return 0;
  }
  using U = std::make_unsigned_t<T>;
  U result = 1, factor = static_cast<U>(base);
  for (auto e = static_cast<U>(exponent); e; e >>= 1) {
    if (e & 1) result *= factor;
    factor *= factor;
  }
  return static_cast<T>(result);
}

/// Pow of an integer base (int32, int64): the result has the base's type. An integer exponent
/// (converted to the base's type) gives integer_power; a floating-point one std::pow in double,
/// truncated toward zero as ONNX Runtime casts; a result outside the type is an error.
template <typename T>
Tensor integer_base_pow(const Tensor& base, const Tensor& exponent) {
  if (exponent.dtype() != DType::kFloat32 && exponent.dtype() != DType::kFloat64)
    return binary_typed<T>(base, exponent.dtype() == base.dtype() ? exponent : exponent.cast(base.dtype()),
                           integer_power<T>);
  const Tensor y = binary_typed<double>(base.cast(DType::kFloat64), exponent.cast(DType::kFloat64), [](double a,
                                                                                                       double b) {
    const double r = std::trunc(std::pow(a, b));
    constexpr double kLowest = static_cast<double>(std::numeric_limits<T>::lowest());  // -2^(bits-1)
    if (!(r >= kLowest && r < -kLowest))
      fail(ErrorCode::kInvalidArgument, "Pow result " + std::to_string(r) + " does not fit " +
                                            dtype_name(dtype_of<T>()));
    return r;
  });
  return y.cast(dtype_of<T>());
}

}  // namespace

void pow_kernel(KernelContext& ctx) {
  const Tensor& base = ctx.input(0);
  switch (base.dtype()) {
    case DType::kInt32: ctx.outputs[0] = integer_base_pow<int32_t>(base, ctx.input(1)); return;
    case DType::kInt64: ctx.outputs[0] = integer_base_pow<int64_t>(base, ctx.input(1)); return;
    default: break;
  }
  // Else a float32 base: the exponent, of any type, in float.
  const Tensor exponent = ctx.input(1).dtype() == DType::kFloat32 ? ctx.input(1) : ctx.input(1).cast(DType::kFloat32);
  ctx.outputs[0] = binary_typed<float>(float_input(ctx, 0), exponent, [](float a, float b) {
    return b == 2.0f ? a * a : std::pow(a, b);  // x^2 (LayerNorm variance) exactly, as x * x
  });
}

void sqrt_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return std::sqrt(x); }); }
void exp_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return std::exp(x); }); }
namespace {
/// erf as a rational function of x on [-4, 4] (outside it erf rounds to +-1 in float32): the
/// minimax approximation Eigen and XLA use, within 4.3e-7 relative of std::erf over the whole float
/// range (measured on a 1e-5 grid of [-6, 6]), several times faster than libm's and vectorisable;
/// ONNX Runtime's MLAS approximates erf the same way.
float erf_rational(float a) {
  // Branch-free (NaN is selected at the end), so the loops calling it vectorise.
  const float x = std::min(4.0f, std::max(-4.0f, a));
  const float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  const float y = x * p / q;
  return a != a ? a : y;
}
}  // namespace

void erf_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return erf_rational(x); }); }
void tanh_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return act::tanh(x); }); }
void sigmoid_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return act::sigmoid(x); }); }

void leaky_relu_kernel(KernelContext& ctx) {
  const float alpha = attr_float(ctx.node, "alpha", 0.01f);
  unary_float(ctx, [alpha](float x) { return act::leaky_relu(x, alpha); });
}

void hard_sigmoid_kernel(KernelContext& ctx) {
  const float alpha = attr_float(ctx.node, "alpha", 0.2f), beta = attr_float(ctx.node, "beta", 0.5f);
  unary_float(ctx, [=](float x) { return act::hard_sigmoid(x, alpha, beta); });
}

void hard_swish_kernel(KernelContext& ctx) {
  unary_float(ctx, [](float x) { return act::hard_swish(x); });
}

void where_kernel(KernelContext& ctx) {
  const Tensor& cond = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  if (cond.dtype() != DType::kBool) fail(ErrorCode::kInvalidArgument, "condition must be bool");
  if (x.dtype() != y.dtype()) fail(ErrorCode::kInvalidArgument, "X and Y types differ");
  const Shape out = broadcast_shapes(broadcast_shapes(cond.shape(), x.shape()), y.shape());
  Tensor r(x.dtype(), out);
  const size_t es = dtype_size(x.dtype());
  const bool* c = cond.data<bool>();
  for_each_broadcast<3>(out, {broadcast_strides(cond.shape(), out), broadcast_strides(x.shape(), out),
                              broadcast_strides(y.shape(), out)},
                        [&](int64_t i, int64_t oc, int64_t ox, int64_t oy) {
                          std::memcpy(r.raw() + i * es, (c[oc] ? x.raw() + ox * es : y.raw() + oy * es), es);
                        });
  ctx.outputs[0] = std::move(r);
}

void relu_kernel(KernelContext& ctx) { unary_float(ctx, [](float x) { return std::max(x, 0.0f); }); }

namespace {
/// Clip of an integer tensor (opset 12+): bounds are scalars of the input's type.
template <typename T>
void clip_typed(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
  for (size_t i = 1; i <= 2; ++i) {
    if (!ctx.has_input(i)) continue;
    const Tensor& b = ctx.input(i);
    if (b.dtype() != x.dtype() || b.numel() != 1)
      fail(ErrorCode::kInvalidArgument, std::string(i == 1 ? "min" : "max") + " must be one " + dtype_name(x.dtype()) +
                                            " value");
    (i == 1 ? lo : hi) = b.data<T>()[0];
  }
  Tensor y(x.dtype(), x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data<T>()[i] = std::min(std::max(x.data<T>()[i], lo), hi);
  ctx.outputs[0] = std::move(y);
}
}  // namespace

void clip_kernel(KernelContext& ctx) {
  switch (ctx.input(0).dtype()) {
    case DType::kFloat32: break;
    case DType::kInt8: return clip_typed<int8_t>(ctx);
    case DType::kUInt8: return clip_typed<uint8_t>(ctx);
    case DType::kInt32: return clip_typed<int32_t>(ctx);
    case DType::kInt64: return clip_typed<int64_t>(ctx);
    default: fail(ErrorCode::kUnsupported, std::string("dtype ") + dtype_name(ctx.input(0).dtype()) + " is not supported");
  }
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  if (ctx.opset < 11) {
    // Opset 6: bounds are attributes.
    lo = attr_float(ctx.node, "min", lo);
    hi = attr_float(ctx.node, "max", hi);
  } else {
    if (ctx.has_input(1)) lo = float_scalar(ctx.input(1), "min");
    if (ctx.has_input(2)) hi = float_scalar(ctx.input(2), "max");
  }
  // ONNX: y = min(max(x, min), max); with min > max every element becomes max.
  unary_float(ctx, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}

void identity_kernel(KernelContext& ctx) {
  ctx.outputs[0] = ctx.reusable(0) ? std::move(*ctx.reusable(0)) : ctx.input(0);
}

namespace {

/// numpy's legacy RandomState: MT19937 seeded with init_genrand(seed) (std::mt19937 does the
/// same), and random_sample() = (a >> 5) * 2^26 + (b >> 6), divided by 2^53, from two successive
/// 32-bit draws. The ONNX reference implementation of training-mode Dropout draws its mask with
/// np.random.seed(seed); np.random.uniform(0, 1, shape), in row-major order.
class NumpyUniform {
 public:
  explicit NumpyUniform(uint32_t seed) : mt_(seed) {}
  double next() {
    const uint32_t a = static_cast<uint32_t>(mt_()) >> 5, b = static_cast<uint32_t>(mt_()) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }

 private:
  std::mt19937 mt_;
};

}  // namespace

void dropout_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  // Opset 12+: ratio (input 1, default 0.5) and training_mode (input 2, default false). Earlier
  // opsets are inference only (ratio is an attribute that inference ignores).
  bool training = false;
  if (ctx.has_input(2)) {
    const Tensor& t = ctx.input(2);
    if (t.dtype() != DType::kBool || t.numel() != 1)
      fail(ErrorCode::kInvalidArgument, "training_mode must be a bool scalar, got " + shape_str(t.shape()));
    training = t.data<bool>()[0];
  }
  float ratio = 0.5f;
  if (ctx.has_input(1)) ratio = float_scalar(ctx.input(1), "ratio");
  if (training && (!(ratio >= 0.0f) || ratio >= 1.0f))
    fail(ErrorCode::kInvalidArgument, "ratio must be in [0, 1), got " + std::to_string(ratio));
  Tensor mask(DType::kBool, x.shape());
  if (!training || ratio == 0.0f) {
    // Inference (or nothing to drop): the output is the input and every mask element is true.
    ctx.outputs[0] = x;
    std::fill_n(mask.data<bool>(), mask.numel(), true);
  } else {
    if (x.dtype() != DType::kFloat32)
      fail(ErrorCode::kUnsupported, "training-mode Dropout supports float32 input, got " + std::string(dtype_name(x.dtype())));
    // Training: element i is kept when the i-th uniform draw is >= ratio, and scaled by
    // 1 / (1 - ratio). The draws are numpy's, so the ONNX suite's expected outputs are
    // reproducible; without a `seed` attribute the seed is 0 (the ONNX reference
    // implementation's default) rather than a random one, so runs are deterministic.
    NumpyUniform u(static_cast<uint32_t>(attr_int(ctx.node, "seed", 0)));
    const float scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(ratio)));
    Tensor y(DType::kFloat32, x.shape());
    const float* xd = x.data<float>();
    float* yd = y.data<float>();
    bool* md = mask.data<bool>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      md[i] = u.next() >= ratio;
      yd[i] = md[i] ? xd[i] * scale : 0.0f;
    }
    ctx.outputs[0] = std::move(y);
  }
  if (ctx.wants_output(1)) ctx.outputs[1] = std::move(mask);
}

}  // namespace anvil::ref

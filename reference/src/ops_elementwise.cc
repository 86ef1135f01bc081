// Elementwise operators: numpy-broadcasting arithmetic and activations.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>

#include "activations.h"
#include "attributes.h"
#include "broadcast.h"
#include "kernels.h"
#include "type_dispatch.h"

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

/// y = op(a, b) with numpy broadcasting, for operands of type T and a result of type R (bool for
/// the comparisons).
template <typename T, typename R = T, typename Op>
Tensor binary_typed(const Tensor& a, const Tensor& b, Op op, Tensor* reuse_a = nullptr, Tensor* reuse_b = nullptr) {
  const T* ad = a.data<T>();
  const T* bd = b.data<T>();
  const Shape out = a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape());
  const BroadcastRows r = broadcast_rows(a.shape(), b.shape(), out);
  // In place only into an operand of the output's own shape: element i reads its position i.
  // (After this, a or b may be the moved-from tensor: only ad and bd are used.)
  Tensor y = output_like(reuse_a, reuse_b, dtype_of<R>(), out);
  R* yd = y.data<R>();
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
      R* yr = yd + row * r.inner;
      const T* ar = ad + oa;
      const T* br = bd + ob;
      const int64_t n = r.inner;
      if (r.step_a && r.step_b) {
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<R>(op(ar[i], br[i]));
      } else if (r.step_a) {
        const T bv = br[0];
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<R>(op(ar[i], bv));
      } else if (r.step_b) {
        const T av = ar[0];
        for (int64_t i = 0; i < n; ++i) yr[i] = static_cast<R>(op(av, br[i]));
      } else {
        const R v = static_cast<R>(op(ar[0], br[0]));
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

/// A numpy-broadcasting binary operator on two operands of one type from kAccepted: op's result
/// converted to the operands' type, or to bool when kToBool (the comparisons). Integer results wrap
/// to the type, as in ONNX Runtime. Used by the kernels and, operand pair by operand pair, by the
/// variadic Min and Max.
template <Elements kAccepted, bool kToBool = false, typename Op>
Tensor binary_tensors(const Tensor& a, const Tensor& b, Op op, Tensor* reuse_a = nullptr, Tensor* reuse_b = nullptr) {
  if (a.dtype() != b.dtype())
    fail(ErrorCode::kInvalidArgument, std::string("operand types differ: ") + dtype_name(a.dtype()) + " and " +
                                          dtype_name(b.dtype()));
  return visit_numeric<kAccepted>(a.dtype(), [&](auto type) {
    using T = decltype(type);
    return binary_typed<T, std::conditional_t<kToBool, bool, T>>(a, b, op, reuse_a, reuse_b);
  });
}

/// Runs binary_tensors on the node's two inputs (arithmetic: float and integer types).
template <Elements kAccepted = Elements::kNumeric, bool kToBool = false, typename Op>
void binary(KernelContext& ctx, Op op) {
  ctx.outputs[0] = binary_tensors<kAccepted, kToBool>(ctx.input(0), ctx.input(1), op, ctx.reusable(0), ctx.reusable(1));
}

const Tensor& float_input(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    fail(ErrorCode::kUnsupported, std::string("input must be float32, got ") + dtype_name(t.dtype()));
  return t;
}

/// y = f(x) for every element of x, of type T, in parallel; f's result is converted to T.
template <typename T, typename F>
Tensor unary_typed(const Tensor& x, Tensor* reuse, F f) {
  const T* xd = x.data<T>();
  const int64_t total = x.numel();
  Tensor y = output_like(reuse, nullptr, dtype_of<T>(), x.shape());  // x is not read after this
  T* yd = y.data<T>();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, total, 4096), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) yd[i] = static_cast<T>(f(xd[i]));
  });
  return y;
}

/// y = f(x) for every element of a float32 input.
template <typename F>
void unary_float(KernelContext& ctx, F f) {
  ctx.outputs[0] = unary_typed<float>(float_input(ctx, 0), ctx.reusable(0), f);
}

/// y = f(x) for an input whose type is in kAccepted; f is generic (called with that type).
template <Elements kAccepted, typename F>
void unary(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  ctx.outputs[0] = visit_numeric<kAccepted>(x.dtype(), [&](auto type) {
    return unary_typed<decltype(type)>(x, ctx.reusable(0), f);
  });
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

namespace {
template <typename T>
bool is_negative(T x) {
  if constexpr (std::is_unsigned_v<T>) return false;
  else return x < T(0);
}
template <typename T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  else return false;
}
}  // namespace

// Elementwise operators of ONNX's math and logic sections: each is one expression, which unary() /
// binary() instantiate for the element types the operator takes.
void neg_kernel(KernelContext& ctx) { unary<Elements::kNumeric>(ctx, [](auto x) { return -x; }); }
void abs_kernel(KernelContext& ctx) {
  unary<Elements::kNumeric>(ctx, [](auto x) {
    if constexpr (std::is_floating_point_v<decltype(x)>) return std::fabs(x);  // -0.0 too
    else return is_negative(x) ? -x : x;
  });
}
void sign_kernel(KernelContext& ctx) {
  unary<Elements::kNumeric>(ctx, [](auto x) {
    using T = decltype(x);
    return is_nan(x) ? x : is_negative(x) ? T(-1) : x > T(0) ? T(1) : T(0);
  });
}
void reciprocal_kernel(KernelContext& ctx) {
  unary<Elements::kFloat>(ctx, [](auto x) { return decltype(x)(1) / x; });
}
void floor_kernel(KernelContext& ctx) { unary<Elements::kFloat>(ctx, [](auto x) { return std::floor(x); }); }
void ceil_kernel(KernelContext& ctx) { unary<Elements::kFloat>(ctx, [](auto x) { return std::ceil(x); }); }
void round_kernel(KernelContext& ctx) {
  // Halves to even, as ONNX says: nearbyint rounds in the current mode, FE_TONEAREST (ties to even),
  // which nothing in anvil changes.
  unary<Elements::kFloat>(ctx, [](auto x) { return std::nearbyint(x); });
}
void log_kernel(KernelContext& ctx) { unary<Elements::kFloat>(ctx, [](auto x) { return std::log(x); }); }
void softplus_kernel(KernelContext& ctx) {
  // log(1 + e^x), written so e^x never overflows: x + log(1 + e^-x) for x > 0.
  unary<Elements::kFloat>(ctx, [](auto x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  });
}
void elu_kernel(KernelContext& ctx) {
  const float alpha = attr_float(ctx.node, "alpha", 1.0f);
  unary<Elements::kFloat>(ctx, [alpha](auto x) { return x < 0 ? alpha * std::expm1(x) : x; });
}
void selu_kernel(KernelContext& ctx) {
  // ONNX's defaults: the float32 values of the constants in Klambauer et al. (2017).
  const float alpha = attr_float(ctx.node, "alpha", 1.67326319217681884765625f);
  const float gamma = attr_float(ctx.node, "gamma", 1.05070102214813232421875f);
  unary<Elements::kFloat>(ctx, [=](auto x) { return gamma * (x > 0 ? x : alpha * std::expm1(x)); });
}

void prelu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Shape x_shape = x.shape();  // x may be moved into the output below
  const Tensor* slope = &ctx.input(1);
  // Opsets 1-6 (PyTorch 0.3's exports): a 1-D slope of C values is one per channel (axis 1), not
  // numpy-broadcast from the last axis.
  Tensor per_channel;
  if (ctx.opset < 7 && slope->rank() == 1 && x_shape.size() > 2 && slope->dim(0) == x_shape[1] && x_shape[1] != 1) {
    Shape s(x_shape.size() - 1, 1);
    s[0] = x_shape[1];
    per_channel = slope->reshaped(s);
    slope = &per_channel;
  }
  // The slope broadcasts to X (ONNX: unidirectionally), so the output has X's shape.
  Tensor y = binary_tensors<Elements::kNumeric>(x, *slope, [](auto v, auto k) { return is_negative(v) ? k * v : v; },
                                                      ctx.reusable(0));
  if (y.shape() != x_shape)
    fail(ErrorCode::kInvalidArgument, "slope of shape " + shape_str(slope->shape()) + " does not broadcast to X of shape " +
                                          shape_str(x_shape));
  ctx.outputs[0] = std::move(y);
}

namespace {
/// Min / Max of one or more inputs with numpy broadcasting, folded pair by pair left to right (the
/// order does not change the result). One input is copied. A NaN operand gives NaN, as in ONNX Runtime.
template <typename Pick>
void variadic(KernelContext& ctx, Pick pick) {
  auto op = [pick](auto a, auto b) { return is_nan(a) ? a : is_nan(b) ? b : pick(a, b); };
  if (ctx.num_inputs() == 1) return identity_kernel(ctx);
  Tensor y = binary_tensors<Elements::kNumeric>(ctx.input(0), ctx.input(1), op, ctx.reusable(0), ctx.reusable(1));
  for (size_t i = 2; i < ctx.num_inputs(); ++i)
    y = binary_tensors<Elements::kNumeric>(y, ctx.input(i), op, &y, ctx.reusable(i));
  ctx.outputs[0] = std::move(y);
}

/// Throws kInvalidArgument naming the first input of a logical operator that is not bool.
void expect_bool_inputs(const KernelContext& ctx) {
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.input(i).dtype() != DType::kBool)
      fail(ErrorCode::kInvalidArgument, "input '" + ctx.node.input(static_cast<int>(i)) + "' is " +
                                            dtype_name(ctx.input(i).dtype()) + ", expected bool");
}
}  // namespace

void min_kernel(KernelContext& ctx) { variadic(ctx, [](auto a, auto b) { return b < a ? b : a; }); }
void max_kernel(KernelContext& ctx) { variadic(ctx, [](auto a, auto b) { return b > a ? b : a; }); }

// Comparisons give bool; Equal also compares bools (opset 11+).
void equal_kernel(KernelContext& ctx) {
  binary<Elements::kNumericAndBool, true>(ctx, [](auto a, auto b) { return a == b; });
}
void less_kernel(KernelContext& ctx) { binary<Elements::kNumeric, true>(ctx, [](auto a, auto b) { return a < b; }); }
void less_or_equal_kernel(KernelContext& ctx) {
  binary<Elements::kNumeric, true>(ctx, [](auto a, auto b) { return a <= b; });
}
void greater_kernel(KernelContext& ctx) {
  binary<Elements::kNumeric, true>(ctx, [](auto a, auto b) { return a > b; });
}
void greater_or_equal_kernel(KernelContext& ctx) {
  binary<Elements::kNumeric, true>(ctx, [](auto a, auto b) { return a >= b; });
}
void not_kernel(KernelContext& ctx) {
  expect_bool_inputs(ctx);
  ctx.outputs[0] = unary_typed<bool>(ctx.input(0), ctx.reusable(0), [](bool a) { return !a; });
}
void and_kernel(KernelContext& ctx) {
  expect_bool_inputs(ctx);
  binary<Elements::kNumericAndBool>(ctx, [](bool a, bool b) { return a && b; });
}
void or_kernel(KernelContext& ctx) {
  expect_bool_inputs(ctx);
  binary<Elements::kNumericAndBool>(ctx, [](bool a, bool b) { return a || b; });
}

constexpr int64_t kMaxRangeBytes = int64_t{1} << 32;  ///< 4 GiB: a Range is a shape or index helper

void range_kernel(KernelContext& ctx) {
  const Tensor& start = ctx.input(0);
  for (size_t i = 0; i < 3; ++i) {
    const Tensor& t = ctx.input(i);
    if (t.numel() != 1 || t.dtype() != start.dtype())
      fail(ErrorCode::kInvalidArgument, std::string(i == 0 ? "start" : i == 1 ? "limit" : "delta") + " must be one " +
                                            dtype_name(start.dtype()) + " value, got " + dtype_name(t.dtype()) + " " +
                                            shape_str(t.shape()));
  }
  ctx.outputs[0] = visit_numeric<Elements::kNumeric>(start.dtype(), [&](auto type) {
    using T = decltype(type);
    const T first = start.data<T>()[0], limit = ctx.input(1).data<T>()[0], delta = ctx.input(2).data<T>()[0];
    if (delta == T(0)) fail(ErrorCode::kInvalidArgument, "delta is 0");
    // ONNX: max(ceil((limit - start) / delta), 0) elements, start + i * delta; the count in double, as
    // ONNX Runtime computes it (exact for the integer ranges a tensor can hold).
    const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(first)) / static_cast<double>(delta));
    // A count beyond what memory holds (or infinite: a float limit of inf) is an error here, not a
    // bad_alloc or an undefined conversion.
    const int64_t max_elements = kMaxRangeBytes / static_cast<int64_t>(sizeof(T));
    if (count > static_cast<double>(max_elements)) {
      std::ostringstream what;
      what << "Range of " << count << " elements (at most " << max_elements << " of " << dtype_name(dtype_of<T>())
           << ", 4 GiB)";
      fail(ErrorCode::kInvalidArgument, what.str());
    }
    const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
    Tensor y = Tensor::uninitialized(dtype_of<T>(), {n});
    T* yd = y.data<T>();
    for (int64_t i = 0; i < n; ++i) yd[i] = static_cast<T>(first + static_cast<T>(i) * delta);
    return y;
  });
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

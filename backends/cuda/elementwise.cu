// Elementwise kernels: unary, binary (inputs already broadcast by the op) and where.
//
// Each op is a compile-time case of unary_fn / binary_fn, so one kernel per (op, dtype, layout)
// carries no switch in its loop. The formulas are the CPU's (backends/cpu/elementwise.cpp),
// written in the tensor's own precision (bfloat16 is loaded into float, computed there and
// rounded once on the store); float32 results may differ from the CPU's in the last bits
// (CUDA's expf/tanhf/erff against SLEEF's, and nvcc's fused multiply-adds).
#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

namespace wavspa::cuda {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1 / sqrt(2 pi)
constexpr double kGeluCubic = 0.044715;

// The libm function of the argument's precision (expf for float, exp for double): an
// accidental promotion to double would make float32 kernels several times slower.
#define WAVSPA_DEVICE_MATH1(name, f32, f64)                                    \
  __device__ __forceinline__ float name(float v) { return f32(v); }           \
  __device__ __forceinline__ double name(double v) { return f64(v); }
WAVSPA_DEVICE_MATH1(m_exp, expf, exp)
WAVSPA_DEVICE_MATH1(m_expm1, expm1f, expm1)
WAVSPA_DEVICE_MATH1(m_log, logf, log)
WAVSPA_DEVICE_MATH1(m_log1p, log1pf, log1p)
WAVSPA_DEVICE_MATH1(m_sqrt, sqrtf, sqrt)
WAVSPA_DEVICE_MATH1(m_sin, sinf, sin)
WAVSPA_DEVICE_MATH1(m_cos, cosf, cos)
WAVSPA_DEVICE_MATH1(m_tanh, tanhf, tanh)
WAVSPA_DEVICE_MATH1(m_erf, erff, erf)
WAVSPA_DEVICE_MATH1(m_abs, fabsf, fabs)
#undef WAVSPA_DEVICE_MATH1
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }

template <typename T>
__device__ __forceinline__ T sigmoid(T v) {
  return T(1) / (T(1) + m_exp(-v));
}

// a, b: the op's parameters p0, p1 in T (alpha; beta and threshold; the exponent).
template <UnaryOp OP, typename T>
__device__ __forceinline__ T unary_fn(T v, T a, T b) {
  if constexpr (OP == UnaryOp::Neg) return -v;
  else if constexpr (OP == UnaryOp::Abs) return m_abs(v);
  else if constexpr (OP == UnaryOp::Sign) return T((v > T(0)) - (v < T(0)));
  else if constexpr (OP == UnaryOp::Exp) return m_exp(v);
  else if constexpr (OP == UnaryOp::Log) return m_log(v);
  else if constexpr (OP == UnaryOp::Sqrt) return m_sqrt(v);
  else if constexpr (OP == UnaryOp::Rsqrt) return T(1) / m_sqrt(v);  // as the CPU: not rsqrt()
  else if constexpr (OP == UnaryOp::Sin) return m_sin(v);
  else if constexpr (OP == UnaryOp::Cos) return m_cos(v);
  else if constexpr (OP == UnaryOp::Tanh) return m_tanh(v);
  else if constexpr (OP == UnaryOp::Sigmoid) return sigmoid(v);
  else if constexpr (OP == UnaryOp::Relu) return v > T(0) ? v : T(0);
  else if constexpr (OP == UnaryOp::GeluErf) return T(0.5) * v * (T(1) + m_erf(v * T(kInvSqrt2)));
  else if constexpr (OP == UnaryOp::GeluTanh) {
    const T inner = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
    return T(0.5) * v * (T(1) + m_tanh(inner));
  } else if constexpr (OP == UnaryOp::Silu) return v * sigmoid(v);
  else if constexpr (OP == UnaryOp::Elu) return v > T(0) ? v : a * m_expm1(v);
  else if constexpr (OP == UnaryOp::Softplus) return a * v > b ? v : m_log1p(m_exp(a * v)) / a;
  else if constexpr (OP == UnaryOp::PowScalar) return m_pow(v, a);
  else static_assert(OP == UnaryOp::Neg, "unary op without a device formula");
}

// NaN wins, as in the CPU's nan_max / nan_min (and torch.maximum).
template <typename T>
__device__ __forceinline__ T nan_max(T x, T y) {
  if (isnan(x) || isnan(y)) return isnan(x) ? x : y;
  return x > y ? x : y;
}
template <typename T>
__device__ __forceinline__ T nan_min(T x, T y) {
  if (isnan(x) || isnan(y)) return isnan(x) ? x : y;
  return x < y ? x : y;
}

// Floating binary ops, including the fused backward ones: (g, saved) -> g * f'(...), with
// `saved` the forward's input (its output for Sigmoid and Tanh).
template <BinaryOp OP, typename T>
__device__ __forceinline__ T binary_fn(T u, T v, T a, T b) {
  if constexpr (OP == BinaryOp::Add) return u + v;
  else if constexpr (OP == BinaryOp::Sub) return u - v;
  else if constexpr (OP == BinaryOp::Mul) return u * v;
  else if constexpr (OP == BinaryOp::Div) return u / v;
  else if constexpr (OP == BinaryOp::Pow) return m_pow(u, v);
  else if constexpr (OP == BinaryOp::Maximum) return nan_max(u, v);
  else if constexpr (OP == BinaryOp::Minimum) return nan_min(u, v);
  else if constexpr (OP == BinaryOp::ReluBackward) return v > T(0) ? u : T(0);
  else if constexpr (OP == BinaryOp::GeluErfBackward) {
    const T cdf = T(0.5) * (T(1) + m_erf(v * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * m_exp(T(-0.5) * v * v);
    return u * (cdf + v * pdf);
  } else if constexpr (OP == BinaryOp::GeluTanhBackward) {
    const T inner = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
    const T t = m_tanh(inner);
    const T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * v * v);
    return u * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * dinner);
  } else if constexpr (OP == BinaryOp::SiluBackward) {
    const T s = sigmoid(v);
    return u * s * (T(1) + v * (T(1) - s));
  } else if constexpr (OP == BinaryOp::EluBackward) return v > T(0) ? u : u * a * m_exp(v);
  else if constexpr (OP == BinaryOp::SoftplusBackward) return a * v > b ? u : u * sigmoid(a * v);
  else if constexpr (OP == BinaryOp::SigmoidBackward) return u * v * (T(1) - v);
  else if constexpr (OP == BinaryOp::TanhBackward) return u * (T(1) - v * v);
  else static_assert(OP == BinaryOp::Add, "binary op without a device formula");
}

// Integer tensors: + - *, max and min (what the CPU backend accepts; comparisons write bool
// through CompareFn).
template <BinaryOp OP, typename T>
__device__ __forceinline__ T int_binary_fn(T u, T v) {
  if constexpr (OP == BinaryOp::Add) return u + v;
  else if constexpr (OP == BinaryOp::Sub) return u - v;
  else if constexpr (OP == BinaryOp::Mul) return u * v;
  else if constexpr (OP == BinaryOp::Maximum) return u > v ? u : v;
  else if constexpr (OP == BinaryOp::Minimum) return u < v ? u : v;
  else static_assert(OP == BinaryOp::Add, "integer binary op without a device formula");
}

// T is the storage type, C = Compute<T> the type the formula runs in.
template <UnaryOp OP, typename T>
struct UnaryFn {
  using C = Compute<T>;
  T* out;
  const T* x;
  C a, b;
  __device__ void operator()(const int64_t (&off)[2]) const {
    out[off[0]] = from_compute<T>(unary_fn<OP, C>(to_compute(x[off[1]]), a, b));
  }
  __device__ void vec8(const int64_t (&off)[2], const int64_t (&inner)[2], int count) const {
    const Vec8<T> v = load_vec8(x + off[1], inner[1], count);
    C r[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) r[c] = unary_fn<OP, C>(to_compute(v.v[c]), a, b);
    store_vec8(out + off[0], round8<T>(r), count);
  }
};

template <BinaryOp OP, typename T>
struct BinaryFn {
  using C = Compute<T>;
  T* out;
  const T *x, *y;
  C a, b;
  __device__ void operator()(const int64_t (&off)[3]) const {
    out[off[0]] = from_compute<T>(binary_fn<OP, C>(to_compute(x[off[1]]), to_compute(y[off[2]]), a, b));
  }
  __device__ void vec8(const int64_t (&off)[3], const int64_t (&inner)[3], int count) const {
    const Vec8<T> u = load_vec8(x + off[1], inner[1], count);
    const Vec8<T> v = load_vec8(y + off[2], inner[2], count);
    C r[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) r[c] = binary_fn<OP, C>(to_compute(u.v[c]), to_compute(v.v[c]), a, b);
    store_vec8(out + off[0], round8<T>(r), count);
  }
};

template <BinaryOp OP, typename T>
struct IntBinaryFn {
  T* out;
  const T *x, *y;
  __device__ void operator()(const int64_t (&off)[3]) const {
    out[off[0]] = int_binary_fn<OP, T>(x[off[1]], y[off[2]]);
  }
};

// A comparison of x and y (both T) into bool.
template <BinaryOp OP, typename T>
struct CompareFn {
  bool* out;
  const T *x, *y;
  __device__ void operator()(const int64_t (&off)[3]) const {
    const auto u = to_compute(x[off[1]]), v = to_compute(y[off[2]]);
    if constexpr (OP == BinaryOp::Eq) out[off[0]] = u == v;
    else if constexpr (OP == BinaryOp::Ne) out[off[0]] = u != v;
    else if constexpr (OP == BinaryOp::Lt) out[off[0]] = u < v;
    else if constexpr (OP == BinaryOp::Le) out[off[0]] = u <= v;
    else if constexpr (OP == BinaryOp::Gt) out[off[0]] = u > v;
    else out[off[0]] = u >= v;
  }
};

template <typename T, typename C>
struct WhereFn {
  T* out;
  const C* cond;
  const T *a, *b;
  __device__ void operator()(const int64_t (&off)[4]) const {
    out[off[0]] = to_compute(cond[off[1]]) != 0 ? a[off[2]] : b[off[3]];
  }
};

template <UnaryOp OP, typename T>
void run_unary(const Tensor& x, const Tensor& out, double p0, double p1) {
  using C = Compute<T>;
  for_each_element<2>({out, x}, UnaryFn<OP, T>{dptr<T>(out), dptr<T>(x), (C)p0, (C)p1});
}

template <BinaryOp OP, typename T>
void run_binary(const Tensor& x, const Tensor& y, const Tensor& out, double p0, double p1) {
  using C = Compute<T>;
  for_each_element<3>({out, x, y},
                      BinaryFn<OP, T>{dptr<T>(out), dptr<T>(x), dptr<T>(y), (C)p0, (C)p1});
}

template <BinaryOp OP, typename T>
void run_int_binary(const Tensor& x, const Tensor& y, const Tensor& out) {
  for_each_element<3>({out, x, y}, IntBinaryFn<OP, T>{dptr<T>(out), dptr<T>(x), dptr<T>(y)});
}

template <typename T>
void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
#define WAVSPA_CASE(name) \
  case UnaryOp::name: return run_unary<UnaryOp::name, T>(x, out, p0, p1);
  switch (op) {
    WAVSPA_CASE(Neg) WAVSPA_CASE(Abs) WAVSPA_CASE(Sign) WAVSPA_CASE(Exp) WAVSPA_CASE(Log)
    WAVSPA_CASE(Sqrt) WAVSPA_CASE(Rsqrt) WAVSPA_CASE(Sin) WAVSPA_CASE(Cos) WAVSPA_CASE(Tanh)
    WAVSPA_CASE(Sigmoid) WAVSPA_CASE(Relu) WAVSPA_CASE(GeluErf) WAVSPA_CASE(GeluTanh)
    WAVSPA_CASE(Silu) WAVSPA_CASE(Elu) WAVSPA_CASE(Softplus) WAVSPA_CASE(PowScalar)
  }
#undef WAVSPA_CASE
  throw Error(str("unary: unknown op ", static_cast<int>(op)));
}

template <typename T>
void binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out, double p0,
                  double p1) {
#define WAVSPA_CASE(name) \
  case BinaryOp::name: return run_binary<BinaryOp::name, T>(x, y, out, p0, p1);
  switch (op) {
    WAVSPA_CASE(Add) WAVSPA_CASE(Sub) WAVSPA_CASE(Mul) WAVSPA_CASE(Div) WAVSPA_CASE(Pow)
    WAVSPA_CASE(Maximum) WAVSPA_CASE(Minimum) WAVSPA_CASE(ReluBackward)
    WAVSPA_CASE(GeluErfBackward) WAVSPA_CASE(GeluTanhBackward) WAVSPA_CASE(SiluBackward)
    WAVSPA_CASE(EluBackward) WAVSPA_CASE(SoftplusBackward) WAVSPA_CASE(SigmoidBackward)
    WAVSPA_CASE(TanhBackward)
  }
#undef WAVSPA_CASE
  throw Error(str("binary: unknown op ", static_cast<int>(op)));
}

template <typename T>
void int_binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out) {
#define WAVSPA_CASE(name) \
  case BinaryOp::name: return run_int_binary<BinaryOp::name, T>(x, y, out);
  switch (op) {
    WAVSPA_CASE(Add) WAVSPA_CASE(Sub) WAVSPA_CASE(Mul) WAVSPA_CASE(Maximum) WAVSPA_CASE(Minimum)
    default: break;
  }
#undef WAVSPA_CASE
  // The CPU backend's message, word for word.
  throw Error(str("binary op ", static_cast<int>(op), " is not defined for ",
                  dtype_name(out.dtype()), " tensors"));
}

// ---- bias + GELU + dropout (Backend::bias_gelu) ---------------------------------------------
//
// A thread owns the 8 elements of one Philox block (dropout's rule), so the mask is drawn once
// per 8 elements; with 16-byte aligned tensors it moves them as 16-byte words (load_vec8).
// Every step is rounded to T as add, gelu and dropout round it: the fused op gives their bits
// (intermediates through round_trip, the stored values through round8).
__device__ __forceinline__ int count8(int64_t i0, int64_t n) { return n - i0 < 8 ? (int)(n - i0) : 8; }

// z = x + bias (bias of type B, rounded to T first), rounded to T.
template <typename T, typename B>
__device__ __forceinline__ T biased(T x, const B* bias, int64_t col) {
  const T b = from_compute<T>((Compute<T>)to_compute(bias[col]));
  return from_compute<T>(to_compute(x) + to_compute(b));
}

// The bias of the 8 elements starting at column col, each rounded to T as biased() rounds it.
// ROW8 (rows of a multiple of 8 elements): the 8 share a row, their bias is 8 consecutive
// values read as 16-byte words, and col comes from a 32-bit remainder once per 8 elements.
template <typename T, typename B>
__device__ __forceinline__ Vec8<T> bias8(const B* bias, int64_t col) {
  const Vec8<B> b = load_vec8(bias + col, 1, 8);
  Vec8<T> r;
#pragma unroll
  for (int c = 0; c < 8; ++c) r.v[c] = from_compute<T>((Compute<T>)to_compute(b.v[c]));
  return r;
}

template <bool ROW8>
__device__ __forceinline__ int64_t first_col(int64_t blk, int64_t cols) {
  if constexpr (ROW8) return (int64_t)((uint32_t)blk % (uint32_t)(cols / 8)) * 8;
  else return blk * 8 % cols;
}

template <typename T, typename B, bool TANH, bool ROW8>
__global__ void bias_gelu_kernel(const T* __restrict__ x, const B* __restrict__ bias, T* __restrict__ out,
                                 int64_t n, int64_t cols, PhiloxState s, uint32_t threshold, Compute<T> scale,
                                 bool dropout) {
  using C = Compute<T>;
  constexpr UnaryOp kGelu = TANH ? UnaryOp::GeluTanh : UnaryOp::GeluErf;
  const uint64_t start = dropout ? philox_start(s) : 0;
  for (int64_t blk = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; blk < (n + 7) / 8;
       blk += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i0 = blk * 8;
    const std::array<uint32_t, 4> r = dropout ? dropout_philox(start + (uint64_t)blk, s.seed) : std::array<uint32_t, 4>{};
    Vec8<T> v = load_vec8(x + i0, 1, count8(i0, n));
    int64_t col = first_col<ROW8>(blk, cols);
    Vec8<T> bb;
    if constexpr (ROW8) bb = bias8<T>(bias, col);
    C y[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const C z = ROW8 ? round_trip<T>(to_compute(v.v[c]) + to_compute(bb.v[c])) : to_compute(biased(v.v[c], bias, col));
      y[c] = unary_fn<kGelu, C>(z, C(0), C(0));
      if (dropout) y[c] = dropout_keeps(r, c, threshold) ? round_trip<T>(y[c]) * scale : C(0);
      if constexpr (!ROW8) col = col + 1 == cols ? 0 : col + 1;
    }
    store_vec8(out + i0, round8<T>(y), count8(i0, n));
  }
}

template <typename T, typename B, bool TANH, bool ROW8>
__global__ void bias_gelu_backward_kernel(const T* __restrict__ g, const T* __restrict__ x, const B* __restrict__ bias,
                                          T* __restrict__ grad_x, int64_t n, int64_t cols, PhiloxState s,
                                          uint32_t threshold, Compute<T> scale, bool dropout) {
  using C = Compute<T>;
  constexpr BinaryOp kGeluGrad = TANH ? BinaryOp::GeluTanhBackward : BinaryOp::GeluErfBackward;
  const uint64_t start = dropout ? philox_start(s) : 0;
  for (int64_t blk = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; blk < (n + 7) / 8;
       blk += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i0 = blk * 8;
    const std::array<uint32_t, 4> r = dropout ? dropout_philox(start + (uint64_t)blk, s.seed) : std::array<uint32_t, 4>{};
    const Vec8<T> xv = load_vec8(x + i0, 1, count8(i0, n));
    Vec8<T> gv = load_vec8(g + i0, 1, count8(i0, n));
    int64_t col = first_col<ROW8>(blk, cols);
    Vec8<T> bb;
    if constexpr (ROW8) bb = bias8<T>(bias, col);
    C gz[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const C d = !dropout ? to_compute(gv.v[c])
                  : dropout_keeps(r, c, threshold) ? round_trip<T>(to_compute(gv.v[c]) * scale) : C(0);
      const C z = ROW8 ? round_trip<T>(to_compute(xv.v[c]) + to_compute(bb.v[c])) : to_compute(biased(xv.v[c], bias, col));
      gz[c] = binary_fn<kGeluGrad, C>(d, z, C(0), C(0));
      if constexpr (!ROW8) col = col + 1 == cols ? 0 : col + 1;
    }
    store_vec8(grad_x + i0, round8<T>(gz), count8(i0, n));
  }
}

// Calls f(T{}, B{}, tanh constant, row8 constant) for x's dtype and the bias's (float32 bias
// with bfloat16 x); row8: rows of a multiple of 8 elements, at most 2^32 groups of 8.
template <typename F>
void dispatch_bias_gelu(const Tensor& x, const Tensor& bias, bool tanh, F&& f) {
  const bool row8 = bias.numel() % 8 == 0 && (x.numel() + 7) / 8 <= (int64_t)UINT32_MAX;
  dispatch_floating_bf16(x.dtype(), "bias_gelu", [&](auto zero) {
    using T = decltype(zero);
    auto with_bias = [&](auto bzero) {
      auto with_tanh = [&](auto tc) {
        if (row8) f(zero, bzero, tc, std::true_type{});
        else f(zero, bzero, tc, std::false_type{});
      };
      if (tanh) with_tanh(std::true_type{});
      else with_tanh(std::false_type{});
    };
    if constexpr (std::is_same_v<T, bf16>) {
      if (bias.dtype() == kFloat32) return with_bias(float{});
    }
    with_bias(zero);
  });
}

}  // namespace

void CudaBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  dispatch_floating_bf16(out.dtype(), "unary", [&](auto zero) {
    unary_typed<decltype(zero)>(op, x, out, p0, p1);
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out,
                         double p0, double p1) {
  if (out.dtype() == kBool) {  // a comparison of a and b (of a's dtype) into bool
    dispatch_all(a.dtype(), "comparison", [&](auto zero) {
      using T = decltype(zero);
      auto run = [&](auto fn) { for_each_element<3>({out, a, b}, fn); };
      bool* o = dptr<bool>(out);
      const T *x = dptr<const T>(a), *y = dptr<const T>(b);
      switch (op) {
        case BinaryOp::Eq: return run(CompareFn<BinaryOp::Eq, T>{o, x, y});
        case BinaryOp::Ne: return run(CompareFn<BinaryOp::Ne, T>{o, x, y});
        case BinaryOp::Lt: return run(CompareFn<BinaryOp::Lt, T>{o, x, y});
        case BinaryOp::Le: return run(CompareFn<BinaryOp::Le, T>{o, x, y});
        case BinaryOp::Gt: return run(CompareFn<BinaryOp::Gt, T>{o, x, y});
        case BinaryOp::Ge: return run(CompareFn<BinaryOp::Ge, T>{o, x, y});
        default: throw Error(str("binary op ", static_cast<int>(op), " has no bool output (comparisons only)"));
      }
    });
    return;
  }
  switch (out.dtype()) {
    case DType::Int32: return int_binary_typed<int32_t>(op, a, b, out);
    case DType::Int64: return int_binary_typed<int64_t>(op, a, b, out);
    default: break;
  }
  dispatch_floating_bf16(out.dtype(), "binary", [&](auto zero) {
    binary_typed<decltype(zero)>(op, a, b, out, p0, p1);
  });
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_storage(out.dtype(), "where", [&](auto zero) {
    using T = decltype(zero);
    dispatch_storage(cond.dtype(), "where", [&](auto czero) {
      using C = decltype(czero);
      for_each_element<4>({out, cond, a, b},
                          WhereFn<T, C>{dptr<T>(out), dptr<C>(cond), dptr<T>(a), dptr<T>(b)});
    });
  });
}


void CudaBackend::bias_gelu(const Tensor& x, const Tensor& bias, const Tensor& out, bool tanh, PhiloxState s,
                            double p) {
  const int64_t n = x.numel(), cols = bias.numel();
  if (n == 0) return;
  dispatch_bias_gelu(x, bias, tanh, [&](auto zero, auto bzero, auto tc, auto row8) {
    using T = decltype(zero);
    using B = decltype(bzero);
    bias_gelu_kernel<T, B, decltype(tc)::value, decltype(row8)::value><<<blocks_for((n + 7) / 8), kThreads, 0, stream()>>>(
        dptr<const T>(x), dptr<const B>(bias), dptr<T>(out), n, cols, s, dropout_threshold(p),
        (Compute<T>)(p > 0 ? 1.0 / (1.0 - p) : 1.0), p > 0);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::bias_gelu_backward(const Tensor& g, const Tensor& x, const Tensor& bias, const Tensor& grad_x,
                                     bool tanh, PhiloxState s, double p) {
  const int64_t n = x.numel(), cols = bias.numel();
  if (n == 0) return;
  dispatch_bias_gelu(x, bias, tanh, [&](auto zero, auto bzero, auto tc, auto row8) {
    using T = decltype(zero);
    using B = decltype(bzero);
    bias_gelu_backward_kernel<T, B, decltype(tc)::value, decltype(row8)::value><<<blocks_for((n + 7) / 8), kThreads, 0, stream()>>>(
        dptr<const T>(g), dptr<const T>(x), dptr<const B>(bias), dptr<T>(grad_x), n, cols, s, dropout_threshold(p),
        (Compute<T>)(p > 0 ? 1.0 / (1.0 - p) : 1.0), p > 0);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace wavspa::cuda

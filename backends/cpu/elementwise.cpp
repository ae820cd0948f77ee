// Elementwise kernels: unary, binary (inputs pre-broadcast by the op) and where.
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1 / sqrt(2 pi)
constexpr double kGeluCubic = 0.044715;

// Contiguous float32 rows of the hot ops go to these vectorised versions (vmath.h).
using VecUnary = void (*)(const float*, float*, int64_t);
using VecBinary = void (*)(const float*, const float*, float*, int64_t);

template <typename T, typename F>
void map1(const Tensor& x, const Tensor& out, F f, VecUnary vec = nullptr) {
  T* o = static_cast<T*>(out.raw_data());
  const T* a = static_cast<const T*>(x.raw_data());
  StridedLoop<2>({out, x}).run([&](const int64_t* off, int64_t n, const int64_t* st) {
    T* po = o + off[0];
    const T* pa = a + off[1];
    if (st[0] == 1 && st[1] == 1) {
      if constexpr (std::is_same_v<T, float>) {
        if (vec) return vec(pa, po, n);
      }
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[0]] = f(pa[i * st[1]]);
    }
  });
}

// O: the output's type (T, or bool for comparisons).
template <typename T, typename F, typename O = T>
void map2(const Tensor& x, const Tensor& y, const Tensor& out, F f, VecBinary vec = nullptr) {
  O* o = static_cast<O*>(out.raw_data());
  const T* a = static_cast<const T*>(x.raw_data());
  const T* b = static_cast<const T*>(y.raw_data());
  StridedLoop<3>({out, x, y}).run([&](const int64_t* off, int64_t n, const int64_t* st) {
    O* po = o + off[0];
    const T* pa = a + off[1];
    const T* pb = b + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      if constexpr (std::is_same_v<T, float> && std::is_same_v<O, float>) {
        if (vec) return vec(pa, pb, po, n);
      }
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {  // tensor op scalar-like
      const T vb = pb[0];
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], vb);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[0]] = f(pa[i * st[1]], pb[i * st[2]]);
    }
  });
}

// map2 into a bool output.
template <typename T, typename F>
void compare2(const Tensor& x, const Tensor& y, const Tensor& out, F f) {
  map2<T, F, bool>(x, y, out, f);
}

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  const T a = static_cast<T>(p0), b = static_cast<T>(p1);
  switch (op) {
    case UnaryOp::Neg: return map1<T>(x, out, [](T v) { return -v; });
    case UnaryOp::Abs: return map1<T>(x, out, [](T v) { return std::abs(v); });
    case UnaryOp::Sign: return map1<T>(x, out, [](T v) { return T((v > 0) - (v < 0)); });
    case UnaryOp::Exp:
      return map1<T>(x, out, [](T v) {
        if constexpr (std::is_same_v<T, float>) return vmath::exp1(v);  // the vector loop's bits
        else return std::exp(v);
      }, vmath::exp);
    case UnaryOp::Log: return map1<T>(x, out, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt: return map1<T>(x, out, [](T v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return map1<T>(x, out, [](T v) { return T(1) / std::sqrt(v); });
    case UnaryOp::Sin: return map1<T>(x, out, [](T v) { return std::sin(v); });
    case UnaryOp::Cos: return map1<T>(x, out, [](T v) { return std::cos(v); });
    case UnaryOp::Tanh: return map1<T>(x, out, [](T v) { return std::tanh(v); }, vmath::tanh);
    case UnaryOp::Sigmoid:
      return map1<T>(x, out, [](T v) { return sigmoid(v); }, vmath::sigmoid);
    case UnaryOp::Relu: return map1<T>(x, out, [](T v) { return v > 0 ? v : T(0); });
    case UnaryOp::GeluErf:
      return map1<T>(x, out, [](T v) {
        if constexpr (std::is_same_v<T, float>) return vmath::gelu_erf1(v);  // the vector loop's bits
        else return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2)));
      }, vmath::gelu_erf);
    case UnaryOp::GeluTanh:
      return map1<T>(x, out, [](T v) {
        T inner = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
        return T(0.5) * v * (T(1) + std::tanh(inner));
      }, vmath::gelu_tanh);
    case UnaryOp::Silu: return map1<T>(x, out, [](T v) { return v * sigmoid(v); }, vmath::silu);
    case UnaryOp::Elu:
      return map1<T>(x, out, [a](T v) { return v > 0 ? v : a * std::expm1(v); });
    case UnaryOp::Softplus:
      return map1<T>(x, out, [a, b](T v) {
        return a * v > b ? v : std::log1p(std::exp(a * v)) / a;
      });
    case UnaryOp::PowScalar: return map1<T>(x, out, [a](T v) { return std::pow(v, a); });
  }
}

template <typename T>
T nan_max(T x, T y) {
  if (std::isnan(x) || std::isnan(y)) return std::isnan(x) ? x : y;
  return x > y ? x : y;
}
template <typename T>
T nan_min(T x, T y) {
  if (std::isnan(x) || std::isnan(y)) return std::isnan(x) ? x : y;
  return x < y ? x : y;
}

template <typename T>
void binary_typed(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out, double p0,
                  double p1) {
  const T a = static_cast<T>(p0), b = static_cast<T>(p1);
  switch (op) {
    case BinaryOp::Add: return map2<T>(x, y, out, [](T u, T v) { return u + v; });
    case BinaryOp::Sub: return map2<T>(x, y, out, [](T u, T v) { return u - v; });
    case BinaryOp::Mul: return map2<T>(x, y, out, [](T u, T v) { return u * v; });
    case BinaryOp::Div: return map2<T>(x, y, out, [](T u, T v) { return u / v; });
    case BinaryOp::Pow: return map2<T>(x, y, out, [](T u, T v) { return std::pow(u, v); });
    case BinaryOp::Maximum: return map2<T>(x, y, out, [](T u, T v) { return nan_max(u, v); });
    case BinaryOp::Minimum: return map2<T>(x, y, out, [](T u, T v) { return nan_min(u, v); });
    case BinaryOp::ReluBackward:
      return map2<T>(x, y, out, [](T g, T v) { return v > 0 ? g : T(0); });
    case BinaryOp::GeluErfBackward:
      return map2<T>(x, y, out, [](T g, T v) {
        if constexpr (std::is_same_v<T, float>) {
          return vmath::gelu_erf_backward1(g, v);  // the vector loop's bits
        } else {
          T cdf = T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2)));
          T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
          return g * (cdf + v * pdf);
        }
      }, vmath::gelu_erf_backward);
    case BinaryOp::GeluTanhBackward:
      return map2<T>(x, y, out, [](T g, T v) {
        T inner = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
        T t = std::tanh(inner);
        T dinner = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * v * v);
        return g * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * dinner);
      }, vmath::gelu_tanh_backward);
    case BinaryOp::SiluBackward:
      return map2<T>(x, y, out, [](T g, T v) {
        T s = sigmoid(v);
        return g * s * (T(1) + v * (T(1) - s));
      });
    case BinaryOp::EluBackward:
      return map2<T>(x, y, out, [a](T g, T v) { return v > 0 ? g : g * a * std::exp(v); });
    case BinaryOp::SoftplusBackward:
      return map2<T>(x, y, out, [a, b](T g, T v) { return a * v > b ? g : g * sigmoid(a * v); });
    case BinaryOp::SigmoidBackward:
      return map2<T>(x, y, out, [](T g, T s) { return g * s * (T(1) - s); });
    case BinaryOp::TanhBackward:
      return map2<T>(x, y, out, [](T g, T t) { return g * (T(1) - t * t); });
    case BinaryOp::Eq:
    case BinaryOp::Ne:
    case BinaryOp::Lt:
    case BinaryOp::Le:
    case BinaryOp::Gt:
    case BinaryOp::Ge:
      throw Error("binary: a comparison writes a bool output (CpuBackend::binary's first branch)");
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  visit_floating(out.dtype(), "unary", [&](auto zero) {
    unary_typed<decltype(zero)>(op, x, out, p0, p1);
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out,
                        double p0, double p1) {
  if (out.dtype() == kBool) {  // a comparison of a and b (of a's dtype) into bool
    visit_dtype(a.dtype(), "comparison", [&](auto zero) {
      using T = decltype(zero);
      switch (op) {
        case BinaryOp::Eq: return compare2<T>(a, b, out, [](T u, T v) { return u == v; });
        case BinaryOp::Ne: return compare2<T>(a, b, out, [](T u, T v) { return u != v; });
        case BinaryOp::Lt: return compare2<T>(a, b, out, [](T u, T v) { return u < v; });
        case BinaryOp::Le: return compare2<T>(a, b, out, [](T u, T v) { return u <= v; });
        case BinaryOp::Gt: return compare2<T>(a, b, out, [](T u, T v) { return u > v; });
        case BinaryOp::Ge: return compare2<T>(a, b, out, [](T u, T v) { return u >= v; });
        default:
          throw Error(str("binary op ", static_cast<int>(op), " has no bool output (comparisons only)"));
      }
    });
    return;
  }
  if (!is_floating(out.dtype())) {  // integer tensors: + - *, max and min
    visit_dtype(out.dtype(), "binary", [&](auto zero) {
      using T = decltype(zero);
      switch (op) {
        case BinaryOp::Add: return map2<T>(a, b, out, [](T u, T v) { return u + v; });
        case BinaryOp::Sub: return map2<T>(a, b, out, [](T u, T v) { return u - v; });
        case BinaryOp::Mul: return map2<T>(a, b, out, [](T u, T v) { return u * v; });
        case BinaryOp::Maximum: return map2<T>(a, b, out, [](T u, T v) { return u > v ? u : v; });
        case BinaryOp::Minimum: return map2<T>(a, b, out, [](T u, T v) { return u < v ? u : v; });
        default:
          throw Error(str("binary op ", static_cast<int>(op), " is not defined for ",
                          dtype_name(out.dtype()), " tensors"));
      }
    });
    return;
  }
  visit_floating(out.dtype(), "binary", [&](auto zero) {
    binary_typed<decltype(zero)>(op, a, b, out, p0, p1);
  });
}

// A selection, not arithmetic: any dtype, bool and bfloat16 included, for values and condition.
void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  visit_storage_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    visit_storage_dtype(cond.dtype(), [&](auto czero) {
      using C = decltype(czero);
      T* o = static_cast<T*>(out.raw_data());
      const C* c = static_cast<const C*>(cond.raw_data());
      const T* pa = static_cast<const T*>(a.raw_data());
      const T* pb = static_cast<const T*>(b.raw_data());
      StridedLoop<4>({out, cond, a, b}).run([&](const int64_t* off, int64_t n, const int64_t* st) {
        for (int64_t i = 0; i < n; ++i)
          o[off[0] + i * st[0]] = static_cast<bool>(c[off[1] + i * st[1]]) ? pa[off[2] + i * st[2]]
                                                                           : pb[off[3] + i * st[3]];
      });
    });
  });
}

}  // namespace wavspa::cpu

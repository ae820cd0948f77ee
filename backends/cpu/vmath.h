// Vectorised float32 math for the hot elementwise kernels: 8 lanes of AVX2 with SLEEF's
// 1-ULP exp / erf / tanh (libsleef, a Debian package), a scalar libm tail for the rest.
// The build targets x86-64-v3, so AVX2 and FMA are always there.
//
// Each function works on contiguous arrays; the strided cases stay on the scalar loops.
#pragma once

#include <immintrin.h>
#include <sleef.h>

#include <cmath>
#include <cstdint>

namespace wavspa::cpu::vmath {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;

// Applies vec(__m256) -> __m256 to full lanes and scalar(float) -> float to the tail.
template <typename Vec, typename Scalar>
inline void map(const float* x, float* y, int64_t n, Vec vec, Scalar scalar) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, vec(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = scalar(x[i]);
}

template <typename Vec, typename Scalar>
inline void map2(const float* a, const float* b, float* y, int64_t n, Vec vec, Scalar scalar) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, vec(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = scalar(a[i], b[i]);
}

inline __m256 set1(float v) { return _mm256_set1_ps(v); }

// x * Phi(x), Phi the standard normal CDF.
inline void gelu_erf(const float* x, float* y, int64_t n) {
  map(x, y, n,
      [](__m256 v) {
        __m256 cdf = _mm256_mul_ps(set1(0.5f), _mm256_add_ps(set1(1.f),
                                   Sleef_erff8_u10avx2(_mm256_mul_ps(v, set1(kInvSqrt2)))));
        return _mm256_mul_ps(v, cdf);
      },
      [](float v) { return 0.5f * v * (1.f + std::erf(v * kInvSqrt2)); });
}

// g * (Phi(x) + x phi(x))
inline void gelu_erf_backward(const float* g, const float* x, float* y, int64_t n) {
  map2(g, x, y, n,
       [](__m256 gv, __m256 v) {
         __m256 cdf = _mm256_mul_ps(set1(0.5f), _mm256_add_ps(set1(1.f),
                                    Sleef_erff8_u10avx2(_mm256_mul_ps(v, set1(kInvSqrt2)))));
         __m256 pdf = _mm256_mul_ps(set1(kInvSqrt2Pi),
                                    Sleef_expf8_u10avx2(_mm256_mul_ps(set1(-0.5f), _mm256_mul_ps(v, v))));
         return _mm256_mul_ps(gv, _mm256_fmadd_ps(v, pdf, cdf));
       },
       [](float gv, float v) {
         float cdf = 0.5f * (1.f + std::erf(v * kInvSqrt2));
         float pdf = kInvSqrt2Pi * std::exp(-0.5f * v * v);
         return gv * (cdf + v * pdf);
       });
}

inline __m256 gelu_tanh_inner(__m256 v) {  // sqrt(2/pi) (x + 0.044715 x^3)
  __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
  return _mm256_mul_ps(set1(kSqrt2OverPi), _mm256_fmadd_ps(set1(kGeluCubic), v3, v));
}

inline void gelu_tanh(const float* x, float* y, int64_t n) {
  map(x, y, n,
      [](__m256 v) {
        __m256 t = Sleef_tanhf8_u10avx2(gelu_tanh_inner(v));
        return _mm256_mul_ps(_mm256_mul_ps(set1(0.5f), v), _mm256_add_ps(set1(1.f), t));
      },
      [](float v) {
        return 0.5f * v * (1.f + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
      });
}

inline void gelu_tanh_backward(const float* g, const float* x, float* y, int64_t n) {
  map2(g, x, y, n,
       [](__m256 gv, __m256 v) {
         __m256 t = Sleef_tanhf8_u10avx2(gelu_tanh_inner(v));
         __m256 dinner = _mm256_mul_ps(set1(kSqrt2OverPi),
                                       _mm256_fmadd_ps(set1(3 * kGeluCubic), _mm256_mul_ps(v, v), set1(1.f)));
         __m256 left = _mm256_mul_ps(set1(0.5f), _mm256_add_ps(set1(1.f), t));
         __m256 sech2 = _mm256_fnmadd_ps(t, t, set1(1.f));
         __m256 right = _mm256_mul_ps(_mm256_mul_ps(set1(0.5f), v), _mm256_mul_ps(sech2, dinner));
         return _mm256_mul_ps(gv, _mm256_add_ps(left, right));
       },
       [](float gv, float v) {
         float t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
         float dinner = kSqrt2OverPi * (1.f + 3 * kGeluCubic * v * v);
         return gv * (0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * dinner);
       });
}

inline void exp(const float* x, float* y, int64_t n) {
  map(x, y, n, [](__m256 v) { return Sleef_expf8_u10avx2(v); }, [](float v) { return std::exp(v); });
}

inline void tanh(const float* x, float* y, int64_t n) {
  map(x, y, n, [](__m256 v) { return Sleef_tanhf8_u10avx2(v); }, [](float v) { return std::tanh(v); });
}

inline __m256 sigmoid8(__m256 v) {
  __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(set1(1.f), _mm256_add_ps(set1(1.f), e));
}

inline void sigmoid(const float* x, float* y, int64_t n) {
  map(x, y, n, sigmoid8, [](float v) { return 1.f / (1.f + std::exp(-v)); });
}

inline void silu(const float* x, float* y, int64_t n) {
  map(x, y, n, [](__m256 v) { return _mm256_mul_ps(v, sigmoid8(v)); },
      [](float v) { return v / (1.f + std::exp(-v)); });
}

// y = exp(x - shift); returns the sum of y in double (the softmax denominator).
inline double exp_shifted_sum(const float* x, float* y, int64_t n, float shift) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  const __m256 s = set1(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(y + i, e);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) {
    y[i] = std::exp(x[i] - shift);
    sum += y[i];
  }
  return sum;
}

}  // namespace wavspa::cpu::vmath

// Vectorised math for the hot CPU kernels, 8 lanes of AVX2: float32 exp and the normal CDF
// of our own (below), SLEEF's tanh (libsleef, a Debian package), and Philox blocks eight at a
// time for the dropout masks. The build targets x86-64-v3, so AVX2 and FMA are always there.
//
// Each function works on contiguous arrays; the strided cases stay on the scalar loops.
#pragma once

#include <immintrin.h>
#include <sleef.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "core/random.h"

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

// e^v, eight lanes: v = n ln 2 + r with |r| <= ln 2 / 2 (Cody-Waite, ln 2 in two parts), e^r =
// 1 + r + r^2 Q(r) with Q of degree 4 (our own weighted least-squares fit; 3.8e-9 relative on
// the interval with its float coefficients), then times 2^(n/2) and 2^(n - n/2), two factors
// so that results down to the smallest subnormal are rounded once. Inputs beyond 88.73 give
// inf, below -104 give 0, NaN gives NaN. tests/backends/cpu/test_cpu_vmath.cpp measures it
// against float64: within 1.013 ulps over every finite float (WAVSPA_GELU_EXHAUSTIVE=1; the
// worst at 59.306), 1.003 on the test's every-61st sample; the test's bound is 1.5. Every
// product that meets a sum is an explicit FMA, so the bits do not depend on where g++
// inlines it.
inline __m256 exp8(__m256 v) {
  constexpr float kQ[] = {4.999998860e-01f, 1.666651846e-01f, 4.166953311e-02f, 8.368916341e-03f,
                          1.375140790e-03f};
  // max(lo, v) and min(hi, v) return v when it is NaN.
  const __m256 x = _mm256_min_ps(_mm256_set1_ps(88.73f), _mm256_max_ps(_mm256_set1_ps(-104.f), v));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 q = _mm256_set1_ps(kQ[4]);
  for (int i = 3; i >= 0; --i) q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(kQ[i]));
  const __m256 p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r), _mm256_set1_ps(1.f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}
inline float exp1(float v) { return _mm256_cvtss_f32(exp8(_mm256_set1_ps(v))); }

// The standard normal CDF Phi(v) and the Gaussian exp(-v^2 / 2), eight lanes, for the
// exact-erf GELU. Phi is computed directly, not as (1 + erf(v / sqrt 2)) / 2, so that the
// far left tail keeps its relative accuracy (1 + erf cancels there). Two pieces, both
// evaluated in every lane and blended:
//   |v| < 1          erf(x) = x P(x^2), x = |v| / sqrt 2 (P: degree 5, fit error 7e-10)
//   |v| >= 1         erfc(a) = exp(-a^2) E(t), a = |v| / sqrt 2, t = 1 / (1 + a / 2)
//                    (E: degree 9 in t, fit error 7.6e-9 with the coefficients rounded to
//                    float, on a in [0.7, 10.1]; the sum of the terms' magnitudes is at most
//                    1.4 times E, so Horner's rounding stays small)
// Phi(|v|) = 1/2 + erf/2 or 1 - erfc/2, Phi(-|v|) = 1/2 - erf/2 or erfc/2. exp(-v^2 / 2) is
// exp(-hi / 2) (1 - lo / 2) with v^2 = hi + lo exactly (an FMA), so the large squares of the
// tail lose nothing to rounding. The coefficients are least-squares fits of our own (weighted
// by 1 / value on 6000 Chebyshev nodes, float64). tests/backends/cpu/test_cpu_vmath.cpp
// measures the error against float64 on every 61st float; with WAVSPA_GELU_EXHAUSTIVE=1 on
// all 4,278,190,080 finite floats, which gave: GELU within 6.98 ulps of the exact value (the
// worst at v = -3.0155), its derivative within 13.48 ulps of the larger of its two terms (the
// worst at v = -13.29, where exp(-v^2 / 2) is below float's smallest normal). The test's
// bounds are 8 and 16.
struct NormalCdf8 {
  __m256 cdf;
  __m256 gauss;      // exp(-v^2 / 2)
  __m256 half_e;     // E(t) / 2: in the left tail Phi(v) = half_e * gauss
  __m256 left_tail;  // lanes with v <= -1
};
inline NormalCdf8 normal_cdf8(__m256 v) {
  constexpr float kP[] = {1.128379166e+00f, -3.761262739e-01f, 1.128352550e-01f,
                          -2.684347812e-02f, 5.135571138e-03f, -6.925926575e-04f};
  constexpr float kE[] = {3.726945005e-06f, 2.819800383e-01f, 2.836391411e-01f, 2.348844789e-01f,
                          2.350255663e-01f, -1.067399597e-01f, 4.035428208e-01f, -6.075100777e-01f,
                          3.489203479e-01f, -7.375001774e-02f};
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // |v| capped at 20 (exp(-200) is 0 in float); a NaN lane becomes 20 here and the caller's
  // product with v carries the NaN.
  const __m256 av = _mm256_min_ps(_mm256_and_ps(v, abs_mask), _mm256_set1_ps(20.f));
  const __m256 hi = _mm256_mul_ps(av, av);
  const __m256 lo = _mm256_fmsub_ps(av, av, hi);
  const __m256 gauss = _mm256_mul_ps(exp8(_mm256_mul_ps(_mm256_set1_ps(-0.5f), hi)),
                                     _mm256_fnmadd_ps(_mm256_set1_ps(0.5f), lo, _mm256_set1_ps(1.f)));
  const __m256 x = _mm256_mul_ps(av, _mm256_set1_ps(0.70710678118654752f));
  // Inner piece: erf(x) / 2.
  const __m256 s = _mm256_mul_ps(_mm256_set1_ps(0.5f), hi);
  __m256 p = _mm256_set1_ps(kP[5]);
  for (int i = 4; i >= 0; --i) p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(kP[i]));
  const __m256 half_x = _mm256_mul_ps(_mm256_set1_ps(0.5f), x);  // erf(x) / 2 = half_x * p
  // Tail piece: erfc(a) / 2.
  const __m256 a = _mm256_min_ps(x, _mm256_set1_ps(10.1f));
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), a, _mm256_set1_ps(1.f)));
  __m256 e = _mm256_set1_ps(kE[9]);
  for (int i = 8; i >= 0; --i) e = _mm256_fmadd_ps(e, t, _mm256_set1_ps(kE[i]));
  const __m256 half_gauss = _mm256_mul_ps(_mm256_set1_ps(0.5f), gauss);  // erfc(a) / 2 = half_gauss * e
  const __m256 inner = _mm256_cmp_ps(av, _mm256_set1_ps(1.f), _CMP_LT_OQ);
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f);
  // Every product that meets a sum is an explicit FMA: g++ contracts a separate multiply and
  // add into one where it likes (-ffp-contract=fast is its C++ default), which would make the
  // bits depend on the call site.
  const __m256 upper = _mm256_blendv_ps(_mm256_fnmadd_ps(half_gauss, e, one),
                                        _mm256_fmadd_ps(half_x, p, half), inner);   // Phi(|v|)
  const __m256 lower = _mm256_blendv_ps(_mm256_mul_ps(half_gauss, e),
                                        _mm256_fnmadd_ps(half_x, p, half), inner);  // Phi(-|v|)
  const __m256 negative = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
  return {_mm256_blendv_ps(upper, lower, negative), gauss, _mm256_mul_ps(half, e),
          _mm256_andnot_ps(inner, negative)};
}

// v Phi(v). In the left tail the product is taken as (v E / 2) exp(-v^2 / 2), so that it
// underflows once, at the end, not in Phi first (Phi(-13) is below float's smallest normal,
// v Phi(v) is not).
inline __m256 gelu_erf8(__m256 v) {
  const NormalCdf8 n = normal_cdf8(v);
  return _mm256_blendv_ps(_mm256_mul_ps(v, n.cdf),
                          _mm256_mul_ps(_mm256_mul_ps(v, n.half_e), n.gauss), n.left_tail);
}

// g * (Phi(v) + v phi(v)), phi(v) = exp(-v^2 / 2) / sqrt(2 pi)
inline __m256 gelu_erf_backward8(__m256 g, __m256 v) {
  const NormalCdf8 n = normal_cdf8(v);
  const __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(0.39894228040143268f), n.gauss);
  return _mm256_mul_ps(g, _mm256_fmadd_ps(v, pdf, n.cdf));
}

// One value through the eight-lane code, so that a strided tensor and the tail of a
// contiguous one get the bits of the vector loop.
inline float gelu_erf1(float v) { return _mm256_cvtss_f32(gelu_erf8(_mm256_set1_ps(v))); }
inline float gelu_erf_backward1(float g, float v) {
  return _mm256_cvtss_f32(gelu_erf_backward8(_mm256_set1_ps(g), _mm256_set1_ps(v)));
}

// x * Phi(x), Phi the standard normal CDF.
inline void gelu_erf(const float* x, float* y, int64_t n) { map(x, y, n, gelu_erf8, gelu_erf1); }

// g * (Phi(x) + x phi(x))
inline void gelu_erf_backward(const float* g, const float* x, float* y, int64_t n) {
  map2(g, x, y, n, gelu_erf_backward8, gelu_erf_backward1);
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
  map(x, y, n, exp8, exp1);
}

inline void tanh(const float* x, float* y, int64_t n) {
  map(x, y, n, [](__m256 v) { return Sleef_tanhf8_u10avx2(v); }, [](float v) { return std::tanh(v); });
}

inline __m256 sigmoid8(__m256 v) {
  __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(set1(1.f), _mm256_add_ps(set1(1.f), e));
}

inline void sigmoid(const float* x, float* y, int64_t n) {
  map(x, y, n, sigmoid8, [](float v) { return _mm256_cvtss_f32(sigmoid8(_mm256_set1_ps(v))); });
}

inline void silu(const float* x, float* y, int64_t n) {
  map(x, y, n, [](__m256 v) { return _mm256_mul_ps(v, sigmoid8(v)); },
      [](float v) { return v * _mm256_cvtss_f32(sigmoid8(_mm256_set1_ps(v))); });
}

// y = exp(x - shift); returns the sum of y in double (the softmax denominator).
inline double exp_shifted_sum(const float* x, float* y, int64_t n, float shift) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  const __m256 s = set1(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(y + i, e);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) {
    y[i] = exp1(x[i] - shift);
    sum += y[i];
  }
  return sum;
}

// The low and high 32 bits of the eight products m * a (each 32 x 32 -> 64 bits).
inline void mul_wide(__m256i a, __m256i m, __m256i& lo, __m256i& hi) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1, 3, 5, 7
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Philox 4x32 with `Rounds` rounds for blocks counter, counter + 1, ..., counter + 7 of key
// `key` (subsequence 0), one block per lane: out[w][l] = word w of block counter + l, the bits
// philox4x32_rounds<Rounds>(counter + l, 0, key) gives (core/random.h).
// philox8 returns the four words as vectors; philox4x32_8 stores them.
template <int Rounds>
inline void philox8(uint64_t counter, uint64_t key, __m256i& c0, __m256i& c1, __m256i& c2, __m256i& c3) {
  // Lane l's counter is counter + l: the low words, and a carry into the high word where the
  // low word wrapped (an unsigned lo + l < lo, compared as signed after flipping the sign bits).
  const __m256i base_lo = _mm256_set1_epi32((int)(uint32_t)counter);
  c0 = _mm256_add_epi32(base_lo, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i sign = _mm256_set1_epi32(INT32_MIN);
  const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(base_lo, sign), _mm256_xor_si256(c0, sign));
  c1 = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(counter >> 32)), wrapped);  // -(-1) = +1
  c2 = _mm256_setzero_si256();
  c3 = _mm256_setzero_si256();
  __m256i k0 = _mm256_set1_epi32((int)(uint32_t)key), k1 = _mm256_set1_epi32((int)(uint32_t)(key >> 32));
  const __m256i m0 = _mm256_set1_epi32((int)kPhiloxMul0), m1 = _mm256_set1_epi32((int)kPhiloxMul1);
  const __m256i w0 = _mm256_set1_epi32((int)kPhiloxWeyl0), w1 = _mm256_set1_epi32((int)kPhiloxWeyl1);
  for (int round = 0; round < Rounds; ++round) {
    __m256i lo0, hi0, lo1, hi1;
    mul_wide(c0, m0, lo0, hi0);
    mul_wide(c2, m1, lo1, hi1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), k0);
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), k1);
    c1 = lo1;
    c3 = lo0;
    k0 = _mm256_add_epi32(k0, w0);
    k1 = _mm256_add_epi32(k1, w1);
  }
}

template <int Rounds>
inline void philox4x32_8(uint64_t counter, uint64_t key, uint32_t out[4][8]) {
  __m256i c0, c1, c2, c3;
  philox8<Rounds>(counter, key, c0, c1, c2, c3);
  _mm256_storeu_si256((__m256i*)out[0], c0);
  _mm256_storeu_si256((__m256i*)out[1], c1);
  _mm256_storeu_si256((__m256i*)out[2], c2);
  _mm256_storeu_si256((__m256i*)out[3], c3);
}

// The 64 dropout draws of Philox 4x32-7 blocks counter .. counter + 7 (key `key`), in order:
// draw 8 l + e is the 16 bits (e % 2 = 0: low half) of word e / 2 of block counter + l, as
// dropout_keeps and attention_dropout_keep read them (backends/backend.h). keep[q] lane t is
// all ones where draw 8 q + t is >= threshold (a threshold of 65536 keeps nothing), else 0.
inline void dropout_keep64(uint64_t counter, uint64_t key, uint32_t threshold, __m256 keep[8]) {
  __m256i c0, c1, c2, c3;
  philox8<kDropoutPhiloxRounds>(counter, key, c0, c1, c2, c3);
  // Transpose the four words of eight blocks into block order: each 128-bit quarter of the
  // result is one block's words w0 .. w3, that is its eight 16-bit draws in order.
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // blocks 0|4, 1|5
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // blocks 2|6, 3|7
  const __m256i draws[4] = {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u2, u3, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31), _mm256_permute2x128_si256(u2, u3, 0x31)};
  // bits >= threshold, unsigned 16-bit: max(bits, threshold) == bits.
  const __m256i thr = _mm256_set1_epi16((short)(uint16_t)std::min<uint32_t>(threshold, 0xffffu));
  const __m256i none = _mm256_set1_epi32(threshold > 0xffffu ? 0 : -1);
  for (int q = 0; q < 4; ++q) {
    const __m256i k = _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_max_epu16(draws[q], thr), draws[q]), none);
    keep[2 * q] = _mm256_castsi256_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(k)));
    keep[2 * q + 1] = _mm256_castsi256_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(k, 1)));
  }
}

// z[e] = kept where dropout_keep64 keeps draw e, else 0, for e < 64.
inline void dropout_factors64(uint64_t counter, uint64_t key, uint32_t threshold, float kept, float* z) {
  __m256 keep[8];
  dropout_keep64(counter, key, threshold, keep);
  for (int q = 0; q < 8; ++q) _mm256_storeu_ps(z + 8 * q, _mm256_and_ps(keep[q], set1(kept)));
}

}  // namespace wavspa::cpu::vmath

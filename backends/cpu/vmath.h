// Vectorised math for the hot CPU kernels, 8 lanes of AVX2: float32 exp and the normal CDF
// of our own (their polynomials are in vmath_poly.h), SLEEF's tanh (libsleef, a Debian
// package), and Philox blocks eight at a time for the dropout masks. The build targets
// x86-64-v3, so AVX2 and FMA are always there; exp, exp_shifted_sum and the exact-erf GELU
// run 16 lanes of AVX-512 instead where isa() (isa.h) says so, with the same bits.
//
// Each function works on contiguous arrays; the strided cases stay on the scalar loops.
#pragma once

#include <immintrin.h>
#include <sleef.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "backends/cpu/isa.h"
#include "backends/cpu/vmath_poly.h"
#include "core/random.h"

namespace wavspa::cpu::vmath {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;

// The AVX-512 versions (vmath_avx512.cpp): each handles the leading multiple of 16 elements
// and returns how many it did; the AVX2 code below does the rest. Call them only where
// isa() is kAvx512.
namespace avx512 {
int64_t exp(const float* x, float* y, int64_t n);
int64_t gelu_erf(const float* x, float* y, int64_t n);
int64_t gelu_erf_backward(const float* g, const float* x, float* y, int64_t n);
// Also adds the exponentials to acc[0..7] in exp_shifted_sum's order.
int64_t exp_shifted_sum(const float* x, float* y, int64_t n, float shift, double acc[8]);
// dropout_factors64 (below) of blocks counter .. counter + 15: z[0, 128), 16 blocks a vector.
void dropout_factors128(uint64_t counter, uint64_t key, uint32_t threshold, float kept, float* z);
}  // namespace avx512
inline bool use_avx512() { return isa() == Isa::kAvx512; }

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

// The eight-lane instances of vmath_poly.h's templates.
inline __m256 exp8(__m256 v) { return exp_v<simd::Avx2>(v); }
inline float exp1(float v) { return _mm256_cvtss_f32(exp8(_mm256_set1_ps(v))); }

inline __m256 gelu_erf8(__m256 v) { return gelu_erf_v<simd::Avx2>(v); }
inline __m256 gelu_erf_backward8(__m256 g, __m256 v) { return gelu_erf_backward_v<simd::Avx2>(g, v); }

// One value through the eight-lane code, so that a strided tensor and the tail of a
// contiguous one get the bits of the vector loop.
inline float gelu_erf1(float v) { return _mm256_cvtss_f32(gelu_erf8(_mm256_set1_ps(v))); }
inline float gelu_erf_backward1(float g, float v) {
  return _mm256_cvtss_f32(gelu_erf_backward8(_mm256_set1_ps(g), _mm256_set1_ps(v)));
}

// x * Phi(x), Phi the standard normal CDF.
inline void gelu_erf(const float* x, float* y, int64_t n) {
  const int64_t done = use_avx512() ? avx512::gelu_erf(x, y, n) : 0;
  map(x + done, y + done, n - done, gelu_erf8, gelu_erf1);
}

// g * (Phi(x) + x phi(x))
inline void gelu_erf_backward(const float* g, const float* x, float* y, int64_t n) {
  const int64_t done = use_avx512() ? avx512::gelu_erf_backward(g, x, y, n) : 0;
  map2(g + done, x + done, y + done, n - done, gelu_erf_backward8, gelu_erf_backward1);
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
  const int64_t done = use_avx512() ? avx512::exp(x, y, n) : 0;
  map(x + done, y + done, n - done, exp8, exp1);
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

// dst[c * ldd + r] = src[r * lds + c] for r, c in [0, 8).
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);  // r_i0 r_(i+1)0 r_i1 r_(i+1)1 | lanes 4, 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));  // column 0 (and 4) of 4 rows
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// The largest of init and x[0, n), skipping NaNs in x (as `m = std::max(m, x[i])` does in a
// loop): the running maximum is the second operand of vmaxps, which returns that operand
// where either is NaN. A maximum is exact, so eight lanes give the loop's result.
inline float max_or(const float* x, int64_t n, float init) {
  __m256 m = set1(init);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = init;
  for (float v : lanes) r = std::max(r, v);
  for (; i < n; ++i) r = std::max(r, x[i]);
  return r;
}

// y = exp(x - shift); returns the sum of y in double (the softmax denominator).
// The sum runs in two four-lane double accumulators, elements 8 b + 0..3 into the first and
// 8 b + 4..7 into the second, block b by block; the AVX-512 path keeps that order.
inline double exp_shifted_sum(const float* x, float* y, int64_t n, float shift) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  const __m256 s = set1(shift);
  int64_t i = 0;
  if (use_avx512()) {
    alignas(32) double acc[8] = {};
    i = avx512::exp_shifted_sum(x, y, n, shift, acc);
    acc0 = _mm256_load_pd(acc);
    acc1 = _mm256_load_pd(acc + 4);
  }
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

// The AVX-512 path of vmath.h and tile_gemm.h: vmath_poly.h's and tile_gemm_kernel.h's
// templates instantiated for 16 lanes, and dropout's Philox draws 16 blocks at a time. This
// is the only file compiled with AVX-512 enabled (the Makefile adds -mavx512f -mavx512dq
// -mavx512bw -mavx512vl for it alone), and nothing here runs unless isa() chose AVX-512, so
// the rest of the library stays x86-64-v3 code. (g++ 12 miscompiled a std::vector
// initializer list when the whole build targeted x86-64-v4; keeping AVX-512 to these loops
// keeps that out.) It calls no inline function of another header: that copy, compiled here,
// could be the one the linker keeps for everyone.
// g++ 12's own avx512fintrin.h trips -Wmaybe-uninitialized and -Wuninitialized on the
// _mm512_undefined_* source operands of unmasked intrinsics (GCC bug 105593); the warnings
// are about the header, not us.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/tile_gemm_kernel.h"
#include "backends/cpu/vmath_poly.h"
#include "core/random.h"

#ifndef __AVX512F__
#error "vmath_avx512.cpp must be compiled with AVX-512 enabled (see the Makefile)"
#endif

namespace wavspa::cpu::vmath::avx512 {

using S = simd::Avx512;

int64_t exp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) S::store(y + i, exp_v<S>(S::load(x + i)));
  return i;
}

int64_t gelu_erf(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) S::store(y + i, gelu_erf_v<S>(S::load(x + i)));
  return i;
}

int64_t gelu_erf_backward(const float* g, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) S::store(y + i, gelu_erf_backward_v<S>(S::load(g + i), S::load(x + i)));
  return i;
}

int64_t exp_shifted_sum(const float* x, float* y, int64_t n, float shift, double acc[8]) {
  __m256d acc0 = _mm256_loadu_pd(acc), acc1 = _mm256_loadu_pd(acc + 4);
  const __m512 s = S::set1(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_v<S>(S::sub(S::load(x + i), s));
    S::store(y + i, e);
    // elements i..i+7, then i+8..i+15, as the eight-lane loop adds them
    const __m256 first = _mm512_castps512_ps256(e);
    const __m256 second = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1));
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(first)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(first, 1)));
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(second)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(second, 1)));
  }
  _mm256_storeu_pd(acc, acc0);
  _mm256_storeu_pd(acc + 4, acc1);
  return i;
}

// Philox 4x32 with `Rounds` rounds for blocks counter .. counter + 15 of key `key`, one block
// per lane, as vmath::philox8 computes eight (core/random.h's philox4x32_rounds).
template <int Rounds>
void philox16(uint64_t counter, uint64_t key, __m512i& c0, __m512i& c1, __m512i& c2, __m512i& c3) {
  const __m512i base_lo = _mm512_set1_epi32((int)(uint32_t)counter);
  c0 = _mm512_add_epi32(base_lo, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __mmask16 wrapped = _mm512_cmplt_epu32_mask(c0, base_lo);  // the low word wrapped: carry
  const __m512i hi = _mm512_set1_epi32((int)(uint32_t)(counter >> 32));
  c1 = _mm512_mask_add_epi32(hi, wrapped, hi, _mm512_set1_epi32(1));
  c2 = _mm512_setzero_si512();
  c3 = _mm512_setzero_si512();
  __m512i k0 = _mm512_set1_epi32((int)(uint32_t)key), k1 = _mm512_set1_epi32((int)(uint32_t)(key >> 32));
  const __m512i m0 = _mm512_set1_epi32((int)kPhiloxMul0), m1 = _mm512_set1_epi32((int)kPhiloxMul1);
  const __m512i w0 = _mm512_set1_epi32((int)kPhiloxWeyl0), w1 = _mm512_set1_epi32((int)kPhiloxWeyl1);
  // The 64-bit products of 32-bit lanes: even lanes directly, odd lanes shifted down first.
  auto mul_wide = [](__m512i a, __m512i m, __m512i& lo, __m512i& hi) {
    const __m512i even = _mm512_mul_epu32(a, m);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  };
  for (int round = 0; round < Rounds; ++round) {
    __m512i lo0, hi0, lo1, hi1;
    mul_wide(c0, m0, lo0, hi0);
    mul_wide(c2, m1, lo1, hi1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), k0);
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), k1);
    c1 = lo1;
    c3 = lo0;
    k0 = _mm512_add_epi32(k0, w0);
    k1 = _mm512_add_epi32(k1, w1);
  }
}

void dropout_factors128(uint64_t counter, uint64_t key, uint32_t threshold, float kept, float* z) {
  __m512i w[4];
  philox16<kDropoutPhiloxRounds>(counter, key, w[0], w[1], w[2], w[3]);
  const __m256i thr = _mm256_set1_epi16((short)(uint16_t)(threshold < 0xffffu ? threshold : 0xffffu));
  const __mmask16 none = threshold > 0xffffu ? 0 : 0xffff;
  const __m512 value = _mm512_set1_ps(kept);
  for (int half = 0; half < 2; ++half) {  // blocks 8 half .. 8 half + 7
    __m256i c[4];
    for (int q = 0; q < 4; ++q)  // (the extract's lane must be a constant even at -O1)
      c[q] = half == 0 ? _mm512_castsi512_si256(w[q]) : _mm512_extracti64x4_epi64(w[q], 1);
    // Each 128-bit quarter of draws[q] becomes one block's words w0 .. w3, its eight 16-bit
    // draws in order (vmath::dropout_keep64's transposition).
    const __m256i t0 = _mm256_unpacklo_epi32(c[0], c[1]), t1 = _mm256_unpackhi_epi32(c[0], c[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(c[2], c[3]), t3 = _mm256_unpackhi_epi32(c[2], c[3]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i draws[4] = {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u2, u3, 0x20),
                              _mm256_permute2x128_si256(u0, u1, 0x31), _mm256_permute2x128_si256(u2, u3, 0x31)};
    for (int q = 0; q < 4; ++q) {
      const __mmask16 keep = _mm256_cmpge_epu16_mask(draws[q], thr) & none;
      _mm512_storeu_ps(z + 64 * half + 16 * q, _mm512_maskz_mov_ps(keep, value));
    }
  }
}

}  // namespace wavspa::cpu::vmath::avx512

namespace wavspa::cpu::avx512 {

void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
               const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  tile_detail::tile_gemm_with<simd::Avx512>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, accumulate);
}

}  // namespace wavspa::cpu::avx512

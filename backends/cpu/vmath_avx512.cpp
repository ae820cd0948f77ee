// The AVX-512 path of vmath.h and tile_gemm.h: vmath_poly.h's and tile_gemm_kernel.h's
// templates instantiated for 16 lanes. This is the only file compiled with AVX-512 enabled
// (the Makefile adds -mavx512f -mavx512dq -mavx512bw -mavx512vl for it alone), and nothing
// here runs unless isa() chose AVX-512, so the rest of the library stays x86-64-v3 code. (g++ 12 miscompiled a std::vector initializer list when
// the whole build targeted x86-64-v4; keeping AVX-512 to these loops keeps that out.)
// g++ 12's own avx512fintrin.h trips -Wmaybe-uninitialized on the _mm512_undefined_* source
// operands of unmasked intrinsics (GCC bug 105593); the warning is about the header, not us.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/tile_gemm_kernel.h"
#include "backends/cpu/vmath_poly.h"

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

}  // namespace wavspa::cpu::vmath::avx512

namespace wavspa::cpu::avx512 {

void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
               const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  tile_detail::tile_gemm_with<simd::Avx512>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, accumulate);
}

}  // namespace wavspa::cpu::avx512

// Packs of float32 lanes, one struct per instruction set, so that the polynomial math of
// vmath.h is written once and compiled both for 8 lanes (AVX2, every build: the library
// targets x86-64-v3) and for 16 (AVX-512, only in vmath_avx512.cpp, the one file compiled
// with AVX-512 enabled; isa.h chooses at run time which one runs).
//
// Each operation maps to one instruction that rounds as its AVX2 counterpart does, lane by
// lane, so a function written against this interface gives the same bits on either set.
// Comparisons give a mask; select(m, a, b) is m ? a : b per lane.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace wavspa::cpu::simd {

struct Avx2 {
  static constexpr int kLanes = 8;
  using V = __m256;
  using I = __m256i;
  using M = __m256;  // all-ones lanes where true

  static V set1(float v) { return _mm256_set1_ps(v); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  // min and max return b where either is NaN, as the instructions do.
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }    // a b + c
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  static V fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }    // a b - c
  static V abs(V a) { return _mm256_and_ps(a, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }
  static V round_nearest(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(V a) { return _mm256_cvtps_epi32(a); }  // an integral value's int
  static I half_int(I n) { return _mm256_srai_epi32(n, 1); }
  static I sub_int(I a, I b) { return _mm256_sub_epi32(a, b); }
  // 2^n for n in [-126, 127], by building the exponent field
  static V pow2(I n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
  }
  static M less(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M and_not(M a, M b) { return _mm256_andnot_ps(a, b); }  // !a && b
  static V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  // Lanes [0, n) of memory, n in [0, kLanes]: masked loads read no other lane (nor fault on
  // it) and give 0 there; masked stores write no other lane.
  using L = __m256i;
  static L first_lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static L all_lanes() { return _mm256_set1_epi32(-1); }
  static V load(const float* p, L m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, L m, V v) { _mm256_maskstore_ps(p, m, v); }
  static V zero() { return _mm256_setzero_ps(); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
};

#ifdef __AVX512F__
struct Avx512 {
  static constexpr int kLanes = 16;
  using V = __m512;
  using I = __m512i;
  using M = __mmask16;

  static V set1(float v) { return _mm512_set1_ps(v); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }
  static V abs(V a) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff))); }
  static V round_nearest(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(V a) { return _mm512_cvtps_epi32(a); }
  static I half_int(I n) { return _mm512_srai_epi32(n, 1); }
  static I sub_int(I a, I b) { return _mm512_sub_epi32(a, b); }
  static V pow2(I n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
  }
  static M less(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M and_not(M a, M b) { return (M)(~a & b); }
  static V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
  using L = __mmask16;
  static L first_lanes(int64_t n) { return (L)((1u << n) - 1); }
  static L all_lanes() { return (L)0xffff; }
  static V load(const float* p, L m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, L m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V zero() { return _mm512_setzero_ps(); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
};
#endif

}  // namespace wavspa::cpu::simd

// Small float32 products for the tiles of attention (backends/cpu/attention.cpp), without
// OpenBLAS's packing. A tile's products are 64 x 128 x d or so: there OpenBLAS spent about as
// long copying its operands into packed panels as multiplying them, and a call cost a few
// microseconds more in setup. Here A is read where it lies, through a row and a column stride
// (so A or its transpose), and B row by row: every operand of the tiles is already in a form
// this reads well (K and V are transposed once per head where a product needs K^T or V^T).
//
//   // c (m x n) = alpha a b, a's element (i, k) at a[i * a_row + k * a_col], b (k x n) rows ldb
//   tile_gemm(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, /*accumulate=*/false);
//
// The kernel holds a block of 4 rows x 16 columns of c in eight AVX2 registers; for each k it
// broadcasts the 4 elements of a's column and multiplies two 8-wide vectors of b's row k into
// them. Each element of c is one chain of fused multiply-adds over k in order, starting from c
// itself when accumulating (c += a b) and from 0 otherwise (then scaled by alpha), so its bits
// do not depend on where it sits in a block or on m and n.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace wavspa::cpu {
namespace tile_detail {

// Lanes [0, n) of an 8-lane mask, n in [0, 8].
inline __m256i first_lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

// Rows [i, i + R) x columns [j, j + 16) of c; with Masked, only the lanes of m0 and m1.
template <int R, bool Masked>
inline void block(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate, __m256i m0,
                  __m256i m1) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) {
    if (accumulate) {
      acc[r][0] = Masked ? _mm256_maskload_ps(c + r * ldc, m0) : _mm256_loadu_ps(c + r * ldc);
      acc[r][1] = Masked ? _mm256_maskload_ps(c + r * ldc + 8, m1) : _mm256_loadu_ps(c + r * ldc + 8);
    } else {
      acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    }
  }
  for (int64_t t = 0; t < k; ++t) {
    const float* bt = b + t * ldb;
    const __m256 b0 = Masked ? _mm256_maskload_ps(bt, m0) : _mm256_loadu_ps(bt);
    const __m256 b1 = Masked ? _mm256_maskload_ps(bt + 8, m1) : _mm256_loadu_ps(bt + 8);
    const float* at = a + t * a_col;
    for (int r = 0; r < R; ++r) {
      const __m256 ar = _mm256_broadcast_ss(at + r * a_row);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
  const __m256 scale = _mm256_set1_ps(alpha);
  for (int r = 0; r < R; ++r) {
    __m256 v0 = acc[r][0], v1 = acc[r][1];
    if (!accumulate) {
      v0 = _mm256_mul_ps(v0, scale);
      v1 = _mm256_mul_ps(v1, scale);
    }
    if (Masked) {
      _mm256_maskstore_ps(c + r * ldc, m0, v0);
      _mm256_maskstore_ps(c + r * ldc + 8, m1, v1);
    } else {
      _mm256_storeu_ps(c + r * ldc, v0);
      _mm256_storeu_ps(c + r * ldc + 8, v1);
    }
  }
}

template <bool Masked>
inline void rows(int64_t m, int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                 int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate, __m256i m0,
                 __m256i m1) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4)
    block<4, Masked>(k, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, alpha, accumulate, m0, m1);
  const float* ai = a + i * a_row;
  float* ci = c + i * ldc;
  switch (m - i) {
    case 3: block<3, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    case 2: block<2, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    case 1: block<1, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    default: break;
  }
}

}  // namespace tile_detail

// c = alpha a b (accumulate false) or c += a b (accumulate true; alpha is then 1), where a
// is m x k with element (i, t) at a[i * a_row + t * a_col], b is k x n row-major with leading
// dimension ldb, and c is m x n row-major with leading dimension ldc. k = 0 gives c = 0 (or
// leaves c as it is).
inline void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
                      const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  const __m256i all = _mm256_set1_epi32(-1);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    tile_detail::rows<false>(m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, alpha, accumulate, all, all);
  if (j < n) {
    const int64_t left = n - j;
    tile_detail::rows<true>(m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, alpha, accumulate,
                            tile_detail::first_lanes(left < 8 ? left : 8),
                            tile_detail::first_lanes(left > 8 ? left - 8 : 0));
  }
}

}  // namespace wavspa::cpu

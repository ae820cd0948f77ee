// The kernel of tile_gemm.h, written once over a pack of float32 lanes (simd.h) and compiled
// for AVX2 (8 lanes, in tile_gemm.h) and for AVX-512 (16 lanes, in vmath_avx512.cpp, the one
// file built with AVX-512). Templates only: a non-template inline function here would be
// compiled with AVX-512 in that file, and the linker could pick that copy for the whole
// program.
//
// A block of R <= 4 rows x 2 vectors of c lives in registers; for each k it broadcasts R
// elements of a's column and multiplies two vectors of b's row k into them. Each element of c
// is one chain of fused multiply-adds over k in order, from c (accumulate) or from 0 (then
// times alpha): the same chain in every block, edge and instruction set, so the bits depend
// on none of them.
#pragma once

#include <cstdint>

#include "backends/cpu/simd.h"

namespace wavspa::cpu::tile_detail {

// Rows [0, R) x 2 vectors of columns of c; with Masked, only the lanes of m0 and m1.
template <class S, int R, bool Masked>
inline void block(int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate,
                  typename S::L m0, typename S::L m1) {
  using V = typename S::V;
  constexpr int W = S::kLanes;
  V acc[R][2];
  for (int r = 0; r < R; ++r) {
    if (accumulate) {
      acc[r][0] = Masked ? S::load(c + r * ldc, m0) : S::load(c + r * ldc);
      acc[r][1] = Masked ? S::load(c + r * ldc + W, m1) : S::load(c + r * ldc + W);
    } else {
      acc[r][0] = acc[r][1] = S::zero();
    }
  }
  for (int64_t t = 0; t < k; ++t) {
    const float* bt = b + t * ldb;
    const V b0 = Masked ? S::load(bt, m0) : S::load(bt);
    const V b1 = Masked ? S::load(bt + W, m1) : S::load(bt + W);
    const float* at = a + t * a_col;
    for (int r = 0; r < R; ++r) {
      const V ar = S::broadcast(at + r * a_row);
      acc[r][0] = S::fmadd(ar, b0, acc[r][0]);
      acc[r][1] = S::fmadd(ar, b1, acc[r][1]);
    }
  }
  const V scale = S::set1(alpha);
  for (int r = 0; r < R; ++r) {
    V v0 = acc[r][0], v1 = acc[r][1];
    if (!accumulate) {
      v0 = S::mul(v0, scale);
      v1 = S::mul(v1, scale);
    }
    if (Masked) {
      S::store(c + r * ldc, m0, v0);
      S::store(c + r * ldc + W, m1, v1);
    } else {
      S::store(c + r * ldc, v0);
      S::store(c + r * ldc + W, v1);
    }
  }
}

template <class S, bool Masked>
inline void rows(int64_t m, int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b,
                 int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate, typename S::L m0,
                 typename S::L m1) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4)
    block<S, 4, Masked>(k, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc, alpha, accumulate, m0, m1);
  const float* ai = a + i * a_row;
  float* ci = c + i * ldc;
  switch (m - i) {
    case 3: block<S, 3, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    case 2: block<S, 2, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    case 1: block<S, 1, Masked>(k, ai, a_row, a_col, b, ldb, ci, ldc, alpha, accumulate, m0, m1); break;
    default: break;
  }
}

// tile_gemm (tile_gemm.h) on S's lanes: column blocks of 2 S::kLanes, the last one masked.
template <class S>
void tile_gemm_with(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
                    const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  constexpr int64_t W = S::kLanes;
  int64_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W)
    rows<S, false>(m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, alpha, accumulate, S::all_lanes(),
                   S::all_lanes());
  if (j < n) {
    const int64_t left = n - j;
    rows<S, true>(m, k, a, a_row, a_col, b + j, ldb, c + j, ldc, alpha, accumulate,
                  S::first_lanes(left < W ? left : W), S::first_lanes(left > W ? left - W : 0));
  }
}

}  // namespace wavspa::cpu::tile_detail

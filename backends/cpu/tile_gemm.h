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
// The kernel (tile_gemm_kernel.h) keeps 4 rows x 2 vectors of c in registers: 4 x 16 outputs
// on AVX2, 4 x 32 on AVX-512 where isa() chose it. Every output is the same chain of fused
// multiply-adds on both, so the bits do not depend on the instruction set.
#pragma once

#include <cstdint>

#include "backends/cpu/isa.h"
#include "backends/cpu/tile_gemm_kernel.h"

namespace wavspa::cpu {

namespace avx512 {
// tile_gemm on 16 lanes (vmath_avx512.cpp); call it only where isa() is kAvx512.
void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
               const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate);
}  // namespace avx512

// c = alpha a b (accumulate false) or c += a b (accumulate true; alpha is then 1), where a
// is m x k with element (i, t) at a[i * a_row + t * a_col], b is k x n row-major with leading
// dimension ldb, and c is m x n row-major with leading dimension ldc. k = 0 gives c = 0 (or
// leaves c as it is).
inline void tile_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
                      const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  if (isa() == Isa::kAvx512)
    avx512::tile_gemm(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, accumulate);
  else
    tile_detail::tile_gemm_with<simd::Avx2>(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, accumulate);
}

}  // namespace wavspa::cpu

// Dropout's elements by groups of 64: group g is elements [64 g, 64 g + 64), eight Philox
// 4x32-7 blocks of 8 lanes from counter offset + 8 g (dropout_keeps, backends/backend.h). The
// dropout kernels of random.cpp run groups on the pool; the fused residual + layer norm of
// norm.cpp runs a row block's groups itself, between the add and the norm.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

#include "backends/backend.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {

// out[i] = keep ? x[i] / (1 - p) : 0, plus base[i] where base is not null (the product rounded
// first, as add(base, dropout(x)) rounds it), for the elements of groups [g_begin, g_end) of
// an n-element tensor (the last group may be partial). p < 1; one thread.
template <typename T>
void dropout_groups(const T* x, const T* base, T* out, int64_t n, PhiloxState s, double p, int64_t g_begin,
                    int64_t g_end) {
  const T scale = (T)(1.0 / (1.0 - p));
  const uint32_t threshold = dropout_threshold(p);
  for (int64_t g = g_begin; g < g_end; ++g) {
    const int64_t i0 = g * 64, len = std::min<int64_t>(64, n - i0);
    if constexpr (std::is_same_v<T, float>) {
      __m256 keep[8];
      vmath::dropout_keep64(s.offset + (uint64_t)(g * 8), s.seed, threshold, keep);
      // The last, partial group goes through the same vector code on padded copies.
      float x64[64] = {}, b64[64] = {}, o64[64];
      const float* xs = x + i0;
      const float* bs = base ? base + i0 : nullptr;
      float* os = out + i0;
      if (len < 64) {
        std::copy(xs, xs + len, x64);
        if (bs) std::copy(bs, bs + len, b64);
        xs = x64;
        bs = bs ? b64 : nullptr;
        os = o64;
      }
      for (int q = 0; q < 8; ++q) {
        __m256 v = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(xs + 8 * q), _mm256_set1_ps(scale)), keep[q]);
        if (bs) v = _mm256_add_ps(_mm256_loadu_ps(bs + 8 * q), v);
        _mm256_storeu_ps(os + 8 * q, v);
      }
      if (len < 64) std::copy(o64, o64 + len, out + i0);
    } else {
      uint32_t r[4][8];
      vmath::philox4x32_8<kDropoutPhiloxRounds>(s.offset + (uint64_t)(g * 8), s.seed, r);
      // The product is masked bitwise, as the float vectors are: g++ contracts a product and
      // an add into an FMA in C++ (-ffp-contract=fast), even across a select; not across this.
      static_assert(sizeof(T) == sizeof(uint64_t));
      for (int64_t e = 0; e < len; ++e) {
        const int u = (int)(e / 8), l = (int)(e % 8);
        const std::array<uint32_t, 4> bits{r[0][u], r[1][u], r[2][u], r[3][u]};
        const uint64_t keep = dropout_keeps(bits, l, threshold) ? ~uint64_t{0} : 0;
        const T v = std::bit_cast<T>(std::bit_cast<uint64_t>(x[i0 + e] * scale) & keep);
        out[i0 + e] = base ? base[i0 + e] + v : v;
      }
    }
  }
}

}  // namespace wavspa::cpu

// backends/cpu/tile_gemm.h, the attention tiles' float32 product: every output is one chain
// of fused multiply-adds over k in order (from c when accumulating, from 0 otherwise, then
// times alpha), whatever its place in the register blocks and the masked edges, on AVX2 and,
// where the CPU has it, on AVX-512.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/cpu/tile_gemm.h"

namespace {

struct Case {
  int64_t m, n, k;
  bool transposed;  // a stored k x m (a_row 1, a_col m + 3)
  bool accumulate;
};

// Runs the check on the instruction set chosen now; returns the number of shapes checked.
int64_t check_tile_gemm() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<Case> cases;
  for (int64_t m : {1, 2, 3, 4, 5, 7, 64})
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 48, 128})
      for (int64_t k : {0, 1, 5, 32})
        for (bool t : {false, true})
          for (bool acc : {false, true}) cases.push_back({m, n, k, t, acc});
  int64_t checked = 0;
  for (const Case& cs : cases) {
    CAPTURE(cs.m);
    CAPTURE(cs.n);
    CAPTURE(cs.k);
    CAPTURE(cs.transposed);
    CAPTURE(cs.accumulate);
    // Leading dimensions above the row lengths, so strides are exercised, and a guard band
    // after c that must stay untouched.
    const int64_t a_row = cs.transposed ? 1 : cs.k + 2, a_col = cs.transposed ? cs.m + 3 : 1;
    const int64_t ldb = cs.n + 5, ldc = cs.n + 4, guard = 64;
    std::vector<float> a((cs.transposed ? cs.k * a_col : cs.m * a_row) + 1), b(cs.k * ldb + 1),
        c(cs.m * ldc + guard);
    for (float& x : a) x = normal(rng);
    for (float& x : b) x = normal(rng);
    for (float& x : c) x = normal(rng);
    const std::vector<float> c0 = c;
    const float alpha = cs.accumulate ? 1.0f : 0.3535f;
    wavspa::cpu::tile_gemm(cs.m, cs.n, cs.k, a.data(), a_row, a_col, b.data(), ldb, c.data(), ldc,
                           alpha, cs.accumulate);
    int64_t wrong = 0;
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        float want = c0[i * ldc + j];  // columns past n are left alone
        if (j < cs.n) {
          float s = cs.accumulate ? want : 0.0f;
          for (int64_t t = 0; t < cs.k; ++t) s = std::fma(a[i * a_row + t * a_col], b[t * ldb + j], s);
          want = cs.accumulate ? s : s * alpha;
        }
        wrong += std::memcmp(&want, &c[i * ldc + j], sizeof(float)) != 0;
      }
    for (int64_t g = cs.m * ldc; g < (int64_t)c.size(); ++g) wrong += c[g] != c0[g];
    CHECK(wrong == 0);
    ++checked;
  }
  return checked;
}

struct IsaGuard {
  wavspa::cpu::Isa saved = wavspa::cpu::isa();
  ~IsaGuard() { wavspa::cpu::set_isa(saved); }
};

}  // namespace

TEST_CASE("tile_gemm: each output is the fused multiply-add chain over k, for every block and edge (AVX2)") {
  IsaGuard guard;
  wavspa::cpu::set_isa(wavspa::cpu::Isa::kAvx2);
  CHECK(check_tile_gemm() == 1456);
}

TEST_CASE("tile_gemm: each output is the fused multiply-add chain over k, for every block and edge (AVX-512)" *
          doctest::skip(!wavspa::cpu::cpu_has_avx512())) {
  IsaGuard guard;
  wavspa::cpu::set_isa(wavspa::cpu::Isa::kAvx512);
  CHECK(check_tile_gemm() == 1456);
}

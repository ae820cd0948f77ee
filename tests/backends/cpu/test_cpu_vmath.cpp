// The CPU's exp and exact-erf GELU (backends/cpu/vmath.h) against a float64 reference over the
// float32 range, and their bits through the ops on contiguous and strided tensors.
//
// The sweep takes every 61st bit pattern of the finite floats by default (70 million inputs,
// both signs, a couple of seconds); WAVSPA_GELU_EXHAUSTIVE=1 takes every one of them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/vmath.h"
#include "tests/helpers.h"
#include "wavspa.h"

namespace {

using namespace wavspa;

// Error of `got` against `want` in units of the float spacing at `want` (the spacing of the
// smallest normal below it, so that subnormal results are measured absolutely).
double spacing(double want) {
  const double a = std::max(std::fabs(want), (double)std::numeric_limits<float>::min());
  return std::ldexp(1.0, std::ilogb(a) - 23);
}
double ulps(float got, double want) { return std::fabs((double)got - want) / spacing(want); }

double gelu_ref(double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }
double cdf_ref(double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); }
double v_pdf_ref(double v) { return v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI); }

struct Worst {
  double ulps = 0;
  float at = 0;
};

}  // namespace

TEST_CASE("cpu vmath: exact-erf GELU within 8 ulps and its derivative within 16 of float64 on every sampled float") {
  const char* env = std::getenv("WAVSPA_GELU_EXHAUSTIVE");
  const uint32_t step = env != nullptr && std::string(env) == "1" ? 1 : 61;
  constexpr int kBatch = 4096;
  Worst fwd, bwd;
  int64_t checked = 0, nonfinite = 0;
  std::vector<float> x(kBatch), y(kBatch), g(kBatch, 1.f), dy(kBatch);
  // Both signs: bit patterns 0 .. 0x7f7fffff (the largest finite float) and their negatives.
  for (uint32_t sign = 0; sign < 2; ++sign) {
    uint64_t bits = 0;
    while (bits <= 0x7f7fffffu) {
      int n = 0;
      for (; n < kBatch && bits <= 0x7f7fffffu; ++n, bits += step) {
        const uint32_t b = (uint32_t)bits | (sign << 31);
        std::memcpy(&x[n], &b, 4);
      }
      cpu::vmath::gelu_erf(x.data(), y.data(), n);
      cpu::vmath::gelu_erf_backward(g.data(), x.data(), dy.data(), n);
      for (int i = 0; i < n; ++i) {
        const double v = x[i];
        const double f = gelu_ref(v), d = cdf_ref(v) + v_pdf_ref(v);
        if (!std::isfinite(y[i]) || !std::isfinite(dy[i])) {
          // Only where the true value overflows float: GELU of a huge positive input.
          ++nonfinite;
          CHECK_MESSAGE(std::fabs(f) > std::numeric_limits<float>::max(), "gelu(", x[i], ") = ", y[i]);
          continue;
        }
        // The derivative Phi(v) + v phi(v) is a sum with a zero near v = -0.75: its error is
        // counted in units of the larger term, the scale a float computation of the sum has.
        const double scale = std::max(std::fabs(cdf_ref(v)), std::fabs(v_pdf_ref(v)));
        const double ef = ulps(y[i], f), ed = std::fabs((double)dy[i] - d) / spacing(scale);
        if (ef > fwd.ulps) fwd = {ef, x[i]};
        if (ed > bwd.ulps) bwd = {ed, x[i]};
      }
      checked += n;
    }
  }
  MESSAGE("gelu_erf over ", checked, " floats (every ", step, "th): forward ", fwd.ulps, " ulps at ",
          fwd.at, ", derivative ", bwd.ulps, " ulps at ", bwd.at, "; ", nonfinite, " overflowed");
  // Measured on every float (WAVSPA_GELU_EXHAUSTIVE=1) and on this sample: see vmath.h.
  CHECK(fwd.ulps <= 8);
  CHECK(bwd.ulps <= 16);
  CHECK(nonfinite == 0);
}

TEST_CASE("cpu vmath: exact-erf GELU gives the same bits contiguous, strided and in a vector tail") {
  // 21 values: two full vectors and a tail of 5, around both pieces' boundary (|v| = 1), the
  // far tails, zeros of both signs, infinities and NaN.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {-20.f, -13.5f, -9.f, -5.5f, -1.0000001f, -1.f, -0.99999994f, -0.3f, -0.f, 0.f,
                          1e-30f, 0.5f, 0.99999994f, 1.f, 1.0000001f, 3.f, 6.f, 40.f, -inf, inf, NAN};
  Tensor x = from_vector(v, {(int64_t)v.size()});
  Tensor y = gelu(x);
  // The same values as a strided column of a (21, 2) tensor.
  Tensor wide = stack({x, x}, 1);
  Tensor ys = gelu(wide.select(1, 0));
  REQUIRE(!wide.select(1, 0).is_contiguous());
  const std::vector<float> a = y.to_vector<float>(), b = ys.contiguous().to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("v = ", v[i]);
    CHECK(std::memcmp(&a[i], &b[i], 4) == 0);
    CHECK(std::memcmp(&a[i], &b[i], 4) == 0);
    const float one = cpu::vmath::gelu_erf1(v[i]);
    CHECK(std::memcmp(&a[i], &one, 4) == 0);
  }
  CHECK(a[19] == inf);
  CHECK(std::isnan(a[18]));  // -inf * Phi(-inf) = -inf * 0, as the formula gives
  CHECK(std::isnan(a[20]));
  CHECK(std::signbit(a[8]));
  CHECK(a[0] <= 0.f);
  CHECK(a[0] > -1e-30f);
}

TEST_CASE("cpu vmath: exp is within 1.5 ulps of float64 on every sampled float, and overflows and underflows as expf") {
  const char* env = std::getenv("WAVSPA_GELU_EXHAUSTIVE");
  const uint32_t step = env != nullptr && std::string(env) == "1" ? 1 : 61;
  constexpr int kBatch = 4096;
  Worst worst;
  int64_t checked = 0, overflowed = 0, not_inf = 0;
  std::vector<float> x(kBatch), y(kBatch);
  for (uint32_t sign = 0; sign < 2; ++sign) {
    uint64_t bits = 0;
    while (bits <= 0x7f7fffffu) {
      int n = 0;
      for (; n < kBatch && bits <= 0x7f7fffffu; ++n, bits += step) {
        const uint32_t b = (uint32_t)bits | (sign << 31);
        std::memcpy(&x[n], &b, 4);
      }
      cpu::vmath::exp(x.data(), y.data(), n);
      for (int i = 0; i < n; ++i) {
        const double want = std::exp((double)x[i]);
        if (want > std::numeric_limits<float>::max()) {  // must give inf, as expf does
          ++overflowed;
          if (!std::isinf(y[i])) ++not_inf;
          continue;
        }
        const double e = ulps(y[i], want);
        if (e > worst.ulps) worst = {e, x[i]};
      }
      checked += n;
    }
  }
  MESSAGE("exp over ", checked, " floats (every ", step, "th): ", worst.ulps, " ulps at ", worst.at,
          "; ", overflowed, " overflow");
  CHECK(worst.ulps <= 1.5);
  CHECK(overflowed > 0);
  CHECK(not_inf == 0);  // 1.003 measured: not always faithfully rounded
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(cpu::vmath::exp1(inf) == inf);
  CHECK(cpu::vmath::exp1(-inf) == 0.f);
  CHECK(std::isnan(cpu::vmath::exp1(NAN)));
  CHECK(cpu::vmath::exp1(0.f) == 1.f);
  // Through the op: a strided column and a tail of 3 get the vector loop's bits.
  std::vector<float> v = {-103.f, -87.5f, -20.f, -1.f, -1e-8f, 0.5f, 1.f, 10.f, 88.f, 88.7f, 3.25f};
  Tensor t = from_vector(v, {(int64_t)v.size()});
  const std::vector<float> a = exp(t).to_vector<float>();
  const std::vector<float> b = exp(stack({t, t}, 1).select(1, 0)).contiguous().to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("v = ", v[i]);
    CHECK(std::memcmp(&a[i], &b[i], 4) == 0);
    const float one = cpu::vmath::exp1(v[i]);
    CHECK(std::memcmp(&a[i], &one, 4) == 0);
  }
}

TEST_CASE("cpu vmath: eight Philox blocks at once are philox4x32_rounds' bits, across a carry into the high word") {
  const uint64_t keys[] = {0, 29, 0x123456789abcdef0ull, ~0ull};
  const uint64_t counters[] = {0, 1, 0xfffffffcull, 0x7ffffffffffffffaull, ~0ull - 3};
  int lanes = 0;
  for (uint64_t key : keys)
    for (uint64_t c : counters) {
      uint32_t r7[4][8], r10[4][8];
      cpu::vmath::philox4x32_8<7>(c, key, r7);
      cpu::vmath::philox4x32_8<10>(c, key, r10);
      for (int l = 0; l < 8; ++l) {
        const auto w7 = philox4x32_rounds<7>(c + l, 0, key), w10 = philox4x32_rounds<10>(c + l, 0, key);
        for (int w = 0; w < 4; ++w) {
          INFO("key ", key, " counter ", c + l, " word ", w);
          CHECK(r7[w][l] == w7[w]);
          CHECK(r10[w][l] == w10[w]);
        }
        ++lanes;
      }
    }
  CHECK(lanes == 4 * 5 * 8);
}

TEST_CASE("cpu vmath: dropout_factors64 keeps exactly the draws dropout_keeps keeps, at every threshold kind") {
  const uint64_t counters[] = {0, 41, 0xfffffffdull};
  const uint32_t thresholds[] = {0, 1, 6554, 32768, 65535, 65536};
  for (uint64_t c : counters)
    for (uint32_t thr : thresholds) {
      float z[64];
      cpu::vmath::dropout_factors64(c, 29, thr, 1.25f, z);
      int kept = 0;
      for (int e = 0; e < 64; ++e) {
        const bool want = thr <= 0xffffu && dropout_keeps(dropout_philox(c + e / 8, 29), e % 8, thr);
        INFO("counter ", c, " threshold ", thr, " draw ", e);
        CHECK(z[e] == (want ? 1.25f : 0.f));
        kept += want;
      }
      if (thr == 0) CHECK(kept == 64);
      if (thr == 65536) CHECK(kept == 0);
    }
}

TEST_CASE("cpu vmath: the AVX-512 dropout_factors128 keeps exactly the draws dropout_keeps keeps" *
          doctest::skip(!cpu::cpu_has_avx512())) {
  // 16 Philox blocks at once; counters whose low word wraps inside the 16 (a carry into the
  // high word in some lanes only), a high word of its own, and every threshold kind.
  const uint64_t counters[] = {0, 41, 0xfffffff9ull, 0x00000007fffffff5ull};
  const uint32_t thresholds[] = {0, 1, 6554, 32768, 65535, 65536};
  for (uint64_t c : counters)
    for (uint32_t thr : thresholds) {
      float z[128];
      cpu::vmath::avx512::dropout_factors128(c, 0x9e3779b97f4a7c15ull, thr, 1.25f, z);
      int wrong = 0, kept = 0;
      for (int e = 0; e < 128; ++e) {
        const bool want = thr <= 0xffffu && dropout_keeps(dropout_philox(c + e / 8, 0x9e3779b97f4a7c15ull), e % 8, thr);
        wrong += z[e] != (want ? 1.25f : 0.f);
        kept += want;
      }
      INFO("counter ", c, " threshold ", thr);
      CHECK(wrong == 0);
      if (thr == 0) CHECK(kept == 128);
      if (thr == 65536) CHECK(kept == 0);
    }
}

TEST_CASE("cpu vmath: the AVX-512 path gives the AVX2 path's bits: exp, softmax sums, GELU and its derivative" *
          doctest::skip(!cpu::cpu_has_avx512())) {
  // Every 61st bit pattern of both signs (NaNs and infinities included), in batches whose
  // lengths are not multiples of 16, so the AVX-512 loops hand tails to the AVX2 code.
  struct Restore {
    cpu::Isa was = cpu::isa();
    ~Restore() { cpu::set_isa(was); }
  } restore;
  std::vector<float> x;
  for (uint32_t sign = 0; sign < 2; ++sign)
    for (uint64_t bits = 0; bits <= 0xffffffffu >> 1; bits += 61) {
      const uint32_t b = (uint32_t)bits | (sign << 31);
      float v;
      std::memcpy(&v, &b, 4);
      x.push_back(v);
    }
  std::vector<float> g(x.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = x[(i * 7919) % x.size()];
  struct Out {
    std::vector<float> exp, gelu, dgelu, soft;
    std::vector<double> sums;
  };
  auto run = [&](cpu::Isa isa) {
    cpu::set_isa(isa);
    Out o{std::vector<float>(x.size()), std::vector<float>(x.size()), std::vector<float>(x.size()),
          std::vector<float>(x.size()), {}};
    for (size_t i = 0; i < x.size();) {
      const int64_t n = std::min<int64_t>(4093, (int64_t)(x.size() - i));
      cpu::vmath::exp(x.data() + i, o.exp.data() + i, n);
      cpu::vmath::gelu_erf(x.data() + i, o.gelu.data() + i, n);
      cpu::vmath::gelu_erf_backward(g.data() + i, x.data() + i, o.dgelu.data() + i, n);
      i += n;
    }
    // Softmax rows of every length from 1 to 100 over small values (shift 0.5).
    std::vector<float> small(x.size());
    for (size_t i = 0; i < x.size(); ++i) small[i] = std::fmod(g[i], 8.f);
    for (int64_t n = 1, at = 0; n <= 100; at += n, ++n)
      o.sums.push_back(cpu::vmath::exp_shifted_sum(small.data() + at, o.soft.data() + at, n, 0.5f));
    return o;
  };
  const Out a = run(cpu::Isa::kAvx2), b = run(cpu::Isa::kAvx512);
  // A NaN result must be NaN on both paths, but its payload may differ: where both factors
  // of a product are NaN the CPU returns the first one's, and g++ may order the operands of
  // an intrinsic's product differently on each path (or at -O1 and -O3).
  auto differing = [](const std::vector<float>& p, const std::vector<float>& q) {
    int64_t count = 0;
    for (size_t i = 0; i < p.size(); ++i)
      count += std::memcmp(&p[i], &q[i], 4) != 0 && !(std::isnan(p[i]) && std::isnan(q[i]));
    return count;
  };
  MESSAGE(x.size(), " inputs through both paths");
  CHECK(differing(a.exp, b.exp) == 0);
  CHECK(differing(a.gelu, b.gelu) == 0);
  CHECK(differing(a.dgelu, b.dgelu) == 0);
  CHECK(differing(a.soft, b.soft) == 0);
  int64_t sums_differing = 0;
  for (size_t i = 0; i < a.sums.size(); ++i)
    sums_differing += std::memcmp(&a.sums[i], &b.sums[i], 8) != 0 && !(std::isnan(a.sums[i]) && std::isnan(b.sums[i]));
  CHECK(sums_differing == 0);
}

TEST_CASE("cpu vmath: WAVSPA_CPU_ISA and set_isa refuse what the machine cannot run") {
  if (!cpu::cpu_has_avx512()) {
    CHECK_THROWS_WITH_AS(cpu::set_isa(cpu::Isa::kAvx512),
                         doctest::Contains("does not run AVX-512"), wavspa::Error);
  }
  const cpu::Isa was = cpu::isa();
  cpu::set_isa(cpu::Isa::kAvx2);
  CHECK(cpu::isa() == cpu::Isa::kAvx2);
  CHECK(std::string(cpu::isa_name(cpu::isa())) == "avx2");
  cpu::set_isa(was);
  CHECK(cpu::isa() == was);
}

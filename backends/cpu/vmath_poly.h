// The float32 polynomials of the CPU kernels, written once against a pack of lanes
// (simd.h) and instantiated for AVX2 by vmath.h and for AVX-512 by vmath_avx512.cpp. Only
// templates live here: vmath_avx512.cpp is compiled with AVX-512 enabled, and an ordinary
// inline function it compiled could be the copy the linker keeps for the whole program.
#pragma once

#include "backends/cpu/simd.h"

namespace wavspa::cpu::vmath {

// e^v, lane by lane: v = n ln 2 + r with |r| <= ln 2 / 2 (Cody-Waite, ln 2 in two parts), e^r =
// 1 + r + r^2 Q(r) with Q of degree 4 (our own weighted least-squares fit; 3.8e-9 relative on
// the interval with its float coefficients), then times 2^(n/2) and 2^(n - n/2), two factors
// so that results down to the smallest subnormal are rounded once. Inputs beyond 88.73 give
// inf, below -104 give 0, NaN gives NaN. tests/backends/cpu/test_cpu_vmath.cpp measures it
// against float64: within 1.013 ulps over every finite float (WAVSPA_GELU_EXHAUSTIVE=1; the
// worst at 59.306), 1.003 on the test's every-61st sample; the test's bound is 1.5. Every
// product that meets a sum is an explicit FMA, so the bits do not depend on where g++
// inlines it.
template <class S>
inline typename S::V exp_v(typename S::V v) {
  using V = typename S::V;
  using I = typename S::I;
  constexpr float kQ[] = {4.999998860e-01f, 1.666651846e-01f, 4.166953311e-02f, 8.368916341e-03f,
                          1.375140790e-03f};
  // max(lo, v) and min(hi, v) return v when it is NaN.
  const V x = S::min(S::set1(88.73f), S::max(S::set1(-104.f), v));
  const V n = S::round_nearest(S::mul(x, S::set1(1.44269504088896341f)));
  V r = S::fnmadd(n, S::set1(0.693145751953125f), x);
  r = S::fnmadd(n, S::set1(1.428606765330187e-06f), r);
  V q = S::set1(kQ[4]);
  for (int i = 3; i >= 0; --i) q = S::fmadd(q, r, S::set1(kQ[i]));
  const V p = S::add(S::fmadd(S::mul(r, r), q, r), S::set1(1.f));
  const I ni = S::to_int(n);
  const I n1 = S::half_int(ni);
  const I n2 = S::sub_int(ni, n1);
  return S::mul(S::mul(p, S::pow2(n1)), S::pow2(n2));
}

// The standard normal CDF Phi(v) and the Gaussian exp(-v^2 / 2), lane by lane, for the
// exact-erf GELU. Phi is computed directly, not as (1 + erf(v / sqrt 2)) / 2, so that the
// far left tail keeps its relative accuracy (1 + erf cancels there). Two pieces, both
// evaluated in every lane and blended:
//   |v| < 1          erf(x) = x P(x^2), x = |v| / sqrt 2 (P: degree 5, fit error 7e-10)
//   |v| >= 1         erfc(a) = exp(-a^2) E(t), a = |v| / sqrt 2, t = 1 / (1 + a / 2)
//                    (E: degree 9 in t, fit error 7.6e-9 with the coefficients rounded to
//                    float, on a in [0.7, 10.1]; the sum of the terms' magnitudes is at most
//                    1.4 times E, so Horner's rounding stays small)
// Phi(|v|) = 1/2 + erf/2 or 1 - erfc/2, Phi(-|v|) = 1/2 - erf/2 or erfc/2. exp(-v^2 / 2) is
// exp(-hi / 2) (1 - lo / 2) with v^2 = hi + lo exactly (an FMA), so the large squares of the
// tail lose nothing to rounding. The coefficients are least-squares fits of our own (weighted
// by 1 / value on 6000 Chebyshev nodes, float64). tests/backends/cpu/test_cpu_vmath.cpp
// measures the error against float64 on every 61st float; with WAVSPA_GELU_EXHAUSTIVE=1 on
// all 4,278,190,080 finite floats, which gave: GELU within 6.98 ulps of the exact value (the
// worst at v = -3.0155), its derivative within 13.48 ulps of the larger of its two terms (the
// worst at v = -13.29, where exp(-v^2 / 2) is below float's smallest normal). The test's
// bounds are 8 and 16.
template <class S>
struct NormalCdf {
  typename S::V cdf;
  typename S::V gauss;      // exp(-v^2 / 2)
  typename S::V half_e;     // E(t) / 2: in the left tail Phi(v) = half_e * gauss
  typename S::M left_tail;  // lanes with v <= -1
};
template <class S>
inline NormalCdf<S> normal_cdf(typename S::V v) {
  using V = typename S::V;
  using M = typename S::M;
  constexpr float kP[] = {1.128379166e+00f, -3.761262739e-01f, 1.128352550e-01f,
                          -2.684347812e-02f, 5.135571138e-03f, -6.925926575e-04f};
  constexpr float kE[] = {3.726945005e-06f, 2.819800383e-01f, 2.836391411e-01f, 2.348844789e-01f,
                          2.350255663e-01f, -1.067399597e-01f, 4.035428208e-01f, -6.075100777e-01f,
                          3.489203479e-01f, -7.375001774e-02f};
  // |v| capped at 20 (exp(-200) is 0 in float); a NaN lane becomes 20 here and the caller's
  // product with v carries the NaN.
  const V av = S::min(S::abs(v), S::set1(20.f));
  const V hi = S::mul(av, av);
  const V lo = S::fmsub(av, av, hi);
  const V gauss = S::mul(exp_v<S>(S::mul(S::set1(-0.5f), hi)), S::fnmadd(S::set1(0.5f), lo, S::set1(1.f)));
  const V x = S::mul(av, S::set1(0.70710678118654752f));
  // Inner piece: erf(x) / 2.
  const V s = S::mul(S::set1(0.5f), hi);
  V p = S::set1(kP[5]);
  for (int i = 4; i >= 0; --i) p = S::fmadd(p, s, S::set1(kP[i]));
  const V half_x = S::mul(S::set1(0.5f), x);  // erf(x) / 2 = half_x * p
  // Tail piece: erfc(a) / 2.
  const V a = S::min(x, S::set1(10.1f));
  const V t = S::div(S::set1(1.f), S::fmadd(S::set1(0.5f), a, S::set1(1.f)));
  V e = S::set1(kE[9]);
  for (int i = 8; i >= 0; --i) e = S::fmadd(e, t, S::set1(kE[i]));
  const V half_gauss = S::mul(S::set1(0.5f), gauss);  // erfc(a) / 2 = half_gauss * e
  const M inner = S::less(av, S::set1(1.f));
  const V half = S::set1(0.5f), one = S::set1(1.f);
  // Every product that meets a sum is an explicit FMA: g++ contracts a separate multiply and
  // add into one where it likes (-ffp-contract=fast is its C++ default), which would make the
  // bits depend on the call site.
  const V upper = S::select(inner, S::fmadd(half_x, p, half), S::fnmadd(half_gauss, e, one));   // Phi(|v|)
  const V lower = S::select(inner, S::fnmadd(half_x, p, half), S::mul(half_gauss, e));  // Phi(-|v|)
  const M negative = S::less(v, S::set1(0.f));
  return {S::select(negative, lower, upper), gauss, S::mul(half, e), S::and_not(inner, negative)};
}

// v Phi(v). In the left tail the product is taken as (v E / 2) exp(-v^2 / 2), so that it
// underflows once, at the end, not in Phi first (Phi(-13) is below float's smallest normal,
// v Phi(v) is not).
template <class S>
inline typename S::V gelu_erf_v(typename S::V v) {
  const NormalCdf<S> n = normal_cdf<S>(v);
  return S::select(n.left_tail, S::mul(S::mul(v, n.half_e), n.gauss), S::mul(v, n.cdf));
}
// g * (Phi(v) + v phi(v)), phi(v) = exp(-v^2 / 2) / sqrt(2 pi)
template <class S>
inline typename S::V gelu_erf_backward_v(typename S::V g, typename S::V v) {
  const NormalCdf<S> n = normal_cdf<S>(v);
  const typename S::V pdf = S::mul(S::set1(0.39894228040143268f), n.gauss);
  return S::mul(g, S::fmadd(v, pdf, n.cdf));
}
}  // namespace wavspa::cpu::vmath

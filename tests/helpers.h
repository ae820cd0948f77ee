// Shared test helpers.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <thread>
#include <string>
#include <vector>

#include "wavspa.h"

namespace wavspa::test {

// Runs gradcheck on float64 leaves and reports the worst element on failure.
template <typename... Inputs>
void check_grad(const GradcheckFn& fn, const Inputs&... inputs) {
  auto result = gradcheck(fn, std::vector<Tensor>{inputs...});
  CHECK_MESSAGE(result.ok, result.message);
}

// Random float64 leaf.
inline Tensor rn(const Shape& shape) { return randn(shape, kFloat64); }
// Random positive float64 leaf in [lo, lo + 1).
inline Tensor rpos(const Shape& shape, double lo = 0.5) {
  return add(rand(shape, kFloat64), lo).detach();
}

// A random size in [lo, hi] from a test-local generator (so shapes vary but reproduce).
struct Sizes {
  Generator gen{0};
  int64_t operator()(int64_t lo, int64_t hi) {
    return randint(lo, hi + 1, {1}, kInt64, Device::cpu(), &gen).to_vector<int64_t>()[0];
  }
};

// max |a - b| over all elements (both converted to float64).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to(kFloat64).to_vector<double>(), vb = b.to(kFloat64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = std::abs(va[i] - vb[i]);
    if (std::isnan(d)) return d;  // a NaN on either side fails every `<=` bound
    m = std::max(m, d);
  }
  return m;
}

// Checks `fn` throws wavspa::Error whose message contains every fragment.
template <typename F>
void check_error(F&& fn, const std::vector<std::string>& fragments) {
  bool threw = false;
  try {
    fn();
  } catch (const Error& e) {
    threw = true;
    std::string msg = e.what();
    for (const auto& f : fragments)
      CHECK_MESSAGE(msg.find(f) != std::string::npos, str("message '", msg, "' lacks '", f, "'"));
  }
  CHECK_MESSAGE(threw, str("expected a wavspa::Error containing '", fragments.empty() ? "" : fragments[0], "'"));
}

}  // namespace wavspa::test

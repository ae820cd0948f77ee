// What the bench tools (bench_step, bench_wavelet) share: the median of timed samples.
#pragma once

#include <algorithm>
#include <vector>

namespace wavspa::tools {

// The median of v (the mean of the middle two for an even count); v must not be empty.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace wavspa::tools

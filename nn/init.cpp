#include "nn/init.h"

#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

namespace wavspa::nn::init {

namespace {
// Writes `value` (made on the CPU in t's dtype) into t without recording a gradient.
void assign(Tensor& t, const Tensor& value) {
  NoGradGuard no_grad;
  t.copy_(value);
}
}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& t) {
  WAVSPA_CHECK(t.dim() >= 1, "init: fan in/out need a tensor with at least 1 dim, got ",
               t.describe());
  if (t.dim() == 1) return {t.shape()[0], t.shape()[0]};
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.shape()[d];
  return {t.shape()[1] * receptive, t.shape()[0] * receptive};
}

void zeros_(Tensor& t) { assign(t, zeros_like(t)); }
void ones_(Tensor& t) { assign(t, ones_like(t)); }

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  assign(t, add(mul(randn(t.shape(), t.dtype(), t.device(), gen), std), mean));
}

void uniform_(Tensor& t, double lo, double hi, Generator* gen) {
  assign(t, uniform(t.shape(), lo, hi, t.dtype(), t.device(), gen));
}

void trunc_normal_(Tensor& t, double std, double mean, double lo, double hi, Generator* gen) {
  if (std::isnan(lo)) lo = mean - 2 * std;
  if (std::isnan(hi)) hi = mean + 2 * std;
  WAVSPA_CHECK(lo < hi && std > 0, "trunc_normal_: need std > 0 and lo < hi, got std ", std,
               ", [", lo, ", ", hi, "]");
  // Redraw out-of-range samples in bulk on the host: deterministic for a seed.
  const int64_t n = t.numel();
  std::vector<double> out;
  out.reserve(n);
  while ((int64_t)out.size() < n) {
    auto draw = randn({std::max<int64_t>(64, 2 * (n - (int64_t)out.size()))}, kFloat64,
                      Device::cpu(), gen).to_vector<double>();
    for (double z : draw) {
      double v = mean + std * z;
      if (v >= lo && v <= hi && (int64_t)out.size() < n) out.push_back(v);
    }
  }
  assign(t, from_vector(out, t.shape()).to(t.dtype()));
}

void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [fi, fo] = fans(t);
  double a = gain * std::sqrt(6.0 / (double)(fi + fo));
  uniform_(t, -a, a, gen);
}

void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [fi, fo] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / (double)(fi + fo)), gen);
}

void kaiming_uniform_(Tensor& t, double a, bool fan_in, Generator* gen) {
  auto [fi, fo] = fans(t);
  double std = std::sqrt(2.0 / (1 + a * a)) / std::sqrt((double)(fan_in ? fi : fo));
  double bound = std::sqrt(3.0) * std;
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, double a, bool fan_in, Generator* gen) {
  auto [fi, fo] = fans(t);
  normal_(t, 0.0, std::sqrt(2.0 / (1 + a * a)) / std::sqrt((double)(fan_in ? fi : fo)), gen);
}

}  // namespace wavspa::nn::init

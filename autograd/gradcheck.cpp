#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "core/random.h"

namespace wavspa {
namespace {

// sum(out * v) in double on the host.
double project(const Tensor& out, const std::vector<double>& v) {
  std::vector<double> values = out.to(kFloat64).to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < values.size(); ++i) s += values[i] * v[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, std::vector<Tensor> inputs,
                          GradcheckOptions options) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    WAVSPA_CHECK(inputs[i].dtype() == kFloat64 && inputs[i].is_leaf(), "gradcheck: input ", i,
                 " must be a float64 leaf, got ", inputs[i].describe());
    inputs[i].zero_grad();
    inputs[i].requires_grad_(true);
  }
  Tensor out = f(inputs);
  WAVSPA_CHECK(out.dtype() == kFloat64, "gradcheck: f must return float64, got ",
               out.describe());

  // v: fixed random projection, entries in [-1, 1).
  std::vector<double> v(out.numel());
  Generator gen(options.seed);
  for (size_t i = 0; i < v.size(); i += 4) {
    auto bits = philox4x32(gen.reserve(1).offset, 0, gen.seed());
    for (size_t l = 0; l < 4 && i + l < v.size(); ++l) v[i + l] = 2 * uint_to_unit(bits[l]) - 1;
  }
  Tensor seed = Tensor::empty(out.shape(), kFloat64);
  std::copy(v.begin(), v.end(), seed.data<double>());
  out.backward(seed.to(out.device()));

  GradcheckResult result;
  double worst_excess = -1;
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor x = inputs[i];
    Tensor g = x.grad();
    std::vector<double> analytic =
        g.defined() ? g.to(kFloat64).to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    Shape index(x.dim(), 0);
    for (int64_t e = 0; e < x.numel(); ++e) {
      double orig = x.at(index);
      x.set(index, orig + options.eps);
      double plus = project(f(inputs), v);
      x.set(index, orig - options.eps);
      double minus = project(f(inputs), v);
      x.set(index, orig);
      double numeric = (plus - minus) / (2 * options.eps);
      double err = std::abs(analytic[e] - numeric);
      double allowed = options.atol + options.rtol * std::abs(numeric);
      if (!(err <= allowed)) result.ok = false;  // also catches NaN
      double excess = std::isnan(err) ? 1e300 : err - allowed;
      if (excess > worst_excess) {
        worst_excess = excess;
        result.message = str("input ", i, " ", x.describe(), " element ", index, ": analytic ",
                             analytic[e], ", numeric ", numeric, ", error ", err,
                             " (allowed ", allowed, ")");
      }
      result.max_error = std::max(result.max_error, std::isnan(err) ? INFINITY : err);
      // next multi-index, row-major
      for (int64_t d = x.dim() - 1; d >= 0; --d) {
        if (++index[d] < x.shape()[d]) break;
        index[d] = 0;
      }
    }
  }
  if (result.ok) result.message = "ok; worst " + result.message;
  return result;
}

}  // namespace wavspa

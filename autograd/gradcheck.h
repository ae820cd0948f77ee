// Finite-difference gradient check.
//
//   std::vector<Tensor> in = {randn({3, 4}, kFloat64), randn({4}, kFloat64)};
//   auto r = gradcheck([](const std::vector<Tensor>& x) { return x[0] * x[1]; }, in);
//   CHECK_MESSAGE(r.ok, r.message);
//
// Checks J^T v for a random v: the analytic gradient of sum(f(x) * v) from one backward
// pass against central differences, (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), for every
// element of every input. Inputs must be float64 leaves; they are made to require grad.
// The message names the worst element.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wavspa {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // for the projection vector v
};

struct GradcheckResult {
  bool ok = true;
  double max_error = 0;   // max over elements of |analytic - numeric|
  std::string message;    // names the worst element
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, std::vector<Tensor> inputs,
                          GradcheckOptions options = {});

}  // namespace wavspa

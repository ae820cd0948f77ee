// Reductions over any set of dims (negative dims wrap), with keepdim.
//
//   Tensor s = sum(x, {0, 2});              // (A, B, C) -> (B)
//   Tensor m = mean(x, {-1}, /*keepdim=*/true);
//   Tensor i = argmax(logits, -1);          // int64, no gradient
//   Tensor n = sum(eq(ids, 0));             // int64: how many zeros
//
// Integer and bool tensors reduce exactly: sum gives int64 (bools count), max and min keep the
// dtype, mean gives float32 (the exact sum over the count, rounded once). No gradient flows
// through them.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace wavspa {

Tensor sum(const Tensor& x);  // all elements, 0-d
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// max/min: the gradient goes to the extremum (split evenly among exact ties).
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Variance with Bessel's correction by default (correction = 1), as torch.var.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction = 1,
           bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x);  // over the flattened tensor
// 0-d bool (or bool over dim): is any element nonzero, are all of them.
Tensor any(const Tensor& x);
Tensor any(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor all(const Tensor& x);
Tensor all(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace wavspa

#include "ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "ops/common.h"
#include "ops/elementwise.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

std::vector<int64_t> normalize_dims(const char* op, const Tensor& x,
                                    const std::vector<int64_t>& dims) {
  std::vector<int64_t> out;
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  WAVSPA_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op,
               ": dimension repeated in ", dims);
  return out;
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < (int64_t)shape.size(); ++i) {
    bool reduced = std::find(dims.begin(), dims.end(), i) != dims.end();
    if (!reduced) out.push_back(shape[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor reduce_raw(ReduceOp op, const char* name, const Tensor& x, const std::vector<int64_t>& dims,
                  bool keepdim) {
  ProfileScope scope(name, x);  // one FLOP per element read
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dims, false), x.dtype(), x.device());
  backend_of(x).reduce(op, x, dims, out);
  if (scope) scope.set_io(bytes_of(x), bytes_of(out), (double)x.numel());
  return keepdim ? out.as_strided(reduced_shape(x.shape(), dims, true),
                                  contiguous_strides(reduced_shape(x.shape(), dims, true)), 0)
                 : out;
}

// The gradient of a reduction, reshaped with kept dims so it broadcasts against x.
Tensor keep_dims(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& dims) {
  return g.reshape(reduced_shape(x_shape, dims, true));
}

// sum and mean: the gradient spreads g over the reduced dims (divided by their count for mean).
Tensor sum_or_mean(bool is_mean, const Tensor& x, const std::vector<int64_t>& dims_in,
                   bool keepdim) {
  const char* name = is_mean ? "mean" : "sum";
  check_defined(name, x);
  if (!is_floating(x.dtype())) {
    // Integers and bools: the sum is int64 and exact (torch.sum's rule); the mean is float32,
    // that exact sum divided by the count in float64 and rounded once.
    const auto dims = normalize_dims(name, x, dims_in);
    Tensor s = reduce_raw(ReduceOp::Sum, name, x.to(kInt64), dims, keepdim);
    if (!is_mean) return s;
    int64_t count = 1;
    for (int64_t d : dims) count *= x.shape()[d];
    return div(s.to(kFloat64), (double)count).to(kFloat32);
  }
  check_floating(name, x);
  auto dims = normalize_dims(name, x, dims_in);
  Tensor out = reduce_raw(is_mean ? ReduceOp::Mean : ReduceOp::Sum, name, x, dims, keepdim);
  if (autograd::needs_grad({x})) {
    Shape xs = x.shape();
    int64_t count = 1;
    for (int64_t d : dims) count *= xs[d];
    autograd::record(is_mean ? "MeanBackward" : "SumBackward", {x}, out, {},
                     [is_mean, xs, dims, count](const Tensor& g) {
      Tensor spread = keep_dims(g, xs, dims);
      if (is_mean) spread = div(spread, (double)count);
      return G{spread.expand(xs)};
    });
  }
  return out;
}

Tensor extremum(bool is_max, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const char* name = is_max ? "max" : "min";
  check_defined(name, x);
  auto dims = normalize_dims(name, x, dims_in);
  for (int64_t d : dims)
    WAVSPA_CHECK(x.shape()[d] > 0, name, ": cannot reduce over an empty dimension ", d,
                 " of shape ", shape_str(x.shape()));
  if (!is_floating(x.dtype()))  // integers and bools: exact, in int64, back in x's dtype
    return reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, name, x.to(kInt64), dims, keepdim)
        .to(x.dtype());
  check_floating(name, x);
  Tensor out = reduce_raw(is_max ? ReduceOp::Max : ReduceOp::Min, name, x, dims, keepdim);
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach(), dout = out.detach();
    autograd::record(is_max ? "MaxBackward" : "MinBackward", {x}, out, {dx, dout},
                     [dx, dout, dims](const Tensor& g) {
      Tensor hit = eq(dx, keep_dims(dout, dx.shape(), dims)).to(g.dtype());
      Tensor count = sum(hit, dims, true);
      return G{div(mul(hit, keep_dims(g, dx.shape(), dims)), count)};
    });
  }
  return out;
}

// argmax / argmin: int64 indices, no gradient.
Tensor arg_extremum(bool is_max, const Tensor& x_in, int64_t dim, bool keepdim) {
  const char* name = is_max ? "argmax" : "argmin";
  check_defined(name, x_in);
  const Tensor x = x_in.dtype() == kBool ? x_in.to(kInt32) : x_in;
  check_computable(name, x);
  int64_t d = wrap_dim(dim, x.dim(), name);
  WAVSPA_CHECK(x.dim() > 0 && x.shape()[d] > 0, name, ": empty dimension in ", x.describe());
  ProfileScope scope(name, x);
  Tensor out = Tensor::empty(reduced_shape(x.shape(), {d}, false), kInt64, x.device());
  backend_of(x).arg_reduce(is_max, x, d, out);
  if (scope) scope.set_io(bytes_of(x), bytes_of(out), (double)x.numel());
  return keepdim ? out.reshape(reduced_shape(x.shape(), {d}, true)) : out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(false, x, dims, keepdim);
}

Tensor sum(const Tensor& x) {
  check_defined("sum", x);
  return sum(x, all_dims(x));
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(true, x, dims, keepdim);
}

Tensor mean(const Tensor& x) {
  check_defined("mean", x);
  return mean(x, all_dims(x));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum(true, x, dims, keepdim);
}
Tensor max(const Tensor& x) {
  check_defined("max", x);
  return extremum(true, x, all_dims(x), false);
}
Tensor min(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extremum(false, x, dims, keepdim);
}
Tensor min(const Tensor& x) {
  check_defined("min", x);
  return extremum(false, x, all_dims(x), false);
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, int64_t correction,
           bool keepdim) {
  check_floating("var", x);
  auto dims = normalize_dims("var", x, dims_in);
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  Tensor centered = sub(x, mean(x, dims, true));
  return div(sum(mul(centered, centered), dims, keepdim), (double)(count - correction));
}

Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  check_floating("logsumexp", x);
  auto dims = normalize_dims("logsumexp", x, dims_in);
  // Shift by the (constant) max for stability; an all -inf slice shifts by 0.
  Tensor shift;
  {
    NoGradGuard no_grad;
    shift = max(x.detach(), dims, true);
    shift = where(eq(abs(shift), scalar_like(INFINITY, shift)), scalar_like(0, shift), shift);
  }
  Tensor out = add(log(sum(exp(sub(x, shift)), dims, true)), shift);
  return keepdim ? out : out.reshape(reduced_shape(x.shape(), dims, false));
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extremum(true, x, dim, keepdim);
}

Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_extremum(false, x, dim, keepdim);
}

Tensor argmax(const Tensor& x) {
  check_defined("argmax", x);
  return argmax(x.reshape({-1}), 0);
}

namespace {
// any: some element is nonzero, all: none is zero; over `dim`, or the whole tensor without
// one. Both count (exactly, in int64) the elements that decide.
Tensor any_or_all(bool is_any, const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  const char* name = is_any ? "any" : "all";
  check_defined(name, x);
  check_computable(name, x);
  const Tensor deciding = is_any ? ne(x, 0) : eq(x, 0);
  const Tensor count = dim ? sum(deciding, {*dim}, keepdim) : sum(deciding);
  return is_any ? gt(count, 0) : eq(count, 0);
}
}  // namespace

Tensor any(const Tensor& x) { return any_or_all(true, x, std::nullopt, false); }
Tensor any(const Tensor& x, int64_t dim, bool keepdim) { return any_or_all(true, x, dim, keepdim); }
Tensor all(const Tensor& x) { return any_or_all(false, x, std::nullopt, false); }
Tensor all(const Tensor& x, int64_t dim, bool keepdim) { return any_or_all(false, x, dim, keepdim); }

}  // namespace wavspa

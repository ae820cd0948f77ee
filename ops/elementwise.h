// Elementwise ops with NumPy broadcasting; all differentiable (comparisons excepted).
//
//   Tensor y = gelu(x * w + b);            // broadcasting (B, D) * (D) + (D)
//   Tensor m = masked_fill(s, mask, -1e9); // where mask is true (or nonzero)
//   Tensor k = logical_and(ge(x, 0), lt(x, 1));   // bool
//
// Binary ops need both tensors on one device. Their dtypes meet at promote_types (core/dtype.h):
// float32 + float64 computes in float64, int64 * float32 in float32, int64 * 2 stays int64 and
// int64 * 2.0 is float32; a gradient comes back to each input in the input's own dtype.
#pragma once

#include <limits>

#include "core/scalar.h"
#include "core/tensor.h"

namespace wavspa {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, Scalar b);
Tensor sub(const Tensor& a, Scalar b);
Tensor mul(const Tensor& a, Scalar b);
Tensor div(const Tensor& a, Scalar b);
Tensor pow(const Tensor& a, const Tensor& exponent);
// An integer tensor to an integer power stays an integer (computed exactly in float64 up to
// 2^53); to a floating power it is float32.
Tensor pow(const Tensor& a, Scalar exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties split the gradient evenly
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, double lo = -std::numeric_limits<double>::infinity(),
             double hi = std::numeric_limits<double>::infinity());
// cond ? a : b, elementwise: cond is bool (or any dtype, where nonzero counts as true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where mask is true; the result keeps x's dtype (value is rounded to it).
Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value);

// Comparisons: bool, no gradient. Mixed dtypes compare at promote_types (int64 against
// float32 compares in float32).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
// Against a scalar: eq(ids, 7). On an integer tensor a scalar with a
// fraction compares as the real number it is (eq(ids, 7.5) is all zeros, lt(ids, 7.5) keeps 7);
// a floating tensor compares with the scalar rounded to its dtype, as PyTorch's wrapped numbers.
Tensor eq(const Tensor& a, Scalar b);
Tensor ne(const Tensor& a, Scalar b);
Tensor lt(const Tensor& a, Scalar b);
Tensor le(const Tensor& a, Scalar b);
Tensor gt(const Tensor& a, Scalar b);
Tensor ge(const Tensor& a, Scalar b);

// Logical ops: bool results; any dtype is read as nonzero = true.
Tensor logical_not(const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // no gradient (zero almost everywhere)
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
enum class GeluApprox { None, Tanh };  // exact (erf) or the tanh approximation
Tensor gelu(const Tensor& x, GeluApprox approximate = GeluApprox::None);
Tensor silu(const Tensor& x);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, Scalar b);
Tensor operator-(const Tensor& a, Scalar b);
Tensor operator*(const Tensor& a, Scalar b);
Tensor operator/(const Tensor& a, Scalar b);
Tensor operator+(Scalar a, const Tensor& b);
Tensor operator-(Scalar a, const Tensor& b);
Tensor operator*(Scalar a, const Tensor& b);
Tensor operator/(Scalar a, const Tensor& b);
Tensor operator-(const Tensor& x);

}  // namespace wavspa

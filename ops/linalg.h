// Matrix products through the backend's GEMM (OpenBLAS on CPU).
//
//   Tensor y = matmul(x, w);         // (B, N, D) @ (D, E) -> (B, N, E), one GEMM
//   Tensor s = matmul(q, k.transpose(-2, -1));  // batched, transposes are free
//   Tensor z = linear(x, weight, bias);         // x @ weight^T + bias
#pragma once

#include "core/tensor.h"

namespace wavspa {

// numpy.matmul semantics: 1-D operands are promoted and the added dim removed; batch dims
// broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// x: (..., in), weight: (out, in), bias: (out) or undefined -> (..., out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Under autocast (core/runtime.h) linear reads a float32 weight that requires grad (a
// parameter) through a bfloat16 copy kept per parameter, made again only when the
// parameter's version has moved. This remakes now the copies whose parameters changed
// since, in place, and forgets those whose parameters are gone. The optimizers call it
// after each update, so that the next forward finds its copies ready and launches no casts
// (a CUDA graph recorded then reads the copies the optimizer keeps current).
void refresh_autocast_weights();

}  // namespace wavspa

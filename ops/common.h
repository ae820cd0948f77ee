// Helpers shared by the op implementations (not part of the public API).
#pragma once

#include <vector>

#include "autograd/function.h"
#include "backends/backend.h"
#include "core/tensor.h"

namespace wavspa::ops_detail {

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

inline void check_defined(const char* op, const Tensor& t, const char* what = "input") {
  WAVSPA_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

// Both defined, same device, same dtype; the message names the op and both tensors.
// check_same is for ops that compute (it also calls check_computable); ops that only move
// bytes (concat) use check_same_placement.
void check_same(const char* op, const Tensor& a, const Tensor& b);
void check_same_placement(const char* op, const Tensor& a, const Tensor& b);
// Floating (float32, float64, bfloat16) and computable where it lies (check_computable).
void check_floating(const char* op, const Tensor& t);
// bfloat16 is computed on CUDA only: a bfloat16 CPU tensor given to an op that computes
// throws a wavspa::Error naming the op and saying to convert with .to(kFloat32).
void check_computable(const char* op, const Tensor& t);
// For ops with no bfloat16 kernel on any device (FFTs, wavelets, attention): refuses bfloat16
// with a message naming the op, then check_floating.
void check_floating_no_bf16(const char* op, const Tensor& t);

// A broadcast view without autograd (strides 0 where broadcast).
Tensor expand_raw(const Tensor& t, const Shape& shape);
// A view with dims permuted, without autograd.
Tensor permute_raw(const Tensor& t, const std::vector<int64_t>& perm);
// A contiguous copy without autograd (or `t` itself if already contiguous).
Tensor contiguous_raw(const Tensor& t);
// Fresh tensor like `t` (same dtype and device), uninitialised / zero-filled.
Tensor empty_like_raw(const Tensor& t, const Shape& shape);
Tensor zeros_raw(const Shape& shape, DType dtype, Device device);
// A 0-d tensor holding `value` with `like`'s dtype and device.
Tensor scalar_like(double value, const Tensor& like);
// Sums a broadcast gradient back to `shape` (the inverse of expand).
Tensor sum_to(const Tensor& grad, const Shape& shape);
// int32 or int64 index tensor -> contiguous int64; `op` names the caller in errors.
Tensor as_index(const char* op, const Tensor& index);

}  // namespace wavspa::ops_detail

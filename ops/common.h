// Helpers shared by the op implementations (not part of the public API).
// (no example: internal to ops/*.cpp; ops/elementwise.cpp shows them in use)
#pragma once

#include <utility>
#include <vector>

#include "autograd/function.h"
#include "backends/backend.h"
#include "core/profiler.h"
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
void check_same_device(const char* op, const Tensor& a, const Tensor& b);  // defined, one device
// Floating (float32, float64, bfloat16) and computable where it lies (check_computable).
void check_floating(const char* op, const Tensor& t);
// bfloat16 is computed on CUDA only: a bfloat16 CPU tensor given to an op that computes
// throws a wavspa::Error naming the op and saying to convert with .to(kFloat32).
void check_computable(const char* op, const Tensor& t);
// For ops with no bfloat16 kernel on any device (FFTs, the lattice filter): refuses bfloat16
// with a message naming the op, then check_floating.
void check_floating_no_bf16(const char* op, const Tensor& t);

// Autocast (core/runtime.h): the casts the policy makes, as ops of the graph (Tensor::to),
// so that gradients come back in the input's dtype. Each returns `t` unchanged when the
// guard is off, `t` is not on CUDA, or it already has the dtype.
bool autocasting(const Tensor& t);  // the guard is on and t is a float32 / bfloat16 CUDA tensor
Tensor autocast_bf16(const Tensor& t);  // float32 -> bfloat16 (ops with bfloat16 kernels)
Tensor autocast_fp32(const Tensor& t);  // bfloat16 -> float32 (ops without them, the loss)
// Binary ops: a bfloat16 and a float32 operand -> both bfloat16.
std::pair<Tensor, Tensor> autocast_pair(const Tensor& a, const Tensor& b);

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

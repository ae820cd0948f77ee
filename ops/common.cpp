#include "ops/common.h"

#include "core/runtime.h"
#include "ops/reduce.h"

namespace wavspa::ops_detail {

bool autocasting(const Tensor& t) {
  return autocast_enabled() && t.defined() && t.device().is_cuda() &&
         (t.dtype() == kFloat32 || t.dtype() == kBFloat16);
}

Tensor autocast_bf16(const Tensor& t) {
  return autocasting(t) && t.dtype() == kFloat32 ? t.to(kBFloat16) : t;
}

Tensor autocast_fp32(const Tensor& t) {
  return autocasting(t) && t.dtype() == kBFloat16 ? t.to(kFloat32) : t;
}

std::pair<Tensor, Tensor> autocast_pair(const Tensor& a, const Tensor& b) {
  if (autocasting(a) && autocasting(b) && a.dtype() != b.dtype())
    return {autocast_bf16(a), autocast_bf16(b)};
  return {a, b};
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  check_same_placement(op, a, b);
  check_computable(op, a);
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a, "first input");
  check_defined(op, b, "second input");
  WAVSPA_CHECK(a.device() == b.device(), op, ": inputs are on different devices (",
               a.describe(), " and ", b.describe(), "); move one with .to(device)");
}

void check_same_placement(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  WAVSPA_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch (", a.describe(), " and ",
               b.describe(), "); convert one with .to(dtype)");
}

void check_floating(const char* op, const Tensor& t) {
  check_defined(op, t);
  WAVSPA_CHECK(is_floating(t.dtype()), op,
               ": expected a floating tensor (float32, float64 or bfloat16), got ", t.describe());
  check_computable(op, t);
}

void check_floating_no_bf16(const char* op, const Tensor& t) {
  check_defined(op, t);
  WAVSPA_CHECK(t.dtype() != kBFloat16, op, ": has no bfloat16 version on any device; convert with "
               ".to(kFloat32), got ", t.describe());
  check_floating(op, t);
}

void check_computable(const char* op, const Tensor& t) {
  if (t.dtype() == kBFloat16 && t.device().is_cpu())
    throw Error(str(bfloat16_cpu_message(op), "; got ", t.describe()));
}

Tensor expand_raw(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t nd = (int64_t)shape.size(), lead = nd - t.dim();
  Shape strides(nd, 0);
  for (int64_t i = 0; i < t.dim(); ++i)
    strides[lead + i] = t.shape()[i] == 1 && shape[lead + i] != 1 ? 0 : t.strides()[i];
  return t.as_strided(shape, strides, t.offset());
}

Tensor permute_raw(const Tensor& t, const std::vector<int64_t>& perm) {
  Shape shape, strides;
  for (int64_t p : perm) {
    shape.push_back(t.shape()[p]);
    strides.push_back(t.strides()[p]);
  }
  return t.as_strided(shape, strides, t.offset());
}

Tensor contiguous_raw(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  backend_of(t).copy(t, out);
  return out;
}

Tensor empty_like_raw(const Tensor& t, const Shape& shape) {
  return Tensor::empty(shape, t.dtype(), t.device());
}

Tensor zeros_raw(const Shape& shape, DType dtype, Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  backend_for(device).fill(out, 0.0);
  return out;
}

Tensor scalar_like(double value, const Tensor& like) {
  Tensor out = Tensor::empty({}, like.dtype(), like.device());
  backend_of(like).fill(out, value);
  return out;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - (int64_t)shape.size();
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) dims.push_back(i);
  Tensor s = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return s.reshape(shape);
}

Tensor as_index(const char* op, const Tensor& index) {
  check_defined(op, index, "index");
  WAVSPA_CHECK(index.dtype() == kInt64 || index.dtype() == kInt32, op,
               ": indices must be int64 or int32, got ", index.describe());
  if (index.dtype() == kInt64) return contiguous_raw(index);
  Tensor out = Tensor::empty(index.shape(), kInt64, index.device());
  backend_of(index).copy(index, out);
  return out;
}

}  // namespace wavspa::ops_detail

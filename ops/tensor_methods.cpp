// Tensor's methods that compute or record gradients (declared in core/tensor.h).
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/nn.h"
#include "ops/reduce.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

// Records a view's backward: the gradient of the view mapped back to the base's shape.
Tensor record_view(const char* name, const Tensor& base, Tensor view, autograd::BackwardFn fn) {
  if (autograd::needs_grad({base})) autograd::record(name, {base}, view, {}, std::move(fn));
  return view;
}

}  // namespace

// ---- views ----------------------------------------------------------------------------

Tensor Tensor::view(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "view");
  Shape st = view_strides(this->shape(), strides(), shape);
  WAVSPA_CHECK(!st.empty() || shape.empty(), "view: a tensor of shape ",
               shape_str(this->shape()), " with strides ", strides(),
               " cannot be viewed as ", shape_str(shape), " without a copy; use reshape()");
  Shape in_shape = this->shape();
  return record_view("ViewBackward", *this, as_strided(shape, st, offset()),
                     [in_shape](const Tensor& g) { return G{g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), "reshape");
  Shape st = view_strides(this->shape(), strides(), shape);
  if (!st.empty() || shape.empty()) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  WAVSPA_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape out(shape().begin(), shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= shape()[d];
  out.push_back(n);
  out.insert(out.end(), shape().begin() + e + 1, shape().end());
  return reshape(out);
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  int64_t a = wrap_dim(dim0, dim(), "transpose"), b = wrap_dim(dim1, dim(), "transpose");
  Shape sh = shape(), st = strides();
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  return record_view("TransposeBackward", *this, as_strided(sh, st, offset()),
                     [a, b](const Tensor& g) { return G{g.transpose(a, b)}; });
}

Tensor Tensor::t() const {
  WAVSPA_CHECK(dim() <= 2, "t: expects a tensor with at most 2 dims, got ", shape_str(shape()),
               "; use transpose(dim0, dim1)");
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  WAVSPA_CHECK((int64_t)dims.size() == dim(), "permute: got ", dims.size(), " dims ", dims,
               " for a tensor with ", dim(), " dims ", shape_str(shape()));
  std::vector<int64_t> perm, inverse(dim());
  std::vector<bool> seen(dim(), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, dim(), "permute");
    WAVSPA_CHECK(!seen[w], "permute: dimension ", d, " repeated in ", dims);
    seen[w] = true;
    perm.push_back(w);
  }
  for (int64_t i = 0; i < dim(); ++i) inverse[perm[i]] = i;
  return record_view("PermuteBackward", *this, permute_raw(*this, perm),
                     [inverse](const Tensor& g) { return G{g.permute(inverse)}; });
}

Tensor Tensor::slice(int64_t dim_in, int64_t start, int64_t end, int64_t step) const {
  WAVSPA_CHECK(dim() > 0, "slice: a 0-d tensor has no dim to slice");
  const int64_t d = wrap_dim(dim_in, dim(), "slice"), n = shape()[d];
  WAVSPA_CHECK(step > 0, "slice: step must be positive, got ", step);
  // Python semantics: negative bounds count from the end, out-of-range bounds clamp.
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = shape(), st = strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Shape in_shape = shape();
  return record_view("SliceBackward", *this, as_strided(sh, st, offset() + start * strides()[d]),
                     [in_shape, d, start, step](const Tensor& g) {
    Tensor gx = zeros_raw(in_shape, g.dtype(), g.device());
    Shape gst = gx.strides();
    int64_t off = start * gst[d];
    gst[d] *= step;
    if (g.numel()) backend_of(g).copy(g, gx.as_strided(g.shape(), gst, off));
    return G{gx};
  });
}

Tensor Tensor::narrow(int64_t dim_in, int64_t start, int64_t length) const {
  WAVSPA_CHECK(dim() > 0, "narrow: a 0-d tensor has no dim to narrow");
  const int64_t d = wrap_dim(dim_in, dim(), "narrow"), n = shape()[d];
  if (start < 0) start += n;
  WAVSPA_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
               start + length, ") is outside dim ", d, " of size ", n, " (shape ",
               shape_str(shape()), ")");
  return slice(d, start, start + length, 1);
}

Tensor Tensor::select(int64_t dim_in, int64_t index) const {
  WAVSPA_CHECK(dim() > 0, "select: a 0-d tensor has no dim to select from (index ", index, ")");
  const int64_t d = wrap_dim(dim_in, dim(), "select"), n = shape()[d];
  WAVSPA_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ",
               d, " of size ", n);
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& shape_in) const {
  WAVSPA_CHECK((int64_t)shape_in.size() >= dim(), "expand: target ", shape_str(shape_in),
               " has fewer dims than the tensor ", shape_str(shape()));
  Shape target = shape_in;
  const int64_t lead = (int64_t)target.size() - dim();
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t& t = target[lead + i];
    if (t == -1) t = shape()[i];
    WAVSPA_CHECK(shape()[i] == t || shape()[i] == 1, "expand: cannot expand ",
                 shape_str(shape()), " to ", shape_str(shape_in), " (dim ", lead + i, ": ",
                 shape()[i], " vs ", t, "; only size-1 dims broadcast)");
  }
  for (int64_t t : target) WAVSPA_CHECK(t >= 0, "expand: invalid target ", shape_str(shape_in));
  if (target == shape()) return *this;
  Shape in_shape = shape();
  return record_view("ExpandBackward", *this, expand_raw(*this, target),
                     [in_shape](const Tensor& g) { return G{sum_to(g, in_shape)}; });
}

Tensor Tensor::squeeze() const {
  Shape sh;
  for (int64_t s : shape())
    if (s != 1) sh.push_back(s);
  return reshape(sh);
}

Tensor Tensor::squeeze(int64_t dim_in) const {
  if (dim() == 0) return *this;
  const int64_t d = wrap_dim(dim_in, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape sh = shape(), st = strides();
  sh.erase(sh.begin() + d);
  st.erase(st.begin() + d);
  Shape in_shape = shape();
  return record_view("SqueezeBackward", *this, as_strided(sh, st, offset()),
                     [in_shape](const Tensor& g) { return G{g.reshape(in_shape)}; });
}

Tensor Tensor::unsqueeze(int64_t dim_in) const {
  const int64_t d = wrap_dim(dim_in, dim() + 1, "unsqueeze");
  Shape sh = shape(), st = strides();
  int64_t stride = d < dim() ? shape()[d] * strides()[d] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  Shape in_shape = shape();
  return record_view("UnsqueezeBackward", *this, as_strided(sh, st, offset()),
                     [in_shape](const Tensor& g) { return G{g.reshape(in_shape)}; });
}

// ---- copies ---------------------------------------------------------------------------

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  if (numel()) backend_of(*this).copy(*this, out);
  if (autograd::needs_grad({*this}))
    autograd::record("CloneBackward", {*this}, out, {}, [](const Tensor& g) { return G{g}; });
  return out;
}

Tensor Tensor::sum_with(const Tensor& other) const {
  check_same("sum_with", *this, other);
  WAVSPA_CHECK(other.shape() == shape(), "sum_with: shapes ", shape_str(shape()), " and ",
               shape_str(other.shape()), " differ");
  Tensor out = Tensor::empty(shape(), dtype(), device());
  if (numel()) backend_of(*this).binary(BinaryOp::Add, *this, other, out, 0, 0);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), target, device());
  if (numel()) backend_of(*this).copy(*this, out);
  if (autograd::needs_grad({*this}) && is_floating(target)) {
    DType from = dtype();
    autograd::record("ToDtypeBackward", {*this}, out, {}, [from](const Tensor& g) {
      return G{g.to(from)};
    });
  }
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous_raw(*this);
  Tensor out = Tensor::empty(shape(), dtype(), target);
  if (numel()) {
    if (device().is_cpu()) {
      backend_for(target).copy_from_host(src.raw_data(), out);
    } else if (target.is_cpu()) {
      backend_of(src).copy_to_host(src, out.raw_data());
    } else {  // device to device through the host
      Tensor host = src.to(Device::cpu());
      backend_for(target).copy_from_host(host.raw_data(), out);
    }
  }
  if (autograd::needs_grad({*this})) {
    Device from = device();
    autograd::record("ToDeviceBackward", {*this}, out, {}, [from](const Tensor& g) {
      return G{g.to(from)};
    });
  }
  return out;
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

// ---- in place -------------------------------------------------------------------------
//
// Every in-place write bumps the storage's version counter (core/storage.h), which a node
// that saved the tensor for backward checks before it runs. With grad mode on, a write that
// involves a tensor requiring grad (the target, or the source of copy_ / add_) becomes a node
// of the graph: the target's history is rebased onto it, so `y.mul_(2)` on a non-leaf y
// gives y the history "MulInplaceBackward after what y was", as PyTorch does. That is refused
// where it cannot be right:
//   - on a leaf that requires grad (its gradient is what backward computes for it; change
//     it under NoGradGuard, as an optimizer does);
//   - when another tensor shares the target's memory (a view of it, the tensor it views, a
//     detach()ed alias, a value some op saved for backward): the other tensor's history would
//     not see the change. PyTorch rewrites views' histories instead; wavspa asks for the
//     out-of-place op.

namespace {

// True when the write must be recorded (see above); throws where it may not be.
bool inplace_needs_record(const char* op, const Tensor& t, const Tensor& src = Tensor()) {
  if (!autograd::grad_enabled()) return false;
  const bool src_grad = src.defined() && src.requires_grad();
  if (!t.requires_grad() && !src_grad) return false;
  WAVSPA_CHECK(!(t.requires_grad() && t.is_leaf()), op, ": in-place change of a leaf tensor that requires "
               "grad (", t.describe(), "); do it under NoGradGuard (as an optimizer does), or change a clone()");
  WAVSPA_CHECK(is_floating(t.dtype()), op, ": a ", t.describe(), " tensor cannot take the value of a "
               "tensor that requires grad (only floating tensors carry gradients)");
  WAVSPA_CHECK(t.storage().use_count() == 1, op, ": in-place change of ", t.describe(), ", which is part "
               "of the graph, while another tensor shares its memory (a view of it, the tensor it views, a "
               "detach()ed alias, or a value an op saved for backward): that tensor's history would miss "
               "the change; use the out-of-place op, or change a clone()");
  return true;
}

}  // namespace

Tensor& Tensor::copy_(const Tensor& src) {
  check_defined("copy_", src, "source");
  const bool track = inplace_needs_record("copy_", *this, src);
  broadcast_shapes(src.shape(), shape(), "copy_");
  Tensor s = expand_raw(src.detach(), shape());
  if (s.device() != device()) s = s.contiguous().to(device());
  if (numel()) backend_of(*this).copy(s, *this);
  storage()->bump_version();
  if (track) {
    const Shape src_shape = src.shape();
    const DType src_dtype = src.dtype();
    const Device src_device = src.device();
    const bool need_src = src.requires_grad();
    autograd::record("CopyBackward", {*this, src}, *this, {}, [=](const Tensor& g) {
      Tensor gs = need_src ? sum_to(g, src_shape).to(src_dtype).to(src_device) : Tensor();
      return G{Tensor(), gs};  // the old values are overwritten: nothing flows to them
    });
  }
  return *this;
}

Tensor& Tensor::fill_(double value) {
  const bool track = inplace_needs_record("fill_", *this);
  backend_of(*this).fill(*this, value);
  storage()->bump_version();
  if (track) autograd::record("FillBackward", {*this}, *this, {}, [](const Tensor&) { return G{Tensor()}; });
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_same("add_", *this, other);
  const bool track = inplace_needs_record("add_", *this, other);
  Shape b = broadcast_shapes(other.shape(), shape(), "add_");
  WAVSPA_CHECK(b == shape(), "add_: ", shape_str(other.shape()), " does not broadcast to ",
               shape_str(shape()));
  WAVSPA_CHECK(is_floating(dtype()) || alpha == std::floor(alpha), "add_: alpha must be a whole number for an ",
               dtype_name(dtype()), " tensor (as PyTorch), got ", alpha);
  Tensor o = expand_raw(other.detach(), shape());
  if (alpha != 1.0) {
    // alpha in the target's dtype: a double Scalar would promote an integer operand to float32
    NoGradGuard no_grad;
    o = wavspa::mul(o, scalar_like(alpha, *this));
  }
  backend_of(*this).binary(BinaryOp::Add, *this, o, *this, 0, 0);
  storage()->bump_version();
  if (track) {
    const Shape other_shape = other.shape();
    const bool need_other = other.requires_grad();
    autograd::record("AddInplaceBackward", {*this, other}, *this, {}, [=](const Tensor& g) {
      Tensor go = need_other ? sum_to(alpha == 1.0 ? g : wavspa::mul(g, alpha), other_shape) : Tensor();
      return G{g, go};
    });
  }
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_computable("mul_", *this);
  const bool track = inplace_needs_record("mul_", *this);
  backend_of(*this).binary(BinaryOp::Mul, *this, expand_raw(scalar_like(factor, *this), shape()),
                           *this, 0, 0);
  storage()->bump_version();
  if (track)
    autograd::record("MulInplaceBackward", {*this}, *this, {}, [factor](const Tensor& g) {
      return G{wavspa::mul(g, factor)};
    });
  return *this;
}

// ---- element access -------------------------------------------------------------------

namespace {

int64_t element_offset(const Tensor& t, const Shape& index, const char* op) {
  WAVSPA_CHECK((int64_t)index.size() == t.dim(), op, ": index ", index, " has ", index.size(),
               " coordinates for a tensor with ", t.dim(), " dims ", shape_str(t.shape()));
  int64_t off = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    int64_t i = index[d], n = t.shape()[d];
    WAVSPA_CHECK(i >= -n && i < n, op, ": index ", index, " is out of range for shape ",
                 shape_str(t.shape()), " (dim ", d, ")");
    off += (i < 0 ? i + n : i) * t.strides()[d];
  }
  return off;
}

double read_one(const Tensor& one) {
  alignas(8) unsigned char buf[8];
  backend_of(one).copy_to_host(one, buf);
  return visit_storage_dtype(one.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T v;
    std::memcpy(&v, buf, sizeof(T));
    return (double)v;
  });
}

}  // namespace

double Tensor::item() const {
  WAVSPA_CHECK(numel() == 1, "item: expects a one-element tensor, got shape ", shape_str(shape()));
  Shape zero(dim(), 0);
  return at(zero);
}

double Tensor::at(const Shape& index) const {
  int64_t off = element_offset(*this, index, "at");
  return read_one(as_strided({}, {}, off));
}

void Tensor::set(const Shape& index, double value) {
  WAVSPA_CHECK(!(requires_grad() && autograd::grad_enabled()), "set: writing one element of a tensor "
               "that requires grad (", describe(), "); do it under NoGradGuard");
  int64_t off = element_offset(*this, index, "set");
  backend_of(*this).fill(as_strided({}, {}, off), value);
  storage()->bump_version();
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = contiguous_raw(to(dtype_of<T>()).detach()).to(Device::cpu());
  std::vector<T> out(numel());
  if (!out.empty()) std::memcpy(out.data(), c.raw_data(), out.size() * sizeof(T));
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bfloat16> Tensor::to_vector<bfloat16>() const;

// ---- indexing -------------------------------------------------------------------------

Tensor Tensor::index(std::initializer_list<indexing::TensorIndex> indices) const {
  return index(std::vector<indexing::TensorIndex>(indices));
}

// Each index is applied in turn to the view so far, at the dim it has reached: an integer
// selects (the dim goes, the position stays), a slice and None each take a position, the
// Ellipsis skips the full dims that the integers and slices leave.
Tensor Tensor::index(const std::vector<indexing::TensorIndex>& indices) const {
  using namespace indexing;
  int64_t consuming = 0, ellipses = 0;
  for (const TensorIndex& i : indices) {
    if (std::holds_alternative<int64_t>(i.value()) || std::holds_alternative<Slice>(i.value())) ++consuming;
    if (std::holds_alternative<EllipsisIndex>(i.value())) ++ellipses;
  }
  WAVSPA_CHECK(ellipses <= 1, "index: at most one Ellipsis, got ", ellipses);
  WAVSPA_CHECK(consuming <= dim(), "index: ", consuming, " integer and slice indices for a tensor of ", dim(),
               " dims (shape ", shape_str(shape()), ")");
  Tensor out = *this;
  int64_t d = 0;
  for (const TensorIndex& i : indices) {
    const auto& v = i.value();
    if (const int64_t* k = std::get_if<int64_t>(&v)) {
      out = out.select(d, *k);
    } else if (const Slice* s = std::get_if<Slice>(&v)) {
      WAVSPA_CHECK(s->step > 0, "index: a slice's step must be positive, got ", s->step);
      const int64_t n = out.shape()[d];
      out = out.slice(d, s->start.set ? s->start.value : 0, s->stop.set ? s->stop.value : n, s->step);
      ++d;
    } else if (std::holds_alternative<NoneIndex>(v)) {
      out = out.unsqueeze(d);
      ++d;
    } else {
      d += dim() - consuming;
    }
  }
  return out;
}

// ---- method forms of ops ---------------------------------------------------------------

Tensor Tensor::matmul(const Tensor& other) const { return wavspa::matmul(*this, other); }
Tensor Tensor::add(const Tensor& other) const { return wavspa::add(*this, other); }
Tensor Tensor::add(Scalar other) const { return wavspa::add(*this, other); }
Tensor Tensor::sub(const Tensor& other) const { return wavspa::sub(*this, other); }
Tensor Tensor::sub(Scalar other) const { return wavspa::sub(*this, other); }
Tensor Tensor::mul(const Tensor& other) const { return wavspa::mul(*this, other); }
Tensor Tensor::mul(Scalar other) const { return wavspa::mul(*this, other); }
Tensor Tensor::div(const Tensor& other) const { return wavspa::div(*this, other); }
Tensor Tensor::div(Scalar other) const { return wavspa::div(*this, other); }
Tensor Tensor::pow(Scalar exponent) const { return wavspa::pow(*this, exponent); }
Tensor Tensor::neg() const { return wavspa::neg(*this); }
Tensor Tensor::abs() const { return wavspa::abs(*this); }
Tensor Tensor::exp() const { return wavspa::exp(*this); }
Tensor Tensor::log() const { return wavspa::log(*this); }
Tensor Tensor::sqrt() const { return wavspa::sqrt(*this); }
Tensor Tensor::tanh() const { return wavspa::tanh(*this); }
Tensor Tensor::sigmoid() const { return wavspa::sigmoid(*this); }
Tensor Tensor::relu() const { return wavspa::relu(*this); }
Tensor Tensor::eq(const Tensor& other) const { return wavspa::eq(*this, other); }
Tensor Tensor::eq(Scalar other) const { return wavspa::eq(*this, other); }
Tensor Tensor::ne(const Tensor& other) const { return wavspa::ne(*this, other); }
Tensor Tensor::ne(Scalar other) const { return wavspa::ne(*this, other); }
Tensor Tensor::lt(const Tensor& other) const { return wavspa::lt(*this, other); }
Tensor Tensor::lt(Scalar other) const { return wavspa::lt(*this, other); }
Tensor Tensor::le(const Tensor& other) const { return wavspa::le(*this, other); }
Tensor Tensor::le(Scalar other) const { return wavspa::le(*this, other); }
Tensor Tensor::gt(const Tensor& other) const { return wavspa::gt(*this, other); }
Tensor Tensor::gt(Scalar other) const { return wavspa::gt(*this, other); }
Tensor Tensor::ge(const Tensor& other) const { return wavspa::ge(*this, other); }
Tensor Tensor::ge(Scalar other) const { return wavspa::ge(*this, other); }
Tensor Tensor::logical_not() const { return wavspa::logical_not(*this); }
Tensor Tensor::logical_and(const Tensor& other) const { return wavspa::logical_and(*this, other); }
Tensor Tensor::logical_or(const Tensor& other) const { return wavspa::logical_or(*this, other); }
Tensor Tensor::any() const { return wavspa::any(*this); }
Tensor Tensor::all() const { return wavspa::all(*this); }
Tensor Tensor::sum() const { return wavspa::sum(*this); }
Tensor Tensor::sum(int64_t d, bool keepdim) const { return wavspa::sum(*this, {d}, keepdim); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return wavspa::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return wavspa::mean(*this); }
Tensor Tensor::mean(int64_t d, bool keepdim) const { return wavspa::mean(*this, {d}, keepdim); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const { return wavspa::mean(*this, dims, keepdim); }
Tensor Tensor::max() const { return wavspa::max(*this); }
Tensor Tensor::max(int64_t d, bool keepdim) const { return wavspa::max(*this, {d}, keepdim); }
Tensor Tensor::min() const { return wavspa::min(*this); }
Tensor Tensor::min(int64_t d, bool keepdim) const { return wavspa::min(*this, {d}, keepdim); }
Tensor Tensor::argmax() const { return wavspa::argmax(*this); }
Tensor Tensor::argmax(int64_t d, bool keepdim) const { return wavspa::argmax(*this, d, keepdim); }
Tensor Tensor::argmin(int64_t d, bool keepdim) const { return wavspa::argmin(*this, d, keepdim); }
Tensor Tensor::softmax(int64_t d) const { return wavspa::softmax(*this, d); }
Tensor Tensor::log_softmax(int64_t d) const { return wavspa::log_softmax(*this, d); }

// ---- printing -------------------------------------------------------------------------

namespace {

constexpr int64_t kEdgeItems = 3;      // shown at each end of a long dim
constexpr int64_t kSummarizeAbove = 1000;

void print_values(std::ostream& os, const std::vector<double>& v, const Shape& shape,
                  const Shape& strides, int64_t dim, int64_t base, bool summarize, int width,
                  int precision, char kind, int indent) {
  if (dim == (int64_t)shape.size()) {
    if (kind == 'b') os << std::setw(width) << (v[base] != 0 ? "True" : "False");
    else if (kind == 'i') os << std::setw(width) << (int64_t)v[base];
    else os << std::setw(width) << std::fixed << std::setprecision(precision) << v[base];
    return;
  }
  const int64_t n = shape[dim];
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << "...";
      i = n - kEdgeItems - 1;
      if (dim + 1 < (int64_t)shape.size()) os << ",\n" << std::string(indent + 1, ' ');
      else os << ", ";
      continue;
    }
    print_values(os, v, shape, strides, dim + 1, base + i * strides[dim], summarize, width,
                 precision, kind, indent + 1);
    if (i + 1 < n) {
      os << ',';
      if (dim + 1 < (int64_t)shape.size()) os << std::string(shape.size() - dim - 1, '\n')
                                               << std::string(indent + 1, ' ');
      else os << ' ';
    }
  }
  os << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  std::vector<double> v = t.to(kFloat64).to_vector<double>();
  const bool integral = !is_floating(t.dtype());
  // 'b': True/False as PyTorch prints bools; 'i': integers; 'f': fixed-point.
  const char kind = t.dtype() == kBool ? 'b' : integral ? 'i' : 'f';
  const bool summarize = t.numel() > kSummarizeAbove;
  double largest = 0;
  for (double x : v) largest = std::max(largest, std::isfinite(x) ? std::abs(x) : 0.0);
  const int precision = 4;
  int width = kind == 'b' ? 5 : integral ? (int)std::to_string((int64_t)largest).size() + 1
                       : (int)std::to_string((int64_t)largest).size() + precision + 2;
  os << "tensor(";
  if (t.dim() == 0) {
    print_values(os, v, {}, {}, 0, 0, false, 0, precision, kind, 0);
  } else {
    print_values(os, v, t.shape(), contiguous_strides(t.shape()), 0, 0, summarize, width,
                 precision, kind, 7);
  }
  os << ", shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (!t.device().is_cpu()) os << ", device=" << t.device();
  if (t.requires_grad()) {
    if (t.is_leaf()) os << ", requires_grad";
    else os << ", grad_fn=" << t.grad_fn_name();
  }
  return os << ")";
}

}  // namespace wavspa

// Tensor: a cheap, shared handle to a TensorImpl (shape, strides, offset, dtype) that views
// a Storage. Copying a Tensor copies the handle; views (transpose, narrow, expand, ...) share
// the Storage, so a write through a view is seen by every tensor on that storage.
//
//   using namespace wavspa;
//   Tensor x = randn({4, 3}).requires_grad_();
//   Tensor y = (x.t().matmul(x)).sum();     // ops from ops/, recorded for autograd
//   y.backward();
//   std::cout << x.grad() << "\n";
//
// Layering: this header belongs to core/, which knows nothing of backends or autograd.
// Methods that compute (views that record gradients, contiguous, clone, to, arithmetic)
// are declared here for convenience and defined in ops/ (ops/tensor_methods.cpp); the
// autograd methods are defined in autograd/ (autograd/variable.cpp, and backward() in
// autograd/engine.cpp). This is the split
// PyTorch makes between TensorBody.h and ATen.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/scalar.h"
#include "core/shape.h"
#include "core/storage.h"

namespace wavspa {

namespace autograd {
struct AutogradMeta;  // defined in autograd/variable.h
}

struct TensorImpl {
  Storage storage;
  Shape shape;
  Shape strides;  // in elements; 0 for broadcast dims
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::shared_ptr<autograd::AutogradMeta> autograd;  // null: no gradient tracking
};

// Tensor::index's arguments, spelled as libtorch's torch::indexing spells them:
//
//   using namespace wavspa::indexing;
//   Tensor row = x.index({0});                           // x[0]
//   Tensor tail = x.index({Slice(1, None), -1});         // x[1:, -1]
//   Tensor cols = x.index({Ellipsis, Slice(None, None, 2)});  // x[..., ::2]
//   Tensor col = x.index({Slice(), None, 3});            // x[:, None, 3]
//
// An integer selects an entry and removes its dim (negative counts from the end); a Slice
// keeps the dim with Python's bounds (negative counts from the end, out of range clamps; the
// step must be positive, as in libtorch); None inserts a dim of size 1; one Ellipsis stands
// for the full dims the others leave. Every result is a view, recorded for autograd.
namespace indexing {
struct NoneIndex {};
inline constexpr NoneIndex None{};
struct EllipsisIndex {};
inline constexpr EllipsisIndex Ellipsis{};
// A slice bound: an integer, or None (the start or the end of the dim).
struct SliceBound {
  bool set = false;
  int64_t value = 0;
  SliceBound() = default;
  SliceBound(int64_t v) : set(true), value(v) {}  // NOLINT: implicit, as Python writes bounds
  SliceBound(int v) : set(true), value(v) {}      // NOLINT
  SliceBound(NoneIndex) {}                        // NOLINT
};
struct Slice {
  SliceBound start, stop;
  int64_t step = 1;
  Slice(SliceBound start_ = {}, SliceBound stop_ = {}, int64_t step_ = 1) : start(start_), stop(stop_), step(step_) {}
};
class TensorIndex {
 public:
  TensorIndex(int64_t i) : v_(i) {}     // NOLINT: implicit, so that {0, Slice(), None} reads as Python
  TensorIndex(int i) : v_((int64_t)i) {}  // NOLINT
  TensorIndex(Slice s) : v_(s) {}        // NOLINT
  TensorIndex(NoneIndex n) : v_(n) {}    // NOLINT
  TensorIndex(EllipsisIndex e) : v_(e) {}  // NOLINT
  const std::variant<int64_t, Slice, NoneIndex, EllipsisIndex>& value() const { return v_; }

 private:
  std::variant<int64_t, Slice, NoneIndex, EllipsisIndex> v_;
};
}  // namespace indexing

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (like a null pointer)
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- construction without computation (core/) ---------------------------------------
  // Uninitialised memory; fill it before reading.
  static Tensor empty(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
  // A new tensor header on this tensor's storage (no autograd; the building block of views).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;

  // --- metadata -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return (int64_t)impl().shape.size(); }
  int64_t size(int64_t dim) const;
  int64_t stride(int64_t dim) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  const Storage& storage() const { return impl().storage; }
  // Pointer to element 0 of this view (device memory for CUDA tensors).
  void* raw_data() const;
  template <typename T> T* data() const {
    WAVSPA_CHECK(dtype_of<T>() == dtype(), "data<", dtype_name(dtype_of<T>()),
                 ">(): the tensor holds ", dtype_name(dtype()));
    return static_cast<T*>(raw_data());
  }
  std::string describe() const;  // "float32 (2, 3) on cpu"
  TensorImpl& impl() const {
    WAVSPA_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  // In-place writes seen so far by this tensor's storage (shared with its views; see
  // StorageImpl::version). PyTorch's `x._version`.
  uint64_t version() const { return impl().storage->version(); }

  // --- element access (any device; copies one element), for tests and small code -------
  double item() const;                       // the only element of a one-element tensor
  double at(const Shape& index) const;       // element at a multi-index (negative wraps)
  void set(const Shape& index, double value);  // write one element in place
  template <typename T> std::vector<T> to_vector() const;  // all elements, row-major

  // --- views (share storage; differentiable; defined in ops/) --------------------------
  Tensor view(const Shape& shape) const;      // throws if no view exists: use reshape
  Tensor reshape(const Shape& shape) const;   // a view when possible, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor expand(const Shape& shape) const;          // -1 keeps a size; broadcasts size-1 dims
  Tensor broadcast_to(const Shape& shape) const { return expand(shape); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;

  // --- copies and conversions (ops/) ---------------------------------------------------
  Tensor contiguous() const;  // itself if already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor detach() const;  // same storage, no gradient history
  // this + other as a fresh contiguous tensor, in one pass and never recorded for backward;
  // same shape, dtype and device (the engine sums a node's incoming gradients with it).
  Tensor sum_with(const Tensor& other) const;

  // --- in place (ops/) -----------------------------------------------------------------
  // Each bumps version(). With grad mode on, a write to a non-leaf that requires grad (or
  // of a source that does) is recorded and becomes part of the graph; refused on a leaf that
  // requires grad and where another tensor shares the memory (see ops/tensor_methods.cpp).
  Tensor& copy_(const Tensor& src);  // broadcasts src to this shape; converts dtype
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
  Tensor& mul_(double factor);

  // --- autograd (autograd/) ------------------------------------------------------------
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& grad);
  void zero_grad();  // drops the gradient (the next backward sets it afresh)
  // Points this leaf (every handle to it) at `value`'s storage, shape, strides and dtype,
  // keeping its identity and requires_grad: PyTorch's `x.data = value`. The gradient is
  // dropped when the shape, dtype or device changes. Module::to uses it, so that optimizers
  // and other holders of a parameter see the moved tensor.
  Tensor& set_data(const Tensor& value);
  bool is_leaf() const;
  std::string grad_fn_name() const;  // "" for leaves
  // Backpropagates from this tensor. A non-scalar needs `gradient` (same shape).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // --- indexing (views, differentiable; ops/) ------------------------------------------
  Tensor index(std::initializer_list<indexing::TensorIndex> indices) const;
  Tensor index(const std::vector<indexing::TensorIndex>& indices) const;
  Tensor operator[](int64_t i) const { return select(0, i); }

  // --- ops as methods: the free functions of ops/ (same values, same bits), for code
  // written as libtorch code is (x.sum(1), x.add(y), x.eq(0)) ----------------------------
  Tensor matmul(const Tensor& other) const;
  Tensor add(const Tensor& other) const;
  Tensor add(Scalar other) const;
  Tensor sub(const Tensor& other) const;
  Tensor sub(Scalar other) const;
  Tensor mul(const Tensor& other) const;
  Tensor mul(Scalar other) const;
  Tensor div(const Tensor& other) const;
  Tensor div(Scalar other) const;
  Tensor pow(Scalar exponent) const;
  Tensor neg() const;
  Tensor abs() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor eq(const Tensor& other) const;  // comparisons: bool
  Tensor eq(Scalar other) const;
  Tensor ne(const Tensor& other) const;
  Tensor ne(Scalar other) const;
  Tensor lt(const Tensor& other) const;
  Tensor lt(Scalar other) const;
  Tensor le(const Tensor& other) const;
  Tensor le(Scalar other) const;
  Tensor gt(const Tensor& other) const;
  Tensor gt(Scalar other) const;
  Tensor ge(const Tensor& other) const;
  Tensor ge(Scalar other) const;
  Tensor logical_not() const;
  Tensor logical_and(const Tensor& other) const;
  Tensor logical_or(const Tensor& other) const;
  Tensor any() const;  // 0-d bool: is any element nonzero
  Tensor all() const;
  Tensor sum() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor max() const;
  Tensor max(int64_t dim, bool keepdim = false) const;
  Tensor min() const;
  Tensor min(int64_t dim, bool keepdim = false) const;
  Tensor argmax() const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor argmin(int64_t dim, bool keepdim = false) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Readable printing: shape, dtype, device and values (long tensors elided).
std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace wavspa

#include "ops/linalg.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

struct MatrixLayout {
  bool trans;
  int64_t ld;
};

// How a (rows, cols) matrix view can be handed to GEMM without a copy: row-major (unit
// column stride) or column-major (unit row stride, passed as a transpose).
std::optional<MatrixLayout> gemm_layout(int64_t rows, int64_t cols, int64_t row_stride,
                                        int64_t col_stride) {
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cols))
    return MatrixLayout{false, rows == 1 ? std::max<int64_t>(cols, 1) : row_stride};
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rows))
    return MatrixLayout{true, cols == 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return std::nullopt;
}

// Merges batch dims into one stride if their memory pattern allows (stride 0 included).
std::optional<int64_t> batch_stride(const Tensor& t, int64_t batch_dims) {
  std::optional<int64_t> stride;
  int64_t expected_next = -1;
  for (int64_t d = batch_dims - 1; d >= 0; --d) {
    int64_t size = t.shape()[d], st = t.strides()[d];
    if (size == 1) continue;
    if (!stride) {
      stride = st;
    } else if (st != expected_next) {
      return std::nullopt;
    }
    expected_next = st * size;
  }
  return stride ? *stride : 0;
}

// a (..., m, k) @ b (..., k, n) with batch dims broadcast; no autograd.
Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in) {
  const int64_t m = a_in.shape()[a_in.dim() - 2], k = a_in.shape()[a_in.dim() - 1];
  const int64_t n = b_in.shape()[b_in.dim() - 1];
  Shape batch = broadcast_shapes(Shape(a_in.shape().begin(), a_in.shape().end() - 2),
                                 Shape(b_in.shape().begin(), b_in.shape().end() - 2), "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, a_in.dtype(), a_in.device());
  const int64_t nb = shape_numel(batch);
  if (out.numel() == 0) return out;
  Backend& be = backend_of(a_in);
  if (k == 0) {
    be.fill(out, 0.0);
    return out;
  }

  // b without batch: fold a's batch into its rows and run one GEMM.
  bool b_flat = true;
  for (int64_t d = 0; d < b_in.dim() - 2; ++d) b_flat &= b_in.shape()[d] == 1;
  if (b_flat && nb > 1) {
    Tensor a2 = contiguous_raw(a_in);  // rows of all batches back to back
    Tensor b2 = b_in.as_strided({k, n}, {b_in.strides()[b_in.dim() - 2], b_in.strides().back()},
                                b_in.offset());
    auto lb = gemm_layout(k, n, b2.strides()[0], b2.strides()[1]);
    if (!lb) {
      b2 = contiguous_raw(b2);
      lb = MatrixLayout{false, n};
    }
    GemmArgs g{false, lb->trans, nb * m, n, k, k, lb->ld, n, 1.0, 0.0};
    // a2 may have size-1 batch dims broadcast against b; out has the full batch.
    if (a2.numel() == nb * m * k) {
      be.gemm(g, a2, b2, out);
      return out;
    }
  }

  // General batched case: expand both to the full batch, then find GEMM-ready layouts.
  auto prepare = [&](Tensor t, int64_t rows, int64_t cols, MatrixLayout& layout,
                     int64_t& stride) {
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    t = expand_raw(t, full);
    const int64_t nd = t.dim();
    auto l = gemm_layout(rows, cols, t.strides()[nd - 2], t.strides()[nd - 1]);
    auto s = batch_stride(t, nd - 2);
    if (!l || !s) {
      t = contiguous_raw(t);
      l = MatrixLayout{false, cols};
      s = rows * cols;
    }
    layout = *l;
    stride = *s;
    return t;
  };
  MatrixLayout la, lb;
  int64_t sa = 0, sb = 0;
  Tensor a = prepare(a_in, m, k, la, sa);
  Tensor b = prepare(b_in, k, n, lb, sb);
  GemmArgs g{la.trans, lb.trans, m, n, k, la.ld, lb.ld, n, 1.0, 0.0};
  if (nb == 1) {
    be.gemm(g, a, b, out);
  } else {
    be.batched_gemm(g, nb, a, sa, b, sb, out, m * n);
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  ProfileScope scope("matmul", a_in);
  // Autocast: both operands in bfloat16 (casts of the graph), a bfloat16 product.
  const bool cast = autocasting(a_in) && autocasting(b_in);
  const Tensor a = cast ? autocast_bf16(a_in) : a_in, b = cast ? autocast_bf16(b_in) : b_in;
  check_same("matmul", a, b);
  check_floating("matmul", a);
  WAVSPA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (a.dim() == 1 || b.dim() == 1) {
    // Promote the 1-D operand to a matrix, then drop the dim it added.
    Tensor r = matmul(a.dim() == 1 ? a.unsqueeze(0) : a, b.dim() == 1 ? b.unsqueeze(-1) : b);
    if (b.dim() == 1) r = r.squeeze(-1);
    if (a.dim() == 1) r = r.squeeze(b.dim() == 1 ? -1 : -2);
    return r;
  }
  WAVSPA_CHECK(a.shape().back() == b.shape()[b.dim() - 2], "matmul: inner dimensions differ: ",
               shape_str(a.shape()), " @ ", shape_str(b.shape()), " (", a.shape().back(),
               " vs ", b.shape()[b.dim() - 2], ")");
  Tensor out = matmul_raw(a, b);
  if (scope)  // a multiply-add per output element and inner index
    scope.set_io(bytes_of(a) + bytes_of(b), bytes_of(out), 2.0 * (double)out.numel() * (double)a.shape().back());
  if (autograd::needs_grad({a, b})) {
    Tensor da = a.detach(), db = b.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    autograd::record("MatmulBackward", {a, b}, out, {da, db}, [da, db, need_a, need_b](const Tensor& g) {
      Tensor ga, gb;
      if (need_a) ga = sum_to(matmul(g, db.transpose(-1, -2)), da.shape());
      if (need_b) {
        if (db.dim() == 2 && da.dim() > 2) {
          // b shared by every batch: one GEMM over all rows instead of a batch + sum.
          const int64_t k = da.shape().back(), n = g.shape().back();
          gb = matmul(da.reshape({-1, k}).t(), g.reshape({-1, n}));
        } else {
          gb = sum_to(matmul(da.transpose(-1, -2), g), db.shape());
        }
      }
      return G{ga, gb};
    });
  }
  return out;
}

namespace {

// ---- bfloat16 copies of parameters (refresh_autocast_weights) -------------------------------
//
// One entry per parameter storage, keyed by its address and checked against the parameter
// (storage alive, offset, shape, strides) at every use; the copy is contiguous and keeps its
// storage for life, so a recorded CUDA graph may read it. Casting into it bumps its version,
// so a backward that saved the old copy refuses to run (autograd's saved-tensor check).
struct WeightCopy {
  std::weak_ptr<StorageImpl> storage;
  int64_t offset = 0;
  Shape shape, strides;
  uint64_t version = 0;  // the parameter's version the copy was made from
  Tensor copy;
};

std::mutex& weight_copies_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_map<const StorageImpl*, WeightCopy>& weight_copies() {
  static auto* m = new std::unordered_map<const StorageImpl*, WeightCopy>;  // never destroyed
  return *m;
}

void cast_into(const Tensor& param, const Tensor& copy) {
  NoGradGuard no_grad;
  backend_of(param).copy(param, copy);
  copy.impl().storage->bump_version();
}

// The bfloat16 copy of a float32 parameter linear reads under autocast: the kept one when the
// parameter has not changed since it was made, else made (or remade in place) now. Tensors
// that are not parameters (a leaf that requires grad) get a fresh copy each call.
Tensor param_bf16(const Tensor& weight) {
  if (!weight.requires_grad() || !weight.is_leaf()) {
    Tensor w16 = Tensor::empty(weight.shape(), kBFloat16, weight.device());
    if (w16.numel()) cast_into(weight, w16);
    return w16;
  }
  const Storage& storage = weight.impl().storage;
  std::lock_guard<std::mutex> lock(weight_copies_mutex());
  auto& copies = weight_copies();
  if (!copies.contains(storage.get()))  // a new parameter: forget the copies of dead ones first
    std::erase_if(copies, [](const auto& kv) { return kv.second.storage.expired(); });
  WeightCopy& e = copies[storage.get()];
  const bool same = e.copy.defined() && e.storage.lock() == storage && e.offset == weight.offset() &&
                    e.shape == weight.shape() && e.strides == weight.strides() &&
                    e.copy.device() == weight.device();
  if (!same) {
    e = WeightCopy{storage, weight.offset(), weight.shape(), weight.strides(), weight.version(),
                   Tensor::empty(weight.shape(), kBFloat16, weight.device())};
    if (e.copy.numel()) cast_into(weight, e.copy);
  } else if (e.version != weight.version()) {
    cast_into(weight, e.copy);
    e.version = weight.version();
  }
  return e.copy;
}

}  // namespace

void refresh_autocast_weights() {
  std::lock_guard<std::mutex> lock(weight_copies_mutex());
  auto& copies = weight_copies();
  // The stale copies of each device, cast together (one launch on CUDA: Backend::copy_many).
  std::vector<std::pair<Device, std::pair<std::vector<Tensor>, std::vector<Tensor>>>> work;
  for (auto it = copies.begin(); it != copies.end();) {
    Storage storage = it->second.storage.lock();
    if (!storage || !it->second.copy.defined()) {
      it = copies.erase(it);
      continue;
    }
    WeightCopy& e = it->second;
    if (storage->version() != e.version && e.copy.numel()) {
      Tensor param(std::make_shared<TensorImpl>(TensorImpl{storage, e.shape, e.strides, e.offset, kFloat32, nullptr}));
      auto w = std::find_if(work.begin(), work.end(), [&](const auto& x) { return x.first == e.copy.device(); });
      if (w == work.end()) w = work.insert(work.end(), {e.copy.device(), {}});
      w->second.first.push_back(param);
      w->second.second.push_back(e.copy);
      e.version = storage->version();
    }
    ++it;
  }
  NoGradGuard no_grad;
  for (auto& [device, pairs] : work) {
    backend_for(device).copy_many(pairs.first, pairs.second);
    for (const Tensor& copy : pairs.second) copy.impl().storage->bump_version();
  }
}

namespace {

// linear under autocast (core/runtime.h): x in bfloat16 (cast by the caller, in the graph),
// the float32 weight read through its bfloat16 copy (param_bf16) and kept for backward, the
// float32 bias through its bfloat16 copy too, added to the float32 accumulator before the one
// rounding (Backend::gemm_bias: cuBLASLt's epilogue on CUDA, no broadcast copy). Backward multiplies in bfloat16 with
// float32 accumulation and writes grad_x in bfloat16 but grad_weight and grad_bias straight
// into float32 (cuBLAS's mixed output), so the master weights get float32 gradients without
// a cast kernel. grad_bias is the backend's column_sum of g: one launch, in a fixed order.
Tensor linear_bf16(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t in = weight.shape()[1], out_f = weight.shape()[0];
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Backend& be = backend_of(x);
  Tensor x2 = contiguous_raw(x);
  x2 = x2.as_strided({rows, in}, {in, 1}, x2.offset());
  const Tensor w16 = param_bf16(weight);
  Tensor out = Tensor::empty({rows, out_f}, kBFloat16, x.device());
  {
    NoGradGuard no_grad;
    const GemmArgs g{false, true, rows, out_f, in, in, in, out_f, 1.0, 0.0};
    if (in == 0) {
      if (bias.defined()) be.copy(expand_raw(bias, {rows, out_f}), out);
      else be.fill(out, 0.0);
    } else if (rows > 0 && out_f > 0) {
      // The bias rounded to bfloat16 (its kept copy), added to the float32 accumulator.
      if (bias.defined()) be.gemm_bias(g, x2, w16, param_bf16(bias), out);
      else be.gemm(g, x2, w16, out);
    }
  }
  out = out.as_strided(out_shape, contiguous_strides(out_shape), 0);
  if (autograd::needs_grad({x, weight, bias})) {
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    const Tensor sx = x2.detach();
    const Shape x_shape = x.shape();
    autograd::record("LinearBf16Backward", {x, weight, bias}, out, {sx, w16},
                     [sx, w16, x_shape, need_x, need_w, need_b, rows, in, out_f](const Tensor& g) {
      Backend& be = backend_of(sx);
      Tensor g2 = contiguous_raw(g.dtype() == kBFloat16 ? g : g.to(kBFloat16));
      Tensor gx, gw, gb;
      if (need_x) {
        gx = Tensor::empty({rows, in}, kBFloat16, sx.device());
        if (gx.numel() && out_f == 0) be.fill(gx, 0.0);
        else if (gx.numel())
          be.gemm(GemmArgs{false, false, rows, in, out_f, out_f, in, in, 1.0, 0.0}, g2, w16, gx);
        gx = gx.reshape(x_shape);
      }
      if (need_w) {
        gw = Tensor::empty({out_f, in}, kFloat32, sx.device());
        if (gw.numel() && rows == 0) be.fill(gw, 0.0);
        else if (gw.numel())
          be.gemm(GemmArgs{true, false, out_f, in, rows, out_f, in, in, 1.0, 0.0}, g2, sx, gw);
      }
      if (need_b) {
        gb = Tensor::empty({out_f}, kFloat32, sx.device());
        if (out_f && rows == 0) {
          be.fill(gb, 0.0);
        } else if (out_f) {
          be.column_sum(g2.as_strided({rows, out_f}, {out_f, 1}, g2.offset()), gb);
        }
      }
      return G{gx, gw, gb};
    });
  }
  return out;
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& weight, const Tensor& bias) {
  ProfileScope scope("linear", x_in);
  const bool cast = autocasting(x_in) && autocasting(weight) && weight.dtype() == kFloat32 &&
                    (!bias.defined() || (autocasting(bias) && bias.dtype() == kFloat32));
  const Tensor x = cast ? autocast_bf16(x_in) : x_in;
  if (cast) {
    WAVSPA_CHECK(weight.device() == x.device(), "linear: input is on ", x.device(),
                 " but weight on ", weight.device());
  } else {
    check_same("linear", x, weight);
  }
  check_floating("linear", x);
  WAVSPA_CHECK(weight.dim() == 2, "linear: weight must be (out, in), got ",
               shape_str(weight.shape()));
  WAVSPA_CHECK(x.dim() >= 1 && x.shape().back() == weight.shape()[1], "linear: input ",
               shape_str(x.shape()), " does not end in weight's in-features ",
               weight.shape()[1], " (weight ", shape_str(weight.shape()), ")");
  const int64_t in = weight.shape()[1], out_f = weight.shape()[0];
  if (scope) {  // the product, and the bias added once per output element
    const double outputs = (double)shape_numel(Shape(x.shape().begin(), x.shape().end() - 1)) * (double)out_f;
    scope.set_io(bytes_of(x) + bytes_of(weight) + bytes_of(bias), outputs * (double)dtype_size(x.dtype()),
                 2.0 * outputs * (double)in + (bias.defined() ? outputs : 0.0));
  }
  if (bias.defined()) {
    if (cast) check_defined("linear", bias, "bias");
    else check_same("linear", x, bias);
    WAVSPA_CHECK(bias.dim() == 1 && bias.shape()[0] == out_f, "linear: bias must be (", out_f,
                 "), got ", shape_str(bias.shape()));
  }
  if (cast) return linear_bf16(x, weight, bias);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out;
  {
    NoGradGuard no_grad;
    const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
    Tensor xc = contiguous_raw(x);
    Tensor x2 = xc.as_strided({rows, in}, {in, 1}, xc.offset());
    out = Tensor::empty({rows, out_f}, x.dtype(), x.device());
    Backend& be = backend_of(x);
    Tensor w = contiguous_raw(weight);
    if (bias.defined()) be.copy(expand_raw(bias, {rows, out_f}), out);
    GemmArgs g{false, true, rows, out_f, in, in, in, out_f, 1.0, bias.defined() ? 1.0 : 0.0};
    if (in == 0) {
      if (!bias.defined()) be.fill(out, 0.0);
    } else if (rows > 0 && out_f > 0) {
      be.gemm(g, x2, w, out);
    }
    out = out.as_strided(out_shape, contiguous_strides(out_shape), 0);
  }
  if (autograd::needs_grad({x, weight, bias})) {
    Tensor dx = x.detach(), dw = weight.detach();
    bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    bool need_b = bias.defined() && bias.requires_grad();
    autograd::record("LinearBackward", {x, weight, bias}, out, {dx, dw},
                     [dx, dw, need_x, need_w, need_b, in, out_f](const Tensor& g) {
      Tensor g2 = g.reshape({-1, out_f});
      Tensor gx, gw, gb;
      if (need_x) gx = matmul(g2, dw).reshape(dx.shape());
      if (need_w) gw = matmul(g2.t(), dx.reshape({-1, in}));
      if (need_b) gb = sum(g2, {0});
      return G{gx, gw, gb};
    });
  }
  return out;
}

}  // namespace wavspa

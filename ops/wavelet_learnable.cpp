// Learnable wavelets that keep perfect reconstruction for any parameters (ops/wavelet.h): the
// orthogonal lattice (angles -> an orthonormal filter for the transforms of ops/wavelet.cpp)
// and the lifting scheme (learnable predict / update steps, and the fixed LeGall 5/3). The
// lattice is a backend primitive (one launch forward, one backward, up to kLatticeMaxK angles;
// longer ones compose elementwise ops); a lifting step is a backend primitive too (one launch
// a step, the symmetric extension an index map in the kernel, even and odd rows strided
// views). bfloat16 signals (CUDA) stay bfloat16 throughout, as the filter-bank transforms do.
#include "ops/wavelet.h"

#include <algorithm>

#include "autograd/variable.h"
#include "core/profiler.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/shape.h"
#include "ops/wavelet_primitives.h"

namespace wavspa {

using namespace ops_detail;
using namespace wavelet_detail;
using G = std::vector<Tensor>;

// ---- lattice ------------------------------------------------------------------------------

namespace {

// The lattice as elementwise ops (K - 1 delay-and-rotate steps of a few small ops each, and
// their backward through autograd): the path for K > kLatticeMaxK. The backends' primitive
// below computes the same sums in one launch per direction.
Tensor lattice_filter_composite(const Tensor& theta) {
  const int64_t K = theta.shape()[0];
  Tensor c = cos(theta), s = sin(theta);
  // The four polyphase polynomials, coefficients along dim 0 (powers of z^-1).
  Tensor e00 = c.narrow(0, 0, 1), e01 = s.narrow(0, 0, 1);
  Tensor e10 = neg(s.narrow(0, 0, 1)), e11 = c.narrow(0, 0, 1);
  for (int64_t i = 1; i < K; ++i) {
    // diag(1, z^-1): delay the second row by one coefficient, pad the first at the end
    Tensor zero = zeros_like(e00.narrow(0, 0, 1));
    Tensor r0a = concat({e00, zero}, 0), r0b = concat({e01, zero}, 0);
    Tensor r1a = concat({zero, e10}, 0), r1b = concat({zero, e11}, 0);
    // then the rotation R(theta_i) = [[c, s], [-s, c]] mixes the rows
    Tensor ci = c.narrow(0, i, 1), si = s.narrow(0, i, 1);
    e00 = add(mul(ci, r0a), mul(si, r1a));
    e01 = add(mul(ci, r0b), mul(si, r1b));
    e10 = sub(mul(ci, r1a), mul(si, r0a));
    e11 = sub(mul(ci, r1b), mul(si, r0b));
  }
  // h[2n] = E00[n], h[2n + 1] = E01[n]
  Shape out_shape = theta.shape();
  out_shape[0] = 2 * K;
  return stack({e00, e01}, 1).reshape(out_shape);
}

}  // namespace

Tensor lattice_filter(const Tensor& theta) {
  ProfileScope scope("lattice_filter", theta);
  check_floating_no_bf16("lattice_filter", theta);
  WAVSPA_CHECK(theta.dim() == 1 || theta.dim() == 2, "lattice_filter: angles must be (K) or "
               "(K, C), got ", shape_str(theta.shape()));
  const int64_t K = theta.shape()[0];
  WAVSPA_CHECK(K >= 1, "lattice_filter: needs at least one angle");
  if (K > kLatticeMaxK) return lattice_filter_composite(theta);
  // The primitive: (K, C) angles in, (2K, C) taps out, a channel per thread of the backend.
  const int64_t C = theta.dim() == 2 ? theta.shape()[1] : 1;
  Shape out_shape = theta.shape();
  out_shape[0] = 2 * K;
  Tensor th = contiguous_raw(theta);
  th = th.as_strided({K, C}, {C, 1}, th.offset());
  Tensor h = Tensor::empty({2 * K, C}, theta.dtype(), theta.device());
  if (C > 0) backend_of(theta).lattice_filter(th, h);
  if (scope) scope.set_io(bytes_of(theta), bytes_of(h), 0);
  if (autograd::needs_grad({theta})) {
    const Tensor saved = th.detach();
    const Shape theta_shape = theta.shape();
    autograd::record("LatticeFilterBackward", {theta}, h, {saved}, [saved, theta_shape, K, C](const Tensor& g) {
      Tensor gh = contiguous_raw(g);
      gh = gh.as_strided({2 * K, C}, {C, 1}, gh.offset());
      Tensor gt = Tensor::empty({K, C}, saved.dtype(), saved.device());
      if (C > 0) backend_of(saved).lattice_filter_backward(saved, gh, gt);
      return G{gt.reshape(theta_shape)};
    });
  }
  return h.reshape(out_shape);
}

// ---- lifting ------------------------------------------------------------------------------

namespace {

// Each step is one backend call (backend.h lifting_step): it reads the rows it filters through
// the symmetric extension's index map, adds to or subtracts from the other rows, and writes
// its result where it belongs, so the split into even and odd rows and the inverse's
// interleave are strided views, not copies. A transform is one autograd node: two launches
// forward, two adjoint steps and two filter gradients backward.

// t with unit channel stride (the lifting kernels' layout), a copy only when it has not.
Tensor unit_channels(const Tensor& t) {
  return t.shape()[2] <= 1 || t.strides()[2] == 1 ? t : contiguous_raw(t);
}

// The offsets that centre the filters: predict P taps on even rows for odd row m start at
// even row m - (P/2 - 1), update U taps on details for even row m at detail m - U/2.
int64_t predict_offset(int64_t P) { return -(P / 2 - 1); }
int64_t update_offset(int64_t U) { return -(U / 2); }

// A predict or update filter as the kernels take it: (K, Cw) contiguous, in the signal's
// compute dtype, on its device (differentiable, so the gradient reaches the parameter).
Tensor lifting_taps(const char* op, const Tensor& f, const char* what, const Tensor& signal, int64_t channels) {
  check_filter(op, f, what);
  if (f.dim() == 2)
    WAVSPA_CHECK(f.shape()[1] == channels, op, ": per-channel ", what, " ", shape_str(f.shape()), " needs ",
                 channels, " columns");
  const int64_t K = f.shape()[0], Cw = f.dim() == 2 ? channels : 1;
  return f.to(filter_dtype(signal.dtype())).to(signal.device()).reshape({K, Cw}).contiguous();
}

Tensor undefined_to_zeros(const Tensor& g, const Shape& shape, DType dtype, Device device) {
  if (!g.defined()) return zeros_raw(shape, dtype, device);
  return unit_channels(g.dtype() == dtype ? g : g.to(dtype));
}

Tensor filter_grad(const Tensor& g, const Tensor& v, int64_t offset, int sign, const Tensor& f) {
  Tensor gf = Tensor::empty(f.shape(), f.dtype(), f.device());
  backend_of(g).lifting_filter_grad(g, v, offset, sign, gf);
  return gf;
}

}  // namespace

std::pair<Tensor, Tensor> lifting_forward(const Tensor& x, const Tensor& predict, const Tensor& update,
                                          int64_t axis) {
  const char* op = "lifting_forward";
  // bfloat16 on CUDA as the filter banks take it (float32 taps and arithmetic, bfloat16 loads
  // and stores); the CPU refuses it naming the op.
  check_computable(op, x);
  AxisView v = axis_view(op, x, axis);
  WAVSPA_CHECK(v.N >= 2, op, ": needs at least 2 samples along axis ", v.axis, ", got ", v.N);
  Tensor fp = lifting_taps(op, predict, "predict filter", x, v.C);
  Tensor fu = lifting_taps(op, update, "update filter", x, v.C);
  ProfileScope scope(op, x);
  Tensor x3 = to_3d(x, v);
  const Tensor xd = unit_channels(x3.detach());
  const int64_t ne = (v.N + 1) / 2, no = v.N / 2;
  const int64_t op_ = predict_offset(fp.shape()[0]), ou = update_offset(fu.shape()[0]);
  const Tensor even = xd.slice(1, 0, v.N, 2), odd = xd.slice(1, 1, v.N, 2);
  Tensor d = Tensor::empty({v.A, no, v.C}, x.dtype(), x.device());
  Tensor s = Tensor::empty({v.A, ne, v.C}, x.dtype(), x.device());
  const Tensor fpd = fp.detach(), fud = fu.detach();
  if (v.A * v.C > 0) {
    Backend& be = backend_of(x);
    be.lifting_step(even, odd, fpd, op_, -1, d);  // d = odd - P ext(even)
    be.lifting_step(d, even, fud, ou, +1, s);     // s = even + U ext(d)
  }
  if (scope) scope.set_io(bytes_of(x), bytes_of(s) + bytes_of(d), 0);
  std::vector<Tensor> outs{s, d};
  if (autograd::needs_grad({x3, fp, fu})) {
    const bool need_x = x3.requires_grad(), need_p = fp.requires_grad(), need_u = fu.requires_grad();
    // The signal's gradient needs only the filters; the input (its even rows) and the details
    // are kept for the filter gradients alone (the fixed 5/3 keeps neither).
    const Tensor xs = need_p ? xd : Tensor(), ds = need_u ? d.detach() : Tensor();
    const AxisView vv = v;
    const DType dt = x.dtype();
    const Device dev = x.device();
    autograd::record("LiftingForwardBackward", {x3, fp, fu}, outs, {xs, ds, fpd, fud},
                     [xs, ds, fpd, fud, op_, ou, ne, no, vv, dt, dev, need_x, need_p, need_u](
                         const std::vector<Tensor>& g) {
      const Tensor gs = undefined_to_zeros(g[0], {vv.A, ne, vv.C}, dt, dev);
      const Tensor gd = undefined_to_zeros(g[1], {vv.A, no, vv.C}, dt, dev);
      // d's whole gradient (its own and through the update) lands in the odd rows of gx, the
      // even rows' (their own and through the predict) in the even rows.
      Tensor gx = Tensor::empty({vv.A, vv.N, vv.C}, dt, dev);
      const Tensor g_even = gx.slice(1, 0, vv.N, 2), g_odd = gx.slice(1, 1, vv.N, 2);
      Backend& be = backend_for(dev);
      if (vv.A * vv.C > 0) {
        be.lifting_step_adjoint(gs, gd, fud, ou, +1, g_odd);
        if (need_x) be.lifting_step_adjoint(g_odd, gs, fpd, op_, -1, g_even);
      } else {
        be.fill(gx, 0.0);
      }
      return G{need_x ? gx : Tensor(),
               need_p ? filter_grad(g_odd, xs.slice(1, 0, vv.N, 2), op_, -1, fpd) : Tensor(),
               need_u ? filter_grad(gs, ds, ou, +1, fud) : Tensor()};
    });
  }
  return {from_3d(outs[0], v), from_3d(outs[1], v)};
}

Tensor lifting_inverse(const Tensor& approx, const Tensor& detail, const Tensor& predict, const Tensor& update,
                       int64_t axis) {
  const char* op = "lifting_inverse";
  check_computable(op, approx);
  check_floating(op, approx);
  check_same(op, approx, detail);
  AxisView va = axis_view(op, approx, axis), vd = axis_view(op, detail, axis);
  WAVSPA_CHECK(va.A == vd.A && va.C == vd.C && (va.N == vd.N || va.N == vd.N + 1), op, ": approx ",
               shape_str(approx.shape()), " and detail ", shape_str(detail.shape()),
               " do not come from one signal (approx has as many or one more samples)");
  Tensor fp = lifting_taps(op, predict, "predict filter", approx, va.C);
  Tensor fu = lifting_taps(op, update, "update filter", approx, va.C);
  ProfileScope scope(op, approx);
  Tensor s3 = to_3d(approx, va), d3 = to_3d(detail, vd);
  const Tensor sd = unit_channels(s3.detach()), dd = unit_channels(d3.detach());
  const int64_t ne = va.N, no = vd.N, n = ne + no;
  const int64_t op_ = predict_offset(fp.shape()[0]), ou = update_offset(fu.shape()[0]);
  Tensor out = Tensor::empty({va.A, n, va.C}, approx.dtype(), approx.device());
  const Tensor even = out.slice(1, 0, n, 2), odd = out.slice(1, 1, n, 2);
  const Tensor fpd = fp.detach(), fud = fu.detach();
  if (va.A * va.C > 0) {
    Backend& be = backend_of(approx);
    be.lifting_step(dd, sd, fud, ou, -1, even);   // even = s - U ext(d)
    be.lifting_step(even, dd, fpd, op_, +1, odd);  // odd = d + P ext(even)
  }
  if (scope) scope.set_io(bytes_of(approx) + bytes_of(detail), bytes_of(out), 0);
  if (autograd::needs_grad({s3, d3, fp, fu})) {
    const bool need_s = s3.requires_grad(), need_d = d3.requires_grad();
    const bool need_p = fp.requires_grad(), need_u = fu.requires_grad();
    // As forward: the output (its even rows) and the details only for the filter gradients.
    const Tensor os = need_p ? out.detach() : Tensor(), ds = need_u ? dd : Tensor();
    const DType dt = approx.dtype();
    const Device dev = approx.device();
    const int64_t A = va.A, C = va.C;
    autograd::record("LiftingInverseBackward", {s3, d3, fp, fu}, out, {os, ds, fpd, fud},
                     [os, ds, fpd, fud, op_, ou, ne, no, n, A, C, dt, dev, need_s, need_d, need_p, need_u](
                         const Tensor& g_in) {
      const Tensor g = unit_channels(g_in.dtype() == dt ? g_in : g_in.to(dt));
      const Tensor g_even = g.slice(1, 0, n, 2), g_odd = g.slice(1, 1, n, 2);
      // s's gradient: the even rows' own and through the predict; d's: the odd rows' own and
      // through the update of the even rows.
      Tensor gs = Tensor::empty({A, ne, C}, dt, dev);
      Tensor gd = need_d ? Tensor::empty({A, no, C}, dt, dev) : Tensor();
      Backend& be = backend_for(dev);
      if (A * C > 0) {
        be.lifting_step_adjoint(g_odd, g_even, fpd, op_, +1, gs);
        if (need_d) be.lifting_step_adjoint(gs, g_odd, fud, ou, -1, gd);
      }
      return G{need_s ? gs : Tensor(), gd,
               need_p ? filter_grad(g_odd, os.slice(1, 0, n, 2), op_, +1, fpd) : Tensor(),
               need_u ? filter_grad(gs, ds, ou, -1, fud) : Tensor()};
    });
  }
  return from_3d(out, va);
}

std::pair<Tensor, Tensor> legall53_forward(const Tensor& x, int64_t axis) {
  return lifting_forward(x, tensor({0.5, 0.5}, filter_dtype(x.dtype()), x.device()),
                         tensor({0.25, 0.25}, filter_dtype(x.dtype()), x.device()), axis);
}

Tensor legall53_inverse(const Tensor& approx, const Tensor& detail, int64_t axis) {
  return lifting_inverse(approx, detail, tensor({0.5, 0.5}, filter_dtype(approx.dtype()), approx.device()),
                         tensor({0.25, 0.25}, filter_dtype(approx.dtype()), approx.device()), axis);
}

}  // namespace wavspa

// Learnable wavelets that keep perfect reconstruction for any parameters (ops/wavelet.h): the
// orthogonal lattice (angles -> an orthonormal filter for the transforms of ops/wavelet.cpp)
// and the lifting scheme (learnable predict / update steps, and the fixed LeGall 5/3). The
// lattice is a backend primitive (one launch forward, one backward, up to kLatticeMaxK angles;
// longer ones compose elementwise ops); a lifting step is one call of the analysis primitive
// (its filter over a subsequence, through an upsampled boundary map), and the split, the
// subtraction or addition and the interleave are elementwise and shape ops. bfloat16 signals
// (CUDA) stay bfloat16 throughout, as the filter-bank transforms do.
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

// sum_k f[k] * v[m + k + offset] for m in [0, n_out), v the n rows phase, phase + stride, ... of
// x (A, N, C), extended symmetrically. One analysis call on x (wavelet_primitives.h's
// upsampled_map: taps at even positions, the subsequence and its extension in the map), so
// a step is one launch and its backward the synthesis and filter-gradient kernels, with no
// copy of the subsequence, its extension or a product per tap.
Tensor lifting_filter(const char* op, const Tensor& x, int64_t stride, int64_t phase, int64_t n, const Tensor& f,
                      int64_t offset, int64_t n_out, int64_t channels) {
  check_filter(op, f, "lifting filter");
  const int64_t K = f.shape()[0];
  if (f.dim() == 2)
    WAVSPA_CHECK(f.shape()[1] == channels, op, ": per-channel lifting filter ",
                 shape_str(f.shape()), " needs ", channels, " columns");
  const int64_t Cw = f.dim() == 2 ? channels : 1;
  Tensor fk = f.to(filter_dtype(x.dtype())).to(x.device()).reshape({K, 1, Cw});
  Tensor w2 = concat({fk, zeros_like(fk)}, 1).reshape({1, 2 * K, Cw});  // w2[2k] = f[k], w2[2k + 1] = 0
  const int64_t left = std::max<int64_t>(0, -offset);
  const int64_t total = left + std::max<int64_t>(n_out + K - 1 + offset, n) + 1;
  auto map = upsampled_map(WaveletMode::Symmetric, n, left, total, stride, phase, x.shape()[1]);
  return analysis(x, map, w2, 2 * (left + offset), n_out)[0];
}

}  // namespace

std::pair<Tensor, Tensor> lifting_forward(const Tensor& x_in, const Tensor& predict,
                                          const Tensor& update, int64_t axis) {
  const char* op = "lifting_forward";
  // bfloat16 on CUDA as the analysis primitive takes it (float32 taps and arithmetic, bfloat16
  // loads and stores); the CPU refuses it naming the op.
  const Tensor& x = x_in;
  check_computable(op, x);
  AxisView v = axis_view(op, x, axis);
  WAVSPA_CHECK(v.N >= 2, op, ": needs at least 2 samples along axis ", v.axis, ", got ", v.N);
  Tensor x3 = to_3d(x, v);
  const int64_t ne = (v.N + 1) / 2, no = v.N / 2;
  Tensor even = x3.slice(1, 0, v.N, 2), odd = x3.slice(1, 1, v.N, 2);
  const int64_t P = predict.defined() ? predict.shape()[0] : 0;
  const int64_t U = update.defined() ? update.shape()[0] : 0;
  Tensor d = sub(odd, lifting_filter(op, x3, 2, 0, ne, predict, -(P / 2 - 1), no, v.C));
  Tensor s = add(even, lifting_filter(op, d, 1, 0, no, update, -(U / 2), ne, v.C));
  return {from_3d(s, v), from_3d(d, v)};
}

Tensor lifting_inverse(const Tensor& approx_in, const Tensor& detail_in, const Tensor& predict,
                       const Tensor& update, int64_t axis) {
  const char* op = "lifting_inverse";
  const Tensor &approx = approx_in, &detail = detail_in;
  check_computable(op, approx);
  check_floating(op, approx);
  check_same(op, approx, detail);
  AxisView va = axis_view(op, approx, axis), vd = axis_view(op, detail, axis);
  WAVSPA_CHECK(va.A == vd.A && va.C == vd.C && (va.N == vd.N || va.N == vd.N + 1), op,
               ": approx ", shape_str(approx.shape()), " and detail ", shape_str(detail.shape()),
               " do not come from one signal (approx has as many or one more samples)");
  Tensor s = to_3d(approx, va), d = to_3d(detail, vd);
  const int64_t ne = va.N, no = vd.N, n = ne + no;
  const int64_t P = predict.shape()[0], U = update.shape()[0];
  Tensor even = sub(s, lifting_filter(op, d, 1, 0, no, update, -(U / 2), ne, va.C));
  Tensor odd = add(d, lifting_filter(op, even, 1, 0, ne, predict, -(P / 2 - 1), no, va.C));
  // interleave: even samples at 2n, odd at 2n + 1
  Tensor padded_odd = no < ne ? concat({odd, zeros_like(even.narrow(1, 0, 1))}, 1) : odd;
  Tensor both = stack({even, padded_odd}, 2).reshape({va.A, 2 * ne, va.C}).narrow(1, 0, n);
  AxisView out = va;
  return from_3d(both, out);
}

std::pair<Tensor, Tensor> legall53_forward(const Tensor& x, int64_t axis) {
  return lifting_forward(x, tensor({0.5, 0.5}, x.dtype(), x.device()),
                         tensor({0.25, 0.25}, x.dtype(), x.device()), axis);
}

Tensor legall53_inverse(const Tensor& approx, const Tensor& detail, int64_t axis) {
  return lifting_inverse(approx, detail, tensor({0.5, 0.5}, approx.dtype(), approx.device()),
                         tensor({0.25, 0.25}, approx.dtype(), approx.device()), axis);
}

}  // namespace wavspa

// Real FFTs on two backend kernels: fft_r2c (real signal -> bins 0..n/2) and fft_c2r (half
// spectrum -> real signal, unnormalised, Hermitian symmetry implied), both along the middle
// dim of an (A, n, C) view, so no axis needs a transpose.
//
// The adjoints. Write theta = 2 pi k t / n, m = n / 2 + 1 and G_k = gRe_k + i gIm_k, and
// let w_k = 1 for k = 0 and (n even) k = n / 2, w_k = 2 for the other bins: the kernel's
// inverse is c2r(Y)_t = sum_{k<m} w_k Re(Y_k e^{i theta}), since every inner bin stands
// for itself and its conjugate mirror n - k.
//  - rfft: Re X_k = sum_t x_t cos(theta), Im X_k = -sum_t x_t sin(theta), so
//    grad x_t = sum_{k<m} (gRe_k cos(theta) - gIm_k sin(theta)) = sum_k Re(G_k e^{i theta})
//             = c2r(G / w)_t.
//    That is not irfft(G) * n: the inner bins are halved first. The imaginary parts of G_0
//    and G_{n/2} drop out, as they should (Im X_0 and Im X_{n/2} are constant zeros).
//  - irfft: x_t = (1/n) sum_k w_k (Re X_k cos(theta) - Im X_k sin(theta)), so
//    grad Re X_k = (w_k / n) sum_t g_t cos(theta) and grad Im X_k = -(w_k / n) sum_t g_t
//    sin(theta), i.e. grad X = (w / n) * rfft(g). rfft(g) has exact zeros in Im of bins 0
//    and n/2, the gradient of the inputs irfft ignores.
//  - fft_real_2d: with the DFT F = Cos - i Sin on each axis (both symmetric matrices, the
//    two axes' maps commuting), Re(F0 F1 x) = (Cos0 Cos1 - Sin0 Sin1) x, a symmetric matrix:
//    the backward is the forward applied to g.
#include "ops/fft.h"

#include <algorithm>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/shape.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

// Real x (any strides) -> its bins 0..n/2 along `axis` (wrapped), trailing dim 2. No autograd.
Tensor r2c_raw(const Tensor& x, int64_t axis) {
  Tensor xc = contiguous_raw(x);
  const AroundDim v = around_dim(x.shape(), axis);
  const int64_t A = v.outer, n = v.size, C = v.inner, m = n / 2 + 1;
  Shape shape = x.shape();
  shape[axis] = m;
  shape.push_back(2);
  Tensor spec = Tensor::empty(shape, x.dtype(), x.device());
  backend_of(x).fft_r2c(xc.as_strided({A, n, C}, {n * C, C, 1}, xc.offset()),
                        spec.as_strided({A, m, C, 2}, {m * C * 2, C * 2, 2, 1}, spec.offset()));
  return spec;
}

// Half spectrum X (trailing dim 2, n / 2 + 1 bins along `axis`) -> scale * c2r(X), a real
// signal of length n along `axis`. No autograd.
Tensor c2r_raw(const Tensor& X, int64_t n, int64_t axis, double scale) {
  Tensor Xc = contiguous_raw(X);
  Shape shape = X.shape();
  shape.pop_back();
  const AroundDim v = around_dim(shape, axis);
  const int64_t A = v.outer, m = v.size, C = v.inner;
  shape[axis] = n;
  Tensor out = Tensor::empty(shape, X.dtype(), X.device());
  backend_of(X).fft_c2r(Xc.as_strided({A, m, C, 2}, {m * C * 2, C * 2, 2, 1}, Xc.offset()), scale,
                        out.as_strided({A, n, C}, {n * C, C, 1}, out.offset()));
  return out;
}

// Per-bin factors for a spectrum of `dims` dims (trailing 2 included): `edge` for bin 0 and
// (n even) bin n / 2, `inner` for the others, shaped (1, .., m at axis, .., 1).
Tensor bin_factors(const Tensor& like, int64_t n, int64_t axis, int64_t dims, double edge,
                   double inner) {
  const int64_t m = n / 2 + 1;
  std::vector<double> f(m, inner);
  f[0] = edge;
  if (n % 2 == 0) f[m - 1] = edge;
  Shape shape(dims, 1);
  shape[axis] = m;
  return from_vector(f).to(like.dtype()).to(like.device()).reshape(shape);
}

Tensor rfft_backward(const Tensor& g, int64_t n, int64_t axis) {
  return c2r_raw(mul(g, bin_factors(g, n, axis, g.dim(), 1.0, 0.5)), n, axis, 1.0);
}

Tensor irfft_backward(const Tensor& g, int64_t n, int64_t axis) {
  const double dn = (double)n;
  Tensor spec = r2c_raw(g, axis);
  return mul(spec, bin_factors(spec, n, axis, spec.dim(), 1.0 / dn, 2.0 / dn));
}

// The full length-n spectrum along `axis` from two half spectra (bins 0..n/2): bin k is
// lo's bin k for k <= n/2, and hi's bin n - k above.
Tensor mirror_pair(const Tensor& lo, const Tensor& hi, int64_t axis, int64_t n) {
  const int64_t m = lo.shape()[axis];
  if (m == n) return lo;  // n = 1 or 2: no bin above n/2
  std::vector<int64_t> index(n);
  for (int64_t k = 0; k < n; ++k) index[k] = k < m ? k : m + (n - k);
  return index_select(concat({lo, hi}, axis), axis, from_vector(index, {}, lo.device()));
}

// Re(F0 F1 x) = Cos0 Cos1 x - Sin0 Sin1 x (rfft gives Re = Cos x, Im = -Sin x). Both terms
// come from one r2c along a1 and two along a0 over the half grid of bins (k0, k1) <= (n0/2,
// n1/2). Mirroring a bin (k -> n - k) keeps a cosine and negates a sine, so the full grid is
// cc - s0 s1 ss with s = -1 on mirrored bins: D = cc - ss where zero or two indices are
// mirrored, S = cc + ss where one is.
Tensor real_2d_raw(const Tensor& x, int64_t a0, int64_t a1) {
  NoGradGuard no_grad;  // the ops below are the forward's internals, not graph nodes
  const int64_t n0 = x.shape()[a0], n1 = x.shape()[a1];
  Tensor h = r2c_raw(x, a1);                               // (.., n1/2+1 at a1, .., 2)
  Tensor cc = r2c_raw(h.select(-1, 0), a0).select(-1, 0);  // Cos0 Cos1 x on the half grid
  Tensor ss = r2c_raw(h.select(-1, 1), a0).select(-1, 1);  // -Sin0 (-Sin1 x) = Sin0 Sin1 x
  Tensor D = sub(cc, ss), S = add(cc, ss);
  Tensor top = mirror_pair(D, S, a1, n1);     // rows k0 <= n0/2, all n1 columns
  Tensor bottom = mirror_pair(S, D, a1, n1);  // the rows that mirror to k0 > n0/2
  return mirror_pair(top, bottom, a0, n0);
}

}  // namespace

Tensor rfft(const Tensor& x_in, int64_t axis) {
  const char* op = "rfft";
  const Tensor x = autocast_fp32(x_in);  // no bfloat16 kernels: autocast computes in float32
  check_floating_no_bf16(op, x);
  WAVSPA_CHECK(x.dim() >= 1, op, ": expected a signal of at least 1 dim, got a 0-d tensor");
  const int64_t ax = wrap_dim(axis, x.dim(), op), n = x.shape()[ax];
  WAVSPA_CHECK(n >= 1, op, ": expected at least one sample along axis ", ax, ", got shape ",
               shape_str(x.shape()));
  Tensor out = r2c_raw(x, ax);
  if (autograd::needs_grad({x})) {
    autograd::record("RfftBackward", {x}, out, {}, [n, ax](const Tensor& g) {
      return G{rfft_backward(g, n, ax)};
    });
  }
  return out;
}

Tensor irfft(const Tensor& X_in, int64_t n, int64_t axis) {
  const char* op = "irfft";
  const Tensor X = autocast_fp32(X_in);
  check_floating_no_bf16(op, X);
  WAVSPA_CHECK(X.dim() >= 2 && X.shape().back() == 2, op, ": expected a complex tensor with a "
               "trailing dim of size 2 (real, imag) and at least one dim before it, got shape ",
               shape_str(X.shape()), "; did you pass a real signal? (rfft makes the layout)");
  const int64_t ax = wrap_dim(axis, X.dim() - 1, op), m = X.shape()[ax];
  WAVSPA_CHECK(n >= 1, op, ": expected an output length n >= 1, got ", n);
  WAVSPA_CHECK(m == n / 2 + 1, op, ": n = ", n, " needs n / 2 + 1 = ", n / 2 + 1,
               " frequency bins along axis ", ax, ", got ", m, " (shape ", shape_str(X.shape()),
               ")", m >= 1 ? str("; ", m, " bins come from n = ", 2 * m - 2, " or ", 2 * m - 1)
                           : std::string());
  Tensor out = c2r_raw(X, n, ax, 1.0 / (double)n);
  if (autograd::needs_grad({X})) {
    autograd::record("IrfftBackward", {X}, out, {}, [n, ax](const Tensor& g) {
      return G{irfft_backward(g, n, ax)};
    });
  }
  return out;
}

Tensor fft_real_2d(const Tensor& x_in, int64_t axis0, int64_t axis1) {
  const char* op = "fft_real_2d";
  const Tensor x = autocast_fp32(x_in);
  check_floating_no_bf16(op, x);
  WAVSPA_CHECK(x.dim() >= 2, op, ": expected at least 2 dims, got shape ", shape_str(x.shape()));
  const int64_t a0 = wrap_dim(axis0, x.dim(), op), a1 = wrap_dim(axis1, x.dim(), op);
  WAVSPA_CHECK(a0 != a1, op, ": the two axes must differ, got ", axis0, " and ", axis1,
               " for shape ", shape_str(x.shape()));
  WAVSPA_CHECK(x.shape()[a0] >= 1 && x.shape()[a1] >= 1, op, ": expected at least one sample "
               "along axes ", a0, " and ", a1, ", got shape ", shape_str(x.shape()));
  // The map does not depend on the axis order. The first r2c reads all of x and the last
  // mirror writes all of y: along the inner axis the first is a contiguous gather, along
  // the outer one the second copies whole rows.
  const int64_t outer = std::min(a0, a1), inner = std::max(a0, a1);
  Tensor out = real_2d_raw(x, outer, inner);
  if (autograd::needs_grad({x})) {
    autograd::record("FftReal2dBackward", {x}, out, {}, [outer, inner](const Tensor& g) {
      return G{real_2d_raw(g, outer, inner)};
    });
  }
  return out;
}

}  // namespace wavspa

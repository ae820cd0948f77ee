// 2-D wavelet transforms (ops/wavelet.h), separable over two axes with pywt.dwt2's
// conventions: each is a composition of the 1-D transforms of ops/wavelet.cpp.
#include "ops/wavelet.h"

#include <algorithm>

#include "ops/common.h"

namespace wavspa {

using namespace ops_detail;

namespace {
std::pair<int64_t, int64_t> check_axes(const char* op, const Tensor& x,
                                       std::pair<int64_t, int64_t> axes) {
  check_defined(op, x);
  int64_t a0 = wrap_dim(axes.first, x.dim(), op), a1 = wrap_dim(axes.second, x.dim(), op);
  WAVSPA_CHECK(a0 != a1, op, ": the two axes must differ, got ", axes.first, " and ", axes.second);
  return {a0, a1};
}
}  // namespace

Coeffs2 dwt2(const Tensor& x, const Wavelet& wavelet, WaveletMode mode,
             std::pair<int64_t, int64_t> axes_in) {
  auto [a0, a1] = check_axes("dwt2", x, axes_in);
  auto [lo, hi] = dwt(x, wavelet, mode, a0);
  auto [aa, ad] = dwt(lo, wavelet, mode, a1);
  auto [da, dd] = dwt(hi, wavelet, mode, a1);
  return {aa, da, ad, dd};
}

Tensor idwt2(const Coeffs2& c, const Wavelet& wavelet, WaveletMode mode,
             std::pair<int64_t, int64_t> axes_in) {
  auto [a0, a1] = check_axes("idwt2", c.cA, axes_in);
  for (const Tensor* t : {&c.cH, &c.cV, &c.cD})
    WAVSPA_CHECK(t->defined() && t->shape() == c.cA.shape(), "idwt2: detail of shape ",
                 t->defined() ? shape_str(t->shape()) : "undefined", " differs from cA's ",
                 shape_str(c.cA.shape()));
  Tensor lo = idwt(c.cA, c.cV, wavelet, mode, a1);
  Tensor hi = idwt(c.cH, c.cD, wavelet, mode, a1);
  return idwt(lo, hi, wavelet, mode, a0);
}

Decomposition2 wavedec2(const Tensor& x, const Wavelet& wavelet, int64_t level, WaveletMode mode,
                        std::pair<int64_t, int64_t> axes_in) {
  auto [a0, a1] = check_axes("wavedec2", x, axes_in);
  // pywt.wavedec2's rule: the shorter axis decides the maximum.
  level = resolve_wavelet_level("wavedec2", level, std::min(x.shape()[a0], x.shape()[a1]),
                                wavelet.filter_length());
  Decomposition2 out;
  Tensor a = x;
  for (int64_t i = 0; i < level; ++i) {
    Coeffs2 c = dwt2(a, wavelet, mode, {a0, a1});
    out.details.insert(out.details.begin(), Details2{c.cH, c.cV, c.cD});
    a = c.cA;
  }
  out.cA = a;
  return out;
}

Tensor waverec2(const Decomposition2& d, const Wavelet& wavelet, WaveletMode mode,
                std::pair<int64_t, int64_t> axes_in) {
  auto [a0, a1] = check_axes("waverec2", d.cA, axes_in);
  Tensor a = d.cA;
  for (const Details2& det : d.details) {
    // pywt's rule per axis: an approximation one longer than the details drops its last row
    for (int64_t ax : {a0, a1})
      if (a.shape()[ax] == det.cH.shape()[ax] + 1) a = a.narrow(ax, 0, det.cH.shape()[ax]);
    a = idwt2({a, det.cH, det.cV, det.cD}, wavelet, mode, {a0, a1});
  }
  return a;
}

}  // namespace wavspa

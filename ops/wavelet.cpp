// Wavelet transforms as compositions of two differentiable primitives:
//   analysis  (stride-2 correlation with a bank of filters over a boundary-extended signal),
//   synthesis (its adjoint: stride-2 transposed correlation, wrapped or not).
// The boundary extension of a mode is a sparse linear map (RowMap: padded rows of at most
// three terms) that both kernels apply on the fly. Each primitive's backward is the other
// one plus a filter correlation, so dwt, idwt, wavedec and waverec get exact gradients for
// the signal and the filters without code of their own. Lifting uses a third primitive,
// `extend` (the extension materialised), whose backward is its transpose.
#include "ops/wavelet.h"

#include <cmath>
#include <map>
#include <memory>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/shape.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

// ---- modes ----------------------------------------------------------------------------

namespace {
const std::pair<WaveletMode, const char*> kModeNames[] = {
    {WaveletMode::Zero, "zero"},
    {WaveletMode::Constant, "constant"},
    {WaveletMode::Symmetric, "symmetric"},
    {WaveletMode::Reflect, "reflect"},
    {WaveletMode::Periodic, "periodic"},
    {WaveletMode::Smooth, "smooth"},
    {WaveletMode::Antisymmetric, "antisymmetric"},
    {WaveletMode::Antireflect, "antireflect"},
    {WaveletMode::Periodization, "periodization"},
};
}  // namespace

WaveletMode wavelet_mode(const std::string& name) {
  std::string valid;
  for (auto& [mode, n] : kModeNames) {
    if (name == n) return mode;
    valid += valid.empty() ? n : std::string(", ") + n;
  }
  throw Error(str("unknown wavelet mode '", name, "'; valid modes: ", valid));
}

const char* wavelet_mode_name(WaveletMode mode) {
  for (auto& [m, n] : kModeNames)
    if (m == mode) return n;
  return "?";
}

// ---- named filter banks ---------------------------------------------------------------

namespace {

struct BankEntry {
  const char* name;
  bool orthogonal;
  std::vector<double> dec_lo, dec_hi, rec_lo, rec_hi;
};

const std::vector<BankEntry>& bank_table() {
// Each line is WAVSPA_WAVELET(name, orthogonal, {dec_lo}, {dec_hi}, {rec_lo}, {rec_hi}); the
// braces contain commas, so the macro takes them as one variadic list.
#define WAVSPA_WAVELET(...) BankEntry{__VA_ARGS__},
  static const std::vector<BankEntry> table = {
#include "ops/wavelet_filters.inc"
  };
#undef WAVSPA_WAVELET
  return table;
}

}  // namespace

std::vector<std::string> wavelist() {
  std::vector<std::string> names;
  for (const auto& e : bank_table()) names.push_back(e.name);
  return names;
}

Wavelet::Wavelet(const std::string& wanted) {
  for (const auto& e : bank_table()) {
    if (wanted != e.name) continue;
    name = e.name;
    orthogonal = e.orthogonal;
    dec_lo = from_vector(e.dec_lo);
    dec_hi = from_vector(e.dec_hi);
    rec_lo = from_vector(e.rec_lo);
    rec_hi = from_vector(e.rec_hi);
    return;
  }
  throw Error(str("unknown wavelet '", wanted, "'; expected a PyWavelets discrete wavelet name "
                  "such as haar, db1..db38, sym2..sym20, coif1..coif17, bior2.2, rbio3.5, dmey"));
}

namespace {

void check_filter(const char* op, const Tensor& f, const char* what) {
  check_floating(op, f);
  WAVSPA_CHECK(f.dim() == 1 || f.dim() == 2, op, ": ", what, " must be (F) or (F, C), got ",
               shape_str(f.shape()));
  WAVSPA_CHECK(f.shape()[0] >= 2, op, ": ", what, " needs at least 2 taps, got ",
               shape_str(f.shape()));
}

// (-1)^(k + offset) along dim 0, shaped to broadcast against a (F) or (F, C) filter.
Tensor alternating_signs(const Tensor& f, int offset) {
  const int64_t F = f.shape()[0];
  std::vector<double> s(F);
  for (int64_t k = 0; k < F; ++k) s[k] = (k + offset) % 2 == 0 ? 1.0 : -1.0;
  Tensor t = from_vector(s).to(f.dtype()).to(f.device());
  return f.dim() == 2 ? t.unsqueeze(1) : t;
}

}  // namespace

Wavelet Wavelet::orthogonal_from(const Tensor& dec_lo) {
  check_filter("Wavelet::orthogonal_from", dec_lo, "dec_lo");
  WAVSPA_CHECK(dec_lo.shape()[0] % 2 == 0, "Wavelet::orthogonal_from: an orthogonal filter "
               "needs an even length, got ", dec_lo.shape()[0]);
  Wavelet w;
  w.name = "custom";
  w.orthogonal = true;
  w.dec_lo = dec_lo;
  w.rec_lo = flip(dec_lo, {0});
  w.rec_hi = mul(dec_lo, alternating_signs(dec_lo, 0));
  w.dec_hi = mul(w.rec_lo, alternating_signs(dec_lo, 1));
  return w;
}

Wavelet Wavelet::biorthogonal(const Tensor& dec_lo, const Tensor& dec_hi, const Tensor& rec_lo,
                              const Tensor& rec_hi) {
  const char* op = "Wavelet::biorthogonal";
  check_filter(op, dec_lo, "dec_lo");
  for (const Tensor* f : {&dec_hi, &rec_lo, &rec_hi}) {
    check_filter(op, *f, "filter");
    WAVSPA_CHECK(f->shape() == dec_lo.shape(), op, ": all four filters need dec_lo's shape ",
                 shape_str(dec_lo.shape()), ", got ", shape_str(f->shape()));
  }
  Wavelet w;
  w.name = "custom";
  w.dec_lo = dec_lo;
  w.dec_hi = dec_hi;
  w.rec_lo = rec_lo;
  w.rec_hi = rec_hi;
  return w;
}

int64_t dwt_max_level(int64_t n, int64_t filter_len) {
  WAVSPA_CHECK(n >= 0 && filter_len >= 1, "dwt_max_level: need n >= 0 and filter_len >= 1, got ",
               n, " and ", filter_len);
  if (filter_len <= 1 || n < filter_len - 1) return 0;
  return (int64_t)std::floor(std::log2((double)n / (double)(filter_len - 1)));
}

int64_t dwt_coeff_len(int64_t n, int64_t filter_len, WaveletMode mode) {
  WAVSPA_CHECK(n >= 1 && filter_len >= 1, "dwt_coeff_len: need n >= 1 and filter_len >= 1, got ",
               n, " and ", filter_len);
  if (mode == WaveletMode::Periodization) return (n + 1) / 2;
  return (n + filter_len - 1) / 2;
}

// ---- the four primitives ----------------------------------------------------------------

namespace {

// The source terms of extended sample n (any integer) of a signal of length N.
ExtendRow extension_row(WaveletMode mode, int64_t N, int64_t n) {
  ExtendRow r;
  auto one = [&](int64_t i, double c) { r.src[0] = i; r.coef[0] = c; };
  auto floor_mod = [](int64_t a, int64_t m) { return ((a % m) + m) % m; };
  if (n >= 0 && n < N) {
    one(n, 1.0);
    return r;
  }
  switch (mode) {
    case WaveletMode::Zero: break;
    case WaveletMode::Constant: one(n < 0 ? 0 : N - 1, 1.0); break;
    case WaveletMode::Periodic: one(floor_mod(n, N), 1.0); break;
    case WaveletMode::Periodization: one(floor_mod(n, N), 1.0); break;  // N already even
    case WaveletMode::Symmetric: {  // ... x1 x0 | x0 x1 ... x(N-1) | x(N-1) x(N-2) ...
      int64_t m = floor_mod(n, 2 * N);
      one(m < N ? m : 2 * N - 1 - m, 1.0);
      break;
    }
    case WaveletMode::Reflect: {  // ... x2 x1 | x0 x1 ... x(N-1) | x(N-2) ...
      if (N == 1) { one(0, 1.0); break; }
      int64_t m = floor_mod(n, 2 * N - 2);
      one(m < N ? m : 2 * N - 2 - m, 1.0);
      break;
    }
    case WaveletMode::Antisymmetric: {  // ... -x1 -x0 | x0 ... x(N-1) | -x(N-1) ...
      int64_t m = floor_mod(n, 2 * N);
      if (m < N) one(m, 1.0);
      else one(2 * N - 1 - m, -1.0);
      break;
    }
    case WaveletMode::Smooth: {  // linear continuation of the first / last difference
      if (N == 1) { one(0, 1.0); break; }
      if (n < 0) {  // x0 + n (x1 - x0)
        r.src[0] = 0; r.coef[0] = 1.0 - (double)n;
        r.src[1] = 1; r.coef[1] = (double)n;
      } else {      // x(N-1) + (n - N + 1) (x(N-1) - x(N-2))
        double k = (double)(n - N + 1);
        r.src[0] = N - 1; r.coef[0] = 1.0 + k;
        r.src[1] = N - 2; r.coef[1] = -k;
      }
      break;
    }
    case WaveletMode::Antireflect: {
      // Point symmetry about each end sample: x(-k) = 2 x0 - x(k). Two such reflections
      // are a shift by 2 (N - 1) that adds 2 (x(N-1) - x0) each time.
      if (N == 1) { one(0, 1.0); break; }
      const int64_t period = 2 * N - 2;
      int64_t m = floor_mod(n, period), q = (n - m) / period;
      // base value at m in [0, period)
      int t = 0;
      if (m < N) {
        r.src[t] = m; r.coef[t++] = 1.0;
      } else {  // 2 x(N-1) - x(2N-2-m)
        r.src[t] = N - 1; r.coef[t++] = 2.0;
        r.src[t] = 2 * N - 2 - m; r.coef[t++] = -1.0;
      }
      if (q != 0) {  // + 2 q (x(N-1) - x0), merged into existing terms
        auto add = [&](int64_t i, double c) {
          for (int u = 0; u < t; ++u)
            if (r.src[u] == i) { r.coef[u] += c; return; }
          r.src[t] = i; r.coef[t++] = c;
        };
        add(N - 1, 2.0 * (double)q);
        add(0, -2.0 * (double)q);
      }
      break;
    }
  }
  return r;
}

// Rows for positions -left .. -left + total - 1 of the extended signal.
std::vector<ExtendRow> extension_rows(WaveletMode mode, int64_t N, int64_t left, int64_t total) {
  std::vector<ExtendRow> rows(total);
  for (int64_t p = 0; p < total; ++p) rows[p] = extension_row(mode, N, p - left);
  return rows;
}

Tensor fold_raw(const Tensor& y, const std::vector<ExtendRow>& rows, int64_t n);

// x (A, N, C) -> (A, rows.size(), C)
Tensor extend_raw(const Tensor& x, const std::vector<ExtendRow>& rows) {
  Tensor out = Tensor::empty({x.shape()[0], (int64_t)rows.size(), x.shape()[2]}, x.dtype(),
                             x.device());
  backend_of(x).wavelet_extend(x, rows, out);
  return out;
}

Tensor extend(const Tensor& x, std::vector<ExtendRow> rows) {
  Tensor xc = contiguous_raw(x);
  Tensor out = extend_raw(xc, rows);
  if (autograd::needs_grad({x})) {
    const int64_t n = x.shape()[1];
    autograd::record("WaveletExtendBackward", {x}, out, [rows, n](const Tensor& g) {
      return G{fold_raw(contiguous_raw(g), rows, n)};
    });
  }
  return out;
}

// y (A, P, C) -> (A, n, C): the adjoint of extend_raw.
Tensor fold_raw(const Tensor& y, const std::vector<ExtendRow>& rows, int64_t n) {
  Tensor out = zeros_raw({y.shape()[0], n, y.shape()[2]}, y.dtype(), y.device());
  backend_of(y).wavelet_extend_backward(y, rows, out);
  return out;
}


// A plane as the kernels want it: (A, L, C) with the (L, C) part contiguous.
Tensor as_plane(const Tensor& t) {
  const bool ok = t.dim() == 3 && (t.shape()[2] == 1 || t.strides()[2] == 1) &&
                  (t.shape()[1] == 1 || t.strides()[1] == t.shape()[2]);
  return ok ? t : contiguous_raw(t);
}

std::vector<Tensor> planes_of(const Tensor& stacked) {  // (A, nf, L, C) -> nf planes
  std::vector<Tensor> planes;
  for (int64_t f = 0; f < stacked.shape()[1]; ++f) planes.push_back(stacked.select(1, f));
  return planes;
}

// x plane (A, map.n, C) -> (A, nf, L, C)
Tensor analysis_raw(const Tensor& x, const RowMap& map, const Tensor& w, int64_t start,
                    int64_t L) {
  Tensor out = Tensor::empty({x.shape()[0], w.shape()[0], L, x.shape()[2]}, x.dtype(),
                             x.device());
  backend_of(x).wavelet_analysis(x, map, w, start, planes_of(out));
  return out;
}

// nf planes (A, L, C) -> (A, map.n, C)
Tensor synthesis_raw(const std::vector<Tensor>& planes, const Tensor& w, int64_t start,
                     const RowMap& map) {
  const Tensor& c0 = planes[0];
  Tensor out = Tensor::empty({c0.shape()[0], map.n, c0.shape()[2]}, c0.dtype(), c0.device());
  backend_of(c0).wavelet_synthesis(planes, w, start, map, out);
  return out;
}

Tensor filter_grad_raw(const std::vector<Tensor>& g, const Tensor& x, const RowMap& map,
                       int64_t start, const Shape& w_shape) {
  Tensor gw = Tensor::empty(w_shape, x.dtype(), x.device());
  backend_of(x).wavelet_filter_grad(g, x, map, start, gw);
  return gw;
}

// Analysis of x (A, map.n, C) with filters w (nf, K, Cw), the boundary extension given by
// `map`, to (A, nf, L, C). Backward: synthesis with the same map (the exact adjoint, which
// folds padding gradients back onto their source samples) and the filter correlation.
Tensor analysis(const Tensor& x, std::shared_ptr<const RowMap> map, const Tensor& w,
                int64_t start, int64_t L) {
  Tensor xp = as_plane(x), wc = contiguous_raw(w);
  Tensor out = analysis_raw(xp, *map, wc, start, L);
  if (autograd::needs_grad({x, w})) {
    Tensor sx = xp.detach(), sw = wc.detach();
    bool need_x = x.requires_grad(), need_w = w.requires_grad();
    autograd::record("WaveletAnalysisBackward", {x, w}, out,
                     [sx, sw, map, start, need_x, need_w](const Tensor& g) {
      auto gp = planes_of(contiguous_raw(g));
      return G{need_x ? synthesis_raw(gp, sw, start, *map) : Tensor(),
               need_w ? filter_grad_raw(gp, sx, *map, start, sw.shape()) : Tensor()};
    });
  }
  return out;
}

// Synthesis of nf planes (A, L, C) to (A, map.n, C): the adjoint pattern of analysis, with
// `map`'s transpose wrapping the padded rows onto the output (periodization) or passing
// them through. Backward: analysis with the same map, and the filter correlation.
Tensor synthesis(const std::vector<Tensor>& planes_in, const Tensor& w, int64_t start,
                 std::shared_ptr<const RowMap> map) {
  std::vector<Tensor> planes;
  for (const Tensor& p : planes_in) planes.push_back(as_plane(p));
  Tensor wc = contiguous_raw(w);
  Tensor out = synthesis_raw(planes, wc, start, *map);
  std::vector<Tensor> inputs = planes_in;
  inputs.push_back(w);
  if (autograd::needs_grad(inputs)) {
    std::vector<Tensor> saved;
    for (const Tensor& p : planes) saved.push_back(p.detach());
    Tensor sw = wc.detach();
    const int64_t L = planes[0].shape()[1];
    std::vector<bool> need;
    for (const Tensor& t : inputs) need.push_back(t.requires_grad());
    autograd::record("WaveletSynthesisBackward", inputs, out,
                     [saved, sw, map, start, L, need](const Tensor& g) {
      Tensor gp = as_plane(g);
      G grads;
      bool any_plane = false;
      for (size_t f = 0; f < saved.size(); ++f) any_plane = any_plane || need[f];
      Tensor gc = any_plane ? analysis_raw(gp, *map, sw, start, L) : Tensor();
      for (size_t f = 0; f < saved.size(); ++f)
        grads.push_back(need[f] ? gc.select(1, (int64_t)f) : Tensor());
      grads.push_back(need.back() ? filter_grad_raw(saved, gp, *map, start, sw.shape()) : Tensor());
      return grads;
    });
  }
  return out;
}

// ---- shapes ----------------------------------------------------------------------------

// x viewed as (A, N, C) around `axis`.
struct AxisView {
  Shape shape;  // x's shape
  int64_t axis, A, N, C;
};

AxisView axis_view(const char* op, const Tensor& x, int64_t axis) {
  check_floating(op, x);
  WAVSPA_CHECK(x.dim() >= 1, op, ": needs at least a 1-D signal, got a 0-d tensor");
  AxisView v;
  v.shape = x.shape();
  v.axis = wrap_dim(axis, x.dim(), op);
  v.A = 1;
  v.C = 1;
  for (int64_t d = 0; d < v.axis; ++d) v.A *= v.shape[d];
  for (int64_t d = v.axis + 1; d < x.dim(); ++d) v.C *= v.shape[d];
  v.N = v.shape[v.axis];
  return v;
}

Tensor to_3d(const Tensor& x, const AxisView& v) { return x.reshape({v.A, v.N, v.C}); }

Tensor from_3d(const Tensor& t, const AxisView& v) {
  Shape s = v.shape;
  s[v.axis] = t.shape()[1];
  return t.reshape(s);
}

// Filters as the kernels want them: (nf, F, Cw), cast to the signal's dtype and device,
// with a per-channel count checked against the signal's channels.
Tensor filter_bank(const char* op, const std::vector<Tensor>& filters, const AxisView& v,
                   const Tensor& like, bool reverse) {
  std::vector<Tensor> parts;
  for (const Tensor& f0 : filters) {
    check_filter(op, f0, "filter");
    WAVSPA_CHECK(f0.shape() == filters[0].shape(), op, ": filters of one bank differ in shape: ",
                 shape_str(filters[0].shape()), " and ", shape_str(f0.shape()));
    Tensor f = f0.to(like.dtype()).to(like.device());
    if (f.dim() == 2) {
      WAVSPA_CHECK(f.shape()[1] == v.C, op, ": per-channel filters ", shape_str(f.shape()),
                   " need one column per channel, but the signal has ", v.C,
                   " channels (the product of the dims after axis ", v.axis, " of ",
                   shape_str(v.shape), ")");
    } else {
      f = f.unsqueeze(1);
    }
    parts.push_back(reverse ? flip(f, {0}) : f);
  }
  return stack(parts, 0);
}

}  // namespace

// ---- the transforms ---------------------------------------------------------------------

std::pair<Tensor, Tensor> dwt(const Tensor& x, const Wavelet& wavelet, WaveletMode mode,
                              int64_t axis) {
  const char* op = "dwt";
  AxisView v = axis_view(op, x, axis);
  WAVSPA_CHECK(v.N >= 1, op, ": the signal is empty along axis ", v.axis);
  WAVSPA_CHECK(wavelet.dec_lo.defined(), op, ": the wavelet has no filters");
  const int64_t F = wavelet.filter_length();
  // cA[o] = sum_j dec_lo[j] x_ext[2 o + 1 - j] (pywt's convolution), computed as a
  // correlation with the reversed filter over the extended signal.
  Tensor w = filter_bank(op, {wavelet.dec_lo, wavelet.dec_hi}, v, x, /*reverse=*/true);
  Tensor coeffs;
  if (mode == WaveletMode::Periodization) {
    // An odd signal first repeats its last sample; then it is periodic with period Np.
    const int64_t Np = v.N + v.N % 2, L = Np / 2, left = F / 2 - 1;
    std::vector<ExtendRow> rows(2 * L + F - 2);
    for (int64_t p = 0; p < (int64_t)rows.size(); ++p) {
      int64_t m = (((p - left) % Np) + Np) % Np;
      rows[p].src[0] = std::min(m, v.N - 1);
      rows[p].coef[0] = 1.0;
    }
    auto map = std::make_shared<const RowMap>(make_row_map(v.N, std::move(rows)));
    coeffs = analysis(to_3d(x, v), map, w, 0, L);
  } else {
    const int64_t L = (v.N + F - 1) / 2;
    auto map = std::make_shared<const RowMap>(
        make_row_map(v.N, extension_rows(mode, v.N, F - 1, v.N + 2 * F - 2)));
    coeffs = analysis(to_3d(x, v), map, w, 1, L);
  }
  return {from_3d(coeffs.select(1, 0), v), from_3d(coeffs.select(1, 1), v)};
}

Tensor idwt(const Tensor& cA, const Tensor& cD, const Wavelet& wavelet, WaveletMode mode,
            int64_t axis) {
  const char* op = "idwt";
  check_same(op, cA, cD);
  WAVSPA_CHECK(cA.shape() == cD.shape(), op, ": cA ", shape_str(cA.shape()), " and cD ",
               shape_str(cD.shape()), " must have the same shape");
  AxisView v = axis_view(op, cA, axis);
  WAVSPA_CHECK(wavelet.rec_lo.defined(), op, ": the wavelet has no filters");
  const int64_t F = wavelet.filter_length(), L = v.N;
  WAVSPA_CHECK(L >= 1, op, ": empty coefficients along axis ", v.axis);
  Tensor w = filter_bank(op, {wavelet.rec_lo, wavelet.rec_hi}, v, cA, /*reverse=*/false);
  std::vector<Tensor> planes{to_3d(cA, v), to_3d(cD, v)};
  Tensor out;
  if (mode == WaveletMode::Periodization) {
    // The adjoint pattern of periodization analysis: synthesise on the unwrapped axis and
    // wrap it around the period 2 L (the map's transpose does the wrapping).
    const int64_t n = 2 * L, left = F / 2 - 1;
    std::vector<ExtendRow> rows(2 * L + F - 2);
    for (int64_t p = 0; p < (int64_t)rows.size(); ++p) {
      rows[p].src[0] = (((p - left) % n) + n) % n;
      rows[p].coef[0] = 1.0;
    }
    out = synthesis(planes, w, 0, std::make_shared<const RowMap>(make_row_map(n, std::move(rows))));
  } else {
    // x[n] = sum_o cA[o] rec_lo[n - 2 o + F - 2] + cD[o] rec_hi[...], n < 2 L - F + 2
    const int64_t n = 2 * L - F + 2;
    WAVSPA_CHECK(n >= 1, op, ": ", L, " coefficients are too few for a filter of length ", F,
                 " in mode ", wavelet_mode_name(mode), " (need at least ", F / 2, ")");
    std::vector<ExtendRow> identity(n);
    for (int64_t i = 0; i < n; ++i) {
      identity[i].src[0] = i;
      identity[i].coef[0] = 1.0;
    }
    out = synthesis(planes, w, 2 - F, std::make_shared<const RowMap>(make_row_map(n, std::move(identity))));
  }
  return from_3d(out, v);
}

std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, int64_t level,
                            WaveletMode mode, int64_t axis) {
  AxisView v = axis_view("wavedec", x, axis);
  WAVSPA_CHECK(wavelet.dec_lo.defined(), "wavedec: the wavelet has no filters");
  WAVSPA_CHECK(level != 0, "wavedec: level must be >= 1 (or -1 for dwt_max_level), got 0");
  if (level < 0) level = dwt_max_level(v.N, wavelet.filter_length());
  std::vector<Tensor> details;
  Tensor a = x;
  for (int64_t i = 0; i < level; ++i) {
    auto [cA, cD] = dwt(a, wavelet, mode, v.axis);
    details.push_back(cD);
    a = cA;
  }
  std::vector<Tensor> out{a};
  out.insert(out.end(), details.rbegin(), details.rend());
  return out;
}

Tensor waverec(const std::vector<Tensor>& coeffs, const Wavelet& wavelet, WaveletMode mode,
               int64_t axis, int64_t length) {
  WAVSPA_CHECK(!coeffs.empty(), "waverec: needs at least one coefficient array");
  check_defined("waverec", coeffs[0], "coefficient 0");
  const int64_t ax = wrap_dim(axis, coeffs[0].dim(), "waverec");
  Tensor a = coeffs[0];
  for (size_t i = 1; i < coeffs.size(); ++i) {
    const Tensor& d = coeffs[i];
    check_defined("waverec", d, "detail coefficient");
    // pywt's rule: an approximation one longer than the detail drops its last sample.
    if (a.shape()[ax] == d.shape()[ax] + 1) a = a.narrow(ax, 0, d.shape()[ax]);
    WAVSPA_CHECK(a.shape() == d.shape(), "waverec: coefficient ", i, " has shape ",
                 shape_str(d.shape()), " but the approximation reconstructed so far has ",
                 shape_str(a.shape()), " (lengths along axis ", ax, " must match)");
    a = idwt(a, d, wavelet, mode, ax);
  }
  if (length >= 0) {
    WAVSPA_CHECK(length <= a.shape()[ax], "waverec: cannot trim to length ", length,
                 ": the reconstruction has only ", a.shape()[ax]);
    a = a.narrow(ax, 0, length);
  }
  return a;
}

// ---- filter-tensor forms ------------------------------------------------------------------

std::pair<Tensor, Tensor> dwt(const Tensor& x, const Tensor& dec_lo, WaveletMode mode,
                              int64_t axis) {
  return dwt(x, Wavelet::orthogonal_from(dec_lo), mode, axis);
}
Tensor idwt(const Tensor& cA, const Tensor& cD, const Tensor& dec_lo, WaveletMode mode,
            int64_t axis) {
  return idwt(cA, cD, Wavelet::orthogonal_from(dec_lo), mode, axis);
}
std::vector<Tensor> wavedec(const Tensor& x, const Tensor& dec_lo, int64_t level,
                            WaveletMode mode, int64_t axis) {
  return wavedec(x, Wavelet::orthogonal_from(dec_lo), level, mode, axis);
}
Tensor waverec(const std::vector<Tensor>& coeffs, const Tensor& dec_lo, WaveletMode mode,
               int64_t axis, int64_t length) {
  return waverec(coeffs, Wavelet::orthogonal_from(dec_lo), mode, axis, length);
}

// ---- lattice ------------------------------------------------------------------------------

Tensor lattice_filter(const Tensor& theta) {
  check_floating("lattice_filter", theta);
  WAVSPA_CHECK(theta.dim() == 1 || theta.dim() == 2, "lattice_filter: angles must be (K) or "
               "(K, C), got ", shape_str(theta.shape()));
  const int64_t K = theta.shape()[0];
  WAVSPA_CHECK(K >= 1, "lattice_filter: needs at least one angle");
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

// ---- lifting ------------------------------------------------------------------------------

namespace {

// sum_k f[k] * v[n + k + offset] for n in [0, n_out), v (A, n, C) extended symmetrically.
Tensor lifting_filter(const char* op, const Tensor& v, const Tensor& f, int64_t offset,
                      int64_t n_out, int64_t channels) {
  check_filter(op, f, "lifting filter");
  const int64_t K = f.shape()[0], n = v.shape()[1];
  if (f.dim() == 2)
    WAVSPA_CHECK(f.shape()[1] == channels, op, ": per-channel lifting filter ",
                 shape_str(f.shape()), " needs ", channels, " columns");
  Tensor fk = f.to(v.dtype()).to(v.device());
  const int64_t left = std::max<int64_t>(0, -offset);
  const int64_t total = left + std::max<int64_t>(n_out + K - 1 + offset, n) + 1;
  Tensor ext = extend(v, extension_rows(WaveletMode::Symmetric, n, left, total));
  Tensor acc;
  for (int64_t k = 0; k < K; ++k) {
    Tensor term = mul(ext.narrow(1, left + k + offset, n_out), fk.select(0, k));
    acc = acc.defined() ? add(acc, term) : term;
  }
  return acc;
}

}  // namespace

std::pair<Tensor, Tensor> lifting_forward(const Tensor& x, const Tensor& predict,
                                          const Tensor& update, int64_t axis) {
  const char* op = "lifting_forward";
  AxisView v = axis_view(op, x, axis);
  WAVSPA_CHECK(v.N >= 2, op, ": needs at least 2 samples along axis ", v.axis, ", got ", v.N);
  Tensor x3 = to_3d(x, v);
  const int64_t ne = (v.N + 1) / 2, no = v.N / 2;
  Tensor even = x3.slice(1, 0, v.N, 2), odd = x3.slice(1, 1, v.N, 2);
  const int64_t P = predict.defined() ? predict.shape()[0] : 0;
  const int64_t U = update.defined() ? update.shape()[0] : 0;
  Tensor d = sub(odd, lifting_filter(op, even.contiguous(), predict, -(P / 2 - 1), no, v.C));
  Tensor s = add(even, lifting_filter(op, d.contiguous(), update, -(U / 2), ne, v.C));
  return {from_3d(s, v), from_3d(d, v)};
}

Tensor lifting_inverse(const Tensor& approx, const Tensor& detail, const Tensor& predict,
                       const Tensor& update, int64_t axis) {
  const char* op = "lifting_inverse";
  check_same(op, approx, detail);
  AxisView va = axis_view(op, approx, axis), vd = axis_view(op, detail, axis);
  WAVSPA_CHECK(va.A == vd.A && va.C == vd.C && (va.N == vd.N || va.N == vd.N + 1), op,
               ": approx ", shape_str(approx.shape()), " and detail ", shape_str(detail.shape()),
               " do not come from one signal (approx has as many or one more samples)");
  Tensor s = to_3d(approx, va), d = to_3d(detail, vd);
  const int64_t ne = va.N, no = vd.N, n = ne + no;
  const int64_t P = predict.shape()[0], U = update.shape()[0];
  Tensor even = sub(s, lifting_filter(op, d.contiguous(), update, -(U / 2), ne, va.C));
  Tensor odd = add(d, lifting_filter(op, even.contiguous(), predict, -(P / 2 - 1), no, va.C));
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

// ---- 2-D ----------------------------------------------------------------------------------

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
  WAVSPA_CHECK(level != 0, "wavedec2: level must be >= 1 (or -1 for the maximum), got 0");
  if (level < 0)
    level = std::min(dwt_max_level(x.shape()[a0], wavelet.filter_length()),
                     dwt_max_level(x.shape()[a1], wavelet.filter_length()));
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

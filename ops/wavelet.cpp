// Discrete wavelet transforms (ops/wavelet.h): the filter banks (PyWavelets' named wavelets
// and the differentiable orthogonal / biorthogonal constructions) and the 1-D transforms
// dwt, idwt, wavedec and waverec. Each transform is a composition of the primitives of
// ops/wavelet_primitives.h over a boundary map, so it has no backward code of its own.
#include "ops/wavelet.h"

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/shape.h"
#include "ops/wavelet_primitives.h"

namespace wavspa {

using namespace ops_detail;
using namespace wavelet_detail;

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

Wavelet::Wavelet(const std::string& given) {
  std::string wanted = given;
  for (char& c : wanted) c = (char)std::tolower((unsigned char)c);
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
  throw Error(str("unknown wavelet '", given, "'; expected a PyWavelets discrete wavelet name "
                  "such as haar, db1..db38, sym2..sym20, coif1..coif17, bior2.2, rbio3.5, dmey"));
}

namespace {

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
  // (-1)^(k+1) rec_lo[k] = (-1)^(k+1) dec_lo[F-1-k] = rec_hi[F-1-k] for even F: sign flips
  // and reversals are exact, so this is the same bits as the product.
  w.dec_hi = flip(w.rec_hi, {0});
  w.bank = stack({w.rec_lo, w.rec_hi}, 0);
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

// ---- the transforms ---------------------------------------------------------------------

namespace {

// Checks a per-channel filter's column count against the signal's channels.
void check_filter_channels(const char* op, const Tensor& f, const AxisView& v) {
  WAVSPA_CHECK(f.shape()[1] == v.C, op, ": per-channel filters ", shape_str(f.shape()),
               " need one column per channel, but the signal has ", v.C,
               " channels (the product of the dims after axis ", v.axis, " of ",
               shape_str(v.shape), ")");
}

// Filters as the kernels want them: (nf, F, Cw), cast to filter_dtype(signal) and its device,
// with a per-channel count checked against the signal's channels. `stacked` (the wavelet's
// bank: the filters, reversed where `reverse` says, already stacked) is taken as it is where
// its dtype and device are the ones wanted: no launch and no autograd node per transform.
Tensor filter_bank(const char* op, const std::vector<Tensor>& filters, const AxisView& v,
                   const Tensor& like, bool reverse, const Tensor& stacked = Tensor()) {
  if (stacked.defined() && stacked.dtype() == filter_dtype(like.dtype()) && stacked.device() == like.device() &&
      stacked.dim() >= 2 && stacked.shape()[0] == (int64_t)filters.size()) {
    if (stacked.dim() == 2) return stacked.unsqueeze(2);
    check_filter_channels(op, stacked.select(0, 0), v);
    return stacked;
  }
  std::vector<Tensor> parts;
  for (const Tensor& f0 : filters) {
    check_filter(op, f0, "filter");
    WAVSPA_CHECK(f0.shape() == filters[0].shape(), op, ": filters of one bank differ in shape: ",
                 shape_str(filters[0].shape()), " and ", shape_str(f0.shape()));
    Tensor f = f0.to(filter_dtype(like.dtype())).to(like.device());
    if (f.dim() == 2) {
      check_filter_channels(op, f, v);
    } else {
      f = f.unsqueeze(1);
    }
    parts.push_back(reverse ? flip(f, {0}) : f);
  }
  return stack(parts, 0);
}

}  // namespace

std::pair<Tensor, Tensor> dwt(const Tensor& x, const Wavelet& wavelet, WaveletMode mode,
                              int64_t axis) {
  const char* op = "dwt";
  // bfloat16 (CUDA) runs as such: float32 taps and arithmetic, bfloat16 loads and stores.
  AxisView v = axis_view(op, x, axis);
  WAVSPA_CHECK(v.N >= 1, op, ": the signal is empty along axis ", v.axis);
  WAVSPA_CHECK(wavelet.dec_lo.defined(), op, ": the wavelet has no filters");
  const int64_t F = wavelet.filter_length();
  // cA[o] = sum_j dec_lo[j] x_ext[2 o + 1 - j] (pywt's convolution), computed as a
  // correlation with the reversed filter over the extended signal.
  Tensor w = filter_bank(op, {wavelet.dec_lo, wavelet.dec_hi}, v, x, /*reverse=*/true, wavelet.bank);
  std::vector<Tensor> coeffs;
  if (mode == WaveletMode::Periodization) {
    const int64_t L = (v.N + 1) / 2;  // an odd signal first repeats its last sample
    coeffs = analysis(to_3d(x, v), extension_map(mode, v.N, F / 2 - 1, 2 * L + F - 2), w, 0, L);
  } else {
    const int64_t L = (v.N + F - 1) / 2;
    coeffs = analysis(to_3d(x, v), extension_map(mode, v.N, F - 1, v.N + 2 * F - 2), w, 1, L);
  }
  return {from_3d(coeffs[0], v), from_3d(coeffs[1], v)};
}

namespace {

// idwt's first `keep` rows (all of them for keep < 0), plus `base` (the result's shape and
// dtype, or undefined), both done by the synthesis kernel: a cropped map computes only the
// rows kept (and its adjoint reads a gradient of that length), the kernel adds the base.
Tensor idwt_plus(const Tensor& cA_in, const Tensor& cD_in, const Wavelet& wavelet, WaveletMode mode,
                 int64_t axis, const Tensor& base, int64_t keep) {
  const char* op = "idwt";
  // Under autocast, one bfloat16 band and one float32 band both go bfloat16.
  const auto [cA, cD] = autocast_pair(cA_in, cD_in);
  check_same(op, cA, cD);
  WAVSPA_CHECK(cA.shape() == cD.shape(), op, ": cA ", shape_str(cA.shape()), " and cD ",
               shape_str(cD.shape()), " must have the same shape");
  AxisView v = axis_view(op, cA, axis);
  WAVSPA_CHECK(wavelet.rec_lo.defined(), op, ": the wavelet has no filters");
  const int64_t F = wavelet.filter_length(), L = v.N;
  WAVSPA_CHECK(L >= 1, op, ": empty coefficients along axis ", v.axis);
  Tensor w = filter_bank(op, {wavelet.rec_lo, wavelet.rec_hi}, v, cA, /*reverse=*/false, wavelet.bank);
  std::vector<Tensor> planes{to_3d(cA, v), to_3d(cD, v)};
  // The rows the result keeps of n, and the residual as a plane of them.
  auto kept = [&](int64_t n) { return keep >= 0 && keep < n ? keep : -1; };
  auto base_plane = [&](int64_t n) {
    const int64_t rows = kept(n) >= 0 ? keep : n;
    return base.defined() ? base.reshape({v.A, rows, v.C}) : Tensor();
  };
  Tensor out;
  if (mode == WaveletMode::Periodization) {
    // The adjoint pattern of periodization analysis: synthesise on the unwrapped axis and
    // wrap it around the period 2 L (the map's transpose does the wrapping), with the very
    // map that analysis of 2 L samples uses.
    out = synthesis(planes, w, 0, extension_map(mode, 2 * L, F / 2 - 1, 2 * L + F - 2, kept(2 * L)),
                    base_plane(2 * L));
  } else {
    // x[n] = sum_o cA[o] rec_lo[n - 2 o + F - 2] + cD[o] rec_hi[...], n < 2 L - F + 2
    const int64_t n = 2 * L - F + 2;
    WAVSPA_CHECK(n >= 1, op, ": ", L, " coefficients are too few for a filter of length ", F,
                 " in mode ", wavelet_mode_name(mode), " (need at least ", F / 2, ")");
    // No padding: the identity map, whichever mode names it.
    out = synthesis(planes, w, 2 - F, extension_map(WaveletMode::Zero, n, 0, n, kept(n)), base_plane(n));
  }
  return from_3d(out, v);
}

// The length idwt gives along its axis for L coefficients.
int64_t idwt_length(int64_t L, int64_t F, WaveletMode mode) {
  return mode == WaveletMode::Periodization ? 2 * L : 2 * L - F + 2;
}

// waverec, and with `base` defined base + waverec: the last level's synthesis adds it where
// its result is the final one (no trim) in base's dtype (the one add would compute in, under
// autocast too); otherwise add does.
Tensor waverec_plus(const char* op, const std::vector<Tensor>& coeffs, const Wavelet& wavelet, WaveletMode mode,
                    int64_t axis, int64_t length, const Tensor& base) {
  WAVSPA_CHECK(!coeffs.empty(), op, ": needs at least one coefficient array");
  check_defined(op, coeffs[0], "coefficient 0");
  const int64_t ax = wrap_dim(axis, coeffs[0].dim(), op);
  Tensor a = coeffs[0];
  bool added = false;
  for (size_t i = 1; i < coeffs.size(); ++i) {
    const Tensor& d = coeffs[i];
    check_defined(op, d, "detail coefficient");
    // pywt's rule: an approximation one longer than the detail drops its last sample.
    if (a.shape()[ax] == d.shape()[ax] + 1) a = a.narrow(ax, 0, d.shape()[ax]);
    WAVSPA_CHECK(a.shape() == d.shape(), op, ": coefficient ", i, " has shape ",
                 shape_str(d.shape()), " but the approximation reconstructed so far has ",
                 shape_str(a.shape()), " (lengths along axis ", ax, " must match)");
    // Each level writes the rows that go on itself (keep): the last one the trimmed result,
    // adding the base where it has that result's shape and dtype; an earlier one the rows the
    // next detail pairs with, where pywt's rule would drop its last one. A narrow instead would
    // put a SliceBackward (a zero-filled gradient and a strided copy into it) into backward.
    const bool last = i + 1 == coeffs.size() && wavelet.rec_lo.defined();
    const int64_t n = wavelet.rec_lo.defined() ? idwt_length(a.shape()[ax], wavelet.filter_length(), mode) : -1;
    WAVSPA_CHECK(!last || length <= n, op, ": cannot trim to length ", length, ": the reconstruction has only ", n);
    int64_t keep = last && length >= 0 && length < n ? length : -1;
    if (!last && i + 1 < coeffs.size() && coeffs[i + 1].defined() && coeffs[i + 1].dim() == a.dim() &&
        n == coeffs[i + 1].shape()[ax] + 1)
      keep = n - 1;
    Tensor b;
    if (base.defined() && last) {
      Shape want = a.shape();
      want[ax] = keep >= 0 ? keep : n;
      const DType dt = autocast_pair(a, d).first.dtype();
      b = base.dtype() != dt && autocasting(base) ? autocast_pair(base, a).first : base;
      if (!(n >= 1 && b.shape() == want && b.dtype() == dt && b.device() == a.device())) b = Tensor();
    }
    a = idwt_plus(a, d, wavelet, mode, ax, b, keep);
    added = b.defined();
  }
  if (length >= 0) {
    WAVSPA_CHECK(length <= a.shape()[ax], op, ": cannot trim to length ", length,
                 ": the reconstruction has only ", a.shape()[ax]);
    // A full-length trim is no trim: narrowing anyway would put a SliceBackward (a zero-filled
    // gradient and a strided copy into it) into every backward.
    if (length < a.shape()[ax]) a = a.narrow(ax, 0, length);
  }
  return base.defined() && !added ? add(base, a) : a;
}

}  // namespace

Tensor idwt(const Tensor& cA, const Tensor& cD, const Wavelet& wavelet, WaveletMode mode, int64_t axis) {
  return idwt_plus(cA, cD, wavelet, mode, axis, Tensor(), -1);
}

int64_t resolve_wavelet_level(const char* op, int64_t level, int64_t n, int64_t filter_len) {
  WAVSPA_CHECK(level >= -1, op, ": level must be -1 (the maximum, pywt's None) or 0..",
               kMaxWaveletLevel, ", got ", level);
  WAVSPA_CHECK(level <= kMaxWaveletLevel, op, ": level ", level, " is beyond ", kMaxWaveletLevel,
               " (more halvings than any signal has samples)");
  const int64_t max_level = dwt_max_level(n, filter_len);
  if (level == -1) return max_level;
  if (level > max_level) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      std::fprintf(stderr,
                   "wavspa: warning: %s: level %lld is too high for %lld samples and a filter of length "
                   "%lld (dwt_max_level %lld): all coefficients will experience boundary effects "
                   "(said once per process)\n",
                   op, (long long)level, (long long)n, (long long)filter_len, (long long)max_level);
  }
  return level;
}

std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, int64_t level,
                            WaveletMode mode, int64_t axis) {
  AxisView v = axis_view("wavedec", x, axis);
  WAVSPA_CHECK(wavelet.dec_lo.defined(), "wavedec: the wavelet has no filters");
  level = resolve_wavelet_level("wavedec", level, v.N, wavelet.filter_length());
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
  return waverec_plus("waverec", coeffs, wavelet, mode, axis, length, Tensor());
}

Tensor waverec_add(const Tensor& base, const std::vector<Tensor>& coeffs, const Wavelet& wavelet,
                   WaveletMode mode, int64_t axis, int64_t length) {
  check_defined("waverec_add", base, "base");
  return waverec_plus("waverec_add", coeffs, wavelet, mode, axis, length, base);
}

// ---- PyWavelets' argument order and mode names ---------------------------------------------

std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, WaveletMode mode, int64_t level,
                            int64_t axis) {
  return wavedec(x, wavelet, level, mode, axis);
}
std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, const std::string& mode,
                            int64_t level, int64_t axis) {
  return wavedec(x, wavelet, level, wavelet_mode(mode), axis);
}
std::pair<Tensor, Tensor> dwt(const Tensor& x, const Wavelet& wavelet, const std::string& mode,
                              int64_t axis) {
  return dwt(x, wavelet, wavelet_mode(mode), axis);
}
Tensor idwt(const Tensor& cA, const Tensor& cD, const Wavelet& wavelet, const std::string& mode,
            int64_t axis) {
  return idwt(cA, cD, wavelet, wavelet_mode(mode), axis);
}
Tensor waverec(const std::vector<Tensor>& coeffs, const Wavelet& wavelet, const std::string& mode,
               int64_t axis, int64_t length) {
  return waverec(coeffs, wavelet, wavelet_mode(mode), axis, length);
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

}  // namespace wavspa

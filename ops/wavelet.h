// Differentiable discrete wavelet transforms, with PyWavelets' names, conventions and
// numbers.
//
//   Wavelet w("db4");                                                 // or "DB4": names are lower-cased
//   auto [cA, cD] = dwt(x, w, "symmetric", /*axis=*/1);               // x: (B, N, D)
//   std::vector<Tensor> coeffs = wavedec(x, w, "periodization", /*level=*/3, /*axis=*/1);
//   Tensor y = waverec(coeffs, w, "periodization", /*axis=*/1);       // == x
//
//   // Learnable, one filter per channel: dec_lo of shape (F, D) that requires grad.
//   Tensor filters = randn({8, x.shape()[2]}).requires_grad_();
//   Wavelet learned = Wavelet::orthogonal_from(filters);
//
// Arguments come in PyWavelets' order, (data, wavelet, mode, level, axis), with the mode as
// its pywt name or as a WaveletMode. (The older order (data, wavelet, level, mode, axis) of
// wavedec stays for existing code.) Levels follow pywt too: -1 (pywt's None) is
// dwt_max_level, 0 returns the signal alone, other negative levels are errors, and a level
// beyond dwt_max_level warns once per process that every coefficient feels the boundary;
// levels above kMaxWaveletLevel are errors.
//
// Filters act along `axis` for every position of the other dims, which stay where they are
// (channels-last (B, N, D) needs no transposes). A filter is either shared, shape (F), or
// one per channel, shape (F, C), where C is the product of the dims after `axis`.
// Gradients flow to the signal (the exact adjoint of the padded strided convolution, so
// padding gradients fold back onto the samples they came from) and to the filters.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wavspa {

// PyWavelets' signal extension modes (pywt.Modes).
enum class WaveletMode {
  Zero, Constant, Symmetric, Reflect, Periodic, Smooth, Antisymmetric, Antireflect,
  Periodization
};
// By pywt name ("symmetric", "periodization", ...; any letter case); throws listing the
// valid names.
WaveletMode wavelet_mode(const std::string& name);
const char* wavelet_mode_name(WaveletMode mode);

// A filter bank: decomposition and reconstruction low/high-pass filters of one length F.
struct Wavelet {
  std::string name;         // pywt name, or "custom"
  Tensor dec_lo, dec_hi;    // (F) or (F, C)
  Tensor rec_lo, rec_hi;
  bool orthogonal = false;
  // (2, F) or (2, F, C): rec_lo and rec_hi stacked, the taps both dwt and idwt run (dwt
  // correlates with the reversed decomposition filters, which for an orthogonal bank are
  // rec_lo and rec_hi, bit for bit). orthogonal_from sets it, so that every level and both
  // directions share one tensor and its one autograd node; where it is undefined, or of another
  // dtype or device than the transform needs, each transform stacks the filters itself. Like
  // rec_lo and friends it is derived once, at construction: assigning dec_lo later changes
  // neither.
  Tensor bank;

  Wavelet() = default;
  // A named wavelet as PyWavelets stores it (float64): "haar", "db1".."db38", "sym2".."sym20",
  // "coif1".."coif17", "bior1.1".."bior6.8", "rbio1.1".."rbio6.8", "dmey"; the name is
  // lower-cased first, as pywt does ("DB4" is db4).
  explicit Wavelet(const std::string& name);
  // An orthogonal bank from its decomposition low-pass (F even, (F) or (F, C)); the other
  // three filters follow from the quadrature-mirror relations, differentiably:
  // rec_lo = reverse(dec_lo), rec_hi[k] = (-1)^k dec_lo[k], dec_hi[k] = (-1)^(k+1) rec_lo[k]
  // (= reverse(rec_hi), as F is even); `bank` is stack(rec_lo, rec_hi).
  static Wavelet orthogonal_from(const Tensor& dec_lo);
  // A biorthogonal bank from its four filters (same length and layout).
  static Wavelet biorthogonal(const Tensor& dec_lo, const Tensor& dec_hi, const Tensor& rec_lo,
                              const Tensor& rec_hi);

  int64_t filter_length() const { return dec_lo.shape()[0]; }
};

// Every discrete wavelet name, in pywt.wavelist(kind="discrete") order.
std::vector<std::string> wavelist();

// pywt.dwt_max_level: the deepest level before every coefficient feels the boundary.
int64_t dwt_max_level(int64_t n, int64_t filter_len);
// pywt.dwt_coeff_len: floor((n + F - 1) / 2), or ceil(n / 2) for periodization.
int64_t dwt_coeff_len(int64_t n, int64_t filter_len, WaveletMode mode);

// One level: (cA, cD), each with x's shape but dwt_coeff_len(...) along axis.
std::pair<Tensor, Tensor> dwt(const Tensor& x, const Wavelet& wavelet,
                              WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
// Inverse of one level. cA and cD have the same shape (pywt's rule for a one-longer cA is
// applied by waverec, not here).
Tensor idwt(const Tensor& cA, const Tensor& cD, const Wavelet& wavelet,
            WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
// The deepest level wavedec and wavedec2 accept: more halvings than any length has.
inline constexpr int64_t kMaxWaveletLevel = 64;

// level levels, pywt order [cA_level, cD_level, ..., cD_1]; level -1 means dwt_max_level
// (the level rules are in the header comment).
std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, int64_t level = -1,
                            WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
// PyWavelets' argument order: pywt.wavedec(data, wavelet, mode, level, axis).
std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, WaveletMode mode,
                            int64_t level = -1, int64_t axis = -1);
std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, const std::string& mode,
                            int64_t level = -1, int64_t axis = -1);
// The same with the mode by its pywt name.
std::pair<Tensor, Tensor> dwt(const Tensor& x, const Wavelet& wavelet, const std::string& mode,
                              int64_t axis = -1);
Tensor idwt(const Tensor& cA, const Tensor& cD, const Wavelet& wavelet, const std::string& mode,
            int64_t axis = -1);
Tensor waverec(const std::vector<Tensor>& coeffs, const Wavelet& wavelet, const std::string& mode,
               int64_t axis = -1, int64_t length = -1);

// The number of levels wavedec runs for `level` on n samples (op names the caller in
// messages): the rules of the header comment.
int64_t resolve_wavelet_level(const char* op, int64_t level, int64_t n, int64_t filter_len);
// Inverse of wavedec. If `length` >= 0 the result is trimmed to it (for odd lengths that
// the decomposition rounded up).
Tensor waverec(const std::vector<Tensor>& coeffs, const Wavelet& wavelet,
               WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1, int64_t length = -1);
// base + waverec(coeffs, ...), a residual connection around a wavelet path: the last level's
// synthesis kernel adds base as it writes its result (same bits as add(base, waverec(...)),
// one pass over the output fewer), a `length` trim included (the synthesis computes only the
// rows kept). For a base of another shape, dtype or device it is add(base, waverec(...)),
// broadcasting included.
Tensor waverec_add(const Tensor& base, const std::vector<Tensor>& coeffs, const Wavelet& wavelet,
                   WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1, int64_t length = -1);

// The same transforms with a filter tensor in place of a named wavelet: `dec_lo` of shape
// (F) or (F, C) defines an orthogonal bank (Wavelet::orthogonal_from).
std::pair<Tensor, Tensor> dwt(const Tensor& x, const Tensor& dec_lo,
                              WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
Tensor idwt(const Tensor& cA, const Tensor& cD, const Tensor& dec_lo,
            WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
std::vector<Tensor> wavedec(const Tensor& x, const Tensor& dec_lo, int64_t level = -1,
                            WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
Tensor waverec(const std::vector<Tensor>& coeffs, const Tensor& dec_lo,
               WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1, int64_t length = -1);

// ---- learnable parametrizations that keep perfect reconstruction ------------------------

// The orthogonal lattice: K angles (shape (K) or (K, C)) give an orthonormal low-pass
// filter of length F = 2K whose even shifts are orthogonal, for any angles. The polyphase
// matrix is R(theta_{K-1}) diag(1, z^-1) ... diag(1, z^-1) R(theta_0), a product of
// rotations and delays, hence paraunitary. Differentiable in theta; use it with
// Wavelet::orthogonal_from. (theta summing to pi/4 makes the DC gain sqrt(2).)
Tensor lattice_filter(const Tensor& theta);

// The lifting scheme along `axis`: split x into even and odd samples, then
//   detail d[n] = odd[n]  - sum_k predict[k] * even[n + k - (P/2 - 1)]
//   approx s[n] = even[n] + sum_k update[k]  * d[n + k - U/2]
// with symmetric extension at the ends. Any predict/update filters ((P) or (P, C)) give
// perfect reconstruction, since the inverse undoes each step exactly. Returns (s, d):
// ceil(N/2) and floor(N/2) samples.
std::pair<Tensor, Tensor> lifting_forward(const Tensor& x, const Tensor& predict,
                                          const Tensor& update, int64_t axis = -1);
Tensor lifting_inverse(const Tensor& approx, const Tensor& detail, const Tensor& predict,
                       const Tensor& update, int64_t axis = -1);
// The fixed LeGall 5/3 (JPEG 2000 reversible) lifting: predict {1/2, 1/2}, update {1/4, 1/4}.
std::pair<Tensor, Tensor> legall53_forward(const Tensor& x, int64_t axis = -1);
Tensor legall53_inverse(const Tensor& approx, const Tensor& detail, int64_t axis = -1);

// ---- 2-D, separable over two axes (pywt.dwt2 conventions) --------------------------------

// cA and the details (cH, cV, cD) = ("da", "ad", "dd") in pywt's key order: the first
// letter is the transform along axes.first.
struct Coeffs2 {
  Tensor cA;
  Tensor cH, cV, cD;
};
Coeffs2 dwt2(const Tensor& x, const Wavelet& wavelet, WaveletMode mode = WaveletMode::Symmetric,
             std::pair<int64_t, int64_t> axes = {-2, -1});
Tensor idwt2(const Coeffs2& c, const Wavelet& wavelet, WaveletMode mode = WaveletMode::Symmetric,
             std::pair<int64_t, int64_t> axes = {-2, -1});
struct Details2 {
  Tensor cH, cV, cD;
};
// pywt.wavedec2 order: cA_level, then details from the coarsest level to the finest.
struct Decomposition2 {
  Tensor cA;
  std::vector<Details2> details;
};
Decomposition2 wavedec2(const Tensor& x, const Wavelet& wavelet, int64_t level = -1,
                        WaveletMode mode = WaveletMode::Symmetric,
                        std::pair<int64_t, int64_t> axes = {-2, -1});
Tensor waverec2(const Decomposition2& d, const Wavelet& wavelet,
                WaveletMode mode = WaveletMode::Symmetric,
                std::pair<int64_t, int64_t> axes = {-2, -1});

}  // namespace wavspa

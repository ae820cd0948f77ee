// Differentiable discrete wavelet transforms, with PyWavelets' names, conventions and
// numbers.
//
//   Wavelet w("db4");
//   auto [cA, cD] = dwt(x, w, WaveletMode::Symmetric, /*axis=*/1);   // x: (B, N, D)
//   std::vector<Tensor> coeffs = wavedec(x, w, /*level=*/3, WaveletMode::Periodization, 1);
//   Tensor y = waverec(coeffs, w, WaveletMode::Periodization, 1);       // == x
//
//   // Learnable, one filter per channel: dec_lo of shape (F, D) that requires grad.
//   Wavelet learned = Wavelet::orthogonal(filters);
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
// By pywt name ("symmetric", "periodization", ...); throws listing the valid names.
WaveletMode wavelet_mode(const std::string& name);
const char* wavelet_mode_name(WaveletMode mode);

// A filter bank: decomposition and reconstruction low/high-pass filters of one length F.
struct Wavelet {
  std::string name;         // pywt name, or "custom"
  Tensor dec_lo, dec_hi;    // (F) or (F, C)
  Tensor rec_lo, rec_hi;
  bool orthogonal = false;

  Wavelet() = default;
  // A named wavelet as PyWavelets stores it (float64): "haar", "db1".."db38", "sym2".."sym20",
  // "coif1".."coif17", "bior1.1".."bior6.8", "rbio1.1".."rbio6.8", "dmey".
  explicit Wavelet(const std::string& name);
  // An orthogonal bank from its decomposition low-pass (F even, (F) or (F, C)); the other
  // three filters follow from the quadrature-mirror relations, differentiably:
  // rec_lo = reverse(dec_lo), rec_hi[k] = (-1)^k dec_lo[k], dec_hi[k] = (-1)^(k+1) rec_lo[k].
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
// level levels, pywt order [cA_level, cD_level, ..., cD_1]; level < 0 means dwt_max_level.
std::vector<Tensor> wavedec(const Tensor& x, const Wavelet& wavelet, int64_t level = -1,
                            WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1);
// Inverse of wavedec. If `length` >= 0 the result is trimmed to it (for odd lengths that
// the decomposition rounded up).
Tensor waverec(const std::vector<Tensor>& coeffs, const Wavelet& wavelet,
               WaveletMode mode = WaveletMode::Symmetric, int64_t axis = -1, int64_t length = -1);

}  // namespace wavspa

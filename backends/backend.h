// The kernel interface: one Backend per device type. An op in ops/ validates its inputs,
// allocates the outputs, and calls backend_for(device).<kernel>(...). Kernels never check
// user input (ops did) and never allocate their outputs.
//
//   Tensor out = empty(x.shape(), x.dtype(), x.device());       // x checked, contiguous
//   backend_for(x.device()).unary(UnaryOp::Exp, x, out, 0, 0);   // out = exp(x)
//
// Conventions, the same for every kernel:
//  - outputs are passed as already-allocated tensors and written in full;
//  - "strided" arguments may have any strides (0 for broadcast dims); all others must be
//    contiguous, which the op guarantees;
//  - all floating tensors of one call share one dtype (float32, float64, or bfloat16 on
//    CUDA: the CPU backend stores and converts bfloat16 in copy and fill only, and its
//    compute kernels throw for it); index tensors are int64.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace wavspa {

enum class UnaryOp {
  Neg, Abs, Sign, Exp, Log, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Relu,
  GeluErf, GeluTanh, Silu,
  Elu,       // p0 = alpha
  Softplus,  // p0 = beta, p1 = threshold (linear above it)
  PowScalar, // p0 = exponent
};

enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,  // 1 or 0 in the inputs' dtype
  // Fused backward of a unary op: (grad, saved) -> grad * f'(...). `saved` is the op's
  // input x, except for Sigmoid and Tanh, which save their output y.
  ReluBackward, GeluErfBackward, GeluTanhBackward, SiluBackward,
  EluBackward,       // p0 = alpha
  SoftplusBackward,  // p0 = beta, p1 = threshold
  SigmoidBackward, TanhBackward,
};

enum class ReduceOp { Sum, Mean, Max, Min };

// One row of a boundary extension: the sum of up to three weighted source rows (src < 0
// ends the list). Identity rows have one term with coefficient 1.
struct ExtendRow {
  int64_t src[3] = {-1, -1, -1};
  double coef[3] = {0, 0, 0};
};

// A linear map from the n rows of a signal to P "padded" rows (padded row p = the terms
// of padded[p]), with its transpose in CSR form: signal row i receives coefs[e] times
// padded row rows[e] for e in [offsets[i], offsets[i + 1]). `id` names the contents, so a
// backend may keep a device copy per id: a map is not changed after make_row_map built it.
struct RowMap {
  int64_t n = 0;
  std::vector<ExtendRow> padded;
  std::vector<int64_t> offsets, rows;
  std::vector<double> coefs;
  uint64_t id = 0;
  int64_t padded_rows() const { return (int64_t)padded.size(); }
};
// Builds the transpose of `padded` for a signal of n rows, and gives the map a fresh id.
RowMap make_row_map(int64_t n, std::vector<ExtendRow> padded);

// Row-major C(m x n) = alpha * op(A)(m x k) * op(B)(k x n) + beta * C, as in cblas_?gemm
// with CblasRowMajor. Leading dimensions and batch strides are in elements.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  double alpha = 1.0, beta = 0.0;
};

// Scaled dot-product attention over (B, H, N, d) tensors, computed tile by tile with an
// online softmax so that no (N, N) matrix is ever stored ("flash attention").
//
// q (B, H, nq, d), k and v (B, H, nk, d), out (B, H, nq, d): any strides in the first three
// dims, stride 1 in the last (so the heads of a fused (B, N, 3 H d) projection are read in
// place). lse (B, H, nq) contiguous, float64 for float64 inputs and float32 otherwise:
// the log of each row's softmax denominator, log sum_j exp(s_ij), saved for backward.
// key_keep: (B, nk) contiguous int32, nonzero where a key may be attended to, or undefined.
//
// Scores s_ij = scale * q_i . k_j. Key j is masked for query i when key_keep[b, j] == 0 or
// (causal) j > i; masked scores are -inf. A row whose keys are all masked attends uniformly
// to all nk keys (every score of that row counts as 0), as the materialised
// softmax(masked_fill(scores, lowest)) does, and passes no gradient to q or k.
// Dropout (dropout_p > 0): the normalised weight p_ij is multiplied by 1 / (1 - p) where
// attention_dropout_keep(...) below is true (probability 1 - p to 2^-17) and by 0 elsewhere;
// the softmax denominator is not changed by it.
struct AttentionArgs {
  int64_t batch = 0, heads = 0, nq = 0, nk = 0, dim = 0;
  double scale = 1.0;
  bool causal = false;
  double dropout_p = 0.0;
  PhiloxState philox;  // dropout's counter range: attention_dropout_counters(...) of them
};

// One problem of Backend::attention_forward_group / attention_backward_group: the
// arguments of one attention_forward call (q ... lse) and, for the backward, of one
// attention_backward call (dropout_bits ... grad_v).
struct AttentionProblem {
  AttentionArgs args;
  Tensor q, k, v, key_keep, out, lse;
  Tensor dropout_bits, grad_out, grad_q, grad_k, grad_v;
};

// CPU kernels read the counters on the host: a range based on a CUDA graph's device word
// (PhiloxState) cannot reach them. A CPU op recorded in a capture would be the cause.
inline void check_host_philox(const PhiloxState& s) {
  WAVSPA_CHECK(s.offset_base == nullptr, "a CPU random kernel was given counters of a CUDA graph capture; "
               "CPU work cannot be recorded into a CUDA graph");
}

// Counters attention's dropout consumes: one Philox block (4 x 32 random bits) per 8 keys of
// every query row, 16 bits per weight.
inline uint64_t attention_dropout_counters(const AttentionArgs& a) {
  return (uint64_t)(a.batch * a.heads * a.nq) * (uint64_t)((a.nk + 7) / 8);
}
// Weights whose 16 random bits are below round(p 2^16) are dropped, so a weight is kept with
// probability 1 - round(p 2^16) / 2^16, within 2^-17 of 1 - p (the kept ones are scaled by
// 1 / (1 - p) as asked). 16 bits rather than 32 halve the Philox work of the GPU kernels.
WAVSPA_HOST_DEVICE inline uint32_t attention_dropout_threshold(double p) {
  return (uint32_t)(p * 65536.0 + 0.5);  // p in [0, 1] -> [0, 65536]
}
// Whether dropout keeps weight (bh = b * heads + h, i, j): key j of row (bh, i) takes the 16
// bits (j % 2 = 0: low half) of word (j % 8) / 2 of dropout_philox block offset + (bh * nq + i) *
// ceil(nk / 8) + j / 8 (Philox 4x32-7, core/random.h), so every backend and every tiling draws
// the same mask.
WAVSPA_HOST_DEVICE inline bool attention_dropout_keep(const AttentionArgs& a, int64_t bh, int64_t i,
                                                      int64_t j) {
  const uint64_t row = (uint64_t)(bh * a.nq + i) * (uint64_t)((a.nk + 7) / 8);
  const auto r = dropout_philox(a.philox.offset + row + (uint64_t)(j / 8), a.philox.seed);
  const uint32_t bits = (r[(j % 8) / 2] >> (16 * (j % 2))) & 0xffffu;
  return bits >= attention_dropout_threshold(a.dropout_p);
}

// One Adam / AdamW update of a parameter (nn/optim.h), for the fused multi-tensor step:
// param, grad, exp_avg and exp_avg_sq contiguous, one shape, dtype and device. With
// g = grad * grad_scale, element by element:
//   p = p * (decoupled ? 1 - lr * weight_decay : 1);  g = g + (decoupled ? 0 : weight_decay) * p
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p = p - lr / bias_correction1 * m / (sqrt(v) / sqrt(bias_correction2) + eps)
struct AdamHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool decoupled = true;  // AdamW
};
struct AdamSlot {
  Tensor param, grad, exp_avg, exp_avg_sq;
  double lr = 0, weight_decay = 0, bias_correction1 = 1, bias_correction2 = 1;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;

  // --- memory ---------------------------------------------------------------------------
  // dst[i] = (dst dtype) src[i]; same shape, both strided, both on this device.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  // copy(src[i], dst[i]) for every i; a backend may do them all in one launch (CUDA: the
  // contiguous float32 -> bfloat16 ones, the optimizer's refresh of linear's weight copies).
  virtual void copy_many(const std::vector<Tensor>& src, const std::vector<Tensor>& dst);
  virtual void fill(const Tensor& dst, double value) = 0;  // strided dst
  // Contiguous host buffer <-> contiguous tensor of this device, dst.dtype() layout.
  virtual void copy_from_host(const void* src, const Tensor& dst) = 0;
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;

  // --- elementwise (strided inputs already expanded to out's shape) ---------------------
  virtual void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) = 0;
  // a, b and out share a dtype, except that a comparison (Eq ... Ge) may write a bool out.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out,
                      double p0, double p1) = 0;
  // out = cond != 0 ? a : b; any dtypes (bool included), a and b sharing out's
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = 0;

  // --- reductions (strided x; dims sorted and unique; out holds the kept dims) ----------
  virtual void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                      const Tensor& out) = 0;
  // Index (int64) of the max (or min) along `dim`; out has x's shape without `dim`.
  virtual void arg_reduce(bool is_max, const Tensor& x, int64_t dim, const Tensor& out) = 0;
  // out (N) = the column sums of x (M, N), contiguous, in an order that does not depend on
  // the run (the same bits every time): a linear layer's bias gradient. out is float32 for
  // float32 or bfloat16 x (bfloat16: CUDA only), float64 for float64 x.
  virtual void column_sum(const Tensor& x, const Tensor& out) = 0;

  // --- matrix products (a, b, c addressed through raw_data() and GemmArgs) --------------
  // float32 products follow matmul_precision() (core/runtime.h). a and b have c's dtype,
  // except that CUDA also multiplies bfloat16 a and b into a float32 c.
  virtual void gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) = 0;
  // c (m x n, contiguous) = alpha op(a) op(b) + bias (n, contiguous, c's dtype) in every row;
  // g.beta is not read. The default copies the bias into each row of c and runs gemm with
  // beta 1; a backend may add it in the product's epilogue instead (CUDA: cuBLASLt's): the
  // float32 accumulator plus the bias, rounded once to c's dtype. The epilogue's kernel may
  // sum the products in another order than gemm's, so the bits may differ from the default's.
  virtual void gemm_bias(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& bias,
                         const Tensor& c);
  virtual void batched_gemm(const GemmArgs& g, int64_t batch, const Tensor& a, int64_t stride_a,
                            const Tensor& b, int64_t stride_b, const Tensor& c,
                            int64_t stride_c) = 0;

  // --- normalisation and softmax over the last dim (contiguous rows) --------------------
  virtual void softmax_forward(const Tensor& x, const Tensor& y, bool log) = 0;
  virtual void softmax_backward(const Tensor& y, const Tensor& grad_y, const Tensor& grad_x,
                                bool log) = 0;
  // x, y: (M, N); weight, bias: (N) or undefined; mean, rstd: (M) saved for backward, in
  // x's dtype (float32 when x is bfloat16).
  virtual void layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 double eps, const Tensor& y, const Tensor& mean,
                                 const Tensor& rstd) = 0;
  // grad_weight / grad_bias may be undefined (not wanted).
  virtual void layernorm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                  const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                                  const Tensor& grad_weight, const Tensor& grad_bias) = 0;

  // A residual add and the layer norm after it (ops/nn.h dropout_add_layer_norm), float32 or
  // float64, all contiguous: h = base + dropout(x) with dropout's bits for (s, p) (p = 0: the
  // plain add), then layernorm_forward(h) into y, mean and rstd. The default runs dropout (or
  // binary) and layernorm_forward one after the other; a backend may fuse them per row block.
  virtual void dropout_add_layernorm_forward(const Tensor& base, const Tensor& x, PhiloxState s, double p,
                                             const Tensor& weight, const Tensor& bias, double eps,
                                             const Tensor& h, const Tensor& y, const Tensor& mean,
                                             const Tensor& rstd);
  // layernorm_backward with grad_x = its input gradient + grad_add (contiguous, x's shape;
  // undefined: nothing added), the sum rounded as add rounds it. The default adds in a second pass.
  virtual void layernorm_backward_add(const Tensor& grad_y, const Tensor& grad_add, const Tensor& x,
                                      const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias);

  // --- indexing (index: contiguous int64) ----------------------------------------------
  // out = x.index_select(dim, index); x contiguous.
  virtual void index_select(const Tensor& x, int64_t dim, const Tensor& index,
                            const Tensor& out) = 0;
  // out.index_select(dim, index) += src (repeated indices add up); out contiguous.
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                         const Tensor& src) = 0;
  // out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (torch.gather); all contiguous.
  virtual void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) = 0;
  virtual void scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src) = 0;

  // --- attention (AttentionArgs above) -------------------------------------------------
  // Returns the dropout mask the forward used, in the backend's own layout, when the backend
  // keeps it for the backward (CUDA's tensor-core path: one bit per weight, drawn before the
  // forward), or an undefined tensor, and the backward draws the mask again from a.philox.
  virtual Tensor attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                   const Tensor& lse) = 0;
  // grad_out: out's shape; grad_q, grad_k, grad_v: q's, k's and v's shapes, written in full.
  // All with any strides in the first three dims and stride 1 in the last. out, lse and
  // dropout_bits are the forward's (dropout_bits what it returned, maybe undefined).
  virtual void attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                  const Tensor& lse, const Tensor& dropout_bits, const Tensor& grad_out,
                                  const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v) = 0;

  // Several independent problems at once (WavSpA's bands of one level), with the same
  // results, bits included, as attention_forward / attention_backward on each in turn. A
  // backend may launch each kernel once for all of them (CUDA's tensor-core path does); the
  // default runs them one by one. attention_forward_group returns each problem's mask as
  // attention_forward does; attention_backward_group reads it from dropout_bits.
  virtual std::vector<Tensor> attention_forward_group(const std::vector<AttentionProblem>& problems);
  virtual void attention_backward_group(const std::vector<AttentionProblem>& problems);

  // --- optimizers ------------------------------------------------------------------------
  // Every slot updated in place (AdamSlot above); slots of one float32 or float64 dtype.
  // grad_scale: a 0-d float32 tensor on this device multiplying every gradient, or undefined;
  // skip: a 0-d float32 tensor on this device, nothing changes where it is nonzero (read by
  // the kernel, so a guard against a non-finite loss needs no host synchronisation).
  virtual void adam_step(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                         const Tensor& skip) = 0;

  // --- losses: logits (N, C), target (N) int64, losses (N) ------------------------------
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                     int64_t ignore_index, double label_smoothing,
                                     const Tensor& losses) = 0;
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& target,
                                      const Tensor& grad_losses, int64_t ignore_index,
                                      double label_smoothing, const Tensor& grad_logits) = 0;

  // --- wavelets: dyadic (stride 2) filter banks along the middle dim of (A, n, C) --------
  // tensors, channels C innermost. Filters w are (nf, K, Cw), contiguous, with Cw = C (one
  // filter per channel) or 1 (shared), in the signal's compute dtype: the signal's own, float32
  // for a bfloat16 signal (CUDA only), as is grad_w.
  // out (A, P, C) row p = sum over map.padded[p]'s terms of coef * x row src; x (A, map.n, C).
  virtual void wavelet_extend(const Tensor& x, const RowMap& map, const Tensor& out) = 0;
  // The adjoint: grad_x (A, map.n, C) += map^T grad_out (grad_x already initialised).
  virtual void wavelet_extend_backward(const Tensor& grad_out, const RowMap& map,
                                       const Tensor& grad_x) = 0;
  // The filter bank proper works on "planes": (A, L, C) tensors whose (L, C) part is
  // contiguous (dim 0 may have any stride, so the bands of a stacked result are planes).
  // A RowMap folds the boundary extension (or, transposed, the periodic wrap) into the
  // kernels, so no padded copy of a signal is ever made.
  //
  // outs[f] row o = sum_k w[f, k, c] * xe[2 o + k + start], xe = map applied to plane x.
  virtual void wavelet_analysis(const Tensor& x, const RowMap& map, const Tensor& w,
                                int64_t start, const std::vector<Tensor>& outs) = 0;
  // The adjoint of analysis in x: out (A, map.n, C) row i = sum over map's transpose
  // entries (p, coef) of coef * sum over f and the (o, k) with 2 o + k + start = p of
  // w[f, k, c] * coeffs[f][a, o, c]. Every row of out is written. With `base` defined (a
  // plane of out's shape and dtype) out is base + that sum, the sum rounded to out's dtype
  // first: the bits of add(base, synthesis), in one pass (a residual connection's add).
  virtual void wavelet_synthesis(const std::vector<Tensor>& coeffs, const Tensor& w,
                                 int64_t start, const RowMap& map, const Tensor& out,
                                 const Tensor& base) = 0;
  // grad_w (nf, K, Cw) = sum_{a, o} g[f][a, o, c] * xe[a, 2 o + k + start, c], xe = map
  // applied to plane x (summed over c too when Cw == 1): the filter gradient of analysis
  // (g = output gradient) and of synthesis (g = coefficients, x = output gradient).
  virtual void wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x,
                                   const RowMap& map, int64_t start, const Tensor& grad_w) = 0;

  // --- the orthogonal lattice (ops/wavelet.h lattice_filter) -----------------------------
  // h (2K, C) from angles theta (K, C), both contiguous, K <= kLatticeMaxK: each channel by
  // lattice_channel below.
  virtual void lattice_filter(const Tensor& theta, const Tensor& h) = 0;
  // grad_theta (K, C) from grad_h (2K, C): h is linear in (cos theta_i, sin theta_i) for each
  // i, so d h / d theta_i is h with theta_i moved by pi / 2 (cos -> -sin, sin -> cos), and
  // grad_theta_i = sum_m grad_h[m] * that filter's tap m.
  virtual void lattice_filter_backward(const Tensor& theta, const Tensor& grad_h, const Tensor& grad_theta) = 0;

  // --- lifting steps (ops/wavelet.h lifting_forward / lifting_inverse) --------------------
  // Signals are (A, rows, C) views with unit channel stride and any batch and row strides, so
  // the even and odd rows of one signal are views of it; the filter f (K, Cw) is contiguous,
  // Cw = C or 1, in the signal's compute dtype (float32 for bfloat16, CUDA only), as is grad_f.
  // ext(v) extends v's n rows symmetrically (lifting_sym below).
  //
  // out[a, m, c] = base[a, m, c] + sign * sum_k f[k, c] * ext(v)[a, m + k + offset, c] for
  // every row m of out (sign +1 or -1); base has out's shape and may be out itself.
  virtual void lifting_step(const Tensor& v, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                            const Tensor& out) = 0;
  // Its adjoint in v: out[a, j, c] = base[a, j, c] + sign * sum over the (m, k) with
  // lifting_sym(m + k + offset, n) = j (lifting_preimages) of f[k, c] * g[a, m, c], for the
  // n rows j of out; m runs over g's rows.
  virtual void lifting_step_adjoint(const Tensor& g, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                                    const Tensor& out) = 0;
  // Its filter gradient: grad_f[k, c] = sign * sum_{a, m} g[a, m, c] * ext(v)[a, m + k + offset, c]
  // (summed over c too when Cw = 1), in an order that does not depend on the run.
  virtual void lifting_filter_grad(const Tensor& g, const Tensor& v, int64_t offset, int sign,
                                   const Tensor& grad_f) = 0;

  // --- FFT: real transforms along the middle dim of contiguous (A, n, C) signals --------
  // Spectra are (A, n / 2 + 1, C, 2) tensors of (real, imag) pairs, numpy.fft's layout of
  // the non-negative frequencies. Unnormalised, as FFTW's and cuFFT's R2C / C2R plans.
  //
  // spec[a, k, c] = sum_t x[a, t, c] exp(-2 pi i k t / n); the imaginary parts of bin 0 and
  // (n even) bin n / 2 are written as exact zeros.
  virtual void fft_r2c(const Tensor& x, const Tensor& spec) = 0;
  // x[a, t, c] = scale * sum_{k < n} Y_k exp(+2 pi i k t / n), where Y is spec completed by
  // Hermitian symmetry (Y_{n-k} = conj(Y_k)) and the imaginary parts of bin 0 and (n even)
  // bin n / 2 are ignored. n is x's middle dim; scale = 1 / n gives numpy.fft.irfft.
  virtual void fft_c2r(const Tensor& spec, double scale, const Tensor& x) = 0;

  // --- random numbers: element i depends only on (state, i) -----------------------------
  virtual void uniform(const Tensor& out, PhiloxState s, double lo, double hi) = 0;
  virtual void normal(const Tensor& out, PhiloxState s, double mean, double std) = 0;
  virtual void randint(const Tensor& out, PhiloxState s, int64_t lo, int64_t hi) = 0;
  // out[i] = keep ? 1 / (1 - p) : 0, keep with probability 1 - p (dropout_keeps, below).
  virtual void dropout_mask(const Tensor& out, PhiloxState s, double p) = 0;
  // out[i] = keep ? x[i] / (1 - p) : 0 with dropout_mask's keep for (s, i), the product in
  // x's compute type (float32 for bfloat16); x and out contiguous, one dtype, p < 1. The op's
  // forward and backward (on the gradient) with one s: no mask is ever stored. With `base`
  // defined (contiguous, x's shape and dtype) out[i] = base[i] + that value rounded to x's
  // dtype: the bits of add(base, dropout(x)), in one pass (ops/nn.h dropout_add).
  virtual void dropout(const Tensor& x, const Tensor& out, PhiloxState s, double p, const Tensor& base) = 0;
  // Bias, GELU and dropout in one pass each way (the first half of a Transformer MLP; the op
  // is bias_gelu in ops/nn.h). x (M, N) and out contiguous, one dtype; bias (N) contiguous,
  // of x's dtype, or float32 for a bfloat16 x (then rounded to bfloat16 first, as autocast's
  // add would). Element i of the flattened x, in x's compute type:
  //   z = x[i] + bias[i % N], rounded to x's dtype;  y = gelu(z) (erf, or tanh when `tanh`),
  //   rounded;  out[i] = p > 0 ? (dropout_keeps for (s, i) ? y / (1 - p) : 0) : y
  // which is what add, gelu and dropout compute one after the other. p in [0, 1).
  virtual void bias_gelu(const Tensor& x, const Tensor& bias, const Tensor& out, bool tanh, PhiloxState s,
                         double p) = 0;
  // Its backward: d = p > 0 ? (keep ? g[i] / (1 - p) : 0) : g[i], rounded to x's dtype, then
  // grad_x[i] = d gelu'(z) with z as above (dropout's then gelu's backward); g contiguous.
  virtual void bias_gelu_backward(const Tensor& g, const Tensor& x, const Tensor& bias, const Tensor& grad_x,
                                  bool tanh, PhiloxState s, double p) = 0;

  // --- graphs: device work recorded once, launched again (ops/graph.h) ------------------
  // Between begin_capture and end_capture the calling thread's kernels and copies are
  // recorded, not run; device memory they allocate is the recording's for its lifetime.
  // Work that waits for the device (a read to the host, a synchronisation) fails the capture
  // with a wavspa::Error; abort_capture then ends it and frees what it made. The CPU backend
  // has no graphs: begin_capture refuses.
  class Recording {
   public:
    virtual ~Recording() = default;
    virtual void launch() = 0;  // queues the recorded work once, as it was recorded
  };
  virtual void begin_capture();
  virtual std::unique_ptr<Recording> end_capture();
  virtual void abort_capture() noexcept {}
};

// The backend for a device; throws a wavspa::Error naming the device if it is not built in.
Backend& backend_for(Device device);

// Counters a random kernel consumes for n elements (4 uniforms or 2 normals per counter).
inline uint64_t philox_counters_uniform(int64_t n) { return (uint64_t)(n + 3) / 4; }
inline uint64_t philox_counters_normal(int64_t n) { return (uint64_t)(n + 1) / 2; }

// Dropout's rule (`dropout`, and `dropout_mask`, which draws the same keep): element i takes
// the 16 bits (i % 2 = 0: the low half) of word (i % 8) / 2 of dropout_philox block offset +
// i / 8 (Philox 4x32-7, core/random.h) and is kept when they are >= round(p 2^16), with probability 1 - p to within 2^-17. 16 bits
// rather than 32 per element halve the Philox work, which is what a dropout kernel costs.
inline uint64_t philox_counters_dropout(int64_t n) { return (uint64_t)(n + 7) / 8; }
WAVSPA_HOST_DEVICE inline uint32_t dropout_threshold(double p) { return (uint32_t)(p * 65536.0 + 0.5); }
WAVSPA_HOST_DEVICE inline bool dropout_keeps(const std::array<uint32_t, 4>& r, int lane, uint32_t threshold) {
  return ((r[lane / 2] >> (16 * (lane % 2))) & 0xffffu) >= threshold;
}

// ---- lifting: the symmetric extension and its preimages (CPU and CUDA kernels) -----------

// Row p (any integer) of a signal of n rows extended symmetrically, pywt's "symmetric" mode
// (... x1 x0 | x0 x1 ... x(n-1) | x(n-1) x(n-2) ...): period 2n, mirrored about -1/2 and n - 1/2.
WAVSPA_HOST_DEVICE inline int64_t lifting_sym(int64_t p, int64_t n) {
  const int64_t period = 2 * n;
  int64_t r = p % period;
  if (r < 0) r += period;
  return r < n ? r : period - 1 - r;
}

// Calls visit(m, k) for every m in [0, n_out) and k in [0, K) with
// lifting_sym(m + k + offset, n) == j: the rows p that land on j are j + 2 n t and
// 2 n t - 1 - j (never both), and each tap k sees p in [k + offset, k + offset + n_out).
// Inside the signal that is one term per tap; the ends add the mirrored ones.
template <typename Visit>
WAVSPA_HOST_DEVICE inline void lifting_preimages(int64_t j, int64_t n, int64_t n_out, int K, int64_t offset,
                                                 Visit&& visit) {
  const int64_t period = 2 * n;
  // the least t with base + period * t >= lo
  auto first = [period](int64_t base, int64_t lo) {
    const int64_t d = lo - base;
    return d <= 0 ? -((-d) / period) : (d + period - 1) / period;
  };
  for (int k = 0; k < K; ++k) {
    const int64_t lo = k + offset, hi = lo + n_out;  // p in [lo, hi)
    for (int64_t p = j + period * first(j, lo); p < hi; p += period) visit(p - lo, k);
    for (int64_t p = -1 - j + period * first(-1 - j, lo); p < hi; p += period) visit(p - lo, k);
  }
}

// ---- the orthogonal lattice, one channel (shared by the CPU and CUDA kernels) ------------

// The longest lattice the backends take (filters of 2 kLatticeMaxK taps); ops/ composes longer
// ones from elementwise ops.
constexpr int kLatticeMaxK = 32;

// h[2 n * h_stride] = E00[n], h[(2 n + 1) * h_stride] = E01[n] for n < K, where E is the
// polyphase matrix R(theta_{K-1}) diag(1, z^-1) ... diag(1, z^-1) R(theta_0) with
// R(theta) = [[cos, sin], [-sin, cos]], from cos theta_i = c[i] and sin theta_i = s[i].
// The same sums as ops/wavelet_learnable.cpp's composite (each delay-and-rotate step:
// E00' = c r0a + s r1a, E01' = c r0b + s r1b, E10' = c r1a - s r0a, E11' = c r1b - s r0b with
// r0 = [E0., 0] and r1 = [0, E1.]), done in place from the highest power down.
template <typename V>
WAVSPA_HOST_DEVICE inline void lattice_channel(int K, const V* c, const V* s, V* h, int64_t h_stride) {
  V e00[kLatticeMaxK], e01[kLatticeMaxK], e10[kLatticeMaxK], e11[kLatticeMaxK];
  e00[0] = c[0], e01[0] = s[0], e10[0] = -s[0], e11[0] = c[0];
  for (int i = 1; i < K; ++i)
    for (int n = i; n >= 0; --n) {
      const V r0a = n < i ? e00[n] : V(0), r0b = n < i ? e01[n] : V(0);
      const V r1a = n > 0 ? e10[n - 1] : V(0), r1b = n > 0 ? e11[n - 1] : V(0);
      e00[n] = c[i] * r0a + s[i] * r1a;
      e01[n] = c[i] * r0b + s[i] * r1b;
      e10[n] = c[i] * r1a - s[i] * r0a;
      e11[n] = c[i] * r1b - s[i] * r0b;
    }
  for (int n = 0; n < K; ++n) h[2 * n * h_stride] = e00[n], h[(2 * n + 1) * h_stride] = e01[n];
}

// grad_theta_j (j < K) of one channel: c, s as above (changed and restored inside), grad_h
// (2K values, stride g_stride), results to grad_theta[j * t_stride].
template <typename V>
WAVSPA_HOST_DEVICE inline void lattice_channel_backward(int K, V* c, V* s, const V* grad_h, int64_t g_stride,
                                                        V* grad_theta, int64_t t_stride) {
  V hj[2 * kLatticeMaxK];
  for (int j = 0; j < K; ++j) {
    const V cj = c[j], sj = s[j];
    c[j] = -sj, s[j] = cj;  // theta_j + pi / 2
    lattice_channel(K, c, s, hj, 1);
    c[j] = cj, s[j] = sj;
    V acc = 0;
    for (int m = 0; m < 2 * K; ++m) acc += grad_h[m * g_stride] * hj[m];
    grad_theta[j * t_stride] = acc;
  }
}

}  // namespace wavspa

// Efficient self-attention variants, the baselines of the WavSpA / Long Range Arena tables.
// Each is an nn::SelfAttention, so a Transformer block or a WavSpA band can hold any of them.
//
//   nn::LinearAttention lin(/*dim=*/64, /*heads=*/4);                  // elu(x) + 1 features
//   nn::PerformerAttention perf(64, 4, /*qkv_dim=*/-1, /*num_features=*/256, /*seed=*/7);
//   nn::LinformerAttention lf(64, 4, /*max_len=*/1024, /*k=*/128);
//   nn::LocalAttention loc(64, 4, /*window=*/32, /*num_global=*/1);
//   Tensor x = randn({2, 100, 64});                                    // (B, N, D)
//   Tensor key_mask = ones({2, 100});                                  // 0 = padding
//   Tensor y = perf.forward(x, key_mask);                              // (B, N, D)
//   Tensor z = lin.forward(x, Tensor(), /*causal=*/true);
//
// Shapes: B batch, N sequence, D model width (dim), H heads, dh = qkv_dim / H per head,
// m random features (Performer), k projected length (Linformer).
//
// All four share MultiHeadSelfAttention's projections and parameter names: one fused
// Linear "qkv" (D -> 3 qkv_dim) and Linear "out" (qkv_dim -> out_dim), heads split as
// (B, H, N, dh). So a MultiHeadSelfAttention state dict loads into a LocalAttention as is.
#pragma once

#include <cstdint>
#include <memory>

#include "nn/attention.h"

namespace wavspa::nn {

// The kernelised attention both LinearAttention and Performer reduce to, in O(N) time and
// memory: out_i = sum_j (phi_q_i . phi_k_j) v_j / sum_j (phi_q_i . phi_k_j).
// phi_q, phi_k: (..., N, m), non-negative features (a padded key is a zero row); v:
// (..., N, dv) -> (..., N, dv). causal: j <= i only, computed chunk by chunk (chunk_size
// rows at a time: a masked (chunk x chunk) block inside the chunk plus the running sums
// sum_j phi_k_j v_j^T and sum_j phi_k_j of the chunks before it), so no N x N matrix is built.
// A query that sees no key (every key padded, or masked by causality) gets a zero output,
// where the reference implementations add eps = 1e-6 to the denominator instead.
Tensor linear_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v,
                        bool causal = false, int64_t chunk_size = 64);

// Katharopoulos et al. 2020, "Transformers are RNNs": phi(x) = elu(x) + 1 applied to q and
// k, then linear_attention. Padded keys get phi(k) = 0, so they contribute nothing.
class LinearAttention : public SelfAttention {
 public:
  // qkv_dim (default dim) is split over the heads; out_dim defaults to dim. chunk_size is
  // the block length of the causal prefix sums (it changes speed and memory, not results).
  LinearAttention(int64_t dim, int64_t heads, int64_t qkv_dim = -1, bool bias = true,
                  int64_t out_dim = -1, int64_t chunk_size = 64);
  Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(), bool causal = false) override;
  std::string extra_repr() const override;

  int64_t dim, heads, qkv_dim, out_dim, chunk_size;
  std::shared_ptr<Linear> qkv, out;
};

// Choromanski et al. 2021, "Rethinking Attention with Performers" (FAVOR+): positive
// orthogonal random features estimate the softmax kernel exp(q . k / sqrt(dh)), then
// linear_attention. For x' = x / dh^(1/4) and rows w_r of the projection (m, dh):
//   phi(x) = exp(w_r . x' - |x'|^2 / 2 - c) / sqrt(m),   r = 0..m-1
// The shift c keeps exp() in range and cancels in the ratio of linear_attention: per query
// row its own max over the features (as the reference); for keys, one max per (b, h) over
// every key and feature (the reference takes one max over the whole batch, which would let
// one sequence's values set another's rounding). Padded keys are included in that max.
// Under causal masking the key shift also sees later keys; being one constant per (b, h)
// it cancels exactly, so no information flows backwards (only rounding depends on it).
//
// The projection is a buffer "projection" (m, dh), shared by the heads, drawn at
// construction from Generator(seed): blocks of dh orthonormal rows (Gram-Schmidt of a
// Gaussian dh x dh matrix, in float64 on the host; the last block keeps its first m mod dh
// rows), each row then scaled by the norm of an independent Gaussian dh-vector (chi with dh
// degrees of freedom), so that rows are marginally Gaussian as in the paper. Unlike the
// reference the features are not redrawn during training; call redraw_features to do so.
// num_features defaults to 256, the LRA Performer setting.
class PerformerAttention : public SelfAttention {
 public:
  PerformerAttention(int64_t dim, int64_t heads, int64_t qkv_dim = -1, int64_t num_features = 256,
                     uint64_t seed = 0, bool bias = true, int64_t out_dim = -1,
                     int64_t chunk_size = 64);
  Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(), bool causal = false) override;
  std::string extra_repr() const override;
  // Draws a new projection from Generator(seed) (same dtype and device as the old one).
  void redraw_features(uint64_t seed);
  // The (m, dh) projection the constructor draws, in float64 on the CPU.
  static Tensor orthogonal_random_features(int64_t num_features, int64_t head_dim, uint64_t seed);
  // phi of q or k (B, H, N, dh) -> (B, H, N, m); is_query picks the shift c (see above).
  Tensor feature_map(const Tensor& x, bool is_query) const;

  int64_t dim, heads, qkv_dim, out_dim, num_features, chunk_size;
  uint64_t seed;
  std::shared_ptr<Linear> qkv, out;
  Tensor projection;  // buffer (m, dh)
};

// Wang et al. 2020, "Linformer": learned projections E, F (k, max_len) shorten keys and
// values along the sequence, K' = E K, V' = F V (B, H, k, dh), then
// softmax(Q K'^T / sqrt(dh)) V'. A sequence of N < max_len uses the first N columns of E
// and F. One E and one F serve every head (the paper's headwise sharing); share_kv also
// makes F = E (parameter "E" only). Padded keys and values are zeroed before the
// projection, so they add nothing to K', V' (a zero row of K' still takes softmax weight,
// as in the paper's implementation). Causal attention cannot be expressed, since every
// projected key mixes the whole sequence: forward(..., causal = true) throws.
// E, F start as U(-1/sqrt(max_len), 1/sqrt(max_len)), a Linear(max_len -> k)'s default.
class LinformerAttention : public SelfAttention {
 public:
  LinformerAttention(int64_t dim, int64_t heads, int64_t max_len, int64_t k = 256,
                     int64_t qkv_dim = -1, bool share_kv = false, double attn_dropout = 0.0,
                     bool bias = true, int64_t out_dim = -1);
  Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(), bool causal = false) override;
  std::string extra_repr() const override;
  bool decays(const std::string& name) const override { return name == "E" || name == "F"; }

  int64_t dim, heads, qkv_dim, out_dim, max_len, k;
  bool share_kv;
  double attn_dropout;
  std::shared_ptr<Linear> qkv, out;
  Tensor E, F;  // (k, max_len); F undefined when share_kv
};

// Sliding-window attention with global tokens (Longformer, Beltagy et al. 2020): query i
// attends to key j when |i - j| <= window (a radius: 2 window + 1 keys), or when i or j is
// one of the first num_global positions (global tokens see everything and are seen by
// everyone). key_mask and causal are applied on top (causal wins over global).
// Implementation: an (N, N) keep-mask handed to scaled_dot_product_attention, so time and
// memory are O(N^2) like full attention (the scores are computed, then masked); a banded
// kernel would make it O(N window). A query that sees no key averages uniformly over all
// keys, as in MultiHeadSelfAttention.
class LocalAttention : public SelfAttention {
 public:
  LocalAttention(int64_t dim, int64_t heads, int64_t window, int64_t num_global = 0,
                 int64_t qkv_dim = -1, double attn_dropout = 0.0, bool bias = true,
                 int64_t out_dim = -1);
  Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(), bool causal = false) override;
  std::string extra_repr() const override;
  // The (N, N) window-and-global keep-mask (1 where query i may attend to key j).
  Tensor keep_mask(int64_t n, DType dtype = kFloat32, Device device = Device::cpu()) const;

  int64_t dim, heads, qkv_dim, out_dim, window, num_global;
  double attn_dropout;
  std::shared_ptr<Linear> qkv, out;
};

}  // namespace wavspa::nn

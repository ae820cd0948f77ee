// Multi-head self-attention (scaled dot-product softmax attention).
//
//   nn::MultiHeadSelfAttention attn(/*dim=*/128, /*heads=*/4);
//   Tensor y = attn.forward(x, key_mask);        // x: (B, N, D); key_mask: (B, N), 0 = padding
//   Tensor z = attn.forward(x, Tensor(), /*causal=*/true);
//
// Shapes: B batch, N sequence, D model width, H heads, dh = qkv_dim / H per head.
#pragma once

#include <memory>
#include <vector>

#include "core/random.h"
#include "nn/layers.h"

namespace wavspa::nn {

// softmax(q k^T / sqrt(dh) + mask) v for q, k, v of shape (..., N, dh). `keep` (optional)
// broadcasts to the (..., N, N) scores: nonzero where query i may attend to key j. Masked
// scores take the dtype's lowest finite value, so a row with nothing to attend to averages
// uniformly instead of producing NaN. Dropout (p) applies to the attention weights.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep = Tensor(), double dropout_p = 0.0,
                                    bool training = false, Generator* gen = nullptr);

// The (N, N) lower-triangular keep-mask of causal attention (1 where j <= i).
Tensor causal_mask(int64_t n, DType dtype = kFloat32, Device device = Device::cpu());

// What every self-attention mechanism offers, so that a Transformer block or a WavSpA band
// can hold any of them: x (B, N, D) -> (B, N, out_dim). key_mask (B, N): nonzero for real
// tokens, 0 for padding; causal: query i sees keys j <= i. A mechanism that cannot honour a
// mask (e.g. one that mixes the whole sequence) throws a wavspa::Error saying so.
class SelfAttention : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(),
                         bool causal = false) = 0;
};

class MultiHeadSelfAttention : public SelfAttention {
 public:
  // qkv_dim (default dim) is split over the heads; the output projection maps it back to
  // out_dim (default dim). fused_qkv keeps one (3 qkv_dim, dim) projection instead of three.
  MultiHeadSelfAttention(int64_t dim, int64_t heads, int64_t qkv_dim = -1,
                         double attn_dropout = 0.0, bool bias = true, bool fused_qkv = true,
                         int64_t out_dim = -1);
  // x (B, N, D). key_mask (B, N): nonzero for real tokens, 0 for padding that no query may
  // attend to. causal: query i attends to keys j <= i only. Computed by the fused
  // attention op (ops/attention.h); attn_dropout applies while training.
  Tensor forward(const Tensor& x, const Tensor& key_mask = Tensor(), bool causal = false) override;
  std::string extra_repr() const override;

  int64_t dim, heads, qkv_dim, out_dim;
  double attn_dropout;
  std::shared_ptr<Linear> qkv, q, k, v;  // qkv when fused, else q, k, v
  std::shared_ptr<Linear> out;
};

// mods[i]->forward(xs[i]) for every i (no key mask, not causal): the same values, bits and
// gradients. Where every module is a MultiHeadSelfAttention with a fused projection, with one
// head count, attention dropout and training mode, the projections run one by one and the
// attention between them as one attention_qkv_group (on CUDA one launch of each kernel for
// up to four problems); otherwise each module's forward runs in turn. WavSpA runs the bands of
// a level through it.
std::vector<Tensor> self_attention_group(const std::vector<SelfAttention*>& mods, const std::vector<Tensor>& xs);

}  // namespace wavspa::nn

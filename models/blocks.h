// The blocks the LRA models stack: the pre-LayerNorm Transformer block, the WavSpA block
// (attention in wavelet space), and the Fourier-space baselines.
//
//   auto attn = std::make_shared<nn::MultiHeadSelfAttention>(128, 1, 64);
//   models::TransformerBlock block(128, attn, /*mlp_dim=*/128, /*dropout=*/0.1);
//   Tensor y = block.forward(x, key_mask);          // x: (B, N, D), key_mask: (B, N)
//
// Shapes: B batch, N sequence, D model width.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/layers.h"
#include "ops/wavelet.h"

namespace wavspa::models {

// Every block maps (B, N, D) to (B, N, D) given the token mask (B, N), nonzero = real token.
class Block : public nn::Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x, const Tensor& key_mask) = 0;
};

// Makes the attention module for a sequence of length n (WavSpA bands differ in length, and
// some mechanisms, e.g. Linformer, need it).
using AttentionFactory = std::function<std::shared_ptr<nn::SelfAttention>(int64_t n)>;

// x = x + Dropout(Attn(LN(x), mask)); x = x + MLP(LN(x)).
class TransformerBlock : public Block {
 public:
  TransformerBlock(int64_t dim, std::shared_ptr<nn::SelfAttention> attention, int64_t mlp_dim,
                   double dropout);
  Tensor forward(const Tensor& x, const Tensor& key_mask) override;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::SelfAttention> attn;
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<nn::MLP> mlp;
};

// How a WavSpA block builds its wavelet transform.
enum class Parametrization {
  Ada,      // free learnable dec_lo per channel (wlen, D), initialised to db(wlen / 2)
  Ortho,    // orthogonal lattice: angles (wlen / 2, D) uniform in [0, 2 pi)
  Lift,     // the fixed LeGall 5/3 lifting transform
  AdaLift,  // learnable per-channel predict/update lifting filters, initialised to 5/3
  Fixed,    // non-trainable db(wlen / 2)
};
Parametrization parametrization_from_name(const std::string& name);
const char* parametrization_name(Parametrization p);

struct WavSpAOptions {
  int64_t dim = 0;
  int64_t mlp_dim = 0;
  int64_t max_len = 0;  // the sequence length the block sees
  int64_t levels = 1;
  int64_t wlen = 16;    // filter length (even); ignored by the lifting parametrizations
  Parametrization parametrization = Parametrization::Ada;
  WaveletMode mode = WaveletMode::Periodization;
  double dropout = 0.0;
  bool pre_mlp_norm = false;  // the official block has none before the MLP
  uint64_t seed = 0;          // for the lattice angles
};

// The WavSpA block, as the official implementation computes it:
//   x = mask(x_in); h = LayerNorm(x);
//   [cA_L, cD_L, ..., cD_1] = wavedec(h) along the sequence, per-channel filters;
//   each band through its own attention (separate weights, no mask);
//   z = waverec(bands) cropped to N; x = x_in + z; y = MLP(Dropout(x)); return x + y
// (x_in + z added by the synthesis kernel, x + y with the MLP's last dropout: waverec_add,
// dropout_add).
class WavSpABlock : public Block {
 public:
  WavSpABlock(const WavSpAOptions& options, const AttentionFactory& make_attention);
  Tensor forward(const Tensor& x, const Tensor& key_mask) override;
  std::string extra_repr() const override;

  // The transform pair, exposed for tests: bands of h (B, N, D) and back.
  std::vector<Tensor> decompose(const Tensor& h) const { return decompose(h, bank()); }
  Tensor reconstruct(const std::vector<Tensor>& bands, int64_t n) const { return reconstruct(bands, n, bank()); }
  Wavelet wavelet() const;  // for Ada / Ortho / Fixed

  WavSpAOptions options;
  std::shared_ptr<nn::LayerNorm> norm, mlp_norm;
  std::vector<std::shared_ptr<nn::SelfAttention>> band_attention;  // one per band
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<nn::MLP> mlp;
  Tensor filters;          // Ada / Fixed: (wlen, D)
  Tensor angles;           // Ortho: (wlen / 2, D)
  Tensor predict, update;  // AdaLift: (2, D)

 private:
  // The filter bank, none for the lifting parametrizations. forward builds it once and both
  // transforms use it (its few small ops, and their backward, run once per step, not twice).
  std::optional<Wavelet> bank() const;
  std::vector<Tensor> decompose(const Tensor& h, const std::optional<Wavelet>& bank) const;
  // With `residual` defined, residual + the reconstruction (waverec_add: the synthesis adds it).
  Tensor reconstruct(const std::vector<Tensor>& bands, int64_t n, const std::optional<Wavelet>& bank,
                     const Tensor& residual = Tensor()) const;
};

// Fourier-space attention: FFT along the sequence, attention over the n/2 + 1 frequency
// coefficients with the real and imaginary parts as features (2 D wide), inverse FFT,
// cropped to N; then the usual residual and MLP.
class FourierBlock : public Block {
 public:
  FourierBlock(int64_t dim, int64_t mlp_dim, int64_t max_len, double dropout,
               const std::function<std::shared_ptr<nn::SelfAttention>(int64_t n, int64_t width)>&
                   make_attention);
  Tensor forward(const Tensor& x, const Tensor& key_mask) override;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::SelfAttention> attn;  // over (B, N/2 + 1, 2 D)
  std::shared_ptr<nn::Dropout> drop;
  std::shared_ptr<nn::MLP> mlp;
};

// FNet: x = LN(x + Re(FFT_seq(FFT_hidden(x)))); x = LN(x + MLP(x)) (post-norm, as FNet).
class FNetBlock : public Block {
 public:
  FNetBlock(int64_t dim, int64_t mlp_dim, double dropout);
  Tensor forward(const Tensor& x, const Tensor& key_mask) override;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::MLP> mlp;
};

}  // namespace wavspa::models

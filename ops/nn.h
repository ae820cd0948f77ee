// Neural-network functions: softmax family, layer norm, embedding, losses, dropout.
//
//   Tensor p = softmax(scores, -1);
//   Tensor h = layer_norm(x, {D}, gamma, beta);
//   Tensor loss = cross_entropy(logits, labels);      // logits (N, C), labels (N) int64
//   Tensor d = dropout(h, 0.1, /*training=*/true);
//   Tensor a = bias_gelu(linear(h, w1), b1, 0.1);     // dropout(gelu(h w1^T + b1), 0.1)
//   auto [r, n] = dropout_add_layer_norm(x, h, 0.1, true, {D}, gamma, beta);  // x + dropout(h), its norm
#pragma once

#include <string>
#include <utility>

#include "core/random.h"
#include "core/tensor.h"
#include "ops/elementwise.h"  // GeluApprox

namespace wavspa {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Normalises over the trailing dims `normalized_shape`; weight and bias (that shape) are
// optional. Fused: the forward saves mean and 1/std per row for the fused backward.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// Rows of `weight` (V, D) picked by `ids` (int32/int64, any shape) -> ids.shape + (D).
// The gradient scatter-adds into the rows that were used.
Tensor embedding(const Tensor& weight, const Tensor& ids);

enum class Reduction { Mean, Sum, None };

struct CrossEntropyOptions {
  int64_t ignore_index = -100;   // targets equal to it contribute nothing
  double label_smoothing = 0.0;  // in [0, 1]
  Reduction reduction = Reduction::Mean;  // Mean divides by the non-ignored count
};

// logits (N, C) with target (N), or (N, C, d1, ...) with target (N, d1, ...), as PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options = {});

// Zeroes each element with probability p and scales the rest by 1 / (1 - p); the mask comes
// from the Philox generator (default_generator() unless given). Identity when !training.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

// base + dropout(x, p, training, gen), a residual connection's add after dropout, in one pass:
// the same mask from the generator and the same bits as the two ops. base and x of one
// shape, dtype and device take the fused kernel; otherwise (broadcasting, autocast's mixed
// dtypes) it is add(base, dropout(x, ...)). Gradient to both.
Tensor dropout_add(const Tensor& base, const Tensor& x, double p, bool training = true,
                   Generator* gen = nullptr);

// The residual stream of a pre-LN block and its normalised copy:
//   h = dropout_add(base, x, p, training, gen);  y = layer_norm(h, normalized_shape, weight, bias, eps)
// with one pass each way where the backend fuses them (the CPU does, for float32 and float64):
// the forward reads base and x once and writes h and y; the backward adds h's own gradient
// into layer_norm's input gradient as it makes it. The same mask and bits as the two ops
// (the gradient of h summed in the order the graph would sum it where h has one other use).
// Shapes, dtypes or autocast mixes the fused kernel does not take run as the two ops.
//
//   auto [h, y] = dropout_add_layer_norm(x, attn_out, 0.1, true, {D}, gamma, beta);
//   Tensor out = mlp->forward_add(h, y);   // h + the MLP of its norm (nn::MLP)
std::pair<Tensor, Tensor> dropout_add_layer_norm(const Tensor& base, const Tensor& x, double p, bool training,
                                                 const Shape& normalized_shape, const Tensor& weight = Tensor(),
                                                 const Tensor& bias = Tensor(), double eps = 1e-5,
                                                 Generator* gen = nullptr);

// dropout(gelu(x + bias), p, training, gen) in one pass each way: the first half of a
// Transformer MLP after a linear without bias. bias (D) broadcasts over x's last dim (D);
// it may be float32 for a bfloat16 x (autocast's master weights: rounded to bfloat16 as add
// would round it, its gradient float32). Draws the same mask from the generator as the
// three ops, and computes their values (on CUDA, their bits). Gradient to x and bias.
Tensor bias_gelu(const Tensor& x, const Tensor& bias, double p = 0.0, bool training = true,
                 GeluApprox approximate = GeluApprox::None, Generator* gen = nullptr);

}  // namespace wavspa

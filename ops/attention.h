// Fused scaled dot-product attention ("flash attention"): softmax(scale q k^T + mask) v
// without ever storing the (nq, nk) score matrix; backward recomputes the weights from the
// log-sum-exp of each row that the forward saved.
//
//   Tensor y = attention(q, k, v);                       // q (B, H, nq, d), k and v (B, H, nk, d)
//   AttentionOptions o;
//   o.key_mask = mask;                                   // (B, nk): 0 marks padding
//   o.causal = true;
//   Tensor z = attention(q, k, v, o);                    // (B, H, nq, d)
//   Tensor h = attention_qkv(qkv, heads, o);             // qkv (B, N, 3 H d) -> (B, N, H d)
//
// nn::scaled_dot_product_attention (nn/attention.h) is the materialised composite, for masks
// of any other form.
#pragma once

#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace wavspa {

struct AttentionOptions {
  // (B, nk), any dtype: nonzero where the key is a real token, 0 for padding no query may
  // attend to. Undefined: every key counts.
  Tensor key_mask;
  bool causal = false;      // query i attends to keys j <= i only (counted from the first key)
  double dropout_p = 0.0;   // dropout on the attention weights, in [0, 1], when training
  bool training = false;
  Generator* gen = nullptr;  // the dropout mask's generator; default_generator() when null
  double scale = -1.0;       // the scores' factor; negative: 1 / sqrt(d)
};

// q (B, H, nq, d), k and v (B, H, nk, d) of one floating dtype and device (bfloat16 on CUDA
// only; under autocast float32 CUDA inputs are cast to it); any strides (the
// heads of a fused (B, N, 3 H d) projection are read in place). Returns (B, H, nq, d), a
// permuted view of (B, nq, H, d) memory, so that .permute({0, 2, 1, 3}).reshape({B, nq, H d})
// costs no copy. A query whose keys are all masked averages v uniformly over all nk keys (as
// the materialised softmax of a row of equal scores) and passes no gradient to q or k.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

// Self-attention on a fused projection: qkv (B, N, 3 E) holds q, k and v one after the other
// in its last dim, each split into `heads` heads of E / heads (as chunk(qkv, 3, -1) and a
// reshape to (B, N, heads, E / heads) would read them). Returns (B, N, E), the heads side by
// side. The same kernels as attention(); the difference is the gradient: one (B, N, 3 E)
// tensor that the kernel writes in place, where the chunked path builds three zero-padded
// slices and adds them.
Tensor attention_qkv(const Tensor& qkv, int64_t heads, const AttentionOptions& options = {});
// attention_qkv on each of several independent projections (WavSpA's bands: lengths may
// differ), qkvs[i] (B_i, N_i, 3 E_i) of one dtype and device -> (B_i, N_i, E_i). The same
// values, bits and gradients as attention_qkv on each in turn (dropout's counters are reserved
// in that order); the backend may launch each kernel once for all of them (CUDA does for
// three or more bfloat16 problems of one head dim, up to four per launch). options.key_mask must be
// undefined: a mask belongs to one problem.
std::vector<Tensor> attention_qkv_group(const std::vector<Tensor>& qkvs, int64_t heads,
                                        const AttentionOptions& options = {});

}  // namespace wavspa

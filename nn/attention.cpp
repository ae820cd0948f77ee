#include "nn/attention.h"

#include <cmath>
#include <limits>

#include "ops/attention.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/nn.h"
#include "ops/shape.h"

namespace wavspa::nn {

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, double dropout_p, bool training,
                                    Generator* gen) {
  WAVSPA_CHECK(q.dim() >= 2 && q.shape() == k.shape() && k.shape() == v.shape(),
               "scaled_dot_product_attention: q, k, v must share one shape (..., N, dh), got ",
               shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  const double scale = 1.0 / std::sqrt((double)q.shape().back());
  Tensor scores = mul(matmul(q, k.transpose(-2, -1)), scale);  // (..., N, N)
  if (keep.defined()) {
    const double lowest = q.dtype() == kFloat64 ? std::numeric_limits<double>::lowest()
                                                : std::numeric_limits<float>::lowest();
    scores = masked_fill(scores, eq(keep, 0), lowest);
  }
  Tensor weights = dropout(softmax(scores, -1), dropout_p, training, gen);
  return matmul(weights, v);
}

Tensor causal_mask(int64_t n, DType dtype, Device device) {
  std::vector<double> m(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) m[i * n + j] = 1.0;
  return from_vector(m, {n, n}).to(dtype).to(device);
}

MultiHeadSelfAttention::MultiHeadSelfAttention(int64_t d, int64_t h, int64_t qkv_d, double p,
                                               bool bias, bool fused, int64_t out_d)
    : SelfAttention("MultiHeadSelfAttention"),
      dim(d),
      heads(h),
      qkv_dim(qkv_d < 0 ? d : qkv_d),
      out_dim(out_d < 0 ? d : out_d),
      attn_dropout(p) {
  WAVSPA_CHECK(h > 0 && qkv_dim % h == 0, "MultiHeadSelfAttention: qkv_dim ", qkv_dim,
               " must be divisible by the number of heads ", h);
  if (fused) {
    qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * qkv_dim, bias));
  } else {
    q = register_module("q", std::make_shared<Linear>(dim, qkv_dim, bias));
    k = register_module("k", std::make_shared<Linear>(dim, qkv_dim, bias));
    v = register_module("v", std::make_shared<Linear>(dim, qkv_dim, bias));
  }
  out = register_module("out", std::make_shared<Linear>(qkv_dim, out_dim, bias));
}

Tensor MultiHeadSelfAttention::forward(const Tensor& x, const Tensor& key_mask, bool causal) {
  WAVSPA_CHECK(x.dim() == 3 && x.shape()[2] == dim, "MultiHeadSelfAttention: expected x of ",
               "shape (B, N, ", dim, "), got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], N = x.shape()[1], dh = qkv_dim / heads;
  // (B, N, qkv_dim) -> (B, H, N, dh)
  auto split_heads = [&](const Tensor& t) {
    return t.reshape({B, N, heads, dh}).permute({0, 2, 1, 3});
  };
  // The fused kernel (ops/attention.h) takes the key mask and causality as they are, so no
  // (N, N) mask or score matrix is built; its output is (B, N, H, dh) memory, so the reshape
  // back to (B, N, qkv_dim) below is a view.
  AttentionOptions options;
  if (key_mask.defined()) {
    WAVSPA_CHECK(key_mask.shape() == Shape({B, N}), "MultiHeadSelfAttention: key_mask must be (B, N) = ",
                 shape_str({B, N}), ", got ", shape_str(key_mask.shape()));
    options.key_mask = key_mask;
  }
  options.causal = causal;
  options.dropout_p = attn_dropout;
  options.training = is_training();
  // A fused projection goes in whole: its gradient comes back as one tensor.
  if (qkv) return out->forward(attention_qkv(qkv->forward(x), heads, options));
  Tensor y = attention(split_heads(q->forward(x)), split_heads(k->forward(x)), split_heads(v->forward(x)), options);
  return out->forward(y.permute({0, 2, 1, 3}).reshape({B, N, qkv_dim}));
}

std::vector<Tensor> self_attention_group(const std::vector<SelfAttention*>& mods, const std::vector<Tensor>& xs) {
  WAVSPA_CHECK(mods.size() == xs.size(), "self_attention_group: ", mods.size(), " modules but ", xs.size(),
               " inputs");
  std::vector<MultiHeadSelfAttention*> fused;
  for (SelfAttention* m : mods) {
    WAVSPA_CHECK(m != nullptr, "self_attention_group: a module is null");
    auto* a = dynamic_cast<MultiHeadSelfAttention*>(m);
    if (a == nullptr || !a->qkv) break;
    const MultiHeadSelfAttention* first = fused.empty() ? a : fused[0];
    if (a->heads != first->heads || a->attn_dropout != first->attn_dropout ||
        a->is_training() != first->is_training())
      break;
    fused.push_back(a);
  }
  std::vector<Tensor> ys;
  if (mods.size() < 2 || fused.size() != mods.size()) {
    for (size_t i = 0; i < mods.size(); ++i) ys.push_back(mods[i]->forward(xs[i]));
    return ys;
  }
  std::vector<Tensor> qkvs;
  for (size_t i = 0; i < mods.size(); ++i) {
    const Tensor& x = xs[i];
    WAVSPA_CHECK(x.dim() == 3 && x.shape()[2] == fused[i]->dim, "MultiHeadSelfAttention: expected x of ",
                 "shape (B, N, ", fused[i]->dim, "), got ", shape_str(x.shape()));
    qkvs.push_back(fused[i]->qkv->forward(x));
  }
  AttentionOptions options;
  options.dropout_p = fused[0]->attn_dropout;
  options.training = fused[0]->is_training();
  const std::vector<Tensor> heads_out = attention_qkv_group(qkvs, fused[0]->heads, options);
  for (size_t i = 0; i < mods.size(); ++i) ys.push_back(fused[i]->out->forward(heads_out[i]));
  return ys;
}

std::string MultiHeadSelfAttention::extra_repr() const {
  return str("dim=", dim, ", heads=", heads, ", qkv_dim=", qkv_dim, ", dropout=", attn_dropout,
             qkv ? ", fused qkv" : ", separate q/k/v");
}

}  // namespace wavspa::nn

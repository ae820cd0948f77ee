#include "models/factory.h"

#include "core/random.h"
#include "nn/attention_variants.h"

namespace wavspa::models {

std::shared_ptr<nn::SelfAttention> make_attention(const ModelConfig& c, int64_t n, int64_t dim) {
  const int64_t qkv = c.architecture == "fourier" ? dim : c.qkv_dim;
  if (c.attention == "full")
    return std::make_shared<nn::MultiHeadSelfAttention>(dim, c.num_heads, qkv, c.attention_dropout,
                                                        true, true, dim);
  if (c.attention == "linear")
    return std::make_shared<nn::LinearAttention>(dim, c.num_heads, qkv);
  if (c.attention == "performer")
    return std::make_shared<nn::PerformerAttention>(dim, c.num_heads, qkv, c.performer_features,
                                                    c.seed + (uint64_t)n);
  if (c.attention == "linformer")
    return std::make_shared<nn::LinformerAttention>(dim, c.num_heads, n, std::min(c.linformer_k, n),
                                                    qkv, false, c.attention_dropout);
  if (c.attention == "local")
    return std::make_shared<nn::LocalAttention>(dim, c.num_heads, c.local_window,
                                                std::min(c.local_global, n), qkv,
                                                c.attention_dropout);
  throw Error(str("make_attention: unknown attention '", c.attention, "'"));
}

std::shared_ptr<Block> make_block(const ModelConfig& c, int64_t layer) {
  const int64_t len = c.max_len + (c.pooling == "cls" ? 1 : 0);
  if (c.architecture == "transformer")
    return std::make_shared<TransformerBlock>(c.emb_dim, make_attention(c, len, c.emb_dim),
                                              c.mlp_dim, c.dropout);
  if (c.architecture == "wavspa") {
    WavSpAOptions o;
    o.dim = c.emb_dim;
    o.mlp_dim = c.mlp_dim;
    o.max_len = len;
    o.levels = c.levels;
    o.wlen = c.wlen;
    o.parametrization = parametrization_from_name(c.parametrization);
    o.mode = wavelet_mode(c.wavelet_mode);
    o.dropout = c.dropout;
    o.pre_mlp_norm = c.pre_mlp_norm;
    o.seed = c.seed * 1000 + (uint64_t)layer;
    return std::make_shared<WavSpABlock>(o, [&](int64_t n) { return make_attention(c, n, c.emb_dim); });
  }
  if (c.architecture == "fourier")
    return std::make_shared<FourierBlock>(c.emb_dim, c.mlp_dim, len, c.dropout,
                                          [&](int64_t n, int64_t width) { return make_attention(c, n, width); });
  if (c.architecture == "fnet") return std::make_shared<FNetBlock>(c.emb_dim, c.mlp_dim, c.dropout);
  throw Error(str("make_block: unknown architecture '", c.architecture, "'"));
}

// Both seed the default generator with config.seed first: one config, one set of weights.
std::shared_ptr<SequenceClassifier> make_classifier(const ModelConfig& c) {
  c.validate();
  WAVSPA_CHECK(!c.dual, "make_classifier: the config asks for a dual encoder; use make_dual_encoder");
  manual_seed(c.seed);
  return std::make_shared<SequenceClassifier>(c);
}

std::shared_ptr<DualEncoder> make_dual_encoder(const ModelConfig& c) {
  c.validate();
  manual_seed(c.seed);
  return std::make_shared<DualEncoder>(c);
}

}  // namespace wavspa::models

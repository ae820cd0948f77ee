#include "models/classifier.h"

#include <limits>

#include "models/factory.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace wavspa::models {

Encoder::Encoder(const ModelConfig& c) : Module("Encoder"), config(c) {
  c.validate();
  const int64_t D = c.emb_dim;
  const int64_t len = c.max_len + (c.pooling == "cls" ? 1 : 0);
  embed = register_module("embed", std::make_shared<nn::Embedding>(c.vocab_size, D));
  if (c.pooling == "cls") register_parameter("cls", &cls, mul(randn({1, 1, D}), 0.02));
  if (c.positions == "sinusoidal")
    positions = register_module("positions", std::make_shared<nn::SinusoidalPositionEmbedding>(len, D));
  else if (c.positions == "learned")
    positions = register_module("positions", std::make_shared<nn::LearnedPositionEmbedding>(len, D));
  drop = register_module("drop", std::make_shared<nn::Dropout>(c.dropout));
  for (int64_t l = 0; l < c.num_layers; ++l)
    blocks.push_back(register_module("block" + std::to_string(l), make_block(c, l)));
  final_norm = register_module("final_norm", std::make_shared<nn::LayerNorm>(Shape{D}));
}

Tensor Encoder::forward(const Tensor& ids) {
  WAVSPA_CHECK(ids.dim() == 2 && ids.shape()[1] <= config.max_len && !is_floating(ids.dtype()),
               "Encoder: expected integer token ids (B, N) with N <= ", config.max_len, ", got ",
               ids.describe());
  const int64_t B = ids.shape()[0];
  Tensor zero = scalar_tensor(0, ids.dtype(), ids.device());
  // (B, N): 1 = token, 0 = padding (id 0), or all ones when every id is a token
  Tensor mask = config.mask_padding ? ne(ids, zero).to(kFloat32) : ones({B, ids.shape()[1]}, kFloat32, ids.device());
  Tensor x = embed->forward(ids);
  if (cls.defined()) {
    x = concat({cls.to(x.dtype()).expand({B, 1, config.emb_dim}), x}, 1);
    mask = concat({ones({B, 1}, kFloat32, ids.device()), mask}, 1);
  }
  if (positions) x = positions->forward(x);
  x = drop->forward(x);
  for (auto& block : blocks) x = block->forward(x, mask);
  x = final_norm->forward(x);
  if (config.pooling == "none") return x;  // (B, N, D): one vector per token
  if (config.pooling == "cls") return x.select(1, 0);
  Tensor m = mask.to(x.dtype()).unsqueeze(2);  // (B, N, 1)
  if (config.pooling == "mean")
    return div(sum(mul(x, m), {1}), clamp(sum(m, {1}), 1.0));
  const double lowest = std::numeric_limits<float>::lowest();
  return max(masked_fill(x, eq(m, scalar_tensor(0, x.dtype(), x.device())), lowest), {1});
}

SequenceClassifier::SequenceClassifier(const ModelConfig& c) : Module("SequenceClassifier") {
  encoder = register_module("encoder", std::make_shared<Encoder>(c));
  head = register_module("head", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
      std::make_shared<nn::Linear>(c.emb_dim, c.classifier_mlp), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(c.classifier_mlp, c.num_classes)}));
}

Tensor SequenceClassifier::forward(const Tensor& ids) { return head->forward(encoder->forward(ids)); }

DualEncoder::DualEncoder(const ModelConfig& c) : Module("DualEncoder") {
  encoder = register_module("encoder", std::make_shared<Encoder>(c));
  const int64_t m = c.classifier_mlp;
  head = register_module("head", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
      std::make_shared<nn::Linear>(2 * c.emb_dim, m), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(m, std::max<int64_t>(1, m / 2)), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(std::max<int64_t>(1, m / 2), c.num_classes)}));
}

Tensor DualEncoder::forward(const Tensor& ids1, const Tensor& ids2) {
  return head->forward(concat({encoder->forward(ids1), encoder->forward(ids2)}, 1));
}

}  // namespace wavspa::models

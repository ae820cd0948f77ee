// LRA-style sequence models: a classifier over token ids, and a dual encoder for pairs.
//
//   models::ModelConfig cfg = models::ModelConfig::from_json(R"({"architecture": "wavspa",
//       "vocab_size": 20, "num_classes": 10, "max_len": 512})");
//   auto model = models::make_classifier(cfg);
//   Tensor logits = model->forward(ids);      // ids: (B, N) int64, 0 = padding
//
// Shapes: B batch, N sequence, D emb_dim, C classes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/blocks.h"
#include "models/config.h"

namespace wavspa::models {

// token embedding [+ CLS] + positions -> Dropout -> blocks -> LayerNorm -> pooled (B, D).
class Encoder : public nn::Module {
 public:
  explicit Encoder(const ModelConfig& config);
  Tensor forward(const Tensor& ids);  // pooled (B, D); (B, N, D) with pooling "none"
  ModelConfig config;
  std::shared_ptr<nn::Embedding> embed;
  Tensor cls;  // (1, 1, D) when pooling == "cls"
  std::shared_ptr<nn::UnaryModule> positions;  // null for "none"
  std::shared_ptr<nn::Dropout> drop;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<nn::LayerNorm> final_norm;
};

// Encoder -> Dense(classifier_mlp) -> ReLU -> Dense(C).
class SequenceClassifier : public nn::Module {
 public:
  explicit SequenceClassifier(const ModelConfig& config);
  Tensor forward(const Tensor& ids);  // logits (B, C); per token (B, N, C) with pooling "none"
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<nn::Sequential> head;
};

// Shared encoder on both inputs; [u, v] -> Dense(mlp) -> ReLU -> Dense(mlp / 2) -> ReLU
// -> Dense(C), as LRA's retrieval models.
class DualEncoder : public nn::Module {
 public:
  explicit DualEncoder(const ModelConfig& config);
  Tensor forward(const Tensor& ids1, const Tensor& ids2);  // logits (B, C)
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<nn::Sequential> head;
};

}  // namespace wavspa::models

// Building models by name from a ModelConfig.
//
//   auto cfg = models::ModelConfig::from_file("configs/listops_wavspa_small.json");
//   std::shared_ptr<models::SequenceClassifier> m = models::make_classifier(cfg);
#pragma once

#include <memory>

#include "models/classifier.h"

namespace wavspa::models {

// The attention mechanism `config.attention` for sequences of length n and width `dim`
// (emb_dim for Transformer and WavSpA, 2 emb_dim for Fourier-space attention).
std::shared_ptr<nn::SelfAttention> make_attention(const ModelConfig& config, int64_t n, int64_t dim);
// One block of `config.architecture`.
std::shared_ptr<Block> make_block(const ModelConfig& config, int64_t layer);
std::shared_ptr<SequenceClassifier> make_classifier(const ModelConfig& config);
std::shared_ptr<DualEncoder> make_dual_encoder(const ModelConfig& config);

}  // namespace wavspa::models

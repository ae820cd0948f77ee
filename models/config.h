// A model described by a JSON config: the architecture, the attention mechanism, the WavSpA
// parametrization and the sizes. Unknown keys and invalid values are rejected with the list
// of valid ones.
//
//   auto cfg = models::ModelConfig::from_json(text);   // or from_file("configs/x.json")
//   cfg.to_json();                                        // the effective config, every key
#pragma once

#include <cstdint>
#include <string>

namespace wavspa::models {

struct ModelConfig {
  std::string architecture = "transformer";  // transformer | wavspa | fourier | fnet
  std::string attention = "full";            // full | linear | performer | linformer | local
  int64_t vocab_size = 0;
  int64_t num_classes = 0;
  int64_t max_len = 0;
  int64_t emb_dim = 64;
  int64_t num_heads = 1;
  int64_t num_layers = 2;
  int64_t qkv_dim = 64;
  int64_t mlp_dim = 128;
  int64_t classifier_mlp = 128;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  std::string positions = "sinusoidal";  // sinusoidal | learned | none
  std::string pooling = "cls";           // cls | mean | max | none (per-token outputs)
  bool mask_padding = true;  // id 0 is padding, kept out of attention and pooling; false for
                             // pixel tasks, where 0 is a black pixel (LRA masks those too)
  bool dual = false;                     // a dual encoder for pairs (retrieval)
  // attention options
  int64_t performer_features = 64;
  int64_t linformer_k = 64;
  int64_t local_window = 32;
  int64_t local_global = 1;
  // WavSpA options
  std::string parametrization = "ada";   // ada | ortho | lift | adalift | fixed
  int64_t levels = 1;
  int64_t wlen = 16;
  std::string wavelet_mode = "periodization";
  bool pre_mlp_norm = false;
  uint64_t seed = 0;

  // `check` false skips validate(), for a config whose data-given sizes come later.
  static ModelConfig from_json(const std::string& text, bool check = true);
  static ModelConfig from_file(const std::string& path);
  std::string to_json() const;
  void validate() const;  // throws wavspa::Error naming the key and the valid values
};

}  // namespace wavspa::models

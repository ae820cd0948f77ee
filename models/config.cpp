#include "models/config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "models/blocks.h"

namespace wavspa::models {

namespace {

using nlohmann::json;

constexpr const char* kWhat = "model config";  // how errors name this config

json to_object(const ModelConfig& c) {
  return json{{"architecture", c.architecture}, {"attention", c.attention},
              {"vocab_size", c.vocab_size},     {"num_classes", c.num_classes},
              {"max_len", c.max_len},           {"emb_dim", c.emb_dim},
              {"num_heads", c.num_heads},       {"num_layers", c.num_layers},
              {"qkv_dim", c.qkv_dim},           {"mlp_dim", c.mlp_dim},
              {"classifier_mlp", c.classifier_mlp}, {"dropout", c.dropout},
              {"attention_dropout", c.attention_dropout}, {"positions", c.positions},
              {"pooling", c.pooling},           {"mask_padding", c.mask_padding},
              {"dual", c.dual},
              {"performer_features", c.performer_features}, {"linformer_k", c.linformer_k},
              {"local_window", c.local_window}, {"local_global", c.local_global},
              {"parametrization", c.parametrization}, {"levels", c.levels},
              {"wlen", c.wlen},                 {"wavelet_mode", c.wavelet_mode},
              {"pre_mlp_norm", c.pre_mlp_norm}, {"seed", c.seed}};
}

}  // namespace

ModelConfig ModelConfig::from_json(const std::string& text, bool check) {
  const json j = parse_json(text, kWhat);
  const JsonFields fields(j, kWhat);
  ModelConfig c;
  const json defaults = to_object(c);
  std::vector<std::string> valid;
  for (auto it = defaults.begin(); it != defaults.end(); ++it) valid.push_back(it.key());
  fields.refuse_unknown_keys(valid);
  fields.read("architecture", c.architecture);
  fields.read("attention", c.attention);
  fields.read("vocab_size", c.vocab_size);
  fields.read("num_classes", c.num_classes);
  fields.read("max_len", c.max_len);
  fields.read("emb_dim", c.emb_dim);
  fields.read("num_heads", c.num_heads);
  fields.read("num_layers", c.num_layers);
  fields.read("qkv_dim", c.qkv_dim);
  fields.read("mlp_dim", c.mlp_dim);
  fields.read("classifier_mlp", c.classifier_mlp);
  fields.read("dropout", c.dropout);
  fields.read("attention_dropout", c.attention_dropout);
  fields.read("positions", c.positions);
  fields.read("pooling", c.pooling);
  fields.read("mask_padding", c.mask_padding);
  fields.read("dual", c.dual);
  fields.read("performer_features", c.performer_features);
  fields.read("linformer_k", c.linformer_k);
  fields.read("local_window", c.local_window);
  fields.read("local_global", c.local_global);
  fields.read("parametrization", c.parametrization);
  fields.read("levels", c.levels);
  fields.read("wlen", c.wlen);
  fields.read("wavelet_mode", c.wavelet_mode);
  fields.read("pre_mlp_norm", c.pre_mlp_norm);
  fields.read("seed", c.seed);
  if (check) c.validate();
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  const std::string text = read_text_file(path, kWhat);
  try {
    return from_json(text);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::string ModelConfig::to_json() const { return to_object(*this).dump(2); }

void ModelConfig::validate() const {
  check_one_of(kWhat, "architecture", architecture, {"transformer", "wavspa", "fourier", "fnet"});
  check_one_of(kWhat, "attention", attention, {"full", "linear", "performer", "linformer", "local"});
  check_one_of(kWhat, "positions", positions, {"sinusoidal", "learned", "none"});
  check_one_of(kWhat, "pooling", pooling, {"cls", "mean", "max", "none"});
  WAVSPA_CHECK(pooling != "none" || !dual, "model config: a dual encoder needs pooled vectors; "
               "'pooling' \"none\" works only with 'dual' false");
  check_one_of(kWhat, "wavelet_mode", wavelet_mode,
               {"zero", "constant", "symmetric", "reflect", "periodic", "smooth", "antisymmetric",
                "antireflect", "periodization"});
  parametrization_from_name(parametrization);  // throws with the valid names
  auto positive = [](const char* key, int64_t v) {
    WAVSPA_CHECK(v > 0, "model config: '", key, "' must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("num_classes", num_classes);
  positive("max_len", max_len);
  positive("emb_dim", emb_dim);
  positive("num_heads", num_heads);
  positive("num_layers", num_layers);
  positive("qkv_dim", qkv_dim);
  positive("mlp_dim", mlp_dim);
  positive("classifier_mlp", classifier_mlp);
  positive("levels", levels);
  positive("wlen", wlen);
  positive("performer_features", performer_features);
  positive("linformer_k", linformer_k);
  positive("local_window", local_window);
  WAVSPA_CHECK(local_global >= 0, "model config: 'local_global' must be >= 0, got ", local_global);
  WAVSPA_CHECK(qkv_dim % num_heads == 0, "model config: qkv_dim ", qkv_dim,
               " must be divisible by num_heads ", num_heads);
  WAVSPA_CHECK(dropout >= 0 && dropout < 1 && attention_dropout >= 0 && attention_dropout < 1,
               "model config: dropout rates must be in [0, 1)");
  WAVSPA_CHECK(architecture != "fnet" || attention == "full", "model config: the fnet "
               "architecture has no attention; leave 'attention' at 'full', got '", attention, "'");
  WAVSPA_CHECK(architecture != "fourier" || (2 * emb_dim) % num_heads == 0,
               "model config: fourier attention works on 2 * emb_dim = ", 2 * emb_dim,
               " features, which must be divisible by num_heads ", num_heads);
}

}  // namespace wavspa::models

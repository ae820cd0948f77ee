#include "models/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "models/blocks.h"

namespace wavspa::models {

namespace {

using nlohmann::json;

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

template <typename T>
void read(const json& j, const char* key, T& out) {
  if (!j.contains(key)) return;
  const json& v = j.at(key);
  // nlohmann converts 2.5 to 2 and -1 to 2^64 - 1 for integer targets; refuse both.
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const bool ok = v.is_number_integer() && (std::is_signed_v<T> || v.is_number_unsigned() || v.get<int64_t>() >= 0);
    if (!ok) throw Error(str("model config: '", key, "' has the wrong type: expected a",
                             std::is_signed_v<T> ? "n" : " non-negative", " integer, got ", v.dump()));
  }
  try {
    out = v.get<T>();
  } catch (const json::exception&) {
    throw Error(str("model config: '", key, "' has the wrong type (", j.at(key).dump(), ")"));
  }
}

void one_of(const char* key, const std::string& value, const std::vector<std::string>& valid) {
  for (const auto& v : valid)
    if (v == value) return;
  throw Error(str("model config: '", key, "' is '", value, "'; valid values: ", valid));
}

}  // namespace

ModelConfig ModelConfig::from_json(const std::string& text, bool check) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(str("model config: invalid JSON: ", e.what()));
  }
  WAVSPA_CHECK(j.is_object(), "model config: expected a JSON object, got ", j.type_name());
  ModelConfig c;
  const json defaults = to_object(c);
  std::vector<std::string> unknown, valid;
  for (auto it = defaults.begin(); it != defaults.end(); ++it) valid.push_back(it.key());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!defaults.contains(it.key())) unknown.push_back(it.key());
  WAVSPA_CHECK(unknown.empty(), "model config: unknown keys ", unknown, "; valid keys: ", valid);
  read(j, "architecture", c.architecture);
  read(j, "attention", c.attention);
  read(j, "vocab_size", c.vocab_size);
  read(j, "num_classes", c.num_classes);
  read(j, "max_len", c.max_len);
  read(j, "emb_dim", c.emb_dim);
  read(j, "num_heads", c.num_heads);
  read(j, "num_layers", c.num_layers);
  read(j, "qkv_dim", c.qkv_dim);
  read(j, "mlp_dim", c.mlp_dim);
  read(j, "classifier_mlp", c.classifier_mlp);
  read(j, "dropout", c.dropout);
  read(j, "attention_dropout", c.attention_dropout);
  read(j, "positions", c.positions);
  read(j, "pooling", c.pooling);
  read(j, "mask_padding", c.mask_padding);
  read(j, "dual", c.dual);
  read(j, "performer_features", c.performer_features);
  read(j, "linformer_k", c.linformer_k);
  read(j, "local_window", c.local_window);
  read(j, "local_global", c.local_global);
  read(j, "parametrization", c.parametrization);
  read(j, "levels", c.levels);
  read(j, "wlen", c.wlen);
  read(j, "wavelet_mode", c.wavelet_mode);
  read(j, "pre_mlp_norm", c.pre_mlp_norm);
  read(j, "seed", c.seed);
  if (check) c.validate();
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  WAVSPA_CHECK(in.good(), "model config: cannot open '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return from_json(ss.str());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::string ModelConfig::to_json() const { return to_object(*this).dump(2); }

void ModelConfig::validate() const {
  one_of("architecture", architecture, {"transformer", "wavspa", "fourier", "fnet"});
  one_of("attention", attention, {"full", "linear", "performer", "linformer", "local"});
  one_of("positions", positions, {"sinusoidal", "learned", "none"});
  one_of("pooling", pooling, {"cls", "mean", "max", "none"});
  WAVSPA_CHECK(pooling != "none" || !dual, "model config: a dual encoder needs pooled vectors; "
               "'pooling' \"none\" works only with 'dual' false");
  one_of("wavelet_mode", wavelet_mode,
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

#include "nn/train_state.h"

#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"

namespace wavspa::nn {

namespace {
constexpr const char* kFormat = "training-state/1";
constexpr const char* kOptimizerPrefix = "optimizer.";

const std::string& need(const Checkpoint& ck, const std::string& path, const std::string& key) {
  auto it = ck.metadata.find(key);
  WAVSPA_CHECK(it != ck.metadata.end(), path, ": not a wavspa training state (metadata '", key,
               "' is missing)");
  return it->second;
}

uint64_t parse_u64(const std::string& path, const std::string& key, const std::string& text) {
  size_t used = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  WAVSPA_CHECK(used == text.size() && !text.empty(), path, ": metadata '", key,
               "' should be a non-negative integer, got '", text, "'");
  return v;
}
}  // namespace

void save_training_state(const std::string& path, const Module& model, const Optimizer& optimizer,
                         const std::string& config_json, const Generator& rng) {
  WAVSPA_CHECK(nlohmann::json::accept(config_json), "save_training_state: the config is not "
               "valid JSON: ", config_json.substr(0, 80));
  StateDict tensors = model.state_dict();
  for (auto& [key, t] : optimizer.state_dict()) {
    std::string name = kOptimizerPrefix + key;
    WAVSPA_CHECK(!tensors.count(name), "save_training_state: the model has a tensor named '",
                 name, "', which collides with the optimizer's state");
    tensors[name] = t;
  }
  std::map<std::string, std::string> meta{
      {"wavspa.format", kFormat},
      {"wavspa.step", std::to_string(optimizer.step_count())},
      {"wavspa.rng.seed", std::to_string(rng.seed())},
      {"wavspa.rng.offset", std::to_string(rng.offset())},
      {"wavspa.config", config_json},
  };
  save_safetensors(path, tensors, meta);
}

TrainingState load_training_state(const std::string& path, Module& model, Optimizer& optimizer,
                                  Generator& rng) {
  Checkpoint ck = load_safetensors(path);
  const std::string& format = need(ck, path, "wavspa.format");
  WAVSPA_CHECK(format == kFormat, path, ": training-state format '", format, "', expected '",
               kFormat, "'");
  TrainingState state;
  state.step = (int64_t)parse_u64(path, "wavspa.step", need(ck, path, "wavspa.step"));
  const uint64_t seed = parse_u64(path, "wavspa.rng.seed", need(ck, path, "wavspa.rng.seed"));
  const uint64_t offset = parse_u64(path, "wavspa.rng.offset", need(ck, path, "wavspa.rng.offset"));
  state.config_json = need(ck, path, "wavspa.config");

  StateDict weights, opt_state;
  const std::string prefix = kOptimizerPrefix;
  for (auto& [key, t] : ck.tensors) {
    if (key.compare(0, prefix.size(), prefix) == 0) opt_state[key.substr(prefix.size())] = t;
    else weights[key] = t;
  }
  // Both loads validate fully before they copy; the model goes first so that a checkpoint of
  // another model is reported as such. If the optimizer part then fails, the weights are
  // restored from a snapshot, so a failed load leaves everything as it was.
  StateDict before;
  for (auto& [name, t] : model.state_dict()) before[name] = t.clone();
  // The step is written twice, in the metadata and in the optimizer's state: a file where
  // they disagree was not written by save_training_state as it stands (checked before any load).
  if (auto it = opt_state.find("step"); it != opt_state.end() && it->second.numel() == 1) {
    const double saved_step = it->second.to(kFloat64).item();
    WAVSPA_CHECK(saved_step == (double)state.step, path, ": metadata 'wavspa.step' says step ", state.step,
                 " but the optimizer state says step ", saved_step, ": the file is inconsistent");
  }
  try {
    model.load_state_dict(weights);
    optimizer.load_state_dict(opt_state);
  } catch (const Error& e) {
    model.load_state_dict(before);
    throw Error(path + ": " + e.what());
  }
  rng.manual_seed(seed);
  rng.set_offset(offset);
  return state;
}

}  // namespace wavspa::nn

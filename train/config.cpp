#include "train/config.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/runtime.h"
#include "nn/schedule.h"

namespace wavspa::train {

namespace {

using nlohmann::json;

constexpr const char* kWhat = "run config";  // how errors name this config

// Preset name -> (architecture, attention, parametrization).
struct Preset {
  const char* name;
  const char* architecture;
  const char* attention;
  const char* parametrization;
};
constexpr Preset kPresets[] = {
    {"transformer", "transformer", "full", "ada"},
    {"wavspa-ada", "wavspa", "full", "ada"},
    {"wavspa-ortho", "wavspa", "full", "ortho"},
    {"wavspa-lift", "wavspa", "full", "lift"},
    {"wavspa-adalift", "wavspa", "full", "adalift"},
    {"wavspa-fixed", "wavspa", "full", "fixed"},
    {"fourier", "fourier", "full", "ada"},
    {"fnet", "fnet", "full", "ada"},
    {"linear", "transformer", "linear", "ada"},
    {"performer", "transformer", "performer", "ada"},
    {"linformer", "transformer", "linformer", "ada"},
    {"local", "transformer", "local", "ada"},
};

json run_object(const RunConfig& c) {
  return json{{"task", c.task},
              {"data", c.data},
              {"max_len", c.max_len},
              {"train_limit", c.train_limit},
              {"val_limit", c.val_limit},
              {"test_limit", c.test_limit},
              {"steps", c.steps},
              {"batch_size", c.batch_size},
              {"optimizer", c.optimizer},
              {"lr", c.lr},
              {"weight_decay", c.weight_decay},
              {"momentum", c.momentum},
              {"schedule", c.schedule},
              {"warmup", c.warmup},
              {"clip_grad_norm", c.clip_grad_norm},
              {"label_smoothing", c.label_smoothing},
              {"eval_every", c.eval_every},
              {"eval_limit", c.eval_limit},
              {"log_every", c.log_every},
              {"early_stop", c.early_stop},
              {"prefetch", c.prefetch},
              {"seed", c.seed},
              {"device", c.device},
              {"precision", c.precision},
              {"cuda_graphs", c.cuda_graphs},
              {"threads", c.threads}};
}

// Reads every key of `j` into `c`; unknown keys are an error listing the valid ones.
void read_into(RunConfig& c, const json& j) {
  const JsonFields fields(j, kWhat);
  fields.refuse_unknown_keys(RunConfig::keys());
  fields.read("task", c.task);
  fields.read("data", c.data);
  fields.read("max_len", c.max_len);
  fields.read("train_limit", c.train_limit);
  fields.read("val_limit", c.val_limit);
  fields.read("test_limit", c.test_limit);
  fields.read("steps", c.steps);
  fields.read("batch_size", c.batch_size);
  fields.read("optimizer", c.optimizer);
  fields.read("lr", c.lr);
  fields.read("weight_decay", c.weight_decay);
  fields.read("momentum", c.momentum);
  fields.read("schedule", c.schedule);
  fields.read("warmup", c.warmup);
  fields.read("clip_grad_norm", c.clip_grad_norm);
  fields.read("label_smoothing", c.label_smoothing);
  fields.read("eval_every", c.eval_every);
  fields.read("eval_limit", c.eval_limit);
  fields.read("log_every", c.log_every);
  fields.read("early_stop", c.early_stop);
  fields.read("prefetch", c.prefetch);
  fields.read("seed", c.seed);
  fields.read("device", c.device);
  fields.read("precision", c.precision);
  fields.read("cuda_graphs", c.cuda_graphs);
  fields.read("threads", c.threads);
  if (j.contains("model")) {
    WAVSPA_CHECK(j.at("model").is_object(), "run config: 'model' must be a JSON object, got ",
                 j.at("model").type_name());
    // Merge onto the current model so that a partial "model" object changes only its keys.
    json merged = json::parse(c.model.to_json());
    for (auto it = j.at("model").begin(); it != j.at("model").end(); ++it) merged[it.key()] = it.value();
    c.model = models::ModelConfig::from_json(merged.dump(), /*check=*/false);
  }
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"listops", "text", "retrieval", "image",
                                                 "fashion-mnist", "pathfinder", "lego"};
  return names;
}

const std::vector<std::string>& model_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Preset& p : kPresets) v.push_back(p.name);
    return v;
  }();
  return names;
}

RunConfig RunConfig::from_json(const std::string& text) {
  RunConfig c;
  read_into(c, parse_json(text, kWhat));
  c.validate();
  return c;
}

RunConfig RunConfig::from_file(const std::string& path) {
  try {
    return from_json(read_text_file(path, kWhat));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::string RunConfig::to_json() const {
  json j = run_object(*this);
  j["model"] = json::parse(model.to_json());
  return j.dump(2);
}

std::vector<std::string> RunConfig::keys() {
  std::vector<std::string> out;
  const json run = run_object(RunConfig{});
  for (auto it = run.begin(); it != run.end(); ++it) out.push_back(it.key());
  const json model = json::parse(models::ModelConfig{}.to_json());
  for (auto it = model.begin(); it != model.end(); ++it) out.push_back("model." + it.key());
  return out;
}

void RunConfig::validate() const {
  check_one_of(kWhat, "task", task, task_names());
  check_one_of(kWhat, "optimizer", optimizer, {"adamw", "adam", "sgd"});
  check_one_of(kWhat, "device", device, {"cpu", "cuda"});
  check_one_of(kWhat, "precision", precision, matmul_precision_names());
  WAVSPA_CHECK(precision == "fp32" || device == "cuda", "run config: 'precision' ", precision,
               " needs device cuda (the CPU backend multiplies in float32), got device ", device);
  WAVSPA_CHECK(!cuda_graphs || device == "cuda", "run config: 'cuda_graphs' needs device cuda, got device ", device);
  auto at_least = [](const char* key, int64_t v, int64_t lo) {
    WAVSPA_CHECK(v >= lo, "run config: '", key, "' must be >= ", lo, ", got ", v);
  };
  at_least("steps", steps, 1);
  at_least("batch_size", batch_size, 1);
  at_least("eval_every", eval_every, 1);
  at_least("log_every", log_every, 1);
  at_least("max_len", max_len, 0);
  // Position tables and batches are max_len long: a typo of 1e9 would otherwise end in bad_alloc.
  WAVSPA_CHECK(max_len <= kMaxSequenceLength, "run config: 'max_len' must be at most ", kMaxSequenceLength,
               " (LRA's longest task has 16384 tokens), got ", max_len);
  at_least("train_limit", train_limit, 0);
  at_least("val_limit", val_limit, 0);
  at_least("test_limit", test_limit, 0);
  at_least("eval_limit", eval_limit, 0);
  at_least("warmup", warmup, -1);
  at_least("early_stop", early_stop, 0);
  at_least("prefetch", prefetch, 0);
  at_least("threads", threads, 0);
  WAVSPA_CHECK(lr > 0, "run config: 'lr' must be > 0, got ", lr);
  WAVSPA_CHECK(weight_decay >= 0, "run config: 'weight_decay' must be >= 0, got ", weight_decay);
  WAVSPA_CHECK(momentum >= 0 && momentum < 1, "run config: 'momentum' must be in [0, 1) (1 or more makes SGD's "
               "momentum buffer grow without bound), got ", momentum);
  // The data sets these three (0 in a run config: "from the data"); a negative one is a typo.
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"vocab_size", model.vocab_size},
                               {"num_classes", model.num_classes}, {"max_len", model.max_len}})
    WAVSPA_CHECK(v >= 0, "run config: 'model.", key, "' must be >= 0 (the data sets it; 0 leaves it to the "
                 "data), got ", v);
  WAVSPA_CHECK(clip_grad_norm >= 0, "run config: 'clip_grad_norm' must be >= 0 (0 = off), got ", clip_grad_norm);
  WAVSPA_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
               "run config: 'label_smoothing' must be in [0, 1], got ", label_smoothing);
  WAVSPA_CHECK(schedule != "cosine" || warmup_steps() < steps, "run config: the cosine schedule "
               "needs warmup < steps, got warmup ", warmup_steps(), " and steps ", steps);
  if (schedule != "cosine") {  // an LRA factor product: parsed now, before any data is read
    nn::ScheduleParams p;
    p.warmup_steps = std::max<int64_t>(1, warmup_steps());
    try {
      (void)nn::parse_schedule(schedule, p);
    } catch (const Error& e) {
      throw Error(str("run config: 'schedule': ", e.what()));
    }
  }
}

void apply_override(RunConfig& c, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  WAVSPA_CHECK(eq != std::string::npos && eq > 0, "--set: expected key=value, got '", assignment, "'");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // a bare word: a string
  } catch (const json::out_of_range&) {
    throw Error(str("--set ", assignment, ": the number '", text, "' is out of range (larger than a double holds)"));
  }
  const bool quoted = value.is_string();
  const std::vector<std::string> valid = RunConfig::keys();
  WAVSPA_CHECK(std::find(valid.begin(), valid.end(), key) != valid.end(), "--set: unknown key '",
               key, "'; valid keys: ", valid);
  // Keys whose default is a string take the text as it is ("--set data=123" is a folder).
  const json current = json::parse(c.to_json());
  const bool model_key = key.rfind("model.", 0) == 0;
  const json& old = model_key ? current.at("model").at(key.substr(6)) : current.at(key);
  if (old.is_string() && !quoted) value = text;  // "--set data=123" is a folder, not a number
  // Checked on the value as it will be stored (the raw text above included): a config is
  // written as JSON, so its strings must be UTF-8.
  try {
    (void)value.dump();
  } catch (const json::type_error&) {
    throw Error(str("--set ", key, "=...: the value is not valid UTF-8 text"));
  }
  json patch;
  if (model_key)
    patch["model"][key.substr(6)] = value;
  else
    patch[key] = value;
  try {
    read_into(c, patch);
  } catch (const Error& e) {
    throw Error(str("--set ", assignment, ": ", e.what()));
  }
}

void apply_model_preset(RunConfig& c, const std::string& name_or_path) {
  for (const Preset& p : kPresets) {
    if (name_or_path != p.name) continue;
    c.model.architecture = p.architecture;
    c.model.attention = p.attention;
    c.model.parametrization = p.parametrization;
    return;
  }
  WAVSPA_CHECK(std::filesystem::exists(name_or_path), "--model: '", name_or_path,
               "' is neither a model name nor a file; names: ", model_preset_names(),
               " (or a models JSON file such as configs/listops_wavspa_small.json)");
  try {
    json model = parse_json(read_text_file(name_or_path, "--model"), "model config");
    json patch;
    patch["model"] = model;
    read_into(c, patch);
  } catch (const Error& e) {
    throw Error(name_or_path + ": " + e.what());
  }
}

}  // namespace wavspa::train

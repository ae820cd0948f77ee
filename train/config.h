// The configuration of one training run: the task and its data, the optimisation, and the
// model (a models::ModelConfig under "model"). Written to RUN_DIR/config.json, so a run can
// be repeated or resumed from its folder alone.
//
//   train::RunConfig c = train::RunConfig::from_json(R"({"task": "listops", "steps": 200})");
//   train::apply_model_preset(c, "wavspa-ada");      // or a models JSON file
//   train::apply_override(c, "model.levels=2");        // --set key=value
//   train::apply_override(c, "lr=3e-4");
//   std::string text = c.to_json();                   // every key, with its value
//
// Unknown keys, wrongly typed values and invalid values are wavspa::Errors naming the key
// and listing what is valid.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"

namespace wavspa::train {

// The longest sequence a run may ask for (max_len).
inline constexpr int64_t kMaxSequenceLength = 1 << 20;

// The tasks tools/train knows, in the order --help lists them.
const std::vector<std::string>& task_names();
// The names --model accepts (besides a path to a models JSON file).
const std::vector<std::string>& model_preset_names();

struct RunConfig {
  // data
  std::string task = "listops";  // listops | text | retrieval | image | fashion-mnist | pathfinder | lego
  std::string data;              // folder; "" = the task's default (fashion-mnist: Debian's)
  int64_t max_len = 0;           // sequence length; 0 = the task's own (see train/tasks.h)
  int64_t train_limit = 0;       // use only the first N examples of a split; 0 = all
  int64_t val_limit = 0;
  int64_t test_limit = 0;
  // optimisation
  int64_t steps = 2000;
  int64_t batch_size = 32;
  std::string optimizer = "adamw";  // adamw | adam | sgd
  double lr = 1e-3;
  double weight_decay = 0.01;
  double momentum = 0.9;            // sgd only
  std::string schedule = "cosine";  // cosine (with warmup) | constant | an LRA factor product
                                    // such as "constant * linear_warmup * rsqrt_decay"
  int64_t warmup = -1;              // linear warmup steps; -1 = 5% of steps
  int64_t warmup_steps() const { return warmup >= 0 ? warmup : steps / 20; }
  double clip_grad_norm = 1.0;      // 0 = off
  double label_smoothing = 0.0;
  // evaluation, logging, checkpoints
  int64_t eval_every = 200;   // steps between validation passes (and checkpoints)
  int64_t eval_limit = 0;     // validation examples per periodic pass; 0 = all
  int64_t log_every = 20;     // steps between metric rows (and plain log lines)
  int64_t early_stop = 0;     // stop after this many evaluations without a better val accuracy; 0 = off
  int64_t prefetch = 2;       // batches prepared ahead on the loader thread
  // machine
  uint64_t seed = 0;
  std::string device = "cpu";  // cpu | cuda
  std::string precision = "fp32";  // matmuls: fp32 | tf32 | bf16 (the last two on cuda only)
  bool cuda_graphs = false;    // cuda: record the step once per batch shape and replay it (ops/graph.h)
  int64_t threads = 0;         // OpenMP/OpenBLAS threads; 0 = their default
  // the model; vocab_size, num_classes and max_len are filled from the data
  models::ModelConfig model;

  static RunConfig from_json(const std::string& text);
  static RunConfig from_file(const std::string& path);
  std::string to_json() const;
  // Every key of a run config ("model.emb_dim" for the model's), for --help and errors.
  static std::vector<std::string> keys();
  void validate() const;  // the run keys only; the model is validated once the data is known
};

// --set: "key=value" with a run key or "model.<key>". The value is read as JSON when it
// parses (2, 1e-3, true, "x") and as a string otherwise (adamw, wavspa).
void apply_override(RunConfig& c, const std::string& assignment);

// --model: a preset name (transformer, wavspa-ada, ...) or a path to a models JSON file. A
// preset sets the architecture, attention and parametrization and keeps the sizes.
void apply_model_preset(RunConfig& c, const std::string& name_or_path);

}  // namespace wavspa::train

// The whole state of a training run in one safetensors file, so that a run resumed from it
// continues exactly as if it had never stopped.
//
//   nn::save_training_state("runs/x/latest.safetensors", model, opt, config_json);
//   // ... more training steps ...
//   nn::TrainingState s = nn::load_training_state("runs/x/latest.safetensors", model, opt);
//   // model weights, optimizer moments and step, the lr factor and the default RNG stream
//   // are back; s.config_json is the run's config.
//
// Layout: the model's state_dict() under its own names (so PyTorch loads the weights with
// strict=False), the optimizer's state under "optimizer.<key>", and in the metadata:
//   wavspa.format      "training-state/1"
//   wavspa.step        optimizer.step_count(), the schedule's position
//   wavspa.rng.seed, wavspa.rng.offset   the Philox generator's state
//   wavspa.config      the run's config as JSON text
#pragma once

#include <string>

#include "core/random.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace wavspa::nn {

struct TrainingState {
  int64_t step = 0;
  std::string config_json;
};

// Written atomically (see save_safetensors). config_json must be valid JSON.
void save_training_state(const std::string& path, const Module& model, const Optimizer& optimizer,
                         const std::string& config_json = "{}",
                         const Generator& rng = default_generator());

// Validates the file (format, metadata, every tensor against the model and the optimizer)
// before changing anything; a checkpoint of another model is an error naming what differs.
TrainingState load_training_state(const std::string& path, Module& model, Optimizer& optimizer,
                                  Generator& rng = default_generator());

}  // namespace wavspa::nn

// One training run, end to end: data, model, optimiser, the loop with periodic validation,
// checkpoints, metrics, plots, and a summary. tools/train is a command line over this.
//
//   train::RunConfig c = train::RunConfig::from_file("run.json");   // see train/config.h
//   train::RunResult r = train::run_training(c, "runs/lo", /*resume=*/false);
//   r.status;                    // finished | early_stopped | interrupted | diverged
//   r.summary_json;              // one line: accuracies, wall time, tokens/s, paths
//
// A run folder holds:
//   config.json                the effective config (every key)
//   latest.safetensors         the full training state (weights, optimiser, step, RNG, progress)
//   best.safetensors           the same, at the best validation accuracy so far
//   initial.safetensors        the weights before the first step (for the filter plot)
//   metrics.csv, metrics.jsonl one row per log interval (split "train") and per validation
//                              pass (split "val"), and the final "test" row
//   loss.svg, accuracy.svg     training curves; filters.svg for WavSpA models (learned
//                              filters against their initialisation)
//   summary.json               the summary line
// Every file is written atomically. A run resumed from its folder (resume = true) continues
// from latest.safetensors and, on the CPU, produces the same losses as a run that never stopped.
//
// The parts: train/run_state.h starts or resumes a run (and sets up --eval-only the same way),
// train/logging.h reports it, train/evaluation.h validates, checkpoints and sums it up, and
// trainer.cpp runs its steps on train::Trainer (train/loop.h), whose callbacks do the rest.
#pragma once

#include <cstdint>
#include <string>

#include "core/storage.h"
#include "train/config.h"
#include "train/loop.h"  // install_signal_handlers: call it before run_training

namespace wavspa::train {

enum class RunStatus { kFinished, kEarlyStopped, kInterrupted, kDiverged };
const char* status_name(RunStatus s);

struct RunResult {
  RunStatus status = RunStatus::kFinished;
  int64_t steps = 0;               // optimiser steps taken in total (over resumptions)
  double best_val_accuracy = 0;
  int64_t best_step = 0;
  double test_accuracy = -1;       // of the best checkpoint; -1 when the run did not finish
  double majority_accuracy = 0;    // of always answering the test split's commonest class
  double wall_s = 0;               // training wall time, over resumptions
  double tokens_per_s = 0;         // positions through the model per second of training
  std::string summary_json;        // one line
  // The allocators' statistics at the end of the run: the host's, and the device's when the
  // run was on a GPU (`device` names it; "cpu" otherwise). summary_json has them too.
  std::string device = "cpu";
  MemoryUsage host_memory, device_memory;
};

// What a run does besides training, not part of its config (a resumed run does not repeat it).
struct RunExtras {
  // Writes the autograd graph of this process's first step's loss here as Graphviz DOT
  // (autograd/graph_dump.h): op names, shapes, dtypes, devices, bytes saved for backward.
  std::string dump_graph;
};

// Trains per `config` into `out_dir` (created). With `resume`, `config` must be the folder's
// config.json (tools/train reads it) and the run continues from latest.safetensors.
RunResult run_training(RunConfig config, const std::string& out_dir, bool resume, const RunExtras& extras = {});

// Evaluates a checkpoint written by run_training on the validation and test splits. The
// model comes from the checkpoint's own config; `data` (non-empty) replaces its data folder.
std::string evaluate_checkpoint(const std::string& checkpoint, const std::string& data, int64_t threads);

}  // namespace wavspa::train

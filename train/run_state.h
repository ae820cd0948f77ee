// How a run starts: the setup that training and --eval-only share (the task's data, the model
// fitted to it on its device, an optimiser), and where a training run stands, either new or
// restored from its folder's latest.safetensors.
//
//   train::Setup s(config);                       // loads the data, builds the model
//   train::RunFolder folder("runs/lo");
//   folder.check(resume);                         // before anything slow
//   folder.lock();                                // this process's until it ends
//   folder.check(resume);                         // again, now that no other run can change it
//   train::RunState st = train::start_run(s, folder, resume);
//   data::BatchLoader loader(s.data.train, train::train_loader_options(s.config));
//   // ... train, evaluate, checkpoint (train/trainer.cpp, train/evaluation.h) ...
//   train::save_latest(s, folder, st);            // resumable from here
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/runtime.h"
#include "data/loader.h"
#include "models/factory.h"
#include "nn/optim.h"
#include "train/config.h"
#include "train/logging.h"
#include "train/tasks.h"

namespace wavspa::train {

// The model of a task: a classifier, or a dual encoder for pairs (retrieval).
struct TaskModel {
  std::shared_ptr<models::SequenceClassifier> classifier;  // one of the two
  std::shared_ptr<models::DualEncoder> dual;
  nn::Module& module() { return classifier ? (nn::Module&)*classifier : (nn::Module&)*dual; }

  // Logits and labels flattened to (M, C) and (M): per example, or per token for LEGO.
  std::pair<Tensor, Tensor> forward(const data::Batch& b, Device device);
};

// "wavspa-ada", "transformer/linear", ...: the model in summaries and logs.
std::string model_name(const models::ModelConfig& m);

// What training and evaluation of a run config both need. Lives as long as the run: it holds
// the run's matmul precision and, for "bf16", the mixed-precision policy (AutocastGuard,
// core/runtime.h: bfloat16 activations, float32 master weights).
struct Setup {
  // Applies config.threads, loads the task's data and fits the model config to it, builds
  // the model (seeding the default generator with model.seed) on its device.
  explicit Setup(RunConfig c);

  RunConfig config;  // with the sizes the data decides (vocab_size, num_classes, max_len, ...)
  TaskData data;
  Device device;
  MatmulPrecisionGuard precision;
  AutocastGuard autocast;
  TaskModel model;
  std::unique_ptr<nn::Optimizer> optimizer;  // checkpoints hold its state, so eval needs one too
};

// The files of a run folder.
struct RunFolder {
  explicit RunFolder(std::string dir);
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;
  // A new run needs a folder without latest.safetensors, a resumed one a folder with it.
  void check(bool resume) const;
  // Creates the folder and takes an exclusive advisory lock (flock) on its run.lock for as
  // long as this object lives; the kernel drops it when the process dies, however it dies.
  // Another process's run in the folder (a second start, or a --resume of a run still going)
  // gets a wavspa::Error naming the holder's pid. Then removes the temporary files that an
  // interrupted write left behind (`<file>.tmp.<pid>[.<n>]`: nobody else can be writing them).
  void lock();

  std::string dir, latest, best;

 private:
  int lock_fd_ = -1;
};

// Where a training run stands. latest.safetensors carries all of it but the rows (which
// metrics.csv keeps), so that a resumed run continues as if it had never stopped.
struct RunState {
  int64_t step = 0;
  int64_t saved_step = 0;            // the step of latest.safetensors; 0 before the first save
  double best_val_accuracy = -1;
  int64_t best_step = 0;
  int64_t evals_without_gain = 0;
  double positions = 0;              // positions trained on, over resumptions
  LogWindow window;                  // steps after the last training row
  std::vector<MetricRow> rows;       // what metrics.csv holds
  double elapsed_before = 0;         // training seconds of the run's earlier processes
  Clock::time_point started = Clock::now();  // when this process began training

  double elapsed_s() const { return elapsed_before + seconds_since(started); }
};

// A new run: the folder with config.json and initial.safetensors. A resumed one: the model,
// optimiser, RNG and state from latest.safetensors, and metrics.csv's rows up to its step.
// The folder is created only here, so that a run that cannot start leaves no empty one behind.
RunState start_run(Setup& s, const RunFolder& folder, bool resume);

// latest.safetensors: the weights, the optimiser, the RNG and the state at st.step.
void save_latest(Setup& s, const RunFolder& folder, RunState& st);

// The training split's loader options of a run config (batch size, shuffle seed, prefetch).
data::LoaderOptions train_loader_options(const RunConfig& c);

}  // namespace wavspa::train

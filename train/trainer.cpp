#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>

#include "autograd/grad_mode.h"
#include "autograd/graph_dump.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "core/profiler.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "nn/train_state.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/graph.h"
#include "ops/nn.h"
#include "train/evaluation.h"
#include "train/logging.h"
#include "train/loop.h"
#include "train/run_state.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- test hooks ---------------------------------------------------------------------------
// WAVSPA_TRAIN_NAN_AT_STEP=k makes the loss of step k NaN; WAVSPA_TRAIN_INTERRUPT_AT_STEP=k
// raises SIGINT after step k (k = 0: before the first step, as if during loading). Tests use
// them to reach the divergence and Ctrl-C paths.
int64_t env_step(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : -1;
}

// ---- one step -----------------------------------------------------------------------------

nn::Schedule make_schedule(const RunConfig& c) {
  // The schedule gives the lr itself: the config's lr times the shape's factor.
  if (c.schedule == "cosine") return nn::constant(c.lr) * nn::cosine(c.steps, c.warmup_steps());
  nn::ScheduleParams p;
  p.base = 1.0;  // a "constant" in the shape is 1: the config's lr is the scale
  p.warmup_steps = std::max<int64_t>(1, c.warmup_steps());
  return nn::constant(c.lr) * nn::parse_schedule(c.schedule, p);
}

// ---- the loop -----------------------------------------------------------------------------

// The steps of one process of a run, on train::Trainer (train/loop.h), with its logging,
// periodic validation and checkpoints, until the run is done or stops (early, on a signal, or
// on a loss that is not finite). The loss function returns the cross-entropy and, as sums the
// trainer adds up on the device, the correct predictions, the scored positions and the
// positions through the model; the host reads them once per logging interval, before a
// validation pass (its checkpoint holds the window) and when the loop ends.
class RunLoop {
 public:
  RunLoop(Setup& s, const RunFolder& folder, RunState& st, const nn::Schedule& schedule, const RunExtras& extras)
      : s_(s), folder_(folder), st_(st), schedule_(schedule), dump_graph_(extras.dump_graph),
        nan_at_(env_step("WAVSPA_TRAIN_NAN_AT_STEP")), interrupt_at_(env_step("WAVSPA_TRAIN_INTERRUPT_AT_STEP")),
        positions_per_row_(s.data.train->seq_len * (s.data.train->is_pair() ? 2 : 1)),
        first_step_(st.step), positions_at_start_(st.positions) {
    WAVSPA_CHECK(s.optimizer->step_count() == st.step, "train: the optimizer is at step ", s.optimizer->step_count(),
                 " but the run at step ", st.step);
    // The clocks measure training, not the loading and checkpointing before it.
    st_.started = window_start_ = Clock::now();
  }

  RunStatus run(data::BatchLoader& loader) {
    const RunConfig& c = s_.config;
    TrainerOptions o;
    o.steps = c.steps;
    o.clip_grad_norm = c.clip_grad_norm;
    o.schedule = schedule_;
    o.log_every = c.log_every;
    o.eval_every = c.eval_every;
    o.stop_on_signal = true;  // also a signal that came while the data loaded: none is cleared here
    o.cuda_graphs = c.cuda_graphs;
    o.on_step = [&](const StepInfo& i) { on_step(i); };
    o.on_log = [&](const LogInfo& l) { on_log(l); };
    o.on_eval = [&](int64_t) { on_eval(); };
    Trainer<data::Batch> trainer(s_.model.module(), *s_.optimizer,
                                 [&](nn::Module&, const data::Batch& b) { return loss(b); }, std::move(o));
    trainer_ = &trainer;
    const FitResult r = trainer.fit(loader);
    trainer_ = nullptr;
    st_.step = r.steps;
    if (r.diverged) return diverged(r);
    if (early_stop_) return stopped_early();
    if (r.stopped_early) return interrupted();  // a signal
    return RunStatus::kFinished;
  }

 private:
  // Forward and cross-entropy, with the counts as the trainer's sums. Runs once per recording
  // under --cuda-graphs: all it decides on the host comes from the batch's shapes.
  StepOutput loss(const data::Batch& batch) {
    auto [logits, labels] = s_.model.forward(batch, s_.device);
    CrossEntropyOptions ce;
    ce.label_smoothing = s_.config.label_smoothing;
    Tensor loss = cross_entropy(logits, labels, ce);
    if (nan_at_ > 0) {
      // The test hook's NaN is a device value that the loss adds, so that a recorded step
      // takes it too (on_step sets it for step nan_at_). The first step is eager.
      if (!poison_.defined())
        poison_ = full({}, st_.step + 1 == nan_at_ ? std::numeric_limits<double>::quiet_NaN() : 0.0, loss.dtype(),
                       s_.device);
      loss = add(loss, poison_);
    }
    if (!dump_graph_.empty()) {  // the first step's graph only (an eager step: recording starts later)
      autograd::write_dot(loss, dump_graph_, s_.model.module().named_parameters());
      dump_graph_.clear();
    }
    auto [correct, scored] = count_correct_on_device(logits, labels);
    const double positions = (double)(batch.size() * positions_per_row_);
    return StepOutput(loss, {{"correct", correct},
                             {"scored", scored},
                             {"positions", full({}, positions, kFloat64, s_.device)}});
  }

  void on_step(const StepInfo& i) {
    st_.step = i.step;
    epoch_ = i.epoch;
    if (poison_.defined()) {  // the loss of step nan_at_ (the next one's, here) is NaN
      if (i.step + 1 == nan_at_) poison_.fill_(std::numeric_limits<double>::quiet_NaN());
      if (i.step == nan_at_) poison_.fill_(0.0);
    }
    if (i.step == interrupt_at_) std::raise(SIGINT);
    bar();
  }

  // The steps read from the device go into the run's window (which a checkpoint holds), and at
  // the end of a logging interval a "train" row.
  void on_log(const LogInfo& l) {
    absorb(l);
    const RunConfig& c = s_.config;
    if (st_.step % c.log_every == 0 || st_.step == c.steps) {
      const MetricRow row =
          st_.window.row(st_.step, epoch_, s_.optimizer->lr(), seconds_since(window_start_), st_.elapsed_s());
      st_.rows.push_back(row);
      console_.train_row(row, c.steps, s_.device);
      st_.window = {};
      window_start_ = Clock::now();
      bar();
    }
  }

  void on_eval() {
    absorb(trainer_->read_window());
    validate(s_, folder_, st_, epoch_, console_);
    const int64_t patience = s_.config.early_stop;
    if (patience > 0 && st_.evals_without_gain >= patience) {
      early_stop_ = true;
      trainer_->request_stop();
    }
  }

  void absorb(const LogInfo& l) {
    if (l.steps == 0) return;
    const int64_t correct = (int64_t)l.sums.at("correct"), scored = (int64_t)l.sums.at("scored");
    const double positions = l.sums.at("positions");
    st_.window.add_steps(l.steps, l.loss_sum, correct, scored, positions);
    st_.positions += positions;
    last_loss_ = l.loss;
    last_accuracy_ = scored ? (double)correct / (double)scored : 0.0;
  }

  // The progress bar, with the values of the last interval read.
  void bar() {
    const RunConfig& c = s_.config;
    const double run_s = st_.elapsed_s() - st_.elapsed_before;  // this process's training time
    const double per_step = run_s / (double)std::max<int64_t>(1, st_.step - first_step_);
    console_.bar({st_.step, c.steps, last_loss_, last_accuracy_,
                  run_s > 0 ? (st_.positions - positions_at_start_) / run_s : 0, s_.optimizer->lr(),
                  per_step * (double)(c.steps - st_.step)});
  }

  RunStatus diverged(const FitResult& r) const {
    const bool saved = fs::exists(folder_.latest);
    console_.end_bar();
    std::fprintf(stderr,
                 "train: the loss is %g at step %lld; stopping. The last good checkpoint is %s (step %lld); "
                 "lower lr (now %.3g) or raise clip_grad_norm's strictness and resume or restart.\n",
                 r.diverged_loss, (long long)r.diverged_step, saved ? folder_.latest.c_str() : "(none yet)",
                 (long long)(saved ? st_.saved_step : 0), s_.optimizer->lr());
    return RunStatus::kDiverged;
  }

  RunStatus stopped_early() const {
    std::fprintf(stderr, "train: no better validation accuracy in %lld evaluations; stopping early\n",
                 (long long)st_.evals_without_gain);
    return RunStatus::kEarlyStopped;
  }

  RunStatus interrupted() {
    save_latest(s_, folder_, st_);
    write_metrics(folder_.dir, st_.rows);
    write_curves(folder_.dir, st_.rows);
    console_.end_bar();
    std::fprintf(stderr, "train: interrupted at step %lld; saved %s. Continue with: --resume %s\n",
                 (long long)st_.step, folder_.latest.c_str(), folder_.dir.c_str());
    return RunStatus::kInterrupted;
  }

  Setup& s_;
  const RunFolder& folder_;
  RunState& st_;
  const nn::Schedule& schedule_;
  std::string dump_graph_;  // until the first step has written it
  Console console_;
  const int64_t nan_at_, interrupt_at_;
  const int64_t positions_per_row_;  // a pair (retrieval) puts two sequences through the model
  const int64_t first_step_;
  const double positions_at_start_;
  Tensor poison_;  // WAVSPA_TRAIN_NAN_AT_STEP: 0, or NaN for that step
  Trainer<data::Batch>* trainer_ = nullptr;  // while run() runs
  Clock::time_point window_start_;
  int64_t epoch_ = 0;  // of the last batch
  bool early_stop_ = false;
  double last_loss_ = 0, last_accuracy_ = 0;  // of the last interval read, for the bar
};

void print_start(Setup& s, const RunState& st, bool resumed) {
  const TaskData& d = s.data;
  std::fprintf(stderr, "train: %s on %s (%lld train / %lld val / %lld test, length %lld), %lld parameters, %s%s\n",
               model_name(s.config.model).c_str(), s.config.task.c_str(), (long long)d.train->size(),
               (long long)d.val->size(), (long long)d.test->size(), (long long)d.train->seq_len,
               (long long)s.model.module().num_parameters(), s.device.name().c_str(),
               resumed ? str(", resumed at step ", st.step).c_str() : "");
}

// The run config that tools/train keeps in a checkpoint's metadata.
RunConfig checkpoint_config(const std::string& checkpoint) {
  WAVSPA_CHECK(fs::exists(checkpoint), "--eval-only: no checkpoint at '", checkpoint, "'");
  const nn::Checkpoint file = nn::load_safetensors(checkpoint);
  auto it = file.metadata.find("wavspa.config");
  WAVSPA_CHECK(it != file.metadata.end(), "--eval-only: '", checkpoint,
               "' has no run config in its metadata; it was not written by tools/train");
  const json j = parse_json(it->second, str("--eval-only: '", checkpoint, "': its run config"));
  WAVSPA_CHECK(j.contains("run"), "--eval-only: '", checkpoint, "' has no run config; it was not written by tools/train");
  return RunConfig::from_json(j.at("run").dump());
}

}  // namespace

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kFinished: return "finished";
    case RunStatus::kEarlyStopped: return "early_stopped";
    case RunStatus::kInterrupted: return "interrupted";
    case RunStatus::kDiverged: return "diverged";
  }
  return "?";
}

RunResult run_training(RunConfig config, const std::string& dir, bool resume, const RunExtras& extras) {
  config.validate();
  RunFolder folder(dir);
  folder.check(resume);  // a fast answer before the data loads
  Setup s(std::move(config));
  const nn::Schedule schedule = make_schedule(s.config);  // may refuse the config: before the folder exists
  folder.lock();          // no other process runs in the folder from here on
  folder.check(resume);   // so this answer stays true
  RunState st = start_run(s, folder, resume);
  data::BatchLoader loader(s.data.train, train_loader_options(s.config));
  print_start(s, st, resume);
  // Test hook: WAVSPA_TRAIN_INTERRUPT_AT_STEP=0 is a SIGINT while the data and model load.
  if (env_step("WAVSPA_TRAIN_INTERRUPT_AT_STEP") == 0) std::raise(SIGINT);
  const RunStatus status = RunLoop(s, folder, st, schedule, extras).run(loader);
  loader.stop();  // its prefetch thread has nothing left to do
  return finish_run(s, folder, st, status, loader.batches_per_epoch());
}

std::string evaluate_checkpoint(const std::string& checkpoint, const std::string& data_dir, int64_t threads) {
  RunConfig c = checkpoint_config(checkpoint);
  if (!data_dir.empty()) c.data = data_dir;
  c.threads = threads;
  Setup s(std::move(c));
  const nn::TrainingState saved = nn::load_training_state(checkpoint, s.model.module(), *s.optimizer);
  const EvalResult v = evaluate(s.model, *s.data.val, s.config.batch_size, 0, s.device);
  const EvalResult t = evaluate(s.model, *s.data.test, s.config.batch_size, 0, s.device);
  const json out = {{"task", s.config.task},
                    {"model", model_name(s.config.model)},
                    {"checkpoint", checkpoint},
                    {"step", saved.step},
                    {"val_loss", v.loss},
                    {"val_accuracy", v.accuracy},
                    {"test_loss", t.loss},
                    {"test_accuracy", t.accuracy},
                    {"majority_accuracy", data::majority_class_accuracy(*s.data.test)}};
  return out.dump();
}

}  // namespace wavspa::train

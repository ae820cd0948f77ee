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

// One step's results, left on the device (0-d tensors): nothing here waits for the device,
// so the host queues the next step while this one runs. The loop reads the sums once per
// logging interval.
struct StepResult {
  Tensor loss;     // float64
  Tensor correct;  // float64, an exact count
  Tensor scored;   // float64, an exact count
};

// Forward and cross-entropy, then backward and clipping (train/loop.h's backward_step), for a
// batch whose tensors are on the model's device or the host. `stopped` is the run's flag (0-d
// float32 on the device, sticky, updated in place): it turns 1 at the first loss that is not
// finite, and from then on the optimiser changes nothing (update() below), so the model stays
// as the last good step left it until the loop reads the flag and stops. `poison` makes the loss NaN (the test hook). Nothing here
// waits for the device, so CapturedStep can record it. A `dump_graph` path receives the loss's
// autograd graph (Graphviz DOT) before backward frees it.
StepResult forward_backward(Setup& s, const data::Batch& batch, bool poison, const Tensor& stopped,
                            const std::string& dump_graph = "") {
  Tensor logits, labels, loss;
  {
    ProfileScope range("forward", ProfileKind::Range);
    std::tie(logits, labels) = s.model.forward(batch, s.device);
    CrossEntropyOptions ce;
    ce.label_smoothing = s.config.label_smoothing;
    loss = cross_entropy(logits, labels, ce);
    if (poison) loss = add(loss, std::numeric_limits<double>::quiet_NaN());
  }
  if (!dump_graph.empty()) autograd::write_dot(loss, dump_graph, s.model.module().named_parameters());
  backward_step(loss, *s.optimizer, s.model.module().parameters(), s.config.clip_grad_norm, stopped);
  StepResult r;
  r.loss = loss.detach().to(kFloat64);
  std::tie(r.correct, r.scored) = count_correct_on_device(logits, labels);
  return r;
}

// One optimiser update at the schedule's learning rate (train/loop.h's optimizer_update; Adam
// and AdamW decide on the device whether `stopped` holds it back, another optimiser reads the
// flag).
void update(Setup& s, const nn::Schedule& schedule, const Tensor& stopped) {
  optimizer_update(*s.optimizer, &schedule, stopped);
}

// --cuda-graphs: forward_backward recorded once as a CUDA graph (ops/graph.h) and replayed for
// every batch of the recorded shape; update() runs after each replay (its learning rate and
// step count change every step, and it is one launch per 64 tensors anyway). The first batch
// runs eagerly, so that everything built on first use (optimiser state, caches, cuBLAS's
// choices) exists before the recording; a batch of another shape (the last, partial one of
// an epoch) also runs eagerly. The results are the bits the eager loop gives.
class CapturedStep {
 public:
  explicit CapturedStep(Setup& s) : s_(s), graph_(s.device) {}

  StepResult run(const nn::Schedule& schedule, const data::Batch& batch, bool poison, const Tensor& stopped,
                 const std::string& dump_graph) {
    if (poison || !graph_.captured()) {
      const bool record = !poison && warmed_up_ && batch.size() == s_.config.batch_size;
      if (!record) {  // the first step is one of these: the graph dump sees an eager step
        StepResult r = forward_backward(s_, batch, poison, stopped, dump_graph);
        update(s_, schedule, stopped);
        warmed_up_ = true;
        return r;
      }
      capture(batch, stopped);
    } else if (!same_shape(batch)) {
      StepResult r = forward_backward(s_, batch, false, stopped);
      update(s_, schedule, stopped);
      return r;
    } else {
      inputs_.inputs.copy_(batch.inputs);
      if (batch.inputs2.defined()) inputs_.inputs2.copy_(batch.inputs2);
      inputs_.labels.copy_(batch.labels);
    }
    graph_.replay();
    // An eager step in between (another shape) points the parameters at its own gradients.
    for (auto& [p, g] : grads_) p.set_grad(g);
    update(s_, schedule, stopped);
    return out_;
  }

 private:
  bool same_shape(const data::Batch& b) const {
    return b.inputs.shape() == inputs_.inputs.shape() && b.labels.shape() == inputs_.labels.shape() &&
           b.inputs2.defined() == inputs_.inputs2.defined() &&
           (!b.inputs2.defined() || b.inputs2.shape() == inputs_.inputs2.shape());
  }

  void capture(const data::Batch& batch, const Tensor& stopped) {
    // The graph's inputs: device tensors that every replay refills.
    inputs_ = batch;
    inputs_.inputs = batch.inputs.to(s_.device);
    if (batch.inputs2.defined()) inputs_.inputs2 = batch.inputs2.to(s_.device);
    inputs_.labels = batch.labels.to(s_.device);
    graph_.capture([&] { out_ = forward_backward(s_, inputs_, false, stopped); });
    grads_.clear();
    for (Tensor& p : s_.model.module().parameters())
      if (p.grad().defined()) grads_.emplace_back(p, p.grad());
  }

  Setup& s_;
  Graph graph_;
  bool warmed_up_ = false;
  data::Batch inputs_;                           // the recorded batch's device tensors
  StepResult out_;                               // the recorded results (each replay rewrites them)
  std::vector<std::pair<Tensor, Tensor>> grads_;  // each parameter and the gradient the replays write
};

// The steps since the last read, summed on the device.
struct DeviceWindow {
  Tensor loss, correct, scored;  // float64 (the counts exact)
  Tensor stopped_steps;          // float32: steps taken with the stop flag set
  int64_t steps = 0;
  double positions = 0;

  void add(const StepResult& r, const Tensor& stopped, double step_positions) {
    // A copy at the first step: the flag changes in place and a graph's results are
    // rewritten by its next replay.
    auto acc = [](Tensor& sum, const Tensor& x) { sum = sum.defined() ? wavspa::add(sum, x) : x.clone(); };
    NoGradGuard no_grad;
    acc(loss, r.loss);
    acc(correct, r.correct);
    acc(scored, r.scored);
    acc(stopped_steps, stopped);
    ++steps;
    positions += step_positions;
  }
};

// ---- the loop -----------------------------------------------------------------------------

// The steps of one process of a run, with its logging, periodic validation and checkpoints,
// until the run is done or stops (early, on a signal, or on a loss that is not finite).
class RunLoop {
 public:
  RunLoop(Setup& s, const RunFolder& folder, RunState& st, TrainBatches& batches, const nn::Schedule& schedule,
          const RunExtras& extras)
      : s_(s), folder_(folder), st_(st), batches_(batches), schedule_(schedule), dump_graph_(extras.dump_graph),
        nan_at_(env_step("WAVSPA_TRAIN_NAN_AT_STEP")), interrupt_at_(env_step("WAVSPA_TRAIN_INTERRUPT_AT_STEP")),
        positions_per_row_(s.data.train->seq_len * (s.data.train->is_pair() ? 2 : 1)),
        first_step_(st.step), positions_at_start_(st.positions),
        stopped_(make_stop_flag(s.device)) {
    // The signal flag is not reset here: a Ctrl-C while the data loaded must still stop the run.
    if (s.config.cuda_graphs) captured_ = std::make_unique<CapturedStep>(s);
    // The clocks measure training, not the loading and checkpointing before it.
    st_.started = window_start_ = Clock::now();
    s_.model.module().train();
  }

  RunStatus run() {
    const RunConfig& c = s_.config;
    if (stop_signal_received()) return interrupted();  // a signal before the first step
    while (st_.step < c.steps) {
      const data::Batch batch = batches_.next();
      const bool poison = st_.step + 1 == nan_at_;
      StepResult r;
      {
        ProfileScope range("train_step", ProfileKind::Range);
        if (captured_) {
          r = captured_->run(schedule_, batch, poison, stopped_, dump_graph_);
        } else {
          r = forward_backward(s_, batch, poison, stopped_, dump_graph_);
          update(s_, schedule_, stopped_);
        }
      }
      dump_graph_.clear();  // the first step's graph only
      ++st_.step;
      const double positions = (double)(batch.size() * positions_per_row_);
      pending_.add(r, stopped_, positions);
      if (st_.step == interrupt_at_) std::raise(SIGINT);
      const bool stop_now = stop_signal_received();
      const bool eval_now = st_.step % c.eval_every == 0 || st_.step == c.steps;
      // The one wait for the device per interval: at a training row, before a validation
      // pass (its checkpoint holds the window) and before stopping.
      if (st_.step % c.log_every == 0 || eval_now || stop_now || st_.step == c.steps) {
        if (!read_pending()) return diverged();
      }
      log();
      if (eval_now) {
        validate(s_, folder_, st_, batches_.epoch(), console_);
        if (c.early_stop > 0 && st_.evals_without_gain >= c.early_stop) return stopped_early();
      }
      if (stop_now) return interrupted();
    }
    return RunStatus::kFinished;
  }

 private:
  // Moves the device sums into the window. False when a loss was not finite: the step it
  // happened at and the window's loss (not finite either) are kept for the message.
  bool read_pending() {
    if (pending_.steps == 0) return true;
    const double stopped_steps = pending_.stopped_steps.item();
    const double loss_sum = pending_.loss.item();
    if (stopped_steps > 0) {
      bad_step_ = st_.step - (int64_t)stopped_steps + 1;
      bad_loss_ = loss_sum;
      return false;
    }
    const int64_t correct = (int64_t)pending_.correct.item(), scored = (int64_t)pending_.scored.item();
    st_.window.add_steps(pending_.steps, loss_sum, correct, scored, pending_.positions);
    st_.positions += pending_.positions;
    last_loss_ = loss_sum / (double)pending_.steps;
    last_accuracy_ = scored ? (double)correct / (double)scored : 0.0;
    pending_ = {};
    return true;
  }

  // A "train" row at the end of a logging window, and the bar (with the last values read).
  void log() {
    const RunConfig& c = s_.config;
    const double now_s = st_.elapsed_s();
    if (st_.step % c.log_every == 0 || st_.step == c.steps) {
      const MetricRow row = st_.window.row(st_.step, batches_.epoch(), s_.optimizer->lr(),
                                           seconds_since(window_start_), now_s);
      st_.rows.push_back(row);
      console_.train_row(row, c.steps, s_.device);
      st_.window = {};
      window_start_ = Clock::now();
    }
    const double run_s = now_s - st_.elapsed_before;  // this process's training time
    const double per_step = run_s / (double)std::max<int64_t>(1, st_.step - first_step_);
    console_.bar({st_.step, c.steps, last_loss_, last_accuracy_,
                  run_s > 0 ? (st_.positions - positions_at_start_) / run_s : 0, s_.optimizer->lr(),
                  per_step * (double)(c.steps - st_.step)});
  }

  RunStatus diverged() const {
    const bool saved = fs::exists(folder_.latest);
    console_.end_bar();
    std::fprintf(stderr,
                 "train: the loss is %g at step %lld; stopping. The last good checkpoint is %s (step %lld); "
                 "lower lr (now %.3g) or raise clip_grad_norm's strictness and resume or restart.\n",
                 bad_loss_, (long long)bad_step_, saved ? folder_.latest.c_str() : "(none yet)",
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
  TrainBatches& batches_;
  const nn::Schedule& schedule_;
  std::string dump_graph_;  // until the first step has written it
  Console console_;
  const int64_t nan_at_, interrupt_at_;
  const int64_t positions_per_row_;  // a pair (retrieval) puts two sequences through the model
  const int64_t first_step_;
  const double positions_at_start_;
  Clock::time_point window_start_;
  Tensor stopped_;       // the run's stop flag on the device (forward_backward)
  DeviceWindow pending_;  // the steps not read yet
  std::unique_ptr<CapturedStep> captured_;  // --cuda-graphs
  double last_loss_ = 0, last_accuracy_ = 0;  // of the last interval read, for the bar
  int64_t bad_step_ = 0;
  double bad_loss_ = 0;
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
  TrainBatches batches(s, st.step);
  print_start(s, st, resume);
  // Test hook: WAVSPA_TRAIN_INTERRUPT_AT_STEP=0 is a SIGINT while the data and model load.
  if (env_step("WAVSPA_TRAIN_INTERRUPT_AT_STEP") == 0) std::raise(SIGINT);
  const RunStatus status = RunLoop(s, folder, st, batches, schedule, extras).run();
  batches.stop();
  return finish_run(s, folder, st, status, batches.batches_per_epoch());
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

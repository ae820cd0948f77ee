// Trainer: a loop over a DataLoader for any nn::Module, loss function and optimizer, with the
// model and data in memory (libtorch has no Trainer; it is the loop a libtorch user writes by
// hand, or PyTorch Lightning's Trainer.fit), and the step it is made of. tools/train's
// run_training (train/trainer.h) is a Trainer with a run folder around it.
//
//   // y = 2 x0 - x1 + 0.5, learned by a linear layer from 256 rows
//   manual_seed(0);
//   Tensor x = randn({256, 2});
//   Tensor y = add(sub(mul(x.select(1, 0), 2.0), x.select(1, 1)), 0.5).reshape({256, 1});
//   auto rows = std::make_shared<const data::TensorDataset>(x, y);
//   data::DataLoader<data::TensorExample, data::TensorExample> loader(
//       rows, data::stack_examples, {.batch_size = 32, .shuffle = true, .seed = 1});
//   nn::Linear model(2, 1);
//   nn::SGD opt(model.parameters(), {.lr = 0.1});
//   auto mse = [](nn::Linear& m, const data::TensorExample& b) {
//     return mean(pow(sub(m.forward(b.input), b.target), 2.0));
//   };
//   std::vector<double> logged;                 // the mean loss of every 40 steps
//   train::Trainer<data::TensorExample, nn::Linear> trainer(model, opt, mse,
//       {.epochs = 20, .schedule = nn::constant(0.1) * nn::cosine(160, 0), .log_every = 40,
//        .on_log = [&](const train::LogInfo& l) { logged.push_back(l.loss); }});
//   train::FitResult r = trainer.fit(loader);   // r.steps == 160 (20 epochs of 8 batches)
//   // r.last_loss < 1e-3, logged.size() == 4
//
// A step is: the loss function's forward, zero_grad, backward, an optional clip of the
// gradients' norm, the lr from the schedule (opt.set_lr(schedule(opt.step_count()))), and the
// optimizer's update. A loss that is not finite sets a sticky flag on the device, from which
// on the optimizer changes nothing; the host reads the flag (and the losses) only at log and
// eval steps and at the end of fit, so that a step on a GPU never waits for the device.
// The loss function may return counts beside the loss (StepOutput: correct predictions,
// tokens), summed on the device and read with the losses. With cuda_graphs the forward and
// backward of a batch shape are recorded once as a CUDA graph and replayed (train/trainer.h's
// run_training is a client: tools/train --cuda-graphs).
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/profiler.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "ops/elementwise.h"

namespace wavspa::train {

// ---- stop requests ------------------------------------------------------------------------

// SIGINT and SIGTERM ask the running loop to stop: run_training finishes the current step,
// saves latest.safetensors and returns kInterrupted (a Trainer with stop_on_signal returns
// from fit after the step); a signal that comes while run_training loads its data and model
// stops it before its first step the same way. A second signal ends the process at once.
// Call it before a run (it clears an earlier signal).
void install_signal_handlers();
// Whether a signal has come since install_signal_handlers().
bool stop_signal_received();

// ---- the shared step ----------------------------------------------------------------------

// A loop's stop flag: a 0-d float32 zero on `device`, turned 1 (in place, sticky) by
// backward_step at the first loss that is not finite.
Tensor make_stop_flag(Device device);

// zero_grad, loss.backward(), the stop flag updated from the loss (without waiting for the
// device), and with clip_grad_norm > 0 the gradients of `params` clipped to that global L2
// norm. Nothing here waits for the device, so a CUDA graph can record it.
void backward_step(const Tensor& loss, nn::Optimizer& optimizer, const std::vector<Tensor>& params,
                   double clip_grad_norm, const Tensor& stopped);

// One optimizer update: with a schedule, first opt.set_lr(schedule(opt.step_count())); then
// opt.step(stopped), which changes nothing while the flag is set.
void optimizer_update(nn::Optimizer& optimizer, const nn::Schedule* schedule, const Tensor& stopped);

// ---- Trainer ------------------------------------------------------------------------------

// What a loss function returns: the loss (one element), and optionally named sums: 0-d
// tensors (a count of correct predictions, of tokens) that fit adds up on the device over
// each log window and hands to on_log (LogInfo::sums), so that they cost no wait either. A
// loss function that returns a Tensor returns the loss alone.
struct StepOutput {
  StepOutput() = default;
  StepOutput(Tensor loss) : loss(std::move(loss)) {}  // NOLINT(google-explicit-constructor): a Tensor is a loss
  StepOutput(Tensor loss, std::vector<std::pair<std::string, Tensor>> sums)
      : loss(std::move(loss)), sums(std::move(sums)) {}
  Tensor loss;
  std::vector<std::pair<std::string, Tensor>> sums;  // the same names at every step
};

// What on_step receives after every step.
struct StepInfo {
  int64_t step = 0;   // the trainer's steps so far, this one included
  int64_t epoch = 0;  // of the batch (fit only; 0 for a step() of your own)
  double lr = 0;      // the lr the step used
  // 0-d float64, detached, on the loss's device: item() waits for the device. With
  // cuda_graphs, a replayed step's loss lives in the graph, which the next replay rewrites.
  Tensor loss = {};
};

// What on_log receives (and Trainer::read_window returns): the steps since the last read.
struct LogInfo {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = 0;      // the mean loss of the steps since the last read
  double loss_sum = 0;  // their sum (loss = loss_sum / steps)
  int64_t steps = 0;    // how many steps that is
  double lr = 0;
  std::map<std::string, double> sums = {};  // the loss function's sums (StepOutput), over those steps
};

struct TrainerOptions {
  // How long fit trains: up to `steps` steps in total (the trainer's count, which starts at
  // the optimizer's step_count(), so a restored optimizer resumes), or when steps is 0, up to
  // `epochs` epochs of the loader in total.
  int64_t steps = 0;
  int64_t epochs = 1;
  double clip_grad_norm = 0;             // > 0: clip the gradients' global L2 norm to this
  std::optional<nn::Schedule> schedule = std::nullopt;  // the lr of each step; unset: the optimizer's lr stays
  // on_log every N steps, and when fit returns with steps not logged yet (its target, a
  // stop, a signal); 0: never.
  int64_t log_every = 0;
  int64_t eval_every = 0;                // on_eval every N steps and at fit's last; 0: never
  bool stop_on_signal = false;           // a SIGINT or SIGTERM (install_signal_handlers) stops fit
  // Record the forward and backward of a step as a CUDA graph (ops/graph.h) and replay it for
  // every batch of the recorded shapes; the optimizer's update runs after each replay (its lr
  // and step count change every step). The model must be on a CUDA device and Batch must have
  // a `batch_tensors(Batch&)` found by argument-dependent lookup, listing the tensors the loss
  // function reads (data::TensorExample and data::Batch have one): a replay copies a new
  // batch into the recorded batch's device tensors. The first batch of a shape runs eagerly
  // (what is built on first use exists before the recording), the second of that shape in a
  // row is recorded, and a batch of other shapes (an epoch's partial last one) runs eagerly.
  // Anything the loss function decides on the host is frozen at its recorded value, so it must
  // depend on nothing but the batch's shapes; random ops draw fresh numbers at every replay.
  // The results are the bits of the eager loop.
  bool cuda_graphs = false;
  std::function<void(const StepInfo&)> on_step = {};
  std::function<void(const LogInfo&)> on_log = {};
  // Evaluate here (model.eval() and NoGradGuard are yours to use; fit puts the model back in
  // training mode afterwards). Call request_stop() to end fit, e.g. on a validation plateau.
  std::function<void(int64_t step)> on_eval = {};
};

struct FitResult {
  int64_t steps = 0;  // the trainer's steps in total, after fit
  double last_loss = std::numeric_limits<double>::quiet_NaN();  // of the last step (NaN: none taken)
  bool stopped_early = false;  // request_stop() or a signal ended fit before its target
  bool diverged = false;       // a loss was not finite: fit stopped at the next read of the flag
  // When diverged: the first step whose loss was not finite, and the mean loss of the steps
  // not read before it was found (not finite either); on_log did not receive them.
  int64_t diverged_step = 0;
  double diverged_loss = std::numeric_limits<double>::quiet_NaN();
};

namespace detail {
// The non-template parts of Trainer (train/loop.cpp).
void check_trainer_options(const TrainerOptions& o);
void check_loss(const Tensor& loss);

// The steps since the last read, summed on the device (float64; counts stay exact).
class StepWindow {
 public:
  void add(const StepOutput& out);  // out.loss detached, float64, 0-d
  int64_t steps() const { return steps_; }
  // Waits for the device; fills the loss, loss_sum, steps and sums of `info` and empties the window.
  void read(LogInfo& info);

 private:
  Tensor loss_;
  std::vector<std::pair<std::string, Tensor>> sums_;
  int64_t steps_ = 0;
};

// Trainer's CUDA graph: a step's forward and backward recorded for one set of batch shapes.
class StepGraph {
 public:
  StepGraph();
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  bool captured() const;
  // Whether a batch with these tensors can replay the recording: the same shapes and dtypes,
  // undefined where the recorded batch's were.
  bool matches(const std::vector<Tensor*>& batch) const;
  // Whether the last eager step (note_eager) had a batch like this one: then it is recorded.
  bool warmed_up_for(const std::vector<Tensor*>& batch) const;
  void note_eager(const std::vector<Tensor*>& batch);
  // Moves `slots` (the recorded batch's tensors, which must stay where they are) to `device`
  // and records `work` on them; then keeps the gradient each of `params` got in the recording.
  void capture(Device device, std::vector<Tensor*> slots, const std::function<void()>& work,
               const std::vector<Tensor>& params);
  // Copies `batch` into the slots (none: they hold it already), queues the recording, and
  // points the parameters at its gradients again (an eager step in between replaced them).
  void replay(const std::vector<Tensor*>& batch);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Batch has a batch_tensors(Batch&) (for cuda_graphs).
template <class Batch>
concept HasBatchTensors = requires(Batch& b) {
  { batch_tensors(b) } -> std::same_as<std::vector<Tensor*>>;
};
}  // namespace detail

// Trains `model` (any nn::Module; Model is the type the loss function receives) on batches of
// type Batch: loss = loss_fn(model, batch), a one-element tensor (or a StepOutput with sums).
// The trainer keeps references to the model and the optimizer: both must outlive it.
template <class Batch, class Model = nn::Module>
class Trainer {
 public:
  using LossFn = std::function<StepOutput(Model& model, const Batch& batch)>;

  // Throws wavspa::Error for an empty loss function or bad options (steps < 0, epochs < 1
  // with steps == 0, log_every, eval_every or clip_grad_norm < 0).
  Trainer(Model& model, nn::Optimizer& optimizer, LossFn loss_fn, TrainerOptions options = {})
      : model_(model), optimizer_(optimizer), loss_fn_(std::move(loss_fn)), options_(std::move(options)),
        params_(model.parameters()), step_(optimizer.step_count()) {
    WAVSPA_CHECK((bool)loss_fn_, "Trainer: expected a loss function, got an empty one");
    detail::check_trainer_options(options_);
    WAVSPA_CHECK(!options_.cuda_graphs || detail::HasBatchTensors<Batch>,
                 "Trainer: cuda_graphs needs a batch_tensors(Batch&) returning std::vector<Tensor*> for this "
                 "batch type (the tensors a replay copies in), found by argument-dependent lookup");
  }

  // One training step on `batch` (forward, backward, clip, lr, update); returns the loss,
  // detached (float64, 0-d, on its device; item() waits for the device).
  Tensor step(const Batch& batch) {
    ProfileScope range("train_step", ProfileKind::Range);
    StepOutput out = options_.cuda_graphs ? graph_step(batch) : forward_backward(batch);
    optimizer_update(optimizer_, options_.schedule ? &*options_.schedule : nullptr, stopped_);
    ++step_;
    {
      NoGradGuard no_grad;
      // Steps taken with the flag set: the first bad step is the step count less these, plus 1.
      stopped_steps_ = stopped_steps_.defined() ? add(stopped_steps_, stopped_) : stopped_.clone();
    }
    last_loss_ = out.loss;
    window_.add(out);
    return last_loss_;
  }

  // Trains until the target of the options (or a stop), over the loader's epochs in order:
  // from step s on, epoch s / batches_per_epoch, after skipping the batches of it that were
  // seen, so that a second fit (after request_stop, or with a restored optimizer) continues
  // where the first stopped, batch for batch.
  template <class Example>
  FitResult fit(data::DataLoader<Example, Batch>& loader) {
    const int64_t per_epoch = loader.batches_per_epoch();
    const int64_t target = options_.steps > 0 ? options_.steps : options_.epochs * per_epoch;
    FitResult result;
    model_.train();
    int64_t epoch = step_ / per_epoch;
    if (step_ < target) loader.start_epoch(epoch, step_ % per_epoch);
    while (step_ < target) {
      if (stop_requested_.exchange(false) || (options_.stop_on_signal && stop_signal_received())) {
        result.stopped_early = true;
        break;
      }
      std::optional<Batch> batch = loader.next();
      if (!batch) {
        loader.start_epoch(++epoch);
        continue;
      }
      step(*batch);
      epoch_ = epoch;
      if (options_.on_step) options_.on_step({step_, epoch, optimizer_.lr(), last_loss_});
      const bool last = step_ == target;
      if (options_.log_every > 0 && (step_ % options_.log_every == 0 || last)) {
        if (diverged()) break;
        if (options_.on_log) options_.on_log(read_window());
        else read_window();
      }
      if (options_.eval_every > 0 && (step_ % options_.eval_every == 0 || last)) {
        if (diverged()) break;
        if (options_.on_eval) options_.on_eval(step_);
        model_.train();
      }
    }
    // The end: one read of the flag and of the last loss.
    result.diverged = diverged();
    result.steps = step_;
    if (result.diverged) {
      result.diverged_step = step_ - (int64_t)stopped_steps_.item() + 1;
      if (window_.steps() > 0) result.diverged_loss = read_window().loss;
    } else if (options_.log_every > 0 && window_.steps() > 0 && options_.on_log) {
      options_.on_log(read_window());
    }
    if (last_loss_.defined()) result.last_loss = last_loss_.item();
    return result;
  }

  // The steps since the last read (on_log's or this), read from the device now and taken out
  // of the window, so that the next on_log covers the steps after them. For a callback that
  // needs the numbers between two logs (an on_eval that checkpoints a run's progress).
  LogInfo read_window() {
    LogInfo info{.step = step_, .epoch = epoch_, .lr = optimizer_.lr()};
    window_.read(info);
    return info;
  }

  // Asks fit to return before its next step (from a callback, or another thread). A request
  // made while fit is not running stops the next fit before its first step.
  void request_stop() { stop_requested_.store(true); }

  int64_t steps() const { return step_; }
  const TrainerOptions& options() const { return options_; }

 private:
  // Reads the device's stop flag (waits for the device).
  bool diverged() const { return stopped_.defined() && stopped_.item() != 0; }

  // The loss function's forward, then backward_step; the loss comes back detached in float64.
  StepOutput forward_backward(const Batch& batch) {
    StepOutput out;
    {
      ProfileScope range("forward", ProfileKind::Range);
      out = loss_fn_(model_, batch);
    }
    detail::check_loss(out.loss);
    if (!stopped_.defined()) stopped_ = make_stop_flag(out.loss.device());
    backward_step(out.loss, optimizer_, params_, options_.clip_grad_norm, stopped_);
    out.loss = out.loss.detach().to(kFloat64).reshape({});
    return out;
  }

  // forward_backward with cuda_graphs (see TrainerOptions::cuda_graphs).
  StepOutput graph_step(const Batch& batch) {
    if constexpr (detail::HasBatchTensors<Batch>) {
      Batch incoming = batch;  // tensors are handles: this copies no data
      const std::vector<Tensor*> tensors = batch_tensors(incoming);
      if (graph_.captured()) {
        if (!graph_.matches(tensors)) return forward_backward(batch);  // another shape: eager
        graph_.replay(tensors);
        return graph_out_;
      }
      if (!graph_.warmed_up_for(tensors)) {
        StepOutput out = forward_backward(batch);
        graph_.note_eager(tensors);
        return out;
      }
      WAVSPA_CHECK(stopped_.device().is_cuda(), "Trainer: cuda_graphs needs the loss on a CUDA device, got ",
                   stopped_.device());
      recorded_ = batch;
      graph_.capture(stopped_.device(), batch_tensors(*recorded_),
                     [&] { graph_out_ = forward_backward(*recorded_); }, params_);
      graph_.replay({});
      return graph_out_;
    } else {
      return forward_backward(batch);  // not reached: the constructor refuses cuda_graphs
    }
  }

  Model& model_;
  nn::Optimizer& optimizer_;
  LossFn loss_fn_;
  TrainerOptions options_;
  std::vector<Tensor> params_;
  int64_t step_;
  int64_t epoch_ = 0;     // of the last batch fit trained on
  Tensor stopped_;        // the stop flag, made on the first loss's device
  Tensor stopped_steps_;  // steps taken with the flag set (float32, on the device)
  Tensor last_loss_;      // of the last step
  detail::StepWindow window_;
  detail::StepGraph graph_;         // cuda_graphs
  std::optional<Batch> recorded_;  // the recorded batch: the graph's inputs
  StepOutput graph_out_;           // the recorded outputs, which every replay rewrites
  std::atomic<bool> stop_requested_{false};
};

}  // namespace wavspa::train

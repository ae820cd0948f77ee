// The training step that every loop here shares (run_training's in train/trainer.cpp, and
// Trainer below), and Trainer: a loop over a DataLoader for any nn::Module, loss function and
// optimizer, with the model and data in memory (libtorch has no Trainer; it is the loop a
// libtorch user writes by hand, or PyTorch Lightning's Trainer.fit).
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
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/schedule.h"

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

// What on_step receives after every step.
struct StepInfo {
  int64_t step = 0;   // the trainer's steps so far, this one included
  int64_t epoch = 0;  // of the batch (fit only; 0 for a step() of your own)
  double lr = 0;      // the lr the step used
  Tensor loss = {};   // 0-d float64, detached, on the loss's device: item() waits for the device
};

// What on_log receives every log_every steps.
struct LogInfo {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = 0;    // the mean loss of the steps since the last log
  int64_t steps = 0;  // how many steps that mean is over
  double lr = 0;
};

struct TrainerOptions {
  // How long fit trains: up to `steps` steps in total (the trainer's count, which starts at
  // the optimizer's step_count(), so a restored optimizer resumes), or when steps is 0, up to
  // `epochs` epochs of the loader in total.
  int64_t steps = 0;
  int64_t epochs = 1;
  double clip_grad_norm = 0;             // > 0: clip the gradients' global L2 norm to this
  std::optional<nn::Schedule> schedule = std::nullopt;  // the lr of each step; unset: the optimizer's lr stays
  int64_t log_every = 0;                 // on_log every N steps and at fit's last; 0: never
  int64_t eval_every = 0;                // on_eval every N steps and at fit's last; 0: never
  bool stop_on_signal = false;           // a SIGINT or SIGTERM (install_signal_handlers) stops fit
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
};

namespace detail {
// The non-template parts of Trainer (train/loop.cpp).
void check_trainer_options(const TrainerOptions& o);
void check_loss(const Tensor& loss);
// The losses of the steps since the last read, summed on the device.
class LossWindow {
 public:
  void add(const Tensor& loss);       // a detached float64 0-d loss
  int64_t steps() const { return steps_; }
  double read_mean();                 // waits for the device; empties the window
 private:
  Tensor sum_;
  int64_t steps_ = 0;
};
}  // namespace detail

// Trains `model` (any nn::Module; Model is the type the loss function receives) on batches of
// type Batch: loss = loss_fn(model, batch), a one-element tensor. The trainer keeps references
// to the model and the optimizer: both must outlive it.
template <class Batch, class Model = nn::Module>
class Trainer {
 public:
  using LossFn = std::function<Tensor(Model& model, const Batch& batch)>;

  // Throws wavspa::Error for an empty loss function or bad options (steps < 0, epochs < 1
  // with steps == 0, log_every, eval_every or clip_grad_norm < 0).
  Trainer(Model& model, nn::Optimizer& optimizer, LossFn loss_fn, TrainerOptions options = {})
      : model_(model), optimizer_(optimizer), loss_fn_(std::move(loss_fn)), options_(std::move(options)),
        params_(model.parameters()), step_(optimizer.step_count()) {
    WAVSPA_CHECK((bool)loss_fn_, "Trainer: expected a loss function, got an empty one");
    detail::check_trainer_options(options_);
  }

  // One training step on `batch` (forward, backward, clip, lr, update); returns the loss,
  // detached (float64, 0-d, on its device; item() waits for the device).
  Tensor step(const Batch& batch) {
    const Tensor loss = loss_fn_(model_, batch);
    detail::check_loss(loss);
    if (!stopped_.defined()) stopped_ = make_stop_flag(loss.device());
    backward_step(loss, optimizer_, params_, options_.clip_grad_norm, stopped_);
    optimizer_update(optimizer_, options_.schedule ? &*options_.schedule : nullptr, stopped_);
    ++step_;
    last_loss_ = loss.detach().to(kFloat64).reshape({});
    window_.add(last_loss_);
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
      if (options_.on_step) options_.on_step({step_, epoch, optimizer_.lr(), last_loss_});
      const bool last = step_ == target;
      if (options_.log_every > 0 && (step_ % options_.log_every == 0 || last)) {
        if (diverged()) break;
        const int64_t steps = window_.steps();
        const double mean = window_.read_mean();
        if (options_.on_log) options_.on_log({step_, epoch, mean, steps, optimizer_.lr()});
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
    if (last_loss_.defined()) result.last_loss = last_loss_.item();
    return result;
  }

  // Asks fit to return before its next step (from a callback, or another thread). A request
  // made while fit is not running stops the next fit before its first step.
  void request_stop() { stop_requested_.store(true); }

  int64_t steps() const { return step_; }
  const TrainerOptions& options() const { return options_; }

 private:
  // Reads the device's stop flag (waits for the device).
  bool diverged() const { return stopped_.defined() && stopped_.item() != 0; }

  Model& model_;
  nn::Optimizer& optimizer_;
  LossFn loss_fn_;
  TrainerOptions options_;
  std::vector<Tensor> params_;
  int64_t step_;
  Tensor stopped_;    // the stop flag, made on the first loss's device
  Tensor last_loss_;  // of the last step
  detail::LossWindow window_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace wavspa::train

#include "train/loop.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

#include "autograd/grad_mode.h"
#include "core/profiler.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/graph.h"

namespace wavspa::train {

// ---- stop requests ------------------------------------------------------------------------

namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);  // a second signal: leave now
}

}  // namespace

void install_signal_handlers() {
  g_stop_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_signal_received() { return g_stop_signal.load() != 0; }

// ---- the shared step ----------------------------------------------------------------------

Tensor make_stop_flag(Device device) { return zeros({}, kFloat32, device); }

void backward_step(const Tensor& loss, nn::Optimizer& optimizer, const std::vector<Tensor>& params,
                   double clip_grad_norm, const Tensor& stopped) {
  optimizer.zero_grad();
  loss.backward();
  {
    NoGradGuard no_grad;
    // inf * 0 and NaN * 0 are NaN, so this is 1 exactly where the loss is not finite.
    const Tensor bad = ne(mul(loss.detach(), 0.0), scalar_tensor(0.0, loss.dtype(), loss.device())).to(kFloat32);
    Tensor(stopped).copy_(maximum(stopped, bad.reshape({})));
  }
  if (clip_grad_norm > 0) nn::clip_grad_norm_(params, clip_grad_norm);
}

void optimizer_update(nn::Optimizer& optimizer, const nn::Schedule* schedule, const Tensor& stopped) {
  ProfileScope range("optimizer_step", ProfileKind::Range);
  if (schedule) optimizer.set_lr((*schedule)(optimizer.step_count()));
  optimizer.step(stopped);
}

// ---- Trainer's non-template parts ---------------------------------------------------------

namespace detail {

void check_trainer_options(const TrainerOptions& o) {
  WAVSPA_CHECK(o.steps >= 0, "Trainer: steps must be >= 0 (0: train for `epochs`), got ", o.steps);
  WAVSPA_CHECK(o.steps > 0 || o.epochs >= 1, "Trainer: with steps = 0, epochs must be >= 1, got ", o.epochs);
  WAVSPA_CHECK(o.log_every >= 0, "Trainer: log_every must be >= 0 (0: never), got ", o.log_every);
  WAVSPA_CHECK(o.eval_every >= 0, "Trainer: eval_every must be >= 0 (0: never), got ", o.eval_every);
  WAVSPA_CHECK(o.clip_grad_norm >= 0, "Trainer: clip_grad_norm must be >= 0 (0: no clipping), got ",
               o.clip_grad_norm);
}

void check_loss(const Tensor& loss) {
  WAVSPA_CHECK(loss.defined(), "Trainer: expected the loss function to return a loss, got an undefined tensor");
  WAVSPA_CHECK(loss.numel() == 1, "Trainer: expected the loss function to return one number, got a tensor of shape ",
               loss.shape());
  WAVSPA_CHECK(loss.requires_grad(), "Trainer: the loss does not require grad, so backward cannot reach the model ",
               "(was it computed under NoGradGuard, or from detached parameters?)");
}

void StepWindow::add(const StepOutput& out) {
  NoGradGuard no_grad;
  // A copy at the first step: a graph's outputs are rewritten by its next replay.
  auto acc = [](Tensor& sum, const Tensor& x) {
    sum = sum.defined() ? wavspa::add(sum, x) : x.to(kFloat64).reshape({}).clone();
  };
  if (steps_ == 0) {
    sums_.clear();
    for (const auto& [name, t] : out.sums) sums_.emplace_back(name, Tensor());
  }
  WAVSPA_CHECK(out.sums.size() == sums_.size(), "Trainer: the loss function returned ", out.sums.size(),
               " sums at this step and ", sums_.size(), " at the step before; expected the same every step");
  for (size_t i = 0; i < sums_.size(); ++i) {
    const auto& [name, t] = out.sums[i];
    WAVSPA_CHECK(name == sums_[i].first, "Trainer: the loss function's sum ", i, " is '", name,
                 "' at this step and '", sums_[i].first, "' at the step before; expected the same names every step");
    WAVSPA_CHECK(t.defined() && t.numel() == 1, "Trainer: the loss function's sum '", name,
                 "' must be a one-element tensor, got ", t.defined() ? str("shape ", t.shape()) : "an undefined tensor");
    acc(sums_[i].second, t);
  }
  acc(loss_, out.loss);
  ++steps_;
}

void StepWindow::read(LogInfo& info) {
  info.steps = steps_;
  info.loss_sum = steps_ > 0 ? loss_.item() : 0.0;
  info.loss = steps_ > 0 ? info.loss_sum / (double)steps_ : 0.0;
  info.sums.clear();
  for (const auto& [name, t] : sums_) info.sums[name] = steps_ > 0 ? t.item() : 0.0;
  loss_ = Tensor();
  for (auto& [name, t] : sums_) t = Tensor();
  steps_ = 0;
}

// ---- StepGraph ------------------------------------------------------------------------------

namespace {
// What a recorded batch's tensor must match: undefined, or this dtype and shape.
struct Slot {
  bool defined = false;
  DType dtype = kFloat32;
  Shape shape;
  bool operator==(const Slot&) const = default;
};

std::vector<Slot> layout(const std::vector<Tensor*>& batch) {
  std::vector<Slot> out;
  for (const Tensor* t : batch)
    out.push_back(t->defined() ? Slot{true, t->dtype(), t->shape()} : Slot{});
  return out;
}
}  // namespace

struct StepGraph::Impl {
  std::unique_ptr<Graph> graph;
  std::vector<Tensor*> slots;
  std::vector<Slot> recorded, eager;
  std::vector<std::pair<Tensor, Tensor>> grads;  // each parameter and the gradient a replay writes
};

StepGraph::StepGraph() : impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;

bool StepGraph::captured() const { return impl_->graph && impl_->graph->captured(); }

bool StepGraph::matches(const std::vector<Tensor*>& batch) const { return layout(batch) == impl_->recorded; }

bool StepGraph::warmed_up_for(const std::vector<Tensor*>& batch) const {
  return !impl_->eager.empty() && layout(batch) == impl_->eager;
}

void StepGraph::note_eager(const std::vector<Tensor*>& batch) { impl_->eager = layout(batch); }

void StepGraph::capture(Device device, std::vector<Tensor*> slots, const std::function<void()>& work,
                        const std::vector<Tensor>& params) {
  for (Tensor* t : slots)
    if (t->defined()) *t = t->to(device);
  impl_->graph = std::make_unique<Graph>(device);
  impl_->graph->capture(work);
  impl_->slots = std::move(slots);
  impl_->recorded = layout(impl_->slots);
  impl_->grads.clear();
  for (const Tensor& p : params)
    if (p.grad().defined()) impl_->grads.emplace_back(p, p.grad());
}

void StepGraph::replay(const std::vector<Tensor*>& batch) {
  for (size_t i = 0; i < batch.size(); ++i)
    if (batch[i]->defined()) impl_->slots[i]->copy_(*batch[i]);
  impl_->graph->replay();
  for (auto& [p, g] : impl_->grads) p.set_grad(g);
}

}  // namespace detail

}  // namespace wavspa::train

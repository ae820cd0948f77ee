#include "train/loop.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

#include "autograd/grad_mode.h"
#include "core/profiler.h"
#include "ops/elementwise.h"
#include "ops/factory.h"

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

void LossWindow::add(const Tensor& loss) {
  NoGradGuard no_grad;
  sum_ = sum_.defined() ? wavspa::add(sum_, loss) : loss.clone();
  ++steps_;
}

double LossWindow::read_mean() {
  const double mean = steps_ > 0 ? sum_.item() / (double)steps_ : 0.0;
  sum_ = Tensor();
  steps_ = 0;
  return mean;
}

}  // namespace detail

}  // namespace wavspa::train

// Optimizers (SGD, Adam, AdamW), parameter groups and gradient clipping, with the update
// rules of torch.optim.
//
//   #include "nn/optim.h"
//   #include "nn/schedule.h"
//   Tensor w = zeros({1, 3}).requires_grad_(), b = zeros({1}).requires_grad_();
//   nn::AdamW opt({w, b}, {.lr = 1e-2, .weight_decay = 0.01});
//   nn::Schedule lr = nn::constant(1e-2) * nn::linear_warmup(100) * nn::rsqrt_decay(100);
//   for (int64_t step = 0; step < 1000; ++step) {
//     opt.set_lr(lr(opt.step_count()));   // the schedule's position is the step count
//     opt.zero_grad();
//     for (int k = 0; k < 4; ++k)         // 4 micro-batches: gradients add up across
//       div(loss_on(w, b, micro_batch(step, k)), 4.0).backward();   // backward() calls
//     nn::clip_grad_norm({w, b}, 1.0);
//     opt.step();
//   }
//   nn::StateDict saved = opt.state_dict();  // moments and counters, for a checkpoint
//   // For a Module, no decay on biases and norms: nn::AdamW(nn::decay_groups(model, 0.01))
//
// An optimizer holds handles to the parameter tensors and updates them in place, so the
// module that registered them sees every step. Build it after `Module::to(device/dtype)`:
// those replace the module's tensors and the optimizer would keep updating the old ones.
//
// The updates are written with tensor ops (they run on whatever backend holds the
// parameters); each step costs a few temporaries per parameter. A fused kernel can later
// override `step()` without changing the state layout below.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace wavspa::nn {

// Parameters that share hyper-parameters. An unset lr or weight_decay takes the
// optimizer's own value (its options), as in torch.optim.
struct ParamGroup {
  std::vector<Tensor> params = {};
  std::optional<double> lr = std::nullopt;
  std::optional<double> weight_decay = std::nullopt;
};

// Two groups over `module.parameters()`, in registration order:
//   group 0: weight_decay = `weight_decay`, the weights of linear maps: every parameter whose
//            module says `decays(name)` (nn::Linear's weight, Linformer's E and F);
//   group 1: weight_decay = 0, everything else: biases, layer-norm scales and shifts,
//            embeddings, position tables, CLS tokens, wavelet filters and their angles.
// Decay is a prior that a weight matrix should be small; pulling norm scales towards 0, an
// embedding towards the origin or a learned wavelet towards the zero filter is a prior nobody
// wants (nanoGPT decays exactly the Linear weights). A module of your own opts its
// parameters in by overriding Module::decays. Neither group sets an lr. A group may be empty.
std::vector<ParamGroup> decay_groups(const Module& module, double weight_decay);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (parameters whose grad is undefined
  // are skipped and their state is left alone). Runs under NoGradGuard.
  virtual void step();
  // The same, except that nothing changes where `skip` (a 0-d float32 tensor on the
  // parameters' device) is nonzero. Fused updates (Adam, AdamW on contiguous float32 /
  // float64 parameters) read it on the device, so a training loop can guard against a
  // non-finite loss without waiting for it; the step counts then advance all the same.
  // Any other update reads it on the host first (and then leaves the counts alone).
  void step(const Tensor& skip);
  // Drops every parameter's gradient; the next backward() sets it afresh.
  void zero_grad();

  // Learning rate: the options' lr is where it starts, and `set_lr(x)` is the one way to move
  // it (a schedule calls it before each step, e.g. `opt.set_lr(schedule(opt.step_count()))`).
  // Groups built with an lr of their own keep their ratio to the optimizer's lr: set_lr(x)
  // scales every group by x / options.lr. That ratio is `lr_factor()`, the number a
  // checkpoint stores ("lr_factor"), so a resumed run continues at the lr it had.
  void set_lr(double lr);
  double lr() const { return default_lr_ * lr_factor_; }
  double lr_factor() const { return lr_factor_; }

  // Calls of step() so far (restored by load_state_dict): the position of an lr schedule.
  int64_t step_count() const { return step_count_; }

  size_t num_groups() const { return groups_.size(); }
  const std::vector<Tensor>& group_params(size_t group) const;
  double group_lr(size_t group) const;  // current: base lr times the factor
  double group_weight_decay(size_t group) const;
  const std::string& type_name() const { return type_name_; }

  // The training state, by name:
  //   "step"                          0-d int64, step_count()
  //   "lr_factor"                     0-d float64
  //   "param_groups.G.params.I.step"  0-d int64, how many updates parameter I of group G got
  //   "param_groups.G.params.I.NAME"  per-parameter buffers, NAME = momentum_buffer (SGD
  //                                   with momentum), exp_avg and exp_avg_sq (Adam, AdamW)
  // The buffers share storage with the optimizer (like Module::state_dict): clone them to
  // keep a snapshot while training goes on. Hyper-parameters are not saved; they come from
  // the config that builds the optimizer.
  virtual StateDict state_dict() const;
  // Strict: every missing, unexpected or wrongly shaped entry is named in one error, and
  // nothing changes then. (The buffers exist from construction on, as zeros, so that every
  // state of one optimizer has the same keys and a lost entry cannot pass for a fresh one.) Values are copied in (converting dtype and device as needed).
  virtual void load_state_dict(const StateDict& state);

 protected:
  // What one parameter carries between steps. `buffers` follow buffer_names().
  struct ParamState {
    int64_t step = 0;
    std::vector<Tensor> buffers;
  };

  // `default_lr` and `default_weight_decay` fill the groups that leave them unset.
  Optimizer(std::string type_name, std::vector<ParamGroup> groups, double default_lr,
            double default_weight_decay);
  // Subclass constructors name their per-parameter buffers; each starts as zeros_like(param).
  void add_state_buffers(const std::vector<std::string>& names);
  const std::vector<std::string>& buffer_names() const { return buffer_names_; }

  // Updates `param` in place. `state.step` already counts this update (1 on the first).
  virtual void update(Tensor& param, const Tensor& grad, ParamState& state, double lr,
                      double weight_decay) = 0;
  // One step's updates of all parameters with a gradient. The default calls update() for
  // each; an optimizer with a fused kernel (Adam) takes them all at once.
  struct Update {
    Tensor* param;
    Tensor grad;
    ParamState* state;
    double lr, weight_decay;
  };
  // `skip` (undefined or a device flag, as step(skip)) is for fused updates: update_all is
  // called with it only when fuses_skip() says so; the default never sees one.
  virtual void update_all(std::vector<Update>& updates, const Tensor& skip);
  virtual bool fuses_skip() const { return false; }

 private:
  struct Group {
    std::vector<Tensor> params;
    double base_lr;
    double weight_decay;
    std::vector<ParamState> state;  // one per param
  };
  const Group& group_at(size_t group, const char* caller) const;

  std::string type_name_;
  std::vector<Group> groups_;
  std::vector<std::string> buffer_names_;
  double default_lr_;
  double lr_factor_ = 1.0;
  int64_t step_count_ = 0;
};

// ---- SGD --------------------------------------------------------------------------------

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool nesterov = false;      // needs momentum > 0 and dampening = 0
};

// torch.optim.SGD: with d = grad + weight_decay * p,
//   buf = d on a parameter's first update, else momentum * buf + (1 - dampening) * d;
//   d = nesterov ? d + momentum * buf : buf           (when momentum != 0)
//   p -= lr * d
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options = {});

 protected:
  void update(Tensor& param, const Tensor& grad, ParamState& state, double lr,
              double weight_decay) override;

 private:
  SGDOptions options_;
};

// ---- Adam and AdamW ---------------------------------------------------------------------

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;    // torch's betas[0]
  double beta2 = 0.999;  // torch's betas[1]
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient (coupled; see AdamW)
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay before the update
};

// torch.optim.Adam: with g = grad (+ weight_decay * p for Adam), t = the parameter's step,
//   m = beta1 * m + (1 - beta1) * g                   (exp_avg)
//   v = beta2 * v + (1 - beta2) * g * g               (exp_avg_sq)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// t counts each parameter's own updates, so a parameter that had no gradient for a while
// gets the bias correction of a fresh one, as in torch.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {});

 protected:
  Adam(std::string type_name, std::vector<ParamGroup> groups, const AdamOptions& options,
       bool decoupled_decay);
  void update(Tensor& param, const Tensor& grad, ParamState& state, double lr,
              double weight_decay) override;
  // Contiguous float32 / float64 parameters go to one adam_step_ (ops/optim.h) per device
  // and dtype, with `skip` read by the kernel; any other through update(), after reading
  // `skip` on the host.
  void update_all(std::vector<Update>& updates, const Tensor& skip) override;
  bool fuses_skip() const override { return true; }

 private:
  AdamOptions options_;
  bool decoupled_decay_;
};

// torch.optim.AdamW (Loshchilov & Hutter): p *= 1 - lr * weight_decay, then the Adam update
// on the raw gradient. The decay does not pass through the moments, so it does not get
// divided by sqrt(v) and shrinks every weight at the same rate.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {});
};

// ---- gradient clipping ------------------------------------------------------------------

// torch.nn.utils.clip_grad_norm_ (L2): the norm of all gradients together, summed in
// float64 whatever their dtype. When max_norm / (norm + 1e-6) < 1, every gradient is
// multiplied by that coefficient. Returns the norm before clipping (0 when no parameter
// has a gradient). A non-finite norm leaves the gradients untouched and is returned as is,
// so that the caller can skip the step.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The same without reading anything on the host: the norm comes back as a 0-d float64
// tensor on the gradients' device, and the coefficient is computed there. The gradients of
// one device and dtype are copied into one flat tensor (in slices of at most 2^24 elements),
// so a model of hundreds of parameters clips in a handful of kernels, not seven per gradient.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

}  // namespace wavspa::nn

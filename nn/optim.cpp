#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "autograd/grad_mode.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/optim.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace wavspa::nn {

// ---- parameter groups -------------------------------------------------------------------

std::vector<ParamGroup> decay_groups(const Module& module, double weight_decay) {
  WAVSPA_CHECK(std::isfinite(weight_decay) && weight_decay >= 0,
               "decay_groups: weight_decay must be finite and >= 0, got ", weight_decay);
  ParamGroup decay{.params = {}, .lr = std::nullopt, .weight_decay = weight_decay};
  ParamGroup no_decay{.params = {}, .lr = std::nullopt, .weight_decay = 0.0};
  // Registration order: a module's own parameters, then its children's (as named_parameters).
  std::function<void(const Module&)> visit = [&](const Module& m) {
    for (const auto& [name, t] : m.named_parameters(/*recurse=*/false))
      (m.decays(name) ? decay : no_decay).params.push_back(t);
    for (const auto& [name, child] : m.named_children()) visit(*child);
  };
  visit(module);
  return {decay, no_decay};
}

// ---- Optimizer --------------------------------------------------------------------------

namespace {

void check_hyper(const std::string& who, const char* what, double value, double lo, double hi,
                 bool hi_open = false) {
  const bool ok = std::isfinite(value) && value >= lo && (hi_open ? value < hi : value <= hi);
  WAVSPA_CHECK(ok, who, ": ", what, " must be in [", lo, ", ", hi, hi_open ? ")" : "]",
               ", got ", value);
}

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string param_prefix(size_t group, size_t index) {
  return str("param_groups.", group, ".params.", index, ".");
}

// A 0-d tensor holding a count. int64 keeps counts exact beyond 2^24 and reads as a count.
Tensor count_tensor(int64_t n) { return scalar_tensor((double)n, kInt64); }

int64_t read_count(const std::string& who, const std::string& key, const Tensor& t) {
  double v = t.item();
  WAVSPA_CHECK(v >= 0 && v == std::floor(v) && v < 9.0e15, who, ".load_state_dict: '", key,
               "' must be a non-negative whole number, got ", v);
  return (int64_t)v;
}

}  // namespace

Optimizer::Optimizer(std::string type_name, std::vector<ParamGroup> groups, double default_lr,
                     double default_weight_decay)
    : type_name_(std::move(type_name)), default_lr_(default_lr) {
  check_hyper(type_name_, "lr", default_lr, 0, kInf);
  check_hyper(type_name_, "weight_decay", default_weight_decay, 0, kInf);
  std::set<const TensorImpl*> seen;
  size_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    ParamGroup& in = groups[g];
    Group out;
    out.base_lr = in.lr.value_or(default_lr);
    out.weight_decay = in.weight_decay.value_or(default_weight_decay);
    check_hyper(type_name_, str("lr of param group ", g).c_str(), out.base_lr, 0, kInf);
    check_hyper(type_name_, str("weight_decay of param group ", g).c_str(), out.weight_decay,
                0, kInf);
    for (size_t i = 0; i < in.params.size(); ++i) {
      const Tensor& p = in.params[i];
      const std::string where = str("parameter ", i, " of param group ", g);
      WAVSPA_CHECK(p.defined(), type_name_, ": ", where, " is an undefined tensor");
      WAVSPA_CHECK(is_floating(p.dtype()), type_name_, ": ", where,
                   " must be a floating tensor, got ", p.describe());
      WAVSPA_CHECK(p.is_leaf(), type_name_, ": ", where, " (", p.describe(),
                   ") is not a leaf: it was made by ", p.grad_fn_name(),
                   " and gets no .grad(); optimize the leaf it came from (or detach() it)");
      WAVSPA_CHECK(seen.insert(p.impl_ptr().get()).second, type_name_, ": ", where, " (",
                   p.describe(), ") appears more than once in the param groups");
    }
    total += in.params.size();
    out.params = std::move(in.params);
    out.state.resize(out.params.size());
    groups_.push_back(std::move(out));
  }
  WAVSPA_CHECK(total > 0, type_name_, ": got no parameters to optimize (",
               groups_.size(), " param groups, all empty); did the module register any?");
}

void Optimizer::add_state_buffers(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    buffer_names_.push_back(name);
    for (Group& group : groups_)
      for (size_t i = 0; i < group.params.size(); ++i)
        group.state[i].buffers.push_back(zeros_like(group.params[i]));
  }
}

void Optimizer::step() { step(Tensor()); }

void Optimizer::step(const Tensor& skip) {
  NoGradGuard no_grad;
  if (skip.defined()) {
    WAVSPA_CHECK(skip.numel() == 1 && skip.dtype() == kFloat32, type_name_,
                 ".step(skip): skip must be one float32 element, got ", skip.describe());
    if (!fuses_skip() && skip.item() != 0) return;  // read on the host: nothing counts
  }
  ++step_count_;
  std::vector<Update> updates;
  for (Group& group : groups_) {
    const double lr = group.base_lr * lr_factor_;
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor grad = group.params[i].grad();
      if (!grad.defined()) continue;
      ParamState& state = group.state[i];
      // The state follows its parameter: Module::to moves parameters in place after the
      // optimizer was built, and the moments move with them here, at the next step.
      const Tensor& p = group.params[i];
      for (Tensor& b : state.buffers)
        if (b.device() != p.device() || b.dtype() != p.dtype()) b = b.to(p.device()).to(p.dtype()).contiguous();
      ++state.step;
      updates.push_back({&group.params[i], grad, &state, lr, group.weight_decay});
    }
  }
  update_all(updates, fuses_skip() ? skip : Tensor());
  refresh_autocast_weights();  // the bfloat16 copies linear reads under autocast (ops/linalg.h)
}

void Optimizer::update_all(std::vector<Update>& updates, const Tensor&) {
  for (Update& u : updates) update(*u.param, u.grad, *u.state, u.lr, u.weight_decay);
}

void Optimizer::zero_grad() {
  for (Group& group : groups_)
    for (Tensor& p : group.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_hyper(type_name_, "set_lr: lr", lr, 0, kInf);
  WAVSPA_CHECK(default_lr_ > 0, type_name_, ".set_lr(", lr, "): the optimizer was built with "
               "lr = 0, which no lr is a multiple of; build it with the starting lr");
  lr_factor_ = lr / default_lr_;
}

const Optimizer::Group& Optimizer::group_at(size_t group, const char* caller) const {
  WAVSPA_CHECK(group < groups_.size(), type_name_, ".", caller, ": group ", group,
               " is out of range (", groups_.size(), " groups)");
  return groups_[group];
}

const std::vector<Tensor>& Optimizer::group_params(size_t group) const {
  return group_at(group, "group_params").params;
}
double Optimizer::group_lr(size_t group) const {
  return group_at(group, "group_lr").base_lr * lr_factor_;
}
double Optimizer::group_weight_decay(size_t group) const {
  return group_at(group, "group_weight_decay").weight_decay;
}

StateDict Optimizer::state_dict() const {
  StateDict out;
  out["step"] = count_tensor(step_count_);
  out["lr_factor"] = scalar_tensor(lr_factor_, kFloat64);
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const ParamState& s = groups_[g].state[i];
      const std::string prefix = param_prefix(g, i);
      out[prefix + "step"] = count_tensor(s.step);
      for (size_t b = 0; b < buffer_names_.size(); ++b)
        out[prefix + buffer_names_[b]] = s.buffers[b].detach();
    }
  return out;
}

void Optimizer::load_state_dict(const StateDict& state) {
  // Every key this optimizer expects, with its shape ({} for the scalars).
  std::map<std::string, Shape> expected{{"step", {}}, {"lr_factor", {}}};
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string prefix = param_prefix(g, i);
      expected[prefix + "step"] = {};
      for (const std::string& name : buffer_names_)
        expected[prefix + name] = groups_[g].params[i].shape();
    }

  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [key, shape] : expected) {
    auto it = state.find(key);
    if (it == state.end()) {
      missing.push_back(key);
    } else if (!it->second.defined()) {
      wrong.push_back(key + " (undefined tensor)");
    } else if (shape.empty() ? it->second.numel() != 1 : it->second.shape() != shape) {
      wrong.push_back(key + " (expected " + (shape.empty() ? "one element" : shape_str(shape)) +
                      ", got " + shape_str(it->second.shape()) + ")");
    }
  }
  for (const auto& [key, t] : state)
    if (!expected.count(key)) unexpected.push_back(key);
  if (!missing.empty() || !unexpected.empty() || !wrong.empty()) {
    std::string msg = type_name_ + ".load_state_dict: the state does not match this optimizer "
                      "(saved from another optimizer type, or over other parameters?).";
    if (!missing.empty()) msg += str(" Missing: ", missing, ".");
    if (!unexpected.empty()) msg += str(" Unexpected: ", unexpected, ".");
    if (!wrong.empty()) msg += str(" Wrong shape: ", wrong, ".");
    throw Error(msg);
  }

  // Read and check every scalar before changing anything, so that an error leaves the
  // optimizer as it was.
  const int64_t step = read_count(type_name_, "step", state.at("step"));
  const double factor = state.at("lr_factor").item();
  check_hyper(type_name_, "load_state_dict: lr_factor", factor, 0, kInf);
  std::vector<std::vector<int64_t>> param_steps(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string key = param_prefix(g, i) + "step";
      param_steps[g].push_back(read_count(type_name_, key, state.at(key)));
    }

  NoGradGuard no_grad;
  step_count_ = step;
  lr_factor_ = factor;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      ParamState& s = groups_[g].state[i];
      s.step = param_steps[g][i];
      for (size_t b = 0; b < buffer_names_.size(); ++b)
        s.buffers[b].copy_(state.at(param_prefix(g, i) + buffer_names_[b]));
    }
}

// ---- SGD --------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_hyper("SGD", "momentum", options.momentum, 0, kInf);
  check_hyper("SGD", "dampening", options.dampening, -kInf, kInf);
  WAVSPA_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
               "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum ",
               options.momentum, ", dampening ", options.dampening);
  if (options.momentum != 0) add_state_buffers({"momentum_buffer"});
}

void SGD::update(Tensor& param, const Tensor& grad, ParamState& state, double lr,
                 double weight_decay) {
  Tensor d = grad;
  if (weight_decay != 0) d = add(d, mul(param, weight_decay));
  if (options_.momentum != 0) {
    Tensor& buf = state.buffers[0];
    // torch starts the buffer at the first gradient, undamped, rather than at zero.
    if (state.step == 1)
      buf.copy_(d);
    else
      buf.mul_(options_.momentum).add_(d, 1.0 - options_.dampening);
    d = options_.nesterov ? add(d, mul(buf, options_.momentum)) : buf;
  }
  param.add_(d, -lr);
}

// ---- Adam and AdamW ---------------------------------------------------------------------

namespace {
AdamOptions as_adam_options(const AdamWOptions& o) {
  return {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps,
          .weight_decay = o.weight_decay};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam("Adam", std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}}, options,
           false) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Adam("Adam", std::move(groups), options, false) {}

Adam::Adam(std::string type_name, std::vector<ParamGroup> groups, const AdamOptions& options,
           bool decoupled_decay)
    : Optimizer(type_name, std::move(groups), options.lr, options.weight_decay),
      options_(options),
      decoupled_decay_(decoupled_decay) {
  check_hyper(type_name, "beta1", options.beta1, 0, 1, /*hi_open=*/true);
  check_hyper(type_name, "beta2", options.beta2, 0, 1, /*hi_open=*/true);
  check_hyper(type_name, "eps", options.eps, 0, kInf);
  add_state_buffers({"exp_avg", "exp_avg_sq"});
}

void Adam::update(Tensor& param, const Tensor& grad, ParamState& state, double lr,
                  double weight_decay) {
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  Tensor g = grad;
  if (weight_decay != 0) {
    if (decoupled_decay_)
      param.mul_(1.0 - lr * weight_decay);
    else
      g = add(g, mul(param, weight_decay));
  }
  Tensor& exp_avg = state.buffers[0];
  Tensor& exp_avg_sq = state.buffers[1];
  exp_avg.mul_(beta1).add_(g, 1.0 - beta1);
  exp_avg_sq.mul_(beta2).add_(mul(g, g), 1.0 - beta2);

  const double t = (double)state.step;
  const double bias_correction1 = 1.0 - std::pow(beta1, t);
  const double bias_correction2 = 1.0 - std::pow(beta2, t);
  Tensor denom = add(div(sqrt(exp_avg_sq), std::sqrt(bias_correction2)), options_.eps);
  param.add_(div(exp_avg, denom), -lr / bias_correction1);
}

void Adam::update_all(std::vector<Update>& updates, const Tensor& skip) {
  // Slots by (device, dtype), in the order the parameters come.
  std::vector<std::pair<std::pair<Device, DType>, std::vector<AdamSlot>>> batches;
  int host_skip = -1;  // skip read on the host, once, if an unfused update needs it
  for (Update& u : updates) {
    const Tensor& p = *u.param;
    const DType dt = p.dtype();
    const bool fusable = (dt == kFloat32 || dt == kFloat64) && p.is_contiguous() && u.grad.dtype() == dt &&
                         u.grad.device() == p.device() && u.grad.shape() == p.shape() && u.grad.is_contiguous() &&
                         u.state->buffers[0].is_contiguous() && u.state->buffers[1].is_contiguous();
    if (!fusable) {
      if (host_skip < 0) host_skip = skip.defined() && skip.item() != 0 ? 1 : 0;
      if (!host_skip) update(*u.param, u.grad, *u.state, u.lr, u.weight_decay);
      continue;
    }
    const auto key = std::make_pair(p.device(), dt);
    auto it = std::find_if(batches.begin(), batches.end(), [&](const auto& b) { return b.first == key; });
    if (it == batches.end()) it = batches.insert(batches.end(), {key, {}});
    const double t = (double)u.state->step;
    it->second.push_back({p, u.grad, u.state->buffers[0], u.state->buffers[1], u.lr, u.weight_decay,
                          1.0 - std::pow(options_.beta1, t), 1.0 - std::pow(options_.beta2, t)});
  }
  const AdamHyper hyper{options_.beta1, options_.beta2, options_.eps, decoupled_decay_};
  for (const auto& [key, slots] : batches)
    adam_step_(hyper, slots, {}, skip.defined() ? skip.to(key.first) : skip);
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : Adam("AdamW", std::vector<ParamGroup>{ParamGroup{.params = std::move(params)}},
           as_adam_options(options), true) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Adam("AdamW", std::move(groups), as_adam_options(options), true) {}

// ---- gradient clipping ------------------------------------------------------------------

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  WAVSPA_CHECK(std::isfinite(max_norm) && max_norm > 0,
               "clip_grad_norm: max_norm must be finite and > 0, got ", max_norm);
  NoGradGuard no_grad;
  // The gradients by device and dtype. Each group is copied into one flat tensor, so that its
  // sum of squares is three ops and its scaling one, plus a copy back per gradient, however
  // many parameters there are (op by op it was seven kernels per parameter: on a GPU the host
  // spent milliseconds per step launching them). A group holds at most kGroupElements
  // elements (or one larger gradient), so the copies stay a bounded slice of the model.
  constexpr int64_t kGroupElements = int64_t{1} << 24;
  struct Group {
    Device device;
    DType dtype;
    int64_t numel = 0;
    std::vector<Tensor> grads;
    Tensor flat;
  };
  std::vector<Group> groups;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad();
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
      return x.device == g.device() && x.dtype == g.dtype() && x.numel + g.numel() <= kGroupElements;
    });
    if (it == groups.end()) it = groups.insert(groups.end(), Group{g.device(), g.dtype(), 0, {}, {}});
    it->numel += g.numel();
    it->grads.push_back(g);
  }
  if (groups.empty()) return scalar_tensor(0.0, kFloat64);
  Tensor sum_sq;  // 0-d float64 on the first group's device
  for (Group& group : groups) {
    std::vector<Tensor> rows;
    for (const Tensor& g : group.grads) rows.push_back(g.reshape({-1}));
    group.flat = rows.size() == 1 ? rows[0] : concat(rows, 0);
    const Tensor wide = group.flat.to(kFloat64);
    const Tensor s = sum(mul(wide, wide));
    sum_sq = sum_sq.defined() ? add(sum_sq, s.to(sum_sq.device())) : s;
  }
  const Tensor norm = sqrt(sum_sq);
  // coef = max_norm / (norm + 1e-6) where that is below 1 and the norm is finite, else 1:
  // x * 1 is x exactly, so an unclipped step keeps its gradients bit for bit.
  auto scalar = [&](double v) { return scalar_tensor(v, kFloat64, norm.device()); };
  const Tensor one = scalar(1.0);
  const Tensor ratio = div(scalar(max_norm), add(norm, 1e-6));
  const Tensor finite = eq(mul(norm, 0.0), scalar(0.0));  // inf * 0 and NaN * 0 are NaN
  const Tensor coef = where(logical_and(lt(ratio, one), finite), ratio, one);
  for (Group& group : groups) {
    // Elementwise, so each gradient gets the bits mul(g, coef) would give it.
    const Tensor scaled = mul(group.flat, coef.to(group.device).to(group.dtype));
    int64_t at = 0;
    for (Tensor& g : group.grads) {
      g.copy_(scaled.narrow(0, at, g.numel()).reshape(g.shape()));
      at += g.numel();
    }
  }
  return norm;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  return clip_grad_norm_(params, max_norm).item();
}

}  // namespace wavspa::nn

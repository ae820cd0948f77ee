// Optimizers, gradient clipping, accumulation, training state and LR schedules: each update
// against its formula written out here, element by element in double.
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "models/factory.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "ops/optim.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

using Vec = std::vector<double>;

Vec values(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

double max_diff(const Vec& a, const Vec& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// A deep copy: an optimizer's state_dict shares storage with the running optimizer.
nn::StateDict snapshot(const nn::StateDict& state) {
  nn::StateDict out;
  for (const auto& [k, v] : state) out[k] = v.clone();
  return out;
}

std::vector<Tensor> random_grads(int n, const Shape& shape) {
  std::vector<Tensor> out;
  for (int i = 0; i < n; ++i) out.push_back(rn(shape));
  return out;
}

// A LayerNorm-like child: its 1-D scale must land in the no-decay group.
class Scale : public nn::Module {
 public:
  Scale() : Module("Scale") { register_parameter("weight", &weight, ones({3}, kFloat64)); }
  Tensor weight;
};

class TinyNet : public nn::Module {
 public:
  TinyNet() : Module("TinyNet") {
    register_parameter("weight", &weight, rn({3, 2}));
    register_parameter("bias", &bias, rn({3}));
    register_parameter("pos_bias", &pos_bias, rn({2, 2}));  // 2-D, but named *bias
    norm = register_module("norm", std::make_shared<Scale>());
  }
  bool decays(const std::string& name) const override { return name == "weight"; }  // a linear map
  Tensor weight, bias, pos_bias;
  std::shared_ptr<Scale> norm;
};

}  // namespace

// ---- SGD --------------------------------------------------------------------------------

TEST_CASE("optim: SGD follows torch.optim.SGD (momentum, dampening, nesterov, weight decay)") {
  struct Case {
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  const std::vector<Case> cases = {{0, 0, 0, false},     {0.9, 0, 0, false},
                                   {0.9, 0.3, 0, false}, {0.9, 0, 0, true},
                                   {0.8, 0, 0.05, true}, {0, 0, 0.1, false},
                                   {0.9, 0.1, 0.02, false}};
  const double lr = 0.1;
  for (const Case& c : cases) {
    CAPTURE(c.momentum);
    CAPTURE(c.dampening);
    CAPTURE(c.weight_decay);
    CAPTURE(c.nesterov);
    manual_seed(1);
    Tensor p = rn({3, 4}).requires_grad_();
    std::vector<Tensor> grads = random_grads(5, {3, 4});
    nn::SGD opt({p}, {.lr = lr, .momentum = c.momentum, .dampening = c.dampening,
                      .weight_decay = c.weight_decay, .nesterov = c.nesterov});
    Vec ref = values(p), buf(ref.size(), 0.0);
    for (size_t t = 0; t < grads.size(); ++t) {
      p.set_grad(grads[t].clone());
      opt.step();
      Vec g = values(grads[t]);
      for (size_t i = 0; i < ref.size(); ++i) {
        double d = g[i] + c.weight_decay * ref[i];
        if (c.momentum != 0) {
          buf[i] = t == 0 ? d : c.momentum * buf[i] + (1 - c.dampening) * d;
          d = c.nesterov ? d + c.momentum * buf[i] : buf[i];
        }
        ref[i] -= lr * d;
      }
      CHECK(max_diff(values(p), ref) < 1e-14);
    }
    CHECK(opt.step_count() == 5);
  }
}

// ---- Adam and AdamW ---------------------------------------------------------------------

TEST_CASE("optim: Adam follows the formula, bias correction included") {
  struct Case {
    double beta1, beta2, eps, weight_decay;
  };
  const std::vector<Case> cases = {
      {0.9, 0.999, 1e-8, 0}, {0.8, 0.99, 1e-6, 0}, {0.9, 0.999, 1e-8, 0.1}};
  const double lr = 0.01;
  for (const Case& c : cases) {
    CAPTURE(c.beta1);
    CAPTURE(c.weight_decay);
    manual_seed(2);
    Tensor p = rn({2, 5}).requires_grad_();
    std::vector<Tensor> grads = random_grads(6, {2, 5});
    nn::Adam opt({p}, {.lr = lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps,
                       .weight_decay = c.weight_decay});
    Vec ref = values(p), m(ref.size(), 0.0), v(ref.size(), 0.0);
    for (size_t t = 1; t <= grads.size(); ++t) {
      p.set_grad(grads[t - 1].clone());
      opt.step();
      Vec g = values(grads[t - 1]);
      for (size_t i = 0; i < ref.size(); ++i) {
        double gi = g[i] + c.weight_decay * ref[i];  // Adam's L2 goes through the moments
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
        double m_hat = m[i] / (1 - std::pow(c.beta1, (double)t));
        double v_hat = v[i] / (1 - std::pow(c.beta2, (double)t));
        ref[i] -= lr * m_hat / (std::sqrt(v_hat) + c.eps);
      }
      CHECK(max_diff(values(p), ref) < 1e-13);
    }
  }
}

TEST_CASE("optim: Adam's first step moves every weight by about lr (bias correction)") {
  // On step 1, m_hat / sqrt(v_hat) = g / |g|. Without the correction the step would be
  // (1 - beta1) / sqrt(1 - beta2) ~ 3.2 times larger.
  manual_seed(3);
  Tensor p = rn({4, 4}).requires_grad_();
  Tensor g = rn({4, 4});
  Vec before = values(p), gv = values(g);
  nn::Adam opt({p}, {.lr = 0.05});
  p.set_grad(g);
  opt.step();
  Vec after = values(p);
  for (size_t i = 0; i < before.size(); ++i)
    CHECK(before[i] - after[i] == doctest::Approx(0.05 * (gv[i] > 0 ? 1 : -1)).epsilon(1e-6));
}

TEST_CASE("optim: AdamW follows the formula: decoupled decay, then Adam on the raw gradient") {
  const double lr = 0.02, wd = 0.3, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  manual_seed(4);
  Tensor p = rn({3, 3}).requires_grad_();
  std::vector<Tensor> grads = random_grads(5, {3, 3});
  nn::AdamW opt({p}, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd});
  Vec ref = values(p);
  Vec m(ref.size()), v(ref.size());  // value-initialised: zeros
  for (size_t t = 1; t <= grads.size(); ++t) {
    p.set_grad(grads[t - 1].clone());
    opt.step();
    Vec g = values(grads[t - 1]);
    for (size_t i = 0; i < ref.size(); ++i) {
      ref[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      double m_hat = m[i] / (1 - std::pow(b1, (double)t));
      double v_hat = v[i] / (1 - std::pow(b2, (double)t));
      ref[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    CHECK(max_diff(values(p), ref) < 1e-13);
  }
}

TEST_CASE("optim: AdamW and Adam differ exactly by the decoupled decay") {
  // With the gradients given (not computed from the weights), Adam's update u_t does not
  // depend on the weights, so AdamW must be r_t = r_{t-1} * (1 - lr wd) - u_t with Adam's u_t.
  const double lr = 0.05, wd = 0.2;
  manual_seed(5);
  Tensor start = rn({2, 3});
  std::vector<Tensor> grads = random_grads(6, {2, 3});
  Tensor q = start.clone().requires_grad_();  // Adam, no decay
  Tensor r = start.clone().requires_grad_();  // AdamW
  nn::Adam adam({q}, {.lr = lr});
  nn::AdamW adamw({r}, {.lr = lr, .weight_decay = wd});
  Vec ref = values(start);
  for (const Tensor& g : grads) {
    Vec q_before = values(q);
    q.set_grad(g.clone());
    r.set_grad(g.clone());
    adam.step();
    adamw.step();
    Vec q_after = values(q);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = ref[i] * (1 - lr * wd) - (q_before[i] - q_after[i]);
    CHECK(max_diff(values(r), ref) < 1e-14);
  }
  // Adam's coupled L2 decay is a different thing: it goes through the moments.
  Tensor s = start.clone().requires_grad_();
  nn::Adam adam_l2({s}, {.lr = lr, .weight_decay = wd});
  for (const Tensor& g : grads) {
    s.set_grad(g.clone());
    adam_l2.step();
  }
  CHECK(max_diff(values(s), values(r)) > 1e-4);
}

TEST_CASE("optim: a parameter without a gradient is skipped and keeps its own step count") {
  manual_seed(6);
  Tensor a = rn({3}).requires_grad_(), b = rn({3}).requires_grad_();
  nn::Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(rn({3}));
  Vec b0 = values(b);
  opt.step();
  CHECK(max_diff(values(b), b0) == 0);  // untouched, moments still zero
  CHECK(max_abs_diff(opt.state_dict().at("param_groups.0.params.1.exp_avg"), zeros({3})) == 0);
  // b's first update gets the first-step bias correction although the optimizer is at step 2.
  Tensor g = rn({3});
  Vec gv = values(g);
  a.set_grad(rn({3}));
  b.set_grad(g);
  opt.step();
  Vec b1 = values(b);
  for (size_t i = 0; i < 3; ++i)
    CHECK(b0[i] - b1[i] == doctest::Approx(0.1 * (gv[i] > 0 ? 1 : -1)).epsilon(1e-6));
  nn::StateDict st = opt.state_dict();
  CHECK(st.at("step").item() == 2);
  CHECK(st.at("param_groups.0.params.0.step").item() == 2);
  CHECK(st.at("param_groups.0.params.1.step").item() == 1);
}

TEST_CASE("optim: zero_grad drops the gradients; step runs with grad mode on") {
  Tensor p = ones({2}, kFloat64).requires_grad_();
  nn::SGD opt({p}, {.lr = 0.5});
  mul(p, p).sum().backward();  // grad 2p = 2
  opt.step();                  // the in-place update needs no NoGradGuard from the caller
  CHECK(max_diff(values(p), {0, 0}) == 0);
  CHECK(p.requires_grad());
  opt.zero_grad();
  CHECK_FALSE(p.grad().defined());
}

// ---- parameter groups and the lr ---------------------------------------------------------

TEST_CASE("optim: decay_groups decays what the modules call linear maps, nothing else") {
  manual_seed(7);
  TinyNet net;
  std::vector<nn::ParamGroup> groups = nn::decay_groups(net, 0.1);
  REQUIRE(groups.size() == 2);
  REQUIRE(groups[0].params.size() == 1);
  CHECK(groups[0].params[0].is_same(net.weight));
  CHECK(groups[0].weight_decay == 0.1);
  REQUIRE(groups[1].params.size() == 3);  // registration order: bias, pos_bias (2-D), norm.weight
  CHECK(groups[1].params[0].is_same(net.bias));
  CHECK(groups[1].params[1].is_same(net.pos_bias));
  CHECK(groups[1].params[2].is_same(net.norm->weight));
  CHECK(groups[1].weight_decay == 0.0);
  CHECK_FALSE(groups[0].lr.has_value());

  // Zero gradients: Adam's part of the update is exactly 0, so only the decay moves weights.
  nn::AdamW opt(groups, {.lr = 0.5, .weight_decay = 123.0});  // the groups' decay wins
  CHECK(opt.group_weight_decay(0) == 0.1);
  CHECK(opt.group_weight_decay(1) == 0.0);
  const nn::StateDict before = snapshot(net.state_dict());
  for (Tensor p : net.parameters()) p.set_grad(zeros_like(p));
  opt.step();
  Vec w = values(before.at("weight"));
  for (double& x : w) x *= 1 - 0.5 * 0.1;
  CHECK(max_diff(values(net.weight), w) == 0);
  for (const char* name : {"bias", "pos_bias", "norm.weight"})
    CHECK(max_abs_diff(net.state_dict().at(name), before.at(name)) == 0);
}

TEST_CASE("optim: decay_groups of a WavSpA classifier: Linear weights decay; embeddings, positions, filters do not") {
  models::ModelConfig c;
  c.architecture = "wavspa";
  c.positions = "learned";
  c.vocab_size = 20, c.num_classes = 3, c.max_len = 32;
  c.emb_dim = 16, c.num_layers = 1, c.num_heads = 2, c.qkv_dim = 16, c.mlp_dim = 32;
  c.pooling = "cls";
  auto model = models::make_classifier(c);
  std::vector<nn::ParamGroup> groups = nn::decay_groups(*model, 0.1);
  REQUIRE(groups.size() == 2);
  std::map<const void*, std::string> name_of;
  for (const auto& [name, t] : model->named_parameters()) name_of[t.impl_ptr().get()] = name;
  auto names = [&](const nn::ParamGroup& g) {
    std::vector<std::string> out;
    for (const Tensor& t : g.params) out.push_back(name_of.at(t.impl_ptr().get()));
    return out;
  };
  const std::vector<std::string> decayed = names(groups[0]), kept = names(groups[1]);
  CHECK(decayed.size() + kept.size() == model->named_parameters().size());
  REQUIRE_FALSE(decayed.empty());
  for (const std::string& n : decayed) {
    INFO(n);
    CHECK(n.size() > 7);
    CHECK(n.compare(n.size() - 7, 7, ".weight") == 0);  // only Linear weights
    CHECK(n.find("norm") == std::string::npos);
    CHECK(n.find("emb") == std::string::npos);
  }
  auto kept_has = [&](const std::string& part) {
    for (const std::string& n : kept)
      if (n.find(part) != std::string::npos) return true;
    return false;
  };
  CHECK(kept_has("filters"));  // the learned wavelet
  CHECK(kept_has("cls"));
  CHECK(kept_has("positions"));
  CHECK(kept_has("emb"));
  CHECK(kept_has("bias"));
}

TEST_CASE("optim: per-group lr and weight decay; set_lr scales every group") {
  Tensor a = zeros({2}, kFloat64).requires_grad_(), b = zeros({2}, kFloat64).requires_grad_();
  Tensor c = ones({2}, kFloat64).requires_grad_();
  nn::SGD opt(std::vector<nn::ParamGroup>{{.params = {a}},
                                          {.params = {b}, .lr = 0.2},
                                          {.params = {c}, .weight_decay = 0.5}},
              {.lr = 0.1});
  CHECK(opt.num_groups() == 3);
  CHECK(opt.lr() == 0.1);
  CHECK(opt.group_lr(1) == 0.2);
  CHECK(opt.group_weight_decay(0) == 0.0);
  CHECK(opt.group_weight_decay(2) == 0.5);
  auto unit_grads = [&] {
    for (Tensor t : {a, b, c}) t.set_grad(ones({2}, kFloat64));
  };
  unit_grads();
  opt.step();
  CHECK(max_diff(values(a), {-0.1, -0.1}) < 1e-15);
  CHECK(max_diff(values(b), {-0.2, -0.2}) < 1e-15);
  CHECK(max_diff(values(c), {1 - 0.1 * 1.5, 1 - 0.1 * 1.5}) < 1e-15);  // grad + 0.5 * p

  opt.set_lr(0.05);  // half: group 1 goes to 0.1
  CHECK(opt.lr_factor() == doctest::Approx(0.5));
  CHECK(opt.group_lr(1) == doctest::Approx(0.1));
  unit_grads();
  opt.step();
  CHECK(max_diff(values(a), {-0.15, -0.15}) < 1e-15);
  CHECK(max_diff(values(b), {-0.3, -0.3}) < 1e-15);
  opt.set_lr(0.2);
  CHECK(opt.lr_factor() == doctest::Approx(2.0));
  CHECK(opt.lr() == doctest::Approx(0.2));
  CHECK(opt.group_lr(0) == doctest::Approx(0.2));
  check_error([&] { opt.group_lr(3); }, {"SGD.group_lr", "3", "out of range"});
}

// ---- clipping and accumulation ------------------------------------------------------------

TEST_CASE("optim: clip_grad_norm returns the total norm and scales the gradients") {
  Tensor a = zeros({2, 2}, kFloat64).requires_grad_();
  Tensor b = zeros({1}, kFloat32).requires_grad_();  // dtypes may differ: summed in float64
  Tensor c = zeros({3}, kFloat64).requires_grad_();  // no gradient: ignored
  auto set = [&] {
    a.set_grad(tensor({{1, 2}, {2, 0}}, kFloat64));  // 9
    b.set_grad(tensor({4}, kFloat32));               // 16
  };
  set();
  CHECK(nn::clip_grad_norm({a, b, c}, 10.0) == doctest::Approx(5.0).epsilon(1e-15));
  CHECK(max_diff(values(a.grad()), {1, 2, 2, 0}) == 0);  // under the limit: untouched
  CHECK(values(b.grad())[0] == 4);

  CHECK(nn::clip_grad_norm({a, b, c}, 1.0) == doctest::Approx(5.0).epsilon(1e-15));
  const double coef = 1.0 / (5.0 + 1e-6);  // torch's max_norm / (norm + 1e-6)
  CHECK(max_diff(values(a.grad()), {coef, 2 * coef, 2 * coef, 0}) < 1e-16);
  CHECK(values(b.grad())[0] == doctest::Approx(4 * coef).epsilon(1e-7));
  CHECK(nn::clip_grad_norm({a, b, c}, 100.0) == doctest::Approx(1.0).epsilon(1e-6));

  CHECK(nn::clip_grad_norm({c}, 1.0) == 0.0);
  check_error([&] { nn::clip_grad_norm({a}, 0.0); }, {"clip_grad_norm", "max_norm", "> 0"});
}

TEST_CASE("optim: two half-batch backward passes with loss / 2 give the full-batch step") {
  manual_seed(8);
  Tensor x = rn({8, 3}), y = rn({8, 1});
  Tensor start = rn({3, 1});
  Tensor w_full = start.clone().requires_grad_(), w_micro = start.clone().requires_grad_();
  nn::Adam full({w_full}, {.lr = 0.1}), micro({w_micro}, {.lr = 0.1});
  auto loss_on = [](const Tensor& w, const Tensor& xb, const Tensor& yb) {
    Tensor r = sub(matmul(xb, w), yb);
    return mean(mul(r, r));
  };
  for (int step = 0; step < 4; ++step) {
    full.zero_grad();
    loss_on(w_full, x, y).backward();
    full.step();

    micro.zero_grad();
    for (int64_t half = 0; half < 2; ++half)  // the gradients add up across backward()
      div(loss_on(w_micro, x.narrow(0, 4 * half, 4), y.narrow(0, 4 * half, 4)), 2.0).backward();
    CHECK(max_abs_diff(w_micro.grad(), w_full.grad()) < 1e-14);
    micro.step();
    CHECK(max_abs_diff(w_micro, w_full) < 1e-13);
  }
}

// ---- training state -----------------------------------------------------------------------

TEST_CASE("optim: a run resumed from state_dict continues bit for bit") {
  using Factory = std::function<std::unique_ptr<nn::Optimizer>(std::vector<Tensor>)>;
  const std::vector<std::pair<std::string, Factory>> factories = {
      {"SGD", [](std::vector<Tensor> p) {
         return std::make_unique<nn::SGD>(
             p, nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"Adam", [](std::vector<Tensor> p) {
         return std::make_unique<nn::Adam>(p, nn::AdamOptions{.lr = 0.1, .weight_decay = 0.01});
       }},
      {"AdamW", [](std::vector<Tensor> p) {
         return std::make_unique<nn::AdamW>(p, nn::AdamWOptions{.lr = 0.1});
       }},
  };
  manual_seed(9);
  Tensor x = rn({6, 3}), y = rn({6, 2});
  Tensor w0 = rn({2, 3}), b0 = rn({2});
  const nn::Schedule schedule = nn::constant(0.1) * nn::linear_warmup(2) * nn::rsqrt_decay(2);
  auto train_step = [&](nn::Optimizer& opt, const Tensor& w, const Tensor& b) {
    opt.set_lr(schedule.factor(opt.step_count()));
    opt.zero_grad();
    Tensor r = sub(linear(x, w, b), y);
    mean(mul(r, r)).backward();
    opt.step();
  };

  for (const auto& [name, make] : factories) {
    const std::string& optimizer_name = name;  // (clang 14: CAPTURE cannot take a structured binding)
    CAPTURE(optimizer_name);
    Tensor w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    auto opt = make({w, b});
    for (int i = 0; i < 3; ++i) train_step(*opt, w, b);
    const nn::StateDict saved = snapshot(opt->state_dict());
    const Tensor saved_w = w.detach().clone(), saved_b = b.detach().clone();
    for (int i = 0; i < 2; ++i) train_step(*opt, w, b);

    CHECK(saved.at("step").dtype() == kInt64);
    CHECK(saved.at("step").dim() == 0);
    CHECK(saved.at("step").item() == 3);
    CHECK(saved.at("param_groups.0.params.1.step").item() == 3);
    if (name != "SGD") {
      CHECK(saved.count("param_groups.0.params.1.exp_avg") == 1);
      CHECK(saved.at("param_groups.0.params.0.exp_avg_sq").shape() == Shape{2, 3});
    } else {
      CHECK(saved.count("param_groups.0.params.0.momentum_buffer") == 1);
    }

    // A fresh optimizer over fresh tensors, restored from the snapshot.
    Tensor w2 = zeros({2, 3}, kFloat64).requires_grad_(), b2 = zeros({2}, kFloat64).requires_grad_();
    auto resumed = make({w2, b2});
    {
      NoGradGuard no_grad;
      w2.copy_(saved_w);
      b2.copy_(saved_b);
    }
    resumed->load_state_dict(saved);
    CHECK(resumed->step_count() == 3);
    for (int i = 0; i < 2; ++i) train_step(*resumed, w2, b2);
    CHECK(max_abs_diff(w2, w) == 0);
    CHECK(max_abs_diff(b2, b) == 0);
    const nn::StateDict s1 = opt->state_dict(), s2 = resumed->state_dict();
    REQUIRE(s1.size() == s2.size());
    for (const auto& item : s1) CHECK_MESSAGE(max_abs_diff(s2.at(item.first), item.second) == 0, item.first);

    // The control: restoring only the weights does not continue the same run.
    Tensor w3 = saved_w.clone().requires_grad_(), b3 = saved_b.clone().requires_grad_();
    auto restarted = make({w3, b3});
    for (int i = 0; i < 2; ++i) train_step(*restarted, w3, b3);
    CHECK(max_abs_diff(w3, w) > 1e-6);
  }
}

TEST_CASE("optim: load_state_dict names missing, unexpected and misshaped entries") {
  manual_seed(10);
  Tensor w = rn({2, 3}).requires_grad_(), b = rn({3}).requires_grad_();
  nn::Adam opt({w, b});
  w.set_grad(rn({2, 3}));
  b.set_grad(rn({3}));
  opt.step();
  const nn::StateDict good = snapshot(opt.state_dict());
  const Tensor exp_avg_before = good.at("param_groups.0.params.0.exp_avg");

  nn::StateDict missing = good;
  missing.erase("param_groups.0.params.1.exp_avg_sq");
  check_error([&] { opt.load_state_dict(missing); },
              {"Adam.load_state_dict", "Missing", "param_groups.0.params.1.exp_avg_sq"});

  nn::StateDict unexpected = good;
  unexpected["param_groups.0.params.2.exp_avg"] = zeros({3}, kFloat64);
  check_error([&] { opt.load_state_dict(unexpected); },
              {"Unexpected", "param_groups.0.params.2.exp_avg"});

  nn::StateDict misshaped = good;
  misshaped["param_groups.0.params.0.exp_avg"] = zeros({3, 2}, kFloat64);
  misshaped["step"] = zeros({2}, kInt64);
  check_error([&] { opt.load_state_dict(misshaped); },
              {"Wrong shape", "param_groups.0.params.0.exp_avg (expected (2, 3), got (3, 2))",
               "step (expected one element, got (2,))"});

  nn::StateDict negative = good;
  negative["step"] = scalar_tensor(-1, kInt64);
  check_error([&] { opt.load_state_dict(negative); }, {"'step'", "non-negative whole number"});

  // SGD's state into Adam: every name that differs is listed.
  Tensor p = rn({2, 3}).requires_grad_(), q = rn({3}).requires_grad_();
  nn::SGD sgd({p, q}, {.lr = 0.1, .momentum = 0.9});
  check_error([&] { opt.load_state_dict(sgd.state_dict()); },
              {"Missing", "param_groups.0.params.0.exp_avg", "Unexpected",
               "param_groups.0.params.0.momentum_buffer"});

  // None of the failed loads changed anything.
  CHECK(opt.step_count() == 1);
  CHECK(max_abs_diff(opt.state_dict().at("param_groups.0.params.0.exp_avg"), exp_avg_before) == 0);
  opt.load_state_dict(good);  // and the good state still loads
}

TEST_CASE("optim: bad construction is refused with the reason") {
  Tensor p = ones({2}, kFloat64).requires_grad_();
  check_error([] { nn::SGD(std::vector<Tensor>{}); }, {"SGD", "no parameters"});
  check_error([&] { nn::SGD({p, p}); }, {"SGD", "parameter 1 of param group 0", "more than once"});
  check_error([&] { nn::Adam({mul(p, 2.0)}); }, {"Adam", "not a leaf", "MulBackward"});
  check_error([&] { nn::SGD({p}, {.lr = -0.1}); }, {"SGD", "lr must be in", "-0.1"});
  check_error([&] { nn::SGD({p}, {.lr = 0.1, .nesterov = true}); },
              {"SGD", "nesterov needs momentum > 0"});
  check_error([&] { nn::Adam({p}, {.beta1 = 1.0}); }, {"Adam", "beta1", "[0, 1)", "got 1"});
  check_error([&] { nn::AdamW({p}, {.eps = -1}); }, {"AdamW", "eps"});
  check_error(
      [&] {
        nn::AdamW(std::vector<nn::ParamGroup>{{.params = {}}, {.params = {p}, .lr = -1.0}});
      },
      {"AdamW", "lr of param group 1"});
  check_error([&] { nn::SGD({zeros({2}, kInt64)}); }, {"SGD", "floating", "int64"});
  nn::SGD zero_lr({p}, {.lr = 0.0});
  check_error([&] { zero_lr.set_lr(0.1); }, {"SGD.set_lr", "lr = 0", "starting lr"});
}

// ---- schedules --------------------------------------------------------------------------

TEST_CASE("schedule: each factor takes its documented values") {
  CHECK(nn::constant(0.5).factor(7) == 0.5);
  CHECK(nn::Schedule().factor(3) == 1.0);

  nn::Schedule warm = nn::linear_warmup(100);
  CHECK(warm(0) == 0.0);
  CHECK(warm(50) == 0.5);
  CHECK(warm(100) == 1.0);
  CHECK(warm(1000) == 1.0);
  CHECK(nn::linear_warmup(0)(0) == 1.0);

  nn::Schedule rsqrt = nn::rsqrt_decay(100);
  CHECK(rsqrt(0) == doctest::Approx(0.1));
  CHECK(rsqrt(100) == doctest::Approx(0.1));
  CHECK(rsqrt(400) == doctest::Approx(0.05));
  CHECK(nn::rsqrt_normalized_decay(100)(50) == doctest::Approx(1.0));
  CHECK(nn::rsqrt_normalized_decay(100)(400) == doctest::Approx(0.5));

  nn::Schedule every = nn::decay_every(10, 0.5);
  CHECK(every(9) == 1.0);
  CHECK(every(10) == 0.5);
  CHECK(every(25) == 0.25);

  nn::Schedule cyc = nn::cosine_decay(100, 20);  // LRA's cosine_decay with warmup 20
  CHECK(cyc(0) == 1.0);
  CHECK(cyc(20) == 1.0);
  CHECK(cyc(70) == doctest::Approx(0.5));
  CHECK(cyc(119) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 0.99))));
  CHECK(cyc(120) == 1.0);  // restart
}

TEST_CASE("schedule: LRA's constant * linear_warmup * rsqrt_decay, built and parsed") {
  const nn::Schedule lra = nn::constant(0.05) * nn::linear_warmup(1000) * nn::rsqrt_decay(1000);
  CHECK(lra.describe() == "constant(0.05) * linear_warmup(1000) * rsqrt_decay(1000)");
  CHECK(lra(0) == 0.0);
  CHECK(lra(500) == doctest::Approx(0.05 * 0.5 / std::sqrt(1000.0)));
  CHECK(lra(1000) == doctest::Approx(0.05 / std::sqrt(1000.0)));
  CHECK(lra(4000) == doctest::Approx(0.05 / std::sqrt(4000.0)));

  const nn::Schedule parsed = nn::parse_schedule("constant * linear_warmup * rsqrt_decay",
                                                 {.base = 0.05, .warmup_steps = 1000});
  CHECK(parsed.describe() == lra.describe());
  for (int64_t s : {0, 1, 999, 1000, 1001, 12345}) CHECK(parsed(s) == lra(s));
  CHECK(nn::parse_schedule("constant*linear_warmup*cosine_decay",
                           {.base = 2.0, .warmup_steps = 10, .steps_per_cycle = 100})(60) ==
        doctest::Approx(2.0 * 0.5));
  CHECK(nn::product({nn::constant(2.0), nn::constant(3.0), nn::linear_warmup(4)})(2) == 3.0);
  CHECK(nn::product({})(5) == 1.0);
}

TEST_CASE("schedule: cosine with linear warmup, restarts and a floor") {
  // 10 warmup steps, then 2 cycles of 50 steps each, from 1 down towards 0.1.
  const nn::Schedule s = nn::cosine(110, 10, 2, 0.1);
  CHECK(s.describe() == "cosine(total 110, warmup 10, cycles 2, min 0.1)");
  CHECK(s(0) == 0.0);
  CHECK(s(5) == 0.5);
  CHECK(s(10) == 1.0);
  CHECK(s(35) == doctest::Approx(0.1 + 0.9 * 0.5));  // half way through cycle 1
  CHECK(s(59) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 49 / 50))));
  CHECK(s(60) == 1.0);  // restart
  CHECK(s(85) == doctest::Approx(0.55));
  CHECK(s(110) == 0.1);
  CHECK(s(100000) == 0.1);
  // One cycle, no warmup, no floor: the plain half cosine.
  const nn::Schedule plain = nn::cosine(100);
  CHECK(plain(0) == 1.0);
  CHECK(plain(50) == doctest::Approx(0.5));
  CHECK(plain(75) == doctest::Approx(0.5 * (1 + std::cos(0.75 * M_PI))));
  CHECK(plain(100) == 0.0);
}

TEST_CASE("schedule: errors name the factor and the valid choices") {
  check_error([] { nn::parse_schedule("constant * linear_warmpu"); },
              {"parse_schedule", "unknown factor 'linear_warmpu'", "valid factors: constant",
               "rsqrt_decay", "cosine_decay"});
  check_error([] { nn::parse_schedule("constant ** rsqrt_decay"); }, {"an empty factor"});
  check_error([] { nn::parse_schedule("rsqrt_decay", {.warmup_steps = 0}); },
              {"parse_schedule('rsqrt_decay')", "warmup_steps must be >= 1, got 0"});
  check_error([] { nn::linear_warmup(10).factor(-1); }, {"linear_warmup(10)", "step must be >= 0"});
  check_error([] { nn::cosine(10, 10); }, {"cosine", "total_steps (10)", "warmup_steps (10)"});
  check_error([] { nn::cosine(10, 0, 1, 1.5); }, {"cosine", "min_factor", "1.5"});
  check_error([] { nn::constant(NAN); }, {"constant", "finite"});
}

// ---- end to end ---------------------------------------------------------------------------

namespace {
class Regression : public nn::Module {
 public:
  explicit Regression(int64_t in) : Module("Regression") {
    register_parameter("weight", &weight, mul(randn({1, in}), 0.1));
    register_parameter("bias", &bias, zeros({1}));
  }
  Tensor forward(const Tensor& x) const { return linear(x, weight, bias); }
  Tensor weight, bias;
};
}  // namespace

TEST_CASE("optim: AdamW with decay groups, a warmup-cosine schedule and clipping fits a line") {
  manual_seed(12);
  const int64_t n = 256, in = 4;
  Tensor x = randn({n, in});
  Tensor w_true = tensor({{0.5, -1.0, 2.0, 0.3}});
  Tensor y = add(add(linear(x, w_true), 0.7), mul(randn({n, 1}), 0.01));  // (n, 1)
  Regression model(in);
  nn::AdamW opt(nn::decay_groups(model, 0.01), {.lr = 0.05});
  const nn::Schedule lr = nn::constant(0.05) * nn::cosine(400, 20);
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.set_lr(lr(opt.step_count()));
    opt.zero_grad();
    Tensor r = sub(model.forward(x), y);
    Tensor loss = mean(mul(r, r));
    loss.backward();
    nn::clip_grad_norm(model.parameters(), 5.0);
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  MESSAGE("linear regression with AdamW: loss ", first, " -> ", last);
  CHECK(first > 1.0);
  CHECK(last < 1e-3);
  CHECK(max_abs_diff(model.weight, w_true) < 0.02);
  CHECK(model.bias.item() == doctest::Approx(0.7).epsilon(0.02));
}

TEST_CASE("optim: step(skip) changes nothing where the flag is set, fused or not") {
  manual_seed(8);
  const std::vector<Tensor> grads = random_grads(3, {3, 2});
  auto run = [&](auto make_optimizer, const std::vector<double>& flags) {
    manual_seed(8);
    Tensor p = rn({3, 2}).requires_grad_();  // the same start every run
    auto opt = make_optimizer(p);
    for (size_t t = 0; t < flags.size(); ++t) {
      p.set_grad(grads[t].clone());
      opt->step(scalar_tensor(flags[t], kFloat32));
    }
    return std::make_pair(values(p), opt->step_count());
  };
  auto adamw = [](Tensor& p) { return std::make_unique<nn::AdamW>(std::vector<Tensor>{p}, nn::AdamWOptions{.lr = 0.1}); };
  auto sgd = [](Tensor& p) { return std::make_unique<nn::SGD>(std::vector<Tensor>{p}, nn::SGDOptions{.lr = 0.1, .momentum = 0.9}); };
  // Fused (AdamW): a set flag leaves the values (the kernel reads it) but the counts move.
  const auto a_all = run(adamw, {0, 0, 0}), a_skip = run(adamw, {0, 1, 1}), a_one = run(adamw, {0});
  CHECK(max_diff(a_skip.first, a_one.first) == 0);
  CHECK(max_diff(a_all.first, a_one.first) > 0);
  CHECK(a_skip.second == 3);
  // Not fused (SGD): the flag is read on the host and a skipped step does not count.
  const auto s_skip = run(sgd, {0, 1, 1}), s_one = run(sgd, {0});
  CHECK(max_diff(s_skip.first, s_one.first) == 0);
  CHECK(s_skip.second == 1);
  Tensor p = rn({2}).requires_grad_();
  nn::AdamW opt({p});
  p.set_grad(rn({2}));
  check_error([&] { opt.step(scalar_tensor(0.0, kFloat64)); }, {"AdamW.step(skip)", "float32"});
}

TEST_CASE("optim: clip_grad_norm_ keeps the norm and the coefficient on the device") {
  Tensor a = zeros({2, 2}, kFloat64).requires_grad_();
  a.set_grad(tensor({{3, 0}, {0, 4}}, kFloat64));
  Tensor norm = nn::clip_grad_norm_({a}, 1.0);
  CHECK(norm.dim() == 0);
  CHECK(norm.dtype() == kFloat64);
  CHECK(norm.item() == 5.0);
  const double coef = 1.0 / (5.0 + 1e-6);
  CHECK(max_diff(values(a.grad()), {3 * coef, 0, 0, 4 * coef}) < 1e-16);
  // A non-finite norm leaves the gradients as they are (the caller skips the step).
  a.set_grad(tensor({{INFINITY, 1}, {0, 2}}, kFloat64));
  CHECK(std::isinf(nn::clip_grad_norm_({a}, 1.0).item()));
  CHECK(values(a.grad())[1] == 1);
  CHECK(values(a.grad())[3] == 2);
}

TEST_CASE("optim: clip_grad_norm_ over many gradients of two dtypes, one not contiguous") {
  // Each dtype's gradients are flattened into one tensor for the sum of squares and the
  // scaling; every gradient must come back with its shape and the bits of mul(g, coef).
  Generator gen(11);
  std::vector<Tensor> params, before;
  for (int i = 0; i < 7; ++i) {
    const DType dt = i % 3 == 0 ? kFloat64 : kFloat32;
    Tensor p = zeros({3, 2 + i}, dt).requires_grad_();
    Tensor g = randn({2 + i, 3}, dt, Device::cpu(), &gen).mul_(3.0);
    p.set_grad(i == 4 ? g.transpose(0, 1) : g.transpose(0, 1).contiguous());  // one strided gradient
    params.push_back(p);
    before.push_back(p.grad().clone());
  }
  double sum_sq = 0;
  for (const Tensor& g : before)
    for (double v : g.to(kFloat64).contiguous().to_vector<double>()) sum_sq += v * v;
  const Tensor norm = nn::clip_grad_norm_(params, 1.5);
  CHECK(norm.item() == doctest::Approx(std::sqrt(sum_sq)).epsilon(1e-14));
  REQUIRE(norm.item() > 1.5);  // so the gradients were scaled
  const Tensor coef = tensor({1.5 / (norm.item() + 1e-6)}, kFloat64).reshape({});
  for (size_t i = 0; i < params.size(); ++i) {
    INFO("gradient ", i);
    const Tensor& g = params[i].grad();
    CHECK(g.shape() == before[i].shape());
    const Tensor want = mul(before[i], coef.to(g.dtype()));
    CHECK(max_diff(values(g), values(want)) == 0);
  }
}

TEST_CASE("optim: the fused Adam step (adam_step_) equals the per-tensor path and checks its slots") {
  // A transposed (non-contiguous) parameter takes update(); its contiguous twin the fused
  // step. Both follow the same formula, so they agree to float64 rounding.
  manual_seed(4);
  Tensor base = rn({4, 3});
  Tensor fused = base.clone().requires_grad_();
  Tensor strided = base.t().contiguous().t().detach().requires_grad_();  // same values, column-major
  REQUIRE_FALSE(strided.is_contiguous());
  nn::AdamW a({fused}, {.lr = 0.02, .weight_decay = 0.1}), b({strided}, {.lr = 0.02, .weight_decay = 0.1});
  for (const Tensor& g : random_grads(5, {4, 3})) {
    fused.set_grad(g.clone());
    strided.set_grad(g.clone());
    a.step();
    b.step();
  }
  CHECK(max_diff(values(fused), values(strided)) < 1e-14);

  // grad_scale multiplies every gradient: scaling by 0.5 equals halving the gradient.
  Tensor p1 = rn({7}), p2 = p1.clone(), g = rn({7});
  auto slot = [](const Tensor& p, const Tensor& grad) {
    return AdamSlot{p, grad, zeros_like(p), zeros_like(p), 0.1, 0.0, 0.1, 0.001};
  };
  adam_step_(AdamHyper{}, {slot(p1, g)}, scalar_tensor(0.5, kFloat32));
  adam_step_(AdamHyper{}, {slot(p2, mul(g, 0.5))});
  CHECK(max_diff(values(p1), values(p2)) < 1e-15);

  check_error([&] { adam_step_(AdamHyper{}, {slot(rn({3}), rn({4}))}); }, {"adam_step_", "grad", "(3,)"});
  check_error([&] { adam_step_(AdamHyper{}, {slot(rn({3}), rn({3}).to(kFloat32))}); }, {"adam_step_", "float64"});
  check_error([&] { adam_step_(AdamHyper{}, {slot(rn({3, 2}), rn({2, 3}).t())}); }, {"adam_step_", "contiguous"});
  check_error([&] { adam_step_(AdamHyper{}, {slot(randint(0, 3, {3}), randint(0, 3, {3}))}); },
              {"adam_step_", "float32 or float64"});
  check_error([&] { adam_step_(AdamHyper{}, {slot(rn({3}), rn({3}))}, scalar_tensor(1.0, kFloat64)); },
              {"adam_step_", "grad_scale"});
}

TEST_CASE("optim: one fused Adam step over many slots gives each slot's bits on any thread count") {
  // The CPU update runs one loop over the elements of all slots, whose chunks span the ends
  // of tensors. Each slot must come out as when it is updated alone, on one thread or two.
  const int saved = cpu_threads();
  manual_seed(12);
  const std::vector<int64_t> sizes{1, 5, 40000, 3, 70001, 17, 32768, 2};
  for (DType dt : {kFloat32, kFloat64}) {
    INFO(dtype_name(dt));
    std::vector<Tensor> params, grads, ms, vs;
    for (int64_t n : sizes) {
      params.push_back(randn({n}).to(dt));
      grads.push_back(randn({n}).to(dt));
      ms.push_back(mul(randn({n}), 0.1).to(dt));
      vs.push_back(mul(rand({n}), 0.01).to(dt));
    }
    auto slots_of = [&](std::vector<Tensor>& p, std::vector<Tensor>& m, std::vector<Tensor>& v) {
      std::vector<AdamSlot> out;
      for (size_t i = 0; i < p.size(); ++i)
        out.push_back(AdamSlot{p[i], grads[i], m[i], v[i], 0.01 * double(i + 1), 0.05, 0.3, 0.02});
      return out;
    };
    auto copies = [](const std::vector<Tensor>& ts) {
      std::vector<Tensor> out;
      for (const Tensor& t : ts) out.push_back(t.clone());
      return out;
    };
    const AdamHyper hyper{.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .decoupled = true};
    const Tensor half = scalar_tensor(0.5, kFloat32);
    // Alone: a call per slot, one thread.
    std::vector<Tensor> p1 = copies(params), m1 = copies(ms), v1 = copies(vs);
    set_cpu_threads(1);
    for (const AdamSlot& s : slots_of(p1, m1, v1)) adam_step_(hyper, {s}, half);
    for (int threads : {1, 2}) {
      INFO(threads, " threads");
      set_cpu_threads(threads);
      std::vector<Tensor> p2 = copies(params), m2 = copies(ms), v2 = copies(vs);
      adam_step_(hyper, slots_of(p2, m2, v2), half);
      for (size_t i = 0; i < sizes.size(); ++i) {
        INFO("slot ", i, " of ", sizes[i], " elements");
        CHECK(max_diff(values(p1[i]), values(p2[i])) == 0);
        CHECK(max_diff(values(m1[i]), values(m2[i])) == 0);
        CHECK(max_diff(values(v1[i]), values(v2[i])) == 0);
        CHECK(max_diff(values(p2[i]), values(params[i])) > 0);  // it was updated
      }
    }
  }
  set_cpu_threads(saved);
}

#ifdef WAVSPA_CUDA
TEST_CASE("optim: the fused Adam step on CUDA equals the CPU's (float32, float64, many tensors)" * gpu_only()) {
  manual_seed(6);
  for (DType dt : kDtypes) {
    INFO(dtype_name(dt));
    // 150 tensors (three launches of 64), sizes from 1 to past one block's chunk.
    std::vector<AdamSlot> cpu, gpu;
    for (int i = 0; i < 150; ++i) {
      const int64_t n = 1 + (i * 977) % 5000;
      AdamSlot s{randn({n}, dt), randn({n}, dt), mul(randn({n}, dt), 0.1), mul(rand({n}, dt), 0.01),
                 1e-3 * (1 + i % 3), 0.01 * (i % 2), 1 - std::pow(0.9, 1 + i % 5), 1 - std::pow(0.999, 1 + i % 5)};
      cpu.push_back(s);
      gpu.push_back({s.param.to(Device::cuda()), s.grad.to(Device::cuda()), s.exp_avg.to(Device::cuda()),
                     s.exp_avg_sq.to(Device::cuda()), s.lr, s.weight_decay, s.bias_correction1, s.bias_correction2});
    }
    for (bool decoupled : {true, false}) {
      const AdamHyper h{0.9, 0.999, 1e-8, decoupled};
      adam_step_(h, cpu, scalar_tensor(0.7, kFloat32));
      adam_step_(h, gpu, scalar_tensor(0.7, kFloat32, Device::cuda()));
    }
    const Tol tol = default_tol(dt);
    for (size_t i = 0; i < cpu.size(); i += 7) {
      check_close(cpu[i].param, gpu[i].param, tol, str("param ", i));
      check_close(cpu[i].exp_avg, gpu[i].exp_avg, tol, str("exp_avg ", i));
      check_close(cpu[i].exp_avg_sq, gpu[i].exp_avg_sq, tol, str("exp_avg_sq ", i));
    }
  }
}
#endif

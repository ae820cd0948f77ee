// The Module API where it used to fail silently (issue 18, item 1): a name registered twice,
// and a module moved to another dtype or device after its optimizer was built.
#include "nn/containers.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

struct Twice : nn::Module {
  // kind: which two registrations share the name "x".
  explicit Twice(int kind) : Module("Twice") {
    switch (kind) {
      case 0:
        register_module("x", std::make_shared<nn::Linear>(2, 2));
        register_module("x", std::make_shared<nn::Linear>(2, 2));
        break;
      case 1:
        register_parameter("x", &a, ones({2}));
        register_parameter("x", &b, ones({2}));
        break;
      case 2:
        register_parameter("x", &a, ones({2}));
        register_buffer("x", &b, ones({2}));
        break;
      default:
        register_buffer("x", &a, ones({2}));
        register_module("x", std::make_shared<nn::Linear>(2, 2));
    }
  }
  Tensor a, b;
};

struct Net : nn::Module {
  Net() : Module("Net") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 4));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(4, 1));
    register_buffer("steps", &steps, zeros({1}, kInt64));
  }
  Tensor forward(const Tensor& x) { return fc2->forward(gelu(fc1->forward(x))); }
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor steps;
};

// One step of `opt` on a fixed batch; returns the loss before the step.
double train_step(Net& net, nn::Optimizer& opt, DType dtype, Device device) {
  const Tensor x = from_vector(std::vector<double>{0.5, -1.0, 2.0, 1.5, 0.25, -0.75}, {2, 3}).to(dtype).to(device);
  opt.zero_grad();
  Tensor loss = mean(mul(net.forward(x), net.forward(x)));
  loss.backward();
  opt.step();
  return loss.item();
}

}  // namespace

TEST_CASE("module api: a name registered twice in one module is an error") {
  const char* pairs[] = {"child module", "parameter", "parameter", "buffer"};
  for (int kind = 0; kind < 4; ++kind) {
    CAPTURE(kind);
    check_error([&] { Twice t(kind); }, {"Twice", "'x'", "already registered", pairs[kind]});
  }
}

TEST_CASE("module api: an optimizer built before Module::to keeps training the module") {
  for (const char* which : {"SGD", "Adam"}) {
    CAPTURE(which);
    Net net;
    std::unique_ptr<nn::Optimizer> opt;
    if (std::string(which) == "SGD")
      opt = std::make_unique<nn::SGD>(net.parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
    else
      opt = std::make_unique<nn::Adam>(net.parameters(), nn::AdamOptions{.lr = 0.01});
    const Tensor held = opt->group_params(0)[0];  // the optimizer's handle to fc1.weight
    train_step(net, *opt, kFloat32, Device::cpu());  // state exists in float32 now
    net.to(kFloat64);
    CHECK(net.fc1->weight.dtype() == kFloat64);
    CHECK(held.is_same(net.fc1->weight));  // the same tensor, moved in place
    CHECK(net.fc1->weight.requires_grad());
    CHECK(net.fc1->weight.is_leaf());
    CHECK(net.steps.dtype() == kInt64);  // integer buffers stay
    const Tensor before = net.fc1->weight.clone();
    double first = 0, last = 0;
    for (int i = 0; i < 20; ++i) {
      const double loss = train_step(net, *opt, kFloat64, Device::cpu());
      if (i == 0) first = loss;
      last = loss;
    }
    // The module's own weights changed (they stayed put before the fix) and the loss fell.
    CHECK(max_abs_diff(net.fc1->weight, before) > 1e-3);
    CHECK(last < first);
    // The optimizer's moments followed their parameter to float64.
    for (const auto& entry : opt->state_dict())  // no structured binding: clang-14 cannot capture one
      if (entry.second.numel() > 1) CHECK_MESSAGE(entry.second.dtype() == kFloat64, entry.first);
  }
}

TEST_CASE("module api: Tensor::set_data keeps identity and drops a gradient that no longer fits") {
  Tensor p = ones({2, 2}).requires_grad_(true);
  Tensor alias = p;  // another handle, as an optimizer holds
  sum(mul(p, p)).backward();
  REQUIRE(p.grad().defined());
  p.set_data(full({2, 2}, 3.0));  // same shape, dtype and device: the gradient stays
  CHECK(alias.at({1, 1}) == 3.0);
  CHECK(p.grad().defined());
  p.set_data(full({3}, 2.0, kFloat64));
  CHECK(alias.shape() == Shape{3});
  CHECK(alias.dtype() == kFloat64);
  CHECK(!p.grad().defined());
  CHECK(p.requires_grad());
  check_error([&] { p.set_data(zeros({2}, kInt64)); }, {"set_data", "floating", "int64"});
  Tensor y = mul(p, 2.0);
  check_error([&] { y.set_data(ones({3})); }, {"set_data", "leaf"});
}

#ifdef WAVSPA_CUDA
TEST_CASE("module api: an optimizer built before Module::to(cuda) keeps training the module" * gpu_only()) {
  Net net;
  nn::Adam opt(net.parameters(), nn::AdamOptions{.lr = 0.01});
  train_step(net, opt, kFloat32, Device::cpu());
  net.to(Device::cuda());
  CHECK(opt.group_params(0)[0].device() == Device::cuda());
  const Tensor before = net.fc1->weight.to(Device::cpu());
  for (int i = 0; i < 5; ++i) train_step(net, opt, kFloat32, Device::cuda());
  CHECK(max_abs_diff(net.fc1->weight.to(Device::cpu()), before) > 1e-4);
  for (const auto& [name, t] : opt.state_dict())
    if (t.numel() > 1) CHECK_MESSAGE(t.device() == Device::cuda(), name);
}
#endif  // WAVSPA_CUDA

TEST_CASE("module api: ModuleList and ModuleDict give hierarchical names") {
  struct Layer : nn::Module {
    Layer() : Module("Layer") {
      parts = register_module("parts", std::make_shared<nn::ModuleDict>());
      parts->insert("attn", std::make_shared<nn::Linear>(2, 2));
      parts->insert("mlp", std::make_shared<nn::Linear>(2, 3, false));
    }
    std::shared_ptr<nn::ModuleDict> parts;
  };
  struct Stack : nn::Module {
    Stack() : Module("Stack") {
      layers = register_module("layers", std::make_shared<nn::ModuleList>());
      for (int i = 0; i < 3; ++i) layers->push_back(std::make_shared<Layer>());
    }
    std::shared_ptr<nn::ModuleList> layers;
  };
  Stack s;
  std::vector<std::string> names;
  for (const auto& [n, t] : s.named_parameters()) names.push_back(n);
  REQUIRE(names.size() == 9);
  CHECK(names[0] == "layers.0.parts.attn.weight");
  CHECK(names[1] == "layers.0.parts.attn.bias");
  CHECK(names[2] == "layers.0.parts.mlp.weight");
  CHECK(names[8] == "layers.2.parts.mlp.weight");
  // Indexing, negative indices, typed access, iteration.
  CHECK(s.layers->size() == 3);
  CHECK(s.layers->at<Layer>(-1).get() == (*s.layers)[2].get());
  CHECK(s.layers->at<Layer>(1)->parts->keys() == std::vector<std::string>{"attn", "mlp"});
  CHECK(s.layers->at<Layer>(0)->parts->contains("mlp"));
  CHECK(!s.layers->at<Layer>(0)->parts->contains("ffn"));
  CHECK(s.layers->at<Layer>(0)->parts->at<nn::Linear>("mlp")->weight.shape() == Shape{3, 2});
  int count = 0;
  for (const auto& m : *s.layers) count += m->type_name() == "Layer";
  CHECK(count == 3);
  // Errors name what was asked and what is there.
  check_error([&] { (*s.layers)[3]; }, {"ModuleList[3]", "out of range", "3 modules"});
  check_error([&] { s.layers->at<nn::Linear>(0); }, {"ModuleList.at(0)", "Layer"});
  const auto& parts = s.layers->at<Layer>(0)->parts;
  check_error([&] { (*parts)["ffn"]; }, {"ModuleDict['ffn']", "no such key", "attn", "mlp"});
  check_error([&] { parts->at<Layer>("attn"); }, {"ModuleDict.at('attn')", "Linear"});
  check_error([&] { parts->insert("attn", std::make_shared<nn::Linear>(2, 2)); }, {"'attn'", "already registered"});
  check_error([&] { parts->insert("a.b", std::make_shared<nn::Linear>(2, 2)); }, {"'a.b'", "no '.'"});
  check_error([&] { s.layers->push_back(std::shared_ptr<nn::Linear>()); }, {"ModuleList.push_back", "null"});
  // state_dict round trip through the containers.
  Stack t;
  t.load_state_dict(s.state_dict());
  CHECK(max_abs_diff(t.layers->at<Layer>(2)->parts->at<nn::Linear>("attn")->weight,
                     s.layers->at<Layer>(2)->parts->at<nn::Linear>("attn")->weight) == 0);
  CHECK(s.repr().find("(layers): ModuleList(size=3") != std::string::npos);
}

TEST_CASE("module api: LayerNorm takes a dim as torch.nn.LayerNorm(dim) does") {
  nn::LayerNorm by_dim(4), by_shape(Shape{4});
  CHECK(by_dim.weight.shape() == Shape{4});
  const Tensor x = randn({3, 4});
  CHECK(max_abs_diff(by_dim.forward(x), by_shape.forward(x)) == 0);
  nn::LayerNorm plain(6, 1e-3, /*affine=*/false);
  CHECK(!plain.weight.defined());
  CHECK(plain.eps == 1e-3);
}

TEST_CASE("module api: state_dict comes back in registration order (nn::OrderedDict)") {
  // Registered out of alphabetical order on purpose (a sorted map would put alpha first). The
  // order is PyTorch's: a module's own parameters, then its own buffers, then each child's
  // entries, children in registration order.
  struct Order : nn::Module {
    Order() : Module("Order") {
      register_parameter("zeta", &z, ones({2}));
      register_module("net", std::make_shared<Net>());
      register_buffer("alpha", &a, zeros({1}));
    }
    Tensor z, a;
  };
  Order m;
  const std::vector<std::string> expected{"zeta", "alpha", "net.steps", "net.fc1.weight", "net.fc1.bias",
                                          "net.fc2.weight", "net.fc2.bias"};
  CHECK(m.state_dict().keys() == expected);
  std::vector<std::string> iterated;
  for (const auto& [name, t] : m.state_dict()) iterated.push_back(name);
  CHECK(iterated == expected);

  // OrderedDict itself: replace in place, erase moves the rest up, lookups after an erase.
  nn::StateDict d{{"b", ones({1})}, {"a", zeros({1})}};
  d["c"] = full({1}, 3.0);
  d["b"] = full({1}, 2.0);
  CHECK(d.keys() == std::vector<std::string>{"b", "a", "c"});
  CHECK(d.at("b").item() == 2.0);
  CHECK(!d.emplace("a", ones({1})).second);
  CHECK(d.erase("b") == 1);
  CHECK(d.erase("b") == 0);
  CHECK(d.keys() == std::vector<std::string>{"a", "c"});
  CHECK(d.find("c")->second.item() == 3.0);
  CHECK(d.find("b") == d.end());
  check_error([&] { d.at("zz"); }, {"'zz'"});
}

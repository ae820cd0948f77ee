// A training run saved mid-way and resumed continues bit for bit as if never stopped.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "nn/train_state.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

struct Net : nn::Module {
  Net() : Module("Net") {
    mlp = register_module("mlp", std::make_shared<nn::MLP>(6, 12, /*dropout=*/0.2, 3));
  }
  std::shared_ptr<nn::MLP> mlp;
};

// One step on a batch drawn from the default generator (so the RNG stream matters, as do
// the dropout masks); returns the loss.
double train_step(Net& net, nn::Optimizer& opt, const nn::Schedule& schedule) {
  Tensor x = randn({8, 6});
  Tensor y = randint(0, 3, {8});
  opt.set_lr(schedule(opt.step_count()));
  Tensor loss = cross_entropy(net.mlp->forward(x), y);
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

}  // namespace

TEST_CASE("train_state: an interrupted and resumed run equals an uninterrupted one") {
  const nn::Schedule schedule = nn::constant(0.05) * nn::linear_warmup(2) * nn::rsqrt_decay(2);
  // uninterrupted: 6 steps
  manual_seed(21);
  Net a;
  nn::AdamW opt_a(nn::decay_groups(a, 0.01), {.lr = 0.05});
  std::vector<double> full;
  for (int i = 0; i < 6; ++i) full.push_back(train_step(a, opt_a, schedule));

  // interrupted after 3 steps, saved, then resumed in fresh objects
  manual_seed(21);
  Net b;
  nn::AdamW opt_b(nn::decay_groups(b, 0.01), {.lr = 0.05});
  for (int i = 0; i < 3; ++i) CHECK(train_step(b, opt_b, schedule) == full[i]);
  TempDir tmp("train_state_test");
  const std::string path = tmp / "train_state_test.safetensors";
  nn::save_training_state(path, b, opt_b, R"({"task": "test", "lr": 0.05})");

  manual_seed(999);  // a different stream and different initial weights
  Net c;
  nn::AdamW opt_c(nn::decay_groups(c, 0.01), {.lr = 0.05});
  nn::TrainingState st = nn::load_training_state(path, c, opt_c);
  CHECK(st.step == 3);
  CHECK(st.config_json == R"({"task": "test", "lr": 0.05})");
  for (int i = 3; i < 6; ++i) CHECK(train_step(c, opt_c, schedule) == full[i]);  // bit for bit
  for (auto& [name, t] : a.state_dict()) CHECK(max_abs_diff(t, c.state_dict()[name]) == 0);

  // The weights are plain names (PyTorch reads them); the optimizer's state is prefixed.
  nn::Checkpoint ck = nn::load_safetensors(path);
  CHECK(ck.tensors.count("mlp.fc1.weight") == 1);
  CHECK(ck.tensors.count("optimizer.step") == 1);
  CHECK(ck.metadata.at("wavspa.format") == "training-state/1");
}

TEST_CASE("train_state: the checkpoint of another model is refused and changes nothing") {
  Net net;
  nn::SGD opt(net.parameters(), {.lr = 0.1});
  TempDir tmp("train_state_other");
  const std::string path = tmp / "train_state_other.safetensors";
  nn::save_training_state(path, net, opt);
  struct Other : nn::Module {
    Other() : Module("Other") { lin = register_module("lin", std::make_shared<nn::Linear>(2, 2)); }
    std::shared_ptr<nn::Linear> lin;
  } other;
  nn::SGD opt_other(other.parameters(), {.lr = 0.1});
  Tensor before = other.lin->weight.clone();
  check_error([&] { nn::load_training_state(path, other, opt_other); },
              {path, "Missing: [lin.weight, lin.bias]", "Unexpected: [mlp.fc1.bias"});
  CHECK(max_abs_diff(other.lin->weight, before) == 0);
  // a plain weights file is not a training state
  nn::save_safetensors(path, net.state_dict());
  check_error([&] { nn::load_training_state(path, net, opt); }, {path, "wavspa.format"});
  check_error([&] { nn::save_training_state(path, net, opt, "{not json"); }, {"not valid JSON"});
}

TEST_CASE("train_state: a file whose metadata step disagrees with its optimizer step is refused") {
  Net net;
  nn::SGD opt(net.parameters(), {.lr = 0.1});
  TempDir tmp("train_state_steps");
  const std::string path = tmp / "steps.safetensors";
  nn::save_training_state(path, net, opt);
  // Rewrite it with the metadata saying step 3 while the optimizer's state says 0.
  nn::Checkpoint ck = nn::load_safetensors(path);
  REQUIRE(ck.metadata.at("wavspa.step") == "0");
  ck.metadata["wavspa.step"] = "3";
  nn::save_safetensors(path, ck.tensors, ck.metadata);
  Tensor before = net.parameters()[0].clone();
  check_error([&] { nn::load_training_state(path, net, opt); },
              {path, "'wavspa.step' says step 3", "optimizer state says step 0"});
  CHECK(max_abs_diff(net.parameters()[0], before) == 0);
  CHECK(opt.step_count() == 0);
}

TEST_CASE("train_state: build/inspect_checkpoint lists tensors and metadata, fails clearly on a bad file") {
  Net net;
  nn::SGD opt(net.parameters(), {.lr = 0.1});
  TempDir tmp("inspect");
  const std::string path = tmp / "inspect.safetensors";
  nn::save_training_state(path, net, opt, R"({"model": "mlp"})");
  auto run = [&](const std::string& file, int& status) {
    std::string out;
    status = run_command(build_path("inspect_checkpoint") + " " + file, out);
    return out;
  };
  int status = -1;
  std::string out = run(path, status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("mlp.fc1.weight") != std::string::npos);
  CHECK(out.find("float32  (12, 6)") != std::string::npos);
  CHECK(out.find("wavspa.config = {\"model\": \"mlp\"}") != std::string::npos);
  std::filesystem::resize_file(path, 100);  // truncate into the data
  std::string bad = run(path, status);
  CHECK(status != 0);
  CHECK(bad.find("error: ") != std::string::npos);
  CHECK(bad.find(path) != std::string::npos);
}

// train::Trainer with a model and data in memory: it learns a linear map, calls its callbacks
// on the documented steps, stops on request (and a second fit continues batch for batch),
// sets the schedule's lr before each step, clips gradients, stops on a loss that is not
// finite and on a signal (stop_on_signal), sums the loss function's counts on the device,
// replays CUDA graphs with the eager loop's bits, and refuses bad options.
#include <cmath>
#include <csignal>
#include <limits>
#include <memory>
#include <tuple>

#include "data/dataloader.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "ops/nn.h"
#include "tests/helpers.h"
#include "train/loop.h"

using namespace wavspa;
using wavspa::test::check_error;

namespace {

using Rows = data::TensorExample;
using RowLoader = data::DataLoader<Rows, Rows>;

// y = 2 x0 - x1 + 0.5 for n random rows x (n, 2); y (n, 1).
std::shared_ptr<const data::TensorDataset> linear_rows(int64_t n) {
  Generator gen(3);
  Tensor x = randn({n, 2}, kFloat32, Device::cpu(), &gen);
  Tensor y = add(sub(mul(x.select(1, 0), 2.0), x.select(1, 1)), 0.5).reshape({n, 1});
  return std::make_shared<const data::TensorDataset>(x, y, "linear");
}

Tensor mse(nn::Linear& m, const Rows& b) { return mean(pow(sub(m.forward(b.input), b.target), 2.0)); }

double full_mse(nn::Linear& m, const data::TensorDataset& rows) {
  NoGradGuard no_grad;
  return mean(pow(sub(m.forward(rows.inputs()), rows.targets()), 2.0)).item();
}

}  // namespace

TEST_CASE("trainer: an in-memory linear regression learns its map") {
  manual_seed(0);
  auto rows = linear_rows(256);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 32, .shuffle = true, .seed = 1, .workers = 2});
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.1});
  const double before = full_mse(model, *rows);
  std::vector<double> logged;
  train::Trainer<Rows, nn::Linear> trainer(model, opt, mse,
                                           {.epochs = 20,
                                            .schedule = nn::constant(0.1) * nn::cosine(160, 0),
                                            .log_every = 40,
                                            .on_log = [&](const train::LogInfo& l) { logged.push_back(l.loss); }});
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.steps == 160);
  CHECK_FALSE(r.stopped_early);
  CHECK_FALSE(r.diverged);
  CHECK(before > 0.5);  // an untrained layer is far off
  CHECK(r.last_loss < 1e-3);
  CHECK(full_mse(model, *rows) < 1e-3);
  REQUIRE(logged.size() == 4u);
  CHECK(logged[3] < logged[0]);
  // the learned map
  const auto w = model.weight.to_vector<float>();
  CHECK(w[0] == doctest::Approx(2.0).epsilon(0.02));
  CHECK(w[1] == doctest::Approx(-1.0).epsilon(0.02));
  CHECK(model.bias.item() == doctest::Approx(0.5).epsilon(0.02));
  // a second fit with the same target has nothing left to do
  CHECK(trainer.fit(loader).steps == 160);
  CHECK(opt.step_count() == 160);
}

TEST_CASE("trainer: on_step, on_log and on_eval come on the documented steps") {
  manual_seed(0);
  auto rows = linear_rows(64);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 8});  // 8 batches an epoch
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.05});
  std::vector<int64_t> step_calls, step_epochs, log_steps, log_counts, eval_steps;
  bool trained_in_eval = true;
  train::Trainer<Rows, nn::Linear> trainer(
      model, opt, mse,
      {.steps = 10,
       .log_every = 4,
       .eval_every = 3,
       .on_step = [&](const train::StepInfo& s) { step_calls.push_back(s.step), step_epochs.push_back(s.epoch); },
       .on_log = [&](const train::LogInfo& l) { log_steps.push_back(l.step), log_counts.push_back(l.steps); },
       .on_eval = [&](int64_t step) {
         eval_steps.push_back(step);
         trained_in_eval = trained_in_eval && model.is_training();
         model.eval();  // fit puts it back in training mode
       }});
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.steps == 10);
  CHECK(step_calls == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(step_epochs == std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1});
  CHECK(log_steps == std::vector<int64_t>{4, 8, 10});   // every 4 and the last
  CHECK(log_counts == std::vector<int64_t>{4, 4, 2});  // the steps each mean is over
  CHECK(eval_steps == std::vector<int64_t>{3, 6, 9, 10});
  CHECK(trained_in_eval);
  CHECK(model.is_training());
}

TEST_CASE("trainer: request_stop ends fit after the step, and a second fit continues batch for batch") {
  auto rows = linear_rows(40);
  // The first target value of every batch a run trains on.
  auto run = [&](bool interrupt) {
    manual_seed(0);
    RowLoader loader(rows, data::stack_examples, {.batch_size = 6, .shuffle = true, .seed = 5, .workers = 1});
    nn::Linear model(2, 1);
    nn::SGD opt(model.parameters(), {.lr = 0.05});
    std::vector<float> seen;
    auto loss = [&](nn::Linear& m, const Rows& b) {
      seen.push_back(b.target.to_vector<float>()[0]);
      return mse(m, b);
    };
    train::Trainer<Rows, nn::Linear>* self = nullptr;
    train::Trainer<Rows, nn::Linear> trainer(model, opt, loss,
                                             {.steps = 17, .on_step = [&](const train::StepInfo& s) {
                                                if (interrupt && s.step == 5) self->request_stop();
                                              }});
    self = &trainer;
    train::FitResult r = trainer.fit(loader);
    if (interrupt) {
      CHECK(r.stopped_early);
      CHECK(r.steps == 5);
      CHECK(seen.size() == 5u);
      r = trainer.fit(loader);  // continues at step 5: epoch 0, batch 5
    }
    CHECK_FALSE(r.stopped_early);
    CHECK(r.steps == 17);
    return std::make_pair(seen, model.weight.to_vector<float>());
  };
  const auto whole = run(false), resumed = run(true);
  CHECK(whole.first.size() == 17u);
  CHECK(resumed.first == whole.first);
  CHECK(resumed.second == whole.second);

  // a request before fit stops it before its first step
  manual_seed(0);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 6});
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.05});
  train::Trainer<Rows, nn::Linear> trainer(model, opt, mse, {.steps = 3});
  trainer.request_stop();
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.stopped_early);
  CHECK(r.steps == 0);
  CHECK(std::isnan(r.last_loss));
  CHECK(trainer.fit(loader).steps == 3);  // the request was used up
}

TEST_CASE("trainer: the schedule's lr is set before every step") {
  manual_seed(0);
  auto rows = linear_rows(32);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 123.0});  // never used: the schedule gives the lr
  std::vector<double> lrs;
  train::Trainer<Rows, nn::Linear> trainer(
      model, opt, mse,
      {.steps = 7,
       .schedule = nn::constant(0.08) * nn::decay_every(2, 0.5),
       .on_step = [&](const train::StepInfo& s) { lrs.push_back(s.lr); }});
  trainer.fit(loader);
  // step k (from 0) has lr 0.08 * 0.5^floor(k / 2)
  REQUIRE(lrs.size() == 7u);
  for (int64_t k = 0; k < 7; ++k) CHECK(lrs[k] == doctest::Approx(0.08 * std::pow(0.5, (double)(k / 2))));
  CHECK(opt.lr() == doctest::Approx(0.01));

  // without a schedule the optimizer's lr stays
  nn::SGD plain(model.parameters(), {.lr = 0.03});
  std::vector<double> plain_lrs;
  train::Trainer<Rows, nn::Linear> fixed(model, plain, mse,
                                         {.steps = 3, .on_step = [&](const train::StepInfo& s) { plain_lrs.push_back(s.lr); }});
  fixed.fit(loader);
  CHECK(plain_lrs == std::vector<double>{0.03, 0.03, 0.03});
}

TEST_CASE("trainer: a loss that is not finite stops fit and leaves the model as the last good step did") {
  manual_seed(0);
  auto rows = linear_rows(32);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  nn::Linear model(2, 1);
  nn::Adam opt(model.parameters(), {.lr = 0.01});
  int64_t calls = 0;
  auto loss = [&](nn::Linear& m, const Rows& b) {
    Tensor l = mse(m, b);
    return ++calls == 3 ? add(l, std::numeric_limits<double>::quiet_NaN()) : l;
  };
  std::vector<float> after_two;
  train::Trainer<Rows, nn::Linear> trainer(model, opt, loss,
                                           {.steps = 8, .log_every = 1, .on_step = [&](const train::StepInfo& s) {
                                              if (s.step == 2) after_two = model.weight.to_vector<float>();
                                            }});
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.diverged);
  CHECK(r.steps == 3);
  CHECK(std::isnan(r.last_loss));
  CHECK(model.weight.to_vector<float>() == after_two);
}

TEST_CASE("trainer: bad options and losses are clear errors") {
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.1});
  using T = train::Trainer<Rows, nn::Linear>;
  check_error([&] { T(model, opt, mse, {.steps = -1}); }, {"Trainer", "steps", ">= 0", "-1"});
  check_error([&] { T(model, opt, mse, {.epochs = 0}); }, {"epochs", ">= 1", "got 0"});
  check_error([&] { T(model, opt, mse, {.log_every = -2}); }, {"log_every", "-2"});
  check_error([&] { T(model, opt, mse, {.clip_grad_norm = -1}); }, {"clip_grad_norm", ">= 0"});
  check_error([&] { T(model, opt, T::LossFn()); }, {"Trainer", "loss function"});
  auto rows = linear_rows(8);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  T per_row(model, opt, [](nn::Linear& m, const Rows& b) { return m.forward(b.input); });
  check_error([&] { per_row.fit(loader); }, {"Trainer", "one number", "[4, 1]"});
  T detached(model, opt, [](nn::Linear& m, const Rows& b) { return mse(m, b).detach(); });
  check_error([&] { detached.fit(loader); }, {"Trainer", "does not require grad"});
}

TEST_CASE("trainer: step() on a batch of your own, and clip_grad_norm bounds the update") {
  manual_seed(0);
  auto rows = linear_rows(16);
  const Rows batch = data::stack_examples({rows->get(0), rows->get(1), rows->get(2), rows->get(3)});
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 1.0});
  train::Trainer<Rows, nn::Linear> trainer(model, opt, mse, {.clip_grad_norm = 0.01});
  const std::vector<float> w0 = model.weight.to_vector<float>();
  const double b0 = model.bias.item();
  const Tensor loss = trainer.step(batch);
  CHECK(loss.dim() == 0);
  CHECK(loss.dtype() == kFloat64);
  CHECK_FALSE(loss.requires_grad());
  CHECK(loss.item() > 0.01);  // an untrained layer, whose gradient's norm is well above 0.01
  CHECK(trainer.steps() == 1);
  CHECK(opt.step_count() == 1);
  // SGD with lr 1 moves the parameters by exactly the clipped gradient: norm 0.01
  const std::vector<float> w1 = model.weight.to_vector<float>();
  const double b1 = model.bias.item();
  const double moved = std::sqrt(std::pow(w1[0] - w0[0], 2) + std::pow(w1[1] - w0[1], 2) + std::pow(b1 - b0, 2));
  CHECK(moved == doctest::Approx(0.01).epsilon(1e-3));
}

TEST_CASE("trainer: with stop_on_signal, a SIGINT ends fit after the step") {
  manual_seed(0);
  auto rows = linear_rows(32);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.05});
  train::install_signal_handlers();
  train::Trainer<Rows, nn::Linear> trainer(model, opt, mse, {.steps = 20, .stop_on_signal = true, .on_step = [](const train::StepInfo& s) {
                                                               if (s.step == 4) std::raise(SIGINT);
                                                             }});
  const train::FitResult r = trainer.fit(loader);
  CHECK(train::stop_signal_received());
  // back to the defaults, so that a Ctrl-C ends the test program as usual
  train::install_signal_handlers();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  CHECK(r.stopped_early);
  CHECK(r.steps == 4);
  // with the flag cleared, a second fit runs to its target
  CHECK(trainer.fit(loader).steps == 20);
}

TEST_CASE("trainer: the loss function's sums add up over each log window; read_window and a stop flush it") {
  manual_seed(0);
  auto rows = linear_rows(40);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 8});  // 5 batches an epoch
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.05});
  // Two sums: the rows of the batch, and the rows whose prediction is above the target.
  auto loss = [](nn::Linear& m, const Rows& b) {
    const Tensor pred = m.forward(b.input);
    const Tensor over = sum(gt(pred.detach(), b.target));
    return train::StepOutput(mean(pow(sub(pred, b.target), 2.0)),
                             {{"rows", full({}, (double)b.input.shape()[0], kFloat64)}, {"over", over}});
  };
  std::vector<train::LogInfo> logs;
  std::vector<double> losses;  // every step's, read at once
  train::Trainer<Rows, nn::Linear>* self = nullptr;
  train::LogInfo at_eval;
  train::Trainer<Rows, nn::Linear> trainer(
      model, opt, loss,
      {.steps = 12,
       .log_every = 4,
       .eval_every = 6,
       .on_step = [&](const train::StepInfo& s) {
         losses.push_back(s.loss.item());
         if (s.step == 7) self->request_stop();
       },
       .on_log = [&](const train::LogInfo& l) { logs.push_back(l); },
       .on_eval = [&](int64_t) { at_eval = self->read_window(); }});
  self = &trainer;
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.stopped_early);
  CHECK(r.steps == 7);
  // on_log at step 4; read_window at the evaluation of step 6 took steps 5 and 6; the stop
  // after step 7 logged the one step left.
  REQUIRE(logs.size() == 2u);
  CHECK(logs[0].step == 4);
  CHECK(logs[0].steps == 4);
  CHECK(logs[0].sums.at("rows") == 32);
  CHECK(logs[0].loss_sum == doctest::Approx(losses[0] + losses[1] + losses[2] + losses[3]));
  CHECK(logs[0].loss == doctest::Approx(logs[0].loss_sum / 4));
  CHECK(logs[0].sums.at("over") >= 0);
  CHECK(logs[0].sums.at("over") <= 32);
  CHECK(at_eval.step == 6);
  CHECK(at_eval.steps == 2);
  CHECK(at_eval.sums.at("rows") == 16);
  CHECK(at_eval.loss_sum == doctest::Approx(losses[4] + losses[5]));
  CHECK(logs[1].step == 7);
  CHECK(logs[1].steps == 1);
  CHECK(logs[1].epoch == 1);  // step 7 is batch 1 of epoch 1
  CHECK(logs[1].sums.at("rows") == 8);

  // a loss function whose sums change from step to step is an error
  int64_t calls = 0;
  nn::SGD fresh(model.parameters(), {.lr = 0.05});  // at step 0
  train::Trainer<Rows, nn::Linear> fickle(model, fresh, [&](nn::Linear& m, const Rows& b) {
    const Tensor l = mse(m, b);
    return ++calls == 1 ? train::StepOutput(l, {{"a", full({}, 1.0, kFloat64)}})
                        : train::StepOutput(l, {{"b", full({}, 1.0, kFloat64)}});
  }, {.steps = 2});
  check_error([&] { fickle.fit(loader); }, {"Trainer", "sum 0", "'b'", "'a'", "same names"});
}

TEST_CASE("trainer: a diverged fit names the first step whose loss was not finite") {
  manual_seed(0);
  auto rows = linear_rows(32);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  nn::Linear model(2, 1);
  nn::Adam opt(model.parameters(), {.lr = 0.01});
  int64_t calls = 0;
  auto loss = [&](nn::Linear& m, const Rows& b) {
    Tensor l = mse(m, b);
    return ++calls == 5 ? add(l, std::numeric_limits<double>::infinity()) : l;
  };
  std::vector<int64_t> logged;
  train::Trainer<Rows, nn::Linear> trainer(model, opt, loss,
                                           {.steps = 20, .log_every = 3,
                                            .on_log = [&](const train::LogInfo& l) { logged.push_back(l.step); }});
  const train::FitResult r = trainer.fit(loader);
  CHECK(r.diverged);
  CHECK(r.steps == 6);  // found at the read of step 6
  CHECK(r.diverged_step == 5);
  CHECK(std::isinf(r.diverged_loss));
  CHECK(logged == std::vector<int64_t>{3});  // the window that held it was not logged
}

TEST_CASE("trainer: cuda_graphs needs a CUDA device and a batch type that lists its tensors") {
  nn::Linear model(2, 1);
  nn::SGD opt(model.parameters(), {.lr = 0.1});
  struct Opaque {  // no batch_tensors
    Tensor x;
  };
  using T = train::Trainer<Opaque, nn::Linear>;
  check_error([&] { T(model, opt, [](nn::Linear& m, const Opaque& b) { return sum(m.forward(b.x)); }, {.cuda_graphs = true}); },
              {"Trainer", "cuda_graphs", "batch_tensors"});
  // a model on the CPU: the first (eager) step runs, the second would record and refuses
  auto rows = linear_rows(16);
  RowLoader loader(rows, data::stack_examples, {.batch_size = 4});
  train::Trainer<Rows, nn::Linear> on_cpu(model, opt, mse, {.steps = 3, .cuda_graphs = true});
  check_error([&] { on_cpu.fit(loader); }, {"Trainer", "cuda_graphs", "CUDA device", "cpu"});
  CHECK(on_cpu.steps() == 1);
}

#ifdef WAVSPA_CUDA
TEST_CASE("trainer: with cuda_graphs, fit gives the bits of the eager loop (partial batches, dropout)" *
          wavspa::test::gpu_only()) {
  auto rows = linear_rows(44);  // batches of 8: every epoch ends with a batch of 4, run eagerly
  auto run = [&](bool graphs) {
    manual_seed(7);
    RowLoader loader(rows, data::stack_examples, {.batch_size = 8, .shuffle = true, .seed = 2});
    nn::Linear model(2, 1);
    model.to(Device::cuda());
    nn::Adam opt(model.parameters(), {.lr = 0.02});
    std::vector<double> logged, rows_seen;
    auto loss = [](nn::Linear& m, const Rows& b) {
      const Tensor x = dropout(b.input.to(Device::cuda()), 0.2, true);
      const Tensor d = sub(m.forward(x), b.target.to(Device::cuda()));
      return train::StepOutput(mean(pow(d, 2.0)), {{"rows", full({}, (double)b.input.shape()[0], kFloat64, Device::cuda())}});
    };
    train::Trainer<Rows, nn::Linear> trainer(model, opt, loss,
                                             {.steps = 23, .schedule = nn::constant(0.02) * nn::cosine(23, 2),
                                              .log_every = 5, .cuda_graphs = graphs,
                                              .on_log = [&](const train::LogInfo& l) {
                                                logged.push_back(l.loss_sum), rows_seen.push_back(l.sums.at("rows"));
                                              }});
    const train::FitResult r = trainer.fit(loader);
    CHECK(r.steps == 23);
    std::vector<float> w = model.weight.to(Device::cpu()).to_vector<float>();
    w.push_back((float)model.bias.to(Device::cpu()).item());
    return std::make_tuple(logged, rows_seen, w);
  };
  const auto eager = run(false), graphs = run(true);
  CHECK(std::get<1>(eager) == std::vector<double>{40, 36, 36, 36, 24});
  CHECK(std::get<0>(graphs) == std::get<0>(eager));  // bit for bit
  CHECK(std::get<1>(graphs) == std::get<1>(eager));
  CHECK(std::get<2>(graphs) == std::get<2>(eager));
}
#endif  // WAVSPA_CUDA

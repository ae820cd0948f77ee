// End to end: a small MLP trained with SGD written here, and the README example program.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

TEST_CASE("an MLP learns two spirals with plain SGD to over 95% training accuracy") {
  manual_seed(11);
  // Two interleaved spirals with a little noise, 150 points per class.
  const int64_t n = 150;
  Tensor t = linspace(0.1, 1.0, n, kFloat32);
  Tensor theta = mul(t, 3.0 * M_PI);
  std::vector<Tensor> xs, ys;
  for (int c = 0; c < 2; ++c) {
    Tensor angle = add(theta, c * M_PI);
    Tensor pts = stack({mul(t, cos(angle)), mul(t, sin(angle))}, 1);
    xs.push_back(add(pts, mul(randn({n, 2}), 0.01)));
    ys.push_back(full({n}, c, kInt64));
  }
  Tensor x = concat(xs, 0), y = concat(ys, 0);

  auto param = [](const Shape& s, double scale) {
    return mul(randn(s), scale).detach().requires_grad_();
  };
  Tensor w1 = param({48, 2}, 1.0), b1 = zeros({48}).requires_grad_();
  Tensor w2 = param({48, 48}, std::sqrt(1.0 / 48)), b2 = zeros({48}).requires_grad_();
  Tensor w3 = param({2, 48}, std::sqrt(1.0 / 48)), b3 = zeros({2}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2, w3, b3};
  auto model = [&](const Tensor& in) {
    return linear(tanh(linear(tanh(linear(in, w1, b1)), w2, b2)), w3, b3);
  };

  // SGD with momentum, full batch.
  std::vector<Tensor> velocity;
  for (auto& p : params) velocity.push_back(zeros_like(p));
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 1500; ++step) {
    Tensor loss = cross_entropy(model(x), y);
    for (auto& p : params) p.zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      velocity[i].mul_(0.9).add_(params[i].grad());
      params[i].add_(velocity[i], -0.05);
    }
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
  }
  NoGradGuard no_grad;
  double accuracy = mean(eq(argmax(model(x), 1), y).to(kFloat64)).item();
  CHECK(last_loss < first_loss / 5);
  CHECK(accuracy > 0.95);
}

TEST_CASE("the README example builds, runs and learns") {
  std::string output;
  const int status = run_command(build_path("examples/train_mlp") + " 1000", output);
  INFO(output);
  REQUIRE(status == 0);
  double first = -1, last = -1, accuracy = -1;
  size_t pos = 0;
  while ((pos = output.find("loss ", pos)) != std::string::npos) {
    double v = std::atof(output.c_str() + pos + 5);
    if (first < 0) first = v;
    last = v;
    pos += 5;
  }
  size_t acc = output.find("training accuracy ");
  REQUIRE(acc != std::string::npos);
  accuracy = std::atof(output.c_str() + acc + 18);
  CHECK(first > 0);
  CHECK(last < first / 2);
  CHECK(accuracy > 90);
}

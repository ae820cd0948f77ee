// The README example: a two-layer MLP learns the two-spirals task with plain SGD.
//
//   make build/examples/train_mlp && ./build/examples/train_mlp [steps]
//
// It prints the loss every 200 steps and the final training accuracy.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "wavspa.h"

using namespace wavspa;

// Two interleaved spirals: n points per class, inputs (2 n, 2), labels (2 n) in {0, 1}.
static void two_spirals(int64_t n, Tensor& x, Tensor& y) {
  std::vector<float> pts;
  std::vector<int64_t> labels;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < n; ++i) {
      double r = 0.1 + 0.9 * (double)i / n;
      double theta = 3.0 * M_PI * r + c * M_PI;
      pts.push_back((float)(r * std::cos(theta)));
      pts.push_back((float)(r * std::sin(theta)));
      labels.push_back(c);
    }
  x = from_vector(pts, {2 * n, 2});
  y = from_vector(labels);
}

// A weight matrix (out, in) with He initialisation, as a leaf that requires grad.
static Tensor init_weight(int64_t out, int64_t in) {
  return mul(randn({out, in}), std::sqrt(2.0 / in)).detach().requires_grad_();
}

int main(int argc, char** argv) {
  try {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 2000;
    manual_seed(0);
    Tensor x, y;
    two_spirals(200, x, y);

    // The model: 2 -> 64 -> 64 -> 2 with tanh.
    Tensor w1 = init_weight(64, 2), b1 = zeros({64}).requires_grad_();
    Tensor w2 = init_weight(64, 64), b2 = zeros({64}).requires_grad_();
    Tensor w3 = init_weight(2, 64), b3 = zeros({2}).requires_grad_();
    std::vector<Tensor> params{w1, b1, w2, b2, w3, b3};
    auto forward = [&](const Tensor& in) {
      Tensor h = tanh(linear(in, w1, b1));
      h = tanh(linear(h, w2, b2));
      return linear(h, w3, b3);
    };

    const double lr = 0.3;
    for (int step = 0; step <= steps; ++step) {
      Tensor loss = cross_entropy(forward(x), y);
      for (Tensor& p : params) p.zero_grad();
      loss.backward();
      {
        NoGradGuard no_grad;  // the update is not part of the graph
        for (Tensor& p : params) p.add_(p.grad(), -lr);
      }
      if (step % 200 == 0) std::printf("step %5d  loss %.4f\n", step, loss.item());
    }
    NoGradGuard no_grad;
    Tensor predicted = argmax(forward(x), 1);
    double accuracy = mean(eq(predicted, y).to(kFloat64)).item();
    std::printf("training accuracy %.1f%%\n", 100 * accuracy);
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

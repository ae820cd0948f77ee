// Float64 finite-difference gradient checks for every differentiable op, on random shapes,
// with broadcasting and with non-contiguous (transposed, strided-slice, expanded) inputs.
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;
using In = std::vector<Tensor>;

TEST_CASE("gradcheck: binary arithmetic with broadcasting and non-contiguous inputs") {
  Sizes size;
  for (int trial = 0; trial < 3; ++trial) {
    int64_t a = size(1, 4), b = size(2, 4), c = size(1, 3);
    CAPTURE(a); CAPTURE(b); CAPTURE(c);
    // (a, b, c) op (b, 1): broadcasting in two directions
    check_grad([](const In& x) { return add(x[0], x[1]); }, rn({a, b, c}), rn({b, 1}));
    check_grad([](const In& x) { return sub(x[0], x[1]); }, rn({a, b, c}), rn({b, 1}));
    check_grad([](const In& x) { return mul(x[0], x[1]); }, rn({a, b, c}), rn({c}));
    check_grad([](const In& x) { return div(x[0], x[1]); }, rn({a, b, c}), rpos({b, 1}));
    // transposed and strided-slice operands
    check_grad([](const In& x) { return mul(x[0].transpose(0, 2), x[1]); },
                    rn({c, b, a}), rn({a, b, c}));
    check_grad([b](const In& x) { return add(x[0].slice(1, 0, 2 * b, 2), x[1].t()); },
                    rn({c, 2 * b}), rn({b, c}));
    // an expanded operand
    check_grad([](const In& x) { return div(x[0], x[1].expand({x[0].size(0), -1})); },
                    rn({a, c}), rpos({1, c}));
  }
  // scalar forms
  check_grad([](const In& x) { return (2.0 - x[0]) * 3.0 / 4.0 + 1.0; }, rn({3, 2}));
  check_grad([](const In& x) { return 2.0 / x[0]; }, rpos({4}));
  check_grad([](const In& x) { return -x[0]; }, rn({2, 3}));
}

TEST_CASE("gradcheck: pow, maximum, minimum, clamp, where, masked_fill") {
  check_grad([](const In& x) { return pow(x[0], x[1]); }, rpos({3, 4}), rn({4}));
  check_grad([](const In& x) { return pow(x[0].t(), 3.0); }, rn({3, 2}));
  check_grad([](const In& x) { return pow(x[0], -1.5); }, rpos({5}));
  check_grad([](const In& x) { return maximum(x[0], x[1]); }, rn({3, 4}), rn({4}));
  check_grad([](const In& x) { return minimum(x[0].t(), x[1]); }, rn({4, 3}), rn({3, 1}));
  check_grad([](const In& x) { return clamp(x[0], -0.5, 0.7); }, rn({4, 5}));
  Tensor cond = gt(rn({3, 4}), scalar_tensor(0, kFloat64));
  check_grad([cond](const In& x) { return where(cond, x[0], x[1]); }, rn({3, 4}), rn({4}));
  check_grad([cond](const In& x) { return masked_fill(x[0], cond, -7.0); }, rn({3, 4}));
}

TEST_CASE("gradcheck: unary math and activations") {
  Sizes size;
  int64_t a = size(2, 4), b = size(2, 5);
  using F = Tensor (*)(const Tensor&);
  struct Case { const char* name; F f; bool positive; };
  const Case cases[] = {
      {"neg", neg, false}, {"abs", abs, false}, {"exp", exp, false}, {"log", log, true},
      {"sqrt", sqrt, true}, {"rsqrt", rsqrt, true}, {"sin", sin, false}, {"cos", cos, false},
      {"tanh", tanh, false}, {"sigmoid", sigmoid, false}, {"relu", relu, false},
      {"silu", silu, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Tensor in = c.positive ? rpos({b, a}) : rn({b, a});
    F f = c.f;
    check_grad([f](const In& x) { return f(x[0]); }, in);
    // non-contiguous: through a transpose
    check_grad([f](const In& x) { return f(x[0].t()); }, in);
  }
  check_grad([](const In& x) { return gelu(x[0]); }, rn({3, 4}));
  check_grad([](const In& x) { return gelu(x[0].t(), GeluApprox::Tanh); }, rn({3, 4}));
  check_grad([](const In& x) { return elu(x[0], 0.7); }, rn({3, 4}));
  check_grad([](const In& x) { return softplus(x[0], 2.0, 3.0); }, mul(rn({3, 4}), 2.0).detach());
}

TEST_CASE("gradcheck: reductions over any dims, keepdim") {
  Sizes size;
  int64_t a = size(2, 4), b = size(2, 4), c = size(2, 3);
  check_grad([](const In& x) { return sum(x[0]); }, rn({a, b, c}));
  check_grad([](const In& x) { return sum(x[0], {0, 2}); }, rn({a, b, c}));
  check_grad([](const In& x) { return sum(x[0].transpose(0, 1), {-1}, true); }, rn({a, b, c}));
  check_grad([](const In& x) { return mean(x[0], {1}); }, rn({a, b, c}));
  check_grad([](const In& x) { return mean(x[0].slice(0, 0, 4, 2), {0, 1}, true); },
                  rn({4, b, c}));
  check_grad([](const In& x) { return max(x[0], {1}); }, rn({a, b, c}));
  check_grad([](const In& x) { return min(x[0].t(), {0}, true); }, rn({a, b}));
  check_grad([](const In& x) { return max(x[0]); }, rn({a, b}));
  check_grad([](const In& x) { return var(x[0], {0, 2}); }, rn({a, b, c}));
  check_grad([](const In& x) { return var(x[0], {1}, 0, true); }, rn({a, b}));
  check_grad([](const In& x) { return logsumexp(x[0], {-1}); }, rn({a, b, c}));
  check_grad([](const In& x) { return logsumexp(x[0].t(), {0, 1}, true); }, rn({a, b}));
  // sum over the leading dim of a column-major view: the column-reduction path
  check_grad([](const In& x) { return sum(x[0], {0}); }, rn({5, 3}));
}

TEST_CASE("gradcheck: matmul in every layout, linear") {
  Sizes size;
  int64_t m = size(1, 4), k = size(1, 4), n = size(1, 4), b = size(2, 3);
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({m, k}), rn({k, n}));
  check_grad([](const In& x) { return matmul(x[0].t(), x[1].t()); }, rn({k, m}), rn({n, k}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({b, m, k}), rn({k, n}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({m, k}), rn({b, k, n}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({b, 1, m, k}), rn({2, k, n}));
  check_grad([](const In& x) { return matmul(x[0], x[1].transpose(-1, -2)); },
                  rn({b, m, k}), rn({b, n, k}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({k}), rn({b, k, n}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({b, m, k}), rn({k}));
  check_grad([](const In& x) { return matmul(x[0], x[1]); }, rn({k}), rn({k}));
  // a strided slice as the left operand (copied to a GEMM-ready layout)
  check_grad([k](const In& x) { return matmul(x[0].slice(1, 0, 2 * k, 2), x[1]); },
                  rn({m, 2 * k}), rn({k, n}));
  check_grad([](const In& x) { return linear(x[0], x[1], x[2]); }, rn({b, m, k}), rn({n, k}),
                  rn({n}));
  check_grad([](const In& x) { return linear(x[0].transpose(0, 1), x[1]); }, rn({m, b, k}),
                  rn({n, k}));
}

TEST_CASE("gradcheck: softmax, log_softmax, layer_norm") {
  Sizes size;
  int64_t a = size(2, 4), b = size(2, 5);
  check_grad([](const In& x) { return softmax(x[0], -1); }, rn({a, b}));
  check_grad([](const In& x) { return softmax(x[0], 0); }, rn({a, b, 2}));
  check_grad([](const In& x) { return log_softmax(x[0].t(), -1); }, rn({a, b}));
  check_grad([](const In& x) { return log_softmax(x[0], 1); }, rn({2, a, b}));
  check_grad([b](const In& x) { return layer_norm(x[0], {b}, x[1], x[2]); }, rn({a, b}),
                  rn({b}), rn({b}));
  check_grad([b](const In& x) { return layer_norm(x[0], {2, b}); }, rn({a, 2, b}));
  check_grad([b](const In& x) { return layer_norm(x[0], {b}, Tensor(), x[1]); }, rn({a, b}),
             rn({b}));
  check_grad([a](const In& x) { return layer_norm(x[0].t(), {a}, x[1]); }, rn({a, b}),
                  rn({a}));
}

TEST_CASE("gradcheck: embedding, cross_entropy, dropout") {
  Tensor ids = from_vector(std::vector<int64_t>{0, 3, 3, 1, 4, 0}, {2, 3});
  check_grad([ids](const In& x) { return embedding(x[0], ids); }, rn({5, 3}));
  Tensor ids32 = from_vector(std::vector<int32_t>{2, 2, 1});
  check_grad([ids32](const In& x) { return embedding(x[0], ids32); }, rn({3, 2}));

  Tensor target = from_vector(std::vector<int64_t>{2, 0, 4, 1});
  check_grad([target](const In& x) { return cross_entropy(x[0], target); }, rn({4, 5}));
  CrossEntropyOptions smooth;
  smooth.label_smoothing = 0.2;
  smooth.ignore_index = 4;
  check_grad([target, smooth](const In& x) { return cross_entropy(x[0].t(), target, smooth); },
                  rn({5, 4}));
  CrossEntropyOptions none;
  none.reduction = Reduction::None;
  check_grad([target, none](const In& x) { return cross_entropy(x[0], target, none); },
                  rn({4, 5}));
  CrossEntropyOptions sum_r;
  sum_r.reduction = Reduction::Sum;
  Tensor t2 = from_vector(std::vector<int64_t>{0, 2, 1, 1, 0, 2}, {2, 3});
  check_grad([t2, sum_r](const In& x) { return cross_entropy(x[0], t2, sum_r); },
                  rn({2, 3, 3}));

  // dropout: same generator state each call, so the mask is fixed while differencing
  check_grad([](const In& x) {
    Generator g(5);
    return dropout(x[0], 0.4, true, &g);
  }, rn({4, 6}));
}

TEST_CASE("gradcheck: view and shape ops") {
  check_grad([](const In& x) { return x[0].reshape({3, 4}); }, rn({2, 6}));
  check_grad([](const In& x) { return x[0].t().reshape({-1}); }, rn({2, 3}));
  check_grad([](const In& x) { return x[0].permute({2, 0, 1}); }, rn({2, 3, 4}));
  check_grad([](const In& x) { return x[0].slice(1, 1, 6, 2); }, rn({2, 7}));
  check_grad([](const In& x) { return x[0].narrow(0, 1, 2).select(1, -1); }, rn({4, 3}));
  check_grad([](const In& x) { return x[0].unsqueeze(1).expand({3, 4, 2}); }, rn({3, 2}));
  check_grad([](const In& x) { return x[0].squeeze(); }, rn({1, 3, 1}));
  check_grad([](const In& x) { return x[0].flatten(1); }, rn({2, 3, 2}));
  check_grad([](const In& x) { return x[0].t().contiguous(); }, rn({2, 3}));
  check_grad([](const In& x) { return concat({x[0], x[1].t(), x[2]}, 1); }, rn({2, 3}),
                  rn({1, 2}), rn({2, 2}));
  check_grad([](const In& x) { return stack({x[0], x[1]}, -1); }, rn({2, 3}), rn({2, 3}));
  check_grad([](const In& x) {
    auto parts = split(x[0], std::vector<int64_t>{1, 3}, 1);
    return mul(parts[0], sum(parts[1], {1}, true));
  }, rn({2, 4}));
  check_grad([](const In& x) {
    auto parts = chunk(x[0], 3, 0);
    return concat({parts[2], parts[0]}, 0);
  }, rn({7, 2}));
  check_grad([](const In& x) { return index_select(x[0], 1, from_vector(std::vector<int64_t>{2, 0, 2})); },
                  rn({2, 3}));
  Tensor gidx = from_vector(std::vector<int64_t>{0, 2, 2, 1, 0, 0}, {2, 3});
  check_grad([gidx](const In& x) { return gather(x[0], 1, gidx); }, rn({2, 4}));
  check_grad([](const In& x) { return flip(x[0], {0, -1}); }, rn({3, 4}));
  check_grad([](const In& x) { return roll(x[0], {1, -2}, {0, 1}); }, rn({3, 4}));
  check_grad([](const In& x) { return roll(x[0], {5}); }, rn({3, 4}));
  check_grad([](const In& x) { return repeat(x[0], {2, 1, 3}); }, rn({2, 2}));
}

TEST_CASE("gradcheck: pad in every mode, padding gradients fold back") {
  for (PadMode mode : {PadMode::Constant, PadMode::Reflect, PadMode::Symmetric,
                       PadMode::Replicate, PadMode::Circular}) {
    CAPTURE(static_cast<int>(mode));
    check_grad([mode](const In& x) { return pad(x[0], {2, 3}, mode, 0.5); }, rn({2, 4}));
    check_grad([mode](const In& x) { return pad(x[0].t(), {1, 2, 2, 0}, mode); }, rn({4, 3}));
  }
}

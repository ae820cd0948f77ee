// autograd/: the engine, grad mode, detach, retain_graph, accumulation, gradcheck itself.
#include <cmath>
#include <thread>

#include "nn/optim.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

TEST_CASE("backward of a scalar; the default seed is 1") {
  Tensor x = tensor({1, 2, 3}, kFloat64).requires_grad_();
  Tensor y = sum(mul(x, x));  // dy/dx = 2x
  CHECK(!y.is_leaf());
  CHECK(y.grad_fn_name() == "SumBackward");
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2, 4, 6});
}

TEST_CASE("a non-scalar needs a seed gradient; a given seed scales the result") {
  Tensor x = tensor({1, 2}, kFloat64).requires_grad_();
  Tensor y = mul(x, 3.0);
  check_error([&] { y.backward(); }, {"backward", "non-scalar", "(2,)"});
  y.backward(tensor({1, 10}, kFloat64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 30});
  check_error([&] { mul(x, 3.0).backward(tensor({1, 2, 3}, kFloat64)); }, {"(3,)", "(2,)"});
}

TEST_CASE("anomaly detection names the backward that made the first NaN or Inf") {
  CHECK(!autograd::anomaly_enabled());  // off unless WAVSPA_DETECT_ANOMALY=1
  Tensor x = tensor({0, 4}, kFloat64).requires_grad_();
  Tensor y = sum(mul(sqrt(x), 3.0));  // d sqrt(x) / dx at 0 is Inf
  y.backward(Tensor(), /*retain_graph=*/true);
  CHECK(std::isinf(x.grad().to_vector<double>()[0]));  // silently, without detection
  x.zero_grad();
  {
    DetectAnomalyGuard detect;
    CHECK(autograd::anomaly_enabled());
    check_error([&] { y.backward(); }, {"anomaly detection", "SqrtBackward", "input 0", "(2,)"});
    // A finite graph passes, and a NaN seed is named as such.
    Tensor w = tensor({1, 2}, kFloat64).requires_grad_();
    sum(mul(w, w)).backward();
    CHECK(w.grad().to_vector<double>() == std::vector<double>{2, 4});
    check_error([&] { mul(w, 2.0).backward(tensor({1, NAN}, kFloat64)); }, {"anomaly detection", "starts from"});
  }
  CHECK(!autograd::anomaly_enabled());
}

TEST_CASE("diamond: two paths into one tensor sum their gradients") {
  Tensor x = tensor({2.0}, kFloat64).requires_grad_();
  Tensor a = mul(x, 3.0);     // 3x
  Tensor b = exp(a);          // e^{3x}
  Tensor c = mul(a, a);       // 9x^2
  Tensor y = sum(add(b, c));  // dy/dx = 3 e^{3x} + 18 x
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(3 * std::exp(6.0) + 36).epsilon(1e-12));
}

TEST_CASE("a tensor used several times, and a shared subgraph") {
  Tensor x = tensor({1, -2}, kFloat64).requires_grad_();
  Tensor h = tanh(x);                              // shared
  Tensor y = sum(add(mul(h, x), mul(h, h)));       // x tanh x + tanh^2 x
  y.backward();
  auto g = x.grad().to_vector<double>();
  for (int i = 0; i < 2; ++i) {
    double v = i == 0 ? 1.0 : -2.0, t = std::tanh(v), dt = 1 - t * t;
    CHECK(g[i] == doctest::Approx(t + v * dt + 2 * t * dt).epsilon(1e-12));
  }
}

TEST_CASE("gradients accumulate across backward calls until zero_grad") {
  Tensor w = tensor({1, 2}, kFloat64).requires_grad_();
  sum(mul(w, 2.0)).backward();
  sum(mul(w, 2.0)).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{4, 4});
  w.zero_grad();
  CHECK(!w.grad().defined());
  sum(w).backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{1, 1});
}

TEST_CASE("a leaf's gradient is its own copy") {
  Tensor a = tensor({1.0}, kFloat64).requires_grad_();
  Tensor b = tensor({1.0}, kFloat64).requires_grad_();
  Tensor seed = tensor({5.0}, kFloat64);
  add(a, b).backward(seed);
  CHECK(a.grad().storage() != b.grad().storage());
  CHECK(a.grad().storage() != seed.storage());
  a.grad().fill_(0);
  CHECK(b.grad().item() == 5);
  // Gradients that arrive as views of one buffer (concat's backward slices the seed): each
  // leaf still gets a contiguous buffer of its own. (A fresh gradient that nothing else holds
  // is taken without a copy; nobody can tell the difference.)
  Tensor c = randn({2, 3}, kFloat64).requires_grad_(), d = randn({1, 3}, kFloat64).requires_grad_();
  Tensor seed2 = randn({3, 3}, kFloat64);
  concat({c, d}, 0).backward(seed2);
  CHECK(c.grad().storage() != seed2.storage());
  CHECK(d.grad().storage() != seed2.storage());
  CHECK(c.grad().is_contiguous());
  CHECK(max_abs_diff(d.grad(), seed2.slice(0, 2, 3)) == 0);
  c.grad().fill_(0);
  CHECK(max_abs_diff(d.grad(), seed2.slice(0, 2, 3)) == 0);
}

TEST_CASE("retain_graph: a second backward through a freed graph fails clearly") {
  Tensor x = tensor({1, 2}, kFloat64).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // allowed: the graph was retained
  auto g = x.grad().to_vector<double>();
  CHECK(g[0] == doctest::Approx(2 * std::exp(1.0)));
  check_error([&] { y.backward(); }, {"already freed", "retain_graph"});
}

TEST_CASE("NoGradGuard records nothing and is thread-local RAII") {
  Tensor x = ones({2}).requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = mul(x, 2.0);
    CHECK(!y.requires_grad());
    {
      EnableGradGuard enable;
      CHECK(mul(x, 2.0).requires_grad());
    }
    CHECK(!autograd::grad_enabled());
  }
  CHECK(autograd::grad_enabled());
  CHECK(mul(x, 2.0).requires_grad());
  bool other_thread_enabled = false;
  {
    NoGradGuard guard;
    std::thread t([&] { other_thread_enabled = autograd::grad_enabled(); });
    t.join();
  }
  CHECK(other_thread_enabled);
}

TEST_CASE("detach cuts the graph but shares storage") {
  Tensor x = tensor({3.0}, kFloat64).requires_grad_();
  Tensor d = mul(x, 2.0).detach();
  CHECK(!d.requires_grad());
  CHECK(d.is_leaf());
  Tensor y = sum(add(mul(x, d), x));  // d is a constant 6
  y.backward();
  CHECK(x.grad().item() == 7);
  Tensor xd = x.detach();
  CHECK(xd.storage() == x.storage());
}

TEST_CASE("backward errors: no grad, integer leaves, in-place on a grad tensor") {
  check_error([] { sum(ones({2})).backward(); }, {"does not require grad"});
  check_error([] { ones({2}, kInt64).requires_grad_(); }, {"floating", "int64"});
  Tensor w = ones({2}).requires_grad_();
  check_error([&] { w.fill_(0); }, {"fill_", "in-place", "NoGradGuard"});
  {
    NoGradGuard guard;
    w.fill_(3);  // allowed: an optimizer step
  }
  CHECK(w.at({0}) == 3);
  Tensor y = mul(w, 2.0);
  check_error([&] { y.requires_grad_(false); }, {"only leaf", "MulBackward"});
}

TEST_CASE("version counters: every in-place write bumps the storage's, shared by views and detach") {
  Tensor x = rn({3, 4});
  Tensor v = x.narrow(0, 1, 2), d = x.detach();
  CHECK(x.version() == 0);
  x.fill_(1.0);
  x.add_(rn({4}));
  x.mul_(2.0);
  x.copy_(rn({3, 4}));
  x.set({0, 0}, 5.0);
  CHECK(x.version() == 5);
  v.zero_();  // through a view: the base and every alias see it
  CHECK(x.version() == 6);
  CHECK(d.version() == 6);
  CHECK(rn({2}).version() == 0);  // a fresh tensor starts at 0; an op's output is fresh
  CHECK(add(x, x).version() == 0);
}

TEST_CASE("a tensor saved for backward and changed in place: backward refuses, naming the op") {
  Tensor w = rn({3}).requires_grad_();
  Tensor x = rn({3});  // data: no gradient, but MulBackward reads it for w's gradient
  Tensor loss = sum(mul(w, x));
  x.add_(ones({3}, kFloat64));
  check_error([&] { loss.backward(); },
              {"MulBackward", "modified by an in-place operation", "version 1", "saved at version 0"});

  // an output an op saved (exp keeps its result), changed under NoGradGuard
  Tensor a = rn({4}).requires_grad_();
  Tensor e = exp(a);
  Tensor s = sum(e);
  {
    NoGradGuard no_grad;
    e.mul_(2.0);
  }
  check_error([&] { s.backward(); }, {"ExpBackward", "modified by an in-place operation"});

  // an optimizer step between the forward and a second backward through a retained graph
  Tensor p = rn({2, 2}).requires_grad_();
  Tensor q = sum(matmul(p, p));
  q.backward(Tensor(), /*retain_graph=*/true);
  nn::SGD opt({p}, nn::SGDOptions{0.1});
  opt.step();
  check_error([&] { q.backward(); }, {"MatmulBackward", "modified by an in-place operation"});
  Tensor r = sum(matmul(p, p));
  nn::Adam adam({p});
  adam.step();  // the fused update bumps the version too
  check_error([&] { r.backward(); }, {"MatmulBackward", "modified by an in-place operation"});

  // a change that backward never reads is harmless: AddBackward saves nothing
  Tensor b = rn({3}).requires_grad_();
  Tensor c = rn({3});
  Tensor t = sum(add(b, c));
  c.mul_(3.0);
  t.backward();
  CHECK(max_abs_diff(b.grad(), ones({3}, kFloat64)) == 0);
}

TEST_CASE("in-place ops on a non-leaf that requires grad are recorded: gradients flow through them") {
  // y = 2 x; y += 3 z (broadcast); y *= -1.5; out = y
  check_grad(
      [](const In& in) {
        Tensor y = mul(in[0], 2.0);
        y.add_(in[1], 3.0);
        y.mul_(-1.5);
        return y;
      },
      rn({3, 4}), rn({4}));
  // copy_ of a tensor that requires grad into a fresh buffer, converting its dtype
  Tensor x = rn({4}).requires_grad_();
  Tensor buf = zeros({2, 4}, kFloat32);
  buf.copy_(x);
  CHECK(buf.requires_grad());
  CHECK(buf.grad_fn_name() == "CopyBackward");
  sum(mul(buf, 3.0)).backward();
  CHECK(x.grad().dtype() == kFloat64);
  CHECK(max_abs_diff(x.grad(), full({4}, 6.0, kFloat64)) == 0);  // broadcast over 2 rows, times 3
  // fill_ cuts the old values off: only the later use of x reaches it
  Tensor u = rn({3}).requires_grad_();
  Tensor v = mul(u, 2.0);
  v.fill_(0.5);
  sum(add(v, u)).backward();
  CHECK(max_abs_diff(u.grad(), ones({3}, kFloat64)) == 0);
}

TEST_CASE("in-place ops that could not be right are refused while gradients are tracked") {
  Tensor w = rn({3}).requires_grad_();
  check_error([&] { w.add_(ones({3}, kFloat64)); }, {"add_", "leaf", "NoGradGuard"});
  check_error([&] { w.set({0}, 1.0); }, {"set", "requires grad", "NoGradGuard"});
  Tensor y = mul(w, 2.0);
  Tensor view = y.narrow(0, 0, 2);
  check_error([&] { y.mul_(3.0); }, {"mul_", "shares its memory", "out-of-place"});
  check_error([&] { view.mul_(3.0); }, {"mul_", "shares its memory"});
  Tensor e = exp(w);  // ExpBackward saved an alias of e
  check_error([&] { e.add_(ones({3}, kFloat64)); }, {"add_", "shares its memory", "saved for backward"});
  Tensor ints = zeros({3}, kInt64);
  check_error([&] { ints.copy_(w); }, {"copy_", "int64", "floating"});
  // a tensor that does not require grad, with an operand that does not either: plain write
  Tensor plain = rn({3});
  plain.add_(rn({3}));
  CHECK(!plain.requires_grad());
}

TEST_CASE("gradcheck catches a wrong gradient") {
  // A deliberately wrong backward: claims d(x^2)/dx = x.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    Tensor out = mul(x.detach(), x.detach());
    if (autograd::needs_grad({x})) {
      Tensor saved = x.detach();
      autograd::record("WrongBackward", {x}, out, {saved}, [saved](const Tensor& g) {
        return std::vector<Tensor>{mul(g, saved)};
      });
    }
    return out;
  };
  auto r = gradcheck(wrong, {rn({3})});
  CHECK(!r.ok);
  CHECK(r.message.find("analytic") != std::string::npos);
  auto ok = gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0]); }, {rn({3})});
  CHECK_MESSAGE(ok.ok, ok.message);
  check_error([] { gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {randn({2})}); },
              {"gradcheck", "float64"});
}

TEST_CASE("deep chains do not overflow the stack") {
  Tensor x = tensor({1.0}, kFloat64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = add(y, 0.0);
  sum(y).backward();
  CHECK(x.grad().item() == 1);
}

TEST_CASE("gradients flow through dtype conversions") {
  Tensor x = tensor({1.5, -2}).requires_grad_();  // float32 leaf
  Tensor y = sum(mul(x.to(kFloat64), x.to(kFloat64)));
  y.backward();
  CHECK(x.grad().dtype() == kFloat32);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3, -4});
}

namespace {
// A two-output op for the test below: (x + y, x * y), recorded as one node. `runs` counts its
// backward calls; `seen` keeps which output gradients each call got.
std::vector<Tensor> sum_and_product(const Tensor& x, const Tensor& y, int* runs,
                                    std::vector<std::vector<bool>>* seen) {
  std::vector<Tensor> out{add(x.detach(), y.detach()), mul(x.detach(), y.detach())};
  Tensor sx = x.detach(), sy = y.detach();
  autograd::record("SumAndProductBackward", {x, y}, out, {sx, sy},
                   [sx, sy, runs, seen](const std::vector<Tensor>& g) {
    ++*runs;
    seen->push_back({g[0].defined(), g[1].defined()});
    Tensor gx = zeros_like(sx), gy = zeros_like(sy);
    if (g[0].defined()) gx = add(gx, g[0]), gy = add(gy, g[0]);
    if (g[1].defined()) gx = add(gx, mul(g[1], sy)), gy = add(gy, mul(g[1], sx));
    return std::vector<Tensor>{gx, gy};
  });
  return out;
}
}  // namespace

TEST_CASE("an op with several outputs: one node, run once, each gradient in its own slot") {
  Tensor x = tensor({1, 2}, kFloat64).requires_grad_(), y = tensor({3, 5}, kFloat64).requires_grad_();
  int runs = 0;
  std::vector<std::vector<bool>> seen;
  SUBCASE("both outputs, each used twice, sum and product weighted differently") {
    auto out = sum_and_product(x, y, &runs, &seen);
    CHECK(out[0].grad_fn_name() == "SumAndProductBackward");
    CHECK(out[1].grad_fn_name() == "SumAndProductBackward");
    // L = 2 sum(s) + 3 sum(p) + sum(s * p): dL/ds = 2 + p, dL/dp = 3 + s
    Tensor loss = add(add(mul(sum(out[0]), 2.0), mul(sum(out[1]), 3.0)), sum(mul(out[0], out[1])));
    loss.backward();
    CHECK(runs == 1);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == std::vector<bool>{true, true});
    // dL/dx = dL/ds + dL/dp * y, dL/dy = dL/ds + dL/dp * x
    // x = (1, 2), y = (3, 5): s = (4, 7), p = (3, 10)
    CHECK(x.grad().to_vector<double>() == std::vector<double>{(2 + 3) + (3 + 4) * 3.0, (2 + 10) + (3 + 7) * 5.0});
    CHECK(y.grad().to_vector<double>() == std::vector<double>{(2 + 3) + (3 + 4) * 1.0, (2 + 10) + (3 + 7) * 2.0});
  }
  SUBCASE("only the second output used: the first slot comes undefined") {
    auto out = sum_and_product(x, y, &runs, &seen);
    sum(out[1]).backward();
    CHECK(runs == 1);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == std::vector<bool>{false, true});
    CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 5});
    CHECK(y.grad().to_vector<double>() == std::vector<double>{1, 2});
  }
  SUBCASE("backward from an output itself seeds its slot") {
    auto out = sum_and_product(x, y, &runs, &seen);
    out[1].backward(tensor({1, 10}, kFloat64));
    CHECK(seen.at(0) == std::vector<bool>{false, true});
    CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 50});
  }
  SUBCASE("a saved input changed in place: refused, as for one output") {
    Tensor a = tensor({1, 2}, kFloat64).requires_grad_();
    Tensor xa = mul(a, 1.0);
    auto out = sum_and_product(xa, y, &runs, &seen);
    Tensor loss = sum(out[0]);
    { NoGradGuard g; xa.detach().mul_(2.0); }
    check_error([&] { loss.backward(); }, {"SumAndProductBackward", "in-place"});
    CHECK(runs == 0);
  }
}

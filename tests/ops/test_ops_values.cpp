// Forward values of the ops against their formulas written out here.
#include "backends/backend.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// Naive (..., m, k) @ (..., k, n) over contiguous float64 copies with numpy broadcasting.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b, Shape& out_shape) {
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "test");
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape fa = batch, fb = batch;
  fa.insert(fa.end(), {m, k});
  fb.insert(fb.end(), {k, n});
  auto va = a.expand(fa).contiguous().to(kFloat64).to_vector<double>();
  auto vb = b.expand(fb).contiguous().to(kFloat64).to_vector<double>();
  const int64_t nb = shape_numel(batch);
  std::vector<double> out(nb * m * n, 0.0);
  for (int64_t t = 0; t < nb; ++t)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += va[t * m * k + i * k + p] * vb[t * k * n + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
  out_shape = batch;
  out_shape.insert(out_shape.end(), {m, n});
  return out;
}

void check_matmul(const Tensor& a, const Tensor& b, double tol) {
  Shape expected_shape;
  auto expected = naive_matmul(a, b, expected_shape);
  Tensor got = matmul(a, b);
  REQUIRE(got.shape() == expected_shape);
  auto v = got.to(kFloat64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::abs(v[i] - expected[i]));
  CHECK_MESSAGE(worst <= tol, str("matmul ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
                                  " off by ", worst));
}

std::vector<double> values(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

}  // namespace

TEST_CASE("float32 products with a short inner dimension (the CPU's tile path) equal the naive product") {
  // k <= 256 and n <= 1024 take backends/cpu/tile_gemm.h instead of OpenBLAS: a transposed a
  // or b, rows and columns that leave partial blocks, a row count of several pool tasks, and
  // k = 257 (just past the threshold, OpenBLAS) for comparison.
  const double tol = 2e-3;
  check_matmul(randn({700, 96}), randn({96, 200}), tol);
  check_matmul(randn({96, 700}).t(), randn({200, 96}).t(), tol);
  check_matmul(randn({1000, 256}), randn({17, 256}).t(), tol);
  check_matmul(randn({130, 5}), randn({5, 1024}), tol);
  check_matmul(randn({3, 70, 33}).transpose(1, 2), randn({3, 70, 9}), tol);
  check_matmul(randn({300, 257}), randn({257, 40}), tol);
  // linear: the bias is the start of each output's sum (c += x W^T).
  Tensor x = randn({4, 75, 64}), w = randn({192, 64}), b = randn({192});
  const Tensor want = add(matmul(x.to(kFloat64), w.to(kFloat64).t()), b.to(kFloat64));
  CHECK(max_abs_diff(linear(x, w, b).to(kFloat64), want) < tol);
}

TEST_CASE("matmul equals the naive product in every layout and dtype") {
  for (DType dt : {kFloat32, kFloat64}) {
    double tol = dt == kFloat32 ? 1e-3 : 1e-10;
    check_matmul(randn({37, 53}, dt), randn({53, 29}, dt), tol);
    check_matmul(randn({53, 37}, dt).t(), randn({29, 53}, dt).t(), tol);   // both transposed
    check_matmul(randn({4, 7, 5}, dt), randn({5, 6}, dt), tol);            // folded batch
    check_matmul(randn({7, 5}, dt), randn({3, 5, 6}, dt), tol);            // broadcast a
    check_matmul(randn({2, 1, 7, 5}, dt), randn({3, 5, 6}, dt), tol);      // broadcast both
    check_matmul(randn({3, 5, 7}, dt).transpose(1, 2), randn({3, 6, 5}, dt).transpose(1, 2), tol);
    check_matmul(randn({3, 7, 10}, dt).slice(2, 0, 10, 2), randn({5, 4}, dt), tol);  // strided
    check_matmul(randn({5, 3, 7}, dt).permute({1, 0, 2}).slice(1, 0, 5), randn({3, 7, 2}, dt), tol);
    check_matmul(randn({1, 5}, dt), randn({5, 1}, dt), tol);
    check_matmul(randn({64, 3, 8}, dt), randn({64, 8, 3}, dt), tol);      // batch > threads
  }
  Tensor empty_k = matmul(zeros({3, 0}), zeros({0, 2}));
  CHECK(values(empty_k) == std::vector<double>(6, 0.0));
  Tensor dot = matmul(tensor({1, 2, 3}), tensor({4, 5, 6}));
  CHECK(dot.dim() == 0);
  CHECK(dot.item() == 32);
  Tensor mv = matmul(tensor({{1, 2}, {3, 4}}), tensor({1, 1}));
  CHECK(values(mv) == std::vector<double>{3, 7});
  Tensor x = randn({2, 3, 4}), w = randn({5, 4}), b = randn({5});
  CHECK(max_abs_diff(linear(x, w, b), add(matmul(x, w.t()), b)) < 1e-5);
  CHECK(max_abs_diff(linear(x.transpose(0, 1), w), matmul(x.transpose(0, 1), w.t())) < 1e-5);
}

TEST_CASE("activations match their formulas") {
  Tensor x = linspace(-4, 4, 33, kFloat64);
  auto v = values(x);
  auto g = values(gelu(x)), gt = values(gelu(x, GeluApprox::Tanh)), s = values(silu(x));
  auto sp = values(softplus(x, 2.0, 5.0)), e = values(elu(x, 0.5)), sg = values(sigmoid(x));
  for (size_t i = 0; i < v.size(); ++i) {
    double t = v[i];
    CHECK(g[i] == doctest::Approx(0.5 * t * (1 + std::erf(t / std::sqrt(2.0)))));
    CHECK(gt[i] == doctest::Approx(
        0.5 * t * (1 + std::tanh(std::sqrt(2 / M_PI) * (t + 0.044715 * t * t * t)))));
    CHECK(s[i] == doctest::Approx(t / (1 + std::exp(-t))));
    CHECK(sp[i] == doctest::Approx(2 * t > 5 ? t : std::log1p(std::exp(2 * t)) / 2));
    CHECK(e[i] == doctest::Approx(t > 0 ? t : 0.5 * (std::exp(t) - 1)));
    CHECK(sg[i] == doctest::Approx(1 / (1 + std::exp(-t))));
  }
  CHECK(values(relu(tensor({-1, 0, 2}))) == std::vector<double>{0, 0, 2});
  CHECK(values(clamp(tensor({-3, 0.5, 9}), -1, 1)) == std::vector<double>{-1, 0.5, 1});
  CHECK(values(sign(tensor({-3, 0, 9}))) == std::vector<double>{-1, 0, 1});
}

TEST_CASE("broadcasting binary ops, comparisons, where, masked_fill") {
  Tensor a = tensor({{1, 2, 3}, {4, 5, 6}});
  Tensor col = tensor({10, 20}).reshape({2, 1});
  CHECK(values(add(a, col)) == std::vector<double>{11, 12, 13, 24, 25, 26});
  CHECK(values(sub(a, tensor({1, 1, 1}))) == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(values(pow(a, 2.0)) == std::vector<double>{1, 4, 9, 16, 25, 36});
  CHECK(values(maximum(a, tensor({3, 3, 3}))) == std::vector<double>{3, 3, 3, 4, 5, 6});
  CHECK(values(gt(a, tensor({2, 5, 0}))) == std::vector<double>{0, 0, 1, 1, 0, 1});
  CHECK(values(where(gt(a, scalar_tensor(3)), a, col)) ==
        std::vector<double>{10, 10, 10, 4, 5, 6});
  Tensor mask = from_vector(std::vector<int64_t>{1, 0, 1});
  CHECK(values(masked_fill(a, mask, -1)) == std::vector<double>{-1, 2, -1, -1, 5, -1});
  CHECK(values(maximum(tensor({1.0, NAN}), tensor({NAN, 0.0})))[0] != values(tensor({1.0}))[0]);
  // Large enough to take the parallel path, with a broadcast middle dim.
  Tensor big = randn({64, 1, 700}), other = randn({1, 9, 700});
  Tensor sum_big = add(big, other);
  CHECK(sum_big.at({63, 8, 699}) == doctest::Approx(big.at({63, 0, 699}) + other.at({0, 8, 699})));
  CHECK(sum_big.at({5, 3, 17}) == doctest::Approx(big.at({5, 0, 17}) + other.at({0, 3, 17})));
  Tensor ints = add(from_vector(std::vector<int64_t>{1, 2}), from_vector(std::vector<int64_t>{5, 5}));
  CHECK(ints.to_vector<int64_t>() == std::vector<int64_t>{6, 7});
}

TEST_CASE("reductions match loops, in every memory layout") {
  Tensor x = randn({3, 4, 5}, kFloat64);
  auto v = values(x);
  auto at = [&](int i, int j, int k) { return v[i * 20 + j * 5 + k]; };
  // over dims {0, 2}: the general (copying) path
  auto s02 = values(sum(x, {0, 2}));
  for (int j = 0; j < 4; ++j) {
    double s = 0;
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k) s += at(i, j, k);
    CHECK(s02[j] == doctest::Approx(s));
  }
  // over dim 1 (the column path: kept innermost dim is contiguous)
  auto m1 = values(mean(x, {1}));
  auto mx1 = values(max(x, {1}));
  auto am1 = argmax(x, 1).to_vector<int64_t>();
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) {
      double s = 0, best = -1e300;
      int64_t arg = 0;
      for (int j = 0; j < 4; ++j) {
        s += at(i, j, k);
        if (at(i, j, k) > best) { best = at(i, j, k); arg = j; }
      }
      CHECK(m1[i * 5 + k] == doctest::Approx(s / 4));
      CHECK(mx1[i * 5 + k] == best);
      CHECK(am1[i * 5 + k] == arg);
    }
  CHECK(sum(x, {1}, true).shape() == Shape{3, 1, 5});
  CHECK(min(x).item() == *std::min_element(v.begin(), v.end()));
  CHECK(argmin(x, -1).shape() == Shape{3, 4});
  CHECK(argmax(x).item() == (double)(std::max_element(v.begin(), v.end()) - v.begin()));
  // variance, unbiased and biased
  Tensor y = tensor({1, 2, 3, 4}, kFloat64);
  CHECK(var(y, {0}).item() == doctest::Approx(5.0 / 3));
  CHECK(var(y, {0}, 0).item() == doctest::Approx(1.25));
  // logsumexp is stable far from zero
  Tensor big = tensor({1000, 1000}, kFloat64);
  CHECK(logsumexp(big, {0}).item() == doctest::Approx(1000 + std::log(2.0)));
  // a large full reduction on a transposed view
  Tensor t = randn({600, 500}, kFloat64);
  CHECK(sum(t.t()).item() == doctest::Approx(sum(t).item()).epsilon(1e-9));
  CHECK(sum(zeros({3, 0}), {1}).to_vector<float>() == std::vector<float>{0, 0, 0});
  // float32 accumulates in double: 1 + 2^24 ones is exact
  CHECK(sum(ones({1 << 24})).item() == 16777216.0);
  CHECK(std::isnan(max(tensor({1.0, NAN, 3.0})).item()));
}

TEST_CASE("softmax, log_softmax, layer_norm against formulas") {
  Tensor x = randn({4, 7}, kFloat64);
  auto p = values(softmax(x, -1));
  auto lp = values(log_softmax(x, 1));
  auto v = values(x);
  for (int r = 0; r < 4; ++r) {
    double mx = -1e300, s = 0;
    for (int c = 0; c < 7; ++c) mx = std::max(mx, v[r * 7 + c]);
    for (int c = 0; c < 7; ++c) s += std::exp(v[r * 7 + c] - mx);
    for (int c = 0; c < 7; ++c) {
      CHECK(p[r * 7 + c] == doctest::Approx(std::exp(v[r * 7 + c] - mx) / s));
      CHECK(lp[r * 7 + c] == doctest::Approx(v[r * 7 + c] - mx - std::log(s)));
    }
  }
  auto p0 = values(softmax(x, 0));  // along a non-last dim
  for (int c = 0; c < 7; ++c) {
    double s = 0;
    for (int r = 0; r < 4; ++r) s += p0[r * 7 + c];
    CHECK(s == doctest::Approx(1.0));
  }
  CHECK(values(softmax(tensor({1000, 1000}), 0)) == std::vector<double>{0.5, 0.5});
  // layer norm: biased variance, eps inside the sqrt, then affine
  Tensor w = randn({7}, kFloat64), b = randn({7}, kFloat64);
  auto ln = values(layer_norm(x, {7}, w, b, 1e-5));
  auto vw = values(w), vb = values(b);
  for (int r = 0; r < 4; ++r) {
    double mu = 0, var = 0;
    for (int c = 0; c < 7; ++c) mu += v[r * 7 + c] / 7;
    for (int c = 0; c < 7; ++c) var += (v[r * 7 + c] - mu) * (v[r * 7 + c] - mu) / 7;
    for (int c = 0; c < 7; ++c)
      CHECK(ln[r * 7 + c] ==
            doctest::Approx((v[r * 7 + c] - mu) / std::sqrt(var + 1e-5) * vw[c] + vb[c]));
  }
  // rows with a large offset are still normalised exactly (two-pass variance)
  Tensor shifted = add(tensor({1, 2, 3}, kFloat32), 1e4);
  auto ls = values(layer_norm(shifted, {3}, Tensor(), Tensor(), 0));
  CHECK(ls[0] == doctest::Approx(-std::sqrt(1.5)).epsilon(1e-4));
}

TEST_CASE("cross_entropy: formula, ignore_index, label smoothing, reductions") {
  Tensor logits = tensor({{2, 1, 0.1}, {0.5, 2.5, 0.3}, {1, 1, 1}}, kFloat64);
  Tensor target = from_vector(std::vector<int64_t>{0, 1, 2});
  auto v = values(logits);
  std::vector<double> nll(3), smooth(3);
  for (int r = 0; r < 3; ++r) {
    double s = 0, sum_logp = 0;
    for (int c = 0; c < 3; ++c) s += std::exp(v[r * 3 + c]);
    for (int c = 0; c < 3; ++c) sum_logp += v[r * 3 + c] - std::log(s);
    nll[r] = std::log(s) - v[r * 3 + r];
    smooth[r] = 0.9 * nll[r] - 0.1 * sum_logp / 3;
  }
  CrossEntropyOptions none;
  none.reduction = Reduction::None;
  auto per = values(cross_entropy(logits, target, none));
  for (int r = 0; r < 3; ++r) CHECK(per[r] == doctest::Approx(nll[r]));
  CHECK(cross_entropy(logits, target).item() == doctest::Approx((nll[0] + nll[1] + nll[2]) / 3));
  CrossEntropyOptions ignore;
  ignore.ignore_index = 1;
  Tensor t_ign = from_vector(std::vector<int64_t>{0, 1, 2});
  CHECK(cross_entropy(logits, t_ign, ignore).item() == doctest::Approx((nll[0] + nll[2]) / 2));
  CrossEntropyOptions ls;
  ls.label_smoothing = 0.1;
  ls.reduction = Reduction::Sum;
  CHECK(cross_entropy(logits, target, ls).item() ==
        doctest::Approx(smooth[0] + smooth[1] + smooth[2]));
  // the (N, C, L) layout equals the flattened (N L, C) one
  Tensor l3 = randn({2, 4, 3}, kFloat64);
  Tensor t3 = from_vector(std::vector<int64_t>{0, 3, 1, 2, 2, 0}, {2, 3});
  Tensor flat = l3.permute({0, 2, 1}).reshape({6, 4});
  CHECK(cross_entropy(l3, t3).item() == doctest::Approx(cross_entropy(flat, t3.reshape({6})).item()));
}

TEST_CASE("pad: each mode on a known row") {
  Tensor x = tensor({1, 2, 3, 4});
  CHECK(values(pad(x, {2, 3}, PadMode::Constant, 0.5)) ==
        std::vector<double>{0.5, 0.5, 1, 2, 3, 4, 0.5, 0.5, 0.5});
  CHECK(values(pad(x, {2, 3}, PadMode::Reflect)) == std::vector<double>{3, 2, 1, 2, 3, 4, 3, 2, 1});
  CHECK(values(pad(x, {2, 3}, PadMode::Symmetric)) ==
        std::vector<double>{2, 1, 1, 2, 3, 4, 4, 3, 2});
  CHECK(values(pad(x, {2, 3}, PadMode::Replicate)) ==
        std::vector<double>{1, 1, 1, 2, 3, 4, 4, 4, 4});
  CHECK(values(pad(x, {2, 3}, PadMode::Circular)) ==
        std::vector<double>{3, 4, 1, 2, 3, 4, 1, 2, 3});
  Tensor m = tensor({{1, 2}, {3, 4}});
  CHECK(values(pad(m, {0, 1, 1, 0}, PadMode::Replicate)) ==
        std::vector<double>{1, 2, 2, 1, 2, 2, 3, 4, 4});
  check_error([&] { pad(x, {4, 0}, PadMode::Reflect); }, {"pad", "reflect", "smaller", "4"});
}

TEST_CASE("joining, splitting and indexing") {
  Tensor a = tensor({{1, 2}, {3, 4}}), b = tensor({{5, 6}});
  CHECK(values(concat({a, b}, 0)) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(values(concat({a, a}, -1)) == std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4});
  Tensor s = stack({a, a}, 1);
  CHECK(s.shape() == Shape{2, 2, 2});
  CHECK(values(s) == std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4});
  auto parts = split(arange(7), 3, 0);
  REQUIRE(parts.size() == 3);
  CHECK(values(parts[2]) == std::vector<double>{6});
  auto ch = chunk(arange(6), 3, 0);
  REQUIRE(ch.size() == 3);
  CHECK(values(ch[1]) == std::vector<double>{2, 3});
  CHECK(ch[1].storage() == ch[0].storage());
  Tensor idx = from_vector(std::vector<int64_t>{1, 1, 0});
  CHECK(values(index_select(a, 0, idx)) == std::vector<double>{3, 4, 3, 4, 1, 2});
  Tensor gi = from_vector(std::vector<int64_t>{1, 0, 0, 0}, {2, 2});
  CHECK(values(gather(a, 1, gi)) == std::vector<double>{2, 1, 3, 3});
  CHECK(values(flip(a, {1})) == std::vector<double>{2, 1, 4, 3});
  CHECK(values(roll(arange(5), {2})) == std::vector<double>{3, 4, 0, 1, 2});
  CHECK(values(roll(a, {1}, {0})) == std::vector<double>{3, 4, 1, 2});
  CHECK(values(repeat(tensor({1, 2}), {2, 2})) == std::vector<double>{1, 2, 1, 2, 1, 2, 1, 2});
  CHECK(repeat(a, {1, 3, 1}).shape() == Shape{1, 6, 2});
  Tensor emb = embedding(tensor({{0, 0}, {1, 1}, {2, 2}}),
                         from_vector(std::vector<int32_t>{2, 0}, {1, 2}));
  CHECK(emb.shape() == Shape{1, 2, 2});
  CHECK(values(emb) == std::vector<double>{2, 2, 0, 0});
}

TEST_CASE("dropout: rate, scaling, eval identity, reproducible masks") {
  Tensor x = ones({100000});
  manual_seed(3);
  Tensor y = dropout(x, 0.25);
  auto v = values(y);
  int64_t zeros_seen = std::count(v.begin(), v.end(), 0.0);
  CHECK(std::abs(zeros_seen / 100000.0 - 0.25) < 0.01);
  CHECK(*std::max_element(v.begin(), v.end()) == doctest::Approx(1 / 0.75));
  CHECK(dropout(x, 0.25, /*training=*/false).is_same(x));
  manual_seed(3);
  CHECK(max_abs_diff(dropout(x, 0.25), y) == 0);
  CHECK(values(dropout(ones({3}), 1.0)) == std::vector<double>{0, 0, 0});
}

TEST_CASE("dropout_add and waverec_add: the bits of add(base, ...), the same mask") {
  for (DType dt : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dt));
    // dropout_add: value, mask, counters and both gradients against add(base, dropout(x)).
    for (double p : {0.0, 0.3, 1.0}) {
      CAPTURE(p);
      const Tensor b0 = randn({6, 50}).to(dt), x0 = randn({6, 50}).to(dt), seed = randn({6, 50}).to(dt);
      Tensor b1 = b0.detach().requires_grad_(), x1 = x0.detach().requires_grad_();
      Tensor b2 = b0.detach().requires_grad_(), x2 = x0.detach().requires_grad_();
      Generator g1(17), g2(17);
      const Tensor fused = dropout_add(b1, x1, p, true, &g1);
      const Tensor composite = add(b2, dropout(x2, p, true, &g2));
      CHECK(max_abs_diff(fused, composite) == 0);
      CHECK(g1.offset() == g2.offset());
      sum(mul(fused, seed)).backward();
      sum(mul(composite, seed)).backward();
      CHECK(max_abs_diff(b1.grad(), b2.grad()) == 0);
      CHECK(max_abs_diff(x1.grad(), x2.grad()) == 0);
      if (p == 0.3) {  // about 30% of x dropped: fused - base is zero there
        const std::vector<double> v = values(sub(fused, b0));
        const double dropped = (double)std::count(v.begin(), v.end(), 0.0) / (double)v.size();
        CHECK(std::abs(dropped - p) < 0.08);
      }
    }
    // waverec_add: per-channel filters along axis 1, periodization and symmetric, one and two
    // levels; an odd length is trimmed by the last synthesis itself (a cropped map).
    for (WaveletMode mode : {WaveletMode::Periodization, WaveletMode::Symmetric}) {
      for (int64_t level : {1, 2}) for (int64_t N : {37, 38}) {
        CAPTURE(wavelet_mode_name(mode));
        CAPTURE(level);
        CAPTURE(N);
        const Wavelet w = Wavelet::orthogonal_from(randn({6, 5}).to(dt));
        const std::vector<Tensor> c0 = wavedec(randn({3, N, 5}).to(dt), w, level, mode, 1);
        const Tensor base0 = randn({3, N, 5}).to(dt), seed = randn({3, N, 5}).to(dt);
        std::vector<Tensor> c1, c2;
        for (const Tensor& c : c0) {
          c1.push_back(c.detach().requires_grad_());
          c2.push_back(c.detach().requires_grad_());
        }
        Tensor b1 = base0.detach().requires_grad_(), b2 = base0.detach().requires_grad_();
        const Tensor fused = waverec_add(b1, c1, w, mode, 1, N);
        const Tensor composite = add(b2, waverec(c2, w, mode, 1, N));
        CHECK(max_abs_diff(fused, composite) == 0);
        sum(mul(fused, seed)).backward();
        sum(mul(composite, seed)).backward();
        CHECK(max_abs_diff(b1.grad(), b2.grad()) == 0);
        for (size_t i = 0; i < c1.size(); ++i) CHECK(max_abs_diff(c1[i].grad(), c2[i].grad()) == 0);
      }
    }
  }
  // Mixed dtypes are refused by name, as add refuses them.
  check_error([] { dropout_add(randn({3}).to(kFloat64), randn({3}), 0.5); }, {"dropout_add", "float32", "float64"});
  check_error([] { waverec_add(randn({2, 8}), {randn({2, 4})}, Wavelet("haar")); }, {"add"});
}

TEST_CASE("dropout_add_layer_norm: the bits of dropout_add then layer_norm, one pass each way") {
  // Row lengths below, at and above a dropout group (64), and ones that do not divide it, so
  // the fused kernel's row blocks start mid-row of a group nowhere; M * N past the parallel grain.
  const Shape shapes[] = {{6, 50}, {3, 7, 64}, {2, 5, 13}, {130, 3}, {2, 300, 100}};
  for (DType dt : {kFloat32, kFloat64}) for (const Shape& shape : shapes) for (double p : {0.0, 0.3}) {
    for (bool affine : {true, false}) for (bool h_used : {true, false}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(shape_str(shape));
      CAPTURE(p);
      CAPTURE(affine);
      CAPTURE(h_used);
      const int64_t N = shape.back();
      const Tensor b0 = randn(shape).to(dt), x0 = randn(shape).to(dt);
      const Tensor w0 = randn({N}).to(dt), c0 = randn({N}).to(dt);
      const Tensor sh = randn(shape).to(dt), sy = randn(shape).to(dt);
      auto leaf = [](const Tensor& t) { return t.detach().requires_grad_(); };
      Tensor b1 = leaf(b0), x1 = leaf(x0), w1 = leaf(w0), c1 = leaf(c0);
      Tensor b2 = leaf(b0), x2 = leaf(x0), w2 = leaf(w0), c2 = leaf(c0);
      Generator g1(23), g2(23);
      auto [h1, y1] = dropout_add_layer_norm(b1, x1, p, true, {N}, affine ? w1 : Tensor(), affine ? c1 : Tensor(),
                                             1e-5, &g1);
      const Tensor h2 = dropout_add(b2, x2, p, true, &g2);
      const Tensor y2 = layer_norm(h2, {N}, affine ? w2 : Tensor(), affine ? c2 : Tensor(), 1e-5);
      CHECK(h1.grad_fn_name() == "DropoutAddLayerNormBackward");
      CHECK(max_abs_diff(h1, h2) == 0);
      CHECK(max_abs_diff(y1, y2) == 0);
      CHECK(g1.offset() == g2.offset());
      // h's gradient from one other use (a residual) is added as the graph would add it.
      (h_used ? add(sum(mul(h1, sh)), sum(mul(y1, sy))) : sum(mul(y1, sy))).backward();
      (h_used ? add(sum(mul(h2, sh)), sum(mul(y2, sy))) : sum(mul(y2, sy))).backward();
      CHECK(max_abs_diff(b1.grad(), b2.grad()) == 0);
      CHECK(max_abs_diff(x1.grad(), x2.grad()) == 0);
      if (affine) {
        CHECK(max_abs_diff(w1.grad(), w2.grad()) == 0);
        CHECK(max_abs_diff(c1.grad(), c2.grad()) == 0);
      }
      if (p > 0) {  // about 30% of x dropped: h - base is zero there
        const std::vector<double> v = values(sub(h1, b0));
        CHECK(std::abs((double)std::count(v.begin(), v.end(), 0.0) / (double)v.size() - p) < 0.08);
      }
    }
  }
  // Only h's gradient: the base's is it, x's its dropout.
  {
    Tensor b = randn({4, 70}).requires_grad_(), x = randn({4, 70}).requires_grad_();
    Generator g1(3), g2(3);
    auto [h, y] = dropout_add_layer_norm(b, x, 0.4, true, {70}, Tensor(), Tensor(), 1e-5, &g1);
    const Tensor s = randn({4, 70});
    sum(mul(h, s)).backward();
    CHECK(max_abs_diff(b.grad(), s) == 0);
    CHECK(max_abs_diff(x.grad(), dropout(s, 0.4, true, &g2)) == 0);
  }
  // Eval mode, a broadcast base and p = 1 are dropout_add and layer_norm as such.
  {
    const Tensor b = randn({3, 8}), x = randn({3, 8}), w = randn({8});
    auto [h, y] = dropout_add_layer_norm(b, x, 0.5, false, {8}, w);
    CHECK(max_abs_diff(h, add(b, x)) == 0);
    CHECK(max_abs_diff(y, layer_norm(add(b, x), {8}, w)) == 0);
    auto [hb, yb] = dropout_add_layer_norm(randn({8}), x, 0.5, true, {8});
    CHECK(hb.shape() == Shape{3, 8});
    auto [h1, y1] = dropout_add_layer_norm(b, x, 1.0, true, {8});
    CHECK(max_abs_diff(h1, b) == 0);
  }
  check_error([] { dropout_add_layer_norm(randn({3}).to(kFloat64), randn({3}), 0.5, true, {3}); },
              {"dropout_add_layer_norm", "float32", "float64"});
  check_error([] { dropout_add_layer_norm(randn({2, 3}), randn({2, 3}), 0.5, true, {4}); },
              {"layer_norm", "(2, 3)", "(4,)"});
  check_error([] { dropout_add_layer_norm(randn({2, 3}), randn({2, 3}), 1.5, true, {3}); }, {"[0, 1]"});
}

TEST_CASE("bias_gelu: the values, masks and gradients of dropout(gelu(x + bias))") {
  // The CPU runs the fused op as the three ops' own kernels, so values and gradients are the
  // same bits; the mask comes from the same generator counters. Shapes: a bias row shorter
  // than dropout's 64-element groups, and tensors large enough for several threads, with and
  // without a partial last group.
  for (const Shape& shape : {Shape{7, 9, 13}, Shape{300, 128}, Shape{5, 1000, 7}})
  for (DType dt : {kFloat32, kFloat64}) {
    for (double p : {0.0, 0.3}) {
      for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
        CAPTURE(shape_str(shape));
        CAPTURE(dtype_name(dt));
        CAPTURE(p);
        const int64_t N = shape.back();
        const Tensor x0 = randn(shape).to(dt), b0 = randn({N}).to(dt), seed = randn(shape).to(dt);
        Tensor x1 = x0.detach().requires_grad_(), b1 = b0.detach().requires_grad_();
        Tensor x2 = x0.detach().requires_grad_(), b2 = b0.detach().requires_grad_();
        Generator g1(21), g2(21);
        const Tensor fused = bias_gelu(x1, b1, p, true, approx, &g1);
        const Tensor composite = dropout(gelu(add(x2, b2), approx), p, true, &g2);
        CHECK(max_abs_diff(fused, composite) == 0);
        CHECK(g1.offset() == g2.offset());  // the same counters reserved
        sum(mul(fused, seed)).backward();
        sum(mul(composite, seed)).backward();
        CHECK(max_abs_diff(x1.grad(), x2.grad()) == 0);
        CHECK(max_abs_diff(b1.grad(), b2.grad()) == 0);
        if (p > 0) {  // a fraction p of the outputs are dropped
          const std::vector<double> v = values(fused);
          const double dropped = (double)std::count(v.begin(), v.end(), 0.0) / (double)v.size();
          CHECK(std::abs(dropped - p) < 0.06);
        }
      }
    }
  }
  // Not training: no dropout, nothing drawn.
  Generator g(3);
  const Tensor x = randn({4, 5}), b = randn({5});
  CHECK(max_abs_diff(bias_gelu(x, b, 0.5, false, GeluApprox::None, &g), gelu(add(x, b))) == 0);
  CHECK(g.offset() == 0);
  // Everything dropped at p = 1, as dropout does.
  CHECK(max_abs_diff(bias_gelu(x, b, 1.0), zeros({4, 5})) == 0);
  // Bad bias shapes and dtypes are refused with the expected shape.
  CHECK_THROWS_WITH_AS(bias_gelu(x, randn({4})), doctest::Contains("bias must be (5)"), Error);
  CHECK_THROWS_AS(bias_gelu(x, randn({5}).to(kFloat64)), Error);
  CHECK_THROWS_WITH_AS(bias_gelu(x, b, 1.5), doctest::Contains("[0, 1]"), Error);
}

TEST_CASE("float32 vectorised paths agree with float64 to float precision") {
  // Long enough rows to use the AVX2 + SLEEF loops, with a tail that uses the scalar ones.
  // The float64 reference is evaluated at the same (float32) inputs.
  Tensor x32 = linspace(-9, 9, 4099, kFloat32);
  Tensor x64 = x32.to(kFloat64);
  using F = Tensor (*)(const Tensor&);
  struct Case { const char* name; F f; };
  const Case cases[] = {{"exp", exp}, {"tanh", tanh}, {"sigmoid", sigmoid}, {"silu", silu}};
  for (const Case& c : cases) {
    INFO(std::string(c.name));
    auto got = values(c.f(x32)), want = values(c.f(x64));
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::abs(got[i] - want[i]) / (std::abs(want[i]) + 1e-30));
    CHECK(worst < 2.5e-7);  // about two float32 ulps
  }
  for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
    auto got = values(gelu(x32, approx)), want = values(gelu(x64, approx));
    double worst = 0;  // absolute, scaled by |x|: the negative tail underflows relative error
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    CHECK(worst < 4e-6);
  }
  // softmax rows of float32 through the vectorised exp
  Tensor s32 = randn({3, 1000}), s64 = s32.to(kFloat64);
  CHECK(max_abs_diff(softmax(s32, -1), softmax(s64, -1)) < 1e-8);
  CHECK(max_abs_diff(log_softmax(s32, -1), log_softmax(s64, -1)) < 1e-5);
}

TEST_CASE("fused activation backward kernels equal the gradient of their composite form") {
  Tensor x0 = randn({64, 33}, kFloat64);
  auto grad_of = [&](auto f) {
    Tensor x = x0.clone().requires_grad_();
    sum(mul(f(x), cos(x0))).backward();  // a non-uniform upstream gradient
    return x.grad();
  };
  // tanh-approximate GELU written out with primitive ops
  auto gelu_composite = [](const Tensor& x) {
    Tensor inner = mul(add(x, mul(pow(x, 3.0), 0.044715)), std::sqrt(2.0 / M_PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1.0));
  };
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return gelu(x, GeluApprox::Tanh); }),
                     grad_of(gelu_composite)) < 1e-12);
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return silu(x); }),
                     grad_of([](const Tensor& x) { return mul(x, (1.0 / add(exp(neg(x)), 1.0))); })) < 1e-12);
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return sigmoid(x); }),
                     grad_of([](const Tensor& x) { return (1.0 / add(exp(neg(x)), 1.0)); })) < 1e-12);
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return tanh(x); }),
                     grad_of([](const Tensor& x) {
                       Tensor e = exp(mul(x, 2.0));
                       return div(sub(e, 1.0), add(e, 1.0));
                     })) < 1e-12);
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return softplus(x, 1.5, 20.0); }),
                     grad_of([](const Tensor& x) { return div(log(add(exp(mul(x, 1.5)), 1.0)), 1.5); })) < 1e-12);
  CHECK(max_abs_diff(grad_of([](const Tensor& x) { return elu(x, 0.7); }),
                     grad_of([](const Tensor& x) {
                       Tensor pos = gt(x, zeros_like(x));
                       return where(pos, x, mul(sub(exp(x), 1.0), 0.7));
                     })) < 1e-12);
}

TEST_CASE("backend gemm_bias and copy_many: the defaults are gemm over a copied bias, and one copy per pair") {
  Backend& be = backend_for(Device::cpu());
  for (bool tb : {false, true}) {
    CAPTURE(tb);
    const int64_t m = 7, n = 5, k = 3;
    const Tensor a = randn({m, k}), b = tb ? randn({n, k}) : randn({k, n}), bias = randn({n});
    const GemmArgs g{false, tb, m, n, k, k, tb ? k : n, n, 0.5, 0.25};  // beta is not read
    Tensor got = full({m, n}, 123.0), want = Tensor::empty({m, n});
    be.gemm_bias(g, a, b, bias, got);
    const Tensor prod = matmul(a, tb ? b.t() : b);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) want.set({i, j}, 0.5 * prod.at({i, j}) + bias.at({j}));
    CHECK(max_abs_diff(got, want) < 1e-5);
  }
  const std::vector<Tensor> src{randn({4, 3}), randn({6}).to(kFloat64), randn({3, 5}).t()};
  std::vector<Tensor> dst{Tensor::empty({4, 3}, kFloat64), Tensor::empty({6}), Tensor::empty({5, 3})};
  be.copy_many(src, dst);
  for (size_t i = 0; i < src.size(); ++i) CHECK(max_abs_diff(dst[i], src[i].to(dst[i].dtype())) == 0);
}

TEST_CASE("backend column_sum: each column's rows added in order, in double, whatever the thread count") {
  // The CPU half of the primitive behind linear's bias gradient under autocast (the CUDA half
  // is compared with this one in tests/backends/cuda/test_cuda_nn.cpp).
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {1, 1}, {257, 70}, {3000, 130}}) {
    const int64_t M = rows, N = cols;  // not the bindings: clang-14's INFO cannot capture those
    INFO("rows=", M, " cols=", N);
    Tensor x = randn({M, N}, kFloat64);
    std::vector<double> v = x.to_vector<double>(), want(N, 0.0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < N; ++c) want[c] += v[m * N + c];
    Tensor got = Tensor::empty({N}, kFloat64);
    backend_for(Device::cpu()).column_sum(x, got);
    CHECK(got.to_vector<double>() == want);  // the same additions in the same order
    Tensor x32 = x.to(kFloat32), got32 = Tensor::empty({N}, kFloat32);
    backend_for(Device::cpu()).column_sum(x32, got32);
    std::vector<double> v32 = x32.to(kFloat64).to_vector<double>(), want32(N, 0.0);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < N; ++c) want32[c] += v32[m * N + c];
    const std::vector<float> g32 = got32.to_vector<float>();
    for (int64_t c = 0; c < N; ++c) CHECK(g32[c] == (float)want32[c]);
  }
}

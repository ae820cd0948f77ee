// ops/attention.h: the fused attention against the materialised composite (matmul, masked_fill,
// softmax, the dropout mask, matmul), in values and gradients, and its error messages. The op
// table (op_table_reduce_linalg_nn.cpp) runs the gradcheck and the dtype and CUDA checks.
#include <cmath>
#include <limits>

#include "backends/backend.h"
#include "core/runtime.h"
#include "nn/attention.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

struct Case {
  const char* what;
  int64_t B, H, nq, nk, d;
  int mask = 0;  // 0: none; 1: batch 0 pads every third key, the other batches pad all; 2: key 0 padded
  bool causal = false;
  double p = 0;          // dropout, with a fresh Generator(kSeed)
  bool fused = false;    // q, k, v split from one (B, N, 3 H d) leaf (needs nq == nk)
  double scale = -1;
};

constexpr uint64_t kSeed = 29;

// The case's key mask as (B, nk) int64 values (empty: no mask).
std::vector<int64_t> key_mask_of(const Case& c) {
  if (c.mask == 0) return {};
  std::vector<int64_t> m(c.B * c.nk, 1);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t j = 0; j < c.nk; ++j)
      if (c.mask == 1) m[b * c.nk + j] = b == 0 && j % 3 != 1;
      else m[b * c.nk + j] = j != 0;
  return m;
}

// (B, 1, nq, nk) float64: 1 where query i may attend to key j, as the contract in
// backends/backend.h says (key mask and, with causality, j <= i).
Tensor keep_of(const Case& c) {
  const std::vector<int64_t> m = key_mask_of(c);
  std::vector<double> keep(c.B * c.nq * c.nk);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t i = 0; i < c.nq; ++i)
      for (int64_t j = 0; j < c.nk; ++j)
        keep[(b * c.nq + i) * c.nk + j] = (m.empty() || m[b * c.nk + j]) && (!c.causal || j <= i);
  return from_vector(keep, {c.B, 1, c.nq, c.nk});
}

AttentionArgs args_of(const Case& c) {
  AttentionArgs a;
  a.batch = c.B;
  a.heads = c.H;
  a.nq = c.nq;
  a.nk = c.nk;
  a.dim = c.d;
  a.dropout_p = c.p;
  a.philox = PhiloxState{kSeed, 0};  // what a fresh Generator(kSeed) reserves first
  return a;
}

// (B, H, nq, nk) float64 dropout factors from attention_dropout_keep: 1 / (1 - p) or 0.
Tensor dropout_factors(const Case& c) {
  const AttentionArgs a = args_of(c);
  std::vector<double> f(c.B * c.H * c.nq * c.nk);
  for (int64_t bh = 0; bh < c.B * c.H; ++bh)
    for (int64_t i = 0; i < c.nq; ++i)
      for (int64_t j = 0; j < c.nk; ++j)
        f[(bh * c.nq + i) * c.nk + j] = attention_dropout_keep(a, bh, i, j) ? 1.0 / (1.0 - c.p) : 0.0;
  return from_vector(f, {c.B, c.H, c.nq, c.nk});
}

// The materialised attention, written out: masked scores take the lowest finite value (as
// nn::scaled_dot_product_attention does), dropout multiplies the normalised weights.
Tensor composite(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep, const Tensor& drop,
                 double scale) {
  Tensor s = mul(matmul(q, k.transpose(-2, -1)), scale);
  s = masked_fill(s, eq(keep, scalar_tensor(0, kFloat64)), std::numeric_limits<double>::lowest());
  Tensor w = softmax(s, -1);
  if (drop.defined()) w = mul(w, drop);
  return matmul(w, v);
}

// The case's leaves: q, k, v, or one (B, N, 3 H d) tensor.
In leaves_of(const Case& c) {
  if (c.fused) return {rn({c.B, c.nq, 3 * c.H * c.d})};
  return {rn({c.B, c.H, c.nq, c.d}), rn({c.B, c.H, c.nk, c.d}), rn({c.B, c.H, c.nk, c.d})};
}

In qkv_of(const Case& c, const In& x) {
  if (!c.fused) return x;
  In parts = chunk(x[0], 3, -1);
  for (Tensor& t : parts) t = t.reshape({c.B, c.nq, c.H, c.d}).permute({0, 2, 1, 3});
  return parts;
}

// f's output and the gradients of every leaf after backward(seed), on fresh copies.
In value_and_grads(const std::function<Tensor(const In&)>& f, const In& leaves, const Tensor& seed) {
  In x;
  for (const Tensor& t : leaves) x.push_back(t.detach().clone().requires_grad_());
  Tensor y = f(x);
  y.backward(seed);
  In all{y.detach()};
  for (const Tensor& t : x) all.push_back(t.grad());
  return all;
}

AttentionOptions options_of(const Case& c, const Tensor& key_mask, Generator* gen) {
  AttentionOptions o;
  if (c.mask) o.key_mask = key_mask;
  o.causal = c.causal;
  o.dropout_p = c.p;
  o.training = c.p > 0;
  o.gen = gen;
  o.scale = c.scale;
  return o;
}

}  // namespace

TEST_CASE("attention: values and gradients equal the materialised composite (float64)") {
  const std::vector<Case> cases = {
      {"plain, nq 7, nk 13", 2, 2, 7, 13, 5},
      {"key mask, batch 1 all padding", 3, 2, 6, 13, 4, 1},
      {"causal, key 0 padded: query 0 has no key", 2, 1, 7, 7, 3, 2, true},
      {"causal, nq 13 > nk 7, scale 0.7", 1, 2, 13, 7, 8, 0, true, 0, false, 0.7},
      {"causal, nq 5 < nk 11, key mask", 2, 2, 5, 11, 6, 1, true},
      {"fused projection, causal, key mask", 2, 3, 9, 9, 4, 1, true, 0, true},
      {"dropout 0.2, key mask, nq 7, nk 13", 2, 2, 7, 13, 5, 1, false, 0.2},
      {"dropout 0.5, causal, fused projection", 2, 2, 11, 11, 3, 2, true, 0.5, true},
      {"parallel loops: B 2, H 3, N 40, causal, key mask", 2, 3, 40, 40, 8, 1, true},
      {"parallel loops with dropout: B 2, H 2, nq 33, nk 50", 2, 2, 33, 50, 8, 0, false, 0.1},
      // The CPU kernel's tiles are 64 query rows by 128 keys: these span several of each,
      // with partial tiles at both ends, causal tiles skipped and uniform rows among them.
      {"tiles: nq 150, nk 300, key mask, dropout 0.1", 2, 1, 150, 300, 8, 1, false, 0.1},
      {"tiles: causal, nq 200 > nk 140, key 0 padded", 1, 2, 200, 140, 4, 2, true},
      {"tiles: causal, nq 130 < nk 270, key mask, dropout 0.3", 2, 1, 130, 270, 6, 1, true, 0.3},
      {"tiles: fused projection, N 129, causal, dropout 0.2", 1, 2, 129, 129, 5, 0, true, 0.2, true},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Tensor keep = keep_of(c), key_mask = c.mask ? from_vector(key_mask_of(c), {c.B, c.nk}) : Tensor();
    const Tensor drop = c.p > 0 ? dropout_factors(c) : Tensor();
    const double scale = c.scale >= 0 ? c.scale : 1.0 / std::sqrt((double)c.d);
    const In leaves = leaves_of(c);
    const Tensor seed = randn({c.B, c.H, c.nq, c.d}, kFloat64);
    In got = value_and_grads(
        [&](const In& x) {
          Generator gen(kSeed);
          In qkv = qkv_of(c, x);
          Tensor y = attention(qkv[0], qkv[1], qkv[2], options_of(c, key_mask, &gen));
          CHECK(gen.offset() == (c.p > 0 ? attention_dropout_counters(args_of(c)) : 0));
          CHECK(y.permute({0, 2, 1, 3}).is_contiguous());  // (B, nq, H, d) memory
          return y;
        },
        leaves, seed);
    In want = value_and_grads(
        [&](const In& x) {
          In qkv = qkv_of(c, x);
          return composite(qkv[0], qkv[1], qkv[2], keep, drop, scale);
        },
        leaves, seed);
    for (size_t i = 0; i < got.size(); ++i) {
      const std::string what = i == 0 ? "output" : "gradient of leaf " + std::to_string(i - 1);
      INFO(what);
      CHECK(got[i].shape() == want[i].shape());
      CHECK(max_abs_diff(got[i], want[i]) < 1e-12);
    }
    if (c.nq == c.nk && c.p == 0 && c.scale < 0) {  // nn's composite, where it applies
      In sdpa = value_and_grads(
          [&](const In& x) {
            In qkv = qkv_of(c, x);
            return nn::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], keep);
          },
          leaves, seed);
      for (size_t i = 0; i < got.size(); ++i) CHECK(max_abs_diff(got[i], sdpa[i]) < 1e-12);
    }
  }
}

TEST_CASE("attention_qkv: equals attention on the chunked, head-split projection, values and gradients") {
  // The same kernels read the same elements, so values agree bit for bit; the chunked path's
  // gradient is three zero-padded slices added up, which is exact too.
  manual_seed(31);
  for (DType dt : {kFloat64, kFloat32}) {
    INFO(dtype_name(dt));
    const int64_t B = 2, N = 10, H = 3, d = 4, E = H * d;
    const Tensor base = randn({B, N, 3 * E}, dt);
    std::vector<int64_t> m(B * N, 1);
    m[N - 1] = m[N - 2] = 0;
    AttentionOptions o;
    o.key_mask = from_vector(m, {B, N});
    o.causal = true;
    Generator g1(4), g2(4);
    o.dropout_p = 0.2;
    o.training = true;
    Tensor a = base.clone().requires_grad_(), b = base.clone().requires_grad_();
    o.gen = &g1;
    const Tensor ya = attention_qkv(a, H, o);
    o.gen = &g2;
    std::vector<Tensor> p = chunk(b, 3, -1);
    for (Tensor& t : p) t = t.reshape({B, N, H, d}).permute({0, 2, 1, 3});
    const Tensor yb = attention(p[0], p[1], p[2], o).permute({0, 2, 1, 3}).reshape({B, N, E});
    CHECK(ya.shape() == Shape({B, N, E}));
    CHECK(max_abs_diff(ya, yb) == 0.0);
    const Tensor w = randn({B, N, E}, dt);
    sum(mul(ya, w)).backward();
    sum(mul(yb, w)).backward();
    CHECK(max_abs_diff(a.grad(), b.grad()) == 0.0);
  }
  check_error([] { attention_qkv(randn({2, 5, 12}), 5); }, {"attention_qkv", "3 x heads", "(2, 5, 12)"});
  check_error([] { attention_qkv(randn({5, 12}), 2); }, {"attention_qkv", "(B, N, 3 E)"});
}

TEST_CASE("attention_qkv_group: each problem's values and gradients are attention_qkv's, bit for bit") {
  // The problems are prepared in order (dropout's counters reserved as attention_qkv on each in
  // turn reserves them); the CPU backend runs them one by one, CUDA's test case runs its group
  // kernels against the same rule. One output left out of the loss gets no gradient: its
  // projection's gradient is zero.
  manual_seed(32);
  for (DType dt : {kFloat64, kFloat32}) {
    INFO(dtype_name(dt));
    const int64_t B = 2, H = 2, d = 3, E = H * d;
    const std::vector<int64_t> lengths{7, 7, 4, 11};
    std::vector<Tensor> base, w;
    for (int64_t n : lengths) {
      base.push_back(randn({B, n, 3 * E}, dt));
      w.push_back(randn({B, n, E}, dt));
    }
    AttentionOptions o;
    o.dropout_p = 0.25;
    o.training = true;
    Generator g1(9), g2(9);
    std::vector<Tensor> a, b, ya;
    for (const Tensor& t : base) {
      a.push_back(t.clone().requires_grad_());
      b.push_back(t.clone().requires_grad_());
    }
    o.gen = &g1;
    for (const Tensor& t : a) ya.push_back(attention_qkv(t, H, o));
    o.gen = &g2;
    const std::vector<Tensor> yb = attention_qkv_group(b, H, o);
    REQUIRE(yb.size() == lengths.size());
    Tensor la, lb;
    for (size_t i = 0; i < lengths.size(); ++i) {
      CHECK(yb[i].shape() == Shape({B, lengths[i], E}));
      CHECK(max_abs_diff(ya[i], yb[i]) == 0.0);
      if (i == 2) continue;  // left out of the loss
      la = la.defined() ? add(la, sum(mul(ya[i], w[i]))) : sum(mul(ya[i], w[i]));
      lb = lb.defined() ? add(lb, sum(mul(yb[i], w[i]))) : sum(mul(yb[i], w[i]));
    }
    la.backward();
    lb.backward();
    for (size_t i = 0; i < lengths.size(); ++i) {
      CAPTURE(i);
      if (i == 2) {
        CHECK_FALSE(a[i].grad().defined());
        REQUIRE(b[i].grad().defined());
        CHECK(max_abs_diff(b[i].grad(), zeros_like(b[i].grad())) == 0.0);
        continue;
      }
      CHECK(max_abs_diff(a[i].grad(), b[i].grad()) == 0.0);
      CHECK(max_abs_diff(b[i].grad(), zeros_like(b[i].grad())) > 0.0);
    }
  }
  // Without grad: no graph. Bad input: named.
  {
    NoGradGuard off;
    const std::vector<Tensor> y = attention_qkv_group({randn({1, 3, 6}).requires_grad_()}, 1);
    CHECK_FALSE(y[0].requires_grad());
  }
  check_error([] { attention_qkv_group({}, 1); }, {"attention_qkv_group", "at least one"});
  check_error([] { attention_qkv_group({randn({2, 5, 12}), randn({2, 5, 15})}, 2); },
              {"attention_qkv_group", "3 x heads", "(2, 5, 15)"});
  check_error([] { attention_qkv_group({randn({2, 5, 12}), randn({2, 5, 12}, kFloat64)}, 2); },
              {"attention_qkv_group", "dtype"});
  check_error(
      [] {
        AttentionOptions o;
        o.key_mask = ones({2, 5});
        attention_qkv_group({randn({2, 5, 12})}, 2, o);
      },
      {"attention_qkv_group", "key_mask"});
}

TEST_CASE("attention: a query with every key padded averages v uniformly and passes no gradient to q or k") {
  const int64_t B = 2, H = 2, N = 6, d = 3;
  In x{rn({B, H, N, d}), rn({B, H, N, d}), rn({B, H, N, d})};
  for (Tensor& t : x) t.requires_grad_();
  AttentionOptions o;
  o.key_mask = from_vector(std::vector<float>{1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0}, {B, N});  // float32 works too
  Tensor y = attention(x[0], x[1], x[2], o);
  CHECK(max_abs_diff(y.select(0, 1), mean(x[2].select(0, 1), {1}, true).expand({H, N, d})) < 1e-14);
  y.backward(randn(y.shape(), kFloat64));
  CHECK(max_abs_diff(x[0].grad().select(0, 1), zeros({H, N, d}, kFloat64)) == 0);
  CHECK(max_abs_diff(x[1].grad().select(0, 1), zeros({H, N, d}, kFloat64)) == 0);
  CHECK(max_abs_diff(x[2].grad().select(0, 1), zeros({H, N, d}, kFloat64)) > 0);  // v still gets the mean's
}

TEST_CASE("attention: keys and values broadcast along the sequence (row stride 0) equal the composite") {
  const int64_t B = 2, H = 2, nq = 70, nk = 150, d = 6;
  const Tensor q = rn({B, H, nq, d}), k1 = rn({B, H, 1, d}), v = rn({B, H, nk, d});
  const Tensor k = k1.expand({B, H, nk, d});
  REQUIRE(k.strides()[2] == 0);
  AttentionOptions o;
  o.causal = true;
  const double scale = 1.0 / std::sqrt((double)d);
  Case c{"broadcast", B, H, nq, nk, d, 0, true};
  const Tensor want = composite(q, k.contiguous(), v, keep_of(c), Tensor(), scale);
  CHECK(max_abs_diff(attention(q, k, v, o), want) < 1e-12);
  const Tensor v1 = rn({B, H, 1, d});
  const Tensor want1 = composite(q, k.contiguous(), v1.expand({B, H, nk, d}).contiguous(), keep_of(c), Tensor(), scale);
  CHECK(max_abs_diff(attention(q, k, v1.expand({B, H, nk, d}), o), want1) < 1e-12);
}

TEST_CASE("attention: dropout masks are seeded, off in eval, and backward reuses the forward's") {
  const int64_t B = 2, H = 2, N = 9, d = 4;
  Tensor q = rn({B, H, N, d}), k = rn({B, H, N, d}), v = rn({B, H, N, d});
  AttentionOptions o;
  o.dropout_p = 0.4;
  o.training = true;
  Generator g1(5), g2(5);
  o.gen = &g1;
  Tensor a = attention(q, k, v, o), b = attention(q, k, v, o);
  o.gen = &g2;
  Tensor a2 = attention(q, k, v, o);
  CHECK(max_abs_diff(a, a2) == 0);  // same seed, same offset: same mask
  CHECK(max_abs_diff(a, b) > 0);    // the generator moved on
  // eval: dropout off, nothing drawn
  o.training = false;
  const uint64_t before = g2.offset();
  CHECK(max_abs_diff(attention(q, k, v, o), attention(q, k, v)) == 0);
  CHECK(g2.offset() == before);
  // the default generator serves a call without one
  manual_seed(3);
  o.training = true;
  o.gen = nullptr;
  Tensor c1 = attention(q, k, v, o);
  manual_seed(3);
  CHECK(max_abs_diff(attention(q, k, v, o), c1) == 0);
  // backward after other draws from the same generator still uses the forward's mask
  Generator g3(5);
  o.gen = &g3;
  Tensor qq = q.detach().clone().requires_grad_();
  Tensor y = attention(qq, k, v, o);
  attention(q, k, v, o);  // moves g3 on before the backward
  y.sum().backward();
  Generator g4(5);
  o.gen = &g4;
  Tensor qq2 = q.detach().clone().requires_grad_();
  attention(qq2, k, v, o).sum().backward();
  CHECK(max_abs_diff(qq.grad(), qq2.grad()) == 0);
}

TEST_CASE("attention: float32 agrees with float64; results do not depend on the thread count") {
  // Head dims with and without a remainder of 8 (the float32 kernels transpose K and V in 8 x
  // 8 blocks and multiply 16 columns at a time), N not a multiple of 8 either.
  for (int64_t d : {16, 13, 40}) {
  CAPTURE(d);
  const int64_t B = 2, H = 3, N = 137;
  In x{rn({B, H, N, d}), rn({B, H, N, d}), rn({B, H, N, d})};
  AttentionOptions o;
  o.key_mask = from_vector(std::vector<int64_t>(B * N, 1), {B, N});
  o.causal = true;
  const Tensor seed = randn({B, H, N, d}, kFloat64);
  auto run = [&](DType dt) {
    return value_and_grads(
        [&](const In& in) { return attention(in[0].to(dt), in[1].to(dt), in[2].to(dt), o); }, x,
        seed.to(dt));
  };
  In f64 = run(kFloat64), f32 = run(kFloat32);
  for (size_t i = 0; i < f64.size(); ++i) CHECK(max_abs_diff(f32[i], f64[i]) < 1e-5);
  const int threads = cpu_threads();
  set_cpu_threads(1);
  In one = run(kFloat32);
  set_cpu_threads(threads);
  for (size_t i = 0; i < f32.size(); ++i) CHECK(max_abs_diff(one[i], f32[i]) == 0);
  }
}

TEST_CASE("attention: no graph without grad; bad shapes, dtypes, masks and options are refused") {
  Tensor q = rn({2, 3, 5, 4}).requires_grad_(), k = rn({2, 3, 6, 4}), v = rn({2, 3, 6, 4});
  {
    NoGradGuard no_grad;
    CHECK(!attention(q, k, v).requires_grad());
  }
  CHECK(attention(q, k, v).grad_fn_name() == "AttentionBackward");
  CHECK(!attention(q.detach(), k, v).requires_grad());

  check_error([&] { attention(q.select(0, 0), k, v); }, {"attention", "(B, H, nq, d)", "(3, 5, 4)"});
  check_error([&] { attention(q, rn({2, 3, 6, 5}), rn({2, 3, 6, 5})); }, {"attention", "(2, 3, 5, 4)", "(2, 3, 6, 5)"});
  check_error([&] { attention(q, k, rn({2, 3, 7, 4})); }, {"attention", "(2, 3, 6, 4)", "(2, 3, 7, 4)"});
  check_error([&] { attention(q, rn({1, 3, 6, 4}), rn({1, 3, 6, 4})); }, {"attention", "(1, 3, 6, 4)"});
  check_error([&] { attention(q.to(kInt64), k, v); }, {"attention", "int64"});
  check_error([&] { attention(q.to(kFloat32), k, v); }, {"attention", "float32", "float64"});
  check_error([&] { attention(q, k, v.to(kFloat32)); }, {"attention", "float64", "float32"});
  AttentionOptions o;
  o.key_mask = ones({2, 5});
  check_error([&] { attention(q, k, v, o); }, {"attention", "key_mask", "(2, 6)", "(2, 5)"});
  o = {};
  o.dropout_p = 1.5;
  check_error([&] { attention(q, k, v, o); }, {"attention", "dropout_p", "1.5"});
  o = {};
  o.scale = std::nan("");
  check_error([&] { attention(q, k, v, o); }, {"attention", "scale"});
}

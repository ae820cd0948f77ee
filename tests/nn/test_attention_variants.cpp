// nn/attention_variants: Linear, Performer, Linformer and Local attention against naive
// loops over (b, h, i, j) in float64, their limits (full attention), seeds, gradients, errors.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/attention_variants.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// q, k, v of a module's fused projection, read on the host: element (b, h, i, c) of part
// 0 (q), 1 (k) or 2 (v). Shapes: B batch, N sequence, H heads, dh per head.
struct HostHeads {
  int64_t B, N, H, dh, qkv_dim;
  std::vector<double> p;  // (B, N, 3 qkv_dim)
  double at(int part, int64_t b, int64_t h, int64_t i, int64_t c) const {
    return p[(b * N + i) * 3 * qkv_dim + part * qkv_dim + h * dh + c];
  }
  std::vector<double> row(int part, int64_t b, int64_t h, int64_t i) const {
    std::vector<double> r(dh);
    for (int64_t c = 0; c < dh; ++c) r[c] = at(part, b, h, i, c);
    return r;
  }
};

HostHeads host_heads(nn::Linear& qkv, const Tensor& x, int64_t heads) {
  NoGradGuard no_grad;
  HostHeads hh;
  hh.B = x.shape()[0];
  hh.N = x.shape()[1];
  hh.qkv_dim = qkv.out_features / 3;
  hh.H = heads;
  hh.dh = hh.qkv_dim / heads;
  hh.p = qkv.forward(x).to_vector<double>();
  return hh;
}

// y (B, N, qkv_dim) laid out as heads concatenated -> the module's output projection.
Tensor project_out(nn::Linear& out, const std::vector<double>& y, int64_t B, int64_t N) {
  NoGradGuard no_grad;
  return out.forward(from_vector(y, {B, N, out.in_features}));
}

using Mask = std::vector<double>;  // (B, N) flattened, empty = every token real

bool visible(const Mask& mask, int64_t N, int64_t b, int64_t i, int64_t j, bool causal) {
  if (!mask.empty() && mask[b * N + j] == 0) return false;
  return !causal || j <= i;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t c = 0; c < a.size(); ++c) s += a[c] * b[c];
  return s;
}

using FeatureMap = std::function<std::vector<double>(const std::vector<double>&)>;

// sum_j (phi(q_i) . phi(k_j)) v_j / sum_j (phi(q_i) . phi(k_j)) over visible keys; 0 if none.
std::vector<double> naive_kernel_attention(const HostHeads& hh, const FeatureMap& phi,
                                           const Mask& mask, bool causal) {
  std::vector<double> y(hh.B * hh.N * hh.qkv_dim, 0.0);
  for (int64_t b = 0; b < hh.B; ++b)
    for (int64_t h = 0; h < hh.H; ++h)
      for (int64_t i = 0; i < hh.N; ++i) {
        std::vector<double> fq = phi(hh.row(0, b, h, i)), num(hh.dh, 0.0);
        double den = 0;
        for (int64_t j = 0; j < hh.N; ++j) {
          if (!visible(mask, hh.N, b, i, j, causal)) continue;
          const double s = dot(fq, phi(hh.row(1, b, h, j)));
          den += s;
          for (int64_t c = 0; c < hh.dh; ++c) num[c] += s * hh.at(2, b, h, j, c);
        }
        for (int64_t c = 0; c < hh.dh; ++c)
          y[(b * hh.N + i) * hh.qkv_dim + h * hh.dh + c] = den > 0 ? num[c] / den : 0.0;
      }
  return y;
}

// Softmax attention over the keys allowed(b, i, j); a query with none averages every key
// uniformly (scaled_dot_product_attention's rule).
std::vector<double> naive_softmax_attention(
    const HostHeads& hh, const std::function<bool(int64_t, int64_t, int64_t)>& allowed) {
  std::vector<double> y(hh.B * hh.N * hh.qkv_dim, 0.0);
  const double scale = 1.0 / std::sqrt((double)hh.dh);
  for (int64_t b = 0; b < hh.B; ++b)
    for (int64_t h = 0; h < hh.H; ++h)
      for (int64_t i = 0; i < hh.N; ++i) {
        std::vector<double> w(hh.N, 0.0);
        bool any = false;
        for (int64_t j = 0; j < hh.N; ++j) any |= allowed(b, i, j);
        double top = -1e300;
        for (int64_t j = 0; j < hh.N; ++j) {
          if (any && !allowed(b, i, j)) continue;
          w[j] = dot(hh.row(0, b, h, i), hh.row(1, b, h, j)) * scale;
          top = std::max(top, w[j]);
        }
        double total = 0;
        for (int64_t j = 0; j < hh.N; ++j) {
          if (!any) w[j] = 1.0;
          else w[j] = allowed(b, i, j) ? std::exp(w[j] - top) : 0.0;
          total += w[j];
        }
        for (int64_t j = 0; j < hh.N; ++j)
          for (int64_t c = 0; c < hh.dh; ++c)
            y[(b * hh.N + i) * hh.qkv_dim + h * hh.dh + c] += w[j] / total * hh.at(2, b, h, j, c);
      }
  return y;
}

void check_module_grad(nn::Module& m, const Tensor& x, const std::function<Tensor(const Tensor&)>& fwd) {
  m.to(kFloat64);
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return fwd(in[0]); }, inputs);
  CHECK_MESSAGE(r.ok, r.message);
}

// Two sequences of N = 7: padding in the middle and at the end of the first; the second
// starts with padding, so under causality its first query sees no key at all.
const Mask kMask7 = {1, 1, 1, 1, 0, 1, 0,  //
                     0, 1, 1, 0, 1, 1, 1};
Tensor mask_tensor(const Mask& m, int64_t B, int64_t N) {
  std::vector<int64_t> ints(m.begin(), m.end());
  return from_vector(ints, {B, N});
}

// A MultiHeadSelfAttention with the variant's qkv and out weights (same parameter names).
std::shared_ptr<nn::MultiHeadSelfAttention> full_attention_like(nn::Module& m, int64_t dim,
                                                                int64_t heads, int64_t qkv_dim,
                                                                bool bias, int64_t out_dim) {
  auto full = std::make_shared<nn::MultiHeadSelfAttention>(dim, heads, qkv_dim, 0.0, bias, true,
                                                            out_dim);
  full->to(kFloat64);
  nn::StateDict sd;
  for (auto& [name, t] : m.state_dict())
    if (name.rfind("qkv.", 0) == 0 || name.rfind("out.", 0) == 0) sd[name] = t;
  full->load_state_dict(sd);
  return full;
}

double rel_error(const Tensor& a, const Tensor& ref) {
  double num = sum(pow(sub(a, ref), 2.0)).item(), den = sum(pow(ref, 2.0)).item();
  return std::sqrt(num / den);
}

}  // namespace

TEST_CASE("attention_variants: LinearAttention equals a naive loop (key mask, causal, chunks)") {
  manual_seed(11);
  const int64_t B = 2, N = 7, D = 6, H = 2, QD = 8, OUT = 5;
  Tensor x = rn({B, N, D});
  for (int64_t chunk : {1, 3, 64}) {
    nn::LinearAttention attn(D, H, QD, true, OUT, chunk);
    attn.to(kFloat64);
    HostHeads hh = host_heads(*attn.qkv, x, H);
    FeatureMap phi = [](const std::vector<double>& r) {
      std::vector<double> f(r.size());
      for (size_t c = 0; c < r.size(); ++c) f[c] = r[c] > 0 ? r[c] + 1 : std::exp(r[c]);
      return f;
    };
    for (bool causal : {false, true})
      for (bool masked : {false, true}) {
        CAPTURE(chunk);
        CAPTURE(causal);
        CAPTURE(masked);
        Mask mask = masked ? kMask7 : Mask{};
        Tensor y = attn.forward(x, masked ? mask_tensor(mask, B, N) : Tensor(), causal);
        CHECK(y.shape() == Shape{B, N, OUT});
        Tensor ref = project_out(*attn.out, naive_kernel_attention(hh, phi, mask, causal), B, N);
        CHECK(max_abs_diff(y, ref) < 1e-12);
      }
  }
}

TEST_CASE("attention_variants: PerformerAttention equals a naive loop over its features") {
  manual_seed(12);
  const int64_t B = 2, N = 7, D = 6, H = 2, QD = 8, M = 10;  // M not a multiple of dh = 4
  Tensor x = rn({B, N, D});
  nn::PerformerAttention attn(D, H, QD, M, /*seed=*/3, true, -1, /*chunk_size=*/3);
  attn.to(kFloat64);
  REQUIRE(attn.projection.shape() == Shape{M, 4});
  std::vector<double> w = attn.projection.to_vector<double>();
  const int64_t dh = 4;
  // The plain formula, without the stabilising shifts the module subtracts.
  FeatureMap phi = [&](const std::vector<double>& r) {
    const double s = std::pow((double)dh, -0.25);
    double sq = 0;
    for (int64_t c = 0; c < dh; ++c) sq += (r[c] * s) * (r[c] * s);
    std::vector<double> f(M);
    for (int64_t f_i = 0; f_i < M; ++f_i) {
      double proj = 0;
      for (int64_t c = 0; c < dh; ++c) proj += w[f_i * dh + c] * r[c] * s;
      f[f_i] = std::exp(proj - sq / 2) / std::sqrt((double)M);
    }
    return f;
  };
  HostHeads hh = host_heads(*attn.qkv, x, H);
  for (bool causal : {false, true})
    for (bool masked : {false, true}) {
      CAPTURE(causal);
      CAPTURE(masked);
      Mask mask = masked ? kMask7 : Mask{};
      Tensor y = attn.forward(x, masked ? mask_tensor(mask, B, N) : Tensor(), causal);
      Tensor ref = project_out(*attn.out, naive_kernel_attention(hh, phi, mask, causal), B, N);
      CHECK(max_abs_diff(y, ref) < 1e-11);
    }
}

TEST_CASE("attention_variants: Performer projection is blockwise orthogonal, chi-scaled, seeded") {
  const int64_t M = 20, dh = 8;
  Tensor w = nn::PerformerAttention::orthogonal_random_features(M, dh, 5);
  CHECK(w.shape() == Shape{M, dh});
  std::vector<double> v = w.to_vector<double>();
  auto row_dot = [&](int64_t r, int64_t s) {
    double d = 0;
    for (int64_t c = 0; c < dh; ++c) d += v[r * dh + c] * v[s * dh + c];
    return d;
  };
  for (int64_t r = 0; r < M; ++r)
    for (int64_t s = 0; s < r; ++s)
      if (r / dh == s / dh) CHECK(std::abs(row_dot(r, s)) < 1e-10);  // same block
  // Row norms ~ chi(dh): not all 1, around sqrt(dh) on average over many rows.
  Tensor big = nn::PerformerAttention::orthogonal_random_features(4096, dh, 6);
  Tensor norms = sqrt(sum(mul(big, big), {1}));
  CHECK(mean(norms).item() == doctest::Approx(std::sqrt((double)dh)).epsilon(0.05));
  CHECK(max_abs_diff(w, nn::PerformerAttention::orthogonal_random_features(M, dh, 5)) == 0.0);
  CHECK(max_abs_diff(w, nn::PerformerAttention::orthogonal_random_features(M, dh, 6)) > 0.1);

  // Same seed (and weights): identical outputs; another seed: different ones.
  Tensor x = randn({2, 5, 8});
  manual_seed(1);
  nn::PerformerAttention a(8, 2, -1, 16, /*seed=*/42);
  manual_seed(1);
  nn::PerformerAttention b(8, 2, -1, 16, /*seed=*/42);
  manual_seed(1);
  nn::PerformerAttention c(8, 2, -1, 16, /*seed=*/43);
  CHECK(max_abs_diff(a.forward(x), b.forward(x)) == 0.0);
  CHECK(max_abs_diff(a.forward(x), c.forward(x)) > 1e-4);
  b.redraw_features(43);
  CHECK(b.seed == 43);
  CHECK(max_abs_diff(b.forward(x), c.forward(x)) == 0.0);
}

TEST_CASE("attention_variants: Performer approaches softmax attention as num_features grows") {
  const int64_t B = 2, N = 6, D = 8, H = 1;
  Tensor x = mul(randn({B, N, D}, kFloat64), 0.5);
  Tensor mask = mask_tensor({1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1}, B, N);
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    double err[2] = {0, 0};
    const int64_t features[2] = {16, 4096};
    for (int which = 0; which < 2; ++which)
      for (uint64_t seed = 0; seed < 4; ++seed) {
        manual_seed(100);  // the same qkv and out weights for every seed and size
        nn::PerformerAttention perf(D, H, -1, features[which], seed, /*bias=*/false);
        perf.to(kFloat64);
        auto full = full_attention_like(perf, D, H, D, false, D);
        err[which] += rel_error(perf.forward(x, mask, causal), full->forward(x, mask, causal)) / 4;
      }
    MESSAGE("Performer relative error, m=16: ", err[0], ", m=4096: ", err[1]);
    CHECK(err[1] < 0.25 * err[0]);
    CHECK(err[1] < 0.02);
  }
}

TEST_CASE("attention_variants: LinformerAttention equals a naive loop (key mask, N < max_len)") {
  manual_seed(13);
  const int64_t B = 2, N = 7, D = 6, H = 2, QD = 8, MAXLEN = 9, K = 3;
  Tensor x = rn({B, N, D});
  for (bool share : {false, true}) {
    CAPTURE(share);
    nn::LinformerAttention attn(D, H, MAXLEN, K, QD, share);
    attn.to(kFloat64);
    CHECK(attn.F.defined() == !share);
    HostHeads hh = host_heads(*attn.qkv, x, H);
    std::vector<double> e = attn.E.to_vector<double>();
    std::vector<double> f = share ? e : attn.F.to_vector<double>();
    for (bool masked : {false, true}) {
      CAPTURE(masked);
      Mask mask = masked ? kMask7 : Mask{};
      std::vector<double> y(B * N * QD, 0.0);
      const int64_t dh = QD / H;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h) {
          // K' = E[:, :N] (mask * K), V' = F[:, :N] (mask * V): (K, dh)
          std::vector<double> kp(K * dh, 0.0), vp(K * dh, 0.0);
          for (int64_t r = 0; r < K; ++r)
            for (int64_t j = 0; j < N; ++j) {
              const double keep = mask.empty() ? 1.0 : mask[b * N + j];
              for (int64_t c = 0; c < dh; ++c) {
                kp[r * dh + c] += e[r * MAXLEN + j] * keep * hh.at(1, b, h, j, c);
                vp[r * dh + c] += f[r * MAXLEN + j] * keep * hh.at(2, b, h, j, c);
              }
            }
          for (int64_t i = 0; i < N; ++i) {
            std::vector<double> s(K);
            double top = -1e300, total = 0;
            for (int64_t r = 0; r < K; ++r) {
              s[r] = 0;
              for (int64_t c = 0; c < dh; ++c) s[r] += hh.at(0, b, h, i, c) * kp[r * dh + c];
              s[r] /= std::sqrt((double)dh);
              top = std::max(top, s[r]);
            }
            for (int64_t r = 0; r < K; ++r) total += (s[r] = std::exp(s[r] - top));
            for (int64_t r = 0; r < K; ++r)
              for (int64_t c = 0; c < dh; ++c)
                y[(b * N + i) * QD + h * dh + c] += s[r] / total * vp[r * dh + c];
          }
        }
      Tensor out = attn.forward(x, masked ? mask_tensor(mask, B, N) : Tensor());
      CHECK(max_abs_diff(out, project_out(*attn.out, y, B, N)) < 1e-12);
    }
  }
}

TEST_CASE("attention_variants: Linformer with k = max_len = N and E = F = I is full attention") {
  manual_seed(14);
  const int64_t B = 2, N = 5, D = 6, H = 3;
  Tensor x = rn({B, N, D});
  nn::LinformerAttention attn(D, H, /*max_len=*/N, /*k=*/N);
  attn.to(kFloat64);
  {
    NoGradGuard no_grad;
    attn.E.copy_(eye(N, -1, kFloat64));
    attn.F.copy_(eye(N, -1, kFloat64));
  }
  auto full = full_attention_like(attn, D, H, D, true, D);
  CHECK(max_abs_diff(attn.forward(x), full->forward(x)) < 1e-12);
}

TEST_CASE("attention_variants: LocalAttention equals a naive loop (window, global, masks)") {
  manual_seed(15);
  const int64_t B = 2, N = 7, D = 6, H = 2, QD = 8;
  Tensor x = rn({B, N, D});
  for (int64_t window : {0, 1, 2})
    for (int64_t global : {0, 1, 2}) {
      nn::LocalAttention attn(D, H, window, global, QD);
      attn.to(kFloat64);
      HostHeads hh = host_heads(*attn.qkv, x, H);
      for (bool causal : {false, true})
        for (bool masked : {false, true}) {
          CAPTURE(window);
          CAPTURE(global);
          CAPTURE(causal);
          CAPTURE(masked);
          Mask mask = masked ? kMask7 : Mask{};
          auto allowed = [&](int64_t b, int64_t i, int64_t j) {
            const bool local = std::abs(i - j) <= window || i < global || j < global;
            return local && visible(mask, N, b, i, j, causal);
          };
          Tensor y = attn.forward(x, masked ? mask_tensor(mask, B, N) : Tensor(), causal);
          Tensor ref = project_out(*attn.out, naive_softmax_attention(hh, allowed), B, N);
          CHECK(max_abs_diff(y, ref) < 1e-12);
        }
    }
}

TEST_CASE("attention_variants: LocalAttention with window >= N is full attention") {
  manual_seed(16);
  const int64_t B = 2, N = 7, D = 6, H = 2;
  Tensor x = rn({B, N, D});
  Tensor mask = mask_tensor(kMask7, B, N);
  for (int64_t window : {N - 1, N + 3}) {
    nn::LocalAttention attn(D, H, window, /*num_global=*/1);
    attn.to(kFloat64);
    auto full = full_attention_like(attn, D, H, D, true, D);
    for (bool causal : {false, true}) {
      CHECK(max_abs_diff(attn.forward(x, Tensor(), causal), full->forward(x, Tensor(), causal)) < 1e-12);
      CHECK(max_abs_diff(attn.forward(x, mask, causal), full->forward(x, mask, causal)) < 1e-12);
    }
  }
}

TEST_CASE("attention_variants: gradcheck of every variant in its input and parameters (float64)") {
  manual_seed(17);
  const int64_t B = 2, N = 5, D = 4, H = 2, QD = 6;
  Tensor mask = mask_tensor({1, 1, 0, 1, 1, 0, 1, 1, 1, 0}, B, N);
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    nn::LinearAttention lin(D, H, QD, true, 3, /*chunk_size=*/2);
    check_module_grad(lin, rn({B, N, D}), [&](const Tensor& x) { return lin.forward(x, mask, causal); });
    nn::PerformerAttention perf(D, H, QD, /*num_features=*/5, /*seed=*/9, true, 3, /*chunk_size=*/2);
    check_module_grad(perf, rn({B, N, D}), [&](const Tensor& x) { return perf.forward(x, mask, causal); });
    nn::LocalAttention loc(D, H, /*window=*/1, /*num_global=*/1, QD, 0.0, true, 3);
    check_module_grad(loc, rn({B, N, D}), [&](const Tensor& x) { return loc.forward(x, mask, causal); });
  }
  for (bool share : {false, true}) {
    CAPTURE(share);
    nn::LinformerAttention lf(D, H, /*max_len=*/7, /*k=*/3, QD, share, 0.0, true, 3);
    check_module_grad(lf, rn({B, N, D}), [&](const Tensor& x) { return lf.forward(x, mask); });
  }
  nn::LinearAttention no_mask(D, 1);
  check_module_grad(no_mask, rn({1, 3, D}), [&](const Tensor& x) { return no_mask.forward(x); });
}

TEST_CASE("attention_variants: shapes for odd and short N, float32, out_dim") {
  for (int64_t N : {1, 3, 7}) {
    CAPTURE(N);
    Tensor x = randn({3, N, 6});
    Tensor mask = ones({3, N});
    std::vector<std::shared_ptr<nn::SelfAttention>> mods = {
        std::make_shared<nn::LinearAttention>(6, 3, 9, true, 5, 2),
        std::make_shared<nn::PerformerAttention>(6, 3, 9, 7, 1, true, 5, 2),
        std::make_shared<nn::LinformerAttention>(6, 3, 8, 4, 9, false, 0.0, true, 5),
        std::make_shared<nn::LocalAttention>(6, 3, 1, 1, 9, 0.0, true, 5)};
    for (auto& m : mods) {
      CAPTURE(m->type_name());
      Tensor y = m->forward(x, mask);
      CHECK(y.shape() == Shape{3, N, 5});
      CHECK(y.dtype() == kFloat32);
      CHECK(std::isfinite(sum(abs(y)).item()));
      if (m->type_name() != "LinformerAttention")
        CHECK(m->forward(x, mask, true).shape() == Shape{3, N, 5});
    }
  }
}

TEST_CASE("attention_variants: parameters, buffers and extra_repr") {
  nn::PerformerAttention perf(8, 2, -1, 32, 7);
  CHECK(perf.named_buffers().size() == 1);
  CHECK(perf.named_buffers()[0].first == "projection");
  CHECK(perf.num_parameters() == 8 * 24 + 24 + 8 * 8 + 8);  // the projection is not trained
  CHECK(perf.repr().find("num_features=32, seed=7") != std::string::npos);
  nn::LinformerAttention lf(8, 2, 16, 4, -1, true);
  CHECK(lf.num_parameters() == 8 * 24 + 24 + 8 * 8 + 8 + 4 * 16);
  CHECK(lf.extra_repr().find("max_len=16, k=4, shared E=F") != std::string::npos);
  nn::LocalAttention loc(8, 2, 3, 2);
  CHECK(loc.extra_repr().find("window=3, num_global=2") != std::string::npos);
  nn::LinearAttention lin(8, 2);
  CHECK(lin.extra_repr().find("feature_map=elu+1") != std::string::npos);
  Tensor keep = loc.keep_mask(6);
  CHECK(keep.at({5, 1}) == 1.0);  // key 1 is global
  CHECK(keep.at({5, 2}) == 1.0);  // |5 - 2| <= 3
  nn::LocalAttention narrow(8, 2, 1, 0);
  CHECK(narrow.keep_mask(6).at({5, 2}) == 0.0);
}

TEST_CASE("attention_variants: errors name the module and the values involved") {
  Tensor x = randn({2, 5, 8});
  nn::LinformerAttention lf(8, 2, /*max_len=*/4, /*k=*/2);
  check_error([&] { lf.forward(x); }, {"LinformerAttention", "sequence length 5", "max_len 4"});
  check_error([&] { lf.forward(randn({2, 3, 8}), Tensor(), true); },
              {"LinformerAttention", "causal attention is not supported"});
  check_error([] { nn::LinearAttention(8, 3); }, {"LinearAttention", "qkv_dim 8", "heads 3"});
  check_error([] { nn::PerformerAttention(8, 2, 5); }, {"PerformerAttention", "qkv_dim 5"});
  check_error([] { nn::PerformerAttention(8, 2, -1, 0); }, {"num_features must be positive"});
  check_error([] { nn::LinformerAttention(8, 2, 16, 0); }, {"max_len and k must be positive"});
  check_error([] { nn::LocalAttention(8, 2, -1); }, {"LocalAttention", "window"});
  check_error([] { nn::LinearAttention(8, 2, -1, true, -1, 0); }, {"chunk_size must be positive"});
  nn::LocalAttention loc(8, 2, 1);
  check_error([&] { loc.forward(randn({2, 5, 6})); }, {"LocalAttention", "(B, N, 8)", "(2, 5, 6)"});
  check_error([&] { loc.forward(x, ones({2, 4})); }, {"LocalAttention", "key_mask", "(2, 5)"});
  nn::PerformerAttention perf(8, 2, -1, 4);
  check_error([&] { perf.forward(x, ones({5})); }, {"PerformerAttention", "key_mask"});
  check_error([] { nn::linear_attention(randn({2, 4, 3}), randn({2, 4, 5}), randn({2, 4, 2})); },
              {"linear_attention", "(2, 4, 3)"});
  check_error([] { nn::linear_attention(randn({2, 4, 3}), randn({2, 4, 3}), randn({2, 5, 2})); },
              {"linear_attention", "every dim but the last"});
}

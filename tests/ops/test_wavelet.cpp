// Wavelet transforms: properties (adjoint, perfect reconstruction), gradients, errors.
// Agreement with PyWavelets' numbers is in test_wavelet_reference.cpp.
#include "backends/backend.h"
#include "autograd/variable.h"
#include "ops/wavelet.h"
#include "ops/wavelet_primitives.h"

#include <set>
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

const WaveletMode kAllModes[] = {
    WaveletMode::Zero,   WaveletMode::Constant,      WaveletMode::Symmetric,
    WaveletMode::Reflect, WaveletMode::Periodic,     WaveletMode::Smooth,
    WaveletMode::Antisymmetric, WaveletMode::Antireflect, WaveletMode::Periodization};

double dot(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item(); }

}  // namespace

TEST_CASE("wavelet: dwt's backward is the exact adjoint, column by column, in every mode") {
  // The matrix of dwt (both outputs stacked) is built from unit vectors; its transpose
  // times y must equal what backward computes for the seed y.
  for (const char* name : {"db2", "bior2.2", "coif3"}) {
    Wavelet w(name);
    for (WaveletMode mode : kAllModes) {
      for (int64_t n : {1, 2, 5, 8, 13}) {
        INFO(str(name, " ", wavelet_mode_name(mode), " n=", n));
        Tensor x = randn({n}, kFloat64).requires_grad_();
        auto [cA, cD] = dwt(x, w, mode);
        Tensor yA = randn(cA.shape(), kFloat64), yD = randn(cD.shape(), kFloat64);
        sum(add(sum(mul(cA, yA)), sum(mul(cD, yD)))).backward();
        std::vector<double> adjoint(n, 0.0);
        for (int64_t j = 0; j < n; ++j) {
          Tensor e = zeros({n}, kFloat64);
          e.set({j}, 1.0);
          auto [a, d] = dwt(e, w, mode);
          adjoint[j] = dot(a, yA) + dot(d, yD);  // (D^T y)_j = <D e_j, y>
        }
        auto g = x.grad().to_vector<double>();
        double worst = 0;
        for (int64_t j = 0; j < n; ++j) worst = std::max(worst, std::abs(g[j] - adjoint[j]));
        CHECK(worst < 1e-12);
      }
    }
  }
}

TEST_CASE("wavelet: perfect reconstruction for every mode, level and wavelet kind") {
  // dmey is left out: PyWavelets' dmey is a finite approximation of the Meyer wavelet, and
  // pywt itself reconstructs with errors near 1e-2 (checked against pywt in the reference
  // test instead).
  for (const char* name : {"haar", "db4", "sym4", "coif3", "bior4.4", "rbio3.5"}) {
    Wavelet w(name);
    for (WaveletMode mode : kAllModes) {
      for (int64_t n : {1, 2, 3, 7, 16, 33, 100}) {
        INFO(str(name, " ", wavelet_mode_name(mode), " n=", n));
        Tensor x = randn({2, n, 3}, kFloat64);
        int64_t level = std::max<int64_t>(1, dwt_max_level(n, w.filter_length()));
        auto coeffs = wavedec(x, w, level, mode, 1);
        CHECK(coeffs.size() == (size_t)level + 1);
        Tensor y = waverec(coeffs, w, mode, 1, n);
        REQUIRE(y.shape() == x.shape());
        CHECK(max_abs_diff(y, x) < 1e-10);  // smooth mode extrapolates: pywt also ~2e-11
      }
    }
  }
}

TEST_CASE("wavelet: the orthogonal filter relations reproduce PyWavelets' banks") {
  for (const char* name : {"haar", "db4", "sym8", "coif3"}) {
    Wavelet named(name);
    Wavelet built = Wavelet::orthogonal_from(named.dec_lo);
    CHECK(max_abs_diff(built.dec_hi, named.dec_hi) < 1e-15);
    CHECK(max_abs_diff(built.rec_lo, named.rec_lo) < 1e-15);
    CHECK(max_abs_diff(built.rec_hi, named.rec_hi) < 1e-15);
    CHECK(named.orthogonal);
  }
  CHECK(!Wavelet("bior2.2").orthogonal);
}

// orthogonal_from stacks rec_lo and rec_hi once (Wavelet::bank), and dwt, idwt, wavedec and
// waverec run those taps instead of reversing and stacking the filters per call: the same
// bits as the per-call bank (a copy of the wavelet without its bank), and the same gradient.
TEST_CASE("wavelet: an orthogonal bank stacked once gives the per-call bank's values and gradients") {
  const int64_t B = 2, N = 45, D = 3;
  for (const Shape& fshape : {Shape{8}, Shape{8, D}}) {
    const Tensor filt = randn(fshape, kFloat64);
    const Wavelet w = Wavelet::orthogonal_from(filt);
    REQUIRE(w.bank.defined());
    CHECK(max_abs_diff(w.bank, stack({w.rec_lo, w.rec_hi}, 0)) == 0);
    CHECK(max_abs_diff(w.dec_hi, mul(w.rec_lo, from_vector(std::vector<double>{-1, 1, -1, 1, -1, 1, -1, 1})
                                                   .reshape(fshape.size() == 2 ? Shape{8, 1} : Shape{8}))) == 0);
    const Tensor x = randn({B, N, D}, kFloat64);
    for (WaveletMode mode : {WaveletMode::Symmetric, WaveletMode::Periodization, WaveletMode::Smooth}) {
      INFO(wavelet_mode_name(mode), " filters ", shape_str(fshape));
      auto run = [&](bool with_bank) {
        Tensor f = filt.detach().requires_grad_();
        Wavelet wl = Wavelet::orthogonal_from(f);
        if (!with_bank) wl.bank = Tensor();
        Tensor xs = x.detach().requires_grad_();
        Tensor y = waverec(wavedec(xs, wl, 2, mode, 1), wl, mode, 1, N);
        sum(mul(y, y)).backward();
        return std::vector<Tensor>{y.detach(), xs.grad(), f.grad()};
      };
      const std::vector<Tensor> a = run(true), b = run(false);
      CHECK(max_abs_diff(a[0], b[0]) == 0);
      CHECK(max_abs_diff(a[1], b[1]) == 0);
      CHECK(max_abs_diff(a[2], b[2]) < 1e-12 * (1 + max(abs(b[2])).item()));
    }
  }
}

TEST_CASE("wavelet: float32 channels-last (B, N, D) with per-channel filters equals channel-by-channel") {
  const int64_t B = 2, N = 37, D = 5, F = 8;
  Tensor x = randn({B, N, D});
  Tensor filt = randn({F, D});
  Wavelet w = Wavelet::orthogonal_from(filt);
  for (WaveletMode mode : {WaveletMode::Symmetric, WaveletMode::Periodization}) {
    auto [cA, cD] = dwt(x, w, mode, 1);
    for (int64_t d = 0; d < D; ++d) {
      Wavelet wd = Wavelet::orthogonal_from(filt.select(1, d).contiguous());
      auto [a, dd] = dwt(x.select(2, d).contiguous(), wd, mode, 1);
      CHECK(max_abs_diff(cA.select(2, d), a) < 1e-5);
      CHECK(max_abs_diff(cD.select(2, d), dd) < 1e-5);
    }
  }
}

TEST_CASE("wavelet: gradcheck of signal and filters, shared and per-channel, every mode") {
  Tensor shared = Wavelet("db2").dec_lo.clone();
  for (WaveletMode mode : kAllModes) {
    INFO(wavelet_mode_name(mode));
    // signal and shared orthogonal filter through dwt
    check_grad([mode](const In& in) {
      auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
      return concat({a, d}, 1);
    }, rn({2, 7, 3}), shared);
    // per-channel filters (F, C) along a middle axis
    check_grad([mode](const In& in) {
      auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
      return concat({a, mul(d, 2.0)}, 1);
    }, rn({2, 6, 3}), rn({4, 3}));
    // idwt in coefficients and biorthogonal filters
    check_grad([mode](const In& in) {
      return idwt(in[0], in[1], Wavelet::biorthogonal(in[2], in[3], in[4], in[5]), mode, 0);
    }, rn({5, 2}), rn({5, 2}), rn({4}), rn({4}), rn({4}), rn({4}));
    // two levels, reconstruction, per-channel filters
    check_grad([mode](const In& in) {
      Wavelet w = Wavelet::orthogonal_from(in[1]);
      auto c = wavedec(in[0], w, 2, mode, 1);
      return waverec(c, w, mode, 1, 9);
    }, rn({1, 9, 2}), rn({4, 2}));
  }
}

namespace {

// The names of every node of the graph behind `root`.
std::set<std::string> graph_node_names(const Tensor& root) {
  std::set<std::string> names;
  std::vector<autograd::Node*> todo{autograd::gradient_edge(root).get()};
  std::set<autograd::Node*> seen;
  while (!todo.empty()) {
    autograd::Node* n = todo.back();
    todo.pop_back();
    if (!n || !seen.insert(n).second) continue;
    names.insert(n->name());
    for (const auto& e : n->next) todo.push_back(e.get());
  }
  return names;
}

}  // namespace

TEST_CASE("wavelet: waverec crops odd levels in the synthesis, with no slice in its backward") {
  // 25 -> 13 -> 7 -> 4 samples in periodization: a level's synthesis of L coefficients gives 2 L
  // rows, one more than the next detail has where that is odd, and pywt drops the last. The
  // synthesis writes only the rows kept, so the graph has no SliceBackward (a zero-filled
  // gradient and a strided copy into it).
  for (int64_t n : {13, 25, 27}) {
    INFO("n = " << n);
    const int64_t levels = dwt_max_level(n, 4);
    Tensor x = rn({2, n, 3}).requires_grad_(), f = rn({4, 3}).requires_grad_();
    Tensor g = rn({2, n, 3});
    auto grads = [&](const Tensor& out) {
      x.zero_grad();
      f.zero_grad();
      sum(mul(out, g)).backward(Tensor(), /*retain_graph=*/true);
      return std::vector<Tensor>{x.grad().clone(), f.grad().clone()};
    };
    Wavelet w = Wavelet::orthogonal_from(f);
    auto c = wavedec(x, w, levels, WaveletMode::Periodization, 1);
    Tensor y = waverec(c, w, WaveletMode::Periodization, 1, n);
    CHECK(graph_node_names(y).count("SliceBackward") == 0);
    CHECK(graph_node_names(y).count("WaveletSynthesisBackward") == 1);
    // The same values and gradients as level-by-level idwt with pywt's drop as a narrow.
    Tensor a = c[0];
    for (size_t i = 1; i < c.size(); ++i) {
      if (a.shape()[1] == c[i].shape()[1] + 1) a = a.narrow(1, 0, c[i].shape()[1]);
      a = idwt(a, c[i], w, WaveletMode::Periodization, 1);
    }
    a = a.narrow(1, 0, n);
    CHECK(graph_node_names(a).count("SliceBackward") == 1);
    CHECK(max_abs_diff(y, a) < 1e-12);
    auto gy = grads(y), ga = grads(a);
    CHECK(max_abs_diff(gy[0], ga[0]) < 1e-12);
    CHECK(max_abs_diff(gy[1], ga[1]) < 1e-12);
  }
  check_grad([](const In& in) {
    Wavelet w = Wavelet::orthogonal_from(in[1]);
    return waverec(wavedec(in[0], w, 3, WaveletMode::Periodization, 1), w, WaveletMode::Periodization, 1, 25);
  }, rn({1, 25, 2}), rn({4, 2}));
}

TEST_CASE("wavelet: lengths, levels and short signals follow pywt") {
  CHECK(dwt_coeff_len(17, 8, WaveletMode::Symmetric) == 12);
  CHECK(dwt_coeff_len(17, 8, WaveletMode::Periodization) == 9);
  CHECK(dwt_max_level(1000, 8) == 7);
  CHECK(dwt_max_level(3, 8) == 0);
  CHECK(dwt_max_level(7, 8) == 0);
  // N = 1 in reflect mode (pywt 1.1.1 hangs here): behaves like a constant extension.
  Tensor one = tensor({2.5}, kFloat64);
  auto [a, d] = dwt(one, Wavelet("db2"), WaveletMode::Reflect);
  auto [ac, dc] = dwt(one, Wavelet("db2"), WaveletMode::Constant);
  CHECK(max_abs_diff(a, ac) == 0);
  CHECK(max_abs_diff(d, dc) == 0);
  // more levels than dwt_max_level still reconstructs
  Tensor x = randn({10}, kFloat64);
  auto c = wavedec(x, Wavelet("db4"), 4, WaveletMode::Symmetric);
  CHECK(max_abs_diff(waverec(c, Wavelet("db4"), WaveletMode::Symmetric, -1, 10), x) < 1e-11);
  // level -1 = dwt_max_level; 0 there returns the signal alone, as pywt
  CHECK(wavedec(randn({5}, kFloat64), Wavelet("db4")).size() == 1);
  CHECK(wavelist().size() >= 9);
}

TEST_CASE("wavelet: bad input gets a clear error") {
  check_error([] { Wavelet("db99"); }, {"unknown wavelet", "db99"});
  check_error([] { wavelet_mode("mirror"); }, {"unknown wavelet mode", "mirror", "symmetric"});
  check_error([] { Wavelet::orthogonal_from(randn({5}, kFloat64)); }, {"even length", "5"});
  check_error([] { dwt(randn({2, 10, 4}), Wavelet::orthogonal_from(randn({4, 3})), WaveletMode::Zero, 1); },
              {"dwt", "per-channel", "(4, 3)", "4 channels"});
  check_error([] { wavedec(randn({10}), Wavelet("haar"), -3); }, {"wavedec", "level", "-3"});
  check_error([] { idwt(randn({4}), randn({5}), Wavelet("haar")); }, {"idwt", "(4,)", "(5,)"});
  check_error([] { idwt(randn({1}, kFloat64), randn({1}, kFloat64), Wavelet("db4")); },
              {"idwt", "too few"});
  check_error([] { waverec({randn({4}), randn({9})}, Wavelet("haar")); }, {"waverec", "(9,)"});
  check_error([] { dwt(zeros({8}, kInt64), Wavelet("haar")); }, {"dwt", "int64"});
}

TEST_CASE("wavelet: the orthogonal lattice gives orthonormal filters and perfect reconstruction") {
  Tensor theta = mul(rand({4, 3}, kFloat64), 2 * M_PI);  // K = 4 angles, 3 channels
  Tensor h = lattice_filter(theta);
  REQUIRE(h.shape() == Shape{8, 3});
  for (int64_t c = 0; c < 3; ++c) {
    auto v = h.select(1, c).to_vector<double>();
    for (int64_t shift = 0; shift < 8; shift += 2) {
      double s = 0;
      for (int64_t n = 0; n + shift < 8; ++n) s += v[n] * v[n + shift];
      CHECK(s == doctest::Approx(shift == 0 ? 1.0 : 0.0).epsilon(1e-12).scale(1));
    }
  }
  Tensor x = randn({2, 40, 3}, kFloat64);
  for (WaveletMode mode : {WaveletMode::Periodization, WaveletMode::Symmetric, WaveletMode::Zero}) {
    auto c = wavedec(x, h, 2, mode, 1);
    CHECK(max_abs_diff(waverec(c, h, mode, 1, 40), x) < 1e-11);
  }
  // Angles summing to pi/4 make a low-pass with DC gain sqrt(2), like db filters.
  Tensor t = tensor({M_PI / 4 - 0.3, 0.3}, kFloat64);
  CHECK(sum(lattice_filter(t)).item() == doctest::Approx(std::sqrt(2.0)));
  check_grad([](const In& in) { return lattice_filter(in[0]); }, rn({3, 2}));
  check_grad([](const In& in) {
    auto [a, d] = dwt(in[0], lattice_filter(in[1]), WaveletMode::Periodization, 0);
    return concat({a, d}, 0);
  }, rn({8, 2}), rn({2, 2}));
}

TEST_CASE("wavelet: lifting (LeGall 5/3 and learnable) reconstructs exactly") {
  for (int64_t n : {2, 3, 8, 17}) {
    Tensor x = randn({n, 4}, kFloat64);
    auto [s, d] = legall53_forward(x, 0);
    CHECK(s.shape() == Shape{(n + 1) / 2, 4});
    CHECK(d.shape() == Shape{n / 2, 4});
    CHECK(max_abs_diff(legall53_inverse(s, d, 0), x) < 1e-14);
    Tensor p = randn({4, 4}, kFloat64), u = randn({2}, kFloat64);  // per-channel predict
    auto [s2, d2] = lifting_forward(x, p, u, 0);
    CHECK(max_abs_diff(lifting_inverse(s2, d2, p, u, 0), x) < 1e-12);
  }
  // 5/3 on a ramp: the interior details vanish (the predictor is exact on lines).
  Tensor ramp = arange(10, kFloat64);
  auto [s, d] = legall53_forward(ramp);
  auto dv = d.to_vector<double>();
  for (size_t i = 0; i + 1 < dv.size(); ++i) CHECK(dv[i] == 0);
  check_grad([](const In& in) {
    auto [a, b] = lifting_forward(in[0], in[1], in[2], 1);
    return concat({a, b}, 1);
  }, rn({2, 7}), rn({2}), rn({2}));
  check_grad([](const In& in) { return lifting_inverse(in[0], in[1], in[2], in[3], 0); },
             rn({4, 2}), rn({3, 2}), rn({4, 2}), rn({2, 2}));
}

// Row p of a signal of n rows extended symmetrically, by mirroring until inside (not the
// backends' modular formula).
static int64_t mirrored(int64_t p, int64_t n) {
  while (p < 0 || p >= n) p = p < 0 ? -1 - p : 2 * n - 1 - p;
  return p;
}

TEST_CASE("wavelet: lifting steps against their formula, long filters on short signals, every reflection") {
  Backend& cpu = backend_for(Device::cpu());
  // (n, n_out, K, offset): filters longer than the signal (several reflections each way), one
  // row, windows that start past the end, and the centred offsets of lifting_forward
  struct Case { int64_t n, n_out, K, offset; };
  for (Case c : {Case{1, 3, 4, -2}, Case{2, 2, 7, -5}, Case{3, 4, 2, 0}, Case{5, 5, 3, -1}, Case{4, 9, 11, -6},
                 Case{6, 3, 2, 4}, Case{3, 2, 13, -20}}) {
    const int64_t A = 2, C = 3;
    for (int64_t Cw : {C, int64_t{1}}) {
      for (int sign : {1, -1}) {
        INFO("n=", c.n, " n_out=", c.n_out, " K=", c.K, " offset=", c.offset, " Cw=", Cw, " sign=", sign);
        // v the odd rows of a larger tensor, out and g even rows: strided views as the ops pass
        Tensor big = randn({A, 2 * c.n, C}, kFloat64), v = big.slice(1, 1, 2 * c.n, 2);
        Tensor base = randn({A, c.n_out, C}, kFloat64), f = randn({c.K, Cw}, kFloat64);
        Tensor out_big = zeros({A, 2 * c.n_out, C}, kFloat64), out = out_big.slice(1, 0, 2 * c.n_out, 2);
        cpu.lifting_step(v, base, f, c.offset, sign, out);
        const auto vv = v.contiguous().to_vector<double>(), bv = base.to_vector<double>();
        const auto fv = f.to_vector<double>(), ov = out.contiguous().to_vector<double>();
        auto fk = [&](int64_t k, int64_t ch) { return fv[k * Cw + (Cw == 1 ? 0 : ch)]; };
        double worst = 0;
        for (int64_t a = 0; a < A; ++a)
          for (int64_t m = 0; m < c.n_out; ++m)
            for (int64_t ch = 0; ch < C; ++ch) {
              double acc = 0;
              for (int64_t k = 0; k < c.K; ++k) acc += fk(k, ch) * vv[(a * c.n + mirrored(m + k + c.offset, c.n)) * C + ch];
              const double want = bv[(a * c.n_out + m) * C + ch] + sign * acc;
              worst = std::max(worst, std::abs(ov[(a * c.n_out + m) * C + ch] - want));
            }
        CHECK(worst < 1e-12);
        // The adjoint: <step(v) - base, g> = <v, adjoint(g)>, on a strided output with a base.
        Tensor g = randn({A, c.n_out, C}, kFloat64), base2 = randn({A, c.n, C}, kFloat64);
        Tensor adj_big = zeros({A, 2 * c.n, C}, kFloat64), adj = adj_big.slice(1, 1, 2 * c.n, 2);
        cpu.lifting_step_adjoint(g, base2, f, c.offset, sign, adj);
        const double lhs = sum(mul(sub(out, base), g)).item();
        const double rhs = sum(mul(v, sub(adj, base2))).item();
        CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12).scale(1));
        // The filter gradient: d <step(v), g> / d f, by the formula.
        Tensor gf = Tensor::empty({c.K, Cw}, kFloat64);
        cpu.lifting_filter_grad(g, v, c.offset, sign, gf);
        const auto gv = g.to_vector<double>(), gfv = gf.to_vector<double>();
        worst = 0;
        for (int64_t k = 0; k < c.K; ++k)
          for (int64_t w = 0; w < Cw; ++w) {
            double want = 0;
            for (int64_t a = 0; a < A; ++a)
              for (int64_t m = 0; m < c.n_out; ++m)
                for (int64_t ch = 0; ch < C; ++ch)
                  if (Cw == 1 || ch == w)
                    want += sign * gv[(a * c.n_out + m) * C + ch] * vv[(a * c.n + mirrored(m + k + c.offset, c.n)) * C + ch];
            worst = std::max(worst, std::abs(gfv[k * Cw + w] - want));
          }
        CHECK(worst < 1e-11);
      }
    }
  }
  // Through the ops: predict and update longer than the halves they filter, both gradients.
  check_grad([](const In& in) {
    auto [a, b] = lifting_forward(in[0], in[1], in[2], 1);
    return concat({a, b}, 1);
  }, rn({2, 5, 3}), rn({6, 3}), rn({5}));
  check_grad([](const In& in) { return lifting_inverse(in[0], in[1], in[2], in[3], 1); },
             rn({2, 2, 3}), rn({2, 1, 3}), rn({7}), rn({4, 3}));
  for (int64_t n : {2, 3, 4, 9}) {
    Tensor x = randn({2, n, 3}, kFloat64), p = randn({6, 3}, kFloat64), u = randn({5}, kFloat64);
    auto [s, d] = lifting_forward(x, p, u, 1);
    CHECK(max_abs_diff(lifting_inverse(s, d, p, u, 1), x) < 1e-12);
  }
}

TEST_CASE("wavelet: 2-D transforms over chosen axes") {
  Wavelet w("db2");
  Tensor img = randn({2, 13, 10}, kFloat64);
  for (WaveletMode mode : {WaveletMode::Symmetric, WaveletMode::Periodization}) {
    Coeffs2 c = dwt2(img, w, mode, {1, 2});
    CHECK(c.cA.shape() == c.cD.shape());
    CHECK(max_abs_diff(idwt2(c, w, mode, {1, 2}).narrow(1, 0, 13).narrow(2, 0, 10), img) < 1e-12);
    Decomposition2 dec = wavedec2(img, w, 2, mode, {1, 2});
    CHECK(dec.details.size() == 2);
    Tensor rec = waverec2(dec, w, mode, {1, 2});
    CHECK(max_abs_diff(rec.narrow(1, 0, 13).narrow(2, 0, 10), img) < 1e-12);
  }
  // separability: dwt2's cH is the detail along the first axis, approximation along the second
  Coeffs2 c = dwt2(img, w, WaveletMode::Zero, {1, 2});
  auto [lo, hi] = dwt(img, w, WaveletMode::Zero, 1);
  CHECK(max_abs_diff(c.cH, dwt(hi, w, WaveletMode::Zero, 2).first) < 1e-15);
  check_error([&] { dwt2(img, w, WaveletMode::Zero, {1, -2}); }, {"dwt2", "axes"});
}

TEST_CASE("wavelet: float32 vector kernels equal float64, values and gradients, every mode") {
  // 70 channels: two 32-wide register blocks plus a scalar tail, so both code paths run.
  Tensor x64 = randn({2, 37, 70}, kFloat64), f64 = mul(randn({8, 70}, kFloat64), 0.3);
  Tensor g_seed = randn({2, 37, 70}, kFloat64);
  for (WaveletMode mode : kAllModes) {
    INFO(wavelet_mode_name(mode));
    std::vector<Tensor> outs;
    for (DType dt : {kFloat64, kFloat32}) {
      Tensor x = x64.to(dt).detach().requires_grad_();
      Tensor f = f64.to(dt).detach().requires_grad_();
      auto c = wavedec(x, f, 2, mode, 1);
      Tensor y = waverec(c, f, mode, 1, 37);
      // a loss that is not a multiple of y, so the coefficient gradients matter
      Tensor loss = add(sum(mul(y, g_seed.to(dt))), sum(mul(c[1], c[1])));
      loss.backward();
      outs.insert(outs.end(), {y, c[0], c[2], x.grad(), f.grad()});
    }
    for (size_t i = 0; i < 5; ++i) {
      INFO(str("output ", i));
      const Tensor& ref = outs[i];
      double scale = max(abs(ref)).item();
      CHECK(max_abs_diff(outs[i + 5], ref) < 2e-5 * std::max(1.0, scale));
    }
  }
}

TEST_CASE("wavelet: PyWavelets' argument order, mode names in any case, and pywt's level rules") {
  const Tensor x = randn({2, 37, 3}, kFloat64);
  const Wavelet w("DB4");  // pywt lower-cases names
  CHECK(w.name == "db4");
  CHECK(wavelet_mode("Periodization") == WaveletMode::Periodization);
  // (data, wavelet, mode, level, axis) with the mode by name or enum, and the older
  // (data, wavelet, level, mode, axis): the same coefficients.
  const auto by_name = wavedec(x, w, "periodization", 2, 1);
  const auto by_enum = wavedec(x, w, WaveletMode::Periodization, 2, 1);
  const auto older = wavedec(x, w, 2, WaveletMode::Periodization, 1);
  REQUIRE(by_name.size() == 3);
  REQUIRE(by_enum.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(max_abs_diff(by_name[i], older[i]) == 0);
    CHECK(max_abs_diff(by_enum[i], older[i]) == 0);
  }
  CHECK(max_abs_diff(waverec(by_name, w, "periodization", 1, /*length=*/37), x) < 1e-12);
  const auto [cA, cD] = dwt(x, w, "symmetric", 1);
  const auto [eA, eD] = dwt(x, w, WaveletMode::Symmetric, 1);
  CHECK(max_abs_diff(cA, eA) == 0);
  CHECK(max_abs_diff(idwt(cA, cD, w, "symmetric", 1), idwt(eA, eD, w, WaveletMode::Symmetric, 1)) == 0);
  // Levels as pywt: 0 gives the signal alone, -1 (None) the maximum, other negatives are
  // errors; beyond the maximum is allowed (with a warning once per process); beyond
  // kMaxWaveletLevel is an error instead of a loop that does not end.
  const auto zero = wavedec(x, w, "symmetric", 0, 1);
  REQUIRE(zero.size() == 1);
  CHECK(max_abs_diff(zero[0], x) == 0);
  CHECK((int64_t)wavedec(x, w, "symmetric", -1, 1).size() == dwt_max_level(37, 8) + 1);
  CHECK((int64_t)wavedec(x, w, "zero", dwt_max_level(37, 8) + 2, 1).size() == dwt_max_level(37, 8) + 3);
  check_error([&] { wavedec(x, w, "symmetric", -2, 1); }, {"wavedec", "level must be -1", "got -2"});
  check_error([&] { wavedec(x, w, "symmetric", INT64_MAX, 1); }, {"wavedec", "beyond 64"});
  check_error([&] { wavedec2(randn({8, 8}), w, 65); }, {"wavedec2", "beyond 64"});
  check_error([&] { wavedec(x, w, "mirror", 1, 1); }, {"unknown wavelet mode", "mirror", "periodization"});
}

TEST_CASE("wavelet: float32 kernels sum each output as a chain of fused multiply-adds, taps in order") {
  // The CPU kernels take interior rows through register-blocked code and boundary rows
  // through the map; either way each output must be the same chain of FMAs (analysis: taps
  // ascending; synthesis: the map's entries, then taps of the row's parity ascending, then
  // filters; filter gradient: rows ascending per signal row a, then a summed in double).
  // Periodization maps every padded row to one signal row with coefficient 1, so the chain
  // can be written down here exactly and compared bit for bit.
  using namespace wavelet_detail;
  for (int64_t n : {64, 77, 130})
    for (int64_t C : {8, 21})
      for (int64_t K : {4, 6, 16})
        for (bool per_channel : {true, false}) {
          INFO(str("n ", n, " C ", C, " K ", K, per_channel ? " per channel" : " shared"));
          const int64_t A = 3, L = (n + 1) / 2, Cw = per_channel ? C : 1;
          Tensor x = randn({A, n, C});
          Tensor w = mul(randn({2, K, Cw}), 0.3).detach().requires_grad_();
          auto amap = extension_map(WaveletMode::Periodization, n, K / 2 - 1, 2 * L + K - 2);
          std::vector<Tensor> bands = analysis(x, amap, w, 0, L);
          Tensor s0 = randn({A, L, C}), s1 = randn({A, L, C});
          add(sum(mul(bands[0], s0)), sum(mul(bands[1], s1))).backward();
          auto smap = extension_map(WaveletMode::Periodization, 2 * L, K / 2 - 1, 2 * L + K - 2);
          Tensor y = synthesis({s0, s1}, w.detach(), 0, smap);

          const Tensor xe = extend(x, amap);
          const float* pe = xe.data<float>();
          const float* pw = w.detach().data<float>();
          const float* g[2] = {s0.data<float>(), s1.data<float>()};
          const int64_t P = 2 * L + K - 2;
          auto tap = [&](int64_t f, int64_t k, int64_t c) { return pw[(f * K + k) * Cw + (per_channel ? c : 0)]; };
          int64_t analysis_off = 0, synthesis_off = 0, grad_off = 0;
          for (int64_t f = 0; f < 2; ++f) {
            const float* band = bands[f].data<float>();
            for (int64_t a = 0; a < A; ++a)
              for (int64_t j = 0; j < L; ++j)
                for (int64_t c = 0; c < C; ++c) {
                  float sum = 0;
                  for (int64_t k = 0; k < K; ++k) sum = std::fma(tap(f, k, c), pe[(a * P + 2 * j + k) * C + c], sum);
                  analysis_off += sum != band[(a * L + j) * C + c];
                }
          }
          const float* py = y.data<float>();
          for (int64_t a = 0; a < A; ++a)
            for (int64_t i = 0; i < 2 * L; ++i)
              for (int64_t c = 0; c < C; ++c) {
                float sum = 0;
                for (int64_t e = smap->offsets[i]; e < smap->offsets[i + 1]; ++e) {
                  const int64_t b = smap->rows[e];
                  for (int64_t k = b % 2; k < K && b - k >= 0; k += 2)
                    if ((b - k) / 2 < L)
                      for (int64_t f = 0; f < 2; ++f) sum = std::fma(tap(f, k, c), g[f][(a * L + (b - k) / 2) * C + c], sum);
                }
                synthesis_off += sum != py[(a * 2 * L + i) * C + c];
              }
          if (per_channel) {
            const float* gw = w.grad().data<float>();
            for (int64_t f = 0; f < 2; ++f)
              for (int64_t k = 0; k < K; ++k)
                for (int64_t c = 0; c < C; ++c) {
                  double total = 0;
                  for (int64_t a = 0; a < A; ++a) {
                    float sum = 0;
                    for (int64_t j = 0; j < L; ++j)
                      sum = std::fma(g[f][(a * L + j) * C + c], pe[(a * P + 2 * j + k) * C + c], sum);
                    total += sum;
                  }
                  grad_off += (float)total != gw[(f * K + k) * C + c];
                }
          }
          CHECK(analysis_off == 0);
          CHECK(synthesis_off == 0);
          CHECK(grad_off == 0);
        }
}

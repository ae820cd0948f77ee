// CUDA against CPU for the kernels of backends/cuda/{gemm,norm,wavelet,fft}.cu, through the
// ops that use them (values and gradients, float32 and float64, random shapes, non-contiguous
// inputs), the nn modules built on them, and a small WavSpA classifier trained on both
// devices. Every case skips itself on a machine without a GPU.
#ifdef WAVSPA_CUDA

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "core/runtime.h"
#include "models/factory.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "ops/fft.h"
#include "ops/nn.h"
#include "ops/wavelet.h"
#include "tests/helpers.h"
#include "train/config.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {


const WaveletMode kAllModes[] = {
    WaveletMode::Zero,          WaveletMode::Constant,    WaveletMode::Symmetric,
    WaveletMode::Reflect,       WaveletMode::Periodic,    WaveletMode::Smooth,
    WaveletMode::Antisymmetric, WaveletMode::Antireflect, WaveletMode::Periodization};

// Tolerance for outputs that add up `terms` products of O(1) values. The CPU adds float32
// sums in float32 (OpenBLAS, the wavelet filter gradient per row), with an error that grows
// about linearly in the number of terms; an element that cancels to near zero keeps that
// absolute error, which a purely relative bound would reject.
Tol sum_tol(DType dt, int64_t terms) {
  if (dt == kFloat64) return {1e-10 + 1e-15 * (double)terms, 1e-9};
  return {1e-5 + 2e-7 * (double)terms, 1e-4};
}


// An int64 target of n labels in [0, classes), with every `every`-th one set to `ignore`.
Tensor targets(int64_t n, int64_t classes, int64_t every, int64_t ignore, const Shape& shape = {}) {
  std::vector<int64_t> t = randint(0, classes, {n}).to_vector<int64_t>();
  if (every > 0)
    for (int64_t i = 0; i < n; i += every) t[i] = ignore;
  return from_vector(t, shape);
}

// Runs one module on the CPU and a copy of it (same weights, moved with to(cuda)) on CUDA,
// then backpropagates one seed through both: compares the output, the input's gradient and
// every parameter's gradient. The weights are perturbed first so that no parameter keeps
// its symmetric initial value (a layer norm's ones and zeros would hide index mix-ups).
template <typename M, typename Forward>
void check_module_parity(const std::shared_ptr<M>& cpu, const std::shared_ptr<M>& gpu,
                         const Tensor& x, DType dt, Forward forward, const std::string& what,
                         Tol tol) {
  cpu->to(dt);
  {
    NoGradGuard no_grad;
    for (Tensor& p : cpu->parameters()) p.add_(randn(p.shape(), p.dtype()), 0.5);
  }
  gpu->to(dt);  // first: loading float64 weights into float32 tensors would round them
  gpu->load_state_dict(cpu->state_dict());
  gpu->to(Device::cuda());
  Tensor xc = x.to(dt).detach().requires_grad_();
  Tensor xg = x.to(dt).to(Device::cuda()).detach().requires_grad_();
  Tensor yc = forward(*cpu, xc), yg = forward(*gpu, xg);
  check_close(yc, yg, tol, what + " forward");
  Tensor seed = randn(yc.shape(), yc.dtype());
  yc.backward(seed);
  yg.backward(seed.to(Device::cuda()));
  check_close(xc.grad(), xg.grad(), tol, what + " grad of the input");
  auto pc = cpu->named_parameters(), pg = gpu->named_parameters();
  REQUIRE(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    REQUIRE(pc[i].first == pg[i].first);
    REQUIRE(pc[i].second.grad().defined() == pg[i].second.grad().defined());
    if (pc[i].second.grad().defined())
      check_close(pc[i].second.grad(), pg[i].second.grad(), tol, what + " grad of " + pc[i].first);
  }
}

// x rounded to the nearest bfloat16 (ties to even), kept as float32: what the CUDA backend's
// BFloat16 matmul precision multiplies. Inputs here are finite and far from overflow.
Tensor round_to_bf16(const Tensor& x) {
  std::vector<float> v = x.to_vector<float>();
  for (float& f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    std::memcpy(&f, &u, 4);
  }
  return from_vector(v, x.shape());
}

}  // namespace

// ---- gemm.cu -------------------------------------------------------------------------------

TEST_CASE("cuda nn: matmul matches the CPU for every layout the op hands to cuBLAS" * gpu_only()) {
  Sizes sz;
  auto mm = [](const In& in) { return matmul(in[0], in[1]); };
  for (DType dt : kDtypes) {
    const int64_t m = sz(2, 40), k = sz(2, 64), n = sz(2, 40), b = sz(2, 5);
    INFO(str(dtype_name(dt), " m=", m, " k=", k, " n=", n, " b=", b));
    const Tol tol = sum_tol(dt, std::max({k, n, 3 * b * m}));
    auto r = [dt](const Shape& s) { return randn(s, dt); };
    check_parity(mm, {r({m, k}), r({k, n})}, label(dt, "2-D"), tol);
    // Transposed operands reach cuBLAS as transpose flags, not copies.
    check_parity([](const In& in) { return matmul(in[0].t(), in[1]); }, {r({k, m}), r({k, n})},
                 label(dt, "A^T B"), tol);
    check_parity([](const In& in) { return matmul(in[0], in[1].t()); }, {r({m, k}), r({n, k})},
                 label(dt, "A B^T"), tol);
    check_parity([](const In& in) { return matmul(in[0].t(), in[1].t()); }, {r({k, m}), r({n, k})},
                 label(dt, "A^T B^T"), tol);
    // A leading dimension larger than the row: a column slice of a wider matrix.
    check_parity([k](const In& in) { return matmul(in[0].narrow(1, 2, k), in[1].narrow(1, 1, 5)); },
                 {r({m, k + 3}), r({k, 7})}, label(dt, "sliced operands"), tol);
    check_parity(mm, {r({b, m, k}), r({b, k, n})}, label(dt, "batched"), tol);
    check_parity([](const In& in) { return matmul(in[0].transpose(1, 2), in[1].transpose(1, 2)); },
                 {r({b, k, m}), r({b, n, k})}, label(dt, "batched, both transposed"), tol);
    check_parity(mm, {r({b, 1, m, k}), r({1, 3, k, n})}, label(dt, "broadcast batch"), tol);
    check_parity(mm, {r({b, m, k}), r({k, n})}, label(dt, "batch @ matrix (one GEMM)"), tol);
    check_parity(mm, {r({m, k}), r({b, k, n})}, label(dt, "matrix @ batch (stride-0 A)"), tol);
    check_parity(mm, {r({1, k}), r({k, n})}, label(dt, "(1 x k) @ (k x n)"), tol);
    check_parity(mm, {r({m, k}), r({k, 1})}, label(dt, "(m x k) @ (k x 1)"), tol);
    check_parity(mm, {r({1, k}), r({k, 1})}, label(dt, "(1 x k) @ (k x 1)"), tol);
    check_parity(mm, {r({k}), r({b, k, n})}, label(dt, "vector @ batch"), tol);
    check_parity(mm, {r({b, m, k}), r({k})}, label(dt, "batch @ vector"), tol);
    check_parity(mm, {r({m, 1}), r({1, n})}, label(dt, "outer product (k = 1)"), tol);
    check_parity([](const In& in) { return matmul(in[0].t(), in[1]); }, {r({1, m}), r({1, n})},
                 label(dt, "transposed (1 x m) operand"), tol);
  }
  // Large enough for cuBLAS's tiled kernels (and split-k choices) rather than its small ones.
  for (DType dt : kDtypes)
    check_parity(mm, {randn({300, 517}, dt), randn({517, 260}, dt)}, label(dt, "300 x 517 x 260"),
                 sum_tol(dt, 517));
}

TEST_CASE("cuda nn: linear matches the CPU, with and without bias, non-contiguous input" * gpu_only()) {
  Sizes sz;
  for (DType dt : kDtypes) {
    const int64_t b = sz(1, 4), s = sz(1, 20), in = sz(1, 48), out = sz(1, 30);
    INFO(str(dtype_name(dt), " b=", b, " s=", s, " in=", in, " out=", out));
    const Tol tol = sum_tol(dt, std::max({in, out, b * s}));
    check_parity([](const In& x) { return linear(x[0], x[1], x[2]); },
                 {randn({b, s, in}, dt), randn({out, in}, dt), randn({out}, dt)},
                 label(dt, "linear with bias"), tol);
    check_parity([](const In& x) { return linear(x[0], x[1]); },
                 {randn({b, s, in}, dt), randn({out, in}, dt)}, label(dt, "linear without bias"), tol);
    check_parity([](const In& x) { return linear(x[0].transpose(0, 1), x[1], x[2]); },
                 {randn({s, b, in}, dt), randn({out, in}, dt), randn({out}, dt)},
                 label(dt, "linear of a transposed input"), tol);
  }
}

TEST_CASE("cuda nn: matmul precision: float32 by default, TF32 and bfloat16 on request" * gpu_only()) {
  MatmulPrecisionGuard guard(MatmulPrecision::Float32);
  CHECK(matmul_precision() == MatmulPrecision::Float32);
  CHECK(matmul_precision_from_name("bf16") == MatmulPrecision::BFloat16);
  CHECK(std::string(matmul_precision_name(MatmulPrecision::TF32)) == "tf32");
  CHECK_THROWS_WITH_AS(matmul_precision_from_name("fp16"),
                       doctest::Contains("unknown matmul precision 'fp16'"), Error);
  Tensor a = randn({256, 512}), b = randn({512, 192});
  Tensor ref = matmul(a.to(kFloat64), b.to(kFloat64));
  const double scale = max(abs(ref)).item();
  auto rel_err = [&](const Tensor& got) { return max_abs_diff(got.to(Device::cpu()), ref) / scale; };
  Tensor ag = a.to(Device::cuda()), bg = b.to(Device::cuda());
  const double exact = rel_err(matmul(ag, bg));
  CHECK(exact < 1e-5);
  set_matmul_precision(MatmulPrecision::TF32);
  const double tf32 = rel_err(matmul(ag, bg));
  CHECK(tf32 < 2e-2);  // TF32 keeps 10 mantissa bits: about 1e-3 here
  set_matmul_precision(MatmulPrecision::BFloat16);
  const double bf16 = rel_err(matmul(ag, bg));
  CHECK(bf16 > 10 * exact);  // the switch really changes the arithmetic
  CHECK(bf16 < 5e-2);        // 8 significant bits per input: about 1e-2 here
  // float64 never uses reduced precision.
  CHECK(rel_err(matmul(ag.to(kFloat64), bg.to(kFloat64))) < 1e-12);
  set_matmul_precision(MatmulPrecision::Float32);
  CHECK(rel_err(matmul(ag, bg)) == exact);  // and back to the same bits
  MESSAGE("relative error: float32 ", exact, ", TF32 ", tf32, ", bfloat16 ", bf16);
}

// The bfloat16 product is exactly defined: round each input to bfloat16, multiply and add in
// float32. So it must equal a float64 product of the rounded inputs to float32 summation
// accuracy, for every operand layout (the rounding copies keep each operand's ld and stride).
TEST_CASE("cuda nn: bfloat16 matmuls equal float32 products of the rounded inputs, any layout" * gpu_only()) {
  MatmulPrecisionGuard guard(MatmulPrecision::BFloat16);
  Sizes sz;
  const int64_t m = sz(2, 40), k = sz(2, 300), n = sz(2, 40), b = sz(2, 5);
  INFO(str("m=", m, " k=", k, " n=", n, " b=", b));
  auto check = [&](const std::function<Tensor(const Tensor&, const Tensor&)>& fn, const Tensor& x,
                   const Tensor& y, const std::string& what) {
    INFO(what);
    Tensor ref = fn(round_to_bf16(x).to(kFloat64), round_to_bf16(y).to(kFloat64));
    Tensor got = fn(x.to(Device::cuda()), y.to(Device::cuda())).to(Device::cpu()).to(kFloat64);
    REQUIRE(got.shape() == ref.shape());
    // float32 accumulation of k products, each exact in float32 (8 x 8 significant bits).
    const double bound = 1e-6 * (double)k * max(abs(ref)).item() + 1e-6;
    CHECK(max_abs_diff(got, ref) <= bound);  // NaN (an unwritten element) fails too
  };
  auto mm = [](const Tensor& x, const Tensor& y) { return matmul(x, y); };
  check(mm, randn({m, k}), randn({k, n}), "2-D");
  check([](const Tensor& x, const Tensor& y) { return matmul(x.t(), y.t()); }, randn({k, m}),
        randn({n, k}), "both transposed");
  check([k](const Tensor& x, const Tensor& y) { return matmul(x.narrow(1, 3, k), y); },
        randn({m, k + 5}), randn({k, n}), "sliced A (ld > k)");
  check(mm, randn({b, m, k}), randn({b, k, n}), "batched");
  check(mm, randn({b, m, k}), randn({k, n}), "batch @ matrix");
  check(mm, randn({m, k}), randn({b, k, n}), "matrix @ batch (stride-0 A)");
  check([](const Tensor& x, const Tensor& y) { return matmul(x, y.transpose(1, 2)); },
        randn({b, m, k}), randn({b, n, k}), "batched B^T (attention scores)");
  // Gradients of a product flow through the same switch.
  Tensor x = randn({m, k}), w = randn({k, n});
  Tensor xg = x.to(Device::cuda()).requires_grad_(), wg = w.to(Device::cuda()).requires_grad_();
  sum(matmul(xg, wg)).backward();
  Tensor gref = matmul(round_to_bf16(ones({m, n})).to(kFloat64), round_to_bf16(w.t().contiguous()).to(kFloat64));
  CHECK(max_abs_diff(xg.grad().to(Device::cpu()).to(kFloat64), gref) <=
        1e-6 * (double)n * max(abs(gref)).item() + 1e-6);
}

// ---- norm.cu -------------------------------------------------------------------------------

TEST_CASE("cuda nn: softmax and log_softmax, short and long rows, any dim" * gpu_only()) {
  Sizes sz;
  // 7 and 300: one warp per row; 3000: 128 threads; 5000: 256 threads per row.
  for (DType dt : kDtypes)
    for (int64_t n : {1, 7, 300, 3000, 5000}) {
      const int64_t rows = n > 1000 ? sz(1, 5) : sz(1, 40);
      INFO(str(dtype_name(dt), " rows=", rows, " n=", n));
      // Large offsets and spread: the max subtraction must keep exp finite.
      Tensor x = add(mul(randn({rows, n}, dt), 8.0), 100.0);
      for (bool log : {false, true}) {
        const std::string name = log ? "log_softmax" : "softmax";
        auto fn = [log](const Tensor& t, int64_t dim) { return log ? log_softmax(t, dim) : softmax(t, dim); };
        check_parity([fn](const In& in) { return fn(in[0], -1); }, {x}, label(dt, name + " last dim"));
        check_parity([fn](const In& in) { return fn(in[0].t(), 0); }, {x}, label(dt, name + " of a transpose, dim 0"));
        check_parity([fn](const In& in) { return fn(in[0], 0); }, {x.t().contiguous()},
                     label(dt, name + " over dim 0"));
      }
    }
}

TEST_CASE("cuda nn: layer_norm with and without weight and bias, many rows and long rows" * gpu_only()) {
  for (DType dt : kDtypes)
    for (int64_t n : {1, 5, 64, 700, 5000}) {
      const int64_t rows = n > 1000 ? 3 : 300;  // 300 rows: several chunks in the column sums
      INFO(str(dtype_name(dt), " rows=", rows, " n=", n));
      const Tol tol = sum_tol(dt, rows);
      Tensor x = add(mul(randn({rows, n}, dt), 3.0), 2.0);
      Tensor w = randn({n}, dt), b = randn({n}, dt);
      check_parity([n](const In& in) { return layer_norm(in[0], {n}, in[1], in[2]); }, {x, w, b},
                   label(dt, "layer_norm affine"), tol);
      check_parity([n](const In& in) { return layer_norm(in[0], {n}); }, {x}, label(dt, "layer_norm plain"), tol);
      check_parity([n](const In& in) { return layer_norm(in[0], {n}, in[1]); }, {x, w},
                   label(dt, "layer_norm weight only"), tol);
      check_parity([n](const In& in) { return layer_norm(in[0], {n}, Tensor(), in[1]); }, {x, b},
                   label(dt, "layer_norm bias only"), tol);
      check_parity([rows](const In& in) { return layer_norm(in[0].t(), {rows}, in[1], in[2], 1e-3); },
                   {x, randn({rows}, dt), randn({rows}, dt)}, label(dt, "layer_norm of a transpose"),
                   sum_tol(dt, n));
    }
  // Normalising over two trailing dims.
  for (DType dt : kDtypes)
    check_parity([](const In& in) { return layer_norm(in[0], {6, 5}, in[1], in[2]); },
                 {randn({3, 4, 6, 5}, dt), randn({6, 5}, dt), randn({6, 5}, dt)},
                 label(dt, "layer_norm over (6, 5)"), sum_tol(dt, 12));
}

TEST_CASE("cuda nn: cross_entropy with ignore_index, label smoothing, reductions and (N, C, d)" * gpu_only()) {
  Sizes sz;
  for (DType dt : kDtypes)
    for (int64_t classes : {1, 10, 1000}) {
      const int64_t n = sz(5, 30);
      INFO(str(dtype_name(dt), " n=", n, " classes=", classes));
      Tensor logits = mul(randn({n, classes}, dt), 3.0);
      const Tol tol = sum_tol(dt, n);
      auto ce = [](CrossEntropyOptions o) {
        return [o](const In& in) { return cross_entropy(in[0], in[1], o); };
      };
      check_parity(ce({}), {logits, targets(n, classes, 0, -100)}, label(dt, "mean"), tol);
      check_parity(ce({}), {logits, targets(n, classes, 4, -100)}, label(dt, "ignore_index -100"), tol);
      if (classes > 1)
        check_parity(ce({.ignore_index = 1}), {logits, targets(n, classes, 3, 1)},
                     label(dt, "ignore_index 1 (a real class)"), tol);
      check_parity(ce({.label_smoothing = 0.1}), {logits, targets(n, classes, 5, -100)},
                   label(dt, "label smoothing 0.1"), tol);
      check_parity(ce({.label_smoothing = 1.0, .reduction = Reduction::Sum}),
                   {logits, targets(n, classes, 0, -100)}, label(dt, "label smoothing 1, sum"), tol);
      check_parity(ce({.label_smoothing = 0.2, .reduction = Reduction::None}),
                   {logits, targets(n, classes, 3, -100)}, label(dt, "none"), tol);
      // A transposed (non-contiguous) logits matrix.
      check_parity([](const In& in) { return cross_entropy(in[0].t(), in[1]); },
                   {logits.t().contiguous(), targets(n, classes, 0, -100)}, label(dt, "transposed logits"), tol);
    }
  // PyTorch's K-dimensional layout: logits (N, C, d1, d2), target (N, d1, d2).
  for (DType dt : kDtypes)
    for (Reduction red : {Reduction::Mean, Reduction::None}) {
      Tensor t = targets(3 * 4 * 5, 6, 7, -100, {3, 4, 5});
      check_parity([red](const In& in) {
        return cross_entropy(in[0], in[1], {.label_smoothing = 0.05, .reduction = red});
      }, {randn({3, 6, 4, 5}, dt), t}, label(dt, "(N, C, d1, d2)"), sum_tol(dt, 60));
    }
}

TEST_CASE("cuda nn: dropout in training mode draws the CPU's mask from the same seed" * gpu_only()) {
  for (DType dt : kDtypes) {
    // Reseeding inside the function gives both devices the same Philox counters.
    auto drop = [](const In& in) {
      manual_seed(1234);
      return dropout(in[0], 0.3, /*training=*/true);
    };
    Tensor x = add(randn({7, 33, 5}, dt), 0.1);
    check_parity(drop, {x}, label(dt, "dropout p=0.3"));
    manual_seed(1234);
    Tensor y = dropout(x.to(Device::cuda()), 0.3, true).to(Device::cpu());
    const double zeros = sum(eq(y, zeros_like(y)).to(kFloat64)).item() / (double)y.numel();
    CHECK(zeros > 0.2);
    CHECK(zeros < 0.4);
  }
}

TEST_CASE("cuda nn: bias_gelu with bfloat16 rows and a float32 bias gives the bits of add, gelu and dropout" *
          gpu_only()) {
  // 300 x 37: rows that do not end on a Philox block of 8, and a tail. 300 x 40: rows of whole
  // blocks, whose bias the kernels read as 16-byte words.
  for (int64_t cols : {37, 40}) {
    const Tensor x0 = randn({300, cols}).to(kBFloat16).to(Device::cuda()), b0 = randn({cols}).to(Device::cuda());
    const Tensor seed = randn({300, cols}).to(kBFloat16).to(Device::cuda());
    for (double p : {0.0, 0.2}) {
      for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
        CAPTURE(cols);
        CAPTURE(p);
        AutocastGuard autocast;  // the composite's add casts the float32 bias to bfloat16
        Tensor x1 = x0.detach().requires_grad_(), b1 = b0.detach().requires_grad_();
        Tensor x2 = x0.detach().requires_grad_(), b2 = b0.detach().requires_grad_();
        Generator g1(7), g2(7);
        const Tensor fused = bias_gelu(x1, b1, p, true, approx, &g1);
        const Tensor composite = dropout(gelu(add(x2, b2), approx), p, true, &g2);
        REQUIRE(fused.dtype() == kBFloat16);
        CHECK(max_abs_diff(fused.to(kFloat32).to(Device::cpu()), composite.to(kFloat32).to(Device::cpu())) == 0);
        sum(mul(fused, seed)).backward();
        sum(mul(composite, seed)).backward();
        CHECK(max_abs_diff(x1.grad().to(kFloat32).to(Device::cpu()), x2.grad().to(kFloat32).to(Device::cpu())) == 0);
        // The bias gradient: float32 column sums here, a bfloat16 sum cast back in the composite.
        REQUIRE(b1.grad().dtype() == kFloat32);
        const Tensor gb1 = b1.grad().to(Device::cpu()), gb2 = b2.grad().to(Device::cpu());
        CHECK(max_abs_diff(gb1, gb2) <= 1e-2 * (1 + max_abs_diff(gb2, zeros_like(gb2))));
      }
    }
  }
}

// ---- wavelet.cu ----------------------------------------------------------------------------

TEST_CASE("cuda nn: dwt and idwt in every mode, named, shared and per-channel filters, filter gradients" * gpu_only()) {
  Sizes sz;
  for (DType dt : kDtypes)
    for (WaveletMode mode : kAllModes) {
      const int64_t B = 2, N = sz(5, 40), D = sz(1, 6), L = sz(3, 20);
      const std::string m = wavelet_mode_name(mode);
      INFO(str(dtype_name(dt), " ", m, " N=", N, " D=", D, " L=", L));
      const Tol tol = sum_tol(dt, B * std::max(N, 2 * L) * D);
      Tensor x = randn({B, N, D}, dt);
      // A named bank (its float64 filters are converted to x's dtype and device).
      check_parity([mode](const In& in) {
        auto [a, d] = dwt(in[0], Wavelet("db3"), mode, 1);
        return concat({a, d}, 1);
      }, {x}, label(dt, "dwt db3 " + m), tol);
      // Shared learnable filter (F): gradients for the signal and the filter.
      check_parity([mode](const In& in) {
        auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
        return concat({a, mul(d, 2.0)}, 1);
      }, {x, randn({6}, dt)}, label(dt, "dwt shared filter " + m), tol);
      // One filter per channel (F, C).
      check_parity([mode](const In& in) {
        auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
        return concat({a, d}, 1);
      }, {x, randn({4, D}, dt)}, label(dt, "dwt per-channel filters " + m), tol);
      // idwt: coefficients and four biorthogonal filters, shared and per channel.
      auto inverse = [mode](const In& in) {
        return idwt(in[0], in[1], Wavelet::biorthogonal(in[2], in[3], in[4], in[5]), mode, 1);
      };
      check_parity(inverse, {randn({B, L, D}, dt), randn({B, L, D}, dt), randn({4}, dt),
                             randn({4}, dt), randn({4}, dt), randn({4}, dt)},
                   label(dt, "idwt shared filters " + m), tol);
      check_parity(inverse, {randn({B, L, D}, dt), randn({B, L, D}, dt), randn({4, D}, dt),
                             randn({4, D}, dt), randn({4, D}, dt), randn({4, D}, dt)},
                   label(dt, "idwt per-channel filters " + m), tol);
      // Two levels down and back up, trimmed to N, per-channel filters.
      check_parity([mode, N](const In& in) {
        Wavelet w = Wavelet::orthogonal_from(in[1]);
        return waverec(wavedec(in[0], w, 2, mode, 1), w, mode, 1, N);
      }, {x, mul(randn({4, D}, dt), 0.7)}, label(dt, "wavedec + waverec " + m), tol);
      // The coefficients themselves, along the last axis (C = 1) and the first (A = 1).
      check_parity([mode](const In& in) { return concat(wavedec(in[0], Wavelet("sym4"), 2, mode, -1), -1); },
                   {randn({3, 50}, dt)}, label(dt, "wavedec along the last axis " + m), tol);
      check_parity([mode](const In& in) { return concat(wavedec(in[0], Wavelet("coif1"), 1, mode, 0), 0); },
                   {randn({41, 3}, dt)}, label(dt, "wavedec along the first axis " + m), tol);
    }
}

// The cases above have at most 6 channels, which the per-element kernels take. From 16
// channels on, wavelet.cu runs its tiled kernels (32 channels x 64 output rows per block):
// here with a partial channel tile (C not a multiple of 32), several row tiles and the tiles
// at both ends, where synthesis leaves its fast path, filters of 2 to 34 taps (every tap
// grouping of the filter gradient), shared and per-channel, and two levels.
TEST_CASE("cuda nn: the tiled wavelet kernels (16 or more channels) against the CPU, every mode and filter length" * gpu_only()) {
  Sizes sz;
  for (DType dt : kDtypes)
    for (WaveletMode mode : kAllModes) {
      const int64_t B = 2, N = sz(130, 330), D = sz(16, 70), L = sz(70, 200);
      const std::string m = wavelet_mode_name(mode);
      INFO(str(dtype_name(dt), " ", m, " N=", N, " D=", D, " L=", L));
      const Tol tol = sum_tol(dt, B * std::max(N, 2 * L) * D);
      const Tensor x = randn({B, N, D}, dt);
      for (int64_t F : {2, 6, 16, 20, 34}) {
        check_parity([mode](const In& in) {
          auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
          return concat({a, mul(d, 2.0)}, 1);
        }, {x, mul(randn({F, D}, dt), 0.5)}, label(dt, str("dwt per-channel F=", F, " ", m)), tol);
      }
      check_parity([mode](const In& in) {
        auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
        return concat({a, d}, 1);
      }, {x, randn({8}, dt)}, label(dt, "dwt shared filter " + m), tol);
      auto inverse = [mode](const In& in) {
        return idwt(in[0], in[1], Wavelet::biorthogonal(in[2], in[3], in[4], in[5]), mode, 1);
      };
      check_parity(inverse, {randn({B, L, D}, dt), randn({B, L, D}, dt), randn({10, D}, dt),
                             randn({10, D}, dt), randn({10, D}, dt), randn({10, D}, dt)},
                   label(dt, "idwt per-channel filters " + m), tol);
      check_parity(inverse, {randn({B, L, D}, dt), randn({B, L, D}, dt), randn({6}, dt),
                             randn({6}, dt), randn({6}, dt), randn({6}, dt)},
                   label(dt, "idwt shared filters " + m), tol);
      check_parity([mode, N](const In& in) {
        Wavelet w = Wavelet::orthogonal_from(in[1]);
        return waverec(wavedec(in[0], w, 2, mode, 1), w, mode, 1, N);
      }, {x, mul(randn({16, D}, dt), 0.3)}, label(dt, "wavedec + waverec F=16 " + m), tol);
    }
}

namespace {
// bfloat16 signals with float32 filters (what a WavSpA block has under autocast) on CUDA,
// against float32 on the CPU on the same rounded values: the output, then (after one rounded
// seed) every input's gradient. The tolerance allows the bfloat16 rounding of the output and
// of the gradients, whose errors add up over `terms` products in a filter gradient. Through
// several levels the intermediate bands and their gradients are rounded too, so an element is
// off by about 2^-9 of the values it sums, which can be far larger than itself (the extrapolating
// modes grow the ends): `scale_atol` > 0 then also allows that fraction of the largest element
// of the tensor compared.
void check_wavelet_bf16(const std::function<Tensor(const In&)>& fn, const In& signals, const In& filters,
                        const std::string& what, int64_t terms, double scale_atol = 0) {
  In cpu, gpu;
  for (const Tensor& s : signals) {
    const Tensor r = s.to(kBFloat16);
    cpu.push_back(r.to(kFloat32).detach().requires_grad_());
    gpu.push_back(r.to(Device::cuda()).detach().requires_grad_());
  }
  for (const Tensor& f : filters) {
    cpu.push_back(f.to(kFloat32).detach().requires_grad_());
    gpu.push_back(f.to(kFloat32).to(Device::cuda()).detach().requires_grad_());
  }
  const Tensor yc = fn(cpu), yg = fn(gpu);
  CHECK_MESSAGE(yg.dtype() == kBFloat16, what, ": got ", yg.describe());
  const Tol base{1e-2 + 4e-3 * std::sqrt((double)terms), 2e-2};
  auto tol = [&](const Tensor& cpu_value) {
    return Tol{base.atol + (scale_atol > 0 ? scale_atol * max(abs(cpu_value)).item() : 0.0), base.rtol};
  };
  check_close(yc, yg.to(kFloat32), tol(yc), what + " forward");
  const Tensor seed = randn(yc.shape()).to(kBFloat16);
  yc.backward(seed.to(kFloat32));
  yg.backward(seed.to(Device::cuda()));
  for (size_t i = 0; i < cpu.size(); ++i) {
    REQUIRE_MESSAGE(cpu[i].grad().defined() == gpu[i].grad().defined(), what, " input ", i);
    if (!gpu[i].grad().defined()) continue;  // idwt does not read the decomposition filters
    CHECK(gpu[i].grad().dtype() == gpu[i].dtype());
    check_close(cpu[i].grad(), gpu[i].grad().to(kFloat32), tol(cpu[i].grad()), what + " grad of input " + std::to_string(i));
  }
}
}  // namespace

TEST_CASE("cuda nn: bfloat16 wavelets (float32 filters) equal float32 on the CPU, tiled and per-element kernels" *
          gpu_only()) {
  Sizes sz;
  for (WaveletMode mode : kAllModes)
    for (int64_t D : {(int64_t)3, sz(16, 70)}) {  // below and above kTiledMinC
      const int64_t B = 2, N = sz(130, 330), L = sz(70, 200);
      const std::string m = str(wavelet_mode_name(mode), " D=", D, " N=", N, " L=", L);
      INFO(m);
      for (int64_t F : {2, 16, 34})
        check_wavelet_bf16([mode](const In& in) {
          auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
          return concat({a, d}, 1);
        }, {randn({B, N, D})}, {mul(randn({F, D}), 0.5)}, str("dwt per-channel F=", F, " ", m), B * N);
      check_wavelet_bf16([mode](const In& in) {
        auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
        return concat({a, d}, 1);
      }, {randn({B, N, D})}, {mul(randn({8}), 0.5)}, "dwt shared filter " + m, B * N * D);
      check_wavelet_bf16([mode](const In& in) {
        return idwt(in[0], in[1], Wavelet::biorthogonal(in[2], in[3], in[4], in[5]), mode, 1);
      }, {randn({B, L, D}), randn({B, L, D})}, {mul(randn({10, D}), 0.5), mul(randn({10, D}), 0.5),
                                                  mul(randn({10, D}), 0.5), mul(randn({10, D}), 0.5)},
                         "idwt per-channel filters " + m, B * 2 * L);
      check_wavelet_bf16([mode, N](const In& in) {
        Wavelet w = Wavelet::orthogonal_from(in[1]);
        return waverec(wavedec(in[0], w, 2, mode, 1), w, mode, 1, N);
      }, {randn({B, N, D})}, {mul(randn({16, D}), 0.3)}, "wavedec + waverec F=16 " + m, B * N, 1e-2);
    }
  // The CPU has no bfloat16 wavelet kernels: it says so, naming the op.
  check_error([] { dwt(randn({2, 8}).to(kBFloat16), Wavelet("db2")); }, {"dwt", "bfloat16"});
}

// The vector-tile kernels (16-byte rows, at most 16 taps, two bands) give each block a run of
// output tiles, copying the next tile's rows while they compute the current one; the launch
// takes about one wave of blocks, which signals this small never exceed, so the run length is
// set here: 1 (a tile per block), 2, 3 (runs that end past the last tile) and 8. Channels 72
// (a full and a partial channel tile), lengths of several tiles, every mode: in each, tiles at
// the ends (analysis through the map; synthesis's end tiles as inner ones plus the rows' other
// map entries where every row has its own entry, else element by element) and inner tiles.
TEST_CASE("cuda nn: the vector-tile wavelet kernels walking runs of tiles equal the CPU, every mode" * gpu_only()) {
  struct TilesPerBlock {
    explicit TilesPerBlock(int n) { cuda::set_wavelet_tiles_per_block(n); }
    ~TilesPerBlock() { cuda::set_wavelet_tiles_per_block(0); }
  };
  const int64_t B = 2, D = 72;
  for (int tiles : {1, 2, 3, 8}) {
    TilesPerBlock run(tiles);
    for (WaveletMode mode : kAllModes)
      for (int64_t N : {(int64_t)701, (int64_t)1000}) {
        const std::string m = str(wavelet_mode_name(mode), " N=", N, " tiles per block ", tiles);
        INFO(m);
        for (DType dt : kDtypes) {
          const Tol tol = sum_tol(dt, B * 2 * N * D);
          check_parity([mode](const In& in) {
            auto [a, d] = dwt(in[0], Wavelet::orthogonal_from(in[1]), mode, 1);
            return concat({a, mul(d, 2.0)}, 1);
          }, {randn({B, N, D}, dt), mul(randn({16, D}, dt), 0.5)}, label(dt, "dwt F=16 " + m), tol);
          check_parity([mode](const In& in) {
            return idwt(in[0], in[1], Wavelet::biorthogonal(in[2], in[3], in[4], in[5]), mode, 1);
          }, {randn({B, N / 2, D}, dt), randn({B, N / 2, D}, dt), randn({6, D}, dt), randn({6, D}, dt),
              randn({6, D}, dt), randn({6, D}, dt)}, label(dt, "idwt F=6 " + m), tol);
        }
        check_wavelet_bf16([mode, N](const In& in) {
          Wavelet w = Wavelet::orthogonal_from(in[1]);
          return waverec(wavedec(in[0], w, 2, mode, 1), w, mode, 1, N);
        }, {randn({B, N, D})}, {mul(randn({16, D}), 0.3)}, "bf16 wavedec + waverec F=16 " + m, B * N, 1e-2);
      }
  }
}

// A random orthogonal-bank low-pass with the norm sqrt(2) of a real one: two levels of a 2-D
// transform with an unnormalised random filter scale values by up to |f|^8, and float32's
// cancellation in the result then exceeds any absolute tolerance.
namespace {
Tensor unit_filter(DType dt) {
  Tensor f = randn({4}, dt);
  return mul(f, std::sqrt(2.0) / std::sqrt(sum(mul(f, f)).item())).detach();
}
}  // namespace

TEST_CASE("cuda nn: dwt2 / idwt2 / wavedec2 / waverec2, the lattice and lifting" * gpu_only()) {
  manual_seed(42);  // the same inputs whichever cases ran before
  for (DType dt : kDtypes) {
    for (WaveletMode mode : {WaveletMode::Symmetric, WaveletMode::Periodization, WaveletMode::Smooth}) {
      const std::string m = wavelet_mode_name(mode);
      const Tol tol = sum_tol(dt, 2 * 13 * 10);
      check_parity([mode](const In& in) {
        Coeffs2 c = dwt2(in[0], Wavelet("db2"), mode, {1, 2});
        return concat({c.cA, c.cH, c.cV, c.cD}, 0);
      }, {randn({2, 13, 10}, dt)}, label(dt, "dwt2 " + m), tol);
      check_parity([mode](const In& in) {
        return idwt2({in[0], in[1], in[2], in[3]}, Wavelet("bior2.2"), mode, {1, 2});
      }, {randn({2, 6, 7}, dt), randn({2, 6, 7}, dt), randn({2, 6, 7}, dt), randn({2, 6, 7}, dt)},
                   label(dt, "idwt2 " + m), tol);
      check_parity([mode](const In& in) {
        Wavelet w = Wavelet::orthogonal_from(in[1]);
        return waverec2(wavedec2(in[0], w, 2, mode, {2, 1}), w, mode, {2, 1});
      }, {randn({2, 13, 10}, dt), unit_filter(dt)}, label(dt, "wavedec2 + waverec2 " + m), tol);
    }
    const Tol tol = sum_tol(dt, 2 * 24 * 3);
    // The lattice: angles (K, C) -> per-channel filters, differentiated through dwt.
    check_parity([](const In& in) {
      auto [a, d] = dwt(in[0], lattice_filter(in[1]), WaveletMode::Periodization, 1);
      return concat({a, d}, 1);
    }, {randn({2, 24, 3}, dt), randn({3, 3}, dt)}, label(dt, "lattice per channel"), tol);
    check_parity([](const In& in) {
      auto [a, d] = dwt(in[0], lattice_filter(in[1]), WaveletMode::Symmetric, 1);
      return concat({a, d}, 1);
    }, {randn({2, 24, 3}, dt), randn({2}, dt)}, label(dt, "lattice shared"), tol);
    // Lifting: the backends' lifting steps (one channel a thread here: C = 3).
    for (int64_t n : {2, 7, 24}) {
      check_parity([](const In& in) {
        auto [s, d] = lifting_forward(in[0], in[1], in[2], 1);
        return concat({s, d}, 1);
      }, {randn({2, n, 3}, dt), randn({4, 3}, dt), randn({2}, dt)}, label(dt, str("lifting_forward n=", n)), tol);
      const int64_t ne = (n + 1) / 2, no = n / 2;
      check_parity([](const In& in) { return lifting_inverse(in[0], in[1], in[2], in[3], 1); },
                   {randn({2, ne, 3}, dt), randn({2, no, 3}, dt), randn({2}, dt), randn({4, 3}, dt)},
                   label(dt, str("lifting_inverse n=", n)), tol);
      check_parity([](const In& in) {
        auto [s, d] = legall53_forward(in[0], 0);
        return legall53_inverse(mul(s, 1.5), d, 0);
      }, {randn({n, 4}, dt)}, label(dt, str("LeGall 5/3 n=", n)), tol);
    }
  }
}

TEST_CASE("cuda nn: lifting steps on WavSpA-sized signals (8 channels a thread), float32 and bfloat16" * gpu_only()) {
  manual_seed(11);
  const Device cpu = Device::cpu(), cuda = Device::cuda();
  // (A, N, C): a ListOps-sized half batch (even N), odd N, and channels that are not a
  // multiple of 8 (the one-channel path beside the vector one)
  struct Case { int64_t A, N, C; };
  for (Case c : {Case{8, 2000, 128}, Case{4, 999, 64}, Case{3, 37, 12}}) {
    for (bool per_channel : {true, false}) {
      const Shape ps = per_channel ? Shape{2, c.C} : Shape{4}, us = per_channel ? Shape{2, c.C} : Shape{2};
      const Tensor p = mul(randn(ps), 0.5), u = mul(randn(us), 0.25);  // float32 filters, as a model holds
      for (DType dt : {kFloat32, kBFloat16}) {
        INFO(dtype_name(dt), " A=", c.A, " N=", c.N, " C=", c.C, " per_channel=", per_channel);
        // Inputs rounded to dt once; the reference is float64 on the CPU from the same values.
        const Tensor x = randn({c.A, c.N, c.C}).to(dt);
        const int64_t ne = (c.N + 1) / 2, no = c.N / 2;
        const Tensor gs = randn({c.A, ne, c.C}).to(dt), gd = randn({c.A, no, c.C}).to(dt);
        // bfloat16 stores each step's result in 8 bits; float32 sums in float
        const double tol = dt == kBFloat16 ? 3e-2 : 1e-4;
        auto close = [&](const Tensor& got, const Tensor& want, const char* what) {
          const double scale = std::max(1.0, max(abs(want)).item());
          INFO(what);
          CHECK(max_abs_diff(got.to(cpu).to(kFloat64), want) <= tol * scale);
        };
        // forward, and backward into the signal and both filters
        auto run = [&](Device dev, DType signal) {
          Tensor xi = x.to(signal).to(dev).requires_grad_();
          Tensor pi = p.to(signal == kFloat64 ? kFloat64 : kFloat32).to(dev).requires_grad_();
          Tensor ui = u.to(signal == kFloat64 ? kFloat64 : kFloat32).to(dev).requires_grad_();
          auto [s, d] = lifting_forward(xi, pi, ui, 1);
          add(sum(mul(s, gs.to(signal).to(dev))), sum(mul(d, gd.to(signal).to(dev)))).backward();
          return std::vector<Tensor>{s.detach(), d.detach(), xi.grad(), pi.grad(), ui.grad()};
        };
        const auto want = run(cpu, kFloat64), got = run(cuda, dt), again = run(cuda, dt);
        const char* names[] = {"s", "d", "grad x", "grad predict", "grad update"};
        for (int i = 0; i < 5; ++i) close(got[i], want[i], names[i]);
        CHECK(max_abs_diff(got[3], again[3]) == 0);  // the filter gradients: the same bits each run
        CHECK(max_abs_diff(got[4], again[4]) == 0);
        // the inverse, from the rounded coefficients, with its gradients
        const Tensor g = randn({c.A, c.N, c.C}).to(dt);
        auto inv = [&](Device dev, DType signal) {
          Tensor si = want[0].to(dt).to(signal).to(dev).requires_grad_();
          Tensor di = want[1].to(dt).to(signal).to(dev).requires_grad_();
          Tensor pi = p.to(signal == kFloat64 ? kFloat64 : kFloat32).to(dev).requires_grad_();
          Tensor ui = u.to(signal == kFloat64 ? kFloat64 : kFloat32).to(dev).requires_grad_();
          Tensor y = lifting_inverse(si, di, pi, ui, 1);
          y.backward(g.to(signal).to(dev));
          return std::vector<Tensor>{y.detach(), si.grad(), di.grad(), pi.grad(), ui.grad()};
        };
        const auto iwant = inv(cpu, kFloat64), igot = inv(cuda, dt);
        const char* inames[] = {"inverse", "inverse grad s", "inverse grad d", "inverse grad predict",
                                "inverse grad update"};
        for (int i = 0; i < 5; ++i) close(igot[i], iwant[i], inames[i]);
      }
    }
  }
}

TEST_CASE("cuda nn: wavelet kernels with five bands, strided planes and three-term boundary rows" * gpu_only()) {
  // The ops always pass two bands; the kernels take any number in groups of four, and
  // planes whose dim 0 has any stride. Called here directly on both backends.
  Backend& cpu = backend_for(Device::cpu());
  Backend& gpu = backend_for(Device::cuda());
  const int64_t A = 3, n = 13, C = 37, K = 7, nf = 5, L = 9, start = -2;
  const int64_t P = 2 * L + K;
  // Identity rows inside, weighted sums of up to three rows at the ends, and rows of nothing.
  std::vector<ExtendRow> rows(P);
  for (int64_t p = 0; p < P; ++p) {
    const int64_t i = p - 3;
    ExtendRow& r = rows[p];
    if (i >= 0 && i < n) {
      r.src[0] = i;
      r.coef[0] = 1.0;
    } else if (p % 4 == 1) {
      // left empty: a zero row
    } else {
      for (int t = 0; t < 1 + (int)(p % 3); ++t) {
        r.src[t] = (p * 5 + t * 3) % n;
        r.coef[t] = 0.5 - 0.75 * t + 0.125 * (double)p;
      }
    }
  }
  const RowMap map = make_row_map(n, rows);
  for (DType dt : kDtypes) {
    INFO(std::string(dtype_name(dt)));
    const Tol tol = sum_tol(dt, A * L * C);
    auto both = [](const Tensor& t) { return std::make_pair(t.clone(), t.to(Device::cuda())); };
    auto planes = [nf](const Tensor& stacked) {
      std::vector<Tensor> p;
      for (int64_t f = 0; f < nf; ++f) p.push_back(stacked.select(1, f));
      return p;
    };
    // x: every other (n, C) slab of a (A, 2, n, C) tensor, so its dim 0 stride is 2 n C.
    auto [x_full_c, x_full_g] = both(randn({A, 2, n, C}, dt));
    Tensor xc = x_full_c.select(1, 1), xg = x_full_g.select(1, 1);
    for (int64_t Cw : {C, (int64_t)1}) {
      INFO(str("Cw=", Cw));
      auto [wc, wg] = both(randn({nf, K, Cw}, dt));
      // analysis into the nf planes of one (A, nf, L, C) tensor
      Tensor oc = Tensor::empty({A, nf, L, C}, dt), og = Tensor::empty({A, nf, L, C}, dt, Device::cuda());
      cpu.wavelet_analysis(xc, map, wc, start, planes(oc));
      gpu.wavelet_analysis(xg, map, wg, start, planes(og));
      check_close(oc, og, tol, "analysis");
      // synthesis from strided coefficient planes
      auto [cc, cg] = both(randn({A, nf, L, C}, dt));
      Tensor sc = Tensor::empty({A, n, C}, dt), sg = Tensor::empty({A, n, C}, dt, Device::cuda());
      cpu.wavelet_synthesis(planes(cc), wc, start, map, sc, Tensor());
      gpu.wavelet_synthesis(planes(cg), wg, start, map, sg, Tensor());
      check_close(sc, sg, tol, "synthesis");
      // with a residual base from strided planes: added after the last group of bands (five
      // bands are two groups), the bits of add on each device
      auto [rc_full, rg_full] = both(randn({A, 2, n, C}, dt));
      Tensor rc = rc_full.select(1, 0), rg = rg_full.select(1, 0);
      Tensor bc = Tensor::empty({A, n, C}, dt), bg = Tensor::empty({A, n, C}, dt, Device::cuda());
      cpu.wavelet_synthesis(planes(cc), wc, start, map, bc, rc);
      gpu.wavelet_synthesis(planes(cg), wg, start, map, bg, rg);
      check_close(bc, bg, tol, "synthesis + base");
      CHECK(max_abs_diff(bc, add(sc, rc)) == 0);
      CHECK(max_abs_diff(bg.to(Device::cpu()), add(sg, rg).to(Device::cpu())) == 0);
      // filter gradient: strided g planes against the strided x
      Tensor gwc = Tensor::empty({nf, K, Cw}, dt), gwg = Tensor::empty({nf, K, Cw}, dt, Device::cuda());
      cpu.wavelet_filter_grad(planes(cc), xc, map, start, gwc);
      gpu.wavelet_filter_grad(planes(cg), xg, map, start, gwg);
      check_close(gwc, gwg, sum_tol(dt, A * L * C * 3), "filter_grad");
    }
    // extend and its adjoint (which adds into an initialised gradient)
    auto [xe_c, xe_g] = both(randn({A, n, C}, dt));
    Tensor ec = Tensor::empty({A, P, C}, dt), eg = Tensor::empty({A, P, C}, dt, Device::cuda());
    cpu.wavelet_extend(xe_c, map, ec);
    gpu.wavelet_extend(xe_g, map, eg);
    check_close(ec, eg, tol, "extend");
    auto [go_c, go_g] = both(randn({A, P, C}, dt));
    auto [gx_c, gx_g] = both(randn({A, n, C}, dt));
    cpu.wavelet_extend_backward(go_c, map, gx_c);
    gpu.wavelet_extend_backward(go_g, map, gx_g);
    check_close(gx_c, gx_g, tol, "extend_backward");
  }
}

TEST_CASE("cuda nn: cached device copies of wavelet boundary maps stay right when maps alternate and the cache fills" * gpu_only()) {
  // wavelet.cu keeps one device copy per map. For each length the three modes' maps alternate
  // twice (the second pass finds them cached, between calls that use the other maps), and
  // the 40 lengths need more maps than the op layer's memo or the device cache holds, so
  // both are emptied and refilled along the way. float64: the maps do not depend on the
  // dtype, and float64 leaves no doubt about rounding.
  const Tol tol = sum_tol(kFloat64, 2 * 48 * 3);
  for (int64_t n = 8; n < 48; ++n)
    for (int pass = 0; pass < 2; ++pass)
      for (WaveletMode mode : {WaveletMode::Symmetric, WaveletMode::Periodization, WaveletMode::Smooth}) {
        INFO(str("n=", n, " pass ", pass, " ", wavelet_mode_name(mode)));
        check_parity([mode](const In& in) {
          auto [a, d] = dwt(in[0], in[1], mode, 1);
          return idwt(a, d, in[1], mode, 1);
        }, {randn({2, n, 3}, kFloat64), randn({4, 3}, kFloat64)}, "dwt + idwt", tol);
      }
}

// ---- fft.cu --------------------------------------------------------------------------------

TEST_CASE("cuda nn: rfft, irfft and fft_real_2d for odd, even, prime and composite n, every axis" * gpu_only()) {
  for (DType dt : kDtypes)
    for (int64_t n : {1, 2, 3, 7, 8, 97, 100}) {
      const Tol tol = sum_tol(dt, 4 * n);
      for (int64_t axis = 0; axis < 3; ++axis) {
        INFO(str(dtype_name(dt), " n=", n, " axis=", axis));
        Shape s{2, 3, 4};
        s[axis] = n;
        check_parity([axis](const In& in) { return rfft(in[0], axis); }, {randn(s, dt)},
                     label(dt, "rfft"), tol);
        Shape spec = s;
        spec[axis] = n / 2 + 1;
        spec.push_back(2);
        // Random spectra: Im of bin 0 (and n/2) must be ignored by both devices.
        check_parity([n, axis](const In& in) { return irfft(in[0], n, axis); }, {randn(spec, dt)},
                     label(dt, "irfft"), tol);
      }
      // A non-contiguous input, transformed along its middle dim.
      check_parity([](const In& in) { return rfft(in[0].transpose(0, 2), 1); }, {randn({5, n, 3}, dt)},
                   label(dt, str("rfft of a transpose n=", n)), tol);
      check_parity([](const In& in) { return fft_real_2d(in[0], 1, 2); }, {randn({3, n, 6}, dt)},
                   label(dt, str("fft_real_2d (1, 2) n=", n)), sum_tol(dt, 6 * n));
      check_parity([](const In& in) { return fft_real_2d(in[0], 2, 0); }, {randn({n, 4, 5}, dt)},
                   label(dt, str("fft_real_2d (2, 0) n=", n)), sum_tol(dt, 5 * n));
    }
  // Shapes where both transposes around cuFFT take the tiled path (n and C >= 32), and many
  // short signals (A large, C = 1).
  for (DType dt : kDtypes) {
    check_parity([](const In& in) { return irfft(rfft(in[0], 1), 64, 1); }, {randn({3, 64, 40}, dt)},
                 label(dt, "irfft(rfft) (3, 64, 40)"), sum_tol(dt, 64));
    check_parity([](const In& in) { return rfft(in[0], 1); }, {randn({2, 77, 33}, dt)},
                 label(dt, "rfft (2, 77, 33)"), sum_tol(dt, 77));
    check_parity([](const In& in) { return rfft(in[0], -1); }, {randn({130, 48}, dt)},
                 label(dt, "rfft (130, 48) last axis"), sum_tol(dt, 48));
    check_parity([](const In& in) { return fft_real_2d(in[0], 1, 2); }, {randn({2, 40, 36}, dt)},
                 label(dt, "fft_real_2d (2, 40, 36)"), sum_tol(dt, 40 * 36));
  }
}

// ---- nn modules and a model ------------------------------------------------------------------

TEST_CASE("cuda nn: Linear, LayerNorm and MultiHeadSelfAttention moved to CUDA match the CPU" * gpu_only()) {
  for (DType dt : kDtypes) {
    const Tol tol = sum_tol(dt, 64);
    check_module_parity(std::make_shared<nn::Linear>(13, 7), std::make_shared<nn::Linear>(13, 7),
                        randn({4, 5, 13}), dt,
                        [](nn::Linear& m, const Tensor& x) { return m.forward(x); }, label(dt, "Linear"), tol);
    check_module_parity(std::make_shared<nn::LayerNorm>(Shape{7}), std::make_shared<nn::LayerNorm>(Shape{7}),
                        randn({4, 5, 7}), dt,
                        [](nn::LayerNorm& m, const Tensor& x) { return m.forward(x); }, label(dt, "LayerNorm"), tol);
    // Key mask: the second sequence ends in three padding positions.
    Tensor mask = ones({2, 9});
    mask.set({1, 6}, 0.0);
    mask.set({1, 7}, 0.0);
    mask.set({1, 8}, 0.0);
    for (bool fused : {true, false})
      for (bool causal : {false, true}) {
        auto make = [fused] {
          return std::make_shared<nn::MultiHeadSelfAttention>(16, 4, -1, 0.0, true, fused);
        };
        check_module_parity(make(), make(), randn({2, 9, 16}), dt,
                            [mask, causal](nn::MultiHeadSelfAttention& m, const Tensor& x) {
                              return m.forward(x, mask.to(x.device()), causal);
                            },
                            label(dt, str("MultiHeadSelfAttention fused=", fused, " causal=", causal)), tol);
      }
  }
}

namespace {

models::ModelConfig tiny_wavspa() {
  models::ModelConfig c;
  c.architecture = "wavspa";
  c.attention = "full";
  c.parametrization = "ada";
  c.vocab_size = 16;
  c.num_classes = 10;
  c.max_len = 64;
  c.emb_dim = 32;
  c.num_heads = 2;
  c.num_layers = 2;
  c.qkv_dim = 32;
  c.mlp_dim = 64;
  c.classifier_mlp = 32;
  c.dropout = 0.0;
  c.attention_dropout = 0.0;
  c.levels = 2;
  c.wlen = 8;
  return c;
}

// Losses of 20 AdamW steps over fixed batches, from the weights `init`.
std::vector<double> train_losses(const nn::StateDict& init, DType dt, Device device,
                                 const std::vector<std::pair<Tensor, Tensor>>& batches) {
  auto model = models::make_classifier(tiny_wavspa());
  model->load_state_dict(init);
  model->to(dt);
  model->to(device);
  nn::AdamW opt(model->parameters(), {.lr = 3e-3});  // after to(): it holds the moved tensors
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    const auto& [ids, labels] = batches[step % batches.size()];
    Tensor loss = cross_entropy(model->forward(ids.to(device)), labels.to(device));
    opt.zero_grad();
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}

}  // namespace

TEST_CASE("cuda nn: a WavSpA-ada classifier trains alike on CPU and CUDA (20 AdamW steps)" * gpu_only()) {
  manual_seed(11);
  auto reference = models::make_classifier(tiny_wavspa());
  nn::StateDict init;
  for (const auto& [name, t] : reference->state_dict()) init[name] = t.clone();
  // Four fixed batches of 8 sequences of 60 tokens; some end in padding (id 0).
  std::vector<std::pair<Tensor, Tensor>> batches;
  for (int b = 0; b < 4; ++b) {
    std::vector<int64_t> ids = randint(1, 16, {8 * 60}).to_vector<int64_t>();
    for (int64_t row = 0; row < 8; row += 3)
      for (int64_t t = 60 - 5 * (row + 1); t < 60; ++t) ids[row * 60 + t] = 0;
    batches.emplace_back(from_vector(ids, {8, 60}), randint(0, 10, {8}));
  }
  for (DType dt : kDtypes) {
    INFO(std::string(dtype_name(dt)));
    const std::vector<double> lc = train_losses(init, dt, Device::cpu(), batches);
    const std::vector<double> lg = train_losses(init, dt, Device::cuda(), batches);
    const double rel = dt == kFloat64 ? 1e-9 : 1e-3;
    for (size_t i = 0; i < lc.size(); ++i) {
      INFO(str("step ", i, ": cpu ", lc[i], ", cuda ", lg[i]));
      CHECK(std::isfinite(lg[i]));
      CHECK(std::abs(lc[i] - lg[i]) <= rel * std::abs(lc[i]));
    }
    CHECK(lc.back() < lc.front());  // it did train
  }
}

TEST_CASE("cuda nn: every model preset gives the CPU's logits and gradients (float64)" * gpu_only()) {
  // Every preset of tools/train on the tiny sizes, and a dual encoder (retrieval) of the first
  // WavSpA preset.
  std::vector<std::pair<std::string, bool>> variants;  // (preset, dual)
  for (const std::string& name : train::model_preset_names()) variants.emplace_back(name, false);
  variants.emplace_back("wavspa-ada", true);
  for (const auto& [preset, dual] : variants) {
    train::RunConfig run;
    run.model = tiny_wavspa();
    train::apply_model_preset(run, preset);
    models::ModelConfig c = run.model;
    c.dual = dual;
    c.performer_features = 16;
    c.linformer_k = 16;
    c.local_window = 8;
    const std::string what = str(preset, " (", c.architecture, "/", c.attention, "/", c.parametrization, ")",
                                 dual ? " dual" : "");
    INFO(what);
    manual_seed(21);
    std::shared_ptr<nn::Module> cpu_model, gpu_model;
    std::function<Tensor(nn::Module&, const Tensor&, const Tensor&)> forward;
    if (dual) {
      cpu_model = models::make_dual_encoder(c);
      gpu_model = models::make_dual_encoder(c);
      forward = [](nn::Module& m, const Tensor& a, const Tensor& b) {
        return static_cast<models::DualEncoder&>(m).forward(a, b);
      };
    } else {
      cpu_model = models::make_classifier(c);
      gpu_model = models::make_classifier(c);
      forward = [](nn::Module& m, const Tensor& a, const Tensor&) {
        return static_cast<models::SequenceClassifier&>(m).forward(a);
      };
    }
    cpu_model->to(kFloat64);
    gpu_model->to(kFloat64);
    gpu_model->load_state_dict(cpu_model->state_dict());
    gpu_model->to(Device::cuda());
    // 3 sequences of 60 tokens, the last ones of two rows padding.
    std::vector<int64_t> ids = randint(1, 16, {3 * 60}).to_vector<int64_t>();
    for (int64_t t = 50; t < 60; ++t) ids[t] = ids[2 * 60 + t - 20] = 0;
    const Tensor a = from_vector(ids, {3, 60}), b = flip(a, {1}).contiguous();
    const Tensor lc = forward(*cpu_model, a, b);
    const Tensor lg = forward(*gpu_model, a.to(Device::cuda()), b.to(Device::cuda()));
    check_close(lc, lg, default_tol(kFloat64), what + ": logits");
    const Tensor seed = randn(lc.shape(), kFloat64);
    sum(mul(lc, seed)).backward();
    sum(mul(lg, seed.to(Device::cuda()))).backward();
    const auto pc = cpu_model->named_parameters(), pg = gpu_model->named_parameters();
    REQUIRE(pc.size() == pg.size());
    for (size_t i = 0; i < pc.size(); ++i) {
      REQUIRE(pc[i].first == pg[i].first);
      REQUIRE(pc[i].second.grad().defined() == pg[i].second.grad().defined());
      if (!pc[i].second.grad().defined()) continue;  // a frozen filter
      check_close(pc[i].second.grad(), pg[i].second.grad(), default_tol(kFloat64), what + ": grad of " + pc[i].first);
    }
  }
}

TEST_CASE("cuda nn: column_sum (a linear layer's bias gradient) against the CPU, the same bits every run" * gpu_only()) {
  const Device cuda = Device::cuda();
  // (rows, cols): one block, partial tiles, many row splits, more tiles than one launch takes
  // (4096 tiles of 32 columns: 140001 and 1048584),
  // and no rows at all.
  for (auto [M, N] : std::vector<std::pair<int64_t, int64_t>>{{1, 5}, {300, 33}, {64032, 128}, {64032, 192}, {3, 140001}, {2, 1048584}, {0, 7}}) {
    INFO("rows=", M, " cols=", N);
    Tensor x = add(randn({M, N}), 0.5);
    auto cuda_sum = [&](const Tensor& in, DType out_dt) {
      Tensor out = Tensor::empty({N}, out_dt, cuda);
      backend_for(in.device()).column_sum(in, out);
      return out.to(Device::cpu());
    };
    for (DType dt : {kFloat32, kFloat64}) {
      Tensor xd = x.to(dt);
      Tensor cpu = Tensor::empty({N}, dt);
      backend_for(Device::cpu()).column_sum(xd, cpu);
      Tensor got = cuda_sum(xd.to(cuda), dt);
      CHECK(max_abs_diff(got, cpu) <= (dt == kFloat64 ? 1e-9 : 1e-4));
      CHECK(max_abs_diff(got, cuda_sum(xd.to(cuda), dt)) == 0);
    }
    // bfloat16 rows into float32 sums: float per thread, double over the splits.
    Tensor xb = x.to(kBFloat16);
    Tensor wantb = Tensor::empty({N}, kFloat64);
    backend_for(Device::cpu()).column_sum(xb.to(kFloat64), wantb);
    Tensor gotb = cuda_sum(xb.to(cuda), kFloat32);
    CHECK(gotb.dtype() == kFloat32);
    CHECK(max_abs_diff(gotb, wantb) <= 1e-3 + 1e-6 * (double)M);
    CHECK(max_abs_diff(gotb, cuda_sum(xb.to(cuda), kFloat32)) == 0);
  }
}

TEST_CASE("cuda nn: the sums without atomics give the same bits on every run" * gpu_only()) {
  const Device cuda = Device::cuda();
  // layer_norm's weight and bias gradients: column sums over 1000 rows in chunks
  Tensor x = randn({1000, 96}).to(cuda), w = randn({96}).to(cuda), b = randn({96}).to(cuda);
  Tensor seed = randn({1000, 96}).to(cuda);
  auto ln_grads = [&] {
    Tensor wl = w.detach().requires_grad_(), bl = b.detach().requires_grad_();
    layer_norm(x, {96}, wl, bl).backward(seed);
    return std::make_pair(wl.grad().to(Device::cpu()), bl.grad().to(Device::cpu()));
  };
  auto [w1, b1] = ln_grads();
  auto [w2, b2] = ln_grads();
  CHECK(max_abs_diff(w1, w2) == 0);
  CHECK(max_abs_diff(b1, b2) == 0);
  // the wavelet filter gradient: a sum over (a, o) in chunks, then over channels (shared)
  Tensor sig = randn({8, 200, 64}).to(cuda);
  for (const Shape& fs : {Shape{8}, Shape{8, 64}}) {
    Tensor f = randn(fs).to(cuda);
    auto filter_grad = [&] {
      Tensor fl = f.detach().requires_grad_();
      auto [a, d] = dwt(sig, Wavelet::orthogonal_from(fl), WaveletMode::Periodization, 1);
      sum(add(mul(a, a), d)).backward();
      return fl.grad().to(Device::cpu());
    };
    CHECK(max_abs_diff(filter_grad(), filter_grad()) == 0);
  }
}

// Last in the file: the cases above draw their random inputs from the default generator in
// file order, and a case that draws before them changes their data.
TEST_CASE("cuda nn: waverec_add and dropout_add give the bits of add, bfloat16 and float32, WavSpA sizes" * gpu_only()) {
  // (4, 2000, 128) and (4, 1000, 256): the vector-tile synthesis with a residual, and an odd
  // length (a WavSpA block's N + 1 with its CLS token), whose trim the synthesis does through
  // a cropped map; dropout_add on the same sizes. Both against the
  // composite on the card, forward and backward, bfloat16 signals with float32 filters.
  for (int64_t D : {128, 256}) {
    for (int64_t N : {2000, 1001}) {
      for (DType dt : {kBFloat16, kFloat32}) {
        CAPTURE(D);
        CAPTURE(N);
        CAPTURE(dtype_name(dt));
        auto dev = [dt](const Tensor& t) { return t.to(dt).to(Device::cuda()); };
        const Wavelet w = Wavelet::orthogonal_from(mul(randn({16, D}), 0.3).to(Device::cuda()));
        const std::vector<Tensor> c0 = wavedec(dev(randn({4, N, D})), w, 1, WaveletMode::Periodization, 1);
        const Tensor base0 = dev(randn({4, N, D})), seed = dev(randn({4, N, D}));
        std::vector<Tensor> c1, c2;
        for (const Tensor& c : c0) {
          c1.push_back(c.detach().requires_grad_());
          c2.push_back(c.detach().requires_grad_());
        }
        Tensor b1 = base0.detach().requires_grad_(), b2 = base0.detach().requires_grad_();
        const Tensor fused = waverec_add(b1, c1, w, WaveletMode::Periodization, 1, N);
        const Tensor composite = add(b2, waverec(c2, w, WaveletMode::Periodization, 1, N));
        REQUIRE(fused.dtype() == dt);
        CHECK(max_abs_diff(fused.to(kFloat64).to(Device::cpu()), composite.to(kFloat64).to(Device::cpu())) == 0);
        sum(mul(fused, seed)).backward();
        sum(mul(composite, seed)).backward();
        CHECK(max_abs_diff(b1.grad().to(kFloat64).to(Device::cpu()), b2.grad().to(kFloat64).to(Device::cpu())) == 0);
        for (size_t i = 0; i < c1.size(); ++i)
          CHECK(max_abs_diff(c1[i].grad().to(kFloat64).to(Device::cpu()), c2[i].grad().to(kFloat64).to(Device::cpu())) ==
                0);

        Tensor x1 = dev(randn({4, N, D})).requires_grad_(), x2 = x1.detach().requires_grad_();
        Tensor r1 = base0.detach().requires_grad_(), r2 = base0.detach().requires_grad_();
        Generator g1(8), g2(8);
        const Tensor dfused = dropout_add(r1, x1, 0.1, true, &g1);
        const Tensor dcomp = add(r2, dropout(x2, 0.1, true, &g2));
        CHECK(max_abs_diff(dfused.to(kFloat64).to(Device::cpu()), dcomp.to(kFloat64).to(Device::cpu())) == 0);
        sum(mul(dfused, seed)).backward();
        sum(mul(dcomp, seed)).backward();
        CHECK(max_abs_diff(x1.grad().to(kFloat64).to(Device::cpu()), x2.grad().to(kFloat64).to(Device::cpu())) == 0);
        CHECK(max_abs_diff(r1.grad().to(kFloat64).to(Device::cpu()), r2.grad().to(kFloat64).to(Device::cpu())) == 0);
      }
    }
  }
  // Under autocast a float32 residual and a bfloat16 branch (the first block of a bf16 model):
  // the same bits as add's cast, both ways round.
  AutocastGuard autocast;
  const Tensor base = randn({2, 64, 16}).to(Device::cuda()), x = randn({2, 64, 16}).to(kBFloat16).to(Device::cuda());
  Generator g1(4), g2(4);
  const Tensor y1 = dropout_add(base, x, 0.2, true, &g1), y2 = add(base, dropout(x, 0.2, true, &g2));
  REQUIRE(y1.dtype() == kBFloat16);
  CHECK(max_abs_diff(y1.to(kFloat32).to(Device::cpu()), y2.to(kFloat32).to(Device::cpu())) == 0);
}

#endif  // WAVSPA_CUDA

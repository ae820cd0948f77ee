// bfloat16 tensors on CUDA (backends/cuda: Compute<T>, dispatch_floating_bf16, the bf16 GEMM):
// the device conversions round exactly as the host type does (every bfloat16 pattern, ties,
// NaN, overflow, float64 and integers), bfloat16 GEMMs against a float64 product of the same
// values, layer norm's float32 statistics, and a small model step in bfloat16. The op table
// (tests/ops/test_op_table.cpp) compares every op in bfloat16 with the CPU in float32.
#ifdef WAVSPA_CUDA

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/backend.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// Every |got - want| within `ulps` bfloat16 ulps of |want| (2^-8 relative each) plus `atol`.
double worst_ulps(const Tensor& got, const Tensor& want, double atol = 1e-4) {
  auto w = want.to(Device::cpu()).to(kFloat64).to_vector<double>();
  auto g = got.to(Device::cpu()).to(kFloat64).to_vector<double>();
  double worst = 0;
  for (size_t k = 0; k < w.size(); ++k)
    worst = std::max(worst, std::abs(w[k] - g[k]) / (std::abs(w[k]) * std::ldexp(1.0, -8) + atol));
  return worst;
}

std::vector<uint16_t> bits(const Tensor& t) {
  std::vector<uint16_t> out;
  for (bfloat16 v : t.to(Device::cpu()).to_vector<bfloat16>()) out.push_back(v.bits);
  return out;
}

}  // namespace

TEST_CASE("cuda bfloat16: device conversions round as the host does, bit for bit" * gpu_only()) {
  // Every float32 made from a bfloat16 pattern plus each interesting low half (exact, below a
  // tie, a tie, above it, NaN payloads below bit 16).
  std::vector<float> f;
  for (uint32_t hi = 0; hi < 0x10000; hi += 7)
    for (uint32_t lo : {0x0000u, 0x7fffu, 0x8000u, 0x8001u, 0x0001u})
      f.push_back(std::bit_cast<float>((hi << 16) | lo));
  Tensor host = from_vector(f);
  CHECK(bits(host.to(Device::cuda()).to(kBFloat16)) == bits(host.to(kBFloat16)));
  // float64 (rounded once), int64 and int32 sources; and back to every dtype.
  Tensor d = from_vector(std::vector<double>{1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40), 1.0 + std::ldexp(1.0, -8),
                                             1e300, -1e-300, 3.3e38, NAN, -0.1});
  CHECK(bits(d.to(Device::cuda()).to(kBFloat16)) == bits(d.to(kBFloat16)));
  Tensor i = from_vector(std::vector<int64_t>{0, 257, -258, 1 << 20, 123456789});
  CHECK(bits(i.to(Device::cuda()).to(kBFloat16)) == bits(i.to(kBFloat16)));
  CHECK(bits(i.to(kInt32).to(Device::cuda()).to(kBFloat16)) == bits(i.to(kBFloat16)));
  Tensor h = from_vector(std::vector<float>{1.5f, -2.25f, 100.5f, 0.1f}).to(kBFloat16);
  Tensor hg = h.to(Device::cuda());
  for (DType dt : {kFloat32, kFloat64, kInt32, kInt64})
    CHECK(max_abs_diff(hg.to(dt).to(Device::cpu()), h.to(dt)) == 0);
  // Strided copies, fill and set.
  Tensor m = randn({5, 7}).to(kBFloat16);
  CHECK(bits(m.to(Device::cuda()).t().contiguous()) == bits(m.t().contiguous()));
  CHECK(bits(full({3}, 0.1, kBFloat16, Device::cuda())) == bits(full({3}, 0.1, kBFloat16)));
  Tensor z = zeros({2, 2}, kBFloat16, Device::cuda());
  z.set({1, 0}, -3.140625);
  CHECK(z.at({1, 0}) == -3.140625);
}

TEST_CASE("cuda bfloat16: gemm and batched gemm equal a float64 product of the same values" * gpu_only()) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("transposed a ", ta, ", b ", tb);
      Tensor a = randn(ta ? Shape{3, 33, 17} : Shape{3, 17, 33}).to(kBFloat16);
      Tensor b = randn(tb ? Shape{3, 9, 33} : Shape{3, 33, 9}).to(kBFloat16);
      Tensor av = ta ? a.transpose(1, 2) : a, bv = tb ? b.transpose(1, 2) : b;
      Tensor want = matmul(av.to(kFloat64), bv.to(kFloat64));          // (3, 17, 9)
      Tensor got = matmul(av.to(Device::cuda()), bv.to(Device::cuda()));  // bfloat16 out
      CHECK(got.dtype() == kBFloat16);
      // float32 accumulation, then one rounding to bfloat16: half an ulp of the result plus
      // float32 summation error.
      CHECK(worst_ulps(got, want) <= 1);
      // One matrix: gemm, and linear with a bias.
      Tensor x = randn({6, 33}).to(kBFloat16), wt = randn({5, 33}).to(kBFloat16), bias = randn({5}).to(kBFloat16);
      Tensor ref = linear(x.to(kFloat64), wt.to(kFloat64), bias.to(kFloat64));
      Tensor y = linear(x.to(Device::cuda()), wt.to(Device::cuda()), bias.to(Device::cuda()));
      CHECK(worst_ulps(y, ref) <= 1);
    }
}

TEST_CASE("cuda bfloat16: layer norm keeps float32 statistics; a small model trains a step" * gpu_only()) {
  Tensor x = add(mul(randn({4, 64}), 3.0), 100.0).to(kBFloat16);  // a large mean: cancellation
  Tensor y = layer_norm(x.to(Device::cuda()), {64});
  Tensor ref = layer_norm(x.to(kFloat32), {64});
  CHECK(y.dtype() == kBFloat16);
  CHECK(worst_ulps(y, ref, 1e-3) <= 1);
  // A two-layer MLP in bfloat16 on CUDA: forward, cross-entropy, backward, every gradient
  // bfloat16 and close to the float32 CPU run on the same values.
  Tensor w1 = mul(randn({16, 8}), 0.3).to(kBFloat16), w2 = mul(randn({3, 16}), 0.3).to(kBFloat16);
  Tensor in = randn({10, 8}).to(kBFloat16);
  Tensor target = randint(0, 3, {10});
  auto step = [&](Device dev, DType dt) {
    Tensor a = w1.to(dt).to(dev).requires_grad_(), b = w2.to(dt).to(dev).requires_grad_();
    Tensor loss = cross_entropy(linear(gelu(linear(in.to(dt).to(dev), a)), b), target.to(dev));
    loss.backward();
    return std::vector<Tensor>{loss, a.grad(), b.grad()};
  };
  auto g = step(Device::cuda(), kBFloat16), c = step(Device::cpu(), kFloat32);
  for (size_t k = 0; k < g.size(); ++k) {
    INFO("tensor ", k);
    CHECK(g[k].dtype() == kBFloat16);
    CHECK(max_abs_diff(g[k], c[k]) <= 0.02 + 0.02 * max_abs_diff(c[k], zeros_like(c[k])));
  }
}

TEST_CASE("cuda bfloat16: layer norm's chunked row kernels (16-byte words, a lane group a row) against the CPU" * gpu_only()) {
  // Rows that are multiples of 8 from 32 to 1024 elements take the chunked kernels (norm.cu:
  // 4 to 32 lanes a row, 1 to 4 chunks a lane, lanes past the row idle); 36 and 1032 take the
  // element kernels, and so does a row that does not start 16-byte aligned. 77 rows: the last
  // block is partly past the end. float32 rows against the CPU's float32 (double sums in
  // another order), bfloat16 rows with float32 parameters (autocast's pairing) within one
  // bfloat16 ulp of the CPU's float32 on the same rounded values, gradients included.
  const Device cuda = Device::cuda();
  for (int64_t n : {32, 36, 40, 128, 200, 256, 264, 520, 1024, 1032}) {
    for (bool aligned : {true, false}) {
      INFO("n=", n, aligned ? "" : ", rows offset by one element");
      const int64_t rows = 77;
      Tensor whole = add(mul(randn({rows * n + 1}), 3.0), 2.0);
      Tensor x = whole.narrow(0, aligned ? 0 : 1, rows * n).reshape({rows, n});
      Tensor w = randn({n}), b = randn({n}), seed = randn({rows, n});
      // float32 on both devices
      Tensor xc = x.detach().clone().requires_grad_(), wc = w.clone().requires_grad_(), bc = b.clone().requires_grad_();
      Tensor xg = x.to(cuda).requires_grad_(), wg = w.to(cuda).requires_grad_(), bg = b.to(cuda).requires_grad_();
      if (!aligned) xg = whole.to(cuda).narrow(0, 1, rows * n).reshape({rows, n}).detach().requires_grad_();
      Tensor yc = layer_norm(xc, {n}, wc, bc), yg = layer_norm(xg, {n}, wg, bg);
      CHECK(max_abs_diff(yc, yg) <= 1e-5);
      yc.backward(seed);
      yg.backward(seed.to(cuda));
      CHECK(max_abs_diff(xc.grad(), xg.grad()) <= 1e-4);
      CHECK(max_abs_diff(wc.grad(), wg.grad()) <= 1e-3);
      CHECK(max_abs_diff(bc.grad(), bg.grad()) <= 1e-3);
      // bfloat16 rows, float32 parameters
      Tensor wholeb = whole.to(kBFloat16), sb = seed.to(kBFloat16);
      Tensor xb = wholeb.narrow(0, aligned ? 0 : 1, rows * n).reshape({rows, n});
      Tensor xr = xb.to(kFloat32).requires_grad_(), wr = w.clone().requires_grad_();
      Tensor xbg = wholeb.to(cuda).narrow(0, aligned ? 0 : 1, rows * n).reshape({rows, n}).detach().requires_grad_();
      Tensor wbg = w.to(cuda).requires_grad_();
      Tensor yr = layer_norm(xr, {n}, wr, b), ybg = layer_norm(xbg, {n}, wbg, b.to(cuda));
      CHECK(ybg.dtype() == kBFloat16);
      CHECK(worst_ulps(ybg, yr, 1e-3) <= 1);
      yr.backward(sb.to(kFloat32));
      ybg.backward(sb.to(cuda));
      CHECK(xbg.grad().dtype() == kBFloat16);
      CHECK(worst_ulps(xbg.grad(), xr.grad(), 1e-3) <= 1);
      CHECK(max_abs_diff(wbg.grad(), wr.grad()) <= 1e-3 * (double)rows);
    }
  }
}


TEST_CASE("cuda bfloat16: gemm_bias in cuBLASLt's epilogue is as close to the float64 result as a copied bias and beta 1, and copy_many gives the bits of copy" *
          gpu_only()) {
  Backend& be = backend_for(Device::cuda());
  for (auto [m, n, k] : std::vector<std::array<int64_t, 3>>{{64032, 128, 128}, {37, 24, 40}, {5, 8, 3}}) {
    CAPTURE(m);
    CAPTURE(n);
    const Tensor a = randn({m, k}).to(kBFloat16).to(Device::cuda()), w = randn({n, k}).to(kBFloat16).to(Device::cuda());
    const Tensor bias = randn({n}).to(kBFloat16).to(Device::cuda());
    const GemmArgs g{false, true, m, n, k, k, k, n, 1.0, 0.0};
    Tensor fused = Tensor::empty({m, n}, kBFloat16, Device::cuda()), plain = Tensor::empty({m, n}, kBFloat16, Device::cuda());
    be.gemm_bias(g, a, w, bias, fused);
    be.Backend::gemm_bias(g, a, w, bias, plain);  // the default: the bias copied into c, beta 1
    // Not the same bits. The epilogue adds the bias to the float32 accumulator and rounds once:
    // within 2 ulps of the float64 result. The default's beta 1 on a bfloat16 c lets cuBLAS
    // round partial sums (split-K) to bfloat16: the H200 showed 60 ulps at 64032 x 128 and 10 at
    // 37 x 24, near cancelling terms. The epilogue must be no worse.
    const Tensor want = add(matmul(a.to(kFloat64), w.to(kFloat64).t()), bias.to(kFloat64));
    CHECK(worst_ulps(fused, want) <= 2);
    CHECK(worst_ulps(fused, want) <= worst_ulps(plain, want));
  }
  // 70 float32 -> bfloat16 pairs (two launches of up to 64), an empty one, and pairs that take
  // the plain copy (float64 source, a transposed source).
  std::vector<Tensor> src, dst, want;
  for (int i = 0; i < 70; ++i) {
    src.push_back(randn({1 + 37 * i}).to(Device::cuda()));
    dst.push_back(Tensor::empty({1 + 37 * i}, kBFloat16, Device::cuda()));
  }
  src.push_back(Tensor::empty({0}, kFloat32, Device::cuda()));
  dst.push_back(Tensor::empty({0}, kBFloat16, Device::cuda()));
  src.push_back(randn({9}, kFloat64).to(Device::cuda()));
  dst.push_back(Tensor::empty({9}, kBFloat16, Device::cuda()));
  src.push_back(randn({4, 6}).to(Device::cuda()).t());
  dst.push_back(Tensor::empty({6, 4}, kBFloat16, Device::cuda()));
  be.copy_many(src, dst);
  for (size_t i = 0; i < src.size(); ++i) {
    CAPTURE(i);
    CHECK(bits(dst[i]) == bits(src[i].to(kBFloat16)));
  }
}

TEST_CASE("cuda bfloat16: bias_gelu and dropout_add keep their composites' bits with NaN, infinities and overflow" *
          gpu_only()) {
  // The fused kernels round intermediates with the hardware's cvt alone (no NaN rule) and
  // their stores eight at a time (round8): the bits must stay those of add, gelu and dropout
  // run one by one, NaN payloads, infinities, overflow to inf and ties included.
  std::vector<float> f;
  for (float v : randn({8 * 16}).to_vector<float>()) f.push_back(3 * v);
  auto nan_bits = [](uint32_t u) { float x; std::memcpy(&x, &u, 4); return x; };
  const float specials[] = {nan_bits(0x7fa00001u), nan_bits(0xffc12345u), nan_bits(0x7fc00000u),
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            3.38e38f, -3.38e38f, 1.00390625f, 0.0f, -0.0f, 1e-40f};
  for (size_t i = 0; i < std::size(specials); ++i) f[7 * i + 3] = specials[i];
  const Tensor x = from_vector(f).reshape({8, 16}).to(kBFloat16).to(Device::cuda());
  std::vector<float> fb(16);
  for (int i = 0; i < 16; ++i) fb[i] = 0.25f * (float)(i - 8);
  fb[5] = 3.38e38f;  // overflows in x + bias where x is large
  const Tensor b = from_vector(fb).to(kBFloat16).to(Device::cuda());
  for (double p : {0.0, 0.4}) {
    for (GeluApprox approx : {GeluApprox::None, GeluApprox::Tanh}) {
      CAPTURE(p);
      Tensor x1 = x.detach().requires_grad_(), x2 = x.detach().requires_grad_();
      Generator g1(5), g2(5);
      const Tensor fused = bias_gelu(x1, b, p, true, approx, &g1);
      const Tensor composite = dropout(gelu(add(x2, b), approx), p, true, &g2);
      CHECK(bits(fused) == bits(composite));
      const Tensor seed = flip(x, {1});  // NaNs and infinities in the gradient too
      sum(mul(fused, seed)).backward();
      sum(mul(composite, seed)).backward();
      CHECK(bits(x1.grad()) == bits(x2.grad()));
    }
    Generator g1(6), g2(6);
    const Tensor base = flip(x, {0});
    CHECK(bits(dropout_add(base, x, p, true, &g1)) == bits(add(base, dropout(x, p, true, &g2))));
  }
}

#endif  // WAVSPA_CUDA

// The CUDA attention paths beyond the op table's parity samples: the bfloat16 tensor-core
// kernels that the float32 path takes under MatmulPrecision::BFloat16 and bfloat16 tensors
// take always, against the float64 CPU op, at the head dims they serve, with odd lengths,
// padding, causal masks and dropout, and for bfloat16 tensors with and without the dS scratch
// (whole, and in chunks); the float32 tensor-core kernels (3xTF32 under Float32, one TF32
// product under TF32) on the same kinds of problems; the exact path over several query
// chunks; bit-for-bit repeatability of all of them; and dropout's mask drawn before the
// tensor-core forward (the rule's bits, and both passes' bits against drawing it inside). Every case skips itself on a machine without a GPU.
#ifdef WAVSPA_CUDA

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/runtime.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// ||a - b|| / ||b|| over all elements, in float64 on the CPU.
double rel_err(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to(Device::cpu()).to(kFloat64).contiguous().to_vector<double>();
  const std::vector<double> y = b.to(Device::cpu()).to(kFloat64).contiguous().to_vector<double>();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

struct Case {
  int64_t B, H, nq, nk, d;
  bool causal, padded;
  double dropout;
};

std::string describe(const Case& c) {
  return str("B ", c.B, " H ", c.H, " nq ", c.nq, " nk ", c.nk, " d ", c.d, c.causal ? " causal" : "",
             c.padded ? " padded" : "", " dropout ", c.dropout);
}

// Runs attention forward and backward on `device` from float64 CPU leaves converted to
// `dtype`, with a fresh Generator(seed) for dropout; returns out, dq, dk, dv.
std::vector<Tensor> run(const Case& c, const std::vector<Tensor>& leaves, const Tensor& mask, const Tensor& seed,
                        DType dtype, Device device) {
  std::vector<Tensor> in;
  for (const Tensor& l : leaves) in.push_back(l.to(dtype).to(device).detach().requires_grad_(true));
  Generator gen(1234);
  AttentionOptions o;
  if (mask.defined()) o.key_mask = mask.to(device);
  o.causal = c.causal;
  o.dropout_p = c.dropout;
  o.training = c.dropout > 0;
  o.gen = &gen;
  Tensor out = attention(in[0], in[1], in[2], o);
  sum(mul(out, seed.to(dtype).to(device))).backward();
  return {out, in[0].grad(), in[1].grad(), in[2].grad()};
}

// The inputs of a case: q, k, v of a fused projection ((B, N, H, d) memory, heads read in
// place), the seed that weights the outputs in the loss, and the key mask when the case is
// padded (batch entry 1 entirely padded, others every fifth key or so).
struct Inputs {
  Tensor q, k, v, seed, mask;
};
Inputs make_inputs(const Case& c) {
  Inputs in;
  in.q = rn({c.B, c.nq, c.H, c.d}).permute({0, 2, 1, 3});
  in.k = rn({c.B, c.nk, c.H, c.d}).permute({0, 2, 1, 3});
  in.v = rn({c.B, c.nk, c.H, c.d}).permute({0, 2, 1, 3});
  in.seed = rn({c.B, c.H, c.nq, c.d});
  if (c.padded) {
    std::vector<double> m(c.B * c.nk);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.nk; ++j) m[b * c.nk + j] = b == 1 ? 0.0 : (j * 7 + b) % 5 != 0;
    in.mask = from_vector(m, {c.B, c.nk});
  }
  return in;
}

}  // namespace

TEST_CASE("cuda attention: bfloat16 tensor-core kernels match the float64 reference" * gpu_only()) {
  const std::vector<Case> cases = {
      {2, 3, 77, 77, 64, false, false, 0.0},  {2, 2, 130, 67, 64, false, true, 0.0},
      {3, 2, 130, 130, 64, true, true, 0.0},  {2, 2, 93, 93, 64, true, true, 0.1},
      {2, 2, 65, 129, 32, false, false, 0.2}, {2, 2, 129, 65, 32, true, true, 0.0},
      {2, 2, 70, 91, 128, false, true, 0.0},  {2, 2, 97, 97, 128, true, false, 0.1},
  };
  for (const Case& c : cases) {
    CAPTURE(describe(c));
    const auto [q, k, v, seed, mask] = make_inputs(c);
    // The reference sees the operands the tensor cores see: rounded to bfloat16.
    auto round_bf16 = [](const Tensor& t) {
      std::vector<double> x = t.contiguous().to_vector<double>();
      for (double& e : x) {
        float f = (float)e;
        uint32_t u;
        std::memcpy(&u, &f, 4);
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;  // round to nearest even
        std::memcpy(&f, &u, 4);
        e = f;
      }
      return from_vector(x, t.shape());
    };
    const std::vector<Tensor> leaves = {round_bf16(q), round_bf16(k), round_bf16(v)};
    const std::vector<Tensor> ref = run(c, leaves, mask, seed, kFloat64, Device::cpu());
    MatmulPrecisionGuard bf16(MatmulPrecision::BFloat16);
    // float32 tensors (rounded as they are staged; two backward passes) and bfloat16 tensors
    // (read as they are, the path autocast takes; their outputs and gradients are rounded to
    // bfloat16 too), the latter with dS in scratch memory for dQ (one chunk, then one batch
    // entry per chunk: dropout's counters must follow) and without it (two passes).
    const int64_t one_entry = c.H * c.nk * ((c.nq + 7) / 8 * 8) * 2;  // dS^T bytes of one batch entry
    struct Run {
      DType dtype;
      int64_t scratch;
      const char* what;
    };
    for (const Run& r : {Run{kFloat32, 0, "float32"}, Run{kBFloat16, int64_t(1) << 30, "bfloat16, dS scratch"},
                         Run{kBFloat16, one_entry, "bfloat16, dS scratch per batch entry"},
                         Run{kBFloat16, 0, "bfloat16, two passes"}}) {
      CAPTURE(r.what);
      AttentionScratchGuard scratch(r.scratch);
      const std::vector<Tensor> got = run(c, leaves, mask, seed, r.dtype, Device::cuda());
      const char* names[] = {"out", "grad q", "grad k", "grad v"};
      for (int i = 0; i < 4; ++i) {
        CAPTURE(names[i]);
        CHECK(got[i].dtype() == r.dtype);
        // P and dS are rounded to bfloat16 for the second products: a few 1e-3 relative.
        CHECK(rel_err(got[i], ref[i]) < (r.dtype == kFloat32 ? 1e-2 : 1.5e-2));
      }
    }
  }
}

TEST_CASE("cuda attention: float32 tensor-core kernels (3xTF32, TF32) match the float64 reference" * gpu_only()) {
  // Full float32 inputs (every mantissa bit set at random, so the split into TF32 parts is
  // exercised), the head dims the kernels serve, odd lengths, nq != nk, padding (one batch
  // entry entirely padded), causal masks and dropout, in q, k, v strided as a fused
  // projection gives them.
  const std::vector<Case> cases = {
      {2, 3, 77, 77, 64, false, false, 0.0},   {2, 2, 130, 67, 64, false, true, 0.0},
      {3, 2, 130, 130, 64, true, true, 0.0},   {2, 2, 193, 193, 64, true, true, 0.1},
      {2, 2, 65, 129, 32, false, false, 0.2},  {2, 2, 129, 65, 32, true, true, 0.0},
      {2, 2, 70, 91, 128, false, true, 0.0},   {2, 2, 97, 97, 128, true, false, 0.1},
      {1, 2, 333, 190, 64, false, false, 0.0},
  };
  for (const Case& c : cases) {
    CAPTURE(describe(c));
    const auto [q, k, v, seed, mask] = make_inputs(c);
    // The reference sees the float32 values the kernels see.
    const std::vector<Tensor> leaves = {q.to(kFloat32).to(kFloat64), k.to(kFloat32).to(kFloat64),
                                        v.to(kFloat32).to(kFloat64)};
    const std::vector<Tensor> ref = run(c, leaves, mask, seed, kFloat64, Device::cpu());
    // 3xTF32 drops only the lo x lo products (2^-21 of each): float32's own error, a few
    // 1e-7 to 1e-6 here. One TF32 product keeps 10 mantissa bits: a few 1e-4.
    for (MatmulPrecision prec : {MatmulPrecision::Float32, MatmulPrecision::TF32}) {
      CAPTURE(matmul_precision_name(prec));
      MatmulPrecisionGuard guard(prec);
      const std::vector<Tensor> got = run(c, leaves, mask, seed, kFloat32, Device::cuda());
      const char* names[] = {"out", "grad q", "grad k", "grad v"};
      for (int i = 0; i < 4; ++i) {
        CAPTURE(names[i]);
        CHECK(got[i].dtype() == kFloat32);
        const double err = rel_err(got[i], ref[i]);
        CHECK(err < (prec == MatmulPrecision::Float32 ? 1e-5 : 3e-3));
        if (prec == MatmulPrecision::TF32) CHECK(err > 1e-5);  // the one-product kernels did run
      }
    }
  }
}

TEST_CASE("cuda attention: the exact path over several query chunks matches the float64 CPU op" * gpu_only()) {
  // 2 * 2 * 3000 * 3000 scores exceed one chunk (2^25), so dK and dV accumulate over chunks.
  const Case c{2, 2, 3000, 3000, 8, false, true, 0.1};
  const Tensor q = rn({c.B, c.H, c.nq, c.d}), k = rn({c.B, c.H, c.nk, c.d}), v = rn({c.B, c.H, c.nk, c.d});
  const Tensor seed = rn({c.B, c.H, c.nq, c.d});
  std::vector<double> m(c.B * c.nk, 1.0);
  for (int64_t j = 0; j < c.nk; j += 7) m[j] = 0;
  const Tensor mask = from_vector(m, {c.B, c.nk});
  const std::vector<Tensor> ref = run(c, {q, k, v}, mask, seed, kFloat64, Device::cpu());
  for (DType dt : {kFloat32, kFloat64}) {
    CAPTURE(dtype_name(dt));
    const std::vector<Tensor> got = run(c, {q, k, v}, mask, seed, dt, Device::cuda());
    for (int i = 0; i < 4; ++i) CHECK(rel_err(got[i], ref[i]) < (dt == kFloat64 ? 1e-12 : 1e-5));
  }
}

TEST_CASE("cuda attention: the same inputs give the same bits, run after run" * gpu_only()) {
  const Case c{2, 2, 300, 300, 64, false, true, 0.1};
  const Tensor q = rn({c.B, c.H, c.nq, c.d}), k = rn({c.B, c.H, c.nk, c.d}), v = rn({c.B, c.H, c.nk, c.d});
  const Tensor seed = rn({c.B, c.H, c.nq, c.d});
  std::vector<double> m(c.B * c.nk, 1.0);
  for (int64_t j = 250; j < c.nk; ++j) m[j] = 0;
  const Tensor mask = from_vector(m, {c.B, c.nk});
  // float32 tensors on the float32 kernels (3xTF32 and TF32) and on the bfloat16 ones (two
  // passes), bfloat16 tensors with dS in scratch memory (one GEMM for dQ) and without.
  struct Run {
    MatmulPrecision prec;
    DType dtype;
    int64_t scratch;
  };
  for (const Run& r : {Run{MatmulPrecision::Float32, kFloat32, 0}, Run{MatmulPrecision::TF32, kFloat32, 0},
                       Run{MatmulPrecision::BFloat16, kFloat32, 0},
                       Run{MatmulPrecision::BFloat16, kBFloat16, int64_t(1) << 30},
                       Run{MatmulPrecision::BFloat16, kBFloat16, 0}}) {
    CAPTURE(matmul_precision_name(r.prec));
    CAPTURE(dtype_name(r.dtype));
    CAPTURE(r.scratch);
    MatmulPrecisionGuard guard(r.prec);
    AttentionScratchGuard scratch(r.scratch);
    const std::vector<Tensor> a = run(c, {q, k, v}, mask, seed, r.dtype, Device::cuda());
    const std::vector<Tensor> b = run(c, {q, k, v}, mask, seed, r.dtype, Device::cuda());
    for (int i = 0; i < 4; ++i) {
      const std::vector<float> x = a[i].to(Device::cpu()).to(kFloat32).contiguous().to_vector<float>();
      const std::vector<float> y = b[i].to(Device::cpu()).to(kFloat32).contiguous().to_vector<float>();
      CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("cuda attention: dropout's mask drawn before the forward is the rule's, and both passes reading it give the bits of drawing it inside" * gpu_only()) {
  // Through the backend, as ops/attention.cpp calls it: bfloat16 tensors on the tensor-core
  // kernels at every head dim (the two-pass backward's walk differs at 128), odd lengths,
  // padding, causal or not. With room under attention_scratch_limit() the forward draws the
  // mask into a tensor it returns, which must say what attention_dropout_keep says for every
  // (b h, i, j); the forward and the backward reading it must write the same bits as the
  // kernels drawing the mask themselves (no room: nothing returned, nothing given).
  struct Shape4 {
    int64_t B, H, nq, nk, d;
    bool causal;
  };
  for (const Shape4& c : {Shape4{2, 3, 77, 131, 64, false}, Shape4{3, 1, 130, 65, 32, false},
                          Shape4{2, 2, 97, 200, 128, false}, Shape4{2, 2, 150, 150, 64, true}}) {
    CAPTURE(c.nq);
    CAPTURE(c.nk);
    CAPTURE(c.d);
    CAPTURE(c.causal);
    auto dev = [](const Tensor& t) { return t.to(kBFloat16).to(Device::cuda()).contiguous(); };
    const Tensor q = dev(rn({c.B, c.H, c.nq, c.d})), k = dev(rn({c.B, c.H, c.nk, c.d})),
                 v = dev(rn({c.B, c.H, c.nk, c.d})), go = dev(rn({c.B, c.H, c.nq, c.d}));
    std::vector<double> m(c.B * c.nk);
    for (int64_t i = 0; i < c.B * c.nk; ++i) m[i] = i % 7 != 3;
    const Tensor keep = from_vector(m, {c.B, c.nk}).to(kInt32).to(Device::cuda());
    AttentionArgs a;
    a.batch = c.B, a.heads = c.H, a.nq = c.nq, a.nk = c.nk, a.dim = c.d;
    a.scale = 1.0 / std::sqrt((double)c.d);
    a.causal = c.causal;
    a.dropout_p = 0.15;
    a.philox = PhiloxState{977, 12345};
    Backend& be = backend_for(Device::cuda());
    struct Forward {
      Tensor out, lse, bits;
    };
    auto forward = [&](int64_t limit) {
      AttentionScratchGuard room(limit);
      Forward f{Tensor::empty(q.shape(), kBFloat16, q.device()), Tensor::empty({c.B, c.H, c.nq}, kFloat32, q.device()),
                Tensor()};
      f.bits = be.attention_forward(a, q, k, v, keep, f.out, f.lse);
      return f;
    };
    const Forward with = forward(int64_t(1) << 30), without = forward(0);
    REQUIRE(with.bits.defined());
    CHECK_FALSE(without.bits.defined());
    auto same = [](const Tensor& x, const Tensor& y) {
      const std::vector<float> u = x.to(Device::cpu()).to(kFloat32).to_vector<float>();
      const std::vector<float> w = y.to(Device::cpu()).to(kFloat32).to_vector<float>();
      return u.size() == w.size() && std::memcmp(u.data(), w.data(), u.size() * sizeof(float)) == 0;
    };
    CHECK(same(with.out, without.out));
    CHECK(same(with.lse, without.lse));
    const std::vector<int64_t> words = with.bits.to(Device::cpu()).to_vector<int64_t>();
    const int64_t ld = (c.nk + 63) / 64 * 8;
    REQUIRE((int64_t)words.size() * 8 == c.B * c.H * c.nq * ld);
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words.data());
    int64_t wrong = 0, dropped = 0;
    for (int64_t bh = 0; bh < c.B * c.H; ++bh)
      for (int64_t i = 0; i < c.nq; ++i)
        for (int64_t j = 0; j < c.nk; ++j) {
          const bool kept = (bytes[(bh * c.nq + i) * ld + j / 8] >> (j % 8)) & 1;
          wrong += kept != attention_dropout_keep(a, bh, i, j);
          dropped += !kept;
        }
    CHECK(wrong == 0);
    const double frac = (double)dropped / (double)(c.B * c.H * c.nq * c.nk);
    CHECK(frac > 0.12);
    CHECK(frac < 0.18);
    for (int64_t scratch : {int64_t(0), int64_t(1) << 30}) {  // dQ by two passes, or from the dS scratch
      CAPTURE(scratch);
      AttentionScratchGuard ds(scratch);
      auto backward = [&](const Tensor& bits) {
        std::vector<Tensor> g;
        for (const Tensor& t : {q, k, v}) g.push_back(Tensor::empty(t.shape(), kBFloat16, t.device()));
        be.attention_backward(a, q, k, v, keep, with.out, with.lse, bits, go, g[0], g[1], g[2]);
        return g;
      };
      const std::vector<Tensor> read = backward(with.bits), drawn = backward(Tensor());
      for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK(same(read[i], drawn[i]));
        const std::vector<float> x = read[i].to(Device::cpu()).to(kFloat32).to_vector<float>();
        double norm = 0;
        for (float e : x) norm += std::fabs(e);
        CHECK(norm > 0);  // a gradient that says something
      }
    }
  }
  // Nothing to draw without dropout.
  AttentionScratchGuard room(int64_t(1) << 30);
  const Tensor q = rn({1, 1, 40, 64}).to(kBFloat16).to(Device::cuda());
  AttentionArgs a;
  a.batch = 1, a.heads = 1, a.nq = 40, a.nk = 40, a.dim = 64;
  const Tensor out = Tensor::empty(q.shape(), kBFloat16, q.device());
  const Tensor lse = Tensor::empty({1, 1, 40}, kFloat32, q.device());
  CHECK_FALSE(backend_for(Device::cuda()).attention_forward(a, q, q, q, Tensor(), out, lse).defined());
}

TEST_CASE("cuda attention: a group of problems (attention_qkv_group) gives the bits of attention_qkv on each, forward and backward" * gpu_only()) {
  // bfloat16 projections of several lengths (WavSpA's bands: equal, then halving), at each
  // head dim of the tensor-core kernels, with and without dropout; five problems take two
  // launches of each kernel (four per launch), three take one, and two run one by one (the
  // backend's choice: grouping two does not pay). One projection is read through a transposed
  // view. With no room for the dS^T scratch, a group's backward runs problem by problem (two
  // passes each), against attention_qkv's two passes.
  struct Group {
    int64_t B, H, d;
    std::vector<int64_t> lengths;
    double dropout;
  };
  for (const Group& c : {Group{2, 2, 64, {130, 130}, 0.1}, Group{2, 1, 32, {65, 65, 129, 257, 40}, 0.2},
                         Group{2, 2, 128, {97, 200, 64}, 0.0}, Group{3, 4, 64, {33, 33, 64}, 0.0}}) {
    CAPTURE(c.d);
    CAPTURE(c.lengths.size());
    CAPTURE(c.dropout);
    const int64_t E = c.H * c.d;
    std::vector<Tensor> base, seeds;
    for (size_t i = 0; i < c.lengths.size(); ++i) {
      const int64_t N = c.lengths[i];
      // Problem 1 is a transposed view of (N, B, 3 E) memory; the others are contiguous.
      base.push_back(i == 1 ? rn({N, c.B, 3 * E}).to(kBFloat16).to(Device::cuda()).transpose(0, 1)
                            : rn({c.B, N, 3 * E}).to(kBFloat16).to(Device::cuda()));
      seeds.push_back(rn({c.B, N, E}).to(kBFloat16).to(Device::cuda()));
    }
    AttentionOptions o;
    o.dropout_p = c.dropout;
    o.training = c.dropout > 0;
    // Returns the outputs then the projections' gradients.
    auto one_by_one = [&]() {
      Generator gen(77);
      o.gen = &gen;
      std::vector<Tensor> leaves, outs;
      Tensor loss;
      for (size_t i = 0; i < base.size(); ++i) {
        leaves.push_back(base[i].detach().requires_grad_(true));
        outs.push_back(attention_qkv(leaves.back(), c.H, o));
        const Tensor li = sum(mul(outs.back(), seeds[i]).to(kFloat32));
        loss = loss.defined() ? add(loss, li) : li;
      }
      loss.backward();
      for (const Tensor& l : leaves) outs.push_back(l.grad());
      return outs;
    };
    auto grouped = [&]() {
      Generator gen(77);
      o.gen = &gen;
      std::vector<Tensor> leaves;
      for (const Tensor& b : base) leaves.push_back(b.detach().requires_grad_(true));
      std::vector<Tensor> outs = attention_qkv_group(leaves, c.H, o);
      Tensor loss;
      for (size_t i = 0; i < outs.size(); ++i) {
        const Tensor li = sum(mul(outs[i], seeds[i]).to(kFloat32));
        loss = loss.defined() ? add(loss, li) : li;
      }
      loss.backward();
      for (const Tensor& l : leaves) outs.push_back(l.grad());
      return outs;
    };
    auto bits16 = [](const Tensor& t) {
      const std::vector<float> x = t.to(Device::cpu()).to(kFloat32).contiguous().to_vector<float>();
      return x;
    };
    for (int64_t room : {int64_t(1) << 30, int64_t(0)}) {
      CAPTURE(room);
      AttentionScratchGuard scratch(room);
      const std::vector<Tensor> want = one_by_one(), got = grouped();
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].dtype() == kBFloat16);
        CHECK(got[i].shape() == want[i].shape());
        const std::vector<float> x = bits16(got[i]), y = bits16(want[i]);
        REQUIRE(x.size() == y.size());
        CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
        // And not trivially: every output and gradient has nonzero entries.
        double norm = 0;
        for (float e : x) norm += std::fabs(e);
        CHECK(norm > 0);
      }
    }
  }
}

#endif  // WAVSPA_CUDA

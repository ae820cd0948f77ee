// Standalone check and timing of the tensor-core attention kernels
// (backends/cuda/attention_mma.cuh), built in seconds without the rest of the library:
//
//   nvcc -std=c++20 -O3 -arch=sm_90a --expt-relaxed-constexpr -I. bench/kernels/attention.cu -o attn
//   ./attn            # checks, then the timing table (bench/kernels/attention.sh runs it beside SDPA)
//   ./attn f32        # the float32 kernels (attention_tf32.cuh, 3xTF32 and TF32) alone
//   ./attn wgmma      # the wgmma forward experiment (attention_wgmma.cuh) beside mma.sync
//   ./attn wgbwd      # the wgmma backward experiment (attention_wgmma.cuh) beside mma.sync
//   ./attn one | one32 | pair   # single sizes, for ncu
//   ./attn keep       # dropout 0.1: the mask drawn beforehand and read by both passes, or drawn in them
//
// Checks: random (never zero) inputs, odd lengths, nq != nk, key padding (one batch entirely
// padded), causal, dropout; forward out and lse and the three gradients against a float64
// reference on the host computed from the same inputs (bfloat16-rounded for the bfloat16
// kernels, full float32 for the float32 ones). The error is ||x - ref|| / ||ref|| per tensor;
// the bfloat16 kernels round P and dS for the second products, so a few 1e-3 is expected and
// 2e-2 fails; 3xTF32 must stay under 1e-5 and TF32 under 5e-3. Outputs are poisoned (NaN)
// before every run, so an unwritten element fails too.
//
// Timing: bfloat16 inputs, head dim 64, median of 30 runs after 5 warm-ups (CUDA events);
// FLOPs as FlashAttention counts them: 4 N^2 d per head forward, 2.5 times that backward.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_tf32.cuh"
#include "bench/kernels/attention_wgmma.cuh"

using namespace wavspa;
using namespace wavspa::cuda::attn;

#define CHECK(call)                                                                              \
  do {                                                                                           \
    cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

static float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Which kernels a run takes: the bfloat16 tensor-core kernels (bfloat16 tensors, or float32
// ones rounded as they are staged) or the float32 kernels of attention_tf32.cuh in three TF32
// passes (float32 accuracy) or one.
enum class Kind { Bf16, Tf32x3, Tf32x1, Wgmma2, Wgmma3, WgmmaPipe, WgBwd, WgBwd1, WgAll };
static const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Bf16: return "mma";
    case Kind::Tf32x3: return "3xtf32";
    case Kind::Tf32x1: return "tf32";
    case Kind::Wgmma2: return "wgmma2";
    case Kind::Wgmma3: return "wgmma3";
    case Kind::WgmmaPipe: return "wgpipe";
    case Kind::WgBwd: return "wgbwd";
    case Kind::WgBwd1: return "wgbwd1";
    case Kind::WgAll: return "wgall";
  }
  return "?";
}

template <typename T>
static cudaError_t run_forward(const Params<T, float>& p, Kind kind) {
  if constexpr (sizeof(T) == 4) {
    if (kind == Kind::Tf32x3) return tf32_forward<3>(p, 0);
    if (kind == Kind::Tf32x1) return tf32_forward<1>(p, 0);
  } else {
    if (kind == Kind::Wgmma2 && wgmma_forward_supported(p)) return wgmma_forward<2>(p, 0);
    if (kind == Kind::Wgmma3 && wgmma_forward_supported(p)) return wgmma_forward<3>(p, 0);
    if (kind == Kind::WgmmaPipe && wgmma_forward_supported(p)) return wgmma_forward<2, true>(p, 0);
    if (kind == Kind::WgAll && wgmma_forward_supported(p)) return wgmma_forward<3>(p, 0);
  }
  return mma_forward(p, 0);
}
template <typename T>
static cudaError_t run_backward(const Params<T, float>& p, Kind kind) {
  if constexpr (sizeof(T) == 4) {
    if (kind == Kind::Tf32x3) return tf32_backward<3>(p, 0);
    if (kind == Kind::Tf32x1) return tf32_backward<1>(p, 0);
  } else {
    if ((kind == Kind::WgBwd || kind == Kind::WgAll) && wgmma_backward_supported(p)) return wgmma_backward<2, 64>(p, 0);
    if (kind == Kind::WgBwd1 && wgmma_backward_supported(p)) return wgmma_backward<1, 64, 1>(p, 0);
  }
  return mma_backward(p, 0);
}

struct Problem {
  int B, H, nq, nk, D;
  bool causal, padded;
  double dropout;
};

// Host float64 reference for contiguous (B, H, n, D) tensors.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

static Reference reference(const Problem& pr, const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v, const std::vector<float>& go, const std::vector<int>& keep,
                           const Params<float, float>& p) {
  const int B = pr.B, H = pr.H, nq = pr.nq, nk = pr.nk, D = pr.D;
  Reference r;
  r.out.assign((size_t)B * H * nq * D, 0);
  r.lse.assign((size_t)B * H * nq, 0);
  r.dq.assign(r.out.size(), 0);
  r.dk.assign((size_t)B * H * nk * D, 0);
  r.dv.assign(r.dk.size(), 0);
  const double scale = p.scale;
  std::vector<double> s(nk), w(nk), drop(nk), dp(nk);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int bh = b * H + h;
      int first = nk;
      for (int j = 0; j < nk; ++j)
        if (!pr.padded || keep[b * nk + j]) { first = j; break; }
      for (int i = 0; i < nq; ++i) {
        const bool dead = first >= nk || (pr.causal && first > i);
        double mx = -INFINITY;
        std::vector<bool> allowed(nk);
        for (int j = 0; j < nk; ++j) {
          allowed[j] = !dead && (!pr.padded || keep[b * nk + j]) && (!pr.causal || j <= i);
          double dot = 0;
          for (int e = 0; e < D; ++e) dot += (double)q[((size_t)bh * nq + i) * D + e] * k[((size_t)bh * nk + j) * D + e];
          s[j] = dead ? 0.0 : allowed[j] ? dot * scale : -INFINITY;
          mx = std::max(mx, s[j]);
          // (the rule of backend.h, spelled out here without the library)
          const uint64_t row = (uint64_t)(bh * nq + i) * (uint64_t)((nk + 7) / 8);
          const auto rr = dropout_philox(p.philox.offset + row + (uint64_t)(j / 8), p.philox.seed);
          const uint32_t bits = (rr[(j % 8) / 2] >> (16 * (j % 2))) & 0xffffu;
          drop[j] = pr.dropout > 0 ? (bits >= (uint32_t)(pr.dropout * 65536.0 + 0.5) ? 1.0 / (1.0 - pr.dropout) : 0.0) : 1.0;
        }
        double sum = 0;
        for (int j = 0; j < nk; ++j) sum += std::exp(s[j] - mx);
        r.lse[(size_t)bh * nq + i] = mx + std::log(sum);
        for (int j = 0; j < nk; ++j) w[j] = std::exp(s[j] - mx) / sum;
        double Di = 0;
        for (int e = 0; e < D; ++e) {
          double o = 0;
          for (int j = 0; j < nk; ++j) o += w[j] * drop[j] * v[((size_t)bh * nk + j) * D + e];
          r.out[((size_t)bh * nq + i) * D + e] = o;
          Di += o * go[((size_t)bh * nq + i) * D + e];
        }
        for (int j = 0; j < nk; ++j) {
          double gv = 0;
          for (int e = 0; e < D; ++e) gv += (double)go[((size_t)bh * nq + i) * D + e] * v[((size_t)bh * nk + j) * D + e];
          const double ds = allowed[j] ? w[j] * (gv * drop[j] - Di) : 0.0;
          for (int e = 0; e < D; ++e) {
            r.dq[((size_t)bh * nq + i) * D + e] += scale * ds * k[((size_t)bh * nk + j) * D + e];
            r.dk[((size_t)bh * nk + j) * D + e] += scale * ds * q[((size_t)bh * nq + i) * D + e];
            r.dv[((size_t)bh * nk + j) * D + e] += w[j] * drop[j] * go[((size_t)bh * nq + i) * D + e];
          }
        }
      }
    }
  return r;
}

template <typename T>
struct Dev {
  T* ptr = nullptr;
  size_t n = 0;
  explicit Dev(size_t n_) : n(n_) { CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  ~Dev() { cudaFree(ptr); }
  void poison() { CHECK(cudaMemset(ptr, 0xff, std::max<size_t>(n, 1) * sizeof(T))); }  // NaN
};

template <typename T>
static std::vector<T> convert(const std::vector<float>& x) {
  std::vector<T> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (T)x[i];
  return y;
}

template <typename T>
static std::vector<double> fetch(const Dev<T>& d) {
  std::vector<T> h(d.n);
  CHECK(cudaMemcpy(h.data(), d.ptr, d.n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<double> r(d.n);
  for (size_t i = 0; i < d.n; ++i) r[i] = (double)(float)h[i];
  return r;
}

static double rel_err(const std::vector<double>& x, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) return INFINITY;
    num += (x[i] - ref[i]) * (x[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <typename T>
static Params<T, float> make(const Problem& pr, Dev<T>& q, Dev<T>& k, Dev<T>& v, Dev<T>& o, Dev<float>& lse) {
  Params<T, float> p;
  const int64_t D = pr.D;
  p.q = {q.ptr, (int64_t)pr.H * pr.nq * D, (int64_t)pr.nq * D, D};
  p.k = {k.ptr, (int64_t)pr.H * pr.nk * D, (int64_t)pr.nk * D, D};
  p.v = {v.ptr, (int64_t)pr.H * pr.nk * D, (int64_t)pr.nk * D, D};
  p.out = {o.ptr, (int64_t)pr.H * pr.nq * D, (int64_t)pr.nq * D, D};
  p.lse = lse.ptr;
  p.batch = pr.B, p.heads = pr.H, p.nq = pr.nq, p.nk = pr.nk, p.dim = D;
  p.scale = 1.0 / std::sqrt((double)D);
  p.causal = pr.causal;
  p.dropout_p = pr.dropout;
  p.dropout_scale = pr.dropout > 0 ? 1.0 / (1.0 - pr.dropout) : 1.0;
  p.dropout_threshold = (uint32_t)(pr.dropout * 65536.0 + 0.5);
  p.philox = {1234, 77};
  return p;
}

// The dS^T scratch of the tensor-core backward (Params::ds); bfloat16 tensors only, as in the
// library (float32 ones take two passes).
struct DsScratch {
  Dev<__nv_bfloat16> ds;
  int64_t ld;
  explicit DsScratch(const Problem& pr) : ds((size_t)pr.B * pr.H * pr.nk * ds_pitch(pr.nq)), ld(ds_pitch(pr.nq)) {}
  template <typename T>
  void attach(Params<T, float>& p) {
    if constexpr (sizeof(T) == 2) p.ds = ds.ptr, p.ds_ld = ld;
  }
};

template <typename T>
static bool check(const Problem& pr, std::mt19937& rng, bool ds_out, Kind kind = Kind::Bf16) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t nqd = (size_t)pr.B * pr.H * pr.nq * pr.D, nkd = (size_t)pr.B * pr.H * pr.nk * pr.D;
  auto randv = [&](size_t n) {
    std::vector<float> x(n);
    for (auto& e : x) e = sizeof(T) == 2 || kind == Kind::Bf16 ? round_bf16(nd(rng)) : nd(rng);  // float32 kernels: all 24 bits
    return x;
  };
  std::vector<float> q = randv(nqd), k = randv(nkd), v = randv(nkd), go = randv(nqd);
  std::vector<int> keep((size_t)pr.B * pr.nk, 1);
  if (pr.padded)
    for (int b = 0; b < pr.B; ++b)
      for (int j = 0; j < pr.nk; ++j) keep[(size_t)b * pr.nk + j] = b == 1 ? 0 : (j * 7 + b) % 5 != 0;
  Dev<T> dq(nqd), dk(nkd), dv(nkd), dout(nqd), dgo(nqd), dgq(nqd), dgk(nkd), dgv(nkd);
  Dev<float> dlse((size_t)pr.B * pr.H * pr.nq), drow((size_t)pr.B * pr.H * pr.nq);
  Dev<int32_t> dkeep(keep.size()), dfirst(pr.B);
  CHECK(cudaMemcpy(dq.ptr, convert<T>(q).data(), nqd * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dk.ptr, convert<T>(k).data(), nkd * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dv.ptr, convert<T>(v).data(), nkd * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dgo.ptr, convert<T>(go).data(), nqd * sizeof(T), cudaMemcpyHostToDevice));
  std::vector<int32_t> first(pr.B);
  for (int b = 0; b < pr.B; ++b) {
    first[b] = pr.nk;
    for (int j = 0; j < pr.nk; ++j)
      if (keep[(size_t)b * pr.nk + j]) { first[b] = j; break; }
  }
  // full32 as attention.cu's full_blocks_kernel makes it: the tiles with no padding skip the mask.
  const int nb32 = (pr.nk + 31) / 32;
  std::vector<uint8_t> full((size_t)pr.B * nb32, 1);
  for (int b = 0; b < pr.B; ++b)
    for (int j = 0; j < pr.nk; ++j)
      if (!keep[(size_t)b * pr.nk + j]) full[(size_t)b * nb32 + j / 32] = 0;
  Dev<uint8_t> dfull(full.size());
  CHECK(cudaMemcpy(dfull.ptr, full.data(), full.size(), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dkeep.ptr, keep.data(), keep.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dfirst.ptr, first.data(), first.size() * 4, cudaMemcpyHostToDevice));
  Params<T, float> p = make<T>(pr, dq, dk, dv, dout, dlse);
  if (pr.padded) p.keep = dkeep.ptr, p.first_kept = dfirst.ptr, p.full32 = dfull.ptr;
  p.grad_out = {dgo.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.grad_q = {dgq.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.grad_k = {dgk.ptr, p.k.sb, p.k.sh, p.k.sn};
  p.grad_v = {dgv.ptr, p.k.sb, p.k.sh, p.k.sn};
  p.rowdot = drow.ptr;
  DsScratch scratch(pr);
  const bool use_ds = ds_out && sizeof(T) == 2 && !pr.causal;  // as the library chooses
  if (use_ds) scratch.attach(p);
  for (auto* d : {&dout, &dgq, &dgk, &dgv}) d->poison();
  dlse.poison();
  CHECK(run_forward(p, kind));
  CHECK(run_backward(p, kind));
  CHECK(cudaDeviceSynchronize());
  // Run to run the same bits.
  const std::vector<double> dq_first = fetch(dgq), dk_first = fetch(dgk);
  dgq.poison();
  CHECK(run_backward(p, kind));
  CHECK(cudaDeviceSynchronize());
  const bool same_bits = fetch(dgq) == dq_first && fetch(dgk) == dk_first;
  Params<float, float> pf;
  pf.scale = p.scale, pf.philox = p.philox;
  const Reference ref = reference(pr, q, k, v, go, keep, pf);
  const double e_out = rel_err(fetch(dout), ref.out), e_lse = rel_err(fetch(dlse), ref.lse);
  const double e_dq = rel_err(fetch(dgq), ref.dq), e_dk = rel_err(fetch(dgk), ref.dk), e_dv = rel_err(fetch(dgv), ref.dv);
  const double worst = std::max({e_out, e_lse, e_dq, e_dk, e_dv});
  // bfloat16 operands: a few 1e-3; 3xTF32: float32's own rounding (a few 1e-7); TF32: 1e-4s.
  const double tol = kind == Kind::Tf32x3 ? 1e-5 : kind == Kind::Tf32x1 ? 5e-3 : 2e-2;
  const bool ok = worst < tol && same_bits;
  std::printf("%-6s %-4s %-5s B%d H%d nq%4d nk%4d d%3d %-6s %-6s drop %.1f | out %.1e lse %.1e dq %.1e dk %.1e dv %.1e%s %s\n",
              kind_name(kind), sizeof(T) == 4 ? "f32" : "bf16", use_ds ? "dS" : "2pass", pr.B, pr.H, pr.nq, pr.nk, pr.D, pr.causal ? "causal" : "",
              pr.padded ? "padded" : "", pr.dropout, e_out, e_lse, e_dq, e_dk, e_dv, same_bits ? "" : " bits differ",
              ok ? "ok" : "FAIL");
  return ok;
}

static float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// `model`: the layout MultiHeadSelfAttention hands over (H 1 as in the ListOps configs; q, k,
// v read in place from one (B, N, 3 H d) projection; a key mask, all kept).
template <typename T>
static void timing(int BH, int N, int D, bool causal, std::vector<std::string>& table, double dropout = 0.0,
                   bool model = false, bool model_mask = true, bool ds_out = true, Kind kind = Kind::Bf16,
                   bool keep_bits = false) {
  const int H = model ? 1 : 8, B = BH / H;
  Problem pr{B, H, N, N, D, causal, false, dropout};
  const size_t n = (size_t)BH * N * D;
  std::vector<float> x(n);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& e : x) e = nd(rng);
  Dev<T> q(n), k(n), v(n), o(n), go(n), gq(n), gk(n), gv(n);
  Dev<float> lse((size_t)BH * N), row((size_t)BH * N);
  const auto xt = convert<T>(x);
  for (auto* d : {&q, &k, &v, &go}) CHECK(cudaMemcpy(d->ptr, xt.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  Params<T, float> p = make<T>(pr, q, k, v, o, lse);
  p.grad_out = {go.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.grad_q = {gq.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.grad_k = {gk.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.grad_v = {gv.ptr, p.q.sb, p.q.sh, p.q.sn};
  p.rowdot = row.ptr;
  DsScratch scratch(pr);
  const bool use_ds = ds_out && sizeof(T) == 2 && !causal;
  Dev<T> qkv(model ? 3 * n : 1);
  Dev<int32_t> keep(model ? (size_t)B * N : 1), first(model ? (size_t)B : 1);
  Dev<uint8_t> full(model ? (size_t)B * ((N + 31) / 32) : 1);
  if (model) {
    std::vector<T> packed(3 * n);
    for (size_t r = 0; r < n / D; ++r)
      for (int part = 0; part < 3; ++part)
        for (int e = 0; e < D; ++e) packed[(3 * r + part) * D + e] = xt[r * D + e];
    CHECK(cudaMemcpy(qkv.ptr, packed.data(), 3 * n * sizeof(T), cudaMemcpyHostToDevice));
    const int64_t sn = 3 * (int64_t)H * D, sb = (int64_t)N * sn;
    p.q = {qkv.ptr, sb, D, sn};
    p.k = {qkv.ptr + (int64_t)H * D, sb, D, sn};
    p.v = {qkv.ptr + 2 * (int64_t)H * D, sb, D, sn};
    std::vector<int32_t> ones((size_t)B * N, 1), zeros(B, 0);
    CHECK(cudaMemcpy(keep.ptr, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(first.ptr, zeros.data(), zeros.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(full.ptr, 1, full.n));  // no padding: every 32-key block is full
    if (model_mask) p.keep = keep.ptr, p.first_kept = first.ptr, p.full32 = full.ptr;
  }
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  // keep_bits: dropout's mask drawn by its own kernel before the forward (timed with it), and
  // read by both passes, as the library does below attention_scratch_limit().
  const bool kept = keep_bits && dropout > 0;
  Dev<uint8_t> bits(kept ? (size_t)BH * N * keep_ld(N) : 1);
  auto forward = [&](const Params<T, float>& pp) {
    Params<T, float> f = pp;
    if (kept) CHECK(draw_dropout_bits(f, bits.ptr, 0));
    return run_forward(f, kind);
  };
  if (use_ds) scratch.attach(p);
  auto backward = [&](const Params<T, float>& pp) {
    Params<T, float> b = pp;
    if (kept) b.keep_bits = bits.ptr, b.keep_ld = keep_ld(N);
    return run_backward(b, kind);
  };
  auto time = [&](bool bwd) {
    std::vector<float> ms;
    for (int it = 0; it < 35; ++it) {
      CHECK(cudaEventRecord(e0));
      CHECK(forward(p));
      if (bwd) CHECK(backward(p));
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float t = 0;
      CHECK(cudaEventElapsedTime(&t, e0, e1));
      if (it >= 5) ms.push_back(t);
    }
    return median(ms);
  };
  const float f = time(false), fb = time(true);
  const double flops = 4.0 * BH * (double)N * N * D * (causal ? 0.5 : 1.0);
  char line[256];
  std::snprintf(line, sizeof line, "wavspa %-6s BH %4d N %5d d %3d %-6s%s%s | fwd %8.3f ms %6.1f TFLOP/s | fwd+bwd %8.3f ms %6.1f TFLOP/s",
                sizeof(T) == 2 ? (kind == Kind::Bf16 ? "bf16" : kind_name(kind)) : kind == Kind::Bf16 ? "f32" : kind_name(kind), BH, N, D, causal ? "causal" : "",
                dropout > 0 ? " p0.1" : "",
                model ? (model_mask ? (kept ? " model kept" : " model") : " model-nomask") : use_ds ? (kept ? " kept" : "") : " 2pass", f,
                flops / f * 1e-9, fb,
                3.5 * flops / fb * 1e-9);
  table.push_back(line);
  CHECK(cudaEventDestroy(e0));
  CHECK(cudaEventDestroy(e1));
}

int main(int argc, char** argv) {
  const bool only_check = argc > 1 && std::string(argv[1]) == "check";
  if (argc > 1 && std::string(argv[1]) == "pair") {  // dS out against two passes, quickly
    std::vector<std::string> table;
    for (double drop : {0.0, 0.1})
      for (bool one : {true, false}) {
        timing<__nv_bfloat16>(32, 2000, 64, false, table, drop, false, true, one);
        timing<__nv_bfloat16>(128, 4096, 64, false, table, drop, false, true, one);
      }
    for (const auto& l : table) std::printf("%s\n", l.c_str());
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "keep") {  // dropout's mask drawn beforehand, or inside the kernels
    std::vector<std::string> table;
    for (int N : {1007, 2000})
      for (bool keep : {false, true}) timing<__nv_bfloat16>(32, N, 64, false, table, 0.1, true, true, true, Kind::Bf16, keep);
    for (bool keep : {false, true}) timing<__nv_bfloat16>(128, 4096, 64, false, table, 0.1, false, true, true, Kind::Bf16, keep);
    for (const auto& l : table) std::printf("%s\n", l.c_str());
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "wgmma") {  // the wgmma forward: checks, then beside mma.sync
    std::mt19937 rng(42);
    int failed = 0, total = 0;
    const std::vector<Problem> problems = {
        {2, 3, 77, 77, 64, false, false, 0.0},  {2, 3, 77, 77, 64, true, false, 0.0},
        {3, 2, 130, 67, 64, false, true, 0.0},  {3, 2, 130, 130, 64, true, true, 0.0},
        {1, 1, 1, 1, 64, false, false, 0.0},    {1, 2, 200, 200, 64, true, false, 0.0},
        {2, 3, 300, 300, 64, false, true, 0.0}, {1, 2, 333, 190, 64, false, false, 0.0},
        {2, 2, 513, 777, 64, true, true, 0.0},
    };
    for (const Problem& pr : problems)
      for (Kind kind : {Kind::Wgmma3, Kind::WgmmaPipe}) failed += !check<__nv_bfloat16>(pr, rng, true, kind), ++total;
    std::printf("checks: %d of %d failed\n", failed, total);
    if (failed) return 1;
    std::vector<std::string> table;
    for (Kind kind : {Kind::Bf16, Kind::Wgmma3, Kind::WgmmaPipe}) {
      for (int BH : {32, 128})
        for (int N : {1000, 2000, 4096}) timing<__nv_bfloat16>(BH, N, 64, false, table, 0.0, false, true, true, kind);
      timing<__nv_bfloat16>(32, 2000, 64, true, table, 0.0, false, true, true, kind);
      timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.0, true, true, true, kind);
    }
    for (const auto& l : table) std::printf("%s\n", l.c_str());
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "wgbwd") {  // the wgmma backward: checks, then beside mma.sync
    std::mt19937 rng(42);
    int failed = 0, total = 0;
    const std::vector<Problem> problems = {
        {2, 3, 77, 77, 64, false, false, 0.0},  {3, 2, 130, 67, 64, false, true, 0.0},
        {2, 2, 100, 100, 64, false, false, 0.2}, {2, 2, 93, 93, 64, false, true, 0.1},
        {1, 1, 1, 1, 64, false, false, 0.0},    {2, 3, 300, 300, 64, false, true, 0.1},
        {1, 2, 333, 190, 64, false, false, 0.0}, {2, 2, 513, 777, 64, false, true, 0.1},
    };
    for (const Problem& pr : problems)
      for (Kind kind : {Kind::WgBwd, Kind::WgBwd1, Kind::WgAll}) failed += !check<__nv_bfloat16>(pr, rng, true, kind), ++total;
    std::printf("checks: %d of %d failed\n", failed, total);
    if (failed && !(argc > 2)) return 1;
    std::vector<std::string> table;
    for (Kind kind : {Kind::Bf16, Kind::WgBwd, Kind::WgBwd1}) {
      for (int BH : {32, 128})
        for (int N : {1000, 2000, 4096}) timing<__nv_bfloat16>(BH, N, 64, false, table, 0.0, false, true, true, kind);
      timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.1, false, true, true, kind);
      timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.1, true, true, true, kind);
    }
    for (const auto& l : table) std::printf("%s\n", l.c_str());
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "one32") {  // one float32 size, for ncu
    std::vector<std::string> table;
    timing<float>(32, 2000, 64, false, table, 0.0, false, true, false, Kind::Tf32x3);
    std::printf("%s\n", table[0].c_str());
    return 0;
  }
  if (argc > 2 && std::string(argv[1]) == "wgone") {  // one size of a wgmma kind (wgbwd, wgbwd1), for ncu
    std::vector<std::string> table;
    const Kind kind = std::string(argv[2]) == "wgbwd1" ? Kind::WgBwd1 : Kind::WgBwd;
    timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.0, false, true, true, kind);
    std::printf("%s\n", table[0].c_str());
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "one") {  // one size, for ncu
    std::vector<std::string> table;
    timing<__nv_bfloat16>(32, 2000, 64, false, table);
    std::printf("%s\n", table[0].c_str());
    return 0;
  }
  std::mt19937 rng(42);
  int failed = 0, total = 0;
  const std::vector<Problem> problems = {
      {2, 3, 77, 77, 64, false, false, 0.0},  {2, 3, 77, 77, 64, true, false, 0.0},
      {3, 2, 130, 67, 64, false, true, 0.0},  {3, 2, 130, 130, 64, true, true, 0.0},
      {2, 2, 100, 100, 64, false, false, 0.2}, {2, 2, 93, 93, 64, true, true, 0.1},
      {2, 2, 65, 129, 32, false, false, 0.0}, {2, 2, 129, 65, 32, true, true, 0.1},
      {2, 2, 70, 91, 128, false, true, 0.0},  {2, 2, 97, 97, 128, true, false, 0.1},
      {1, 1, 1, 1, 64, false, false, 0.0},    {1, 2, 200, 200, 64, true, false, 0.0},
      // several query tiles and key blocks for the one pass's turns
      {2, 3, 300, 300, 64, false, true, 0.1}, {2, 2, 250, 250, 128, false, false, 0.1},
      {2, 2, 200, 200, 32, false, true, 0.0}, {1, 2, 333, 190, 64, false, false, 0.0},
  };
  const bool only_f32 = argc > 1 && std::string(argv[1]) == "f32";  // the float32 kernels alone
  for (const Problem& pr : problems) {
    if (!only_f32)
      for (bool ds_out : {true, false}) {
        failed += !check<__nv_bfloat16>(pr, rng, ds_out);
        if (!ds_out) failed += !check<float>(pr, rng, ds_out);
        total += ds_out ? 1 : 2;
      }
    for (Kind kind : {Kind::Tf32x3, Kind::Tf32x1}) failed += !check<float>(pr, rng, false, kind), ++total;
  }
  std::printf("checks: %d of %d failed\n", failed, total);
  if (only_check || failed) return failed ? 1 : 0;
  std::vector<std::string> table;
  // float32 tensors on the float32 kernels: 3xTF32 (MatmulPrecision::Float32) and TF32.
  for (Kind kind : {Kind::Tf32x3, Kind::Tf32x1}) {
    timing<float>(32, 2000, 64, false, table, 0.0, false, true, false, kind);
    timing<float>(32, 2000, 64, false, table, 0.1, true, true, false, kind);
    timing<float>(32, 1000, 64, false, table, 0.0, false, true, false, kind);
    timing<float>(128, 4096, 64, false, table, 0.0, false, true, false, kind);
  }
  timing<float>(32, 2000, 128, false, table, 0.0, false, true, false, Kind::Tf32x3);
  timing<float>(32, 2000, 32, false, table, 0.0, false, true, false, Kind::Tf32x3);
  if (only_f32) {
    for (const auto& l : table) std::printf("%s\n", l.c_str());
    return 0;
  }
  for (int BH : {32, 128})
    for (int N : {1000, 2000, 4096}) timing<__nv_bfloat16>(BH, N, 64, false, table);
  timing<__nv_bfloat16>(32, 2000, 128, false, table);
  timing<__nv_bfloat16>(32, 2000, 32, false, table);
  timing<__nv_bfloat16>(32, 2000, 64, true, table);
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.1);
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.0, false, true, false);  // two passes
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.1, false, true, false);
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.0, true);
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.0, true, false);
  timing<__nv_bfloat16>(32, 2000, 64, false, table, 0.1, true);
  timing<float>(32, 2000, 64, false, table);  // float32 tensors, rounded as they are staged
  for (const auto& l : table) std::printf("%s\n", l.c_str());
  return 0;
}

// Attention on CUDA: softmax(scale q k^T + masks) v, tile by tile with an online softmax, so
// no (N, N) matrix is ever stored (backends/backend.h's AttentionArgs says what is computed).
//
// Two families of kernels:
//  - the exact ones here, for float32 and float64 in their own precision (SIMT arithmetic,
//    one warp per query row in the forward and the query-gradient pass, one warp per key
//    row in the key/value-gradient pass; 32 keys or queries per shared-memory tile, one per
//    lane). They are the parity reference of the CUDA backend and serve any head dim up to
//    256;
//  - the tensor-core kernels of attention_mma.cuh, which the float32 path takes when
//    matmul_precision() is BFloat16 (operands rounded to bfloat16, float32 accumulation
//    and softmax), for head dims 32, 64 and 128.
//
// The backward is two passes, both deterministic: one over key tiles that accumulates dK and
// dV in registers, one over query rows for dQ. (One pass with dQ accumulated by atomics would
// do less arithmetic, but its sums would depend on the order blocks finish in.)
#include <cmath>

#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"
#include "core/runtime.h"

namespace wavspa::cuda {
namespace {

using attn::Mask;
using attn::Params;

constexpr int kTile = 32;   // keys (or queries) per shared-memory tile: one per lane
constexpr int kWarps = 8;   // rows per block: one per warp
constexpr int kMaxDim = 256;

struct MinIntOp {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};

// first[b] = the first j with keep[b, j] != 0, or nk when there is none. One warp per row.
__global__ void first_kept_kernel(const int32_t* keep, int64_t batch, int64_t nk, int32_t* first) {
  const int64_t b = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (b >= batch) return;  // warp-uniform
  int f = (int)nk;
  for (int64_t j0 = 0; j0 < nk && f == (int)nk; j0 += 32) {
    const int64_t j = j0 + lane;
    int mine = j < nk && keep[b * nk + j] != 0 ? (int)j : (int)nk;
    f = warp_allreduce(mine, MinIntOp{});
  }
  if (lane == 0) first[b] = f;
}

// Copies rows [r0, r0 + nt) of a (B, H, N, d) operand into a shared tile of pitch `pitch`.
template <typename T>
__device__ __forceinline__ void load_tile(T* tile, int pitch, const attn::Operand<const T>& src, int64_t b,
                                          int64_t h, int64_t r0, int nt, int d) {
  for (int x = threadIdx.x; x < nt * d; x += blockDim.x) {
    const int r = x / d, e = x % d;
    tile[r * pitch + e] = src.row(b, h, r0 + r)[e];
  }
}

template <typename T>
__device__ __forceinline__ T dot_shared(const T* a, const T* b, int d) {
  T acc = 0;
  for (int e = 0; e < d; ++e) acc += a[e] * b[e];
  return acc;
}

// ---- forward: one warp per query row ------------------------------------------------------
//
// Per tile of 32 keys, lane j scores key j against the warp's query (held in shared memory),
// the warp agrees on the running max and sum with shuffles, and each lane accumulates its
// DPL output dims (e = lane + 32 t) from the tile's values.
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32) forward_simt_kernel(Params<T, T> p) {
  extern __shared__ double smem_words[];
  T* smem = reinterpret_cast<T*>(smem_words);
  const int d = (int)p.dim, kp = d + 1;
  T* Ks = smem;                 // [kTile][kp]
  T* Vs = Ks + kTile * kp;      // [kTile][d]
  T* Qs = Vs + kTile * d;       // [kWarps][d]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * kWarps, i = i0 + warp;
  const bool active = i < p.nq;
  const Mask mask = attn::mask_for(p, b);
  T* q = Qs + warp * d;
  if (active)
    for (int e = lane; e < d; e += 32) q[e] = p.q.row(b, h, i)[e];
  const bool dead = active && mask.dead(i);
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + kWarps, p.nq));
  const T scale = (T)p.scale;
  T m = -INFINITY, l = 0, acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0;
  for (int64_t j0 = 0; j0 < kend; j0 += kTile) {
    const int nt = (int)min((int64_t)kTile, kend - j0);
    __syncthreads();  // the previous tile's readers are done
    load_tile(Ks, kp, p.k, b, h, j0, nt, d);
    load_tile(Vs, d, p.v, b, h, j0, nt, d);
    __syncthreads();
    if (!active) continue;
    const int64_t j = j0 + lane;
    T s = -INFINITY;
    if (lane < nt) {
      if (dead) s = 0;
      else if (mask.allowed(i, j)) s = dot_shared(q, Ks + lane * kp, d) * scale;
    }
    const T m_new = fmax(m, warp_allreduce(s, MaxOp{}));
    const T base = m_new == -INFINITY ? T(0) : m_new;  // nothing allowed yet: keep NaN out
    const T e_s = lane < nt ? exp_of(s - base) : T(0);
    const T corr = exp_of(m - base);
    l = l * corr + warp_allreduce(e_s, SumOp{});
    T w = e_s;
    if (p.dropout_p > 0 && lane < nt) w = attn::dropout_keeps(p, bh, i, j) ? e_s * (T)p.dropout_scale : T(0);
#pragma unroll
    for (int t = 0; t < DPL; ++t) acc[t] *= corr;
    for (int jj = 0; jj < nt; ++jj) {
      const T wj = __shfl_sync(0xffffffffu, w, jj);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int e = lane + 32 * t;
        if (e < d) acc[t] += wj * Vs[jj * d + e];
      }
    }
    m = m_new;
  }
  if (!active) return;
  const T inv = l > 0 ? T(1) / l : T(0);
  T* o = p.out.row(b, h, i);
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int e = lane + 32 * t;
    if (e < d) o[e] = acc[t] * inv;
  }
  if (lane == 0) p.lse[bh * p.nq + i] = l > 0 ? (m == -INFINITY ? T(0) : m) + log(l) : T(-INFINITY);
}

// ---- backward ------------------------------------------------------------------------------

// D_i = grad_out_i . out_i, one warp per row.
template <typename T>
__global__ void rowdot_kernel(Params<T, T> p) {
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.batch * p.heads * p.nq) return;  // warp-uniform
  const int64_t bh = row / p.nq, i = row % p.nq, b = bh / p.heads, h = bh % p.heads;
  const T* g = p.grad_out.row(b, h, i);
  const T* o = p.out.row(b, h, i);
  T acc = 0;
  for (int e = lane; e < p.dim; e += 32) acc += g[e] * o[e];
  acc = warp_allreduce(acc, SumOp{});
  if (lane == 0) p.rowdot[row] = acc;
}

// The weight p_ij, its dropout factor, and dS_ij for one (query, key) pair, given the two
// dot products. Shared by both backward passes so that they agree bit for bit.
template <typename T>
struct PairGrad {
  T w;   // p_ij times the dropout factor: what dV takes
  T ds;  // dS_ij = p_ij (dP_ij - D_i), 0 where masked or the row is dead
};
template <typename T>
__device__ __forceinline__ PairGrad<T> pair_grad(const Params<T, T>& p, const Mask& mask, int64_t bh, int64_t i,
                                                 int64_t j, T qk, T gv, T lse, T D) {
  const bool dead = mask.dead(i);
  const bool allowed = !dead && mask.allowed(i, j);
  T prob = 0;
  if (dead) prob = exp_of(-lse);
  else if (allowed) prob = exp_of(qk * (T)p.scale - lse);
  T drop = 1;
  if (p.dropout_p > 0) drop = attn::dropout_keeps(p, bh, i, j) ? (T)p.dropout_scale : T(0);
  PairGrad<T> r;
  r.w = prob * drop;
  r.ds = allowed ? prob * (gv * drop - D) : T(0);
  return r;
}

// dQ: one warp per query row, over tiles of 32 keys.
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32) grad_q_simt_kernel(Params<T, T> p) {
  extern __shared__ double smem_words[];
  T* smem = reinterpret_cast<T*>(smem_words);
  const int d = (int)p.dim, kp = d + 1;
  T* Ks = smem;                 // [kTile][kp]
  T* Vs = Ks + kTile * kp;      // [kTile][kp]
  T* Qs = Vs + kTile * kp;      // [kWarps][d]
  T* Gs = Qs + kWarps * d;      // [kWarps][d]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * kWarps, i = i0 + warp;
  const bool active = i < p.nq;
  const Mask mask = attn::mask_for(p, b);
  T* q = Qs + warp * d;
  T* g = Gs + warp * d;
  T lse = 0, D = 0;
  if (active) {
    for (int e = lane; e < d; e += 32) q[e] = p.q.row(b, h, i)[e], g[e] = p.grad_out.row(b, h, i)[e];
    lse = p.lse[bh * p.nq + i];
    D = p.rowdot[bh * p.nq + i];
  }
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + kWarps, p.nq));
  const bool dead = active && mask.dead(i);  // no gradient reaches q from a dead row
  T acc[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) acc[t] = 0;
  for (int64_t j0 = 0; j0 < kend; j0 += kTile) {
    const int nt = (int)min((int64_t)kTile, kend - j0);
    __syncthreads();
    load_tile(Ks, kp, p.k, b, h, j0, nt, d);
    load_tile(Vs, kp, p.v, b, h, j0, nt, d);
    __syncthreads();
    if (!active || dead) continue;
    const int64_t j = j0 + lane;
    T ds = 0;
    if (lane < nt) {
      const T qk = dot_shared(q, Ks + lane * kp, d);
      const T gv = dot_shared(g, Vs + lane * kp, d);
      ds = pair_grad(p, mask, bh, i, j, qk, gv, lse, D).ds;
    }
    for (int jj = 0; jj < nt; ++jj) {
      const T w = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int e = lane + 32 * t;
        if (e < d) acc[t] += w * Ks[jj * kp + e];
      }
    }
  }
  if (!active) return;
  T* dq = p.grad_q.row(b, h, i);
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int e = lane + 32 * t;
    if (e < d) dq[e] = acc[t] * (T)p.scale;
  }
}

// dK and dV: one warp per key row, over tiles of 32 queries.
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32) grad_kv_simt_kernel(Params<T, T> p) {
  extern __shared__ double smem_words[];
  T* smem = reinterpret_cast<T*>(smem_words);
  const int d = (int)p.dim, kp = d + 1;
  T* Qs = smem;                 // [kTile][kp]
  T* Gs = Qs + kTile * kp;      // [kTile][kp]
  T* Kw = Gs + kTile * kp;      // [kWarps][d]
  T* Vw = Kw + kWarps * d;      // [kWarps][d]
  T* lse_s = Vw + kWarps * d;   // [kTile]
  T* D_s = lse_s + kTile;       // [kTile]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t j0 = (int64_t)blockIdx.x * kWarps, j = j0 + warp;
  const bool active = j < p.nk;
  const Mask mask = attn::mask_for(p, b);
  T* kr = Kw + warp * d;
  T* vr = Vw + warp * d;
  if (active)
    for (int e = lane; e < d; e += 32) kr[e] = p.k.row(b, h, j)[e], vr[e] = p.v.row(b, h, j)[e];
  // Causal without dead rows: queries before the block's first key see none of its keys.
  const int64_t istart = mask.causal && mask.first == 0 ? (j0 / kTile) * kTile : 0;
  T dk[DPL], dv[DPL];
#pragma unroll
  for (int t = 0; t < DPL; ++t) dk[t] = 0, dv[t] = 0;
  for (int64_t r0 = istart; r0 < p.nq; r0 += kTile) {
    const int nt = (int)min((int64_t)kTile, p.nq - r0);
    __syncthreads();
    load_tile(Qs, kp, p.q, b, h, r0, nt, d);
    load_tile(Gs, kp, p.grad_out, b, h, r0, nt, d);
    if (threadIdx.x < nt) {
      lse_s[threadIdx.x] = p.lse[bh * p.nq + r0 + threadIdx.x];
      D_s[threadIdx.x] = p.rowdot[bh * p.nq + r0 + threadIdx.x];
    }
    __syncthreads();
    if (!active) continue;
    const int64_t i = r0 + lane;
    PairGrad<T> pg{0, 0};
    if (lane < nt) {
      const T qk = dot_shared(Qs + lane * kp, kr, d);
      const T gv = dot_shared(Gs + lane * kp, vr, d);
      pg = pair_grad(p, mask, bh, i, j, qk, gv, lse_s[lane], D_s[lane]);
    }
    for (int ii = 0; ii < nt; ++ii) {
      const T w = __shfl_sync(0xffffffffu, pg.w, ii);
      const T ds = __shfl_sync(0xffffffffu, pg.ds, ii);
#pragma unroll
      for (int t = 0; t < DPL; ++t) {
        const int e = lane + 32 * t;
        if (e < d) {
          dv[t] += w * Gs[ii * kp + e];
          dk[t] += ds * Qs[ii * kp + e];
        }
      }
    }
  }
  if (!active) return;
  T* gk = p.grad_k.row(b, h, j);
  T* gv = p.grad_v.row(b, h, j);
#pragma unroll
  for (int t = 0; t < DPL; ++t) {
    const int e = lane + 32 * t;
    if (e < d) gk[e] = dk[t] * (T)p.scale, gv[e] = dv[t];
  }
}

// ---- launching -----------------------------------------------------------------------------

// Calls f(std::integral_constant<int, DPL>) with DPL = output dims per lane for head dim d.
template <typename F>
void dispatch_dims_per_lane(int64_t d, F&& f) {
  if (d <= 32) f(std::integral_constant<int, 1>{});
  else if (d <= 64) f(std::integral_constant<int, 2>{});
  else if (d <= 128) f(std::integral_constant<int, 4>{});
  else f(std::integral_constant<int, 8>{});
}

// Dynamic shared memory beyond the default 48 KB must be asked for (cheap to repeat).
template <typename K, typename P>
void launch(K kernel, dim3 grid, size_t smem, const P& p) {
  if (grid.x == 0 || grid.y == 0) return;
  if (smem > 48 * 1024)
    WAVSPA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  kernel<<<grid, kWarps * 32, smem, stream()>>>(p);
  WAVSPA_CUDA_LAUNCH_CHECK();
}

template <typename T>
Params<T, T> make_params(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& key_keep, const Tensor& out, const Tensor& lse, Tensor& first_scratch) {
  Params<T, T> p;
  p.q = {dptr<const T>(q), q.strides()[0], q.strides()[1], q.strides()[2]};
  p.k = {dptr<const T>(k), k.strides()[0], k.strides()[1], k.strides()[2]};
  p.v = {dptr<const T>(v), v.strides()[0], v.strides()[1], v.strides()[2]};
  p.out = {dptr<T>(out), out.strides()[0], out.strides()[1], out.strides()[2]};
  p.lse = dptr<T>(lse);
  p.batch = a.batch, p.heads = a.heads, p.nq = a.nq, p.nk = a.nk, p.dim = a.dim;
  p.scale = a.scale;
  p.causal = a.causal;
  p.dropout_p = a.dropout_p;
  p.dropout_scale = a.dropout_p > 0 ? 1.0 / (1.0 - a.dropout_p) : 1.0;
  p.philox = a.philox;
  if (key_keep.defined() && a.batch > 0) {
    p.keep = dptr<const int32_t>(key_keep);
    first_scratch = scratch_bytes((size_t)a.batch * sizeof(int32_t), q.device());
    int32_t* first = static_cast<int32_t*>(first_scratch.raw_data());
    const int warps = 8;
    first_kept_kernel<<<(unsigned)((a.batch + warps - 1) / warps), warps * 32, 0, stream()>>>(p.keep, a.batch, a.nk,
                                                                                             first);
    WAVSPA_CUDA_LAUNCH_CHECK();
    p.first_kept = first;
  }
  return p;
}

void check_sizes(const AttentionArgs& a, const char* what) {
  WAVSPA_CHECK(a.dim <= kMaxDim, what, ": the CUDA kernels take head dims up to ", kMaxDim, ", got ", a.dim);
  WAVSPA_CHECK(a.batch * a.heads <= 65535, what, ": the CUDA kernels take up to 65535 (batch x heads), got ",
               a.batch * a.heads);
}

dim3 row_tiles(int64_t rows, const AttentionArgs& a) {
  return dim3((unsigned)((rows + kWarps - 1) / kWarps), (unsigned)(a.batch * a.heads));
}

}  // namespace

void CudaBackend::attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& key_keep, const Tensor& out, const Tensor& lse) {
  check_sizes(a, "attention");
  dispatch_floating(q.dtype(), "attention", [&](auto zero) {
    using T = decltype(zero);
    Tensor first;
    const Params<T, T> p = make_params<T>(a, q, k, v, key_keep, out, lse, first);
    if constexpr (std::is_same_v<T, float>) {
      if (matmul_precision() == MatmulPrecision::BFloat16 && attn::mma_supported(p)) {
        WAVSPA_CUDA_CHECK(attn::mma_forward(p, stream()));
        return;
      }
    }
    const size_t smem = (size_t)(kTile * (a.dim + 1) + kTile * a.dim + kWarps * a.dim) * sizeof(T);
    dispatch_dims_per_lane(a.dim, [&](auto dpl) {
      launch(forward_simt_kernel<T, decltype(dpl)::value>, row_tiles(a.nq, a), smem, p);
    });
  });
}

void CudaBackend::attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& key_keep, const Tensor& out, const Tensor& lse,
                                     const Tensor& grad_out, const Tensor& grad_q, const Tensor& grad_k,
                                     const Tensor& grad_v) {
  check_sizes(a, "attention backward");
  dispatch_floating(q.dtype(), "attention backward", [&](auto zero) {
    using T = decltype(zero);
    Tensor first;
    Params<T, T> p = make_params<T>(a, q, k, v, key_keep, out, lse, first);
    p.grad_out = {dptr<const T>(grad_out), grad_out.strides()[0], grad_out.strides()[1], grad_out.strides()[2]};
    p.grad_q = {dptr<T>(grad_q), grad_q.strides()[0], grad_q.strides()[1], grad_q.strides()[2]};
    p.grad_k = {dptr<T>(grad_k), grad_k.strides()[0], grad_k.strides()[1], grad_k.strides()[2]};
    p.grad_v = {dptr<T>(grad_v), grad_v.strides()[0], grad_v.strides()[1], grad_v.strides()[2]};
    const int64_t rows = a.batch * a.heads * a.nq;
    const Tensor rowdot = scratch_bytes((size_t)(rows > 0 ? rows : 1) * sizeof(T), q.device());
    p.rowdot = static_cast<T*>(rowdot.raw_data());
    if constexpr (std::is_same_v<T, float>) {
      if (matmul_precision() == MatmulPrecision::BFloat16 && attn::mma_supported(p)) {
        WAVSPA_CUDA_CHECK(attn::mma_backward(p, stream()));
        return;
      }
    }
    if (rows > 0) {
      rowdot_kernel<T><<<(unsigned)((rows + 7) / 8), 256, 0, stream()>>>(p);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    const int64_t d = a.dim;
    const size_t smem_q = (size_t)(2 * kTile * (d + 1) + 2 * kWarps * d) * sizeof(T);
    const size_t smem_kv = (size_t)(2 * kTile * (d + 1) + 2 * kWarps * d + 2 * kTile) * sizeof(T);
    dispatch_dims_per_lane(d, [&](auto dpl) {
      launch(grad_q_simt_kernel<T, decltype(dpl)::value>, row_tiles(a.nq, a), smem_q, p);
      launch(grad_kv_simt_kernel<T, decltype(dpl)::value>, row_tiles(a.nk, a), smem_kv, p);
    });
  });
}

}  // namespace wavspa::cuda

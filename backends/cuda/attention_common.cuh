// What every CUDA attention kernel shares (backends/cuda/attention.cu, the tensor-core
// kernels of attention_mma.cuh, and the standalone bench bench/kernels/attention.cu, which
// includes this without the rest of the library): the kernel parameters as plain pointers
// and strides, and the masking rules of backends/backend.h's AttentionArgs written once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/random.h"

namespace wavspa::cuda::attn {

// A (B, H, N, d) operand: element (b, h, n, e) at ptr[b * sb + h * sh + n * sn + e].
template <typename T>
struct Operand {
  T* ptr = nullptr;
  int64_t sb = 0, sh = 0, sn = 0;
  __device__ __forceinline__ T* row(int64_t b, int64_t h, int64_t n) const { return ptr + b * sb + h * sh + n * sn; }
};

// One launch's view of the problem. T is the element type of q, k, v, out and their
// gradients; L (float for float32 and bfloat16 inputs, double for float64) of lse and the
// backward's row sums D.
template <typename T, typename L>
struct Params {
  Operand<const T> q, k, v;
  Operand<T> out;
  L* lse = nullptr;  // (B, H, nq) contiguous
  const int32_t* keep = nullptr;  // (B, nk) contiguous, or null: every key is real
  const int32_t* first_kept = nullptr;  // (B): first j with keep[b, j] != 0, nk if none
  // (B, ceil(nk / 32)): 1 where the 32 keys from 32 c on (those below nk) are all kept, or
  // null. Tiles covered by such blocks skip the key mask (a padding mask is mostly ones).
  const uint8_t* full32 = nullptr;
  // backward only
  Operand<const T> grad_out;
  Operand<T> grad_q, grad_k, grad_v;
  L* rowdot = nullptr;  // (B, H, nq): D_i = grad_out_i . out_i
  // The tensor-core backward's dS^T scratch (attention_mma.cuh's DS_OUT), or null for two
  // passes: (B H, nk, ds_ld) bfloat16.
  __nv_bfloat16* ds = nullptr;
  int64_t ds_ld = 0;
  int64_t batch = 0, heads = 0, nq = 0, nk = 0, dim = 0;
  double scale = 1.0;
  bool causal = false;
  double dropout_p = 0.0;
  double dropout_scale = 1.0;  // 1 / (1 - p)
  uint32_t dropout_threshold = 0;  // keep a weight when its 16 random bits are >= this
  PhiloxState philox;
  // Dropout's keep bits, drawn beforehand by attention.cu's dropout_bits_kernel: (B H nq) rows
  // of keep_ld bytes, bit c of byte x of row (bh, i) for key 8 x + c (0 past nk). Where set,
  // the tensor-core kernels copy a tile's bytes into shared memory (keep_tile in
  // attention_mma.cuh) instead of drawing them; null: they draw. keep_ld is nk rounded up to
  // a 64-key tile, over 8.
  const uint8_t* keep_bits = nullptr;
  int64_t keep_ld = 0;
};

// Up to N independent problems in one launch (WavSpA's bands): blockIdx.z picks the problem,
// the grid covers the largest one, and a block past a smaller problem's tiles or heads
// returns at once. Kernels take it as a __grid_constant__ parameter and run their body on
// for_problem's choice below. A single problem is a group of N = 1.
constexpr int kGroup = 4;
template <typename P, int N = kGroup>
struct Group {
  P p[N];
  int count = 0;
};
// Calls f(g.p[z]) with z a constant in each branch, so the body reads its problem's fields at
// fixed offsets of the parameter bank: one copy of the body per problem slot. (Indexing p[z]
// with z from blockIdx made every use of a field a load, 5-7% on the forward and key pass.)
template <typename P, int N, typename F>
__device__ __forceinline__ void for_problem(const Group<P, N>& g, unsigned z, F&& f) {
  if constexpr (N == 1) {
    f(g.p[0]);
  } else {
    static_assert(N == 4, "groups of one or four");
    if (z == 0) f(g.p[0]);
    else if (z == 1) f(g.p[1]);
    else if (z == 2) f(g.p[2]);
    else f(g.p[3]);
  }
}
template <typename P>
Group<P, 1> group_of(const P& p) {
  Group<P, 1> g;
  g.p[0] = p;
  g.count = 1;
  return g;
}

// The masking rules of AttentionArgs. A row is "dead" when no key is allowed for it: it then
// attends uniformly to all nk keys (every score 0) and gives no gradient to q or k.
struct Mask {
  const int32_t* keep;  // this batch's row of key_keep, or null
  const uint8_t* full;  // this batch's row of full32, or null
  int first;            // this batch's first kept key (nk if none)
  int nk;
  bool causal;
  __device__ __forceinline__ bool dead(int64_t i) const { return first >= nk || (causal && first > i); }
  __device__ __forceinline__ bool allowed(int64_t i, int64_t j) const {
    return (keep == nullptr || keep[j] != 0) && (!causal || j <= i);
  }
  // Whether the block's rows [i0, i1) can skip keys past i1 - 1 (causal, and no row of the
  // block dead: a dead row reads every key).
  __device__ __forceinline__ bool causal_limit(int64_t i0) const { return causal && first <= i0; }
  // Whether keys [j0, j0 + width) (j0 and width multiples of 32) need key_keep read: some
  // key is padding, or there is no full32 to tell.
  __device__ __forceinline__ bool needs_keep(int64_t j0, int width) const {
    if (keep == nullptr) return false;
    if (full == nullptr) return true;
    for (int c = 0; c < width / 32; ++c)
      if (j0 + 32 * c < nk && !full[(j0 >> 5) + c]) return true;
    return false;
  }
};

template <typename T, typename L>
__device__ __forceinline__ Mask mask_for(const Params<T, L>& p, int64_t b) {
  Mask m;
  m.keep = p.keep ? p.keep + b * p.nk : nullptr;
  m.full = p.keep && p.full32 ? p.full32 + b * ((p.nk + 31) / 32) : nullptr;
  m.first = p.first_kept ? p.first_kept[b] : (p.nk > 0 ? 0 : 1);
  m.nk = (int)p.nk;
  m.causal = p.causal;
  return m;
}

// D_i = grad_out_i . out_i, summed in L (float32 for bfloat16 and float32 tensors), one warp
// per row: the backward's row term.
template <typename T, typename L>
__global__ void rowdot_kernel(Params<T, L> p) {
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.batch * p.heads * p.nq) return;  // warp-uniform
  const int64_t bh = row / p.nq, i = row % p.nq, b = bh / p.heads, h = bh % p.heads;
  const T* g = p.grad_out.row(b, h, i);
  const T* o = p.out.row(b, h, i);
  L acc = 0;
  for (int64_t e = lane; e < p.dim; e += 32) acc += (L)g[e] * (L)o[e];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) p.rowdot[row] = acc;
}

// rowdot_kernel for the tensor-core paths, whose rows are 16-byte aligned with dim a multiple
// of 16 bytes' worth of T: 8 threads per row, each reading 16-byte words of grad_out and out
// (a warp covers 4 rows; one warp per row read 2-byte elements and was latency-bound).
// blockIdx.y: the problem of the group.
template <typename T, typename L>
__device__ __forceinline__ void rowdot_vec_body(const Params<T, L>& p) {
  constexpr int kPer = 16 / (int)sizeof(T);  // elements per 16-byte word
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 8) + threadIdx.x / 8;
  const int sub = threadIdx.x % 8;
  const bool active = row < p.batch * p.heads * p.nq;
  L acc = 0;
  if (active) {
    const int64_t bh = row / p.nq, i = row % p.nq, b = bh / p.heads, h = bh % p.heads;
    const T* g = p.grad_out.row(b, h, i);
    const T* o = p.out.row(b, h, i);
    for (int64_t e = (int64_t)sub * kPer; e < p.dim; e += 8 * kPer) {
      const uint4 gw = *reinterpret_cast<const uint4*>(g + e), ow = *reinterpret_cast<const uint4*>(o + e);
      const T* gv = reinterpret_cast<const T*>(&gw);
      const T* ov = reinterpret_cast<const T*>(&ow);
#pragma unroll
      for (int c = 0; c < kPer; ++c) acc += (L)gv[c] * (L)ov[c];
    }
  }
#pragma unroll
  for (int off = 4; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (active && sub == 0) p.rowdot[row] = acc;
}
template <typename T, typename L, int N>
__global__ void rowdot_vec_kernel(const __grid_constant__ Group<Params<T, L>, N> grp) {
  for_problem(grp, blockIdx.y, [](const Params<T, L>& p) { rowdot_vec_body(p); });
}

}  // namespace wavspa::cuda::attn

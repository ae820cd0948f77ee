// The bfloat16 attention forward on Hopper's warpgroup MMA (wgmma): the scheme of
// forward_mma_kernel (attention_mma.cuh: online softmax in float32, masks as uniform per-tile
// steps, lse saved for the backward) with its two products issued per warpgroup of 4 warps:
// S = Q K^T with Q and K read by the tensor cores straight from shared memory (no ldmatrix,
// no per-warp fragment loads), then O += P V with P from registers (the score accumulators
// packed to bfloat16, as in the mma.sync kernel) and V from shared memory read N-major.
// An experiment, not in the library yet: included by bench/kernels/attention.cu (its `wgmma`
// mode checks and times it), built for sm_90a
// (wgmma is not part of plain sm_90 or of any later architecture).
//
// Shared tiles use the 128-byte swizzle that wgmma's descriptors describe: a tile row of 64
// bfloat16 is 128 bytes, and its 16-byte chunk c is stored at chunk c ^ (row % 8), each group
// of 8 rows (1024 bytes, 1024-aligned) being one swizzle atom. The descriptors:
//  - K-major (Q as A, K as B: the contraction dim d is contiguous): stride between 8-row
//    groups 1024 bytes; the next 16 of d start 32 bytes further;
//  - N-major (V as B of P V: its rows are the contraction dim, keys): the same atoms, with
//    the next 16 keys 2048 bytes further.
// Accumulator layout of m64nNk16: warp w of the warpgroup holds rows 16 w + g and 16 w + g + 8
// (g = lane / 4, t = lane % 4), n-block j at d[j][0..1] (cols 8 j + 2 t, + 1) and d[j][2..3]
// (the row + 8): per warp, mma.sync's C layout, so the softmax code is the same.
#pragma once

#include "backends/cuda/attention_mma.cuh"

namespace wavspa::cuda::attn {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WAVSPA_WGMMA 1
#endif

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Writes by ordinary stores and cp.async become visible to wgmma's reads (the async proxy).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving uses of accumulator registers across a wgmma wait.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int x = 0; x < 4; ++x) asm volatile("" : "+f"(d[j][x])::"memory");
}

// A descriptor of a 128-byte-swizzled tile at `p` (1024-byte aligned for the atoms; the
// start may then move by the k offsets above). LBO is unused by these layouts (one atom wide).
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  return (uint64_t)((a & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

#if defined(WAVSPA_WGMMA)
// d (+)= A B for the warpgroup: A (64 x 16) and B (16 x 128) from shared memory by
// descriptor, both K-major; d is overwritten when `accumulate` is 0.
__device__ __forceinline__ void wgmma_m64n128_ss(float (&d)[16][4], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "l"(da), "l"(db), "r"(accumulate));
}

// d (+)= A B for the warpgroup: A (64 x 16) and B (16 x 64) from shared memory by
// descriptor, both K-major; d is overwritten when `accumulate` is 0.
__device__ __forceinline__ void wgmma_m64n64_ss(float (&d)[8][4], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db), "r"(accumulate));
}

// d += A B for the warpgroup: A (64 x 16) from registers (each warp's 16 rows as mma.sync's
// A fragment), B (16 x 64) from shared memory by descriptor, N-major (its rows are k).
__device__ __forceinline__ void wgmma_m64n64_rs_nmajor(float (&d)[8][4], const uint32_t (&a)[4], uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

// d += A B for the warpgroup, both from shared memory and both MN-major: A (64 x 16) stored
// k by m (its rows are k, 64 m per 128-byte row), B (16 x 64) stored k by n. The dQ product
// dS K reads dS from the key pass's dS^T tiles this way, and K as it is.
__device__ __forceinline__ void wgmma_m64n64_ss_mn(float (&d)[8][4], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db), "r"(1));
}

// The K-major SS product at N = 64 or 128.
template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t da, uint64_t db, int accumulate) {
  static_assert(N == 64 || N == 128, "n 64 or 128");
  if constexpr (N == 64) wgmma_m64n64_ss(d, da, db, accumulate);
  else wgmma_m64n128_ss(d, da, db, accumulate);
}
#endif

// Rows [r0, r0 + valid) of a (B, H, N, 64) bfloat16 operand into a swizzled ROWS x 64 tile by
// cp.async, zeros past `valid`.
template <int ROWS, int THREADS>
__device__ __forceinline__ void stage_sw128(bf16* tile, const bf16* base, int64_t sn, int64_t r0, int64_t valid) {
  for (int x = threadIdx.x; x < ROWS * 8; x += THREADS) {
    const int r = x / 8, c = x % 8;
    const bool in = r < valid;
    cp_async16(tile + r * 64 + ((c ^ (r & 7)) * 8), in ? base + (r0 + r) * sn + c * 8 : base, in ? 16 : 0);
  }
}

// NWG warpgroups, 64 query rows each; key tiles of 128, double-buffered. Head dim 64, no
// dropout (the host takes forward_mma_kernel for those).
constexpr int kWgKeys = 128;
template <int NWG>
constexpr size_t wgmma_fwd_smem() {
  return 1024 + (size_t)(64 * NWG + 4 * kWgKeys) * 64 * sizeof(bf16);  // + alignment slack
}

template <int NWG>
__global__ void __launch_bounds__(128 * NWG, 1) forward_wgmma_kernel(Params<bf16, float> p) {
#if defined(WAVSPA_WGMMA)
  constexpr int D = 64, Br = 64 * NWG, Bc = kWgKeys, THREADS = 128 * NWG;
  extern __shared__ uint8_t smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
  bf16* KV = Qs + Br * D;  // [2 buffers][K, V][Bc][64], each tile 1024-aligned
  const int wg = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32, g = lane / 4,
            t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  const Mask mask = mask_for(p, b);
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  auto Ktile = [&](int buf) { return KV + (2 * buf) * Bc * D; };
  auto Vtile = [&](int buf) { return KV + (2 * buf + 1) * Bc * D; };
  const bf16* kbase = p.k.row(b, h, 0);
  const bf16* vbase = p.v.row(b, h, 0);
  stage_sw128<Br, THREADS>(Qs, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
  if (kend > 0) {
    stage_sw128<Bc, THREADS>(Ktile(0), kbase, p.k.sn, 0, kend);
    stage_sw128<Bc, THREADS>(Vtile(0), vbase, p.v.sn, 0, kend);
  }
  cp_async_commit();
  const int row0 = (int)i0 + wg * 64 + warp * 16;  // this warp's first row
  int rows[2];
  bool dead[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    rows[r] = row0 + g + 8 * r;
    dead[r] = rows[r] < p.nq && mask.dead(rows[r]);
  }
  const bool any_dead = mask.first > i0 || mask.first >= mask.nk;
  const float sl2 = (float)p.scale * kLog2e;
  float o[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0};
  const uint64_t qdesc = sw128_desc(Qs + wg * 64 * D);
  for (int64_t j0 = 0, it = 0; j0 < kend; j0 += Bc, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    fence_proxy_async();
    __syncthreads();  // tile `it` has landed and is visible to wgmma; the other buffer is free
    if (j0 + Bc < kend) {
      stage_sw128<Bc, THREADS>(Ktile(buf ^ 1), kbase, p.k.sn, j0 + Bc, kend - j0 - Bc);
      stage_sw128<Bc, THREADS>(Vtile(buf ^ 1), vbase, p.v.sn, j0 + Bc, kend - j0 - Bc);
    }
    cp_async_commit();
    float s[Bc / 8][4];
    const uint64_t kdesc = sw128_desc(Ktile(buf));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_m64n128_ss(s, qdesc + 2 * kk, kdesc + 2 * kk, kk > 0);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(s);
    if (j0 + Bc > p.nk || mask.needs_keep(j0, Bc)) {
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int j = (int)j0 + nb * 8 + 2 * t + c;
          const float bias = j < p.nk && (mask.keep == nullptr || mask.keep[j] != 0) ? 0.0f : -INFINITY;
          s[nb][c] += bias;
          s[nb][2 + c] += bias;
        }
    }
    if (mask.causal && j0 + Bc - 1 > row0) {
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
        for (int x = 0; x < 4; ++x)
          if ((int)j0 + nb * 8 + 2 * t + x % 2 > rows[x / 2]) s[nb][x] = -INFINITY;
    }
    if (any_dead) {
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
        for (int x = 0; x < 4; ++x)
          if (dead[x / 2] && (int)j0 + nb * 8 + 2 * t + x % 2 < p.nk) s[nb][x] = 0.0f;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      const float corr = fast_exp2((m[r] - base) * sl2);
      const float shift = -base * sl2;
      m[r] = m_new;
      float sum = 0;
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb) {
        s[nb][2 * r] = fast_exp2(fmaf(s[nb][2 * r], sl2, shift));
        s[nb][2 * r + 1] = fast_exp2(fmaf(s[nb][2 * r + 1], sl2, shift));
        sum += s[nb][2 * r] + s[nb][2 * r + 1];
      }
      l[r] = l[r] * corr + sum;
#pragma unroll
      for (int db = 0; db < D / 8; ++db) o[db][2 * r] *= corr, o[db][2 * r + 1] *= corr;
    }
    uint32_t a[Bc / 16][4];
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) pack_a(a[kk], s[2 * kk], s[2 * kk + 1]);
    const uint64_t vdesc = sw128_desc(Vtile(buf));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) wgmma_m64n64_rs_nmajor(o, a[kk], vdesc + (2048 >> 4) * kk);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(o);
  }
  cp_async_wait_all();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int i = rows[r];
    if (i >= p.nq) continue;
    const float inv = sum > 0 ? 1.0f / sum : 0.0f;
    bf16* out = p.out.row(b, h, i);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) store_pair(out + db * 8 + 2 * t, o[db][2 * r] * inv, o[db][2 * r + 1] * inv);
    if (t == 0) p.lse[bh * p.nq + i] = sum > 0 ? (m[r] == -INFINITY ? 0.0f : m[r]) * (float)p.scale + logf(sum) : -INFINITY;
  }
#else
  __trap();  // built without sm_90a: the host never launches this
#endif
}

// The pipelined variant (FlashAttention-3's intra-warpgroup overlap): tile j's S = Q K_j^T
// is issued together with the previous tile's O += P_{j-1} V_{j-1}, and the softmax of S_j
// runs on the CUDA cores while that second product still runs on the tensor cores. S_j and
// P_{j-1} live at the same time (more registers: 2 warpgroups), and V_{j-1} is read while
// K_j and K_{j+1} are in shared memory: 4 K/V buffers, tile j + 2 copied during tile j.
constexpr int kWgStages = 4;
template <int NWG>
constexpr size_t wgmma_pipe_smem() {
  return 1024 + (size_t)(64 * NWG + 2 * kWgStages * kWgKeys) * 64 * sizeof(bf16);
}

// Masks and the online softmax of one 16-row x Bc score tile of a warp (rows[r] = its rows
// g and g + 8, keys j0..): s becomes the unnormalised weights, m and l move on, corr is the
// factor that O must be multiplied by.
template <int Bc>
__device__ __forceinline__ void softmax_tile(float (&s)[Bc / 8][4], float (&m)[2], float (&l)[2], float (&corr)[2],
                                             const Params<bf16, float>& p, const Mask& mask, int64_t j0, int row0,
                                             const int (&rows)[2], const bool (&dead)[2], bool any_dead, float sl2,
                                             int t) {
  if (j0 + Bc > p.nk || mask.needs_keep(j0, Bc)) {
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int jj = (int)j0 + nb * 8 + 2 * t + c;
        const float bias = jj < p.nk && (mask.keep == nullptr || mask.keep[jj] != 0) ? 0.0f : -INFINITY;
        s[nb][c] += bias;
        s[nb][2 + c] += bias;
      }
  }
  if (mask.causal && j0 + Bc - 1 > row0) {
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
      for (int x = 0; x < 4; ++x)
        if ((int)j0 + nb * 8 + 2 * t + x % 2 > rows[x / 2]) s[nb][x] = -INFINITY;
  }
  if (any_dead) {
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
      for (int x = 0; x < 4; ++x)
        if (dead[x / 2] && (int)j0 + nb * 8 + 2 * t + x % 2 < p.nk) s[nb][x] = 0.0f;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m[r], mx);
    const float base = m_new == -INFINITY ? 0.0f : m_new;
    corr[r] = fast_exp2((m[r] - base) * sl2);
    const float shift = -base * sl2;
    m[r] = m_new;
    float sum = 0;
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb) {
      s[nb][2 * r] = fast_exp2(fmaf(s[nb][2 * r], sl2, shift));
      s[nb][2 * r + 1] = fast_exp2(fmaf(s[nb][2 * r + 1], sl2, shift));
      sum += s[nb][2 * r] + s[nb][2 * r + 1];
    }
    l[r] = l[r] * corr[r] + sum;
  }
}

template <int NWG>
__global__ void __launch_bounds__(128 * NWG, 1) forward_wgmma_pipe_kernel(Params<bf16, float> p) {
#if defined(WAVSPA_WGMMA)
  constexpr int D = 64, Br = 64 * NWG, Bc = kWgKeys, THREADS = 128 * NWG, S = kWgStages;
  extern __shared__ uint8_t smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
  bf16* KV = Qs + Br * D;  // [S buffers][K, V][Bc][64]
  const int wg = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32, g = lane / 4,
            t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  const Mask mask = mask_for(p, b);
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  const int T = (int)((kend + Bc - 1) / Bc);
  auto Ktile = [&](int j) { return KV + (2 * (j % S)) * Bc * D; };
  auto Vtile = [&](int j) { return KV + (2 * (j % S) + 1) * Bc * D; };
  const bf16* kbase = p.k.row(b, h, 0);
  const bf16* vbase = p.v.row(b, h, 0);
  auto load = [&](int j) {
    if (j < T) {
      const int64_t j0 = (int64_t)j * Bc;
      stage_sw128<Bc, THREADS>(Ktile(j), kbase, p.k.sn, j0, kend - j0);
      stage_sw128<Bc, THREADS>(Vtile(j), vbase, p.v.sn, j0, kend - j0);
    }
    cp_async_commit();  // one group per tile, empty past the end: the waits below count tiles
  };
  stage_sw128<Br, THREADS>(Qs, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
  load(0);  // with Q
  load(1);
  const int row0 = (int)i0 + wg * 64 + warp * 16;
  int rows[2];
  bool dead[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    rows[r] = row0 + g + 8 * r;
    dead[r] = rows[r] < p.nq && mask.dead(rows[r]);
  }
  const bool any_dead = mask.first > i0 || mask.first >= mask.nk;
  const float sl2 = (float)p.scale * kLog2e;
  float o[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0, 0}, corr[2];
  uint32_t a[Bc / 16][4];  // P of the previous tile, the A operand of its P V
  const uint64_t qdesc = sw128_desc(Qs + wg * 64 * D);
  // Tile 0 alone, so that the loop below has no branch between a wgmma and its wait.
  if (T > 0) {
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");  // tile 0 (and Q) has landed
    fence_proxy_async();
    __syncthreads();
    load(2);
    float s[Bc / 8][4];
    const uint64_t kdesc = sw128_desc(Ktile(0));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_m64n128_ss(s, qdesc + 2 * kk, kdesc + 2 * kk, kk > 0);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(s);
    softmax_tile<Bc>(s, m, l, corr, p, mask, 0, row0, rows, dead, any_dead, sl2, t);
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) pack_a(a[kk], s[2 * kk], s[2 * kk + 1]);
  }
  for (int j = 1; j < T; ++j) {
    const int64_t j0 = (int64_t)j * Bc;
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");  // tile j has landed (j + 1 may not)
    fence_proxy_async();
    __syncthreads();  // ... for every thread; tile j - 2's buffer (read by P V of j - 2) is free
    load(j + 2);
    float s[Bc / 8][4];
    const uint64_t kdesc = sw128_desc(Ktile(j));
    const uint64_t vdesc = sw128_desc(Vtile(j - 1));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_m64n128_ss(s, qdesc + 2 * kk, kdesc + 2 * kk, kk > 0);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) wgmma_m64n64_rs_nmajor(o, a[kk], vdesc + (2048 >> 4) * kk);
    wgmma_commit();
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");  // S done, P V may run on
    fence_regs(s);
    softmax_tile<Bc>(s, m, l, corr, p, mask, j0, row0, rows, dead, any_dead, sl2, t);
    wgmma_wait_all();  // P V of tile j - 1 is done: O and P's registers are free
    fence_regs(o);
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int db = 0; db < D / 8; ++db) o[db][2 * r] *= corr[r], o[db][2 * r + 1] *= corr[r];
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) pack_a(a[kk], s[2 * kk], s[2 * kk + 1]);
  }
  if (T > 0) {
    const uint64_t vdesc = sw128_desc(Vtile(T - 1));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) wgmma_m64n64_rs_nmajor(o, a[kk], vdesc + (2048 >> 4) * kk);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(o);
  }
  cp_async_wait_all();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const int i = rows[r];
    if (i >= p.nq) continue;
    const float inv = sum > 0 ? 1.0f / sum : 0.0f;
    bf16* out = p.out.row(b, h, i);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) store_pair(out + db * 8 + 2 * t, o[db][2 * r] * inv, o[db][2 * r + 1] * inv);
    if (t == 0) p.lse[bh * p.nq + i] = sum > 0 ? (m[r] == -INFINITY ? 0.0f : m[r]) * (float)p.scale + logf(sum) : -INFINITY;
  }
#else
  __trap();
#endif
}

// ---- backward on wgmma ---------------------------------------------------------------
//
// The key pass of mma_backward's dS-out scheme (grad_kv_mma_kernel<.., true>) with its four
// products on warpgroup MMA: NWG warpgroups own 64 keys each and walk the queries in tiles of
// BR (cp.async, double-buffered). Per tile and warpgroup:
//   S^T = K Q^T and dP^T = V dO^T  (SS: K, V and the Q, dO tiles K-major in shared memory),
//   P^T, dS^T in registers (the same element code as the mma.sync kernel: per warp the
//   accumulator layout is mma.sync's),
//   dV += W^T dO and dK += dS^T Q  (RS: W^T and dS^T packed from the accumulators, dO and Q
//   read N-major from the tiles that served as K-major B a moment before),
// and dS^T (bfloat16, as rounded for the product) goes through a shared tile to the scratch,
// copied out while the last two products run. Head dim 64, bfloat16 tensors.
template <int NWG, int BR>
constexpr size_t wgmma_kv_smem() {
  constexpr int Bc = 64 * NWG;
  return 1024 + (size_t)(2 * Bc + 4 * BR) * 64 * sizeof(bf16) + (size_t)Bc * (BR + 8) * sizeof(bf16) +
         4 * BR * sizeof(float) + 2 * BR * (Bc / 8);
}

template <int NWG, int BR>
__global__ void __launch_bounds__(128 * NWG, 1) grad_kv_wgmma_kernel(Params<bf16, float> p) {
#if defined(WAVSPA_WGMMA)
  constexpr int D = 64, Bc = 64 * NWG, THREADS = 128 * NWG, PS = BR + 8, GROUPS = Bc / 8;
  static_assert(BR == 64 || BR == 128, "query tiles of 64 or 128");
  extern __shared__ uint8_t smem_raw[];
  bf16* Ks = reinterpret_cast<bf16*>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
  bf16* Vs = Ks + Bc * D;
  bf16* QG = Vs + Bc * D;         // [2 buffers][Q, dO][BR][64], swizzled
  bf16* dSs = QG + 4 * BR * D;    // [Bc][PS]: dS^T of the tile
  float* lse_all = reinterpret_cast<float*>(dSs + Bc * PS);  // [2][BR], log2 units
  float* D_all = lse_all + 2 * BR;                           // [2][BR]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(D_all + 2 * BR);  // [2][BR][GROUPS]
  auto Qt = [&](int buf) { return QG + (2 * buf) * BR * D; };
  auto Gt = [&](int buf) { return QG + (2 * buf + 1) * BR * D; };
  const bool dropout = p.dropout_p > 0;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32, g = lane / 4,
            t = lane % 4;
  const int nQ = (int)((p.nq + BR - 1) / BR);
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t j0 = (int64_t)blockIdx.x * Bc;
  const Mask mask = mask_for(p, b);
  stage_sw128<Bc, THREADS>(Ks, p.k.row(b, h, 0), p.k.sn, j0, p.nk - j0);
  stage_sw128<Bc, THREADS>(Vs, p.v.row(b, h, 0), p.v.sn, j0, p.nk - j0);
  const int kw = wg * 64 + warp * 16;  // the warp's first key in the block
  const int keys[2] = {(int)j0 + kw + g, (int)j0 + kw + g + 8};
  float key_bias[2];
#pragma unroll
  for (int r = 0; r < 2; ++r)
    key_bias[r] = keys[r] < p.nk && (mask.keep == nullptr || mask.keep[keys[r]] != 0) ? 0.0f : -INFINITY;
  const bool any_dead = mask.first > 0 && (mask.causal || mask.first >= mask.nk);
  const float sl2 = (float)p.scale * kLog2e, dscale = (float)p.dropout_scale;
  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  const int first_tile = mask.causal && mask.first == 0 ? (int)(j0 / BR) : 0;
  auto load_walk = [&](int buf, int64_t i0) {
    stage_sw128<BR, THREADS>(Qt(buf), p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
    stage_sw128<BR, THREADS>(Gt(buf), p.grad_out.row(b, h, 0), p.grad_out.sn, i0, p.nq - i0);
    for (int x = threadIdx.x; x < BR; x += THREADS) {
      const bool in = i0 + x < p.nq;
      lse_all[buf * BR + x] = in ? p.lse[bh * p.nq + i0 + x] * kLog2e : INFINITY;
      D_all[buf * BR + x] = in ? p.rowdot[bh * p.nq + i0 + x] : 0.0f;
    }
    if (dropout) draw_keep<BR, GROUPS>(p, bh, i0, j0 / 8, keep_all + buf * BR * GROUPS);
  };
  if (first_tile < nQ) load_walk(0, (int64_t)first_tile * BR);
  cp_async_commit();
  const uint64_t kdesc = sw128_desc(Ks + wg * 64 * D), vdesc = sw128_desc(Vs + wg * 64 * D);
  for (int tile = first_tile, it = 0; tile < nQ; ++tile, ++it) {
    const int buf = it % 2;
    const int64_t i0 = (int64_t)tile * BR;
    cp_async_wait_all();
    fence_proxy_async();
    __syncthreads();  // tile `it` is in for everyone; the other buffer and dSs are free
    if (tile + 1 < nQ) load_walk(buf ^ 1, i0 + BR);
    cp_async_commit();
    const float* lse_s = lse_all + buf * BR;
    const float* D_s = D_all + buf * BR;
    const uint64_t qdesc = sw128_desc(Qt(buf)), gdesc = sw128_desc(Gt(buf));
    float st[BR / 8][4], dpt[BR / 8][4];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_ss<BR>(st, kdesc + 2 * kk, qdesc + 2 * kk, kk > 0);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) wgmma_ss<BR>(dpt, vdesc + 2 * kk, gdesc + 2 * kk, kk > 0);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(st);
    fence_regs(dpt);
    // Dropout's keep bits, bit 4 nb + x for element x of n-block nb (BR <= 128: 64 bits):
    // query column nb * 8 + 2 t + c has the byte pair of the warp's two key groups, bit g.
    uint64_t kept = ~0ull;
    const uint8_t* keep = keep_all + buf * BR * GROUPS + kw / 8;
    if (dropout) {
      kept = 0;
#pragma unroll
      for (int nb = 0; nb < BR / 8; ++nb)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const uint32_t pair = *reinterpret_cast<const uint16_t*>(keep + (nb * 8 + 2 * t + c) * GROUPS) >> g;
          kept |= (uint64_t)(pair & 1) << (4 * nb + c) | (uint64_t)((pair >> 8) & 1) << (4 * nb + 2 + c);
        }
    }
    const bool diagonal = mask.causal && (int)j0 + Bc - 1 > (int)i0;
#pragma unroll
    for (int nb = 0; nb < BR / 8; ++nb) {
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const int r = x / 2, col = nb * 8 + 2 * t + x % 2;
        float l2 = fmaf(st[nb][x], sl2, key_bias[r] - lse_s[col]);
        if (diagonal && keys[r] > (int)i0 + col) l2 = -INFINITY;
        const float prob = fast_exp2(l2);
        const float drop = (kept >> (4 * nb + x)) & 1 ? dscale : 0.0f;
        st[nb][x] = prob * drop;
        dpt[nb][x] = prob * fmaf(dpt[nb][x], drop, -D_s[col]);
      }
    }
    if (any_dead) {  // a dead query row weighs every real key by 1 / nk and gives no dS
#pragma unroll
      for (int nb = 0; nb < BR / 8; ++nb)
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const int r = x / 2, col = nb * 8 + 2 * t + x % 2, i = (int)i0 + col;
          if (i < p.nq && keys[r] < p.nk && mask.dead(i)) {
            const float drop = (kept >> (4 * nb + x)) & 1 ? dscale : 0.0f;
            st[nb][x] = fast_exp2(-lse_s[col]) * drop;
            dpt[nb][x] = 0.0f;
          }
        }
    }
    uint32_t wa[BR / 16][4], da[BR / 16][4];
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) {
      pack_a(wa[kk], st[2 * kk], st[2 * kk + 1]);
      pack_a(da[kk], dpt[2 * kk], dpt[2 * kk + 1]);
      bf16* row0 = dSs + (kw + g) * PS + kk * 16 + 2 * t;
      *reinterpret_cast<uint32_t*>(row0) = da[kk][0];
      *reinterpret_cast<uint32_t*>(row0 + 8 * PS) = da[kk][1];
      *reinterpret_cast<uint32_t*>(row0 + 8) = da[kk][2];
      *reinterpret_cast<uint32_t*>(row0 + 8 * PS + 8) = da[kk][3];
    }
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) wgmma_m64n64_rs_nmajor(dv, wa[kk], gdesc + (2048 >> 4) * kk);
#pragma unroll
    for (int kk = 0; kk < BR / 16; ++kk) wgmma_m64n64_rs_nmajor(dk, da[kk], qdesc + (2048 >> 4) * kk);
    wgmma_commit();
    __syncthreads();  // the whole dS^T tile is in shared memory
    {
      constexpr int kChunks = BR / 8;
      for (int x = threadIdx.x; x < Bc * kChunks; x += THREADS) {
        const int r = x / kChunks, c = (x % kChunks) * 8;
        if (j0 + r < p.nk && i0 + c < p.nq)
          *reinterpret_cast<uint4*>(p.ds + (bh * p.nk + j0 + r) * p.ds_ld + i0 + c) =
              *reinterpret_cast<const uint4*>(dSs + r * PS + c);
      }
    }
    wgmma_wait_all();
    fence_regs(dv);
    fence_regs(dk);
  }
  cp_async_wait_all();
  const float scale = (float)p.scale;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (keys[r] >= p.nk) continue;
    bf16* gk = p.grad_k.row(b, h, keys[r]);
    bf16* gv = p.grad_v.row(b, h, keys[r]);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      store_pair(gk + db * 8 + 2 * t, dk[db][2 * r] * scale, dk[db][2 * r + 1] * scale);
      store_pair(gv + db * 8 + 2 * t, dv[db][2 * r], dv[db][2 * r + 1]);
    }
  }
#else
  __trap();
#endif
}

// dQ = scale dS K on wgmma: NWG warpgroups own 64 queries each; key tiles of 64, STAGES deep
// (cp.async). dS^T's rows are keys, so A is read M-major, and K is read N-major, as it is.
constexpr int kWgDqKeys = 64, kWgDqStages = 3;
template <int NWG>
constexpr size_t wgmma_dq_smem() {
  return 1024 + (size_t)kWgDqStages * (NWG + 1) * kWgDqKeys * 64 * sizeof(bf16);
}

template <int NWG>
__global__ void __launch_bounds__(128 * NWG) grad_q_wgmma_kernel(Params<bf16, float> p) {
#if defined(WAVSPA_WGMMA)
  constexpr int D = 64, Br = 64 * NWG, THREADS = 128 * NWG, S = kWgDqStages, KT = kWgDqKeys;
  extern __shared__ uint8_t smem_raw[];
  bf16* base = reinterpret_cast<bf16*>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
  // stage s: NWG dS^T tiles [KT keys][64 queries], then the K tile [KT][64], each swizzled
  auto St = [&](int s, int w) { return base + (s * (NWG + 1) + w) * KT * D; };
  auto Kt = [&](int s) { return base + (s * (NWG + 1) + NWG) * KT * D; };
  const int wg = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32, g = lane / 4,
            t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  const bf16* ds = p.ds + bh * p.nk * p.ds_ld;
  const int T = (int)((p.nk + KT - 1) / KT);
  auto load = [&](int j) {
    if (j < T) {
      const int64_t j0 = (int64_t)j * KT;
      for (int x = threadIdx.x; x < NWG * KT * 8; x += THREADS) {
        const int w = x / (KT * 8), r = (x / 8) % KT, c = x % 8;
        const int64_t col = i0 + w * 64 + c * 8;
        const bool in = j0 + r < p.nk && col < p.ds_ld;
        cp_async16(St(j % S, w) + r * 64 + ((c ^ (r & 7)) * 8), in ? ds + (j0 + r) * p.ds_ld + col : ds, in ? 16 : 0);
      }
      stage_sw128<KT, THREADS>(Kt(j % S), p.k.row(b, h, 0), p.k.sn, j0, p.nk - j0);
    }
    cp_async_commit();  // one group per tile, empty past the end
  };
#pragma unroll
  for (int s = 0; s < S - 1; ++s) load(s);
  float dq[D / 8][4] = {};
  for (int j = 0; j < T; ++j) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 2) : "memory");  // tile j is in
    fence_proxy_async();
    __syncthreads();  // for every thread; tile j - 1's stage (read by its wgmmas, done) is free
    load(j + S - 1);
    const uint64_t adesc = sw128_desc(St(j % S, wg)), bdesc = sw128_desc(Kt(j % S));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) wgmma_m64n64_ss_mn(dq, adesc + (2048 >> 4) * kk, bdesc + (2048 >> 4) * kk);
    wgmma_commit();
    wgmma_wait_all();
    fence_regs(dq);
  }
  cp_async_wait_all();
  const float scale = (float)p.scale;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = i0 + wg * 64 + warp * 16 + g + 8 * r;
    if (row >= p.nq) continue;
    bf16* out = p.grad_q.row(b, h, row);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) store_pair(out + db * 8 + 2 * t, dq[db][2 * r] * scale, dq[db][2 * r + 1] * scale);
  }
#else
  __trap();
#endif
}

// Whether the wgmma backward takes the problem: head dim 64, bfloat16, the dS scratch given,
// no causal mask (the dS-out scheme's rule), aligned rows.
inline bool wgmma_backward_supported(const Params<bf16, float>& p) {
  return p.dim == 64 && p.ds != nullptr && !p.causal && mma_supported(p);
}

template <int NWG = 2, int BR = 64, int DQ_NWG = 2>
cudaError_t wgmma_backward(const Params<bf16, float>& p, cudaStream_t stream) {
  const int64_t rows = p.batch * p.heads * p.nq;
  if (rows == 0) return cudaSuccess;
  rowdot_kernel<bf16, float><<<(unsigned)((rows + 7) / 8), 256, 0, stream>>>(p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const unsigned bhs = (unsigned)(p.batch * p.heads);
  if (p.nk > 0) {
    const auto kv = grad_kv_wgmma_kernel<NWG, BR>;
    const size_t smem = wgmma_kv_smem<NWG, BR>();
    if ((e = cudaFuncSetAttribute(kv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)) != cudaSuccess) return e;
    kv<<<dim3((unsigned)((p.nk + 64 * NWG - 1) / (64 * NWG)), bhs), 128 * NWG, smem, stream>>>(p);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  const auto dqk = grad_q_wgmma_kernel<DQ_NWG>;
  const size_t smem = wgmma_dq_smem<DQ_NWG>();
  if ((e = cudaFuncSetAttribute(dqk, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)) != cudaSuccess) return e;
  dqk<<<dim3((unsigned)((p.nq + 64 * DQ_NWG - 1) / (64 * DQ_NWG)), bhs), 128 * DQ_NWG, smem, stream>>>(p);
  return cudaGetLastError();
}

// Whether forward_wgmma_kernel takes the problem: head dim 64, no dropout, aligned rows.
inline bool wgmma_forward_supported(const Params<bf16, float>& p) {
  return p.dim == 64 && p.dropout_p <= 0 && mma_supported(p);
}

template <int NWG = 2, bool PIPE = false>
cudaError_t wgmma_forward(const Params<bf16, float>& p, cudaStream_t stream) {
  const dim3 grid((unsigned)((p.nq + 64 * NWG - 1) / (64 * NWG)), (unsigned)(p.batch * p.heads));
  if (grid.x == 0 || grid.y == 0) return cudaSuccess;
  const auto kernel = PIPE ? forward_wgmma_pipe_kernel<NWG> : forward_wgmma_kernel<NWG>;
  const size_t smem = PIPE ? wgmma_pipe_smem<NWG>() : wgmma_fwd_smem<NWG>();
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  kernel<<<grid, 128 * NWG, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace wavspa::cuda::attn

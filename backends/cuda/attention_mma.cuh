// Tensor-core attention kernels: bfloat16 operands on mma.sync.m16n8k16 with float32
// accumulators, the online softmax in float32 (flash attention, as in Dao's FlashAttention-2).
// Included by backends/cuda/attention.cu and by the standalone bench bench/kernels/attention.cu.
//
// T is the element type of q, k, v, out and the gradients in device memory (float or
// __nv_bfloat16); tiles are rounded to bfloat16 as they are staged into shared memory, so a
// float32 tensor costs one read and no copy. Head dim D is 32, 64 or 128, and every row must
// start 16-byte aligned (strides multiples of 8 elements, base pointer aligned): the host
// checks, and the exact kernels of attention.cu take everything else.
//
// Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4), as the PTX manual gives them:
//   A 16x16: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B 16x8:  b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
//   C 16x8:  c0, c1 (g, 2t..2t+1), c2, c3 (g+8, 2t..2t+1)
// so an accumulator tile of scores, rounded to bfloat16 and packed in pairs, is already the
// A operand of the next product: P never leaves registers.
#pragma once

#include <cuda_bf16.h>

#include <algorithm>

#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/cp_async.cuh"

namespace wavspa::cuda::attn {

using bf16 = __nv_bfloat16;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x in one MUFU instruction (ex2.approx: 2 ulp, flushes denormals; 2^-inf = 0), as
// FlashAttention compiles its softmax with --use_fast_math.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low half
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Two accumulator n-blocks (16 columns: `lo` the first 8, `hi` the next), rounded to
// bfloat16 and packed as the A operand of a product whose k dim is those columns.
__device__ __forceinline__ void pack_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// c += a b on bfloat16 tensor cores, float32 accumulation.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bfloat16 matrices from shared memory; lane l gives the address of row l % 8 of
// matrix l / 8. With .trans each thread receives the transposed elements.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Shared tiles are row-major bfloat16 with D + 8 elements per row: rows stay 16-byte aligned
// and the 8 rows an ldmatrix reads fall in distinct banks.
template <int D>
constexpr int pitch() {
  return D + 8;
}

// The A operand (16 x 16) at rows r0.., cols c0.. of a tile.
template <int D>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int r0, int c0, int lane) {
  ldsm_x4(a, tile + (r0 + lane % 16) * pitch<D>() + c0 + (lane / 16) * 8);
}
// B operands for two n-blocks (rows n0.. and n0 + 8.. of the tile, k = cols c0..c0+15), when
// the tile holds B transposed (row = n): b[0], b[1] for n0, b[2], b[3] for n0 + 8.
template <int D>
__device__ __forceinline__ void load_b_rows(uint32_t (&b)[4], const bf16* tile, int n0, int c0, int lane) {
  ldsm_x4(b, tile + (n0 + lane % 8 + (lane / 16) * 8) * pitch<D>() + c0 + ((lane / 8) % 2) * 8);
}
// B operands for two n-blocks (cols n0.. and n0 + 8..) with k = rows k0..k0+15, when the tile
// holds B as it is (row = k): b[0], b[1] for n0, b[2], b[3] for n0 + 8.
template <int D>
__device__ __forceinline__ void load_b_cols(uint32_t (&b)[4], const bf16* tile, int k0, int n0, int lane) {
  ldsm_x4_t(b, tile + (k0 + lane % 8 + ((lane / 8) % 2) * 8) * pitch<D>() + n0 + (lane / 16) * 8);
}

// The A operand (16 x 16) at rows m0.., k = k0.. of a matrix whose tile holds it transposed
// (row = k, col = m): matrix x of the ldmatrix is (m block x % 2, k block x / 2).
template <int PITCH>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const bf16* tile, int k0, int m0, int lane) {
  ldsm_x4_t(a, tile + (k0 + lane % 8 + (lane / 16) * 8) * PITCH + m0 + ((lane / 8) % 2) * 8);
}

// acc += A B for one warp, A a 16 x 16 fragment, B the rows k0..k0 + 15 of a (k, D) tile held
// as it is (row = k): the D / 8 n-blocks of the dQ products.
template <int D>
__device__ __forceinline__ void mma_rows_of(float (&acc)[D / 8][4], const uint32_t (&a)[4], const bf16* tile, int k0,
                                            int lane) {
#pragma unroll
  for (int db = 0; db < D / 8; db += 2) {
    uint32_t b[4];
    load_b_cols<D>(b, tile, k0, db * 8, lane);
    mma(acc[db], a, b[0], b[1]);
    mma(acc[db + 1], a, b[2], b[3]);
  }
}

// acc1 += A1 B1^T and acc2 += A2 B2^T for one warp, both contracting over the D columns:
// A1, A2 give the 16 rows r0.. of two tiles, B1, B2 the N rows of two more.
template <int D, int N>
__device__ __forceinline__ void two_products(float (&acc1)[N / 8][4], float (&acc2)[N / 8][4], const bf16* A1,
                                             const bf16* A2, int r0, const bf16* B1, const bf16* B2, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a1[4], a2[4];
    load_a<D>(a1, A1, r0, kk * 16, lane);
    load_a<D>(a2, A2, r0, kk * 16, lane);
#pragma unroll
    for (int nb = 0; nb < N / 8; nb += 2) {
      uint32_t b1[4], b2[4];
      load_b_rows<D>(b1, B1, nb * 8, kk * 16, lane);
      load_b_rows<D>(b2, B2, nb * 8, kk * 16, lane);
      mma(acc1[nb], a1, b1[0], b1[1]);
      mma(acc1[nb + 1], a1, b1[2], b1[3]);
      mma(acc2[nb], a2, b2[0], b2[1]);
      mma(acc2[nb + 1], a2, b2[2], b2[3]);
    }
  }
}

// Rows [r0, r0 + valid) of a (B, H, N, D) operand into a ROWS-row shared tile, bfloat16,
// zero-filled past `valid` (stale or NaN data there would reach the products).
template <int D, int ROWS, typename T>
__device__ __forceinline__ void stage(bf16* tile, const T* base, int64_t sn, int64_t r0, int64_t valid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks of bfloat16 per row
  for (int x = threadIdx.x; x < ROWS * kChunks; x += blockDim.x) {
    const int r = x / kChunks, c = (x % kChunks) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid) {
      const T* g = base + (r0 + r) * sn + c;
      if constexpr (sizeof(T) == 4) {
        const float4 lo = *reinterpret_cast<const float4*>(g);
        const float4 hi = *reinterpret_cast<const float4*>(g + 4);
        val = make_uint4(pack_bf16(lo.x, lo.y), pack_bf16(lo.z, lo.w), pack_bf16(hi.x, hi.y), pack_bf16(hi.z, hi.w));
      } else {
        val = *reinterpret_cast<const uint4*>(g);
      }
    }
    *reinterpret_cast<uint4*>(tile + r * pitch<D>() + c) = val;
  }
}
template <int D, int ROWS, typename T>
__device__ __forceinline__ void stage(bf16* tile, const Operand<const T>& src, int64_t b, int64_t h, int64_t r0,
                                      int64_t valid) {
  stage<D, ROWS>(tile, src.row(b, h, 0), src.sn, r0, valid);
}

// stage() for bfloat16 tensors through cp.async (no registers, no wait here); float32
// tensors must be rounded on the way, so they take stage() itself.
template <int D, int ROWS, typename T>
__device__ __forceinline__ void stage_any(bf16* tile, const T* base, int64_t sn, int64_t r0, int64_t valid) {
  if constexpr (sizeof(T) == 2) {
    constexpr int kChunks = D / 8;
    for (int x = threadIdx.x; x < ROWS * kChunks; x += blockDim.x) {
      const int r = x / kChunks, c = (x % kChunks) * 8;
      const bool in = r < valid;
      cp_async16(tile + r * pitch<D>() + c, in ? base + (r0 + r) * sn + c : base, in ? 16 : 0);
    }
  } else {
    stage<D, ROWS>(tile, base, sn, r0, valid);
  }
}

template <typename T>
__device__ __forceinline__ void store_pair(T* dst, float x, float y) {
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float2*>(dst) = make_float2(x, y);
  } else {
    *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(x, y);
  }
}

// Dropout's keep bits for a tile, drawn once for the whole block (AttentionArgs' rule: one
// Philox block of 8 x 16 bits per 8 keys of a query row): bit c of the byte for (row r, group
// x) says whether key 8 (g0 + x) + c of query row row0 + r is kept. The block's threads draw
// the ROWS * GROUPS Philox blocks between them and write the bytes row-major, GROUPS per row;
// each thread then reads the bits of its own accumulator elements (row_keep below), so no
// random word is handed between threads. Rows past nq and keys past nk draw bits that are
// never used. Called by every thread of the block; the caller's __syncthreads publishes them.
template <int ROWS, int GROUPS, typename T>
__device__ __forceinline__ void draw_keep(const Params<T, float>& p, int64_t bh, int64_t row0, int64_t g0,
                                          uint8_t* dst) {
  const uint64_t groups = (uint64_t)((p.nk + 7) / 8);
  const uint64_t first = philox_start(p.philox) + (uint64_t)(bh * p.nq + row0) * groups + (uint64_t)g0;
  const uint32_t threshold = p.dropout_threshold;
#pragma unroll 1
  for (int x = threadIdx.x; x < ROWS * GROUPS; x += blockDim.x) {
    const int r = x / GROUPS, gi = x % GROUPS;
    const auto w = dropout_philox(first + (uint64_t)r * groups + (uint64_t)gi, p.philox.seed);
    uint32_t bits = 0;
#pragma unroll
    for (int c = 0; c < 8; ++c) bits |= (uint32_t)(((w[c / 2] >> (16 * (c % 2))) & 0xffffu) >= threshold) << c;
    dst[x] = (uint8_t)bits;
  }
}

// 8- and 4-byte cp.async (src_bytes 0: zeros), for the keep bytes of keep_tile.
__device__ __forceinline__ void cp_async8(void* smem, const void* gmem, int src_bytes) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(a), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, int src_bytes) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(a), "l"(gmem), "r"(src_bytes));
}

// The keep bytes of a tile as draw_keep lays them out, from where they come: the mask drawn
// beforehand (p.keep_bits: one cp.async of GROUPS bytes per row, zeros for rows past nq,
// waited for with the caller's cp_async_wait_all), or drawn here. g0 is a multiple of GROUPS.
// Only the mma.sync kernels (4 or 8 bytes a row) take drawn bits; the TF32 kernels
// (attention_tf32.cuh) call draw_keep.
template <int ROWS, int GROUPS, typename T>
__device__ __forceinline__ void keep_tile(const Params<T, float>& p, int64_t bh, int64_t row0, int64_t g0,
                                          uint8_t* dst) {
  if constexpr (GROUPS == 4 || GROUPS == 8) {
    if (p.keep_bits != nullptr) {
      for (int r = threadIdx.x; r < ROWS; r += blockDim.x) {
        const bool in = row0 + r < p.nq;
        const uint8_t* src = in ? p.keep_bits + (bh * p.nq + row0 + r) * p.keep_ld + g0 : p.keep_bits;
        if constexpr (GROUPS == 8) cp_async8(dst + r * GROUPS, src, in ? 8 : 0);
        else cp_async4(dst + r * GROUPS, src, in ? 4 : 0);
      }
      return;
    }
  }
  draw_keep<ROWS, GROUPS>(p, bh, row0, g0, dst);
}

// The GROUPS bytes of one row of a draw_keep tile (8 keys each, the first in the low byte).
template <int GROUPS>
__device__ __forceinline__ uint64_t row_keep(const uint8_t* row) {
  static_assert(GROUPS == 4 || GROUPS == 8, "tiles of 32 or 64 keys");
  if constexpr (GROUPS == 8) return *reinterpret_cast<const uint64_t*>(row);
  else return *reinterpret_cast<const uint32_t*>(row);
}

// ---- forward -----------------------------------------------------------------------------
//
// A block of 4 warps owns 16 * MT query rows per warp (MT = 2 for d <= 64, 1 for d = 128,
// where the output accumulators fill the registers) and walks the keys in tiles of 64. Per
// tile: S = Q K^T (Q's fragments stay in registers; each K fragment read from shared memory
// serves MT row tiles), masks, the running max and sum per row (a row's 16 values per
// thread, then the 4 threads of a quad), O = O * corr + P V. K and V tiles are double
// buffered: the next tile's copies (cp.async for bfloat16 tensors) are issued before this
// tile's products.
constexpr int kFwdKeys = 64, kMmaThreads = 128;
template <int D>
constexpr int fwd_mtiles() {
  return D <= 64 ? 2 : 1;
}
template <int D>
constexpr int fwd_rows() {
  return 4 * 16 * fwd_mtiles<D>();
}

template <typename T, int D>
__device__ __forceinline__ void forward_mma_body(const Params<T, float>& p) {
  constexpr int MT = fwd_mtiles<D>(), Br = fwd_rows<D>(), Bc = kFwdKeys, P = pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_chunks);
  bf16* KV = Qs + Br * P;  // [2 buffers][K, V][Bc][P]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  if (i0 >= p.nq || bh >= p.batch * p.heads) return;  // past a smaller problem of the group
  const Mask mask = mask_for(p, b);
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  auto Ktile = [&](int buf) { return KV + (2 * buf) * Bc * P; };
  auto Vtile = [&](int buf) { return KV + (2 * buf + 1) * Bc * P; };

  // Dropout's keep bits per key tile, double-buffered like K and V: [2][Br][Bc / 8].
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(KV + 4 * Bc * P);
  const bool dropout = p.dropout_p > 0;

  const T* kbase = p.k.row(b, h, 0);
  const T* vbase = p.v.row(b, h, 0);
  stage_any<D, Br>(Qs, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
  // Dropout's bytes for a tile: copies of the mask drawn beforehand join the tile's cp.async
  // group (issued before its commit, so the wait before the tile covers them); drawing them
  // here runs after the commit, under the copies.
  const bool copied_keep = dropout && p.keep_bits != nullptr, drawn_keep = dropout && p.keep_bits == nullptr;
  if (kend > 0) {
    stage_any<D, Bc>(Ktile(0), kbase, p.k.sn, 0, kend);
    stage_any<D, Bc>(Vtile(0), vbase, p.v.sn, 0, kend);
    if (copied_keep) keep_tile<Br, Bc / 8>(p, bh, i0, 0, keep_all);
  }
  cp_async_commit();
  if (drawn_keep && kend > 0) keep_tile<Br, Bc / 8>(p, bh, i0, 0, keep_all);

  int rows[MT][2];  // this thread's rows: per-head lengths fit in 32 bits
  bool dead[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[mt][r] = (int)i0 + (warp * MT + mt) * 16 + g + 8 * r;
      dead[mt][r] = rows[mt][r] < p.nq && mask.dead(rows[mt][r]);
    }
  const bool any_dead = mask.first > i0 || mask.first >= mask.nk;  // some row of the block may be dead
  const float sl2 = (float)p.scale * kLog2e;
  float o[MT][D / 8][4] = {};
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0;
  uint32_t qf[MT][D / 16][4];

  for (int64_t j0 = 0, it = 0; j0 < kend; j0 += Bc, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    __syncthreads();  // tile `it` has landed for everyone; the other buffer's readers are done
    if (it == 0) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) load_a<D>(qf[mt][kk], Qs, (warp * MT + mt) * 16, kk * 16, lane);
    }
    if (j0 + Bc < kend) {
      stage_any<D, Bc>(Ktile(buf ^ 1), kbase, p.k.sn, j0 + Bc, kend - j0 - Bc);
      stage_any<D, Bc>(Vtile(buf ^ 1), vbase, p.v.sn, j0 + Bc, kend - j0 - Bc);
      if (copied_keep) keep_tile<Br, Bc / 8>(p, bh, i0, (j0 + Bc) / 8, keep_all + (buf ^ 1) * Br * (Bc / 8));
    }
    cp_async_commit();
    if (drawn_keep && j0 + Bc < kend) keep_tile<Br, Bc / 8>(p, bh, i0, (j0 + Bc) / 8, keep_all + (buf ^ 1) * Br * (Bc / 8));
    const bf16* Ks = Ktile(buf);
    const bf16* Vs = Vtile(buf);
    float s[MT][Bc / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nb = 0; nb < Bc / 8; nb += 2) {
        uint32_t kb[4];
        load_b_rows<D>(kb, Ks, nb * 8, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma(s[mt][nb], qf[mt][kk], kb[0], kb[1]);
          mma(s[mt][nb + 1], qf[mt][kk], kb[2], kb[3]);
        }
      }
    }
    // Masks, in three uniform steps that only the tiles needing them take (scores stay
    // unscaled: the scale is folded into the exponent below, one multiply-add per element):
    //  - keys past the end or padded: a per-column bias of 0 or -inf, added to the column;
    //  - causal, on tiles that cross the diagonal of this warp's rows: j > i gives -inf;
    //  - dead rows (rare): every existing key scores 0.
    if (j0 + Bc > p.nk || mask.needs_keep(j0, Bc)) {
      float bias[Bc / 4];  // column 2 nb + c: key j0 + nb * 8 + 2 t + c
#pragma unroll
      for (int y = 0; y < Bc / 4; ++y) {
        const int j = (int)j0 + (y / 2) * 8 + 2 * t + y % 2;
        bias[y] = j < p.nk && (mask.keep == nullptr || mask.keep[j] != 0) ? 0.0f : -INFINITY;
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
          for (int x = 0; x < 4; ++x) s[mt][nb][x] += bias[2 * nb + x % 2];
    }
    if (mask.causal && j0 + Bc - 1 > i0 + warp * MT * 16) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
          for (int x = 0; x < 4; ++x)
            if ((int)j0 + nb * 8 + 2 * t + x % 2 > rows[mt][x / 2]) s[mt][nb][x] = -INFINITY;
    }
    if (any_dead) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
          for (int x = 0; x < 4; ++x)
            if (dead[mt][x / 2] && (int)j0 + nb * 8 + 2 * t + x % 2 < p.nk) s[mt][nb][x] = 0.0f;
    }
    // Online softmax, per row (elements 2 r, 2 r + 1 of every n-block).
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < Bc / 8; ++nb) mx = fmaxf(mx, fmaxf(s[mt][nb][2 * r], s[mt][nb][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[mt][r], mx);
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // nothing allowed yet: keep NaN out
        const float corr = fast_exp2((m[mt][r] - base) * sl2);
        const float shift = -base * sl2;
        m[mt][r] = m_new;
        float sum = 0;
#pragma unroll
        for (int nb = 0; nb < Bc / 8; ++nb) {
          s[mt][nb][2 * r] = fast_exp2(fmaf(s[mt][nb][2 * r], sl2, shift));
          s[mt][nb][2 * r + 1] = fast_exp2(fmaf(s[mt][nb][2 * r + 1], sl2, shift));
          sum += s[mt][nb][2 * r] + s[mt][nb][2 * r + 1];
        }
        l[mt][r] = l[mt][r] * corr + sum;
#pragma unroll
        for (int db = 0; db < D / 8; ++db) o[mt][db][2 * r] *= corr, o[mt][db][2 * r + 1] *= corr;
      }
    if (dropout) {
      const uint8_t* keep = keep_all + buf * Br * (Bc / 8);
      const float ds = (float)p.dropout_scale;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          // This thread's keys in n-block nb are 8 nb + 2 t + c: bits 8 nb + c after the shift.
          const uint64_t bits = row_keep<Bc / 8>(keep + ((warp * MT + mt) * 16 + g + 8 * r) * (Bc / 8)) >> (2 * t);
#pragma unroll
          for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
            for (int c = 0; c < 2; ++c) s[mt][nb][2 * r + c] *= (bits >> (8 * nb + c)) & 1 ? ds : 0.0f;
        }
    }
    // O += P V: P's accumulators become A operands, V's B operands come transposed.
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pack_a(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
      }
#pragma unroll
      for (int db = 0; db < D / 8; db += 2) {
        uint32_t vb[4];
        load_b_cols<D>(vb, Vs, kk * 16, db * 8, lane);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma(o[mt][db], a[mt], vb[0], vb[1]);
          mma(o[mt][db + 1], a[mt], vb[2], vb[3]);
        }
      }
    }
  }
  cp_async_wait_all();  // nothing may be in flight when the block exits (kend == 0: Q's copy)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = l[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int i = rows[mt][r];
      if (i >= p.nq) continue;
      const float inv = sum > 0 ? 1.0f / sum : 0.0f;
      T* out = p.out.row(b, h, i);
#pragma unroll
      for (int db = 0; db < D / 8; ++db)
        store_pair(out + db * 8 + 2 * t, o[mt][db][2 * r] * inv, o[mt][db][2 * r + 1] * inv);
      if (t == 0)
        p.lse[bh * p.nq + i] = sum > 0 ? (m[mt][r] == -INFINITY ? 0.0f : m[mt][r]) * (float)p.scale + logf(sum) : -INFINITY;
    }
}

// ---- backward ----------------------------------------------------------------------------
//
// Every pass recomputes P = exp(S - lse) from the saved lse. The key pass: a block owns 64
// keys (16 per warp) and walks the query tiles; per tile it forms S^T = K Q^T and
// dP^T = V dO^T, then dV += (P o drop)^T dO and dK += dS^T Q, with dS = P o (dP o drop - D)
// and D_i = dO_i . O_i.
//
// dQ = dS K sums over every key block, which is another block's tile. Two ways, both
// deterministic (no atomics):
//  - two passes: a second kernel owns 64 queries and walks the keys, forming S and dP again
//    (and drawing dropout's bits again), then dQ += dS K;
//  - dS out (DS_OUT): the key pass writes its dS^T tiles, rounded to bfloat16 as the
//    products use them, to a (B H, nk, ld) scratch, and grad_q_from_ds_kernel multiplies
//    dQ = dS K (one product of N x N x d, reading dS once). That trades the second pass's 3
//    products and its dropout draws for N^2 bytes written and read once; the library takes
//    it while the scratch stays small (attention.cu).
constexpr int kBwdOwn = 64;
template <int D>
constexpr int bwd_walk() {
  return D <= 64 ? 64 : 32;  // rows of the walked tile: fewer at D = 128 to fit the registers
}

template <typename T, int D, bool DS_OUT>
__device__ __forceinline__ void grad_kv_mma_body(const Params<T, float>& p) {
  constexpr int Bc = kBwdOwn, Br = bwd_walk<D>(), P = pitch<D>();
  constexpr int PS = Br + 8;  // pitch of the dS^T tile (DS_OUT)
  extern __shared__ uint4 smem_chunks[];
  bf16* Ks = reinterpret_cast<bf16*>(smem_chunks);
  bf16* Vs = Ks + Bc * P;
  // The walked query tiles, double-buffered: tile it + 1 is copied (cp.async for bfloat16
  // tensors) while tile it is multiplied.
  bf16* Qs_all = Vs + Bc * P;             // [2][Br][P]
  bf16* Gs_all = Qs_all + 2 * Br * P;     // [2][Br][P]
  bf16* dSs = Gs_all + 2 * Br * P;        // [Bc][PS]: dS^T of the tile, DS_OUT only
  float* lse_all = reinterpret_cast<float*>(dSs + (DS_OUT ? Bc * PS : 0));  // [2][Br], in log2 units
  float* D_all = lse_all + 2 * Br;        // [2][Br]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(D_all + 2 * Br);  // [2][Br][Bc / 8]: draw_keep's bytes
  const bool dropout = p.dropout_p > 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int nQ = (int)((p.nq + Br - 1) / Br);
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t j0 = (int64_t)blockIdx.x * Bc;
  if (j0 >= p.nk || bh >= p.batch * p.heads) return;  // past a smaller problem of the group
  const Mask mask = mask_for(p, b);
  stage<D, Bc>(Ks, p.k, b, h, j0, p.nk - j0);
  stage<D, Bc>(Vs, p.v, b, h, j0, p.nk - j0);
  const int keys[2] = {(int)j0 + warp * 16 + g, (int)j0 + warp * 16 + g + 8};
  float key_bias[2];  // 0 for a real key, -inf for one past the end or padded: its P is 0
#pragma unroll
  for (int r = 0; r < 2; ++r)
    key_bias[r] = keys[r] < p.nk && (mask.keep == nullptr || mask.keep[keys[r]] != 0) ? 0.0f : -INFINITY;
  const bool any_dead = mask.first > 0 && (mask.causal || mask.first >= mask.nk);
  const float sl2 = (float)p.scale * kLog2e;
  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  // Causal without dead rows: queries before the block's first key see none of its keys (their
  // dS^T entries, DS_OUT, stay zero: the caller clears the scratch).
  const int first_tile = mask.causal && mask.first == 0 ? (int)(j0 / Br) : 0;
  auto load_walk = [&](int buf, int64_t i0) {
    stage_any<D, Br>(Qs_all + buf * Br * P, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
    stage_any<D, Br>(Gs_all + buf * Br * P, p.grad_out.row(b, h, 0), p.grad_out.sn, i0, p.nq - i0);
    for (int x = threadIdx.x; x < Br; x += blockDim.x) {
      const bool in = i0 + x < p.nq;
      lse_all[buf * Br + x] = in ? p.lse[bh * p.nq + i0 + x] * kLog2e : INFINITY;
      D_all[buf * Br + x] = in ? p.rowdot[bh * p.nq + i0 + x] : 0.0f;
    }
    if (dropout) keep_tile<Br, Bc / 8>(p, bh, i0, j0 / 8, keep_all + buf * Br * (Bc / 8));
  };
  if (first_tile < nQ) load_walk(0, (int64_t)first_tile * Br);
  cp_async_commit();
  for (int tile = first_tile, it = 0; tile < nQ; ++tile, ++it) {
    const int buf = it % 2;
    const int64_t i0 = (int64_t)tile * Br;
    cp_async_wait_all();
    __syncthreads();  // tile `it` has landed for everyone; the other buffer's readers are done
    if (tile + 1 < nQ) load_walk(buf ^ 1, i0 + Br);
    cp_async_commit();
    const bf16* Qs = Qs_all + buf * Br * P;
    const bf16* Gs = Gs_all + buf * Br * P;
    const float* lse_s = lse_all + buf * Br;
    const float* D_s = D_all + buf * Br;
    float st[Br / 8][4] = {}, dpt[Br / 8][4] = {};
    two_products<D, Br>(st, dpt, Ks, Vs, warp * 16, Qs, Gs, lane);  // S^T = K Q^T, dP^T = V dO^T
    // Element x of n-block nb: key keys[x / 2], query i0 + nb * 8 + 2 t + x % 2. Queries past
    // the end have lse = +inf (P = 0); masks are uniform steps taken only where needed.
    // Dropout's keep bits, bit 4 nb + x: query column nb * 8 + 2 t + c has the byte pair of
    // this warp's two key groups 2 warp (keys[0]) and 2 warp + 1 (keys[1]), bit g of each.
    uint64_t kept = ~0ull;
    if (dropout) {
      const uint8_t* keep = keep_all + buf * Br * (Bc / 8) + 2 * warp;
      kept = 0;
#pragma unroll
      for (int nb = 0; nb < Br / 8; ++nb)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const uint32_t pair = *reinterpret_cast<const uint16_t*>(keep + (nb * 8 + 2 * t + c) * (Bc / 8)) >> g;
          kept |= (uint64_t)(pair & 1) << (4 * nb + c) | (uint64_t)((pair >> 8) & 1) << (4 * nb + 2 + c);
        }
    }
    const float dscale = (float)p.dropout_scale;
    const bool diagonal = mask.causal && (int)j0 + Bc - 1 > (int)i0;  // some key j > some query i
#pragma unroll
    for (int nb = 0; nb < Br / 8; ++nb) {
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
      for (int nb = 0; nb < Br / 8; ++nb)
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const int r = x / 2, i = (int)i0 + nb * 8 + 2 * t + x % 2;
          if (i < p.nq && keys[r] < p.nk && mask.dead(i)) {
            const float drop = (kept >> (4 * nb + x)) & 1 ? dscale : 0.0f;
            st[nb][x] = fast_exp2(-lse_s[nb * 8 + 2 * t + x % 2]) * drop;
            dpt[nb][x] = 0.0f;
          }
        }
    }
    // dV += W^T dO and dK += dS^T Q: the k dim is the query tile.
#pragma unroll
    for (int kk = 0; kk < Br / 16; ++kk) {
      uint32_t wa[4], da[4];
      pack_a(wa, st[2 * kk], st[2 * kk + 1]);
      pack_a(da, dpt[2 * kk], dpt[2 * kk + 1]);
      if constexpr (DS_OUT) {  // dS^T, as the products round it, for the caller's dQ product
        bf16* row0 = dSs + (warp * 16 + g) * PS + kk * 16 + 2 * t;
        *reinterpret_cast<uint32_t*>(row0) = da[0];
        *reinterpret_cast<uint32_t*>(row0 + 8 * PS) = da[1];
        *reinterpret_cast<uint32_t*>(row0 + 8) = da[2];
        *reinterpret_cast<uint32_t*>(row0 + 8 * PS + 8) = da[3];
      }
#pragma unroll
      for (int db = 0; db < D / 8; db += 2) {
        uint32_t gb[4], qb[4];
        load_b_cols<D>(gb, Gs, kk * 16, db * 8, lane);
        load_b_cols<D>(qb, Qs, kk * 16, db * 8, lane);
        mma(dv[db], wa, gb[0], gb[1]);
        mma(dv[db + 1], wa, gb[2], gb[3]);
        mma(dk[db], da, qb[0], qb[1]);
        mma(dk[db + 1], da, qb[2], qb[3]);
      }
    }
    if constexpr (DS_OUT) {
      // The tile's dS^T rows (this block's keys) to the scratch, 16 bytes at a time. Query
      // columns past nq hold zeros (P is 0 there) and stay within the row's ld (nq rounded
      // up to 8); keys past nk are not written.
      __syncthreads();  // the whole dS^T tile is in shared memory
      constexpr int kChunks = Br / 8;
      for (int x = threadIdx.x; x < Bc * kChunks; x += blockDim.x) {
        const int r = x / kChunks, c = (x % kChunks) * 8;
        if (j0 + r < p.nk && i0 + c < p.nq)
          *reinterpret_cast<uint4*>(p.ds + (bh * p.nk + j0 + r) * p.ds_ld + i0 + c) =
              *reinterpret_cast<const uint4*>(dSs + r * PS + c);
      }
    }
  }
  const float scale = (float)p.scale;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (keys[r] >= p.nk) continue;
    T* gk = p.grad_k.row(b, h, keys[r]);
    T* gv = p.grad_v.row(b, h, keys[r]);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) {
      store_pair(gk + db * 8 + 2 * t, dk[db][2 * r] * scale, dk[db][2 * r + 1] * scale);
      store_pair(gv + db * 8 + 2 * t, dv[db][2 * r], dv[db][2 * r + 1]);
    }
  }
}

template <typename T, int D>
__device__ __forceinline__ void grad_q_mma_body(const Params<T, float>& p) {
  constexpr int Br = kBwdOwn, Bc = bwd_walk<D>(), P = pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_chunks);
  bf16* Gs = Qs + Br * P;
  // The walked key and value tiles, double-buffered as in grad_kv_mma_kernel.
  bf16* Ks_all = Gs + Br * P;           // [2][Bc][P]
  bf16* Vs_all = Ks_all + 2 * Bc * P;   // [2][Bc][P]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(Vs_all + 2 * Bc * P);  // [2][Br][Bc / 8]: draw_keep's bytes
  const bool dropout = p.dropout_p > 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  if (i0 >= p.nq || bh >= p.batch * p.heads) return;  // past a smaller problem of the group
  const Mask mask = mask_for(p, b);
  stage<D, Br>(Qs, p.q, b, h, i0, p.nq - i0);
  stage<D, Br>(Gs, p.grad_out, b, h, i0, p.nq - i0);
  const int rows[2] = {(int)i0 + warp * 16 + g, (int)i0 + warp * 16 + g + 8};
  float lse[2], Dr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const bool in = rows[r] < p.nq;
    // A row past the end or dead passes no gradient to q: lse = +inf makes its P 0.
    lse[r] = in && !mask.dead(rows[r]) ? p.lse[bh * p.nq + rows[r]] * kLog2e : INFINITY;
    Dr[r] = in ? p.rowdot[bh * p.nq + rows[r]] : 0.0f;
  }
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  const float sl2 = (float)p.scale * kLog2e;
  float dq[D / 8][4] = {};
  auto load_walk = [&](int buf, int64_t j0) {
    stage_any<D, Bc>(Ks_all + buf * Bc * P, p.k.row(b, h, 0), p.k.sn, j0, kend - j0);
    stage_any<D, Bc>(Vs_all + buf * Bc * P, p.v.row(b, h, 0), p.v.sn, j0, kend - j0);
    if (dropout) keep_tile<Br, Bc / 8>(p, bh, i0, j0 / 8, keep_all + buf * Br * (Bc / 8));
  };
  if (kend > 0) load_walk(0, 0);
  cp_async_commit();
  for (int64_t j0 = 0, it = 0; j0 < kend; j0 += Bc, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    __syncthreads();  // tile `it` has landed for everyone; the other buffer's readers are done
    if (j0 + Bc < kend) load_walk(buf ^ 1, j0 + Bc);
    cp_async_commit();
    const bf16* Ks = Ks_all + buf * Bc * P;
    const bf16* Vs = Vs_all + buf * Bc * P;
    float s[Bc / 8][4] = {}, dp[Bc / 8][4] = {};
    two_products<D, Bc>(s, dp, Qs, Gs, warp * 16, Ks, Vs, lane);  // S = Q K^T, dP = dO V^T
    // Element x of n-block nb: query rows[x / 2], key j0 + nb * 8 + 2 t + x % 2.
    float bias[Bc / 4];  // column 2 nb + c: 0 for a real key, -inf past the end or padded
    const bool any_masked = j0 + Bc > p.nk || mask.needs_keep(j0, Bc);
#pragma unroll
    for (int y = 0; y < Bc / 4; ++y) {
      const int j = (int)j0 + (y / 2) * 8 + 2 * t + y % 2;
      bias[y] = !any_masked || (j < p.nk && (mask.keep == nullptr || mask.keep[j] != 0)) ? 0.0f : -INFINITY;
    }
    uint64_t bits[2] = {~0ull, ~0ull};  // dropout's keep bits of rows[r]: key 8 nb + 2 t + c at bit 8 nb + c
    if (dropout) {
      const uint8_t* keep = keep_all + buf * Br * (Bc / 8);
#pragma unroll
      for (int r = 0; r < 2; ++r) bits[r] = row_keep<Bc / 8>(keep + (warp * 16 + g + 8 * r) * (Bc / 8)) >> (2 * t);
    }
    const float dscale = (float)p.dropout_scale;
    const bool diagonal = mask.causal && (int)j0 + Bc - 1 > (int)i0 + warp * 16;
#pragma unroll
    for (int nb = 0; nb < Bc / 8; ++nb) {
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const int r = x / 2, c = x % 2;
        float l2 = fmaf(s[nb][x], sl2, bias[2 * nb + c] - lse[r]);
        if (diagonal && (int)j0 + nb * 8 + 2 * t + c > rows[r]) l2 = -INFINITY;
        const float drop = (bits[r] >> (8 * nb + c)) & 1 ? dscale : 0.0f;
        s[nb][x] = fast_exp2(l2) * fmaf(dp[nb][x], drop, -Dr[r]);
      }
    }
    // dQ += dS K: the k dim is the key tile, K's rows are its k rows.
#pragma unroll
    for (int kk = 0; kk < Bc / 16; ++kk) {
      uint32_t a[4];
      pack_a(a, s[2 * kk], s[2 * kk + 1]);
      mma_rows_of<D>(dq, a, Ks, kk * 16, lane);
    }
  }
  const float scale = (float)p.scale;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (rows[r] >= p.nq) continue;
    T* out = p.grad_q.row(b, h, rows[r]);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) store_pair(out + db * 8 + 2 * t, dq[db][2 * r] * scale, dq[db][2 * r + 1] * scale);
  }
}

// dQ = scale dS K from the key pass's dS^T scratch (DS_OUT): a block owns 64 queries (16 rows
// per warp) and walks the keys in tiles of 64, the dS^T and K tiles double-buffered; A comes
// from the dS^T tile by transposing loads. The sum runs over the key tiles in order, so the
// result is the same bits every run. (cuBLAS picked a 32 x 32 WMMA kernel for this product,
// at a quarter of the bandwidth this reaches: bench/kernels/NOTES.md, v12.)
constexpr int kDqRows = 64, kDqKeys = 64;

template <typename T, int D>
__device__ __forceinline__ void grad_q_from_ds_body(const Params<T, float>& p) {
  constexpr int PS = kDqRows + 8, P = pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  bf16* St_all = reinterpret_cast<bf16*>(smem_chunks);  // [2][kDqKeys][PS]: dS^T, keys by queries
  bf16* Ks_all = St_all + 2 * kDqKeys * PS;              // [2][kDqKeys][P]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * kDqRows;
  if (i0 >= p.nq || bh >= p.batch * p.heads) return;  // past a smaller problem of the group
  const bf16* ds = p.ds + bh * p.nk * p.ds_ld;
  auto load = [&](int buf, int64_t j0) {
    // dS^T rows j0.. (keys), columns i0.. (queries); past nk or nq: zeros.
    constexpr int kChunks = kDqRows / 8;
    bf16* st = St_all + buf * kDqKeys * PS;
    for (int x = threadIdx.x; x < kDqKeys * kChunks; x += blockDim.x) {
      const int r = x / kChunks, c = (x % kChunks) * 8;
      const bool in = j0 + r < p.nk && i0 + c < p.nq;
      cp_async16(st + r * PS + c, in ? ds + (j0 + r) * p.ds_ld + i0 + c : ds, in ? 16 : 0);
    }
    stage_any<D, kDqKeys>(Ks_all + buf * kDqKeys * P, p.k.row(b, h, 0), p.k.sn, j0, p.nk - j0);
  };
  float dq[D / 8][4] = {};
  load(0, 0);
  cp_async_commit();
  for (int64_t j0 = 0, it = 0; j0 < p.nk; j0 += kDqKeys, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    __syncthreads();  // tile `it` has landed; the other buffer's readers are done
    if (j0 + kDqKeys < p.nk) load(buf ^ 1, j0 + kDqKeys);
    cp_async_commit();
    const bf16* St = St_all + buf * kDqKeys * PS;
    const bf16* Ks = Ks_all + buf * kDqKeys * P;
#pragma unroll
    for (int kk = 0; kk < kDqKeys / 16; ++kk) {
      uint32_t a[4];
      load_a_trans<PS>(a, St, kk * 16, warp * 16, lane);
      mma_rows_of<D>(dq, a, Ks, kk * 16, lane);
    }
  }
  const float scale = (float)p.scale;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = i0 + warp * 16 + g + 8 * r;
    if (row >= p.nq) continue;
    T* out = p.grad_q.row(b, h, row);
#pragma unroll
    for (int db = 0; db < D / 8; ++db) store_pair(out + db * 8 + 2 * t, dq[db][2 * r] * scale, dq[db][2 * r + 1] * scale);
  }
}

// The kernels: one body per problem of the group (attention_common.cuh's for_problem).
template <typename T, int D, int N>
__global__ void __launch_bounds__(kMmaThreads) forward_mma_kernel(const __grid_constant__ Group<Params<T, float>, N> grp) {
  for_problem(grp, blockIdx.z, [](const Params<T, float>& p) { forward_mma_body<T, D>(p); });
}

template <typename T, int D, bool DS_OUT, int N>
__global__ void __launch_bounds__(kMmaThreads) grad_kv_mma_kernel(const __grid_constant__ Group<Params<T, float>, N> grp) {
  for_problem(grp, blockIdx.z, [](const Params<T, float>& p) { grad_kv_mma_body<T, D, DS_OUT>(p); });
}

template <typename T, int D, int N>
__global__ void __launch_bounds__(kMmaThreads) grad_q_mma_kernel(const __grid_constant__ Group<Params<T, float>, N> grp) {
  for_problem(grp, blockIdx.z, [](const Params<T, float>& p) { grad_q_mma_body<T, D>(p); });
}

template <typename T, int D, int N>
__global__ void __launch_bounds__(kMmaThreads) grad_q_from_ds_kernel(const __grid_constant__ Group<Params<T, float>, N> grp) {
  for_problem(grp, blockIdx.z, [](const Params<T, float>& p) { grad_q_from_ds_body<T, D>(p); });
}

// ---- host side ---------------------------------------------------------------------------

// Whether the tensor-core kernels take this problem: head dim, and 16-byte aligned rows.
template <typename T>
bool mma_supported(const Params<T, float>& p) {
  if (p.dim != 32 && p.dim != 64 && p.dim != 128) return false;
  constexpr int64_t kAlign = 16 / sizeof(T);
  auto aligned = [&](const auto& op) {
    return ((uintptr_t)op.ptr % 16) == 0 && op.sb % kAlign == 0 && op.sh % kAlign == 0 && op.sn % kAlign == 0;
  };
  bool ok = aligned(p.q) && aligned(p.k) && aligned(p.v) && aligned(p.out);
  if (p.grad_out.ptr) ok = ok && aligned(p.grad_out) && aligned(p.grad_q) && aligned(p.grad_k) && aligned(p.grad_v);
  return ok;
}

template <typename K>
inline cudaError_t launch_mma(K kernel, dim3 grid, size_t smem, cudaStream_t stream, const auto& grp) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaSuccess;
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, kMmaThreads, smem, stream>>>(grp);
  return cudaGetLastError();
}

template <typename T, typename F>
inline cudaError_t dispatch_head_dim(int64_t d, F&& f) {
  if (d == 32) return f(std::integral_constant<int, 32>{});
  if (d == 64) return f(std::integral_constant<int, 64>{});
  return f(std::integral_constant<int, 128>{});
}

// The grid of a group: `tiles(p)` blocks in x for the largest problem, its heads in y, one z
// per problem. Every problem of a group has one head dim (the kernels' template argument).
template <typename P, int N, typename F>
dim3 group_grid(const Group<P, N>& g, F&& tiles) {
  int64_t x = 0, y = 0;
  for (int i = 0; i < g.count; ++i) {
    x = std::max<int64_t>(x, tiles(g.p[i]));
    y = std::max<int64_t>(y, g.p[i].batch * g.p[i].heads);
  }
  return dim3((unsigned)x, (unsigned)y, (unsigned)g.count);
}

template <typename T, int N>
cudaError_t mma_forward(const Group<Params<T, float>, N>& g, cudaStream_t stream) {
  return dispatch_head_dim<T>(g.p[0].dim, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    const dim3 grid = group_grid(g, [](const auto& p) { return (p.nq + fwd_rows<D>() - 1) / fwd_rows<D>(); });
    const size_t smem = (size_t)(fwd_rows<D>() + 4 * kFwdKeys) * pitch<D>() * sizeof(bf16) +
                        2 * fwd_rows<D>() * (kFwdKeys / 8);  // the keep bytes
    return launch_mma(forward_mma_kernel<T, D, N>, grid, smem, stream, g);
  });
}
template <typename T>
cudaError_t mma_forward(const Params<T, float>& p, cudaStream_t stream) {
  return mma_forward(group_of(p), stream);
}

// Params::keep_ld for nk keys: the forward's 64-key tiles, 8 bytes each.
inline int64_t keep_ld(int64_t nk) { return (nk + kFwdKeys - 1) / kFwdKeys * (kFwdKeys / 8); }

// Dropout's whole mask (Params::keep_bits) for p.batch * p.heads * p.nq rows: byte x of row
// (bh, i) from Philox block (bh nq + i) ceil(nk / 8) + x, as draw_keep draws it; bytes past
// the row's ceil(nk / 8) are 0. A thread writes 8 bytes. Drawn here at full occupancy, the
// Philox work no longer sits inside the attention kernels (2 blocks of 4 warps per SM, where
// its dependent chains stalled the tile loop), and the backward reads the same bytes.
// blockIdx.y: the problem of the group; each writes its own p.keep_bits.
template <typename T, typename L>
__device__ __forceinline__ void dropout_bits_body(const Params<T, L>& p) {
  uint8_t* bits = const_cast<uint8_t*>(p.keep_bits);
  const int64_t per_row = p.keep_ld / 8, groups = (p.nk + 7) / 8, words = p.batch * p.heads * p.nq * per_row;
  const uint64_t start = philox_start(p.philox);
  for (int64_t w = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; w < words; w += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = words <= (int64_t)UINT32_MAX ? (int64_t)((uint32_t)w / (uint32_t)per_row) : w / per_row;
    const int64_t g0 = (w - row * per_row) * 8;
    // Eight independent Philox chains per thread (the bytes past the row's groups drawn too and
    // cleared after): their multiplies interleave instead of waiting on one another.
    const uint64_t first = start + (uint64_t)row * (uint64_t)groups + (uint64_t)g0;
    uint64_t word = 0;
#pragma unroll
    for (int x = 0; x < 8; ++x) {
      const auto r = dropout_philox(first + (uint64_t)x, p.philox.seed);
      uint32_t b = 0;
#pragma unroll
      for (int c = 0; c < 8; ++c) b |= (uint32_t)(((r[c / 2] >> (16 * (c % 2))) & 0xffffu) >= p.dropout_threshold) << c;
      word |= (uint64_t)b << (8 * x);
    }
    if (g0 + 8 > groups) word &= g0 >= groups ? 0 : ~0ull >> (8 * (g0 + 8 - groups));
    reinterpret_cast<uint64_t*>(bits)[w] = word;
  }
}

template <typename T, typename L, int N>
__global__ void dropout_bits_kernel(const __grid_constant__ Group<Params<T, L>, N> grp) {
  for_problem(grp, blockIdx.y, [](const Params<T, L>& p) { dropout_bits_body(p); });
}

// Draws every problem's mask into bits[i] (8-byte aligned, p.batch p.heads p.nq
// keep_ld(p.nk) bytes) in one launch and points the problem at it.
template <typename T, typename L, int N>
cudaError_t draw_dropout_bits(Group<Params<T, L>, N>& g, uint8_t* const* bits, cudaStream_t stream) {
  int64_t most = 0;
  for (int i = 0; i < g.count; ++i) {
    Params<T, L>& p = g.p[i];
    p.keep_ld = keep_ld(p.nk);
    p.keep_bits = bits[i];
    most = std::max(most, p.batch * p.heads * p.nq * (p.keep_ld / 8));
  }
  if (most > 0) {
    const int64_t blocks = std::min<int64_t>((most + 255) / 256, 132 * 32);
    dropout_bits_kernel<<<dim3((unsigned)blocks, (unsigned)g.count), 256, 0, stream>>>(g);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}
template <typename T, typename L>
cudaError_t draw_dropout_bits(Params<T, L>& p, uint8_t* bits, cudaStream_t stream) {
  Group<Params<T, L>, 1> g = group_of(p);
  const cudaError_t e = draw_dropout_bits(g, &bits, stream);
  p = g.p[0];
  return e;
}

// The row pitch of DS_OUT's scratch (bfloat16 elements): nq rounded up to 8, so that rows
// start 16-byte aligned.
inline int64_t ds_pitch(int64_t nq) { return (nq + 7) / 8 * 8; }

// Every p.rowdot must point to batch * heads * nq floats of scratch. With p.ds (bfloat16,
// batch * heads * nk rows of ds_pitch(nq), zero where a causal block skips) the key pass
// writes dS^T there and grad_q_from_ds_kernel forms dQ = scale dS K from it; otherwise the two
// passes. Every problem of a group has p.ds, or none has.
template <typename T, int N>
cudaError_t mma_backward(const Group<Params<T, float>, N>& g, cudaStream_t stream) {
  const dim3 rows_grid = group_grid(g, [](const auto& p) { return (p.batch * p.heads * p.nq + 31) / 32; });
  if (rows_grid.x > 0) {
    rowdot_vec_kernel<T, float, N><<<dim3(rows_grid.x, rows_grid.z), 256, 0, stream>>>(g);  // aligned rows (mma_supported)
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return dispatch_head_dim<T>(g.p[0].dim, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    // Own tiles once, walked tiles twice (double-buffered).
    const size_t smem_kv = (size_t)(2 * kBwdOwn + 4 * bwd_walk<D>()) * pitch<D>() * sizeof(bf16) +
                           4 * bwd_walk<D>() * sizeof(float) + 2 * bwd_walk<D>() * (kBwdOwn / 8);
    const size_t smem_q = (size_t)(2 * kBwdOwn + 4 * bwd_walk<D>()) * pitch<D>() * sizeof(bf16) +
                          2 * kBwdOwn * (bwd_walk<D>() / 8);
    const dim3 grid_kv = group_grid(g, [](const auto& p) { return (p.nk + kBwdOwn - 1) / kBwdOwn; });
    if (g.p[0].ds != nullptr) {
      const size_t smem_ds = smem_kv + (size_t)kBwdOwn * (bwd_walk<D>() + 8) * sizeof(bf16);  // + dS^T
      cudaError_t e = launch_mma(grad_kv_mma_kernel<T, D, true, N>, grid_kv, smem_ds, stream, g);
      if (e != cudaSuccess) return e;
      const size_t smem_dq = (size_t)2 * kDqKeys * ((kDqRows + 8) + pitch<D>()) * sizeof(bf16);
      return launch_mma(grad_q_from_ds_kernel<T, D, N>,
                        group_grid(g, [](const auto& p) { return (p.nq + kDqRows - 1) / kDqRows; }), smem_dq, stream, g);
    }
    cudaError_t e = launch_mma(grad_kv_mma_kernel<T, D, false, N>, grid_kv, smem_kv, stream, g);
    if (e != cudaSuccess) return e;
    return launch_mma(grad_q_mma_kernel<T, D, N>, group_grid(g, [](const auto& p) { return (p.nq + kBwdOwn - 1) / kBwdOwn; }),
                      smem_q, stream, g);
  });
}
template <typename T>
cudaError_t mma_backward(const Params<T, float>& p, cudaStream_t stream) {
  return mma_backward(group_of(p), stream);
}

}  // namespace wavspa::cuda::attn

// Float32 attention on tensor cores: the flash-attention kernels of attention_mma.cuh for
// float32 tensors, with their products on mma.sync.m16n8k8 in TF32 (10 bits of mantissa).
// Included by backends/cuda/attention.cu and by the standalone bench bench/kernels/attention.cu.
//
// PASSES = 3 keeps float32 accuracy ("3xTF32"): each operand x splits into hi = tf32(x) and
// lo = tf32(x - hi), and a b becomes lo_a hi_b + hi_a lo_b + hi_a hi_b (small terms first);
// the dropped lo lo term is about 2^-22 of the product, below float32's own rounding of a
// 64-term sum. That is MatmulPrecision::Float32. PASSES = 1 is plain TF32, the trade
// MatmulPrecision::TF32 asks for (a few 1e-4 relative).
//
// Fragment layouts of mma.m16n8k8.tf32 (g = lane / 4, t = lane % 4), as the PTX manual gives them:
//   A 16x8: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
//   B 8x8:  b0 (k t, n g), b1 (k t+4, n g)
//   C 16x8: c0, c1 (g, 2t..2t+1), c2, c3 (g+8, 2t..2t+1)
// An accumulator tile becomes the A operand of the next product (P V, dS K, ...) without a
// shuffle by permuting its k order: the thread that holds columns 2t and 2t+1 gives them as
// k = t and k = t + 4, and the B operand reads its k rows in the same order (rows 2t and
// 2t+1 of the 8). A sum over k does not care about the order of its terms' indices.
//
// Shared tiles are row-major float32 with D + 4 elements per row (D + 4 is 4 modulo 32): the
// row-form reads (element (n0 + g, k0 + t)) fall in banks 4g + t and the permuted column-form
// reads (element (k0 + 2t, n0 + g)) in banks 8t + g, both conflict-free. Everything else
// (masks, dead rows, dropout's bits, the online softmax, the two deterministic backward
// passes) is the bfloat16 kernels' scheme, one 16-row tile per warp.
#pragma once

#include "backends/cuda/attention_mma.cuh"

namespace wavspa::cuda::attn {

template <int D>
constexpr int tf_pitch() {
  return D + 4;
}

__device__ __forceinline__ uint32_t tf32_round(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// An operand of N registers as its TF32 parts; lo is left unset (and compiled away) for one pass.
template <int N>
struct Frag {
  uint32_t hi[N], lo[N];
};

// lo = x - hi is exact in float32 and goes to the tensor cores as it is: they read the top
// 19 bits of a TF32 operand, so lo loses at most 2^-21 of x (rounding it first would give
// 2^-22 for one more instruction per element).
template <int PASSES>
__device__ __forceinline__ void split(float x, uint32_t& hi, uint32_t& lo) {
  hi = tf32_round(x);
  if constexpr (PASSES == 3) lo = __float_as_uint(x - __uint_as_float(hi));
}
template <int PASSES>
__device__ __forceinline__ Frag<4> split4(float x0, float x1, float x2, float x3) {
  Frag<4> f;
  split<PASSES>(x0, f.hi[0], f.lo[0]);
  split<PASSES>(x1, f.hi[1], f.lo[1]);
  split<PASSES>(x2, f.hi[2], f.lo[2]);
  split<PASSES>(x3, f.hi[3], f.lo[3]);
  return f;
}
template <int PASSES>
__device__ __forceinline__ Frag<2> split2(float x0, float x1) {
  Frag<2> f;
  split<PASSES>(x0, f.hi[0], f.lo[0]);
  split<PASSES>(x1, f.hi[1], f.lo[1]);
  return f;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c += a b in PASSES TF32 products.
template <int PASSES>
__device__ __forceinline__ void mma_split(float (&c)[4], const Frag<4>& a, const Frag<2>& b) {
  if constexpr (PASSES == 3) {
    mma_tf32(c, a.lo, b.hi[0], b.hi[1]);
    mma_tf32(c, a.hi, b.lo[0], b.lo[1]);
  }
  mma_tf32(c, a.hi, b.hi[0], b.hi[1]);
}

// acc += X Y^T for one warp, contracting over the KD columns of two row-major tiles: X's
// MT * 16 rows r0.. are A (MT row tiles), Y's N rows are B's n dim (S = Q K^T, dP = dO V^T
// and their transposes). Each B fragment is read and split once for the MT row tiles.
template <int P, int KD, int N, int PASSES, int MT>
__device__ __forceinline__ void xyt(float (&acc)[MT][N / 8][4], const float* X, int r0, const float* Y, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int kk = 0; kk < KD / 8; ++kk) {
    Frag<4> a[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const float* x = X + (r0 + mt * 16 + g) * P + kk * 8 + t;
      a[mt] = split4<PASSES>(x[0], x[8 * P], x[4], x[8 * P + 4]);
    }
#pragma unroll
    for (int nb = 0; nb < N / 8; ++nb) {
      const float* y = Y + (nb * 8 + g) * P + kk * 8 + t;
      const Frag<2> b = split2<PASSES>(y[0], y[4]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) mma_split<PASSES>(acc[mt][nb], a[mt], b);
    }
  }
}
template <int P, int KD, int N, int PASSES>
__device__ __forceinline__ void xyt(float (&acc)[N / 8][4], const float* X, int r0, const float* Y, int lane) {
  xyt<P, KD, N, PASSES, 1>(reinterpret_cast<float(&)[1][N / 8][4]>(acc), X, r0, Y, lane);
}

// out += A Y for one warp: A the MT 16 x K accumulator tiles of an earlier product (K / 8
// n-blocks each, k order permuted as the header says), Y a row-major (K, DN) tile whose rows
// are the k dim.
template <int P, int K, int DN, int PASSES, int MT>
__device__ __forceinline__ void acc_y(float (&out)[MT][DN / 8][4], const float (&acc)[MT][K / 8][4], const float* Y,
                                      int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int kb = 0; kb < K / 8; ++kb) {
    Frag<4> a[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
      a[mt] = split4<PASSES>(acc[mt][kb][0], acc[mt][kb][2], acc[mt][kb][1], acc[mt][kb][3]);
    const float* y = Y + (kb * 8 + 2 * t) * P + g;
#pragma unroll
    for (int db = 0; db < DN / 8; ++db) {
      const Frag<2> b = split2<PASSES>(y[db * 8], y[P + db * 8]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) mma_split<PASSES>(out[mt][db], a[mt], b);
    }
  }
}
template <int P, int K, int DN, int PASSES>
__device__ __forceinline__ void acc_y(float (&out)[DN / 8][4], const float (&acc)[K / 8][4], const float* Y, int lane) {
  acc_y<P, K, DN, PASSES, 1>(reinterpret_cast<float(&)[1][DN / 8][4]>(out),
                             reinterpret_cast<const float(&)[1][K / 8][4]>(acc), Y, lane);
}

// Rows [r0, r0 + valid) of a float32 (B, H, N, D) operand into a ROWS-row shared tile through
// cp.async, zeros past `valid`. Waited for with cp_async_wait_all.
template <int D, int ROWS>
__device__ __forceinline__ void stage_f32(float* tile, const float* base, int64_t sn, int64_t r0, int64_t valid) {
  constexpr int kChunks = D / 4;  // 16-byte chunks per row
  for (int x = threadIdx.x; x < ROWS * kChunks; x += blockDim.x) {
    const int r = x / kChunks, c = (x % kChunks) * 4;
    const bool in = r < valid;
    cp_async16(tile + r * tf_pitch<D>() + c, in ? base + (r0 + r) * sn + c : base, in ? 16 : 0);
  }
}

// Keys per tile of the forward's walk: 64, or 32 at D = 128 where the accumulators fill the
// registers.
template <int D>
constexpr int tf_walk() {
  return D <= 64 ? 64 : 32;
}

// ---- forward -----------------------------------------------------------------------------
//
// As forward_mma_kernel: a block of 4 warps owns 16 * MT query rows per warp (MT = 2 for
// D <= 64: each K and V fragment read and split serves two row tiles) and walks the keys in
// double-buffered tiles.
template <int D>
constexpr int tf_fwd_mtiles() {
  return D <= 64 ? 2 : 1;
}
template <int D>
constexpr int tf_fwd_rows() {
  return 4 * 16 * tf_fwd_mtiles<D>();
}

template <int D, int PASSES>
__global__ void __launch_bounds__(kMmaThreads) forward_tf32_kernel(Params<float, float> p) {
  constexpr int MT = tf_fwd_mtiles<D>(), Br = tf_fwd_rows<D>(), Bc = tf_walk<D>(), P = tf_pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  float* Qs = reinterpret_cast<float*>(smem_chunks);
  float* KV = Qs + Br * P;  // [2 buffers][K, V][Bc][P]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(KV + 4 * Bc * P);  // [2][Br][Bc / 8]: draw_keep's bytes
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  const Mask mask = mask_for(p, b);
  const bool dropout = p.dropout_p > 0;
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  auto Ktile = [&](int buf) { return KV + (2 * buf) * Bc * P; };
  auto Vtile = [&](int buf) { return KV + (2 * buf + 1) * Bc * P; };
  const float* kbase = p.k.row(b, h, 0);
  const float* vbase = p.v.row(b, h, 0);

  stage_f32<D, Br>(Qs, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
  if (kend > 0) {
    stage_f32<D, Bc>(Ktile(0), kbase, p.k.sn, 0, kend);
    stage_f32<D, Bc>(Vtile(0), vbase, p.v.sn, 0, kend);
  }
  cp_async_commit();
  if (dropout && kend > 0) draw_keep<Br, Bc / 8>(p, bh, i0, 0, keep_all);

  int rows[MT][2];
  bool dead[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[mt][r] = (int)i0 + (warp * MT + mt) * 16 + g + 8 * r;
      dead[mt][r] = rows[mt][r] < p.nq && mask.dead(rows[mt][r]);
    }
  const bool any_dead = mask.first > i0 || mask.first >= mask.nk;
  const float sl2 = (float)p.scale * kLog2e;
  float o[MT][D / 8][4] = {};
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0;

  for (int64_t j0 = 0, it = 0; j0 < kend; j0 += Bc, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    __syncthreads();  // tile `it` has landed for everyone; the other buffer's readers are done
    if (j0 + Bc < kend) {
      stage_f32<D, Bc>(Ktile(buf ^ 1), kbase, p.k.sn, j0 + Bc, kend - j0 - Bc);
      stage_f32<D, Bc>(Vtile(buf ^ 1), vbase, p.v.sn, j0 + Bc, kend - j0 - Bc);
    }
    cp_async_commit();
    if (dropout && j0 + Bc < kend) draw_keep<Br, Bc / 8>(p, bh, i0, (j0 + Bc) / 8, keep_all + (buf ^ 1) * Br * (Bc / 8));
    float s[MT][Bc / 8][4] = {};
    xyt<P, D, Bc, PASSES, MT>(s, Qs, warp * MT * 16, Ktile(buf), lane);  // S = Q K^T, unscaled
    // Masks as in forward_mma_kernel: a column bias where keys are padded or past the end,
    // causal only on tiles crossing this warp's diagonal, dead rows only when the block has some.
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
    // Online softmax per row (elements 2 r, 2 r + 1 of every n-block).
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
          const uint64_t bits = row_keep<Bc / 8>(keep + ((warp * MT + mt) * 16 + g + 8 * r) * (Bc / 8)) >> (2 * t);
#pragma unroll
          for (int nb = 0; nb < Bc / 8; ++nb)
#pragma unroll
            for (int c = 0; c < 2; ++c) s[mt][nb][2 * r + c] *= (bits >> (8 * nb + c)) & 1 ? ds : 0.0f;
        }
    }
    acc_y<P, Bc, D, PASSES, MT>(o, s, Vtile(buf), lane);  // O += P V
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
      float* out = p.out.row(b, h, i);
#pragma unroll
      for (int db = 0; db < D / 8; ++db)
        store_pair(out + db * 8 + 2 * t, o[mt][db][2 * r] * inv, o[mt][db][2 * r + 1] * inv);
      if (t == 0)
        p.lse[bh * p.nq + i] = sum > 0 ? (m[mt][r] == -INFINITY ? 0.0f : m[mt][r]) * (float)p.scale + logf(sum) : -INFINITY;
    }
}

// ---- backward ----------------------------------------------------------------------------
//
// Two deterministic passes, as the bfloat16 kernels' two-pass mode. A block owns 16 * MT rows
// per warp (MT = 2 for D <= 64, so that every fragment of a walked tile serves two row tiles)
// and walks tiles of 32 rows of the other side, double-buffered.
template <int D>
constexpr int tf_bwd_mtiles() {
  return D <= 64 ? 2 : 1;
}
template <int D>
constexpr int tf_bwd_own() {
  return 4 * 16 * tf_bwd_mtiles<D>();
}
constexpr int kTfBwdWalk = 32;

// The key pass (dK, dV): S^T = K Q^T, dP^T = V dO^T, P^T from the saved lse,
// dS^T = P^T o (dP^T o drop - D), then dV += (P o drop)^T dO and dK += dS^T Q
// (grad_kv_mma_kernel's arithmetic).
template <int D, int PASSES>
__global__ void __launch_bounds__(kMmaThreads) grad_kv_tf32_kernel(Params<float, float> p) {
  constexpr int MT = tf_bwd_mtiles<D>(), Bc = tf_bwd_own<D>(), Br = kTfBwdWalk, P = tf_pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  float* Ks = reinterpret_cast<float*>(smem_chunks);
  float* Vs = Ks + Bc * P;
  float* Qs_all = Vs + Bc * P;           // [2][Br][P]
  float* Gs_all = Qs_all + 2 * Br * P;   // [2][Br][P]
  float* lse_all = Gs_all + 2 * Br * P;  // [2][Br], in log2 units
  float* D_all = lse_all + 2 * Br;       // [2][Br]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(D_all + 2 * Br);  // [2][Br][Bc / 8]
  const bool dropout = p.dropout_p > 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int nQ = (int)((p.nq + Br - 1) / Br);
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t j0 = (int64_t)blockIdx.x * Bc;
  const Mask mask = mask_for(p, b);
  stage_f32<D, Bc>(Ks, p.k.row(b, h, 0), p.k.sn, j0, p.nk - j0);
  stage_f32<D, Bc>(Vs, p.v.row(b, h, 0), p.v.sn, j0, p.nk - j0);
  int keys[MT][2];
  float key_bias[MT][2];  // 0 for a real key, -inf for one past the end or padded: its P is 0
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      keys[mt][r] = (int)j0 + (warp * MT + mt) * 16 + g + 8 * r;
      key_bias[mt][r] =
          keys[mt][r] < p.nk && (mask.keep == nullptr || mask.keep[keys[mt][r]] != 0) ? 0.0f : -INFINITY;
    }
  const bool any_dead = mask.first > 0 && (mask.causal || mask.first >= mask.nk);
  const float sl2 = (float)p.scale * kLog2e;
  float dk[MT][D / 8][4] = {}, dv[MT][D / 8][4] = {};
  const int first_tile = mask.causal && mask.first == 0 ? (int)(j0 / Br) : 0;
  auto load_walk = [&](int buf, int64_t i0) {
    stage_f32<D, Br>(Qs_all + buf * Br * P, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
    stage_f32<D, Br>(Gs_all + buf * Br * P, p.grad_out.row(b, h, 0), p.grad_out.sn, i0, p.nq - i0);
    for (int x = threadIdx.x; x < Br; x += blockDim.x) {
      const bool in = i0 + x < p.nq;
      lse_all[buf * Br + x] = in ? p.lse[bh * p.nq + i0 + x] * kLog2e : INFINITY;
      D_all[buf * Br + x] = in ? p.rowdot[bh * p.nq + i0 + x] : 0.0f;
    }
    if (dropout) draw_keep<Br, Bc / 8>(p, bh, i0, j0 / 8, keep_all + buf * Br * (Bc / 8));
  };
  if (first_tile < nQ) load_walk(0, (int64_t)first_tile * Br);
  cp_async_commit();  // with the own tiles: the first wait covers them
  for (int tile = first_tile, it = 0; tile < nQ; ++tile, ++it) {
    const int buf = it % 2;
    const int64_t i0 = (int64_t)tile * Br;
    cp_async_wait_all();
    __syncthreads();
    if (tile + 1 < nQ) load_walk(buf ^ 1, i0 + Br);
    cp_async_commit();
    const float* Qs = Qs_all + buf * Br * P;
    const float* Gs = Gs_all + buf * Br * P;
    const float* lse_s = lse_all + buf * Br;
    const float* D_s = D_all + buf * Br;
    float st[MT][Br / 8][4] = {}, dpt[MT][Br / 8][4] = {};
    xyt<P, D, Br, PASSES, MT>(st, Ks, warp * MT * 16, Qs, lane);   // S^T = K Q^T
    xyt<P, D, Br, PASSES, MT>(dpt, Vs, warp * MT * 16, Gs, lane);  // dP^T = V dO^T
    const float dscale = (float)p.dropout_scale;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      // Element x of n-block nb: key keys[mt][x / 2], query i0 + nb * 8 + 2 t + x % 2;
      // dropout's bit 4 nb + x: the byte pair of this row tile's two key groups, bit g of each.
      uint64_t kept = ~0ull;
      if (dropout) {
        const uint8_t* keep = keep_all + buf * Br * (Bc / 8) + 2 * (warp * MT + mt);
        kept = 0;
#pragma unroll
        for (int nb = 0; nb < Br / 8; ++nb)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const uint32_t pair = *reinterpret_cast<const uint16_t*>(keep + (nb * 8 + 2 * t + c) * (Bc / 8)) >> g;
            kept |= (uint64_t)(pair & 1) << (4 * nb + c) | (uint64_t)((pair >> 8) & 1) << (4 * nb + 2 + c);
          }
      }
      const bool diagonal = mask.causal && (int)j0 + (warp * MT + mt) * 16 + 15 > (int)i0;
#pragma unroll
      for (int nb = 0; nb < Br / 8; ++nb) {
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const int r = x / 2, col = nb * 8 + 2 * t + x % 2;
          float l2 = fmaf(st[mt][nb][x], sl2, key_bias[mt][r] - lse_s[col]);
          if (diagonal && keys[mt][r] > (int)i0 + col) l2 = -INFINITY;
          const float prob = fast_exp2(l2);
          const float drop = (kept >> (4 * nb + x)) & 1 ? dscale : 0.0f;
          st[mt][nb][x] = prob * drop;
          dpt[mt][nb][x] = prob * fmaf(dpt[mt][nb][x], drop, -D_s[col]);
        }
      }
      if (any_dead) {  // a dead query row weighs every real key by 1 / nk and gives no dS
#pragma unroll
        for (int nb = 0; nb < Br / 8; ++nb)
#pragma unroll
          for (int x = 0; x < 4; ++x) {
            const int r = x / 2, i = (int)i0 + nb * 8 + 2 * t + x % 2;
            if (i < p.nq && keys[mt][r] < p.nk && mask.dead(i)) {
              const float drop = (kept >> (4 * nb + x)) & 1 ? dscale : 0.0f;
              st[mt][nb][x] = fast_exp2(-lse_s[nb * 8 + 2 * t + x % 2]) * drop;
              dpt[mt][nb][x] = 0.0f;
            }
          }
      }
    }
    acc_y<P, Br, D, PASSES, MT>(dv, st, Gs, lane);   // dV += W^T dO
    acc_y<P, Br, D, PASSES, MT>(dk, dpt, Qs, lane);  // dK += dS^T Q
  }
  cp_async_wait_all();  // the own tiles' copies, when no query tile was walked
  const float scale = (float)p.scale;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (keys[mt][r] >= p.nk) continue;
      float* gk = p.grad_k.row(b, h, keys[mt][r]);
      float* gv = p.grad_v.row(b, h, keys[mt][r]);
#pragma unroll
      for (int db = 0; db < D / 8; ++db) {
        store_pair(gk + db * 8 + 2 * t, dk[mt][db][2 * r] * scale, dk[mt][db][2 * r + 1] * scale);
        store_pair(gv + db * 8 + 2 * t, dv[mt][db][2 * r], dv[mt][db][2 * r + 1]);
      }
    }
}

// The query pass (dQ): S and dP again, dS, dQ += dS K, summed over the key tiles in order
// (grad_q_mma_kernel's arithmetic).
template <int D, int PASSES>
__global__ void __launch_bounds__(kMmaThreads) grad_q_tf32_kernel(Params<float, float> p) {
  constexpr int MT = tf_bwd_mtiles<D>(), Br = tf_bwd_own<D>(), Bc = kTfBwdWalk, P = tf_pitch<D>();
  extern __shared__ uint4 smem_chunks[];
  float* Qs = reinterpret_cast<float*>(smem_chunks);
  float* Gs = Qs + Br * P;
  float* Ks_all = Gs + Br * P;          // [2][Bc][P]
  float* Vs_all = Ks_all + 2 * Bc * P;  // [2][Bc][P]
  uint8_t* keep_all = reinterpret_cast<uint8_t*>(Vs_all + 2 * Bc * P);  // [2][Br][Bc / 8]
  const bool dropout = p.dropout_p > 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = (int64_t)blockIdx.x * Br;
  const Mask mask = mask_for(p, b);
  stage_f32<D, Br>(Qs, p.q.row(b, h, 0), p.q.sn, i0, p.nq - i0);
  stage_f32<D, Br>(Gs, p.grad_out.row(b, h, 0), p.grad_out.sn, i0, p.nq - i0);
  int rows[MT][2];
  float lse[MT][2], Dr[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[mt][r] = (int)i0 + (warp * MT + mt) * 16 + g + 8 * r;
      const bool in = rows[mt][r] < p.nq;
      // A row past the end or dead passes no gradient to q: lse = +inf makes its P 0.
      lse[mt][r] = in && !mask.dead(rows[mt][r]) ? p.lse[bh * p.nq + rows[mt][r]] * kLog2e : INFINITY;
      Dr[mt][r] = in ? p.rowdot[bh * p.nq + rows[mt][r]] : 0.0f;
    }
  int64_t kend = p.nk;
  if (mask.causal_limit(i0)) kend = min(p.nk, min(i0 + Br, p.nq));
  const float sl2 = (float)p.scale * kLog2e;
  float dq[MT][D / 8][4] = {};
  auto load_walk = [&](int buf, int64_t j0) {
    stage_f32<D, Bc>(Ks_all + buf * Bc * P, p.k.row(b, h, 0), p.k.sn, j0, kend - j0);
    stage_f32<D, Bc>(Vs_all + buf * Bc * P, p.v.row(b, h, 0), p.v.sn, j0, kend - j0);
    if (dropout) draw_keep<Br, Bc / 8>(p, bh, i0, j0 / 8, keep_all + buf * Br * (Bc / 8));
  };
  if (kend > 0) load_walk(0, 0);
  cp_async_commit();  // with the own tiles
  for (int64_t j0 = 0, it = 0; j0 < kend; j0 += Bc, ++it) {
    const int buf = (int)(it % 2);
    cp_async_wait_all();
    __syncthreads();
    if (j0 + Bc < kend) load_walk(buf ^ 1, j0 + Bc);
    cp_async_commit();
    const float* Ks = Ks_all + buf * Bc * P;
    const float* Vs = Vs_all + buf * Bc * P;
    float s[MT][Bc / 8][4] = {}, dp[MT][Bc / 8][4] = {};
    xyt<P, D, Bc, PASSES, MT>(s, Qs, warp * MT * 16, Ks, lane);   // S = Q K^T
    xyt<P, D, Bc, PASSES, MT>(dp, Gs, warp * MT * 16, Vs, lane);  // dP = dO V^T
    float bias[Bc / 4];  // column 2 nb + c: 0 for a real key, -inf past the end or padded
    const bool any_masked = j0 + Bc > p.nk || mask.needs_keep(j0, Bc);
#pragma unroll
    for (int y = 0; y < Bc / 4; ++y) {
      const int j = (int)j0 + (y / 2) * 8 + 2 * t + y % 2;
      bias[y] = !any_masked || (j < p.nk && (mask.keep == nullptr || mask.keep[j] != 0)) ? 0.0f : -INFINITY;
    }
    const float dscale = (float)p.dropout_scale;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      uint64_t bits[2] = {~0ull, ~0ull};  // dropout's keep bits of rows[mt][r]: key 8 nb + 2 t + c at bit 8 nb + c
      if (dropout) {
        const uint8_t* keep = keep_all + buf * Br * (Bc / 8);
#pragma unroll
        for (int r = 0; r < 2; ++r)
          bits[r] = row_keep<Bc / 8>(keep + ((warp * MT + mt) * 16 + g + 8 * r) * (Bc / 8)) >> (2 * t);
      }
      const bool diagonal = mask.causal && (int)j0 + Bc - 1 > (int)i0 + (warp * MT + mt) * 16;
#pragma unroll
      for (int nb = 0; nb < Bc / 8; ++nb) {
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const int r = x / 2, c = x % 2;
          float l2 = fmaf(s[mt][nb][x], sl2, bias[2 * nb + c] - lse[mt][r]);
          if (diagonal && (int)j0 + nb * 8 + 2 * t + c > rows[mt][r]) l2 = -INFINITY;
          const float drop = (bits[r] >> (8 * nb + c)) & 1 ? dscale : 0.0f;
          s[mt][nb][x] = fast_exp2(l2) * fmaf(dp[mt][nb][x], drop, -Dr[mt][r]);
        }
      }
    }
    acc_y<P, Bc, D, PASSES, MT>(dq, s, Ks, lane);  // dQ += dS K
  }
  cp_async_wait_all();
  const float scale = (float)p.scale;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (rows[mt][r] >= p.nq) continue;
      float* out = p.grad_q.row(b, h, rows[mt][r]);
#pragma unroll
      for (int db = 0; db < D / 8; ++db)
        store_pair(out + db * 8 + 2 * t, dq[mt][db][2 * r] * scale, dq[mt][db][2 * r + 1] * scale);
    }
}

// ---- host side ---------------------------------------------------------------------------
// Which problems these kernels take: mma_supported<float> (head dim 32, 64 or 128, rows
// 16-byte aligned) and B * H within the grid's y.

template <int PASSES>
cudaError_t tf32_forward(const Params<float, float>& p, cudaStream_t stream) {
  return dispatch_head_dim<float>(p.dim, [&](auto dc) {
    constexpr int D = decltype(dc)::value, Br = tf_fwd_rows<D>(), Bc = tf_walk<D>();
    const dim3 grid((unsigned)((p.nq + Br - 1) / Br), (unsigned)(p.batch * p.heads));
    const size_t smem = (size_t)(Br + 4 * Bc) * tf_pitch<D>() * sizeof(float) + 2 * Br * (Bc / 8);
    return launch_mma(forward_tf32_kernel<D, PASSES>, grid, smem, stream, p);
  });
}

// p.rowdot must point to batch * heads * nq floats of scratch.
template <int PASSES>
cudaError_t tf32_backward(const Params<float, float>& p, cudaStream_t stream) {
  const int64_t rows = p.batch * p.heads * p.nq;
  if (rows > 0) {
    rowdot_vec_kernel<float, float, 1><<<(unsigned)((rows + 31) / 32), 256, 0, stream>>>(group_of(p));  // aligned rows
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return dispatch_head_dim<float>(p.dim, [&](auto dc) {
    constexpr int D = decltype(dc)::value, Own = tf_bwd_own<D>(), W = kTfBwdWalk;
    const size_t tiles = (size_t)(2 * Own + 4 * W) * tf_pitch<D>() * sizeof(float);
    const size_t smem_kv = tiles + 4 * W * sizeof(float) + 2 * W * (Own / 8);
    const size_t smem_q = tiles + 2 * Own * (W / 8);
    const unsigned bhs = (unsigned)(p.batch * p.heads);
    cudaError_t e = launch_mma(grad_kv_tf32_kernel<D, PASSES>, dim3((unsigned)((p.nk + Own - 1) / Own), bhs),
                               smem_kv, stream, p);
    if (e != cudaSuccess) return e;
    return launch_mma(grad_q_tf32_kernel<D, PASSES>, dim3((unsigned)((p.nq + Own - 1) / Own), bhs), smem_q,
                      stream, p);
  });
}

}  // namespace wavspa::cuda::attn

// Softmax, layer norm and cross-entropy on CUDA: the row kernels of backends/cpu/norm.cpp,
// one warp (short rows) or one block (long rows) per row, see row_block() in nn_common.cuh.
//
// Precision follows the CPU: float32 rows add their sums in double (exp, products and the
// final scaling stay in float32), and the loss kernels work in double throughout, so CUDA
// and CPU differ only in the order of those double sums. Kernels are templated on the storage
// type T and compute in V = Compute<T> (common.cuh): bfloat16 rows are loaded into float,
// computed as float32 rows are, and rounded once on the store; layer norm's mean and rstd of
// bfloat16 rows are float32 tensors (the op allocates them so). Nothing uses atomics: every sum has
// a fixed order, so a rerun gives the same bits.
#include <cmath>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

// Rows (M, N) in, rows out: the shape every row kernel here works on.
struct Rows {
  int64_t M, N;
};

Rows rows_of(const Tensor& t) {
  const int64_t N = t.dim() ? t.shape().back() : 1;
  return {N ? t.numel() / N : 0, N};
}

// The grid-stride loop over rows, uniform for a whole block (row_allreduce may synchronise
// it): `base` is the first row of the block in this round, threads past M still take part.
#define WAVSPA_FOR_BLOCK_ROWS(base, M)                                                  \
  for (int64_t base = (int64_t)blockIdx.x * blockDim.y; base < (M);                    \
       base += (int64_t)gridDim.x * blockDim.y)

// ---- softmax -------------------------------------------------------------------------------

template <typename T>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t M, int64_t N, bool log) {
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, M) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const T* row = x + (active ? m : 0) * N;
    T* out = y + (active ? m : 0) * N;
    using V = Compute<T>;
    V mx = -INFINITY;
    if (active)
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const V v = to_compute(row[i]);
        mx = v > mx ? v : mx;
      }
    mx = row_allreduce(mx, MaxOp{}, scratch);
    if (isinf(mx) && mx < 0) mx = 0;  // an all -inf row: avoid inf - inf, as the CPU does
    double sum = 0;
    if (active)
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
        sum += (double)exp_of(to_compute(row[i]) - mx);
    sum = row_allreduce(sum, SumOp{}, scratch);
    if (!active) continue;
    if (log) {
      const V lse = mx + (V)::log(sum);
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
        out[i] = from_compute<T>(to_compute(row[i]) - lse);
    } else {
      const V inv = (V)(1.0 / sum);
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
        out[i] = from_compute<T>(exp_of(to_compute(row[i]) - mx) * inv);
    }
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* y, const T* g, T* gx, int64_t M, int64_t N,
                                        bool log) {
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, M) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const int64_t off = (active ? m : 0) * N;
    using V = Compute<T>;
    double dot = 0;
    if (active) {
      if (log) {  // dx = g - exp(y) * sum(g)
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) dot += to_compute(g[off + i]);
      } else {    // dx = y * (g - sum(g * y))
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x)
          dot += (double)to_compute(g[off + i]) * to_compute(y[off + i]);
      }
    }
    dot = row_allreduce(dot, SumOp{}, scratch);
    if (!active) continue;
    const V s = (V)dot;
    for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      const int64_t j = off + i;
      const V gj = to_compute(g[j]), yj = to_compute(y[j]);
      gx[j] = from_compute<T>(log ? gj - exp_of(yj) * s : yj * (gj - s));
    }
  }
}

// ---- layer norm ----------------------------------------------------------------------------

// Rows of at most K elements per thread (K > 0) are read from memory once and kept in
// registers for the kernels' later passes (explicit unrolled loops: an array captured by a
// lambda would live in local memory); longer rows (K = 0) read them again (from L1/L2). The
// sums run over the same elements in the same order either way.
template <typename T, typename P, int K>
__global__ void layernorm_forward_kernel(const T* x, const P* w, const P* b, double eps, T* y,
                                         Compute<T>* mean, Compute<T>* rstd, int64_t M, int64_t N) {
  using V = Compute<T>;
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, M) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const T* row = x + (active ? m : 0) * N;
    V cache[K > 0 ? K : 1];
    double s = 0;
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t i = threadIdx.x + (int64_t)k * blockDim.x;
        cache[k] = active && i < N ? to_compute(row[i]) : V(0);
        s += cache[k];
      }
    } else if (active) {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += to_compute(row[i]);
    }
    s = row_allreduce(s, SumOp{}, scratch);
    const double mu = s / N;
    double ss = 0;  // two passes: exact for large means, unlike E[x^2] - E[x]^2
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const double d = cache[k] - mu;
        if (active && threadIdx.x + (int64_t)k * blockDim.x < N) ss += d * d;
      }
    } else if (active) {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const double d = to_compute(row[i]) - mu;
        ss += d * d;
      }
    }
    ss = row_allreduce(ss, SumOp{}, scratch);
    if (!active) continue;
    const double r = 1.0 / sqrt(ss / N + eps);
    if (threadIdx.x == 0) {
      mean[m] = (V)mu;
      rstd[m] = (V)r;
    }
    const V tmu = (V)mu, tr = (V)r;
    T* out = y + m * N;
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t i = threadIdx.x + (int64_t)k * blockDim.x;
        if (i >= N) break;
        V v = (cache[k] - tmu) * tr;
        if (w) v *= (V)to_compute(w[i]);
        if (b) v += (V)to_compute(b[i]);
        out[i] = from_compute<T>(v);
      }
    } else {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        V v = (to_compute(row[i]) - tmu) * tr;
        if (w) v *= (V)to_compute(w[i]);
        if (b) v += (V)to_compute(b[i]);
        out[i] = from_compute<T>(v);
      }
    }
  }
}

// grad_x of layer norm, row by row: dx = r * (g w - mean(g w) - xhat mean(g w xhat)).
template <typename T, typename P, int K>
__global__ void layernorm_backward_x_kernel(const T* gy, const T* x, const P* w,
                                            const Compute<T>* mean, const Compute<T>* rstd, T* gx,
                                            int64_t M, int64_t N) {
  using V = Compute<T>;
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, M) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const int64_t off = (active ? m : 0) * N;
    const V mu = mean[active ? m : 0], r = rstd[active ? m : 0];
    // The cache holds x and gy as loaded; every expression below is the uncached one, so
    // both paths round alike (gy w - a is one fused multiply-add in each, as on the CPU).
    V x_c[K > 0 ? K : 1], g_c[K > 0 ? K : 1];
    double sum_gw = 0, sum_gwx = 0;
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t i = threadIdx.x + (int64_t)k * blockDim.x;
        const bool in = active && i < N;
        x_c[k] = in ? to_compute(x[off + i]) : V(0);
        g_c[k] = in ? to_compute(gy[off + i]) : V(0);
        if (in) {
          const V xhat = (x_c[k] - mu) * r;
          const V gw = g_c[k] * (w ? (V)to_compute(w[i]) : V(1));
          sum_gw += gw;
          sum_gwx += gw * xhat;
        }
      }
    } else if (active) {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const V xhat = (to_compute(x[off + i]) - mu) * r;
        const V gw = to_compute(gy[off + i]) * (w ? (V)to_compute(w[i]) : V(1));
        sum_gw += gw;
        sum_gwx += gw * xhat;
      }
    }
    sum_gw = row_allreduce(sum_gw, SumOp{}, scratch);
    sum_gwx = row_allreduce(sum_gwx, SumOp{}, scratch);
    if (!active) continue;
    const V a = (V)(sum_gw / N), c = (V)(sum_gwx / N);
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int64_t i = threadIdx.x + (int64_t)k * blockDim.x;
        if (i >= N) break;
        const V xhat = (x_c[k] - mu) * r;
        gx[off + i] = from_compute<T>(r * (g_c[k] * (w ? (V)to_compute(w[i]) : V(1)) - a - xhat * c));
      }
    } else {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const V xhat = (to_compute(x[off + i]) - mu) * r;
        gx[off + i] = from_compute<T>(r * (to_compute(gy[off + i]) * (w ? (V)to_compute(w[i]) : V(1)) - a - xhat * c));
      }
    }
  }
}

// Calls f(std::integral_constant<int, K>) with the smallest K of 4, 8 and 16 that holds a
// row of n elements at block.x threads per row, or K = 0 when none does.
template <typename F>
void with_row_cache(int64_t n, dim3 block, F&& f) {
  if (n <= 4 * (int64_t)block.x) f(std::integral_constant<int, 4>{});
  else if (n <= 8 * (int64_t)block.x) f(std::integral_constant<int, 8>{});
  else if (n <= 16 * (int64_t)block.x) f(std::integral_constant<int, 16>{});
  else f(std::integral_constant<int, 0>{});
}

// Rows whose length is a multiple of 8, up to 1024 elements (bfloat16 or float32, every row
// 16-byte aligned): a group of G lanes (G of 4..32, a power of two) owns a row and each lane
// CH chunks of 8 elements, chunk c = lane + G k, each read and written as 16-byte words. A
// lane adds its elements in double, then the group adds the lanes' sums by shuffles in a fixed
// order, so the result is the same on every run (and differs from the element kernels above
// only in the order of double sums). Every lane of a warp runs the shuffles, rows past M
// included. At N = 128 in bfloat16 this is 16 lanes a row, two rows a warp: about a sixth of
// the warp instructions of one element a lane, where the kernels were issue-bound (ncu).
constexpr int kVecRowMaxChunks = 4;  // chunks per lane: rows up to 32 * 4 * 8 = 1024 elements

template <int G, typename V>
__device__ __forceinline__ V group_sum(V v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The sum of eight values in A, pairwise: three dependent adds where a running sum took eight
// (the row kernels are bound by their dependent chains, not by their loads).
template <typename A>
__device__ __forceinline__ A sum8(const float (&v)[8]) {
  return (((A)v[0] + (A)v[1]) + ((A)v[2] + (A)v[3])) + (((A)v[4] + (A)v[5]) + ((A)v[6] + (A)v[7]));
}

// 1 / sqrt(v): float for bfloat16 rows (rsqrtf, within 2 float32 ulps: far below bfloat16's
// rounding), double for float32 rows.
__device__ __forceinline__ float inv_sqrt(float v) { return rsqrtf(v); }
__device__ __forceinline__ double inv_sqrt(double v) { return 1.0 / sqrt(v); }

// Statistics in Accum<T>: double for float32 rows (as the CPU), float for bfloat16 rows, whose
// 8-bit values a float32 two-pass mean and variance hold exactly enough (a large mean
// included: the second pass subtracts it first).
template <typename T, typename P, int G, int CH>
__global__ void __launch_bounds__(kThreads) layernorm_forward_vec(const T* __restrict__ x, const P* __restrict__ w,
                                                             const P* __restrict__ b, double eps, T* __restrict__ y,
                                                             float* mean, float* rstd, int64_t M, int N) {
  using A = Accum<T>;
  const int lane = (int)threadIdx.x % G, chunks = N / 8;
  const int64_t per_block = blockDim.x / G;
  for (int64_t base = (int64_t)blockIdx.x * per_block; base < M; base += (int64_t)gridDim.x * per_block) {
    const int64_t m = base + threadIdx.x / G;
    const bool active = m < M;
    const T* row = x + (active ? m : 0) * N;
    float c[CH][8];
    A s = 0;
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int ch = lane + G * k;
      const Vec8<T> v = active && ch < chunks ? load_vec8(row + 8 * ch, 1, 8) : Vec8<T>{};
#pragma unroll
      for (int e = 0; e < 8; ++e) c[k][e] = to_compute(v.v[e]);
      s += sum8<A>(c[k]);
    }
    const A mu = group_sum<G>(s) / (A)N;
    A ss = 0;
#pragma unroll
    for (int k = 0; k < CH; ++k)
      if (lane + G * k < chunks) {
        if constexpr (std::is_same_v<A, float>) {
          float d2[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) d2[e] = (c[k][e] - mu) * (c[k][e] - mu);
          ss += sum8<A>(d2);
        } else {  // float32 rows: double squares, as the CPU
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const A d = (A)c[k][e] - mu;
            ss += d * d;
          }
        }
      }
    ss = group_sum<G>(ss);
    if (!active) continue;
    const A r = inv_sqrt(ss / (A)N + (A)eps);
    if (lane == 0) {
      mean[m] = (float)mu;
      rstd[m] = (float)r;
    }
    const float tmu = (float)mu, tr = (float)r;
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int ch = lane + G * k;
      if (ch >= chunks) break;
      const Vec8<P> wv = w ? load_vec8(w + 8 * ch, 1, 8) : Vec8<P>{};
      const Vec8<P> bv = b ? load_vec8(b + 8 * ch, 1, 8) : Vec8<P>{};
      Compute<T> out[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float v = (c[k][e] - tmu) * tr;
        if (w) v *= (float)to_compute(wv.v[e]);
        if (b) v += (float)to_compute(bv.v[e]);
        out[e] = v;
      }
      store_vec8(y + m * N + 8 * ch, round8<T>(out), 8);
    }
  }
}

// dx of a row: r (g w - mean(g w) - xhat mean(g w xhat)), the two means by group shuffles in
// Accum<T>. With WB (the weight or bias wants a gradient) the block also sums g xhat and g
// down its rows: a lane keeps the sums of its own columns in registers over every row it
// takes (grid-stride: the grid is one wave, see layernorm_backward), then the block adds its
// row slots' sums in slot order and writes one partial row to part_w / part_b (blockIdx.x);
// layernorm_backward_wb_finish adds the blocks' rows. So grad_y and x are read once for all
// three gradients, and the order of every sum is fixed: the same bits on every run.
template <typename T, typename P, int G, int CH, bool WB>
__global__ void __launch_bounds__(kThreads) layernorm_backward_x_vec(const T* __restrict__ gy, const T* __restrict__ x,
                                                                const P* __restrict__ w, const float* mean,
                                                                const float* rstd, T* __restrict__ gx, int64_t M,
                                                                int N, double* part_w, double* part_b) {
  using A = Accum<T>;
  const int lane = (int)threadIdx.x % G, slot = (int)threadIdx.x / G, chunks = N / 8;
  const int64_t per_block = blockDim.x / G;
  float col_w[WB ? CH : 1][8] = {}, col_b[WB ? CH : 1][8] = {};
  for (int64_t base = (int64_t)blockIdx.x * per_block; base < M; base += (int64_t)gridDim.x * per_block) {
    const int64_t m = base + slot;
    const bool active = m < M;
    const int64_t off = (active ? m : 0) * (int64_t)N;
    const float mu = mean[active ? m : 0], r = rstd[active ? m : 0];
    float xc[CH][8], gw[CH][8];
    A sum_gw = 0, sum_gwx = 0;
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int ch = lane + G * k;
      const bool in = active && ch < chunks;
      const Vec8<T> xv = in ? load_vec8(x + off + 8 * ch, 1, 8) : Vec8<T>{};
      const Vec8<T> gv = in ? load_vec8(gy + off + 8 * ch, 1, 8) : Vec8<T>{};
      const Vec8<P> wv = in && w ? load_vec8(w + 8 * ch, 1, 8) : Vec8<P>{};
      float gwx[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        xc[k][e] = to_compute(xv.v[e]);
        const float g = to_compute(gv.v[e]);
        gw[k][e] = g * (w ? (float)to_compute(wv.v[e]) : 1.0f);
        const float xhat = (xc[k][e] - mu) * r;
        gwx[e] = gw[k][e] * xhat;
        if constexpr (WB) {  // rows past M read zeros: g is 0 there
          col_w[k][e] += g * xhat;
          col_b[k][e] += g;
        }
      }
      sum_gw += sum8<A>(gw[k]);
      sum_gwx += sum8<A>(gwx);
    }
    sum_gw = group_sum<G>(sum_gw);
    sum_gwx = group_sum<G>(sum_gwx);
    if (!active) continue;
    const float a = (float)(sum_gw / (A)N), c = (float)(sum_gwx / (A)N);
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      const int ch = lane + G * k;
      if (ch >= chunks) break;
      Compute<T> out[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float xhat = (xc[k][e] - mu) * r;
        out[e] = r * (gw[k][e] - a - xhat * c);
      }
      store_vec8(gx + off + 8 * ch, round8<T>(out), 8);
    }
  }
  if constexpr (WB) {
    // The block's column sums, one chunk index k at a time: slot s's value of column
    // (lane + G k) 8 + e sits at red[s][lane 8 + e]; thread j adds entry j over the slots in
    // slot order, in double.
    constexpr int kSlots = kThreads / G;
    __shared__ float red_w[kSlots][G * 8], red_b[kSlots][G * 8];
#pragma unroll
    for (int k = 0; k < CH; ++k) {
      __syncthreads();
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        red_w[slot][lane * 8 + e] = col_w[k][e];
        red_b[slot][lane * 8 + e] = col_b[k][e];
      }
      __syncthreads();
      for (int j = threadIdx.x; j < G * 8; j += blockDim.x) {
        const int col = (j / 8 + G * k) * 8 + j % 8;
        if (col >= N) continue;
        double tw = 0, tb = 0;
        for (int q = 0; q < kSlots; ++q) tw += red_w[q][j], tb += red_b[q][j];
        part_w[(int64_t)blockIdx.x * N + col] = tw;
        part_b[(int64_t)blockIdx.x * N + col] = tb;
      }
    }
  }
}

// Calls f(G, CH) (integral constants) for a row of n elements when the chunked kernels take
// it: T bfloat16 or float32, n a multiple of 8 in [32, 1024], and every pointer 16-byte aligned.
// Returns false (f not called) otherwise.
template <typename T, typename F>
bool with_vec_rows(int64_t n, std::initializer_list<const void*> ptrs, F&& f) {
  if constexpr (!std::is_same_v<T, bf16> && !std::is_same_v<T, float>) {
    return false;
  } else {
    if (n % 8 != 0 || n < 32 || n > 32 * 8 * kVecRowMaxChunks) return false;
    for (const void* p : ptrs)
      if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
    const int64_t chunks = n / 8;
    if (chunks <= 4) f(std::integral_constant<int, 4>{}, std::integral_constant<int, 1>{});
    else if (chunks <= 8) f(std::integral_constant<int, 8>{}, std::integral_constant<int, 1>{});
    else if (chunks <= 16) f(std::integral_constant<int, 16>{}, std::integral_constant<int, 1>{});
    else if (chunks <= 32) f(std::integral_constant<int, 32>{}, std::integral_constant<int, 1>{});
    else if (chunks <= 64) f(std::integral_constant<int, 32>{}, std::integral_constant<int, 2>{});
    else f(std::integral_constant<int, 32>{}, std::integral_constant<int, 4>{});
    return true;
  }
}

// Blocks of kThreads for M rows at G lanes a row (grid-stride beyond the cap).
inline unsigned vec_row_grid(int64_t M, int G) {
  const int64_t per_block = kThreads / G;
  int64_t blocks = (M + per_block - 1) / per_block;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  return (unsigned)(blocks < 1 ? 1 : blocks);
}

// grad_weight / grad_bias, first pass: column sums over one chunk of rows per blockIdx.y,
// into partial (chunks, N) buffers of doubles. Threads (32, 8): x walks 32 adjacent columns
// (coalesced), y splits the chunk's rows; the 8 partial sums of a column are then added in
// y order, so the result is the same on every run.
constexpr int kColTile = 32, kColRows = 8;

template <typename T>
__global__ void layernorm_backward_wb_partial(const T* gy, const T* x, const Compute<T>* mean,
                                              const Compute<T>* rstd, int64_t M, int64_t N,
                                              int64_t rows_per_chunk, double* part_w,
                                              double* part_b) {
  __shared__ double sw[kColRows][kColTile], sb[kColRows][kColTile];
  const int64_t col = (int64_t)blockIdx.x * kColTile + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t m0 = chunk * rows_per_chunk;
  const int64_t m1 = m0 + rows_per_chunk < M ? m0 + rows_per_chunk : M;
  double acc_w = 0, acc_b = 0;
  if (col < N)
    for (int64_t m = m0 + threadIdx.y; m < m1; m += kColRows) {
      const Compute<T> g = to_compute(gy[m * N + col]);
      acc_w += (double)(g * ((to_compute(x[m * N + col]) - mean[m]) * rstd[m]));
      acc_b += (double)g;
    }
  sw[threadIdx.y][threadIdx.x] = acc_w;
  sb[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && col < N) {
    double tw = 0, tb = 0;
    for (int i = 0; i < kColRows; ++i) tw += sw[i][threadIdx.x], tb += sb[i][threadIdx.x];
    part_w[chunk * N + col] = tw;
    part_b[chunk * N + col] = tb;
  }
}

// Second pass: one warp per column; lane l adds chunks l, l + 32, ... in order, then the 32
// lane sums meet in a fixed butterfly, so the order (and the bits) never change. (One thread
// per column walking all chunks was latency-bound: 150 us for 256 chunks of 128 columns.)
template <typename P>
__global__ void layernorm_backward_wb_finish(const double* part_w, const double* part_b,
                                             int64_t chunks, int64_t N, P* gw, P* gb) {
  const int lane = threadIdx.x % 32;
  for (int64_t col = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; col < N;
       col += (int64_t)gridDim.x * (blockDim.x / 32)) {  // warp-uniform
    // Chunks lane, lane + 32, ... in order; four chunks' loads issued before their adds (the
    // sums waited on one load at a time: 10 us a call for 400-500 chunks).
    double tw = 0, tb = 0;
    int64_t c = lane;
    for (; c + 96 < chunks; c += 128) {
      double w[4], b[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) w[q] = part_w[(c + 32 * q) * N + col], b[q] = part_b[(c + 32 * q) * N + col];
#pragma unroll
      for (int q = 0; q < 4; ++q) tw += w[q], tb += b[q];
    }
    for (; c < chunks; c += 32) tw += part_w[c * N + col], tb += part_b[c * N + col];
    tw = warp_allreduce(tw, SumOp{});
    tb = warp_allreduce(tb, SumOp{});
    if (lane == 0) {
      if (gw) gw[col] = from_compute<P>(tw);
      if (gb) gb[col] = from_compute<P>(tb);
    }
  }
}

// ---- cross-entropy -------------------------------------------------------------------------

// log-sum-exp of one row in double (the CPU's formula: max in T, exp in double); returns it
// to every thread of the row, with sum(row) in *row_sum when asked.
template <typename T>
__device__ double row_logsumexp(const T* row, int64_t C, bool active, double* scratch,
                                double* row_sum) {
  using V = Compute<T>;
  V mx = active && C > 0 ? to_compute(row[0]) : V(0);
  if (active)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const V v = to_compute(row[c]);
      mx = v > mx ? v : mx;
    }
  mx = row_allreduce(mx, MaxOp{}, scratch);
  double se = 0, sx = 0;
  if (active)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const double v = to_compute(row[c]);
      se += ::exp(v - (double)mx);
      sx += v;
    }
  se = row_allreduce(se, SumOp{}, scratch);
  if (row_sum) *row_sum = row_allreduce(sx, SumOp{}, scratch);
  return (double)mx + ::log(se);
}

template <typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* target,
                                             int64_t ignore_index, double smoothing, T* losses,
                                             int64_t N, int64_t C) {
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, N) {
    const int64_t n = base + threadIdx.y;
    const bool in_range = n < N;
    const int64_t t = in_range ? target[n] : ignore_index;
    // Ignored rows skip the arithmetic but still join the block's reductions.
    const bool active = in_range && t != ignore_index;
    const T* row = logits + (in_range ? n : 0) * C;
    double sx = 0;
    const double lse = row_logsumexp(row, C, active, scratch, &sx);
    if (!in_range || threadIdx.x != 0) continue;
    if (!active) {
      losses[n] = from_compute<T>(0.0);
    } else if (t < 0 || t >= C) {
      // The op checks targets only on the CPU; an out-of-range target on the device gives NaN
      // (visible in the loss) instead of a read out of bounds.
      losses[n] = from_compute<T>((double)NAN);
    } else {
      // -(1-eps) log p_t - eps/C sum_c log p_c
      losses[n] = from_compute<T>((1 - smoothing) * (lse - (double)to_compute(row[t])) +
                                  smoothing * (lse - sx / C));
    }
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int64_t* target,
                                              const T* grad_losses, int64_t ignore_index,
                                              double smoothing, T* grad_logits, int64_t N,
                                              int64_t C) {
  __shared__ double scratch[32];
  WAVSPA_FOR_BLOCK_ROWS(base, N) {
    const int64_t n = base + threadIdx.y;
    const bool in_range = n < N;
    const int64_t t = in_range ? target[n] : ignore_index;
    const bool active = in_range && t != ignore_index;
    const T* row = logits + (in_range ? n : 0) * C;
    const double lse = row_logsumexp(row, C, active, scratch, nullptr);
    if (!in_range) continue;
    T* out = grad_logits + n * C;
    if (!active) {
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) out[c] = from_compute<T>(0.0);
      continue;
    }
    const bool bad = t < 0 || t >= C;
    const double g = (double)to_compute(grad_losses[n]), smooth = smoothing / C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      out[c] = from_compute<T>(bad ? (double)NAN
                                   : g * (::exp((double)to_compute(row[c]) - lse) - smooth -
                                          (c == t ? 1 - smoothing : 0.0)));
  }
}

}  // namespace

void CudaBackend::softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  const Rows r = rows_of(x);
  if (r.M == 0 || r.N == 0) return;
  dispatch_floating_bf16(x.dtype(), "softmax", [&](auto zero) {
    using T = decltype(zero);
    const dim3 block = row_block(r.N);
    softmax_forward_kernel<T><<<row_grid(r.M, block), block, 0, stream()>>>(
        dptr<T>(x), dptr<T>(y), r.M, r.N, log);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& grad_y, const Tensor& grad_x,
                                   bool log) {
  const Rows r = rows_of(y);
  if (r.M == 0 || r.N == 0) return;
  dispatch_floating_bf16(y.dtype(), "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    const dim3 block = row_block(r.N);
    softmax_backward_kernel<T><<<row_grid(r.M, block), block, 0, stream()>>>(
        dptr<T>(y), dptr<T>(grad_y), dptr<T>(grad_x), r.M, r.N, log);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

namespace {
// The affine parameters' type P: x's, or float32 with bfloat16 rows (autocast keeps the
// parameters float32, core/runtime.h).
template <typename F>
void dispatch_layernorm(DType x, const Tensor& weight, const Tensor& bias, const char* what, F&& f) {
  const Tensor& param = weight.defined() ? weight : bias;
  if (x == kBFloat16 && param.defined() && param.dtype() == kFloat32)
    return f(bf16{}, float{});
  dispatch_floating_bf16(x, what, [&](auto zero) { f(zero, zero); });
}
}  // namespace

void CudaBackend::layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                    double eps, const Tensor& y, const Tensor& mean,
                                    const Tensor& rstd) {
  const int64_t M = mean.numel(), N = M ? x.numel() / M : 0;
  if (M == 0) return;
  dispatch_layernorm(x.dtype(), weight, bias, "layer_norm", [&](auto zero, auto pzero) {
    using T = decltype(zero);
    using P = decltype(pzero);
    const P* w = weight.defined() ? dptr<P>(weight) : nullptr;
    const P* b = bias.defined() ? dptr<P>(bias) : nullptr;
    if (with_vec_rows<T>(N, {dptr<T>(x), dptr<T>(y), w, b}, [&](auto g, auto ch) {
          constexpr int G = decltype(g)::value, CH = decltype(ch)::value;
          layernorm_forward_vec<T, P, G, CH><<<vec_row_grid(M, G), kThreads, 0, stream()>>>(
              dptr<T>(x), w, b, eps, dptr<T>(y), dptr<float>(mean), dptr<float>(rstd), M, (int)N);
        })) {
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;
    }
    const dim3 block = row_block(N);
    with_row_cache(N, block, [&](auto kc) {
      layernorm_forward_kernel<T, P, decltype(kc)::value><<<row_grid(M, block), block, 0, stream()>>>(
          dptr<T>(x), weight.defined() ? dptr<P>(weight) : nullptr,
          bias.defined() ? dptr<P>(bias) : nullptr, eps, dptr<T>(y), dptr<Compute<T>>(mean),
          dptr<Compute<T>>(rstd), M, N);
    });
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::layernorm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                     const Tensor& mean, const Tensor& rstd,
                                     const Tensor& grad_x, const Tensor& grad_weight,
                                     const Tensor& grad_bias) {
  const int64_t M = mean.numel(), N = M ? x.numel() / M : 0;
  const bool want_wb = grad_weight.defined() || grad_bias.defined();
  const Tensor& gparam = grad_weight.defined() ? grad_weight : grad_bias;
  dispatch_layernorm(x.dtype(), weight.defined() ? weight : gparam, gparam, "layer_norm_backward",
                     [&](auto zero, auto pzero) {
    using T = decltype(zero);
    using P = decltype(pzero);
    const P* w = weight.defined() ? dptr<P>(weight) : nullptr;
    auto finish = [&](const double* part_w, const double* part_b, int64_t chunks, int64_t cols) {
      layernorm_backward_wb_finish<P><<<blocks_for(cols * 32), kThreads, 0, stream()>>>(
          part_w, part_b, chunks, cols, grad_weight.defined() ? dptr<P>(grad_weight) : nullptr,
          grad_bias.defined() ? dptr<P>(grad_bias) : nullptr);
      WAVSPA_CUDA_LAUNCH_CHECK();
    };
    if (M > 0 && N > 0 &&
        with_vec_rows<T>(N, {dptr<T>(grad_y), dptr<T>(x), dptr<T>(grad_x), w}, [&](auto g, auto ch) {
          constexpr int G = decltype(g)::value, CH = decltype(ch)::value;
          if (!want_wb) {
            layernorm_backward_x_vec<T, P, G, CH, false><<<vec_row_grid(M, G), kThreads, 0, stream()>>>(
                dptr<T>(grad_y), dptr<T>(x), w, dptr<float>(mean), dptr<float>(rstd), dptr<T>(grad_x), M, (int)N,
                nullptr, nullptr);
            return;
          }
          // One wave of blocks, each walking its share of the rows and leaving one partial
          // row of the weight and bias gradients.
          static const int per_sm = [] {
            int b = 0;
            WAVSPA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &b, layernorm_backward_x_vec<T, P, G, CH, true>, kThreads, 0));
            return b < 1 ? 1 : b;
          }();
          const int64_t blocks = std::min<int64_t>(vec_row_grid(M, G), (int64_t)per_sm * sm_count());
          Tensor part = scratch_bytes(2 * (size_t)blocks * N * sizeof(double), x.device());
          double* part_w = dptr<double>(part);
          layernorm_backward_x_vec<T, P, G, CH, true><<<(unsigned)blocks, kThreads, 0, stream()>>>(
              dptr<T>(grad_y), dptr<T>(x), w, dptr<float>(mean), dptr<float>(rstd), dptr<T>(grad_x), M, (int)N,
              part_w, part_w + blocks * N);
          WAVSPA_CUDA_LAUNCH_CHECK();
          finish(part_w, part_w + blocks * N, blocks, N);
        })) {
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;  // the chunked kernel did dx and, where wanted, the weight and bias sums
    } else if (M > 0 && N > 0) {
      const dim3 block = row_block(N);
      with_row_cache(N, block, [&](auto kc) {
        layernorm_backward_x_kernel<T, P, decltype(kc)::value><<<row_grid(M, block), block, 0, stream()>>>(
            dptr<T>(grad_y), dptr<T>(x), weight.defined() ? dptr<P>(weight) : nullptr,
            dptr<Compute<T>>(mean), dptr<Compute<T>>(rstd), dptr<T>(grad_x), M, N);
      });
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    if (!want_wb) return;
    // With no rows the gradients are zeros of the weight's size (N is 0 then).
    const int64_t cols = M > 0 ? N : gparam.numel();
    if (cols == 0) return;
    // Enough row chunks to fill the GPU with column tiles, but chunks of at least 64 rows so
    // that the second pass stays short.
    const int64_t tiles = (cols + kColTile - 1) / kColTile;
    int64_t chunks = (M + 63) / 64;
    const int64_t wanted = (1024 + tiles - 1) / tiles;
    if (chunks > wanted) chunks = wanted;
    if (chunks < 1) chunks = 1;
    if (chunks > 65535) chunks = 65535;
    const int64_t rows_per_chunk = M > 0 ? (M + chunks - 1) / chunks : 0;
    Tensor part = scratch_bytes(2 * (size_t)chunks * cols * sizeof(double), x.device());
    double* part_w = dptr<double>(part);
    double* part_b = part_w + chunks * cols;
    if (M > 0) {
      layernorm_backward_wb_partial<T><<<dim3((unsigned)tiles, (unsigned)chunks),
                                         dim3(kColTile, kColRows), 0, stream()>>>(
          dptr<T>(grad_y), dptr<T>(x), dptr<Compute<T>>(mean), dptr<Compute<T>>(rstd), M, N, rows_per_chunk,
          part_w, part_b);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    finish(part_w, part_b, M > 0 ? chunks : 0, cols);
  });
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                        int64_t ignore_index, double label_smoothing,
                                        const Tensor& losses) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0) return;
  dispatch_floating_bf16(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    const dim3 block = row_block(C);
    cross_entropy_forward_kernel<T><<<row_grid(N, block), block, 0, stream()>>>(
        dptr<T>(logits), dptr<int64_t>(target), ignore_index, label_smoothing, dptr<T>(losses),
        N, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target,
                                         const Tensor& grad_losses, int64_t ignore_index,
                                         double label_smoothing, const Tensor& grad_logits) {
  const int64_t N = logits.shape()[0], C = logits.shape()[1];
  if (N == 0 || C == 0) return;
  dispatch_floating_bf16(logits.dtype(), "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    const dim3 block = row_block(C);
    cross_entropy_backward_kernel<T><<<row_grid(N, block), block, 0, stream()>>>(
        dptr<T>(logits), dptr<int64_t>(target), dptr<T>(grad_losses), ignore_index,
        label_smoothing, dptr<T>(grad_logits), N, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace wavspa::cuda

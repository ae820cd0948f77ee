// Reductions: sum, mean, max and min over a set of dims, and the index of the max or min
// along one dim.
//
// As on the CPU, the kept dims and the reduced dims are each merged where memory allows.
// Then one of two kernels runs:
//  - rows:    a group of threads (1 to 256, by the row length) reduces each output, reading
//             the reduced elements in order; best when the reduced dims are innermost;
//  - columns: when the innermost kept dim is contiguous and the reduced dims are not (a (B, D)
//             gradient summed over B), 32 neighbouring outputs share a block and every read of
//             a warp is one contiguous segment; 8 thread rows split the reduced elements.
// No copy is made for any layout: the reduced dims are addressed through an Indexer.
//
// When there are too few outputs to fill the GPU (a full sum, a bias gradient of 64
// channels), the reduced elements are also split across blocks: each block writes a partial
// result, and a second kernel combines the partials in a fixed order. Every sum is taken in
// Accum<T> (common.cuh): double for float32 too (like the CPU), float for bfloat16 (loaded into
// float, rounded to bfloat16 once at the end), and in an order that depends only on the
// shapes, so results are reproducible from run to run (though not bit-equal to the CPU's order).
#include <algorithm>
#include <limits>
#include <type_traits>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

using Dims = StridedDims;  // core/shape.h; coalesce_dims merges contiguous neighbours

Indexer indexer_of(const Dims& d, const char* what) {
  WAVSPA_CHECK((int)d.shape.size() <= kMaxDims, what, ": more than ", kMaxDims,
               " non-mergeable dims are not supported on CUDA, got ", d.shape);
  Indexer ix;
  ix.ndim = (int)d.shape.size();
  for (int i = 0; i < ix.ndim; ++i) ix.size[i] = d.shape[i], ix.stride[i] = d.strides[i];
  return ix;
}

// Offset of reduced element r: a multiplication when the reduced dims merged into one.
__device__ __forceinline__ int64_t reduced_offset(const Indexer& red, int64_t r) {
  return red.ndim == 1 ? r * red.stride[0] : red.offset(r);
}

// Blocks that keep the GPU busy; fewer output blocks than this trigger a split.
int64_t target_blocks() { return 4 * (int64_t)sm_count(); }

// A: the accumulator type (Accum<T>).
template <ReduceOp OP, typename A>
struct Acc {
  static __device__ __forceinline__ A init() {
    if constexpr (std::is_integral_v<A> && OP == ReduceOp::Max) return std::numeric_limits<A>::lowest();
    else if constexpr (std::is_integral_v<A> && OP == ReduceOp::Min) return std::numeric_limits<A>::max();
    else if constexpr (OP == ReduceOp::Max) return -INFINITY;
    else if constexpr (OP == ReduceOp::Min) return INFINITY;
    else return A(0);
  }
  // NaN propagates (and stays) as in the CPU's Reducer::combine.
  static __device__ __forceinline__ A combine(A acc, A v) {
    if constexpr (std::is_integral_v<A> && OP == ReduceOp::Max) return v > acc ? v : acc;
    else if constexpr (std::is_integral_v<A> && OP == ReduceOp::Min) return v < acc ? v : acc;
    else if constexpr (OP == ReduceOp::Max) return isnan(acc) ? acc : (isnan(v) || v > acc ? v : acc);
    else if constexpr (OP == ReduceOp::Min) return isnan(acc) ? acc : (isnan(v) || v < acc ? v : acc);
    else return acc + v;
  }
  template <typename T>
  static __device__ __forceinline__ T finish(A acc, int64_t count) {
    if constexpr (OP == ReduceOp::Mean) return from_compute<T>(acc / (A)count);
    else return from_compute<T>(acc);
  }
};

// Reduces v over the blockDim.x threads that share threadIdx.y (blockDim.x a power of two,
// at most 256, blockDim.x * blockDim.y == 256) and returns the result to all of them. Every
// thread of the block must call it (it may synchronise the block).
template <ReduceOp OP, typename A>
__device__ A row_combine(A v, A* scratch) {
  const int bx = (int)blockDim.x;
  if (bx == 1) return v;
  const int width = bx < 32 ? bx : 32;
  for (int o = width / 2; o > 0; o >>= 1) v = Acc<OP, A>::combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (bx <= 32) return v;
  const int warps = bx / 32;
  __syncthreads();  // the previous call's readers are done with scratch
  if (threadIdx.x % 32 == 0) scratch[threadIdx.y * warps + threadIdx.x / 32] = v;
  __syncthreads();
  A r = scratch[threadIdx.y * warps];
  for (int w = 1; w < warps; ++w) r = Acc<OP, A>::combine(r, scratch[threadIdx.y * warps + w]);
  return r;
}

// Rows: output k (blockDim.y per block, grid-stride over blockIdx.x) reduces elements
// [r0, r1) of split blockIdx.y. partial == nullptr: one split, write the result to out.
template <typename T, ReduceOp OP>
__global__ void reduce_rows_kernel(const T* __restrict__ x, Indexer kept, Indexer red, int64_t K,
                                   int64_t R, int64_t chunk, T* __restrict__ out,
                                   Accum<T>* __restrict__ partial) {
  using A = Accum<T>;
  __shared__ A scratch[32];
  const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = min(R, r0 + chunk);
  for (int64_t kb = (int64_t)blockIdx.x * blockDim.y; kb < K; kb += (int64_t)gridDim.x * blockDim.y) {
    const int64_t k = kb + threadIdx.y;
    A acc = Acc<OP, A>::init();
    if (k < K) {
      const T* base = x + kept.offset(k);
      for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x)
        acc = Acc<OP, A>::combine(acc, (A)to_compute(base[reduced_offset(red, r)]));
    }
    acc = row_combine<OP, A>(acc, scratch);
    if (k < K && threadIdx.x == 0) {
      if (partial) partial[(int64_t)blockIdx.y * K + k] = acc;
      else out[k] = Acc<OP, A>::template finish<T>(acc, R);
    }
  }
}

constexpr int kColX = 32, kColY = 8;

// Columns: outputs k = ob * inner + j for j in a tile of 32; x's innermost kept dim is
// contiguous (stride 1), so the 32 threads of a warp read 32 neighbouring elements.
template <typename T, ReduceOp OP>
__global__ void reduce_cols_kernel(const T* __restrict__ x, Indexer outer, int64_t inner,
                                   int64_t n_outer, Indexer red, int64_t R, int64_t chunk,
                                   T* __restrict__ out, Accum<T>* __restrict__ partial) {
  using A = Accum<T>;
  __shared__ A tile[kColY][kColX + 1];
  const int64_t K = n_outer * inner;
  const int64_t tiles = (inner + kColX - 1) / kColX;
  const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = min(R, r0 + chunk);
  for (int64_t t = blockIdx.x; t < n_outer * tiles; t += gridDim.x) {
    const int64_t ob = t / tiles, j = (t % tiles) * kColX + threadIdx.x;
    A acc = Acc<OP, A>::init();
    if (j < inner) {
      const T* base = x + outer.offset(ob) + j;
      for (int64_t r = r0 + threadIdx.y; r < r1; r += kColY)
        acc = Acc<OP, A>::combine(acc, (A)to_compute(base[reduced_offset(red, r)]));
    }
    tile[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < inner) {
      A a = tile[0][threadIdx.x];
      for (int y = 1; y < kColY; ++y) a = Acc<OP, A>::combine(a, tile[y][threadIdx.x]);
      const int64_t k = ob * inner + j;
      if (partial) partial[(int64_t)blockIdx.y * K + k] = a;
      else out[k] = Acc<OP, A>::template finish<T>(a, R);
    }
    __syncthreads();  // tile is rewritten by the next iteration
  }
}

// Combines the partials of every split, in split order.
template <typename T, ReduceOp OP>
__global__ void reduce_finish_kernel(const Accum<T>* __restrict__ partial, int64_t splits, int64_t K,
                                     int64_t R, T* __restrict__ out) {
  using A = Accum<T>;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < K;
       k += (int64_t)gridDim.x * blockDim.x) {
    A acc = partial[k];
    for (int64_t s = 1; s < splits; ++s) acc = Acc<OP, A>::combine(acc, partial[s * K + k]);
    out[k] = Acc<OP, A>::template finish<T>(acc, R);
  }
}

// Threads per output row for rows of n elements: one thread for very short rows (many
// rows per block), a whole block for long ones.
int row_threads(int64_t n) {
  if (n <= 8) return 1;
  if (n <= 64) return 8;
  if (n <= 1024) return 32;
  if (n <= 8192) return 128;
  return 256;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned grid_cap(int64_t blocks) {
  return (unsigned)std::clamp<int64_t>(blocks, 1, 65535LL * 16);
}

template <typename T, ReduceOp OP>
void reduce_typed(const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  const KeptAndReduced parts = split_reduced_dims(x.shape(), x.strides(), dims);
  Dims kept = parts.kept, red = parts.reduced;
  const int64_t R = shape_numel(red.shape), K = shape_numel(kept.shape);
  if (K == 0) return;
  if (R == 0) {  // sum of nothing is 0, the mean NaN (0 / 0), as on the CPU
    const double empty = OP == ReduceOp::Mean ? NAN : OP == ReduceOp::Max ? -INFINITY
                         : OP == ReduceOp::Min ? INFINITY : 0.0;
    cuda_backend().fill(out, empty);
    return;
  }
  kept = coalesce_dims(kept);
  red = coalesce_dims(red);
  const Indexer ired = indexer_of(red, "reduce");
  const T* px = dptr<T>(x);
  T* po = dptr<T>(out);
  const int64_t rs = red.shape.empty() ? 1 : red.strides.back();
  const bool column = !kept.shape.empty() && kept.strides.back() == 1 && rs != 1;

  // Splits of the reduced elements: enough blocks in total, yet at least min_chunk
  // elements per split so that the partials stay a small fraction of the reads.
  auto plan = [&](int64_t out_blocks, int64_t min_chunk, int64_t* splits, int64_t* chunk) {
    int64_t s = 1;
    if (out_blocks < target_blocks()) s = std::min(ceil_div(target_blocks(), out_blocks), ceil_div(R, min_chunk));
    s = std::clamp<int64_t>(s, 1, 65535);
    *chunk = ceil_div(R, s);
    *splits = ceil_div(R, *chunk);
  };

  int64_t splits = 1, chunk = R;
  Tensor partial;
  using A = Accum<T>;
  auto partial_ptr = [&]() -> A* {
    if (splits == 1) return nullptr;
    partial = Tensor::empty({splits * K}, std::is_same_v<A, float> ? kFloat32 : kFloat64, x.device());
    return dptr<A>(partial);
  };

  if (column) {
    const int64_t inner = kept.shape.back();
    Dims outer{Shape(kept.shape.begin(), kept.shape.end() - 1),
               Shape(kept.strides.begin(), kept.strides.end() - 1)};
    const int64_t n_outer = shape_numel(outer.shape);
    const int64_t out_blocks = n_outer * ceil_div(inner, kColX);
    plan(out_blocks, 64, &splits, &chunk);
    A* pp = partial_ptr();
    const dim3 grid(grid_cap(out_blocks), (unsigned)splits);
    reduce_cols_kernel<T, OP><<<grid, dim3(kColX, kColY), 0, stream()>>>(
        px, indexer_of(outer, "reduce"), inner, n_outer, ired, R, chunk, po, pp);
    WAVSPA_CUDA_LAUNCH_CHECK();
  } else {
    int bx = row_threads(R);
    const int64_t out_blocks = ceil_div(K, 256 / bx);
    plan(out_blocks, 4096, &splits, &chunk);
    if (splits > 1) bx = row_threads(chunk);
    const int by = 256 / bx;
    A* pp = partial_ptr();
    const dim3 grid(grid_cap(ceil_div(K, by)), (unsigned)splits);
    reduce_rows_kernel<T, OP><<<grid, dim3(bx, by), 0, stream()>>>(
        px, indexer_of(kept, "reduce"), ired, K, R, chunk, po, pp);
    WAVSPA_CUDA_LAUNCH_CHECK();
  }
  if (splits > 1) {
    reduce_finish_kernel<T, OP><<<blocks_for(K), kThreads, 0, stream()>>>(dptr<A>(partial), splits,
                                                                         K, R, po);
    WAVSPA_CUDA_LAUNCH_CHECK();
  }
  // `partial` is released here while the kernels may still be queued: the caching allocator
  // hands it out again only to work queued behind them on the same stream.
}

// ---- arg_reduce ------------------------------------------------------------------------------

// Candidate (value, index); index < 0 means "no element seen".
template <typename T>
struct Best {
  T v;
  int64_t i;
};

template <typename T>
__device__ __forceinline__ bool is_nan_value(T v) {
  if constexpr (std::is_floating_point_v<T>) return isnan(v);
  else return false;
}

// Whether candidate b beats a. The order is total: NaN beats numbers (the first NaN wins,
// as in the CPU loop that stops at it), then the larger (smaller) value, then the lower
// index. So any combination order yields the CPU's answer: the first NaN, else the first
// extremum.
template <typename T, bool IS_MAX>
__device__ __forceinline__ bool beats(const Best<T>& b, const Best<T>& a) {
  if (b.i < 0) return false;
  if (a.i < 0) return true;
  const bool an = is_nan_value(a.v), bn = is_nan_value(b.v);
  if (an || bn) return an && bn ? b.i < a.i : bn;
  if (IS_MAX ? b.v > a.v : b.v < a.v) return true;
  return b.v == a.v && b.i < a.i;
}

template <typename T, bool IS_MAX>
__global__ void arg_reduce_kernel(const T* __restrict__ x, Indexer kept, int64_t K, int64_t R,
                                  int64_t rs, int64_t* __restrict__ out) {
  using C = Compute<T>;  // bfloat16 is compared as float
  __shared__ C sv[32];
  __shared__ int64_t si[32];
  const int bx = (int)blockDim.x;
  for (int64_t kb = (int64_t)blockIdx.x * blockDim.y; kb < K; kb += (int64_t)gridDim.x * blockDim.y) {
    const int64_t k = kb + threadIdx.y;
    Best<C> best{C(0), -1};
    if (k < K) {
      const T* row = x + kept.offset(k);
      for (int64_t r = threadIdx.x; r < R; r += bx) {
        const Best<C> c{to_compute(row[r * rs]), r};
        if (beats<C, IS_MAX>(c, best)) best = c;
      }
    }
    if (bx > 1) {
      const int width = bx < 32 ? bx : 32;
      for (int o = width / 2; o > 0; o >>= 1) {
        const Best<C> c{__shfl_xor_sync(0xffffffffu, best.v, o), __shfl_xor_sync(0xffffffffu, best.i, o)};
        if (beats<C, IS_MAX>(c, best)) best = c;
      }
      if (bx > 32) {
        const int warps = bx / 32;
        __syncthreads();
        if (threadIdx.x % 32 == 0) {
          sv[threadIdx.y * warps + threadIdx.x / 32] = best.v;
          si[threadIdx.y * warps + threadIdx.x / 32] = best.i;
        }
        __syncthreads();
        best = Best<C>{sv[threadIdx.y * warps], si[threadIdx.y * warps]};
        for (int w = 1; w < warps; ++w) {
          const Best<C> c{sv[threadIdx.y * warps + w], si[threadIdx.y * warps + w]};
          if (beats<C, IS_MAX>(c, best)) best = c;
        }
      }
    }
    if (k < K && threadIdx.x == 0) out[k] = best.i;
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                         const Tensor& out) {
  // int64: sum, max and min of integers (the op converts int32 and bool first), exact.
  auto floating_or_int64 = [&](auto&& f) {
    if (x.dtype() == kInt64) return f(int64_t{});
    dispatch_floating_bf16(x.dtype(), "reduce", f);
  };
  floating_or_int64([&](auto zero) {
    using T = decltype(zero);
    switch (op) {
      case ReduceOp::Sum: return reduce_typed<T, ReduceOp::Sum>(x, dims, out);
      case ReduceOp::Mean: return reduce_typed<T, ReduceOp::Mean>(x, dims, out);
      case ReduceOp::Max: return reduce_typed<T, ReduceOp::Max>(x, dims, out);
      case ReduceOp::Min: return reduce_typed<T, ReduceOp::Min>(x, dims, out);
    }
  });
}

void CudaBackend::arg_reduce(bool is_max, const Tensor& x, int64_t dim, const Tensor& out) {
  const Dims kept = coalesce_dims(split_reduced_dims(x.shape(), x.strides(), {dim}).kept);
  const int64_t R = x.shape()[dim], rs = x.strides()[dim], K = out.numel();
  if (K == 0) return;
  // A thread per output when neighbouring outputs are neighbours in memory and the reduced
  // dim is not (argmax over dim 0 of a (B, D) tensor): a warp then reads contiguous segments.
  const bool column = !kept.shape.empty() && kept.strides.back() == 1 && rs != 1 && K >= 2048;
  const int bx = column || R <= 32 ? 1 : R <= 1024 ? 32 : 256;
  const int by = 256 / bx;
  const Indexer ik = indexer_of(kept, "arg_reduce");
  dispatch_all(x.dtype(), "arg_reduce", [&](auto zero) {
    using T = decltype(zero);
    const unsigned grid = grid_cap(ceil_div(K, by));
    if (is_max)
      arg_reduce_kernel<T, true><<<grid, dim3(bx, by), 0, stream()>>>(dptr<T>(x), ik, K, R, rs,
                                                                      dptr<int64_t>(out));
    else
      arg_reduce_kernel<T, false><<<grid, dim3(bx, by), 0, stream()>>>(dptr<T>(x), ik, K, R, rs,
                                                                       dptr<int64_t>(out));
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

// ---- column sums (a linear layer's bias gradient) --------------------------------------------
//
// One launch. Block (tile, split) sums rows [split * chunk, ...) of a tile of columns: thread
// (x, y) owns V columns (V = 8, read as 16-byte words, when every row is 16-byte aligned;
// else 1) and takes every KY-th row from y, four rows' loads in flight at a time; the KY sums
// of a column are then added in y order, in double, and written as the block's partial row.
// The last block of a tile to finish (a per-tile counter of finished blocks tells it) adds
// the tile's partial rows the same way: thread row y takes splits y, y + KY, ..., then the
// thread rows' totals are added in y order. Which block comes last depends on the run, the order
// of every addition does not, so the bits are the same on every run. The last block sets its
// counter back to 0 for the next launch (kernels of the one stream run in order, so two
// launches never share the counters).
namespace {
constexpr int kSumThreads = 256, kSumMaxTiles = 4096;
__device__ unsigned g_column_sum_done[kSumMaxTiles];

template <typename T, typename O, int V, int KX>
__global__ void __launch_bounds__(kSumThreads) column_sum_kernel(const T* __restrict__ x, int64_t M, int64_t N,
                                                                  int64_t tile0, int64_t chunk,
                                                                  double* __restrict__ partial, O* __restrict__ out) {
  using A = Accum<T>;
  constexpr int KY = kSumThreads / KX, W = KX * V;  // W: columns of a tile
  __shared__ double red[KY][W];
  __shared__ bool last;
  const int tid = threadIdx.y * KX + threadIdx.x;
  const int64_t first = (tile0 + blockIdx.x) * W, c0 = first + threadIdx.x * V;
  const int64_t r0 = (int64_t)blockIdx.y * chunk, r1 = min(M, r0 + chunk);
  // The thread rows' sums of a column, added in y order (both phases).
  auto column_totals = [&](auto&& write) {
    __syncthreads();
    for (int j = tid; j < W; j += kSumThreads) {  // red holds column x V + e at e KX + x
      double t = 0;
      for (int y = 0; y < KY; ++y) t += red[y][j];
      const int64_t col = first + (j % KX) * V + j / KX;
      if (col < N) write(col, t);
    }
  };
  A acc[V] = {};
  auto row = [&](int64_t r) {
    if constexpr (V == 8) return load_vec8(x + r * N + c0, 1, 8);
    else return x[r * N + c0];
  };
  auto add = [&](const auto& v) {
    if constexpr (V == 8) {
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += (A)to_compute(v.v[e]);
    } else {
      acc[0] += (A)to_compute(v);
    }
  };
  if (c0 < N) {
    int64_t r = r0 + threadIdx.y;
    for (; r + 3 * KY < r1; r += 4 * KY) {  // four loads issued, then added in row order
      const auto a = row(r), b = row(r + KY), c = row(r + 2 * KY), d = row(r + 3 * KY);
      add(a), add(b), add(c), add(d);
    }
    for (; r < r1; r += KY) add(row(r));
  }
#pragma unroll
  for (int e = 0; e < V; ++e) red[threadIdx.y][e * KX + threadIdx.x] = (double)acc[e];
  column_totals([&](int64_t col, double t) { partial[blockIdx.y * N + col] = t; });
  __threadfence();  // this thread's partials are visible before the counter says the block is done
  __syncthreads();
  if (tid == 0) last = atomicAdd(&g_column_sum_done[blockIdx.x], 1u) == gridDim.y - 1;
  __syncthreads();
  if (!last) return;  // uniform over the block
  __threadfence();
  // The last block: thread (x, y) adds splits y, y + KY, ... of its columns (loads from L2,
  // not L1's copies), then the thread rows' totals are added in y order as before.
  double tot[V] = {};
  if (c0 < N) {
    const unsigned splits = gridDim.y;
    unsigned s = threadIdx.y;
    for (; s + 3 * KY < splits; s += 4 * KY) {
      double v[4][V];
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int e = 0; e < V; ++e) v[q][e] = __ldcg(&partial[(s + q * KY) * N + c0 + e]);
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int e = 0; e < V; ++e) tot[e] += v[q][e];
    }
    for (; s < splits; s += KY)
#pragma unroll
      for (int e = 0; e < V; ++e) tot[e] += __ldcg(&partial[s * N + c0 + e]);
  }
  __syncthreads();  // every thread is done reading red from the first phase
#pragma unroll
  for (int e = 0; e < V; ++e) red[threadIdx.y][e * KX + threadIdx.x] = tot[e];
  column_totals([&](int64_t col, double t) { out[col] = (O)t; });
  if (tid == 0) g_column_sum_done[blockIdx.x] = 0;
}

template <typename T, typename O, int V, int KX>
void launch_column_sum(const T* x, int64_t M, int64_t N, double* partial, int64_t splits, int64_t chunk, O* out) {
  const int64_t tiles = ceil_div(N, KX * V);
  for (int64_t t0 = 0; t0 < tiles; t0 += kSumMaxTiles) {
    const unsigned nt = (unsigned)std::min<int64_t>(kSumMaxTiles, tiles - t0);
    column_sum_kernel<T, O, V, KX><<<dim3(nt, (unsigned)splits), dim3(KX, kSumThreads / KX), 0, stream()>>>(
        x, M, N, t0, chunk, partial, out);
    WAVSPA_CUDA_LAUNCH_CHECK();
  }
}
}  // namespace

void CudaBackend::column_sum(const Tensor& x, const Tensor& out) {
  const int64_t M = x.shape()[0], N = x.shape()[1];
  if (N == 0) return;
  if (M == 0) return fill(out, 0.0);
  dispatch_floating_bf16(x.dtype(), "column_sum", [&](auto zero) {
    using T = decltype(zero);
    using O = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* xp = dptr<T>(x);
    const bool vec = N % 8 == 0 && reinterpret_cast<uintptr_t>(xp) % 16 == 0;
    // Tiles of 32 columns (8 a thread across 4 threads and 64 thread rows, or one a thread
    // across 32 and 8 rows), so that several blocks share the last phase; splits of the rows
    // for about four blocks per SM in all, at least 64 rows each.
    const int64_t tiles = ceil_div(N, 32);
    int64_t splits = std::clamp<int64_t>(ceil_div(4 * sm_count(), std::min<int64_t>(tiles, kSumMaxTiles)), 1,
                                         std::max<int64_t>(1, M / 64));
    splits = std::min<int64_t>(splits, 65535);
    const int64_t chunk = ceil_div(M, splits);
    splits = ceil_div(M, chunk);
    Tensor part = scratch_bytes((size_t)(splits * N) * sizeof(double), x.device());
    double* pp = dptr<double>(part);
    O* op = dptr<O>(out);
    if (vec) launch_column_sum<T, O, 8, 4>(xp, M, N, pp, splits, chunk, op);
    else launch_column_sum<T, O, 1, 32>(xp, M, N, pp, splits, chunk, op);
  });
}

}  // namespace wavspa::cuda

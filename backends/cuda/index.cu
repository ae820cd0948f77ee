// Indexing kernels, with the semantics of backends/cpu/index.cpp. Contiguous tensors are seen
// as (outer, dim, inner) around the indexed dim.
//
// index_add (embedding's backward, where every token of a batch adds into the row of its id)
// on floating types adds in a fixed order, so a rerun gives the same bits: the indices are
// sorted with their positions (CUB's radix sort, stable), each destination row's run of
// sources is cut into `parts` equal pieces summed in position order in Accum<T> (one block
// per piece), and a second kernel adds the pieces in order into the row. Integer index_add
// and scatter_add add with atomics: exact for integers; for floating scatter_add (gather's
// backward, which no model of this project takes) the order of the additions, and so the
// last bits, varies from run to run.
//
// Indices are not checked here: the ops check them on the CPU, and a CUDA index tensor out
// of range reads or writes out of bounds (compute-sanitizer reports it).
#include <algorithm>

#include <cub/device/device_radix_sort.cuh>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }  // sm_60+
// sm_80+: each addition rounds to bfloat16, so long runs of repeated indices lose bits
// (convert the source to float32 first where that matters).
__device__ __forceinline__ void atomic_add(bf16* p, bf16 v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd((int*)p, (int)v); }
// Two's complement: adding the unsigned image gives the signed sum.
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd((unsigned long long*)p, (unsigned long long)v);
}

// Rows of `inner` elements: row (a, i) of the selected side pairs with row (a, index[i]) of
// the full side. ADD = false: out row (a, i) = x row (a, idx[i]) (index_select);
// ADD = true: full row (a, idx[i]) += src row (a, i) (index_add).
// One block per row for long rows; a flat element loop for short ones (below).
template <typename T, bool ADD>
__global__ void index_rows_kernel(T* __restrict__ full, T* __restrict__ sel, const int64_t* __restrict__ idx,
                                  int64_t outer, int64_t size, int64_t I, int64_t inner) {
  for (int64_t row = blockIdx.x; row < outer * I; row += gridDim.x) {
    const int64_t a = row / I, i = row - a * I;
    T* f = full + (a * size + idx[i]) * inner;
    T* s = sel + row * inner;
    for (int64_t k = threadIdx.x; k < inner; k += blockDim.x) {
      if constexpr (ADD) atomic_add(f + k, s[k]);
      else s[k] = f[k];
    }
  }
}

template <typename T, bool ADD>
__global__ void index_flat_kernel(T* __restrict__ full, T* __restrict__ sel, const int64_t* __restrict__ idx,
                                  int64_t outer, int64_t size, int64_t I, int64_t inner) {
  const int64_t n = outer * I * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
       e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = e / inner, k = e - row * inner;
    const int64_t a = row / I, i = row - a * I;
    T* f = full + (a * size + idx[i]) * inner + k;
    if constexpr (ADD) atomic_add(f, sel[e]);
    else sel[e] = *f;
  }
}

// ---- deterministic index_add ------------------------------------------------------------

__global__ void iota_kernel(int64_t* v, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    v[i] = i;
}

// First position k of sorted[0, n) with sorted[k] >= key.
__device__ __forceinline__ int64_t lower_bound(const int64_t* sorted, int64_t n, int64_t key) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (sorted[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Block (a, r, part): the sum of src rows (a, perm[k]) over piece `part` of row r's run
// [s, e) of the sorted indices, in k order, into partial[(a * size + r) * parts + part].
template <typename T>
__global__ void index_add_pieces_kernel(const T* __restrict__ src, const int64_t* __restrict__ sorted,
                                        const int64_t* __restrict__ perm, int64_t outer, int64_t size, int64_t I,
                                        int64_t inner, int parts, Accum<T>* __restrict__ partial) {
  const int64_t blocks = outer * size * parts;
  for (int64_t blk = blockIdx.x; blk < blocks; blk += gridDim.x) {
    const int part = (int)(blk % parts);
    const int64_t ar = blk / parts, a = ar / size, r = ar % size;
    const int64_t s = lower_bound(sorted, I, r), e = lower_bound(sorted, I, r + 1);
    const int64_t k0 = s + (e - s) * part / parts, k1 = s + (e - s) * (part + 1) / parts;
    Accum<T>* out = partial + blk * inner;
    for (int64_t c = threadIdx.x; c < inner; c += blockDim.x) {
      Accum<T> acc = 0;
      for (int64_t k = k0; k < k1; ++k) acc += (Accum<T>)to_compute(src[(a * I + perm[k]) * inner + c]);
      out[c] = acc;
    }
  }
}

// full[a, r, c] += the row's pieces in part order (rows nobody indexes are left alone).
template <typename T>
__global__ void index_add_finish_kernel(T* __restrict__ full, const int64_t* __restrict__ sorted, int64_t outer,
                                        int64_t size, int64_t I, int64_t inner, int parts,
                                        const Accum<T>* __restrict__ partial) {
  const int64_t n = outer * size * inner;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = e % inner, ar = e / inner, r = ar % size;
    if (lower_bound(sorted, I, r) == lower_bound(sorted, I, r + 1)) continue;
    Accum<T> acc = (Accum<T>)to_compute(full[e]);
    for (int p = 0; p < parts; ++p) acc += partial[(ar * parts + p) * inner + c];
    full[e] = from_compute<T>(acc);
  }
}

template <typename T>
void index_add_ordered(const Tensor& full, const Tensor& src, const AroundDim& ax, const Tensor& index) {
  const int64_t I = index.numel();
  const Device dev = full.device();
  // Sort (index, position) pairs by index; radix sort is stable, so equal indices keep
  // their positions in order. Only the bits an index in [0, size) can have are sorted.
  int end_bit = 1;
  while (end_bit < 63 && (int64_t(1) << end_bit) < ax.size) ++end_bit;
  Tensor positions = scratch_bytes((size_t)I * sizeof(int64_t), dev);
  Tensor sorted = scratch_bytes((size_t)I * sizeof(int64_t), dev), perm = scratch_bytes((size_t)I * sizeof(int64_t), dev);
  iota_kernel<<<blocks_for(I), kThreads, 0, stream()>>>(dptr<int64_t>(positions), I);
  WAVSPA_CUDA_LAUNCH_CHECK();
  size_t temp_bytes = 0;
  WAVSPA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, dptr<int64_t>(index), dptr<int64_t>(sorted),
                                                    dptr<int64_t>(positions), dptr<int64_t>(perm), I, 0, end_bit,
                                                    stream()));
  Tensor temp = scratch_bytes(std::max<size_t>(temp_bytes, 1), dev);
  WAVSPA_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, dptr<int64_t>(index),
                                                    dptr<int64_t>(sorted), dptr<int64_t>(positions),
                                                    dptr<int64_t>(perm), I, 0, end_bit, stream()));
  // Pieces per destination row: about 64 sources each on average, at most 32, and a partial
  // buffer of at most 64 MB.
  int64_t parts = std::clamp<int64_t>(I / std::max<int64_t>(ax.size, 1) / 64, 1, 32);
  const int64_t per_part = ax.outer * ax.size * ax.inner * (int64_t)sizeof(Accum<T>);
  while (parts > 1 && per_part * parts > (int64_t(64) << 20)) parts /= 2;
  Tensor partial = scratch_bytes((size_t)(per_part * parts), dev);
  const int64_t blocks = ax.outer * ax.size * parts;
  const int threads = ax.inner >= 256 ? 256 : ax.inner >= 128 ? 128 : 64;
  index_add_pieces_kernel<T><<<(unsigned)std::min<int64_t>(blocks, 65535LL * 32), threads, 0, stream()>>>(
      dptr<T>(src), dptr<int64_t>(sorted), dptr<int64_t>(perm), ax.outer, ax.size, I, ax.inner, (int)parts,
      dptr<Accum<T>>(partial));
  WAVSPA_CUDA_LAUNCH_CHECK();
  index_add_finish_kernel<T><<<blocks_for(ax.outer * ax.size * ax.inner), kThreads, 0, stream()>>>(
      dptr<T>(full), dptr<int64_t>(sorted), ax.outer, ax.size, I, ax.inner, (int)parts, dptr<Accum<T>>(partial));
  WAVSPA_CUDA_LAUNCH_CHECK();
}

template <bool ADD>
void index_rows(const Tensor& full, const Tensor& sel, int64_t dim, const Tensor& index) {
  const AroundDim ax = around_dim(full.shape(), dim);
  const int64_t I = index.numel();
  if (ax.outer * I * ax.inner == 0) return;
  auto rows = [&](auto zero) {
    using T = decltype(zero);
    if constexpr (ADD && (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>)) {
      index_add_ordered<T>(full, sel, ax, index);
      return;
    }
    const int64_t* idx = dptr<int64_t>(index);
    if (ax.inner >= 64) {
      const int threads = ax.inner >= 256 ? 256 : 64;
      const unsigned grid = (unsigned)std::min<int64_t>(ax.outer * I, 65535LL * 32);
      index_rows_kernel<T, ADD><<<grid, threads, 0, stream()>>>(dptr<T>(full), dptr<T>(sel), idx,
                                                               ax.outer, ax.size, I, ax.inner);
    } else {
      index_flat_kernel<T, ADD><<<blocks_for(ax.outer * I * ax.inner), kThreads, 0, stream()>>>(
          dptr<T>(full), dptr<T>(sel), idx, ax.outer, ax.size, I, ax.inner);
    }
    WAVSPA_CUDA_LAUNCH_CHECK();
  };
  // index_select moves values, bool masks included; index_add computes.
  if constexpr (ADD) dispatch_all(full.dtype(), "index_add", rows);
  else dispatch_storage(full.dtype(), "index_select", rows);
}

// gather / scatter_add: element lin of `index` (shape ishape) addresses the element of a
// contiguous tensor `full` (shape fshape) with the same coordinates except `dim`, which is
// index[lin]. `coords` walks ishape with full's strides, its stride on `dim` set to 0.
template <typename T, bool ADD>
__global__ void gather_kernel(T* __restrict__ full, T* __restrict__ sel, const int64_t* __restrict__ idx,
                              Indexer coords, int64_t dim_stride, int64_t n) {
  for (int64_t lin = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; lin < n;
       lin += (int64_t)gridDim.x * blockDim.x) {
    T* f = full + coords.offset(lin) + idx[lin] * dim_stride;
    if constexpr (ADD) atomic_add(f, sel[lin]);
    else sel[lin] = *f;
  }
}

template <bool ADD>
void gather_scatter(const Tensor& full, const Tensor& sel, int64_t dim, const Tensor& index) {
  const int64_t n = index.numel();
  if (n == 0) return;
  WAVSPA_CHECK(index.dim() <= kMaxDims, ADD ? "scatter_add" : "gather", ": at most ", kMaxDims,
               " dims on CUDA, got ", index.describe());
  const Shape fstrides = contiguous_strides(full.shape());
  Indexer coords;
  coords.ndim = (int)index.dim();
  for (int d = 0; d < coords.ndim; ++d) {
    coords.size[d] = index.shape()[d];
    coords.stride[d] = d == dim ? 0 : fstrides[d];
  }
  dispatch_all(full.dtype(), ADD ? "scatter_add" : "gather", [&](auto zero) {
    using T = decltype(zero);
    gather_kernel<T, ADD><<<blocks_for(n), kThreads, 0, stream()>>>(
        dptr<T>(full), dptr<T>(sel), dptr<int64_t>(index), coords, fstrides[dim], n);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace

void CudaBackend::index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  index_rows<false>(x, out, dim, index);
}

void CudaBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  index_rows<true>(out, src, dim, index);
}

void CudaBackend::gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  gather_scatter<false>(x, out, dim, index);
}

void CudaBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  gather_scatter<true>(out, src, dim, index);
}

}  // namespace wavspa::cuda

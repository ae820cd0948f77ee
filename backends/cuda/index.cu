// Indexing kernels, with the semantics of backends/cpu/index.cpp. Contiguous tensors are seen
// as (outer, dim, inner) around the indexed dim. The scatters (index_add, scatter_add) add
// with atomics, because repeated indices send several source elements to one destination;
// for floating types the order of those additions, and so the last bits of the result,
// varies from run to run. bfloat16 moves as bfloat16 and adds with bfloat16 atomics.
//
// Indices are not checked here: the ops check them on the CPU, and a CUDA index tensor out
// of range reads or writes out of bounds (compute-sanitizer reports it).
#include <algorithm>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

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

template <bool ADD>
void index_rows(const Tensor& full, const Tensor& sel, int64_t dim, const Tensor& index) {
  const AroundDim ax = around_dim(full.shape(), dim);
  const int64_t I = index.numel();
  if (ax.outer * I * ax.inner == 0) return;
  dispatch_all(full.dtype(), ADD ? "index_add" : "index_select", [&](auto zero) {
    using T = decltype(zero);
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
  });
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

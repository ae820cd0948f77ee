// Helpers shared by the CUDA kernels of gemm.cu, norm.cu, wavelet.cu and fft.cu: row-wise
// reductions for kernels that give each row one warp or one block, and scratch device
// memory. Included only by .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/common.cuh"

namespace wavspa::cuda {

// exp in the precision of its argument: expf for float32 (the CPU's float32 rows also take
// exp in float32), exp for float64.
__device__ inline float exp_of(float v) { return expf(v); }
__device__ inline double exp_of(double v) { return exp(v); }

// ---- reductions --------------------------------------------------------------------------

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// Ignores NaN the way the CPU's `v > m ? v : m` loops do (a NaN never wins a comparison).
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

// Butterfly reduction over the 32 lanes of a warp; every lane ends with the result. The
// pairing is fixed, so the result does not depend on timing (reproducible sums).
template <typename T, typename Op>
__device__ T warp_allreduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Row kernels use blocks of (blockDim.x, blockDim.y) threads: blockDim.x (a multiple of 32,
// at most 1024) threads share one row, and blockDim.y rows share the block. `scratch` is a
// __shared__ array of at least 32 doubles (one per warp of the block). Every thread of the
// block must call this the same number of times (threads past the last row included), since
// it may synchronise the block. Returns the reduction of the row to every thread of the row.
// T is float or double: both round-trip exactly through the double scratch.
template <typename T, typename Op>
__device__ T row_allreduce(T v, Op op, double* scratch) {
  v = warp_allreduce(v, op);
  if (blockDim.x == 32) return v;  // one warp per row: the shuffles were enough
  const int warps = (int)(blockDim.x / 32), lane = (int)(threadIdx.x % 32);
  double* mine = scratch + threadIdx.y * warps;
  __syncthreads();  // the previous call's readers are done with the scratch
  if (lane == 0) mine[threadIdx.x / 32] = (double)v;
  __syncthreads();
  T r = (T)mine[0];
  for (int w = 1; w < warps; ++w) r = op(r, (T)mine[w]);  // same order in every thread
  return r;
}

// Threads per row for a row kernel over rows of n elements: one warp for short rows (many
// rows per block), more for long rows so that each thread keeps a few elements.
inline dim3 row_block(int64_t n) {
  const unsigned x = n <= 512 ? 32 : n <= 4096 ? 128 : 256;
  return dim3(x, 256 / x);
}

// Blocks for `rows` rows at block.y rows per block; kernels loop over further rows
// (grid-stride) when the cap applies.
inline unsigned row_grid(int64_t rows, dim3 block) {
  int64_t b = (rows + block.y - 1) / block.y;
  if (b < 1) b = 1;
  if (b > 65535 * 16) b = 65535 * 16;
  return (unsigned)b;
}

// ---- scratch memory ------------------------------------------------------------------------

// Device memory of at least `bytes` bytes (8-byte aligned, uninitialised) owned by the
// returned tensor, from the backend's allocator. All kernels run on the one stream, so the
// memory can be released as soon as the last kernel that uses it has been enqueued.
inline Tensor scratch_bytes(size_t bytes, Device device) {
  const int64_t words = (int64_t)((bytes + 7) / 8);
  return Tensor::empty({words > 0 ? words : 1}, DType::Int64, device);
}

}  // namespace wavspa::cuda

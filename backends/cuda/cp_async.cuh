// cp.async, Ampere's and Hopper's copies from global to shared memory that complete in the
// background (no registers on the way). Standalone (no other wavspa header), so that the
// kernel benches in bench/kernels include it too.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace wavspa::cuda {

// 16-byte copies; src_bytes 0 writes zeros (rows past the end). A block commits its
// copies as a group and waits until at most N groups are still in flight.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

}  // namespace wavspa::cuda

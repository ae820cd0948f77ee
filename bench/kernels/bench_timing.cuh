// What the standalone cuBLAS benches of bench/kernels share: error checks that print and exit,
// and the median time of a callable over CUDA events.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e)); std::exit(1); } } while (0)
#define CB(x) do { cublasStatus_t st_ = (x); if (st_ != CUBLAS_STATUS_SUCCESS) { std::printf("%s: status %d\n", #x, (int)st_); std::exit(1); } } while (0)

constexpr size_t kWorkspace = 32u << 20;  // cuBLAS's advice for Hopper, as backends/cuda/gemm.cu

// Median ms of `runs` timed calls of f after 5 warm-up calls, each between two events.
template <typename F>
float median_ms(F&& f, int runs = 30) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 5; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < runs; ++i) {
    CK(cudaEventRecord(e0));
    f();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  cudaEventDestroy(e0), cudaEventDestroy(e1);
  return t[t.size() / 2];
}

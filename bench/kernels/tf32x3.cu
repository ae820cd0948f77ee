// The float32 attention products three ways, for the fp32 step (issue 15): cuBLAS's float32
// SGEMM (the FMA units: what the exact attention path uses now), one TF32 tensor-core product
// (fast, 10-bit mantissas: not float32's accuracy), and "3xTF32": each operand split into a
// TF32 part and the TF32 rounding of its remainder, three tensor-core products summed
// (a_hi b_hi + a_hi b_lo + a_lo b_hi), whose error is close to float32's. Errors against a
// float64 cuBLAS product of the same inputs.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 bench/kernels/tf32x3.cu -lcublas -o /tmp/tf32x3 && /tmp/tf32x3
//
// Shapes: the scores S = Q K^T (N x N x d) and the output P V (N x d x N) of B*H 32, N 2000,
// d 64, batched. Median of 20 timed runs after 3 warm-up runs, CUDA events.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { std::printf("%s: %s\n", #x, cudaGetErrorString(e)); std::exit(1); } } while (0)
#define CB(x) do { cublasStatus_t st_ = (x); if (st_ != CUBLAS_STATUS_SUCCESS) { std::printf("%s: status %d\n", #x, (int)st_); std::exit(1); } } while (0)

__global__ void split_kernel(const float* x, float* hi, float* lo, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    uint32_t h;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(h) : "f"(x[i]));
    const float hf = __uint_as_float(h);
    hi[i] = hf;
    lo[i] = x[i] - hf;
  }
}

__global__ void to_double(const float* x, double* y, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) y[i] = x[i];
}

struct Shape {
  const char* name;
  int m, n, k;  // column-major C (m x n) = A (m x k) B (k x n), batched
};

int main() {
  const int batch = 32;
  cublasHandle_t h;
  CB(cublasCreate(&h));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::printf("%-22s %-10s %9s %9s %11s\n", "product", "method", "ms", "TFLOP/s", "max rel err");
  for (Shape s : {Shape{"scores QK^T", 2000, 2000, 64}, Shape{"output PV", 64, 2000, 2000}}) {
    const size_t na = (size_t)s.m * s.k, nb = (size_t)s.k * s.n, nc = (size_t)s.m * s.n;
    std::vector<float> ha(na * batch), hb(nb * batch);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : ha) v = nd(rng);
    for (auto& v : hb) v = nd(rng);
    float *a, *b, *c, *ahi, *alo, *bhi, *blo;
    double *ad, *bd, *cd;
    CK(cudaMalloc(&a, ha.size() * 4));
    CK(cudaMalloc(&b, hb.size() * 4));
    CK(cudaMalloc(&c, nc * batch * 4));
    CK(cudaMalloc(&ahi, ha.size() * 4));
    CK(cudaMalloc(&alo, ha.size() * 4));
    CK(cudaMalloc(&bhi, hb.size() * 4));
    CK(cudaMalloc(&blo, hb.size() * 4));
    CK(cudaMalloc(&ad, ha.size() * 8));
    CK(cudaMalloc(&bd, hb.size() * 8));
    CK(cudaMalloc(&cd, nc * batch * 8));
    CK(cudaMemcpy(a, ha.data(), ha.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b, hb.data(), hb.size() * 4, cudaMemcpyHostToDevice));
    to_double<<<1024, 256>>>(a, ad, ha.size());
    to_double<<<1024, 256>>>(b, bd, hb.size());
    const double one_d = 1, zero_d = 0;
    CB(cublasDgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, s.m, s.n, s.k, &one_d, ad, s.m, na, bd, s.k, nb, &zero_d,
                                 cd, s.m, nc, batch));
    std::vector<double> ref(nc * batch);
    CK(cudaMemcpy(ref.data(), cd, ref.size() * 8, cudaMemcpyDeviceToHost));
    double ref_max = 0;
    for (double v : ref) ref_max = std::max(ref_max, std::fabs(v));

    const float one = 1, zero = 0;
    auto gemm = [&](const float* x, const float* y, float beta, cublasComputeType_t ct) {
      CB(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, s.m, s.n, s.k, &one, x, CUDA_R_32F, s.m, na, y,
                                    CUDA_R_32F, s.k, nb, beta == 0 ? &zero : &one, c, CUDA_R_32F, s.m, nc, batch, ct,
                                    CUBLAS_GEMM_DEFAULT));
    };
    struct Method {
      const char* name;
      int kind;
    };
    for (Method meth : {Method{"fp32 SIMT", 0}, Method{"1xTF32", 1}, Method{"3xTF32", 2}}) {
      auto run = [&] {
        if (meth.kind == 0) gemm(a, b, 0, CUBLAS_COMPUTE_32F_PEDANTIC);
        if (meth.kind == 1) gemm(a, b, 0, CUBLAS_COMPUTE_32F_FAST_TF32);
        if (meth.kind == 2) {
          split_kernel<<<1024, 256>>>(a, ahi, alo, ha.size());
          split_kernel<<<1024, 256>>>(b, bhi, blo, hb.size());
          gemm(alo, bhi, 0, CUBLAS_COMPUTE_32F_FAST_TF32);  // the small terms first
          gemm(ahi, blo, 1, CUBLAS_COMPUTE_32F_FAST_TF32);
          gemm(ahi, bhi, 1, CUBLAS_COMPUTE_32F_FAST_TF32);
        }
      };
      for (int i = 0; i < 3; ++i) run();
      std::vector<float> times;
      for (int i = 0; i < 20; ++i) {
        CK(cudaEventRecord(e0));
        run();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        times.push_back(ms);
      }
      std::sort(times.begin(), times.end());
      const float med = 0.5f * (times[9] + times[10]);
      std::vector<float> got(nc * batch);
      CK(cudaMemcpy(got.data(), c, got.size() * 4, cudaMemcpyDeviceToHost));
      double err = 0;
      for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs((double)got[i] - ref[i]));
      const double flop = 2.0 * s.m * s.n * (double)s.k * batch;
      std::printf("%-22s %-10s %9.3f %9.1f %11.2e\n", s.name, meth.name, med, flop / med / 1e9, err / ref_max);
    }
    for (void* p : {(void*)a, (void*)b, (void*)c, (void*)ahi, (void*)alo, (void*)bhi, (void*)blo, (void*)ad, (void*)bd,
                    (void*)cd})
      CK(cudaFree(p));
  }
  return 0;
}

// The weight gradient of a linear layer under autocast through cuBLASLt (issue 16): dW (in x out,
// float32, column-major) = X^T-memory (op N) times G-memory (op T), k = rows (tens of
// thousands), as backends/cuda/gemm.cu asks for it. The heuristics' first choice is a split-K
// kernel plus a separate reduce kernel (two launches per product, 56 reduce launches per
// ListOps WavSpA step). This asks the heuristics for up to 8 algorithms under three reduction
// masks (all schemes; in place or none: the partial sums added into the output in an order
// fixed by counters, no second kernel; none) and times each; also the bias gradient epilogue
// (BGRADB) under each mask. Per row: the heuristics' first algorithm and the fastest of the 8,
// median of 30 after 5 warm-up runs, CUDA events; whether two runs of the chosen algorithm give
// the same bits.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -I. bench/kernels/lt_wgrad.cu -lcublasLt -o /tmp/lt_wgrad && /tmp/lt_wgrad
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench/kernels/bench_timing.cuh"



int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s\n", prop.name);
  cublasLtHandle_t lt;
  CB(cublasLtCreate(&lt));
  void* ws;
  CK(cudaMalloc(&ws, kWorkspace));
  struct Case { const char* name; int64_t rows, in, out; };
  const Case cases[] = {
      {"ListOps qkv", 64032, 128, 192}, {"ListOps out/mlp", 64032, 128, 128}, {"ListOps attn out", 64032, 64, 128},
      {"Text qkv", 32032, 256, 768},    {"Text out", 32032, 256, 256},        {"Text mlp1", 32032, 256, 1024},
      {"Text mlp2", 32032, 1024, 256},
  };
  struct Mask { const char* name; uint32_t mask; };
  const Mask masks[] = {{"all", CUBLASLT_REDUCTION_SCHEME_MASK},
                        {"inplace|none", CUBLASLT_REDUCTION_SCHEME_INPLACE | CUBLASLT_REDUCTION_SCHEME_NONE},
                        {"none", CUBLASLT_REDUCTION_SCHEME_NONE}};
  std::printf("| shape | epilogue | reductions allowed | algos | first us | best us | best scheme, splits | same bits |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const Case& c : cases) {
    std::vector<__nv_bfloat16> hx(c.rows * c.in), hg(c.rows * c.out);
    for (auto& v : hx) v = __float2bfloat16(nd(rng));
    for (auto& v : hg) v = __float2bfloat16(nd(rng) + 0.25f);
    __nv_bfloat16 *x, *g;
    float *dw, *db;
    CK(cudaMalloc(&x, hx.size() * 2));
    CK(cudaMalloc(&g, hg.size() * 2));
    CK(cudaMalloc(&dw, c.in * c.out * 4));
    CK(cudaMalloc(&db, c.out * 4));
    CK(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(g, hg.data(), hg.size() * 2, cudaMemcpyHostToDevice));
    for (int bgrad = 0; bgrad < 2; ++bgrad)
      for (const Mask& m : masks) {
        cublasLtMatmulDesc_t desc;
        CB(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t na = CUBLAS_OP_N, tb = CUBLAS_OP_T;
        CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &na, sizeof(na)));
        CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
        if (bgrad) {
          const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BGRADB;
          const cudaDataType_t bt = CUDA_R_32F;
          CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
          CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
          CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &db, sizeof(db)));
        }
        cublasLtMatrixLayout_t la, lb, ld;
        CB(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, c.in, c.rows, c.in));
        CB(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, c.out, c.rows, c.out));
        CB(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, c.in, c.out, c.in));
        cublasLtMatmulPreference_t pref;
        CB(cublasLtMatmulPreferenceCreate(&pref));
        CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace,
                                                sizeof(kWorkspace)));
        CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &m.mask,
                                                sizeof(m.mask)));
        // The minimum alignments backends/cuda/gemm.cu tells the heuristics (16 bytes here).
        const uint32_t al = 16;
        for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
          CB(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
        cublasLtMatmulHeuristicResult_t heur[8];
        int found = 0;
        const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 8, heur, &found);
        if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
          std::printf("| %s | %s | %s | 0 | - | - | - | - |\n", c.name, bgrad ? "BGRADB" : "default", m.name);
        } else {
          const float one = 1, zero = 0;
          float first = 0, best = 1e9;
          int bi = 0;
          for (int a = 0; a < found; ++a) {
            if (heur[a].state != CUBLAS_STATUS_SUCCESS) continue;
            const float t = median_ms([&] {
              CB(cublasLtMatmul(lt, desc, &one, x, la, g, lb, &zero, dw, ld, dw, ld, &heur[a].algo, ws, kWorkspace, 0));
            });
            if (a == 0) first = t;
            if (t < best) best = t, bi = a;
          }
          uint32_t scheme = 0;
          int32_t splits = 0;
          size_t w;
          cublasLtMatmulAlgoConfigGetAttribute(&heur[bi].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme, sizeof(scheme), &w);
          cublasLtMatmulAlgoConfigGetAttribute(&heur[bi].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits), &w);
          std::vector<float> r1(c.in * c.out), r2(c.in * c.out), b1(c.out), b2(c.out);
          for (int rep = 0; rep < 2; ++rep) {
            CK(cudaMemset(dw, 0xff, c.in * c.out * 4));
            CB(cublasLtMatmul(lt, desc, &one, x, la, g, lb, &zero, dw, ld, dw, ld, &heur[bi].algo, ws, kWorkspace, 0));
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(rep ? r2.data() : r1.data(), dw, r1.size() * 4, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(rep ? b2.data() : b1.data(), db, c.out * 4, cudaMemcpyDeviceToHost));
          }
          const bool same = std::memcmp(r1.data(), r2.data(), r1.size() * 4) == 0 &&
                            (!bgrad || std::memcmp(b1.data(), b2.data(), c.out * 4) == 0);
          uint32_t scheme0 = 0;
          cublasLtMatmulAlgoConfigGetAttribute(&heur[0].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme0, sizeof(scheme0), &w);
          std::printf("first scheme %u; ", scheme0);
          std::printf("| %s (%lld x %lld -> %lld) | %s | %s | %d | %.1f | %.1f | %u, %d | %s |\n", c.name, (long long)c.rows,
                      (long long)c.in, (long long)c.out, bgrad ? "BGRADB" : "default", m.name, found, 1e3 * first,
                      1e3 * best, scheme, splits, same ? "yes" : "no");
        }
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatmulDescDestroy(desc);
      }
    cudaFree(x), cudaFree(g), cudaFree(dw), cudaFree(db);
  }
  return 0;
}

// A linear layer's weight and bias gradients under autocast in one kernel and a small finish
// (issue 16): dW (O x I, float32) = G^T X and db (O, float32) = column sums of G, for G (R x O)
// and X (R x I) bfloat16, row-major, R = batch x tokens (tens of thousands) and O, I of 64 to
// 1024: a product with a tiny output and a huge k, memory-bound (G and X read once is ~8 us at
// ListOps sizes). cuBLASLt runs it as a split-K kernel plus its reduce kernel, then the library
// runs column_sum for the bias: three launches, ~30 us under ncu at (64032 x 128 -> 128).
//
// Here: blocks of 4 warps own a 64 x 64 tile of dW and a chunk of R (the split), stream G and
// X through a 4-stage cp.async ring, multiply on mma.sync m16n8k16 (operands by ldmatrix.trans
// from XOR-swizzled rows), and the warps of the first column of tiles also multiply G^T by a
// ones operand: the bias's partial sums, in the same accumulators' precision. Each block writes
// its partial tile; a finish kernel adds the splits in split order (the same bits every run).
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -I. bench/kernels/wgrad.cu -lcublasLt -o /tmp/wgrad && /tmp/wgrad
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


namespace {
constexpr int BM = 64, BN = 64, BK = 32, STAGES = 4, THREADS = 128;

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A stage holds BK rows of 64 bf16 (128 bytes, 8 chunks of 16); chunk c of row r sits at
// chunk c ^ (r & 7), so the 8 rows an ldmatrix reads at one chunk fall in 8 bank groups.
__device__ __forceinline__ int swz(int r, int chunk) { return r * 8 + (chunk ^ (r & 7)); }

// grid (tiles of O, tiles of I, splits); rows [s * chunk, min(R, (s + 1) * chunk)).
__global__ void __launch_bounds__(THREADS) wgrad_kernel(const __nv_bfloat16* __restrict__ g,
                                                        const __nv_bfloat16* __restrict__ x, int64_t R, int O,
                                                        int I, int64_t chunk, float* __restrict__ part,
                                                        float* __restrict__ bpart) {
  __shared__ __align__(128) uint4 sg[STAGES][BK * 8], sx[STAGES][BK * 8];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;  // warp tile: rows wm*32.. of the O tile, cols wn*32.. of I
  const int o0 = blockIdx.x * BM, i0 = blockIdx.y * BN;
  const int64_t r0 = (int64_t)blockIdx.z * chunk, r1 = min(R, r0 + chunk);
  const int nk = (int)((r1 - r0 + BK - 1) / BK);
  const bool bias = bpart != nullptr && blockIdx.y == 0 && wn == 0;

  auto load = [&](int stage, int kt) {
    const int64_t rb = r0 + (int64_t)kt * BK;
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int idx = tid + q * THREADS, r = idx >> 3, c = idx & 7;
      const int64_t row = rb + r;
      const bool rv = row < r1;
      const int oc = o0 + c * 8, ic = i0 + c * 8;
      cp_async16(smem_addr(&sg[stage][swz(r, c)]), g + (rv ? row : r0) * O + (oc < O ? oc : 0), rv && oc < O);
      cp_async16(smem_addr(&sx[stage][swz(r, c)]), x + (rv ? row : r0) * I + (ic < I ? ic : 0), rv && ic < I);
    }
  };

  float acc[2][4][4] = {}, bacc[2][4] = {};
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) load(s, s);
    asm volatile("cp.async.commit_group;\n");
  }
  const uint32_t ones = 0x3f803f80u;  // two bfloat16 1.0
  for (int kt = 0; kt < nk; ++kt) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 2));
    __syncthreads();
    {
      const int nxt = kt + STAGES - 1;
      if (nxt < nk) load(nxt % STAGES, nxt);
      asm volatile("cp.async.commit_group;\n");
    }
    const int st = kt % STAGES;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t a[2][4], b[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        // matrices: (k 0-7, m 0-7), (k 0-7, m 8-15), (k 8-15, m 0-7), (k 8-15, m 8-15)
        const int r = kk + (lane >> 4) * 8 + (lane & 7);
        const int m = wm * 32 + mi * 16 + ((lane >> 3) & 1) * 8;
        ldsm_x4_t(smem_addr(&sg[st][swz(r, m >> 3)]), a[mi]);
      }
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
        const int r = kk + ((lane >> 3) & 1) * 8 + (lane & 7);
        const int n = wn * 32 + nj * 16 + (lane >> 4) * 8;
        ldsm_x4_t(smem_addr(&sx[st][swz(r, n >> 3)]), b[nj]);
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma16816(acc[mi][ni], a[mi], b[ni >> 1][(ni & 1) * 2], b[ni >> 1][(ni & 1) * 2 + 1]);
      if (bias) {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) mma16816(bacc[mi], a[mi], ones, ones);
      }
    }
  }
  asm volatile("cp.async.wait_group 0;\n");
  // Accumulator (m16 x n8): c0, c1 at (g, 2t..2t+1), c2, c3 at (g + 8, 2t..2t+1).
  const int gq = lane >> 2, tq = lane & 3;
  float* pt = part + (int64_t)blockIdx.z * O * I;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int o = o0 + wm * 32 + mi * 16 + gq + h * 8, i = i0 + wn * 32 + ni * 8 + tq * 2;
        if (o < O && i < I) *reinterpret_cast<float2*>(pt + (int64_t)o * I + i) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
  if (bias && tq == 0) {  // every column of the ones product holds the sum; column 0's
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int o = o0 + wm * 32 + mi * 16 + gq + h * 8;
        if (o < O) bpart[(int64_t)blockIdx.z * O + o] = bacc[mi][2 * h];
      }
  }
}

// dW = the splits' partial tiles added in split order; db likewise.
__global__ void wgrad_finish(const float* __restrict__ part, const float* __restrict__ bpart, int64_t n4, int O,
                             int splits, float* __restrict__ dw, float* __restrict__ db) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n4) {
    float4 s = reinterpret_cast<const float4*>(part)[i];
    for (int k = 1; k < splits; ++k) {
      const float4 v = __ldcs(reinterpret_cast<const float4*>(part) + k * n4 + i);
      s.x += v.x, s.y += v.y, s.z += v.z, s.w += v.w;
    }
    reinterpret_cast<float4*>(dw)[i] = s;
  }
  if (bpart != nullptr && i < O) {
    float s = bpart[i];
    for (int k = 1; k < splits; ++k) s += bpart[(int64_t)k * O + i];
    db[i] = s;
  }
}
}  // namespace


int main(int argc, char** argv) {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  std::printf("%s, %d SMs\n", prop.name, sms);
  cublasLtHandle_t lt;
  CB(cublasLtCreate(&lt));
  void* ws;
  CK(cudaMalloc(&ws, kWorkspace));
  struct Case { const char* name; int64_t rows; int in, out; };
  const Case cases[] = {
      {"ListOps qkv", 64032, 128, 192}, {"ListOps out/mlp", 64032, 128, 128}, {"ListOps attn out", 64032, 64, 128},
      {"Text qkv", 32032, 256, 768},    {"Text out", 32032, 256, 256},        {"Text mlp1", 32032, 256, 1024},
      {"Text mlp2", 32032, 1024, 256},  {"odd rows", 1001, 128, 72},
  };
  const int per_sm[] = {2, 4, 8};
  std::printf("| shape (rows x in -> out) | cuBLASLt dW us | ours dW+db us (blocks/SM 2, 4, 8) | splits | dW err | db err | same bits |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const Case& c : cases) {
    const int64_t R = c.rows;
    const int O = c.out, I = c.in;
    std::vector<__nv_bfloat16> hx(R * I), hg(R * O);
    for (auto& v : hx) v = __float2bfloat16(nd(rng));
    for (auto& v : hg) v = __float2bfloat16(nd(rng) + 0.25f);
    __nv_bfloat16 *x, *g;
    float *dw0, *dw1, *dw2, *db1, *db2, *part, *bpart;
    CK(cudaMalloc(&x, hx.size() * 2));
    CK(cudaMalloc(&g, hg.size() * 2));
    CK(cudaMalloc(&dw0, (size_t)I * O * 4));
    CK(cudaMalloc(&dw1, (size_t)I * O * 4));
    CK(cudaMalloc(&dw2, (size_t)I * O * 4));
    CK(cudaMalloc(&db1, O * 4));
    CK(cudaMalloc(&db2, O * 4));
    CK(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(g, hg.data(), hg.size() * 2, cudaMemcpyHostToDevice));
    // cuBLASLt, as backends/cuda/gemm.cu runs the weight gradient: D (I x O) = X^T-memory (op N)
    // times G-memory (op T), k = R.
    cublasLtMatmulDesc_t desc;
    CB(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t na = CUBLAS_OP_N, tb = CUBLAS_OP_T;
    CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &na, sizeof(na)));
    CB(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    cublasLtMatrixLayout_t la, lb, ld;
    CB(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, I, R, I));
    CB(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, O, R, O));
    CB(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, I, O, I));
    cublasLtMatmulPreference_t pref;
    CB(cublasLtMatmulPreferenceCreate(&pref));
    CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof(kWorkspace)));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    CB(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &heur, &found));
    const float one = 1, zero = 0;
    const float t_lt = median_ms([&] {
      CB(cublasLtMatmul(lt, desc, &one, x, la, g, lb, &zero, dw0, ld, dw0, ld, &heur.algo, ws, kWorkspace, 0));
    }, 40);
    const int tiles_o = (O + BM - 1) / BM, tiles_i = (I + BN - 1) / BN;
    float t_ours[3];
    int splits_used[3];
    for (int v = 0; v < 3; ++v) {
      int64_t splits = std::max<int64_t>(1, std::min<int64_t>((int64_t)per_sm[v] * sms / (tiles_o * tiles_i), (R + 255) / 256));
      const int64_t chunk = ((R + splits - 1) / splits + BK - 1) / BK * BK;
      splits = (R + chunk - 1) / chunk;
      splits_used[v] = (int)splits;
      CK(cudaMalloc(&part, (size_t)splits * O * I * 4));
      CK(cudaMalloc(&bpart, (size_t)splits * O * 4));
      const int64_t n4 = (int64_t)O * I / 4;
      auto run = [&](float* dw, float* db) {
        wgrad_kernel<<<dim3(tiles_o, tiles_i, (unsigned)splits), THREADS>>>(g, x, R, O, I, chunk, part, bpart);
        wgrad_finish<<<(unsigned)((std::max<int64_t>(n4, O) + 255) / 256), 256>>>(part, bpart, n4, O, (int)splits, dw, db);
      };
      t_ours[v] = median_ms([&] { run(dw1, db1); }, 40);
      if (v == 1) {
        run(dw2, db2);
        CK(cudaDeviceSynchronize());
      } else {
        CK(cudaDeviceSynchronize());
      }
      CK(cudaGetLastError());
      cudaFree(part), cudaFree(bpart);
    }
    // Check: dW (I x O column-major from cuBLAS = O x I row-major, the same as ours) at sampled
    // entries and db everywhere against float64 sums of the same bfloat16 values, relative to
    // the sum of |terms|; the second run's bits against the first's.
    std::vector<float> w0((size_t)I * O), w1((size_t)I * O), w2((size_t)I * O), b1(O), b2(O);
    CK(cudaMemcpy(w0.data(), dw0, w0.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(w1.data(), dw1, w1.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(w2.data(), dw2, w2.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b1.data(), db1, O * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b2.data(), db2, O * 4, cudaMemcpyDeviceToHost));
    double werr = 0, lterr = 0, berr = 0;
    std::uniform_int_distribution<int> po(0, O - 1), pi(0, I - 1);
    for (int sample = 0; sample < 300; ++sample) {
      const int o = po(rng), i = pi(rng);
      double s = 0, a = 0;
      for (int64_t r = 0; r < R; ++r) {
        const double t = (double)__bfloat162float(hg[r * O + o]) * __bfloat162float(hx[r * I + i]);
        s += t, a += std::fabs(t);
      }
      werr = std::max(werr, std::fabs(w1[(size_t)o * I + i] - s) / a);
      lterr = std::max(lterr, std::fabs(w0[(size_t)o * I + i] - s) / a);
    }
    for (int o = 0; o < O; ++o) {
      double s = 0, a = 0;
      for (int64_t r = 0; r < R; ++r) {
        const double t = __bfloat162float(hg[r * O + o]);
        s += t, a += std::fabs(t);
      }
      berr = std::max(berr, std::fabs(b1[o] - s) / a);
    }
    const bool same = std::memcmp(w1.data(), w2.data(), w1.size() * 4) == 0 && std::memcmp(b1.data(), b2.data(), O * 4) == 0;
    std::printf("| %s (%lld x %d -> %d) | %.1f | %.1f, %.1f, %.1f | %d, %d, %d | %.1e (cuBLASLt %.1e) | %.1e | %s |\n", c.name,
                (long long)R, I, O, 1e3 * t_lt, 1e3 * t_ours[0], 1e3 * t_ours[1], 1e3 * t_ours[2], splits_used[0],
                splits_used[1], splits_used[2], werr, lterr, berr, same ? "yes" : "no");
    cudaFree(x), cudaFree(g), cudaFree(dw0), cudaFree(dw1), cudaFree(dw2), cudaFree(db1), cudaFree(db2);
    cublasLtMatmulDescDestroy(desc);
  }
  return 0;
}

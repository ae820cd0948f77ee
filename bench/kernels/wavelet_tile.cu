// Standalone bench of wavelet analysis kernel designs (issue 16), outside the library so that
// it compiles in seconds on the GPU machine:
//   nvcc -std=c++20 -O3 -arch=sm_90 -lineinfo bench/kernels/wavelet_tile.cu -o /tmp/wt && /tmp/wt
// One dwt level, periodization, per-channel filters of K = 16 taps, two bands, on (A, N, C) =
// (32, 2000, 128), channels innermost. Every variant is checked against a float64 host sum
// on random data before it is timed; times are medians of 50 launches (CUDA events).
//   copy      16-byte vector copy of the signal into one band-sized output pair (the bytes of
//             analysis: read S, write S)
//   stream    the library's v4 design: a thread per channel and run of 16 outputs, its input
//             window and both bands' taps in registers
//   tile<R>   a block stages its input rows (64 channels) into shared memory with 16-byte
//             loads, all issued before any is stored; the taps of the block's channels too;
//             then a thread takes 2 channels x R output rows, its window of 2R + K - 2 rows
//             read from shared memory into registers, the taps read per k
//   pipe<NT>  tile<8> walking NT output tiles per block, the next tile's rows copied as they
//             are by cp.async while it computes the current one (WT_PROFILE=1 under ncu:
//             each variant launches once, untimed)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#define CK(x)                                                                      \
  do {                                                                             \
    cudaError_t e = (x);                                                           \
    if (e != cudaSuccess) {                                                        \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

template <typename T> __device__ __forceinline__ float tof(T v);
template <> __device__ __forceinline__ float tof(float v) { return v; }
template <> __device__ __forceinline__ float tof(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T fromf(float v);
template <> __device__ __forceinline__ float fromf(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 fromf(float v) { return __float2bfloat16(v); }

// Two channels at once.
template <typename T> struct Pair;
template <> struct Pair<float> {
  using P = float2;
  __device__ static float2 f2(float2 v) { return v; }
  __device__ static float2 to(float2 v) { return v; }
};
template <> struct Pair<__nv_bfloat16> {
  using P = __nv_bfloat162;
  __device__ static float2 f2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
  __device__ static __nv_bfloat162 to(float2 v) { return __float22bfloat162_rn(v); }
};

constexpr int K = 16;

__device__ __forceinline__ int wrap(int p, int N) { return ((p % N) + N) % N; }

// outs[f][a, o, c] = sum_k w[f][k, c] x[a, (2 o + k - (K - 2)) mod N... ] : periodization with
// the input shifted as pywt's (start = -(K - 2) / 2 ... here simply 2 o + k + start, start = -7).
constexpr int kStart = -(K / 2 - 1);

template <typename T>
__global__ void copy_kernel(const T* x, T* y0, T* y1, long n_half) {
  const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;  // 16-byte units
  const long units = n_half * sizeof(T) / 16;
  const uint4* src = reinterpret_cast<const uint4*>(x);
  if (i < units) reinterpret_cast<uint4*>(y0)[i] = src[i];
  else if (i < 2 * units) reinterpret_cast<uint4*>(y1)[i - units] = src[i];
}

// ---- v4: streaming, thread per channel ---------------------------------------------------
constexpr int kRun = 16, kRows = 8;
template <typename T>
__global__ void __launch_bounds__(256) stream_kernel(const T* x, const float* w, T* out0, T* out1, int N, int L,
                                                      int C) {
  const int c = blockIdx.x * 32 + threadIdx.x, a = blockIdx.z;
  const int o0 = (blockIdx.y * kRows + threadIdx.y) * kRun;
  if (c >= C || o0 >= L) return;
  float wr[2][K];
#pragma unroll
  for (int f = 0; f < 2; ++f)
#pragma unroll
    for (int k = 0; k < K; ++k) wr[f][k] = w[(f * K + k) * C + c];
  constexpr int W = 2 * kRun + K - 2;
  float xr[W];
  const T* xc = x + (long)a * N * C + c;
  const int p0 = 2 * o0 + kStart;
  if (p0 >= 0 && p0 + W <= N) {
    const T* s = xc + (long)p0 * C;
#pragma unroll
    for (int r = 0; r < W; ++r) xr[r] = tof(s[(long)r * C]);
  } else {
#pragma unroll
    for (int r = 0; r < W; ++r) xr[r] = tof(xc[(long)wrap(p0 + r, N) * C]);
  }
#pragma unroll
  for (int r = 0; r < kRun; ++r) {
    float a0 = 0, a1 = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) a0 = fmaf(wr[0][k], xr[2 * r + k], a0), a1 = fmaf(wr[1][k], xr[2 * r + k], a1);
    const int o = o0 + r;
    if (o < L) {
      out0[((long)a * L + o) * C + c] = fromf<T>(a0);
      out1[((long)a * L + o) * C + c] = fromf<T>(a1);
    }
  }
}

constexpr int kTC = 64;  // channels per block: 32 thread columns x 2

// Thread (tx, ty) of a tile staged in xs (T, rows from 2 o0 + kStart) and its taps in ws: channels
// c0 + 2 tx, + 1, output rows o0 + ty R .. + R - 1 of both bands.
template <typename T, int R>
__device__ __forceinline__ void tile_compute(const T* xs, const float* ws, T* out0, T* out1, int a, int o0, int c0,
                                             int L, int C) {
  using PT = typename Pair<T>::P;
  const int tx = threadIdx.x, ty = threadIdx.y;
  constexpr int W = 2 * R + K - 2;
  float2 xr[W];
  const PT* xp = reinterpret_cast<const PT*>(xs) + (2 * ty * R) * (kTC / 2) + tx;
#pragma unroll
  for (int r = 0; r < W; ++r) xr[r] = Pair<T>::f2(xp[r * (kTC / 2)]);
  float2 acc[2][R];
#pragma unroll
  for (int f = 0; f < 2; ++f)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[f][r] = make_float2(0.f, 0.f);
  const float2* wp = reinterpret_cast<const float2*>(ws) + tx;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float2 w0 = wp[k * (kTC / 2)], w1 = wp[(K + k) * (kTC / 2)];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float2 v = xr[2 * r + k];
      acc[0][r].x = fmaf(w0.x, v.x, acc[0][r].x);
      acc[0][r].y = fmaf(w0.y, v.y, acc[0][r].y);
      acc[1][r].x = fmaf(w1.x, v.x, acc[1][r].x);
      acc[1][r].y = fmaf(w1.y, v.y, acc[1][r].y);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int o = o0 + ty * R + r;
    if (o < L) {
      const long at = ((long)a * L + o) * C + c0 + 2 * tx;
      *reinterpret_cast<PT*>(out0 + at) = Pair<T>::to(acc[0][r]);
      *reinterpret_cast<PT*>(out1 + at) = Pair<T>::to(acc[1][r]);
    }
  }
}

// ---- tile: shared-memory staging with 16-byte loads --------------------------------------
template <typename T, int R>
__global__ void __launch_bounds__(256) tile_kernel(const T* x, const float* w, T* out0, T* out1, int N, int L,
                                                    int C) {
  constexpr int TY = 8, TO = TY * R, ROWS = 2 * TO + K - 2;
  constexpr int UNITS_ROW = kTC * (int)sizeof(T) / 16;  // 16-byte units per staged row
  constexpr int UNITS = ROWS * UNITS_ROW, PER = (UNITS + 255) / 256;
  __shared__ __align__(16) T xs[ROWS * kTC];
  __shared__ __align__(16) float ws[2 * K * kTC];
  const int tid = threadIdx.y * 32 + threadIdx.x;
  const int c0 = blockIdx.x * kTC, o0 = blockIdx.y * TO, a = blockIdx.z;
  const T* xa = x + (long)a * N * C + c0;
  const int p0 = 2 * o0 + kStart;
  // Stage: every load first, then every store.
  uint4 buf[PER];
  const bool plain = p0 >= 0 && p0 + ROWS <= N;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int u = tid + 256 * i;
    if (u < UNITS) {
      const int r = u / UNITS_ROW, cu = u % UNITS_ROW;
      const int p = plain ? p0 + r : wrap(p0 + r, N);
      buf[i] = reinterpret_cast<const uint4*>(xa + (long)p * C)[cu];
    }
  }
  for (int i = tid; i < 2 * K * kTC; i += 256) {
    const int fk = i / kTC, cc = i % kTC;
    ws[i] = w[fk * C + c0 + cc];
  }
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int u = tid + 256 * i;
    if (u < UNITS) reinterpret_cast<uint4*>(xs)[u] = buf[i];
  }
  __syncthreads();
  tile_compute<T, R>(xs, ws, out0, out1, a, o0, c0, L, C);
}

// ---- pipe<NT>: a block walks NT output tiles of one (a, channel tile), staging the next ----
// tile's rows with cp.async (raw T in shared memory, no registers) while it computes the current
// one; the taps are staged once per block. Rows are read as T pairs and converted in registers.
__device__ __forceinline__ void cp16(void* smem, const void* gmem) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

template <typename T, int NT>
__global__ void __launch_bounds__(256) pipe_kernel(const T* x, const float* w, T* out0, T* out1, int N, int L, int C) {
  constexpr int R = 8, TY = 8, TO = TY * R, ROWS = 2 * TO + K - 2;
  constexpr int UPR = kTC * (int)sizeof(T) / 16, UNITS = ROWS * UPR;
  extern __shared__ __align__(16) unsigned char smem[];
  T* xs = reinterpret_cast<T*>(smem);                       // [2][ROWS][kTC]
  float* ws = reinterpret_cast<float*>(xs + 2 * ROWS * kTC);  // [2][K][kTC]
  const int tid = threadIdx.y * 32 + threadIdx.x;
  const int c0 = blockIdx.x * kTC, a = blockIdx.z;
  const int tiles = (L + TO - 1) / TO, t0 = blockIdx.y * NT;
  const int nt = min(NT, tiles - t0);
  const T* xa = x + (long)a * N * C + c0;
  auto stage = [&](int t, int buf) {
    const int p0 = 2 * (t0 + t) * TO + kStart;
    T* dst = xs + buf * ROWS * kTC;
    const bool plain = p0 >= 0 && p0 + ROWS <= N;
    for (int u = tid; u < UNITS; u += 256) {
      const int r = u / UPR, cu = u % UPR;
      const int p = plain ? p0 + r : wrap(p0 + r, N);
      cp16(dst + r * kTC + cu * (16 / sizeof(T)), xa + (long)p * C + cu * (16 / sizeof(T)));
    }
    cp_commit();
  };
  stage(0, 0);
  for (int i = tid; i < 2 * K * kTC; i += 256) ws[i] = w[(i / kTC) * C + c0 + i % kTC];
  for (int t = 0; t < nt; ++t) {
    if (t + 1 < nt) {
      stage(t + 1, (t + 1) & 1);
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    tile_compute<T, R>(xs + (t & 1) * ROWS * kTC, ws, out0, out1, a, (t0 + t) * TO, c0, L, C);
    __syncthreads();  // every read of this buffer is done before it is staged again
  }
}

template <typename T>
float host_val(const std::vector<T>& v, size_t i);
template <> float host_val(const std::vector<float>& v, size_t i) { return v[i]; }
template <> float host_val(const std::vector<__nv_bfloat16>& v, size_t i) { return __bfloat162float(v[i]); }

template <typename T>
void run(const char* dtype) {
  const int A = 32, N = 2000, C = 128, L = N / 2;
  const size_t nx = (size_t)A * N * C, nb = (size_t)A * L * C;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<T> hx(nx);
  for (auto& v : hx) v = T(nd(rng));
  std::vector<float> hw(2 * K * C);
  for (auto& v : hw) v = nd(rng) * 0.25f;
  T *x, *o0, *o1;
  float* w;
  CK(cudaMalloc(&x, nx * sizeof(T)));
  CK(cudaMalloc(&o0, nb * sizeof(T)));
  CK(cudaMalloc(&o1, nb * sizeof(T)));
  CK(cudaMalloc(&w, hw.size() * 4));
  CK(cudaMemcpy(x, hx.data(), nx * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(w, hw.data(), hw.size() * 4, cudaMemcpyHostToDevice));
  // Reference at a few sampled points (all a, several o at both ends and inside).
  auto check = [&](const char* name) {
    std::vector<T> g0(nb), g1(nb);
    CK(cudaMemcpy(g0.data(), o0, nb * sizeof(T), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(g1.data(), o1, nb * sizeof(T), cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int a = 0; a < A; a += 7)
      for (int o : {0, 1, 2, 3, 63, 64, 500, 997, 998, 999})
        for (int c = 0; c < C; c += 5) {
          double s0 = 0, s1 = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            int p = ((2 * o + k + kStart) % N + N) % N;
            const double xv = host_val(hx, ((size_t)a * N + p) * C + c);
            s0 += hw[k * C + c] * xv, s1 += hw[(K + k) * C + c] * xv, mag += std::fabs(hw[k * C + c] * xv);
          }
          const size_t at = ((size_t)a * L + o) * C + c;
          worst = std::max(worst, std::max(std::fabs(host_val(g0, at) - s0), std::fabs(host_val(g1, at) - s1)) / (mag + 1e-6));
        }
    const double tol = sizeof(T) == 2 ? 1e-2 : 1e-5;
    std::printf("  %-10s max rel err %.2e %s\n", name, worst, worst < tol ? "ok" : "WRONG");
  };
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  // WT_PROFILE=1 (under ncu): each variant launches once after its check, untimed.
  const bool profile = std::getenv("WT_PROFILE") != nullptr;
  auto timeit = [&](auto launch) {
    if (profile) return 0.0f;
    for (int i = 0; i < 5; ++i) launch();
    std::vector<float> ms;
    for (int i = 0; i < 50; ++i) {
      CK(cudaEventRecord(e0));
      launch();
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float t;
      CK(cudaEventElapsedTime(&t, e0, e1));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[25] * 1e3f;  // us
  };
  const double bytes = 2.0 * nx * sizeof(T);
  auto report = [&](const char* name, float us) {
    std::printf("| %s | %s | %.1f | %.0f |\n", dtype, name, us, bytes / (us * 1e-6) / 1e9);
  };
  const long units = (long)nb * sizeof(T) / 16;
  report("copy", timeit([&] { copy_kernel<T><<<(unsigned)((2 * units + 255) / 256), 256>>>(x, o0, o1, (long)nb); }));
  CK(cudaGetLastError());
  auto st = [&] { stream_kernel<T><<<dim3(C / 32, (L + kRun * kRows - 1) / (kRun * kRows), A), dim3(32, kRows)>>>(x, w, o0, o1, N, L, C); };
  st();
  CK(cudaDeviceSynchronize());
  check("stream");
  report("stream", timeit(st));
  auto tile = [&](auto r_const) {
    constexpr int R = decltype(r_const)::value;
    auto go = [&] { tile_kernel<T, R><<<dim3(C / kTC, (L + 8 * R - 1) / (8 * R), A), dim3(32, 8)>>>(x, w, o0, o1, N, L, C); };
    CK(cudaMemset(o0, 0, nb * sizeof(T)));
    go();
    CK(cudaDeviceSynchronize());
    char name[32];
    std::snprintf(name, sizeof name, "tile R=%d", R);
    check(name);
    report(name, timeit(go));
  };
  tile(std::integral_constant<int, 2>{});
  tile(std::integral_constant<int, 4>{});
  tile(std::integral_constant<int, 8>{});
  auto pipe = [&](auto n_const) {
    constexpr int NT = decltype(n_const)::value;
    const int tiles = (L + 63) / 64;
    const int smem = 2 * (2 * 64 + K - 2) * kTC * (int)sizeof(T) + 2 * K * kTC * 4;
    CK(cudaFuncSetAttribute(pipe_kernel<T, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    auto go = [&] { pipe_kernel<T, NT><<<dim3(C / kTC, (tiles + NT - 1) / NT, A), dim3(32, 8), smem>>>(x, w, o0, o1, N, L, C); };
    CK(cudaMemset(o0, 0, nb * sizeof(T)));
    go();
    CK(cudaDeviceSynchronize());
    char name[32];
    std::snprintf(name, sizeof name, "pipe NT=%d", NT);
    check(name);
    report(name, timeit(go));
  };
  pipe(std::integral_constant<int, 1>{});
  pipe(std::integral_constant<int, 2>{});
  pipe(std::integral_constant<int, 4>{});
  pipe(std::integral_constant<int, 8>{});
  CK(cudaFree(x));
  CK(cudaFree(o0));
  CK(cudaFree(o1));
  CK(cudaFree(w));
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s; analysis of (32, 2000, 128), K 16, two bands; GB/s of read S + write S\n", prop.name);
  std::printf("| dtype | kernel | us | GB/s |\n| --- | --- | --- | --- |\n");
  run<float>("fp32");
  run<__nv_bfloat16>("bf16");
}

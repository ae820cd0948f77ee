// Real FFTs on CUDA through cuFFT, the twins of backends/cpu/fft.cpp.
//
// The signals of an (A, n, C) tensor run along the middle dim with stride C. cuFFT's
// advanced layout can express one level of batching (C signals of one a, or the A signals of
// one c), not both, so every call goes through contiguous scratch instead:
//
//   r2c: x (A, n, C) --transpose--> (A, C, n) --R2C, batch A*C--> (A, C, m) complex
//        --transpose, exact zero Im of bins 0 and n/2--> spec (A, m, C, 2)
//   c2r: spec --transpose, zero Im of bins 0 and n/2--> (A, C, m) --C2R--> (A, C, n)
//        --transpose, times scale--> x (A, n, C)
//
// The transposes are the copies we need anyway: cuFFT's C2R overwrites its input, and the
// edge bins must be cleaned before it and after R2C. The scratch is fresh from the allocator,
// so cuFFT always sees aligned pointers, whatever the caller's offsets. Two extra passes over
// memory are the price; a direct strided plan for C == 1 or A == 1 could save them later.
//
// Plans are cached by (n, batch, direction, dtype); cuFFT plans carry their own work area.
#include <cufft.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

const char* cufft_status_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cuFFT status";
  }
}

void check_cufft(cufftResult status, const char* call, const char* file, int line) {
  if (status == CUFFT_SUCCESS) return;
  throw Error(str("cuFFT error in ", call, " at ", file, ":", line, ": ", cufft_status_name(status),
                  " (", (int)status, ")"));
}
#define WAVSPA_CUFFT_CHECK(call) check_cufft((call), #call, __FILE__, __LINE__)

// ---- plan cache ------------------------------------------------------------------------------

// A sweep over many lengths or batch sizes must not keep every plan (and its work area) alive.
constexpr size_t kMaxPlans = 16;

struct PlanCache {
  std::mutex mutex;
  // (n, batch, inverse, float64) -> plan
  std::map<std::tuple<int64_t, int64_t, bool, bool>, cufftHandle> plans;
};

PlanCache& plan_cache() {
  // Never destroyed (see gemm.cu's handle): plans outlive static destruction harmlessly.
  static PlanCache* cache = new PlanCache;
  return *cache;
}

// A plan for `batch` contiguous signals of length n (R2C: reals with distance n in, n/2 + 1
// complex bins with distance n/2 + 1 out; C2R the reverse). Call with the cache's mutex held.
cufftHandle plan_for(PlanCache& cache, int64_t n, int64_t batch, bool inverse, bool is_double) {
  const auto key = std::make_tuple(n, batch, inverse, is_double);
  auto it = cache.plans.find(key);
  if (it != cache.plans.end()) return it->second;
  if (cache.plans.size() >= kMaxPlans) {
    // Nothing may still be running on a plan's work area when it is freed.
    WAVSPA_CUDA_CHECK(cudaStreamSynchronize(stream()));
    for (auto& [k, p] : cache.plans) WAVSPA_CUFFT_CHECK(cufftDestroy(p));
    cache.plans.clear();
  }
  const cufftType type = is_double ? (inverse ? CUFFT_Z2D : CUFFT_D2Z)
                                   : (inverse ? CUFFT_C2R : CUFFT_R2C);
  cufftHandle plan = 0;
  WAVSPA_CUFFT_CHECK(cufftCreate(&plan));
  long long dims[1] = {(long long)n};
  size_t work = 0;
  // null embeds: the basic layout (contiguous signals), so strides and distances are implied
  const cufftResult made = cufftMakePlanMany64(plan, 1, dims, nullptr, 1, 0, nullptr, 1, 0, type,
                                               (long long)batch, &work);
  if (made != CUFFT_SUCCESS) {
    cufftDestroy(plan);
    check_cufft(made, "cufftMakePlanMany64", __FILE__, __LINE__);
  }
  cache.plans.emplace(key, plan);
  return plan;
}

// ---- layout kernels --------------------------------------------------------------------------

// Element functors applied while transposing: f(value, r, s) with (r, s) the element's
// position in the (R, S) input matrix.
struct Identity {
  template <typename E>
  __device__ E operator()(E v, int64_t, int64_t) const { return v; }
};

template <typename T>
struct Scale {
  T factor;
  __device__ T operator()(T v, int64_t, int64_t) const { return factor * v; }
};

// A complex bin as the spectra store it: two T's with T's alignment only, since a spectrum
// tensor may start at any element offset (cuFFT's float2 / double2 want twice that).
template <typename T>
struct Pair {
  T re, im;
};

// Complex bins as (real, imag) pairs; zeroes the imaginary part of bin 0 and (n even) bin
// n / 2, where the bin index is r (bin_in_rows) or s of the input matrix.
template <typename E>
struct CleanEdgeBins {
  int64_t m;
  bool even;
  bool bin_in_rows;
  __device__ E operator()(E v, int64_t r, int64_t s) const {
    const int64_t k = bin_in_rows ? r : s;
    if (k == 0 || (even && k == m - 1)) v.im = 0;
    return v;
  }
};

// out (A, S, R) = f(in (A, R, S)) transposed in each of the A matrices, through 32 x 32 tiles
// in shared memory so that both the reads and the writes are coalesced. Threads (32, 8).
constexpr int kTileDim = 32, kTileRowsPerPass = 8;

template <typename E, typename F>
__global__ void transpose_kernel(const E* in, E* out, int64_t A, int64_t R, int64_t S, F f) {
  __shared__ E tile[kTileDim][kTileDim + 1];  // +1: no bank conflicts on the column reads
  const int64_t s0 = (int64_t)blockIdx.x * kTileDim;
  for (int64_t a = blockIdx.z; a < A; a += gridDim.z)
    for (int64_t r0 = (int64_t)blockIdx.y * kTileDim; r0 < R; r0 += (int64_t)gridDim.y * kTileDim) {
      for (int i = threadIdx.y; i < kTileDim; i += kTileRowsPerPass) {
        const int64_t r = r0 + i, s = s0 + threadIdx.x;
        if (r < R && s < S) tile[i][threadIdx.x] = f(in[(a * R + r) * S + s], r, s);
      }
      __syncthreads();
      for (int i = threadIdx.y; i < kTileDim; i += kTileRowsPerPass) {
        const int64_t s = s0 + i, r = r0 + threadIdx.x;
        if (s < S && r < R) out[(a * S + s) * R + r] = tile[threadIdx.x][i];
      }
      __syncthreads();  // the tile is reused by the next (a, r0)
    }
}

// The same map for matrices with R == 1 or S == 1, where a transpose is a plain copy.
template <typename E, typename F>
__global__ void transpose_flat_kernel(const E* in, E* out, int64_t A, int64_t R, int64_t S, F f) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < A * R * S;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i % R, s = (i / R) % S, a = i / (R * S);  // i indexes out (A, S, R)
    out[i] = f(in[(a * R + r) * S + s], r, s);
  }
}

template <typename E, typename F>
void transpose(const E* in, E* out, int64_t A, int64_t R, int64_t S, F f) {
  if (A * R * S == 0) return;
  if (R == 1 || S == 1) {
    transpose_flat_kernel<E, F><<<blocks_for(A * R * S), kThreads, 0, stream()>>>(in, out, A, R, S, f);
  } else {
    const int64_t gx = (S + kTileDim - 1) / kTileDim, gy = (R + kTileDim - 1) / kTileDim;
    const dim3 grid((unsigned)gx, (unsigned)std::min<int64_t>(gy, 65535),
                    (unsigned)std::min<int64_t>(A, 65535));
    transpose_kernel<E, F><<<grid, dim3(kTileDim, kTileRowsPerPass), 0, stream()>>>(in, out, A, R, S, f);
  }
  WAVSPA_CUDA_LAUNCH_CHECK();
}

// n == 1: the transform is the identity on bin 0 (no cuFFT plan for a length of one).
template <typename T>
__global__ void r2c_length_one(const T* x, T* spec, int64_t count) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
       i += (int64_t)gridDim.x * blockDim.x) {
    spec[2 * i] = x[i];
    spec[2 * i + 1] = T(0);
  }
}

template <typename T>
__global__ void c2r_length_one(const T* spec, T factor, T* x, int64_t count) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
       i += (int64_t)gridDim.x * blockDim.x)
    x[i] = factor * spec[2 * i];
}

template <typename T> struct ComplexOf;
template <> struct ComplexOf<float> { using type = float2; };
template <> struct ComplexOf<double> { using type = double2; };

void exec_r2c(cufftHandle plan, float* in, float2* out) {
  WAVSPA_CUFFT_CHECK(cufftExecR2C(plan, in, reinterpret_cast<cufftComplex*>(out)));
}
void exec_r2c(cufftHandle plan, double* in, double2* out) {
  WAVSPA_CUFFT_CHECK(cufftExecD2Z(plan, in, reinterpret_cast<cufftDoubleComplex*>(out)));
}
void exec_c2r(cufftHandle plan, float2* in, float* out) {
  WAVSPA_CUFFT_CHECK(cufftExecC2R(plan, reinterpret_cast<cufftComplex*>(in), out));
}
void exec_c2r(cufftHandle plan, double2* in, double* out) {
  WAVSPA_CUFFT_CHECK(cufftExecZ2D(plan, reinterpret_cast<cufftDoubleComplex*>(in), out));
}

}  // namespace

void CudaBackend::fft_r2c(const Tensor& x, const Tensor& spec) {
  const int64_t A = x.shape()[0], n = x.shape()[1], C = x.shape()[2], m = n / 2 + 1;
  if (A * n * C == 0) return;
  dispatch_floating(x.dtype(), "fft_r2c", [&](auto zero) {
    using T = decltype(zero);
    using Cx = typename ComplexOf<T>::type;
    if (n == 1) {
      r2c_length_one<T><<<blocks_for(A * C), kThreads, 0, stream()>>>(dptr<T>(x), dptr<T>(spec), A * C);
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;
    }
    Tensor signals = scratch_bytes((size_t)A * C * n * sizeof(T), x.device());   // (A, C, n)
    Tensor bins = scratch_bytes((size_t)A * C * m * sizeof(Cx), x.device());     // (A, C, m)
    transpose(dptr<T>(x), dptr<T>(signals), A, n, C, Identity{});
    {
      PlanCache& cache = plan_cache();
      std::lock_guard<std::mutex> lock(cache.mutex);
      cufftHandle plan = plan_for(cache, n, A * C, /*inverse=*/false, std::is_same_v<T, double>);
      WAVSPA_CUFFT_CHECK(cufftSetStream(plan, stream()));
      exec_r2c(plan, dptr<T>(signals), dptr<Cx>(bins));
    }
    // (A, C, m) -> (A, m, C), bins along the input's columns; exact zeros as numpy gives
    transpose(dptr<Pair<T>>(bins), dptr<Pair<T>>(spec), A, C, m,
              CleanEdgeBins<Pair<T>>{m, n % 2 == 0, /*bin_in_rows=*/false});
  });
}

void CudaBackend::fft_c2r(const Tensor& spec, double scale, const Tensor& x) {
  const int64_t A = x.shape()[0], n = x.shape()[1], C = x.shape()[2], m = n / 2 + 1;
  if (A * n * C == 0) return;
  dispatch_floating(x.dtype(), "fft_c2r", [&](auto zero) {
    using T = decltype(zero);
    using Cx = typename ComplexOf<T>::type;
    if (n == 1) {
      c2r_length_one<T><<<blocks_for(A * C), kThreads, 0, stream()>>>(dptr<T>(spec), (T)scale,
                                                                       dptr<T>(x), A * C);
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;
    }
    Tensor bins = scratch_bytes((size_t)A * C * m * sizeof(Cx), x.device());     // (A, C, m)
    Tensor signals = scratch_bytes((size_t)A * C * n * sizeof(T), x.device());   // (A, C, n)
    // (A, m, C) -> (A, C, m): the inverse of a real signal's spectrum ignores these parts
    // (numpy.fft.irfft does too), and cuFFT must not see them.
    transpose(dptr<Pair<T>>(spec), dptr<Pair<T>>(bins), A, m, C,
              CleanEdgeBins<Pair<T>>{m, n % 2 == 0, /*bin_in_rows=*/true});
    {
      PlanCache& cache = plan_cache();
      std::lock_guard<std::mutex> lock(cache.mutex);
      cufftHandle plan = plan_for(cache, n, A * C, /*inverse=*/true, std::is_same_v<T, double>);
      WAVSPA_CUFFT_CHECK(cufftSetStream(plan, stream()));
      exec_c2r(plan, dptr<Cx>(bins), dptr<T>(signals));  // overwrites bins: our own copy
    }
    transpose(dptr<T>(signals), dptr<T>(x), A, C, n, Scale<T>{(T)scale});
  });
}

}  // namespace wavspa::cuda

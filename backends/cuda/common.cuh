// Shared by the CUDA kernel files: the current stream, launch shapes, dtype dispatch and a
// strided indexer that maps a linear element index to a memory offset. Included only by .cu
// files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "backends/cuda/cp_async.cuh"
#include "backends/cuda/cuda_runtime.h"
#include "core/error.h"
#include "core/tensor.h"

namespace wavspa::cuda {

// The stream every kernel and copy of the backend is issued on (one per process; created on
// first use with cudaStreamNonBlocking).
cudaStream_t stream();

constexpr int kThreads = 256;
// Blocks for n elements at kThreads per block, capped for grid-stride loops.
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return (unsigned)b;
}

// Streaming multiprocessors of device 0 (asked once): launch shapes that aim at a wave of blocks.
inline int sm_count() {
  static const int n = [] {
    int v = 0;
    WAVSPA_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0));
    return v > 0 ? v : 1;
  }();
  return n;
}

// Checks the last launch (configuration errors surface here, not at the next sync).
#define WAVSPA_CUDA_LAUNCH_CHECK() WAVSPA_CUDA_CHECK(cudaGetLastError())

// Up to kMaxDims dims (wavspa tensors have at most 8 in practice; more is an error).
constexpr int kMaxDims = 10;

struct Indexer {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
  // Memory offset (in elements, from the tensor's data pointer) of row-major element i.
  __host__ __device__ int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = size[d];
      off += (i % s) * stride[d];
      i /= s;
    }
    return off;
  }
};

inline Indexer make_indexer(const Tensor& t) {
  Indexer ix;
  WAVSPA_CHECK(t.dim() <= kMaxDims, "CUDA backend: tensors of more than ", kMaxDims, " dims are not supported, got ",
               t.describe());
  ix.ndim = (int)t.dim();
  for (int d = 0; d < ix.ndim; ++d) ix.size[d] = t.shape()[d], ix.stride[d] = t.strides()[d];
  return ix;
}

// `#pragma unroll` for the device pass only: the host compiler would warn about it in
// __host__ __device__ functions.
#if defined(__CUDA_ARCH__)
#define WAVSPA_UNROLL _Pragma("unroll")
#else
#define WAVSPA_UNROLL
#endif

// ---- joint strided layouts of several tensors ---------------------------------------------
//
// N tensors of one shape (output first) with arbitrary strides, seen together the way the
// CPU's StridedLoop sees them: size-1 dims dropped, and dim d merged into d + 1 wherever
// every tensor is contiguous across the two. A contiguous tensor becomes one dim of stride 1,
// and so does a (B, D) + (D) bias add's output, while the bias keeps two dims (stride 0, 1).
// Fewer dims mean fewer divisions per element in offsets().
template <int N>
struct StridedN {
  int ndim = 0;
  bool narrow = false;  // every linear index fits in 32 bits: cheaper division
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  // Element offsets (from each tensor's data pointer) of row-major element i.
  __host__ __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
    WAVSPA_UNROLL
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (narrow) {
      uint32_t li = (uint32_t)i;
      for (int d = ndim - 1; d >= 0; --d) {
        const uint32_t s = (uint32_t)size[d];
        const uint32_t q = li / s;
        const int64_t c = (int64_t)(li - q * s);
        li = q;
        WAVSPA_UNROLL
        for (int k = 0; k < N; ++k) off[k] += c * stride[k][d];
      }
    } else {
      for (int d = ndim - 1; d >= 0; --d) {
        const int64_t s = size[d];
        const int64_t q = i / s;
        const int64_t c = i - q * s;
        i = q;
        WAVSPA_UNROLL
        for (int k = 0; k < N; ++k) off[k] += c * stride[k][d];
      }
    }
  }
  // One dim left: offsets are i * stride, no division at all.
  bool linear() const { return ndim == 1; }
  bool contiguous() const {
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k)
      if (stride[k][0] != 1) return false;
    return true;
  }
};

template <int N>
StridedN<N> make_strided(const std::array<Tensor, N>& ts) {
  const Shape& shape = ts[0].shape();
  int64_t sz[64];
  int64_t st[N][64];
  WAVSPA_CHECK(shape.size() <= 64, "CUDA backend: too many dims in ", ts[0].describe());
  int nd = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    sz[nd] = shape[d];
    for (int k = 0; k < N; ++k) st[k][nd] = ts[k].strides()[d];
    ++nd;
  }
  // Merge from the inside out, in place: dims [0, nd) are kept compacted.
  for (int d = nd - 2; d >= 0; --d) {
    bool mergeable = true;
    for (int k = 0; k < N; ++k) mergeable &= st[k][d] == st[k][d + 1] * sz[d + 1];
    if (!mergeable) continue;
    sz[d] *= sz[d + 1];
    for (int k = 0; k < N; ++k) st[k][d] = st[k][d + 1];
    for (int e = d + 1; e + 1 < nd; ++e) {
      sz[e] = sz[e + 1];
      for (int k = 0; k < N; ++k) st[k][e] = st[k][e + 1];
    }
    --nd;
  }
  StridedN<N> L;
  if (nd == 0) {  // a single element
    L.ndim = 1;
    L.size[0] = 1;
    for (int k = 0; k < N; ++k) L.stride[k][0] = 1;
  } else {
    WAVSPA_CHECK(nd <= kMaxDims, "CUDA backend: tensors whose strides leave more than ", kMaxDims,
                 " dims after merging are not supported, got ", ts[0].describe());
    L.ndim = nd;
    for (int d = 0; d < nd; ++d) {
      L.size[d] = sz[d];
      for (int k = 0; k < N; ++k) L.stride[k][d] = st[k][d];
    }
  }
  L.narrow = shape_numel(shape) <= (int64_t)INT32_MAX;
  return L;
}

// Grid-stride loops over n elements calling f(off) with each tensor's element offset. Four
// versions, picked on the host: all tensors contiguous (off = i), one merged dim (off =
// i * stride), two (below), and the general case through StridedN::offsets.
template <int N, typename F>
__global__ void strided_contiguous_kernel(int64_t n, F f) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i;
    f(off);
  }
}

template <int N, typename F>
__global__ void strided_linear_kernel(int64_t n, StridedN<N> L, F f) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i * L.stride[k][0];
    f(off);
  }
}

template <int N, typename F>
__global__ void strided_general_kernel(int64_t n, StridedN<N> L, F f) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[N];
    L.offsets(i, off);
    f(off);
  }
}

// Two merged dims (a broadcast row, a transposed matrix, a row slice): columns on threads'
// x, rows on threads' y and the grid's y (grid-stride), so no element pays for a division and
// short rows still fill blocks of kThreads.
template <int N, typename F>
__global__ void strided_2d_kernel(StridedN<N> L, F f) {
  const int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c >= L.size[1]) return;
  for (int64_t r = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; r < L.size[0]; r += (int64_t)gridDim.y * blockDim.y) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = r * L.stride[k][0] + c * L.stride[k][1];
    f(off);
  }
}

// Functors that can also move eight neighbouring elements at once:
//   __device__ void vec8(const int64_t (&off)[N], const int64_t (&inner)[N], int count) const
// does elements off[k] + c * inner[k], c < count <= 8, of each tensor k, with inner[0] = 1 (the
// output) and inner[k] 1 or 0 (a broadcast) for the inputs; load_vec8 / store_vec8 (below)
// move them as 16-byte words where they are aligned. A bfloat16 add then moves 16 bytes per
// load instead of 2.
template <typename F, int N>
concept Vec8Functor = requires(const F& f, const int64_t (&off)[N], const int64_t (&inner)[N]) {
  f.vec8(off, inner, 8);
};

// Eight elements per thread step: all tensors contiguous.
template <int N, typename F>
__global__ void vec8_contiguous_kernel(int64_t n, F f) {
  const int64_t groups = (n + 7) / 8;
  for (int64_t gi = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; gi < groups;
       gi += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[N], inner[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = gi * 8, inner[k] = 1;
    f.vec8(off, inner, n - gi * 8 < 8 ? (int)(n - gi * 8) : 8);
  }
}

// Two merged dims whose inner one is contiguous or broadcast for every tensor (a bias added to
// rows, rows scaled by a per-row mask): eight columns of one row per thread step.
template <int N, typename F>
__global__ void vec8_rows_kernel(StridedN<N> L, F f) {
  const int64_t cols = L.size[1], col_groups = (cols + 7) / 8, items = L.size[0] * col_groups;
  for (int64_t it = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; it < items;
       it += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = L.narrow ? (int64_t)((uint32_t)it / (uint32_t)col_groups) : it / col_groups;
    const int64_t c0 = (it - r * col_groups) * 8;
    int64_t off[N], inner[N];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = r * L.stride[k][0] + c0 * L.stride[k][1], inner[k] = L.stride[k][1];
    f.vec8(off, inner, cols - c0 < 8 ? (int)(cols - c0) : 8);
  }
}

template <int N>
bool vec8_rows_layout(const StridedN<N>& L) {
  if (L.ndim != 2 || L.stride[0][1] != 1) return false;
  for (int k = 1; k < N; ++k)
    if (L.stride[k][1] != 0 && L.stride[k][1] != 1) return false;
  return true;
}

// Runs f over every element of N same-shape tensors (output first); f is a functor with
// `__device__ void operator()(const int64_t (&off)[N]) const`, and maybe vec8 (above).
template <int N, typename F>
void for_each_element(const std::array<Tensor, N>& ts, const F& f) {
  const int64_t n = ts[0].numel();
  if (n == 0) return;
  const StridedN<N> L = make_strided<N>(ts);
  if constexpr (Vec8Functor<F, N>) {
    if (L.contiguous()) {
      vec8_contiguous_kernel<N, F><<<blocks_for((n + 7) / 8), kThreads, 0, stream()>>>(n, f);
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;
    }
    if (vec8_rows_layout(L)) {
      vec8_rows_kernel<N, F><<<blocks_for(L.size[0] * ((L.size[1] + 7) / 8)), kThreads, 0, stream()>>>(L, f);
      WAVSPA_CUDA_LAUNCH_CHECK();
      return;
    }
  }
  if (L.contiguous())
    strided_contiguous_kernel<N, F><<<blocks_for(n), kThreads, 0, stream()>>>(n, f);
  else if (L.linear())
    strided_linear_kernel<N, F><<<blocks_for(n), kThreads, 0, stream()>>>(n, L, f);
  else if (L.ndim == 2) {
    // A block of kThreads: a row's columns (a multiple of 32, up to kThreads) times as many rows
    // as fit. Each thread loops over rows, at most ~16 blocks per SM's worth of the grid: one
    // block per short row made the launch of tens of thousands of tiny blocks the cost.
    const int64_t cols = L.size[1];
    const int tx = cols >= kThreads ? kThreads : (int)((cols + 31) / 32 * 32);
    const int ty = kThreads / tx;
    const int64_t row_blocks = (L.size[0] + ty - 1) / ty;
    const dim3 grid((unsigned)((cols + tx - 1) / tx), (unsigned)std::min<int64_t>(row_blocks, 2048));
    strided_2d_kernel<N, F><<<grid, dim3(tx, ty), 0, stream()>>>(L, f);
  } else
    strided_general_kernel<N, F><<<blocks_for(n), kThreads, 0, stream()>>>(n, L, f);
  WAVSPA_CUDA_LAUNCH_CHECK();
}

// ---- bfloat16: stored as bf16, computed in float -------------------------------------------
//
// A kernel templated on its storage type T computes in Compute<T> (float for bf16, T itself
// otherwise): it loads with to_compute, works in registers and stores with from_compute, so one
// kernel source serves float32, float64 and bfloat16. Accumulators of sums are Accum<T>: double
// for float32 and float64 (as on the CPU), float for bfloat16 (its inputs carry 8 bits).
using bf16 = __nv_bfloat16;

template <typename T> struct ComputeOf { using type = T; };
template <> struct ComputeOf<bf16> { using type = float; };
template <typename T> using Compute = typename ComputeOf<T>::type;

template <typename T> struct AccumOf { using type = double; };
template <> struct AccumOf<bf16> { using type = float; };
template <> struct AccumOf<int64_t> { using type = int64_t; };  // integer sums are exact
template <typename T> using Accum = typename AccumOf<T>::type;

// float32 -> bfloat16 exactly as core/bfloat16.h rounds on the host, bit for bit: to nearest,
// ties to even, overflow to inf, NaN kept with its sign and high payload bits, so a conversion
// gives the same bits on both devices. Every number goes through the hardware's rounding
// (cvt.rn.bf16.f32 behind __float2bfloat16_rn, one instruction where the integer formula
// took six); only NaN, for which it returns one canonical NaN, takes the host's rule.
__device__ __forceinline__ bf16 float_to_bf16(float f) {
  const bf16 rounded = __float2bfloat16_rn(f);
  if (!(f != f)) [[likely]] return rounded;
  return __ushort_as_bfloat16((unsigned short)((__float_as_uint(f) >> 16) | 0x0040u));
}

template <typename T>
__device__ __forceinline__ Compute<T> to_compute(T v) {
  if constexpr (std::is_same_v<T, bf16>) return __bfloat162float(v);
  else return v;
}
// Rounds to nearest even (bf16, through float); other types pass through (a cast).
template <typename T, typename C>
__device__ __forceinline__ T from_compute(C v) {
  if constexpr (std::is_same_v<T, bf16>) return float_to_bf16((float)v);
  else return (T)v;
}

// Eight elements of T in registers: what a vec8 functor (Vec8Functor above) moves per step.
template <typename T>
struct alignas(16) Vec8 {
  T v[8];
};

// Elements p[c * inner], c < count, as load_vec8 reads them (the rest 0): one value repeated
// for inner 0, 16-byte words for 8 aligned contiguous ones (8 bytes and up per element;
// bool's 8 bytes go one by one).
template <typename T>
__device__ __forceinline__ Vec8<T> load_vec8(const T* p, int64_t inner, int count) {
  Vec8<T> r;
  if (inner == 0) {
    const T x = *p;
#pragma unroll
    for (int c = 0; c < 8; ++c) r.v[c] = x;
  } else if (sizeof(T) >= 2 && inner == 1 && count == 8 && reinterpret_cast<uintptr_t>(p) % 16 == 0) {
#pragma unroll
    for (int w = 0; w < (int)sizeof(T) / 2; ++w) reinterpret_cast<uint4*>(r.v)[w] = reinterpret_cast<const uint4*>(p)[w];
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) r.v[c] = c < count ? p[c * inner] : T{};
  }
  return r;
}

// p[c] = r.v[c] for c < count (contiguous: an output).
template <typename T>
__device__ __forceinline__ void store_vec8(T* p, const Vec8<T>& r, int count) {
  if (sizeof(T) >= 2 && count == 8 && reinterpret_cast<uintptr_t>(p) % 16 == 0) {
#pragma unroll
    for (int w = 0; w < (int)sizeof(T) / 2; ++w) reinterpret_cast<uint4*>(p)[w] = reinterpret_cast<const uint4*>(r.v)[w];
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c)
      if (c < count) p[c] = r.v[c];
  }
}

// v rounded to T and read back: an intermediate that a fused kernel rounds where the op it
// stands for would store it (x + bias before GELU, say). bfloat16 takes one cvt.rn and no NaN
// rule: a NaN stays a NaN, and the arithmetic it goes on to (all of it on the device, whose
// float32 arithmetic returns its one canonical NaN) gives the same result from any NaN. Only
// the values a kernel stores need the host's rule (from_compute, round8).
template <typename T>
__device__ __forceinline__ Compute<T> round_trip(Compute<T> v) {
  if constexpr (std::is_same_v<T, bf16>) return __bfloat162float(__float2bfloat16_rn(v));
  else return v;
}

// Eight computed values rounded to T for a store, bit for bit as from_compute rounds each.
// bfloat16: cvt.rn.bf16x2.f32 rounds two at a time, and one test for NaN among the eight
// decides whether the host's NaN rule has to be applied (a branch almost never taken) instead
// of a test and a select per element. Where the kernel's time is its instructions (bias_gelu,
// dropout), those are a third of what the roundings cost.
template <typename T>
__device__ __forceinline__ Vec8<T> round8(const Compute<T> (&v)[8]) {
  Vec8<T> r;
  if constexpr (std::is_same_v<T, bf16>) {
    uint32_t* w = reinterpret_cast<uint32_t*>(r.v);
    bool nan = false;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w[i]) : "f"(v[2 * i + 1]), "f"(v[2 * i]));  // a: high half
      nan |= (v[2 * i] != v[2 * i]) | (v[2 * i + 1] != v[2 * i + 1]);
    }
    if (nan) [[unlikely]] {
#pragma unroll
      for (int c = 0; c < 8; ++c) r.v[c] = float_to_bf16(v[c]);
    }
  } else {
#pragma unroll
    for (int c = 0; c < 8; ++c) r.v[c] = (T)v[c];
  }
  return r;
}

// Conversion between any two storage types, as CPU's static_cast does (bf16 through float;
// float64 and integers to bf16 rounded once, from double).
template <typename D, typename S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<S, bf16>) {
    return static_cast<D>(__bfloat162float(v));
  } else if constexpr (std::is_same_v<D, bf16>) {
    if constexpr (std::is_same_v<S, float>) return float_to_bf16(v);
    else return __double2bfloat16((double)v);  // rounded once, as the host's round-to-odd path
  } else {
    return static_cast<D>(v);
  }
}

// A host double as storage type T (bf16 rounded by core/bfloat16.h, as on the CPU).
template <typename T>
T host_value(double v) {
  if constexpr (std::is_same_v<T, bf16>) {
    __nv_bfloat16_raw raw;
    raw.x = bfloat16(v).bits;
    return bf16(raw);
  } else {
    return static_cast<T>(v);
  }
}

// Calls f(T{}) with T the C++ type of a floating dtype (float, double), for the kernels that
// have no bfloat16 version (FFT, wavelets, attention, random numbers): bfloat16 is refused
// with a message naming the kernel.
template <typename F>
void dispatch_floating(DType dt, const char* what, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::BFloat16:
      throw Error(str(what, ": no bfloat16 kernel on CUDA; convert with .to(kFloat32)"));
    default: throw Error(str(what, ": expected float32 or float64 on CUDA, got ", dt));
  }
}

// float32, float64 and bfloat16 (bf16), for kernels written with Compute<T>.
template <typename F>
void dispatch_floating_bf16(DType dt, const char* what, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::BFloat16: f(bf16{}); return;
    default: throw Error(str(what, ": expected float32, float64 or bfloat16 on CUDA, got ", dt));
  }
}

// Every dtype that is computed on: bool is refused (ops convert it before arithmetic).
template <typename F>
void dispatch_all(DType dt, const char* what, F&& f) {
  switch (dt) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Int32: f(int32_t{}); return;
    case DType::Int64: f(int64_t{}); return;
    case DType::BFloat16: f(bf16{}); return;
    case DType::Bool: throw Error(bool_compute_message(what));
  }
  throw Error(str(what, ": unknown dtype"));
}

// Every dtype, bool included, for kernels that only move, convert or select values (copy,
// fill, where).
template <typename F>
void dispatch_storage(DType dt, const char* what, F&& f) {
  if (dt == DType::Bool) return f(bool{});
  dispatch_all(dt, what, f);
}

// Device pointer of element 0 of a tensor (offset applied).
template <typename T>
T* dptr(const Tensor& t) {
  return static_cast<T*>(const_cast<void*>(t.raw_data()));
}

}  // namespace wavspa::cuda

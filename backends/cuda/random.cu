// Random kernels: the CPU's numbers (backends/cpu/random.cpp), element for element.
//
// Element i takes lane i % lanes of Philox block (offset + i / lanes): one thread per block
// computes philox4x32 (the same __host__ __device__ function as the CPU) and writes its
// lanes. The transforms are the CPU's, in double. nvcc would fuse `a + b * c` into an FMA
// where it likes; the x86-64-v3 -O3 build of the CPU kernels fuses some of them too, so
// every rounding step here is spelled out with intrinsics (__dmul_rn never fuses, __fma_rn
// always does) to follow the CPU's instruction sequence:
//  - uniform: fma(hi - lo, 1 - u, lo), then the conversion to T: bit-for-bit equal;
//  - normal: fma(std * radius, cos or sin(angle), mean) with radius = sqrt(-2 log u0) and
//    angle = 2 pi u1. CUDA's log, sin and cos are within 1-2 ulp of glibc's (not always
//    identical), so float64 values agree to ~1e-15 relative and float32 values almost
//    always exactly (an occasional 1-ulp difference after rounding);
//  - randint and dropout use integer arithmetic and comparisons only: bit-for-bit.
#include <cmath>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

namespace wavspa::cuda {
namespace {

constexpr double kTwoPi = 6.283185307179586;

// Calls f(i, r, l) for every element i = b * kLanes + l this thread owns, r the words of
// Philox block b (of `Rounds` rounds: dropout's 7, else 10): the CPU's for_each_block as a
// grid-stride loop over blocks.
template <int kLanes, int Rounds = 10, typename F>
__device__ __forceinline__ void for_each_block(int64_t n, PhiloxState s, F f) {
  const int64_t blocks = (n + kLanes - 1) / kLanes;
  const uint64_t start = philox_start(s);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks;
       b += (int64_t)gridDim.x * blockDim.x) {
    const auto r = philox4x32_rounds<Rounds>(start + (uint64_t)b, 0, s.seed);
#pragma unroll
    for (int l = 0; l < kLanes; ++l) {
      const int64_t i = b * kLanes + l;
      if (i >= n) break;
      f(i, r, l);
    }
  }
}

template <typename T>
__global__ void uniform_kernel(T* __restrict__ out, int64_t n, PhiloxState s, double lo, double span,
                               T hi_t, T below_hi, bool clamp) {
  for_each_block<4>(n, s, [=](int64_t i, const std::array<uint32_t, 4>& r, int l) {
    const double w = __dsub_rn(1.0, uint_to_unit(r[l]));  // exact: in [0, 1)
    const T v = (T)__fma_rn(span, w, lo);
    // Values within half an ulp of hi round up to it in float32: keep [lo, hi) half-open.
    out[i] = v < hi_t || !clamp ? v : below_hi;
  });
}

// Not through for_each_block: both lanes share one sincos.
template <typename T>
__global__ void normal_kernel(T* __restrict__ out, int64_t n, PhiloxState s, double mean, double std) {
  const int64_t blocks = (n + 1) / 2;
  const uint64_t start = philox_start(s);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks;
       b += (int64_t)gridDim.x * blockDim.x) {
    const auto r = philox4x32(start + (uint64_t)b, 0, s.seed);
    // Box-Muller on the block's first two words: two independent normals.
    const double radius = sqrt(__dmul_rn(-2.0, log(uint_to_unit(r[0]))));
    const double angle = __dmul_rn(kTwoPi, uint_to_unit(r[1]));
    const double scaled = __dmul_rn(std, radius);
    double sn, cs;
    sincos(angle, &sn, &cs);
    out[b * 2] = (T)__fma_rn(scaled, cs, mean);
    if (b * 2 + 1 < n) out[b * 2 + 1] = (T)__fma_rn(scaled, sn, mean);
  }
}

template <typename T>
__global__ void randint_kernel(T* __restrict__ out, int64_t n, PhiloxState s, int64_t lo, uint64_t range) {
  for_each_block<2>(n, s, [=](int64_t i, const std::array<uint32_t, 4>& r, int l) {
    const uint64_t bits = ((uint64_t)r[2 * l] << 32) | r[2 * l + 1];
    out[i] = (T)(lo + (int64_t)(bits % range));
  });
}

template <typename T>
__global__ void dropout_kernel(T* __restrict__ out, int64_t n, PhiloxState s, uint32_t threshold, T scale,
                               T zero) {
  for_each_block<8, kDropoutPhiloxRounds>(n, s, [=](int64_t i, const std::array<uint32_t, 4>& r, int l) {
    out[i] = dropout_keeps(r, l, threshold) ? scale : zero;
  });
}

// A thread owns the 8 elements of a Philox block and moves them as 16-byte words where x and
// out are aligned (load_vec8): element-wise stores 8 elements apart made the kernel bound by
// partial-sector writes instead of Philox. With `base` (dropout_add), base + the rounded value.
template <typename T>
__global__ void dropout_apply_kernel(const T* __restrict__ x, const T* __restrict__ base, T* __restrict__ out,
                                     int64_t n, PhiloxState s, uint32_t threshold, Compute<T> scale) {
  const int64_t blocks = (n + 7) / 8;
  const uint64_t start = philox_start(s);
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks;
       b += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i0 = b * 8;
    const int count = n - i0 < 8 ? (int)(n - i0) : 8;
    // Both loads before the draw, so that their latency hides under it.
    const Vec8<T> v = load_vec8(x + i0, 1, count);
    const Vec8<T> bv = base ? load_vec8(base + i0, 1, count) : Vec8<T>{};
    const auto r = dropout_philox(start + (uint64_t)b, s.seed);
    // dropout(x) rounded to T, then base + it rounded again: the bits of dropout and add.
    Compute<T> o[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const Compute<T> d = dropout_keeps(r, c, threshold) ? to_compute(v.v[c]) * scale : Compute<T>(0);
      o[c] = base ? to_compute(bv.v[c]) + round_trip<T>(d) : d;
    }
    store_vec8(out + i0, round8<T>(o), count);
  }
}

}  // namespace

void CudaBackend::uniform(const Tensor& out, PhiloxState s, double lo, double hi) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating(out.dtype(), "uniform", [&](auto zero) {
    using T = decltype(zero);
    const T hi_t = (T)hi;
    uniform_kernel<T><<<blocks_for((n + 3) / 4), kThreads, 0, stream()>>>(
        dptr<T>(out), n, s, lo, hi - lo, hi_t, std::nextafter(hi_t, (T)lo), hi > lo);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::normal(const Tensor& out, PhiloxState s, double mean, double std) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating(out.dtype(), "normal", [&](auto zero) {
    using T = decltype(zero);
    normal_kernel<T><<<blocks_for((n + 1) / 2), kThreads, 0, stream()>>>(dptr<T>(out), n, s, mean, std);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::randint(const Tensor& out, PhiloxState s, int64_t lo, int64_t hi) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const uint64_t range = (uint64_t)(hi - lo);
  dispatch_all(out.dtype(), "randint", [&](auto zero) {
    using T = decltype(zero);
    randint_kernel<T><<<blocks_for((n + 1) / 2), kThreads, 0, stream()>>>(dptr<T>(out), n, s, lo, range);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::dropout(const Tensor& x, const Tensor& out, PhiloxState s, double p, const Tensor& base) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating_bf16(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    dropout_apply_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, stream()>>>(
        dptr<const T>(x), base.defined() ? dptr<const T>(base) : nullptr, dptr<T>(out), n, s, dropout_threshold(p),
        (Compute<T>)(1.0 / (1.0 - p)));
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::dropout_mask(const Tensor& out, PhiloxState s, double p) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating_bf16(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    // bfloat16: the scale 1 / (1 - p) rounded to bfloat16, as the mask is stored.
    const T scale = host_value<T>(1.0 / (1.0 - p));
    dropout_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, stream()>>>(dptr<T>(out), n, s, dropout_threshold(p),
                                                                          scale, host_value<T>(0.0));
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace wavspa::cuda

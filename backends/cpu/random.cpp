// Random kernels. Element i draws from Philox counter (offset + i / lanes), so the numbers do
// not depend on thread count or device; the CUDA kernels compute the same function.
#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dropout.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {
namespace {

constexpr double kTwoPi = 6.283185307179586;

// Calls f(i, bits, l) for every element i, with `lanes` elements per Philox block of `Rounds`
// rounds (dropout's 7, else 10): element i is lane l = i % lanes of block i / lanes. Blocks
// are computed eight at a time (vmath::philox4x32_8, the same bits).
template <int Rounds = 10, typename F>
void for_each_block(int64_t n, int lanes, PhiloxState s, F f) {
  check_host_philox(s);
  const int64_t blocks = (n + lanes - 1) / lanes, groups = (blocks + 7) / 8;
  parallel_for(
      groups, dynamic_chunk(groups),
      [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
          uint32_t r[4][8];
          vmath::philox4x32_8<Rounds>(s.offset + (uint64_t)(g * 8), s.seed, r);
          for (int64_t b = g * 8; b < std::min(blocks, g * 8 + 8); ++b) {
            const int64_t u = b - g * 8;
            const std::array<uint32_t, 4> bits{r[0][u], r[1][u], r[2][u], r[3][u]};
            for (int l = 0; l < lanes && b * lanes + l < n; ++l) f(b * lanes + l, bits, l);
          }
        }
      },
      n >= kParallelGrain);
}

// Dropout's draws for float32, 64 elements at a time: f(i, n, keep) for elements [i, i + n)
// (n = 64 but in the last group), keep[q] lane t all ones where element i + 8 q + t is kept
// (vmath::dropout_keep64 of Philox 4x32-7 blocks i / 8 ...: the bits of for_each_block).
template <typename F>
void for_each_group64(int64_t n, PhiloxState s, uint32_t threshold, F f) {
  check_host_philox(s);
  const int64_t groups = (n + 63) / 64;
  parallel_for(
      groups, dynamic_chunk(groups),
      [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
          __m256 keep[8];
          vmath::dropout_keep64(s.offset + (uint64_t)(g * 8), s.seed, threshold, keep);
          f(g * 64, std::min<int64_t>(64, n - g * 64), keep);
        }
      },
      n >= kParallelGrain);
}

}  // namespace

void CpuBackend::uniform(const Tensor& out, PhiloxState s, double lo, double hi) {
  visit_floating(out.dtype(), "uniform", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    // unit is in (0, 1]; 1 - unit is in [0, 1), the usual half-open convention.
    for_each_block(out.numel(), 4, s, [&](int64_t i, const std::array<uint32_t, 4>& r, int l) {
      T v = (T)(lo + (hi - lo) * (1.0 - uint_to_unit(r[l])));
      // In float32, values within half an ulp of hi round up to it: keep [lo, hi) half-open.
      o[i] = v < (T)hi || !(hi > lo) ? v : std::nextafter((T)hi, (T)lo);
    });
  });
}

void CpuBackend::normal(const Tensor& out, PhiloxState s, double mean, double std) {
  visit_floating(out.dtype(), "normal", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    // Box-Muller: each block's first two words give two independent normals.
    for_each_block(out.numel(), 2, s, [&](int64_t i, const std::array<uint32_t, 4>& r, int l) {
      double radius = std::sqrt(-2.0 * std::log(uint_to_unit(r[0])));
      double angle = kTwoPi * uint_to_unit(r[1]);
      o[i] = (T)(mean + std * radius * (l == 0 ? std::cos(angle) : std::sin(angle)));
    });
  });
}

void CpuBackend::randint(const Tensor& out, PhiloxState s, int64_t lo, int64_t hi) {
  const uint64_t range = (uint64_t)(hi - lo);
  visit_dtype(out.dtype(), "randint", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    for_each_block(out.numel(), 2, s, [&](int64_t i, const std::array<uint32_t, 4>& r, int l) {
      uint64_t bits = ((uint64_t)r[2 * l] << 32) | r[2 * l + 1];
      o[i] = (T)(lo + (int64_t)(bits % range));
    });
  });
}

void CpuBackend::dropout(const Tensor& x, const Tensor& out, PhiloxState s, double p, const Tensor& base) {
  check_host_philox(s);
  visit_floating(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    const T* b = base.defined() ? static_cast<const T*>(base.raw_data()) : nullptr;
    T* o = static_cast<T*>(out.raw_data());
    const int64_t n = out.numel(), groups = (n + 63) / 64;
    parallel_for(
        groups, dynamic_chunk(groups),
        [&](int64_t begin, int64_t end) { dropout_groups(in, b, o, n, s, p, begin, end); },
        n >= kParallelGrain);
  });
}

void CpuBackend::dropout_mask(const Tensor& out, PhiloxState s, double p) {
  visit_floating(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    const T scale = (T)(1.0 / (1.0 - p));
    const uint32_t threshold = dropout_threshold(p);
    if constexpr (std::is_same_v<T, float>) {
      for_each_group64(out.numel(), s, threshold, [&](int64_t i, int64_t n, const __m256 keep[8]) {
        alignas(32) float z[64];
        for (int q = 0; q < 8; ++q) _mm256_store_ps(z + 8 * q, _mm256_and_ps(keep[q], _mm256_set1_ps(scale)));
        std::copy(z, z + n, o + i);
      });
      return;
    }
    for_each_block<kDropoutPhiloxRounds>(out.numel(), 8, s, [&](int64_t i, const std::array<uint32_t, 4>& r, int l) {
      o[i] = dropout_keeps(r, l, threshold) ? scale : T(0);
    });
  });
}

// The reference of the fused op is the three ops it fuses, run by this backend one after the
// other (the bias add as add computes it, then the same GELU and dropout kernels), so the CPU
// gives their bits exactly; only the CUDA kernels fuse the passes.
namespace {
// z = x + bias over rows of N, in T, as BinaryOp::Add computes it.
template <typename T>
void add_bias_rows(const Tensor& x, const Tensor& bias, const Tensor& z) {
  const T* xs = static_cast<const T*>(x.raw_data());
  const T* b = static_cast<const T*>(bias.raw_data());
  T* o = static_cast<T*>(z.raw_data());
  const int64_t N = bias.numel(), M = N ? x.numel() / N : 0;
  parallel_for(
      M, dynamic_chunk(M),
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r)
          for (int64_t c = 0; c < N; ++c) o[r * N + c] = xs[r * N + c] + b[c];
      },
      x.numel() >= kParallelGrain);
}
}  // namespace

void CpuBackend::bias_gelu(const Tensor& x, const Tensor& bias, const Tensor& out, bool tanh, PhiloxState s,
                           double p) {
  visit_floating(x.dtype(), "bias_gelu", [&](auto zero) { add_bias_rows<decltype(zero)>(x, bias, out); });
  unary(tanh ? UnaryOp::GeluTanh : UnaryOp::GeluErf, out, out, 0, 0);
  if (p > 0) dropout(out, out, s, p, Tensor());
}

void CpuBackend::bias_gelu_backward(const Tensor& g, const Tensor& x, const Tensor& bias, const Tensor& grad_x,
                                    bool tanh, PhiloxState s, double p) {
  Tensor z = Tensor::empty(x.shape(), x.dtype(), x.device());
  visit_floating(x.dtype(), "bias_gelu", [&](auto zero) { add_bias_rows<decltype(zero)>(x, bias, z); });
  if (p > 0) dropout(g, grad_x, s, p, Tensor());
  binary(tanh ? BinaryOp::GeluTanhBackward : BinaryOp::GeluErfBackward, p > 0 ? grad_x : g, z, grad_x, 0, 0);
}

}  // namespace wavspa::cpu

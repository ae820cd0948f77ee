// Random kernels. Element i draws from Philox counter (offset + i / lanes), so the numbers do
// not depend on thread count or device; the CUDA kernels compute the same function.
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

constexpr double kTwoPi = 6.283185307179586;

// Calls f(i, bits) for every element i, with `lanes` elements per Philox block of `Rounds`
// rounds (dropout's 7, else 10).
template <int Rounds = 10, typename F>
void for_each_block(int64_t n, int lanes, PhiloxState s, F f) {
  check_host_philox(s);
  const int64_t blocks = (n + lanes - 1) / lanes;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (int64_t b = 0; b < blocks; ++b) {
    auto bits = philox4x32_rounds<Rounds>(s.offset + b, 0, s.seed);
    for (int l = 0; l < lanes && b * lanes + l < n; ++l) f(b * lanes + l, bits, l);
  }
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
  visit_floating(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    const T* b = base.defined() ? static_cast<const T*>(base.raw_data()) : nullptr;
    const T scale = (T)(1.0 / (1.0 - p));
    const uint32_t threshold = dropout_threshold(p);
    for_each_block<kDropoutPhiloxRounds>(out.numel(), 8, s, [&](int64_t i, const std::array<uint32_t, 4>& r, int l) {
      const T v = dropout_keeps(r, l, threshold) ? in[i] * scale : T(0);
      o[i] = b ? b[i] + v : v;
    });
  });
}

void CpuBackend::dropout_mask(const Tensor& out, PhiloxState s, double p) {
  visit_floating(out.dtype(), "dropout", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    const T scale = (T)(1.0 / (1.0 - p));
    const uint32_t threshold = dropout_threshold(p);
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
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelGrain)
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) o[r * N + c] = xs[r * N + c] + b[c];
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

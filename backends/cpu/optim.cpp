// The optimizers' fused update on the CPU: AdamSlot's math (backend.h) element by element in
// the tensors' dtype, one OpenMP loop per tensor. The CUDA backend (backends/cuda/optim.cu)
// computes the same expressions in the same order.
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {

void CpuBackend::adam_step(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                           const Tensor& skip) {
  if (slots.empty()) return;
  if (skip.defined() && *static_cast<const float*>(skip.raw_data()) != 0.0f) return;
  const double scale_value = grad_scale.defined() ? (double)*static_cast<const float*>(grad_scale.raw_data()) : 1.0;
  visit_floating(slots[0].param.dtype(), "adam_step", [&](auto zero) {
    using T = decltype(zero);
    const T b1 = (T)h.beta1, b2 = (T)h.beta2, eps = (T)h.eps, scale = (T)scale_value;
    for (const AdamSlot& s : slots) {
      T* p = static_cast<T*>(s.param.raw_data());
      const T* g = static_cast<const T*>(s.grad.raw_data());
      T* m = static_cast<T*>(s.exp_avg.raw_data());
      T* v = static_cast<T*>(s.exp_avg_sq.raw_data());
      const T decay = (T)(h.decoupled ? 1.0 - s.lr * s.weight_decay : 1.0);
      const T wd = (T)(h.decoupled ? 0.0 : s.weight_decay);
      const T step = (T)(-s.lr / s.bias_correction1);
      const T inv_bc2 = (T)(1.0 / std::sqrt(s.bias_correction2));
      const int64_t n = s.param.numel();
      parallel_for(
          n, dynamic_chunk(n),
          [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              T pi = p[i] * decay;
              const T gi = g[i] * scale + wd * pi;
              const T mi = b1 * m[i] + (T(1) - b1) * gi;
              const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
              pi += step * (mi / (std::sqrt(vi) * inv_bc2 + eps));
              p[i] = pi;
              m[i] = mi;
              v[i] = vi;
            }
          },
          n > 32768);
    }
  });
}

}  // namespace wavspa::cpu

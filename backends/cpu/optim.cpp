// The optimizers' fused update on the CPU: AdamSlot's math (backend.h) element by element in
// the tensors' dtype, in one parallel loop over the elements of every slot in turn (a chunk
// may span the end of one tensor and the start of the next), so a model of many small
// parameters is one pass on all threads, not one single-threaded loop per tensor. Each
// element's update depends on that element alone, so the bits do not depend on the cut. The
// CUDA backend (backends/cuda/optim.cu) computes the same expressions in the same order.
#include <algorithm>
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

// One slot's pointers and the constants of its update.
template <typename T>
struct AdamRun {
  T *p, *m, *v;
  const T* g;
  T decay, wd, step, inv_bc2;
};

template <typename T>
void adam_elements(const AdamRun<T>& r, T b1, T b2, T eps, T scale, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    T pi = r.p[i] * r.decay;
    const T gi = r.g[i] * scale + r.wd * pi;
    const T mi = b1 * r.m[i] + (T(1) - b1) * gi;
    const T vi = b2 * r.v[i] + (T(1) - b2) * gi * gi;
    pi += r.step * (mi / (std::sqrt(vi) * r.inv_bc2 + eps));
    r.p[i] = pi;
    r.m[i] = mi;
    r.v[i] = vi;
  }
}

}  // namespace

void CpuBackend::adam_step(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                           const Tensor& skip) {
  if (slots.empty()) return;
  if (skip.defined() && *static_cast<const float*>(skip.raw_data()) != 0.0f) return;
  const double scale_value = grad_scale.defined() ? (double)*static_cast<const float*>(grad_scale.raw_data()) : 1.0;
  visit_floating(slots[0].param.dtype(), "adam_step", [&](auto zero) {
    using T = decltype(zero);
    const T b1 = (T)h.beta1, b2 = (T)h.beta2, eps = (T)h.eps, scale = (T)scale_value;
    std::vector<AdamRun<T>> runs;
    std::vector<int64_t> start{0};  // start[i]: the first element of slot i in the joint index
    runs.reserve(slots.size());
    for (const AdamSlot& s : slots) {
      runs.push_back({static_cast<T*>(s.param.raw_data()), static_cast<T*>(s.exp_avg.raw_data()),
                      static_cast<T*>(s.exp_avg_sq.raw_data()), static_cast<const T*>(s.grad.raw_data()),
                      (T)(h.decoupled ? 1.0 - s.lr * s.weight_decay : 1.0), (T)(h.decoupled ? 0.0 : s.weight_decay),
                      (T)(-s.lr / s.bias_correction1), (T)(1.0 / std::sqrt(s.bias_correction2))});
      start.push_back(start.back() + s.param.numel());
    }
    const int64_t total = start.back();
    parallel_for(
        total, dynamic_chunk(total),
        [&](int64_t begin, int64_t end) {
          // The slot holding `begin`, then each slot the chunk reaches.
          size_t i = std::upper_bound(start.begin(), start.end(), begin) - start.begin() - 1;
          for (; begin < end; ++i) {
            const int64_t stop = std::min(end, start[i + 1]);
            adam_elements(runs[i], b1, b2, eps, scale, begin - start[i], stop - start[i]);
            begin = stop;
          }
        },
        total > kParallelGrain);
  });
}

}  // namespace wavspa::cpu

// The optimizers' fused update on CUDA: one Adam / AdamW step over many tensors in one launch
// per kMaxTensors of them ("multi-tensor apply"), instead of a dozen elementwise launches
// per parameter. The per-tensor pointers and hyperparameters travel in the kernel's
// parameter block (CUDA 12.1+ takes up to 32 KB there), so nothing is copied to the device
// first. Each block updates one chunk of one tensor; the math is AdamSlot's (backend.h), in
// Compute<T> registers, element by element, so the result does not depend on the chunking.
#include <cmath>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

namespace wavspa::cuda {
namespace {

constexpr int kMaxTensors = 64;
constexpr int64_t kChunk = 8 * kThreads;  // elements per block

template <typename T>
struct AdamBatch {
  T* param[kMaxTensors];
  const T* grad[kMaxTensors];
  T* exp_avg[kMaxTensors];
  T* exp_avg_sq[kMaxTensors];
  int64_t numel[kMaxTensors];
  // Per tensor: the decoupled decay factor 1 - lr wd (1 for Adam), the coupled decay wd
  // (0 for AdamW), -lr / bias_correction1 and 1 / sqrt(bias_correction2).
  double decay_factor[kMaxTensors], coupled_wd[kMaxTensors], step_size[kMaxTensors],
      inv_sqrt_bc2[kMaxTensors];
  int block_start[kMaxTensors + 1];  // block b updates tensor t when start[t] <= b < start[t + 1]
  int count;
  double beta1, beta2, eps;
  const float* grad_scale;  // multiplies every gradient when not null (a device scalar)
  const float* skip;        // nothing changes when not null and nonzero (a device scalar)
};

template <typename T>
__global__ void __launch_bounds__(kThreads) adam_kernel(const AdamBatch<T> a) {
  using V = Compute<T>;
  if (a.skip && *a.skip != 0.0f) return;
  int t = 0;
  while (t + 1 < a.count && a.block_start[t + 1] <= (int)blockIdx.x) ++t;  // block-uniform
  const int64_t begin = (int64_t)(blockIdx.x - a.block_start[t]) * kChunk;
  const int64_t end = begin + kChunk < a.numel[t] ? begin + kChunk : a.numel[t];
  T* p = a.param[t];
  const T* g = a.grad[t];
  T* m = a.exp_avg[t];
  T* v = a.exp_avg_sq[t];
  const V scale = a.grad_scale ? (V)*a.grad_scale : V(1);
  const V decay = (V)a.decay_factor[t], wd = (V)a.coupled_wd[t], step = (V)a.step_size[t],
          inv_bc2 = (V)a.inv_sqrt_bc2[t];
  const V b1 = (V)a.beta1, b2 = (V)a.beta2, eps = (V)a.eps;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    V pi = to_compute(p[i]), gi = to_compute(g[i]) * scale;
    pi *= decay;
    gi += wd * pi;
    const V mi = b1 * to_compute(m[i]) + (V(1) - b1) * gi;
    const V vi = b2 * to_compute(v[i]) + (V(1) - b2) * gi * gi;
    pi += step * (mi / (sqrt(vi) * inv_bc2 + eps));
    p[i] = from_compute<T>(pi);
    m[i] = from_compute<T>(mi);
    v[i] = from_compute<T>(vi);
  }
}

template <typename T>
void adam_typed(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                const Tensor& skip) {
  AdamBatch<T> a{};
  a.beta1 = h.beta1, a.beta2 = h.beta2, a.eps = h.eps;
  a.grad_scale = grad_scale.defined() ? dptr<const float>(grad_scale) : nullptr;
  a.skip = skip.defined() ? dptr<const float>(skip) : nullptr;
  auto flush = [&] {
    if (a.count == 0) return;
    const int blocks = a.block_start[a.count];
    if (blocks > 0) {
      adam_kernel<T><<<blocks, kThreads, 0, stream()>>>(a);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    a.count = 0;
  };
  for (const AdamSlot& s : slots) {
    const int64_t n = s.param.numel();
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    // A launch covers at most kMaxTensors tensors and 2^31 - 1 blocks.
    if (a.count == kMaxTensors || (int64_t)a.block_start[a.count] + chunks > 0x7fffffff) flush();
    WAVSPA_CHECK(chunks <= 0x7fffffff, "adam_step: a tensor of ", n, " elements is too large");
    const int i = a.count++;
    a.param[i] = dptr<T>(s.param);
    a.grad[i] = dptr<const T>(s.grad);
    a.exp_avg[i] = dptr<T>(s.exp_avg);
    a.exp_avg_sq[i] = dptr<T>(s.exp_avg_sq);
    a.numel[i] = n;
    a.decay_factor[i] = h.decoupled ? 1.0 - s.lr * s.weight_decay : 1.0;
    a.coupled_wd[i] = h.decoupled ? 0.0 : s.weight_decay;
    a.step_size[i] = -s.lr / s.bias_correction1;
    a.inv_sqrt_bc2[i] = 1.0 / std::sqrt(s.bias_correction2);
    a.block_start[i + 1] = a.block_start[i] + (int)chunks;
  }
  flush();
}

}  // namespace

void CudaBackend::adam_step(const AdamHyper& h, const std::vector<AdamSlot>& slots, const Tensor& grad_scale,
                            const Tensor& skip) {
  if (slots.empty()) return;
  dispatch_floating(slots[0].param.dtype(), "adam_step", [&](auto zero) {
    using T = decltype(zero);
    adam_typed<T>(h, slots, grad_scale, skip);
  });
}

}  // namespace wavspa::cuda

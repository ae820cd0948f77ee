// Fused optimizer updates: one pass over many parameters instead of a dozen elementwise ops
// for each (nn/optim.h's Adam and AdamW use it; on CUDA it is one launch per 64 tensors).
//
//   std::vector<AdamSlot> slots{{p, p.grad(), m, v, lr, wd, 1 - pow(b1, t), 1 - pow(b2, t)}};
//   adam_step_(AdamHyper{.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .decoupled = true}, slots);
#pragma once

#include <vector>

#include "backends/backend.h"  // AdamHyper, AdamSlot: the update's formula
#include "core/tensor.h"

namespace wavspa {

// Updates every slot's param, exp_avg and exp_avg_sq in place (no autograd). The slots share
// one device and one float32 or float64 dtype; the four tensors of a slot are contiguous with
// one shape. grad_scale, if defined, is a 0-d float32 tensor on that device that multiplies
// every gradient (a clipping coefficient that never leaves the device); skip, if defined, a
// 0-d float32 tensor on that device: where it is nonzero nothing is updated, decided by the
// kernel (a non-finite loss guarded without reading it on the host).
void adam_step_(const AdamHyper& hyper, const std::vector<AdamSlot>& slots, const Tensor& grad_scale = {},
                const Tensor& skip = {});

}  // namespace wavspa

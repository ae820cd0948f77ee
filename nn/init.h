// Parameter initialisers, in place, seeded by a Philox Generator (the default one unless
// given), as torch.nn.init.
//
//   nn::init::xavier_uniform_(linear->weight);
//   nn::init::trunc_normal_(emb->weight, /*std=*/0.02);
#pragma once

#include <cmath>
#include <utility>

#include "core/random.h"
#include "core/tensor.h"

namespace wavspa::nn::init {

// (fan_in, fan_out) of a weight: (out, in, k...) -> (in * k..., out * k...).
std::pair<int64_t, int64_t> fans(const Tensor& t);

void zeros_(Tensor& t);
void ones_(Tensor& t);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void uniform_(Tensor& t, double lo, double hi, Generator* gen = nullptr);
// Normal(mean, std) restricted to [lo, hi] (default mean -/+ 2 std) by redrawing.
void trunc_normal_(Tensor& t, double std = 1.0, double mean = 0.0, double lo = NAN,
                   double hi = NAN, Generator* gen = nullptr);
// Glorot: U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)); normal with std gain sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// He: std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)) (leaky-ReLU slope a; a = 0 is ReLU).
void kaiming_uniform_(Tensor& t, double a = 0.0, bool fan_in = true, Generator* gen = nullptr);
void kaiming_normal_(Tensor& t, double a = 0.0, bool fan_in = true, Generator* gen = nullptr);

}  // namespace wavspa::nn::init

// Differentiable real FFTs with numpy.fft's conventions, along any axis, float32 and float64.
// A complex tensor is a real one with a trailing dim of size 2 holding (real, imag).
//
//   Tensor x = randn({8, 100, 64});                  // (B, N, D)
//   Tensor X = rfft(x, 1);                           // (B, 51, 64, 2): bins 0..N/2 along N
//   Tensor back = irfft(X, 100, 1);                  // (B, 100, 64), equals x
//   Tensor mixed = fft_real_2d(x, 1, 2);             // FNet: Re(FFT_N(FFT_D(x))), (B, N, D)
//
// The gradients are the exact adjoints of these real-linear maps (derived in ops/fft.cpp),
// so gradcheck holds for any n, odd or even.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace wavspa {

// numpy.fft.rfft: X_k = sum_t x_t exp(-2 pi i k t / n) for k = 0..n/2 (unnormalised), n =
// x.shape()[axis] >= 1. The output has x's shape with n replaced by n / 2 + 1 at `axis`,
// plus a trailing dim 2. Im X_0 and (n even) Im X_{n/2} are exact zeros.
Tensor rfft(const Tensor& x, int64_t axis = -1);

// numpy.fft.irfft: the real signal of length n whose rfft is X, normalised by 1 / n. X has
// a trailing dim 2, and `axis` counts the dims before it (so irfft(rfft(x, a), n, a) == x
// for a negative a too). X must hold exactly n / 2 + 1 bins along axis (numpy would crop or
// zero-pad; narrow or pad X first for that). Im X_0 and (n even) Im X_{n/2} are ignored,
// and their gradients are zero.
Tensor irfft(const Tensor& X, int64_t n, int64_t axis = -1);

// Re(FFT2(x)) over axes axis0 and axis1 of a real x, full length on both axes (x's shape):
// FNet's token mixing, y = Re(FFT_seq(FFT_hidden(x))) (Lee-Thorp et al. 2021). This real
// map is symmetric, so its backward is itself; the order of the two axes does not matter.
Tensor fft_real_2d(const Tensor& x, int64_t axis0, int64_t axis1);

}  // namespace wavspa

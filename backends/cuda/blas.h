// Switches of the CUDA backend's matrix products, callable from plain C++ (no CUDA headers).
//
//   wavspa::cuda::set_allow_tf32(true);   // float32 GEMMs may use TF32 tensor cores
//   Tensor y = matmul(a, b);              // ~1e-3 relative error instead of ~1e-6
//   wavspa::cuda::set_allow_tf32(false);  // back to exact float32 (the default)
//
// Built only with `make CUDA=1` (the definitions live in backends/cuda/gemm.cu).
#pragma once

namespace wavspa::cuda {

// Process-wide. Off by default, so a float32 product on CUDA rounds like one on the CPU
// (to within summation order); TF32 keeps 10 mantissa bits of each input, which is fine for
// training but breaks CPU-vs-CUDA parity checks at float32 tolerances.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace wavspa::cuda

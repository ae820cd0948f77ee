// Shared by the CUDA test files (compiled only with CUDA=1, run only where a GPU is visible):
// CPU-vs-CUDA parity of an op's outputs and of the gradients of its inputs.
#pragma once

#ifdef WAVSPA_CUDA

#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/cuda_runtime.h"
#include "helpers.h"

namespace wavspa::test {

inline bool cuda_available() { return cuda::device_count() > 0; }

// Skips the rest of a test case (with a message) on a machine without a GPU.
#define WAVSPA_REQUIRE_GPU()                                   \
  do {                                                         \
    if (!::wavspa::test::cuda_available()) {                   \
      MESSAGE("no CUDA device visible: CUDA checks skipped");  \
      return;                                                  \
    }                                                          \
  } while (0)

// Tolerances per dtype: |cuda - cpu| <= atol + rtol * |cpu|, element by element.
struct Tol {
  double atol, rtol;
};
inline Tol default_tol(DType dt) { return dt == kFloat64 ? Tol{1e-10, 1e-9} : Tol{1e-5, 1e-4}; }

// Element-wise comparison of a CUDA tensor with its CPU reference; reports the worst element.
inline void check_close(const Tensor& cpu, const Tensor& gpu, Tol tol, const std::string& what) {
  INFO(what);
  REQUIRE(gpu.device().is_cuda());
  REQUIRE(cpu.shape() == gpu.shape());
  REQUIRE(cpu.dtype() == gpu.dtype());
  auto a = cpu.to(kFloat64).to_vector<double>();
  auto b = gpu.to(Device::cpu()).to(kFloat64).to_vector<double>();
  double worst = 0;
  size_t at = 0;
  bool ok = true;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(a[i] - b[i]), allowed = tol.atol + tol.rtol * std::abs(a[i]);
    if (!(err <= allowed)) ok = false;  // NaN fails too
    if (!(err <= worst)) worst = err, at = i;
  }
  CHECK_MESSAGE(ok, what, ": worst |cuda - cpu| = ", worst, " at element ", at, " (cpu ", a.empty() ? 0 : a[at],
                ", cuda ", b.empty() ? 0 : b[at], ")");
}

// Runs fn on the CPU inputs and on CUDA copies of them, compares the outputs, then
// backpropagates the same random seed gradient through both and compares the gradients of
// every floating input. Inputs that should not get gradients may be integer tensors.
inline void check_parity(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                         const std::vector<Tensor>& inputs, const std::string& what, Tol tol = {-1, -1}) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone(), g = t.detach().to(Device::cuda());
    if (is_floating(t.dtype())) c.requires_grad_(), g.requires_grad_();
    cpu_in.push_back(c);
    gpu_in.push_back(g);
  }
  Tensor yc = fn(cpu_in), yg = fn(gpu_in);
  const Tol t = tol.atol < 0 ? default_tol(yc.dtype()) : tol;
  check_close(yc, yg, t, what + " forward");
  if (!is_floating(yc.dtype()) || !yc.requires_grad()) return;
  Tensor seed = randn(yc.shape(), yc.dtype());
  yc.backward(seed);
  yg.backward(seed.to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!is_floating(inputs[i].dtype())) continue;
    REQUIRE_MESSAGE(cpu_in[i].grad().defined() == gpu_in[i].grad().defined(), what, " input ", i);
    if (cpu_in[i].grad().defined())
      check_close(cpu_in[i].grad(), gpu_in[i].grad(), t, what + " grad of input " + std::to_string(i));
  }
}

}  // namespace wavspa::test

#endif  // WAVSPA_CUDA

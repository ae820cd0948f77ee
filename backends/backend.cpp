#include "backends/backend.h"

#include <atomic>
#include <utility>

#include "backends/cpu/cpu_backend.h"

#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime.h"
#include "backends/cuda/profile_timer.h"
#endif

namespace wavspa {

#ifdef WAVSPA_CUDA
namespace {

// The CUDA allocator and the profiler's event timer are registered while the program starts,
// from this file because it is always linked: a static initialiser in a .o of libwavspa.a
// that nothing references would be dropped by the linker. Registering only stores pointers
// (no CUDA call), so a process that never touches a GPU pays nothing.
const bool cuda_allocator_registered = (cuda::register_allocator(), cuda::register_profiler_timer(), true);

// Asked once: cudaGetDeviceCount initialises the driver, and backend_for is on every op's path.
int visible_cuda_devices() {
  static const int n = cuda::device_count();
  return n;
}

}  // namespace
#endif

void Backend::begin_capture() {
  throw Error("graph capture needs a CUDA device; the CPU backend runs every op as it is called");
}

std::unique_ptr<Backend::Recording> Backend::end_capture() {
  throw Error("end_capture: the CPU backend has no capture");
}

void Backend::copy_many(const std::vector<Tensor>& src, const std::vector<Tensor>& dst) {
  for (size_t i = 0; i < src.size(); ++i) copy(src[i], dst[i]);
}

void Backend::gemm_bias(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& c) {
  copy(bias.as_strided({g.m, g.n}, {0, 1}, bias.offset()), c);  // the bias in every row
  GemmArgs with_c = g;
  with_c.beta = 1.0;
  gemm(with_c, a, b, c);
}

void Backend::dropout_add_layernorm_forward(const Tensor& base, const Tensor& x, PhiloxState s, double p,
                                            const Tensor& weight, const Tensor& bias, double eps, const Tensor& h,
                                            const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  if (p > 0) dropout(x, h, s, p, base);
  else binary(BinaryOp::Add, base, x, h, 0, 0);
  layernorm_forward(h, weight, bias, eps, y, mean, rstd);
}

void Backend::layernorm_backward_add(const Tensor& grad_y, const Tensor& grad_add, const Tensor& x,
                                     const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias) {
  layernorm_backward(grad_y, x, weight, mean, rstd, grad_x, grad_weight, grad_bias);
  if (grad_add.defined()) binary(BinaryOp::Add, grad_x, grad_add, grad_x, 0, 0);
}

std::vector<Tensor> Backend::attention_forward_group(const std::vector<AttentionProblem>& problems) {
  std::vector<Tensor> bits;
  bits.reserve(problems.size());
  for (const AttentionProblem& p : problems)
    bits.push_back(attention_forward(p.args, p.q, p.k, p.v, p.key_keep, p.out, p.lse));
  return bits;
}

void Backend::attention_backward_group(const std::vector<AttentionProblem>& problems) {
  for (const AttentionProblem& p : problems)
    attention_backward(p.args, p.q, p.k, p.v, p.key_keep, p.out, p.lse, p.dropout_bits, p.grad_out, p.grad_q,
                       p.grad_k, p.grad_v);
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#ifdef WAVSPA_CUDA
  (void)cuda_allocator_registered;
  const int n = visible_cuda_devices();
  WAVSPA_CHECK(n > 0, "device ", device, ": no CUDA device visible (the driver reports none; ",
               "check nvidia-smi and CUDA_VISIBLE_DEVICES)");
  WAVSPA_CHECK(device.index == 0, "device ", device, ": wavspa drives one GPU per process, ",
               "cuda:0 (", n, " visible); pick the GPU with CUDA_VISIBLE_DEVICES");
  return cuda::cuda_backend();
#else
  throw Error(str("device ", device, " is not available: wavspa was built without CUDA ",
                  "(rebuild with `make CUDA=1`)"));
#endif
}

RowMap make_row_map(int64_t n, std::vector<ExtendRow> padded) {
  static std::atomic<uint64_t> last_id{0};
  RowMap m;
  m.n = n;
  m.id = ++last_id;
  m.padded = std::move(padded);
  std::vector<int64_t> count(n + 1, 0);
  for (const ExtendRow& r : m.padded)
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t) ++count[r.src[t] + 1];
  m.offsets.assign(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) m.offsets[i + 1] = m.offsets[i] + count[i + 1];
  m.rows.resize(m.offsets[n]);
  m.coefs.resize(m.offsets[n]);
  std::vector<int64_t> fill(m.offsets.begin(), m.offsets.end() - 1);
  for (int64_t p = 0; p < m.padded_rows(); ++p) {
    const ExtendRow& r = m.padded[p];
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
      int64_t e = fill[r.src[t]]++;
      m.rows[e] = p;
      m.coefs[e] = r.coef[t];
    }
  }
  return m;
}

}  // namespace wavspa

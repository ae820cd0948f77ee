// Matrix products through OpenBLAS. We link the OpenMP build of OpenBLAS: called inside an
// OpenMP parallel region it runs single-threaded, so a batched product either runs its batch
// in parallel (one thread per matrix) or runs each matrix on all threads, never both.
#include <cblas.h>

#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

template <typename T>
void gemm_one(const GemmArgs& g, const T* a, const T* b, T* c) {
  const auto ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = g.trans_b ? CblasTrans : CblasNoTrans;
  if (g.m == 0 || g.n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, (float)g.alpha, a, g.lda, b, g.ldb,
                (float)g.beta, c, g.ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, g.alpha, a, g.lda, b, g.ldb, g.beta, c,
                g.ldc);
  }
}

}  // namespace

namespace {
// Mixed operands (bfloat16 into float32) are a CUDA product only: autocast never casts CPU
// tensors (core/runtime.h).
void check_operands(const char* what, const Tensor& a, const Tensor& b, const Tensor& c) {
  WAVSPA_CHECK(a.dtype() == c.dtype() && b.dtype() == c.dtype(), what,
               ": the CPU multiplies operands of the output's dtype only, got ", a.dtype(), " x ",
               b.dtype(), " -> ", c.dtype());
}
}  // namespace

// A product whose rows of a are rows of c (a not transposed) and that has at least two
// chunks of kRowChunk rows is split into those chunks, taken first come, first served by the
// threads, each a one-thread OpenBLAS call (inside the parallel region). OpenBLAS's own
// threads split the work evenly up front, so a thread the OS stops (another process on its
// core) held up the whole product; a chunk holds up only itself. The chunk does not depend on
// the thread count, and each element's sum over k runs as in the whole product.
constexpr int64_t kRowChunk = 256;

void CpuBackend::gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  check_operands("gemm", a, b, c);
  visit_floating(c.dtype(), "gemm", [&](auto zero) {
    using T = decltype(zero);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* pc = static_cast<T*>(c.raw_data());
    const int64_t chunks = (g.m + kRowChunk - 1) / kRowChunk;
    if (g.trans_a || chunks < 2 || num_threads() < 2 || g.m * g.n * g.k < ((int64_t)1 << 20)) {
      gemm_one<T>(g, pa, pb, pc);
      return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < chunks; ++i) {
      GemmArgs part = g;
      part.m = std::min(kRowChunk, g.m - i * kRowChunk);
      gemm_one<T>(part, pa + i * kRowChunk * g.lda, pb, pc + i * kRowChunk * g.ldc);
    }
  });
}

void CpuBackend::batched_gemm(const GemmArgs& g, int64_t batch, const Tensor& a,
                              int64_t stride_a, const Tensor& b, int64_t stride_b,
                              const Tensor& c, int64_t stride_c) {
  check_operands("batched_gemm", a, b, c);
  visit_floating(c.dtype(), "batched_gemm", [&](auto zero) {
    using T = decltype(zero);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* pc = static_cast<T*>(c.raw_data());
    // Parallel over the batch when it can keep every thread busy.
    [[maybe_unused]] const bool over_batch = batch >= num_threads() && g.m * g.n * g.k < (int64_t)1 << 24;
#pragma omp parallel for schedule(static) if (over_batch)
    for (int64_t i = 0; i < batch; ++i)
      gemm_one<T>(g, pa + i * stride_a, pb + i * stride_b, pc + i * stride_c);
  });
}

}  // namespace wavspa::cpu

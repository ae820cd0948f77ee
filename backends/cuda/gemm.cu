// Matrix products through cuBLAS.
//
// The backend interface is row-major (cblas with CblasRowMajor); cuBLAS is column-major. A
// row-major (r x c) matrix with leading dimension ld is, read column-major, its (c x r)
// transpose with the same ld, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T:
// cuBLAS gets B first, then A, and m and n swapped. No data moves, and the transpose flags
// pass through unchanged.
//
// float32 runs as exact float32 unless set_allow_tf32(true): parity tests and the gradient
// of a long training run compare against the CPU, and TF32's 10-bit mantissa would show.
#include <cublas_v2.h>

#include <atomic>
#include <mutex>

#include "backends/cuda/blas.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

std::atomic<bool> g_allow_tf32{false};

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(str("cuBLAS error in ", call, " at ", file, ":", line, ": ",
                  cublasGetStatusName(status), " (", cublasGetStatusString(status), ")"));
}
#define WAVSPA_CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

// The one cuBLAS handle of the process, created on first use and bound to the backend's
// stream before every call (cheap, and correct even if stream() were ever replaced). It is
// never destroyed: at static-destruction time the CUDA context may already be gone, and
// cublasDestroy would then fail.
cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    WAVSPA_CUBLAS_CHECK(cublasCreate(&created));
    return created;
  }();
  WAVSPA_CUBLAS_CHECK(cublasSetStream(h, stream()));
  // CUBLAS_DEFAULT_MATH keeps float32 products in float32 arithmetic (no TF32, no
  // reduced-precision tricks); the TF32 mode is opt-in.
  WAVSPA_CUBLAS_CHECK(cublasSetMathMode(
      h, g_allow_tf32.load() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

// cuBLAS serialises nothing across host threads on one handle; the backend runs every
// kernel on one stream anyway, so one lock around each call costs nothing in practice.
std::mutex& handle_mutex() {
  static std::mutex m;
  return m;
}

// C = beta * C for k == 0 (an empty sum): BLAS semantics, where beta == 0 writes zeros
// without reading C (so NaN in uninitialised memory does not survive).
template <typename T>
__global__ void scale_matrix_kernel(T* c, int64_t rows, int64_t cols, int64_t ldc, T beta,
                                    int64_t batch, int64_t stride_c) {
  const int64_t total = batch * rows * cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t col = i % cols, row = (i / cols) % rows, b = i / (cols * rows);
    T* p = c + b * stride_c + row * ldc + col;
    *p = beta == T(0) ? T(0) : beta * *p;
  }
}

template <typename T>
void gemm_typed(const GemmArgs& g, int64_t batch, const T* a, int64_t stride_a, const T* b,
                int64_t stride_b, T* c, int64_t stride_c) {
  if (g.m == 0 || g.n == 0 || batch == 0) return;
  if (g.k == 0) {
    const int64_t total = batch * g.m * g.n;
    scale_matrix_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
        c, g.m, g.n, g.ldc, (T)g.beta, batch, stride_c);
    WAVSPA_CUDA_LAUNCH_CHECK();
    return;
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const T alpha = (T)g.alpha, beta = (T)g.beta;
  std::lock_guard<std::mutex> lock(handle_mutex());
  cublasHandle_t h = handle();
  // Column-major view: (n x m) = op(B)^T-memory (n x k) times op(A)^T-memory (k x m).
  if (batch == 1) {
    if constexpr (std::is_same_v<T, float>) {
      WAVSPA_CUBLAS_CHECK(cublasSgemm_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b, g.ldb, a,
                                         g.lda, &beta, c, g.ldc));
    } else {
      WAVSPA_CUBLAS_CHECK(cublasDgemm_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b, g.ldb, a,
                                         g.lda, &beta, c, g.ldc));
    }
  } else {
    if constexpr (std::is_same_v<T, float>) {
      WAVSPA_CUBLAS_CHECK(cublasSgemmStridedBatched_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b,
                                                       g.ldb, stride_b, a, g.lda, stride_a,
                                                       &beta, c, g.ldc, stride_c, batch));
    } else {
      WAVSPA_CUBLAS_CHECK(cublasDgemmStridedBatched_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b,
                                                       g.ldb, stride_b, a, g.lda, stride_a,
                                                       &beta, c, g.ldc, stride_c, batch));
    }
  }
}

}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

void CudaBackend::gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  dispatch_floating(c.dtype(), "gemm", [&](auto zero) {
    using T = decltype(zero);
    gemm_typed<T>(g, 1, dptr<T>(a), 0, dptr<T>(b), 0, dptr<T>(c), 0);
  });
}

void CudaBackend::batched_gemm(const GemmArgs& g, int64_t batch, const Tensor& a,
                               int64_t stride_a, const Tensor& b, int64_t stride_b,
                               const Tensor& c, int64_t stride_c) {
  dispatch_floating(c.dtype(), "batched_gemm", [&](auto zero) {
    using T = decltype(zero);
    gemm_typed<T>(g, batch, dptr<T>(a), stride_a, dptr<T>(b), stride_b, dptr<T>(c), stride_c);
  });
}

}  // namespace wavspa::cuda

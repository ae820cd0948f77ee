// Matrix products through cuBLAS.
//
// The backend interface is row-major (cblas with CblasRowMajor); cuBLAS is column-major. A
// row-major (r x c) matrix with leading dimension ld is, read column-major, its (c x r)
// transpose with the same ld, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T:
// cuBLAS gets B first, then A, and m and n swapped. No data moves, and the transpose flags
// pass through unchanged.
//
// float32 products follow matmul_precision() (core/runtime.h):
//   Float32   cublasSgemm with CUBLAS_DEFAULT_MATH: exact float32, like the CPU (the default;
//             parity tests and long CPU-vs-CUDA training comparisons need it)
//   TF32      the same call with CUBLAS_TF32_TENSOR_OP_MATH
//   BFloat16  both operands are rounded to bfloat16 (round to nearest even) into scratch
//             copies of the same layout, then cublasGemmEx multiplies them on bfloat16 tensor
//             cores with float32 accumulation into the float32 output. Rounding ourselves,
//             rather than asking cuBLAS for CUBLAS_COMPUTE_32F_FAST_16BF (which may pick TF32
//             or bfloat16 as it likes), makes the result a defined function of the inputs
//             that the tests can compare with the CPU.
//
// bfloat16 tensors (kBFloat16) go to cuBLASLt: CUDA_R_16BF operands and output,
// CUBLAS_COMPUTE_32F (float32 accumulation, one rounding to bfloat16 per output element),
// whatever matmul_precision() says. bfloat16 operands may also write a float32 output (no
// rounding of the result): linear's weight gradients under autocast. cuBLASLt because of the
// host: cublasGemmEx describes the problem and asks its heuristics again at every call, ~10
// us of host time, and a bfloat16 training step makes ~150 products, most of them small
// enough that the host is what the GPU waits for. LtPlan below does that once per shape.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <map>
#include <mutex>
#include <tuple>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"
#include "core/runtime.h"

namespace wavspa::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(str("cuBLAS error in ", call, " at ", file, ":", line, ": ",
                  cublasGetStatusName(status), " (", cublasGetStatusString(status), ")"));
}
#define WAVSPA_CUBLAS_CHECK(call) check_cublas((call), #call, __FILE__, __LINE__)

// The one cuBLAS handle of the process, created on first use and never destroyed: at
// static-destruction time the CUDA context may already be gone, and cublasDestroy would
// then fail. It is bound once to the backend's stream (one per process) and given a
// workspace of its own: cublasSetStream resets the workspace to cuBLAS's pool, and calling
// it before every product (as this file once did) cost host time on each of a step's ~150
// products. The math mode is set only when matmul_precision() changes. Callers hold
// handle_mutex().
constexpr size_t kCublasWorkspace = size_t(32) << 20;  // cuBLAS's advice for Hopper

// The workspace of cuBLAS and cuBLASLt (one stream: never two products at once), held for
// the life of the process, as the handles are.
void* workspace() {
  static void* w = [] {
    void* p = nullptr;
    WAVSPA_CUDA_CHECK(cudaMalloc(&p, kCublasWorkspace));
    return p;
  }();
  return w;
}

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    WAVSPA_CUBLAS_CHECK(cublasCreate(&created));
    WAVSPA_CUBLAS_CHECK(cublasSetStream(created, stream()));
    WAVSPA_CUBLAS_CHECK(cublasSetWorkspace(created, workspace(), kCublasWorkspace));
    return created;
  }();
  // CUBLAS_DEFAULT_MATH keeps float32 products in float32 arithmetic (no TF32, no
  // reduced-precision tricks); the TF32 mode is opt-in.
  static int mode = -1;
  const cublasMath_t want = matmul_precision() == MatmulPrecision::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                         : CUBLAS_DEFAULT_MATH;
  if (mode != (int)want) {
    WAVSPA_CUBLAS_CHECK(cublasSetMathMode(h, want));
    mode = (int)want;
  }
  return h;
}

cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t created = nullptr;
    WAVSPA_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

// Largest power of two up to 16 that divides a pointer's address: what the heuristics are
// told of each operand's alignment (a plan for aligned operands must not see unaligned ones).
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int align = 16;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// One cuBLASLt problem in cuBLAS's column-major terms (the swapped operands of the file's
// comment): D (m x n, ldc) = alpha op(A) op(B) + beta C, with C and D the same matrix.
struct LtProblem {
  cublasOperation_t op_a, op_b;
  int64_t m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c;
  cudaDataType_t out_type;
  int align_a, align_b, align_c;
  bool bias = false;  // a bias vector (m, out_type) added to every column in the epilogue
  auto key() const {
    return std::make_tuple(op_a, op_b, m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c, out_type,
                           align_a, align_b, align_c, bias);
  }
};

// Descriptors and the heuristics' first algorithm for one problem, made once and kept.
class LtPlan {
 public:
  explicit LtPlan(const LtProblem& p) {
    WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &p.op_a, sizeof(p.op_a)));
    WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &p.op_b, sizeof(p.op_b)));
    if (p.bias) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType_t bias_type = p.out_type;
      WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                         sizeof(epilogue)));
      WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                         sizeof(bias_type)));
    }
    const bool ta = p.op_a != CUBLAS_OP_N, tb = p.op_b != CUBLAS_OP_N;
    a_ = layout(CUDA_R_16BF, ta ? p.k : p.m, ta ? p.m : p.k, p.lda, p.batch, p.stride_a);
    b_ = layout(CUDA_R_16BF, tb ? p.n : p.k, tb ? p.k : p.n, p.ldb, p.batch, p.stride_b);
    c_ = layout(p.out_type, p.m, p.n, p.ldc, p.batch, p.stride_c);
    cublasLtMatmulPreference_t pref = nullptr;
    WAVSPA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kCublasWorkspace;
    const uint32_t al[3] = {(uint32_t)p.align_a, (uint32_t)p.align_b, (uint32_t)p.align_c};
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                             sizeof(ws));
    const cublasLtMatmulPreferenceAttributes_t align_attr[3] = {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                                CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                                CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES};
    for (int i = 0; i < 3 && st == CUBLAS_STATUS_SUCCESS; ++i)
      st = cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al[i], sizeof(al[i]));
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2],
                                                sizeof(al[2]));
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(lt_handle(), desc_, a_, b_, c_, c_, pref, 1, &heuristic_, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    ok_ = st == CUBLAS_STATUS_SUCCESS && found > 0;
  }
  ~LtPlan() {
    cublasLtMatrixLayoutDestroy(a_);
    cublasLtMatrixLayoutDestroy(b_);
    cublasLtMatrixLayoutDestroy(c_);
    cublasLtMatmulDescDestroy(desc_);
  }
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;

  bool ok() const { return ok_; }  // the heuristics offered an algorithm
  void run(float alpha, const void* a, const void* b, float beta, void* c, const void* bias) const {
    if (bias != nullptr)  // the descriptor belongs to this plan, and calls never overlap (handle_mutex)
      WAVSPA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                         sizeof(bias)));
    WAVSPA_CUBLAS_CHECK(cublasLtMatmul(lt_handle(), desc_, &alpha, a, a_, b, b_, &beta, c, c_, c, c_,
                                       &heuristic_.algo, workspace(), kCublasWorkspace, stream()));
  }

 private:
  static cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                       int64_t stride) {
    cublasLtMatrixLayout_t l = nullptr;
    WAVSPA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
      const int32_t count = (int32_t)batch;
      WAVSPA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                           sizeof(count)));
      WAVSPA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                           sizeof(stride)));
    }
    return l;
  }

  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic_{};
  bool ok_ = false;
};

// bfloat16 operands into a bfloat16 or float32 output through the plan of its problem, made
// on first sight (the caller holds handle_mutex()). False when cuBLASLt has no algorithm for
// it (or the batch does not fit its 32-bit count): the caller then uses cublasGemmEx.
bool lt_gemm(const LtProblem& p, float alpha, const void* a, const void* b, float beta, void* c,
             const void* bias = nullptr) {
  if (p.batch > INT32_MAX) return false;
  static std::map<decltype(p.key()), std::unique_ptr<LtPlan>> plans;
  auto it = plans.find(p.key());
  if (it == plans.end()) {
    if (plans.size() >= 4096) plans.clear();  // shapes that keep changing: start again, bounded
    it = plans.emplace(p.key(), std::make_unique<LtPlan>(p)).first;
  }
  if (!it->second->ok()) return false;
  it->second->run(alpha, a, b, beta, c, bias);
  return true;
}

// The row-major product of GemmArgs as cuBLASLt's column-major problem: operands swapped, m
// and n swapped (the file's comment). A batch that shares one operand (stride 0) stays with
// cublasGemmStridedBatchedEx: batch > INT32_MAX marks it for lt_gemm to refuse.
LtProblem lt_problem(const GemmArgs& g, int64_t batch, const void* a, int64_t stride_a, const void* b,
                     int64_t stride_b, const void* c, int64_t stride_c, cudaDataType_t out_type) {
  const bool shared = batch > 1 && (stride_a == 0 || stride_b == 0);
  return LtProblem{g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                   g.n, g.m, g.k, g.ldb, g.lda, g.ldc, shared ? (int64_t)INT32_MAX + 1 : batch,
                   stride_b, stride_a, stride_c, out_type, alignment_of(b), alignment_of(a), alignment_of(c)};
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
__global__ void scale_matrix_kernel(T* c, int64_t rows, int64_t cols, int64_t ldc,
                                    Compute<T> beta, int64_t batch, int64_t stride_c) {
  using V = Compute<T>;
  const int64_t total = batch * rows * cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t col = i % cols, row = (i / cols) % rows, b = i / (cols * rows);
    T* p = c + b * stride_c + row * ldc + col;
    *p = from_compute<T>(beta == V(0) ? V(0) : beta * to_compute(*p));
  }
}

// dst[i] = bfloat16(src[i]), round to nearest even (NaN stays NaN, overflow becomes inf).
__global__ void to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

// A bfloat16 copy of the memory one GEMM operand reads: `batch` matrices of `rows` x `cols`
// (as stored, row-major) with leading dimension ld, `stride` elements apart (0: one matrix
// shared by the batch). The copy spans from the first element read to the last, so the same
// ld and stride address it; the gaps in between (other columns of a wider matrix) are
// converted too and never read. Every address of that span lies inside the operand's
// storage, because the first and last elements do.
Tensor bf16_copy(const float* src, int64_t batch, int64_t rows, int64_t cols, int64_t ld,
                 int64_t stride, Device device) {
  const int64_t span = (batch - 1) * stride + (rows - 1) * ld + cols;
  Tensor t = scratch_bytes((size_t)span * sizeof(__nv_bfloat16), device);
  to_bf16_kernel<<<blocks_for(span), kThreads, 0, stream()>>>(
      src, static_cast<__nv_bfloat16*>(t.raw_data()), span);
  WAVSPA_CUDA_LAUNCH_CHECK();
  return t;
}

template <typename T>
void gemm_typed(const GemmArgs& g, int64_t batch, const T* a, int64_t stride_a, const T* b,
                int64_t stride_b, T* c, int64_t stride_c, Device device) {
  if (g.m == 0 || g.n == 0 || batch == 0) return;
  if (g.k == 0) {
    const int64_t total = batch * g.m * g.n;
    scale_matrix_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
        c, g.m, g.n, g.ldc, (Compute<T>)g.beta, batch, stride_c);
    WAVSPA_CUDA_LAUNCH_CHECK();
    return;
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (std::is_same_v<T, bf16>) {
    const float alpha = (float)g.alpha, beta = (float)g.beta;
    std::lock_guard<std::mutex> lock(handle_mutex());
    cublasHandle_t h = handle();
    if (lt_gemm(lt_problem(g, batch, a, stride_a, b, stride_b, c, stride_c, CUDA_R_16BF), alpha, b, a, beta, c))
      return;
    if (batch == 1) {
      WAVSPA_CUBLAS_CHECK(cublasGemmEx_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b, CUDA_R_16BF,
                                          g.ldb, a, CUDA_R_16BF, g.lda, &beta, c, CUDA_R_16BF,
                                          g.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
      WAVSPA_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
          h, op_b, op_a, g.n, g.m, g.k, &alpha, b, CUDA_R_16BF, g.ldb, stride_b, a, CUDA_R_16BF,
          g.lda, stride_a, &beta, c, CUDA_R_16BF, g.ldc, stride_c, batch, CUBLAS_COMPUTE_32F,
          CUBLAS_GEMM_DEFAULT));
    }
    return;
  } else {
  const T alpha = (T)g.alpha, beta = (T)g.beta;
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_precision() == MatmulPrecision::BFloat16) {
      // The scratch copies are released when this returns: the GEMM that reads them is
      // already queued on stream(), behind the conversions.
      const Tensor a16 = bf16_copy(a, batch, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k,
                                   g.lda, stride_a, device);
      const Tensor b16 = bf16_copy(b, batch, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n,
                                   g.ldb, stride_b, device);
      std::lock_guard<std::mutex> lock(handle_mutex());
      cublasHandle_t h = handle();
      if (batch == 1) {
        WAVSPA_CUBLAS_CHECK(cublasGemmEx_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b16.raw_data(),
                                            CUDA_R_16BF, g.ldb, a16.raw_data(), CUDA_R_16BF, g.lda,
                                            &beta, c, CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
      } else {
        WAVSPA_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
            h, op_b, op_a, g.n, g.m, g.k, &alpha, b16.raw_data(), CUDA_R_16BF, g.ldb, stride_b,
            a16.raw_data(), CUDA_R_16BF, g.lda, stride_a, &beta, c, CUDA_R_32F, g.ldc, stride_c,
            batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      }
      return;
    }
  }
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
  }  // not bfloat16
}

// bfloat16 operands, float32 output: the weight gradients of linear under autocast.
void gemm_bf16_to_f32(const GemmArgs& g, int64_t batch, const bf16* a, int64_t stride_a, const bf16* b,
                      int64_t stride_b, float* c, int64_t stride_c) {
  if (g.m == 0 || g.n == 0 || batch == 0) return;
  if (g.k == 0) {
    const int64_t total = batch * g.m * g.n;
    scale_matrix_kernel<float><<<blocks_for(total), kThreads, 0, stream()>>>(c, g.m, g.n, g.ldc, (float)g.beta,
                                                                             batch, stride_c);
    WAVSPA_CUDA_LAUNCH_CHECK();
    return;
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const float alpha = (float)g.alpha, beta = (float)g.beta;
  std::lock_guard<std::mutex> lock(handle_mutex());
  cublasHandle_t h = handle();
  if (lt_gemm(lt_problem(g, batch, a, stride_a, b, stride_b, c, stride_c, CUDA_R_32F), alpha, b, a, beta, c))
    return;
  if (batch == 1) {
    WAVSPA_CUBLAS_CHECK(cublasGemmEx_64(h, op_b, op_a, g.n, g.m, g.k, &alpha, b, CUDA_R_16BF, g.ldb, a,
                                        CUDA_R_16BF, g.lda, &beta, c, CUDA_R_32F, g.ldc, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT));
  } else {
    WAVSPA_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
        h, op_b, op_a, g.n, g.m, g.k, &alpha, b, CUDA_R_16BF, g.ldb, stride_b, a, CUDA_R_16BF, g.lda, stride_a,
        &beta, c, CUDA_R_32F, g.ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

// Operands of c's dtype, or bfloat16 operands into a float32 c.
bool mixed_gemm(const char* what, const Tensor& a, const Tensor& b, const Tensor& c) {
  if (a.dtype() == c.dtype() && b.dtype() == c.dtype()) return false;
  WAVSPA_CHECK(a.dtype() == kBFloat16 && b.dtype() == kBFloat16 && c.dtype() == kFloat32, what,
               ": operands must have the output's dtype, or be bfloat16 with a float32 output; got ",
               a.dtype(), " x ", b.dtype(), " -> ", c.dtype());
  return true;
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  if (mixed_gemm("gemm", a, b, c)) {
    gemm_bf16_to_f32(g, 1, dptr<bf16>(a), 0, dptr<bf16>(b), 0, dptr<float>(c), 0);
    return;
  }
  dispatch_floating_bf16(c.dtype(), "gemm", [&](auto zero) {
    using T = decltype(zero);
    gemm_typed<T>(g, 1, dptr<T>(a), 0, dptr<T>(b), 0, dptr<T>(c), 0, c.device());
  });
}

void CudaBackend::batched_gemm(const GemmArgs& g, int64_t batch, const Tensor& a,
                               int64_t stride_a, const Tensor& b, int64_t stride_b,
                               const Tensor& c, int64_t stride_c) {
  if (mixed_gemm("batched_gemm", a, b, c)) {
    gemm_bf16_to_f32(g, batch, dptr<bf16>(a), stride_a, dptr<bf16>(b), stride_b, dptr<float>(c), stride_c);
    return;
  }
  dispatch_floating_bf16(c.dtype(), "batched_gemm", [&](auto zero) {
    using T = decltype(zero);
    gemm_typed<T>(g, batch, dptr<T>(a), stride_a, dptr<T>(b), stride_b, dptr<T>(c), stride_c,
                  c.device());
  });
}

void CudaBackend::gemm_bias(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& bias,
                            const Tensor& c) {
  // bfloat16 throughout: the bias in cuBLASLt's epilogue (float32 accumulator + bias, one
  // rounding, as the default's beta = 1 over a copied bias). Anything else, or no plan for
  // it: the default.
  const bool lt = a.dtype() == kBFloat16 && b.dtype() == kBFloat16 && c.dtype() == kBFloat16 &&
                  bias.dtype() == kBFloat16 && g.m > 0 && g.n > 0 && g.k > 0 &&
                  alignment_of(bias.raw_data()) == 16;
  if (lt) {
    LtProblem p = lt_problem(g, 1, a.raw_data(), 0, b.raw_data(), 0, c.raw_data(), 0, CUDA_R_16BF);
    p.bias = true;
    std::lock_guard<std::mutex> lock(handle_mutex());
    handle();
    if (lt_gemm(p, (float)g.alpha, b.raw_data(), a.raw_data(), 0.0f, c.raw_data(), bias.raw_data())) return;
  }
  Backend::gemm_bias(g, a, b, bias, c);
}

// For kernels of this backend that multiply their own scratch buffers (attention.cu).
template <typename T>
void gemm_raw(const GemmArgs& g, int64_t batch, const T* a, int64_t stride_a, const T* b, int64_t stride_b, T* c,
              int64_t stride_c, Device device) {
  gemm_typed<T>(g, batch, a, stride_a, b, stride_b, c, stride_c, device);
}
template void gemm_raw<float>(const GemmArgs&, int64_t, const float*, int64_t, const float*, int64_t, float*,
                              int64_t, Device);
template void gemm_raw<double>(const GemmArgs&, int64_t, const double*, int64_t, const double*, int64_t, double*,
                               int64_t, Device);

}  // namespace wavspa::cuda

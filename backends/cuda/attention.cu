// Attention on CUDA: softmax(scale q k^T + masks) v, tile by tile with an online softmax, so
// no (N, N) matrix is ever stored (backends/backend.h's AttentionArgs says what is computed).
// Three paths:
//  - the bfloat16 tensor-core kernels of attention_mma.cuh ("flash attention"), which
//    bfloat16 tensors take, and float32 tensors under MatmulPrecision::BFloat16 (operands
//    rounded to bfloat16 as they are staged, float32 accumulation and softmax);
//  - the float32 tensor-core kernels of attention_tf32.cuh, which float32 tensors take under
//    MatmulPrecision::Float32 (3xTF32: float32 accuracy) and TF32 (one TF32 product);
//    both kernel families serve head dims 32, 64 and 128 with 16-byte aligned rows, and
//    their backward is deterministic (no atomics);
//  - the exact path below for everything else (float64, other head dims, unaligned rows;
//    bfloat16 there computes on float32 copies): cuBLAS products over chunks of query rows,
//    with the masks, softmax and dropout in one row kernel per chunk. Scores exist for one
//    chunk at a time, at most kChunkElems per buffer (128 MB in float32), so memory stays
//    linear in N for a fixed budget. Chunks are processed in order and dK, dV accumulate
//    through the products' beta, so the result is the same on every run.
#include <cmath>

#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_tf32.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"
#include "core/runtime.h"

namespace wavspa::cuda {
namespace {

using attn::Params;

struct MinIntOp {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};

// first[b] = the first j with keep[b, j] != 0, or nk when there is none. One warp per row.
__global__ void first_kept_kernel(const int32_t* keep, int64_t batch, int64_t nk, int32_t* first) {
  const int64_t b = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (b >= batch) return;  // warp-uniform
  int f = (int)nk;
  for (int64_t j0 = 0; j0 < nk && f == (int)nk; j0 += 32) {
    const int64_t j = j0 + lane;
    int mine = j < nk && keep[b * nk + j] != 0 ? (int)j : (int)nk;
    f = warp_allreduce(mine, MinIntOp{});
  }
  if (lane == 0) first[b] = f;
}

// full[b, c] = 1 when keys 32 c .. 32 c + 31 (those below nk) are all kept. One warp each.
__global__ void full_blocks_kernel(const int32_t* keep, int64_t batch, int64_t nk, uint8_t* full) {
  const int64_t blocks = (nk + 31) / 32;
  const int64_t w = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (w >= batch * blocks) return;  // warp-uniform
  const int64_t b = w / blocks, j = (w % blocks) * 32 + lane;
  const bool all = __all_sync(0xffffffffu, j >= nk || keep[b * nk + j] != 0);
  if (lane == 0) full[w] = all ? 1 : 0;
}

template <typename T, typename L = T>
Params<T, L> make_params(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& key_keep, const Tensor& out, const Tensor& lse, Tensor& first_scratch) {
  Params<T, L> p;
  p.q = {dptr<const T>(q), q.strides()[0], q.strides()[1], q.strides()[2]};
  p.k = {dptr<const T>(k), k.strides()[0], k.strides()[1], k.strides()[2]};
  p.v = {dptr<const T>(v), v.strides()[0], v.strides()[1], v.strides()[2]};
  p.out = {dptr<T>(out), out.strides()[0], out.strides()[1], out.strides()[2]};
  p.lse = dptr<L>(lse);
  p.batch = a.batch, p.heads = a.heads, p.nq = a.nq, p.nk = a.nk, p.dim = a.dim;
  p.scale = a.scale;
  p.causal = a.causal;
  p.dropout_p = a.dropout_p;
  p.dropout_scale = a.dropout_p > 0 ? 1.0 / (1.0 - a.dropout_p) : 1.0;
  p.dropout_threshold = attention_dropout_threshold(a.dropout_p);
  p.philox = a.philox;
  if (key_keep.defined() && a.batch > 0) {
    p.keep = dptr<const int32_t>(key_keep);
    // One scratch: first_kept (B int32), then full32 (B * ceil(nk / 32) bytes).
    const int64_t full_count = a.batch * ((a.nk + 31) / 32);
    first_scratch = scratch_bytes((size_t)a.batch * sizeof(int32_t) + (size_t)full_count, q.device());
    int32_t* first = static_cast<int32_t*>(first_scratch.raw_data());
    uint8_t* full = reinterpret_cast<uint8_t*>(first + a.batch);
    const int warps = 8;
    first_kept_kernel<<<(unsigned)((a.batch + warps - 1) / warps), warps * 32, 0, stream()>>>(p.keep, a.batch, a.nk,
                                                                                             first);
    WAVSPA_CUDA_LAUNCH_CHECK();
    if (full_count > 0) {
      full_blocks_kernel<<<(unsigned)((full_count + warps - 1) / warps), warps * 32, 0, stream()>>>(p.keep, a.batch,
                                                                                                    a.nk, full);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    p.first_kept = first;
    p.full32 = full;
  }
  return p;
}

// The tensor-core kernels take float32 tensors under bfloat16 precision, at head dims 32,
// 64 and 128 with aligned rows (their grid has B * H in y: at most 65535).
bool use_tensor_cores(const AttentionArgs& a, const Params<float, float>& p) {
  return matmul_precision() == MatmulPrecision::BFloat16 && a.batch * a.heads <= 65535 && attn::mma_supported(p);
}

// The float32 kernels take float32 tensors under the other two precisions, where the
// bfloat16 kernels would (same head dims and alignment).
bool use_tf32_kernels(const AttentionArgs& a, const Params<float, float>& p) {
  return matmul_precision() != MatmulPrecision::BFloat16 && a.batch * a.heads <= 65535 && attn::mma_supported(p);
}
cudaError_t tf32_forward(const Params<float, float>& p) {
  return matmul_precision() == MatmulPrecision::TF32 ? attn::tf32_forward<1>(p, stream())
                                                      : attn::tf32_forward<3>(p, stream());
}
cudaError_t tf32_backward(const Params<float, float>& p) {
  return matmul_precision() == MatmulPrecision::TF32 ? attn::tf32_backward<1>(p, stream())
                                                      : attn::tf32_backward<3>(p, stream());
}

// ---- the exact path ------------------------------------------------------------------------

constexpr int64_t kChunkElems = int64_t(1) << 25;  // scores per chunk buffer

// Query rows per chunk: as many as fit kChunkElems scores for all (b, h).
int64_t chunk_rows(const AttentionArgs& a) {
  const int64_t per_row = std::max<int64_t>(1, a.batch * a.heads * a.nk);
  return std::max<int64_t>(1, std::min<int64_t>(a.nq, kChunkElems / per_row));
}

// Scores of row (bh, i) as the softmax sees them: dead rows 0, masked keys -inf.
template <typename T>
__device__ __forceinline__ T masked_score(const attn::Mask& mask, bool dead, int64_t i, int64_t j, T s) {
  if (dead) return T(0);
  return mask.allowed(i, j) ? s : T(-INFINITY);
}

// Dropout's keep bits for keys 8 g .. 8 g + 7 of row (bh, i): one Philox block (all kept
// without dropout).
template <typename T>
__device__ __forceinline__ uint32_t keep_bits8(const Params<T, T>& p, int64_t bh, int64_t i, int64_t g) {
  if (p.dropout_p <= 0) return 0xffu;
  const auto r = dropout_philox(philox_start(p.philox) + (uint64_t)(bh * p.nq + i) * (uint64_t)((p.nk + 7) / 8) + (uint64_t)g,
                                p.philox.seed);
  uint32_t kept = 0;
#pragma unroll
  for (int c = 0; c < 8; ++c) kept |= (uint32_t)(((r[c / 2] >> (16 * (c % 2))) & 0xffffu) >= p.dropout_threshold) << c;
  return kept;
}

// Per row of a chunk of scaled scores S (BH, cs, nk): the masks, lse, and the normalised weights
// times the dropout factor, written over S. Rows are spread as in norm.cu (row_block shapes).
template <typename T>
__global__ void chunk_forward_kernel(Params<T, T> p, T* S, int64_t i0, int64_t cs) {
  __shared__ double scratch[32];
  const int64_t M = p.batch * p.heads * cs, nk = p.nk, groups = (nk + 7) / 8;
  for (int64_t base = (int64_t)blockIdx.x * blockDim.y; base < M; base += (int64_t)gridDim.x * blockDim.y) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const int64_t bh = active ? m / cs : 0, i = i0 + (active ? m % cs : 0);
    const attn::Mask mask = attn::mask_for(p, bh / p.heads);
    const bool dead = mask.dead(i);
    T* row = S + (active ? m : 0) * nk;
    T mx = -INFINITY;
    if (active)
      for (int64_t j = threadIdx.x; j < nk; j += blockDim.x) {
        const T v = masked_score(mask, dead, i, j, row[j]);
        mx = v > mx ? v : mx;
      }
    mx = row_allreduce(mx, MaxOp{}, scratch);
    const T shift = mx == -INFINITY ? T(0) : mx;
    double sum = 0;
    if (active)
      for (int64_t j = threadIdx.x; j < nk; j += blockDim.x) sum += (double)exp_of(masked_score(mask, dead, i, j, row[j]) - shift);
    sum = row_allreduce(sum, SumOp{}, scratch);
    if (!active) continue;
    if (threadIdx.x == 0) p.lse[bh * p.nq + i] = shift + (T)::log(sum);
    const T inv = (T)(1.0 / sum), drop_scale = (T)p.dropout_scale;
    // Eight keys per thread step: one Philox block serves them (AttentionArgs' rule).
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
      const uint32_t kept = keep_bits8(p, bh, i, g);
      for (int c = 0; c < 8 && 8 * g + c < nk; ++c) {
        const int64_t j = 8 * g + c;
        const T w = exp_of(masked_score(mask, dead, i, j, row[j]) - shift) * inv;
        row[j] = (kept >> c) & 1u ? (p.dropout_p > 0 ? w * drop_scale : w) : T(0);
      }
    }
  }
}

// chunk_forward_kernel with the row in registers: each thread holds KG groups of 8 keys
// (groups t, t + blockDim.x, ...), so a row is read once, exponentiated once and written once
// (the kernel above reads it three times and takes exp twice). Rows of up to 8 KG blockDim.x keys.
template <typename T, int KG>
__global__ void chunk_forward_rows_kernel(Params<T, T> p, T* S, int64_t i0, int64_t cs) {
  __shared__ double scratch[32];
  const int64_t M = p.batch * p.heads * cs, nk = p.nk, groups = (nk + 7) / 8;
  for (int64_t base = (int64_t)blockIdx.x * blockDim.y; base < M; base += (int64_t)gridDim.x * blockDim.y) {
    const int64_t m = base + threadIdx.y;
    const bool active = m < M;
    const int64_t bh = active ? m / cs : 0, i = i0 + (active ? m % cs : 0);
    const attn::Mask mask = attn::mask_for(p, bh / p.heads);
    const bool dead = mask.dead(i);
    T* row = S + (active ? m : 0) * nk;
    T v[KG][8];
    T mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < KG; ++k) {
      const int64_t g = threadIdx.x + (int64_t)k * blockDim.x;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t j = 8 * g + c;
        v[k][c] = active && j < nk ? masked_score(mask, dead, i, j, row[j]) : T(-INFINITY);
        mx = v[k][c] > mx ? v[k][c] : mx;
      }
    }
    mx = row_allreduce(mx, MaxOp{}, scratch);
    const T shift = mx == -INFINITY ? T(0) : mx;
    double sum = 0;
#pragma unroll
    for (int k = 0; k < KG; ++k)
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        v[k][c] = exp_of(v[k][c] - shift);  // 0 for masked keys and keys past the end
        sum += (double)v[k][c];
      }
    sum = row_allreduce(sum, SumOp{}, scratch);
    if (!active) continue;
    if (threadIdx.x == 0) p.lse[bh * p.nq + i] = shift + (T)::log(sum);
    const T inv = (T)(1.0 / sum), drop_scale = (T)p.dropout_scale;
#pragma unroll
    for (int k = 0; k < KG; ++k) {
      const int64_t g = threadIdx.x + (int64_t)k * blockDim.x;
      if (g >= groups) break;
      const uint32_t kept = keep_bits8(p, bh, i, g);
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t j = 8 * g + c;
        if (j >= nk) break;
        const T w = v[k][c] * inv;
        row[j] = (kept >> c) & 1u ? (p.dropout_p > 0 ? w * drop_scale : w) : T(0);
      }
    }
  }
}

// Per row of a chunk: from the scaled scores S and dP = dO V^T, the weights times dropout (W,
// over S) and dS = P (dP drop - D), 0 where masked or the row is dead (over dP).
// Rows on threadIdx.y (and the grid), a row's groups of 8 keys on threadIdx.x: what a row
// shares (its mask, lse, D) is read once per row, not once per group.
template <typename T>
__global__ void chunk_backward_kernel(Params<T, T> p, T* S, T* dP, int64_t i0, int64_t cs) {
  const int64_t M = p.batch * p.heads * cs, nk = p.nk, groups = (nk + 7) / 8;
  for (int64_t m = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; m < M; m += (int64_t)gridDim.x * blockDim.y) {
    const int64_t bh = m / cs, i = i0 + m % cs;
    const attn::Mask mask = attn::mask_for(p, bh / p.heads);
    const bool dead = mask.dead(i);
    const T lse = p.lse[bh * p.nq + i], D = p.rowdot[bh * p.nq + i];
    T* srow = S + m * nk;
    T* prow = dP + m * nk;
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
      const uint32_t kept = keep_bits8(p, bh, i, g);
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int64_t j = 8 * g + c;
        if (j >= nk) break;
        const bool allowed = !dead && mask.allowed(i, j);
        const T prob = dead || allowed ? exp_of(masked_score(mask, dead, i, j, srow[j]) - lse) : T(0);
        const T drop = (kept >> c) & 1u ? (T)p.dropout_scale : T(0);
        srow[j] = prob * drop;
        prow[j] = allowed ? prob * (prow[j] * drop - D) : T(0);
      }
    }
  }
}

// A contiguous (B, H, n, d) copy of a strided operand (or an uninitialised one).
Tensor contiguous_copy(CudaBackend& be, const Tensor& t, bool fill) {
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  if (fill) be.copy(t, c);
  return c;
}

GemmArgs gemm_args(bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                   double alpha, double beta) {
  GemmArgs g;
  g.trans_a = ta, g.trans_b = tb, g.m = m, g.n = n, g.k = k, g.lda = lda, g.ldb = ldb, g.ldc = ldc;
  g.alpha = alpha, g.beta = beta;
  return g;
}

template <typename T>
void exact_forward(CudaBackend& be, const AttentionArgs& a, const Params<T, T>& p, const Tensor& q, const Tensor& k,
                   const Tensor& v, const Tensor& out) {
  const int64_t BH = a.batch * a.heads, nq = a.nq, nk = a.nk, d = a.dim, c = chunk_rows(a);
  const Device dev = q.device();
  const Tensor qc = contiguous_copy(be, q, true), kc = contiguous_copy(be, k, true), vc = contiguous_copy(be, v, true);
  const Tensor oc = contiguous_copy(be, out, false);
  const Tensor S = scratch_bytes((size_t)(BH * c * nk) * sizeof(T), dev);
  T* s = static_cast<T*>(S.raw_data());
  const T* qp = dptr<const T>(qc);
  for (int64_t i0 = 0; i0 < nq; i0 += c) {
    const int64_t cs = std::min(c, nq - i0);
    gemm_raw<T>(gemm_args(false, true, cs, nk, d, d, d, nk, a.scale, 0.0), BH, qp + i0 * d, nq * d, dptr<const T>(kc),
                nk * d, s, cs * nk, dev);
    // Rows of up to 4 groups of 8 keys per thread stay in registers (128 threads a row past
    // 64 groups, a warp below); longer rows take the three-pass kernel.
    const int64_t groups = (nk + 7) / 8;
    const unsigned tx = groups > 64 ? 128 : 32;
    const dim3 rows_block(tx, 256 / tx);
    const unsigned rows_grid = row_grid(BH * cs, rows_block);
    if (groups <= tx) {
      chunk_forward_rows_kernel<T, 1><<<rows_grid, rows_block, 0, stream()>>>(p, s, i0, cs);
    } else if (groups <= 2 * tx) {
      chunk_forward_rows_kernel<T, 2><<<rows_grid, rows_block, 0, stream()>>>(p, s, i0, cs);
    } else if (groups <= 4 * tx) {
      chunk_forward_rows_kernel<T, 4><<<rows_grid, rows_block, 0, stream()>>>(p, s, i0, cs);
    } else {
      const dim3 block = row_block(nk);
      chunk_forward_kernel<T><<<row_grid(BH * cs, block), block, 0, stream()>>>(p, s, i0, cs);
    }
    WAVSPA_CUDA_LAUNCH_CHECK();
    gemm_raw<T>(gemm_args(false, false, cs, d, nk, nk, d, d, 1.0, 0.0), BH, s, cs * nk, dptr<const T>(vc), nk * d,
                dptr<T>(oc) + i0 * d, nq * d, dev);
  }
  be.copy(oc, out);
}

template <typename T>
void exact_backward(CudaBackend& be, const AttentionArgs& a, const Params<T, T>& p, const Tensor& q, const Tensor& k,
                    const Tensor& v, const Tensor& grad_out, const Tensor& grad_q, const Tensor& grad_k,
                    const Tensor& grad_v) {
  const int64_t BH = a.batch * a.heads, nq = a.nq, nk = a.nk, d = a.dim, c = chunk_rows(a);
  const Device dev = q.device();
  const Tensor qc = contiguous_copy(be, q, true), kc = contiguous_copy(be, k, true), vc = contiguous_copy(be, v, true);
  const Tensor gc = contiguous_copy(be, grad_out, true);
  const Tensor dqc = contiguous_copy(be, grad_q, false), dkc = contiguous_copy(be, grad_k, false),
               dvc = contiguous_copy(be, grad_v, false);
  const Tensor S = scratch_bytes((size_t)(BH * c * nk) * sizeof(T), dev);
  const Tensor dP = scratch_bytes((size_t)(BH * c * nk) * sizeof(T), dev);
  T* s = static_cast<T*>(S.raw_data());
  T* dp = static_cast<T*>(dP.raw_data());
  const T *qp = dptr<const T>(qc), *kp = dptr<const T>(kc), *vp = dptr<const T>(vc), *gp = dptr<const T>(gc);
  for (int64_t i0 = 0; i0 < nq; i0 += c) {
    const int64_t cs = std::min(c, nq - i0);
    const double beta = i0 == 0 ? 0.0 : 1.0;  // dK and dV accumulate over the chunks, in order
    gemm_raw<T>(gemm_args(false, true, cs, nk, d, d, d, nk, a.scale, 0.0), BH, qp + i0 * d, nq * d, kp, nk * d, s,
                cs * nk, dev);
    gemm_raw<T>(gemm_args(false, true, cs, nk, d, d, d, nk, 1.0, 0.0), BH, gp + i0 * d, nq * d, vp, nk * d, dp,
                cs * nk, dev);
    const dim3 block = row_block((nk + 7) / 8);
    chunk_backward_kernel<T><<<row_grid(BH * cs, block), block, 0, stream()>>>(p, s, dp, i0, cs);
    WAVSPA_CUDA_LAUNCH_CHECK();
    // dV += W^T dO, dK += scale dS^T Q (both (nk x d) per head), dQ = scale dS K for the chunk.
    gemm_raw<T>(gemm_args(true, false, nk, d, cs, nk, d, d, 1.0, beta), BH, s, cs * nk, gp + i0 * d, nq * d,
                dptr<T>(dvc), nk * d, dev);
    gemm_raw<T>(gemm_args(true, false, nk, d, cs, nk, d, d, a.scale, beta), BH, dp, cs * nk, qp + i0 * d, nq * d,
                dptr<T>(dkc), nk * d, dev);
    gemm_raw<T>(gemm_args(false, false, cs, d, nk, nk, d, d, a.scale, 0.0), BH, dp, cs * nk, kp, nk * d,
                dptr<T>(dqc) + i0 * d, nq * d, dev);
  }
  be.copy(dqc, grad_q);
  be.copy(dkc, grad_k);
  be.copy(dvc, grad_v);
}

// Floating dtypes of the exact path: float32 and float64 (bfloat16 goes through float32).
template <typename F>
void dispatch_attention(DType dt, const char* what, F&& f) {
  if (dt == DType::Float32) return f(float{});
  if (dt == DType::Float64) return f(double{});
  throw Error(str(what, ": expected float32, float64 or bfloat16 on CUDA, got ", dt));
}

// A float32 (B, H, n, d) tensor shaped like t, in (B, n, H, d) memory like the op's outputs;
// float32_copy also copies t into it.
Tensor float32_like(const Tensor& t) {
  const Shape& s = t.shape();
  const int64_t H = s[1], n = s[2], d = s[3];
  return Tensor::empty({s[0], n, H, d}, kFloat32, t.device()).as_strided(s, {n * H * d, d, H * d, 1}, 0);
}
Tensor float32_copy(CudaBackend& be, const Tensor& t) {
  Tensor c = float32_like(t);
  be.copy(t, c);
  return c;
}

// bfloat16 tensors: the tensor-core kernels read them as they are (no rounding: they are
// bfloat16 already) wherever those kernels apply; elsewhere (other head dims, unaligned rows)
// the exact path computes on float32 copies and the results are rounded on the way back.
bool bf16_tensor_cores(const AttentionArgs& a, const Params<bf16, float>& p) {
  return a.batch * a.heads <= 65535 && attn::mma_supported(p);
}

// The tensor-core backward with dS out (attention_mma.cuh's DS_OUT): batch entries in chunks
// whose dS^T scratch stays within attention_scratch_limit() (core/runtime.h); per chunk the
// key pass, then dQ = scale dS K from the scratch (attention_mma.cuh). Returns false, having
// done nothing, where it does not apply: causal masks (the key pass skips tiles), empty
// problems, or one batch entry's scratch alone over the limit; the two passes take those.
bool backward_ds(const Params<bf16, float>& p, Device device) {
  if (p.causal || p.batch * p.heads * p.nq * p.nk == 0) return false;
  const int64_t ld = attn::ds_pitch(p.nq), H = p.heads, limit = attention_scratch_limit();
  const int64_t per_batch = H * p.nk * ld * (int64_t)sizeof(bf16);
  if (per_batch > limit) return false;
  const int64_t chunk = std::min(p.batch, limit / per_batch);
  const Tensor scratch = scratch_bytes((size_t)(chunk * per_batch), device);
  bf16* ds = static_cast<bf16*>(scratch.raw_data());
  const uint64_t groups = (uint64_t)((p.nk + 7) / 8);  // Philox blocks per query row
  for (int64_t b0 = 0; b0 < p.batch; b0 += chunk) {
    // The chunk as a problem of its own: pointers moved to batch entry b0, and dropout's
    // counters to where the whole problem's rows b0 H ... start.
    Params<bf16, float> c = p;
    c.batch = std::min(chunk, p.batch - b0);
    for (auto* op : {&c.q, &c.k, &c.v, &c.grad_out}) op->ptr += b0 * op->sb;
    for (auto* op : {&c.out, &c.grad_q, &c.grad_k, &c.grad_v}) op->ptr += b0 * op->sb;
    c.lse += b0 * H * p.nq;
    c.rowdot += b0 * H * p.nq;
    if (c.keep) c.keep += b0 * p.nk;
    if (c.first_kept) c.first_kept += b0;
    if (c.full32) c.full32 += b0 * ((p.nk + 31) / 32);
    c.philox.offset += (uint64_t)(b0 * H * p.nq) * groups;
    if (c.keep_bits) c.keep_bits += b0 * H * p.nq * p.keep_ld;
    c.ds = ds;
    c.ds_ld = ld;
    WAVSPA_CUDA_CHECK(attn::mma_backward(c, stream()));
  }
  return true;
}

// Dropout's mask for the tensor-core kernels, drawn once per forward into a tensor the op
// keeps for the backward (attn::draw_dropout_bits: one bit per weight, 16 MB for a ListOps
// Transformer layer); both passes then read it instead of drawing it. Undefined without
// dropout, and past attention_scratch_limit(): the kernels draw it themselves then.
template <typename T>
Tensor draw_dropout_bits(const AttentionArgs& a, Params<T, float>& p, Device device) {
  if (a.dropout_p <= 0) return Tensor();
  const int64_t bytes = a.batch * a.heads * a.nq * attn::keep_ld(a.nk);
  if (bytes == 0 || bytes > attention_scratch_limit()) return Tensor();
  Tensor bits = Tensor::empty({bytes / 8}, kInt64, device);
  WAVSPA_CUDA_CHECK(attn::draw_dropout_bits(p, static_cast<uint8_t*>(bits.raw_data()), stream()));
  return bits;
}

// The backward's side: the forward's mask, when it drew one.
template <typename T>
void read_dropout_bits(const AttentionArgs& a, const Tensor& bits, Params<T, float>& p) {
  if (!bits.defined() || a.dropout_p <= 0) return;
  const int64_t ld = attn::keep_ld(a.nk);
  WAVSPA_CHECK(bits.dtype() == kInt64 && bits.numel() * 8 == a.batch * a.heads * a.nq * ld,
               "attention backward: the forward's dropout bits hold ", bits.numel() * 8, " bytes, expected ",
               a.batch * a.heads * a.nq * ld);
  p.keep_bits = static_cast<const uint8_t*>(bits.raw_data());
  p.keep_ld = ld;
}

}  // namespace

Tensor CudaBackend::attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                      const Tensor& key_keep, const Tensor& out, const Tensor& lse) {
  if (q.dtype() == kBFloat16) {
    Tensor first;
    Params<bf16, float> p = make_params<bf16, float>(a, q, k, v, key_keep, out, lse, first);
    if (bf16_tensor_cores(a, p)) {
      Tensor bits = draw_dropout_bits(a, p, q.device());
      WAVSPA_CUDA_CHECK(attn::mma_forward(p, stream()));
      return bits;
    }
    const Tensor out32 = float32_copy(*this, out);
    Tensor bits = attention_forward(a, float32_copy(*this, q), float32_copy(*this, k), float32_copy(*this, v),
                                    key_keep, out32, lse);
    copy(out32, out);
    return bits;
  }
  Tensor bits;
  dispatch_attention(q.dtype(), "attention", [&](auto zero) {
    using T = decltype(zero);
    Tensor first;
    Params<T, T> p = make_params<T>(a, q, k, v, key_keep, out, lse, first);
    if constexpr (std::is_same_v<T, float>) {
      if (use_tensor_cores(a, p)) {
        bits = draw_dropout_bits(a, p, q.device());
        WAVSPA_CUDA_CHECK(attn::mma_forward(p, stream()));
        return;
      }
      if (use_tf32_kernels(a, p)) {  // draws the mask again in the backward
        WAVSPA_CUDA_CHECK(tf32_forward(p));
        return;
      }
    }
    exact_forward<T>(*this, a, p, q, k, v, out);
  });
  return bits;
}

void CudaBackend::attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& key_keep, const Tensor& out, const Tensor& lse,
                                     const Tensor& dropout_bits, const Tensor& grad_out, const Tensor& grad_q,
                                     const Tensor& grad_k, const Tensor& grad_v) {
  if (q.dtype() == kBFloat16) {
    Tensor first;
    Params<bf16, float> p = make_params<bf16, float>(a, q, k, v, key_keep, out, lse, first);
    p.grad_out = {dptr<const bf16>(grad_out), grad_out.strides()[0], grad_out.strides()[1], grad_out.strides()[2]};
    p.grad_q = {dptr<bf16>(grad_q), grad_q.strides()[0], grad_q.strides()[1], grad_q.strides()[2]};
    p.grad_k = {dptr<bf16>(grad_k), grad_k.strides()[0], grad_k.strides()[1], grad_k.strides()[2]};
    p.grad_v = {dptr<bf16>(grad_v), grad_v.strides()[0], grad_v.strides()[1], grad_v.strides()[2]};
    if (bf16_tensor_cores(a, p)) {
      read_dropout_bits(a, dropout_bits, p);
      const int64_t rows = a.batch * a.heads * a.nq;
      const Tensor rowdot = scratch_bytes((size_t)(rows > 0 ? rows : 1) * sizeof(float), q.device());
      p.rowdot = static_cast<float*>(rowdot.raw_data());
      if (!backward_ds(p, q.device())) WAVSPA_CUDA_CHECK(attn::mma_backward(p, stream()));
      return;
    }
    const Tensor gq = float32_like(grad_q), gk = float32_like(grad_k), gv = float32_like(grad_v);
    attention_backward(a, float32_copy(*this, q), float32_copy(*this, k), float32_copy(*this, v), key_keep,
                       float32_copy(*this, out), lse, dropout_bits, float32_copy(*this, grad_out), gq, gk, gv);
    copy(gq, grad_q);
    copy(gk, grad_k);
    copy(gv, grad_v);
    return;
  }
  dispatch_attention(q.dtype(), "attention backward", [&](auto zero) {
    using T = decltype(zero);
    Tensor first;
    Params<T, T> p = make_params<T>(a, q, k, v, key_keep, out, lse, first);
    p.grad_out = {dptr<const T>(grad_out), grad_out.strides()[0], grad_out.strides()[1], grad_out.strides()[2]};
    p.grad_q = {dptr<T>(grad_q), grad_q.strides()[0], grad_q.strides()[1], grad_q.strides()[2]};
    p.grad_k = {dptr<T>(grad_k), grad_k.strides()[0], grad_k.strides()[1], grad_k.strides()[2]};
    p.grad_v = {dptr<T>(grad_v), grad_v.strides()[0], grad_v.strides()[1], grad_v.strides()[2]};
    const int64_t rows = a.batch * a.heads * a.nq;
    const Tensor rowdot = scratch_bytes((size_t)(rows > 0 ? rows : 1) * sizeof(T), q.device());
    p.rowdot = static_cast<T*>(rowdot.raw_data());
    if constexpr (std::is_same_v<T, float>) {
      if (use_tensor_cores(a, p)) {
        read_dropout_bits(a, dropout_bits, p);  // the TF32 and exact paths draw the mask again
        WAVSPA_CUDA_CHECK(attn::mma_backward(p, stream()));
        return;
      }
      if (use_tf32_kernels(a, p)) {
        WAVSPA_CUDA_CHECK(tf32_backward(p));
        return;
      }
    }
    if (rows > 0) {
      attn::rowdot_kernel<T, T><<<(unsigned)((rows + 7) / 8), 256, 0, stream()>>>(p);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
    exact_backward<T>(*this, a, p, q, k, v, grad_out, grad_q, grad_k, grad_v);
  });
}

namespace {

// The problems of a group that share launches (attn::Group): bfloat16 tensors on the
// tensor-core kernels, one head dim, none empty. Their kernel parameters, with the key-mask
// scratch that make_params fills kept alive in `firsts`; empty where they do not qualify.
std::vector<Params<bf16, float>> group_params(const std::vector<AttentionProblem>& ps, bool backward,
                                              std::vector<Tensor>& firsts) {
  std::vector<Params<bf16, float>> params;
  // Two problems go one by one: the group kernels hold four copies of their body (one per
  // problem slot) and run 2-6% slower per block than the single ones, which two launches
  // saved do not repay (H200: WavSpA ListOps at level 1, 10.39 ms one by one against 10.53
  // grouped; at level 3, four bands, 14.47 against 13.07). bench/kernels/NOTES.md, v21.
  if (ps.size() <= 2) return params;
  firsts.assign(ps.size(), Tensor());
  for (size_t i = 0; i < ps.size(); ++i) {
    const AttentionProblem& x = ps[i];
    const AttentionArgs& a = x.args;
    if (x.q.dtype() != kBFloat16 || a.dim != ps[0].args.dim || a.batch * a.heads * a.nq * a.nk == 0 ||
        (backward && a.causal))
      return {};
    Params<bf16, float> p = make_params<bf16, float>(a, x.q, x.k, x.v, x.key_keep, x.out, x.lse, firsts[i]);
    if (backward) {
      p.grad_out = {dptr<const bf16>(x.grad_out), x.grad_out.strides()[0], x.grad_out.strides()[1], x.grad_out.strides()[2]};
      p.grad_q = {dptr<bf16>(x.grad_q), x.grad_q.strides()[0], x.grad_q.strides()[1], x.grad_q.strides()[2]};
      p.grad_k = {dptr<bf16>(x.grad_k), x.grad_k.strides()[0], x.grad_k.strides()[1], x.grad_k.strides()[2]};
      p.grad_v = {dptr<bf16>(x.grad_v), x.grad_v.strides()[0], x.grad_v.strides()[1], x.grad_v.strides()[2]};
    }
    if (!bf16_tensor_cores(a, p)) return {};
    params.push_back(p);
  }
  return params;
}

}  // namespace

// Groups of up to attn::kGroup problems, one launch of each kernel per group: the dropout
// masks (for the problems that have dropout, within attention_scratch_limit() each), then the
// forward. Each problem's blocks compute what its own launch would, so the bits are the same.
std::vector<Tensor> CudaBackend::attention_forward_group(const std::vector<AttentionProblem>& ps) {
  std::vector<Tensor> firsts;
  const std::vector<Params<bf16, float>> params = group_params(ps, false, firsts);
  if (params.empty()) return Backend::attention_forward_group(ps);
  std::vector<Tensor> bits(ps.size());
  for (size_t c0 = 0; c0 < ps.size(); c0 += attn::kGroup) {
    attn::Group<Params<bf16, float>> g, drawn;
    g.count = (int)std::min<size_t>(attn::kGroup, ps.size() - c0);
    uint8_t* where[attn::kGroup];
    int which[attn::kGroup];
    for (int i = 0; i < g.count; ++i) {
      const AttentionArgs& a = ps[c0 + i].args;
      g.p[i] = params[c0 + i];
      const int64_t bytes = a.batch * a.heads * a.nq * attn::keep_ld(a.nk);
      if (a.dropout_p <= 0 || bytes > attention_scratch_limit()) continue;  // no mask, or drawn in the kernels
      bits[c0 + i] = Tensor::empty({bytes / 8}, kInt64, ps[c0 + i].q.device());
      where[drawn.count] = static_cast<uint8_t*>(bits[c0 + i].raw_data());
      which[drawn.count] = i;
      drawn.p[drawn.count++] = g.p[i];
    }
    if (drawn.count > 0) {
      WAVSPA_CUDA_CHECK(attn::draw_dropout_bits(drawn, where, stream()));
      for (int j = 0; j < drawn.count; ++j) g.p[which[j]] = drawn.p[j];
    }
    WAVSPA_CUDA_CHECK(attn::mma_forward(g, stream()));
  }
  return bits;
}

// As the forward: groups of up to attn::kGroup, each one launch of the row sums, the key pass
// and dQ from the dS^T scratch. A group whose scratch would pass attention_scratch_limit()
// (or any causal problem, whose key pass skips tiles) runs its problems one by one instead.
void CudaBackend::attention_backward_group(const std::vector<AttentionProblem>& ps) {
  std::vector<Tensor> firsts;
  std::vector<Params<bf16, float>> params = group_params(ps, true, firsts);
  if (params.empty()) return Backend::attention_backward_group(ps);
  for (size_t c0 = 0; c0 < ps.size(); c0 += attn::kGroup) {
    const size_t n = std::min<size_t>(attn::kGroup, ps.size() - c0);
    int64_t rows = 0, ds_bytes = 0;
    for (size_t i = c0; i < c0 + n; ++i) {
      const Params<bf16, float>& p = params[i];
      rows += p.batch * p.heads * p.nq;
      ds_bytes += p.batch * p.heads * p.nk * attn::ds_pitch(p.nq) * (int64_t)sizeof(bf16);
    }
    if (ds_bytes > attention_scratch_limit()) {
      Backend::attention_backward_group(std::vector<AttentionProblem>(ps.begin() + c0, ps.begin() + c0 + n));
      continue;
    }
    const Tensor rowdot = scratch_bytes((size_t)rows * sizeof(float), ps[c0].q.device());
    const Tensor ds = scratch_bytes((size_t)ds_bytes, ps[c0].q.device());
    float* rd = static_cast<float*>(rowdot.raw_data());
    bf16* dsp = static_cast<bf16*>(ds.raw_data());
    attn::Group<Params<bf16, float>> g;
    g.count = (int)n;
    for (int i = 0; i < g.count; ++i) {
      Params<bf16, float>& p = g.p[i];
      p = params[c0 + i];
      read_dropout_bits(ps[c0 + i].args, ps[c0 + i].dropout_bits, p);
      p.rowdot = rd;
      p.ds = dsp;  // 16-byte aligned: every earlier region is a multiple of 16 bytes
      p.ds_ld = attn::ds_pitch(p.nq);
      rd += p.batch * p.heads * p.nq;
      dsp += p.batch * p.heads * p.nk * p.ds_ld;
    }
    WAVSPA_CUDA_CHECK(attn::mma_backward(g, stream()));
  }
}

}  // namespace wavspa::cuda

// Lifting steps (backend.h lifting_step, its adjoint and its filter gradient) on CUDA.
//
// A thread owns V channels of one output row: V = 8 when C is a multiple of 8 (16-byte words
// for bfloat16, two for float32, where the rows are aligned; load_vec8 falls back to single
// elements where they are not), else V = 1. The symmetric extension is an index computed per
// tap (lifting_sym), never a padded copy, and the rows may be strided views (the even and odd
// rows of one signal), so a step reads its inputs once and writes its output once.
//
// The filter gradient is two launches: blocks over (channel groups, row chunks, taps) each sum
// their chunk in double in a fixed order and write one partial row; column_sum (reduce.cu) adds
// the partial rows in a fixed order. The result has the same bits on every run.
#include <algorithm>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {

namespace {

// An (A, rows, C) view with unit channel stride, as the kernels address it.
template <typename T>
struct Rows {
  T* p;
  int64_t batch, row;
  __device__ T* at(int64_t a, int64_t m) const { return p + a * batch + m * row; }
};

template <typename T>
Rows<T> rows_of(const Tensor& t) {
  return {dptr<std::remove_const_t<T>>(t), t.strides()[0], t.strides()[1]};
}

// V channels of row (a, m) from c0, as Compute<T> values.
template <typename T, int V>
__device__ __forceinline__ void load_row(const T* p, Compute<T> (&r)[V]) {
  if constexpr (V == 8) {
    const Vec8<T> v = load_vec8(p, 1, 8);
#pragma unroll
    for (int e = 0; e < 8; ++e) r[e] = to_compute(v.v[e]);
  } else {
    r[0] = to_compute(*p);
  }
}

template <typename T, int V>
__device__ __forceinline__ void store_row(T* p, const Compute<T> (&r)[V]) {
  if constexpr (V == 8) {
    Vec8<T> v;
#pragma unroll
    for (int e = 0; e < 8; ++e) v.v[e] = from_compute<T>(r[e]);
    store_vec8(p, v, 8);
  } else {
    *p = from_compute<T>(r[0]);
  }
}

// out = base + sign * (taps over ext(v)); f (K, Cw), fc = 1 per channel or 0 shared.
template <typename T, int V>
__global__ void lifting_step_kernel(Rows<const T> v, int64_t n, Rows<const T> base, const Compute<T>* __restrict__ f,
                                    int64_t fs, int64_t fc, int K, int64_t offset, int sign, Rows<T> out, int64_t A,
                                    int64_t n_out, int64_t C) {
  using Cm = Compute<T>;
  const int64_t groups = C / V, total = A * n_out * groups;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c0 = (i % groups) * V, am = i / groups, m = am % n_out, a = am / n_out;
    Cm acc[V] = {};
    for (int k = 0; k < K; ++k) {
      Cm x[V];
      load_row<T, V>(v.at(a, lifting_sym(m + k + offset, n)) + c0, x);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += __ldg(&f[k * fs + (c0 + e) * fc]) * x[e];
    }
    Cm b[V];
    load_row<T, V>(base.at(a, m) + c0, b);
#pragma unroll
    for (int e = 0; e < V; ++e) b[e] = sign > 0 ? b[e] + acc[e] : b[e] - acc[e];
    store_row<T, V>(out.at(a, m) + c0, b);
  }
}

// out = base + sign * (the adjoint of the taps applied to g): a gather over each row's
// preimages under the extension, so no two threads write one element.
template <typename T, int V>
__global__ void lifting_adjoint_kernel(Rows<const T> g, int64_t n_out, Rows<const T> base,
                                       const Compute<T>* __restrict__ f, int64_t fs, int64_t fc, int K, int64_t offset,
                                       int sign, Rows<T> out, int64_t A, int64_t n, int64_t C) {
  using Cm = Compute<T>;
  const int64_t groups = C / V, total = A * n * groups;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c0 = (i % groups) * V, aj = i / groups, j = aj % n, a = aj / n;
    Cm acc[V] = {};
    lifting_preimages(j, n, n_out, K, offset, [&](int64_t m, int k) {
      Cm x[V];
      load_row<T, V>(g.at(a, m) + c0, x);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += __ldg(&f[k * fs + (c0 + e) * fc]) * x[e];
    });
    Cm b[V];
    load_row<T, V>(base.at(a, j) + c0, b);
#pragma unroll
    for (int e = 0; e < V; ++e) b[e] = sign > 0 ? b[e] + acc[e] : b[e] - acc[e];
    store_row<T, V>(out.at(a, j) + c0, b);
  }
}

constexpr int kGradThreads = 256;

// Block (x: channel groups, y: rows) over channel tile blockIdx.x, row chunk blockIdx.y and tap
// blockIdx.z: each thread sums its rows of the chunk (stride blockDim.y) in double, the block
// adds its thread rows in order, and the chunk's sums go to partial: row chunk, column
// k C + c (per-channel filter) or row chunk C + c, column k (shared filter).
template <typename T, int V>
__global__ void __launch_bounds__(kGradThreads)
    lifting_grad_partial(Rows<const T> g, int64_t n_out, Rows<const T> v, int64_t n, int64_t offset, int sign,
                         int64_t A, int64_t C, int K, int64_t chunk, bool shared, Compute<T>* __restrict__ partial) {
  using Cm = Compute<T>;
  __shared__ double red[kGradThreads * V];
  const int64_t groups = C / V, R = A * n_out;
  const int64_t cg = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int k = blockIdx.z;
  const int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
  double acc[V] = {};
  if (cg < groups) {
    const int64_t c0 = cg * V;
    for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      const int64_t a = r / n_out, m = r % n_out;
      Cm x[V], y[V];
      load_row<T, V>(g.at(a, m) + c0, x);
      load_row<T, V>(v.at(a, lifting_sym(m + k + offset, n)) + c0, y);
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += (double)x[e] * (double)y[e];
    }
  }
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
  for (int e = 0; e < V; ++e) red[tid * V + e] = acc[e];
  __syncthreads();
  if (threadIdx.y == 0 && cg < groups) {
    for (int y = 1; y < (int)blockDim.y; ++y)
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] += red[(y * blockDim.x + threadIdx.x) * V + e];
    const int64_t c0 = cg * V;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const Cm val = (Cm)(sign > 0 ? acc[e] : -acc[e]);
      const int64_t c = c0 + e;
      if (shared) partial[(blockIdx.y * C + c) * K + k] = val;
      else partial[blockIdx.y * (K * C) + k * C + c] = val;
    }
  }
}

template <typename F>
void with_width(int64_t C, F&& f) {
  if (C % 8 == 0) f(std::integral_constant<int, 8>{});
  else f(std::integral_constant<int, 1>{});
}

}  // namespace

void CudaBackend::lifting_step(const Tensor& v, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                               const Tensor& out) {
  const int64_t A = out.shape()[0], n_out = out.shape()[1], C = out.shape()[2], n = v.shape()[1];
  const int K = (int)f.shape()[0];
  const int64_t fs = f.shape()[1], fc = f.shape()[1] == 1 ? 0 : 1;
  if (A * n_out * C == 0) return;
  dispatch_floating_bf16(v.dtype(), "lifting_step", [&](auto zero) {
    using T = decltype(zero);
    with_width(C, [&](auto w) {
      constexpr int V = decltype(w)::value;
      lifting_step_kernel<T, V><<<blocks_for(A * n_out * (C / V)), kThreads, 0, stream()>>>(
          rows_of<const T>(v), n, rows_of<const T>(base), dptr<Compute<T>>(f), fs, fc, K, offset, sign,
          rows_of<T>(out), A, n_out, C);
      WAVSPA_CUDA_LAUNCH_CHECK();
    });
  });
}

void CudaBackend::lifting_step_adjoint(const Tensor& g, const Tensor& base, const Tensor& f, int64_t offset,
                                       int sign, const Tensor& out) {
  const int64_t A = out.shape()[0], n = out.shape()[1], C = out.shape()[2], n_out = g.shape()[1];
  const int K = (int)f.shape()[0];
  const int64_t fs = f.shape()[1], fc = f.shape()[1] == 1 ? 0 : 1;
  if (A * n * C == 0) return;
  dispatch_floating_bf16(g.dtype(), "lifting_step_adjoint", [&](auto zero) {
    using T = decltype(zero);
    with_width(C, [&](auto w) {
      constexpr int V = decltype(w)::value;
      lifting_adjoint_kernel<T, V><<<blocks_for(A * n * (C / V)), kThreads, 0, stream()>>>(
          rows_of<const T>(g), n_out, rows_of<const T>(base), dptr<Compute<T>>(f), fs, fc, K, offset, sign,
          rows_of<T>(out), A, n, C);
      WAVSPA_CUDA_LAUNCH_CHECK();
    });
  });
}

void CudaBackend::lifting_filter_grad(const Tensor& g, const Tensor& v, int64_t offset, int sign,
                                      const Tensor& grad_f) {
  const int64_t A = g.shape()[0], n_out = g.shape()[1], C = g.shape()[2], n = v.shape()[1];
  const int64_t K = grad_f.shape()[0], Cw = grad_f.shape()[1];
  const int64_t R = A * n_out;
  if (K == 0) return;
  if (R * C == 0) return fill(grad_f, 0.0);
  WAVSPA_CHECK(K <= 65535, "lifting_filter_grad: filters of ", K, " taps exceed the CUDA grid (at most 65535)");
  const bool shared = Cw == 1 && C != 1;
  dispatch_floating_bf16(g.dtype(), "lifting_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    with_width(C, [&](auto w) {
      constexpr int V = decltype(w)::value;
      const int64_t groups = C / V;
      const int tx = (int)std::min<int64_t>(32, groups), ty = kGradThreads / tx;
      const int64_t tiles = (groups + tx - 1) / tx;
      // Row chunks of at least 4 rows a thread row, about four blocks per SM in all.
      int64_t chunks = std::max<int64_t>(1, 4 * sm_count() / (tiles * K));
      chunks = std::clamp<int64_t>(std::min(chunks, (R + 4 * ty - 1) / (4 * ty)), 1, 65535);
      const int64_t chunk = (R + chunks - 1) / chunks;
      chunks = (R + chunk - 1) / chunk;
      Tensor partial = shared ? Tensor::empty({chunks * C, K}, grad_f.dtype(), grad_f.device())
                              : Tensor::empty({chunks, K * C}, grad_f.dtype(), grad_f.device());
      lifting_grad_partial<T, V><<<dim3((unsigned)tiles, (unsigned)chunks, (unsigned)K), dim3(tx, ty), 0, stream()>>>(
          rows_of<const T>(g), n_out, rows_of<const T>(v), n, offset, sign, A, C, (int)K, chunk, shared,
          dptr<Compute<T>>(partial));
      WAVSPA_CUDA_LAUNCH_CHECK();
      column_sum(partial, grad_f);
    });
  });
}

}  // namespace wavspa::cuda

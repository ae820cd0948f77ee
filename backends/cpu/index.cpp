// Indexing kernels. Contiguous tensors are seen as (outer, dim, inner) around the indexed
// dim; a scatter (index_add, scatter_add) runs in parallel only over slices that cannot
// collide, since repeated indices add into the same element.
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {

void CpuBackend::index_select(const Tensor& x, int64_t dim, const Tensor& index,
                              const Tensor& out) {
  const AroundDim ax = around_dim(x.shape(), dim);
  const int64_t I = index.numel();
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  auto select = [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    const int64_t rows = ax.outer * I;
    parallel_for(
        rows, dynamic_chunk(rows),
        [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t a = r / I, i = r % I;
            const T* src = in + (a * ax.size + idx[i]) * ax.inner;
            T* dst = o + r * ax.inner;
            for (int64_t k = 0; k < ax.inner; ++k) dst[k] = src[k];
          }
        },
        out.numel() >= kParallelGrain);
  };
  // Selecting moves values: bool masks too (bfloat16 stays refused, as every CPU kernel of it).
  if (x.dtype() == kBool) select(bool{});
  else visit_dtype(x.dtype(), "index_select", select);
}

void CpuBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src) {
  const AroundDim ao = around_dim(out.shape(), dim);
  const int64_t I = index.numel();
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  visit_dtype(out.dtype(), "index_add", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    // Outer slices never collide: parallel over them; within one, indices may repeat.
    parallel_for(
        ao.outer, dynamic_chunk(ao.outer),
        [&](int64_t begin, int64_t end) {
          for (int64_t a = begin; a < end; ++a)
            for (int64_t i = 0; i < I; ++i) {
              T* dst = o + (a * ao.size + idx[i]) * ao.inner;
              const T* from = s + (a * I + i) * ao.inner;
#pragma omp simd
              for (int64_t k = 0; k < ao.inner; ++k) dst[k] += from[k];
            }
        },
        src.numel() >= kParallelGrain && ao.outer > 1);
  });
}

namespace {

// Visits every element of `index` with its linear position and the offset of the element
// it addresses in a contiguous tensor of shape `target`, replacing coordinate `dim`.
template <typename F>
void for_each_indexed(const Tensor& index, int64_t dim, const Shape& target, F f) {
  const Shape& ishape = index.shape();
  const Shape tstrides = contiguous_strides(target);
  const int64_t* idx = static_cast<const int64_t*>(index.raw_data());
  const int64_t n = index.numel(), nd = index.dim();
  for (int64_t lin = 0; lin < n; ++lin) {
    int64_t rem = lin, off = 0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t c = rem % ishape[d];
      rem /= ishape[d];
      off += (d == dim ? idx[lin] : c) * tstrides[d];
    }
    f(lin, off);
  }
}

}  // namespace

void CpuBackend::gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  visit_dtype(x.dtype(), "gather", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    for_each_indexed(index, dim, x.shape(), [&](int64_t lin, int64_t off) { o[lin] = in[off]; });
  });
}

void CpuBackend::scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                             const Tensor& src) {
  visit_dtype(out.dtype(), "scatter_add", [&](auto zero) {
    using T = decltype(zero);
    T* o = static_cast<T*>(out.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    for_each_indexed(index, dim, out.shape(), [&](int64_t lin, int64_t off) { o[off] += s[lin]; });
  });
}

}  // namespace wavspa::cpu

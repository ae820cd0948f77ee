// Reductions over a set of dims. The kept dims and the reduced dims are each merged where
// memory allows; then one of two loops runs:
//  - row:    the reduced dims form one run (any stride): each output reduces a strided row;
//  - column: the reduced dims form one run and the innermost kept dim is contiguous, e.g.
//            summing a (B, D) gradient over B: rows of D are accumulated in a buffer, so
//            memory is read in order.
// Anything else is first copied with the reduced dims last, which makes it a row.
// float32 accumulates in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

using Dims = StridedDims;  // core/shape.h; coalesce_dims merges contiguous neighbours

int64_t offset_of(int64_t linear, const Dims& d) {
  int64_t off = 0;
  for (int64_t i = (int64_t)d.shape.size() - 1; i >= 0; --i) {
    off += (linear % d.shape[i]) * d.strides[i];
    linear /= d.shape[i];
  }
  return off;
}

// Floats accumulate in double; int64 (sum, max and min of integers) in int64, exactly.
template <typename T>
struct Reducer {
  using Acc = std::conditional_t<std::is_integral_v<T>, int64_t, double>;
  ReduceOp op;
  Acc init() const {
    switch (op) {
      case ReduceOp::Max:
        if constexpr (std::is_integral_v<Acc>) return std::numeric_limits<Acc>::lowest();
        else return -std::numeric_limits<Acc>::infinity();
      case ReduceOp::Min:
        if constexpr (std::is_integral_v<Acc>) return std::numeric_limits<Acc>::max();
        else return std::numeric_limits<Acc>::infinity();
      default: return 0;
    }
  }
  static bool nan(Acc v) {
    if constexpr (std::is_integral_v<Acc>) return false;
    else return std::isnan(v);
  }
  Acc combine(Acc acc, Acc v) const {
    switch (op) {
      case ReduceOp::Max: return (v > acc || nan(v)) && !nan(acc) ? v : acc;
      case ReduceOp::Min: return (v < acc || nan(v)) && !nan(acc) ? v : acc;
      default: return acc + v;
    }
  }
  T finish(Acc acc, int64_t count) const {
    return static_cast<T>(op == ReduceOp::Mean ? acc / (Acc)count : acc);
  }
};

template <typename T>
void reduce_typed(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                  const Tensor& out) {
  const KeptAndReduced parts = split_reduced_dims(x.shape(), x.strides(), dims);
  Dims kept = parts.kept, red = parts.reduced;
  const int64_t R = shape_numel(red.shape);
  const int64_t K = shape_numel(kept.shape);
  kept = coalesce_dims(kept);
  red = coalesce_dims(red);
  Reducer<T> r{op};
  T* o = static_cast<T*>(out.raw_data());
  const T* in = static_cast<const T*>(x.raw_data());
  if (K == 0) return;
  if (R == 0) {
    for (int64_t k = 0; k < K; ++k) o[k] = r.finish(r.init(), 0);
    return;
  }

  if (red.shape.size() <= 1) {
    const int64_t rs = red.shape.empty() ? 1 : red.strides[0];
    const bool column = !kept.shape.empty() && kept.strides.back() == 1 && rs != 1;
    if (column) {
      // out[outer, k] over x[outer, r, k]: keep a row of accumulators per block of k.
      const int64_t inner = kept.shape.back();
      Dims outer{Shape(kept.shape.begin(), kept.shape.end() - 1),
                 Shape(kept.strides.begin(), kept.strides.end() - 1)};
      const int64_t n_outer = shape_numel(outer.shape);
      constexpr int64_t kBlock = 512;
      const int64_t blocks = (inner + kBlock - 1) / kBlock;
      parallel_for(
          n_outer * blocks, dynamic_chunk(n_outer * blocks),
          [&](int64_t begin, int64_t end) {
            for (int64_t task = begin; task < end; ++task) {
              int64_t ob = task / blocks, kb = (task % blocks) * kBlock;
              int64_t len = std::min(kBlock, inner - kb);
              typename Reducer<T>::Acc acc[kBlock];
              for (int64_t j = 0; j < len; ++j) acc[j] = r.init();
              const T* base = in + offset_of(ob, outer) + kb;
              for (int64_t i = 0; i < R; ++i) {
                const T* row = base + i * rs;
                if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
#pragma omp simd
                  for (int64_t j = 0; j < len; ++j) acc[j] += row[j];
                } else {
                  for (int64_t j = 0; j < len; ++j) acc[j] = r.combine(acc[j], row[j]);
                }
              }
              for (int64_t j = 0; j < len; ++j) o[ob * inner + kb + j] = r.finish(acc[j], R);
            }
          },
          K * R >= kParallelGrain);
      return;
    }
    parallel_for(
        K, dynamic_chunk(K),
        [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            const T* row = in + offset_of(k, kept);
            typename Reducer<T>::Acc acc = r.init();
            if ((op == ReduceOp::Sum || op == ReduceOp::Mean) && rs == 1) {
#pragma omp simd reduction(+ : acc)
              for (int64_t i = 0; i < R; ++i) acc += row[i];
            } else {
              for (int64_t i = 0; i < R; ++i) acc = r.combine(acc, row[i * rs]);
            }
            o[k] = r.finish(acc, R);
          }
        },
        K * R >= kParallelGrain);
    return;
  }

  // General case: copy with the reduced dims last, then reduce contiguous rows.
  Shape pshape = parts.kept.shape, pstrides = parts.kept.strides;  // not coalesced
  for (int64_t d : dims) {
    pshape.push_back(x.shape()[d]);
    pstrides.push_back(x.strides()[d]);
  }
  Tensor tmp = Tensor::empty(pshape, x.dtype());
  cpu_backend().copy(x.as_strided(pshape, pstrides, x.offset()), tmp);
  std::vector<int64_t> last;
  for (int64_t i = x.dim() - (int64_t)dims.size(); i < x.dim(); ++i) last.push_back(i);
  reduce_typed<T>(op, tmp, last, out);
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                        const Tensor& out) {
  // int64: sum, max and min of integers (the op converts int32 and bool first).
  if (x.dtype() == kInt64) return reduce_typed<int64_t>(op, x, dims, out);
  visit_floating(x.dtype(), "reduce", [&](auto zero) {
    reduce_typed<decltype(zero)>(op, x, dims, out);
  });
}

void CpuBackend::arg_reduce(bool is_max, const Tensor& x, int64_t dim, const Tensor& out) {
  const Dims kept = coalesce_dims(split_reduced_dims(x.shape(), x.strides(), {dim}).kept);
  const int64_t R = x.shape()[dim], rs = x.strides()[dim], K = out.numel();
  int64_t* o = static_cast<int64_t*>(out.raw_data());
  visit_dtype(x.dtype(), "arg_reduce", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    parallel_for(
        K, dynamic_chunk(K),
        [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            const T* row = in + offset_of(k, kept);
            int64_t best = 0;
            T best_v = row[0];
            for (int64_t i = 1; i < R; ++i) {
              T v = row[i * rs];
              if constexpr (std::is_floating_point_v<T>) {
                if (std::isnan(best_v)) break;  // NaN wins, as in PyTorch
                if (std::isnan(v)) {
                  best = i;
                  best_v = v;
                  break;
                }
              }
              if (is_max ? v > best_v : v < best_v) {
                best = i;
                best_v = v;
              }
            }
            o[k] = best;
          }
        },
        K * R >= kParallelGrain);
  });
}

// Column sums in double, each column's rows added in order (the same bits for any thread
// count): columns are split between threads, and a thread walks the rows of its columns.
void CpuBackend::column_sum(const Tensor& x, const Tensor& out) {
  const int64_t M = x.shape()[0], N = x.shape()[1];
  visit_floating(x.dtype(), "column_sum", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    constexpr int64_t kCols = 64;  // a block of columns per task: rows are read 64 at a time
    const int64_t blocks = (N + kCols - 1) / kCols;
    parallel_for(
        blocks, 1,
        [&](int64_t begin, int64_t end) {
          for (int64_t blk = begin; blk < end; ++blk) {
            const int64_t c0 = blk * kCols, c1 = std::min(N, c0 + kCols);
            double acc[kCols] = {};
            for (int64_t m = 0; m < M; ++m)
              for (int64_t c = c0; c < c1; ++c) acc[c - c0] += (double)in[m * N + c];
            for (int64_t c = c0; c < c1; ++c) o[c] = (T)acc[c - c0];
          }
        },
        M * N >= kParallelGrain);
  });
}

}  // namespace wavspa::cpu

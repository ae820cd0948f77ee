// Strided loops for the CPU kernels.
//
// An elementwise kernel sees N tensors of one shape (out first) with arbitrary strides.
// StridedLoop merges dims that are contiguous in every tensor, so a contiguous or simply
// broadcast case becomes one long row, then runs a row function over the innermost dim in
// parallel blocks:
//
//   StridedLoop<2> loop({out, x});
//   loop.run([&](const int64_t* off, int64_t n, const int64_t* step) { ... });
//
// `off` holds each tensor's element offset (from its raw_data()) at the row start and
// `step` each tensor's innermost stride.
#pragma once

#include <cblas.h>

#include <array>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/runtime.h"
#include "core/tensor.h"

namespace wavspa::cpu {

// Below this many elements a loop runs on one thread: the fork costs more than it saves.
inline constexpr int64_t kParallelGrain = 32768;

// The number of threads a parallel_for will use.
inline int num_threads() { return cpu_threads(); }

// OpenBLAS's OpenMP build sizes its team by the calling thread's OpenMP setting
// (omp_get_max_threads), and openblas_set_num_threads sets it for the calling thread only. A
// thread about to run a product calls it once with 1: the tile then runs on the thread that
// took it, and no OpenMP team starts inside the pool (in the OPENMP=0 build too, where
// OpenBLAS still brings libgomp).
inline void one_blas_thread_here() {
  thread_local const bool set = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)set;
}

// The chunk of a parallel_for over `tasks` independent tasks: about an eighth of a thread's
// share. When another process takes a core, the thread on it then holds up only its current
// chunk. Independent tasks give the same bits however they are cut.
inline int64_t dynamic_chunk(int64_t tasks) {
  const int64_t c = tasks / (8 * (int64_t)num_threads());
  return c > 1 ? c : 1;
}

template <int N>
class StridedLoop {
 public:
  explicit StridedLoop(const std::array<Tensor, N>& ts) {
    const Shape& shape = ts[0].shape();
    numel_ = shape_numel(shape);
    // Drop size-1 dims, then merge dim d into d+1 where every tensor is contiguous across them.
    for (int64_t d = 0; d < (int64_t)shape.size(); ++d) {
      if (shape[d] == 1) continue;
      shape_.push_back(shape[d]);
      for (int i = 0; i < N; ++i) strides_[i].push_back(ts[i].strides()[d]);
    }
    for (int64_t d = (int64_t)shape_.size() - 2; d >= 0; --d) {
      bool mergeable = true;
      for (int i = 0; i < N; ++i)
        mergeable &= strides_[i][d] == strides_[i][d + 1] * shape_[d + 1];
      if (!mergeable) continue;
      shape_[d] *= shape_[d + 1];
      shape_.erase(shape_.begin() + d + 1);
      for (int i = 0; i < N; ++i) {
        strides_[i][d] = strides_[i][d + 1];
        strides_[i].erase(strides_[i].begin() + d + 1);
      }
    }
    if (shape_.empty()) {  // a single element
      shape_.push_back(1);
      for (int i = 0; i < N; ++i) strides_[i].push_back(1);
    }
  }

  template <typename RowFn>
  void run(RowFn&& row) const {
    if (numel_ == 0) return;
    const int64_t nd = (int64_t)shape_.size();
    const int64_t inner = shape_[nd - 1];
    // Long rows are split in blocks so that a single huge row still uses every thread.
    const int64_t block = inner > 16384 ? 16384 : inner;
    const int64_t blocks_per_row = (inner + block - 1) / block;
    const int64_t rows = numel_ / inner;
    const int64_t tasks = rows * blocks_per_row;
    std::array<int64_t, N> step;
    for (int i = 0; i < N; ++i) step[i] = strides_[i][nd - 1];
    parallel_for(
        tasks, dynamic_chunk(tasks),
        [&](int64_t begin, int64_t end) {
          for (int64_t task = begin; task < end; ++task) {
            int64_t r = task / blocks_per_row, b = task % blocks_per_row;
            std::array<int64_t, N> off{};
            int64_t rem = r;
            for (int64_t d = nd - 2; d >= 0; --d) {
              int64_t idx = rem % shape_[d];
              rem /= shape_[d];
              for (int i = 0; i < N; ++i) off[i] += idx * strides_[i][d];
            }
            int64_t start = b * block;
            for (int i = 0; i < N; ++i) off[i] += start * step[i];
            int64_t n = start + block > inner ? inner - start : block;
            row(off.data(), n, step.data());
          }
        },
        numel_ >= kParallelGrain);
  }

 private:
  int64_t numel_ = 0;
  Shape shape_;
  std::array<Shape, N> strides_;
};

}  // namespace wavspa::cpu

// The CPU kernels' threads: a pool of our own that hands out the chunks of a loop first come,
// first served.
//
//   std::vector<double> squares(100000);
//   wavspa::parallel_for((int64_t)squares.size(), 4096, [&](int64_t begin, int64_t end) {
//     for (int64_t i = begin; i < end; ++i) squares[i] = double(i) * double(i);
//   });
//
// Why not OpenMP's `parallel for`: an OpenMP region ends at a barrier that every thread of the
// team must reach, even a thread that took no work. When another process shares the cores, the
// OS runs that thread late, and every region waits for it: a 2-thread WavSpA step took 1.7-3x
// the 1-thread step (docs/results.md). Here the calling thread takes chunks too and then waits
// only for the chunks other threads have actually started; a worker that wakes late finds the
// loop done and goes back to sleep. Idle workers spin for a short while (kSpinMicros in
// parallel.cpp), then sleep on a futex.
//
// The contract of `fn(begin, end)`: it runs [begin, end) for some chunk-aligned subrange, in
// any order and on any thread, so chunks must be independent. How a loop is cut depends only
// on `tasks` and `chunk`, never on the thread count or on timing, so a kernel whose chunks
// write disjoint outputs gives the same bits with any number of threads. A parallel_for inside
// a chunk runs inline on its thread (as does one from a second user thread while the pool is
// busy). An exception from `fn` is rethrown to the caller after every started chunk ended.
//
// OpenBLAS runs single-threaded (set once, when the pool starts): the CPU backend cuts matrix
// products into tiles itself (backends/cpu/gemm.cpp).
#pragma once

#include <cstdint>
#include <type_traits>

namespace wavspa {

namespace detail {
using ChunkFn = void (*)(void* ctx, int64_t begin, int64_t end);
void parallel_run(int64_t tasks, int64_t chunk, ChunkFn fn, void* ctx);
}  // namespace detail

// Runs fn(begin, end) over [0, tasks) in chunks of `chunk` tasks (the last one shorter) on up
// to cpu_threads() threads; on the calling thread alone when `parallel` is false or there is
// one chunk.
template <typename Fn>
void parallel_for(int64_t tasks, int64_t chunk, Fn&& fn, bool parallel = true) {
  if (tasks <= 0) return;
  if (chunk < 1) chunk = 1;
  if (!parallel || chunk >= tasks) {
    fn(int64_t{0}, tasks);
    return;
  }
  using F = std::remove_reference_t<Fn>;
  detail::parallel_run(
      tasks, chunk, [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// Whether the calling thread is inside a chunk of a parallel_for (a worker or the caller).
bool in_parallel_for();

}  // namespace wavspa

// Matrix products through OpenBLAS, one thread per call: the pool of core/parallel.h runs
// the tiles of a product (or the matrices of a batch) in parallel.
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
  one_blas_thread_here();
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

// Tiles of C. OpenBLAS runs on one thread (core/parallel.h); a product of at least
// kMinParallelWork multiply-adds is cut into tiles, each a one-thread OpenBLAS call, taken
// first come, first served by the pool's threads, so a thread the OS stops (another process
// on its core) holds up only its tile. Rows are cut in blocks of at most kRowChunk; then, while
// there are fewer than kMinTiles tiles, a tile's longer side is halved (rounded up to a
// multiple of kTileAlign, which OpenBLAS's register blocks divide), the other side when that
// one cannot shrink, as long as a tile keeps kMinTileWork multiply-adds. A weight's gradient
// (m and n small, k the batch) thus runs on every thread instead of one. The tiles depend on
// the shape only, so the bits do not depend on the thread count. (They do depend on the cut:
// OpenBLAS sums the edges of a product in another order than its inside, so a product cut
// otherwise may change in the last bits.)
constexpr int64_t kRowChunk = 256, kMinTiles = 8, kTileAlign = 16;
constexpr int64_t kMinParallelWork = int64_t(1) << 20, kMinTileWork = int64_t(1) << 17;

struct Tiles {
  int64_t mc, nc, tm, tn;
  int64_t count() const { return tm * tn; }
};

Tiles tiles_of(const GemmArgs& g) {
  Tiles t{g.m, g.n, 1, 1};
  if (g.m * g.n * g.k < kMinParallelWork) return t;
  auto halve = [](int64_t len) { return ((len + 1) / 2 + kTileAlign - 1) / kTileAlign * kTileAlign; };
  auto tiles = [&](int64_t mc, int64_t nc) { return ((g.m + mc - 1) / mc) * ((g.n + nc - 1) / nc); };
  t.mc = std::min(g.m, kRowChunk);
  while (tiles(t.mc, t.nc) < kMinTiles) {
    // The longer side first; a side shrinks only while halving makes it shorter.
    const int64_t mc = halve(t.mc), nc = halve(t.nc);
    const bool rows_first = t.mc >= t.nc;
    if (rows_first && mc < t.mc && mc * t.nc * g.k >= kMinTileWork) {
      t.mc = mc;
    } else if (nc < t.nc && t.mc * nc * g.k >= kMinTileWork) {
      t.nc = nc;
    } else if (!rows_first && mc < t.mc && mc * t.nc * g.k >= kMinTileWork) {
      t.mc = mc;
    } else {
      break;
    }
  }
  t.tm = (g.m + t.mc - 1) / t.mc;
  t.tn = (g.n + t.nc - 1) / t.nc;
  return t;
}

// Tile `i` of the product a * b -> c.
template <typename T>
void gemm_tile(const GemmArgs& g, const Tiles& t, int64_t i, const T* a, const T* b, T* c) {
  const int64_t i0 = (i / t.tn) * t.mc, j0 = (i % t.tn) * t.nc;
  GemmArgs part = g;
  part.m = std::min(t.mc, g.m - i0);
  part.n = std::min(t.nc, g.n - j0);
  gemm_one<T>(part, a + (g.trans_a ? i0 : i0 * g.lda), b + (g.trans_b ? j0 * g.ldb : j0),
              c + i0 * g.ldc + j0);
}

void CpuBackend::gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  check_operands("gemm", a, b, c);
  visit_floating(c.dtype(), "gemm", [&](auto zero) {
    using T = decltype(zero);
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    T* pc = static_cast<T*>(c.raw_data());
    const Tiles t = tiles_of(g);
    parallel_for(t.count(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) gemm_tile<T>(g, t, i, pa, pb, pc);
    });
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
    // Tasks are the tiles of every matrix; a batch of small products runs in parallel when
    // all of it is worth the threads.
    const Tiles t = tiles_of(g);
    const int64_t tasks = batch * t.count();
    parallel_for(
        tasks, t.count() > 1 ? 1 : dynamic_chunk(tasks),
        [&](int64_t begin, int64_t end) {
          for (int64_t task = begin; task < end; ++task) {
            const int64_t i = task / t.count();
            gemm_tile<T>(g, t, task % t.count(), pa + i * stride_a, pb + i * stride_b,
                         pc + i * stride_c);
          }
        },
        batch * g.m * g.n * g.k >= kMinParallelWork);
  });
}

}  // namespace wavspa::cpu

// Matrix products through OpenBLAS, one thread per call: the pool of core/parallel.h runs
// the tiles of a product (or the matrices of a batch) in parallel.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/tile_gemm.h"

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

// Products with a short inner dimension: a layer's forward (x W^T, k its in-features) and its
// input gradient (dY W, k its out-features). For these OpenBLAS spends a fifth or more of the
// time packing, since every tile packs all of b again; tile_gemm.h reads a where it lies and b
// by rows (b^T transposed once per call, shared by the tiles), in blocks of kSmallKRows rows
// handed to the pool. Only float32 with c = a b or c += a b (beta 0 or 1, alpha 1 then), k at
// most kSmallK and n at most kSmallKCols (so a panel of b stays in L2); the rest goes to
// OpenBLAS. A weight's gradient (k the batch) stays there.
constexpr int64_t kSmallK = 256, kSmallKCols = 1024, kSmallKRows = 64;

bool small_k(const GemmArgs& g) {
  return g.k > 0 && g.k <= kSmallK && g.n <= kSmallKCols && (g.beta == 0.0 || (g.beta == 1.0 && g.alpha == 1.0));
}

void gemm_small_k(const GemmArgs& g, const float* a, const float* b, float* c) {
  std::vector<float> bt;
  int64_t ldb = g.ldb;
  if (g.trans_b) {  // b is stored n x k: make it k x n
    bt.resize(g.k * g.n);
    for (int64_t j = 0; j < g.n; ++j)
      for (int64_t t = 0; t < g.k; ++t) bt[t * g.n + j] = b[j * g.ldb + t];
    b = bt.data();
    ldb = g.n;
  }
  const int64_t a_row = g.trans_a ? 1 : g.lda, a_col = g.trans_a ? g.lda : 1;
  const bool accumulate = g.beta == 1.0;
  const int64_t blocks = (g.m + kSmallKRows - 1) / kSmallKRows;
  parallel_for(
      blocks, 1,
      [&](int64_t begin, int64_t end) {
        for (int64_t blk = begin; blk < end; ++blk) {
          const int64_t i0 = blk * kSmallKRows, rows = std::min(kSmallKRows, g.m - i0);
          tile_gemm(rows, g.n, g.k, a + i0 * a_row, a_row, a_col, b, ldb, c + i0 * g.ldc, g.ldc,
                    (float)g.alpha, accumulate);
        }
      },
      g.m * g.n * g.k >= kMinParallelWork);
}

void CpuBackend::gemm(const GemmArgs& g, const Tensor& a, const Tensor& b, const Tensor& c) {
  check_operands("gemm", a, b, c);
  if (c.dtype() == kFloat32 && small_k(g) && g.m > 0 && g.n > 0) {
    gemm_small_k(g, static_cast<const float*>(a.raw_data()), static_cast<const float*>(b.raw_data()),
                 static_cast<float*>(c.raw_data()));
    return;
  }
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

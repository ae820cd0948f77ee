// Wavelet filter-bank kernels. Every tensor is contiguous (A, rows, C) with the channels C
// innermost, so the inner loops run over channels: a (B, N, D) signal is filtered along N
// with D-wide vector operations and no transposes. Work is split over (A, channel block)
// pairs, which never write the same element, so no kernel needs atomics.
#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

constexpr int64_t kChannelBlock = 256;

struct Layout {
  int64_t A, rows, C;
};

Layout layout3(const Tensor& t) { return {t.shape()[0], t.shape()[1], t.shape()[2]}; }

// Runs body(a, c0, c1) over all (A, channel block) tasks in parallel.
template <typename F>
void for_tasks(int64_t A, int64_t C, int64_t work, F body) {
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (work >= kParallelGrain)
  for (int64_t t = 0; t < A * blocks; ++t) {
    int64_t a = t / blocks, c0 = (t % blocks) * kChannelBlock;
    body(a, c0, std::min(C, c0 + kChannelBlock));
  }
}

}  // namespace

void CpuBackend::wavelet_extend(const Tensor& x, const std::vector<ExtendRow>& rows,
                                const Tensor& out) {
  const Layout lx = layout3(x);
  const int64_t P = (int64_t)rows.size();
  visit_floating(x.dtype(), "wavelet_extend", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    for_tasks(lx.A, lx.C, lx.A * P * lx.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t p = 0; p < P; ++p) {
        T* dst = o + (a * P + p) * lx.C;
        const ExtendRow& r = rows[p];
        for (int64_t c = c0; c < c1; ++c) dst[c] = T(0);
        for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
          const T* src = in + (a * lx.rows + r.src[t]) * lx.C;
          const T coef = (T)r.coef[t];
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dst[c] += coef * src[c];
        }
      }
    });
  });
}

void CpuBackend::wavelet_extend_backward(const Tensor& grad_out,
                                         const std::vector<ExtendRow>& rows,
                                         const Tensor& grad_x) {
  const Layout lx = layout3(grad_x);
  const int64_t P = (int64_t)rows.size();
  visit_floating(grad_x.dtype(), "wavelet_extend_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* g = static_cast<const T*>(grad_out.raw_data());
    T* gx = static_cast<T*>(grad_x.raw_data());
    for_tasks(lx.A, lx.C, lx.A * P * lx.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t p = 0; p < P; ++p) {
        const T* src = g + (a * P + p) * lx.C;
        const ExtendRow& r = rows[p];
        for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
          T* dst = gx + (a * lx.rows + r.src[t]) * lx.C;
          const T coef = (T)r.coef[t];
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dst[c] += coef * src[c];
        }
      }
    });
  });
}

void CpuBackend::wavelet_analysis(const Tensor& in, const Tensor& w, int64_t start,
                                  const Tensor& out) {
  const Layout li = layout3(in);
  const int64_t nf = w.shape()[0], K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = out.shape()[2];
  visit_floating(in.dtype(), "wavelet_analysis", [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(in.raw_data());
    const T* pw = static_cast<const T*>(w.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    for_tasks(li.A, li.C, li.A * nf * L * K * li.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t f = 0; f < nf; ++f)
        for (int64_t j = 0; j < L; ++j) {
          T* dst = o + ((a * nf + f) * L + j) * li.C;
          for (int64_t c = c0; c < c1; ++c) dst[c] = T(0);
          for (int64_t k = 0; k < K; ++k) {
            const int64_t row = 2 * j + k + start;
            if (row < 0 || row >= li.rows) continue;
            const T* src = x + (a * li.rows + row) * li.C;
            const T* wk = pw + (f * K + k) * Cw;
            if (Cw == 1) {
              const T wv = wk[0];
#pragma omp simd
              for (int64_t c = c0; c < c1; ++c) dst[c] += wv * src[c];
            } else {
#pragma omp simd
              for (int64_t c = c0; c < c1; ++c) dst[c] += wk[c] * src[c];
            }
          }
        }
    });
  });
}

void CpuBackend::wavelet_synthesis(const Tensor& coeffs, const Tensor& w, int64_t start,
                                   const Tensor& out) {
  const Layout lo = layout3(out);
  const int64_t nf = w.shape()[0], K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = coeffs.shape()[2];
  visit_floating(out.dtype(), "wavelet_synthesis", [&](auto zero) {
    using T = decltype(zero);
    const T* pc = static_cast<const T*>(coeffs.raw_data());
    const T* pw = static_cast<const T*>(w.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    for_tasks(lo.A, lo.C, lo.A * nf * L * K * lo.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t f = 0; f < nf; ++f)
        for (int64_t j = 0; j < L; ++j) {
          const T* src = pc + ((a * nf + f) * L + j) * lo.C;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t row = 2 * j + k + start;
            if (row < 0 || row >= lo.rows) continue;
            T* dst = o + (a * lo.rows + row) * lo.C;
            const T* wk = pw + (f * K + k) * Cw;
            if (Cw == 1) {
              const T wv = wk[0];
#pragma omp simd
              for (int64_t c = c0; c < c1; ++c) dst[c] += wv * src[c];
            } else {
#pragma omp simd
              for (int64_t c = c0; c < c1; ++c) dst[c] += wk[c] * src[c];
            }
          }
        }
    });
  });
}

void CpuBackend::wavelet_filter_grad(const Tensor& g, const Tensor& in, int64_t start,
                                     const Tensor& grad_w) {
  const Layout li = layout3(in);
  const int64_t nf = grad_w.shape()[0], K = grad_w.shape()[1], Cw = grad_w.shape()[2];
  const int64_t L = g.shape()[2], C = li.C;
  visit_floating(in.dtype(), "wavelet_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    const T* pg = static_cast<const T*>(g.raw_data());
    const T* x = static_cast<const T*>(in.raw_data());
    // Each thread sums its share of A into a private (nf, K, C) buffer in double; the
    // buffers are added at the end (and over channels when the filter is shared).
    const int threads = li.A * nf * L * K * C >= kParallelGrain ? num_threads() : 1;
    std::vector<double> partial((size_t)threads * nf * K * C, 0.0);
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
      double* acc = partial.data() + (size_t)tid * nf * K * C;
      std::vector<T> row_acc(C);
      for (int64_t a = li.A * tid / nth; a < li.A * (tid + 1) / nth; ++a)
        for (int64_t f = 0; f < nf; ++f)
          for (int64_t k = 0; k < K; ++k) {
            std::fill(row_acc.begin(), row_acc.end(), T(0));
            for (int64_t j = 0; j < L; ++j) {
              const int64_t row = 2 * j + k + start;
              if (row < 0 || row >= li.rows) continue;
              const T* gv = pg + ((a * nf + f) * L + j) * C;
              const T* xv = x + (a * li.rows + row) * C;
              T* ra = row_acc.data();
#pragma omp simd
              for (int64_t c = 0; c < C; ++c) ra[c] += gv[c] * xv[c];
            }
            double* dst = acc + (f * K + k) * C;
            for (int64_t c = 0; c < C; ++c) dst[c] += row_acc[c];
          }
    }
    T* out = static_cast<T*>(grad_w.raw_data());
    for (int64_t f = 0; f < nf; ++f)
      for (int64_t k = 0; k < K; ++k) {
        if (Cw == 1) {
          double s = 0;
          for (int t = 0; t < threads; ++t)
            for (int64_t c = 0; c < C; ++c) s += partial[((size_t)t * nf * K + f * K + k) * C + c];
          out[f * K + k] = (T)s;
        } else {
          for (int64_t c = 0; c < C; ++c) {
            double s = 0;
            for (int t = 0; t < threads; ++t) s += partial[((size_t)t * nf * K + f * K + k) * C + c];
            out[(f * K + k) * C + c] = (T)s;
          }
        }
      }
  });
}

}  // namespace wavspa::cpu

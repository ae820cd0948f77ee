// Wavelet filter-bank kernels. Every tensor is contiguous (A, rows, C) with the channels C
// innermost, so the inner loops run over channels: a (B, N, D) signal is filtered along N
// with D-wide vector operations and no transposes. Work is split over (A, channel block)
// pairs, which never write the same element, so no kernel needs atomics.
#include <immintrin.h>

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

namespace {

// One term of an output row: input row `src` times filter tap w[m] for each of the M
// outputs (w[m] points at the tap's Cw values: one per channel, or one shared).
template <typename T, int M>
struct Term {
  const T* src;
  const T* w[M];
};

// dst[m][c] = sum over the terms of w[m][c or 0] * src[c], for channels [c0, c1). Blocks of
// 32 float32 channels stay in 4 M AVX2 registers for the whole term list, so each input row
// is loaded once for all M outputs; other dtypes and the channel tail take the plain loop.
template <typename T, int M>
void combine_row(const Term<T, M>* terms, int64_t n, bool per_channel, int64_t c0, int64_t c1,
                 T* const* dst) {
  int64_t c = c0;
  if constexpr (std::is_same_v<T, float>) {
    for (; c + 32 <= c1; c += 32) {
      __m256 acc[M][4];
      for (int m = 0; m < M; ++m)
        for (int i = 0; i < 4; ++i) acc[m][i] = _mm256_setzero_ps();
      for (int64_t t = 0; t < n; ++t) {
        __m256 src[4];
        for (int i = 0; i < 4; ++i) src[i] = _mm256_loadu_ps(terms[t].src + c + 8 * i);
        for (int m = 0; m < M; ++m) {
          const float* w = terms[t].w[m];
          for (int i = 0; i < 4; ++i) {
            __m256 wv = per_channel ? _mm256_loadu_ps(w + c + 8 * i) : _mm256_broadcast_ss(w);
            acc[m][i] = _mm256_fmadd_ps(wv, src[i], acc[m][i]);
          }
        }
      }
      for (int m = 0; m < M; ++m)
        for (int i = 0; i < 4; ++i) _mm256_storeu_ps(dst[m] + c + 8 * i, acc[m][i]);
    }
  }
  for (; c < c1; ++c)
    for (int m = 0; m < M; ++m) {
      T sum = 0;
      for (int64_t t = 0; t < n; ++t) sum += terms[t].w[m][per_channel ? c : 0] * terms[t].src[c];
      dst[m][c] = sum;
    }
}

// Analysis rows for M filters at once, starting at filter f0.
template <typename T, int M>
void analysis_rows(const T* x, const T* pw, T* o, int64_t a, int64_t c0, int64_t c1, int64_t f0,
                   int64_t nf, int64_t K, int64_t Cw, int64_t L, int64_t rows, int64_t C,
                   int64_t start) {
  std::vector<Term<T, M>> terms(K);
  for (int64_t j = 0; j < L; ++j) {
    // out[j] = sum_k w[k] in[2 j + k + start], over the taps inside the signal
    int64_t n = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t row = 2 * j + k + start;
      if (row < 0 || row >= rows) continue;
      terms[n].src = x + (a * rows + row) * C;
      for (int m = 0; m < M; ++m) terms[n].w[m] = pw + ((f0 + m) * K + k) * Cw;
      ++n;
    }
    T* dst[M];
    for (int m = 0; m < M; ++m) dst[m] = o + ((a * nf + f0 + m) * L + j) * C;
    combine_row<T, M>(terms.data(), n, Cw != 1, c0, c1, dst);
  }
}

}  // namespace

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
      int64_t f = 0;
      for (; f + 2 <= nf; f += 2)  // low- and high-pass together: one read of the input
        analysis_rows<T, 2>(x, pw, o, a, c0, c1, f, nf, K, Cw, L, li.rows, li.C, start);
      for (; f < nf; ++f)
        analysis_rows<T, 1>(x, pw, o, a, c0, c1, f, nf, K, Cw, L, li.rows, li.C, start);
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
    // Output-centred: row r gathers, from every filter, the taps k with r = 2 j + k + start
    // for a j in [0, L), so each output row is written once.
    for_tasks(lo.A, lo.C, lo.A * nf * L * K * lo.C, [&](int64_t a, int64_t c0, int64_t c1) {
      std::vector<Term<T, 1>> terms(K * nf);
      for (int64_t r = 0; r < lo.rows; ++r) {
        const int64_t base = r - start;  // = 2 j + k
        int64_t n = 0;
        for (int64_t k = ((base % 2) + 2) % 2; k < K; k += 2) {
          const int64_t j = (base - k) / 2;
          if (j < 0) break;
          if (j >= L) continue;
          for (int64_t f = 0; f < nf; ++f)
            terms[n++] = {pc + ((a * nf + f) * L + j) * lo.C, {pw + (f * K + k) * Cw}};
        }
        T* dst[1] = {o + (a * lo.rows + r) * lo.C};
        combine_row<T, 1>(terms.data(), n, Cw != 1, c0, c1, dst);
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
      for (int64_t a = li.A * tid / nth; a < li.A * (tid + 1) / nth; ++a)
        for (int64_t f = 0; f < nf; ++f)
          for (int64_t k = 0; k < K; ++k) {
            // rows j whose input row 2 j + k + start lies inside the signal
            const int64_t j_lo = std::max<int64_t>(0, (-(k + start) + 1) / 2);
            const int64_t j_hi = std::min<int64_t>(L, (li.rows - k - start + 1) / 2);
            const T* g0 = pg + (a * nf + f) * L * C;
            const T* x0 = x + (a * li.rows + k + start) * C;
            double* dst = acc + (f * K + k) * C;
            int64_t c = 0;
            if constexpr (std::is_same_v<T, float>) {
              // 32 channels in four registers over the whole row loop
              for (; c + 32 <= C; c += 32) {
                __m256 s[4];
                for (int i = 0; i < 4; ++i) s[i] = _mm256_setzero_ps();
                for (int64_t j = j_lo; j < j_hi; ++j) {
                  const float* gv = g0 + j * C + c;
                  const float* xv = x0 + 2 * j * C + c;
                  for (int i = 0; i < 4; ++i)
                    s[i] = _mm256_fmadd_ps(_mm256_loadu_ps(gv + 8 * i), _mm256_loadu_ps(xv + 8 * i),
                                           s[i]);
                }
                alignas(32) float lanes[32];
                for (int i = 0; i < 4; ++i) _mm256_store_ps(lanes + 8 * i, s[i]);
                for (int i = 0; i < 32; ++i) dst[c + i] += lanes[i];
              }
            }
            for (; c < C; ++c) {
              T sum = 0;
              for (int64_t j = j_lo; j < j_hi; ++j) sum += g0[j * C + c] * x0[2 * j * C + c];
              dst[c] += sum;
            }
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

// Wavelet filter-bank kernels. Every tensor is contiguous (A, rows, C) with the channels C
// innermost, so the inner loops run over channels: a (B, N, D) signal is filtered along N
// with D-wide vector operations and no transposes. Work is split over (A, channel block)
// pairs, which never write the same element, so no kernel needs atomics.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

// 64 float32 channels: the rows a block of output rows reads, and the filter taps, stay in L1.
constexpr int64_t kChannelBlock = 64;

struct Layout {
  int64_t A, rows, C;
};

Layout layout3(const Tensor& t) { return {t.shape()[0], t.shape()[1], t.shape()[2]}; }

// Runs body(a, c0, c1) over all (A, channel block) tasks in parallel.
template <typename F>
void for_tasks(int64_t A, int64_t C, [[maybe_unused]] int64_t work, F body) {  // work: read by the pragma only
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  parallel_for(
      A * blocks, dynamic_chunk(A * blocks),
      [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          int64_t a = t / blocks, c0 = (t % blocks) * kChannelBlock;
          body(a, c0, std::min(C, c0 + kChannelBlock));
        }
      },
      work >= kParallelGrain);
}

}  // namespace

void CpuBackend::wavelet_extend(const Tensor& x, const RowMap& map, const Tensor& out) {
  const Layout lx = layout3(x);
  const int64_t P = map.padded_rows();
  visit_floating(x.dtype(), "wavelet_extend", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    for_tasks(lx.A, lx.C, lx.A * P * lx.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t p = 0; p < P; ++p) {
        T* dst = o + (a * P + p) * lx.C;
        const ExtendRow& r = map.padded[p];
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

void CpuBackend::wavelet_extend_backward(const Tensor& grad_out, const RowMap& map,
                                         const Tensor& grad_x) {
  const Layout lx = layout3(grad_x);
  const int64_t P = map.padded_rows();
  visit_floating(grad_x.dtype(), "wavelet_extend_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* g = static_cast<const T*>(grad_out.raw_data());
    T* gx = static_cast<T*>(grad_x.raw_data());
    for_tasks(lx.A, lx.C, lx.A * P * lx.C, [&](int64_t a, int64_t c0, int64_t c1) {
      for (int64_t p = 0; p < P; ++p) {
        const T* src = g + (a * P + p) * lx.C;
        const ExtendRow& r = map.padded[p];
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

// A plane (A, L, C): element (a, l, c) at base + a * stride_a + l * C + c.
template <typename T>
struct Plane {
  T* base;
  int64_t stride_a;
  T* row(int64_t a, int64_t l, int64_t C) const { return base + a * stride_a + l * C; }
};

template <typename T>
Plane<T> plane(const Tensor& t) {
  return {static_cast<T*>(t.raw_data()), t.strides()[0]};
}

// One term of an output row: `scale` times input row `src` times filter tap w[m], for each
// of the M outputs (w[m] points at the tap's Cw values: one per channel, or one shared).
template <typename T, int M>
struct Term {
  const T* src;
  const T* w[M];
  T scale;
};

// dst[m][c] = sum over the terms of scale * w[m][c or 0] * src[c], for channels [c0, c1).
// Blocks of 32 float32 channels stay in 4 M AVX2 registers for the whole term list, so each
// input row is loaded once for all M outputs; other dtypes and the tail take a plain loop.
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
        if (terms[t].scale != 1.0f)  // boundary terms only
          for (int i = 0; i < 4; ++i) src[i] = _mm256_mul_ps(src[i], _mm256_set1_ps(terms[t].scale));
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
      for (int64_t t = 0; t < n; ++t)
        sum = std::fma(terms[t].scale * terms[t].w[m][per_channel ? c : 0], terms[t].src[c], sum);
      dst[m][c] = sum;
    }
}

// Analysis rows of M filters at once, starting at filter f0.
template <typename T, int M>
void analysis_rows(const Plane<const T>& x, const RowMap& map, const T* pw, int64_t K,
                   int64_t Cw, int64_t start, const std::vector<Plane<T>>& outs, int64_t f0,
                   int64_t j0, int64_t j1, int64_t C, int64_t a, int64_t c0, int64_t c1,
                   std::vector<Term<T, M>>& terms) {
  const int64_t P = map.padded_rows();
  for (int64_t j = j0; j < j1; ++j) {
    // out[j] = sum_k w[k] xe[2 j + k + start]; each padded row expands to its source rows
    int64_t n = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t p = 2 * j + k + start;
      if (p < 0 || p >= P) continue;
      const ExtendRow& r = map.padded[p];
      for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
        Term<T, M>& term = terms[n++];
        term.src = x.row(a, r.src[t], C);
        term.scale = (T)r.coef[t];
        for (int m = 0; m < M; ++m) term.w[m] = pw + ((f0 + m) * K + k) * Cw;
      }
    }
    T* dst[M];
    for (int m = 0; m < M; ++m) dst[m] = outs[f0 + m].row(a, j, C);
    combine_row<T, M>(terms.data(), n, Cw != 1, c0, c1, dst);
  }
}

// ---- direct rows: the interior, read without the map --------------------------------------
//
// Away from the boundaries an output row of the analysis reads K consecutive signal rows,
// each with coefficient 1, and a synthesis output row receives one padded row. Such rows
// take register-blocked float32 kernels below (several output rows per pass, each input
// vector loaded once for all of them); the rest go through the map as before. Per output,
// the terms are summed in the same order, with the same fused multiply-adds, either way, so
// the bits do not depend on which path a row took.

// For analysis output row j (it reads padded rows 2 j + start + k, k in [0, K)): the first
// signal row s if padded row 2 j + start + k is exactly signal row s + k for every k, else -1.
std::vector<int64_t> analysis_direct_rows(const RowMap& map, int64_t start, int64_t K, int64_t L) {
  std::vector<int64_t> first(L, -1);
  const int64_t P = map.padded_rows();
  for (int64_t j = 0; j < L; ++j) {
    const int64_t p0 = 2 * j + start;
    if (p0 < 0 || p0 + K > P) continue;
    const int64_t s0 = map.padded[p0].src[0];
    bool direct = s0 >= 0;
    for (int64_t k = 0; k < K && direct; ++k) {
      const ExtendRow& r = map.padded[p0 + k];
      direct = r.src[0] == s0 + k && r.src[1] < 0 && r.coef[0] == 1.0;
    }
    if (direct) first[j] = s0;
  }
  return first;
}

// For synthesis output row i: b = 2 j + k, the index it gathers from, if the row receives
// one padded row with coefficient 1 and every tap k of b's parity meets a band row j in
// [0, L); else -1.
std::vector<int64_t> synthesis_direct_rows(const RowMap& map, int64_t start, int64_t K, int64_t L) {
  std::vector<int64_t> base(map.n, -1);
  for (int64_t i = 0; i < map.n; ++i) {
    const int64_t e = map.offsets[i];
    if (map.offsets[i + 1] != e + 1 || map.coefs[e] != 1.0) continue;
    const int64_t b = map.rows[e] - start;
    if (b < 0) continue;
    const int64_t k_low = b % 2, k_high = k_low + 2 * ((K - 1 - k_low) / 2);
    if (k_low < K && (b - k_low) / 2 < L && b - k_high >= 0) base[i] = b;
  }
  return base;
}

// For each row r with v[r] >= 0: how many rows from r on continue its run (v stepping by
// `step`); 0 elsewhere.
std::vector<int64_t> run_lengths(const std::vector<int64_t>& v, int64_t step) {
  std::vector<int64_t> run(v.size(), 0);
  for (int64_t r = (int64_t)v.size() - 1; r >= 0; --r)
    if (v[r] >= 0)
      run[r] = r + 1 < (int64_t)v.size() && v[r + 1] == v[r] + step ? run[r + 1] + 1 : 1;
  return run;
}

// Asks for rows [r0, r0 + n) of a plane, channels [c0, c1), ahead of their use: the kernels
// below read a few new rows per block, at a stride of C floats, which the hardware prefetchers
// follow poorly when a task covers only part of each row.
inline void prefetch_rows(const float* row0, int64_t n, int64_t C, int64_t c0, int64_t c1) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = c0; c < c1; c += 16) _mm_prefetch((const char*)(row0 + r * C + c), _MM_HINT_T0);
}

inline __m256 tap_vector(const float* w, int64_t c, bool per_channel) {
  return per_channel ? _mm256_loadu_ps(w + c) : _mm256_broadcast_ss(w);
}

// R analysis output rows of M filters, channels [c0, c1): out_m[r] = sum_k w_m[k] x[2 r + k],
// k ascending. x: the first row read; w[m]: tap 0 of filter m (taps Cw apart); dst[m]: row 0.
template <int M, int R, bool PerChannel>
void analysis_block(const float* x, int64_t C, const float* const* w, int64_t K, int64_t Cw,
                    int64_t c0, int64_t c1, float* const* dst) {
  int64_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    __m256 acc[M][R];
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      __m256 wv[M];
      for (int m = 0; m < M; ++m) wv[m] = tap_vector(w[m] + k * Cw, c, PerChannel);
      const float* xk = x + k * C + c;
      for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_loadu_ps(xk + 2 * r * C);
        for (int m = 0; m < M; ++m) acc[m][r] = _mm256_fmadd_ps(wv[m], xv, acc[m][r]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) _mm256_storeu_ps(dst[m] + r * C + c, acc[m][r]);
  }
  for (; c < c1; ++c)
    for (int m = 0; m < M; ++m)
      for (int r = 0; r < R; ++r) {
        float sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum = std::fma(w[m][k * Cw + (PerChannel ? c : 0)], x[(2 * r + k) * C + c], sum);
        dst[m][r * C + c] = sum;
      }
}

// A run of n direct analysis rows (first signal row s0, 2 more per row) of M filters.
template <int M, bool PerChannel>
void analysis_run(const float* x, int64_t C, const float* const* w, int64_t K, int64_t Cw,
                  int64_t n, int64_t c0, int64_t c1, float* const* dst) {
  constexpr int R = M == 2 ? 6 : 8;  // M R accumulators + M taps + 1 input <= 16 registers
  int64_t r = 0;
  float* d[M];
  for (; r + R <= n; r += R) {
    if (r + 2 * R <= n) prefetch_rows(x + (2 * (r + R) + K - 2) * C, 2 * R, C, c0, c1);
    for (int m = 0; m < M; ++m) d[m] = dst[m] + r * C;
    analysis_block<M, R, PerChannel>(x + 2 * r * C, C, w, K, Cw, c0, c1, d);
  }
  for (; r < n; ++r) {
    for (int m = 0; m < M; ++m) d[m] = dst[m] + r * C;
    analysis_block<M, 1, PerChannel>(x + 2 * r * C, C, w, K, Cw, c0, c1, d);
  }
}

// R synthesis output rows whose gather indices are b0 + r: row r sums, k ascending and
// filters inner, w_f[k] band_f[(b0 + r - k) / 2] over the taps k of its parity, then adds
// its residual row if `base` is set. band[f]: row 0 of band f; dst and base: row 0.
template <int R, bool PerChannel>
void synthesis_block(const float* const* band, int64_t nf, const float* w, int64_t K, int64_t Cw,
                     int64_t C, int64_t b0, int64_t c0, int64_t c1, float* dst,
                     const float* base) {
  int64_t c = c0;
  for (; c + 8 <= c1; c += 8) {
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; ++k) {
      // rows r with b0 + r - k even: r = q, q + 2, ...; their band rows step by 1
      const int q = (int)((b0 + k) & 1);
      if (q >= R) continue;  // no row of this parity
      const int64_t j0 = (b0 + q - k) / 2;
      for (int64_t f = 0; f < nf; ++f) {
        const __m256 wv = tap_vector(w + (f * K + k) * Cw, c, PerChannel);
        const float* src = band[f] + j0 * C + c;
        if (q == 0) {
          for (int r = 0; r < R; r += 2)
            acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + (r / 2) * C), acc[r]);
        } else {
          for (int r = 1; r < R; r += 2)
            acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + (r / 2) * C), acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      if (base) acc[r] = _mm256_add_ps(_mm256_loadu_ps(base + r * C + c), acc[r]);
      _mm256_storeu_ps(dst + r * C + c, acc[r]);
    }
  }
  for (; c < c1; ++c)
    for (int r = 0; r < R; ++r) {
      float sum = 0;
      for (int64_t k = (b0 + r) % 2; k < K; k += 2)
        for (int64_t f = 0; f < nf; ++f)
          sum = std::fma(w[(f * K + k) * Cw + (PerChannel ? c : 0)],
                         band[f][((b0 + r - k) / 2) * C + c], sum);
      dst[r * C + c] = base ? base[r * C + c] + sum : sum;
    }
}

template <bool PerChannel>
void synthesis_run(const float* const* band, int64_t nf, const float* w, int64_t K, int64_t Cw,
                   int64_t C, int64_t b0, int64_t n, int64_t c0, int64_t c1, float* dst,
                   const float* base) {
  constexpr int R = 12;  // 12 accumulators + a tap + an input
  int64_t r = 0;
  for (; r + R <= n; r += R) {
    if (r + 2 * R <= n) {  // the band rows the next block reads first, and its residual rows
      for (int64_t f = 0; f < nf; ++f)
        prefetch_rows(band[f] + ((b0 + r + R) / 2) * C, R / 2, C, c0, c1);
      if (base) prefetch_rows(base + (r + R) * C, R, C, c0, c1);
    }
    synthesis_block<R, PerChannel>(band, nf, w, K, Cw, C, b0 + r, c0, c1, dst + r * C,
                                   base ? base + r * C : nullptr);
  }
  for (; r < n; ++r)
    synthesis_block<1, PerChannel>(band, nf, w, K, Cw, C, b0 + r, c0, c1, dst + r * C,
                                   base ? base + r * C : nullptr);
}

}  // namespace

void CpuBackend::wavelet_analysis(const Tensor& x, const RowMap& map, const Tensor& w,
                                  int64_t start, const std::vector<Tensor>& outs) {
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t nf = w.shape()[0], K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = outs[0].shape()[1];
  visit_floating(x.dtype(), "wavelet_analysis", [&](auto zero) {
    using T = decltype(zero);
    const Plane<const T> px = {static_cast<const T*>(x.raw_data()), x.strides()[0]};
    std::vector<Plane<T>> po;
    for (const Tensor& o : outs) po.push_back(plane<T>(o));
    const T* pw = static_cast<const T*>(w.raw_data());
    std::vector<int64_t> direct, run;
    if constexpr (std::is_same_v<T, float>) {
      direct = analysis_direct_rows(map, start, K, L);
      run = run_lengths(direct, 2);
    }
    for_tasks(A, C, A * nf * L * K * C, [&](int64_t a, int64_t c0, int64_t c1) {
      std::vector<Term<T, 2>> terms2(3 * K);
      std::vector<Term<T, 1>> terms1(3 * K);
      // Filters two at a time (low- and high-pass together: one read of the input).
      auto rows = [&](int64_t j0, int64_t j1) {
        int64_t f = 0;
        for (; f + 2 <= nf; f += 2)
          analysis_rows<T, 2>(px, map, pw, K, Cw, start, po, f, j0, j1, C, a, c0, c1, terms2);
        for (; f < nf; ++f)
          analysis_rows<T, 1>(px, map, pw, K, Cw, start, po, f, j0, j1, C, a, c0, c1, terms1);
      };
      if constexpr (std::is_same_v<T, float>) {
        for (int64_t j = 0; j < L;) {
          if (direct[j] < 0) {
            rows(j, j + 1);
            ++j;
            continue;
          }
          const int64_t n = run[j];
          const float* xr = px.row(a, direct[j], C);
          int64_t f = 0;
          auto run = [&]<int M>() {
            const float* wf[M];
            float* d[M];
            for (int m = 0; m < M; ++m) wf[m] = pw + (f + m) * K * Cw, d[m] = po[f + m].row(a, j, C);
            if (Cw != 1)
              analysis_run<M, true>(xr, C, wf, K, Cw, n, c0, c1, d);
            else
              analysis_run<M, false>(xr, C, wf, K, Cw, n, c0, c1, d);
            f += M;
          };
          while (f + 2 <= nf) run.template operator()<2>();
          while (f < nf) run.template operator()<1>();
          j += n;
        }
      } else {
        rows(0, L);
      }
    });
  });
}

void CpuBackend::wavelet_synthesis(const std::vector<Tensor>& coeffs, const Tensor& w,
                                   int64_t start, const RowMap& map, const Tensor& out,
                                   const Tensor& base) {
  const int64_t A = out.shape()[0], n_out = out.shape()[1], C = out.shape()[2];
  const int64_t nf = w.shape()[0], K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = coeffs[0].shape()[1];
  visit_floating(out.dtype(), "wavelet_synthesis", [&](auto zero) {
    using T = decltype(zero);
    std::vector<Plane<const T>> pc;
    for (const Tensor& c : coeffs) pc.push_back({static_cast<const T*>(c.raw_data()), c.strides()[0]});
    const T* pw = static_cast<const T*>(w.raw_data());
    T* o = static_cast<T*>(out.raw_data());
    const T* pb = base.defined() ? static_cast<const T*>(base.raw_data()) : nullptr;
    const int64_t base_stride = base.defined() ? base.strides()[0] : 0;
    std::vector<int64_t> direct, run;
    if constexpr (std::is_same_v<T, float>) {
      direct = synthesis_direct_rows(map, start, K, L);
      run = run_lengths(direct, 1);
    }
    for_tasks(A, C, A * nf * L * K * C, [&](int64_t a, int64_t c0, int64_t c1) {
      std::vector<Term<T, 1>> terms;
      std::vector<const T*> bands(nf);
      for (int64_t f = 0; f < nf; ++f) bands[f] = pc[f].row(a, 0, C);
      for (int64_t i = 0; i < n_out;) {
        T* dst[1] = {o + (a * n_out + i) * C};
        const T* brow = pb ? pb + a * base_stride + i * C : nullptr;
        if constexpr (std::is_same_v<T, float>) {
          if (direct[i] >= 0) {
            const int64_t n = run[i];
            if (Cw != 1)
              synthesis_run<true>(bands.data(), nf, pw, K, Cw, C, direct[i], n, c0, c1, dst[0], brow);
            else
              synthesis_run<false>(bands.data(), nf, pw, K, Cw, C, direct[i], n, c0, c1, dst[0], brow);
            i += n;
            continue;
          }
        }
        // Output-centred: row i gathers, through the map's transpose, the padded rows p it
        // receives, and for each p the taps k with p = 2 j + k + start for a j in [0, L).
        terms.clear();
        for (int64_t e = map.offsets[i]; e < map.offsets[i + 1]; ++e) {
          const int64_t b = map.rows[e] - start;  // = 2 j + k
          const T scale = (T)map.coefs[e];
          for (int64_t k = ((b % 2) + 2) % 2; k < K; k += 2) {
            const int64_t j = (b - k) / 2;
            if (j < 0) break;
            if (j >= L) continue;
            for (int64_t f = 0; f < nf; ++f)
              terms.push_back({bands[f] + j * C, {pw + (f * K + k) * Cw}, scale});
          }
        }
        combine_row<T, 1>(terms.data(), (int64_t)terms.size(), Cw != 1, c0, c1, dst);
        if (brow)  // the residual, added to the rounded sum as add would
          for (int64_t c = c0; c < c1; ++c) dst[0][c] = brow[c] + dst[0][c];
        ++i;
      }
    });
  });
}

namespace {

// Filter gradient of float32 over a run of n direct rows: for the M filters and KT taps of
// one channel vector, s[m][t] += g_m[i] * x[2 i + t] for i in [0, n), i ascending. g[m]:
// row 0 of band m's gradient at the vector; x: the signal row tap 0 of row 0 reads; acc[m][t]
// the accumulators (in, out) of filter m, tap t.
template <int M, int KT>
void filter_grad_run(const float* const* g, const float* x, int64_t n, int64_t C,
                     float* const (&acc)[M][KT]) {
  __m256 s[M][KT];
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < KT; ++t) s[m][t] = _mm256_loadu_ps(acc[m][t]);
  for (int64_t i = 0; i < n; ++i) {
    __m256 gv[M];
    for (int m = 0; m < M; ++m) gv[m] = _mm256_loadu_ps(g[m] + i * C);
    const float* xr = x + 2 * i * C;
    for (int t = 0; t < KT; ++t) {
      const __m256 xv = _mm256_loadu_ps(xr + t * C);
      for (int m = 0; m < M; ++m) s[m][t] = _mm256_fmadd_ps(gv[m], xv, s[m][t]);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < KT; ++t) _mm256_storeu_ps(acc[m][t], s[m][t]);
}

// Filter gradient of float32, for signal rows a: acc[(f K + k) C + c] += g_f[j][c] *
// xe[2 j + k + start][c] over the rows j in [j0, j1), j ascending, for the M filters from f0
// and the KT taps from k0, channels [c, c + 8) (one vector). Runs of direct rows read the
// signal rows in place; the others go through the map, each term an FMA of
// (coefficient * g) and x.
template <int M, int KT>
void filter_grad_vector(const Plane<const float>* g, const Plane<const float>& x,
                        const RowMap& map, const std::vector<int64_t>& direct,
                        const std::vector<int64_t>& run, int64_t start, int64_t a, int64_t f0, int64_t k0, int64_t j0, int64_t j1, int64_t K,
                        int64_t C, int64_t c, float* acc) {
  const int64_t P = map.padded_rows();
  float* sums[M][KT];
  for (int m = 0; m < M; ++m)
    for (int t = 0; t < KT; ++t) sums[m][t] = acc + ((f0 + m) * K + k0 + t) * C + c;
  for (int64_t j = j0; j < j1;) {
    if (direct[j] >= 0) {
      const int64_t n = std::min(run[j], j1 - j);
      const float* gr[M];
      for (int m = 0; m < M; ++m) gr[m] = g[f0 + m].row(a, j, C) + c;
      filter_grad_run<M, KT>(gr, x.row(a, direct[j] + k0, C) + c, n, C, sums);
      j += n;
      continue;
    }
    for (int t = 0; t < KT; ++t) {
      const int64_t p = 2 * j + k0 + t + start;
      if (p < 0 || p >= P) continue;
      const ExtendRow& r = map.padded[p];
      for (int u = 0; u < 3 && r.src[u] >= 0; ++u) {
        const __m256 xv = _mm256_loadu_ps(x.row(a, r.src[u], C) + c);
        const __m256 coef = _mm256_set1_ps((float)r.coef[u]);
        for (int m = 0; m < M; ++m) {
          const __m256 gv = _mm256_loadu_ps(g[f0 + m].row(a, j, C) + c);
          const __m256 s = _mm256_loadu_ps(sums[m][t]);
          _mm256_storeu_ps(sums[m][t], _mm256_fmadd_ps(r.coef[u] == 1.0 ? gv : _mm256_mul_ps(coef, gv), xv, s));
        }
      }
    }
    ++j;
  }
}

// The same for one channel c, any dtype, through the map: acc += g * xe over [j0, j1).
template <typename T>
void filter_grad_scalar(const Plane<const T>* g, const Plane<const T>& x, const RowMap& map,
                        int64_t start, int64_t a, int64_t nf, int64_t K, int64_t j0, int64_t j1,
                        int64_t C, int64_t c, T* acc) {
  const int64_t P = map.padded_rows();
  for (int64_t f = 0; f < nf; ++f)
    for (int64_t k = 0; k < K; ++k) {
      T sum = acc[(f * K + k) * C + c];
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t p = 2 * j + k + start;
        if (p < 0 || p >= P) continue;
        const ExtendRow& r = map.padded[p];
        for (int u = 0; u < 3 && r.src[u] >= 0; ++u)
          sum = std::fma((T)r.coef[u] * g[f].row(a, j, C)[c], x.row(a, r.src[u], C)[c], sum);
      }
      acc[(f * K + k) * C + c] = sum;
    }
}

}  // namespace

void CpuBackend::wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x,
                                     const RowMap& map, int64_t start, const Tensor& grad_w) {
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t nf = grad_w.shape()[0], K = grad_w.shape()[1], Cw = grad_w.shape()[2];
  const int64_t L = g[0].shape()[1];
  visit_floating(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    std::vector<Plane<const T>> pg;
    for (const Tensor& t : g) pg.push_back({static_cast<const T*>(t.raw_data()), t.strides()[0]});
    const Plane<const T> px = {static_cast<const T*>(x.raw_data()), x.strides()[0]};
    std::vector<int64_t> direct, run;
    if constexpr (std::is_same_v<T, float>) {
      direct = analysis_direct_rows(map, start, K, L);
      run = run_lengths(direct, 2);
    }
    // The rows of A are cut into `parts` contiguous ranges (at most 32, by A alone, so the
    // bits do not depend on the thread count). Each (a, f, k, c) is summed in T over j in
    // order, then added in double to its part's (nf, K, C) buffer; the buffers are added at
    // the end in part order (and over channels when the filter is shared).
    const int64_t parts = std::min<int64_t>(A, 32);
    std::vector<double> partial((size_t)parts * nf * K * C, 0.0);
    parallel_for(
        parts, 1,
        [&](int64_t p_begin, int64_t p_end) {
          std::vector<T> sums((size_t)nf * K * C);
          for (int64_t part = p_begin; part < p_end; ++part) {
            double* acc = partial.data() + (size_t)part * nf * K * C;
            for (int64_t a = A * part / parts; a < A * (part + 1) / parts; ++a) {
              std::fill(sums.begin(), sums.end(), T(0));
              // Blocks of 32 rows: a vector's rows of g and x stay in L1 while every
              // (filter, tap) group passes over them.
              for (int64_t j0 = 0; j0 < L; j0 += 32) {
                const int64_t j1 = std::min(L, j0 + 32);
                int64_t c = 0;
                if constexpr (std::is_same_v<T, float>) {
                  for (; c + 8 <= C; c += 8) {
                    if (c % 16 == 0 && j1 < L && direct[j1] >= 0) {  // the next block's lines
                      const int64_t jn = std::min<int64_t>(L - j1, 32);
                      for (int64_t f = 0; f < nf; ++f) prefetch_rows(pg[f].row(a, j1, C), jn, C, c, c + 8);
                      prefetch_rows(px.row(a, direct[j1], C),
                                    std::min<int64_t>(2 * jn + K - 2, map.n - direct[j1]), C, c, c + 8);
                    }
                    int64_t f = 0;
                    // Eight accumulators per pass (two filters by four taps when it can):
                    // each load of g serves several taps, each load of x several filters.
                    auto taps = [&]<int M>() {
                      int64_t k = 0;
                      for (; k + 8 / M <= K; k += 8 / M)
                        filter_grad_vector<M, 8 / M>(pg.data(), px, map, direct, run, start, a, f, k, j0, j1, K, C, c, sums.data());
                      for (; k < K; ++k)
                        filter_grad_vector<M, 1>(pg.data(), px, map, direct, run, start, a, f, k, j0, j1, K, C, c, sums.data());
                      f += M;
                    };
                    while (f + 2 <= nf) taps.template operator()<2>();
                    while (f < nf) taps.template operator()<1>();
                  }
                }
                for (; c < C; ++c)
                  filter_grad_scalar<T>(pg.data(), px, map, start, a, nf, K, j0, j1, C, c, sums.data());
              }
              for (size_t i = 0; i < sums.size(); ++i) acc[i] += (double)sums[i];
            }
          }
        },
        A * nf * L * K * C >= kParallelGrain);
    T* out = static_cast<T*>(grad_w.raw_data());
    for (int64_t f = 0; f < nf; ++f)
      for (int64_t k = 0; k < K; ++k) {
        if (Cw == 1) {
          double sum = 0;
          for (int64_t t = 0; t < parts; ++t)
            for (int64_t c = 0; c < C; ++c) sum += partial[((size_t)t * nf * K + f * K + k) * C + c];
          out[f * K + k] = (T)sum;
        } else {
          for (int64_t c = 0; c < C; ++c) {
            double sum = 0;
            for (int64_t t = 0; t < parts; ++t)
              sum += partial[((size_t)t * nf * K + f * K + k) * C + c];
            out[(f * K + k) * C + c] = (T)sum;
          }
        }
      }
  });
}

// ---- the orthogonal lattice ------------------------------------------------------------------

void CpuBackend::lattice_filter(const Tensor& theta, const Tensor& h) {
  const int K = (int)theta.shape()[0];
  const int64_t C = theta.shape()[1];
  visit_floating(theta.dtype(), "lattice_filter", [&](auto zero) {
    using T = decltype(zero);
    const T* t = static_cast<const T*>(theta.raw_data());
    T* out = static_cast<T*>(h.raw_data());
    T c[kLatticeMaxK], s[kLatticeMaxK];
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int i = 0; i < K; ++i) c[i] = std::cos(t[i * C + ch]), s[i] = std::sin(t[i * C + ch]);
      lattice_channel(K, c, s, out + ch, C);
    }
  });
}

void CpuBackend::lattice_filter_backward(const Tensor& theta, const Tensor& grad_h, const Tensor& grad_theta) {
  const int K = (int)theta.shape()[0];
  const int64_t C = theta.shape()[1];
  visit_floating(theta.dtype(), "lattice_filter_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* t = static_cast<const T*>(theta.raw_data());
    const T* g = static_cast<const T*>(grad_h.raw_data());
    T* gt = static_cast<T*>(grad_theta.raw_data());
    T c[kLatticeMaxK], s[kLatticeMaxK];
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int i = 0; i < K; ++i) c[i] = std::cos(t[i * C + ch]), s[i] = std::sin(t[i * C + ch]);
      lattice_channel_backward(K, c, s, g + ch, C, gt + ch, C);
    }
  });
}

// ---- lifting steps --------------------------------------------------------------------------

namespace {

// An (A, rows, C) view with unit channel stride, as the lifting kernels address it.
template <typename T>
struct RowView {
  T* p;
  int64_t batch, row;  // strides
  explicit RowView(const Tensor& t)
      : p(static_cast<T*>(t.raw_data())), batch(t.strides()[0]), row(t.strides()[1]) {}
  T* at(int64_t a, int64_t m) const { return p + a * batch + m * row; }
};

}  // namespace

namespace {

// out row r = base row r + sign * sum over terms(a, r) of f[k] * in row s: the shape both a
// lifting step and its adjoint take; terms(a, r, visit) calls visit(s, k) for each term.
template <typename Terms>
void lifting_rows(const char* name, const Tensor& in, const Tensor& base, const Tensor& f, int sign,
                  const Tensor& out, int64_t work_per_row, Terms&& terms) {
  const int64_t A = out.shape()[0], rows = out.shape()[1], C = out.shape()[2];
  visit_floating(in.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    // (declared here, not outside: clang-14 refuses the innermost lambda's use of locals of
    // the enclosing function through the generic lambda)
    const int64_t fs = f.shape()[1], fc = fs == 1 ? 0 : 1;  // filter column stride: shared or per channel
    const RowView<const T> iv(in), bv(base);
    const RowView<T> ov(out);
    const T* fp = static_cast<const T*>(f.raw_data());
    [[maybe_unused]] const bool parallel = A * rows * C * work_per_row >= kParallelGrain;
    parallel_for(
        A * rows, dynamic_chunk(A * rows),
        [&](int64_t begin, int64_t end) {
          for (int64_t ar = begin; ar < end; ++ar) {
            const int64_t a = ar / rows, r = ar % rows;
            T* o = ov.at(a, r);
            const T* b = bv.at(a, r);
            for (int64_t c = 0; c < C; ++c) {
              T acc = 0;
              terms(r, [&](int64_t src, int k) { acc += fp[k * fs + c * fc] * iv.at(a, src)[c]; });
              o[c] = b[c] + (sign > 0 ? acc : -acc);
            }
          }
        },
        parallel);
  });
}

}  // namespace

void CpuBackend::lifting_step(const Tensor& v, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                              const Tensor& out) {
  const int64_t n = v.shape()[1];
  const int K = (int)f.shape()[0];
  lifting_rows("lifting_step", v, base, f, sign, out, K, [&](int64_t m, auto&& visit) {
    for (int k = 0; k < K; ++k) visit(lifting_sym(m + k + offset, n), k);
  });
}

void CpuBackend::lifting_step_adjoint(const Tensor& g, const Tensor& base, const Tensor& f, int64_t offset, int sign,
                                      const Tensor& out) {
  const int64_t n = out.shape()[1], n_out = g.shape()[1];
  const int K = (int)f.shape()[0];
  lifting_rows("lifting_step_adjoint", g, base, f, sign, out, K, [&](int64_t j, auto&& visit) {
    lifting_preimages(j, n, n_out, K, offset, visit);
  });
}

void CpuBackend::lifting_filter_grad(const Tensor& g, const Tensor& v, int64_t offset, int sign,
                                     const Tensor& grad_f) {
  const int64_t A = g.shape()[0], n_out = g.shape()[1], C = g.shape()[2], n = v.shape()[1];
  const int64_t K = grad_f.shape()[0], Cw = grad_f.shape()[1];
  visit_floating(g.dtype(), "lifting_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    const RowView<const T> gv(g), vv(v);
    T* out = static_cast<T*>(grad_f.raw_data());
    // One (k, c) sum per task, in double, rows in order; a shared filter adds its channels'
    // sums in channel order: the same bits every run.
    std::vector<double> sums(K * C);
    parallel_for(
        K * C, dynamic_chunk(K * C),
        [&](int64_t begin, int64_t end) {
          for (int64_t kc = begin; kc < end; ++kc) {
            const int64_t k = kc / C, c = kc % C;
            double acc = 0;
            for (int64_t a = 0; a < A; ++a)
              for (int64_t m = 0; m < n_out; ++m)
                acc += (double)gv.at(a, m)[c] * (double)vv.at(a, lifting_sym(m + k + offset, n))[c];
            sums[kc] = sign > 0 ? acc : -acc;
          }
        },
        A * n_out * C * K >= kParallelGrain);
    for (int64_t k = 0; k < K; ++k) {
      if (Cw == C) {
        for (int64_t c = 0; c < C; ++c) out[k * C + c] = (T)sums[k * C + c];
      } else {
        double acc = 0;
        for (int64_t c = 0; c < C; ++c) acc += sums[k * C + c];
        out[k] = (T)acc;
      }
    }
  });
}

}  // namespace wavspa::cpu

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

constexpr int64_t kChannelBlock = 256;

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
        sum += terms[t].scale * terms[t].w[m][per_channel ? c : 0] * terms[t].src[c];
      dst[m][c] = sum;
    }
}

// Analysis rows of M filters at once, starting at filter f0.
template <typename T, int M>
void analysis_rows(const Plane<const T>& x, const RowMap& map, const T* pw, int64_t K,
                   int64_t Cw, int64_t start, const std::vector<Plane<T>>& outs, int64_t f0,
                   int64_t L, int64_t C, int64_t a, int64_t c0, int64_t c1,
                   std::vector<Term<T, M>>& terms) {
  const int64_t P = map.padded_rows();
  for (int64_t j = 0; j < L; ++j) {
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
    for_tasks(A, C, A * nf * L * K * C, [&](int64_t a, int64_t c0, int64_t c1) {
      std::vector<Term<T, 2>> terms2(3 * K);
      std::vector<Term<T, 1>> terms1(3 * K);
      int64_t f = 0;
      for (; f + 2 <= nf; f += 2)  // low- and high-pass together: one read of the input
        analysis_rows<T, 2>(px, map, pw, K, Cw, start, po, f, L, C, a, c0, c1, terms2);
      for (; f < nf; ++f)
        analysis_rows<T, 1>(px, map, pw, K, Cw, start, po, f, L, C, a, c0, c1, terms1);
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
    // Output-centred: row i gathers, through the map's transpose, the padded rows p it
    // receives, and for each p the taps k with p = 2 j + k + start for a j in [0, L).
    for_tasks(A, C, A * nf * L * K * C, [&](int64_t a, int64_t c0, int64_t c1) {
      std::vector<Term<T, 1>> terms;
      for (int64_t i = 0; i < n_out; ++i) {
        terms.clear();
        for (int64_t e = map.offsets[i]; e < map.offsets[i + 1]; ++e) {
          const int64_t base = map.rows[e] - start;  // = 2 j + k
          const T scale = (T)map.coefs[e];
          for (int64_t k = ((base % 2) + 2) % 2; k < K; k += 2) {
            const int64_t j = (base - k) / 2;
            if (j < 0) break;
            if (j >= L) continue;
            for (int64_t f = 0; f < nf; ++f)
              terms.push_back({pc[f].row(a, j, C), {pw + (f * K + k) * Cw}, scale});
          }
        }
        T* dst[1] = {o + (a * n_out + i) * C};
        combine_row<T, 1>(terms.data(), (int64_t)terms.size(), Cw != 1, c0, c1, dst);
        if (pb) {  // the residual, added to the rounded sum as add would
          const T* brow = pb + a * base_stride + i * C;
          for (int64_t c = c0; c < c1; ++c) dst[0][c] = brow[c] + dst[0][c];
        }
      }
    });
  });
}

void CpuBackend::wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x,
                                     const RowMap& map, int64_t start, const Tensor& grad_w) {
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t nf = grad_w.shape()[0], K = grad_w.shape()[1], Cw = grad_w.shape()[2];
  const int64_t L = g[0].shape()[1], P = map.padded_rows();
  visit_floating(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    std::vector<Plane<const T>> pg;
    for (const Tensor& t : g) pg.push_back({static_cast<const T*>(t.raw_data()), t.strides()[0]});
    const Plane<const T> px = {static_cast<const T*>(x.raw_data()), x.strides()[0]};
    // The rows of A are cut into `parts` contiguous ranges (at most 32, by A alone, so the
    // bits do not depend on the thread count); each sums its range into a private
    // (nf, K, C) buffer in double, and the buffers are added at the end in part order (and
    // over channels when the filter is shared).
    const int64_t parts = std::min<int64_t>(A, 32);
    std::vector<double> partial((size_t)parts * nf * K * C, 0.0);
    parallel_for(
        parts, 1,
        [&](int64_t p_begin, int64_t p_end) {
          for (int64_t part = p_begin; part < p_end; ++part) {
            double* acc = partial.data() + (size_t)part * nf * K * C;
            // Loop order a, channel block, f, k, j: one block's rows of g and x (about
            // (L + n) x 128 bytes) stay in L2 while every (f, k) pass re-reads them.
            constexpr int64_t kBlock = std::is_same_v<T, float> ? 32 : 1;
            for (int64_t a = A * part / parts; a < A * (part + 1) / parts; ++a)
              for (int64_t c = 0; c < C; c += kBlock) {
                const bool vector_block = std::is_same_v<T, float> && c + kBlock <= C;
                const int64_t c_end = vector_block ? c + kBlock : C;
                for (int64_t f = 0; f < nf; ++f)
                  for (int64_t k = 0; k < K; ++k) {
                    double* dst = acc + (f * K + k) * C;
                    if constexpr (std::is_same_v<T, float>) {
                      if (vector_block) {
                        // Two taps per pass share each load of g and give the FMA chains
                        // eight independent accumulators (one chain of four is latency-bound).
                        const bool pair = k + 1 < K;
                        __m256 s0[4], s1[4];
                        for (int i = 0; i < 4; ++i) s0[i] = s1[i] = _mm256_setzero_ps();
                        auto add_row = [&](__m256* s, const __m256* gv, int64_t p) {
                          if (p < 0 || p >= P) return;
                          const ExtendRow& r = map.padded[p];
                          for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
                            const float* xv = px.row(a, r.src[t], C) + c;
                            if (r.coef[t] == 1.0) {
                              for (int i = 0; i < 4; ++i)
                                s[i] = _mm256_fmadd_ps(gv[i], _mm256_loadu_ps(xv + 8 * i), s[i]);
                            } else {
                              const __m256 coef = _mm256_set1_ps((float)r.coef[t]);
                              for (int i = 0; i < 4; ++i)
                                s[i] = _mm256_fmadd_ps(_mm256_mul_ps(coef, gv[i]),
                                                       _mm256_loadu_ps(xv + 8 * i), s[i]);
                            }
                          }
                        };
                        for (int64_t j = 0; j < L; ++j) {
                          const float* gp = pg[f].row(a, j, C) + c;
                          __m256 gv[4];
                          for (int i = 0; i < 4; ++i) gv[i] = _mm256_loadu_ps(gp + 8 * i);
                          add_row(s0, gv, 2 * j + k + start);
                          if (pair) add_row(s1, gv, 2 * j + k + 1 + start);
                        }
                        alignas(32) float lanes[32];
                        for (int i = 0; i < 4; ++i) _mm256_store_ps(lanes + 8 * i, s0[i]);
                        for (int i = 0; i < 32; ++i) dst[c + i] += lanes[i];
                        if (pair) {
                          for (int i = 0; i < 4; ++i) _mm256_store_ps(lanes + 8 * i, s1[i]);
                          for (int i = 0; i < 32; ++i) dst[C + c + i] += lanes[i];  // tap k + 1
                          ++k;
                        }
                        continue;
                      }
                    }
                    for (int64_t cc = c; cc < c_end; ++cc) {
                      T sum = 0;
                      for (int64_t j = 0; j < L; ++j) {
                        const int64_t p = 2 * j + k + start;
                        if (p < 0 || p >= P) continue;
                        const ExtendRow& r = map.padded[p];
                        for (int t = 0; t < 3 && r.src[t] >= 0; ++t)
                          sum += (T)r.coef[t] * pg[f].row(a, j, C)[cc] * px.row(a, r.src[t], C)[cc];
                      }
                      dst[cc] += sum;
                    }
                  }
                if (!vector_block) break;  // the scalar path covered the remaining channels
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

// Softmax, layer norm and cross-entropy: one row per task, float32 rows accumulate in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dropout.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {

void CpuBackend::softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  visit_floating(x.dtype(), "softmax", [&](auto zero) {
    using T = decltype(zero);
    const int64_t N = x.dim() ? x.shape().back() : 1, M = N ? x.numel() / N : 0;
    const T* in = static_cast<const T*>(x.raw_data());
    T* out = static_cast<T*>(y.raw_data());
    parallel_for(
        M, dynamic_chunk(M),
        [&](int64_t begin, int64_t end) {
          for (int64_t m = begin; m < end; ++m) {
            const T* row = in + m * N;
            T* orow = out + m * N;
            T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
            for (int64_t i = 0; i < N; ++i) mx = row[i] > mx ? row[i] : mx;
            if (std::isinf(mx) && mx < 0) mx = 0;  // an all -inf row: avoid inf - inf
            double sum = 0;
            if constexpr (std::is_same_v<T, float>) {
              // exp into the output row, then normalise it in place (or take logs).
              sum = vmath::exp_shifted_sum(row, orow, N, mx);
              if (log) {
                const T lse = mx + (T)std::log(sum);
#pragma omp simd
                for (int64_t i = 0; i < N; ++i) orow[i] = row[i] - lse;
              } else {
                const T inv = (T)(1.0 / sum);
#pragma omp simd
                for (int64_t i = 0; i < N; ++i) orow[i] *= inv;
              }
              continue;
            }
            if (log) {
#pragma omp simd reduction(+ : sum)
              for (int64_t i = 0; i < N; ++i) sum += std::exp(row[i] - mx);
              T lse = mx + (T)std::log(sum);
#pragma omp simd
              for (int64_t i = 0; i < N; ++i) orow[i] = row[i] - lse;
            } else {
              for (int64_t i = 0; i < N; ++i) {
                T e = std::exp(row[i] - mx);
                orow[i] = e;
                sum += e;
              }
              T inv = (T)(1.0 / sum);
#pragma omp simd
              for (int64_t i = 0; i < N; ++i) orow[i] *= inv;
            }
          }
        },
        M * N >= kParallelGrain);
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& grad_y, const Tensor& grad_x,
                                  bool log) {
  visit_floating(y.dtype(), "softmax_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t N = y.dim() ? y.shape().back() : 1, M = N ? y.numel() / N : 0;
    const T* py = static_cast<const T*>(y.raw_data());
    const T* pg = static_cast<const T*>(grad_y.raw_data());
    T* px = static_cast<T*>(grad_x.raw_data());
    parallel_for(
        M, dynamic_chunk(M),
        [&](int64_t begin, int64_t end) {
          for (int64_t m = begin; m < end; ++m) {
            const T* yr = py + m * N;
            const T* gr = pg + m * N;
            T* xr = px + m * N;
            double dot = 0;
            if (log) {  // dx = g - exp(y) * sum(g)
#pragma omp simd reduction(+ : dot)
              for (int64_t i = 0; i < N; ++i) dot += gr[i];
              T s = (T)dot;
              for (int64_t i = 0; i < N; ++i) xr[i] = gr[i] - std::exp(yr[i]) * s;
            } else {  // dx = y * (g - sum(g * y))
#pragma omp simd reduction(+ : dot)
              for (int64_t i = 0; i < N; ++i) dot += (double)gr[i] * yr[i];
              T s = (T)dot;
#pragma omp simd
              for (int64_t i = 0; i < N; ++i) xr[i] = yr[i] * (gr[i] - s);
            }
          }
        },
        M * N >= kParallelGrain);
  });
}

namespace {

// Layer norm of rows [m_begin, m_end) of N: statistics in double, two passes (exact for large
// means, unlike E[x^2] - E[x]^2), the normalisation in T.
template <typename T>
void layernorm_rows(const T* in, const T* w, const T* b, double eps, T* out, T* pm, T* pr, int64_t N,
                    int64_t m_begin, int64_t m_end) {
  for (int64_t m = m_begin; m < m_end; ++m) {
    const T* row = in + m * N;
    T* orow = out + m * N;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < N; ++i) s += row[i];
    const double mu = s / N;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < N; ++i) ss += (row[i] - mu) * (row[i] - mu);
    const double r = 1.0 / std::sqrt(ss / N + eps);
    pm[m] = (T)mu;
    pr[m] = (T)r;
    const T tmu = (T)mu, tr = (T)r;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) {
      T v = (row[i] - tmu) * tr;
      if (w) v *= w[i];
      if (b) v += b[i];
      orow[i] = v;
    }
  }
}

// Layer norm's backward, plus `add` (null: nothing) into grad_x as add would round the sum.
template <typename T>
void layernorm_backward_rows(const Tensor& grad_y, const T* add, const Tensor& x, const Tensor& weight,
                             const Tensor& mean, const Tensor& rstd, const Tensor& grad_x,
                             const Tensor& grad_weight, const Tensor& grad_bias) {
  const int64_t M = mean.numel(), N = M ? x.numel() / M : 0;
  const T* gy = static_cast<const T*>(grad_y.raw_data());
  const T* in = static_cast<const T*>(x.raw_data());
  // Without a weight, a row of ones keeps the loops below free of branches.
  std::vector<T> unit_weight(weight.defined() ? 0 : N, T(1));
  const T* w = weight.defined() ? static_cast<const T*>(weight.raw_data()) : unit_weight.data();
  const T* pm = static_cast<const T*>(mean.raw_data());
  const T* pr = static_cast<const T*>(rstd.raw_data());
  T* gx = static_cast<T*>(grad_x.raw_data());
  const bool want_wb = grad_weight.defined() || grad_bias.defined();
  // dweight/dbias: partial sums over `parts` contiguous row ranges, added up at the end in
  // part order (no atomics). The ranges depend on M only, so the bits do not depend on the
  // thread count.
  constexpr int64_t kPartRows = 256;
  const int64_t parts = std::clamp<int64_t>((M + kPartRows - 1) / kPartRows, 1, 64);
  std::vector<double> part_w(want_wb ? parts * N : 0, 0.0), part_b(part_w.size(), 0.0);
  parallel_for(
      parts, 1,
      [&](int64_t p_begin, int64_t p_end) {
        for (int64_t part = p_begin; part < p_end; ++part) {
          double* tw = want_wb ? part_w.data() + part * N : nullptr;
          double* tb = want_wb ? part_b.data() + part * N : nullptr;
          // dweight/dbias add up over rows in T for blocks of kBlock rows, then into double:
          // converting every row to double cost more than the rest of the kernel.
          constexpr int64_t kBlock = 32;
          std::vector<T> bw(want_wb ? N : 0, T(0)), bb(bw.size(), T(0));
          const int64_t m_begin = M * part / parts, m_end = M * (part + 1) / parts;
          for (int64_t m = m_begin; m < m_end; ++m) {
            const T* g = gy + m * N;
            const T* row = in + m * N;
            T* o = gx + m * N;
            const T mu = pm[m], r = pr[m];
            // dx = r * (g*w - mean(g*w) - xhat * mean(g*w*xhat)); branch-free loops vectorise.
            double sum_gw = 0, sum_gwx = 0;
#pragma omp simd reduction(+ : sum_gw, sum_gwx)
            for (int64_t i = 0; i < N; ++i) {
              T xhat = (row[i] - mu) * r;
              T gw = g[i] * w[i];
              sum_gw += gw;
              sum_gwx += gw * xhat;
            }
            if (want_wb) {
              T* pw = bw.data();
              T* pb = bb.data();
#pragma omp simd
              for (int64_t i = 0; i < N; ++i) {
                pw[i] += g[i] * ((row[i] - mu) * r);
                pb[i] += g[i];
              }
              if ((m - m_begin) % kBlock == kBlock - 1 || m + 1 == m_end) {
                for (int64_t i = 0; i < N; ++i) {
                  tw[i] += pw[i];
                  tb[i] += pb[i];
                  pw[i] = pb[i] = T(0);
                }
              }
            }
            const T a = (T)(sum_gw / N), c = (T)(sum_gwx / N);
#pragma omp simd
            for (int64_t i = 0; i < N; ++i) {
              T xhat = (row[i] - mu) * r;
              o[i] = r * (g[i] * w[i] - a - xhat * c);
            }
            // The add reads the rounded row back: in one expression g++ would contract the
            // product and the add into an FMA (C++ keeps -ffp-contract=fast), which add does not.
            if (add) {
              const T* ad = add + m * N;
#pragma omp simd
              for (int64_t i = 0; i < N; ++i) o[i] = o[i] + ad[i];
            }
          }
        }
      },
      M * N >= kParallelGrain);
  if (!want_wb) return;
  for (int64_t i = 0; i < N; ++i) {
    double sw = 0, sb = 0;
    for (int64_t t = 0; t < parts; ++t) {
      sw += part_w[t * N + i];
      sb += part_b[t * N + i];
    }
    if (grad_weight.defined()) static_cast<T*>(grad_weight.raw_data())[i] = (T)sw;
    if (grad_bias.defined()) static_cast<T*>(grad_bias.raw_data())[i] = (T)sb;
  }
}

}  // namespace

void CpuBackend::layernorm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   double eps, const Tensor& y, const Tensor& mean,
                                   const Tensor& rstd) {
  visit_floating(x.dtype(), "layer_norm", [&](auto zero) {
    using T = decltype(zero);
    const int64_t M = mean.numel(), N = M ? x.numel() / M : 0;
    const T* in = static_cast<const T*>(x.raw_data());
    const T* w = weight.defined() ? static_cast<const T*>(weight.raw_data()) : nullptr;
    const T* b = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    T* out = static_cast<T*>(y.raw_data());
    T* pm = static_cast<T*>(mean.raw_data());
    T* pr = static_cast<T*>(rstd.raw_data());
    parallel_for(
        M, dynamic_chunk(M),
        [&](int64_t begin, int64_t end) { layernorm_rows(in, w, b, eps, out, pm, pr, N, begin, end); },
        M * N >= kParallelGrain);
  });
}

void CpuBackend::layernorm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                    const Tensor& mean, const Tensor& rstd,
                                    const Tensor& grad_x, const Tensor& grad_weight,
                                    const Tensor& grad_bias) {
  visit_floating(x.dtype(), "layer_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    layernorm_backward_rows<T>(grad_y, nullptr, x, weight, mean, rstd, grad_x, grad_weight, grad_bias);
  });
}

// Blocks of whole rows that start on a dropout group (64 elements) and hold about 2048
// elements, so that base, x, h and y of a block stay in L1 between the add and the norm.
void CpuBackend::dropout_add_layernorm_forward(const Tensor& base, const Tensor& x, PhiloxState s, double p,
                                               const Tensor& weight, const Tensor& bias, double eps,
                                               const Tensor& h, const Tensor& y, const Tensor& mean,
                                               const Tensor& rstd) {
  if (p > 0) check_host_philox(s);
  visit_floating(x.dtype(), "dropout_add_layer_norm", [&](auto zero) {
    using T = decltype(zero);
    const int64_t M = mean.numel(), N = M ? x.numel() / M : 0, n = M * N;
    const T* pb = static_cast<const T*>(base.raw_data());
    const T* px = static_cast<const T*>(x.raw_data());
    const T* w = weight.defined() ? static_cast<const T*>(weight.raw_data()) : nullptr;
    const T* b = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    T* ph = static_cast<T*>(h.raw_data());
    T* py = static_cast<T*>(y.raw_data());
    T* pm = static_cast<T*>(mean.raw_data());
    T* pr = static_cast<T*>(rstd.raw_data());
    if (n == 0) return;
    const int64_t align = 64 / std::gcd<int64_t>(N, 64);  // rows per whole number of groups
    const int64_t rows = align * std::max<int64_t>(1, 2048 / (N * align));
    const int64_t blocks = (M + rows - 1) / rows;
    parallel_for(
        blocks, dynamic_chunk(blocks),
        [&](int64_t begin, int64_t end) {
          for (int64_t blk = begin; blk < end; ++blk) {
            const int64_t m0 = blk * rows, m1 = std::min(M, m0 + rows);
            const int64_t i0 = m0 * N, i1 = m1 * N;
            if (p > 0) {
              dropout_groups(px, pb, ph, n, s, p, i0 / 64, (i1 + 63) / 64);
            } else {
#pragma omp simd
              for (int64_t i = i0; i < i1; ++i) ph[i] = pb[i] + px[i];
            }
            layernorm_rows(ph, w, b, eps, py, pm, pr, N, m0, m1);
          }
        },
        n >= kParallelGrain);
  });
}

void CpuBackend::layernorm_backward_add(const Tensor& grad_y, const Tensor& grad_add, const Tensor& x,
                                        const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                        const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias) {
  visit_floating(x.dtype(), "layer_norm_backward", [&](auto zero) {
    using T = decltype(zero);
    const T* add = grad_add.defined() ? static_cast<const T*>(grad_add.raw_data()) : nullptr;
    layernorm_backward_rows<T>(grad_y, add, x, weight, mean, rstd, grad_x, grad_weight, grad_bias);
  });
}

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                       int64_t ignore_index, double label_smoothing,
                                       const Tensor& losses) {
  visit_floating(logits.dtype(), "cross_entropy", [&](auto zero) {
    using T = decltype(zero);
    const int64_t N = logits.shape()[0], C = logits.shape()[1];
    const T* x = static_cast<const T*>(logits.raw_data());
    const int64_t* t = static_cast<const int64_t*>(target.raw_data());
    T* out = static_cast<T*>(losses.raw_data());
    parallel_for(
        N, dynamic_chunk(N),
        [&](int64_t begin, int64_t end) {
          for (int64_t n = begin; n < end; ++n) {
            if (t[n] == ignore_index) {
              out[n] = 0;
              continue;
            }
            const T* row = x + n * C;
            T mx = row[0];
            for (int64_t c = 1; c < C; ++c) mx = row[c] > mx ? row[c] : mx;
            double se = 0, sx = 0;
            for (int64_t c = 0; c < C; ++c) {
              se += std::exp((double)row[c] - mx);
              sx += row[c];
            }
            const double lse = mx + std::log(se);
            // -(1-eps) log p_t - eps/C sum_c log p_c
            out[n] =
                (T)((1 - label_smoothing) * (lse - row[t[n]]) + label_smoothing * (lse - sx / C));
          }
        },
        N * C >= kParallelGrain);
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& target,
                                        const Tensor& grad_losses, int64_t ignore_index,
                                        double label_smoothing, const Tensor& grad_logits) {
  visit_floating(logits.dtype(), "cross_entropy_backward", [&](auto zero) {
    using T = decltype(zero);
    const int64_t N = logits.shape()[0], C = logits.shape()[1];
    const T* x = static_cast<const T*>(logits.raw_data());
    const int64_t* t = static_cast<const int64_t*>(target.raw_data());
    const T* g = static_cast<const T*>(grad_losses.raw_data());
    T* gx = static_cast<T*>(grad_logits.raw_data());
    parallel_for(
        N, dynamic_chunk(N),
        [&](int64_t begin, int64_t end) {
          for (int64_t n = begin; n < end; ++n) {
            T* o = gx + n * C;
            if (t[n] == ignore_index) {
              for (int64_t c = 0; c < C; ++c) o[c] = 0;
              continue;
            }
            const T* row = x + n * C;
            T mx = row[0];
            for (int64_t c = 1; c < C; ++c) mx = row[c] > mx ? row[c] : mx;
            double se = 0;
            for (int64_t c = 0; c < C; ++c) se += std::exp((double)row[c] - mx);
            const double lse = mx + std::log(se);
            const double smooth = label_smoothing / C;
            for (int64_t c = 0; c < C; ++c)
              o[c] = (T)(g[n] * (std::exp(row[c] - lse) - smooth -
                                 (c == t[n] ? 1 - label_smoothing : 0.0)));
          }
        },
        N * C >= kParallelGrain);
  });
}

}  // namespace wavspa::cpu

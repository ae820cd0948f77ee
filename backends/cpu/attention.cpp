// Attention (AttentionArgs in backends/backend.h), the reference implementation: one query row
// at a time, with that row's scores and weights in per-thread scratch vectors of nk elements,
// so memory stays O(nk d) and no (nq, nk) matrix exists.
//
// Dot products and weighted sums run in the inputs' dtype, as the BLAS products of the
// materialised composite do, four keys at a time so that the loops over d have independent
// accumulators and vectorise; the softmax denominator is summed in double, and float32 rows
// take SLEEF's vectorised exp (vmath.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {
namespace {

// out[j] = scale * (x . row j) for j in [0, n); row j starts at rows + j * stride.
template <typename T>
void row_dots(const T* x, const T* rows, int64_t stride, int64_t n, int64_t d, T scale, T* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T *r0 = rows + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
    for (int64_t t = 0; t < d; ++t) {
      a0 += x[t] * r0[t];
      a1 += x[t] * r1[t];
      a2 += x[t] * r2[t];
      a3 += x[t] * r3[t];
    }
    out[j] = scale * a0;
    out[j + 1] = scale * a1;
    out[j + 2] = scale * a2;
    out[j + 3] = scale * a3;
  }
  for (; j < n; ++j) {
    const T* r = rows + j * stride;
    T a = 0;
#pragma omp simd reduction(+ : a)
    for (int64_t t = 0; t < d; ++t) a += x[t] * r[t];
    out[j] = scale * a;
  }
}

// acc += sum_j w[j] * row j, for j in [0, n); groups of four zero weights are skipped.
template <typename T>
void weighted_rows(const T* w, const T* rows, int64_t stride, int64_t n, int64_t d, T* acc) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T w0 = w[j], w1 = w[j + 1], w2 = w[j + 2], w3 = w[j + 3];
    if (w0 == 0 && w1 == 0 && w2 == 0 && w3 == 0) continue;
    const T *r0 = rows + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
#pragma omp simd
    for (int64_t t = 0; t < d; ++t) acc[t] += w0 * r0[t] + w1 * r1[t] + w2 * r2[t] + w3 * r3[t];
  }
  for (; j < n; ++j) {
    if (w[j] == 0) continue;
    const T* r = rows + j * stride;
    const T wj = w[j];
#pragma omp simd
    for (int64_t t = 0; t < d; ++t) acc[t] += wj * r[t];
  }
}

// y = exp(x - shift) over n elements (exp(-inf) = 0); returns sum(y) in double.
double exp_shifted(const float* x, float* y, int64_t n, float shift) {
  return vmath::exp_shifted_sum(x, y, n, shift);
}
double exp_shifted(const double* x, double* y, int64_t n, double shift) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (y[i] = std::exp(x[i] - shift));
  return sum;
}

// Element (b, h, i) of a (B, H, N, d) tensor whose first three dims may have any strides
// and whose last has stride 1.
template <typename T>
struct Rows {
  T* base;
  int64_t s0, s1, s2;
  explicit Rows(const Tensor& t)
      : base(static_cast<T*>(t.raw_data())), s0(t.strides()[0]), s1(t.strides()[1]), s2(t.strides()[2]) {}
  T* at(int64_t b, int64_t h, int64_t i) const { return base + b * s0 + h * s1 + i * s2; }
};

// What every row of one call shares: the masking rules and the dropout factors.
struct RowRules {
  const AttentionArgs& a;
  const int32_t* keep;              // (B, nk) or null
  std::vector<int64_t> first_kept;  // per batch: the first key with keep != 0 (nk if none)
  double drop_scale;                // 1 / (1 - p), or 0 when p == 1 (nothing is kept)

  RowRules(const AttentionArgs& args, const Tensor& key_keep)
      : a(args),
        keep(key_keep.defined() ? static_cast<const int32_t*>(key_keep.raw_data()) : nullptr),
        first_kept(args.batch, 0),
        drop_scale(args.dropout_p < 1 ? 1.0 / (1.0 - args.dropout_p) : 0.0) {
    if (args.dropout_p > 0) check_host_philox(args.philox);
    if (!keep) return;
    for (int64_t b = 0; b < a.batch; ++b) {
      int64_t j = 0;
      while (j < a.nk && keep[b * a.nk + j] == 0) ++j;
      first_kept[b] = j;
    }
  }
  // Keys at or past this index are masked for query i by causality (nk without it).
  int64_t key_end(int64_t i) const { return a.causal ? std::min(a.nk, i + 1) : a.nk; }
  // True when every key of row (b, i) is masked: the row then averages uniformly over all
  // nk keys (each score counts as 0), like the materialised softmax of a row of `lowest`s.
  bool all_masked(int64_t b, int64_t i) const { return first_kept[b] >= key_end(i); }
  // Sets s[j] = -inf for the padded keys j < n of batch b.
  template <typename T>
  void mask_keys(int64_t b, T* s, int64_t n) const {
    if (!keep) return;
    const int32_t* kb = keep + b * a.nk;
    for (int64_t j = 0; j < n; ++j)
      if (kb[j] == 0) s[j] = -std::numeric_limits<T>::infinity();
  }
  bool dropout() const { return a.dropout_p > 0; }
  // z[j] = the dropout factor of weight (bh, i, j), 1 / (1 - p) or 0, for j < n.
  template <typename T>
  void drop_factors(int64_t bh, int64_t i, T* z, int64_t n) const {
    for (int64_t j = 0; j < n; ++j) z[j] = attention_dropout_keep(a, bh, i, j) ? (T)drop_scale : T(0);
  }
};

}  // namespace

Tensor CpuBackend::attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                     const Tensor& lse) {
  visit_floating(q.dtype(), "attention", [&](auto zero) {
    using T = decltype(zero);
    const Rows<const T> Q(q), K(k), V(v);
    const Rows<T> O(out);
    T* plse = static_cast<T*>(lse.raw_data());
    const RowRules rules(a, key_keep);
    const int64_t H = a.heads, nq = a.nq, nk = a.nk, d = a.dim;
    const int64_t rows = a.batch * H * nq;
    const T scale = (T)a.scale;
    // Rows are ordered (b, h, i), so the rows of one thread mostly share their keys and values.
#pragma omp parallel if (rows > 1 && rows * std::max<int64_t>(nk, 1) * d >= kParallelGrain)
    {
      std::vector<T> s(nk), z(nk), acc(d);  // the row's scores, then weights; dropout factors; output
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t bh = r / nq, i = r % nq, b = bh / H, h = bh % H;
        const bool uniform = rules.all_masked(b, i);
        // Keys at or past `end` are masked by causality; a uniform row uses them all.
        const int64_t end = uniform ? nk : rules.key_end(i);
        T m = 0;
        if (uniform) {
          std::fill(s.begin(), s.end(), T(0));
        } else {
          row_dots(Q.at(b, h, i), K.at(b, h, 0), K.s2, end, d, scale, s.data());
          rules.mask_keys(b, s.data(), end);
          m = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < end; ++j) m = std::max(m, s[j]);  // finite: a key is kept
        }
        const double sum = exp_shifted(s.data(), s.data(), end, m);
        plse[r] = (T)(m + std::log(sum));
        const T inv = (T)(1.0 / sum);
        for (int64_t j = 0; j < end; ++j) s[j] *= inv;
        if (rules.dropout()) {  // after the normalisation: the denominator stays as it was
          rules.drop_factors(bh, i, z.data(), end);
          for (int64_t j = 0; j < end; ++j) s[j] *= z[j];
        }
        std::fill(acc.begin(), acc.end(), T(0));
        weighted_rows(s.data(), V.at(b, h, 0), V.s2, end, d, acc.data());
        std::copy(acc.begin(), acc.end(), O.at(b, h, i));
      }
    }
  });
  return Tensor();  // the backward draws the dropout mask again
}

void CpuBackend::attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                    const Tensor& lse, const Tensor& /*dropout_bits: never kept*/,
                                    const Tensor& grad_out, const Tensor& grad_q,
                                    const Tensor& grad_k, const Tensor& grad_v) {
  visit_floating(q.dtype(), "attention_backward", [&](auto zero) {
    using T = decltype(zero);
    const Rows<const T> Q(q), K(k), V(v), O(out), GO(grad_out);
    const Rows<T> GQ(grad_q), GK(grad_k), GV(grad_v);
    const T* plse = static_cast<const T*>(lse.raw_data());
    const RowRules rules(a, key_keep);
    const int64_t H = a.heads, nq = a.nq, nk = a.nk, d = a.dim;
    const int64_t bhs = a.batch * H;
    const T scale = (T)a.scale;
    // One (b, h) per task: its thread owns that head's grad_k and grad_v rows, so nothing is
    // shared, no atomics are needed and the sums run in the same order on any thread count.
#pragma omp parallel if (bhs > 1 && bhs * nq * std::max<int64_t>(nk, 1) * d >= kParallelGrain)
    {
      // p: the row's weights p_ij; z: their dropout factors drop_ij; w: p_ij drop_ij;
      // ds: p_ij (dP_ij - D_i); gk, gv: the head's unscaled grad_k and grad_v; gq: a grad_q row.
      std::vector<T> p(nk), z(nk), w(nk), ds(nk), gk(nk * d), gv(nk * d), gq(d);
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < bhs; ++bh) {
        const int64_t b = bh / H, h = bh % H;
        const T* k0 = K.at(b, h, 0);
        const T* v0 = V.at(b, h, 0);
        std::fill(gk.begin(), gk.end(), T(0));
        std::fill(gv.begin(), gv.end(), T(0));
        for (int64_t i = 0; i < nq; ++i) {
          const T* qi = Q.at(b, h, i);
          const T* goi = GO.at(b, h, i);
          // A uniform row's scores are constants (0): its weights 1 / nk reach v only.
          const bool uniform = rules.all_masked(b, i);
          const int64_t end = uniform ? nk : rules.key_end(i);
          if (uniform) {
            std::fill(p.begin(), p.end(), T(0));
          } else {
            row_dots(qi, k0, K.s2, end, d, scale, p.data());
            rules.mask_keys(b, p.data(), end);
          }
          exp_shifted(p.data(), p.data(), end, plse[bh * nq + i]);  // p = exp(s - lse)
          std::copy(p.begin(), p.begin() + end, w.begin());
          if (rules.dropout()) {
            rules.drop_factors(bh, i, z.data(), end);
            for (int64_t j = 0; j < end; ++j) w[j] *= z[j];
          }
          for (int64_t j = 0; j < end; ++j)  // grad_v_j += p_ij drop_ij dO_i
            if (w[j] != 0) {
              T* g = gv.data() + j * d;
              const T wj = w[j];
#pragma omp simd
              for (int64_t t = 0; t < d; ++t) g[t] += wj * goi[t];
            }
          T* gqi = GQ.at(b, h, i);
          if (uniform) {
            std::fill(gqi, gqi + d, T(0));
            continue;
          }
          // dP_ij = drop_ij dO_i . v_j (the dot first, into ds); D_i = sum_j p_ij dP_ij = dO_i . O_i
          row_dots(goi, v0, V.s2, end, d, T(1), ds.data());
          T D = 0;
          const T* oi = O.at(b, h, i);
#pragma omp simd reduction(+ : D)
          for (int64_t t = 0; t < d; ++t) D += goi[t] * oi[t];
          if (rules.dropout())
            for (int64_t j = 0; j < end; ++j) ds[j] = p[j] * (z[j] * ds[j] - D);
          else
            for (int64_t j = 0; j < end; ++j) ds[j] = p[j] * (ds[j] - D);
          std::fill(gq.begin(), gq.end(), T(0));
          weighted_rows(ds.data(), k0, K.s2, end, d, gq.data());  // grad_q_i = scale sum_j dS_ij k_j
          for (int64_t t = 0; t < d; ++t) gqi[t] = scale * gq[t];
          for (int64_t j = 0; j < end; ++j)  // grad_k_j += dS_ij q_i (scaled at the end)
            if (ds[j] != 0) {
              T* g = gk.data() + j * d;
              const T dj = ds[j];
#pragma omp simd
              for (int64_t t = 0; t < d; ++t) g[t] += dj * qi[t];
            }
        }
        for (int64_t j = 0; j < nk; ++j) {
          T* gkj = GK.at(b, h, j);
          T* gvj = GV.at(b, h, j);
          for (int64_t t = 0; t < d; ++t) {
            gkj[t] = scale * gk[j * d + t];
            gvj[t] = gv[j * d + t];
          }
        }
      }
    }
  });
}

}  // namespace wavspa::cpu

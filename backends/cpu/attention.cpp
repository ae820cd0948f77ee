// Attention (AttentionArgs in backends/backend.h) on the CPU, by tiles that stay in cache:
// kBlockQ query rows meet kBlockK keys at a time, so memory stays O(kBlockQ kBlockK + nk d)
// per thread and no (nq, nk) matrix exists.
//
// Forward, for each tile of query rows (one task; tasks run in parallel):
//   S = scale Q K_blk^T                 one product per key block (OpenBLAS, one thread)
//   masks, then the online softmax:     m = running row max, l = running sum of exp(S - m);
//                                       a new max rescales l and the output accumulator
//   acc += (exp(S - m) * dropout) V_blk the dropout factors multiply after the softmax, so l
//                                       never sees them
//   O = acc / l, lse = m + log l        the backward recomputes the weights from lse
// Backward, for each (b, h) (one task: its thread owns that head's grad_k and grad_v rows, so
// nothing is shared and the sums run in the same order on any thread count), tile by tile:
//   P = exp(S - lse), W = P * dropout; grad_v += W^T dO; dP = dO V^T * dropout;
//   dS = P (dP - D) with D_i = dO_i . O_i; grad_q += scale dS K; grad_k += scale dS^T Q.
// Tiles wholly above the causal diagonal are skipped. Products run in the inputs' dtype, the
// softmax sums in double, float32 exponentials through vmath.h.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/tile_gemm.h"
#include "backends/cpu/vmath.h"

namespace wavspa::cpu {
namespace {

constexpr int64_t kBlockQ = 64;   // query rows of a tile
constexpr int64_t kBlockK = 128;  // keys of a tile; a multiple of 8 (dropout's Philox blocks)
static_assert(kBlockK % 8 == 0);

// c = alpha op(a) op(b) + beta c, row-major, op = transpose where asked. Inside a parallel
// region OpenBLAS runs it on the calling thread.
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // no products: c = beta c (BLAS may not touch c at all)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const auto oa = ta ? CblasTrans : CblasNoTrans, ob = tb ? CblasTrans : CblasNoTrans;
  one_blas_thread_here();
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, oa, ob, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_dgemm(CblasRowMajor, oa, ob, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// c = alpha a b (accumulate false) or c += a b (accumulate true, alpha 1), with a's element
// (i, t) at a[i * a_row + t * a_col] (one of the strides 1: a or a transposed) and b row-major.
// float32 takes tile_gemm.h's kernel (no packing); float64 OpenBLAS.
void product(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row, int64_t a_col,
             const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  tile_gemm(m, n, k, a, a_row, a_col, b, ldb, c, ldc, alpha, accumulate);
}
void product(int64_t m, int64_t n, int64_t k, const double* a, int64_t a_row, int64_t a_col,
             const double* b, int64_t ldb, double* c, int64_t ldc, double alpha, bool accumulate) {
  // a is stored transposed (element (i, t) at a[t * a_col + i]) when a_col is not 1; a stride
  // along a length-1 side may be anything, and BLAS wants a leading dimension of at least
  // the row's length.
  const bool ta = a_col != 1;
  const int64_t lda = ta ? std::max(a_col, m) : std::max(a_row, k);
  gemm<double>(ta, false, m, n, k, alpha, a, lda, b, ldb, accumulate ? 1.0 : 0.0, c, ldc);
}

// dst (d x n, row-major) = the transpose of rows [0, n) of src (n x d, leading dimension ld).
// float32 goes by 8 x 8 blocks in registers (element by element, the strided stores made it
// a sixth of the forward's own time).
template <typename T>
void transpose_rows(const T* src, int64_t ld, int64_t n, int64_t d, T* dst) {
  int64_t j0 = 0, t0 = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; j0 + 8 <= n; j0 += 8)
      for (int64_t t = 0; t + 8 <= d; t += 8) vmath::transpose8x8(src + j0 * ld + t, ld, dst + t * n + j0, n);
    t0 = d - d % 8;  // the columns the blocks left, for the rows they did
  }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = j < j0 ? t0 : 0; t < d; ++t) dst[t * n + j] = src[j * ld + t];
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

// The largest of init and x[0, n), NaNs skipped (std::max(m, x) keeps m where x is NaN).
float row_max(const float* x, int64_t n, float init) { return vmath::max_or(x, n, init); }
double row_max(const double* x, int64_t n, double init) {
  for (int64_t i = 0; i < n; ++i) init = std::max(init, x[i]);
  return init;
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

// Rows [first, first + n) of one (b, h) as a matrix with leading dimension ld, as BLAS reads
// it: the tensor's own memory when its row stride allows (at least d), else a packed copy in
// `scratch` (a row stride below d comes from a broadcast, e.g. stride 0).
template <typename T>
struct Mat {
  const T* p;
  int64_t ld;
  const T* row(int64_t i) const { return p + i * ld; }
};
template <typename T>
Mat<T> rows_of(const Rows<const T>& t, int64_t b, int64_t h, int64_t first, int64_t n, int64_t d,
               std::vector<T>& scratch) {
  const T* p = t.at(b, h, first);
  if (t.s2 >= d || n <= 1) return {p, std::max<int64_t>({t.s2, d, 1})};
  scratch.resize(n * d);
  for (int64_t i = 0; i < n; ++i) std::copy(p + i * t.s2, p + i * t.s2 + d, scratch.data() + i * d);
  return {scratch.data(), d};
}

// What every tile of one call shares: the masking rules and the dropout factors.
struct Rules {
  const AttentionArgs& a;
  const int32_t* keep;              // (B, nk) or null
  std::vector<int64_t> first_kept;  // per batch: the first key with keep != 0 (nk if none)
  double drop_scale;                // 1 / (1 - p), or 0 when p == 1 (nothing is kept)
  uint32_t drop_threshold;          // attention_dropout_threshold(p)

  Rules(const AttentionArgs& args, const Tensor& key_keep)
      : a(args),
        keep(key_keep.defined() ? static_cast<const int32_t*>(key_keep.raw_data()) : nullptr),
        first_kept(args.batch, 0),
        drop_scale(args.dropout_p < 1 ? 1.0 / (1.0 - args.dropout_p) : 0.0),
        drop_threshold(attention_dropout_threshold(args.dropout_p)) {
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
  // The keys a tile of rows [i0, i0 + n) must visit: [0, this).
  int64_t keys_needed(int64_t b, int64_t i0, int64_t n) const {
    for (int64_t i = i0; i < i0 + n; ++i)
      if (all_masked(b, i)) return a.nk;  // a uniform row reads every key
    return key_end(i0 + n - 1);
  }
  // Row i's scores s[0, n) of keys [j0, j0 + n): 0 everywhere for a uniform row, else -inf
  // where a key is padded or past the causal end.
  template <typename T>
  void mask(int64_t b, int64_t i, int64_t j0, T* s, int64_t n) const {
    if (all_masked(b, i)) {
      std::fill(s, s + n, T(0));
      return;
    }
    const T ninf = -std::numeric_limits<T>::infinity();
    const int64_t end = std::clamp<int64_t>(key_end(i) - j0, 0, n);
    std::fill(s + end, s + n, ninf);
    if (!keep) return;
    const int32_t* kb = keep + b * a.nk + j0;
    for (int64_t j = 0; j < end; ++j)
      if (kb[j] == 0) s[j] = ninf;
  }
  bool dropout() const { return a.dropout_p > 0; }
  // z[0, n) = the dropout factors of weights (bh, i, j0 + j), 1 / (1 - p) or 0, as
  // attention_dropout_keep draws them: one Philox block serves 8 keys (j0 % 8 == 0), and
  // eight blocks are computed at once.
  template <typename T>
  void drop_factors(int64_t bh, int64_t i, int64_t j0, T* z, int64_t n) const {
    const uint64_t row = a.philox.offset + (uint64_t)(bh * a.nq + i) * (uint64_t)((a.nk + 7) / 8);
    float f[64];
    if constexpr (std::is_same_v<T, float>)
      if (n == 128 && vmath::use_avx512()) {  // a whole key tile: 16 blocks a vector
        vmath::avx512::dropout_factors128(row + (uint64_t)(j0 / 8), a.philox.seed, drop_threshold, (float)drop_scale, z);
        return;
      }
    for (int64_t j = 0; j < n; j += 64) {
      const int64_t e_end = std::min<int64_t>(64, n - j);
      if constexpr (std::is_same_v<T, float>)
        if (e_end == 64) {
          vmath::dropout_factors64(row + (uint64_t)((j0 + j) / 8), a.philox.seed, drop_threshold, (float)drop_scale,
                                   z + j);
          continue;
        }
      vmath::dropout_factors64(row + (uint64_t)((j0 + j) / 8), a.philox.seed, drop_threshold, 1.f, f);
      for (int64_t e = 0; e < e_end; ++e) z[j + e] = f[e] != 0 ? (T)drop_scale : T(0);
    }
  }
};

template <typename T>
void forward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
             const Tensor& key_keep, const Tensor& out, const Tensor& lse) {
  const Rows<const T> Q(q), K(k), V(v);
  const Rows<T> O(out);
  T* plse = static_cast<T*>(lse.raw_data());
  const Rules rules(a, key_keep);
  const int64_t H = a.heads, nq = a.nq, nk = a.nk, d = a.dim;
  const int64_t bhs = a.batch * H, tiles = (nq + kBlockQ - 1) / kBlockQ, tasks = bhs * tiles;
  const T scale = (T)a.scale, ninf = -std::numeric_limits<T>::infinity();
  // Tasks are tiles of query rows, ordered (b, h, tile): neighbours share their keys and
  // values. Taken one at a time, so a thread the OS stops does not hold up the others' share.
  parallel_for(
      tasks, 1,
      [&](int64_t t_begin, int64_t t_end) {
        // s: a tile's scores, then weights; z: one row's dropout factors; acc: the output rows;
        // m, l: the rows' running max and sum.
        // kt: K^T of head kt_bh, d x nk, kept while the thread's tasks stay on that head.
        std::vector<T> s(kBlockQ * kBlockK), z(kBlockK), acc(kBlockQ * d), m(kBlockQ), kt(d * nk), qs, ks, vs;
        std::vector<double> l(kBlockQ);
        int64_t kt_bh = -1;
        for (int64_t task = t_begin; task < t_end; ++task) {
          const int64_t bh = task / tiles, i0 = (task % tiles) * kBlockQ,
                        br = std::min(kBlockQ, nq - i0);
          const int64_t b = bh / H, h = bh % H;
          const Mat<T> Qm = rows_of(Q, b, h, i0, br, d, qs), Km = rows_of(K, b, h, 0, nk, d, ks),
                       Vm = rows_of(V, b, h, 0, nk, d, vs);
          if (kt_bh != bh) {
            transpose_rows(Km.p, Km.ld, nk, d, kt.data());
            kt_bh = bh;
          }
          std::fill(m.begin(), m.end(), ninf);
          std::fill(l.begin(), l.end(), 0.0);
          std::fill(acc.begin(), acc.end(), T(0));
          const int64_t kend = rules.keys_needed(b, i0, br);
          for (int64_t j0 = 0; j0 < kend; j0 += kBlockK) {
            const int64_t bc = std::min(kBlockK, kend - j0);
            product(br, bc, d, Qm.p, Qm.ld, 1, kt.data() + j0, nk, s.data(), bc, scale, false);
            for (int64_t r = 0; r < br; ++r) {
              const int64_t i = i0 + r;
              T* sr = s.data() + r * bc;
              rules.mask(b, i, j0, sr, bc);
              const T mx = row_max(sr, bc, m[r]);
              if (mx == ninf) {  // nothing visible to this row yet
                std::fill(sr, sr + bc, T(0));
                continue;
              }
              const double sum = exp_shifted(sr, sr, bc, mx);
              if (mx != m[r]) {  // a new maximum: rescale what was summed under the old one
                const T alpha = m[r] == ninf ? T(0) : std::exp(m[r] - mx);
                l[r] *= alpha;
                for (int64_t t = 0; t < d; ++t) acc[r * d + t] *= alpha;
                m[r] = mx;
              }
              l[r] += sum;
              if (rules.dropout()) {
                rules.drop_factors(bh, i, j0, z.data(), bc);
                for (int64_t j = 0; j < bc; ++j) sr[j] *= z[j];
              }
            }
            product(br, d, bc, s.data(), bc, 1, Vm.row(j0), Vm.ld, acc.data(), d, T(1), true);
          }
          for (int64_t r = 0; r < br; ++r) {
            const int64_t i = i0 + r;
            const T inv = l[r] > 0 ? (T)(1.0 / l[r]) : T(0);  // l = 0 only without keys (nk = 0)
            T* o = O.at(b, h, i);
            for (int64_t t = 0; t < d; ++t) o[t] = acc[r * d + t] * inv;
            plse[bh * nq + i] = (T)(m[r] + std::log(l[r]));
          }
        }
      },
      tasks > 1 && bhs * nq * std::max<int64_t>(nk, 1) * d >= kParallelGrain);
}

template <typename T>
void backward(const AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
              const Tensor& key_keep, const Tensor& out, const Tensor& lse, const Tensor& grad_out,
              const Tensor& grad_q, const Tensor& grad_k, const Tensor& grad_v) {
  const Rows<const T> Q(q), K(k), V(v), O(out), GO(grad_out);
  const Rows<T> GQ(grad_q), GK(grad_k), GV(grad_v);
  const T* plse = static_cast<const T*>(lse.raw_data());
  const Rules rules(a, key_keep);
  const int64_t H = a.heads, nq = a.nq, nk = a.nk, d = a.dim;
  const int64_t bhs = a.batch * H;
  const T scale = (T)a.scale;
  parallel_for(
      bhs, 1,
      [&](int64_t t_begin, int64_t t_end) {
        // p: a tile's weights P; z: their dropout factors; w: P * dropout; ds: dP, then dS;
        // D: dO_i . O_i per row; gq: the tile's grad_q rows; gk, gv: the head's unscaled grad_k
        // and grad_v.
        std::vector<T> p(kBlockQ * kBlockK), z(kBlockQ * kBlockK), w(kBlockQ * kBlockK),
            ds(kBlockQ * kBlockK), D(kBlockQ), gq(kBlockQ * d), gk(nk * d), gv(nk * d), kt(d * nk),
            vt(d * nk), qs, ks, vs, gos;
        for (int64_t bh = t_begin; bh < t_end; ++bh) {
          const int64_t b = bh / H, h = bh % H;
          const Mat<T> Km = rows_of(K, b, h, 0, nk, d, ks), Vm = rows_of(V, b, h, 0, nk, d, vs);
          transpose_rows(Km.p, Km.ld, nk, d, kt.data());
          transpose_rows(Vm.p, Vm.ld, nk, d, vt.data());
          std::fill(gk.begin(), gk.end(), T(0));
          std::fill(gv.begin(), gv.end(), T(0));
          for (int64_t i0 = 0; i0 < nq; i0 += kBlockQ) {
            const int64_t br = std::min(kBlockQ, nq - i0);
            const Mat<T> Qm = rows_of(Q, b, h, i0, br, d, qs),
                         GOm = rows_of(GO, b, h, i0, br, d, gos);
            for (int64_t r = 0; r < br; ++r) {
              const T *go = GOm.row(r), *o = O.at(b, h, i0 + r);
              T dot = 0;
              for (int64_t t = 0; t < d; ++t) dot += go[t] * o[t];
              D[r] = dot;
            }
            std::fill(gq.begin(), gq.end(), T(0));
            const int64_t kend = rules.keys_needed(b, i0, br);
            for (int64_t j0 = 0; j0 < kend; j0 += kBlockK) {
              const int64_t bc = std::min(kBlockK, kend - j0);
              product(br, bc, d, Qm.p, Qm.ld, 1, kt.data() + j0, nk, p.data(), bc, scale, false);
              for (int64_t r = 0; r < br; ++r) {
                const int64_t i = i0 + r;
                T* pr = p.data() + r * bc;
                rules.mask(b, i, j0, pr, bc);
                exp_shifted(pr, pr, bc, plse[bh * nq + i]);  // P = exp(S - lse)
                if (rules.dropout()) {
                  T *zr = z.data() + r * bc, *wr = w.data() + r * bc;
                  rules.drop_factors(bh, i, j0, zr, bc);
                  for (int64_t j = 0; j < bc; ++j) wr[j] = pr[j] * zr[j];
                }
              }
              const T* wt = rules.dropout() ? w.data() : p.data();
              // grad_v_j += sum_i W_ij dO_i
              product(bc, d, br, wt, 1, bc, GOm.p, GOm.ld, gv.data() + j0 * d, d, T(1), true);
              // dP_ij = dropout_ij dO_i . v_j, then dS_ij = P_ij (dP_ij - D_i); a uniform row's
              // scores are constants: its dS is 0.
              product(br, bc, d, GOm.p, GOm.ld, 1, vt.data() + j0, nk, ds.data(), bc, T(1), false);
              for (int64_t r = 0; r < br; ++r) {
                T* dr = ds.data() + r * bc;
                const T* pr = p.data() + r * bc;
                if (rules.all_masked(b, i0 + r)) {
                  std::fill(dr, dr + bc, T(0));
                } else if (rules.dropout()) {
                  const T* zr = z.data() + r * bc;
                  for (int64_t j = 0; j < bc; ++j) dr[j] = pr[j] * (zr[j] * dr[j] - D[r]);
                } else {
                  for (int64_t j = 0; j < bc; ++j) dr[j] = pr[j] * (dr[j] - D[r]);
                }
              }
              product(br, d, bc, ds.data(), bc, 1, Km.row(j0), Km.ld, gq.data(), d, T(1), true);
              product(bc, d, br, ds.data(), 1, bc, Qm.p, Qm.ld, gk.data() + j0 * d, d, T(1), true);
            }
            for (int64_t r = 0; r < br; ++r) {
              T* g = GQ.at(b, h, i0 + r);
              for (int64_t t = 0; t < d; ++t) g[t] = scale * gq[r * d + t];
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
      },
      bhs > 1 && bhs * nq * std::max<int64_t>(nk, 1) * d >= kParallelGrain);
}

}  // namespace

Tensor CpuBackend::attention_forward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                     const Tensor& lse) {
  visit_floating(q.dtype(), "attention", [&](auto zero) {
    forward<decltype(zero)>(a, q, k, v, key_keep, out, lse);
  });
  return Tensor();  // the backward draws the dropout mask again
}

void CpuBackend::attention_backward(const AttentionArgs& a, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& key_keep, const Tensor& out,
                                    const Tensor& lse, const Tensor& /*dropout_bits: never kept*/,
                                    const Tensor& grad_out, const Tensor& grad_q,
                                    const Tensor& grad_k, const Tensor& grad_v) {
  visit_floating(q.dtype(), "attention_backward", [&](auto zero) {
    backward<decltype(zero)>(a, q, k, v, key_keep, out, lse, grad_out, grad_q, grad_k, grad_v);
  });
}

}  // namespace wavspa::cpu

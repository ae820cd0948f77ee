#include "nn/attention_variants.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/nn.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace wavspa::nn {

namespace {

// The checks every constructor shares; returns qkv_dim with its default (dim) applied.
int64_t resolve_qkv_dim(const char* who, int64_t dim, int64_t heads, int64_t qkv_dim) {
  WAVSPA_CHECK(dim > 0, who, ": dim must be positive, got ", dim);
  const int64_t resolved = qkv_dim < 0 ? dim : qkv_dim;
  WAVSPA_CHECK(heads > 0 && resolved > 0 && resolved % heads == 0, who, ": qkv_dim ", resolved,
               " must be a positive multiple of the number of heads ", heads);
  return resolved;
}

struct HeadSplit {
  Tensor q, k, v;  // (B, H, N, dh) each
  int64_t B, N;
};

HeadSplit project_heads(const char* who, Linear& qkv, const Tensor& x, int64_t dim, int64_t heads,
                        int64_t qkv_dim) {
  WAVSPA_CHECK(x.defined() && x.dim() == 3 && x.shape()[2] == dim, who,
               ": expected x of shape (B, N, ", dim, "), got ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  const int64_t B = x.shape()[0], N = x.shape()[1], dh = qkv_dim / heads;
  auto parts = chunk(qkv.forward(x), 3, -1);  // 3 x (B, N, qkv_dim)
  auto split = [&](const Tensor& t) { return t.reshape({B, N, heads, dh}).permute({0, 2, 1, 3}); };
  return HeadSplit{split(parts[0]), split(parts[1]), split(parts[2]), B, N};
}

// key_mask (B, N), any dtype, nonzero = real token -> 1/0 in x's dtype, shaped `shape`
// (which must hold B * N elements, e.g. (B, 1, N, 1) to scale key rows).
Tensor mask_as(const char* who, const Tensor& key_mask, int64_t B, int64_t N, const Tensor& like,
               const Shape& shape) {
  WAVSPA_CHECK(key_mask.shape() == Shape({B, N}), who, ": key_mask must be (B, N) = ",
               shape_str({B, N}), ", got ", shape_str(key_mask.shape()));
  return ne(key_mask.to(like.device()), 0).to(like.dtype()).reshape(shape);
}

// (B, H, N, dh) -> (B, N, qkv_dim), the layout the output projection reads.
Tensor merge_heads(const Tensor& y, int64_t B, int64_t N, int64_t qkv_dim) {
  return y.permute({0, 2, 1, 3}).reshape({B, N, qkv_dim});
}

// num / den, except where den == 0 (a query that saw no key; its num is 0 too): there 0.
// Features are non-negative, so den > 0 whenever any key was visible.
Tensor safe_divide(const Tensor& num, const Tensor& den) {
  Tensor has_keys = gt(den, scalar_tensor(0, den.dtype(), den.device()));
  return div(num, where(has_keys, den, ones_like(den)));
}

}  // namespace

// ---- the shared O(N) core ---------------------------------------------------------------

Tensor linear_attention(const Tensor& phi_q, const Tensor& phi_k, const Tensor& v, bool causal,
                        int64_t chunk_size) {
  WAVSPA_CHECK(phi_q.defined() && phi_k.defined() && v.defined() && phi_q.dim() >= 2 &&
                   phi_q.shape() == phi_k.shape() && v.dim() == phi_q.dim(),
               "linear_attention: expected phi_q, phi_k (..., N, m) of one shape and v "
               "(..., N, dv), got ",
               phi_q.defined() ? shape_str(phi_q.shape()) : "undefined", ", ",
               phi_k.defined() ? shape_str(phi_k.shape()) : "undefined", ", ",
               v.defined() ? shape_str(v.shape()) : "undefined");
  const int64_t seq_dim = phi_q.dim() - 2;
  const Shape batch_q(phi_q.shape().begin(), phi_q.shape().end() - 1);  // (..., N)
  const Shape batch_v(v.shape().begin(), v.shape().end() - 1);
  WAVSPA_CHECK(batch_q == batch_v, "linear_attention: v ", shape_str(v.shape()),
               " must match the features ", shape_str(phi_q.shape()), " in every dim but the last");
  WAVSPA_CHECK(chunk_size > 0, "linear_attention: chunk_size must be positive, got ", chunk_size);
  const int64_t N = phi_q.shape()[seq_dim];

  if (!causal || N == 0) {
    Tensor kv = matmul(phi_k.transpose(-2, -1), v);   // (..., m, dv)
    Tensor k_sum = sum(phi_k, {seq_dim}, true);        // (..., 1, m)
    Tensor num = matmul(phi_q, kv);                    // (..., N, dv)
    Tensor den = matmul(phi_q, k_sum.transpose(-2, -1));  // (..., N, 1)
    return safe_divide(num, den);
  }

  // Causal: within a chunk the (L, L) lower triangle is explicit; the chunks before it are
  // summarised by the running state, so memory stays O(N (L + m dv / L)) instead of O(N^2).
  Tensor state_kv, state_k;  // (..., m, dv) and (..., 1, m): sums over the previous chunks
  std::vector<Tensor> outs;
  for (int64_t start = 0; start < N; start += chunk_size) {
    const int64_t len = std::min(chunk_size, N - start);
    Tensor qc = phi_q.narrow(seq_dim, start, len);  // (..., L, m)
    Tensor kc = phi_k.narrow(seq_dim, start, len);  // (..., L, m)
    Tensor vc = v.narrow(seq_dim, start, len);      // (..., L, dv)
    Tensor a = mul(matmul(qc, kc.transpose(-2, -1)),
                   causal_mask(len, phi_q.dtype(), phi_q.device()));  // (..., L, L)
    Tensor num = matmul(a, vc);                 // (..., L, dv)
    Tensor den = sum(a, {seq_dim + 1}, true);   // (..., L, 1)
    if (state_kv.defined()) {
      num = add(num, matmul(qc, state_kv));
      den = add(den, matmul(qc, state_k.transpose(-2, -1)));
    }
    outs.push_back(safe_divide(num, den));
    if (start + len < N) {
      Tensor kv = matmul(kc.transpose(-2, -1), vc);
      Tensor ks = sum(kc, {seq_dim}, true);
      state_kv = state_kv.defined() ? add(state_kv, kv) : kv;
      state_k = state_k.defined() ? add(state_k, ks) : ks;
    }
  }
  return outs.size() == 1 ? outs[0] : concat(outs, seq_dim);
}

// ---- LinearAttention --------------------------------------------------------------------

LinearAttention::LinearAttention(int64_t d, int64_t h, int64_t qkv_d, bool bias, int64_t out_d,
                                 int64_t chunk)
    : SelfAttention("LinearAttention"),
      dim(d),
      heads(h),
      qkv_dim(resolve_qkv_dim("LinearAttention", d, h, qkv_d)),
      out_dim(out_d < 0 ? d : out_d),
      chunk_size(chunk) {
  WAVSPA_CHECK(chunk > 0, "LinearAttention: chunk_size must be positive, got ", chunk);
  qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * qkv_dim, bias));
  out = register_module("out", std::make_shared<Linear>(qkv_dim, out_dim, bias));
}

Tensor LinearAttention::forward(const Tensor& x, const Tensor& key_mask, bool causal) {
  HeadSplit s = project_heads("LinearAttention", *qkv, x, dim, heads, qkv_dim);
  Tensor phi_q = add(elu(s.q), 1.0);  // (B, H, N, dh)
  Tensor phi_k = add(elu(s.k), 1.0);
  if (key_mask.defined())
    phi_k = mul(phi_k, mask_as("LinearAttention", key_mask, s.B, s.N, x, {s.B, 1, s.N, 1}));
  Tensor y = linear_attention(phi_q, phi_k, s.v, causal, chunk_size);
  return out->forward(merge_heads(y, s.B, s.N, qkv_dim));
}

std::string LinearAttention::extra_repr() const {
  return str("dim=", dim, ", heads=", heads, ", qkv_dim=", qkv_dim, ", out_dim=", out_dim,
             ", feature_map=elu+1, chunk_size=", chunk_size);
}

// ---- PerformerAttention -----------------------------------------------------------------

Tensor PerformerAttention::orthogonal_random_features(int64_t m, int64_t d, uint64_t seed) {
  WAVSPA_CHECK(m > 0 && d > 0, "PerformerAttention: num_features and head dim must be positive, got ",
               m, " and ", d);
  Generator gen(seed);
  std::vector<double> w(m * d);
  for (int64_t block = 0; block * d < m; ++block) {
    std::vector<double> g = randn({d, d}, kFloat64, Device::cpu(), &gen).to_vector<double>();
    // Modified Gram-Schmidt on the rows, two passes: one pass loses orthogonality in
    // rounding when rows are nearly dependent; the second restores it ("twice is enough").
    for (int64_t r = 0; r < d; ++r) {
      double* row = &g[r * d];
      for (int pass = 0; pass < 2; ++pass) {
        for (int64_t p = 0; p < r; ++p) {
          const double* prev = &g[p * d];
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += row[c] * prev[c];
          for (int64_t c = 0; c < d; ++c) row[c] -= dot * prev[c];
        }
      }
      double norm = 0;
      for (int64_t c = 0; c < d; ++c) norm += row[c] * row[c];
      norm = std::sqrt(norm);
      for (int64_t c = 0; c < d; ++c) row[c] /= norm;
    }
    const int64_t rows = std::min(d, m - block * d);
    std::copy(g.begin(), g.begin() + rows * d, w.begin() + block * d * d);
  }
  // Orthonormal rows have norm 1, Gaussian rows norm ~ chi(d): rescaling restores the
  // marginal distribution the unbiasedness of the estimator relies on.
  std::vector<double> g = randn({m, d}, kFloat64, Device::cpu(), &gen).to_vector<double>();
  for (int64_t r = 0; r < m; ++r) {
    double norm = 0;
    for (int64_t c = 0; c < d; ++c) norm += g[r * d + c] * g[r * d + c];
    norm = std::sqrt(norm);
    for (int64_t c = 0; c < d; ++c) w[r * d + c] *= norm;
  }
  return from_vector(w, {m, d});
}

PerformerAttention::PerformerAttention(int64_t d, int64_t h, int64_t qkv_d, int64_t m, uint64_t sd,
                                       bool bias, int64_t out_d, int64_t chunk)
    : SelfAttention("PerformerAttention"),
      dim(d),
      heads(h),
      qkv_dim(resolve_qkv_dim("PerformerAttention", d, h, qkv_d)),
      out_dim(out_d < 0 ? d : out_d),
      num_features(m),
      chunk_size(chunk),
      seed(sd) {
  WAVSPA_CHECK(m > 0, "PerformerAttention: num_features must be positive, got ", m);
  WAVSPA_CHECK(chunk > 0, "PerformerAttention: chunk_size must be positive, got ", chunk);
  qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * qkv_dim, bias));
  out = register_module("out", std::make_shared<Linear>(qkv_dim, out_dim, bias));
  register_buffer("projection", &projection,
                  orthogonal_random_features(m, qkv_dim / heads, seed).to(kFloat32));
}

void PerformerAttention::redraw_features(uint64_t new_seed) {
  NoGradGuard no_grad;
  Tensor fresh = orthogonal_random_features(num_features, qkv_dim / heads, new_seed);
  projection.copy_(fresh.to(projection.device()));  // copy_ converts the dtype
  seed = new_seed;
}

Tensor PerformerAttention::feature_map(const Tensor& x, bool is_query) const {
  const int64_t dh = x.shape().back();
  Tensor xs = mul(x, std::pow((double)dh, -0.25));           // x' (B, H, N, dh)
  Tensor proj = matmul(xs, projection.transpose(0, 1));      // (B, H, N, m)
  Tensor logits = sub(proj, mul(sum(mul(xs, xs), {-1}, true), 0.5));
  // The shift cancels between numerator and denominator of linear_attention; it only
  // keeps the largest feature at exp(0).
  Tensor shift = is_query ? max(logits, {-1}, true) : max(logits, {-2, -1}, true);
  return mul(exp(sub(logits, shift)), 1.0 / std::sqrt((double)num_features));
}

Tensor PerformerAttention::forward(const Tensor& x, const Tensor& key_mask, bool causal) {
  HeadSplit s = project_heads("PerformerAttention", *qkv, x, dim, heads, qkv_dim);
  Tensor phi_q = feature_map(s.q, true);   // (B, H, N, m)
  Tensor phi_k = feature_map(s.k, false);
  if (key_mask.defined())
    phi_k = mul(phi_k, mask_as("PerformerAttention", key_mask, s.B, s.N, x, {s.B, 1, s.N, 1}));
  Tensor y = linear_attention(phi_q, phi_k, s.v, causal, chunk_size);
  return out->forward(merge_heads(y, s.B, s.N, qkv_dim));
}

std::string PerformerAttention::extra_repr() const {
  return str("dim=", dim, ", heads=", heads, ", qkv_dim=", qkv_dim, ", out_dim=", out_dim,
             ", num_features=", num_features, ", seed=", seed, ", chunk_size=", chunk_size);
}

// ---- LinformerAttention -----------------------------------------------------------------

LinformerAttention::LinformerAttention(int64_t d, int64_t h, int64_t len, int64_t kk,
                                       int64_t qkv_d, bool share, double p, bool bias,
                                       int64_t out_d)
    : SelfAttention("LinformerAttention"),
      dim(d),
      heads(h),
      qkv_dim(resolve_qkv_dim("LinformerAttention", d, h, qkv_d)),
      out_dim(out_d < 0 ? d : out_d),
      max_len(len),
      k(kk),
      share_kv(share),
      attn_dropout(p) {
  WAVSPA_CHECK(len > 0 && kk > 0, "LinformerAttention: max_len and k must be positive, got max_len ",
               len, ", k ", kk);
  WAVSPA_CHECK(p >= 0 && p <= 1, "LinformerAttention: attn_dropout must be in [0, 1], got ", p);
  qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * qkv_dim, bias));
  out = register_module("out", std::make_shared<Linear>(qkv_dim, out_dim, bias));
  const double bound = 1.0 / std::sqrt((double)max_len);
  register_parameter("E", &E, uniform({k, max_len}, -bound, bound));
  if (!share_kv) register_parameter("F", &F, uniform({k, max_len}, -bound, bound));
}

Tensor LinformerAttention::forward(const Tensor& x, const Tensor& key_mask, bool causal) {
  WAVSPA_CHECK(!causal, "LinformerAttention: causal attention is not supported, since every "
               "projected key mixes the whole sequence; use LinearAttention, PerformerAttention "
               "or LocalAttention for causal models");
  HeadSplit s = project_heads("LinformerAttention", *qkv, x, dim, heads, qkv_dim);
  WAVSPA_CHECK(s.N <= max_len, "LinformerAttention: sequence length ", s.N,
               " exceeds max_len ", max_len, " (E and F have max_len columns)");
  Tensor kh = s.k, vh = s.v;  // (B, H, N, dh)
  if (key_mask.defined()) {
    Tensor keep = mask_as("LinformerAttention", key_mask, s.B, s.N, x, {s.B, 1, s.N, 1});
    kh = mul(kh, keep);
    vh = mul(vh, keep);
  }
  Tensor e = E.narrow(1, 0, s.N);                         // (k, N)
  Tensor f = share_kv ? e : F.narrow(1, 0, s.N);
  Tensor k_proj = matmul(e, kh);                          // (B, H, k, dh)
  Tensor v_proj = matmul(f, vh);
  const double scale = 1.0 / std::sqrt((double)(qkv_dim / heads));
  Tensor scores = mul(matmul(s.q, k_proj.transpose(-2, -1)), scale);  // (B, H, N, k)
  Tensor weights = dropout(softmax(scores, -1), attn_dropout, is_training());
  Tensor y = matmul(weights, v_proj);                     // (B, H, N, dh)
  return out->forward(merge_heads(y, s.B, s.N, qkv_dim));
}

std::string LinformerAttention::extra_repr() const {
  return str("dim=", dim, ", heads=", heads, ", qkv_dim=", qkv_dim, ", out_dim=", out_dim,
             ", max_len=", max_len, ", k=", k, share_kv ? ", shared E=F" : ", separate E, F",
             ", dropout=", attn_dropout);
}

// ---- LocalAttention ---------------------------------------------------------------------

LocalAttention::LocalAttention(int64_t d, int64_t h, int64_t w, int64_t g, int64_t qkv_d, double p,
                               bool bias, int64_t out_d)
    : SelfAttention("LocalAttention"),
      dim(d),
      heads(h),
      qkv_dim(resolve_qkv_dim("LocalAttention", d, h, qkv_d)),
      out_dim(out_d < 0 ? d : out_d),
      window(w),
      num_global(g),
      attn_dropout(p) {
  WAVSPA_CHECK(w >= 0 && g >= 0, "LocalAttention: window and num_global must be >= 0, got window ",
               w, ", num_global ", g);
  WAVSPA_CHECK(p >= 0 && p <= 1, "LocalAttention: attn_dropout must be in [0, 1], got ", p);
  qkv = register_module("qkv", std::make_shared<Linear>(dim, 3 * qkv_dim, bias));
  out = register_module("out", std::make_shared<Linear>(qkv_dim, out_dim, bias));
}

Tensor LocalAttention::keep_mask(int64_t n, DType dtype, Device device) const {
  std::vector<double> m(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const bool near = std::abs(i - j) <= window;
      const bool global = i < num_global || j < num_global;
      m[i * n + j] = near || global ? 1.0 : 0.0;
    }
  return from_vector(m, {n, n}).to(dtype).to(device);
}

Tensor LocalAttention::forward(const Tensor& x, const Tensor& key_mask, bool causal) {
  HeadSplit s = project_heads("LocalAttention", *qkv, x, dim, heads, qkv_dim);
  // O(N^2) memory: the full score matrix is computed and then masked (see the header).
  Tensor keep = keep_mask(s.N, x.dtype(), x.device());  // (N, N), broadcasts to (B, H, N, N)
  if (key_mask.defined())
    keep = mul(keep, mask_as("LocalAttention", key_mask, s.B, s.N, x, {s.B, 1, 1, s.N}));
  if (causal) keep = mul(keep, causal_mask(s.N, x.dtype(), x.device()));
  Tensor y = scaled_dot_product_attention(s.q, s.k, s.v, keep, attn_dropout, is_training());
  return out->forward(merge_heads(y, s.B, s.N, qkv_dim));
}

std::string LocalAttention::extra_repr() const {
  return str("dim=", dim, ", heads=", heads, ", qkv_dim=", qkv_dim, ", out_dim=", out_dim,
             ", window=", window, ", num_global=", num_global, ", dropout=", attn_dropout);
}

}  // namespace wavspa::nn

// Op table entries of ops/reduce.h, ops/linalg.h, ops/nn.h and ops/attention.h.
#include "tests/ops/op_table.h"

namespace wavspa::test {

namespace {

const char* kReduceValues = "reductions match loops, in every memory layout";
const char* kNnValues = "softmax, log_softmax, layer_norm against formulas";

// Reductions of `f(x, dims, keepdim)` over several dim sets and layouts; `all` is the
// whole-tensor overload, if there is one.
std::vector<Sample> reduce_samples(const std::function<Tensor(const Tensor&, const std::vector<int64_t>&, bool)>& f,
                                   const std::function<Tensor(const Tensor&)>& all) {
  Sizes size;
  const int64_t a = size(2, 4), b = size(2, 4), c = size(2, 3);
  std::vector<Sample> s = {
      {"dims {0, 2}",
       [f](const In& x) {
         return f(x[0], {0, 2}, false);
       },
       {rn({a, b, c})}},
      {"dim -1 of a transpose, keepdim",
       [f](const In& x) { return f(x[0].transpose(0, 1), {-1}, true); },
       {rn({a, b, c})}},
      {"dims {0, 1} of a strided slice, keepdim",
       [f](const In& x) {
         return f(x[0].slice(0, 0, 4, 2), {0, 1}, true);
       },
       {rn({4, b, c})}},
      {"leading dim of a column-major view", [f](const In& x) { return f(x[0].t(), {1}, false); }, {rn({5, 3})}},
      {"dim 1 of a long row", [f](const In& x) { return f(x[0], {1}, false); }, {rn({2, 37})}},
  };
  if (all) s.push_back({"all elements", [all](const In& x) { return all(x[0]); }, {rn({a, b})}});
  return s;
}

}  // namespace

void add_reduce_linalg_nn_ops(std::vector<OpInfo>& t) {
  // ---- reductions ----
  t.push_back(entry("sum", "ops/reduce.h",
                    "`SumBackward`: `g` reshaped with the reduced dims kept, then `expand`ed to x's shape (a stride-0 "
                    "view, no copy)",
                    kReduceValues, [] {
                      auto s = reduce_samples(
                          [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return sum(x, d, k); },
                          [](const Tensor& x) { return sum(x); });
                      s.push_back({"zero-size dim", [](const In& x) { return sum(x[0], {0}); }, {rn({0, 3})}});
                      return s;
                    }));
  t.back().ints = Ints::Exact;  // an integer sum is an exact int64 sum
  t.push_back(entry(
      "mean", "ops/reduce.h", "`MeanBackward`: `g / count`, reshaped and `expand`ed as for `sum`", kReduceValues, [] {
        return reduce_samples([](const Tensor& x, const std::vector<int64_t>& d, bool k) { return mean(x, d, k); },
                              [](const Tensor& x) { return mean(x); });
      }));
  t.back().ints = Ints::Skip;  // the mean of integers is float32 (tests/ops/test_dtypes.cpp checks it)
  t.push_back(
      entry("max", "ops/reduce.h", "`MaxBackward`: `eq(x, out)` marks the maxima; `g` is split evenly among exact ties",
            kReduceValues, [] {
              return reduce_samples([](const Tensor& x, const std::vector<int64_t>& d, bool k) { return max(x, d, k); },
                                    [](const Tensor& x) { return max(x); });
            }));
  t.back().ints = Ints::Exact;
  t.push_back(entry("min", "ops/reduce.h", "`MinBackward`: as `max`", kReduceValues, [] {
    return reduce_samples([](const Tensor& x, const std::vector<int64_t>& d, bool k) { return min(x, d, k); },
                          [](const Tensor& x) { return min(x); });
  }));
  t.back().ints = Ints::Exact;
  t.push_back(entry("var", "ops/reduce.h", "composite: `sub`, `mean`, `mul`, `sum`, `div`", kReduceValues, [] {
    auto s =
        reduce_samples([](const Tensor& x, const std::vector<int64_t>& d, bool k) { return var(x, d, 1, k); }, nullptr);
    s.push_back({"correction 0, keepdim", [](const In& x) { return var(x[0], {1}, 0, true); }, {rn({3, 4})}});
    return s;
  }));
  t.push_back(entry("logsumexp", "ops/reduce.h",
                    "composite: `add(log(sum(exp(sub(x, shift)))), shift)`; the shift (the max) is a constant "
                    "computed under `NoGradGuard`",
                    kReduceValues, [] {
                      return reduce_samples(
                          [](const Tensor& x, const std::vector<int64_t>& d, bool k) { return logsumexp(x, d, k); },
                          nullptr);
                    }));
  for (const char* name : {"argmax", "argmin"}) {
    const bool is_max = std::string(name) == "argmax";
    t.push_back(entry(name, "ops/reduce.h", "no gradient (int64 output)", kReduceValues, [is_max] {
      std::vector<Sample> s = {
          {"dim 1, keepdim",
           [is_max](const In& x) { return is_max ? argmax(x[0], 1, true) : argmin(x[0], 1, true); },
           {rn({3, 5})}},
          {"dim 0 of a transpose",
           [is_max](const In& x) { return is_max ? argmax(x[0].t(), 0) : argmin(x[0].t(), 0); },
           {rn({3, 5})}},
      };
      if (is_max) s.push_back({"flattened", [](const In& x) { return argmax(x[0]); }, {rn({4, 3})}});
      return s;
    }));
    t.back().differentiable = false;
    t.back().ints = Ints::Exact;
  }
  // any / all: a bool out, no gradient; a non-bool input counts as `x != 0`. Integer-valued
  // inputs with zeros among them, so that both answers occur.
  for (const char* name : {"any", "all"}) {
    const bool is_any = std::string(name) == "any";
    t.push_back(entry(name, "ops/reduce.h", "no gradient (a bool tensor)", "dtypes: integer and bool reductions are exact",
                      [is_any] {
                        auto tied = [](const Shape& s) { return ints(s, 0, 2).to(kFloat64); };
                        return std::vector<Sample>{
                            {"dim 1 of a transpose, keepdim",
                             [is_any](const In& x) { return is_any ? any(x[0].t(), 1, true) : all(x[0].t(), 1, true); },
                             {tied({5, 3})}},
                            {"of a comparison, dim 0",
                             [is_any](const In& x) { return is_any ? any(gt(x[0], 0.0), 0) : all(gt(x[0], 0.0), 0); },
                             {tied({3, 4})}},
                            {"whole tensor", [is_any](const In& x) { return is_any ? any(x[0]) : all(x[0]); },
                             {tied({2, 3})}},
                        };
                      }));
    t.back().differentiable = false;
    t.back().ints = Ints::Exact;
  }

  // ---- linear algebra ----
  t.push_back(entry(
      "matmul", "ops/linalg.h",
      "`MatmulBackward`: `sum_to(matmul(g, b^T), a)` and `sum_to(matmul(a^T, g), b)`; a 2-D `b` under a batched `a` "
      "gets one GEMM over the flattened rows; a 1-D operand goes through `unsqueeze` / `squeeze`",
      "matmul equals the naive product in every layout and dtype", [] {
        Sizes size;
        const int64_t m = size(1, 4), k = size(1, 4), n = size(1, 4), b = size(2, 3);
        auto mm = [](const In& x) { return matmul(x[0], x[1]); };
        return std::vector<Sample>{
            {"(m, k) @ (k, n)", mm, {rn({m, k}), rn({k, n})}},
            {"both transposed", [](const In& x) { return matmul(x[0].t(), x[1].t()); }, {rn({k, m}), rn({n, k})}},
            {"batched @ 2-D", mm, {rn({b, m, k}), rn({k, n})}},
            {"2-D @ batched", mm, {rn({m, k}), rn({b, k, n})}},
            {"broadcast batch dims", mm, {rn({b, 1, m, k}), rn({2, k, n})}},
            {"batched @ batched transpose",
             [](const In& x) { return matmul(x[0], x[1].transpose(-1, -2)); },
             {rn({b, m, k}), rn({b, n, k})}},
            {"1-D @ batched", mm, {rn({k}), rn({b, k, n})}},
            {"batched @ 1-D", mm, {rn({b, m, k}), rn({k})}},
            {"1-D @ 1-D", mm, {rn({k}), rn({k})}},
            {"strided-slice left operand",
             [k](const In& x) { return matmul(x[0].slice(1, 0, 2 * k, 2), x[1]); },
             {rn({m, 2 * k}), rn({k, n})}},
            {"inner dim 0", mm, {rn({m, 0}), rn({0, n})}},
        };
      }));
  t.push_back(entry("Tensor::matmul", "core/tensor.h", "calls `matmul`",
                    "matmul equals the naive product in every layout and dtype", [] {
                      return std::vector<Sample>{
                          {"(3, 4) @ (4, 2)", [](const In& x) { return x[0].matmul(x[1]); }, {rn({3, 4}), rn({4, 2})}}};
                    }));
  t.back().error_name = "matmul";
  t.push_back(entry("linear", "ops/linalg.h",
                    "`LinearBackward`, with `g2 = g.reshape({-1, out})`: `matmul(g2, weight)` for x, `matmul(g2.t(), x "
                    "as (rows, in))` for weight, `sum(g2, {0})` for bias",
                    "matmul equals the naive product in every layout and dtype", [] {
                      Sizes size;
                      const int64_t m = size(1, 4), k = size(1, 4), n = size(1, 4), b = size(2, 3);
                      return std::vector<Sample>{
                          {"batched, with bias",
                           [](const In& x) { return linear(x[0], x[1], x[2]); },
                           {rn({b, m, k}), rn({n, k}), rn({n})}},
                          {"transposed input, no bias",
                           [](const In& x) { return linear(x[0].transpose(0, 1), x[1]); },
                           {rn({m, b, k}), rn({n, k})}},
                      };
                    }));

  // ---- neural-network functions ----
  t.push_back(entry("softmax", "ops/nn.h",
                    "fused `Backend::softmax_backward(y, g, gx, log = false)` on the saved output; a dim other than "
                    "the last is permuted to the end and back",
                    kNnValues, [] {
                      return std::vector<Sample>{
                          {"last dim", [](const In& x) { return softmax(x[0], -1); }, {rn({3, 5})}},
                          {"dim 0", [](const In& x) { return softmax(x[0], 0); }, {rn({3, 4, 2})}},
                          {"transposed, long row", [](const In& x) { return softmax(x[0].t(), -1); }, {rn({41, 2})}},
                      };
                    }));
  t.push_back(entry("log_softmax", "ops/nn.h", "fused `Backend::softmax_backward(..., log = true)`", kNnValues, [] {
    return std::vector<Sample>{
        {"transposed", [](const In& x) { return log_softmax(x[0].t(), -1); }, {rn({3, 5})}},
        {"dim 1", [](const In& x) { return log_softmax(x[0], 1); }, {rn({2, 3, 4})}},
    };
  }));
  t.push_back(entry(
      "layer_norm", "ops/nn.h", "fused `Backend::layernorm_backward` from the mean and rstd that the forward saved",
      kNnValues, [] {
        Sizes size;
        const int64_t a = size(2, 4), b = size(2, 5);
        return std::vector<Sample>{
            {"weight and bias",
             [b](const In& x) { return layer_norm(x[0], {b}, x[1], x[2]); },
             {rn({a, b}), rn({b}), rn({b})}},
            {"two normalized dims, no affine",
             [b](const In& x) {
               return layer_norm(x[0], {2, b});
             },
             {rn({a, 2, b})}},
            {"bias only", [b](const In& x) { return layer_norm(x[0], {b}, Tensor(), x[1]); }, {rn({a, b}), rn({b})}},
            {"transposed input, weight only",
             [a](const In& x) { return layer_norm(x[0].t(), {a}, x[1]); },
             {rn({a, b}), rn({a})}},
            {"long rows",
             [](const In& x) { return layer_norm(x[0], {67}, x[1], x[2]); },
             {rn({2, 67}), rn({67}), rn({67})}},
        };
      }));
  t.push_back(entry("embedding", "ops/nn.h",
                    "composite: `index_select` of rows, then `reshape`; `IndexSelectBackward` adds repeated ids "
                    "together (`Backend::index_add`)",
                    "joining, splitting and indexing", [] {
                      return std::vector<Sample>{
                          {"int64 ids (2, 3), repeats",
                           [](const In& x) { return embedding(x[0], x[1]); },
                           {rn({5, 3})},
                           {from_vector(std::vector<int64_t>{0, 3, 3, 1, 4, 0}, {2, 3})}},
                          {"int32 ids",
                           [](const In& x) { return embedding(x[0], x[1]); },
                           {rn({3, 2})},
                           {from_vector(std::vector<int32_t>{2, 2, 1})}},
                      };
                    }));
  t.push_back(entry(
      "cross_entropy", "ops/nn.h",
      "fused `Backend::cross_entropy_backward` for the per-row losses (`CrossEntropyBackward`), then `sum` / `div` for "
      "the `Sum` and `Mean` reductions; (N, C, d1, ...) goes through `permute` + `reshape`",
      "cross_entropy: formula, ignore_index, label smoothing, reductions", [] {
        Tensor target = from_vector(std::vector<int64_t>{2, 0, 4, 1});
        CrossEntropyOptions smooth, none, sum_r;
        smooth.label_smoothing = 0.2;
        smooth.ignore_index = 4;
        none.reduction = Reduction::None;
        sum_r.reduction = Reduction::Sum;
        return std::vector<Sample>{
            {"mean", [](const In& x) { return cross_entropy(x[0], x[1]); }, {rn({4, 5})}, {target}},
            {"label smoothing, ignore_index, transposed logits",
             [smooth](const In& x) { return cross_entropy(x[0].t(), x[1], smooth); },
             {rn({5, 4})},
             {target}},
            {"no reduction", [none](const In& x) { return cross_entropy(x[0], x[1], none); }, {rn({4, 5})}, {target}},
            {"(N, C, d) with sum",
             [sum_r](const In& x) { return cross_entropy(x[0], x[1], sum_r); },
             {rn({2, 3, 3})},
             {from_vector(std::vector<int64_t>{0, 2, 1, 1, 0, 2}, {2, 3})}},
        };
      }));
  t.back().mixed_dtypes_refused = false;  // one floating input
  t.push_back(
      entry("dropout", "ops/nn.h",
            "fused `Backend::dropout` (`DropoutBackward`): the gradient goes through the same kernel with the "
            "forward's Philox counters, so the mask is drawn again, never stored; `x` itself when not training "
            "or `p == 0`, `mul(x, 0)` when `p == 1`",
            "dropout: rate, scaling, eval identity, reproducible masks", [] {
              // a fresh generator per call: the same mask every time (gradcheck differences, CPU and CUDA)
              return std::vector<Sample>{
                  {"p 0.4, seeded",
                   [](const In& x) {
                     Generator g(5);
                     return dropout(x[0], 0.4, true, &g);
                   },
                   {rn({4, 6})}},
                  {"transposed, p 0.25",
                   [](const In& x) {
                     Generator g(9);
                     return dropout(x[0].t(), 0.25, true, &g);
                   },
                   {rn({5, 3})}},
                  {"eval mode is the identity", [](const In& x) { return dropout(x[0], 0.5, false); }, {rn({3, 2})}},
              };
            }));

  t.push_back(
      entry("dropout_add", "ops/nn.h",
            "fused `Backend::dropout` with a base (`DropoutAddBackward`): the base's gradient is the output's, `x`'s "
            "goes through dropout's kernel with the forward's counters; `add(base, dropout(x))` where shapes, "
            "dtypes or devices differ (broadcasting)",
            "dropout_add and waverec_add: the bits of add(base, ...), the same mask", [] {
              return std::vector<Sample>{
                  {"p 0.4, seeded",
                   [](const In& x) {
                     Generator g(5);
                     return dropout_add(x[0], x[1], 0.4, true, &g);
                   },
                   {rn({4, 6}), rn({4, 6})}},
                  {"transposed x, p 0.25",
                   [](const In& x) {
                     Generator g(9);
                     return dropout_add(x[0], x[1].t(), 0.25, true, &g);
                   },
                   {rn({3, 5}), rn({5, 3})}},
                  {"broadcast base (add after dropout)",
                   [](const In& x) {
                     Generator g(3);
                     return dropout_add(x[0], x[1], 0.5, true, &g);
                   },
                   {rn({6}), rn({4, 6})}},
                  {"eval mode is add", [](const In& x) { return dropout_add(x[0], x[1], 0.5, false); },
                   {rn({3, 2}), rn({3, 2})}},
              };
            }));

  t.push_back(entry(
      "dropout_add_layer_norm", "ops/nn.h",
      "one node for both outputs (`DropoutAddLayerNormBackward`): `Backend::layernorm_backward_add` adds h's own "
      "gradient into layer norm's input gradient as it makes it (the base's gradient), `x`'s goes through dropout's "
      "kernel with the forward's counters; `dropout_add` then `layer_norm` where shapes, dtypes or autocast differ",
      "dropout_add_layer_norm: the bits of dropout_add then layer_norm, one pass each way", [] {
        // both outputs side by side (the table's ops have one); a fresh generator per call
        return std::vector<Sample>{
            {"p 0.3, weight and bias, an odd row length",
             [](const In& x) {
               Generator g(5);
               auto [h, y] = dropout_add_layer_norm(x[0], x[1], 0.3, true, {5}, x[2], x[3], 1e-5, &g);
               return concat({h, y}, -1);
             },
             {rn({2, 3, 5}), rn({2, 3, 5}), rn({5}), rn({5})}},
            {"transposed x, no dropout, no affine",
             [](const In& x) {
               auto [h, y] = dropout_add_layer_norm(x[0], x[1].t(), 0.0, true, {4});
               return concat({h, y}, -1);
             },
             {rn({3, 4}), rn({4, 3})}},
            {"two normalised dims, p 0.5",
             [](const In& x) {
               Generator g(11);
               auto [h, y] = dropout_add_layer_norm(x[0], x[1], 0.5, true, {2, 3}, x[2], Tensor(), 1e-5, &g);
               return concat({h, y}, 0);
             },
             {rn({2, 2, 3}), rn({2, 2, 3}), rn({2, 3})}},
            {"eval mode: no dropout",
             [](const In& x) {
               auto [h, y] = dropout_add_layer_norm(x[0], x[1], 0.5, false, {3}, x[2], x[3]);
               return concat({h, y}, -1);
             },
             {rn({4, 3}), rn({4, 3}), rn({3}), rn({3})}},
        };
      }));

  t.push_back(entry(
      "bias_gelu", "ops/nn.h",
      "fused `Backend::bias_gelu_backward` (`BiasGeluBackward`): dropout's mask drawn again from the forward's "
      "counters, times the GELU derivative at `x + bias` (recomputed, not stored); the bias gradient sums it over "
      "the rows (float32 GEMM with ones for a bfloat16 `x` and float32 bias)",
      "bias_gelu: the values, masks and gradients of dropout(gelu(x + bias))", [] {
        // a fresh generator per call: the same mask every time (gradcheck differences, CPU and CUDA)
        return std::vector<Sample>{
            {"p 0.3, seeded",
             [](const In& x) {
               Generator g(5);
               return bias_gelu(x[0], x[1], 0.3, true, GeluApprox::None, &g);
             },
             {rn({4, 6}), rn({6})}},
            {"transposed input, tanh, no dropout",
             [](const In& x) { return bias_gelu(x[0].t(), x[1], 0.0, true, GeluApprox::Tanh); },
             {rn({5, 3}), rn({5})}},
            {"three dims, p 0.5, an odd row length",
             [](const In& x) {
               Generator g(11);
               return bias_gelu(x[0], x[1], 0.5, true, GeluApprox::None, &g);
             },
             {rn({2, 3, 5}), rn({5})}},
            {"eval mode: no dropout", [](const In& x) { return bias_gelu(x[0], x[1], 0.5, false); },
             {rn({3, 4}), rn({4})}},
        };
      }));

  // ---- attention ----
  t.push_back(entry(
      "attention", "ops/attention.h",
      "fused `Backend::attention_backward` (`AttentionBackward`): each row's weights recomputed from the "
      "log-sum-exp the forward saved; the dropout mask read from the bits the forward kept (CUDA's tensor-core "
      "path) or drawn again from the node's Philox range",
      "attention: values and gradients equal the materialised composite (float64)", [] {
        Sizes size;
        const int64_t B = size(1, 2), H = size(1, 2), d = size(1, 8), n = size(3, 6);
        auto att = [](const In& x) { return attention(x[0], x[1], x[2]); };
        // q, k, v as a model makes them: heads split from one (B, N, 3 H d) projection, so
        // each is a permuted view with strides (N 3 H d, d, 3 H d, 1).
        auto fused = [H, d](const In& x, const AttentionOptions& o) {
          const int64_t b = x[0].shape()[0], N = x[0].shape()[1];
          std::vector<Tensor> p = chunk(x[0], 3, -1);
          for (Tensor& t : p) t = t.reshape({b, N, H, d}).permute({0, 2, 1, 3});
          return attention(p[0], p[1], p[2], o);
        };
        // Batch 1's keys are all padding; batch 0 keeps every other key.
        std::vector<int64_t> mask(2 * 13);
        for (int64_t j = 0; j < 13; ++j) mask[j] = j % 2 == 0;
        Tensor key_mask = from_vector(mask, {2, 13});
        // Key 0 padded: under causality, query 0 has no key left.
        std::vector<int32_t> first(2 * 7, 1);
        first[0] = first[7] = 0;
        Tensor first_padded = from_vector(first, {2, 7});
        return std::vector<Sample>{
            {"nq 7, nk 13, random B, H, d", att, {rn({B, H, 7, d}), rn({B, H, 13, d}), rn({B, H, 13, d})}},
            {"key mask (int64) with one batch all padding",
             [](const In& x) {
               AttentionOptions o;
               o.key_mask = x[3];
               return attention(x[0], x[1], x[2], o);
             },
             {rn({2, H, n, d}), rn({2, H, 13, d}), rn({2, H, 13, d})},
             {key_mask}},
            {"causal, nq = nk = 7, key 0 padded (int32 mask)",
             [](const In& x) {
               AttentionOptions o;
               o.key_mask = x[3];
               o.causal = true;
               return attention(x[0], x[1], x[2], o);
             },
             {rn({2, H, 7, d}), rn({2, H, 7, d}), rn({2, H, 7, d})},
             {first_padded}},
            {"causal, nq 13 > nk 7, scale 0.3",
             [](const In& x) {
               AttentionOptions o;
               o.causal = true;
               o.scale = 0.3;
               return attention(x[0], x[1], x[2], o);
             },
             {rn({B, H, 13, d}), rn({B, H, 7, d}), rn({B, H, 7, d})}},
            {"heads of a fused (B, N, 3 H d) projection, N 13, causal, float64 key mask",
             [fused](const In& x) {
               AttentionOptions o;
               o.key_mask = x[1];
               o.causal = true;
               return fused(x, o);
             },
             {rn({2, 13, 3 * H * d})},
             {from_vector(std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,  //
                                              0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                          {2, 13})}},
            {"transposed q (last-dim stride nq), k and v expanded over heads",
             [H](const In& x) {
               const int64_t b = x[1].shape()[0];
               return attention(x[0].transpose(-1, -2), x[1].expand({b, H, -1, -1}), x[2].expand({b, H, -1, -1}));
             },
             {rn({B, H, d, 5}), rn({B, 1, 7, d}), rn({B, 1, 7, d})}},
            {"dropout 0.3, seeded, key mask",
             [](const In& x) {
               Generator g(17);  // a fresh generator per call: the same mask every time
               AttentionOptions o;
               o.key_mask = x[3];
               o.dropout_p = 0.3;
               o.training = true;
               o.gen = &g;
               return attention(x[0], x[1], x[2], o);
             },
             {rn({2, H, 7, d}), rn({2, H, 13, d}), rn({2, H, 13, d})},
             {key_mask}},
            {"dropout 0.5, seeded, causal, fused projection, N 9",
             [fused](const In& x) {
               Generator g(3);
               AttentionOptions o;
               o.causal = true;
               o.dropout_p = 0.5;
               o.training = true;
               o.gen = &g;
               return fused(x, o);
             },
             {rn({B, 9, 3 * H * d})}},
            {"not training: dropout_p is ignored",
             [](const In& x) {
               AttentionOptions o;
               o.dropout_p = 0.5;
               return attention(x[0], x[1], x[2], o);
             },
             {rn({B, H, n, d}), rn({B, H, n, d}), rn({B, H, n, d})}},
            {"no keys (nk 0): zeros", att, {rn({B, H, 3, d}), rn({B, H, 0, d}), rn({B, H, 0, d})}},
        };
      }));
  t.push_back(entry(
      "attention_qkv", "ops/attention.h",
      "fused `Backend::attention_backward` (`AttentionQkvBackward`), as `attention`, writing the q, k and v "
      "gradients into the thirds of one (B, N, 3 E) tensor",
      "attention_qkv: equals attention on the chunked, head-split projection, values and gradients", [] {
        Sizes size;
        const int64_t B = size(1, 2), H = size(1, 3), d = size(1, 6), N = size(3, 9);
        std::vector<int64_t> mask(2 * 11, 1);
        mask[9] = mask[10] = 0;
        for (int64_t j = 0; j < 11; ++j) mask[11 + j] = j % 3 != 1;
        return std::vector<Sample>{
            {"random B, N, H, d", [H](const In& x) { return attention_qkv(x[0], H); }, {rn({B, N, 3 * H * d})}},
            {"key mask, causal, scale 0.4",
             [H](const In& x) {
               AttentionOptions o;
               o.key_mask = x[1];
               o.causal = true;
               o.scale = 0.4;
               return attention_qkv(x[0], H, o);
             },
             {rn({2, 11, 3 * H * d})},
             {from_vector(mask, {2, 11})}},
            {"a transposed projection (strided rows)",
             [H](const In& x) { return attention_qkv(x[0].transpose(0, 1), H); },
             {rn({N, B, 3 * H * d})}},
            {"dropout 0.4, seeded",
             [H](const In& x) {
               Generator g(23);  // a fresh generator per call: the same mask every time
               AttentionOptions o;
               o.dropout_p = 0.4;
               o.training = true;
               o.gen = &g;
               return attention_qkv(x[0], H, o);
             },
             {rn({B, 8, 3 * H * d})}},
        };
      }));
  t.back().mixed_dtypes_refused = false;  // one floating input
  t.push_back(entry(
      "attention_qkv_group", "ops/attention.h",
      "one node for all outputs (`AttentionQkvGroupBackward`): `Backend::attention_backward_group`, which CUDA "
      "runs as one launch of each kernel for three or more bfloat16 problems (up to four per launch)",
      "attention_qkv_group: each problem's values and gradients are attention_qkv's, bit for bit",
      [] {
        Sizes size;
        const int64_t B = size(1, 2), H = size(1, 2), d = size(1, 5), N1 = size(2, 7), N2 = size(2, 7);
        return std::vector<Sample>{
            {"two lengths", [H](const In& x) { return flat(attention_qkv_group({x[0], x[1]}, H)); },
             {rn({B, N1, 3 * H * d}), rn({B, N2, 3 * H * d})}},
            {"dropout 0.3, seeded; three problems, one a transposed view",
             [H](const In& x) {
               Generator g(5);  // a fresh generator per call: the same masks every time
               AttentionOptions o;
               o.dropout_p = 0.3;
               o.training = true;
               o.gen = &g;
               return flat(attention_qkv_group({x[0], x[1].transpose(0, 1), x[2]}, H, o));
             },
             {rn({B, 6, 3 * H * d}), rn({6, B, 3 * H * d}), rn({B, 3, 3 * H * d})}},
            // Head dims of CUDA's tensor-core kernels: its bfloat16 pass runs the group kernels,
            // five problems in two launches of four and one.
            {"head dim 32, five problems of four lengths",
             [](const In& x) { return flat(attention_qkv_group({x[0], x[1], x[2], x[3], x[4]}, 1)); },
             {rn({1, 3, 96}), rn({1, 3, 96}), rn({1, 5, 96}), rn({1, 9, 96}), rn({1, 4, 96})}},
            {"head dim 64, two heads' worth of batch",
             [](const In& x) { return flat(attention_qkv_group({x[0], x[1]}, 1)); },
             {rn({2, 5, 192}), rn({2, 4, 192})}},
        };
      }));
}

}  // namespace wavspa::test

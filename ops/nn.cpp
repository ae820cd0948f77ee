#include "ops/nn.h"

#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

// softmax / log_softmax along `dim`: the kernel works on contiguous rows, so a dim other
// than the last is swapped to the end and back (as views around one copy).
Tensor softmax_impl(const Tensor& x, int64_t dim_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_floating(name, x);
  if (x.dim() == 0) return softmax_impl(x.reshape({1}), 0, log).reshape({});
  ProfileScope scope(name, x);
  const int64_t dim = wrap_dim(dim_in, x.dim(), name);
  const int64_t last = x.dim() - 1;
  std::vector<int64_t> perm(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) perm[i] = i;
  std::swap(perm[dim], perm[last]);
  Tensor xt = contiguous_raw(permute_raw(x, perm));
  Tensor yt = empty_like_raw(xt, xt.shape());
  backend_of(x).softmax_forward(xt, yt, log);
  if (scope) scope.set_io(bytes_of(x), bytes_of(yt));
  Tensor out = permute_raw(yt, perm);
  if (autograd::needs_grad({x})) {
    Tensor saved = yt;  // fresh, no autograd
    autograd::record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", {x}, out, {saved},
                     [saved, perm, log](const Tensor& g) {
      Tensor gt = contiguous_raw(permute_raw(g, perm));
      Tensor gx = empty_like_raw(gt, gt.shape());
      backend_of(gt).softmax_backward(saved, gt, gx, log);
      return G{permute_raw(gx, perm)};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  ProfileScope scope("layer_norm", x_in);
  // Autocast: bfloat16 rows (a cast of the graph), float32 parameters and statistics.
  const Tensor x = autocast_bf16(x_in);
  check_floating("layer_norm", x);
  const int64_t k = (int64_t)normalized_shape.size();
  bool tail_ok = k >= 1 && k <= x.dim();
  for (int64_t i = 0; tail_ok && i < k; ++i)
    tail_ok = x.shape()[x.dim() - k + i] == normalized_shape[i];
  WAVSPA_CHECK(tail_ok, "layer_norm: input ", shape_str(x.shape()),
               " does not end in normalized_shape ", shape_str(normalized_shape));
  for (const Tensor* p : {&weight, &bias})
    if (p->defined()) {
      // bfloat16 rows may take float32 parameters (CUDA only, as bfloat16 arithmetic is).
      if (x.dtype() == kBFloat16 && p->dtype() == kFloat32) check_same_device("layer_norm", x, *p);
      else check_same("layer_norm", x, *p);
      WAVSPA_CHECK(p->shape() == normalized_shape, "layer_norm: ",
                   p == &weight ? "weight" : "bias", " has shape ", shape_str(p->shape()),
                   ", expected ", shape_str(normalized_shape));
    }
  WAVSPA_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got ", eps);
  const int64_t N = shape_numel(normalized_shape), M = N ? x.numel() / N : 0;
  Tensor xc = contiguous_raw(x);
  Tensor w = weight.defined() ? contiguous_raw(weight) : Tensor();
  Tensor b = bias.defined() ? contiguous_raw(bias) : Tensor();
  Tensor out = empty_like_raw(x, x.shape());
  // Statistics in float32 for bfloat16 rows (the backward reads them back).
  const DType stat = x.dtype() == kBFloat16 ? kFloat32 : x.dtype();
  Tensor mu = Tensor::empty({M}, stat, x.device()), rstd = Tensor::empty({M}, stat, x.device());
  backend_of(x).layernorm_forward(xc, w, b, eps, out, mu, rstd);
  if (scope) scope.set_io(bytes_of(x) + bytes_of(w) + bytes_of(b), bytes_of(out) + bytes_of(mu) + bytes_of(rstd));
  if (autograd::needs_grad({x, weight, bias})) {
    bool need_w = weight.defined() && weight.requires_grad();
    bool need_b = bias.defined() && bias.requires_grad();
    Tensor sx = xc.detach(), sw = w.defined() ? w.detach() : Tensor();
    Shape ns = normalized_shape;
    const DType pdtype = (weight.defined() ? weight : bias.defined() ? bias : x).dtype();
    autograd::record("LayerNormBackward", {x, weight, bias}, out, {sx, sw, mu, rstd},
                     [sx, sw, ns, mu, rstd, need_w, need_b, pdtype](const Tensor& g) {
      Tensor gc = contiguous_raw(g);
      Tensor gx = empty_like_raw(sx, sx.shape());
      Tensor gw = need_w ? Tensor::empty(ns, pdtype, sx.device()) : Tensor();
      Tensor gb = need_b ? Tensor::empty(ns, pdtype, sx.device()) : Tensor();
      backend_of(sx).layernorm_backward(gc, sx, sw, mu, rstd, gx, gw, gb);
      return G{gx, gw, gb};
    });
  }
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  ProfileScope scope("embedding", weight);
  check_floating("embedding", weight);
  WAVSPA_CHECK(weight.dim() == 2, "embedding: weight must be (num_embeddings, dim), got ",
               shape_str(weight.shape()));
  Tensor flat = index_select(weight, 0, as_index("embedding", ids).reshape({-1}));
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.shape()[1]);
  if (scope) scope.set_io(bytes_of(ids) + bytes_of(flat), bytes_of(flat));  // the rows it gathers
  return flat.reshape(out_shape);
}

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target,
                     const CrossEntropyOptions& options) {
  // Autocast: the loss of bfloat16 logits is computed (and returned) in float32.
  ProfileScope scope("cross_entropy", logits_in);
  const Tensor logits = autocast_fp32(logits_in);
  check_floating("cross_entropy", logits);
  Tensor t = as_index("cross_entropy", target);
  WAVSPA_CHECK(logits.device() == t.device(), "cross_entropy: logits on ", logits.device(),
               ", target on ", t.device());
  WAVSPA_CHECK(options.label_smoothing >= 0 && options.label_smoothing <= 1,
               "cross_entropy: label_smoothing must be in [0, 1], got ", options.label_smoothing);
  if (logits.dim() > 2) {
    // (N, C, d1, ...) -> (N * d1 * ..., C), the layout of PyTorch's K-dimensional loss.
    WAVSPA_CHECK(t.dim() == logits.dim() - 1, "cross_entropy: logits ",
                 shape_str(logits.shape()), " need a target with ", logits.dim() - 1,
                 " dims, got ", shape_str(t.shape()));
    std::vector<int64_t> perm{0};
    for (int64_t d = 2; d < logits.dim(); ++d) perm.push_back(d);
    perm.push_back(1);
    Tensor flat = logits.permute(perm).reshape({-1, logits.shape()[1]});
    Tensor loss = cross_entropy(flat, t.reshape({-1}), options);
    return options.reduction == Reduction::None ? loss.reshape(t.shape()) : loss;
  }
  WAVSPA_CHECK(logits.dim() == 2 && t.dim() == 1 && t.shape()[0] == logits.shape()[0],
               "cross_entropy: expected logits (N, C) and target (N), got logits ",
               shape_str(logits.shape()), " and target ", shape_str(t.shape()));
  const int64_t C = logits.shape()[1];
  if (t.device().is_cpu()) {
    const int64_t* p = t.data<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
      WAVSPA_CHECK(p[i] == options.ignore_index || (p[i] >= 0 && p[i] < C),
                   "cross_entropy: target[", i, "] = ", p[i], " is out of range for ", C,
                   " classes (expected 0..", C - 1, " or ignore_index ", options.ignore_index,
                   ")");
  }
  Tensor x = contiguous_raw(logits);
  Tensor losses = empty_like_raw(x, {x.shape()[0]});
  const int64_t ignore = options.ignore_index;
  const double smoothing = options.label_smoothing;
  backend_of(x).cross_entropy_forward(x, t, ignore, smoothing, losses);
  if (scope) scope.set_io(bytes_of(x) + bytes_of(t), bytes_of(losses));
  if (autograd::needs_grad({logits})) {
    Tensor sx = x.detach();
    autograd::record("CrossEntropyBackward", {logits}, losses, {sx, t},
                     [sx, t, ignore, smoothing](const Tensor& g) {
      Tensor gx = empty_like_raw(sx, sx.shape());
      backend_of(sx).cross_entropy_backward(sx, t, contiguous_raw(g), ignore, smoothing, gx);
      return G{gx};
    });
  }
  switch (options.reduction) {
    case Reduction::None: return losses;
    case Reduction::Sum: return sum(losses);
    case Reduction::Mean: {
      // Mean over the targets that count; 0/0 = NaN when all are ignored, as in PyTorch.
      if (x.dtype() == kBFloat16) {  // count in float32: bfloat16 holds integers only to 256
        Tensor counted = ne(t, scalar_like((double)ignore, t)).to(kFloat32);
        return div(sum(losses).to(kFloat32), sum(counted)).to(kBFloat16);
      }
      Tensor counted = ne(t, scalar_like((double)ignore, t)).to(x.dtype());
      return div(sum(losses), sum(counted));
    }
  }
  return losses;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_floating("dropout", x);
  WAVSPA_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  if (p == 1) return mul(x, 0.0);
  // One kernel each way: backward draws the forward's mask again from the same counters.
  Generator& g = gen ? *gen : default_generator();
  const PhiloxState s = g.reserve(philox_counters_dropout(x.numel()));
  ProfileScope scope("dropout", x);
  Tensor out = empty_like_raw(x, x.shape());
  backend_of(x).dropout(contiguous_raw(x), out, s, p, Tensor());
  if (scope) scope.set_io(bytes_of(x), bytes_of(out));
  if (autograd::needs_grad({x})) {
    autograd::record("DropoutBackward", {x}, out, {}, [s, p](const Tensor& grad) {
      Tensor gx = empty_like_raw(grad, grad.shape());
      backend_of(grad).dropout(contiguous_raw(grad), gx, s, p, Tensor());
      return G{gx};
    });
  }
  return out;
}

Tensor dropout_add(const Tensor& base_in, const Tensor& x, double p, bool training, Generator* gen) {
  check_defined("dropout_add", base_in, "base");
  check_defined("dropout_add", x);
  WAVSPA_CHECK(p >= 0 && p <= 1, "dropout_add: probability must be in [0, 1], got ", p);
  // Autocast's rule for the add (a float32 and a bfloat16 operand -> bfloat16): a float32 base
  // is cast first; a float32 x goes through dropout in float32 and add casts the result, as the
  // two ops would.
  Tensor base = base_in;
  if (base.dtype() != x.dtype() && autocasting(base) && autocasting(x)) {
    if (x.dtype() != kBFloat16) return add(base, dropout(x, p, training, gen));
    base = autocast_bf16(base);
  }
  check_same("dropout_add", base, x);
  check_floating("dropout_add", x);
  if (!training || p == 0) return add(base, x);
  if (p == 1 || base.shape() != x.shape()) return add(base, dropout(x, p, training, gen));
  Generator& g = gen ? *gen : default_generator();
  const PhiloxState s = g.reserve(philox_counters_dropout(x.numel()));  // the counters dropout takes
  ProfileScope scope("dropout_add", x);
  Tensor out = empty_like_raw(x, x.shape());
  backend_of(x).dropout(contiguous_raw(x), out, s, p, contiguous_raw(base));
  if (scope) scope.set_io(bytes_of(x) + bytes_of(base), bytes_of(out));
  if (autograd::needs_grad({base, x})) {
    const bool need_base = base.requires_grad(), need_x = x.requires_grad();
    autograd::record("DropoutAddBackward", {base, x}, out, {}, [s, p, need_base, need_x](const Tensor& grad) {
      Tensor gx;
      if (need_x) {
        gx = empty_like_raw(grad, grad.shape());
        backend_of(grad).dropout(contiguous_raw(grad), gx, s, p, Tensor());
      }
      return G{need_base ? grad : Tensor(), gx};
    });
  }
  return out;
}

std::pair<Tensor, Tensor> dropout_add_layer_norm(const Tensor& base, const Tensor& x, double p, bool training,
                                                 const Shape& normalized_shape, const Tensor& weight,
                                                 const Tensor& bias, double eps, Generator* gen) {
  check_defined("dropout_add_layer_norm", base, "base");
  check_defined("dropout_add_layer_norm", x);
  WAVSPA_CHECK(p >= 0 && p <= 1, "dropout_add_layer_norm: probability must be in [0, 1], got ", p);
  if (!(autocasting(base) && autocasting(x))) check_same("dropout_add_layer_norm", base, x);
  check_floating("dropout_add_layer_norm", x);
  // The fused kernels take one float32 or float64 shape for base and x, parameters of that
  // dtype and normalized_shape, and no autocast (whose layer_norm would go bfloat16).
  const int64_t k = (int64_t)normalized_shape.size();
  bool fused = base.shape() == x.shape() && base.dtype() == x.dtype() && base.device() == x.device() &&
               (x.dtype() == kFloat32 || x.dtype() == kFloat64) && !autocasting(x) && p < 1 && eps >= 0 &&
               k >= 1 && k <= x.dim();
  for (int64_t i = 0; fused && i < k; ++i) fused = x.shape()[x.dim() - k + i] == normalized_shape[i];
  for (const Tensor* t : {&weight, &bias})
    fused = fused && (!t->defined() || (t->dtype() == x.dtype() && t->device() == x.device() &&
                                        t->shape() == normalized_shape));
  if (!fused) {
    Tensor h = dropout_add(base, x, p, training, gen);
    return {h, layer_norm(h, normalized_shape, weight, bias, eps)};
  }
  const double pd = training ? p : 0.0;
  PhiloxState s{};
  if (pd > 0) s = (gen ? *gen : default_generator()).reserve(philox_counters_dropout(x.numel()));
  ProfileScope scope("dropout_add_layer_norm", x);
  const int64_t N = shape_numel(normalized_shape), M = N ? x.numel() / N : 0;
  const Tensor bc = contiguous_raw(base), xc = contiguous_raw(x);
  const Tensor w = weight.defined() ? contiguous_raw(weight) : Tensor();
  const Tensor b = bias.defined() ? contiguous_raw(bias) : Tensor();
  Tensor h = empty_like_raw(x, x.shape()), y = empty_like_raw(x, x.shape());
  Tensor mu = Tensor::empty({M}, x.dtype(), x.device()), rstd = Tensor::empty({M}, x.dtype(), x.device());
  backend_of(x).dropout_add_layernorm_forward(bc, xc, s, pd, w, b, eps, h, y, mu, rstd);
  if (scope)
    scope.set_io(bytes_of(base) + bytes_of(x) + bytes_of(w) + bytes_of(b),
                 bytes_of(h) + bytes_of(y) + bytes_of(mu) + bytes_of(rstd));
  if (autograd::needs_grad({base, x, weight, bias})) {
    const bool need_base = base.requires_grad(), need_x = x.requires_grad();
    const bool need_w = weight.defined() && weight.requires_grad(), need_b = bias.defined() && bias.requires_grad();
    const Tensor sh = h.detach(), sw = w.defined() ? w.detach() : Tensor();
    const Shape ns = normalized_shape;
    std::vector<Tensor> outs{h, y};
    autograd::record("DropoutAddLayerNormBackward", {base, x, weight, bias}, outs, {sh, sw, mu, rstd},
                     [=](const std::vector<Tensor>& g) {
      // h's gradient: layer_norm's input gradient plus what reached h from its other uses.
      const Tensor gh = g[0].defined() ? contiguous_raw(g[0]) : Tensor();
      Tensor gsum, gw, gb;
      if (g[1].defined()) {
        gsum = empty_like_raw(sh, sh.shape());
        gw = need_w ? Tensor::empty(ns, sh.dtype(), sh.device()) : Tensor();
        gb = need_b ? Tensor::empty(ns, sh.dtype(), sh.device()) : Tensor();
        backend_of(sh).layernorm_backward_add(contiguous_raw(g[1]), gh, sh, sw, mu, rstd, gsum, gw, gb);
      } else {
        gsum = gh;
      }
      Tensor gx = gsum;
      if (need_x && pd > 0) {
        gx = empty_like_raw(gsum, gsum.shape());
        backend_of(gsum).dropout(gsum, gx, s, pd, Tensor());
      }
      return G{need_base ? gsum : Tensor(), need_x ? gx : Tensor(), gw, gb};
    });
    h = outs[0];
    y = outs[1];
  }
  return {h, y};
}

Tensor bias_gelu(const Tensor& x, const Tensor& bias, double p, bool training, GeluApprox approximate,
                 Generator* gen) {
  check_floating("bias_gelu", x);
  check_defined("bias_gelu", bias, "bias");
  // A float32 bias with bfloat16 x: autocast's master weights (CUDA only, as bfloat16 arithmetic is).
  const bool mixed = x.dtype() == kBFloat16 && bias.dtype() == kFloat32;
  if (mixed) check_same_device("bias_gelu", x, bias);
  else check_same("bias_gelu", x, bias);
  WAVSPA_CHECK(x.dim() >= 1 && bias.dim() == 1 && bias.shape()[0] == x.shape().back(), "bias_gelu: bias must be (",
               x.dim() >= 1 ? x.shape().back() : 0, ") for input ", shape_str(x.shape()), ", got ",
               shape_str(bias.shape()));
  WAVSPA_CHECK(p >= 0 && p <= 1, "bias_gelu: probability must be in [0, 1], got ", p);
  const double pd = training ? p : 0.0;
  if (pd == 1) return dropout(gelu(add(x, bias), approximate), 1.0, true, gen);  // everything dropped
  const bool tanh = approximate == GeluApprox::Tanh;
  PhiloxState s{};
  if (pd > 0) s = (gen ? *gen : default_generator()).reserve(philox_counters_dropout(x.numel()));
  ProfileScope scope("bias_gelu", x);
  const Tensor xc = contiguous_raw(x), bc = contiguous_raw(bias);
  Tensor out = empty_like_raw(x, x.shape());
  backend_of(x).bias_gelu(xc, bc, out, tanh, s, pd);
  if (scope) scope.set_io(bytes_of(x) + bytes_of(bias), bytes_of(out));
  if (autograd::needs_grad({x, bias})) {
    const bool need_b = bias.requires_grad();
    const Tensor sx = xc.detach(), sb = bc.detach();
    autograd::record("BiasGeluBackward", {x, bias}, out, {sx, sb}, [sx, sb, tanh, s, pd, need_b, mixed](const Tensor& g) {
      Backend& be = backend_of(sx);
      Tensor gx = empty_like_raw(sx, sx.shape());
      be.bias_gelu_backward(contiguous_raw(g), sx, sb, gx, tanh, s, pd);
      Tensor gb;
      if (need_b) {
        const int64_t n = sb.numel(), rows = n ? sx.numel() / n : 0;
        if (mixed) {  // the column sums in float32: a (1 x rows) x (rows x n) product with ones
          gb = Tensor::empty({n}, kFloat32, sx.device());
          if (rows == 0) {
            be.fill(gb, 0.0);
          } else if (n > 0) {
            Tensor ones = Tensor::empty({rows}, kBFloat16, sx.device());
            be.fill(ones, 1.0);
            be.gemm(GemmArgs{false, false, 1, n, rows, rows, n, n, 1.0, 0.0}, ones, gx, gb);
          }
        } else {
          gb = sum_to(gx, sb.shape());
        }
      }
      return G{gx, gb};
    });
  }
  return out;
}

}  // namespace wavspa

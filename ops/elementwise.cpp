#include "ops/elementwise.h"

#include <cmath>

#include "ops/common.h"
#include "ops/reduce.h"

namespace wavspa {

using namespace ops_detail;
using G = std::vector<Tensor>;

namespace {

// Forward of a binary kernel: checks, broadcasts, allocates, runs. No autograd.
// The profiler times the elementwise ops here, in the kernel helpers every one of them shares,
// so a fused backward kernel run through them shows under its node's name. One FLOP per
// output element (a transcendental counts as one).
Tensor binary_raw(BinaryOp op, const char* name, const Tensor& a, const Tensor& b,
                  double p0 = 0, double p1 = 0) {
  ProfileScope scope(name, a);
  check_same(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_of(a).binary(op, expand_raw(a, shape), expand_raw(b, shape), out, p0, p1);
  if (scope) scope.set_io(bytes_of(a) + bytes_of(b), bytes_of(out), (double)out.numel());
  return out;
}

Tensor unary_raw(UnaryOp op, const char* name, const Tensor& x, double p0 = 0, double p1 = 0) {
  ProfileScope scope(name, x);
  check_floating(name, x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_of(x).unary(op, x, out, p0, p1);
  if (scope) scope.set_io(bytes_of(x), bytes_of(out), (double)out.numel());
  return out;
}

// A unary op whose backward is a fused kernel grad * f'(saved).
Tensor unary_fused(UnaryOp op, BinaryOp backward_op, const char* name, const char* node,
                   const Tensor& x, bool save_output, double p0 = 0, double p1 = 0) {
  Tensor out = unary_raw(op, name, x, p0, p1);
  if (autograd::needs_grad({x})) {
    Tensor saved = save_output ? out.detach() : x.detach();
    autograd::record(node, {x}, out, {saved}, [saved, backward_op, p0, p1, node](const Tensor& g) {
      return G{binary_raw(backward_op, node, g, saved, p0, p1)};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  Tensor out = binary_raw(BinaryOp::Add, "add", a, b);
  if (autograd::needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("AddBackward", {a, b}, out, {}, [sa, sb](const Tensor& g) {
      return G{sum_to(g, sa), sum_to(g, sb)};
    });
  }
  return out;
}

Tensor sub(const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  Tensor out = binary_raw(BinaryOp::Sub, "sub", a, b);
  if (autograd::needs_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    bool need_b = b.requires_grad();
    autograd::record("SubBackward", {a, b}, out, {}, [sa, sb, need_b](const Tensor& g) {
      return G{sum_to(g, sa), need_b ? sum_to(neg(g), sb) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  Tensor out = binary_raw(BinaryOp::Mul, "mul", a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor da = a.detach(), db = b.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    autograd::record("MulBackward", {a, b}, out, {da, db}, [da, db, need_a, need_b](const Tensor& g) {
      return G{need_a ? sum_to(mul(g, db), da.shape()) : Tensor(),
               need_b ? sum_to(mul(g, da), db.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  Tensor out = binary_raw(BinaryOp::Div, "div", a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor da = a.detach(), db = b.detach();
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    autograd::record("DivBackward", {a, b}, out, {da, db}, [da, db, need_a, need_b](const Tensor& g) {
      Tensor ga, gb;
      if (need_a) ga = sum_to(div(g, db), da.shape());
      if (need_b) gb = sum_to(neg(div(mul(g, da), mul(db, db))), db.shape());
      return G{ga, gb};
    });
  }
  return out;
}

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }

Tensor pow(const Tensor& a_in, const Tensor& e_in) {
  const auto cast = autocast_pair(a_in, e_in);
  const Tensor &a = cast.first, &exponent = cast.second;
  Tensor out = binary_raw(BinaryOp::Pow, "pow", a, exponent);
  if (autograd::needs_grad({a, exponent})) {
    Tensor da = a.detach(), de = exponent.detach(), dout = out.detach();
    bool need_a = a.requires_grad(), need_e = exponent.requires_grad();
    autograd::record("PowBackward", {a, exponent}, out, {da, de, dout},
                     [da, de, dout, need_a, need_e](const Tensor& g) {
      Tensor ga, ge;
      if (need_a) ga = sum_to(mul(g, mul(de, pow(da, sub(de, 1.0)))), da.shape());
      if (need_e) {
        // d/de a^e = a^e log a; defined as 0 where a == 0 (the limit for e > 0).
        Tensor safe_log = where(eq(da, scalar_like(0, da)), scalar_like(0, da), log(da));
        ge = sum_to(mul(g, mul(dout, safe_log)), de.shape());
      }
      return G{ga, ge};
    });
  }
  return out;
}

Tensor pow(const Tensor& a, double exponent) {
  Tensor out = unary_raw(UnaryOp::PowScalar, "pow", a, exponent);
  if (autograd::needs_grad({a})) {
    Tensor da = a.detach();
    autograd::record("PowBackward", {a}, out, {da}, [da, exponent](const Tensor& g) {
      if (exponent == 0) return G{mul(g, 0.0)};
      return G{mul(g, mul(pow(da, exponent - 1), exponent))};
    });
  }
  return out;
}

namespace {

// maximum / minimum: the gradient goes to the winner; ties split it evenly.
Tensor extremum(bool is_max, const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  const char* name = is_max ? "maximum" : "minimum";
  Tensor out = binary_raw(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, name, a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor da = a.detach(), db = b.detach();
    autograd::record(is_max ? "MaximumBackward" : "MinimumBackward", {a, b}, out, {da, db},
                     [da, db, is_max](const Tensor& g) {
      Tensor wins = is_max ? gt(da, db) : lt(da, db);
      Tensor share = add(wins, mul(eq(da, db), 0.5));  // a's share of the gradient
      Tensor ga = mul(g, share);
      Tensor gb = sub(g, ga);
      return G{sum_to(ga, da.shape()), sum_to(gb, db.shape())};
    });
  }
  return out;
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(true, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(false, a, b); }

Tensor clamp(const Tensor& x, double lo, double hi) {
  check_floating("clamp", x);
  WAVSPA_CHECK(!(lo > hi), "clamp: lower bound ", lo, " is above upper bound ", hi);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = binary_raw(BinaryOp::Minimum, "clamp",
                     binary_raw(BinaryOp::Maximum, "clamp", x, scalar_like(lo, x)),
                     scalar_like(hi, x));
  }
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach();
    autograd::record("ClampBackward", {x}, out, {dx}, [dx, lo, hi](const Tensor& g) {
      // full gradient inside [lo, hi], bounds included (as torch.clamp)
      Tensor inside = mul(ge(dx, scalar_like(lo, dx)), le(dx, scalar_like(hi, dx)));
      return G{mul(g, inside)};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  const auto cast = autocast_pair(a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  check_same("where", a, b);
  check_defined("where", cond, "condition");
  WAVSPA_CHECK(cond.device() == a.device(), "where: condition is on ", cond.device(),
               " but the values are on ", a.device());
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  ProfileScope scope("where", a);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  backend_of(a).where(expand_raw(cond, shape), expand_raw(a, shape), expand_raw(b, shape), out);
  if (scope) scope.set_io(bytes_of(cond) + bytes_of(a) + bytes_of(b), bytes_of(out), (double)out.numel());
  if (autograd::needs_grad({a, b})) {
    Tensor dc = cond.detach();
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("WhereBackward", {a, b}, out, {dc}, [dc, sa, sb](const Tensor& g) {
      Tensor zero = scalar_like(0, g);
      return G{sum_to(where(dc, g, zero), sa), sum_to(where(dc, zero, g), sb)};
    });
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined("masked_fill", x);
  check_computable("masked_fill", x);
  return where(mask, scalar_like(value, x), x);
}

#define WAVSPA_COMPARISON(fn, op)                                  \
  Tensor fn(const Tensor& a, const Tensor& b) {                    \
    return binary_raw(BinaryOp::op, #fn, a, b);                    \
  }
WAVSPA_COMPARISON(eq, Eq)
WAVSPA_COMPARISON(ne, Ne)
WAVSPA_COMPARISON(lt, Lt)
WAVSPA_COMPARISON(le, Le)
WAVSPA_COMPARISON(gt, Gt)
WAVSPA_COMPARISON(ge, Ge)
#undef WAVSPA_COMPARISON

namespace {
// a against the scalar b: b as a 0-d tensor of a's dtype, except that an integer tensor meets
// a scalar with a fraction in float64 (an int64 beyond 2^53 is then rounded, as numpy does),
// the result converted back to a's dtype.
Tensor compare_scalar(BinaryOp op, const char* name, const Tensor& a, double b) {
  check_defined(name, a);
  if (!is_floating(a.dtype()) && (!std::isfinite(b) || b != std::floor(b))) {  // 7.5, inf, NaN
    const Tensor x = a.to(kFloat64);
    return binary_raw(op, name, x, scalar_like(b, x)).to(a.dtype());
  }
  return binary_raw(op, name, a, scalar_like(b, a));
}
}  // namespace

Tensor eq(const Tensor& a, double b) { return compare_scalar(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, double b) { return compare_scalar(BinaryOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, double b) { return compare_scalar(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, double b) { return compare_scalar(BinaryOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, double b) { return compare_scalar(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, double b) { return compare_scalar(BinaryOp::Ge, "ge", a, b); }

Tensor neg(const Tensor& x) {
  check_defined("neg", x);
  check_computable("neg", x);
  ProfileScope scope("neg", x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (is_floating(x.dtype())) {
    backend_of(x).unary(UnaryOp::Neg, x, out, 0, 0);
  } else {
    backend_of(x).binary(BinaryOp::Sub, expand_raw(scalar_like(0, x), x.shape()), x, out, 0, 0);
  }
  if (scope) scope.set_io(bytes_of(x), bytes_of(out), (double)out.numel());
  if (autograd::needs_grad({x}))
    autograd::record("NegBackward", {x}, out, {}, [](const Tensor& g) { return G{neg(g)}; });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Abs, "abs", x);
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach();
    autograd::record("AbsBackward", {x}, out, {dx}, [dx](const Tensor& g) {
      return G{mul(g, sign(dx))};
    });
  }
  return out;
}

Tensor sign(const Tensor& x) { return unary_raw(UnaryOp::Sign, "sign", x); }

Tensor exp(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Exp, "exp", x);
  if (autograd::needs_grad({x})) {
    Tensor y = out.detach();
    autograd::record("ExpBackward", {x}, out, {y}, [y](const Tensor& g) { return G{mul(g, y)}; });
  }
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Log, "log", x);
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach();
    autograd::record("LogBackward", {x}, out, {dx}, [dx](const Tensor& g) { return G{div(g, dx)}; });
  }
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sqrt, "sqrt", x);
  if (autograd::needs_grad({x})) {
    Tensor y = out.detach();
    autograd::record("SqrtBackward", {x}, out, {y}, [y](const Tensor& g) {
      return G{div(mul(g, 0.5), y)};
    });
  }
  return out;
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Rsqrt, "rsqrt", x);
  if (autograd::needs_grad({x})) {
    Tensor y = out.detach();
    autograd::record("RsqrtBackward", {x}, out, {y}, [y](const Tensor& g) {
      return G{mul(g, mul(pow(y, 3.0), -0.5))};  // d/dx x^-1/2 = -1/2 x^-3/2
    });
  }
  return out;
}

Tensor sin(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sin, "sin", x);
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach();
    autograd::record("SinBackward", {x}, out, {dx}, [dx](const Tensor& g) { return G{mul(g, cos(dx))}; });
  }
  return out;
}

Tensor cos(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Cos, "cos", x);
  if (autograd::needs_grad({x})) {
    Tensor dx = x.detach();
    autograd::record("CosBackward", {x}, out, {dx}, [dx](const Tensor& g) {
      return G{neg(mul(g, sin(dx)))};
    });
  }
  return out;
}

Tensor tanh(const Tensor& x) {
  return unary_fused(UnaryOp::Tanh, BinaryOp::TanhBackward, "tanh", "TanhBackward", x, true);
}
Tensor sigmoid(const Tensor& x) {
  return unary_fused(UnaryOp::Sigmoid, BinaryOp::SigmoidBackward, "sigmoid", "SigmoidBackward", x, true);
}
Tensor relu(const Tensor& x) {
  return unary_fused(UnaryOp::Relu, BinaryOp::ReluBackward, "relu", "ReluBackward", x, false);
}
Tensor gelu(const Tensor& x, GeluApprox approximate) {
  if (approximate == GeluApprox::Tanh)
    return unary_fused(UnaryOp::GeluTanh, BinaryOp::GeluTanhBackward, "gelu", "GeluBackward", x, false);
  return unary_fused(UnaryOp::GeluErf, BinaryOp::GeluErfBackward, "gelu", "GeluBackward", x, false);
}
Tensor silu(const Tensor& x) {
  return unary_fused(UnaryOp::Silu, BinaryOp::SiluBackward, "silu", "SiluBackward", x, false);
}
Tensor elu(const Tensor& x, double alpha) {
  return unary_fused(UnaryOp::Elu, BinaryOp::EluBackward, "elu", "EluBackward", x, false, alpha);
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  WAVSPA_CHECK(beta > 0, "softplus: beta must be positive, got ", beta);
  return unary_fused(UnaryOp::Softplus, BinaryOp::SoftplusBackward, "softplus", "SoftplusBackward", x, false,
                     beta, threshold);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }
Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace wavspa

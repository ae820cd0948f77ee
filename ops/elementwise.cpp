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
                  double p0 = 0, double p1 = 0, bool to_bool = false) {
  ProfileScope scope(name, a);
  check_same(name, a, b);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, to_bool ? kBool : a.dtype(), a.device());
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

// The operands of a binary op in the dtype it computes in: autocast's pair first (under an
// AutocastGuard, float32 and bfloat16 CUDA operands meet in bfloat16), then promote_types;
// `arithmetic` makes bool int64. .to() is differentiable, so each input's gradient comes
// back in its own dtype.
std::pair<Tensor, Tensor> promoted(const char* name, const Tensor& a_in, const Tensor& b_in,
                                   bool arithmetic = true) {
  check_defined(name, a_in, "first input");
  check_defined(name, b_in, "second input");
  auto [a, b] = autocast_pair(a_in, b_in);
  DType t = promote_types(a.dtype(), b.dtype());
  if (arithmetic) t = arithmetic_dtype(t);
  return {a.to(t), b.to(t)};
}

// The scalar of `tensor op s` as a 0-d tensor in the dtype that op computes in.
Tensor scalar_operand(const Tensor& like, Scalar s) {
  check_defined("scalar operand", like);
  Tensor out = Tensor::empty({}, arithmetic_dtype(s.promote_with(like.dtype())), like.device());
  backend_of(like).fill(out, s.to_double());
  return out;
}

Tensor bool_scalar(bool value, const Tensor& like) {
  Tensor out = Tensor::empty({}, kBool, like.device());
  backend_of(like).fill(out, value ? 1.0 : 0.0);
  return out;
}

// x as bool: itself, or x != 0; `op` names the caller in errors.
Tensor as_bool(const char* op, const Tensor& x) {
  check_defined(op, x);
  check_computable(op, x);
  return x.dtype() == kBool ? x : ne(x, 0);
}

}  // namespace

Tensor add(const Tensor& a_in, const Tensor& b_in) {
  const auto cast = promoted("add", a_in, b_in);
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
  const auto cast = promoted("sub", a_in, b_in);
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
  const auto cast = promoted("mul", a_in, b_in);
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
  auto cast = promoted("div", a_in, b_in);
  if (!is_floating(cast.first.dtype())) cast = {cast.first.to(kFloat32), cast.second.to(kFloat32)};
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

Tensor add(const Tensor& a, Scalar b) { return add(a, scalar_operand(a, b)); }
Tensor sub(const Tensor& a, Scalar b) { return sub(a, scalar_operand(a, b)); }
Tensor mul(const Tensor& a, Scalar b) { return mul(a, scalar_operand(a, b)); }
Tensor div(const Tensor& a, Scalar b) { return div(a, scalar_operand(a, b)); }

Tensor pow(const Tensor& a_in, const Tensor& e_in) {
  const auto cast = promoted("pow", a_in, e_in);
  if (!is_floating(cast.first.dtype()))  // integers: exact in float64 up to 2^53
    return pow(cast.first.to(kFloat64), cast.second.to(kFloat64)).to(cast.first.dtype());
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

Tensor pow(const Tensor& a_in, Scalar e) {
  check_defined("pow", a_in);
  if (!is_floating(a_in.dtype())) {
    if (e.is_floating()) return pow(a_in.to(kFloat32), e);
    WAVSPA_CHECK(e.to_int64() >= 0, "pow: an integer tensor to the negative integer power ",
                 e.to_int64(), " (convert to a floating dtype first, as PyTorch asks)");
    const DType t = arithmetic_dtype(a_in.dtype());
    return pow(a_in.to(kFloat64), e.to_double()).to(t);
  }
  const Tensor& a = a_in;
  const double exponent = e.to_double();
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
  const char* name = is_max ? "maximum" : "minimum";
  const auto cast = promoted(name, a_in, b_in);
  const Tensor &a = cast.first, &b = cast.second;
  Tensor out = binary_raw(is_max ? BinaryOp::Maximum : BinaryOp::Minimum, name, a, b);
  if (autograd::needs_grad({a, b})) {
    Tensor da = a.detach(), db = b.detach();
    autograd::record(is_max ? "MaximumBackward" : "MinimumBackward", {a, b}, out, {da, db},
                     [da, db, is_max](const Tensor& g) {
      Tensor wins = (is_max ? gt(da, db) : lt(da, db)).to(g.dtype());
      Tensor share = add(wins, mul(eq(da, db).to(g.dtype()), 0.5));  // a's share of the gradient
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
      Tensor inside = logical_and(ge(dx, scalar_like(lo, dx)), le(dx, scalar_like(hi, dx))).to(g.dtype());
      return G{mul(g, inside)};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  const auto cast = promoted("where", a_in, b_in, /*arithmetic=*/false);
  const Tensor &a = cast.first, &b = cast.second;
  check_same_placement("where", a, b);  // selects, computes nothing: bfloat16 on the CPU too
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

Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value) {
  check_defined("masked_fill", x);
  check_computable("masked_fill", x);
  return where(mask, scalar_like(value.to_double(), x), x);
}

Tensor logical_not(const Tensor& x) {
  const Tensor b = as_bool("logical_not", x);
  return where(b, bool_scalar(false, b), bool_scalar(true, b));
}
Tensor logical_and(const Tensor& a, const Tensor& b) {
  check_same_device("logical_and", a, b);
  const Tensor x = as_bool("logical_and", a);
  return where(x, as_bool("logical_and", b), bool_scalar(false, x));
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  check_same_device("logical_or", a, b);
  const Tensor x = as_bool("logical_or", a);
  return where(x, bool_scalar(true, x), as_bool("logical_or", b));
}
Tensor logical_xor(const Tensor& a, const Tensor& b) {
  check_same_device("logical_xor", a, b);
  const Tensor x = as_bool("logical_xor", a), y = as_bool("logical_xor", b);
  return where(x, logical_not(y), y);
}

// Comparisons compare in the promoted dtype and write bool.
#define WAVSPA_COMPARISON(fn, op)                                            \
  Tensor fn(const Tensor& a, const Tensor& b) {                              \
    const auto cast = promoted(#fn, a, b);                                   \
    return binary_raw(BinaryOp::op, #fn, cast.first, cast.second, 0, 0, true); \
  }
WAVSPA_COMPARISON(eq, Eq)
WAVSPA_COMPARISON(ne, Ne)
WAVSPA_COMPARISON(lt, Lt)
WAVSPA_COMPARISON(le, Le)
WAVSPA_COMPARISON(gt, Gt)
WAVSPA_COMPARISON(ge, Ge)
#undef WAVSPA_COMPARISON

namespace {
// a against the scalar b: b as a 0-d tensor of a's (arithmetic) dtype, except that an integer
// or bool tensor meets a scalar with a fraction in float64 (an int64 beyond 2^53 is then
// rounded, as numpy does).
Tensor compare_scalar(BinaryOp op, const char* name, const Tensor& a_in, Scalar s) {
  check_defined(name, a_in);
  const double b = s.to_double();
  const bool fraction = !std::isfinite(b) || b != std::floor(b);  // 7.5, inf, NaN
  const Tensor a = is_floating(a_in.dtype()) ? a_in
                   : fraction                ? a_in.to(kFloat64)
                                             : a_in.to(arithmetic_dtype(a_in.dtype()));
  return binary_raw(op, name, a, scalar_like(b, a), 0, 0, /*to_bool=*/true);
}
}  // namespace

Tensor eq(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, Scalar b) { return compare_scalar(BinaryOp::Ge, "ge", a, b); }

Tensor neg(const Tensor& x) {
  check_defined("neg", x);
  check_computable("neg", x);
  WAVSPA_CHECK(x.dtype() != kBool, "neg: a bool tensor has no negation; invert a mask with "
               "logical_not, or convert with .to(kInt64) to negate numbers");
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
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return add(scalar_operand(b, a), b); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(scalar_operand(b, a), b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(scalar_operand(b, a), b); }
Tensor operator/(Scalar a, const Tensor& b) { return div(scalar_operand(b, a), b); }
Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace wavspa

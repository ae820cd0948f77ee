// Op table entries of ops/elementwise.h: arithmetic with broadcasting, comparisons, unary
// math and activations, and the operators.
#include "tests/ops/op_table.h"

namespace wavspa::test {

namespace {

const char* kBinaryValues = "broadcasting binary ops, comparisons, where, masked_fill";
const char* kActivationValues = "activations match their formulas";

// The samples every broadcasting binary op gets: broadcast in two directions, transposed
// and strided-slice operands, an expanded operand, a zero-size batch. `positive_b` keeps the
// second operand away from zero (division, pow's base).
std::vector<Sample> binary_samples(const std::function<Tensor(const Tensor&, const Tensor&)>& f,
                                   bool positive_a = false, bool positive_b = false) {
  Sizes size;
  const int64_t a = size(1, 4), b = size(2, 4), c = size(1, 3);
  auto A = [&](const Shape& s) { return positive_a ? rpos(s) : rn(s); };
  auto B = [&](const Shape& s) { return positive_b ? rpos(s) : rn(s); };
  return {
      {"broadcast (a, b, c) by (b, 1)", [f](const In& x) { return f(x[0], x[1]); }, {A({a, b, c}), B({b, 1})}},
      {"broadcast (a, b, c) by (c)", [f](const In& x) { return f(x[0], x[1]); }, {A({a, b, c}), B({c})}},
      {"transposed left operand",
       [f](const In& x) { return f(x[0].transpose(0, 2), x[1]); },
       {A({c, b, a}), B({a, b, c})}},
      {"strided slice and transpose",
       [f, b](const In& x) { return f(x[0].slice(1, 0, 2 * b, 2), x[1].t()); },
       {A({c, 2 * b}), B({b, c})}},
      {"expanded right operand",
       [f](const In& x) {
         return f(x[0], x[1].expand({x[0].size(0), -1}));
       },
       {A({a, c}), B({1, c})}},
      {"0-d right operand", [f](const In& x) { return f(x[0], x[1]); }, {A({b, c}), B({})}},
      {"zero-size batch", [f](const In& x) { return f(x[0], x[1]); }, {A({0, c}), B({c})}},
  };
}

// Samples of a unary op: random shape, transposed, strided slice, zero-size.
std::vector<Sample> unary_samples(const std::function<Tensor(const Tensor&)>& f, bool positive = false) {
  Sizes size;
  const int64_t a = size(2, 4), b = size(2, 5);
  auto X = [&](const Shape& s) { return positive ? rpos(s) : rn(s); };
  return {
      {"random shape", [f](const In& x) { return f(x[0]); }, {X({b, a})}},
      {"transposed", [f](const In& x) { return f(x[0].t()); }, {X({b, a})}},
      {"strided slice", [f](const In& x) { return f(x[0].slice(1, 1, 7, 3)); }, {X({a, 8})}},
      {"zero-size", [f](const In& x) { return f(x[0]); }, {X({0, a})}},
  };
}

// A comparison's inputs hold ties on purpose (integer-valued floats), so that eq/ne/le/ge
// see equal elements.
// `fd` is the (Tensor, double) overload: a whole number that ties, and a fraction.
std::vector<Sample> comparison_samples(Tensor (*f)(const Tensor&, const Tensor&), Tensor (*fd)(const Tensor&, Scalar)) {
  auto tied = [](const Shape& s) { return ints(s, -2, 3).to(kFloat64); };
  return {
      {"broadcast (3, 4) by (4)", [f](const In& x) { return f(x[0], x[1]); }, {tied({3, 4}), tied({4})}},
      {"transposed", [f](const In& x) { return f(x[0].t(), x[1]); }, {tied({4, 3}), tied({3, 1})}},
      {"against the scalars 1 and 0.5", [fd](const In& x) { return add(fd(x[0], 1.0), fd(x[0].t(), 0.5).t()); },
       {tied({3, 4})}},
  };
}

// `fd`, if given, is the (Tensor, double) overload.
OpInfo binary(const std::string& name, const std::string& node, const std::string& grad,
              Tensor (*f)(const Tensor&, const Tensor&), Tensor (*fd)(const Tensor&, Scalar), Ints ints,
              bool positive_b = false) {
  OpInfo op(name, "ops/elementwise.h");
  op.backward = "`" + node + "`: " + grad + (fd ? "; a double operand becomes a 0-d tensor (`scalar_like`)" : "");
  op.value_test = kBinaryValues;
  op.ints = ints;
  promoting(op);
  op.samples = [f, fd, positive_b] {
    auto s = binary_samples(f, false, positive_b);
    if (fd) s.push_back({"double operand", [fd](const In& x) { return fd(x[0].t(), 0.75); }, {rn({2, 3})}});
    return s;
  };
  return op;
}

OpInfo unary(const std::string& name, const std::string& backward, Tensor (*f)(const Tensor&), bool positive = false,
             const char* value_test = "") {
  OpInfo op(name, "ops/elementwise.h");
  op.backward = backward;
  op.value_test = value_test;
  op.samples = [f, positive] { return unary_samples(f, positive); };
  return op;
}

}  // namespace

void add_elementwise_ops(std::vector<OpInfo>& t) {
  // ---- arithmetic ----
  t.push_back(binary("add", "AddBackward", "`sum_to(g, a)`, `sum_to(g, b)`", add, add, Ints::Exact));
  t.push_back(binary("sub", "SubBackward", "`sum_to(g, a)`, `sum_to(neg(g), b)`", sub, sub, Ints::Exact));
  t.push_back(binary("mul", "MulBackward", "`sum_to(mul(g, b), a)`, `sum_to(mul(g, a), b)`", mul, mul, Ints::Exact));
  t.push_back(binary("div", "DivBackward", "`sum_to(div(g, b), a)`, `sum_to(neg(div(mul(g, a), mul(b, b))), b)`", div,
                     div, Ints::Skip, /*positive_b=*/true));
  t.back().value_test = "";
  for (const char* sym : {"+", "-", "*", "/"}) {
    OpInfo op(std::string("operator") + sym, "ops/elementwise.h");
    op.error_name = std::string(sym) == "+"   ? "add"
                    : std::string(sym) == "-" ? "sub"
                    : std::string(sym) == "*" ? "mul"
                                              : "div";
    op.backward = "as `" + op.error_name + "`; a double operand becomes a 0-d tensor (`scalar_like`)";
    op.ints = std::string(sym) == "/" ? Ints::Skip : Ints::Exact;
    promoting(op);
    const std::string s = sym;
    op.samples = [s] {
      auto f = [s](const Tensor& a, const Tensor& b) {
        return s == "+" ? a + b : s == "-" ? a - b : s == "*" ? a * b : a / b;
      };
      auto fd = [s](const Tensor& a, double b) {
        return s == "+" ? a + b : s == "-" ? a - b : s == "*" ? a * b : a / b;
      };
      auto df = [s](double a, const Tensor& b) {
        return s == "+" ? a + b : s == "-" ? a - b : s == "*" ? a * b : a / b;
      };
      const bool positive = s == "/";
      std::vector<Sample> out = binary_samples(f, false, positive);
      out.push_back({"(Tensor, double)", [fd](const In& x) { return fd(x[0], 1.5); }, {rn({3, 2})}});
      out.push_back(
          {"(double, Tensor)", [df](const In& x) { return df(2.0, x[0]); }, {positive ? rpos({3, 2}) : rn({3, 2})}});
      if (s == "-") out.push_back({"unary minus", [](const In& x) { return -x[0].t(); }, {rn({2, 3})}});
      return out;
    };
    t.push_back(op);
  }
  {
    OpInfo op("pow", "ops/elementwise.h");
    op.backward =
        "`PowBackward`: `g * e * a^(e-1)` for `a`; `g * a^e * log(a)` for the exponent, with `log(a)` "
        "taken as 0 where `a == 0`; a double exponent `p` gives `g * p * pow(a, p - 1)` (zero when `p == 0`)";
    op.value_test = kBinaryValues;
    op.ints = Ints::Skip;  // pow of integers has no integer kernel worth checking: refused or converted per backend
    promoting(op);
    op.samples = [] {
      auto s = binary_samples([](const Tensor& a, const Tensor& b) { return pow(a, b); }, /*positive_a=*/true);
      s.push_back({"double exponent, transposed", [](const In& x) { return pow(x[0].t(), 3.0); }, {rn({3, 2})}});
      s.push_back({"negative double exponent", [](const In& x) { return pow(x[0], -1.5); }, {rpos({5})}});
      return s;
    };
    t.push_back(op);
  }
  t.push_back(binary("maximum", "MaximumBackward",
                     "`a` gets `g * (gt(a, b) + 0.5 * eq(a, b))`, `b` the rest (ties split evenly), then `sum_to`",
                     maximum, nullptr, Ints::Exact));
  t.push_back(binary("minimum", "MinimumBackward", "as `maximum`, with `lt`", minimum, nullptr, Ints::Exact));
  t.back().value_test = "";
  {
    OpInfo op("clamp", "ops/elementwise.h");
    op.backward = "`ClampBackward`: `g * ge(x, lo) * le(x, hi)` (the bounds count as inside)";
    op.value_test = kActivationValues;
    op.ints = Ints::Refused;
    op.samples = [] {
      auto s = unary_samples([](const Tensor& x) { return clamp(x, -0.5, 0.7); });
      s.push_back({"one-sided", [](const In& x) { return clamp(x[0], -0.2); }, {rn({4, 3})}});
      return s;
    };
    t.push_back(op);
  }
  t.push_back(
      entry("where", "ops/elementwise.h",
            "`WhereBackward`: `sum_to(where(cond, g, 0), a)`, `sum_to(where(cond, 0, g), b)`; no gradient for `cond`",
            kBinaryValues, [] {
              Tensor cond = gt(rn({3, 4}), scalar_tensor(0, kFloat64));
              return std::vector<Sample>{
                  {"broadcast b", [](const In& x) { return where(x[2], x[0], x[1]); }, {rn({3, 4}), rn({4})}, {cond}},
                  {"transposed a, broadcast cond",
                   [](const In& x) { return where(x[2], x[0].t(), x[1]); },
                   {rn({4, 3}), rn({3, 4})},
                   {gt(rn({4}), scalar_tensor(0, kFloat64))}},
              };
            }));
  t.back().ints = Ints::Exact;
  t.back().bf16 = Bf16::Anywhere;  // selects, computes nothing
  promoting(t.back());
  t.push_back(entry("masked_fill", "ops/elementwise.h", "composite: `where(mask, scalar, x)` (`WhereBackward`)",
                    kBinaryValues, [] {
                      return std::vector<Sample>{
                          {"same shape",
                           [](const In& x) { return masked_fill(x[0], x[1], -7.0); },
                           {rn({3, 4})},
                           {gt(rn({3, 4}), scalar_tensor(0, kFloat64))}},
                          {"broadcast mask, transposed x",
                           [](const In& x) { return masked_fill(x[0].t(), x[1], 2.0); },
                           {rn({4, 3})},
                           {gt(rn({3, 1}), scalar_tensor(0, kFloat64))}},
                      };
                    }));
  t.back().ints = Ints::Exact;
  using Cmp = Tensor (*)(const Tensor&, const Tensor&);
  using CmpScalar = Tensor (*)(const Tensor&, Scalar);
  struct Comparison {
    const char* name;
    Cmp f;
    CmpScalar fd;
  };
  for (const Comparison& c : std::vector<Comparison>{{"eq", eq, eq}, {"ne", ne, ne}, {"lt", lt, lt},
                                                     {"le", le, le}, {"gt", gt, gt}, {"ge", ge, ge}}) {
    OpInfo op(c.name, "ops/elementwise.h");
    op.backward = "no gradient (a bool tensor)";
    op.value_test = kBinaryValues;
    op.differentiable = false;
    op.ints = Ints::Exact;
    promoting(op);
    op.samples = [c] { return comparison_samples(c.f, c.fd); };
    t.push_back(op);
  }

  // ---- logical ops: bool out, no gradient; a non-bool input counts as `x != 0` ----
  // Integer-valued inputs with zeros among them, so that both truth values occur.
  auto tied01 = [](const Shape& s) { return ints(s, -1, 2).to(kFloat64); };
  t.push_back(entry("logical_not", "ops/elementwise.h", "no gradient (a bool tensor)",
                    "dtypes: comparisons return bool; where, masked_fill and the logical ops take it", [tied01] {
                      return std::vector<Sample>{
                          {"transposed", [](const In& x) { return logical_not(x[0].t()); }, {tied01({3, 4})}},
                          {"of a comparison", [](const In& x) { return logical_not(lt(x[0], 1.0)); }, {tied01({2, 5})}},
                      };
                    }));
  t.back().differentiable = false;
  t.back().ints = Ints::Exact;
  using Logical = Tensor (*)(const Tensor&, const Tensor&);
  for (const auto& [name, f] : std::vector<std::pair<const char*, Logical>>{
           {"logical_and", logical_and}, {"logical_or", logical_or}, {"logical_xor", logical_xor}}) {
    t.push_back(entry(name, "ops/elementwise.h", "no gradient (a bool tensor)",
                      "dtypes: comparisons return bool; where, masked_fill and the logical ops take it",
                      [f = f, tied01] {
                        return std::vector<Sample>{
                            {"broadcast (3, 4) by (4)", [f](const In& x) { return f(x[0], x[1]); },
                             {tied01({3, 4}), tied01({4})}},
                            {"a comparison and a transpose", [f](const In& x) { return f(gt(x[0], 0.0), x[1].t()); },
                             {tied01({3, 4}), tied01({4, 3})}},
                        };
                      }));
    t.back().differentiable = false;
    t.back().ints = Ints::Exact;
    t.back().mixed_dtypes_refused = false;  // each input becomes bool on its own
  }

  // ---- unary math and activations ----
  t.push_back(unary("neg", "`NegBackward`: `neg(g)`", neg));
  t.back().ints = Ints::Exact;
  t.push_back(unary("abs", "`AbsBackward`: `g * sign(x)`", abs));
  {
    OpInfo op =
        unary("sign", "no gradient (zero almost everywhere; nothing is recorded)", sign, false, kActivationValues);
    op.differentiable = false;
    t.push_back(op);
  }
  t.push_back(unary("exp", "`ExpBackward`: `g * y`, `y` the saved output", exp));
  t.push_back(unary("log", "`LogBackward`: `g / x`", log, true));
  t.push_back(unary("sqrt", "`SqrtBackward`: `g * 0.5 / y`", sqrt, true));
  t.push_back(unary("rsqrt", "`RsqrtBackward`: `g * (-0.5) * y^3`", rsqrt, true));
  t.push_back(unary("sin", "`SinBackward`: `g * cos(x)`", sin));
  t.push_back(unary("cos", "`CosBackward`: `neg(g * sin(x))`", cos));
  t.push_back(unary("tanh", "fused `BinaryOp::TanhBackward` on (g, saved output): `g * (1 - y^2)`", tanh));
  t.push_back(unary("sigmoid", "fused `BinaryOp::SigmoidBackward` on (g, saved output): `g * y * (1 - y)`", sigmoid,
                    false, kActivationValues));
  t.push_back(unary("relu", "fused `BinaryOp::ReluBackward` on (g, x)", relu, false, kActivationValues));
  {
    OpInfo op("gelu", "ops/elementwise.h");
    op.backward =
        "fused `BinaryOp::GeluErfBackward` (exact) or `GeluTanhBackward` (`GeluApprox::Tanh`) on (g, x), "
        "node `GeluBackward`; contiguous float32 rows use `vmath::gelu_erf_backward` / `gelu_tanh_backward`";
    op.value_test = kActivationValues;
    op.samples = [] {
      auto s = unary_samples([](const Tensor& x) { return gelu(x); });
      auto tanh_form = unary_samples([](const Tensor& x) { return gelu(x, GeluApprox::Tanh); });
      for (auto& sample : tanh_form) sample.what = "tanh approximation, " + sample.what;
      s.insert(s.end(), tanh_form.begin(), tanh_form.end());
      return s;
    };
    t.push_back(op);
  }
  t.push_back(unary("silu", "fused `BinaryOp::SiluBackward` on (g, x)", silu, false, kActivationValues));
  {
    OpInfo op("elu", "ops/elementwise.h");
    op.backward = "fused `BinaryOp::EluBackward` on (g, x), `p0 = alpha`";
    op.value_test = kActivationValues;
    op.samples = [] { return unary_samples([](const Tensor& x) { return elu(x, 0.7); }); };
    t.push_back(op);
  }
  {
    OpInfo op("softplus", "ops/elementwise.h");
    op.backward = "fused `BinaryOp::SoftplusBackward` on (g, x), `p0 = beta`, `p1 = threshold`";
    op.value_test = kActivationValues;
    // inputs scaled by 2 so that some cross the threshold (beta * x > 3)
    op.samples = [] {
      // mul by an integer 2: an int64 input stays int64, so that softplus is the op refusing it
      auto s = unary_samples([](const Tensor& x) { return softplus(mul(x, 2), 2.0, 3.0); });
      s.push_back({"defaults", [](const In& x) { return softplus(x[0]); }, {rn({3, 4})}});
      return s;
    };
    t.push_back(op);
  }
}

}  // namespace wavspa::test

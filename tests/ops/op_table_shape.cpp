// Op table entries of ops/shape.h and of Tensor's views, copies and in-place methods.
#include "tests/ops/op_table.h"

namespace wavspa::test {

namespace {

const char* kJoinValues = "joining, splitting and indexing";
const char* kViewValues = "views share storage: writes through a view are seen by the base";
const char* kReshapeValues = "reshape is a view when possible and a copy otherwise";
const char* kCopyValues = "contiguous, clone, to(dtype), to(device)";

// Shape ops move elements: integers come out exactly.
OpInfo shape_entry(const std::string& name, const std::string& backward, const std::string& value_test,
                   std::function<std::vector<Sample>()> samples) {
  OpInfo op = entry(name, "ops/shape.h", backward, value_test, std::move(samples));
  op.ints = Ints::Exact;
  op.bf16 = Bf16::Anywhere;  // except those built on the index kernels (set below)
  return op;
}

// Integer values as float64, so that eq, le and ge see ties.
Tensor tied_ints(const Shape& shape) { return ints(shape, -2, 3).to(kFloat64); }

OpInfo method(const std::string& name, const std::string& backward, const std::string& value_test, const OpFn& fn,
              const Shape& shape) {
  OpInfo op("Tensor::" + name, "core/tensor.h");
  op.backward = backward;
  op.value_test = value_test;
  op.ints = Ints::Exact;
  op.bf16 = Bf16::Anywhere;
  op.error_name = name;
  op.samples = [fn, shape] { return std::vector<Sample>{{"random", fn, {rn(shape)}}}; };
  return op;
}

}  // namespace

void add_shape_ops(std::vector<OpInfo>& t) {
  // ---- ops/shape.h ----
  t.push_back(shape_entry("concat", "`ConcatBackward`: one `narrow` view of `g` per input", kJoinValues, [] {
    return std::vector<Sample>{
        {"three inputs, one transposed",
         [](const In& x) {
           return concat({x[0], x[1].t(), x[2]}, 1);
         },
         {rn({2, 3}), rn({1, 2}), rn({2, 2})}},
        {"dim 0 with a zero-size input",
         [](const In& x) {
           return concat({x[0], x[1]}, 0);
         },
         {rn({2, 3}), rn({0, 3})}},
    };
  }));
  t.push_back(shape_entry("stack", "composite: `unsqueeze` each input, then `concat`", kJoinValues, [] {
    return std::vector<Sample>{
        {"last dim",
         [](const In& x) {
           return stack({x[0], x[1]}, -1);
         },
         {rn({2, 3}), rn({2, 3})}},
        {"dim 0, a transposed input",
         [](const In& x) {
           return stack({x[0].t(), x[1]}, 0);
         },
         {rn({3, 2}), rn({2, 3})}},
    };
  }));
  t.back().error_name = "concat";  // stack is concat of unsqueezed inputs, and its errors say so
  t.push_back(shape_entry("split", "views: `narrow` (`SliceBackward`)", kJoinValues, [] {
    return std::vector<Sample>{
        {"sizes {1, 3}",
         [](const In& x) {
           auto parts = split(x[0], std::vector<int64_t>{1, 3}, 1);
           return concat({parts[1].narrow(1, 2, 1), parts[0]}, 1);
         },
         {rn({2, 4})}},
        {"size 2 with a shorter last part", [](const In& x) { return flat(split(x[0], 2, 0)); }, {rn({5, 2})}},
    };
  }));
  t.push_back(shape_entry("chunk", "views: `split(x, ceil(n / chunks), dim)`", kJoinValues, [] {
    return std::vector<Sample>{{"3 chunks of 7, reordered",
                                [](const In& x) {
                                  auto parts = chunk(x[0], 3, 0);
                                  return concat({parts[2], parts[0]}, 0);
                                },
                                {rn({7, 2})}}};
  }));
  t.push_back(shape_entry(
      "pad",
      "`Constant`: `PadBackward`, `narrow` views of `g`; `Reflect`, `Symmetric`, `Replicate`, "
      "`Circular`: one `index_select` per padded dim, whose backward (`index_add`) folds each padded "
      "sample back onto its source",
      "pad: each mode on a known row", [] {
        std::vector<Sample> s;
        for (PadMode mode :
             {PadMode::Constant, PadMode::Reflect, PadMode::Symmetric, PadMode::Replicate, PadMode::Circular}) {
          const std::string m = std::to_string(static_cast<int>(mode));
          s.push_back({"mode " + m + ", last dim",
                       [mode](const In& x) {
                         return pad(x[0], {2, 3}, mode, -2.0);
                       },
                       {rn({2, 4})}});
          s.push_back({"mode " + m + ", two dims of a transpose",
                       [mode](const In& x) {
                         return pad(x[0].t(), {1, 2, 2, 0}, mode);
                       },
                       {rn({4, 3})}});
        }
        return s;
      }));
  t.back().bf16 = Bf16::Cuda;  // the index kernels compute (CPU refuses bfloat16)
  t.push_back(shape_entry("index_select",
                          "`IndexSelectBackward`: zeros of x's shape, then `Backend::index_add` (repeats add up)",
                          kJoinValues, [] {
                            return std::vector<Sample>{
                                {"dim 1, repeated index",
                                 [](const In& x) { return index_select(x[0], 1, x[1]); },
                                 {rn({2, 3})},
                                 {from_vector(std::vector<int64_t>{2, 0, 2})}},
                                {"dim 0 of a transpose, int32 index",
                                 [](const In& x) { return index_select(x[0].t(), 0, x[1]); },
                                 {rn({3, 4})},
                                 {from_vector(std::vector<int32_t>{3, 1})}},
                            };
                          }));
  t.back().bf16 = Bf16::Cuda;  // the index kernels compute (CPU refuses bfloat16)
  t.push_back(
      shape_entry("gather", "`GatherBackward`: zeros of x's shape, then `Backend::scatter_add`", kJoinValues, [] {
        return std::vector<Sample>{
            {"dim 1",
             [](const In& x) { return gather(x[0], 1, x[1]); },
             {rn({2, 4})},
             {from_vector(std::vector<int64_t>{0, 2, 2, 1, 0, 0}, {2, 3})}},
            {"dim 0 of a transpose",
             [](const In& x) { return gather(x[0].t(), 0, x[1]); },
             {rn({2, 3})},
             {from_vector(std::vector<int64_t>{1, 0, 2, 2}, {2, 2})}},
        };
      }));
  t.back().bf16 = Bf16::Cuda;  // the index kernels compute (CPU refuses bfloat16)
  t.push_back(shape_entry("flip", "composite: `index_select` with reversed indices; backward: the same flip (own node)", kJoinValues, [] {
    return std::vector<Sample>{{"two dims", [](const In& x) { return flip(x[0], {0, -1}); }, {rn({3, 4})}}};
  }));
  t.back().bf16 = Bf16::Cuda;  // the index kernels compute (CPU refuses bfloat16)
  t.push_back(shape_entry("roll", "composite: `index_select` per dim; without dims: `reshape({-1})`, roll, `reshape`",
                          kJoinValues, [] {
                            return std::vector<Sample>{
                                {"two dims",
                                 [](const In& x) {
                                   return roll(x[0], {1, -2}, {0, 1});
                                 },
                                 {rn({3, 4})}},
                                {"flattened", [](const In& x) { return roll(x[0], {5}); }, {rn({3, 4})}},
                            };
                          }));
  t.back().bf16 = Bf16::Cuda;  // the index kernels compute (CPU refuses bfloat16)
  t.push_back(shape_entry("repeat",
                          "composite: `reshape`, `expand`, `reshape`; the gradient is summed back by `ExpandBackward`",
                          kJoinValues, [] {
                            return std::vector<Sample>{{"new leading dim",
                                                        [](const In& x) {
                                                          return repeat(x[0], {2, 1, 3});
                                                        },
                                                        {rn({2, 2})}}};
                          }));

  // ---- Tensor: views ----
  t.push_back(method("view", "view: `ViewBackward`, `g.reshape(input shape)`; throws if no view exists", kReshapeValues,
                     [](const In& x) {
                       return x[0].view({3, 4});
                     },
                     {2, 6}));
  {
    OpInfo op =
        method("reshape", "`view` when strides exist, else `contiguous().view()` (`CloneBackward`, `ViewBackward`)",
               kReshapeValues,
               [](const In& x) {
                 return x[0].reshape({3, 4});
               },
               {2, 6});
    op.samples = [] {
      return std::vector<Sample>{
          {"a view",
           [](const In& x) {
             return x[0].reshape({3, 4});
           },
           {rn({2, 6})}},
          {"a copy (transposed input)", [](const In& x) { return x[0].t().reshape({-1}); }, {rn({2, 3})}},
      };
    };
    t.push_back(op);
  }
  t.push_back(method("flatten", "`reshape`", kReshapeValues, [](const In& x) { return x[0].flatten(1); }, {2, 3, 2}));
  t.push_back(method("transpose", "view: `TransposeBackward`, `g.transpose(dim0, dim1)`", kReshapeValues,
                     [](const In& x) { return x[0].transpose(0, 2); }, {2, 3, 4}));
  t.push_back(method("t", "`transpose(0, 1)`; the tensor itself below 2 dims", kViewValues,
                     [](const In& x) { return x[0].t(); }, {2, 3}));
  t.push_back(method("permute", "view: `PermuteBackward`, `g.permute(inverse)`", kViewValues,
                     [](const In& x) {
                       return x[0].permute({2, 0, 1});
                     },
                     {2, 3, 4}));
  t.push_back(
      method("narrow", "`slice` with step 1", kViewValues, [](const In& x) { return x[0].narrow(0, 1, 2); }, {4, 3}));
  t.push_back(method("slice",
                     "view: `SliceBackward`, `g` copied into the same strided window of zeros of the input's shape",
                     kViewValues, [](const In& x) { return x[0].slice(1, 1, 6, 2); }, {2, 7}));
  t.push_back(method("select", "`narrow`, then `squeeze(dim)`", kViewValues,
                     [](const In& x) { return x[0].select(1, -1); }, {4, 3}));
  t.push_back(method("expand", "view: `ExpandBackward`, `sum_to(g, input shape)`", kViewValues,
                     [](const In& x) {
                       return x[0].unsqueeze(1).expand({3, 4, 2});
                     },
                     {3, 2}));
  t.push_back(method("broadcast_to", "calls `expand`", "",
                     [](const In& x) {
                       return x[0].broadcast_to({2, 3, 4});
                     },
                     {3, 1}));
  t.back().error_name = "expand";
  {
    OpInfo op = method("squeeze",
                       "`squeeze()`: `reshape` without the size-1 dims; `squeeze(dim)`: view, "
                       "`SqueezeBackward`, `g.reshape(input shape)`",
                       kViewValues, [](const In& x) { return x[0].squeeze(); }, {1, 3, 1});
    op.samples = [] {
      return std::vector<Sample>{
          {"all size-1 dims", [](const In& x) { return x[0].squeeze(); }, {rn({1, 3, 1})}},
          {"one dim", [](const In& x) { return x[0].squeeze(2); }, {rn({2, 3, 1})}},
          {"a dim whose size is not 1", [](const In& x) { return x[0].squeeze(0); }, {rn({2, 3})}},
      };
    };
    t.push_back(op);
  }
  t.push_back(method("unsqueeze", "view: `UnsqueezeBackward`, `g.reshape(input shape)`", kViewValues,
                     [](const In& x) { return x[0].unsqueeze(1); }, {3, 2}));
  {
    OpInfo op = method("as_strided", "no gradient: the raw building block of the views, without autograd", "",
                       [](const In& x) {
                         return x[0].as_strided({2, 2}, {1, 3}, 1);
                       },
                       {3, 3});
    op.differentiable = false;
    t.push_back(op);
  }

  // ---- Tensor: copies and conversions ----
  t.push_back(method("contiguous", "the tensor itself if contiguous, else `clone()`", kCopyValues,
                     [](const In& x) { return x[0].t().contiguous(); }, {2, 3}));
  t.push_back(method("clone", "`CloneBackward`: `g` unchanged", kCopyValues,
                     [](const In& x) { return x[0].slice(0, 0, 4, 2).clone(); }, {4, 3}));
  {
    OpInfo op = method("to",
                       "`to(DType)`: `ToDtypeBackward`, `g.to(original dtype)`, recorded for floating targets; "
                       "`to(Device)`: `ToDeviceBackward`, `g.to(original device)`",
                       kCopyValues, [](const In& x) { return x[0].to(kFloat32).to(kFloat64); }, {3, 2});
    op.samples = [] {
      return std::vector<Sample>{
          // (a float32 round trip is too coarse for central differences; "gradients flow through dtype
          // conversions" in tests/autograd checks that backward by hand)
          {"float64 of a transpose", [](const In& x) { return x[0].t().to(kFloat64); }, {rn({3, 2})}},
          {"to the same device", [](const In& x) { return x[0].to(x[0].device()); }, {rn({2, 2})}},
      };
    };
    op.ints = Ints::Skip;  // converting is its job
    t.push_back(op);
  }
  {
    OpInfo op = method("detach", "no gradient: a new header on the same storage, without autograd", "",
                       [](const In& x) { return x[0].detach(); }, {2, 3});
    op.differentiable = false;
    t.push_back(op);
  }
  {
    OpInfo op = method("sum_with", "no gradient: never recorded (the backward engine sums a node's incoming gradients with it)",
                       "", [](const In& x) { return x[0].t().sum_with(x[1]); }, {3, 2});
    op.samples = [] {
      return std::vector<Sample>{
          {"a transposed tensor plus a contiguous one", [](const In& x) { return x[0].t().sum_with(x[1]); },
           {rn({3, 2}), rn({2, 3})}}};
    };
    op.differentiable = false;
    op.bf16 = Bf16::Cuda;
    t.push_back(op);
  }
  t.push_back(method("sum", "calls `sum(x)`", "reductions match loops, in every memory layout",
                     [](const In& x) { return x[0].t().sum(); }, {3, 4}));
  t.back().ints = Ints::Exact;
  t.back().bf16 = Bf16::Cuda;
  t.push_back(method("mean", "calls `mean(x)`", "", [](const In& x) { return x[0].t().mean(); }, {3, 4}));
  t.back().ints = Ints::Skip;  // integers give a float32 mean ("dtypes: integer and bool reductions are exact")
  t.back().bf16 = Bf16::Cuda;

  // ---- Tensor: the method forms of ops (each calls the free function, whose own entry
  // covers integers and more layouts; here one sample each, through a transposed view, with
  // the method the first op that computes, so that the refusals name it) ----
  // `inputs` makes the sample's inputs when the table's samples are drawn (from the
  // generator seeded per op), not when the table is built.
  auto computing = [&t](const std::string& name, const OpFn& fn, std::function<In()> inputs,
                        bool differentiable = true) {
    t.push_back(method(name, "calls `" + name + "(x, ...)`",
                       "method forms give the free functions' bits, and comparisons take scalars", fn, {1}));
    t.back().samples = [fn, inputs] { return std::vector<Sample>{{"a transpose", fn, inputs()}}; };
    t.back().ints = Ints::Skip;  // the free function's entry checks integer inputs
    t.back().bf16 = Bf16::Cuda;
    t.back().differentiable = differentiable;
  };
  // Both overloads of the binary methods: a tensor operand, then a scalar one.
  computing("add", [](const In& x) { return x[0].t().add(x[1]).add(1.5); }, [] { return In{rn({4, 3}), rn({3, 4})}; });
  promoting(t.back());
  computing("sub", [](const In& x) { return x[0].t().sub(x[1]).sub(2.0); }, [] { return In{rn({4, 3}), rn({4})}; });
  promoting(t.back());
  computing("mul", [](const In& x) { return x[0].t().mul(x[1]).mul(3.0); }, [] { return In{rn({4, 3}), rn({3, 4})}; });
  promoting(t.back());
  computing("div", [](const In& x) { return x[0].t().div(x[1]).div(4.0); }, [] { return In{rn({4, 3}), rpos({3, 4})}; });
  promoting(t.back());
  computing("pow", [](const In& x) { return x[0].t().pow(1.5); }, [] { return In{rpos({4, 3})}; });
  computing("neg", [](const In& x) { return x[0].t().neg(); }, [] { return In{rn({4, 3})}; });
  computing("abs", [](const In& x) { return x[0].t().abs(); }, [] { return In{rn({4, 3})}; });
  computing("exp", [](const In& x) { return x[0].t().exp(); }, [] { return In{rn({4, 3})}; });
  computing("log", [](const In& x) { return x[0].t().log(); }, [] { return In{rpos({4, 3})}; });
  computing("sqrt", [](const In& x) { return x[0].t().sqrt(); }, [] { return In{rpos({4, 3})}; });
  computing("tanh", [](const In& x) { return x[0].t().tanh(); }, [] { return In{rn({4, 3})}; });
  computing("sigmoid", [](const In& x) { return x[0].t().sigmoid(); }, [] { return In{rn({4, 3})}; });
  computing("relu", [](const In& x) { return x[0].t().relu(); }, [] { return In{rn({4, 3})}; });
  computing("max", [](const In& x) { return x[0].t().max(1).add(x[0].max()); }, [] { return In{rn({4, 3})}; });
  computing("min", [](const In& x) { return x[0].t().min(0, true).add(x[0].min()); }, [] { return In{rn({4, 3})}; });
  computing("softmax", [](const In& x) { return x[0].t().softmax(-1); }, [] { return In{rn({4, 3})}; });
  computing("log_softmax", [](const In& x) { return x[0].t().log_softmax(0); }, [] { return In{rn({4, 3})}; });
  computing("argmax", [](const In& x) { return x[0].t().argmax(1).add(x[0].argmax()); }, [] { return In{rn({4, 3})}; }, false);
  computing("argmin", [](const In& x) { return x[0].t().argmin(0, true); }, [] { return In{rn({4, 3})}; }, false);
  // Comparisons: both overloads, bool out (added as int64), no gradient. Integer-valued
  // inputs, so that eq, le and ge see ties.
  computing("eq", [](const In& x) { return x[0].t().eq(x[1]).add(x[0].t().eq(1.0)); }, [] { return In{tied_ints({4, 3}), tied_ints({3, 4})}; }, false);
  promoting(t.back());
  computing("ne", [](const In& x) { return x[0].t().ne(x[1]).add(x[0].t().ne(1.0)); }, [] { return In{tied_ints({4, 3}), tied_ints({3, 4})}; }, false);
  promoting(t.back());
  computing("lt", [](const In& x) { return x[0].t().lt(x[1]).add(x[0].t().lt(0.5)); }, [] { return In{tied_ints({4, 3}), tied_ints({4})}; }, false);
  promoting(t.back());
  computing("le", [](const In& x) { return x[0].t().le(x[1]).add(x[0].t().le(1.0)); }, [] { return In{tied_ints({4, 3}), tied_ints({4})}; }, false);
  promoting(t.back());
  computing("gt", [](const In& x) { return x[0].t().gt(x[1]).add(x[0].t().gt(0.5)); }, [] { return In{tied_ints({4, 3}), tied_ints({3, 4})}; }, false);
  promoting(t.back());
  computing("ge", [](const In& x) { return x[0].t().ge(x[1]).add(x[0].t().ge(1.0)); }, [] { return In{tied_ints({4, 3}), tied_ints({3, 4})}; }, false);
  promoting(t.back());
  // Logical ops and any / all: bool out (a non-bool input counts as x != 0), no gradient.
  computing("logical_not", [](const In& x) { return x[0].t().logical_not(); }, [] { return In{tied_ints({4, 3})}; }, false);
  computing("logical_and", [](const In& x) { return x[0].t().logical_and(x[1]); }, [] { return In{tied_ints({4, 3}), tied_ints({4})}; }, false);
  t.back().mixed_dtypes_refused = false;
  computing("logical_or", [](const In& x) { return x[0].t().logical_or(x[1]); }, [] { return In{tied_ints({4, 3}), tied_ints({3, 4})}; }, false);
  t.back().mixed_dtypes_refused = false;
  computing("any", [](const In& x) { return x[0].t().any(); }, [] { return In{tied_ints({4, 3})}; }, false);
  computing("all", [](const In& x) { return x[0].t().all(); }, [] { return In{tied_ints({4, 3})}; }, false);

  // ---- Tensor: indexing (views) ----
  t.push_back(method("index", "a chain of `select`, `slice` and `unsqueeze` views (their backwards)",
                     "index: integers, slices, None and Ellipsis as Python indexes, as views",
                     [](const In& x) {
                       using namespace indexing;
                       return x[0].transpose(0, 2).index({Slice(1, None), None, Ellipsis, Slice(None, None, 2)});
                     },
                     {4, 3, 5}));
  t.push_back(method("operator[]", "`select(0, i)`'s backward",
                     "index: integers, slices, None and Ellipsis as Python indexes, as views",
                     [](const In& x) { return x[0].t()[1]; }, {4, 3}));
  t.back().error_name = "select";

  // ---- Tensor: in place -----------------------------------------------------------------
  // Each sample changes a clone() of its first input: a non-leaf of the graph, so that the
  // write is recorded (the target's history rebased onto it) and gradcheck reaches both the
  // old values and the operand through it.
  auto in_place = [](const std::string& name, const std::string& backward, const std::string& value_test,
                     std::function<void(Tensor&, const In&)> f, int operands) {
    OpInfo op("Tensor::" + name, "core/tensor.h");
    op.backward = backward;
    op.value_test = value_test;
    op.ints = Ints::Exact;
    op.bf16 = Bf16::Anywhere;  // add_ and mul_ compute: set below
    op.error_name = name;
    op.samples = [f, operands] {
      OpFn fn = [f](const In& x) {
        Tensor y = x[0].clone();
        f(y, x);
        return y;
      };
      In inputs = {rn({3, 4})};
      if (operands > 1) inputs.push_back(rn({4}));
      return std::vector<Sample>{{"random, broadcast operand", fn, inputs}};
    };
    return op;
  };
  t.push_back(in_place(
      "copy_", "`CopyBackward`: g summed over the broadcast dims to the source, in its dtype and on its device; none to the old values",
      "", [](Tensor& y, const In& x) { y.copy_(x[1]); }, 2));
  t.back().mixed_dtypes_refused = false;   // copy_ converts dtypes
  t.back().mixed_devices_refused = false;  // and copies across devices
  t.push_back(in_place(
      "fill_", "`FillBackward`: none to the old values", kViewValues, [](Tensor& y, const In&) { y.fill_(-1.5); }, 1));
  t.back().ints = Ints::Skip;  // fills -1.5, which an integer tensor truncates
  t.push_back(in_place(
      "zero_", "`FillBackward`: none to the old values", kViewValues, [](Tensor& y, const In&) { y.zero_(); }, 1));
  t.push_back(in_place(
      "add_", "`AddInplaceBackward`: g to the old values, alpha g summed to the operand's shape", "",
      [](Tensor& y, const In& x) { y.add_(x[1], 2.0); }, 2));
  t.back().bf16 = Bf16::Cuda;
  t.push_back(in_place(
      "mul_", "`MulInplaceBackward`: factor g", "", [](Tensor& y, const In&) { y.mul_(-3.0); }, 1));
  t.back().bf16 = Bf16::Cuda;
}

}  // namespace wavspa::test

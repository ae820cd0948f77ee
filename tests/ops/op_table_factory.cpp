// Op table entries of ops/factory.h. Factories make leaves: no gradient. Each sample takes
// its dtype and device from a "like" input, so that the harness runs it in every dtype and on
// every device like any other op.
#include "tests/ops/op_table.h"

namespace wavspa::test {

namespace {

OpInfo factory(const std::string& name, const std::string& value_test, Ints ints, const OpFn& fn,
               const Shape& like = {2, 3}) {
  OpInfo op(name, "ops/factory.h");
  op.backward = "no gradient (a leaf)";
  op.value_test = value_test;
  op.differentiable = false;
  op.ints = ints;
  op.bf16 = Bf16::Anywhere;  // creation works on both devices; the random ones have no bfloat16 version
  op.samples = [fn, like] { return std::vector<Sample>{{"dtype and device of a random tensor", fn, {rn(like)}}}; };
  return op;
}

}  // namespace

void add_factory_ops(std::vector<OpInfo>& t) {
  const char* kFactories = "factories";
  t.push_back(factory("zeros", kFactories, Ints::Exact, [](const In& x) {
    return zeros({2, 4}, x[0].dtype(), x[0].device());
  }));
  t.push_back(
      factory("ones", kFactories, Ints::Exact, [](const In& x) { return ones({3}, x[0].dtype(), x[0].device()); }));
  t.push_back(factory("full", kFactories, Ints::Exact, [](const In& x) {
    return full({2, 2}, -3.0, x[0].dtype(), x[0].device());
  }));
  t.push_back(factory("scalar_tensor", "tensor metadata and contiguity", Ints::Exact,
                      [](const In& x) { return scalar_tensor(7.0, x[0].dtype(), x[0].device()); }));
  t.push_back(factory("zeros_like", kFactories, Ints::Exact, [](const In& x) { return zeros_like(x[0].t()); }));
  t.push_back(factory("ones_like", "", Ints::Exact, [](const In& x) { return ones_like(x[0]); }));
  t.push_back(factory("full_like", kFactories, Ints::Exact, [](const In& x) { return full_like(x[0], 4.0); }));
  {
    OpInfo op =
        factory("arange", kFactories, Ints::Exact, [](const In& x) { return arange(5, x[0].dtype(), x[0].device()); });
    op.samples = [] {
      return std::vector<Sample>{
          {"arange(end)", [](const In& x) { return arange(5, x[0].dtype(), x[0].device()); }, {rn({1})}},
          {"arange(start, end, step)",
           [](const In& x) { return arange(-2, 7, 3, x[0].dtype(), x[0].device()); },
           {rn({1})}},
      };
    };
    t.push_back(op);
  }
  t.push_back(factory("linspace", kFactories, Ints::Skip,  // fractional steps: integers truncate them
                      [](const In& x) { return linspace(-1, 2, 7, x[0].dtype(), x[0].device()); }));
  t.push_back(
      factory("eye", kFactories, Ints::Exact, [](const In& x) { return eye(3, 4, x[0].dtype(), x[0].device()); }));
  t.push_back(factory("from_vector", kFactories, Ints::Exact, [](const In& x) {
    return from_vector(std::vector<double>{1, -2, 3, 4, 5, -6}, {2, 3}, x[0].device()).to(x[0].dtype());
  }));
  t.push_back(factory("tensor", kFactories, Ints::Exact, [](const In& x) {
    return tensor({{1, 2}, {-3, 4}}, x[0].dtype(), x[0].device());
  }));
  // Philox: the same seed gives the same numbers on the CPU and on CUDA.
  const char* kPhilox = "Philox: known answer, same seed same numbers, disjoint draws";
  t.push_back(factory("rand", kPhilox, Ints::Refused, [](const In& x) {
    Generator g(3);
    return rand({4, 5}, x[0].dtype(), x[0].device(), &g);
  }));
  t.back().bf16 = Bf16::Refused;
  t.back().error_name = "uniform";  // rand is uniform on [0, 1)
  t.push_back(factory("uniform", "", Ints::Refused, [](const In& x) {
    Generator g(4);
    return uniform({7}, -2, 5, x[0].dtype(), x[0].device(), &g);
  }));
  t.back().bf16 = Bf16::Refused;
  t.push_back(factory("randn", kPhilox, Ints::Refused, [](const In& x) {
    Generator g(5);
    return randn({3, 6}, x[0].dtype(), x[0].device(), &g);
  }));
  t.back().bf16 = Bf16::Refused;
  t.push_back(factory("randint", kPhilox, Ints::Exact, [](const In& x) {
    Generator g(6);
    return randint(-4, 9, {3, 5}, x[0].dtype(), x[0].device(), &g);
  }));
  t.back().bf16 = Bf16::Refused;
}

}  // namespace wavspa::test

// CUDA against CPU for the kernels of backends/cuda/{memory,elementwise,reduce,index,random}.cu
// and the caching allocator of backends/cuda/cuda_runtime.cu: transfers and conversions,
// every elementwise op, the reductions, the shape ops that copy, the random numbers (the
// CPU's, from the same seed) and the allocator's statistics. Every case skips itself on a
// machine without a GPU, and runs with the allocator's poison on (new blocks filled with
// NaN / -1), so a kernel that leaves an output element unwritten fails its parity check.
#ifdef WAVSPA_CUDA

#include <cmath>
#include <functional>
#include <cstring>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_runtime.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

const DType kAllDtypes[] = {kFloat32, kFloat64, kInt32, kInt64};


// Turns the allocator's poison on for one test case and restores the previous setting.
struct PoisonOn {
  bool saved = cuda::poison();
  PoisonOn() { cuda::set_poison(true); }
  ~PoisonOn() { cuda::set_poison(saved); }
};

// Sums of `terms` O(1) values: the CPU and the GPU both add in double but in different
// orders, so float64 results differ by a few ulps of the partial sums.
Tol sum_tol(DType dt, int64_t terms) {
  if (dt == kFloat64) return {1e-10 + 1e-15 * (double)terms, 1e-9};
  return {1e-5, 1e-4};
}

// A random tensor of any dtype: normals for floats, integers in [-50, 50) otherwise.
Tensor random_of(DType dt, const Shape& shape) {
  if (is_floating(dt)) return randn(shape, dt);
  return randint(-50, 50, shape, dt);
}

// Positive values in [0.5, 1.5): for log, sqrt, division and pow bases.
Tensor positive(DType dt, const Shape& shape) { return add(rand(shape, dt), 0.5).detach(); }

// Integers in [lo, hi) as a floating tensor: ties and equalities for comparisons and argmax.
Tensor small_ints(DType dt, const Shape& shape, int64_t lo = -2, int64_t hi = 3) {
  return randint(lo, hi, shape).to(dt);
}

// Both tensors on the CPU with the same dtype, compared byte for byte.
template <typename T>
void check_bits(const Tensor& cpu, const Tensor& gpu, const std::string& what) {
  INFO(what);
  REQUIRE(gpu.device().is_cuda());
  REQUIRE(cpu.shape() == gpu.shape());
  std::vector<T> a = cpu.to_vector<T>(), b = gpu.to(Device::cpu()).to_vector<T>();
  REQUIRE(a.size() == b.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && bad++ == 0) first = i;
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", a.size(), " elements differ, first at ", first,
                " (cpu ", a.empty() ? T(0) : a[first], ", cuda ", b.empty() ? T(0) : b[first], ")");
}

void check_bits_any(const Tensor& cpu, const Tensor& gpu, const std::string& what) {
  visit_dtype(cpu.dtype(), "check_bits", [&](auto zero) { check_bits<decltype(zero)>(cpu, gpu, what); });
}

}  // namespace

// ---- memory.cu -------------------------------------------------------------------------------

TEST_CASE("cuda core: round trips of every dtype, views, empty and 0-d tensors" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kAllDtypes) {
    Tensor x = random_of(dt, {4, 5, 6});
    Tensor g = x.to(Device::cuda());
    CHECK(g.device().is_cuda());
    CHECK(g.dtype() == dt);
    check_bits_any(x, g, label(dt, "round trip"));
    // Views of a CPU tensor are made contiguous on the way up; views of a CUDA tensor are
    // copied by the strided copy kernel.
    check_bits_any(x.transpose(0, 2).contiguous(), x.transpose(0, 2).to(Device::cuda()),
                   label(dt, "upload of a transpose"));
    check_bits_any(x.transpose(0, 2).contiguous(), g.transpose(0, 2).contiguous(),
                   label(dt, "contiguous() of a CUDA transpose"));
    check_bits_any(x.slice(1, 1, 5, 2).contiguous(), g.slice(1, 1, 5, 2).contiguous(),
                   label(dt, "strided slice"));
    check_bits_any(x.select(2, 3).contiguous(), g.select(2, 3).contiguous(), label(dt, "select"));
    check_bits_any(x.narrow(0, 1, 2).expand({3, 2, 5, 6}).contiguous(),
                   g.narrow(0, 1, 2).expand({3, 2, 5, 6}).contiguous(), label(dt, "expand (stride 0)"));
    check_bits_any(x.permute({2, 0, 1}).contiguous(), g.permute({2, 0, 1}),
                   label(dt, "download of a permutation"));
    // Empty and 0-d tensors.
    Tensor e = Tensor::empty({0, 3}, dt).to(Device::cuda());
    CHECK(e.numel() == 0);
    CHECK(e.to(Device::cpu()).shape() == Shape{0, 3});
    CHECK(scalar_tensor(7, dt).to(Device::cuda()).item() == 7);
  }
}

TEST_CASE("cuda core: dtype conversion on the device, contiguous and strided" * gpu_only()) {
  PoisonOn poison;
  for (DType from : kAllDtypes)
    for (DType to : kAllDtypes) {
      // Floats with fractional parts and both signs: the conversion to integers truncates.
      Tensor x = is_floating(from) ? mul(randn({7, 9}, from), 40.0) : random_of(from, {7, 9});
      Tensor g = x.to(Device::cuda());
      const std::string what = str(dtype_name(from), " -> ", dtype_name(to));
      check_bits_any(x.to(to), g.to(to), what);
      check_bits_any(x.t().to(to), g.t().to(to), what + " of a transpose");
      // Into a strided destination: copy_ through a transposed view of a CUDA tensor.
      Tensor dst = zeros({9, 7}, to, Device::cuda());
      dst.t().copy_(g);
      check_bits_any(x.to(to).t().contiguous(), dst, what + " into a transposed view");
    }
}

TEST_CASE("cuda core: a row broadcast copied into a contiguous tensor (the bias before a product) gives the CPU's bits" * gpu_only()) {
  PoisonOn poison;
  // (rows, cols): multiples of 8 take the broadcast-row kernel (one block column, several, a
  // 4-column-group row, more rows than the grid covers at once); 12 columns the generic path
  struct Case { Shape shape; int64_t cols; };
  for (const Case& c : {Case{{1, 8}, 8}, Case{{3, 16}, 16}, Case{{32032, 192}, 192}, Case{{5, 1000}, 1000},
                        Case{{4, 5, 64}, 64}, Case{{200001, 8}, 8}, Case{{7, 12}, 12}}) {
    for (DType from : {kFloat32, kFloat64, kInt32, kInt64, kBFloat16})
      for (DType to : {kBFloat16, kFloat32, kFloat64, kInt64}) {
        Tensor row = from == kBFloat16 ? mul(randn({c.cols}), 40.0).to(kBFloat16)
                     : is_floating(from) ? mul(randn({c.cols}, from), 40.0)
                                         : random_of(from, {c.cols});
        const std::string what = str(dtype_name(from), " -> ", dtype_name(to), " ", shape_str(c.shape));
        Tensor want = Tensor::empty(c.shape, to), got = Tensor::empty(c.shape, to, Device::cuda());
        backend_for(Device::cpu()).copy(row.expand(c.shape), want);
        backend_for(Device::cuda()).copy(row.to(Device::cuda()).expand(c.shape), got);
        // bfloat16 compared through float32 (exact both ways)
        if (to == kBFloat16) check_bits_any(want.to(kFloat32), got.to(kFloat32), what);
        else check_bits_any(want, got, what);
      }
  }
}

TEST_CASE("cuda core: fill, set, copy_ across devices, and uploads of freed host buffers" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kAllDtypes) {
    check_bits_any(full({3, 4}, 2.5, dt), full({3, 4}, 2.5, dt, Device::cuda()), label(dt, "full"));
    check_bits_any(zeros({5, 3}, dt), zeros({5, 3}, dt, Device::cuda()), label(dt, "zeros (memset)"));
    // A strided fill writes only the view.
    Tensor c = zeros({4, 6}, dt), g = zeros({4, 6}, dt, Device::cuda());
    c.slice(1, 1, 6, 2).fill_(3);
    g.slice(1, 1, 6, 2).fill_(3);
    check_bits_any(c, g, label(dt, "fill of a strided slice"));
    c.set({2, 5}, -4);
    g.set({2, 5}, -4);
    check_bits_any(c, g, label(dt, "set one element"));
    // copy_ from a CPU tensor into a CUDA view.
    Tensor src = random_of(dt, {4, 3});
    c.slice(1, 0, 6, 2).copy_(src);
    g.slice(1, 0, 6, 2).copy_(src);
    check_bits_any(c, g, label(dt, "copy_ from the CPU into a strided view"));
  }
  // -0.0 must keep its sign bit (not the zero-memset path).
  Tensor nz = full({8}, -0.0, kFloat64, Device::cuda()).to(Device::cpu());
  for (double v : nz.to_vector<double>()) CHECK(std::signbit(v));

  // The host buffer of each upload is freed at once; the staging pool must have copied it.
  std::vector<Tensor> up;
  for (int i = 0; i < 300; ++i) {
    std::vector<float> v(1000 + 37 * i, (float)i);
    up.push_back(from_vector(v, {}, Device::cuda()));
  }
  for (int i = 0; i < 300; i += 23) {
    std::vector<float> back = up[i].to_vector<float>();
    REQUIRE(back.size() == (size_t)(1000 + 37 * i));
    CHECK(back.front() == (float)i);
    CHECK(back.back() == (float)i);
  }
  // Larger than the staging buffers (64 MiB): the synchronous path.
  {
    std::vector<float> big((size_t(17) << 20) + 5);
    for (size_t i = 0; i < big.size(); ++i) big[i] = (float)(i % 1000003);
    Tensor g = from_vector(big, {}, Device::cuda());
    big.assign(big.size(), -1.0f);
    std::vector<float> back = g.to_vector<float>();
    CHECK(back[0] == 0.0f);
    CHECK(back[1000004] == 1.0f);
    CHECK(back[back.size() - 1] == (float)((back.size() - 1) % 1000003));
  }
}

// ---- elementwise.cu ----------------------------------------------------------------------------

TEST_CASE("cuda core: binary ops with broadcasting, scalars and non-contiguous inputs" * gpu_only()) {
  PoisonOn poison;
  Sizes sz;
  using Fn = Tensor (*)(const Tensor&, const Tensor&);
  struct Case {
    const char* name;
    Fn f;
    bool positive_b;  // the second operand must be positive (a divisor)
  };
  const Case cases[] = {{"add", add, false},         {"sub", sub, false},
                        {"mul", mul, false},         {"div", div, true},
                        {"maximum", maximum, false}, {"minimum", minimum, false}};
  for (DType dt : kDtypes)
    for (int trial = 0; trial < 2; ++trial) {
      const int64_t a = sz(1, 5), b = sz(2, 6), c = sz(1, 7);
      INFO(str(dtype_name(dt), " a=", a, " b=", b, " c=", c));
      for (const Case& k : cases) {
        Fn f = k.f;
        auto second = [&](const Shape& s) { return k.positive_b ? positive(dt, s) : randn(s, dt); };
        // (a, b, c) op (b, 1): broadcasting in two directions.
        check_parity([f](const In& in) { return f(in[0], in[1]); }, {randn({a, b, c}, dt), second({b, 1})},
                     label(dt, str(k.name, " broadcast")));
        // A transposed and a strided-slice operand.
        check_parity([f, b](const In& in) { return f(in[0].transpose(0, 2), in[1].slice(1, 0, 2 * b, 2)); },
                     {randn({c, b, a}, dt), second({a, 2 * b, c})}, label(dt, str(k.name, " non-contiguous")));
        // Scalar-like operand (stride 0 everywhere) and an expanded one.
        check_parity([f](const In& in) { return f(in[0], in[1]); }, {randn({a, b, c}, dt), second({})},
                     label(dt, str(k.name, " with a 0-d tensor")));
        check_parity([f, a](const In& in) { return f(in[0].expand({a, -1, -1}), in[1].t()); },
                     {randn({1, b, c}, dt), second({c, b})}, label(dt, str(k.name, " expanded")));
      }
      // pow: a positive base, exponents of both signs.
      check_parity([](const In& in) { return pow(in[0], in[1]); }, {positive(dt, {a, b, c}), randn({c}, dt)},
                   label(dt, "pow"));
      check_parity([](const In& in) { return pow(in[0].t(), 3.0); }, {randn({b, c}, dt)}, label(dt, "pow 3"));
      check_parity([](const In& in) { return pow(in[0], -1.5); }, {positive(dt, {a, b})}, label(dt, "pow -1.5"));
      // Ties: the gradient of maximum / minimum is split between equal inputs.
      check_parity([](const In& in) { return maximum(in[0], in[1]); },
                   {small_ints(dt, {a, b, c}), small_ints(dt, {b, c})}, label(dt, "maximum with ties"));
      check_parity([](const In& in) { return minimum(in[0].transpose(1, 2), in[1]); },
                   {small_ints(dt, {a, b, c}), small_ints(dt, {c, 1})}, label(dt, "minimum with ties"));
      // Scalar forms go through 0-d tensors expanded with stride 0.
      check_parity([](const In& in) { return (2.0 - in[0]) * 3.0 / 4.0 + 1.0; }, {randn({a, b}, dt)},
                   label(dt, "scalar arithmetic"));
      check_parity([](const In& in) { return 2.0 / in[0]; }, {positive(dt, {a, c})}, label(dt, "scalar / x"));
    }
}

TEST_CASE("cuda core: the eight-element paths (contiguous, row broadcasts, unaligned views) give the CPU's bits" * gpu_only()) {
  // for_each_element moves 8 elements per thread where every tensor is contiguous, or the
  // inner dim is contiguous or broadcast (a bias over rows, a mask per row), as 16-byte words
  // where aligned and one by one elsewhere (row ends, views that start off 16 bytes). Adds,
  // products, relu and conversions round once, so the CPU gives the same bits: for bfloat16,
  // the float32 result rounded.
  PoisonOn poison;
  for (DType dt : {kBFloat16, kFloat32, kFloat64}) {
    for (int64_t C : {int64_t(128), int64_t(67), int64_t(8), int64_t(5)}) {
      const int64_t R = 37;
      INFO(str(dtype_name(dt), " C=", C));
      const DType host = dt == kBFloat16 ? kFloat32 : dt;  // where the CPU computes
      const Tensor x = randn({R, C + 1}), y = randn({R, C + 1}), bias = randn({C}), rowm = randn({R, 1});
      auto gpu = [&](const Tensor& t) { return t.to(dt).to(Device::cuda()); };
      auto cpu = [&](const Tensor& t) { return t.to(dt).to(host); };  // the values the GPU sees
      auto expect = [&](const Tensor& t) { return t.to(dt); };         // rounded as the GPU stores
      // bfloat16 compared as its exact float32 values (the CPU has no bfloat16 arithmetic).
      auto same = [](const Tensor& want, const Tensor& got, const char* what) {
        auto wide = [](const Tensor& t) { return t.dtype() == kBFloat16 ? t.to(kFloat32) : t; };
        check_bits_any(wide(want), wide(got), what);
      };
      struct Layout {
        const char* name;
        std::function<Tensor(const Tensor&)> view;
      };
      // Whole rows of C (contiguous), and the same values shifted by one element (every row
      // and the first element off 16-byte alignment).
      for (const Layout& l : {Layout{"contiguous", [C](const Tensor& t) { return t.slice(1, 0, C).contiguous(); }},
                              Layout{"offset by one", [C, R](const Tensor& t) {
                                       return t.reshape({R * (C + 1)}).slice(0, 1, 1 + R * C).reshape({R, C});
                                     }}}) {
        INFO(l.name);
        const Tensor a = l.view(x), b = l.view(y);
        same(expect(add(cpu(a), cpu(b))), add(gpu(a), gpu(b)), "add");
        same(expect(mul(cpu(a), cpu(b))), mul(gpu(a), gpu(b)), "mul");
        same(expect(add(cpu(a), cpu(bias))), add(gpu(a), gpu(bias)), "add a bias row");
        same(expect(mul(cpu(a), cpu(rowm))), mul(gpu(a), gpu(rowm)), "mul a per-row mask");
        same(expect(sub(cpu(bias), cpu(a))), sub(gpu(bias), gpu(a)), "bias row first");
        same(expect(relu(cpu(a))), relu(gpu(a)), "relu");
        // A float32 bias broadcast into a tensor of dt (linear's bias copy), and conversions.
        Tensor out = Tensor::empty({R, C}, dt, Device::cuda());
        out.copy_(bias.to(kFloat32).to(Device::cuda()).expand({R, C}));
        same(bias.to(kFloat32).to(dt).expand({R, C}).contiguous(), out, "float32 bias into rows");
        same(a.to(kFloat32).to(dt), gpu(a).to(kFloat32).to(dt), "conversion round trip");
      }
    }
  }
}

TEST_CASE("cuda core: clamp, where, masked_fill and comparisons" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kDtypes) {
    check_parity([](const In& in) { return clamp(in[0], -0.5, 0.7); }, {randn({6, 7}, dt)}, label(dt, "clamp"));
    check_parity([](const In& in) { return clamp(in[0].t(), -0.3); }, {randn({6, 7}, dt)},
                 label(dt, "clamp below only, transposed"));
    // Conditions of the values' dtype and of int64, broadcast against the values.
    Tensor cond_f = gt(randn({5, 1, 4}, dt), scalar_tensor(0, dt));
    Tensor cond_i = randint(0, 2, {3, 4});
    check_parity([](const In& in) { return where(in[2], in[0], in[1]); },
                 {randn({5, 3, 4}, dt), randn({4}, dt), cond_f}, label(dt, "where, floating condition"));
    check_parity([](const In& in) { return where(in[2], in[0].transpose(0, 1), in[1]); },
                 {randn({3, 5, 4}, dt), randn({5, 1, 4}, dt), cond_i}, label(dt, "where, int64 condition"));
    check_parity([](const In& in) { return masked_fill(in[0], in[1], -7.0); }, {randn({5, 3, 4}, dt), cond_i},
                 label(dt, "masked_fill"));
    using Fn = Tensor (*)(const Tensor&, const Tensor&);
    const std::pair<const char*, Fn> cmps[] = {{"eq", eq}, {"ne", ne}, {"lt", lt},
                                               {"le", le}, {"gt", gt}, {"ge", ge}};
    for (auto [name, f] : cmps) {
      // Small integers, so that equal pairs occur.
      check_parity([f](const In& in) { return f(in[0], in[1]); },
                   {small_ints(dt, {4, 5, 3}), small_ints(dt, {5, 1})}, label(dt, name));
      check_parity([f](const In& in) { return f(in[0].t(), in[1]); }, {small_ints(dt, {6, 4}), small_ints(dt, {4, 6})},
                   label(dt, str(name, " transposed")));
    }
  }
  // Integer tensors: + - * and comparisons, max / min, where, negation.
  for (DType dt : {kInt32, kInt64}) {
    using Fn = Tensor (*)(const Tensor&, const Tensor&);
    const std::pair<const char*, Fn> ops[] = {{"add", add}, {"sub", sub}, {"mul", mul}, {"eq", eq},
                                              {"lt", lt}, {"ge", ge}, {"maximum", maximum}, {"minimum", minimum}};
    for (auto [name, f] : ops)
      check_parity([f](const In& in) { return f(in[0].t(), in[1]); }, {random_of(dt, {5, 4}), random_of(dt, {5})},
                   label(dt, name));
    check_parity([](const In& in) { return neg(in[0]); }, {random_of(dt, {3, 7})}, label(dt, "neg"));
    check_parity([](const In& in) { return where(in[2], in[0], in[1]); },
                 {random_of(dt, {3, 4}), random_of(dt, {4}), randint(0, 2, {3, 1}, kInt32)}, label(dt, "where"));
    // Integer division divides truly, in float32 (torch.div's default), as on the CPU.
    const Tensor q = div(from_vector(std::vector<int64_t>{7, -7, 1}).to(dt).to(Device::cuda()),
                         from_vector(std::vector<int64_t>{2, 2, 3}).to(dt).to(Device::cuda()));
    CHECK(q.dtype() == kFloat32);
    CHECK(q.to(Device::cpu()).to_vector<float>() == std::vector<float>{3.5f, -3.5f, 1.0f / 3.0f});
  }
}

TEST_CASE("cuda core: unary math and activations, forward and fused backward" * gpu_only()) {
  PoisonOn poison;
  Sizes sz;
  using F = Tensor (*)(const Tensor&);
  struct Case {
    const char* name;
    F f;
    bool positive;
  };
  const Case cases[] = {
      {"neg", neg, false},     {"abs", abs, false},       {"sign", sign, false},
      {"exp", exp, false},     {"log", log, true},        {"sqrt", sqrt, true},
      {"rsqrt", rsqrt, true},  {"sin", sin, false},       {"cos", cos, false},
      {"tanh", tanh, false},   {"sigmoid", sigmoid, false}, {"relu", relu, false},
      {"silu", silu, false},
  };
  for (DType dt : kDtypes) {
    const int64_t a = sz(2, 9), b = sz(2, 9);
    for (const Case& c : cases) {
      F f = c.f;
      Tensor in = c.positive ? positive(dt, {b, a}) : mul(randn({b, a}, dt), 2.0).detach();
      check_parity([f](const In& x) { return f(x[0]); }, {in}, label(dt, c.name));
      check_parity([f](const In& x) { return f(x[0].t()); }, {in}, label(dt, str(c.name, " of a transpose")));
    }
    Tensor x = mul(randn({a, b, 3}, dt), 2.5).detach();
    check_parity([](const In& in) { return gelu(in[0]); }, {x}, label(dt, "gelu erf"));
    check_parity([](const In& in) { return gelu(in[0].transpose(0, 2), GeluApprox::Tanh); }, {x}, label(dt, "gelu tanh"));
    check_parity([](const In& in) { return elu(in[0], 0.7); }, {x}, label(dt, "elu 0.7"));
    check_parity([](const In& in) { return elu(in[0].slice(1, 0, in[0].size(1), 2)); }, {x}, label(dt, "elu sliced"));
    // Both sides of softplus's threshold (beta x > threshold is linear).
    check_parity([](const In& in) { return softplus(in[0], 2.0, 3.0); }, {x}, label(dt, "softplus 2, 3"));
    check_parity([](const In& in) { return softplus(in[0].t()); }, {randn({4, 5}, dt)}, label(dt, "softplus default"));
    // Large enough for many blocks and the grid-stride loop, contiguous and strided.
    Tensor big = randn({1031, 1029}, dt);
    check_parity([](const In& in) { return gelu(in[0]); }, {big}, label(dt, "gelu, 1M elements"));
    check_parity([](const In& in) { return sigmoid(in[0].t()); }, {big}, label(dt, "sigmoid of a 1M transpose"));
    check_parity([](const In& in) { return tanh(add(in[0].permute({2, 0, 1}), in[1])); },
                 {randn({64, 33, 17}, dt), randn({33}, dt)}, label(dt, "tanh of a permuted sum"));
  }
}

TEST_CASE("cuda core: elementwise over more than 2^31 elements (64-bit index path)" * gpu_only()) {
  // (2, 2^15, 2^15 + 1) float32: 8.6 GB of output, from two small broadcast operands whose
  // strides keep three dims, so the kernel divides 64-bit linear indices.
  const int64_t K = int64_t(1) << 15, M = K + 1;
  Tensor a = tensor({1.0, 2.0}).reshape({2, 1, 1});
  Tensor b = randn({1, 1, M});
  try {
    Tensor ag = a.to(Device::cuda()), bg = b.to(Device::cuda());
    Tensor out = add(ag.expand({2, K, M}), bg.expand({2, K, M}));
    REQUIRE(out.numel() > (int64_t)INT32_MAX);
    Tensor m = mean(out, {1, 2});
    const double bm = mean(b).item();
    CHECK(std::abs(m.at({0}) - (1.0 + bm)) < 1e-5);
    CHECK(std::abs(m.at({1}) - (2.0 + bm)) < 1e-5);
    CHECK(out.at({1, K - 1, M - 1}) == (float)(2.0f + b.at({0, 0, M - 1})));
    CHECK(out.at({0, 12345, 678}) == (float)(1.0f + b.at({0, 0, 678})));
  } catch (const Error& e) {
    if (std::string(e.what()).find("out of memory") == std::string::npos) throw;
    MESSAGE("not enough device memory for the 2^31-element case: skipped");
  }
  cuda::empty_cache();
}

// ---- reduce.cu ---------------------------------------------------------------------------------

TEST_CASE("cuda core: sum, mean, max, min, var, logsumexp over dim sets, keepdim, any layout" * gpu_only()) {
  PoisonOn poison;
  Sizes sz;
  const std::vector<std::vector<int64_t>> dim_sets = {{0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1}, {0, 1, 2}};
  for (DType dt : kDtypes) {
    const int64_t a = sz(2, 5), b = sz(2, 6), c = sz(2, 7);
    INFO(str(dtype_name(dt), " a=", a, " b=", b, " c=", c));
    Tensor x = randn({a, b, c}, dt);
    Tensor xp = randn({c, a, b}, dt);  // read through permute({1, 2, 0})
    for (const auto& dims : dim_sets)
      for (bool keep : {false, true}) {
        const std::string d = str(dims, keep ? " keepdim" : "");
        auto run = [&](const char* name, auto f) {
          check_parity([f, dims, keep](const In& in) { return f(in[0], dims, keep); }, {x}, label(dt, str(name, " ", d)));
          check_parity([f, dims, keep](const In& in) { return f(in[0].permute({1, 2, 0}), dims, keep); }, {xp},
                       label(dt, str(name, " of a permutation ", d)));
        };
        run("sum", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return sum(t, ds, k); });
        run("mean", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return mean(t, ds, k); });
        run("max", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return max(t, ds, k); });
        run("min", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return min(t, ds, k); });
        run("var", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return var(t, ds, 1, k); });
        run("logsumexp", [](const Tensor& t, const std::vector<int64_t>& ds, bool k) { return logsumexp(t, ds, k); });
      }
    // Full reductions, a strided slice, and max with ties (the gradient is split).
    check_parity([](const In& in) { return sum(in[0]); }, {x}, label(dt, "sum of all"));
    check_parity([](const In& in) { return mean(in[0].slice(2, 0, in[0].size(2), 2)); }, {x}, label(dt, "mean of a slice"));
    check_parity([](const In& in) { return max(in[0], {1}); }, {small_ints(dt, {4, 9, 3})}, label(dt, "max with ties"));
    check_parity([](const In& in) { return min(in[0]); }, {small_ints(dt, {4, 9})}, label(dt, "min of all, ties"));
  }
}

TEST_CASE("cuda core: reductions large enough for split rows, columns and long rows" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kDtypes) {
    // One output of 4M elements: split across many blocks, partials combined.
    Tensor flat = randn({1 << 22}, dt);
    check_parity([](const In& in) { return sum(in[0]); }, {flat}, label(dt, "sum of 4M"), sum_tol(dt, 1 << 22));
    check_parity([](const In& in) { return max(in[0]); }, {flat}, label(dt, "max of 4M"));
    // A bias gradient: (32768, 64) summed over rows (columns kernel, split over rows).
    Tensor bias = randn({32768, 64}, dt);
    check_parity([](const In& in) { return sum(in[0], {0}); }, {bias}, label(dt, "column sum (32768, 64)"),
                 sum_tol(dt, 32768));
    check_parity([](const In& in) { return min(in[0], {0}); }, {bias}, label(dt, "column min (32768, 64)"));
    // Columns with outer dims: (3, 5000, 7) over dim 1.
    check_parity([](const In& in) { return mean(in[0], {1}); }, {randn({3, 5000, 7}, dt)},
                 label(dt, "mean over the middle dim"), sum_tol(dt, 5000));
    // Long rows (a block per row) and many short rows (a thread per row).
    check_parity([](const In& in) { return sum(in[0], {1}); }, {randn({37, 100000}, dt)},
                 label(dt, "sum of long rows"), sum_tol(dt, 100000));
    check_parity([](const In& in) { return mean(in[0], {-1}); }, {randn({20000, 5}, dt)}, label(dt, "mean of short rows"));
    check_parity([](const In& in) { return logsumexp(in[0], {-1}); }, {randn({300, 700}, dt)},
                 label(dt, "logsumexp of rows of 700"));
    // Reduced dims that do not merge: a strided slice of a permutation.
    check_parity([](const In& in) { return sum(in[0].permute({2, 0, 1}).slice(0, 0, 40, 3), {0, 2}); },
                 {randn({30, 50, 40}, dt)}, label(dt, "non-mergeable reduced dims"), sum_tol(dt, 700));
  }
  // float32 sums accumulate in double: 2^24 + 2 ones are exact.
  Tensor ones_g = ones({(1 << 24) + 2}, kFloat32, Device::cuda());
  CHECK(sum(ones_g).item() == (double)((1 << 24) + 2));
  // Max and min propagate NaN.
  Tensor withnan = randn({4, 300});
  withnan.set({2, 123}, NAN);
  Tensor mx = max(withnan.to(Device::cuda()), {1}).to(Device::cpu());
  CHECK(std::isnan(mx.at({2})));
  CHECK(!std::isnan(mx.at({1})));
  CHECK(std::isnan(min(withnan.to(Device::cuda())).item()));
  // Empty reduced dims: a sum of nothing is 0, a mean NaN.
  Tensor empty_g = zeros({3, 0}, kFloat32, Device::cuda());
  CHECK(sum(empty_g, {1}).to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(std::isnan(mean(empty_g, {1}).to(Device::cpu()).at({0})));
}

TEST_CASE("cuda core: argmax and argmin: first index on ties, NaN wins, every dtype" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kAllDtypes) {
    // Few distinct values: many ties.
    Tensor x = is_floating(dt) ? small_ints(dt, {6, 7, 40}) : randint(-2, 3, {6, 7, 40}, dt);
    for (int64_t d : {0, 1, 2})
      for (bool keep : {false, true}) {
        check_parity([d, keep](const In& in) { return argmax(in[0], d, keep); }, {x}, label(dt, str("argmax dim ", d)));
        check_parity([d, keep](const In& in) { return argmin(in[0], d, keep); }, {x}, label(dt, str("argmin dim ", d)));
        check_parity([d](const In& in) { return argmax(in[0].transpose(0, 2), d); }, {x},
                     label(dt, str("argmax of a transpose, dim ", d)));
      }
    check_parity([](const In& in) { return argmax(in[0]); }, {x}, label(dt, "argmax of all"));
    // Long rows (a block per row) and a column layout with many outputs.
    Tensor wide = is_floating(dt) ? small_ints(dt, {5, 3000}, 0, 50) : randint(0, 50, {5, 3000}, dt);
    check_parity([](const In& in) { return argmax(in[0], 1); }, {wide}, label(dt, "argmax of long rows"));
    check_parity([](const In& in) { return argmin(in[0], 0); }, {wide}, label(dt, "argmin over dim 0, 3000 outputs"));
  }
  // NaN: the first NaN of a row wins, as on the CPU (and in PyTorch).
  for (DType dt : kDtypes) {
    Tensor x = randn({8, 100}, dt);
    x.set({1, 0}, NAN);
    x.set({3, 57}, NAN);
    x.set({3, 80}, NAN);
    x.set({5, 99}, NAN);
    Tensor wide = randn({100, 2500}, dt);
    wide.set({40, 7}, NAN);
    wide.set({70, 7}, NAN);
    for (bool is_max : {true, false}) {
      auto f = [is_max](const In& in) { return is_max ? argmax(in[0], 1) : argmin(in[0], 1); };
      check_parity(f, {x}, label(dt, is_max ? "argmax with NaN" : "argmin with NaN"));
      check_parity([is_max](const In& in) { return is_max ? argmax(in[0], 0) : argmin(in[0], 0); }, {wide},
                   label(dt, "arg reduce over dim 0 with NaN"));
    }
  }
}

// ---- index.cu and the shape ops that copy ---------------------------------------------------

TEST_CASE("cuda core: contiguous, concat, stack, pad, flip, roll, repeat" * gpu_only()) {
  PoisonOn poison;
  Sizes sz;
  for (DType dt : kDtypes) {
    const int64_t a = sz(3, 5), b = sz(3, 6), c = sz(3, 7);  // reflect pads of 2 need 3
    INFO(str(dtype_name(dt), " a=", a, " b=", b, " c=", c));
    Tensor x = randn({a, b, c}, dt);
    check_parity([](const In& in) { return in[0].permute({2, 0, 1}).contiguous(); }, {x}, label(dt, "contiguous 3-D"));
    check_parity([](const In& in) { return in[0].permute({3, 1, 0, 2}).contiguous(); }, {randn({2, 3, 4, 5}, dt)},
                 label(dt, "contiguous 4-D"));
    check_parity([](const In& in) { return concat({in[0], in[1].transpose(0, 1), in[2]}, 1); },
                 {x, randn({2, a, c}, dt), randn({a, 1, c}, dt)}, label(dt, "concat dim 1"));
    check_parity([](const In& in) { return concat({in[0].t(), in[1]}, -1); }, {randn({5, 3}, dt), randn({3, 4}, dt)},
                 label(dt, "concat last dim"));
    check_parity([](const In& in) { return stack({in[0], in[1].t(), in[0]}, 1); }, {randn({4, 5}, dt), randn({5, 4}, dt)},
                 label(dt, "stack"));
    const std::pair<PadMode, const char*> modes[] = {{PadMode::Constant, "constant"}, {PadMode::Reflect, "reflect"},
                                                     {PadMode::Symmetric, "symmetric"}, {PadMode::Replicate, "replicate"},
                                                     {PadMode::Circular, "circular"}};
    for (auto [mode, name] : modes) {
      check_parity([mode](const In& in) { return pad(in[0], {2, 1, 1, 2}, mode, 0.5); }, {x},
                   label(dt, str("pad ", name)));
      check_parity([mode](const In& in) { return pad(in[0].transpose(0, 2), {0, 2}, mode); }, {x},
                   label(dt, str("pad ", name, " of a transpose")));
    }
    check_parity([](const In& in) { return flip(in[0], {0, 2}); }, {x}, label(dt, "flip"));
    check_parity([](const In& in) { return roll(in[0], {2, -1}, {1, 2}); }, {x}, label(dt, "roll"));
    check_parity([](const In& in) { return roll(in[0], {5}); }, {x}, label(dt, "roll flattened"));
    check_parity([](const In& in) { return repeat(in[0], {2, 1, 3}); }, {x}, label(dt, "repeat"));
    check_parity([](const In& in) { return repeat(in[0].t(), {2, 1, 2}); }, {randn({3, 4}, dt)},
                 label(dt, "repeat with a new leading dim"));
  }
}

TEST_CASE("cuda core: index_select, gather and embedding with repeated indices" * gpu_only()) {
  PoisonOn poison;
  for (DType dt : kDtypes) {
    // Short rows (C = 5: one thread per element) and long rows (C = 300: a block per row).
    for (int64_t C : {5, 300}) {
      Tensor x = randn({4, 6, C}, dt);
      for (int64_t d : {0, 1, 2}) {
        const int64_t n = x.size(d);
        Tensor idx = randint(0, n, {n + 7});  // longer than the dim: repeats are certain
        check_parity([d](const In& in) { return index_select(in[0], d, in[1]); }, {x, idx},
                     label(dt, str("index_select dim ", d, " C=", C)), sum_tol(dt, 16));
        check_parity([d](const In& in) { return index_select(in[0].transpose(0, 2), d == 1 ? 1 : 2 - d, in[1]); },
                     {x, randint(0, x.size(d == 1 ? 1 : d), {5})}, label(dt, str("index_select of a transpose, dim ", d)),
                     sum_tol(dt, 16));
      }
    }
    Tensor x = randn({5, 6, 7}, dt);
    for (int64_t d : {0, 1, 2}) {
      Shape is = {4, 5, 6};
      is[d] = 9;  // more picks than the dim has: repeats
      check_parity([d](const In& in) { return gather(in[0], d, in[1]); }, {x, randint(0, x.size(d), is)},
                   label(dt, str("gather dim ", d)), sum_tol(dt, 16));
    }
    check_parity([](const In& in) { return gather(in[0].t(), 1, in[1]); }, {randn({8, 3}, dt), randint(0, 8, {3, 20})},
                 label(dt, "gather from a transpose"), sum_tol(dt, 16));
    // Embedding: 10 rows, 300 ids (every row used many times), D = 3 and D = 128.
    for (int64_t D : {3, 128}) {
      Tensor ids = randint(0, 10, {20, 15});
      check_parity([](const In& in) { return embedding(in[0], in[1]); }, {randn({10, D}, dt), ids},
                   label(dt, str("embedding D=", D)), sum_tol(dt, 300));
      check_parity([](const In& in) { return embedding(in[0], in[1]); }, {randn({10, D}, dt), ids.to(kInt32)},
                   label(dt, str("embedding D=", D, " int32 ids")), sum_tol(dt, 300));
    }
  }
  // Integer tensors are indexed too (no gradients).
  for (DType dt : {kInt32, kInt64}) {
    check_parity([](const In& in) { return index_select(in[0], 1, in[1]); }, {random_of(dt, {3, 8}), randint(0, 8, {11})},
                 label(dt, "index_select"));
    check_parity([](const In& in) { return gather(in[0], 0, in[1]); }, {random_of(dt, {6, 4}), randint(0, 6, {9, 4})},
                 label(dt, "gather"));
  }
}

// ---- random.cu ---------------------------------------------------------------------------------

TEST_CASE("cuda core: uniform, normal, randint and dropout give the CPU's numbers for a seed" * gpu_only()) {
  PoisonOn poison;
  for (int64_t n : {1, 2, 3, 5, 1001, 300007}) {
    INFO("n = " << n);
    for (DType dt : kDtypes) {
      Generator gc(1234 + n), gg(1234 + n);
      // Twice from each generator: the second call starts at a later counter.
      for (int call = 0; call < 2; ++call) {
        check_bits_any(rand({n}, dt, Device::cpu(), &gc), rand({n}, dt, Device::cuda(), &gg), label(dt, "rand"));
        check_bits_any(uniform({n}, -3.0, 5.0, dt, Device::cpu(), &gc), uniform({n}, -3.0, 5.0, dt, Device::cuda(), &gg),
                       label(dt, "uniform [-3, 5)"));
        // Normals: log, sin and cos of CUDA and glibc may differ in the last bit.
        Tensor nc = randn({n}, dt, Device::cpu(), &gc), ng = randn({n}, dt, Device::cuda(), &gg);
        const double ulp = dt == kFloat64 ? 0x1p-52 : 0x1p-23;
        check_close(nc, ng, {dt == kFloat64 ? 1e-13 : 1e-6, 4 * ulp}, label(dt, "randn"));
        check_bits_any(dropout(ones({n}, dt), 0.3, true, &gc), dropout(ones({n}, dt, Device::cuda()), 0.3, true, &gg),
                       label(dt, "dropout mask"));
      }
      CHECK(gc.offset() == gg.offset());
    }
    for (DType dt : kAllDtypes) {
      Generator gc(99), gg(99);
      check_bits_any(randint(-7, 1000, {n}, dt, Device::cpu(), &gc), randint(-7, 1000, {n}, dt, Device::cuda(), &gg),
                     label(dt, "randint"));
    }
    Generator gc(5), gg(5);
    const int64_t lo = -(int64_t(1) << 40), hi = int64_t(1) << 41;  // more than 32 bits of range
    check_bits_any(randint(lo, hi, {n}, kInt64, Device::cpu(), &gc), randint(lo, hi, {n}, kInt64, Device::cuda(), &gg),
                   "int64 randint over 2^41");
  }
  // The same through the default generator and a shaped dropout of real data.
  for (DType dt : kDtypes) {
    Tensor x = randn({7, 33, 5}, dt);
    manual_seed(77);
    Tensor yc = dropout(x, 0.5, true);
    manual_seed(77);
    Tensor yg = dropout(x.to(Device::cuda()), 0.5, true);
    check_bits_any(yc, yg, label(dt, "dropout of data, default generator"));
    const double kept = mean(ne(yc, zeros_like(yc)).to(kFloat64)).item();
    CHECK(kept > 0.4);
    CHECK(kept < 0.6);
  }
  // Statistics on the device alone.
  Tensor u = rand({1 << 20}, kFloat32, Device::cuda());
  CHECK(std::abs(mean(u).item() - 0.5) < 0.01);
  CHECK(max(u).item() < 1.0);
  CHECK(min(u).item() >= 0.0);
  Tensor z = randn({1 << 20}, kFloat64, Device::cuda());
  CHECK(std::abs(mean(z).item()) < 0.01);
  CHECK(std::abs(var(z, {0}).item() - 1.0) < 0.01);
}

// ---- the caching allocator -------------------------------------------------------------------

TEST_CASE("cuda core: the caching allocator reuses blocks and keeps its statistics" * gpu_only()) {
  PoisonOn poison;
  cuda::synchronize();
  cuda::empty_cache();
  cuda::MemoryStats s0 = cuda::memory_stats();
  CHECK(s0.reserved == s0.allocated);  // nothing cached after empty_cache
  CHECK(s0.peak_allocated >= s0.allocated);
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1000}, kFloat32, Device::cuda());  // 4000 bytes -> 4096
    first = t.raw_data();
    cuda::MemoryStats s1 = cuda::memory_stats();
    CHECK(s1.allocated == s0.allocated + 4096);
    CHECK(s1.reserved == s0.reserved + 4096);
    CHECK(s1.num_allocs == s0.num_allocs + 1);
    CHECK(s1.num_device_allocs == s0.num_device_allocs + 1);
    CHECK(s1.peak_allocated >= s1.allocated);
  }
  cuda::MemoryStats s2 = cuda::memory_stats();
  CHECK(s2.allocated == s0.allocated);      // freed ...
  CHECK(s2.reserved == s0.reserved + 4096);  // ... but kept
  {
    Tensor t = Tensor::empty({1020}, kFloat32, Device::cuda());  // 4080 bytes: same 4096 block
    cuda::MemoryStats s3 = cuda::memory_stats();
    CHECK(s3.num_cache_hits == s2.num_cache_hits + 1);
    CHECK(s3.num_device_allocs == s2.num_device_allocs);
    CHECK(s3.reserved == s2.reserved);
    CHECK(t.raw_data() == first);  // the only cached block of that size
    // Poison: a fresh block reads as NaN (floats) or -1 (integers) until written.
    for (float v : t.to_vector<float>()) CHECK(std::isnan(v));
    Tensor i = Tensor::empty({7}, kInt64, Device::cuda());
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>(7, -1));
  }
  // Large blocks round to 2 MiB; the peak follows; empty_cache gives blocks back.
  cuda::reset_peak();
  const cuda::MemoryStats before = cuda::memory_stats();
  CHECK(before.peak_allocated == before.allocated);
  {
    Tensor big = Tensor::empty({(3 << 20) / 4 + 1}, kFloat32, Device::cuda());  // 3 MiB + 4 bytes
    CHECK(cuda::memory_stats().allocated == before.allocated + (4 << 20));
    Tensor big2 = Tensor::empty({(8 << 20) / 8}, kFloat64, Device::cuda());  // exactly 8 MiB
    CHECK(cuda::memory_stats().allocated == before.allocated + (12 << 20));
  }
  cuda::MemoryStats after = cuda::memory_stats();
  CHECK(after.allocated == before.allocated);
  CHECK(after.peak_allocated == before.allocated + (12 << 20));
  CHECK(after.reserved >= after.allocated + (12 << 20));
  {
    // 7 MiB rounds to 8 MiB: the cached 8 MiB block fits; 1.1 MiB (rounded 2 MiB) does not
    // take the 4 MiB block (more than a quarter larger).
    const cuda::MemoryStats h0 = cuda::memory_stats();
    Tensor t7 = Tensor::empty({(7 << 20) / 4}, kFloat32, Device::cuda());
    CHECK(cuda::memory_stats().num_cache_hits == h0.num_cache_hits + 1);
    Tensor t1 = Tensor::empty({(11 << 20) / 40}, kFloat32, Device::cuda());
    CHECK(cuda::memory_stats().num_cache_hits == h0.num_cache_hits + 1);
    CHECK(cuda::memory_stats().num_device_allocs == h0.num_device_allocs + 1);
  }
  cuda::empty_cache();
  cuda::MemoryStats emptied = cuda::memory_stats();
  CHECK(emptied.reserved == emptied.allocated);
  CHECK(emptied.reserved < after.reserved);

  // Blocks freed while kernels that use them are still queued are handed to later kernels
  // of the same stream: a chain of temporaries gives the CPU's values without any sync.
  for (DType dt : kDtypes) {
    Tensor x = randn({257, 129}, dt), y = x;
    Tensor xg = x.to(Device::cuda()), yg = xg;
    for (int i = 0; i < 40; ++i) {
      y = add(mul(y, 0.5), tanh(x));
      yg = add(mul(yg, 0.5), tanh(xg));
    }
    check_close(y, yg, default_tol(dt), label(dt, "a chain of 120 temporaries"));
  }

  // Out of memory: an Error naming the size, and the allocator (and later launches) still work.
  check_error([] { Tensor::empty({int64_t(1) << 48}, kFloat32, Device::cuda()); },
              {"out of memory", "1125899906842624 bytes", "reserved"});
  Tensor after_oom = add(ones({100}, kFloat32, Device::cuda()), 1.0);
  CHECK(sum(after_oom).item() == 200.0);
}

TEST_CASE("cuda core: backend_for refuses other device indices" * gpu_only()) {
  CHECK(backend_for(Device::cuda()).type() == DeviceType::CUDA);
  check_error([] { backend_for(Device::cuda(1)); }, {"cuda:1", "CUDA_VISIBLE_DEVICES"});
}

#endif  // WAVSPA_CUDA

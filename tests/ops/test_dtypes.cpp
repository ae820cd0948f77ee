// The bool dtype, type promotion across dtypes and scalars, and integer reductions (issue 18,
// item 4): what each op returns, against values worked out by hand, and the gradients that
// cross a promotion.
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "tests/helpers.h"
#include "wavspa.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {
std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }
Tensor i64(std::vector<int64_t> v) { return from_vector(v); }
Tensor f32(std::vector<float> v) { return from_vector(v); }
}  // namespace

TEST_CASE("dtypes: promote_types is float over int, the wider within a kind, symmetric") {
  CHECK(promote_types(kInt64, kFloat32) == kFloat32);
  CHECK(promote_types(kFloat32, kInt64) == kFloat32);
  CHECK(promote_types(kBFloat16, kFloat32) == kFloat32);
  CHECK(promote_types(kFloat32, kFloat64) == kFloat64);
  CHECK(promote_types(kInt32, kInt64) == kInt64);
  CHECK(promote_types(kBool, kInt32) == kInt32);
  CHECK(promote_types(kBool, kBFloat16) == kBFloat16);
  CHECK(promote_types(kInt64, kBFloat16) == kBFloat16);
  CHECK(promote_types(kBool, kBool) == kBool);
  for (DType a : {kBool, kInt32, kInt64, kBFloat16, kFloat32, kFloat64})
    for (DType b : {kBool, kInt32, kInt64, kBFloat16, kFloat32, kFloat64})
      CHECK(promote_types(a, b) == promote_types(b, a));
  CHECK(dtype_size(kBool) == 1);
  CHECK(std::string(dtype_name(kBool)) == "bool");
}

TEST_CASE("dtypes: comparisons return bool; where, masked_fill and the logical ops take it") {
  const Tensor a = f32({1.5f, -2.0f, 0.0f, 3.0f});
  const Tensor m = gt(a, 0.0);
  CHECK(m.dtype() == kBool);
  CHECK(ints(m) == std::vector<int64_t>{1, 0, 0, 1});
  CHECK(eq(a, a).dtype() == kBool);
  CHECK(ints(ne(a, f32({1.5f, 2.0f, 0.0f, 0.0f}))) == std::vector<int64_t>{0, 1, 0, 1});
  // Mixed operands compare at the promoted dtype: int64 against float32 in float32.
  CHECK(ints(lt(i64({1, 2, 3, 4}), f32({1.5f, 1.5f, 3.0f, 4.5f}))) == std::vector<int64_t>{1, 0, 0, 1});
  // NaN: unequal to everything, itself included.
  const Tensor n = f32({NAN, 1.0f});
  CHECK(ints(eq(n, n)) == std::vector<int64_t>{0, 1});
  CHECK(ints(ne(n, n)) == std::vector<int64_t>{1, 0});

  CHECK(max_abs_diff(where(m, a, zeros({4})), f32({1.5f, 0.0f, 0.0f, 3.0f})) == 0);
  CHECK(max_abs_diff(masked_fill(a, m, -1), f32({-1.0f, -2.0f, 0.0f, -1.0f})) == 0);
  CHECK(masked_fill(a, m, -1).dtype() == kFloat32);
  const Tensor p = from_vector(std::vector<int64_t>{1, 1, 0, 0}).to(kBool);
  const Tensor q = from_vector(std::vector<int64_t>{1, 0, 1, 0}).to(kBool);
  CHECK(ints(logical_and(p, q)) == std::vector<int64_t>{1, 0, 0, 0});
  CHECK(ints(logical_or(p, q)) == std::vector<int64_t>{1, 1, 1, 0});
  CHECK(ints(logical_xor(p, q)) == std::vector<int64_t>{0, 1, 1, 0});
  CHECK(ints(logical_not(p)) == std::vector<int64_t>{0, 0, 1, 1});
  CHECK(logical_and(p, q).dtype() == kBool);
  // Any dtype reads as nonzero = true (NaN is nonzero).
  CHECK(ints(logical_not(f32({0.0f, -0.0f, 2.0f, NAN}))) == std::vector<int64_t>{1, 1, 0, 0});
  CHECK(ints(p.logical_or(q).logical_not()) == std::vector<int64_t>{0, 0, 0, 1});
  // Broadcasting through the logical ops.
  CHECK(logical_and(p.reshape({4, 1}), q).shape() == Shape{4, 4});

  // Conversions: to bool is "nonzero", from bool is 1 or 0.
  CHECK(ints(f32({0.0f, 0.25f, -3.0f, NAN}).to(kBool)) == std::vector<int64_t>{0, 1, 1, 1});
  CHECK(p.to(kFloat32).to_vector<float>() == std::vector<float>{1, 1, 0, 0});
  CHECK(p.to(kBFloat16).to(kFloat32).to_vector<float>() == std::vector<float>{1, 1, 0, 0});
  CHECK(ints(f32({0.0f, 0.5f}).to(kBFloat16).to(kBool)) == std::vector<int64_t>{0, 1});
  CHECK(full({2}, 1.0, kBool).sum().item() == 2);

  // Printing as PyTorch does.
  std::ostringstream os;
  os << p;
  CHECK(os.str() == "tensor([ True,  True, False, False], shape=(4,), dtype=bool)");
}

TEST_CASE("dtypes: binary ops promote, and gradients come back in each input's dtype") {
  const Tensor i = i64({1, 2, 3});
  CHECK(add(i, f32({0.5f, 0.5f, 0.5f})).dtype() == kFloat32);
  CHECK(max_abs_diff(add(i, f32({0.5f, 0.5f, 0.5f})), f32({1.5f, 2.5f, 3.5f})) == 0);
  CHECK(mul(f32({1, 2, 3}), from_vector(std::vector<double>{2, 2, 2})).dtype() == kFloat64);
  CHECK(add(i, from_vector(std::vector<int32_t>{1, 1, 1})).dtype() == kInt64);
  CHECK(maximum(i, f32({2.5f, 0, 0})).dtype() == kFloat32);
  CHECK(where(gt(i, 1), i, f32({9, 9, 9})).dtype() == kFloat32);
  // Bool arithmetic counts in int64.
  const Tensor b = gt(i, 1);
  CHECK(add(b, b).dtype() == kInt64);
  CHECK(ints(add(b, b)) == std::vector<int64_t>{0, 2, 2});
  CHECK(ints(mul(b, i)) == std::vector<int64_t>{0, 2, 3});
  CHECK(mul(b, f32({1, 1, 1})).dtype() == kFloat32);
  // Division of integers divides truly, in float32.
  CHECK(div(i, i64({2, 2, 2})).dtype() == kFloat32);
  CHECK(div(i, 2).to_vector<float>() == std::vector<float>{0.5f, 1.0f, 1.5f});
  // Integer powers stay integers; a negative integer power of an integer is an error.
  CHECK(pow(i, 2).dtype() == kInt64);
  CHECK(ints(pow(i, 3)) == std::vector<int64_t>{1, 8, 27});
  CHECK(ints(pow(i, i)) == std::vector<int64_t>{1, 4, 27});
  CHECK(pow(i, 0.5).dtype() == kFloat32);
  check_error([&] { pow(i, -1); }, {"pow", "negative integer power", "-1"});

  // Gradients through a promotion: float32 + float64 computes in float64; the float32 input's
  // gradient is float32.
  Tensor x = f32({1, 2, 3}).requires_grad_();
  Tensor y = from_vector(std::vector<double>{0.5, 0.25, 2.0}).requires_grad_();
  Tensor z = mul(x, y);
  CHECK(z.dtype() == kFloat64);
  sum(z).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == kFloat32);
  CHECK(y.grad().dtype() == kFloat64);
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0.5f, 0.25f, 2.0f});
  CHECK(y.grad().to_vector<double>() == std::vector<double>{1, 2, 3});
  // Finite differences through float64 * bool (broadcast) and float64 + int64.
  const Tensor mask = gt(randn({4}), 0.0);
  const Tensor steps = randint(-3, 4, {3, 1}, kInt64);
  check_grad([mask, steps](const In& in) { return add(mul(in[0], mask), steps); }, rn({3, 4}));
}

TEST_CASE("dtypes: scalars keep a tensor's kind unless they bring a fraction's") {
  const Tensor i = i64({1, 2, 3});
  CHECK(mul(i, 2).dtype() == kInt64);
  CHECK(ints(mul(i, 2)) == std::vector<int64_t>{2, 4, 6});
  CHECK(mul(i, 2.0).dtype() == kFloat32);  // int64 * 2.0 is float32, as in PyTorch
  CHECK(mul(i, 2.5).to_vector<float>() == std::vector<float>{2.5f, 5.0f, 7.5f});
  CHECK((i * 2).dtype() == kInt64);
  CHECK((2.0 * i).dtype() == kFloat32);
  CHECK((i + true).dtype() == kInt64);
  CHECK(i.add(1).dtype() == kInt64);
  const Tensor h = ones({3}, kFloat64);
  CHECK(mul(h, 2).dtype() == kFloat64);  // a scalar never widens a floating tensor
  CHECK(mul(f32({1, 2, 3}), 0.1).dtype() == kFloat32);
  const Tensor b = gt(i, 1);
  CHECK(add(b, 1).dtype() == kInt64);
  CHECK(add(b, 0.5).dtype() == kFloat32);
  // Scalar kinds.
  CHECK(Scalar(2).is_integral());
  CHECK(Scalar(2.0f).is_floating());
  CHECK(Scalar(true).is_bool());
  CHECK(Scalar(int64_t{1} << 60).to_int64() == int64_t{1} << 60);
}

TEST_CASE("dtypes: integer and bool reductions are exact") {
  // Beyond 2^53 a float64 sum would round: 2^60 + 1 + 1 must stay odd-exact.
  const int64_t big = int64_t{1} << 60;
  const Tensor v = i64({big, 1, 1});
  CHECK(sum(v).dtype() == kInt64);
  CHECK(sum(v).to_vector<int64_t>()[0] == big + 2);
  const Tensor m = from_vector(std::vector<int64_t>{3, -7, 5, 2, 9, -1}, {2, 3});
  CHECK(ints(sum(m, {1})) == std::vector<int64_t>{1, 10});
  CHECK(ints(sum(m, {0}, true)) == std::vector<int64_t>{5, 2, 4});
  CHECK(sum(m, {0}, true).shape() == Shape{1, 3});
  CHECK(ints(max(m, {1})) == std::vector<int64_t>{5, 9});
  CHECK(ints(min(m, {0})) == std::vector<int64_t>{2, -7, -1});
  CHECK(max(m).dtype() == kInt64);
  CHECK(max(v).to_vector<int64_t>()[0] == big);
  CHECK(m.to(kInt32).max(1).dtype() == kInt32);
  // Mean of integers is float32: the exact sum divided once.
  CHECK(mean(m).dtype() == kFloat32);
  CHECK(mean(m).item() == doctest::Approx(11.0 / 6.0).epsilon(1e-7));
  CHECK(mean(m, {1}).to_vector<float>() == std::vector<float>{1.0f / 3.0f, 10.0f / 3.0f});
  // Bools: sum counts, any and all.
  const Tensor b = gt(m, 0);
  CHECK(sum(b).dtype() == kInt64);
  CHECK(sum(b).item() == 4);
  CHECK(ints(sum(b, {1})) == std::vector<int64_t>{2, 2});
  CHECK(any(b).dtype() == kBool);
  CHECK(any(b).item() == 1);
  CHECK(all(b).item() == 0);
  CHECK(ints(all(gt(m, -8), 1)) == std::vector<int64_t>{1, 1});
  CHECK(ints(any(gt(m, 6), 0)) == std::vector<int64_t>{0, 1, 0});
  CHECK(b.any().item() == 1);
  CHECK(ints(argmax(b, 1)) == std::vector<int64_t>{0, 0});  // ties: the first, as PyTorch
  CHECK(ints(argmax(logical_not(b), 1)) == std::vector<int64_t>{1, 2});
  // Integer strided (non-contiguous) reductions agree with the contiguous copy.
  const Tensor t = m.transpose(0, 1);
  CHECK(ints(sum(t, {1})) == ints(sum(t.contiguous(), {1})));
  CHECK(ints(max(t, {0})) == std::vector<int64_t>{5, 9});
  // Empty dims: sum of nothing is 0; max of nothing is an error.
  CHECK(sum(zeros({0}, kInt64)).item() == 0);
  check_error([&] { max(zeros({0}, kInt64), {0}); }, {"max", "empty dimension"});
}

TEST_CASE("dtypes: bool tensors survive a safetensors round trip; other bytes are refused") {
  TempDir dir("dtypes");
  const Tensor b = gt(from_vector(std::vector<float>{1, -1, 2, 0, 5}), 0.5);
  nn::save_safetensors(dir / "b.safetensors", {{"mask", b}, {"x", ones({2})}});
  const nn::Checkpoint c = nn::load_safetensors(dir / "b.safetensors");
  REQUIRE(c.tensors.contains("mask"));
  CHECK(c.tensors.at("mask").dtype() == kBool);
  CHECK(ints(c.tensors.at("mask")) == std::vector<int64_t>{1, 0, 1, 0, 1});
  // Computing on bool without converting names the op and the fix.
  check_error([&] { exp(b); }, {"exp", "bool"});
  check_error([&] { neg(b); }, {"neg", "bool", ".to(kInt64)"});
}

// Tensor::index (libtorch's torch::indexing spelling), operator[], the method forms of the ops
// and comparisons with scalars (issue 18): values against the explicit views and free
// functions, gradients by finite differences, and the errors for bad indices.
#include <cmath>
#include <vector>

#include "tests/helpers.h"
#include "wavspa.h"

using namespace wavspa;
using namespace wavspa::test;
using namespace wavspa::indexing;

namespace {
// Same shape and the same values (a view: the same elements, so == 0 exactly).
void check_same_view(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  CHECK(max_abs_diff(got.contiguous(), want.contiguous()) == 0);
}
}  // namespace

TEST_CASE("index: integers, slices, None and Ellipsis as Python indexes, as views") {
  const Tensor x = randn({4, 5, 6});
  check_same_view(x.index({1}), x.select(0, 1));                         // x[1]
  check_same_view(x[2], x.select(0, 2));                                 // x[2]
  check_same_view(x.index({-1, 2}), x.select(0, 3).select(0, 2));        // x[-1, 2]
  check_same_view(x.index({Slice(1, None)}), x.slice(0, 1, 4));          // x[1:]
  check_same_view(x.index({Slice(None, -1), 0}), x.slice(0, 0, 3).select(1, 0));  // x[:-1, 0]
  check_same_view(x.index({Slice(), Slice(None, None, 2)}), x.slice(1, 0, 5, 2));  // x[:, ::2]
  check_same_view(x.index({Ellipsis, 3}), x.select(2, 3));               // x[..., 3]
  check_same_view(x.index({0, Ellipsis, Slice(1, 4)}), x.select(0, 0).slice(1, 1, 4));  // x[0, ..., 1:4]
  check_same_view(x.index({None, 1}), x.select(0, 1).unsqueeze(0));      // x[None, 1]
  check_same_view(x.index({Slice(), None, 2}), x.select(1, 2).unsqueeze(1));  // x[:, None, 2]
  check_same_view(x.index({Ellipsis, None}), x.unsqueeze(3));            // x[..., None]
  check_same_view(x.index({}), x);                                       // x[()]
  check_same_view(x.index({Ellipsis}), x);                               // x[...]
  check_same_view(x.index({1, 2, 3}), x.select(0, 1).select(0, 2).select(0, 3));  // a 0-d view
  CHECK(x.index({1, 2, 3}).dim() == 0);
  // Out-of-range slice bounds clamp, as in Python; an empty slice is a dim of 0.
  check_same_view(x.index({Slice(-100, 100)}), x);
  CHECK(x.index({Slice(3, 1)}).shape() == Shape{0, 5, 6});
  // Views: a write through the index is seen by the base.
  Tensor y = zeros({3, 4});
  y.index({1, Slice(1, 3)}).fill_(7.0);
  CHECK(y.at({1, 1}) == 7.0);
  CHECK(y.at({1, 2}) == 7.0);
  CHECK(y.at({1, 3}) == 0.0);
  CHECK(y.at({0, 1}) == 0.0);
}

TEST_CASE("index: gradients flow back through every kind of index (float64 finite differences)") {
  check_grad([](const In& in) { return in[0].index({1, Slice(None, None, 2)}); }, rn({3, 5}));
  check_grad([](const In& in) { return in[0].index({Ellipsis, None, Slice(1, -1)}).mul(in[0][0].sum()); },
             rn({3, 4}));
  check_grad([](const In& in) { return in[0].transpose(0, 1).index({Slice(1, None), -1}); }, rn({4, 3}));
}

TEST_CASE("index: bad indices name what was expected") {
  const Tensor x = randn({2, 3});
  CHECK_THROWS_WITH_AS(x.index({0, 1, 2}), doctest::Contains("3 integer and slice indices for a tensor of 2 dims"), Error);
  CHECK_THROWS_WITH_AS(x.index({Ellipsis, 0, Ellipsis}), doctest::Contains("at most one Ellipsis"), Error);
  CHECK_THROWS_WITH_AS(x.index({Slice(0, 2, 0)}), doctest::Contains("step must be positive"), Error);
  CHECK_THROWS_WITH_AS(x.index({Slice(None, None, -1)}), doctest::Contains("step must be positive"), Error);
  CHECK_THROWS_WITH_AS(x.index({2}), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(x[-3], doctest::Contains("out of range"), Error);
  // A 0-d tensor has no dim to take an entry or a slice from (select and slice read the dim's
  // size, which a 0-d tensor does not have: this crashed before).
  CHECK_THROWS_WITH_AS(scalar_tensor(1.0)[0], doctest::Contains("0-d tensor"), Error);
  CHECK_THROWS_WITH_AS(scalar_tensor(1.0).index({Slice()}), doctest::Contains("1 integer and slice indices for a tensor of 0 dims"), Error);
  CHECK_THROWS_WITH_AS(scalar_tensor(1.0).slice(0, 0, 1), doctest::Contains("0-d tensor"), Error);
  CHECK_THROWS_WITH_AS(scalar_tensor(1.0).narrow(-1, 0, 1), doctest::Contains("0-d tensor"), Error);
  check_same_view(scalar_tensor(2.0).index({None}), scalar_tensor(2.0).unsqueeze(0));
}

TEST_CASE("method forms give the free functions' bits, and comparisons take scalars") {
  const Tensor a = randn({3, 4}), b = randn({3, 4}), p = rpos({3, 4}).to(kFloat32);
  auto same = [](const Tensor& got, const Tensor& want) {
    REQUIRE(got.shape() == want.shape());
    REQUIRE(got.dtype() == want.dtype());
    CHECK(max_abs_diff(got, want) == 0);
  };
  same(a.add(b), add(a, b));
  same(a.add(2.5), add(a, 2.5));
  same(a.sub(b), sub(a, b));
  same(a.sub(1.0), sub(a, 1.0));
  same(a.mul(b), mul(a, b));
  same(a.mul(3.0), mul(a, 3.0));
  same(a.div(p), div(a, p));
  same(a.div(4.0), div(a, 4.0));
  same(p.pow(1.5), pow(p, 1.5));
  same(a.neg(), neg(a));
  same(a.abs(), abs(a));
  same(a.exp(), exp(a));
  same(p.log(), log(p));
  same(p.sqrt(), sqrt(p));
  same(a.tanh(), tanh(a));
  same(a.sigmoid(), sigmoid(a));
  same(a.relu(), relu(a));
  same(a.sum(1), sum(a, {1}));
  same(a.sum({0, 1}, true), sum(a, {0, 1}, true));
  same(a.sum({1}), sum(a, {1}));
  same(a.mean(0, true), mean(a, {0}, true));
  same(a.mean({0, 1}), mean(a, {0, 1}));
  same(a.max(), max(a));
  same(a.max(1), max(a, {1}));
  same(a.min(0, true), min(a, {0}, true));
  same(a.argmax(), argmax(a));
  same(a.argmax(1), argmax(a, 1));
  same(a.argmin(0), argmin(a, 0));
  same(a.softmax(-1), softmax(a, -1));
  same(a.log_softmax(0), log_softmax(a, 0));
  same(a.eq(b), eq(a, b));
  same(a.gt(0.0), gt(a, scalar_tensor(0.0)));
  // Scalars against integers: a whole number compares as the integer, a fraction as the real
  // number it is (eq(ids, 7.5) holds nowhere, lt(ids, 7.5) holds at 7); the result is bool.
  const Tensor ids = from_vector(std::vector<int64_t>{0, 7, 8, -3});
  CHECK(eq(ids, 7).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 0});
  CHECK(ids.ne(0).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 1, 1});
  CHECK(eq(ids, 7.5).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(lt(ids, 7.5).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 0, 1});
  CHECK(ge(ids, -2.5).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 0});
  CHECK(le(ids, INFINITY).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(gt(ids, NAN).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(eq(ids, 7).dtype() == kBool);
  const Tensor f = from_vector(std::vector<float>{0.5f, 1.0f, 2.0f});
  CHECK(f.lt(1.0).to_vector<float>() == std::vector<float>{1, 0, 0});
  CHECK(f.ge(1.0).to_vector<float>() == std::vector<float>{0, 1, 1});
  // Method forms record gradients as the free functions do.
  check_grad([](const In& in) { return in[0].mul(in[1]).add(in[0].exp()).sum(1).tanh(); }, rn({2, 3}), rn({2, 3}));
}

// core/: tensors, views, factories, random numbers, element access, printing.
#include <sstream>

#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

TEST_CASE("tensor metadata and contiguity") {
  Tensor x = zeros({2, 3, 4});
  CHECK(x.dim() == 3);
  CHECK(x.numel() == 24);
  CHECK(x.strides() == Shape{12, 4, 1});
  CHECK(x.is_contiguous());
  CHECK(x.dtype() == kFloat32);
  CHECK(x.device() == Device::cpu());
  CHECK(!x.transpose(0, 2).is_contiguous());
  CHECK(x.size(-1) == 4);
  Tensor s = scalar_tensor(3.5, kFloat64);
  CHECK(s.dim() == 0);
  CHECK(s.item() == 3.5);
}

TEST_CASE("views share storage: writes through a view are seen by the base") {
  Tensor base = arange(12, kFloat32).reshape({3, 4});
  Tensor tr = base.t();
  tr.set({1, 2}, 100);  // base[2][1]
  CHECK(base.at({2, 1}) == 100);
  Tensor row = base.select(0, 1);
  row.fill_(-1);
  CHECK(base.at({1, 0}) == -1);
  CHECK(base.at({1, 3}) == -1);
  Tensor every_other = base.slice(1, 0, 4, 2);  // columns 0 and 2
  CHECK(every_other.shape() == Shape{3, 2});
  every_other.zero_();
  CHECK(base.at({0, 2}) == 0);
  CHECK(base.at({0, 1}) == 1);
  Tensor n = base.narrow(1, 1, 2);
  CHECK(n.storage() == base.storage());
  CHECK(n.at({0, 0}) == base.at({0, 1}));
  Tensor e = tensor({1, 2, 3}).unsqueeze(0).expand({4, 3});
  CHECK(e.strides() == Shape{0, 1});
  CHECK(e.at({3, 2}) == 3);
  Tensor sq = zeros({1, 3, 1}).squeeze();
  CHECK(sq.shape() == Shape{3});
  CHECK(zeros({1, 3, 1}).squeeze(0).shape() == Shape{3, 1});
  Tensor p = arange(24).reshape({2, 3, 4}).permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.at({3, 1, 2}) == 23);
}

TEST_CASE("reshape is a view when possible and a copy otherwise") {
  Tensor x = arange(24).reshape({2, 3, 4});
  Tensor v = x.reshape({6, 4});
  CHECK(v.storage() == x.storage());
  Tensor t = x.transpose(1, 2);  // (2, 4, 3), not contiguous
  Tensor flat = t.reshape({-1});
  CHECK(flat.storage() != x.storage());
  CHECK(flat.at({1}) == x.at({0, 1, 0}));
  CHECK(t.reshape({2, 12}).shape() == Shape{2, 12});
  // A view across non-mergeable dims is refused with a pointer to reshape().
  check_error([&] { t.view({24}); }, {"view", "reshape"});
  // Splitting one dim of a transposed tensor is still a view.
  Tensor split = x.transpose(0, 1).view({3, 2, 2, 2});
  CHECK(split.storage() == x.storage());
  CHECK(split.at({2, 1, 1, 0}) == x.at({1, 2, 2}));
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.flatten().shape() == Shape{24});
}

TEST_CASE("contiguous, clone, to(dtype), to(device)") {
  Tensor x = arange(6, kFloat64).reshape({2, 3}).t();
  Tensor c = x.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  Tensor already = arange(3);
  CHECK(already.contiguous().is_same(already));
  Tensor cl = already.clone();
  cl.set({0}, 9);
  CHECK(already.at({0}) == 0);
  Tensor i = tensor({1.7, -2.2, 3.0}).to(kInt64);
  CHECK(i.dtype() == kInt64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
  CHECK(i.to(kFloat32).to_vector<float>() == std::vector<float>{1, -2, 3});
  CHECK(x.to(Device::cpu()).is_same(x));
#ifndef WAVSPA_CUDA  // a CUDA build with a GPU accepts the device
  check_error([&] { x.to(Device::cuda()); }, {"cuda"});
#endif
}

TEST_CASE("factories") {
  CHECK(zeros({2}).to_vector<float>() == std::vector<float>{0, 0});
  CHECK(ones({2}, kInt32).to_vector<int32_t>() == std::vector<int32_t>{1, 1});
  CHECK(full({3}, 2.5, kFloat64).to_vector<double>() == std::vector<double>{2.5, 2.5, 2.5});
  CHECK(arange(1, 2, 0.25, kFloat64).to_vector<double>() ==
        std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(arange(5, kInt64).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(3, 0, -1).to_vector<float>() == std::vector<float>{3, 2, 1});
  CHECK(linspace(0, 1, 5, kFloat64).to_vector<double>() ==
        std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(eye(2, 3).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0});
  Tensor m = tensor({{1, 2}, {3, 4}}, kFloat64);
  CHECK(m.shape() == Shape{2, 2});
  CHECK(m.at({1, 0}) == 3);
  Tensor v = from_vector(std::vector<int64_t>{4, 5, 6, 7}, {2, 2});
  CHECK(v.dtype() == kInt64);
  CHECK(v.at({1, 1}) == 7);
  check_error([] { from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }, {"3 values", "(2, 2)"});
  CHECK(zeros_like(m).dtype() == kFloat64);
  CHECK(full_like(m, 7).at({0, 1}) == 7);
}

TEST_CASE("Philox: known answer, same seed same numbers, disjoint draws") {
  // Random123's published known-answer test for Philox4x32-10 at counter 0, key 0.
  auto r = philox4x32(0, 0, 0);
  CHECK(r[0] == 0x6627e8d5u);
  CHECK(r[1] == 0xe169c58du);
  CHECK(r[2] == 0xbc57ac4cu);
  CHECK(r[3] == 0x9b00dbd8u);
  // And for 7 rounds, dropout's generator (dropout_philox): counter 0, key 0, and Random123's
  // digits-of-pi vector (counter words 243f6a88 85a308d3 13198a2e 03707344, key a4093822 299f31d0).
  const auto d = dropout_philox(0, 0);
  CHECK(d == std::array<uint32_t, 4>{0x5f6fb709u, 0x0d893f64u, 0x4f121f81u, 0x4f730a48u});
  const auto pi7 = philox4x32_rounds<7>(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull);
  CHECK(pi7 == std::array<uint32_t, 4>{0x4dfccabau, 0x190a87f0u, 0xc47362bau, 0xb6b5242au});

  manual_seed(7);
  Tensor a = randn({1000});
  Tensor b = rand({5});
  manual_seed(7);
  Tensor a2 = randn({1000});
  Tensor b2 = rand({5});
  CHECK(max_abs_diff(a, a2) == 0);
  CHECK(max_abs_diff(b, b2) == 0);
  CHECK(max_abs_diff(a.narrow(0, 0, 5), b) > 0);  // different draws
  // Moments of a large normal sample.
  Tensor big = randn({200000}, kFloat64);
  CHECK(std::abs(mean(big).item()) < 0.01);
  CHECK(std::abs(var(big, {0}).item() - 1) < 0.02);
  Tensor u = rand({200000}, kFloat64);
  CHECK(min(u).item() >= 0);
  CHECK(max(u).item() < 1);
  CHECK(std::abs(mean(u).item() - 0.5) < 0.01);
  Tensor k = randint(3, 7, {10000});
  CHECK(min(k.to(kFloat64)).item() == 3);
  CHECK(max(k.to(kFloat64)).item() == 6);
  // A private generator does not disturb the default one.
  Generator g(99);
  manual_seed(1);
  Tensor d1 = rand({3});
  manual_seed(1);
  rand({3}, kFloat32, Device::cpu(), &g);
  Tensor d2 = rand({3});
  CHECK(max_abs_diff(d1, d2) == 0);
}

TEST_CASE("element access and printing") {
  Tensor x = tensor({{1.5, -2}, {3, 4}});
  CHECK(x.at({-1, -1}) == 4);
  check_error([&] { x.at({2, 0}); }, {"at", "out of range", "(2, 2)"});
  check_error([&] { x.at({0}); }, {"at", "1 coordinates", "2 dims"});
  check_error([&] { x.item(); }, {"item", "(2, 2)"});
  std::ostringstream os;
  os << x;
  CHECK(os.str().find("1.5000") != std::string::npos);
  CHECK(os.str().find("shape=(2, 2)") != std::string::npos);
  CHECK(os.str().find("float32") != std::string::npos);
  std::ostringstream big;
  big << arange(5000, kInt64);
  CHECK(big.str().find("...") != std::string::npos);
  CHECK(big.str().find("4999") != std::string::npos);
  CHECK(big.str().size() < 200);
  std::ostringstream g;
  Tensor w = ones({2}).requires_grad_();
  g << (w * 2.0);
  CHECK(g.str().find("grad_fn=MulBackward") != std::string::npos);
}

TEST_CASE("empty tensors are contiguous") {
  CHECK(zeros({2, 0, 4}).is_contiguous());
  CHECK(zeros({0}).is_contiguous());
  CHECK(zeros({3, 0}).t().is_contiguous());
}

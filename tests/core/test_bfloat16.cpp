// bfloat16 (core/bfloat16.h, kBFloat16): the host conversions bit by bit (round to nearest
// even, ties, NaN, inf, overflow, subnormals, float64 rounded once), what bfloat16 tensors do
// on the CPU (create, convert, copy, view, read, print, save) and the clear errors of the CPU
// ops that compute (bfloat16 is computed on CUDA only).
#include <bit>
#include <cmath>
#include <limits>
#include <sstream>

#include "nn/checkpoint.h"
#include "nn/module.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

uint16_t bits_of(float f) { return bfloat16(f).bits; }
uint16_t bits_of(double d) { return bfloat16(d).bits; }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }
bool is_nan_bits(uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0; }

}  // namespace

TEST_CASE("bfloat16 from float32: round to nearest, ties to even") {
  CHECK(bits_of(1.0f) == 0x3f80);
  CHECK(bits_of(-2.0f) == 0xc000);
  CHECK(bits_of(0.0f) == 0x0000);
  CHECK(bits_of(-0.0f) == 0x8000);
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: to 1.
  CHECK(bits_of(from_bits(0x3f808000)) == 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  CHECK(bits_of(from_bits(0x3f818000)) == 0x3f82);
  // Just above and just below a tie.
  CHECK(bits_of(from_bits(0x3f808001)) == 0x3f81);
  CHECK(bits_of(from_bits(0x3f807fff)) == 0x3f80);
  CHECK(bits_of(from_bits(0xbf808001)) == 0xbf81);  // the sign does not change the rounding
  // A carry out of the mantissa moves to the next binade.
  CHECK(bits_of(from_bits(0x3fffffff)) == 0x4000);
}

TEST_CASE("bfloat16 from float32: NaN, inf, overflow and subnormals") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(bits_of(inf) == 0x7f80);
  CHECK(bits_of(-inf) == 0xff80);
  CHECK(is_nan_bits(bits_of(std::numeric_limits<float>::quiet_NaN())));
  // NaN payloads only in the low bits would become inf under plain rounding: they stay NaN.
  CHECK(is_nan_bits(bits_of(from_bits(0x7f800001))));
  CHECK(is_nan_bits(bits_of(from_bits(0xff800001))));
  CHECK((bits_of(from_bits(0xff800001)) & 0x8000) != 0);  // with its sign
  CHECK(is_nan_bits(bits_of(from_bits(0x7fffffff))));     // and no carry into the sign
  // The largest bfloat16 is 0x7f7f (about 3.39e38); float32 values from halfway to the next
  // binade up round to inf, those below round down to it.
  CHECK(bits_of(from_bits(0x7f7f7fff)) == 0x7f7f);
  CHECK(bits_of(from_bits(0x7f7f8000)) == 0x7f80);  // a tie, odd mantissa: up, to inf
  CHECK(bits_of(std::numeric_limits<float>::max()) == 0x7f80);
  CHECK(bits_of(-std::numeric_limits<float>::max()) == 0xff80);
  // Subnormals share float32's exponent range: kept, and rounded like normal numbers.
  CHECK(bits_of(from_bits(0x00010000)) == 0x0001);
  CHECK(bits_of(from_bits(0x00008000)) == 0x0000);  // tie between 0 and 0x0001: even
  CHECK(bits_of(from_bits(0x00018000)) == 0x0002);  // tie between 0x0001 and 0x0002: even
  CHECK(bits_of(from_bits(0x00008001)) == 0x0001);
  CHECK(bits_of(from_bits(0x007fffff)) == 0x0080);  // the largest subnormal rounds to the smallest normal
  CHECK(bits_of(std::numeric_limits<float>::denorm_min()) == 0x0000);
}

TEST_CASE("bfloat16 to float32 is exact, and every bfloat16 survives a round trip") {
  CHECK(static_cast<float>(bfloat16::from_bits(0x3f80)) == 1.0f);
  CHECK(static_cast<float>(bfloat16::from_bits(0x0001)) == from_bits(0x00010000));
  CHECK(std::isinf(static_cast<float>(bfloat16::from_bits(0xff80))));
  int mismatches = 0;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const bfloat16 h = bfloat16::from_bits((uint16_t)b);
    const float f = static_cast<float>(h);
    if (is_nan_bits((uint16_t)b)) {
      if (!std::isnan(f) || !is_nan_bits(bits_of(f))) ++mismatches;
    } else if (bits_of(f) != b || bits_of((double)f) != b) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bfloat16 from float64 rounds once (no double rounding through float32)") {
  // 1 + 2^-8 + 2^-40 is just above a bfloat16 tie; float32 would round it to the tie itself
  // (1 + 2^-8), and a second rounding to even would then give 1.
  CHECK(bits_of(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40)) == 0x3f81);
  CHECK(bits_of(-(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40))) == 0xbf81);
  CHECK(bits_of(1.0 + std::ldexp(1.0, -8) - std::ldexp(1.0, -40)) == 0x3f80);
  CHECK(bits_of(1.0 + std::ldexp(1.0, -8)) == 0x3f80);  // an exact tie: even
  CHECK(bits_of(1e300) == 0x7f80);
  CHECK(bits_of(-1e300) == 0xff80);
  CHECK(bits_of(1e-300) == 0x0000);
  CHECK(bits_of(-1e-300) == 0x8000);
  CHECK(is_nan_bits(bits_of(std::numeric_limits<double>::quiet_NaN())));
  CHECK(bits_of(std::numeric_limits<double>::infinity()) == 0x7f80);
  // Agrees with float32 rounding wherever float32 is exact.
  for (float f : {0.1f, 3.14159f, -65504.f, 1e-39f, 7.0e37f})
    CHECK(bits_of((double)f) == bits_of(f));
}

TEST_CASE("bfloat16 tensors on the CPU: create, convert, copy, view, read") {
  CHECK(dtype_name(kBFloat16) == std::string("bfloat16"));
  CHECK(dtype_size(kBFloat16) == 2);
  CHECK(is_floating(kBFloat16));
  Tensor f = from_vector(std::vector<float>{1.0f, from_bits(0x3f808000), from_bits(0x3f818000), -3.5f, std::numeric_limits<float>::max(), 0.1f},
                         {2, 3});
  Tensor h = f.to(kBFloat16);
  CHECK(h.dtype() == kBFloat16);
  CHECK(h.element_size() == 2);
  std::vector<uint16_t> got;
  for (bfloat16 v : h.to_vector<bfloat16>()) got.push_back(v.bits);
  CHECK(got == std::vector<uint16_t>{0x3f80, 0x3f80, 0x3f82, 0xc060, 0x7f80, bits_of(0.1f)});
  // Back to float32 exactly; through float64 and int64 too.
  auto back = h.to(kFloat32).to_vector<float>();
  CHECK(back[2] == 1.015625f);
  CHECK(std::isinf(back[4]));
  CHECK(h.to(kFloat64).to_vector<double>()[3] == -3.5);
  CHECK(h.select(1, 0).to(kInt64).to_vector<int64_t>() == std::vector<int64_t>{1, -3});  // (inf has no integer)
  CHECK(from_vector(std::vector<int64_t>{3, 257}).to(kBFloat16).to_vector<float>() == std::vector<float>{3, 256});
  // Factories, element access, fill.
  CHECK(zeros({2}, kBFloat16).to_vector<float>() == std::vector<float>{0, 0});
  CHECK(full({2, 2}, 0.1, kBFloat16).at({1, 1}) == (double)static_cast<float>(bfloat16(0.1)));
  CHECK(ones({3}, kBFloat16).dtype() == kBFloat16);
  CHECK(arange(4, kBFloat16).to_vector<float>() == std::vector<float>{0, 1, 2, 3});
  CHECK(h.at({1, 0}) == -3.5);
  CHECK(h.select(1, 2).select(0, 0).item() == 1.015625);
  Tensor hc = h.clone();
  hc.set({0, 0}, 2.0);
  hc.fill_(0.5);
  CHECK(hc.to_vector<float>() == std::vector<float>(6, 0.5f));
  // Views and copies move the 2-byte elements.
  Tensor t = h.t();
  CHECK(!t.is_contiguous());
  CHECK(t.contiguous().to_vector<float>() == f.t().contiguous().to(kBFloat16).to_vector<float>());
  CHECK(h.reshape({3, 2}).slice(0, 1, 3).to_vector<float>() == std::vector<float>{1.015625f, -3.5f, back[4], back[5]});
  CHECK(concat({h, h}, 0).shape() == Shape{4, 3});
  CHECK(h.unsqueeze(0).expand({2, 2, 3}).contiguous().to_vector<float>().size() == 12);
  Tensor dst = zeros({3, 2}, kFloat32);
  dst.copy_(h.t());  // copy_ converts
  CHECK(dst.to_vector<float>() == t.to(kFloat32).contiguous().to_vector<float>());
  // Equality as tests compare: through float.
  CHECK(max_abs_diff(h.select(0, 0), f.select(0, 0).to(kBFloat16)) == 0);
  CHECK(h.to_vector<float>() == f.to(kBFloat16).to_vector<float>());
}

TEST_CASE("bfloat16 printing") {
  std::ostringstream os;
  os << from_vector(std::vector<float>{1.0f, 0.1f, -2.5f}).to(kBFloat16);
  CHECK(os.str() == "tensor([ 1.0000,  0.1001, -2.5000], shape=(3,), dtype=bfloat16)");
}

TEST_CASE("bfloat16 CPU ops that compute refuse it, naming the op; mixed dtypes promote") {
  Tensor h = ones({2, 3}, kBFloat16), g = ones({3, 2}, kBFloat16);
  const std::string cuda_only = "bfloat16 is computed on CUDA only", hint = ".to(kFloat32)";
  check_error([&] { add(h, h); }, {"add", cuda_only, hint});
  check_error([&] { exp(h); }, {"exp", cuda_only});
  check_error([&] { neg(h); }, {"neg", cuda_only});
  check_error([&] { relu(h); }, {"relu", cuda_only});
  check_error([&] { sum(h); }, {"sum", cuda_only});
  check_error([&] { softmax(h, 1); }, {"softmax", cuda_only});
  check_error([&] { matmul(h, g); }, {"matmul", cuda_only});
  check_error([&] { layer_norm(h, {3}); }, {"layer_norm", cuda_only});
  // where selects and does not compute: it takes bfloat16 on the CPU too.
  CHECK(where(gt(ones({2, 3}), zeros({2, 3})), h, zeros({2, 3}, kBFloat16)).to(kFloat32).sum().item() == 6);
  check_error([&] { index_select(h, 0, from_vector(std::vector<int64_t>{1})); }, {"index_select", cuda_only});
  check_error([&] { cross_entropy(h, from_vector(std::vector<int64_t>{0, 1})); }, {"cross_entropy", cuda_only});
  // Mixed dtypes promote (bfloat16 + float32 computes in float32); matmul does not promote.
  CHECK(add(h, ones({2, 3})).dtype() == kFloat32);
  CHECK(add(h, ones({2, 3})).sum().item() == 12);
  check_error([&] { matmul(h, ones({3, 2})); }, {"matmul", "bfloat16", "float32"});
  // Ops with no bfloat16 version anywhere say so.
  check_error([&] { rfft(h, 1); }, {"rfft", "no bfloat16 version", hint});
  check_error([&] { randn({2}, kBFloat16); }, {"randn", "bfloat16"});
}

TEST_CASE("bfloat16 checkpoints: safetensors BF16 written and read back bit for bit") {
  TempDir dir("bf16_ckpt");
  std::vector<bfloat16> vals;
  for (uint16_t b : {0x3f80, 0x0001, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0xc060}) vals.push_back(bfloat16::from_bits(b));
  Tensor h = from_vector(vals, {7});
  Tensor strided = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).to(kBFloat16).t();
  nn::StateDict sd{{"h", h}, {"s", strided}, {"w", ones({2})}};
  nn::save_safetensors(dir / "bf16.safetensors", sd);
  const std::string bytes = read_file(dir / "bf16.safetensors");
  CHECK(bytes.find("\"dtype\":\"BF16\"") != std::string::npos);
  nn::Checkpoint ck = nn::load_safetensors(dir / "bf16.safetensors");
  REQUIRE(ck.tensors.count("h") == 1);
  Tensor r = ck.tensors.at("h");
  CHECK(r.dtype() == kBFloat16);
  std::vector<uint16_t> a, b;
  for (bfloat16 v : vals) a.push_back(v.bits);
  for (bfloat16 v : r.to_vector<bfloat16>()) b.push_back(v.bits);
  CHECK(a == b);
  CHECK(ck.tensors.at("s").shape() == Shape{3, 2});
  CHECK(ck.tensors.at("s").to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(ck.tensors.at("w").dtype() == kFloat32);
}

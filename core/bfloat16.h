// bfloat16: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
//
//   bfloat16 h(1.00390625f);            // a tie between 1 and 1 + 2^-7: rounds to even, 1
//   float f = static_cast<float>(h);    // exact: every bfloat16 is a float32
//   h.bits == 0x3f80;
//
// The host type of `kBFloat16` tensors. It only stores and converts: it has no arithmetic,
// so a CPU kernel cannot be instantiated on it by accident (bfloat16 is computed on CUDA,
// in float32 registers; see "bfloat16" in docs/architecture.md).
#pragma once

#include <bit>
#include <cstdint>

namespace wavspa {

struct bfloat16 {
  uint16_t bits = 0;

  bfloat16() = default;
  // Round to nearest, ties to even; NaN stays NaN (quiet, sign kept); overflow gives inf.
  explicit bfloat16(float f) : bits(round_float(f)) {}
  // Rounded once, correctly: float64 goes to float32 with round-to-odd first, which keeps
  // the information the second rounding needs (float32 has 16 more mantissa bits).
  explicit bfloat16(double d) : bfloat16(to_float_round_odd(d)) {}
  // Integers (indices converted by .to(kBFloat16)) go through double.
  explicit bfloat16(int32_t v) : bfloat16((double)v) {}
  explicit bfloat16(int64_t v) : bfloat16((double)v) {}
  explicit bfloat16(bool v) : bits(v ? 0x3F80 : 0) {}  // 1.0 or +0.0

  static bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }

  explicit operator float() const { return std::bit_cast<float>((uint32_t)bits << 16); }
  explicit operator double() const { return (double)(float)*this; }
  explicit operator int32_t() const { return (int32_t)(float)*this; }
  explicit operator int64_t() const { return (int64_t)(float)*this; }
  explicit operator bool() const { return (bits & 0x7FFF) != 0; }  // as float: -0 false, NaN true

  friend bool operator==(bfloat16 a, bfloat16 b) { return a.bits == b.bits; }  // bitwise

 private:
  static uint16_t round_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // NaN
    // Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry out of the
    // mantissa bumps the exponent, and past the largest finite value it lands on inf.
    const uint32_t lsb = (u >> 16) & 1u;
    return (uint16_t)((u + 0x7fffu + lsb) >> 16);
  }
  static float to_float_round_odd(double d) {
    float f = (float)d;  // round to nearest even
    if (d != d || (double)f == d) return f;
    uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 1u) == 0) {  // the even neighbour: take the odd one on the other side of d
      const bool above = ((double)f < 0 ? -(double)f : (double)f) > (d < 0 ? -d : d);
      u = above ? u - 1 : u + 1;  // sign-magnitude bits: -1 moves toward zero
    }
    return std::bit_cast<float>(u);
  }
};

static_assert(sizeof(bfloat16) == 2, "bfloat16 is two bytes");

}  // namespace wavspa

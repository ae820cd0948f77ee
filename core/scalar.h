// A number passed to a tensor op (x * 2, eq(ids, 7), masked_fill(x, m, -1e9)), remembering
// whether it was written as a floating number, an integer or a bool: that kind, not its value,
// decides the result's dtype (core/dtype.h's promotion rule), as c10::Scalar does in libtorch.
//
//   Scalar(2).is_floating();     // false: int32 * 2 stays int32
//   Scalar(2.0).is_floating();   // true:  int32 * 2.0 is float32
//   Scalar(true).is_bool();      // true
//   Scalar(int64_t{1} << 60).to_int64();   // exact; to_double() rounds beyond 2^53
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"

namespace wavspa {

class Scalar {
 public:
  enum class Kind { Bool, Integral, Floating };

  // Implicit from every arithmetic type, so that ops take 2, 2.0f, 0.5 and true alike.
  template <typename T>
    requires std::is_arithmetic_v<T>
  Scalar(T v)  // NOLINT(google-explicit-constructor)
      : kind_(std::is_same_v<T, bool> ? Kind::Bool
              : std::is_integral_v<T> ? Kind::Integral
                                      : Kind::Floating),
        d_((double)v),
        i_(std::is_integral_v<T> ? (int64_t)v : 0) {}

  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::Floating; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_integral() const { return kind_ == Kind::Integral; }
  double to_double() const { return d_; }
  // Exact for integers and bools; a floating value is truncated towards zero.
  int64_t to_int64() const { return kind_ == Kind::Floating ? (int64_t)d_ : i_; }

  // The dtype `tensor op scalar` computes in, for a tensor of dtype t (before bool becomes
  // int64 for arithmetic): a floating tensor keeps its dtype, an integer or bool tensor
  // keeps it against an integer or bool and becomes float32 against a floating number.
  DType promote_with(DType t) const {
    if (wavspa::is_floating(t) || !is_floating()) return t;
    return DType::Float32;
  }

 private:
  Kind kind_;
  double d_;
  int64_t i_;
};

}  // namespace wavspa

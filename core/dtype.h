// Element types. float64 exists for gradient checks; int32/int64 hold indices; bfloat16 is
// the CUDA mixed-precision type (stored and converted everywhere, computed on CUDA only);
// bool holds masks (comparisons return it; where, masked_fill and the logical ops take it).
//
//   Tensor ids = zeros({4}, kInt64);
//   Tensor m = gt(randn({3}), 0.0);             // kBool
//   promote_types(kInt64, kFloat32);            // kFloat32
//   dtype_size(kBFloat16);                      // 2 bytes
//   Tensor d = ones({2}, kInt32).to(kFloat64);  // a converted copy
//
// Type promotion, for every binary elementwise op (add, sub, mul, div, pow, maximum, minimum,
// where, the comparisons): the two dtypes meet at promote_types(a, b), which is the one a
// value of either converts to without leaving its kind:
//   - a floating dtype wins over bool and the integers: int64 + float32 -> float32;
//   - between floats the wider wins: bfloat16 + float32 -> float32, float32 + float64 -> float64;
//   - between the rest the wider wins: bool + int32 -> int32, int32 + int64 -> int64.
// Arithmetic on bool computes in int64 (true + true == 2), and div of two integer tensors
// divides truly, in float32 (torch.div's default). A Scalar (core/scalar.h) does not widen a
// tensor of its kind: float32 * 2.5 stays float32, int32 * 2 stays int32; a floating scalar
// makes an integer or bool tensor float32 (int64 * 2.0 -> float32), as in PyTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "core/bfloat16.h"
#include "core/error.h"

namespace wavspa {

enum class DType { Float32, Float64, Int32, Int64, BFloat16, Bool };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kBool = DType::Bool;

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::BFloat16: return 2;
    case DType::Bool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::BFloat16: return "bfloat16";
    case DType::Bool: return "bool";
  }
  return "?";
}

inline bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::BFloat16;
}

// The dtype both operands of a binary op convert to (the rule at the top of this file).
inline DType promote_types(DType a, DType b) {
  if (a == b) return a;
  // Within a kind, the order of width; across kinds, floating wins.
  auto rank = [](DType t) {
    switch (t) {
      case DType::Bool: return 0;
      case DType::Int32: return 1;
      case DType::Int64: return 2;
      case DType::BFloat16: return 3;
      case DType::Float32: return 4;
      case DType::Float64: return 5;
    }
    return 0;
  };
  return rank(a) > rank(b) ? a : b;
}

// The dtype arithmetic computes in for operands promoted to t: bool counts as int64.
inline DType arithmetic_dtype(DType t) { return t == DType::Bool ? DType::Int64 : t; }

// The message of every computing kernel refusing bool: `op` names the caller.
inline std::string bool_compute_message(const char* op) {
  return str(op, ": bool tensors hold masks and are not computed on; convert with .to(kInt64) "
                 "or .to(kFloat32) (comparisons return bool; where, masked_fill, the logical "
                 "ops, sum, any and all take it)");
}

// The message of every CPU kernel refusing bfloat16: `op` names the caller.
inline std::string bfloat16_cpu_message(const char* op) {
  return str(op, ": bfloat16 is computed on CUDA only; on the CPU convert with .to(kFloat32) "
                 "(bfloat16 tensors can be created, copied, viewed, converted, printed and saved "
                 "on the CPU)");
}

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// Maps a C++ type to its DType: dtype_of<float>() == kFloat32.
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::BFloat16; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

// Calls f with a value of the C++ type behind `t`, for the types CPU kernels compute in:
//   visit_dtype(t, "index_select", [&](auto zero) { using T = decltype(zero); ... });
// bfloat16 is not one of them: it throws bfloat16_cpu_message(op) instead of instantiating
// arithmetic on a type the CPU would compute in float32 anyway. Nor is bool (ops convert it
// to int64 before arithmetic).
template <typename F>
decltype(auto) visit_dtype(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::BFloat16: throw Error(bfloat16_cpu_message(op));
    case DType::Bool: throw Error(bool_compute_message(op));
  }
  throw Error("unknown dtype");
}

// Same, for kernels that exist only for float32 and float64.
template <typename F>
decltype(auto) visit_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::BFloat16: throw Error(bfloat16_cpu_message(op));
    default: break;
  }
  throw Error(str(op, ": expected a floating tensor (float32 or float64), got ", dtype_name(t)));
}

// Every dtype, bfloat16 and bool included, for code that only stores, moves, selects or
// converts values (copy with conversion, fill, where, reading one element): `static_cast`
// between these types is the whole interface of `bfloat16` (to bool: nonzero is true).
template <typename F>
decltype(auto) visit_storage_dtype(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::BFloat16: return f(bfloat16{});
    case DType::Bool: return f(bool{});
  }
  throw Error("unknown dtype");
}

}  // namespace wavspa

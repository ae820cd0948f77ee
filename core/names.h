// The names of an enum's values in one table, looked up both ways.
//
//   const std::pair<WaveletMode, const char*> kModeNames[] = {{WaveletMode::Zero, "zero"},
//                                                             {WaveletMode::Symmetric, "symmetric"}};
//   WaveletMode m = value_of_name(kModeNames, "symmetric", "wavelet mode");  // throws, listing the valid names
//   const char* n = name_of_value(kModeNames, m);                            // "?" for a value not in the table
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include "core/error.h"

namespace wavspa {

template <typename E, size_t N>
E value_of_name(const std::pair<E, const char*> (&table)[N], const std::string& name, const char* what) {
  std::string valid;
  for (const auto& [value, n] : table) {
    if (name == n) return value;
    valid += valid.empty() ? n : std::string(", ") + n;
  }
  throw Error(str("unknown ", what, " '", name, "'; valid: ", valid));
}

template <typename E, size_t N>
const char* name_of_value(const std::pair<E, const char*> (&table)[N], E value) {
  for (const auto& [v, n] : table)
    if (v == value) return n;
  return "?";
}

}  // namespace wavspa

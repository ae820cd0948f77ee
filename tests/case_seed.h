// The seed a test case starts from (tests/main.cpp reseeds the default generator with it when
// the case starts): FNV-1a, 64 bits, of the case's name, the same on every platform and build.
#pragma once

#include <cstdint>

namespace wavspa::test {

inline uint64_t case_seed(const char* name) {
  uint64_t h = 14695981039346656037ull;
  for (const char* c = name; *c; ++c) h = (h ^ (unsigned char)*c) * 1099511628211ull;
  return h;
}

}  // namespace wavspa::test

// The doctest runner: every tests/**/test_*.cpp links into one binary, build/wavspa_tests.
//
// With the CUDA backend compiled in, the caching allocator's poison is on for the whole run:
// every block it hands out (fresh or reused) is first filled with 0xFF bytes (NaN for
// floating dtypes), so a kernel that leaves part of its output unwritten fails the
// CPU-vs-CUDA parity checks instead of passing on leftover values.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

int main(int argc, char** argv) {
#ifdef WAVSPA_CUDA
  wavspa::cuda::set_poison(true);
#endif
  doctest::Context context(argc, argv);
  return context.run();
}

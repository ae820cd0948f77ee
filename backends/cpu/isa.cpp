#include "backends/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace wavspa::cpu {
namespace {

// -1 until first read; then an Isa.
std::atomic<int> g_isa{-1};

Isa from_environment() {
  const char* env = std::getenv("WAVSPA_CPU_ISA");
  if (env == nullptr || *env == '\0') return cpu_has_avx512() ? Isa::kAvx512 : Isa::kAvx2;
  const std::string name = env;
  if (name == "avx2") return Isa::kAvx2;
  WAVSPA_CHECK(name == "avx512", "WAVSPA_CPU_ISA: expected avx2 or avx512, got '", name, "'");
  WAVSPA_CHECK(cpu_has_avx512(), "WAVSPA_CPU_ISA=avx512, but this CPU (or OS) does not run AVX-512 F/DQ/BW/VL");
  return Isa::kAvx512;
}

}  // namespace

bool cpu_has_avx512() {
  // __builtin_cpu_supports also checks that the OS saves the AVX-512 registers (XCR0).
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return has;
}

Isa isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = (int)from_environment();
    g_isa.store(v, std::memory_order_relaxed);
  }
  return (Isa)v;
}

void set_isa(Isa isa) {
  WAVSPA_CHECK(isa != Isa::kAvx512 || cpu_has_avx512(),
               "set_isa: AVX-512 asked for, but this CPU (or OS) does not run AVX-512 F/DQ/BW/VL");
  g_isa.store((int)isa, std::memory_order_relaxed);
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx512 ? "avx512" : "avx2"; }

}  // namespace wavspa::cpu

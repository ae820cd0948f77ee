// Which vector instruction set the CPU kernels use, chosen at run time.
//
// The library is compiled for x86-64-v3 (AVX2 + FMA), which every supported machine has.
// Where the CPU and the operating system also support AVX-512 (F, DQ, BW and VL), the
// float32 math of vmath.h (exp, softmax's exponentials, the exact-erf GELU and its
// derivative) and the attention tiles' products (tile_gemm.h) run 16 lanes at a time from
// vmath_avx512.cpp, the one file compiled with AVX-512 enabled. Both paths give the same bits
// (tests/backends/cpu/test_cpu_vmath.cpp, test_cpu_tile_gemm.cpp).
//
//   WAVSPA_CPU_ISA=avx2 build/train ...   # keep to AVX2 on an AVX-512 machine
//   cpu::set_isa(cpu::Isa::kAvx2);        // the same from code (tests, benchmarks)
#pragma once

namespace wavspa::cpu {

enum class Isa { kAvx2, kAvx512 };

// Whether this CPU and OS can run the AVX-512 path.
bool cpu_has_avx512();
// The set the kernels use now: AVX-512 where it runs, unless WAVSPA_CPU_ISA=avx2 (read once;
// any other value than avx2 or avx512 is an error, as is avx512 where it does not run).
Isa isa();
// Chooses the set; AVX-512 on a CPU without it is an error. Not for use while kernels run.
void set_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace wavspa::cpu

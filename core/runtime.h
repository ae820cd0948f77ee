// Process-wide settings that kernels read when they run: how float32 matrix products are
// computed and how many threads the CPU kernels use. They live below the backends so that
// tools and the training loop can set them without including the kernel interface.
//
//   wavspa::set_cpu_threads(4);                                        // the CPU kernels
//   wavspa::set_matmul_precision(wavspa::MatmulPrecision::BFloat16);
//   {
//     wavspa::MatmulPrecisionGuard exact(wavspa::MatmulPrecision::Float32);
//     Tensor y = matmul(randn({64, 64}), randn({64, 64}));           // float32 products here
//   }
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace wavspa {

// How float32 matrix products (matmul, linear, the batched products of attention) are
// computed. Each product reads it when it runs. float64 products are never affected, and the
// CPU backend computes every product in float32 whatever the setting.
//
//   Float32   exact float32 multiply-adds: CPU and CUDA agree to rounding (the default)
//   TF32      CUDA: tensor cores with the inputs rounded to TF32 (10 mantissa bits), float32
//             accumulation and output
//   BFloat16  CUDA: the inputs rounded to bfloat16 (7 stored mantissa bits, round to nearest
//             even), float32 accumulation and output. With float32 weights, activations and
//             optimizer state this is bfloat16 mixed precision: the products (and so
//             attention's scores and mixing) run on bfloat16 tensor cores, everything else
//             stays float32.
enum class MatmulPrecision { Float32, TF32, BFloat16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
const char* matmul_precision_name(MatmulPrecision p);  // "fp32", "tf32", "bf16"
const std::vector<std::string>& matmul_precision_names();  // all three, in that order
// Accepts the names above; anything else is a wavspa::Error listing them.
MatmulPrecision matmul_precision_from_name(const std::string& name);

// Sets a precision for the lifetime of a scope and restores the previous one after it.
class MatmulPrecisionGuard {
 public:
  explicit MatmulPrecisionGuard(MatmulPrecision p) : saved_(matmul_precision()) {
    set_matmul_precision(p);
  }
  ~MatmulPrecisionGuard() { set_matmul_precision(saved_); }
  MatmulPrecisionGuard(const MatmulPrecisionGuard&) = delete;
  MatmulPrecisionGuard& operator=(const MatmulPrecisionGuard&) = delete;

 private:
  MatmulPrecision saved_;
};

// Mixed precision ("autocast"), the policy behind `--precision bf16`. While it is on, the
// ops below compute CUDA tensors in bfloat16 and leave everything else as it was:
//
//   { wavspa::AutocastGuard bf16; Tensor loss = cross_entropy(model(x), y); loss.backward(); }
//
//   linear, matmul, attention  float32 operands are cast to bfloat16 (the cast is an op of
//                              the graph, so its gradient comes back in float32); outputs
//                              are bfloat16, accumulation float32. linear reads its float32
//                              weight as a bfloat16 copy made once per call and saved for
//                              backward, and writes the weight and bias gradients in float32.
//   layer_norm                 a float32 input is cast to bfloat16; statistics are float32,
//                              the affine parameters stay float32 (and so their gradients)
//   binary elementwise ops     a bfloat16 operand with a float32 one: the float32 one is cast
//                              (the activations stay bfloat16 once they are)
//   cross_entropy              bfloat16 logits are cast to float32: the loss is float32
//   FFTs                       bfloat16 inputs are cast to float32 (no bfloat16 kernels)
//   wavelet ops                no cast: on CUDA they take bfloat16 signals with float32
//                              filters (idwt's two bands go to one dtype, bfloat16 if either is)
//
// Parameters and optimizer state stay float32 (the master weights). Softmax, reductions and
// the norms' statistics accumulate in float32 in any case. CPU tensors are never cast: the
// CPU backend has no bfloat16 arithmetic, so a CPU model computes as without the guard.
// The setting belongs to the calling thread; backward replays what the forward recorded,
// whatever the setting is when it runs.
void set_autocast(bool enabled);
bool autocast_enabled();

class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled = true) : saved_(autocast_enabled()) { set_autocast(enabled); }
  ~AutocastGuard() { set_autocast(saved_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool saved_;
};

// The most device memory (bytes) attention's backward may take for a scratch copy of the
// (N x N) dS matrices, which lets the CUDA tensor-core backward form dS once and get dQ from
// one GEMM instead of a second pass over the keys (a batch is then done in chunks that fit).
// The same limit caps the dropout mask drawn before the forward and read by both passes (one
// bit per weight, N x N / 8 bytes per head, held from forward to backward); without it the
// kernels draw the mask inside their tile loops. 0 forbids both; the default is 256 MiB. The
// CPU backend never uses it.
//   { wavspa::AttentionScratchGuard none(0); ... }   // two passes, no N x N memory
void set_attention_scratch_limit(int64_t bytes);
int64_t attention_scratch_limit();

class AttentionScratchGuard {
 public:
  explicit AttentionScratchGuard(int64_t bytes) : saved_(attention_scratch_limit()) {
    set_attention_scratch_limit(bytes);
  }
  ~AttentionScratchGuard() { set_attention_scratch_limit(saved_); }
  AttentionScratchGuard(const AttentionScratchGuard&) = delete;
  AttentionScratchGuard& operator=(const AttentionScratchGuard&) = delete;

 private:
  int64_t saved_;
};

// The resident memory of this process (Linux's /proc/self/statm), in bytes; -1 where unknown.
int64_t process_rss_bytes();

// Threads of the CPU kernels (the pool of core/parallel.h; OpenBLAS itself stays on one
// thread); n >= 1. The default is OMP_NUM_THREADS when set, else the cores this process may
// run on (its affinity mask: `taskset -c 0,1` gives 2).
void set_cpu_threads(int n);
int cpu_threads();

// How idle OpenMP threads wait. The CPU kernels no longer run on OpenMP (core/parallel.h),
// but libgomp is still loaded (OpenBLAS's OpenMP build) and a user's own OpenMP code uses it.
// libgomp's default spins for a while before sleeping; when another process shares the
// cores, spinning threads take the time the working ones need (a 2-thread WavSpA step took
// 3x the 1-thread step when the kernels were OpenMP loops; docs/results.md). libgomp reads its
// environment when it is loaded, before main() and before any constructor of ours, so no
// function call can change it; a program's `.preinit_array` runs earlier still. Put
//
//   WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT();
//
// once at namespace scope in the file of main(): it sets OMP_WAIT_POLICY=passive unless the
// environment already says OMP_WAIT_POLICY or GOMP_SPINCOUNT. The tools do (tools/train ...).
// Executables only: a shared library's .preinit_array is ignored.
namespace detail {
inline void passive_wait_unless_set(int, char**, char**) {
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) setenv("OMP_WAIT_POLICY", "passive", 0);
}
}  // namespace detail
#define WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT()                                             \
  [[gnu::section(".preinit_array"), gnu::used]] static void (*const wavspa_preinit_wait_)( \
      int, char**, char**) = &::wavspa::detail::passive_wait_unless_set

}  // namespace wavspa

// Counter-based random numbers (Philox 4x32, Salmon et al., SC'11: 10 rounds, 7 for dropout).
//
// Element i of a random tensor is a pure function of (seed, offset + i / lanes), where a
// kernel takes `lanes` values (4 uniforms, 2 normals) from each Philox block: the same seed gives
// the same numbers on every backend, in any thread order. A Generator hands out disjoint
// counter ranges, so consecutive calls never reuse numbers.
//
//   wavspa::manual_seed(42);
//   Tensor x = wavspa::randn({2, 3});   // same values on every run and device
#pragma once

#include <array>
#include <cstdint>

namespace wavspa {

// Host and device (the CUDA backend's random kernels call the same function).
#if defined(__CUDACC__)
#define WAVSPA_HOST_DEVICE __host__ __device__
#else
#define WAVSPA_HOST_DEVICE
#endif

// Philox 4x32's multipliers and key increments (Salmon et al.).
inline constexpr uint32_t kPhiloxMul0 = 0xD2511F53u, kPhiloxMul1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxWeyl0 = 0x9E3779B9u, kPhiloxWeyl1 = 0xBB67AE85u;

// One Philox 4x32 block: `Rounds` rounds on a 128-bit counter with a 64-bit key. (The CPU
// backend computes eight blocks at once in backends/cpu/vmath.h, philox4x32_8, bit for bit.)
template <int Rounds>
WAVSPA_HOST_DEVICE inline std::array<uint32_t, 4> philox4x32_rounds(uint64_t counter, uint64_t subsequence,
                                                                    uint64_t key) {
  uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
  uint32_t c2 = (uint32_t)subsequence, c3 = (uint32_t)(subsequence >> 32);
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < Rounds; ++round) {
    uint64_t p0 = (uint64_t)kPhiloxMul0 * c0, p1 = (uint64_t)kPhiloxMul1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxWeyl0;
    k1 += kPhiloxWeyl1;
  }
  return {c0, c1, c2, c3};
}

// Philox 4x32-10, the generator's numbers (uniform, normal, randint, the data sets' draws).
WAVSPA_HOST_DEVICE inline std::array<uint32_t, 4> philox4x32(uint64_t counter, uint64_t subsequence, uint64_t key) {
  return philox4x32_rounds<10>(counter, subsequence, key);
}

// Dropout's draws (every dropout mask: dropout, bias_gelu, dropout_add, attention's weights):
// Philox 4x32-7, block `counter` of key `key`. Seven rounds are the fewest that Salmon et al.
// report as Crush-resistant for Philox 4x32 (TestU01's batteries passed), and what
// FlashAttention-2 draws its dropout with; three rounds fewer are about 30% less work where
// the draws are most of what a dropout kernel costs. Ten stay for numbers a user samples.
constexpr int kDropoutPhiloxRounds = 7;
WAVSPA_HOST_DEVICE inline std::array<uint32_t, 4> dropout_philox(uint64_t counter, uint64_t key) {
  return philox4x32_rounds<kDropoutPhiloxRounds>(counter, 0, key);
}

// Uniform in (0, 1] from 32 random bits (never 0, so log() is safe), float or double.
WAVSPA_HOST_DEVICE inline double uint_to_unit(uint32_t x) { return ((double)x + 1.0) * (1.0 / 4294967296.0); }

// The state a random kernel needs: the key and the first counter of its range.
//
// Work recorded into a CUDA graph (ops/graph.h) runs again at every replay and must draw new
// numbers each time, so its counters cannot be fixed when it is recorded: during a capture,
// `offset` is relative and `offset_base` points to a device word that the replay sets to
// where its range starts. Kernels read the sum through philox_start(); it is only ever
// non-null for CUDA kernels.
struct PhiloxState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  const uint64_t* offset_base = nullptr;  // device memory, or null
};

// The first counter of s's range (dereferences offset_base: call it in device code only
// when offset_base can be set).
WAVSPA_HOST_DEVICE inline uint64_t philox_start(const PhiloxState& s) {
  return s.offset_base ? s.offset + *s.offset_base : s.offset;
}

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset);
  // Reserves `n` counters (each gives 4 x 32 random bits) and returns where they start.
  // While a CUDA graph capture records with this generator, the range is relative to the
  // capture's start and based on the capture's device word (see PhiloxState); while a capture
  // records with another generator, drawing from this one is an error (its numbers would be
  // frozen into the graph and repeat at every replay).
  PhiloxState reserve(uint64_t n);

  // For ops/graph.h: the counters drawn between begin_capture and end_capture become relative
  // to the offset at begin_capture and based on `device_base`. end_capture rewinds the
  // generator to that offset (recording draws nothing) and returns how many counters one
  // replay uses.
  void begin_capture(const uint64_t* device_base);
  uint64_t end_capture();
  bool capturing() const { return capture_base_ != nullptr; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  const uint64_t* capture_base_ = nullptr;
  uint64_t capture_start_ = 0;
};

// The process-wide default generator (thread-unsafe by design, like PyTorch's CPU default).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace wavspa

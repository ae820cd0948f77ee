// CUDA runtime plumbing shared by the CUDA backend, callable from plain C++ (no CUDA
// headers): checked calls, device queries, the backend's stream, and the caching device
// allocator that core's Storage uses for Device::cuda() tensors.
//
//   wavspa::cuda::MemoryStats s = wavspa::cuda::memory_stats();
//   std::printf("%lld bytes in tensors, %lld held from the driver\n",
//               (long long)s.allocated, (long long)s.reserved);
//   wavspa::cuda::empty_cache();   // give idle blocks back to the driver
//
// Built only with `make CUDA=1`.
#pragma once

#include <cstdint>
#include <string>

namespace wavspa::cuda {

// Throws wavspa::Error naming the call, file:line and CUDA's message when `status` is an error.
void check(int status, const char* call, const char* file, int line);
#define WAVSPA_CUDA_CHECK(call) ::wavspa::cuda::check((int)(call), #call, __FILE__, __LINE__)

int device_count();
std::string device_name(int index);

// Waits until every kernel and copy issued by the backend has finished (the backend runs
// everything on one stream; see stream() in backends/cuda/common.cuh).
void synchronize();

// ---- the caching allocator -------------------------------------------------------------
//
// Device memory is expensive to get (cudaMalloc synchronises the device and costs tens of
// microseconds) and a training step frees and re-allocates the same activation sizes every
// time. Freed blocks therefore go to free lists keyed by their rounded size and are handed
// out again. Everything runs on the backend's one stream, so a block freed by the host while
// a kernel that reads it is still queued can be given to later work at once: that work is
// queued behind the kernel on the same stream.
//
// Sizes are rounded up to 512 bytes below 1 MiB and to whole 2 MiB above (cudaMalloc maps
// large allocations in 2 MiB pages anyway, so the rounding wastes no device memory that the
// driver would not have used); a large request may take a cached block up to a quarter
// larger than its rounded size.

struct MemoryStats {
  int64_t allocated = 0;          // bytes in blocks handed out and not yet freed (rounded)
  int64_t reserved = 0;           // bytes held from cudaMalloc: allocated + cached
  int64_t peak_allocated = 0;     // the largest `allocated` since start or reset_peak()
  int64_t num_allocs = 0;         // allocations of at least one byte
  int64_t num_cache_hits = 0;     // of those, the ones served from the cache
  int64_t num_device_allocs = 0;  // cudaMalloc calls (cache misses that succeeded)
};
MemoryStats memory_stats();
// Sets peak_allocated to the current allocated.
void reset_peak();
// Returns every cached (idle) block to the driver, after waiting for the stream.
void empty_cache();

// Debugging: when on, every block handed out is first filled with 0xFF bytes (NaN in float32
// and float64, -1 in integers), so a kernel that leaves part of its output unwritten makes a
// parity test fail instead of passing on stale zeros. Also turned on by the environment
// variable WAVSPA_CUDA_POISON=1. Costs one memset per allocation.
void set_poison(bool on);
bool poison();

// Testing: how many output tiles a block of the vector-tile wavelet kernels (analysis and
// synthesis, backends/cuda/wavelet.cu) walks, copying the next tile's rows while it computes
// the current one. 0, the default, takes about one wave of two blocks per SM, which the small
// signals of tests never exceed; they set it to reach the walk. At most 64. Also set by the
// environment variable WAVSPA_WAVELET_TILES (read at start).
void set_wavelet_tiles_per_block(int tiles);
int wavelet_tiles_per_block();

// CUDA graphs (backends/cuda/graph.cu): while a capture records, the calling thread's
// allocations come from a private pool whose blocks no other work gets until
// release_graph_pool (the graph's replays write them); blocks freed during the capture join
// the pool too, since the recorded work may read them.
int begin_graph_pool();
void end_graph_pool();
void release_graph_pool(int pool) noexcept;

// Registers the device allocator with core (idempotent; touches no CUDA API, so it is safe
// in a static initialiser of a process that never uses a GPU).
void register_allocator();

}  // namespace wavspa::cuda

#include "backends/cuda/cuda_runtime.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>
#include <unordered_map>

#include "backends/cuda/common.cuh"
#include "core/error.h"
#include "core/storage.h"

namespace wavspa::cuda {

void check(int status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  throw Error(str("CUDA error in ", call, " at ", file, ":", line, ": ",
                  cudaGetErrorString(static_cast<cudaError_t>(status))));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear it, or the next launch check would report it
    return 0;            // no driver or no GPU: zero devices
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  WAVSPA_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

cudaStream_t stream() {
  // Non-blocking: the stream does not wait for (or hold up) work that libraries might put on
  // the legacy default stream. Never destroyed: kernels may still be queued at exit, and
  // the driver reclaims it with the process.
  static cudaStream_t s = [] {
    cudaStream_t created = nullptr;
    WAVSPA_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

void synchronize() { WAVSPA_CUDA_CHECK(cudaStreamSynchronize(stream())); }

namespace {

std::atomic<int> g_poison{-1};  // -1: not decided yet (the environment is read on first use)

bool poison_enabled() {
  int p = g_poison.load(std::memory_order_relaxed);
  if (p < 0) {
    const char* env = std::getenv("WAVSPA_CUDA_POISON");
    int want = env && std::strcmp(env, "0") != 0 && env[0] != '\0' ? 1 : 0;
    g_poison.compare_exchange_strong(p, want);  // loses only to an explicit set_poison
    p = g_poison.load(std::memory_order_relaxed);
  }
  return p == 1;
}

std::string mib(int64_t bytes) { return str((double)bytes / (1024.0 * 1024.0), " MiB"); }

class CachingAllocator final : public Allocator {
 public:
  static constexpr size_t kSmallGrain = 512;
  static constexpr size_t kLargeFrom = size_t(1) << 20;  // 1 MiB
  static constexpr size_t kLargeGrain = size_t(2) << 20;  // 2 MiB

  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const size_t want = round(nbytes);
    void* p = nullptr;
    size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const int pool = capturing_locked() ? capture_pool_ : kGlobal;
      // A capture takes blocks from its own pool first, then from the shared cache.
      if (!(pool != kGlobal && take_locked(pools_[pool].free, want, p, size)) && !take_locked(free_, want, p, size)) {
        p = device_malloc_locked(want, nbytes);
        size = want;
      }
      live_.emplace(p, Block{size, pool});
      ++stats_.num_allocs;
      stats_.allocated += (int64_t)size;
      stats_.peak_allocated = std::max(stats_.peak_allocated, stats_.allocated);
    }
    // Stream-ordered like everything else, so it lands before the block's first real use.
    if (poison_enabled()) WAVSPA_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, size, stream()));
    return p;
  }

  // Called from destructors: must not throw.
  void deallocate(void* ptr, size_t) override {
    if (!ptr) return;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(ptr);
      if (it == live_.end()) return;  // not ours (cannot happen); leaking beats a crash
      const Block b = it->second;
      live_.erase(it);
      stats_.allocated -= (int64_t)b.size;
      // A block freed while a capture records may still be read by the recorded work (it
      // was alive when the work was recorded), so the capture's pool keeps it. Otherwise a
      // block goes back where it came from: a live graph's pool, or the shared cache.
      int pool = capturing_locked() ? capture_pool_ : b.pool;
      if (pool != kGlobal && pools_[pool].released) pool = kGlobal;
      (pool == kGlobal ? free_ : pools_[pool].free).emplace(b.size, ptr);
    } catch (...) {
    }
  }

  // Graph capture (backends/cuda/graph.cu). Between begin_pool and end_pool, the calling
  // thread's allocations come from a new private pool; release_pool gives its idle blocks
  // back once the graph is gone.
  int begin_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    WAVSPA_CHECK(capture_pool_ == kGlobal, "CUDA graph capture: another capture is recording");
    pools_.emplace_back();
    capture_pool_ = (int)pools_.size() - 1;
    capture_thread_ = std::this_thread::get_id();
    return capture_pool_;
  }

  void end_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    capture_pool_ = kGlobal;
  }

  // Called from destructors: must not throw.
  void release_pool(int pool) noexcept {
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      if (pool < 0 || pool >= (int)pools_.size() || pools_[pool].released) return;
      Pool& p = pools_[pool];
      free_.insert(p.free.begin(), p.free.end());
      p.free.clear();
      p.released = true;
    } catch (...) {
    }
  }

  Device device() const override { return Device::cuda(0); }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  MemoryUsage usage() override {
    const MemoryStats s = stats();
    return MemoryUsage{s.allocated, s.reserved, s.peak_allocated, s.num_allocs, s.num_cache_hits};
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated = stats_.allocated;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache_locked();
  }

 private:
  static constexpr int kGlobal = -1;

  struct Block {
    size_t size;
    int pool;  // the graph pool it belongs to, or kGlobal
  };

  // A graph's memory: the blocks its recorded work reads and writes stay out of the shared
  // cache while the graph lives, or later work would overwrite them between replays.
  struct Pool {
    std::multimap<size_t, void*> free;
    bool released = false;
  };

  bool capturing_locked() const {
    return capture_pool_ != kGlobal && std::this_thread::get_id() == capture_thread_;
  }

  // Takes a block for `want` bytes out of `list`: small blocks must match exactly (they are
  // cheap to make, and handing out bigger ones would drain the bucket the bigger requests
  // need); a large request may take a block up to a quarter larger, so near sizes of one
  // activation share their blocks.
  bool take_locked(std::multimap<size_t, void*>& list, size_t want, void*& p, size_t& size) {
    auto it = list.lower_bound(want);
    const size_t limit = want < kLargeFrom ? want : want + want / 4;
    if (it == list.end() || it->first > limit) return false;
    p = it->second;
    size = it->first;
    list.erase(it);
    ++stats_.num_cache_hits;
    return true;
  }

  static size_t round(size_t n) {
    if (n < kLargeFrom) return (n + kSmallGrain - 1) / kSmallGrain * kSmallGrain;
    return (n + kLargeGrain - 1) / kLargeGrain * kLargeGrain;
  }

  // Frees every idle block. Queued kernels may still read a block that was freed by the
  // host after they were launched, so the stream is drained first.
  void release_cache_locked() {
    if (free_.empty()) return;
    WAVSPA_CUDA_CHECK(cudaStreamSynchronize(stream()));
    for (auto& [size, p] : free_) {
      WAVSPA_CUDA_CHECK(cudaFree(p));
      stats_.reserved -= (int64_t)size;
    }
    free_.clear();
  }

  void* device_malloc_locked(size_t size, size_t requested) {
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      // The failure is also recorded as the thread's last error; clear it, or the next
      // launch check would report this (recovered) failure as its own.
      cudaGetLastError();
      release_cache_locked();
      err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        std::string device_info;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
          device_info = str("; the device has ", mib((int64_t)free_b), " free of ", mib((int64_t)total_b));
        else
          cudaGetLastError();
        throw Error(str("CUDA out of memory: cannot allocate ", requested, " bytes (", mib((int64_t)size),
                        " rounded) even after emptying the cache; wavspa holds ",
                        mib(stats_.allocated), " in tensors, ", mib(stats_.reserved),
                        " reserved, peak ", mib(stats_.peak_allocated), device_info,
                        ". A smaller batch_size or max_len, or --precision bf16, needs less"));
      }
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
        throw Error(str("cannot allocate ", requested, " bytes on cuda:0: no CUDA device visible (",
                        cudaGetErrorString(err), ")"));
      check((int)err, "cudaMalloc", __FILE__, __LINE__);
    }
    stats_.reserved += (int64_t)size;
    ++stats_.num_device_allocs;
    return p;
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;         // idle blocks by size (the shared cache)
  std::unordered_map<void*, Block> live_;     // handed-out blocks
  std::vector<Pool> pools_;                   // one per graph ever captured (indices stay valid)
  int capture_pool_ = kGlobal;                // the pool of the capture recording now
  std::thread::id capture_thread_;            // the thread recording it
  MemoryStats stats_;
};

// Never destroyed: tensors held in statics may be freed after any function-local static
// would be, and the driver reclaims device memory with the process anyway.
CachingAllocator& caching_allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

MemoryStats memory_stats() { return caching_allocator().stats(); }
void reset_peak() { caching_allocator().reset_peak(); }
void empty_cache() { caching_allocator().empty_cache(); }

void set_poison(bool on) { g_poison.store(on ? 1 : 0, std::memory_order_relaxed); }
bool poison() { return poison_enabled(); }

int begin_graph_pool() { return caching_allocator().begin_pool(); }
void end_graph_pool() { caching_allocator().end_pool(); }
void release_graph_pool(int pool) noexcept { caching_allocator().release_pool(pool); }

void register_allocator() { wavspa::register_allocator(DeviceType::CUDA, &caching_allocator()); }

}  // namespace wavspa::cuda

// Storage: a block of bytes on one device, owned through an Allocator.
// Several tensors (views) share one Storage; it is freed when the last one goes.
//
//   Tensor x = zeros({2, 3});
//   Tensor row = x.select(0, 1);                        // a view
//   row.storage() == x.storage();                       // true: the same bytes
//   x.storage()->nbytes();                              // 24
//   allocator_for(Device::cpu()).usage().allocated;     // bytes of the live CPU tensors
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"

namespace wavspa {

// What an allocator holds, in bytes as it rounds them.
struct MemoryUsage {
  int64_t allocated = 0;       // in blocks handed out and not yet freed: live tensors
  int64_t reserved = 0;        // taken from the system: allocated + idle cached blocks
  int64_t peak_allocated = 0;  // the largest `allocated` since the start
  int64_t num_allocs = 0;      // allocations of at least one byte
  int64_t num_cache_hits = 0;  // of those, the ones served from the allocator's cache
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual Device device() const = 0;
  virtual MemoryUsage usage() = 0;  // thread-safe
};

// The allocator that owns memory on `device`. The CPU one is built in; a backend (CUDA)
// registers its own at start-up.
Allocator& allocator_for(Device device);
void register_allocator(DeviceType type, Allocator* allocator);

class StorageImpl {
 public:
  StorageImpl(size_t nbytes, Allocator& allocator);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return allocator_->device(); }

  // The version counter: how many in-place writes its tensors have seen. Every view of the
  // storage (and every detach()ed alias) shares it, as they share the bytes. The in-place
  // methods and the optimizer updates bump it; autograd records it for each tensor a node
  // saves and refuses to run that node's backward once it has moved. Kernels writing into a
  // fresh output do not bump it: nobody can have saved a tensor that did not exist yet.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> version_{0};
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Allocator* allocator_ = nullptr;
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace wavspa

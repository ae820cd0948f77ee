#include "core/storage.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace wavspa {
namespace {

// 64-byte alignment: a cache line, and enough for any AVX-512 load.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    WAVSPA_CHECK(p != nullptr, "out of CPU memory allocating ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
  Device device() const override { return Device::cpu(); }
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[2] = {&g_cpu_allocator, nullptr};

}  // namespace

Allocator& allocator_for(Device device) {
  Allocator* a = g_allocators[static_cast<int>(device.type)];
  WAVSPA_CHECK(a != nullptr, "no allocator for device ", device,
               ": wavspa was built without CUDA (rebuild with `make CUDA=1`)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  g_allocators[static_cast<int>(type)] = allocator;
}

StorageImpl::StorageImpl(size_t nbytes, Allocator& allocator)
    : nbytes_(nbytes), allocator_(&allocator) {
  data_ = allocator.allocate(nbytes);
}

StorageImpl::~StorageImpl() {
  if (data_) allocator_->deallocate(data_, nbytes_);
}

}  // namespace wavspa

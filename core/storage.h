// Storage: a block of bytes on one device, owned through an Allocator.
// Several tensors (views) share one Storage; it is freed when the last one goes.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace wavspa {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual Device device() const = 0;
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

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Allocator* allocator_ = nullptr;
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace wavspa

#include "backends/cuda/cuda_runtime.h"

#include <cuda_runtime.h>

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
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;  // no driver or no GPU: zero devices
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  WAVSPA_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

namespace {

class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    void* p = nullptr;
    WAVSPA_CUDA_CHECK(cudaMalloc(&p, nbytes));
    return p;
  }
  void deallocate(void* ptr, size_t) override {
    if (ptr) cudaFree(ptr);  // never throw from a destructor path
  }
  Device device() const override { return Device::cuda(0); }
};

}  // namespace

void register_allocator() {
  static CudaAllocator allocator;
  wavspa::register_allocator(DeviceType::CUDA, &allocator);
}

}  // namespace wavspa::cuda

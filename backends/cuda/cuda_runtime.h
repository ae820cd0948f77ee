// CUDA runtime plumbing shared by the CUDA kernels: checked calls, device queries, and the
// device allocator that core's Storage uses for Device::cuda() tensors.
//
// Built only with `make CUDA=1`. The kernels of the CUDA backend arrive with the
// CUDA-backend issue; until then backend_for(Device::cuda()) reports that clearly.
#pragma once

#include <string>

namespace wavspa::cuda {

// Throws wavspa::Error naming the call, file:line and CUDA's message when `status` is an error.
void check(int status, const char* call, const char* file, int line);
#define WAVSPA_CUDA_CHECK(call) ::wavspa::cuda::check((int)(call), #call, __FILE__, __LINE__)

int device_count();
std::string device_name(int index);
// Registers the device allocator with core (idempotent).
void register_allocator();

}  // namespace wavspa::cuda

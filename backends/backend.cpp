#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"

#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

namespace wavspa {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#ifdef WAVSPA_CUDA
  throw Error(str("device ", device, ": this build has the CUDA runtime (", cuda::device_count(),
                  " device(s) visible) but not yet the CUDA kernels"));
#else
  throw Error(str("device ", device, " is not available: wavspa was built without CUDA ",
                  "(rebuild with `make CUDA=1`)"));
#endif
}

}  // namespace wavspa

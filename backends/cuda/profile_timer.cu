// CUDA events as the profiler's marks (backends/cuda/profile_timer.h).
//
// Events are pooled: a training step profiles thousands of ops, and cudaEventCreate for each
// would cost more than many of the kernels it times. A mark is an index into the pool; the
// profiler gives it back once it has read the time.
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "backends/cuda/common.cuh"
#include "backends/cuda/profile_timer.h"
#include "core/profiler.h"

namespace wavspa::cuda {

namespace {

class EventTimer final : public DeviceTimer {
 public:
  int64_t mark() override {
    // Recorded into a graph, the event would time the replay, not this op; the op keeps its
    // host time instead.
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    WAVSPA_CUDA_CHECK(cudaStreamIsCapturing(stream(), &capture));
    if (capture != cudaStreamCaptureStatusNone) return -1;
    std::lock_guard<std::mutex> lock(mutex_);
    int64_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      cudaEvent_t e;
      WAVSPA_CUDA_CHECK(cudaEventCreate(&e));
      id = (int64_t)events_.size();
      events_.push_back(e);
    }
    WAVSPA_CUDA_CHECK(cudaEventRecord(events_[id], stream()));
    return id;
  }

  bool reached(int64_t mark) override {
    const cudaError_t status = cudaEventQuery(event(mark));
    if (status == cudaErrorNotReady) return false;
    WAVSPA_CUDA_CHECK(status);
    return true;
  }

  double elapsed_us(int64_t from, int64_t to) override {
    const cudaEvent_t end = event(to);
    WAVSPA_CUDA_CHECK(cudaEventSynchronize(end));
    float ms = 0;
    WAVSPA_CUDA_CHECK(cudaEventElapsedTime(&ms, event(from), end));
    return (double)ms * 1000.0;
  }

  void release(int64_t mark) override {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(mark);
  }

 private:
  cudaEvent_t event(int64_t mark) {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_[mark];
  }

  std::mutex mutex_;
  std::vector<cudaEvent_t> events_;  // never destroyed: the pool lives as long as the process
  std::vector<int64_t> free_;
};

}  // namespace

void register_profiler_timer() {
  static EventTimer* timer = new EventTimer;  // outlives every profiler, even at exit
  register_device_timer(DeviceType::CUDA, timer);
}

}  // namespace wavspa::cuda

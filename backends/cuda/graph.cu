// CUDA graphs: the backend's stream recorded into a cudaGraph_t and launched as one unit.
//
// While a capture records, three things differ from running eagerly:
//   - kernels and copies on stream() are recorded, not run (cudaStreamBeginCapture; relaxed
//     mode, so that the allocator may still call cudaMalloc);
//   - the caching allocator serves this thread from a private pool (cuda_runtime.h), whose
//     blocks stay the graph's until it is destroyed: a replay writes the same addresses;
//   - host-to-device uploads copy from pinned buffers of their own (memory.cu), which a
//     replay reads again, instead of the staging pool's reusable ones.
// Anything that waits for the device fails with CUDA's "operation not permitted when stream
// is capturing", which the checked call turns into a wavspa::Error.
#include <cuda_runtime.h>

#include <vector>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

namespace wavspa::cuda {

void begin_staging_capture();                // memory.cu
std::vector<void*> end_staging_capture();    // memory.cu

namespace {

class CudaRecording final : public Backend::Recording {
 public:
  CudaRecording(cudaGraph_t graph, cudaGraphExec_t exec, int pool, std::vector<void*> pinned)
      : graph_(graph), exec_(exec), pool_(pool), pinned_(std::move(pinned)) {}

  ~CudaRecording() override {
    // A launch may still be queued: it reads the pool's blocks and the pinned buffers.
    cudaStreamSynchronize(stream());
    cudaGraphExecDestroy(exec_);
    cudaGraphDestroy(graph_);
    for (void* p : pinned_) cudaFreeHost(p);
    cudaGetLastError();  // a destructor reports nothing
    release_graph_pool(pool_);
  }

  void launch() override { WAVSPA_CUDA_CHECK(cudaGraphLaunch(exec_, stream())); }

 private:
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  int pool_;
  std::vector<void*> pinned_;
};

int g_capture_pool = -1;  // the pool of the capture recording now (one at a time)

// Ends the allocator's and the staging pool's capture modes; frees what only the capture used.
void end_capture_modes(std::vector<void*>* keep_pinned) {
  end_graph_pool();
  std::vector<void*> pinned = end_staging_capture();
  if (keep_pinned) *keep_pinned = std::move(pinned);
  else
    for (void* p : pinned) cudaFreeHost(p);
}

}  // namespace

void CudaBackend::begin_capture() {
  WAVSPA_CHECK(g_capture_pool < 0, "graph capture: a capture is already recording");
  cudaStream_t s = stream();
  WAVSPA_CUDA_CHECK(cudaGetLastError());  // an earlier failure must not be blamed on the capture
  g_capture_pool = begin_graph_pool();
  begin_staging_capture();
  const cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    cudaGetLastError();
    end_capture_modes(nullptr);
    release_graph_pool(g_capture_pool);
    g_capture_pool = -1;
    check((int)e, "cudaStreamBeginCapture", __FILE__, __LINE__);
  }
}

std::unique_ptr<Backend::Recording> CudaBackend::end_capture() {
  WAVSPA_CHECK(g_capture_pool >= 0, "end_capture: no capture is recording");
  const int pool = g_capture_pool;
  g_capture_pool = -1;
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream(), &graph);
  std::vector<void*> pinned;
  end_capture_modes(&pinned);
  cudaGraphExec_t exec = nullptr;
  cudaError_t ei = e;
  if (e == cudaSuccess) ei = cudaGraphInstantiate(&exec, graph, 0);
  if (ei != cudaSuccess) {
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    for (void* p : pinned) cudaFreeHost(p);
    release_graph_pool(pool);
    check((int)ei, e != cudaSuccess ? "cudaStreamEndCapture" : "cudaGraphInstantiate", __FILE__, __LINE__);
  }
  return std::make_unique<CudaRecording>(graph, exec, pool, std::move(pinned));
}

void CudaBackend::abort_capture() noexcept {
  if (g_capture_pool < 0) return;
  const int pool = g_capture_pool;
  g_capture_pool = -1;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream(), &graph);  // fails when the capture was invalidated: either way it ends
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  try {
    end_capture_modes(nullptr);
  } catch (...) {
  }
  // Nothing recorded ever ran, so the pool's blocks hold nothing anyone needs.
  release_graph_pool(pool);
}

}  // namespace wavspa::cuda

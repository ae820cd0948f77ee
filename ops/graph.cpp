#include "ops/graph.h"

#include <cstring>

#include "core/error.h"

namespace wavspa {

Graph::Graph(Device device, Generator& gen) : device_(device), gen_(&gen) {
  WAVSPA_CHECK(device.is_cuda(), "Graph: graphs record CUDA work; got device ", device);
  offset_base_ = Tensor::empty({1}, kInt64, device);
}

Graph::~Graph() = default;

void Graph::capture(const std::function<void()>& work) {
  Backend& backend = backend_for(device_);
  recording_.reset();  // an earlier recording's memory goes back first
  // The recorded random ops read where their range starts from offset_base_, which each
  // replay sets.
  gen_->begin_capture(static_cast<const uint64_t*>(offset_base_.raw_data()));
  try {
    backend.begin_capture();
  } catch (...) {
    gen_->end_capture();
    throw;
  }
  try {
    work();
  } catch (const std::exception& e) {
    gen_->end_capture();
    backend.abort_capture();
    throw Error(str("Graph::capture: recording failed: ", e.what(),
                    " (work that waits for the device, such as item() or a copy to the host, cannot be "
                    "recorded into a CUDA graph)"));
  } catch (...) {
    gen_->end_capture();
    backend.abort_capture();
    throw;
  }
  counters_ = gen_->end_capture();
  seed_ = gen_->seed();
  recording_ = backend.end_capture();
}

void Graph::replay() {
  WAVSPA_CHECK(recording_ != nullptr, "Graph::replay: nothing was captured");
  WAVSPA_CHECK(gen_->seed() == seed_, "Graph::replay: the generator was reseeded (", seed_, " -> ", gen_->seed(),
               ") after the capture; the recorded random ops use the old seed: capture again");
  if (counters_ > 0) {
    const uint64_t start = gen_->offset();
    int64_t bits;
    std::memcpy(&bits, &start, sizeof bits);
    backend_for(device_).copy_from_host(&bits, offset_base_);  // stream-ordered before the launch
    gen_->set_offset(start + counters_);
  }
  recording_->launch();
}

}  // namespace wavspa

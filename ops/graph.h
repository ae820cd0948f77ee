// CUDA graphs: the device work of a piece of code recorded once and launched again as one
// unit, without the host work and the kernel launches of running its ops one by one.
// (not run: needs a CUDA device)
//
//   Tensor x = zeros({B, D}, kFloat32, Device::cuda());   // the inputs' home
//   Tensor y;
//   Graph g;
//   g.capture([&] { y = relu(linear(x, w, b)); });   // records; nothing runs yet
//   for (const Tensor& batch : batches) {
//     x.copy_(batch);                               // new inputs into the same memory
//     g.replay();                                   // y now holds this batch's result
//   }
//
// What a replay does is exactly what was recorded: the same kernels on the same memory with
// the same scalars. So a capture's inputs must be tensors that stay alive and are refilled in
// place, its results are the tensors it made (a replay overwrites them), and anything the
// host decides per call (a shape, a branch on a value, a learning rate passed as a number) is
// frozen at its recorded value. The code runs on the host once, during capture(); work that
// waits for the device (item(), copying to the host) cannot be recorded and fails the
// capture with a wavspa::Error.
//
// Random numbers are the exception: dropout and the other random ops recorded with the
// capture's generator read where their counters start from the device, and every replay
// draws the next range of that generator, as running the code again would. A replay gives
// the same bits as running the code eagerly at that point of the generator.
//
// Memory the recorded work allocates belongs to the graph until it is destroyed (replays
// write it), so a graph holds its step's activations; no cudaMalloc happens in a replay.
#pragma once

#include <functional>
#include <memory>

#include "backends/backend.h"
#include "core/device.h"
#include "core/random.h"
#include "core/tensor.h"

namespace wavspa {

class Graph {
 public:
  explicit Graph(Device device = Device::cuda(), Generator& gen = default_generator());
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records the device work of `work` (run once on the host); replaces an earlier recording.
  // Leaves the generator where it was: recording draws no random numbers.
  void capture(const std::function<void()>& work);
  // Queues the recorded work once. Does not wait for it.
  void replay();
  bool captured() const { return recording_ != nullptr; }
  // Philox counters one replay draws from the generator.
  uint64_t counters_per_replay() const { return counters_; }

 private:
  Device device_;
  Generator* gen_;
  Tensor offset_base_;  // int64 (1): the first counter of the current replay's range
  uint64_t seed_ = 0;
  uint64_t counters_ = 0;
  std::unique_ptr<Backend::Recording> recording_;
};

}  // namespace wavspa

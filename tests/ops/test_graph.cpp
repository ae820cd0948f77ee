// ops/graph.h: CUDA graphs. The generator's capture mode and the refusals run everywhere; the
// replays (same bits as eager, fresh dropout masks per replay, refilled inputs, no cudaMalloc,
// a failed recording that leaves the backend usable, a model's training steps) need a GPU.
#include <cstring>

#include "models/factory.h"
#include "nn/optim.h"
#include "tests/helpers.h"
#include "wavspa.h"
#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

using namespace wavspa;
using namespace wavspa::test;

namespace {

template <typename T>
bool same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<T> x = a.to(Device::cpu()).contiguous().to_vector<T>(),
                       y = b.to(Device::cpu()).contiguous().to_vector<T>();
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("graph: a generator recording a capture hands out ranges relative to its start") {
  Generator g(7);
  g.reserve(10);
  uint64_t word = 0;  // stands for the device word; the host never reads it
  g.begin_capture(&word);
  CHECK(g.capturing());
  const PhiloxState a = g.reserve(5), b = g.reserve(3);
  CHECK(a.seed == 7);
  CHECK(a.offset == 0);
  CHECK(b.offset == 5);
  CHECK(a.offset_base == &word);
  CHECK(b.offset_base == &word);
  // Another generator drawing now would freeze its numbers into the graph.
  Generator other(8);
  check_error([&] { other.reserve(1); }, {"other than the one", "capture"});
  check_error([&] { g.manual_seed(3); }, {"manual_seed", "capture"});
  // CPU kernels cannot take a range that lives on the device.
  check_error([&] { rand({4}, kFloat32, Device::cpu(), &g); }, {"CPU random kernel", "CUDA graph"});
  CHECK(g.end_capture() == 8 + 1);  // 5 + 3, and the refused CPU draw reserved its one counter
  CHECK_FALSE(g.capturing());
  CHECK(g.offset() == 10);  // recording draws nothing
  const PhiloxState c = g.reserve(2);
  CHECK(c.offset == 10);
  CHECK(c.offset_base == nullptr);
  CHECK(other.reserve(1).offset == 0);  // usable again once the capture ended
  check_error([&] { g.end_capture(); }, {"no capture"});
}

TEST_CASE("graph: graphs are refused off CUDA") {
  check_error([] { Graph g(Device::cpu()); }, {"Graph", "CUDA", "cpu"});
  check_error([] { backend_for(Device::cpu()).begin_capture(); }, {"CUDA device", "CPU backend"});
}

#ifdef WAVSPA_CUDA

TEST_CASE("graph: a replay gives the eager bits, new dropout masks each time, and reads refilled inputs" * gpu_only()) {
  const Device cuda = Device::cuda();
  manual_seed(3);
  Tensor x = randn({37, 65}).to(cuda);
  const Tensor w = randn({65, 48}).to(cuda), b = randn({48}).to(cuda);
  auto work = [&] { return dropout(relu(add(matmul(x, w), b)), 0.3, true); };
  Tensor y;
  Graph g(cuda);
  const uint64_t before = default_generator().offset();
  g.capture([&] { y = work(); });
  CHECK(default_generator().offset() == before);
  CHECK(g.counters_per_replay() == philox_counters_dropout(37 * 48));
  for (int replay = 0; replay < 3; ++replay) {
    INFO("replay " << replay);
    if (replay == 2) x.copy_(randn({37, 65}));  // new inputs into the recorded tensor
    // The eager result at the generator's current point, then the replay at the same point.
    const uint64_t at = default_generator().offset();
    const Tensor expected = work();
    default_generator().set_offset(at);
    g.replay();
    CHECK(default_generator().offset() == at + g.counters_per_replay());
    CHECK(same_bits<float>(y, expected));
    // The mask is random: about 30% of the outputs that relu kept are dropped.
    const double dropped = sum(eq(y, zeros_like(y)).to(kFloat32)).item() / (37.0 * 48.0);
    CHECK(dropped > 0.5);
    CHECK(dropped < 0.8);
  }
  // Two replays in a row draw different masks.
  g.replay();
  const Tensor first = y.clone();
  g.replay();
  CHECK_FALSE(same_bits<float>(y, first));
}

TEST_CASE("graph: replays allocate no device memory, and recording frees what it made" * gpu_only()) {
  const Device cuda = Device::cuda();
  manual_seed(4);
  const Tensor x = randn({64, 512}).to(cuda), w = randn({512, 512}).to(cuda);
  Tensor y;
  Graph g(cuda);
  g.capture([&] {
    Tensor h = x;
    for (int i = 0; i < 4; ++i) h = tanh(matmul(h, w));  // intermediates freed during the recording
    y = sum(h);
  });
  g.replay();
  cuda::synchronize();
  const int64_t allocs = cuda::memory_stats().num_device_allocs;
  for (int i = 0; i < 5; ++i) g.replay();
  cuda::synchronize();
  CHECK(cuda::memory_stats().num_device_allocs == allocs);
  Tensor h = x;
  for (int i = 0; i < 4; ++i) h = tanh(matmul(h, w));
  CHECK(same_bits<float>(y, sum(h)));
}

TEST_CASE("graph: work that waits for the device fails the recording and leaves the backend usable" * gpu_only()) {
  const Device cuda = Device::cuda();
  const Tensor x = randn({100}).to(cuda);
  Graph g(cuda);
  check_error([&] { g.capture([&] { (void)sum(mul(x, 2.0)).item(); }); }, {"Graph::capture", "recording failed"});
  CHECK_FALSE(g.captured());
  check_error([&] { g.replay(); }, {"nothing was captured"});
  // Eager work runs as before, and a new recording succeeds.
  const double expected = 2.0 * sum(x.to(Device::cpu())).item();
  CHECK(sum(mul(x, 2.0)).item() == doctest::Approx(expected).epsilon(1e-5));
  Tensor y;
  g.capture([&] { y = sum(mul(x, 2.0)); });
  g.replay();
  CHECK(y.item() == doctest::Approx(expected).epsilon(1e-5));
  // Reseeding the generator after recording makes the recorded random ops stale.
  Tensor z;
  Graph r(cuda);
  r.capture([&] { z = dropout(x, 0.5, true); });
  manual_seed(99);
  check_error([&] { r.replay(); }, {"reseeded", "capture again"});
}

TEST_CASE("graph: replayed training steps give the eager steps' bits (dropout, padding, float32 and autocast)" * gpu_only()) {
  for (const std::string arch : {"transformer", "wavspa"})
    for (bool autocast : {false, true}) {
      INFO(arch << (autocast ? " autocast" : " float32"));
      models::ModelConfig c{.architecture = arch, .vocab_size = 16, .num_classes = 10, .max_len = 96,
                            .num_heads = 2, .dropout = 0.1, .attention_dropout = 0.1, .wlen = 8};
      std::vector<int64_t> id_values = randint(1, 16, {4 * 90}).to_vector<int64_t>();
      for (int64_t t = 70; t < 90; ++t) id_values[3 * 90 + t] = 0;  // one padded row
      const Tensor ids = from_vector(id_values, {4, 90}).to(Device::cuda());
      const Tensor labels = from_vector(std::vector<int64_t>{1, 3, 5, 7}).to(Device::cuda());
      auto run = [&](bool graphed) {
        manual_seed(21);
        auto model = models::make_classifier(c);
        model->to(Device::cuda());
        model->train();
        nn::AdamW opt(model->parameters(), {.lr = 1e-3});
        MatmulPrecisionGuard products(autocast ? MatmulPrecision::BFloat16 : MatmulPrecision::Float32);
        AutocastGuard guard(autocast);
        Tensor loss;
        auto forward_backward = [&] {
          opt.zero_grad();
          Tensor l = cross_entropy(model->forward(ids), labels);
          l.backward();
          loss = l.detach();
        };
        Graph g;
        std::vector<std::pair<Tensor, Tensor>> grads;
        std::vector<double> losses;
        for (int step = 0; step < 4; ++step) {
          if (graphed && step == 1) {
            g.capture(forward_backward);
            for (Tensor& p : model->parameters()) grads.emplace_back(p, p.grad());
          }
          if (graphed && step >= 1) {
            g.replay();
            for (auto& [p, grad] : grads) p.set_grad(grad);
          } else {
            forward_backward();
          }
          opt.step();
          losses.push_back(loss.item());
        }
        std::vector<std::vector<float>> params;
        for (const Tensor& p : model->parameters()) params.push_back(p.to(Device::cpu()).contiguous().to_vector<float>());
        return std::make_pair(losses, params);
      };
      const auto eager = run(false), graphed = run(true);
      CHECK(eager.first == graphed.first);
      REQUIRE(eager.second.size() == graphed.second.size());
      size_t differing = 0;
      for (size_t i = 0; i < eager.second.size(); ++i)
        differing += std::memcmp(eager.second[i].data(), graphed.second[i].data(), eager.second[i].size() * sizeof(float)) != 0;
      CHECK(differing == 0);
    }
}

#endif  // WAVSPA_CUDA

// Time of one training step of an LRA classifier, for comparing backends and frameworks.
//
//   build/bench_step --config configs/listops_wavspa.json --device cuda --precision bf16
//   build/bench_step --config configs/listops_transformer.json --device cpu --batch 4 --len 500
//   build/bench_step --config configs/listops_wavspa.json --batch 4 --dump /tmp/ref
//   build/bench_step --config configs/listops_wavspa.json --set parametrization=ortho --set levels=2
//
// --set KEY=VALUE replaces one key of the model config (VALUE read as JSON where it parses,
// as a string otherwise), so one config file gives every parametrization and level count.
//
// A step is what tools/train does per batch: zero the gradients, forward, cross-entropy,
// backward, one AdamW update (lr 1e-4, weight decay 0.01 on matrices), and reading the loss
// back to the host, which waits for the GPU. Inputs are random token ids in [1, vocab) of
// shape (batch, len) (no padding) with random labels, fixed across steps. After `--warmup`
// untimed steps (the caching allocator fills, cuBLAS picks its kernels), each of `--steps`
// steps is timed on its own with a steady clock; the median and minimum are reported, with
// the peak of device memory in tensors during the timed steps (CUDA only).
//
// --cuda-graphs records zero_grad, forward, loss and backward once after the warm-up as a
// CUDA graph (ops/graph.h) and replays it each step; the update and the read-back stay as
// they are (tools/train's --cuda-graphs does the same). The peak then covers the recording,
// whose memory the graph keeps. "device_allocs" counts cudaMalloc calls in the timed steps.
//
// --dump DIR writes what bench/torch_step.py `check` needs to prove that its PyTorch model is
// this model: config.json, model.safetensors (the initial weights) and batch.safetensors with
// the inputs, the labels, and this model's logits, mean loss and global gradient norm for
// them, computed on the CPU in eval mode (no dropout) in float32.
//
// The last line on standard output is one JSON object; errors exit 1 with one message.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "models/factory.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tools/bench_util.h"
#include "tools/cli.h"
#include "wavspa.h"
#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

// OMP_WAIT_POLICY=passive unless the environment chooses (core/runtime.h says why).
WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT();

namespace {

using namespace wavspa;

using tools::median;

// The global L2 norm of every parameter's gradient, summed in float64 on the host.
double grad_norm(const nn::Module& model) {
  double sq = 0;
  for (const Tensor& p : model.parameters()) {
    if (!p.grad().defined()) continue;
    for (double g : p.grad().to(Device::cpu()).to(kFloat64).to_vector<double>()) sq += g * g;
  }
  return std::sqrt(sq);
}

// The reference outputs of bench/torch_step.py `check` (see the top of this file).
void dump_reference(const models::ModelConfig& cfg, const Tensor& ids, const Tensor& labels,
                    const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto model = models::make_classifier(cfg);  // on the CPU, float32, same seed as the timing model
  model->eval();
  std::ofstream(dir + "/config.json") << cfg.to_json() << "\n";
  nn::save_safetensors(dir + "/model.safetensors", model->state_dict());
  Tensor logits = model->forward(ids);
  Tensor loss = cross_entropy(logits, labels);
  loss.backward();
  nn::save_safetensors(dir + "/batch.safetensors",
                       {{"inputs", ids},
                        {"labels", labels},
                        {"logits", logits.detach()},
                        {"loss", loss.detach()},
                        {"grad_norm", scalar_tensor(grad_norm(*model), kFloat64)}});
  std::fprintf(stderr, "reference written to %s (loss %.6f)\n", dir.c_str(), loss.item());
}

// The config file with the --set overrides applied.
models::ModelConfig config_with(const std::string& path, const std::vector<std::string>& sets) {
  if (sets.empty()) return models::ModelConfig::from_file(path);
  std::ifstream in(path);
  WAVSPA_CHECK(in, "cannot read the config file ", path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  WAVSPA_CHECK(j.is_object(), path, ": expected a JSON object");
  for (const std::string& kv : sets) {
    const size_t eq = kv.find('=');
    WAVSPA_CHECK(eq != std::string::npos && eq > 0, "--set: expected KEY=VALUE, got \"", kv, "\"");
    const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    j[key] = value.is_discarded() ? nlohmann::json(text) : value;
  }
  return models::ModelConfig::from_json(j.dump());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wavspa bench_step: median time of one training step (forward, backward, AdamW)"};
  std::string config_file, device_name = "cuda", precision = "fp32", dump;
  std::vector<std::string> sets;
  int64_t batch = 32, len = 2000, steps = 20, warmup = 5, threads = -1;
  bool graphs = false;
  app.add_option("--config", config_file, "a models JSON file, e.g. configs/listops_wavspa.json")->required();
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--precision", precision, "matmul precision: fp32, tf32 or bf16 (CUDA)");
  app.add_option("--batch", batch, "batch size")->check(wavspa::tools::at_least(1));
  app.add_option("--len", len, "sequence length (at most the config's max_len)")->check(wavspa::tools::at_least(1));
  app.add_option("--steps", steps, "timed steps")->check(wavspa::tools::at_least(1));
  app.add_option("--warmup", warmup, "untimed steps first")->check(wavspa::tools::at_least(0));
  app.add_option("--threads", threads, "CPU threads")->check(wavspa::tools::at_least(1));
  app.add_flag("--cuda-graphs", graphs, "replay the step's forward and backward as a CUDA graph");
  app.add_option("--set", sets, "KEY=VALUE: replace a key of the model config (repeatable)");
  app.add_option("--dump", dump, "also write the CPU reference for bench/torch_step.py check to DIR");
  if (const int rc = wavspa::tools::parse(app, argc, argv); rc >= 0) return rc;

  try {
    if (threads > 0) set_cpu_threads((int)threads);
    const models::ModelConfig cfg = config_with(config_file, sets);
    WAVSPA_CHECK(len <= cfg.max_len, "--len ", len, " is longer than the config's max_len ", cfg.max_len);
    const MatmulPrecision prec = matmul_precision_from_name(precision);
    const Device device = device_name == "cuda" ? Device::cuda() : Device::cpu();
    WAVSPA_CHECK(prec == MatmulPrecision::Float32 || device.is_cuda(), "--precision ", precision,
                 " needs --device cuda (the CPU backend multiplies in float32)");
    WAVSPA_CHECK(!graphs || (device.is_cuda() && warmup >= 1),
                 "--cuda-graphs needs --device cuda and at least one --warmup step");

    Generator gen(1234);
    const Tensor ids = randint(1, cfg.vocab_size, {batch, len}, kInt64, Device::cpu(), &gen);
    const Tensor labels = randint(0, cfg.num_classes, {batch}, kInt64, Device::cpu(), &gen);
    if (!dump.empty()) dump_reference(cfg, ids, labels, dump);

    auto model = models::make_classifier(cfg);
    model->to(device);
    model->train();
    nn::AdamW opt(nn::decay_groups(*model, 0.01), {.lr = 1e-4, .weight_decay = 0.01});
    const Tensor x = ids.to(device), y = labels.to(device);
    set_matmul_precision(prec);
    // bf16 is the mixed-precision policy, as in tools/train (train/run_state.h).
    AutocastGuard autocast(prec == MatmulPrecision::BFloat16);

    double last_loss = 0;
    Tensor loss;
    auto forward_backward = [&] {
      opt.zero_grad();
      Tensor l = cross_entropy(model->forward(x), y);
      l.backward();
      loss = l.detach();
    };
    std::unique_ptr<Graph> graph;
    std::vector<std::pair<Tensor, Tensor>> grads;  // each parameter and the gradient the replays write
    auto enqueue = [&] {
      if (graph) {
        graph->replay();
        for (auto& [p, g] : grads) p.set_grad(g);
      } else {
        forward_backward();
      }
      opt.step();
    };
    // copies the loss to the host: waits for every queued kernel
    auto step = [&] {
      enqueue();
      last_loss = loss.item();
    };
    for (int64_t i = 0; i < warmup; ++i) step();
#ifdef WAVSPA_CUDA
    if (device.is_cuda()) cuda::reset_peak();
#endif
    if (graphs) {
      graph = std::make_unique<Graph>(device);
      graph->capture(forward_backward);
      for (Tensor& p : model->parameters())
        if (p.grad().defined()) grads.emplace_back(p, p.grad());
    }
#ifdef WAVSPA_CUDA
    const int64_t allocs_before = device.is_cuda() ? cuda::memory_stats().num_device_allocs : 0;
#endif
    // ms: the step, to its loss on the host. host_ms: until the host had queued the whole
    // step; near ms, the host bounds the step (its kernels wait for their launches).
    std::vector<double> ms, host_ms;
    using Clock = std::chrono::steady_clock;
    for (int64_t i = 0; i < steps; ++i) {
      const auto t0 = Clock::now();
      enqueue();
      const auto t1 = Clock::now();
      last_loss = loss.item();
      const auto t2 = Clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
      host_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    WAVSPA_CHECK(std::isfinite(last_loss), "the loss became ", last_loss, " during the timed steps");

    double peak_mb = -1;
    int64_t device_allocs = 0;
    std::string card = "cpu";
#ifdef WAVSPA_CUDA
    if (device.is_cuda()) {
      peak_mb = (double)cuda::memory_stats().peak_allocated / (1 << 20);
      device_allocs = cuda::memory_stats().num_device_allocs - allocs_before;
      card = cuda::device_name(0);
    }
#endif
    nlohmann::json out = {
        {"impl", "wavspa"},
        {"model", cfg.architecture},
        {"set", sets},
        {"precision", precision},
        {"cuda_graphs", graphs},
        {"batch", batch},
        {"len", len},
        {"median_ms", median(ms)},
        {"min_ms", *std::min_element(ms.begin(), ms.end())},
        {"host_ms", median(host_ms)},
        {"steps", steps},
        {"peak_mem_mb", peak_mb},
        {"device_allocs", device_allocs},
        {"params", model->num_parameters()},
        {"last_loss", last_loss},
        {"device", card},
    };
    finish_env_profile();  // WAVSPA_PROFILE=1: the report, before the CUDA runtime shuts down
    std::cout << out.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

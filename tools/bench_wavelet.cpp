// Time of the wavelet path alone, as a WavSpA block runs it: wavedec and waverec along the
// sequence of a (batch, len, dim) signal with per-channel filters (Wavelet::orthogonal_from,
// periodization), forward and backward (the signal's gradient and the filters'), beside a
// device copy of the same bytes timed in the same process.
//
//   build-cuda/bench_wavelet --device cuda --dtype bf16 --batch 32 --len 2000 --dim 128 --wlen 16
//
// A pass is: zero the filter gradient, bands = wavedec(x), y = waverec(bands), y.backward(seed).
// Passes run in groups of --group between two device synchronisations, so the host's launch
// overhead overlaps the kernels as in a training step; the median over --samples groups is
// reported per pass. A pass is about 16 kernels of 10-30 us on an H200, and building its
// autograd graph and launching them takes the host about as long, so the plain pass measures
// the host as much as the kernels: --cuda-graphs records one pass after the warm-up as a CUDA
// graph (ops/graph.h, as tools/train --cuda-graphs does with a step) and times its replays,
// which is the device's time for the pass.
//
// Minimum traffic: the bytes each transform has to move once, with its filter gradient fused
// into its signal gradient. Per level, with S the bytes of that level's input signal: analysis
// reads S and writes its two half-length bands (S); synthesis reads the bands (S) and writes S;
// synthesis's backward reads the output gradient and the saved bands and writes the bands'
// gradients (3 S); analysis's backward reads the bands' gradients and the saved signal and
// writes the signal's gradient (3 S). 10 S per level, S halving per level. GB/s is that over
// the median time, beside the copy's (read + write) GB/s of a clone of the signal.
//
// The last line on standard output is one JSON object; errors exit 1 with one message.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

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

void sync(Device device) {
#ifdef WAVSPA_CUDA
  if (device.is_cuda()) cuda::synchronize();
#else
  (void)device;
#endif
}

// Median milliseconds per call of `fn`, over `samples` groups of `group` calls.
template <typename F>
double time_ms(Device device, int64_t samples, int64_t group, F&& fn) {
  std::vector<double> ms;
  for (int64_t s = 0; s < samples; ++s) {
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < group; ++i) fn();
    sync(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                 (double)group);
  }
  return median(ms);
}

DType dtype_from_name(const std::string& name) {
  if (name == "fp32") return kFloat32;
  if (name == "fp64") return kFloat64;
  if (name == "bf16") return kBFloat16;
  throw Error(str("--dtype: expected fp32, fp64 or bf16, got \"", name, "\""));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wavspa bench_wavelet: wavedec + waverec forward and backward, against a device copy"};
  std::string device_name = "cuda", dtype_name_arg = "fp32";
  int64_t batch = 32, len = 2000, dim = 128, wlen = 16, levels = 1, samples = 20, group = 10, warmup = 3;
  app.add_option("--device", device_name, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", dtype_name_arg, "the signal's dtype: fp32, fp64 or bf16 (CUDA; filters stay fp32)");
  app.add_option("--batch", batch, "batch size")->check(wavspa::tools::at_least(1));
  app.add_option("--len", len, "sequence length")->check(wavspa::tools::at_least(2));
  app.add_option("--dim", dim, "channels (one filter each)")->check(wavspa::tools::at_least(1));
  app.add_option("--wlen", wlen, "filter length (even)")->check(wavspa::tools::at_least(2));
  app.add_option("--levels", levels, "decomposition levels")->check(wavspa::tools::at_least(1));
  app.add_option("--samples", samples, "timed groups")->check(wavspa::tools::at_least(1));
  app.add_option("--group", group, "passes per timed group")->check(wavspa::tools::at_least(1));
  app.add_option("--warmup", warmup, "untimed passes first")->check(wavspa::tools::at_least(0));
  bool graphs = false;
  app.add_flag("--cuda-graphs", graphs, "cuda: record one pass as a CUDA graph after the warm-up and time its replays");
  if (const int rc = wavspa::tools::parse(app, argc, argv); rc >= 0) return rc;

  try {
    const DType dt = dtype_from_name(dtype_name_arg);
    const Device device = device_name == "cuda" ? Device::cuda() : Device::cpu();
    WAVSPA_CHECK(wlen % 2 == 0, "--wlen must be even, got ", wlen);
    WAVSPA_CHECK(!graphs || (device.is_cuda() && warmup >= 1),
                 "--cuda-graphs needs --device cuda and at least one --warmup pass");
    Generator gen(7);
    const Tensor x = randn({batch, len, dim}, kFloat32, Device::cpu(), &gen).to(dt).to(device);
    const Tensor seed = randn({batch, len, dim}, kFloat32, Device::cpu(), &gen).to(dt).to(device);
    Tensor filters = Wavelet("db" + std::to_string(wlen / 2)).dec_lo.to(kFloat32).unsqueeze(1)
                         .expand({wlen, dim}).contiguous().to(device).requires_grad_();
    Tensor xs = x.detach().requires_grad_();

    auto pass = [&] {
      filters.zero_grad();
      xs.zero_grad();
      const Wavelet w = Wavelet::orthogonal_from(filters);
      const std::vector<Tensor> bands = wavedec(xs, w, levels, WaveletMode::Periodization, 1);
      const Tensor y = waverec(bands, w, WaveletMode::Periodization, 1, len);
      y.backward(seed);
    };
    for (int64_t i = 0; i < warmup; ++i) pass();
    std::unique_ptr<Graph> graph;
    if (graphs) {
      graph = std::make_unique<Graph>(device);
      graph->capture(pass);
    }
    const double ms = time_ms(device, samples, group, [&] {
      if (graph) graph->replay();
      else pass();
    });
    Tensor copy_out;
    for (int64_t i = 0; i < warmup; ++i) copy_out = x.clone();
    const double copy_ms = time_ms(device, samples, group, [&] { copy_out = x.clone(); });

    const double S = (double)x.numel() * (double)dtype_size(dt);
    double traffic = 0;
    for (int64_t l = 0; l < levels; ++l) traffic += 10 * S / (double)(int64_t(1) << l);
    const double gbs = traffic / (ms * 1e-3) / 1e9, copy_gbs = 2 * S / (copy_ms * 1e-3) / 1e9;
    std::string card = "cpu";
#ifdef WAVSPA_CUDA
    if (device.is_cuda()) card = cuda::device_name(0);
#endif
    nlohmann::json out = {
        {"impl", graphs ? "wavspa, CUDA graph" : "wavspa"},      {"dtype", dtype_name_arg}, {"batch", batch},       {"len", len},
        {"dim", dim},            {"wlen", wlen},            {"levels", levels},     {"median_ms", ms},
        {"min_traffic_mb", traffic / 1e6}, {"gb_per_s", gbs}, {"copy_gb_per_s", copy_gbs},
        {"fraction_of_copy", gbs / copy_gbs}, {"device", card}, {"cuda_graphs", graphs},
    };
    finish_env_profile();  // WAVSPA_PROFILE=1: the report, before the CUDA runtime shuts down
    std::cout << out.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

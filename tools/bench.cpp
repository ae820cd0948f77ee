// Speed of the CPU backend against what the hardware and OpenBLAS can do directly.
//
//   make bench                 # builds build/bench and runs it (about 10-20 s)
//   OMP_NUM_THREADS=1 ./build/bench
//
// Part 1: matmul GFLOP/s through wavspa against a direct cblas_sgemm on the same data
// (n = 256, 1024, 2048); wavspa only adds dispatch and the output allocation, so the
// ratio should be >= 0.95.
// Part 2: GB/s of add, gelu, softmax and layer_norm, forward and backward separately, on a
// (32, 2000, 128) float32 tensor, beside std::memcpy of the same bytes; aim: >= 0.5 x memcpy.
// Bytes are the minimal DRAM traffic (see bench/README.md), so GB/s is "useful" bandwidth.
// Every figure is a median: this machine is shared, and the mean would chase the outliers.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "backends/cpu/isa.h"
#include "core/runtime.h"
#include "ops/wavelet.h"
#include "wavspa.h"

using namespace wavspa;

// OMP_WAIT_POLICY=passive unless the environment chooses (core/runtime.h says why).
WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT();

namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& fn) {
  auto t0 = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median seconds per call of each case. The cases run round-robin, so a burst of load from
// another process hits every case alike instead of skewing whichever ran at that moment.
// Warm-up calls come first (page faults, OpenBLAS thread start-up, caches); the repetition
// count is then picked so the whole measurement takes about budget_s.
std::vector<double> median_seconds(const std::vector<std::function<void()>>& cases,
                                   double budget_s = 1.0, int warmup = 2) {
  double round = 0;
  for (int w = 0; w < warmup; ++w) {
    round = 0;
    for (const auto& fn : cases) round += seconds_of(fn);
  }
  const int reps = std::clamp((int)(budget_s / std::max(round, 1e-9)), 5, 200);
  std::vector<std::vector<double>> samples(cases.size());
  for (int r = 0; r < reps; ++r)
    for (size_t c = 0; c < cases.size(); ++c) samples[c].push_back(seconds_of(cases[c]));
  std::vector<double> out;
  for (auto& s : samples) out.push_back(median(s));
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "unknown (no model name in /proc/cpuinfo)";
}

// Keeps the compiler from proving a result unused and deleting the work that made it.
volatile float g_sink;

struct MatmulRow {
  int64_t n;
  double wavspa_gflops, cblas_gflops, max_diff;
};

// OpenBLAS on all of the pool's threads while the direct calls run: wavspa keeps it on one
// thread and cuts products into tiles itself (backends/cpu/gemm.cpp).
struct OpenBlasThreads {
  OpenBlasThreads() { openblas_set_num_threads(cpu_threads()); }
  ~OpenBlasThreads() { openblas_set_num_threads(1); }
};

MatmulRow bench_matmul(int64_t n) {
  Tensor a = randn({n, n}), b = randn({n, n});
  std::vector<float> c((size_t)(n * n));
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const int ni = (int)n;

  Tensor ours = matmul(a, b);
  {
    OpenBlasThreads direct;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, pa, ni, pb, ni, 0.0f,
                c.data(), ni);
  }
  // Same numbers from both, or the speed comparison would be between different work.
  const float* po = ours.data<float>();
  double max_diff = 0;
  for (int64_t i = 0; i < n * n; ++i) max_diff = std::max(max_diff, (double)std::fabs(po[i] - c[i]));

  auto t = median_seconds(
      {[&] {
         Tensor y = matmul(a, b);
         g_sink = y.data<float>()[0];
       },
       [&] {
         OpenBlasThreads direct;
         cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, pa, ni, pb, ni,
                     0.0f, c.data(), ni);
         g_sink = c[0];
       }},
      n >= 2048 ? 3.0 : 1.5);
  const double flops = 2.0 * (double)n * n * n;
  return {n, flops / t[0] * 1e-9, flops / t[1] * 1e-9, max_diff};
}

struct OpRow {
  std::string op, pass;
  double bytes_per_elem;  // model bytes / N
  double seconds;
  std::string note;
};

// Forward and backward of one op. `forward` returns the op's output for x (which requires
// grad, so the op records its node as in training); backward applies that node alone,
// without the engine and without accumulating into leaf gradients.
void bench_op(const std::string& name, const std::function<Tensor()>& forward, double fwd_bytes,
              double bwd_bytes, std::vector<OpRow>& rows, const std::string& bwd_note = "") {
  Tensor y = forward();
  auto node = y.impl().autograd->grad_fn;
  WAVSPA_CHECK(node != nullptr, name, ": the forward recorded no backward node");
  Tensor gy = randn(y.shape());
  auto t = median_seconds({[&] {
                             Tensor out = forward();
                             g_sink = out.data<float>()[0];
                           },
                           [&] {
                             auto grads = node->apply(gy);
                             g_sink = grads[0].data<float>()[0];
                           }});
  rows.push_back({name, "fwd", fwd_bytes, t[0], ""});
  rows.push_back({name, "bwd", bwd_bytes, t[1], bwd_note});
  rows.push_back({name, "fwd+bwd", fwd_bytes + bwd_bytes, t[0] + t[1], ""});
}

// Forward and backward of a whole graph (several nodes): backward runs the engine from the
// output with a fixed gradient, retaining the graph, and accumulates into the leaves.
void bench_graph(const std::string& name, const std::function<Tensor()>& forward,
                 const std::vector<Tensor>& leaves, double fwd_bytes, double bwd_bytes,
                 std::vector<OpRow>& rows, const std::string& note) {
  Tensor y = forward();
  Tensor gy = randn(y.shape());
  auto t = median_seconds({[&] {
                             Tensor out = forward();
                             g_sink = out.data<float>()[0];
                           },
                           [&] {
                             for (Tensor leaf : leaves) leaf.zero_grad();
                             y.backward(gy, /*retain_graph=*/true);
                             g_sink = leaves[0].grad().data<float>()[0];
                           }});
  rows.push_back({name, "fwd", fwd_bytes, t[0], note});
  rows.push_back({name, "bwd", bwd_bytes, t[1], ""});
  rows.push_back({name, "fwd+bwd", fwd_bytes + bwd_bytes, t[0] + t[1], ""});
}

int run() {
  std::printf("wavspa bench\n");
  std::printf("machine: %s\n", cpu_model().c_str());
  std::printf("threads: %d (wavspa's pool; the direct OpenBLAS calls use as many); vector math: %s"
              " (backends/cpu/isa.h; WAVSPA_CPU_ISA=avx2 chooses AVX2)\n",
              cpu_threads(), cpu::isa_name(cpu::isa()));
  std::printf("timing: median of repeated calls (steady_clock), after warm-up\n\n");
  std::fflush(stdout);

  manual_seed(0);

  // ---- matmul ----------------------------------------------------------------------------
  std::vector<MatmulRow> mm;
  for (int64_t n : {256, 1024, 2048}) {
    mm.push_back(bench_matmul(n));
    std::printf("  matmul n=%lld done\n", (long long)n);
    std::fflush(stdout);
  }

  // ---- memory-bound ops ------------------------------------------------------------------
  const Shape shape = {32, 2000, 128};
  const int64_t N = shape_numel(shape);
  const double bytes_N = 4.0 * (double)N;  // one pass over N float32s
  Tensor x = randn(shape).requires_grad_();
  Tensor z = randn(shape).requires_grad_();
  Tensor w = randn({128}).requires_grad_();
  Tensor b = randn({128}).requires_grad_();

  // The baseline: one thread's std::memcpy between buffers already touched, so it pays no
  // page faults. Counted as read + write.
  std::vector<float> src(x.data<float>(), x.data<float>() + N), dst(N, 0.0f);
  auto memcpy_seconds = [&] {
    return median_seconds({[&] {
      std::memcpy(dst.data(), src.data(), (size_t)N * sizeof(float));
      g_sink = dst[N / 2];
    }})[0];
  };
  std::vector<OpRow> rows;
  rows.push_back({"memcpy", "copy", 2, memcpy_seconds(), "baseline (1 thread, touched dst)"});
  // What a fresh output costs: the ops allocate theirs on every call, memcpy above doesn't.
  rows.push_back({"memcpy", "fresh dst",
                  2,
                  median_seconds({[&] {
                    Tensor out = Tensor::empty(shape, kFloat32);
                    std::memcpy(out.data<float>(), src.data(), (size_t)N * sizeof(float));
                    g_sink = out.data<float>()[N / 2];
                  }})[0],
                  "Tensor::empty + memcpy (allocation cost)"});
  std::printf("  memcpy done\n");
  std::fflush(stdout);

  bench_op("add", [&] { return add(x, z); }, 3, 0, rows,
           "no work: passes the incoming gradient on");
  bench_op("gelu", [&] { return gelu(x); }, 2, 3, rows);
  bench_op("softmax", [&] { return softmax(x, -1); }, 2, 3, rows);
  bench_op("layer_norm", [&] { return layer_norm(x, {128}, w, b); }, 2, 3, rows);
  std::printf("  ops done\n");
  std::fflush(stdout);

  // wavedec + waverec with per-channel filters (F = 16, one per channel) along the sequence.
  // Bytes: each analysis or synthesis level reads its input and writes its output (2n for
  // a level on n samples, n halving per level), for the decomposition and the
  // reconstruction; backward reads the gradient and the saved input and writes two
  // gradients per level (twice the forward traffic).
  Tensor filt = mul(randn({16, 128}), 0.25).detach().requires_grad_();
  for (auto [level, mode, label] : {std::tuple{1, WaveletMode::Periodization, "wave L1 per"},
                                    std::tuple{3, WaveletMode::Periodization, "wave L3 per"},
                                    std::tuple{3, WaveletMode::Symmetric, "wave L3 sym"}}) {
    double levels = 0;
    for (int i = 0; i < level; ++i) levels += 2.0 / (1 << i);
    const double fwd = 2 * levels, bwd = 2 * fwd;
    bench_graph(label, [&, level = level, mode = mode] {
      auto c = wavedec(x, filt, level, mode, 1);
      return waverec(c, filt, mode, 1, 2000);
    }, {x, filt}, fwd, bwd, rows, "wavedec + waverec, F = 16 per channel");
  }
  std::printf("  wavelets done\n");
  // Measured again at the end: if it moved much, another process was competing for memory.
  rows.push_back({"memcpy", "again", 2, memcpy_seconds(), "noise check: same as first row"});

  // ---- table -----------------------------------------------------------------------------
  std::printf("\nmatmul, square float32, FLOPs = 2 n^3\n");
  std::printf("  %6s %16s %15s %7s %11s\n", "n", "wavspa GFLOP/s", "cblas GFLOP/s", "ratio",
              "max|diff|");
  for (const auto& r : mm)
    std::printf("  %6lld %16.1f %15.1f %7.3f %11.3g\n", (long long)r.n, r.wavspa_gflops,
                r.cblas_gflops, r.wavspa_gflops / r.cblas_gflops, r.max_diff);

  const double memcpy_gbs = rows[0].bytes_per_elem * bytes_N / rows[0].seconds * 1e-9;
  std::printf("\nmemory-bound ops on (32, 2000, 128) float32: N = %lld elements, %.1f MB\n",
              (long long)N, bytes_N * 1e-6);
  std::printf("bytes = minimal DRAM traffic, 4 B/element: add fwd 3N (read a, b; write y), "
              "bwd 0;\n  gelu fwd 2N, bwd 3N (read gy, x; write gx); softmax fwd 2N, bwd 3N "
              "(read y, gy; write gx);\n  layer_norm fwd 2N, bwd 3N (read gy, x; write gx); "
              "memcpy 2N (read + write)\n");
  std::printf("  %-10s %-9s %5s %10s %8s %9s  %s\n", "op", "pass", "bytes", "median ms", "GB/s",
              "x memcpy", "note");
  for (const auto& r : rows) {
    char bytes[16];
    std::snprintf(bytes, sizeof bytes, "%gN", r.bytes_per_elem);
    if (r.bytes_per_elem > 0) {
      const double gbs = r.bytes_per_elem * bytes_N / r.seconds * 1e-9;
      std::printf("  %-10s %-9s %5s %10.3f %8.2f %9.2f  %s\n", r.op.c_str(), r.pass.c_str(), bytes,
                  r.seconds * 1e3, gbs, gbs / memcpy_gbs, r.note.c_str());
    } else {
      std::printf("  %-10s %-9s %5s %10.3f %8s %9s  %s\n", r.op.c_str(), r.pass.c_str(), "0",
                  r.seconds * 1e3, "-", "-", r.note.c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // No options: the benchmark's sizes are fixed so that its numbers compare across runs.
  if (argc > 1) {
    const std::string arg = argv[1];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: %s\n  times the CPU kernels and layers at fixed sizes (see bench/README.md); takes no "
                  "options\n", argv[0]);
      return 0;
    }
    std::fprintf(stderr, "error: bench takes no arguments, got '%s' (see --help)\n", arg.c_str());
    return 1;
  }
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: bench: %s\n", e.what());
    return 1;
  }
}

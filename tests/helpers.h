// The one helper header of the test suite: random inputs, gradient checks, error checks,
// temporary folders, files and commands, and (with CUDA=1) CPU-vs-CUDA comparisons.
//
//   TEST_CASE("...") {
//     check_grad([](const In& x) { return mul(x[0], x[1]); }, rn({3, 4}), rn({4}));
//     check_error([] { add(zeros({2}), zeros({3})); }, {"add", "(2,)", "(3,)"});
//     TempDir dir("my_test");                         // removed when the case ends
//     std::string out;
//     CHECK(run_command(build_path("gen-data") + " --help", out) == 0);
//   }
#pragma once

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "wavspa.h"
#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

namespace wavspa::test {

using In = std::vector<Tensor>;

// ---- random inputs and gradient checks -------------------------------------------------

// Runs gradcheck on float64 leaves and reports the worst element on failure.
template <typename... Inputs>
void check_grad(const GradcheckFn& fn, const Inputs&... inputs) {
  auto result = gradcheck(fn, std::vector<Tensor>{inputs...});
  CHECK_MESSAGE(result.ok, result.message);
}

// Random float64 leaf.
inline Tensor rn(const Shape& shape) { return randn(shape, kFloat64); }
// Random positive float64 leaf in [lo, lo + 1).
inline Tensor rpos(const Shape& shape, double lo = 0.5) {
  return add(rand(shape, kFloat64), lo).detach();
}

// A random size in [lo, hi] from a test-local generator (so shapes vary but reproduce).
struct Sizes {
  Generator gen{0};
  int64_t operator()(int64_t lo, int64_t hi) {
    return randint(lo, hi + 1, {1}, kInt64, Device::cpu(), &gen).to_vector<int64_t>()[0];
  }
};

// max |a - b| over all elements (both converted to float64).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to(kFloat64).to_vector<double>(), vb = b.to(kFloat64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = std::abs(va[i] - vb[i]);
    if (std::isnan(d)) return d;  // a NaN on either side fails every `<=` bound
    m = std::max(m, d);
  }
  return m;
}

// ---- errors ----------------------------------------------------------------------------

// Checks `fn` throws wavspa::Error whose message contains every fragment.
template <typename F>
void check_error(F&& fn, const std::vector<std::string>& fragments) {
  bool threw = false;
  try {
    fn();
  } catch (const Error& e) {
    threw = true;
    std::string msg = e.what();
    for (const auto& f : fragments)
      CHECK_MESSAGE(msg.find(f) != std::string::npos, str("message '", msg, "' lacks '", f, "'"));
  }
  CHECK_MESSAGE(threw, str("expected a wavspa::Error containing '", fragments.empty() ? "" : fragments[0], "'"));
}

// ---- folders, files, commands ----------------------------------------------------------

// A fresh folder under the system's temp folder, unique to this process and this object,
// removed with everything in it when the object goes out of scope.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name = "test") {
    static int counter = 0;
    path = (std::filesystem::temp_directory_path() / str("wavspa_", name, "_", ::getpid(), "_", counter++)).string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string operator/(const std::string& name) const { return path + "/" + name; }
  // The names in the folder, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// The whole file as bytes ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes (replaces) a file, creating its folder if needed.
inline void write_file(const std::string& path, const std::string& bytes) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), (std::streamsize)bytes.size());
  REQUIRE_MESSAGE(out.good(), "could not write ", path);
}

// A program built by the Makefile: $WAVSPA_BUILD/name (the build folder `make test` used).
inline std::string build_path(const std::string& name) {
  const char* build = std::getenv("WAVSPA_BUILD");
  const std::string exe = std::string(build ? build : "build") + "/" + name;
  REQUIRE_MESSAGE(std::filesystem::exists(exe), exe, " is missing: run `make ", exe, "`");
  return exe;
}

// Runs a shell command; returns its exit status (-1 if it did not exit normally) and puts its
// standard output and standard error, interleaved, into `output`.
inline int run_command(const std::string& cmd, std::string& output) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[512];
  output.clear();
  while (fgets(buf, sizeof buf, pipe)) output += buf;
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- CPU against CUDA (compiled with CUDA=1) -------------------------------------------

// Tolerances per dtype: |cuda - cpu| <= atol + rtol * |cpu|, element by element.
struct Tol {
  double atol, rtol;
};

#ifdef WAVSPA_CUDA
// The floating dtypes every parity case runs in, and a case label that names the dtype.
inline constexpr DType kDtypes[] = {kFloat32, kFloat64};
inline std::string label(DType dt, const std::string& what) { return str(dtype_name(dt), " ", what); }

inline bool cuda_available() {
  static const bool yes = cuda::device_count() > 0;
  return yes;
}

// A test case decorator: `TEST_CASE("..." * gpu_only())` is reported as skipped by doctest
// (not as passed) on a machine without a visible GPU.
inline auto gpu_only() { return doctest::skip(!cuda_available()); }

inline Tol default_tol(DType dt) { return dt == kFloat64 ? Tol{1e-10, 1e-9} : Tol{1e-5, 1e-4}; }

// Element-wise comparison of a CUDA tensor with its CPU reference; reports the worst element.
inline void check_close(const Tensor& cpu, const Tensor& gpu, Tol tol, const std::string& what) {
  INFO(what);
  REQUIRE(gpu.device().is_cuda());
  REQUIRE(cpu.shape() == gpu.shape());
  REQUIRE(cpu.dtype() == gpu.dtype());
  auto a = cpu.to(kFloat64).to_vector<double>();
  auto b = gpu.to(Device::cpu()).to(kFloat64).to_vector<double>();
  double worst = 0;
  size_t at = 0;
  bool ok = true;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(a[i] - b[i]), allowed = tol.atol + tol.rtol * std::abs(a[i]);
    if (!(err <= allowed)) ok = false;  // NaN fails too
    if (!(err <= worst)) worst = err, at = i;
  }
  CHECK_MESSAGE(ok, what, ": worst |cuda - cpu| = ", worst, " at element ", at, " (cpu ", a.empty() ? 0 : a[at],
                ", cuda ", b.empty() ? 0 : b[at], ")");
}

// Runs fn on the CPU inputs and on CUDA copies of them, compares the outputs, then
// backpropagates the same random seed gradient through both and compares the gradients of
// every floating input. Inputs that should not get gradients may be integer tensors.
inline void check_parity(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                         const std::vector<Tensor>& inputs, const std::string& what, Tol tol = {-1, -1}) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone(), g = t.detach().to(Device::cuda());
    if (is_floating(t.dtype())) c.requires_grad_(), g.requires_grad_();
    cpu_in.push_back(c);
    gpu_in.push_back(g);
  }
  Tensor yc = fn(cpu_in), yg = fn(gpu_in);
  const Tol t = tol.atol < 0 ? default_tol(yc.dtype()) : tol;
  check_close(yc, yg, t, what + " forward");
  if (!is_floating(yc.dtype()) || !yc.requires_grad()) return;
  Tensor seed = randn(yc.shape(), yc.dtype());
  yc.backward(seed);
  yg.backward(seed.to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!is_floating(inputs[i].dtype())) continue;
    REQUIRE_MESSAGE(cpu_in[i].grad().defined() == gpu_in[i].grad().defined(), what, " input ", i);
    if (cpu_in[i].grad().defined())
      check_close(cpu_in[i].grad(), gpu_in[i].grad(), t, what + " grad of input " + std::to_string(i));
  }
}
#endif  // WAVSPA_CUDA

}  // namespace wavspa::test

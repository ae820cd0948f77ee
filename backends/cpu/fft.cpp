// Real FFT kernels on KissFFT (Debian's libkissfft-dev).
//
// Debian builds KissFFT's C library for float only (libkissfft-float, kiss_fft_scalar =
// float), so the two dtypes take different routes through the same package:
//  - float32: the C library. kiss_fftr / kiss_fftri (the real-input routines, about half
//    the work of a complex FFT) for even n; they refuse odd n, which takes kiss_fft, the
//    complex transform, of size n.
//  - float64: the header-only template class kissfft<double> of <kissfft/kissfft.hh>, a
//    complex transform of size n. It has no inverse real routine, so both directions go
//    through the complex path; float64 is there for gradient checks, not for speed.
//
// Each transform is one (a, c) column of an (A, n, C) tensor, gathered into a contiguous
// buffer (KissFFT's real routines take no stride), transformed, and scattered back. The
// columns are independent, so they are split over OpenMP threads with no shared writes.
//
// Plans are cached per thread, keyed by (n, direction), one cache per dtype: kiss_fftr's
// cfg holds its own scratch buffer and kissfft<T>'s generic-radix butterfly a mutable one,
// so a plan cannot serve two threads at once. OpenMP's worker threads persist between
// parallel regions, so each thread builds a plan once and reuses it.
#include <kissfft/kiss_fft.h>
#include <kissfft/kiss_fftr.h>
#include <kissfft/kissfft.hh>

#include <climits>
#include <complex>
#include <cstdlib>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {
namespace {

static_assert(sizeof(kiss_fft_cpx) == sizeof(std::complex<float>),
              "KissFFT must be built with kiss_fft_scalar = float (Debian's libkissfft-float)");

// Bounds a thread's cache: a sweep over many lengths must not keep every plan alive.
constexpr size_t kMaxPlansPerThread = 32;

// The complex path shared by both dtypes, for any n: the forward embeds the real signal as
// complex and keeps bins 0..n/2; the inverse rebuilds the full spectrum from the half by
// Hermitian symmetry, Y_{n-k} = conj(Y_k), and keeps the real part. `fft` runs one complex
// transform of size n from its first argument into its second.
template <typename T, typename Fft>
void r2c_complex(int64_t n, const T* x, std::complex<T>* bins, std::vector<std::complex<T>>& a,
                 std::vector<std::complex<T>>& b, Fft fft) {
  for (int64_t t = 0; t < n; ++t) a[t] = {x[t], T(0)};
  fft(a.data(), b.data());
  for (int64_t k = 0; k <= n / 2; ++k) bins[k] = b[k];
}

template <typename T, typename Fft>
void c2r_complex(int64_t n, const std::complex<T>* bins, T* x, std::vector<std::complex<T>>& a,
                 std::vector<std::complex<T>>& b, Fft fft) {
  const int64_t m = n / 2 + 1;
  for (int64_t k = 0; k < m; ++k) a[k] = bins[k];
  // for even n, k = n / 2 is its own mirror image, and its imaginary part was zeroed
  for (int64_t k = m; k < n; ++k) a[k] = std::conj(bins[n - k]);
  fft(a.data(), b.data());
  for (int64_t t = 0; t < n; ++t) x[t] = b[t].real();
}

// A per-thread plan: r2c writes the n / 2 + 1 bins of a real signal of length n >= 2; c2r
// inverts without the 1 / n. Either may clobber its input.
template <typename T>
class Plan;

template <>
class Plan<float> {
 public:
  Plan(int64_t n, bool inverse) : n_(n) {
    if (n % 2 == 0) {
      real_ = kiss_fftr_alloc((int)n, inverse, nullptr, nullptr);
      WAVSPA_ASSERT(real_ != nullptr);
    } else {
      complex_ = kiss_fft_alloc((int)n, inverse, nullptr, nullptr);
      WAVSPA_ASSERT(complex_ != nullptr);
      a_.resize(n);
      b_.resize(n);
    }
  }
  ~Plan() {
    kiss_fftr_free(real_);  // both are plain free() of one malloc'd block
    kiss_fft_free(complex_);
  }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  void r2c(const float* x, std::complex<float>* bins) {
    if (real_) {
      kiss_fftr(real_, x, reinterpret_cast<kiss_fft_cpx*>(bins));
      return;
    }
    r2c_complex(n_, x, bins, a_, b_, [this](std::complex<float>* in, std::complex<float>* out) {
      kiss_fft(complex_, reinterpret_cast<kiss_fft_cpx*>(in), reinterpret_cast<kiss_fft_cpx*>(out));
    });
  }
  void c2r(const std::complex<float>* bins, float* x) {
    if (real_) {
      kiss_fftri(real_, reinterpret_cast<const kiss_fft_cpx*>(bins), x);
      return;
    }
    c2r_complex(n_, bins, x, a_, b_, [this](std::complex<float>* in, std::complex<float>* out) {
      kiss_fft(complex_, reinterpret_cast<kiss_fft_cpx*>(in), reinterpret_cast<kiss_fft_cpx*>(out));
    });
  }

 private:
  int64_t n_;
  kiss_fftr_cfg real_ = nullptr;
  kiss_fft_cfg complex_ = nullptr;
  std::vector<std::complex<float>> a_, b_;
};

template <>
class Plan<double> {
 public:
  Plan(int64_t n, bool inverse) : n_(n), fft_((size_t)n, inverse), a_(n), b_(n) {}

  void r2c(const double* x, std::complex<double>* bins) {
    r2c_complex(n_, x, bins, a_, b_, [this](std::complex<double>* in, std::complex<double>* out) {
      fft_.transform(in, out);
    });
  }
  void c2r(const std::complex<double>* bins, double* x) {
    c2r_complex(n_, bins, x, a_, b_, [this](std::complex<double>* in, std::complex<double>* out) {
      fft_.transform(in, out);
    });
  }

 private:
  int64_t n_;
  kissfft<double> fft_;
  std::vector<std::complex<double>> a_, b_;
};

template <typename T>
Plan<T>& plan_for(int64_t n, bool inverse) {
  thread_local std::map<std::pair<int64_t, bool>, std::unique_ptr<Plan<T>>> cache;
  const auto key = std::make_pair(n, inverse);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= kMaxPlansPerThread) cache.clear();  // no plan of this thread is in use now
  return *cache.emplace(key, std::make_unique<Plan<T>>(n, inverse)).first->second;
}

struct Columns {
  int64_t A, n, C, m;  // signal (A, n, C), spectrum (A, m, C, 2)
};

Columns columns(const char* kernel, const Tensor& signal) {
  const int64_t A = signal.shape()[0], n = signal.shape()[1], C = signal.shape()[2];
  WAVSPA_CHECK(n <= INT_MAX, kernel, ": KissFFT plans take an int length, got n = ", n);
  return {A, n, C, n / 2 + 1};
}

}  // namespace

void CpuBackend::fft_r2c(const Tensor& x, const Tensor& spec) {
  const Columns s = columns("fft_r2c", x);
  visit_floating(x.dtype(), "fft_r2c", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(x.raw_data());  // (A, n, C)
    T* out = static_cast<T*>(spec.raw_data());          // (A, m, C, 2)
    // one thread for a small call: the fork would cost more than the transforms
    parallel_for(
        s.A * s.C, dynamic_chunk(s.A * s.C),
        [&](int64_t t_begin, int64_t t_end) {
          Plan<T>* plan = s.n > 1 ? &plan_for<T>(s.n, /*inverse=*/false) : nullptr;
          std::vector<T> signal(s.n);
          std::vector<std::complex<T>> bins(s.m);
          for (int64_t task = t_begin; task < t_end; ++task) {
            const int64_t a = task / s.C, c = task % s.C;
            const T* src = in + a * s.n * s.C + c;
            for (int64_t t = 0; t < s.n; ++t) signal[t] = src[t * s.C];
            if (plan)
              plan->r2c(signal.data(), bins.data());
            else
              bins[0] = {signal[0], T(0)};
            // exact zeros, as numpy gives: these parts are zero in exact arithmetic
            bins[0].imag(T(0));
            if (s.n % 2 == 0) bins[s.m - 1].imag(T(0));
            T* dst = out + (a * s.m * s.C + c) * 2;
            for (int64_t k = 0; k < s.m; ++k) {
              dst[k * s.C * 2] = bins[k].real();
              dst[k * s.C * 2 + 1] = bins[k].imag();
            }
          }
        },
        s.A * s.C > 1 && s.A * s.n * s.C >= kParallelGrain);
  });
}

void CpuBackend::fft_c2r(const Tensor& spec, double scale, const Tensor& x) {
  const Columns s = columns("fft_c2r", x);
  visit_floating(x.dtype(), "fft_c2r", [&](auto zero) {
    using T = decltype(zero);
    const T* in = static_cast<const T*>(spec.raw_data());  // (A, m, C, 2)
    T* out = static_cast<T*>(x.raw_data());                // (A, n, C)
    const T factor = (T)scale;
    // one thread for a small call: the fork would cost more than the transforms
    parallel_for(
        s.A * s.C, dynamic_chunk(s.A * s.C),
        [&](int64_t t_begin, int64_t t_end) {
          Plan<T>* plan = s.n > 1 ? &plan_for<T>(s.n, /*inverse=*/true) : nullptr;
          std::vector<T> signal(s.n);
          std::vector<std::complex<T>> bins(s.m);
          for (int64_t task = t_begin; task < t_end; ++task) {
            const int64_t a = task / s.C, c = task % s.C;
            const T* src = in + (a * s.m * s.C + c) * 2;
            for (int64_t k = 0; k < s.m; ++k) bins[k] = {src[k * s.C * 2], src[k * s.C * 2 + 1]};
            // The inverse of a real signal's spectrum ignores these parts (numpy.fft.irfft
            // does too); zeroing them keeps the complex path's output real.
            bins[0].imag(T(0));
            if (s.n % 2 == 0) bins[s.m - 1].imag(T(0));
            if (plan)
              plan->c2r(bins.data(), signal.data());
            else
              signal[0] = bins[0].real();
            T* dst = out + a * s.n * s.C + c;
            for (int64_t t = 0; t < s.n; ++t) dst[t * s.C] = factor * signal[t];
          }
        },
        s.A * s.C > 1 && s.A * s.n * s.C >= kParallelGrain);
  });
}

}  // namespace wavspa::cpu

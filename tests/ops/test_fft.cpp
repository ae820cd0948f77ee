// Real FFTs: values against a naive DFT written here, round trips, gradients (the adjoints
// of ops/fft.cpp), FNet's fft_real_2d and its symmetry, the parallel path, errors.
#include "ops/fft.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

const int64_t kLengths[] = {1, 2, 3, 7, 8, 97, 100};

// What "close" means per dtype, relative to the largest reference value: float32 FFTs carry
// rounding of about eps * log2(n) per output, KissFFT's float64 path about 1e-16.
double tolerance(DType dtype) { return dtype == kFloat64 ? 1e-13 : 2e-6; }

// angle 2 pi (k t mod n) / n, reduced first so large k t lose no precision
double angle(int64_t k, int64_t t, int64_t n) {
  return 2.0 * M_PI * (double)((k * t) % n) / (double)n;
}

// numpy.fft.rfft of one row: m (re, im) pairs.
std::vector<double> naive_rfft(const std::vector<double>& x) {
  const int64_t n = (int64_t)x.size(), m = n / 2 + 1;
  std::vector<double> out(2 * m, 0.0);
  for (int64_t k = 0; k < m; ++k)
    for (int64_t t = 0; t < n; ++t) {
      out[2 * k] += x[t] * std::cos(angle(k, t, n));
      out[2 * k + 1] -= x[t] * std::sin(angle(k, t, n));
    }
  return out;
}

// numpy.fft.irfft of one row of m (re, im) pairs: each inner bin also stands for its
// conjugate mirror; sin(0) and sin(pi t) drop Im of bin 0 and bin n/2 by themselves.
std::vector<double> naive_irfft(const std::vector<double>& X, int64_t n) {
  const int64_t m = n / 2 + 1;
  std::vector<double> out(n, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k = 0; k < m; ++k) {
      const double w = (k == 0 || 2 * k == n) ? 1.0 : 2.0;
      out[t] += w * (X[2 * k] * std::cos(angle(k, t, n)) - X[2 * k + 1] * std::sin(angle(k, t, n)));
    }
    out[t] /= (double)n;
  }
  return out;
}

// The values of t with `axis` moved last (and a trailing complex dim kept last), as rows.
std::vector<std::vector<double>> rows_along(const Tensor& t, int64_t axis, bool complex) {
  const int64_t dims = t.dim() - (complex ? 1 : 0);
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < dims; ++d)
    if (d != axis) perm.push_back(d);
  perm.push_back(axis);
  if (complex) perm.push_back(dims);
  const int64_t len = t.shape()[axis] * (complex ? 2 : 1);
  auto v = t.permute(perm).contiguous().to(kFloat64).to_vector<double>();
  std::vector<std::vector<double>> rows;
  for (size_t i = 0; i < v.size(); i += (size_t)len) rows.emplace_back(v.begin() + i, v.begin() + i + len);
  return rows;
}

// max |got - want| over rows, and max |want|.
std::pair<double, double> compare(const std::vector<std::vector<double>>& got,
                                  const std::vector<std::vector<double>>& want) {
  REQUIRE(got.size() == want.size());
  double err = 0, scale = 1.0;
  for (size_t r = 0; r < got.size(); ++r) {
    REQUIRE(got[r].size() == want[r].size());
    for (size_t i = 0; i < got[r].size(); ++i) {
      err = std::max(err, std::abs(got[r][i] - want[r][i]));
      scale = std::max(scale, std::abs(want[r][i]));
    }
  }
  return {err, scale};
}

// A 3-D shape with n at `axis` (0, 1 or 2) and small other dims.
Shape shape_with(int64_t n, int64_t axis) {
  Shape s{2, 3, 4};
  s[axis] = n;
  return s;
}

// Re(FFT2(x)) of a 2-D x by the definition.
std::vector<double> naive_real_2d(const std::vector<double>& x, int64_t n0, int64_t n1) {
  std::vector<double> y(n0 * n1, 0.0);
  for (int64_t k0 = 0; k0 < n0; ++k0)
    for (int64_t k1 = 0; k1 < n1; ++k1)
      for (int64_t t0 = 0; t0 < n0; ++t0)
        for (int64_t t1 = 0; t1 < n1; ++t1)
          y[k0 * n1 + k1] += x[t0 * n1 + t1] * std::cos(angle(k0, t0, n0) + angle(k1, t1, n1));
  return y;
}

}  // namespace

TEST_CASE("fft: rfft matches a naive DFT for odd, even, prime and composite n, along every axis") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (int64_t n : kLengths) {
      for (int64_t axis : {0, 1, 2}) {
        for (int64_t passed : {axis, axis - 3}) {  // positive and negative spellings
          INFO(str(dtype_name(dtype), " n=", n, " axis=", passed));
          Tensor x = randn(shape_with(n, axis), dtype);
          Tensor X = rfft(x, passed);
          Shape want_shape = x.shape();
          want_shape[axis] = n / 2 + 1;
          want_shape.push_back(2);
          REQUIRE(X.shape() == want_shape);
          CHECK(X.dtype() == dtype);
          std::vector<std::vector<double>> want;
          for (const auto& row : rows_along(x, axis, false)) want.push_back(naive_rfft(row));
          auto [err, scale] = compare(rows_along(X, axis, true), want);
          CHECK(err <= tolerance(dtype) * scale);
          // numpy's exact zeros: Im of bin 0, and of bin n/2 for even n
          CHECK(sum(abs(X.select(-1, 1).narrow(axis, 0, 1))).item() == 0.0);
          if (n % 2 == 0) CHECK(sum(abs(X.select(-1, 1).narrow(axis, n / 2, 1))).item() == 0.0);
        }
      }
    }
  }
}

TEST_CASE("fft: irfft matches a naive inverse DFT and ignores Im of bin 0 and bin n/2") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (int64_t n : kLengths) {
      for (int64_t axis : {0, 2}) {
        INFO(str(dtype_name(dtype), " n=", n, " axis=", axis));
        Shape spec_shape = shape_with(n / 2 + 1, axis);
        spec_shape.push_back(2);
        Tensor X = randn(spec_shape, dtype);  // nonzero Im in bins 0 and n/2 on purpose
        Tensor x = irfft(X, n, axis == 2 ? -1 : 0);
        REQUIRE(x.shape() == shape_with(n, axis));
        std::vector<std::vector<double>> want;
        for (const auto& row : rows_along(X, axis, true)) want.push_back(naive_irfft(row, n));
        auto [err, scale] = compare(rows_along(x, axis, false), want);
        CHECK(err <= tolerance(dtype) * scale);
      }
    }
  }
}

TEST_CASE("fft: irfft(rfft(x), n) == x, also for non-contiguous x") {
  for (DType dtype : {kFloat32, kFloat64}) {
    for (int64_t n : kLengths) {
      for (int64_t axis : {0, 1, -1}) {
        INFO(str(dtype_name(dtype), " n=", n, " axis=", axis));
        Tensor x = randn(shape_with(n, axis < 0 ? 2 : axis), dtype);
        Tensor back = irfft(rfft(x, axis), n, axis);
        CHECK(max_abs_diff(back, x) <= tolerance(dtype) * 10);
      }
      // a transposed and a strided view
      Tensor base = randn({n, 5}, dtype);
      Tensor xt = base.t();  // (5, n), n along axis 1 with stride 5
      CHECK(max_abs_diff(irfft(rfft(xt, 1), n, 1), xt) <= tolerance(dtype) * 10);
      Tensor wide = randn({3, 2 * n}, dtype);
      Tensor xs = wide.slice(1, 0, 2 * n, 2);
      CHECK(max_abs_diff(irfft(rfft(xs), n), xs) <= tolerance(dtype) * 10);
    }
  }
}

TEST_CASE("fft: gradcheck of rfft, odd and even n, every axis, non-contiguous inputs") {
  for (int64_t n : {1, 2, 5, 8}) {
    INFO(str("n=", n));
    check_grad([](const In& in) { return rfft(in[0], 1); }, rn({2, n, 3}));
    check_grad([](const In& in) { return rfft(in[0], 0); }, rn({n, 2, 2}));
    check_grad([](const In& in) { return rfft(in[0]); }, rn({3, n}));
    // transposed: n along dim 0 of the view, stride 1; the other dim has stride n
    check_grad([](const In& in) { return rfft(in[0].transpose(0, 2), 0); }, rn({2, 3, n}));
    // strided slice along the transformed axis
    check_grad([n](const In& in) { return rfft(in[0].slice(1, 0, 2 * n, 2), 1); }, rn({2, 2 * n}));
  }
  // the gradient of a downstream op through a real tensor: |X|^2 summed over bins
  check_grad([](const In& in) {
    Tensor X = rfft(in[0], 1);
    return sum(mul(X, X), {-1});
  }, rn({2, 9, 2}));
}

TEST_CASE("fft: gradcheck of irfft, odd and even n, non-contiguous inputs") {
  for (int64_t n : {1, 2, 3, 7, 8}) {
    const int64_t m = n / 2 + 1;
    INFO(str("n=", n));
    check_grad([n](const In& in) { return irfft(in[0], n, 1); }, rn({2, m, 3, 2}));
    check_grad([n](const In& in) { return irfft(in[0], n); }, rn({3, m, 2}));
    // (m, 2, 3) permuted to (m, 3, 2): the (real, imag) pairs are not adjacent in memory
    check_grad([n](const In& in) { return irfft(in[0].permute({0, 2, 1}), n, 0); }, rn({m, 2, 3}));
  }
  // through a round trip with a spectral filter, as a Fourier-space layer would
  check_grad([](const In& in) {
    return irfft(mul(rfft(in[0], 1), in[1]), 6, 1);
  }, rn({2, 6, 3}), rn({4, 1, 2}));
}

TEST_CASE("fft: fft_real_2d is a symmetric map (its own adjoint) that matches the naive 2-D DFT") {
  // Build the matrix of x -> Re(FFT2(x)) column by column from unit vectors: it must equal
  // its transpose, which is what lets the op use itself as its backward.
  for (auto [n0, n1] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 4}, {2, 3}, {5, 4}, {6, 7}, {4, 9}}) {
    const std::string sizes = str("n0=", n0, " n1=", n1);  // (clang 14: INFO cannot capture a structured binding)
    INFO(sizes);
    const int64_t N = n0 * n1;
    std::vector<double> M(N * N);
    for (int64_t j = 0; j < N; ++j) {
      Tensor e = zeros({n0, n1}, kFloat64);
      e.set({j / n1, j % n1}, 1.0);
      auto col = fft_real_2d(e, 0, 1).to_vector<double>();
      for (int64_t i = 0; i < N; ++i) M[i * N + j] = col[i];
    }
    double asym = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) asym = std::max(asym, std::abs(M[i * N + j] - M[j * N + i]));
    CHECK(asym < 1e-12);

    Tensor x = randn({n0, n1}, kFloat64);
    auto want = naive_real_2d(x.to_vector<double>(), n0, n1);
    auto got = fft_real_2d(x, 0, 1).to_vector<double>();
    auto got_swapped = fft_real_2d(x, 1, 0).to_vector<double>();
    double err = 0;
    for (int64_t i = 0; i < N; ++i)
      err = std::max({err, std::abs(got[i] - want[i]), std::abs(got_swapped[i] - want[i])});
    CHECK(err < 1e-12 * std::max<double>(1.0, (double)N));
  }
}

TEST_CASE("fft: fft_real_2d over chosen axes of a 3-D tensor, float32 and float64") {
  for (DType dtype : {kFloat32, kFloat64}) {
    // FNet's (B, N, D) mixing over the last two axes, and a pair with a gap between them
    Tensor x = randn({3, 7, 10}, dtype);
    Tensor y = fft_real_2d(x, 1, 2);
    REQUIRE(y.shape() == x.shape());
    Tensor z = fft_real_2d(x, 2, 0);  // mixes (B, D) for each n
    for (int64_t b = 0; b < 3; ++b) {
      auto want = naive_real_2d(x.select(0, b).contiguous().to(kFloat64).to_vector<double>(), 7, 10);
      auto got = y.select(0, b).contiguous().to(kFloat64).to_vector<double>();
      double err = 0, scale = 1;
      for (size_t i = 0; i < want.size(); ++i) {
        err = std::max(err, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
      }
      CHECK(err <= tolerance(dtype) * scale);
    }
    for (int64_t t = 0; t < 7; ++t) {
      Tensor slice = x.select(1, t);  // (B, D)
      auto want = naive_real_2d(slice.contiguous().to(kFloat64).to_vector<double>(), 3, 10);
      auto got = z.select(1, t).contiguous().to(kFloat64).to_vector<double>();
      double err = 0, scale = 1;
      for (size_t i = 0; i < want.size(); ++i) {
        err = std::max(err, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
      }
      CHECK(err <= tolerance(dtype) * scale);
    }
  }
}

TEST_CASE("fft: gradcheck of fft_real_2d, non-contiguous inputs, any axis order") {
  check_grad([](const In& in) { return fft_real_2d(in[0], 1, 2); }, rn({2, 5, 4}));
  check_grad([](const In& in) { return fft_real_2d(in[0], -1, 0); }, rn({3, 2, 7}));
  check_grad([](const In& in) { return fft_real_2d(in[0].transpose(0, 2), 0, 1); }, rn({3, 4, 6}));
  check_grad([](const In& in) { return fft_real_2d(in[0].slice(0, 0, 6, 2), 0, 1); }, rn({6, 3}));
  check_grad([](const In& in) { return fft_real_2d(in[0], 0, 1); }, rn({1, 2}));
}

TEST_CASE("fft: float32 equals float64 on batches that run on several threads, across many lengths") {
  // (8, 128, 64) has 65536 elements: above the parallel grain, so the transforms are spread
  // over threads, each with its own plans.
  Tensor x64 = randn({8, 128, 64}, kFloat64);
  Tensor x32 = x64.to(kFloat32);
  auto close = [](const Tensor& a32, const Tensor& b64) {
    auto a = a32.to(kFloat64).to_vector<double>(), b = b64.to_vector<double>();
    double err = 0, scale = 1;
    for (size_t i = 0; i < a.size(); ++i) {
      err = std::max(err, std::abs(a[i] - b[i]));
      scale = std::max(scale, std::abs(b[i]));
    }
    return err <= 4e-6 * scale;
  };
  CHECK(close(fft_real_2d(x32, 1, 2), fft_real_2d(x64, 1, 2)));
  CHECK(close(rfft(x32, 1), rfft(x64, 1)));
  CHECK(close(irfft(rfft(x32, 2), 64, 2), x64));
  // more lengths than a thread's plan cache holds, then the first one again
  for (int64_t n = 1; n <= 40; ++n) {
    Tensor s = randn({2, n}, kFloat64);
    REQUIRE(max_abs_diff(irfft(rfft(s), n), s) < 1e-12);
  }
  CHECK(close(rfft(x32, 1), rfft(x64, 1)));
}

TEST_CASE("fft: errors name the op, what was expected and what came") {
  Tensor ints = zeros({4, 3}, kInt64);
  check_error([&] { rfft(ints); }, {"rfft", "float32, float64 or bfloat16", "int64"});
  check_error([&] { irfft(zeros({3, 2}, kInt32), 4); }, {"irfft", "float32, float64 or bfloat16", "int32"});
  check_error([&] { fft_real_2d(ints, 0, 1); }, {"fft_real_2d", "float32, float64 or bfloat16", "int64"});
  check_error([] { rfft(scalar_tensor(1.0)); }, {"rfft", "0-d"});
  check_error([] { rfft(zeros({2, 0, 3}), 1); }, {"rfft", "at least one sample", "(2, 0, 3)"});
  check_error([] { rfft(zeros({2, 3}), 2); }, {"rfft", "dimension 2 out of range"});
  // irfft: the trailing (real, imag) dim
  check_error([] { irfft(zeros({4, 5}), 8); }, {"irfft", "trailing dim of size 2", "(4, 5)"});
  check_error([] { irfft(zeros({2}), 1); }, {"irfft", "trailing dim of size 2", "(2,)"});
  // irfft: n against the bins
  check_error([] { irfft(zeros({2, 5, 2}), 10, 1); },
              {"irfft", "n = 10", "needs n / 2 + 1 = 6", "got 5", "n = 8 or 9"});
  check_error([] { irfft(zeros({5, 2}), 7); }, {"irfft", "n = 7", "4 frequency bins", "got 5"});
  check_error([] { irfft(zeros({5, 2}), 0); }, {"irfft", "n >= 1", "got 0"});
  check_error([] { irfft(zeros({5, 2}), -3); }, {"irfft", "n >= 1", "got -3"});
  check_error([] { irfft(zeros({5, 2}), 8, 1); }, {"irfft", "dimension 1 out of range"});
  // fft_real_2d: two distinct axes of a tensor with at least 2 dims
  check_error([] { fft_real_2d(zeros({4, 4}), 1, -1); }, {"fft_real_2d", "must differ", "1 and -1"});
  check_error([] { fft_real_2d(zeros({4}), 0, 0); }, {"fft_real_2d", "at least 2 dims", "(4,)"});
  check_error([] { fft_real_2d(zeros({0, 4}), 0, 1); }, {"fft_real_2d", "at least one sample"});
}

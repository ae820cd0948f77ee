// wavedec / waverec against PyWavelets 1.1.1, case by case: every mode, twelve wavelets,
// thirteen lengths, levels 1, max and max + 1. The numbers come from
// tests/fixtures/wavelet_reference.bin.gz, written by tools/gen_wavelet_data.py (Debian's
// python3-pywt); the test itself needs no Python.
#include <cmath>

#include "ops/wavelet.h"
#include "tests/helpers.h"
#include "tests/ops/wavelet_reference.h"

using namespace wavspa;
using namespace wavspa::test;

TEST_CASE("wavelet: agreement with PyWavelets (coefficients and reconstruction, float64)") {
  const auto cases = load_wavelet_reference("tests/fixtures/wavelet_reference.bin.gz");
  REQUIRE(cases.size() > 1000);
  int64_t checked = 0;
  double worst = 0;
  std::string worst_case;
  for (const WaveletCase& c : cases) {
    const std::string label = str(c.wavelet, " ", c.mode, " n=", c.n, " level=", c.level);
    INFO(label);
    Wavelet w(c.wavelet);
    WaveletMode mode = wavelet_mode(c.mode);
    Tensor x = from_vector(c.x);
    double scale = 0;
    for (double v : c.x) scale = std::max(scale, std::abs(v));
    scale = std::max(scale, 1e-300);
    auto coeffs = wavedec(x, w, c.level, mode);
    REQUIRE(coeffs.size() == c.coeffs.size());
    for (size_t i = 0; i < coeffs.size(); ++i) {
      auto got = coeffs[i].to_vector<double>();
      REQUIRE(got.size() == c.coeffs[i].size());
      // Relative to max|x|, or to the array's own size where it is larger: smooth-mode
      // extrapolation over several levels makes coefficients hundreds of times max|x|, and
      // no summation order reproduces pywt's roundings there to 1e-12 of max|x|.
      double array_scale = scale;
      for (double v : c.coeffs[i]) array_scale = std::max(array_scale, std::abs(v));
      for (size_t j = 0; j < got.size(); ++j) {
        double err = std::abs(got[j] - c.coeffs[i][j]) / array_scale;
        if (err > worst) { worst = err; worst_case = label; }
      }
    }
    auto rec = waverec(coeffs, w, mode).to_vector<double>();
    REQUIRE(rec.size() == c.rec.size());
    for (size_t j = 0; j < rec.size(); ++j) {
      double err = std::abs(rec[j] - c.rec[j]) / scale;
      if (err > worst) { worst = err; worst_case = label; }
    }
    ++checked;
  }
  INFO(str("worst relative error ", worst, " in ", worst_case));
  CHECK(worst < 1e-12);
  MESSAGE(str(checked, " PyWavelets cases, worst error ", worst, " x max|x| (", worst_case, ")"));
}

TEST_CASE("wavelet: every PyWavelets bank is there and has four filters of one length") {
  const auto names = wavelist();
  CHECK(names.size() == 106);  // pywt.wavelist(kind="discrete") in 1.1.1
  for (const char* n : {"haar", "db1", "db38", "sym2", "sym20", "coif1", "coif17", "bior1.1",
                        "bior6.8", "rbio1.1", "rbio6.8", "dmey"}) {
    INFO(n);
    Wavelet w(n);
    CHECK(w.dec_hi.shape() == w.dec_lo.shape());
    CHECK(w.rec_lo.shape() == w.dec_lo.shape());
    CHECK(w.rec_hi.shape() == w.dec_lo.shape());
  }
  CHECK(Wavelet("db38").filter_length() == 76);
  CHECK(Wavelet("coif17").filter_length() == 102);
  CHECK(Wavelet("dmey").filter_length() == 62);
}

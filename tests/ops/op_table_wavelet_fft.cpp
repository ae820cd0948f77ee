// Op table entries of ops/wavelet.h and ops/fft.h.
#include "tests/ops/op_table.h"

namespace wavspa::test {

namespace {

const char* kReference = "wavelet: agreement with PyWavelets (coefficients and reconstruction, float64)";
const char* kReconstruction = "wavelet: perfect reconstruction for every mode, level and wavelet kind";

OpInfo wavelet_entry(const std::string& name, const std::string& header, const std::string& backward,
                     const std::string& value_test, std::function<std::vector<Sample>()> samples) {
  OpInfo op = entry(name, header, backward, value_test, std::move(samples));
  // A named wavelet's float64 CPU filters serve float32 and CUDA signals too, so filters are
  // converted to the signal's dtype and moved to its device rather than refused.
  op.mixed_dtypes_refused = false;
  op.mixed_devices_refused = false;
  // bfloat16 on CUDA: bfloat16 signals with float32 taps and arithmetic (filters of any
  // floating dtype are converted to float32).
  op.bf16 = Bf16::Cuda;
  return op;
}

// A random orthogonal-bank low-pass of length F, shared (F) or per channel (F, C).
Tensor filter(int64_t F, int64_t C = 0) { return C ? rn({F, C}) : rn({F}); }

}  // namespace

void add_wavelet_fft_ops(std::vector<OpInfo>& t) {
  t.push_back(wavelet_entry(
      "dwt", "ops/wavelet.h",
      "analysis of the extended signal (the extension folded in as a `RowMap`); backward: synthesis with the same "
      "map (the exact adjoint: padding gradients fold back onto their source samples) and the filter correlation "
      "`wavelet_filter_grad`",
      kReference, [] {
        return std::vector<Sample>{
            {"per-channel filters (4, C), symmetric, axis 1",
             [](const In& x) {
               return flat({dwt(x[0], x[1], WaveletMode::Symmetric, 1).first,
                            dwt(x[0], x[1], WaveletMode::Symmetric, 1).second});
             },
             {rn({2, 7, 3}), filter(4, 3)}},
            {"shared filter (6), periodization, transposed signal",
             [](const In& x) {
               auto [a, d] = dwt(x[0].t(), x[1], WaveletMode::Periodization, -1);
               return flat({a, d});
             },
             {rn({9, 2}), filter(6)}},
            {"named db2, reflect",
             [](const In& x) {
               auto [a, d] = dwt(x[0], Wavelet("db2"), WaveletMode::Reflect, -1);
               return flat({a, d});
             },
             {rn({2, 8})}},
            {"biorthogonal bank from four filters, zero mode",
             [](const In& x) {
               auto [a, d] = dwt(x[0], Wavelet::biorthogonal(x[1], x[2], x[3], x[4]), WaveletMode::Zero, -1);
               return flat({a, d});
             },
             {rn({2, 6}), filter(4), filter(4), filter(4), filter(4)}},
        };
      }));
  t.back().error_name = "Wavelet::orthogonal_from";  // the function that checks the dtype
  t.push_back(wavelet_entry(
      "idwt", "ops/wavelet.h",
      "synthesis (periodization wraps through the map's transpose); backward: analysis and the filter correlation",
      kReconstruction, [] {
        return std::vector<Sample>{
            {"per-channel filters, antisymmetric, axis 1",
             [](const In& x) { return idwt(x[0], x[1], x[2], WaveletMode::Antisymmetric, 1); },
             {rn({2, 5, 3}), rn({2, 5, 3}), filter(4, 3)}},
            {"shared filter, periodization",
             [](const In& x) { return idwt(x[0], x[1], x[2], WaveletMode::Periodization); },
             {rn({3, 4}), rn({3, 4}), filter(4)}},
            {"named sym3, smooth, transposed coefficients",
             [](const In& x) { return idwt(x[0].t(), x[1].t(), Wavelet("sym3"), WaveletMode::Smooth); },
             {rn({6, 2}), rn({6, 2})}},
        };
      }));
  t.back().error_name = "Wavelet::orthogonal_from";  // the function that checks the dtype
  t.push_back(wavelet_entry("wavedec", "ops/wavelet.h", "composite of `dwt` per level", kReference, [] {
    return std::vector<Sample>{
        {"two levels, per-channel, periodization, axis 1",
         [](const In& x) { return flat(wavedec(x[0], x[1], 2, WaveletMode::Periodization, 1)); },
         {rn({2, 12, 3}), filter(4, 3)}},
        {"named haar, max level, symmetric",
         [](const In& x) { return flat(wavedec(x[0], Wavelet("haar"))); },
         {rn({2, 9})}},
    };
  }));
  t.back().error_name = "Wavelet::orthogonal_from";  // the function that checks the dtype
  t.push_back(wavelet_entry("waverec", "ops/wavelet.h",
                            "composite of `idwt` per level, `narrow` for pywt's one-longer rule and the `length` trim",
                            kReconstruction, [] {
                              return std::vector<Sample>{
                                  {"two levels, per-channel, periodization, axis 1",
                                   [](const In& x) {
                                     return waverec({x[0], x[1], x[2]}, x[3], WaveletMode::Periodization, 1);
                                   },
                                   {rn({2, 3, 2}), rn({2, 3, 2}), rn({2, 6, 2}), filter(4, 2)}},
                                  {"named db2, symmetric, trimmed to 7",
                                   [](const In& x) {
                                     return waverec({x[0], x[1]}, Wavelet("db2"), WaveletMode::Symmetric, -1, 7);
                                   },
                                   {rn({2, 5}), rn({2, 5})}},
                              };
                            }));
  t.back().error_name = "Wavelet::orthogonal_from";  // the function that checks the dtype
  t.push_back(wavelet_entry(
      "waverec_add", "ops/wavelet.h",
      "`waverec` whose last synthesis adds the base (`WaveletSynthesisBackward` passes the output's gradient to it); "
      "`add(base, waverec(...))` after a trim or for a base of another shape",
      "dropout_add and waverec_add: the bits of add(base, ...), the same mask", [] {
        return std::vector<Sample>{
            {"two levels, per-channel, periodization, axis 1",
             [](const In& x) { return waverec_add(x[0], {x[1], x[2], x[3]}, Wavelet::orthogonal_from(x[4]), WaveletMode::Periodization, 1); },
             {rn({2, 12, 2}), rn({2, 3, 2}), rn({2, 3, 2}), rn({2, 6, 2}), filter(4, 2)}},
            {"named db2, symmetric, transposed base",
             [](const In& x) { return waverec_add(x[0].t(), {x[1], x[2]}, Wavelet("db2"), WaveletMode::Symmetric, -1); },
             {rn({8, 2}), rn({2, 5}), rn({2, 5})}},
            {"trimmed to 7 (add after the trim)",
             [](const In& x) { return waverec_add(x[0], {x[1], x[2]}, Wavelet("db2"), WaveletMode::Symmetric, -1, 7); },
             {rn({2, 7}), rn({2, 5}), rn({2, 5})}},
            {"a broadcast base",
             [](const In& x) { return waverec_add(x[0], {x[1], x[2]}, Wavelet::orthogonal_from(x[3]), WaveletMode::Zero, -1); },
             {rn({1}), rn({2, 4}), rn({2, 4}), filter(4)}},
        };
      }));
  t.back().error_name = "Wavelet::orthogonal_from";  // the function that checks the dtype
  t.push_back(
      wavelet_entry("lattice_filter", "ops/wavelet.h",
                    "primitive (backend `lattice_filter`, a thread per channel) up to 32 angles; beyond, composite of "
                    "`cos`, `sin`, `mul`, `add`, `concat`, `stack`",
                    "wavelet: the orthogonal lattice gives orthonormal filters and perfect reconstruction", [] {
                      return std::vector<Sample>{
                          {"shared, K = 3", [](const In& x) { return lattice_filter(x[0]); }, {rn({3})}},
                          {"per channel, K = 2", [](const In& x) { return lattice_filter(x[0]); }, {rn({2, 4})}},
                          {"per channel, K = 8", [](const In& x) { return lattice_filter(x[0]); }, {rn({8, 3})}},
                          {"shared, K = 33 (composite)", [](const In& x) { return lattice_filter(x[0]); }, {rn({33})}},
                      };
                    }));
  t.back().bf16 = Bf16::Refused;  // builds filters, which are float32 for bfloat16 signals
  const char* kLifting = "wavelet: lifting (LeGall 5/3 and learnable) reconstructs exactly";
  t.push_back(wavelet_entry("lifting_forward", "ops/wavelet.h",
                            "primitive: `lifting_step` per step (the symmetric extension an index map, even and odd rows strided views); backward `lifting_step_adjoint` and `lifting_filter_grad`", kLifting, [] {
                              return std::vector<Sample>{
                                  {"odd length, shared filters",
                                   [](const In& x) {
                                     auto [s, d] = lifting_forward(x[0], x[1], x[2]);
                                     return flat({s, d});
                                   },
                                   {rn({2, 9}), rn({2}), rn({2})}},
                                  {"per channel, axis 0",
                                   [](const In& x) {
                                     auto [s, d] = lifting_forward(x[0], x[1], x[2], 0);
                                     return flat({s, d});
                                   },
                                   {rn({8, 3}), rn({4, 3}), rn({2, 3})}},
                              };
                            }));
  t.push_back(wavelet_entry("lifting_inverse", "ops/wavelet.h",
                            "primitive: `lifting_step` per step (the symmetric extension an index map, even and odd rows strided views); backward `lifting_step_adjoint` and `lifting_filter_grad`", kLifting, [] {
                              return std::vector<Sample>{
                                  {"odd length",
                                   [](const In& x) { return lifting_inverse(x[0], x[1], x[2], x[3]); },
                                   {rn({2, 5}), rn({2, 4}), rn({2}), rn({2})}},
                                  {"per channel, axis 0",
                                   [](const In& x) { return lifting_inverse(x[0], x[1], x[2], x[3], 0); },
                                   {rn({4, 3}), rn({4, 3}), rn({4, 3}), rn({2, 3})}},
                              };
                            }));
  t.push_back(wavelet_entry("legall53_forward", "ops/wavelet.h",
                            "`lifting_forward` with predict {1/2, 1/2}, update {1/4, 1/4}", kLifting, [] {
                              return std::vector<Sample>{{"odd length, transposed",
                                                          [](const In& x) {
                                                            auto [s, d] = legall53_forward(x[0].t());
                                                            return flat({s, d});
                                                          },
                                                          {rn({7, 2})}}};
                            }));
  t.back().error_name = "lifting_forward";  // the function that checks the dtype
  t.push_back(
      wavelet_entry("legall53_inverse", "ops/wavelet.h", "`lifting_inverse` with the LeGall 5/3 filters", kLifting, [] {
        return std::vector<Sample>{
            {"even length", [](const In& x) { return legall53_inverse(x[0], x[1]); }, {rn({2, 4}), rn({2, 4})}}};
      }));
  t.back().error_name = "lifting_inverse";  // the function that checks the dtype
  const char* k2d = "wavelet: 2-D transforms over chosen axes";
  t.push_back(wavelet_entry("dwt2", "ops/wavelet.h", "composite of `dwt` over two axes", k2d, [] {
    return std::vector<Sample>{{"db2, symmetric, axes (-2, -1)",
                                [](const In& x) {
                                  Coeffs2 c = dwt2(x[0], Wavelet("db2"));
                                  return flat({c.cA, c.cH, c.cV, c.cD});
                                },
                                {rn({2, 5, 6})}}};
  }));
  t.back().error_name = "dwt";  // the function that checks the dtype
  t.push_back(wavelet_entry("idwt2", "ops/wavelet.h", "composite of `idwt` over two axes", k2d, [] {
    return std::vector<Sample>{{"haar, periodization, axes (0, 2)",
                                [](const In& x) {
                                  Coeffs2 c{x[0], x[1], x[2], x[3]};
                                  return idwt2(c, Wavelet("haar"), WaveletMode::Periodization, {0, 2});
                                },
                                {rn({2, 3, 3}), rn({2, 3, 3}), rn({2, 3, 3}), rn({2, 3, 3})}}};
  }));
  t.back().error_name = "idwt";  // the function that checks the dtype
  t.push_back(wavelet_entry("wavedec2", "ops/wavelet.h", "composite of `dwt2` per level", k2d, [] {
    return std::vector<Sample>{{"two levels of haar",
                                [](const In& x) {
                                  Decomposition2 d = wavedec2(x[0], Wavelet("haar"), 2);
                                  std::vector<Tensor> parts{d.cA};
                                  for (const Details2& l : d.details) parts.insert(parts.end(), {l.cH, l.cV, l.cD});
                                  return flat(parts);
                                },
                                {rn({8, 8})}}};
  }));
  t.back().error_name = "dwt";  // the function that checks the dtype
  t.push_back(wavelet_entry("waverec2", "ops/wavelet.h", "composite of `idwt2` per level", k2d, [] {
    return std::vector<Sample>{{"one level of db2, reflect",
                                [](const In& x) {
                                  Decomposition2 d{x[0], {Details2{x[1], x[2], x[3]}}};
                                  return waverec2(d, Wavelet("db2"), WaveletMode::Reflect);
                                },
                                {rn({4, 4}), rn({4, 4}), rn({4, 4}), rn({4, 4})}}};
  }));
  t.back().error_name = "idwt";  // the function that checks the dtype

  // ---- Fourier ----
  t.push_back(entry(
      "rfft", "ops/fft.h", "exact adjoint: grad x = `fft_c2r(G ⊙ [1, ½, …, ½, 1])`; Im of bins 0 and n/2 drop out",
      "fft: rfft matches a naive DFT for odd, even, prime and composite n, along every axis", [] {
        return std::vector<Sample>{
            {"odd n, last axis", [](const In& x) { return rfft(x[0]); }, {rn({2, 7})}},
            {"even n, axis 0 of a transpose", [](const In& x) { return rfft(x[0].t(), 0); }, {rn({3, 8})}},
        };
      }));
  t.back().mixed_dtypes_refused = true;
  t.back().bf16 = Bf16::Refused;  // no bfloat16 FFT
  t.push_back(entry("irfft", "ops/fft.h",
                    "grad X = rfft(g) ⊙ [1/n, 2/n, …, 2/n, 1/n], zero for the ignored Im of bins 0 and n/2",
                    "fft: irfft matches a naive inverse DFT and ignores Im of bin 0 and bin n/2", [] {
                      return std::vector<Sample>{
                          {"even n = 8", [](const In& x) { return irfft(x[0], 8); }, {rn({2, 5, 2})}},
                          {"odd n = 7, axis 0", [](const In& x) { return irfft(x[0], 7, 0); }, {rn({4, 3, 2})}},
                      };
                    }));
  t.back().mixed_dtypes_refused = true;
  t.back().bf16 = Bf16::Refused;  // no bfloat16 FFT
  t.push_back(
      entry("fft_real_2d", "ops/fft.h", "itself (a symmetric real map)",
            "fft: fft_real_2d is a symmetric map (its own adjoint) that matches the naive 2-D DFT", [] {
              return std::vector<Sample>{
                  {"axes (1, 2)", [](const In& x) { return fft_real_2d(x[0], 1, 2); }, {rn({2, 5, 4})}},
                  {"axes (1, 0) of a transpose", [](const In& x) { return fft_real_2d(x[0].t(), 1, 0); }, {rn({6, 3})}},
              };
            }));
  t.back().mixed_dtypes_refused = true;
  t.back().bf16 = Bf16::Refused;  // no bfloat16 FFT
}

}  // namespace wavspa::test

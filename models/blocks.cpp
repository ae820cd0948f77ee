#include "models/blocks.h"

#include <cmath>

#include "core/names.h"
#include "ops/factory.h"
#include "ops/fft.h"
#include "ops/nn.h"
#include "ops/shape.h"

namespace wavspa::models {

namespace {
// x * mask over the channels: padded positions become zero.
Tensor apply_mask(const Tensor& x, const Tensor& key_mask) {
  if (!key_mask.defined()) return x;
  WAVSPA_CHECK(key_mask.dim() == 2 && key_mask.shape()[0] == x.shape()[0] &&
                   key_mask.shape()[1] == x.shape()[1],
               "block: key_mask must be (B, N) = (", x.shape()[0], ", ", x.shape()[1], "), got ",
               shape_str(key_mask.shape()));
  return mul(x, ne(key_mask, 0).unsqueeze(2));  // bool meets x's dtype (promotion)
}
}  // namespace

// ---- Transformer ----------------------------------------------------------------------------

TransformerBlock::TransformerBlock(int64_t dim, std::shared_ptr<nn::SelfAttention> attention,
                                   int64_t mlp_dim, double dropout)
    : Block("TransformerBlock") {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(Shape{dim}));
  attn = register_module("attn", std::move(attention));
  drop = register_module("drop", std::make_shared<nn::Dropout>(dropout));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(Shape{dim}));
  mlp = register_module("mlp", std::make_shared<nn::MLP>(dim, mlp_dim, dropout));
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_mask) {
  // The residual after attention and its norm in one op each way (dropout_add_layer_norm).
  auto [h, hn] = dropout_add_layer_norm(x, attn->forward(norm1->forward(x), key_mask), drop->p, drop->is_training(),
                                        norm2->shape, norm2->weight, norm2->bias, norm2->eps);
  return mlp->forward_add(h, hn);
}

// ---- WavSpA ---------------------------------------------------------------------------------

namespace {
const std::pair<Parametrization, const char*> kParamNames[] = {
    {Parametrization::Ada, "ada"},   {Parametrization::Ortho, "ortho"},
    {Parametrization::Lift, "lift"}, {Parametrization::AdaLift, "adalift"},
    {Parametrization::Fixed, "fixed"},
};
bool is_lifting(Parametrization p) {
  return p == Parametrization::Lift || p == Parametrization::AdaLift;
}
}  // namespace

Parametrization parametrization_from_name(const std::string& name) {
  return value_of_name(kParamNames, name, "WavSpA parametrization");
}

const char* parametrization_name(Parametrization p) { return name_of_value(kParamNames, p); }

WavSpABlock::WavSpABlock(const WavSpAOptions& o, const AttentionFactory& make_attention)
    : Block("WavSpABlock"), options(o) {
  WAVSPA_CHECK(o.dim > 0 && o.mlp_dim > 0 && o.max_len > 0, "WavSpABlock: dim, mlp_dim and "
               "max_len must be positive, got ", o.dim, ", ", o.mlp_dim, ", ", o.max_len);
  WAVSPA_CHECK(o.levels >= 1, "WavSpABlock: levels must be >= 1, got ", o.levels);
  const bool lifting = is_lifting(o.parametrization);
  WAVSPA_CHECK(lifting || (o.wlen >= 2 && o.wlen % 2 == 0 && o.wlen / 2 <= 38),
               "WavSpABlock: wlen must be even, 2..76 (Daubechies db1..db38 initialise it), got ",
               o.wlen);
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{o.dim}));
  const int64_t D = o.dim;
  switch (o.parametrization) {
    case Parametrization::Ada:
    case Parametrization::Fixed: {
      Tensor db = Wavelet("db" + std::to_string(o.wlen / 2)).dec_lo.to(kFloat32);
      Tensor init = db.unsqueeze(1).expand({o.wlen, D}).contiguous();
      if (o.parametrization == Parametrization::Ada) register_parameter("filters", &filters, init);
      else register_buffer("filters", &filters, init);
      break;
    }
    case Parametrization::Ortho: {
      Generator gen(o.seed);
      register_parameter("angles", &angles,
                         uniform({o.wlen / 2, D}, 0.0, 2 * M_PI, kFloat32, Device::cpu(), &gen));
      break;
    }
    case Parametrization::AdaLift:
      register_parameter("predict", &predict, full({2, D}, 0.5));
      register_parameter("update", &update, full({2, D}, 0.25));
      break;
    case Parametrization::Lift: break;
  }
  // Band lengths for max_len, in pywt order [cA_L, cD_L, ..., cD_1].
  std::vector<int64_t> details;
  int64_t n = o.max_len;
  for (int64_t l = 0; l < o.levels; ++l) {
    WAVSPA_CHECK(n >= 2, "WavSpABlock: ", o.levels, " levels are too many for max_len ", o.max_len);
    int64_t approx = lifting ? (n + 1) / 2 : dwt_coeff_len(n, o.wlen, o.mode);
    details.push_back(lifting ? n / 2 : approx);
    n = approx;
  }
  std::vector<int64_t> lengths{n};
  lengths.insert(lengths.end(), details.rbegin(), details.rend());
  for (size_t b = 0; b < lengths.size(); ++b)
    band_attention.push_back(register_module("band" + std::to_string(b), make_attention(lengths[b])));
  drop = register_module("drop", std::make_shared<nn::Dropout>(o.dropout));
  if (o.pre_mlp_norm) mlp_norm = register_module("mlp_norm", std::make_shared<nn::LayerNorm>(Shape{o.dim}));
  mlp = register_module("mlp", std::make_shared<nn::MLP>(o.dim, o.mlp_dim, o.dropout));
}

Wavelet WavSpABlock::wavelet() const {
  switch (options.parametrization) {
    case Parametrization::Ada:
    case Parametrization::Fixed: return Wavelet::orthogonal_from(filters);
    case Parametrization::Ortho: return Wavelet::orthogonal_from(lattice_filter(angles));
    default: break;
  }
  throw Error(str("WavSpABlock: the ", parametrization_name(options.parametrization),
                  " parametrization has no filter bank"));
}

std::optional<Wavelet> WavSpABlock::bank() const {
  if (is_lifting(options.parametrization)) return std::nullopt;
  return wavelet();
}

std::vector<Tensor> WavSpABlock::decompose(const Tensor& h, const std::optional<Wavelet>& bank) const {
  if (bank) return wavedec(h, *bank, options.levels, options.mode, 1);
  const bool fixed = options.parametrization == Parametrization::Lift;
  std::vector<Tensor> details;
  Tensor a = h;
  for (int64_t l = 0; l < options.levels; ++l) {
    auto [s, d] = fixed ? legall53_forward(a, 1) : lifting_forward(a, predict, update, 1);
    details.push_back(d);
    a = s;
  }
  std::vector<Tensor> bands{a};
  bands.insert(bands.end(), details.rbegin(), details.rend());
  return bands;
}

Tensor WavSpABlock::reconstruct(const std::vector<Tensor>& bands, int64_t n, const std::optional<Wavelet>& bank,
                                const Tensor& residual) const {
  if (bank)
    return residual.defined() ? waverec_add(residual, bands, *bank, options.mode, 1, n)
                              : waverec(bands, *bank, options.mode, 1, n);
  const bool fixed = options.parametrization == Parametrization::Lift;
  Tensor a = bands[0];
  for (size_t i = 1; i < bands.size(); ++i)
    a = fixed ? legall53_inverse(a, bands[i], 1) : lifting_inverse(a, bands[i], predict, update, 1);
  return residual.defined() ? add(residual, a) : a;
}

Tensor WavSpABlock::forward(const Tensor& x_in, const Tensor& key_mask) {
  WAVSPA_CHECK(x_in.dim() == 3 && x_in.shape()[2] == options.dim && x_in.shape()[1] <= options.max_len,
               "WavSpABlock: expected (B, N, ", options.dim, ") with N <= ", options.max_len,
               ", got ", shape_str(x_in.shape()));
  const int64_t N = x_in.shape()[1];
  Tensor h = norm->forward(apply_mask(x_in, key_mask));
  const std::optional<Wavelet> filters_now = bank();
  std::vector<Tensor> bands = decompose(h, filters_now);
  // The bands' attention side by side: one launch of each attention kernel for a level's
  // bands where they allow it (nn::self_attention_group).
  std::vector<nn::SelfAttention*> mods;
  for (const auto& m : band_attention) mods.push_back(m.get());
  bands = nn::self_attention_group(mods, bands);
  // The residual adds ride on the last kernels before them: the synthesis and the MLP's dropout.
  Tensor x = reconstruct(bands, N, filters_now, /*residual=*/x_in);
  return mlp->forward_add(x, drop->forward(mlp_norm ? mlp_norm->forward(x) : x));
}

std::string WavSpABlock::extra_repr() const {
  return str(parametrization_name(options.parametrization), ", levels=", options.levels,
             is_lifting(options.parametrization) ? "" : str(", wlen=", options.wlen, ", mode=",
                                                            wavelet_mode_name(options.mode)));
}

// ---- Fourier baselines -------------------------------------------------------------------

FourierBlock::FourierBlock(
    int64_t dim, int64_t mlp_dim, int64_t max_len, double dropout,
    const std::function<std::shared_ptr<nn::SelfAttention>(int64_t, int64_t)>& make_attention)
    : Block("FourierBlock") {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(Shape{dim}));
  attn = register_module("attn", make_attention(max_len / 2 + 1, 2 * dim));
  drop = register_module("drop", std::make_shared<nn::Dropout>(dropout));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(Shape{dim}));
  mlp = register_module("mlp", std::make_shared<nn::MLP>(dim, mlp_dim, dropout));
}

Tensor FourierBlock::forward(const Tensor& x, const Tensor& key_mask) {
  const int64_t B = x.shape()[0], N = x.shape()[1], D = x.shape()[2];
  Tensor spec = rfft(norm1->forward(apply_mask(x, key_mask)), 1);  // (B, M, D, 2)
  const int64_t M = spec.shape()[1];
  Tensor mixed = attn->forward(spec.reshape({B, M, 2 * D}));       // real, imag as features
  Tensor z = irfft(mixed.reshape({B, M, D, 2}), N, 1);              // cropped to N
  Tensor h = drop->forward_add(x, z);
  return mlp->forward_add(h, norm2->forward(h));
}

FNetBlock::FNetBlock(int64_t dim, int64_t mlp_dim, double dropout) : Block("FNetBlock") {
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(Shape{dim}));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(Shape{dim}));
  mlp = register_module("mlp", std::make_shared<nn::MLP>(dim, mlp_dim, dropout));
}

Tensor FNetBlock::forward(const Tensor& x, const Tensor& key_mask) {
  Tensor h = norm1->forward(add(x, fft_real_2d(apply_mask(x, key_mask), 1, 2)));
  return norm2->forward(add(h, mlp->forward(h)));
}

}  // namespace wavspa::models

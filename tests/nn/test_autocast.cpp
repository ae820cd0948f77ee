// The mixed-precision policy (AutocastGuard, core/runtime.h): on the CPU it changes nothing;
// on CUDA linear, matmul, attention and layer_norm compute in bfloat16 against float32
// references, gradients come back in each input's dtype (float32 for the master weights),
// and whole models under the guard agree with float32 to bfloat16 accuracy.
#include <cmath>
#include <cstring>
#include <vector>

#include "models/factory.h"
#include "nn/optim.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// ||a - b|| / ||b|| over all elements, in float64.
[[maybe_unused]] double rel_err(const Tensor& a, const Tensor& b) {
  auto va = a.to(Device::cpu()).to(kFloat64).to_vector<double>();
  auto vb = b.to(Device::cpu()).to(kFloat64).to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) num += (va[i] - vb[i]) * (va[i] - vb[i]), den += vb[i] * vb[i];
  return std::sqrt(num / std::max(den, 1e-300));
}

// Head dim 32: the tensor-core attention kernels. Level 1, wlen 8 for WavSpA.
models::ModelConfig small_model(const std::string& architecture) {
  return {.architecture = architecture, .vocab_size = 16, .num_classes = 10, .max_len = 96, .num_heads = 2,
          .dropout = 0.0, .attention_dropout = 0.0, .wlen = 8};
}

}  // namespace

TEST_CASE("autocast: the guard nests and restores, and changes nothing on the CPU") {
  CHECK_FALSE(autocast_enabled());
  {
    AutocastGuard on;
    CHECK(autocast_enabled());
    {
      AutocastGuard off(false);
      CHECK_FALSE(autocast_enabled());
    }
    CHECK(autocast_enabled());
  }
  CHECK_FALSE(autocast_enabled());

  // A CPU model computes in float32 with or without the guard: same bits, same gradients.
  manual_seed(5);
  auto model = models::make_classifier(small_model("transformer"));
  const Tensor ids = randint(1, 16, {2, 40});
  auto run = [&](bool autocast) {
    AutocastGuard guard(autocast);
    model->zero_grad();
    Tensor logits = model->forward(ids);
    cross_entropy(logits, from_vector(std::vector<int64_t>{1, 7})).backward();
    std::vector<Tensor> out{logits.detach()};
    for (const Tensor& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const std::vector<Tensor> plain = run(false), cast = run(true);
  REQUIRE(plain.size() == cast.size());
  CHECK(plain[0].dtype() == kFloat32);
  for (size_t i = 0; i < plain.size(); ++i) CHECK(max_abs_diff(plain[i], cast[i]) == 0);
}

#ifdef WAVSPA_CUDA

TEST_CASE("autocast: linear in bfloat16 with float32 weight and bias gradients" * gpu_only()) {
  manual_seed(1);
  for (bool with_bias : {true, false}) {
    INFO("bias " << with_bias);
    const Tensor x = randn({3, 37, 48}), w = mul(randn({80, 48}), 0.2), b = randn({80});
    const Tensor seed = randn({3, 37, 80});
    // The float32 reference on the CPU.
    Tensor xr = x.clone().requires_grad_(), wr = w.clone().requires_grad_(), br = b.clone().requires_grad_();
    Tensor yr = linear(xr, wr, with_bias ? br : Tensor());
    sum(mul(yr, seed)).backward();
    // Under the guard on CUDA: x float32 (cast in the graph), the weights float32 leaves.
    Tensor xg = x.to(Device::cuda()).requires_grad_(), wg = w.to(Device::cuda()).requires_grad_(),
           bg = b.to(Device::cuda()).requires_grad_();
    Tensor yg;
    {
      AutocastGuard bf16;
      yg = linear(xg, wg, with_bias ? bg : Tensor());
      sum(mul(yg, seed.to(Device::cuda()))).backward();
    }
    CHECK(yg.dtype() == kBFloat16);
    CHECK(xg.grad().dtype() == kFloat32);
    CHECK(wg.grad().dtype() == kFloat32);
    CHECK(rel_err(yg, yr) < 1e-2);
    CHECK(rel_err(xg.grad(), xr.grad()) < 1e-2);
    CHECK(rel_err(wg.grad(), wr.grad()) < 1e-2);
    if (with_bias) {
      CHECK(bg.grad().dtype() == kFloat32);
      CHECK(rel_err(bg.grad(), br.grad()) < 1e-2);
    } else {
      CHECK_FALSE(bg.grad().defined());
    }
  }
}

TEST_CASE("autocast: linear's bfloat16 copy of a parameter follows every change to it" * gpu_only()) {
  manual_seed(2);
  const Tensor x = randn({5, 16}).to(Device::cuda());
  Tensor w = randn({8, 16}).to(Device::cuda()).requires_grad_();
  // What linear must give for the weight as it is now: a copy cast by hand, each time.
  auto expected = [&] {
    AutocastGuard bf16;
    return linear(x, w.detach().to(kBFloat16).to(kFloat32).detach()).to(kFloat32);  // not a parameter
  };
  auto got = [&] {
    AutocastGuard bf16;
    return linear(x, w).to(kFloat32);
  };
  CHECK(max_abs_diff(got(), expected()) == 0);
  CHECK(max_abs_diff(got(), expected()) == 0);  // the kept copy
  // Written in place (the version moves): the next call casts again.
  {
    NoGradGuard no_grad;
    w.mul_(-0.5);
  }
  CHECK(max_abs_diff(got(), expected()) == 0);
  // An optimizer step remakes the copy ahead of the next forward.
  nn::SGD opt({w}, {.lr = 0.1});
  {
    AutocastGuard bf16;
    sum(linear(x, w)).backward();
  }
  opt.step();
  CHECK(max_abs_diff(got(), expected()) == 0);
  // A forward, then the parameter changes and the copies are remade before its backward: the
  // copy the forward saved has moved, and backward says so instead of using the new one.
  Tensor y;
  {
    AutocastGuard bf16;
    y = sum(linear(x, w));
  }
  {
    NoGradGuard no_grad;
    w.add_(ones_like(w));
  }
  refresh_autocast_weights();
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("LinearBf16Backward"), Error);
}

TEST_CASE("autocast: mixed operands meet in bfloat16; without the guard they promote to float32" * gpu_only()) {
  const Tensor a = randn({4, 5}).to(Device::cuda()), b = randn({4, 5}).to(Device::cuda()).to(kBFloat16);
  CHECK(add(a, b).dtype() == kFloat32);  // promote_types (core/dtype.h)
  check_error([&] { matmul(a, b.t()); }, {"matmul", "float32", "bfloat16"});  // matmul does not promote
  AutocastGuard bf16;
  for (const Tensor& r : {add(a, b), sub(b, a), mul(a, b), div(b, add(a, 10.0)), matmul(a, b.t())})
    CHECK(r.dtype() == kBFloat16);
  // Two float32 operands stay float32; no-bfloat16 ops and the loss compute in float32.
  CHECK(add(a, a).dtype() == kFloat32);
  CHECK(rfft(b, 1).dtype() == kFloat32);
  // The filter-bank and lifting transforms take bfloat16 as it comes (float32 filters), float32 too.
  CHECK(legall53_forward(b, 1).first.dtype() == kBFloat16);
  CHECK(legall53_forward(a, 1).first.dtype() == kFloat32);
  CHECK(dwt(b, Wavelet("db2"), WaveletMode::Symmetric, 1).first.dtype() == kBFloat16);
  CHECK(dwt(a, Wavelet("db2"), WaveletMode::Symmetric, 1).first.dtype() == kFloat32);
  CHECK(idwt(b, a, Wavelet("db2"), WaveletMode::Symmetric, 1).dtype() == kBFloat16);
  const Tensor t = from_vector(std::vector<int64_t>{0, 1, 2, 3}).to(Device::cuda());
  CHECK(cross_entropy(b, t).dtype() == kFloat32);
}

TEST_CASE("autocast: layer norm of bfloat16 rows with float32 parameters" * gpu_only()) {
  manual_seed(2);
  const Tensor x = add(mul(randn({6, 50, 96}), 3.0), 1.5), w = randn({96}), b = randn({96});
  const Tensor seed = randn({6, 50, 96});
  Tensor xr = x.clone().requires_grad_(), wr = w.clone().requires_grad_(), br = b.clone().requires_grad_();
  sum(mul(layer_norm(xr, {96}, wr, br), seed)).backward();
  Tensor xg = x.to(Device::cuda()).requires_grad_(), wg = w.to(Device::cuda()).requires_grad_(),
         bg = b.to(Device::cuda()).requires_grad_();
  Tensor y;
  {
    AutocastGuard bf16;
    y = layer_norm(xg, {96}, wg, bg);
    sum(mul(y, seed.to(Device::cuda()))).backward();
  }
  CHECK(y.dtype() == kBFloat16);
  CHECK(wg.grad().dtype() == kFloat32);
  CHECK(bg.grad().dtype() == kFloat32);
  CHECK(rel_err(y, layer_norm(x, {96}, w, b)) < 1e-2);
  CHECK(rel_err(xg.grad(), xr.grad()) < 2e-2);
  CHECK(rel_err(wg.grad(), wr.grad()) < 1e-2);
  CHECK(rel_err(bg.grad(), br.grad()) < 1e-2);
}

TEST_CASE("autocast: attention in bfloat16, tensor-core and float32-copy head dims" * gpu_only()) {
  manual_seed(3);
  for (int64_t d : {64, 24}) {  // 64: the tensor-core kernels; 24: the exact path on copies
    INFO("head dim " << d);
    const Tensor q = randn({2, 3, 70, d}), k = randn({2, 3, 55, d}), v = randn({2, 3, 55, d});
    const Tensor seed = randn({2, 3, 70, d});
    AttentionOptions o;
    o.key_mask = gt(rand({2, 55}), scalar_tensor(0.2));
    Tensor qr = q.clone().requires_grad_(), kr = k.clone().requires_grad_(), vr = v.clone().requires_grad_();
    Tensor yr = attention(qr, kr, vr, o);
    sum(mul(yr, seed)).backward();
    Tensor qg = q.to(Device::cuda()).requires_grad_(), kg = k.to(Device::cuda()).requires_grad_(),
           vg = v.to(Device::cuda()).requires_grad_();
    AttentionOptions og = o;
    og.key_mask = o.key_mask.to(Device::cuda());
    Tensor yg;
    {
      AutocastGuard bf16;
      yg = attention(qg, kg, vg, og);
      sum(mul(yg, seed.to(Device::cuda()))).backward();
    }
    CHECK(yg.dtype() == kBFloat16);
    CHECK(qg.grad().dtype() == kFloat32);
    CHECK(rel_err(yg, yr) < 2e-2);
    CHECK(rel_err(qg.grad(), qr.grad()) < 3e-2);
    CHECK(rel_err(kg.grad(), kr.grad()) < 3e-2);
    CHECK(rel_err(vg.grad(), vr.grad()) < 3e-2);
  }
}

TEST_CASE("autocast: Transformer and WavSpA steps match float32 to bfloat16 accuracy" * gpu_only()) {
  for (const std::string arch : {"transformer", "wavspa"}) {
    INFO(arch);
    manual_seed(7);
    auto model = models::make_classifier(small_model(arch));
    model->to(Device::cuda());
    const Tensor ids = randint(1, 16, {4, 90}).to(Device::cuda());
    const Tensor labels = from_vector(std::vector<int64_t>{1, 3, 5, 7}).to(Device::cuda());
    // mode 0: float32; 1: bfloat16 products only (float32 tensors, MatmulPrecision::BFloat16);
    // 2: autocast (bfloat16 activations) on top of that, as --precision bf16 runs.
    // The whole model: loss and logits. Its gradients are not compared here: the classifier
    // head's ReLU makes them a step function of the features (with bfloat16 features a unit
    // near zero may switch on or off, and the gradient of every parameter below it jumps by
    // that unit's share; seen at batch 4: 2 of 512 units switched, 8% on the encoder's
    // gradients), so the encoder's gradients are compared under a smooth loss below.
    auto logits_of = [&](int mode) {
      MatmulPrecisionGuard products(mode > 0 ? MatmulPrecision::BFloat16 : MatmulPrecision::Float32);
      AutocastGuard guard(mode == 2);
      Tensor logits = model->forward(ids);
      Tensor loss = cross_entropy(logits, labels);
      return std::vector<Tensor>{loss.detach(), logits.detach().to(kFloat32)};
    };
    {
      NoGradGuard no_grad;
      const std::vector<Tensor> fp32 = logits_of(0), bf16 = logits_of(2);
      CHECK(fp32[0].dtype() == kFloat32);
      CHECK(bf16[0].dtype() == kFloat32);  // the loss is float32 under the guard
      CHECK(rel_err(bf16[0], fp32[0]) < 1e-2);
      CHECK(rel_err(bf16[1], fp32[1]) < 3e-2);
    }
    // The encoder (embedding, every block, the final norm) under loss = sum(features * r), r
    // fixed and random: mode 0 float32; 1 bfloat16 products only (float32 tensors,
    // MatmulPrecision::BFloat16); 2 autocast (bfloat16 activations) on top, as --precision
    // bf16 runs.
    const Tensor r = randn({4, 64}).to(Device::cuda());
    auto step = [&](int mode) {
      MatmulPrecisionGuard products(mode > 0 ? MatmulPrecision::BFloat16 : MatmulPrecision::Float32);
      AutocastGuard guard(mode == 2);
      model->zero_grad();
      Tensor features = model->encoder->forward(ids);
      REQUIRE(features.shape() == Shape{4, 64});
      Tensor loss = sum(mul(features.to(kFloat32), r));
      loss.backward();
      std::vector<Tensor> out{loss.detach()};
      for (const Tensor& p : model->encoder->parameters()) out.push_back(p.grad().clone());
      return out;
    };
    const std::vector<Tensor> fp32 = step(0), products = step(1), bf16 = step(2);
    CHECK(rel_err(bf16[0], fp32[0]) < 3e-2);
    // Every parameter's gradient is float32 (the master weights). The error against float32,
    // all gradients together (weighted by their norms), is of the order that bfloat16
    // products alone give: bfloat16 activations add roundings of the same size.
    const auto names = model->encoder->named_parameters();
    auto overall = [&](const std::vector<Tensor>& got, std::string* worst_name, double* worst) {
      double num = 0, den = 0;
      for (size_t i = 1; i < fp32.size(); ++i) {
        CHECK(got[i].dtype() == kFloat32);
        const double e = rel_err(got[i], fp32[i]);
        if (worst && e > *worst) *worst = e, *worst_name = names[i - 1].first;
        const double n2 = sum(mul(fp32[i], fp32[i])).item();
        num += e * e * n2, den += n2;
      }
      return std::sqrt(num / den);
    };
    double worst = 0;
    std::string worst_name;
    const double e_products = overall(products, nullptr, nullptr), e_autocast = overall(bf16, &worst_name, &worst);
    MESSAGE(arch << ": relative gradient error of the encoder, bfloat16 products " << e_products << ", autocast "
                 << e_autocast << " (worst parameter " << worst_name << ", " << worst << ")");
    CHECK(e_autocast < std::max(0.03, 2 * e_products));
    CHECK(worst < 0.25);
  }
}

TEST_CASE("determinism: a CUDA training step gives the same bits run after run (float32 and autocast)" * gpu_only()) {
  // Dropout on, padding in the batch (key masks), the embedding's index_add with repeated ids:
  // every kernel of the step must add in a fixed order. Three AdamW steps from one seed, twice.
  for (const std::string arch : {"transformer", "wavspa"})
    for (bool autocast : {false, true}) {
      INFO(arch << (autocast ? " autocast" : " float32"));
      models::ModelConfig c = small_model(arch);
      c.dropout = 0.1;
      c.attention_dropout = 0.1;
      std::vector<int64_t> id_values = randint(1, 16, {4 * 90}).to_vector<int64_t>();
      for (int64_t t = 70; t < 90; ++t) id_values[3 * 90 + t] = 0;  // one padded row
      const Tensor ids = from_vector(id_values, {4, 90}).to(Device::cuda());
      const Tensor labels = from_vector(std::vector<int64_t>{1, 3, 5, 7}).to(Device::cuda());
      auto run = [&] {
        manual_seed(21);
        auto model = models::make_classifier(c);
        model->to(Device::cuda());
        model->train();
        nn::AdamW opt(model->parameters(), {.lr = 1e-3});
        MatmulPrecisionGuard products(autocast ? MatmulPrecision::BFloat16 : MatmulPrecision::Float32);
        AutocastGuard guard(autocast);
        for (int step = 0; step < 3; ++step) {
          opt.zero_grad();
          cross_entropy(model->forward(ids), labels).backward();
          opt.step();
        }
        std::vector<std::vector<float>> params;
        for (const Tensor& p : model->parameters()) params.push_back(p.to(Device::cpu()).contiguous().to_vector<float>());
        return params;
      };
      const auto first = run(), second = run();
      REQUIRE(first.size() == second.size());
      size_t differing = 0;
      for (size_t i = 0; i < first.size(); ++i)
        differing += std::memcmp(first[i].data(), second[i].data(), first[i].size() * sizeof(float)) != 0;
      CHECK(differing == 0);
    }
}

TEST_CASE("determinism: CUDA index_add adds repeated indices in a fixed order" * gpu_only()) {
  manual_seed(9);
  for (DType dt : {kFloat32, kBFloat16}) {
    INFO(std::string(dtype_name(dt)));
    // 20000 sources into 7 rows (thousands per row), and into 3000 rows (a few each).
    for (int64_t rows : {7, 3000}) {
      const Tensor index = randint(0, rows, {20000}).to(Device::cuda());
      const Tensor src = randn({20000, 96}).to(dt == kBFloat16 ? kFloat32 : dt).to(Device::cuda()).to(dt);
      // index_select's gradient is the index_add of the incoming gradient (src here).
      auto grad_of = [&](Device device, DType type) {
        Tensor x = zeros({rows, 96}, type, device).requires_grad_();
        sum(mul(index_select(x, 0, index.to(device)), src.to(device).to(type))).backward();
        return x.grad().to(Device::cpu()).to(kFloat32).to_vector<float>();
      };
      const std::vector<float> a = grad_of(Device::cuda(), dt), b = grad_of(Device::cuda(), dt);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
      // And the sums are right: the CPU in float64 on the same values (a float32 CPU sum of
      // thousands of terms is itself off by ~1e-4 relative).
      const std::vector<float> w = grad_of(Device::cpu(), kFloat64);
      double worst = 0;
      for (size_t k = 0; k < w.size(); ++k) worst = std::max(worst, (double)std::abs(a[k] - w[k]) / (std::abs(w[k]) + 1.0));
      CHECK(worst < (dt == kBFloat16 ? 1e-2 : 1e-5));
    }
  }
}

#endif  // WAVSPA_CUDA

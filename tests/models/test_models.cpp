// models/: every architecture x attention x parametrization builds, runs and trains.
#include <cmath>

#include "models/factory.h"
#include "nn/optim.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;
using models::ModelConfig;

namespace {

ModelConfig tiny(const std::string& arch, const std::string& attention,
                 const std::string& param = "ada") {
  ModelConfig c;
  c.architecture = arch;
  c.attention = attention;
  c.parametrization = param;
  c.vocab_size = 12;
  c.num_classes = 3;
  c.max_len = 16;  // 17 positions with the CLS token: odd lengths at every level
  c.emb_dim = 8;
  c.num_heads = 2;
  c.num_layers = 1;
  c.qkv_dim = 8;
  c.mlp_dim = 16;
  c.classifier_mlp = 16;
  c.dropout = 0.0;
  c.attention_dropout = 0.0;
  c.levels = 2;
  c.wlen = 4;
  c.performer_features = 16;
  c.linformer_k = 8;
  c.local_window = 3;
  return c;
}

std::vector<ModelConfig> every_model() {
  std::vector<ModelConfig> out;
  const char* attentions[] = {"full", "linear", "performer", "linformer", "local"};
  for (const char* a : attentions) {
    out.push_back(tiny("transformer", a));
    out.push_back(tiny("fourier", a));
    for (const char* p : {"ada", "ortho", "lift", "adalift", "fixed"}) out.push_back(tiny("wavspa", a, p));
  }
  out.push_back(tiny("fnet", "full"));
  return out;
}

// Identity attention: lets a test see the wavelet path alone.
struct Identity : nn::SelfAttention {
  Identity() : SelfAttention("Identity") {}
  Tensor forward(const Tensor& x, const Tensor&, bool) override { return x; }
};

}  // namespace

TEST_CASE("models: every architecture x attention x parametrization: shapes and gradients") {
  manual_seed(1);
  Tensor ids = randint(1, 12, {3, 16});
  ids.set({2, 15}, 0);  // padding at the end of one sequence
  ids.set({2, 14}, 0);
  Tensor labels = from_vector(std::vector<int64_t>{0, 2, 1});
  for (const ModelConfig& c : every_model()) {
    INFO(str(c.architecture, " ", c.attention, " ", c.parametrization));
    auto model = models::make_classifier(c);
    Tensor logits = model->forward(ids);
    REQUIRE(logits.shape() == Shape{3, 3});
    cross_entropy(logits, labels).backward();
    for (auto& named : model->named_parameters()) {
      const Tensor& p = named.second;
      INFO(named.first);  // (clang 14 cannot capture a structured binding in INFO's lambda)
      REQUIRE(p.grad().defined());
      Tensor g = p.grad().to(kFloat64);
      CHECK(std::isfinite(sum(g).item()));
      CHECK(max(abs(g)).item() > 0);
    }
  }
}

TEST_CASE("models: dual encoder, pooling modes, and positions") {
  for (const char* pooling : {"cls", "mean", "max"}) {
    ModelConfig c = tiny("wavspa", "full");
    c.pooling = pooling;
    c.positions = "learned";
    c.dual = true;
    auto model = models::make_dual_encoder(c);
    Tensor a = randint(1, 12, {2, 16}), b = randint(1, 12, {2, 10});
    CHECK(model->forward(a, b).shape() == Shape{2, 3});
  }
  check_error([] { models::make_classifier([] { auto c = tiny("wavspa", "full"); c.dual = true; return c; }()); },
              {"dual encoder"});
}

TEST_CASE("models: per-token outputs (pooling none) and pixel inputs without a padding mask") {
  ModelConfig c = tiny("wavspa", "full");
  c.pooling = "none";
  auto model = models::make_classifier(c);
  model->eval();
  Tensor ids = randint(1, 12, {2, 9});
  CHECK(model->forward(ids).shape() == Shape{2, 9, 3});
  check_error([] { auto c = tiny("wavspa", "full"); c.pooling = "none"; c.dual = true; c.validate(); },
              {"dual encoder", "none"});

  // With the mask, id 0 is padding: a Transformer's pooled output does not depend on how
  // much of it follows the tokens. Without the mask (pixel tasks, where 0 is a black pixel)
  // every 0 is a token and the output changes.
  for (bool masked : {true, false}) {
    ModelConfig m = tiny("transformer", "full");
    m.pooling = "mean";
    m.mask_padding = masked;
    manual_seed(5);
    auto clf = models::make_classifier(m);
    clf->eval();
    Tensor short_pad = from_vector(std::vector<int64_t>{3, 4, 5, 0}, {1, 4});
    Tensor long_pad = from_vector(std::vector<int64_t>{3, 4, 5, 0, 0, 0, 0}, {1, 7});
    const double diff = max_abs_diff(clf->forward(short_pad), clf->forward(long_pad));
    if (masked)
      CHECK(diff < 1e-6);
    else
      CHECK(diff > 1e-4);
  }
}

TEST_CASE("models: gradcheck of a tiny WavSpA block in float64") {
  for (const char* p : {"ada", "ortho", "adalift"}) {
    INFO(p);
    models::WavSpAOptions o;
    o.dim = 4;
    o.mlp_dim = 6;
    o.max_len = 7;
    o.levels = 1;
    o.wlen = 4;
    o.parametrization = models::parametrization_from_name(p);
    manual_seed(3);
    models::WavSpABlock block(o, [](int64_t) { return std::make_shared<nn::MultiHeadSelfAttention>(4, 2); });
    block.to(kFloat64);
    Tensor mask = from_vector(std::vector<double>{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}, {2, 7});
    std::vector<Tensor> inputs{rn({2, 7, 4})};
    for (const Tensor& t : block.parameters()) inputs.push_back(t);
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return block.forward(in[0], mask); }, inputs);
    CHECK_MESSAGE(r.ok, r.message);
  }
}

TEST_CASE("models: with identity band attention the wavelet path reconstructs its input") {
  for (const char* p : {"ada", "ortho", "lift", "adalift", "fixed"}) {
    for (WaveletMode mode : {WaveletMode::Periodization, WaveletMode::Symmetric, WaveletMode::Zero}) {
      INFO(str(p, " ", wavelet_mode_name(mode)));
      models::WavSpAOptions o;
      o.dim = 5;
      o.mlp_dim = 8;
      o.max_len = 23;
      o.levels = 3;
      o.wlen = 6;
      o.mode = mode;
      o.parametrization = models::parametrization_from_name(p);
      models::WavSpABlock block(o, [](int64_t) { return std::make_shared<Identity>(); });
      block.to(kFloat64);
      if (block.filters.defined()) {  // the float32 db init, rounded, is orthogonal to 1e-7 only
        NoGradGuard no_grad;
        block.filters.copy_(Wavelet("db3").dec_lo.unsqueeze(1).expand({6, 5}));
      }
      Tensor h = randn({2, 23, 5}, kFloat64);
      CHECK(max_abs_diff(block.reconstruct(block.decompose(h), 23), h) < 1e-10);
      // the whole block: z = h exactly, so out = x + LN(x) + MLP(x + LN(x)) with h = LN(x)
      Tensor x = randn({2, 23, 5}, kFloat64);
      Tensor hx = block.norm->forward(x);
      Tensor expect = add(add(x, hx), block.mlp->forward(add(x, hx)));
      CHECK(max_abs_diff(block.forward(x, Tensor()), expect) < 1e-10);
    }
  }
}

TEST_CASE("models: each architecture overfits 32 fixed examples") {
  manual_seed(5);
  Tensor ids = randint(1, 12, {32, 16});
  Tensor labels = randint(0, 3, {32});
  for (const char* arch : {"transformer", "wavspa", "fourier", "fnet"}) {
    INFO(arch);
    ModelConfig c = tiny(arch, "full");
    c.emb_dim = 16;
    c.qkv_dim = 16;
    c.mlp_dim = 32;
    c.classifier_mlp = 32;
    auto model = models::make_classifier(c);
    nn::AdamW opt(model->parameters(), {.lr = 1e-2, .weight_decay = 0.0});
    double accuracy = 0;
    for (int step = 0; step < 300 && accuracy < 1.0; ++step) {
      Tensor logits = model->forward(ids);
      Tensor loss = cross_entropy(logits, labels);
      opt.zero_grad();
      loss.backward();
      opt.step();
      NoGradGuard no_grad;
      accuracy = mean(eq(argmax(logits, 1), labels).to(kFloat64)).item();
    }
    NoGradGuard no_grad;
    model->eval();
    CHECK(mean(eq(argmax(model->forward(ids), 1), labels).to(kFloat64)).item() == 1.0);
  }
}

TEST_CASE("models: the same seed gives the same weights and the same losses") {
  ModelConfig c = tiny("wavspa", "performer", "ortho");
  c.dropout = 0.1;
  auto run = [&] {
    auto model = models::make_classifier(c);
    nn::AdamW opt(model->parameters(), {.lr = 1e-3});
    manual_seed(77);
    Tensor ids = randint(1, 12, {4, 16});
    Tensor labels = randint(0, 3, {4});
    std::vector<double> losses;
    for (int i = 0; i < 5; ++i) {
      Tensor loss = cross_entropy(model->forward(ids), labels);
      opt.zero_grad();
      loss.backward();
      opt.step();
      losses.push_back(loss.item());
    }
    return std::pair{model->state_dict(), losses};
  };
  auto [w1, l1] = run();
  auto [w2, l2] = run();
  CHECK(l1 == l2);
  for (auto& [name, t] : w1) CHECK(max_abs_diff(t, w2[name]) == 0);
}

TEST_CASE("models: configs are validated with the valid values named") {
  check_error([] { ModelConfig::from_json(R"({"architecture": "wavspa", "layers": 3})"); },
              {"unknown keys [layers]", "num_layers"});
  check_error([] { ModelConfig::from_json(R"({"architecture": "rnn", "vocab_size": 2, "num_classes": 2, "max_len": 8})"); },
              {"architecture", "rnn", "transformer", "wavspa", "fourier", "fnet"});
  check_error([] { ModelConfig::from_json(R"({"architecture": "wavspa", "parametrization": "haar", "vocab_size": 2, "num_classes": 2, "max_len": 8})"); },
              {"parametrization 'haar'", "ada", "ortho", "lift", "adalift", "fixed"});
  check_error([] { ModelConfig::from_json(R"({"architecture": "fnet", "attention": "linear", "vocab_size": 2, "num_classes": 2, "max_len": 8})"); },
              {"fnet", "no attention"});
  check_error([] { ModelConfig::from_json(R"({"qkv_dim": 10, "num_heads": 3, "vocab_size": 2, "num_classes": 2, "max_len": 8})"); },
              {"qkv_dim 10", "num_heads 3"});
  check_error([] { ModelConfig::from_json("{"); }, {"invalid JSON"});
  ModelConfig c = ModelConfig::from_json(R"({"architecture": "wavspa", "vocab_size": 20, "num_classes": 10, "max_len": 64})");
  CHECK(ModelConfig::from_json(c.to_json()).to_json() == c.to_json());
}

TEST_CASE("models: every shipped config parses and builds") {
  for (const char* name : {"listops_wavspa", "listops_transformer", "text_wavspa", "text_transformer",
                           "retrieval_wavspa", "image_wavspa", "pathfinder_wavspa",
                           "listops_wavspa_small", "listops_transformer_small", "listops_fnet_small",
                           "cpu_wavspa", "cpu_transformer"}) {
    INFO(name);
    ModelConfig c = ModelConfig::from_file(std::string("configs/") + name + ".json");
    int64_t params = c.dual ? models::make_dual_encoder(c)->num_parameters()
                            : models::make_classifier(c)->num_parameters();
    CHECK(params > 1000);
  }
  check_error([] { ModelConfig::from_file("configs/none.json"); }, {"cannot open", "configs/none.json"});
}

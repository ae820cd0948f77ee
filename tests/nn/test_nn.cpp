// nn/: modules, layers, attention, initialisers.
#include <cmath>
#include <sstream>

#include "nn/attention.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;
using In = std::vector<Tensor>;

namespace {

// A two-level model for the Module tests.
struct Block : nn::Module {
  Block() : Module("Block") {
    fc = register_module("fc", std::make_shared<nn::Linear>(3, 2));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{2}));
    register_parameter("scale", &scale, ones({2}));
    register_buffer("count", &count, zeros({1}, kInt64));
  }
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::LayerNorm> norm;
  Tensor scale, count;
};

struct Model : nn::Module {
  Model() : Module("Model") {
    blocks = register_module("blocks", std::make_shared<nn::Sequential>());
    for (int i = 0; i < 2; ++i) {
      auto b = std::make_shared<Block>();
      own.push_back(b);
      register_module("block" + std::to_string(i), b);
    }
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.5));
  }
  std::shared_ptr<nn::Sequential> blocks;
  std::vector<std::shared_ptr<Block>> own;
  std::shared_ptr<nn::Dropout> drop;
};

// gradcheck of a module's forward in float64, in its input and every parameter.
template <typename F>
void check_module_grad(nn::Module& m, const Tensor& x, F forward) {
  m.to(kFloat64);
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return forward(in[0]); }, inputs);
  CHECK_MESSAGE(r.ok, r.message);
}

}  // namespace

TEST_CASE("nn: hierarchical names, parameter count, printing, train/eval") {
  Model m;
  auto names = m.named_parameters();
  std::vector<std::string> got;
  for (auto& [n, t] : names) got.push_back(n);
  CHECK(got == std::vector<std::string>{"block0.scale", "block0.fc.weight", "block0.fc.bias",
                                        "block0.norm.weight", "block0.norm.bias", "block1.scale",
                                        "block1.fc.weight", "block1.fc.bias", "block1.norm.weight",
                                        "block1.norm.bias"});
  CHECK(m.num_parameters() == 2 * (2 + 6 + 2 + 2 + 2));
  CHECK(m.named_buffers().size() == 2);
  CHECK(m.named_buffers()[1].first == "block1.count");
  std::string tree = m.repr();
  CHECK(tree.find("(block1): Block(") != std::string::npos);
  CHECK(tree.find("Linear(in=3, out=2, bias)") != std::string::npos);
  CHECK(tree.find("Dropout(p=0.5)") != std::string::npos);
  Tensor x = ones({4, 10});
  CHECK(m.is_training());
  m.eval();
  CHECK(!m.drop->is_training());
  CHECK(max_abs_diff(m.drop->forward(x), x) == 0);
  m.train();
  CHECK(max_abs_diff(m.drop->forward(x), x) > 0);
  for (auto& p : m.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("nn: state_dict round trip and strict loading names every mismatch") {
  Model a, b;
  auto state = a.state_dict();
  CHECK(state.size() == 12);
  b.load_state_dict(state);
  CHECK(max_abs_diff(b.own[1]->fc->weight, a.own[1]->fc->weight) == 0);
  // state_dict shares storage but carries no gradient history
  CHECK(!state["block0.fc.weight"].requires_grad());

  auto bad = state;
  bad.erase("block0.scale");
  bad["block9.extra"] = zeros({1});
  bad["block1.fc.weight"] = zeros({5, 5});
  Tensor before = b.own[0]->norm->weight.clone();
  check_error([&] { b.load_state_dict(bad); },
              {"Missing: [block0.scale]", "Unexpected: [block9.extra]",
               "block1.fc.weight (expected (2, 3), got (5, 5))"});
  CHECK(max_abs_diff(b.own[0]->norm->weight, before) == 0);  // nothing changed
  auto partial = state;
  partial.erase("block0.scale");
  b.load_state_dict(partial, /*strict=*/false);  // missing entries allowed when not strict
  check_error([&] { b.load_state_dict(bad, false); }, {"Wrong shape", "block1.fc.weight"});
}

TEST_CASE("nn: to(dtype) keeps leaves that require grad; zero_grad clears") {
  Block blk;
  blk.to(kFloat64);
  CHECK(blk.fc->weight.dtype() == kFloat64);
  CHECK(blk.fc->weight.requires_grad());
  CHECK(blk.fc->weight.is_leaf());
  CHECK(blk.count.dtype() == kInt64);  // integer buffers stay
  Tensor y = sum(blk.norm->forward(blk.fc->forward(ones({2, 3}, kFloat64))));
  y.backward();
  CHECK(blk.fc->weight.grad().defined());
  blk.zero_grad();
  CHECK(!blk.fc->weight.grad().defined());
}

TEST_CASE("nn: layers against their formulas") {
  nn::Linear lin(4, 3);
  Tensor x = randn({2, 5, 4});
  CHECK(max_abs_diff(lin.forward(x), add(matmul(x, lin.weight.t()), lin.bias)) < 1e-5);
  nn::Linear nob(4, 3, false);
  CHECK(!nob.bias.defined());
  CHECK(nob.parameters().size() == 1);
  // PyTorch's default init bound 1/sqrt(in)
  CHECK(max(abs(lin.weight)).item() <= 0.5);

  nn::LayerNorm ln(Shape{4});
  CHECK(max_abs_diff(ln.forward(x), layer_norm(x, {4})) < 1e-6);

  nn::Embedding emb(10, 3);
  Tensor ids = from_vector(std::vector<int64_t>{9, 0, 9}, {1, 3});
  Tensor e = emb.forward(ids);
  CHECK(e.shape() == Shape{1, 3, 3});
  CHECK(max_abs_diff(e.select(1, 0), emb.weight.narrow(0, 9, 1)) == 0);

  auto seq = nn::Sequential({std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>(),
                             std::make_shared<nn::Linear>(8, 2)});
  auto l0 = std::dynamic_pointer_cast<nn::Linear>(seq[0]), l2 = std::dynamic_pointer_cast<nn::Linear>(seq[2]);
  CHECK(max_abs_diff(seq.forward(x), l2->forward(relu(l0->forward(x)))) < 1e-6);
  CHECK(seq.named_parameters()[2].first == "2.weight");

  nn::MLP mlp(4, 16, 0.0);
  CHECK(max_abs_diff(mlp.forward(x), mlp.fc2->forward(gelu(mlp.fc1->forward(x)))) < 1e-6);

  nn::SinusoidalPositionEmbedding pe(50, 6);
  Tensor z = zeros({1, 7, 6});
  Tensor table = pe.forward(z);
  CHECK(table.at({0, 5, 0}) == doctest::Approx(std::sin(5.0)));
  CHECK(table.at({0, 5, 3}) == doctest::Approx(std::cos(5.0 / std::pow(10000.0, 2.0 / 6))));
  CHECK(pe.parameters().empty());
  check_error([&] { pe.forward(zeros({1, 51, 6})); }, {"SinusoidalPositionEmbedding", "N <= 50"});
  nn::LearnedPositionEmbedding lpe(50, 6);
  CHECK(max_abs_diff(lpe.forward(z).select(0, 0), lpe.weight.narrow(0, 0, 7)) == 0);
}

TEST_CASE("nn: attention equals a naive computation, with key and causal masks") {
  const int64_t B = 2, N = 5, D = 8, H = 2, dh = 4;
  nn::MultiHeadSelfAttention attn(D, H);
  attn.to(kFloat64);
  Tensor x = randn({B, N, D}, kFloat64);
  Tensor mask = from_vector(std::vector<int64_t>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {B, N});
  for (bool causal : {false, true}) {
    Tensor y = attn.forward(x, mask, causal);
    // naive: per batch, head, query
    Tensor qkv = attn.qkv->forward(x);  // (B, N, 3D)
    auto qv = qkv.to_vector<double>();
    auto mv = mask.to_vector<int64_t>();
    std::vector<double> ctx(B * N * D, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < N; ++i) {
          std::vector<double> s(N);
          double mx = -1e300;
          for (int64_t j = 0; j < N; ++j) {
            bool keep = mv[b * N + j] != 0 && (!causal || j <= i);
            double dot = 0;
            for (int64_t t = 0; t < dh; ++t)
              dot += qv[(b * N + i) * 3 * D + h * dh + t] * qv[(b * N + j) * 3 * D + D + h * dh + t];
            s[j] = keep ? dot / std::sqrt((double)dh) : -INFINITY;
            mx = std::max(mx, s[j]);
          }
          double z = 0;
          for (double& v : s) z += (v = std::exp(v - mx));
          for (int64_t j = 0; j < N; ++j)
            for (int64_t t = 0; t < dh; ++t)
              ctx[(b * N + i) * D + h * dh + t] += s[j] / z * qv[(b * N + j) * 3 * D + 2 * D + h * dh + t];
        }
    Tensor expected = attn.out->forward(from_vector(ctx, {B, N, D}));
    CHECK(max_abs_diff(y, expected) < 1e-12);
  }
  // a query with no key left attends uniformly instead of producing NaN
  Tensor none = zeros({B, N}, kInt64);
  Tensor y = attn.forward(x, none);
  CHECK(!std::isnan(sum(y).item()));
  check_error([&] { attn.forward(x, ones({B, N + 1})); }, {"key_mask", "(2, 5)", "(2, 6)"});
}

TEST_CASE("nn: attention dropout is seeded, applies only in training, and is the fused op's") {
  nn::MultiHeadSelfAttention attn(8, 2, -1, /*attn_dropout=*/0.3);
  attn.to(kFloat64);
  Tensor x = randn({2, 7, 8}, kFloat64);
  Tensor mask = from_vector(std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}, {2, 7});
  attn.eval();
  Tensor eval_y = attn.forward(x, mask);
  attn.train();
  manual_seed(4);
  Tensor a = attn.forward(x, mask);
  manual_seed(4);
  Tensor b = attn.forward(x, mask);
  CHECK(max_abs_diff(a, b) == 0);
  CHECK(max_abs_diff(a, eval_y) > 1e-3);
  // the same draw made by hand: the fused op with the module's projections
  auto parts = chunk(attn.qkv->forward(x), 3, -1);
  for (Tensor& t : parts) t = t.reshape({2, 7, 2, 4}).permute({0, 2, 1, 3});
  AttentionOptions o;
  o.key_mask = mask;
  o.dropout_p = 0.3;
  o.training = true;
  manual_seed(4);
  Tensor heads = attention(parts[0], parts[1], parts[2], o);
  Tensor by_hand = attn.out->forward(heads.permute({0, 2, 1, 3}).reshape({2, 7, 8}));
  CHECK(max_abs_diff(a, by_hand) == 0);
}

TEST_CASE("nn: separate q/k/v equals fused qkv with the same weights") {
  nn::MultiHeadSelfAttention fused(6, 3), sep(6, 3, -1, 0.0, true, /*fused=*/false);
  NoGradGuard no_grad;
  auto w = chunk(fused.qkv->weight, 3, 0);
  auto b = chunk(fused.qkv->bias, 3, 0);
  sep.q->weight.copy_(w[0]); sep.k->weight.copy_(w[1]); sep.v->weight.copy_(w[2]);
  sep.q->bias.copy_(b[0]); sep.k->bias.copy_(b[1]); sep.v->bias.copy_(b[2]);
  sep.out->weight.copy_(fused.out->weight);
  sep.out->bias.copy_(fused.out->bias);
  Tensor x = randn({2, 4, 6});
  CHECK(max_abs_diff(fused.forward(x, Tensor(), true), sep.forward(x, Tensor(), true)) < 1e-6);
}

TEST_CASE("nn: gradcheck of every layer in its input and parameters (float64)") {
  nn::Linear lin(3, 2);
  check_module_grad(lin, rn({2, 4, 3}), [&](const Tensor& x) { return lin.forward(x); });
  nn::LayerNorm ln(Shape{4});
  check_module_grad(ln, rn({3, 4}), [&](const Tensor& x) { return ln.forward(x); });
  nn::MLP mlp(3, 5);
  check_module_grad(mlp, rn({2, 3}), [&](const Tensor& x) { return mlp.forward(x); });
  nn::LearnedPositionEmbedding lpe(6, 3);
  check_module_grad(lpe, rn({2, 4, 3}), [&](const Tensor& x) { return lpe.forward(x); });
  nn::Embedding emb(5, 3);
  Tensor ids = from_vector(std::vector<int64_t>{4, 1, 4});
  check_module_grad(emb, rn({1}), [&](const Tensor& x) { return mul(emb.forward(ids), x); });
  nn::MultiHeadSelfAttention attn(4, 2, 6);
  Tensor mask = from_vector(std::vector<int64_t>{1, 1, 0, 1, 1, 1}, {2, 3});
  check_module_grad(attn, rn({2, 3, 4}), [&](const Tensor& x) { return attn.forward(x, mask, true); });
  nn::MultiHeadSelfAttention sep(4, 1, -1, 0.0, false, false);
  check_module_grad(sep, rn({1, 3, 4}), [&](const Tensor& x) { return sep.forward(x); });
}

TEST_CASE("nn: initialisers have their statistics and are seeded") {
  Tensor w = empty({256, 512});
  nn::init::xavier_uniform_(w);
  double a = std::sqrt(6.0 / (256 + 512));
  CHECK(max(abs(w)).item() <= a);
  CHECK(std::sqrt(var(w.reshape({-1}), {0}).item()) == doctest::Approx(a / std::sqrt(3.0)).epsilon(0.02));
  nn::init::kaiming_normal_(w);
  CHECK(std::sqrt(var(w.reshape({-1}), {0}).item()) == doctest::Approx(std::sqrt(2.0 / 512)).epsilon(0.02));
  nn::init::xavier_normal_(w, 2.0);
  CHECK(std::sqrt(var(w.reshape({-1}), {0}).item()) == doctest::Approx(2 * std::sqrt(2.0 / 768)).epsilon(0.02));
  nn::init::kaiming_uniform_(w, 0.0, /*fan_in=*/false);
  CHECK(max(abs(w)).item() <= std::sqrt(6.0 / 256));
  nn::init::trunc_normal_(w, 0.02);
  CHECK(max(abs(w)).item() <= 0.04);
  CHECK(std::sqrt(var(w.reshape({-1}), {0}).item()) == doctest::Approx(0.02 * 0.8796).epsilon(0.03));
  nn::init::zeros_(w);
  CHECK(max(abs(w)).item() == 0);
  nn::init::ones_(w);
  CHECK(min(w).item() == 1);
  Generator g1(5), g2(5);
  Tensor u = empty({100}), v = empty({100});
  nn::init::normal_(u, 0, 1, &g1);
  nn::init::normal_(v, 0, 1, &g2);
  CHECK(max_abs_diff(u, v) == 0);
  Tensor p = zeros({3}).requires_grad_();
  nn::init::normal_(p);  // allowed on parameters: runs without recording
  CHECK(p.is_leaf());
  CHECK(nn::init::fans(empty({8, 4, 3})) == std::pair<int64_t, int64_t>{12, 24});
}

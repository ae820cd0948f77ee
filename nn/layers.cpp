#include "nn/layers.h"

#include <cmath>

#include "nn/init.h"
#include "ops/factory.h"
#include "ops/linalg.h"
#include "ops/nn.h"

namespace wavspa::nn {

Linear::Linear(int64_t in, int64_t out, bool with_bias)
    : UnaryModule("Linear"), in_features(in), out_features(out) {
  WAVSPA_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in ", in, ", out ", out);
  const double bound = 1.0 / std::sqrt((double)in);
  register_parameter("weight", &weight, uniform({out, in}, -bound, bound));
  if (with_bias) register_parameter("bias", &bias, uniform({out}, -bound, bound));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return str("in=", in_features, ", out=", out_features, bias.defined() ? ", bias" : ", no bias");
}

LayerNorm::LayerNorm(Shape s, double e, bool affine)
    : UnaryModule("LayerNorm"), shape(std::move(s)), eps(e) {
  if (affine) {
    register_parameter("weight", &weight, ones(shape));
    register_parameter("bias", &bias, zeros(shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, shape, weight, bias, eps); }

std::string LayerNorm::extra_repr() const {
  return str(shape_str(shape), ", eps=", eps, weight.defined() ? ", affine" : "");
}

Embedding::Embedding(int64_t num, int64_t d) : Module("Embedding"), num_embeddings(num), dim(d) {
  WAVSPA_CHECK(num > 0 && d > 0, "Embedding: sizes must be positive, got ", num, " x ", d);
  register_parameter("weight", &weight, randn({num, d}));
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

std::string Embedding::extra_repr() const { return str(num_embeddings, ", ", dim); }

Dropout::Dropout(double prob) : UnaryModule("Dropout"), p(prob) {
  WAVSPA_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training()); }
Tensor Dropout::forward_add(const Tensor& base, const Tensor& x) { return dropout_add(base, x, p, is_training()); }

std::string Dropout::extra_repr() const { return str("p=", p); }

Sequential::Sequential(std::vector<std::shared_ptr<UnaryModule>> layers) : UnaryModule("Sequential") {
  for (auto& l : layers) push_back(std::move(l));
}

void Sequential::push_back(std::shared_ptr<UnaryModule> layer) {
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h);
  return h;
}

MLP::MLP(int64_t dim, int64_t hidden, double p, int64_t out) : UnaryModule("MLP") {
  fc1 = register_module("fc1", std::make_shared<Linear>(dim, hidden));
  drop1 = register_module("drop1", std::make_shared<Dropout>(p));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, out < 0 ? dim : out));
  drop2 = register_module("drop2", std::make_shared<Dropout>(p));
}

namespace {
// fc1's bias, GELU and drop1 as one op (bias_gelu): what the three compute, in one pass.
Tensor mlp_hidden(MLP& m, const Tensor& x) {
  return m.fc1->bias.defined() ? bias_gelu(linear(x, m.fc1->weight), m.fc1->bias, m.drop1->p, m.drop1->is_training())
                               : m.drop1->forward(gelu(m.fc1->forward(x)));
}
}  // namespace

Tensor MLP::forward(const Tensor& x) { return drop2->forward(fc2->forward(mlp_hidden(*this, x))); }

Tensor MLP::forward_add(const Tensor& base, const Tensor& x) {
  return drop2->forward_add(base, fc2->forward(mlp_hidden(*this, x)));
}

namespace {
void check_positions(const char* layer, const Tensor& x, int64_t max_len, int64_t dim) {
  WAVSPA_CHECK(x.dim() == 3 && x.shape()[2] == dim && x.shape()[1] <= max_len, layer,
               ": expected (B, N, ", dim, ") with N <= ", max_len, ", got ", shape_str(x.shape()));
}
}  // namespace

SinusoidalPositionEmbedding::SinusoidalPositionEmbedding(int64_t len, int64_t d)
    : UnaryModule("SinusoidalPositionEmbedding"), max_len(len), dim(d) {
  std::vector<double> pe(len * d);
  for (int64_t n = 0; n < len; ++n)
    for (int64_t i = 0; i < d; ++i) {
      double angle = (double)n / std::pow(10000.0, (double)(i - i % 2) / (double)d);
      pe[n * d + i] = i % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  register_buffer("table", &table, from_vector(pe, {len, d}).to(kFloat32));
}

Tensor SinusoidalPositionEmbedding::forward(const Tensor& x) {
  check_positions("SinusoidalPositionEmbedding", x, max_len, dim);
  return add(x, table.narrow(0, 0, x.shape()[1]).to(x.dtype()));
}

std::string SinusoidalPositionEmbedding::extra_repr() const { return str(max_len, ", ", dim); }

LearnedPositionEmbedding::LearnedPositionEmbedding(int64_t len, int64_t d)
    : UnaryModule("LearnedPositionEmbedding"), max_len(len), dim(d) {
  register_parameter("weight", &weight, mul(randn({len, d}), 0.02));
}

Tensor LearnedPositionEmbedding::forward(const Tensor& x) {
  check_positions("LearnedPositionEmbedding", x, max_len, dim);
  return add(x, weight.narrow(0, 0, x.shape()[1]));
}

std::string LearnedPositionEmbedding::extra_repr() const { return str(max_len, ", ", dim); }

}  // namespace wavspa::nn

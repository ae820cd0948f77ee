// Layers. Each is a Module with a `forward`; the ones that map one tensor to one tensor
// derive from UnaryModule, so that Sequential can chain them.
//
//   auto mlp = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::UnaryModule>>{
//       std::make_shared<nn::Linear>(16, 64), std::make_shared<nn::GELU>(),
//       std::make_shared<nn::Linear>(64, 4)});
//   Tensor y = mlp->forward(x);   // x: (..., 16)
//
// Shapes: B batch, N sequence, D model width.
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"
#include "ops/elementwise.h"

namespace wavspa::nn {

class UnaryModule : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

// y = x W^T + b. W: (out, in), b: (out). PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  bool decays(const std::string& name) const override { return name == "weight"; }
  int64_t in_features, out_features;
  Tensor weight, bias;  // bias undefined when disabled
};

// Normalises over the trailing `shape` dims; weight ones, bias zeros when affine.
class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(Shape shape, double eps = 1e-5, bool affine = true);
  // Over the last dim of size `dim`: torch.nn.LayerNorm(dim).
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true) : LayerNorm(Shape{dim}, eps, affine) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Shape shape;
  double eps;
  Tensor weight, bias;
};

// Rows of a (num, dim) table; weight ~ N(0, 1) as PyTorch. forward takes integer ids.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim);
  Tensor forward(const Tensor& ids);
  std::string extra_repr() const override;
  int64_t num_embeddings, dim;
  Tensor weight;
};

// Zeroes with probability p while training (Philox mask); identity in eval().
class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p);
  Tensor forward(const Tensor& x) override;
  // base + forward(x) as one op (dropout_add): a residual connection after dropout.
  Tensor forward_add(const Tensor& base, const Tensor& x);
  std::string extra_repr() const override;
  double p;
};

class GELU : public UnaryModule {
 public:
  explicit GELU(GeluApprox approximate = GeluApprox::None)
      : UnaryModule("GELU"), approximate(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate); }
  GeluApprox approximate;
};

class ReLU : public UnaryModule {
 public:
  ReLU() : UnaryModule("ReLU") {}
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class Sequential : public UnaryModule {
 public:
  explicit Sequential(std::vector<std::shared_ptr<UnaryModule>> layers = {});
  void push_back(std::shared_ptr<UnaryModule> layer);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  std::shared_ptr<UnaryModule> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<UnaryModule>> layers_;
};

// The Transformer MLP block: Dense(dim -> hidden) -> GELU -> Dropout -> Dense(hidden -> out)
// -> Dropout. out defaults to dim.
class MLP : public UnaryModule {
 public:
  MLP(int64_t dim, int64_t hidden, double dropout = 0.0, int64_t out = -1);
  Tensor forward(const Tensor& x) override;
  // base + forward(x), the last dropout and the add as one op (a residual block's MLP half).
  Tensor forward_add(const Tensor& base, const Tensor& x);
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<Dropout> drop1, drop2;
};

// Adds pe[n, 2i] = sin(n / 10000^(2i / D)), pe[n, 2i + 1] = cos(...) to x (B, N, D), N <= max_len.
class SinusoidalPositionEmbedding : public UnaryModule {
 public:
  SinusoidalPositionEmbedding(int64_t max_len, int64_t dim);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t max_len, dim;
  Tensor table;  // buffer (max_len, D)
};

// Adds a learned (max_len, D) table (init N(0, 0.02^2)) to x (B, N, D), N <= max_len.
class LearnedPositionEmbedding : public UnaryModule {
 public:
  LearnedPositionEmbedding(int64_t max_len, int64_t dim);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t max_len, dim;
  Tensor weight;
};

}  // namespace wavspa::nn

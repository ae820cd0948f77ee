// What autograd keeps per tensor. core's TensorImpl holds a pointer to it and nothing more.
#pragma once

#include <memory>

#include "autograd/node.h"

namespace wavspa::autograd {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                          // leaves only
  std::shared_ptr<Node> grad_fn;        // null for leaves
  std::shared_ptr<Node> accumulator;    // leaves only, made on first use
};

// The node that gradients for `t` flow into: its grad_fn, or its leaf accumulator, or null
// if `t` does not require grad.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

}  // namespace wavspa::autograd

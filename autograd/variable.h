// What autograd keeps per tensor. core's TensorImpl holds a pointer to it and nothing more.
//
//   Tensor w = randn({3}).requires_grad_();
//   autograd::Edge e = autograd::gradient_edge(mul(w, 2.0));   // the MulBackward node, slot 0
//   autograd::gradient_edge(w).node->name();                   // w is a leaf: its AccumulateGrad
#pragma once

#include <memory>

#include "autograd/node.h"

namespace wavspa::autograd {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                          // leaves only
  std::shared_ptr<Node> grad_fn;        // null for leaves
  int output_slot = 0;                  // which of grad_fn's outputs this tensor is
  std::shared_ptr<Node> accumulator;    // leaves only, made on first use
};

// Where gradients for `t` flow: its grad_fn (and which of its outputs `t` is), or its leaf
// accumulator, or a null edge if `t` does not require grad.
Edge gradient_edge(const Tensor& t);

}  // namespace wavspa::autograd

// How an op records itself for backward:
//
//   Tensor out = ...forward...;
//   if (autograd::needs_grad({a, b}))
//     autograd::record("MulBackward", {a, b}, out, [a, b](const Tensor& g) {
//       return std::vector<Tensor>{mul(g, b), mul(g, a)};
//     });
//
// The closure returns one gradient per input, in order, each with its input's shape (or
// undefined). It runs with grad mode off. Capture `out` only as out.detach(): a node that
// holds its own output would keep itself alive.
#pragma once

#include <initializer_list>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace wavspa::autograd {

// True when grad mode is on and some input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Makes `output` a non-leaf that requires grad, with a FunctionNode for backward.
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output, BackwardFn fn);

}  // namespace wavspa::autograd

// How an op records itself for backward:
//
//   Tensor out = mul(a.detach(), b.detach());   // the forward (in ops/: the backend's kernel)
//   if (autograd::needs_grad({a, b})) {
//     Tensor da = a.detach(), db = b.detach();
//     autograd::record("MulBackward", {a, b}, out, {da, db}, [da, db](const Tensor& g) {
//       return std::vector<Tensor>{mul(g, db), mul(g, da)};
//     });
//   }
//
// The closure returns one gradient per input, in order, each with its input's shape (or
// undefined). It runs with grad mode off. Capture `out` only as out.detach(): a node that
// holds its own output would keep itself alive.
//
// `saved` lists every tensor whose values the closure reads (`{}` when it reads none, as
// AddBackward). record() notes each one's version (StorageImpl::version); if an in-place
// write changes one before the backward runs, the node refuses to run and names itself,
// instead of computing a gradient from the new values. A tensor the closure captures only
// for its shape need not be listed. The op table's test "op table: in-place changes after
// the forward" overwrites every input and the output of every op to check these lists.
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
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            const std::vector<Tensor>& saved, BackwardFn fn);

// An op with several outputs records one node for all of them: its closure gets one gradient
// per output, in order, undefined for an output that none reached (it runs once any has one).
// Outputs made as separate tensors need no views of a stacked one, whose gradient would be
// assembled from zeros and copies (see ops/wavelet_primitives.cpp's analysis).
void record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
            const std::vector<Tensor>& saved, MultiBackwardFn fn);

}  // namespace wavspa::autograd

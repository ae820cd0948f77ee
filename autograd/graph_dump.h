// The autograd graph behind a tensor, as Graphviz DOT: what backward() from it would run.
//
//   Tensor loss = cross_entropy(model->forward(x), y);
//   autograd::write_dot(loss, "step.dot", model->named_parameters());
//   // $ dot -Tsvg step.dot -o step.svg
//
// One DOT node per graph node. A backward node shows its name, the shape, dtype and device of
// the tensor its forward op made, and the bytes of the tensors it saved for backward (what the
// graph keeps alive until backward frees it). A leaf's AccumulateGrad is a box named after
// the parameter where `names` knows it. Edges point the way the forward ran, from an input's
// node to the node of the op that used it, so the root is the one node without an outgoing edge.
// Dump before backward(): afterwards the saved tensors are gone (unless retain_graph).
#pragma once

#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace wavspa::autograd {

void dump_dot(const Tensor& root, std::ostream& os,
              const std::vector<std::pair<std::string, Tensor>>& names = {});
// The same into a file, written atomically; a wavspa::Error names the file if that fails.
void write_dot(const Tensor& root, const std::string& path,
               const std::vector<std::pair<std::string, Tensor>>& names = {});

}  // namespace wavspa::autograd

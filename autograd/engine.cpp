// The backward engine: a topological sweep from the root.
//
// 1. Collect the nodes reachable from the root and count, for each, how many edges point at
//    it (its dependencies).
// 2. Run nodes whose dependencies are all satisfied, starting from the root with the seed.
//    A node's incoming gradients are summed before it runs, so a tensor used twice (a
//    diamond) gets one gradient, the sum of both paths.
// 3. Unless retain_graph, each node drops its saved tensors after running.
// With anomaly detection on (autograd/grad_mode.h), every gradient is checked as it is made.
// While a Profiler records (core/profiler.h), the pass and each node are scopes of its trace,
// and the ops a node runs nest inside the node.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "autograd/grad_mode.h"
#include "autograd/variable.h"
#include "core/profiler.h"

namespace wavspa {

namespace {
// Anomaly detection's test: a NaN or an Inf anywhere makes the float64 sum non-finite (and a
// float64 sum of float32 values cannot overflow).
bool all_finite(const Tensor& t) { return t.numel() == 0 || std::isfinite(t.to(kFloat64).sum().item()); }
}  // namespace

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  WAVSPA_CHECK(requires_grad(), "backward: this tensor (", describe(), ") does not require "
               "grad; did you forget requires_grad_() on an input, or run under NoGradGuard?");
  Tensor seed = gradient;
  if (!seed.defined()) {
    WAVSPA_CHECK(numel() == 1, "backward: a non-scalar tensor of shape ", shape_str(shape()),
                 " needs a gradient argument of the same shape (backward() alone works only "
                 "for one-element tensors such as a loss)");
    seed = Tensor::empty(shape(), dtype(), device());
    seed.fill_(1.0);
  }
  WAVSPA_CHECK(seed.shape() == shape(), "backward: gradient of shape ", shape_str(seed.shape()),
               " for a tensor of shape ", shape_str(shape()));
  WAVSPA_CHECK(seed.dtype() == dtype() && seed.device() == device(), "backward: gradient is ",
               seed.describe(), " but the tensor is ", describe());
  NoGradGuard no_grad;
  ProfileScope pass("backward", *this, ProfileKind::BackwardPass);
  const bool detect = autograd::anomaly_enabled();
  WAVSPA_CHECK(!detect || all_finite(seed), "backward (anomaly detection): the gradient backward() starts from "
               "is not finite (NaN or Inf); the loss itself is: ", describe());

  const autograd::Edge root = autograd::gradient_edge(*this);
  // 1. number the reachable nodes (a walk down a growing list, no recursion: graphs can be
  //    deep) and count each one's dependencies. From here on a node is its number, and the
  //    per-node state lives in vectors, not in hash maps looked up at every edge.
  std::unordered_map<autograd::Node*, int> index;
  std::vector<autograd::Node*> nodes{root.get()};
  std::vector<int> deps{0};
  index.reserve(1024);
  index.emplace(root.get(), 0);
  // Node i's edges are target[first_edge[i] + e], the number of the node edge e leads to
  // (-1: none).
  std::vector<int> target, first_edge;
  for (size_t i = 0; i < nodes.size(); ++i) {
    autograd::Node* n = nodes[i];
    first_edge.push_back((int)target.size());
    for (const autograd::Edge& next : n->next) {
      if (!next) {
        target.push_back(-1);
        continue;
      }
      auto [it, inserted] = index.try_emplace(next.get(), (int)nodes.size());
      if (inserted) {
        nodes.push_back(next.get());
        deps.push_back(0);
      }
      ++deps[it->second];
      target.push_back(it->second);
    }
  }
  // 2. run nodes as their last dependency is met; pending holds one gradient per output
  std::vector<std::vector<Tensor>> pending(nodes.size());
  auto slots = [&](int i) -> std::vector<Tensor>& {
    std::vector<Tensor>& s = pending[i];
    if (s.empty()) s.resize(nodes[i]->num_outputs());
    return s;
  };
  slots(0)[root.slot] = seed;
  std::vector<int> ready{0};
  while (!ready.empty()) {
    const int i = ready.back();
    ready.pop_back();
    autograd::Node* n = nodes[i];
    std::vector<Tensor> incoming = std::move(pending[i]);
    pending[i] = {};
    bool any = false;
    for (const Tensor& g : incoming) any = any || g.defined();
    std::vector<Tensor> grads;
    if (any) {
      const Tensor& first = *std::find_if(incoming.begin(), incoming.end(),
                                          [](const Tensor& g) { return g.defined(); });
      ProfileScope scope(n->name(), first, ProfileKind::BackwardNode);
      const double saved = scope ? n->saved_bytes() : 0;  // before apply: a node may drop them
      grads = n->apply_all(incoming);
      if (scope) {
        double read = saved, written = 0;
        for (const Tensor& g : incoming) read += bytes_of(g);
        for (const Tensor& g : grads) written += bytes_of(g);
        scope.set_io(read, written);  // FLOPs: those of the ops it ran
      }
    }
    if (detect)  // the first node whose output is not finite, with a finite gradient coming in
      for (size_t k = 0; k < grads.size(); ++k)
        WAVSPA_CHECK(!grads[k].defined() || all_finite(grads[k]), "backward (anomaly detection): ", n->name(),
                     " returned a gradient with NaN or Inf for its input ", k, " (", grads[k].describe(),
                     ") from a finite incoming gradient: that op's backward, or a value its forward saved, made it");
    if (!retain_graph) n->release();
    for (size_t e = 0; e < n->next.size(); ++e) {
      const int next = target[first_edge[i] + e];
      if (next < 0) continue;
      if (e < grads.size() && grads[e].defined()) {
        Tensor& slot = slots(next)[n->next[e].slot];
        if (!slot.defined()) {
          slot = grads[e];
        } else if (slot.dtype() == grads[e].dtype()) {
          // Out of place (the first gradient may alias a tensor someone else holds), one pass.
          slot = slot.sum_with(grads[e]);
        } else {
          Tensor sum = slot.clone();  // clone() is always a fresh contiguous tensor
          sum.add_(grads[e]);         // converts grads[e] to the slot's dtype
          slot = sum;
        }
      }
      if (--deps[next] == 0) ready.push_back(next);
    }
  }
}

}  // namespace wavspa

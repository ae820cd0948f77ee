// The graph. Every op output that requires grad points (through its AutogradMeta) at the
// Node that made it; a Node points at the Nodes of its inputs (its edges). Leaves that
// require grad get an AccumulateGrad node that adds incoming gradients into .grad().
//
// Ops record nodes through autograd::record() (autograd/function.h); the engine
// (autograd/engine.cpp) walks them in reverse topological order.
//
//   Tensor x = randn({3}).requires_grad_();
//   Tensor y = sum(mul(x, x));
//   std::shared_ptr<autograd::Node> n = autograd::gradient_edge(y).node;   // autograd/variable.h
//   n->name();                                                             // "SumBackward"
//   n->next[0].node->name();                                               // "MulBackward", its input's
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wavspa::autograd {

class Node;

// Where a gradient goes: the node that made an input, and which of that node's outputs the
// input is (ops with several outputs, such as the wavelet analysis's bands, have one node).
struct Edge {
  std::shared_ptr<Node> node;  // null where the input needs no gradient
  int slot = 0;
  explicit operator bool() const { return node != nullptr; }
  Node* get() const { return node.get(); }
};

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  // Frees a long chain of nodes iteratively: the default recursive destruction would
  // overflow the stack on graphs tens of thousands of nodes deep.
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Gradients w.r.t. each input (one per edge; undefined where none flows).
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  // Nodes of ops with several outputs take one gradient per output, undefined for an output
  // no gradient reached (the engine runs a node once any of them has one).
  virtual int num_outputs() const { return 1; }
  virtual std::vector<Tensor> apply_all(const std::vector<Tensor>& grad_outputs) {
    return apply(grad_outputs[0]);
  }
  // Drops what backward saved; a later apply() must then fail clearly.
  virtual void release() {}
  virtual bool released() const { return false; }

  const std::string& name() const { return name_; }
  // One edge per input; null where the input needs no gradient.
  std::vector<Edge> next;

  // What the forward op made: record() sets it from the op's output, the first one of several
  // (an AccumulateGrad leaves it empty; its leaf() says). Graph dumps read it; backward never does.
  struct Output {
    Shape shape;
    DType dtype = kFloat32;
    Device device;
  };
  Output output;
  // Bytes of the tensors kept for backward (0 once released): graph dumps and the profiler.
  virtual double saved_bytes() const { return 0; }

 private:
  std::string name_;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
using MultiBackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

// A tensor a backward closure reads, and the version its storage had when it was saved.
struct SavedVersion {
  Tensor tensor;  // a handle only: for the check and the message
  uint64_t version = 0;
};

// A node whose backward is a closure; the closure's captures are the saved tensors. An op with
// one output records a BackwardFn; one with several, a MultiBackwardFn.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn, std::vector<Shape> input_shapes,
               std::vector<SavedVersion> saved)
      : Node(std::move(name)), fn_(std::move(fn)), input_shapes_(std::move(input_shapes)),
        saved_(std::move(saved)) {}
  FunctionNode(std::string name, MultiBackwardFn fn, int outputs, std::vector<Shape> input_shapes,
               std::vector<SavedVersion> saved)
      : Node(std::move(name)), multi_fn_(std::move(fn)), outputs_(outputs),
        input_shapes_(std::move(input_shapes)), saved_(std::move(saved)) {}
  // Refuses (wavspa::Error naming this node) if a saved tensor changed in place since.
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  int num_outputs() const override { return outputs_; }
  std::vector<Tensor> apply_all(const std::vector<Tensor>& grad_outputs) override;
  void release() override {
    fn_ = nullptr;
    multi_fn_ = nullptr;
    saved_.clear();
    released_ = true;
  }
  bool released() const override { return released_; }
  double saved_bytes() const override;

 private:
  void check_runnable() const;
  std::vector<Tensor> checked(std::vector<Tensor> grads) const;

  BackwardFn fn_;             // one output
  MultiBackwardFn multi_fn_;  // several
  int outputs_ = 1;
  std::vector<Shape> input_shapes_;  // to check every gradient a closure returns
  std::vector<SavedVersion> saved_;
  bool released_ = false;
};

// The sink for a leaf: adds the gradient into leaf.grad() (set on first arrival).
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf)
      : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  // The leaf, or an undefined tensor once it is gone.
  Tensor leaf() const;

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

}  // namespace wavspa::autograd

// Tensor's autograd methods, grad mode, and recording.
#include "autograd/variable.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "core/profiler.h"

namespace wavspa {
namespace autograd {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<bool>& anomaly_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("WAVSPA_DETECT_ANOMALY");
    return env != nullptr && std::string(env) == "1";
  }()};
  return flag;
}
}  // namespace

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }
bool anomaly_enabled() { return anomaly_flag().load(); }
void set_anomaly_enabled(bool on) { anomaly_flag().store(on); }

Edge gradient_edge(const Tensor& t) {
  if (!t.defined()) return {};
  auto& meta = t.impl().autograd;
  if (!meta || !meta->requires_grad) return {};
  if (meta->grad_fn) return {meta->grad_fn, meta->output_slot};
  if (!meta->accumulator) meta->accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return {meta->accumulator, 0};
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

namespace {

std::vector<SavedVersion> saved_versions(const char* name, const std::vector<Tensor>& saved,
                                         const std::vector<Tensor*>& outputs) {
  std::vector<SavedVersion> versions;
  versions.reserve(saved.size());
  for (const Tensor& t : saved) {
    if (!t.defined()) continue;
    for (const Tensor* o : outputs)
      WAVSPA_ASSERT(!t.is_same(*o), name, " saves its own output: save output.detach(), or the "
                    "node would keep itself alive");
    versions.push_back({t, t.version()});
  }
  return versions;
}

std::vector<Shape> input_shapes(const std::vector<Tensor>& inputs) {
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (const Tensor& t : inputs) shapes.push_back(t.defined() ? t.shape() : Shape{});
  return shapes;
}

// Wires a new node: edges to the inputs' nodes, and output i made by slot i of it.
void attach(const std::shared_ptr<FunctionNode>& node, const std::vector<Tensor>& inputs,
            const std::vector<Tensor*>& outputs) {
  for (const Tensor& t : inputs) node->next.push_back(gradient_edge(t));
  node->output = {outputs[0]->shape(), outputs[0]->dtype(), outputs[0]->device()};
  for (size_t i = 0; i < outputs.size(); ++i) {
    auto meta = std::make_shared<AutogradMeta>();
    meta->requires_grad = true;
    meta->grad_fn = node;
    meta->output_slot = (int)i;
    outputs[i]->impl().autograd = std::move(meta);
  }
}

}  // namespace

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            const std::vector<Tensor>& saved, BackwardFn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn), input_shapes(inputs),
                                             saved_versions(name, saved, {&output}));
  attach(node, inputs, {&output});
}

void record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
            const std::vector<Tensor>& saved, MultiBackwardFn fn) {
  WAVSPA_ASSERT(!outputs.empty(), name, " records no outputs");
  std::vector<Tensor*> outs;
  for (Tensor& o : outputs) {
    for (const Tensor* p : outs)
      WAVSPA_ASSERT(!o.is_same(*p), name, ": one tensor given twice as an output");
    outs.push_back(&o);
  }
  auto node = std::make_shared<FunctionNode>(name, std::move(fn), (int)outputs.size(),
                                             input_shapes(inputs), saved_versions(name, saved, outs));
  attach(node, inputs, outs);
}

Node::~Node() {
  std::vector<std::shared_ptr<Node>> doomed;
  for (Edge& e : next) doomed.push_back(std::move(e.node));
  while (!doomed.empty()) {
    std::shared_ptr<Node> n = std::move(doomed.back());
    doomed.pop_back();
    // If we hold the last reference, take its edges before it dies, so that its own
    // destructor finds nothing to recurse into.
    if (n && n.use_count() == 1)
      for (Edge& e : n->next) doomed.push_back(std::move(e.node));
  }
}

void FunctionNode::check_runnable() const {
  WAVSPA_CHECK(!released_, "backward: the graph through ", name(),
               " was already freed by an earlier backward(); pass retain_graph = true to the "
               "first backward() to run backward through it twice");
  for (size_t i = 0; i < saved_.size(); ++i) {
    const SavedVersion& s = saved_[i];
    WAVSPA_CHECK(s.tensor.version() == s.version, "backward: ", name(), " cannot run: tensor ", i + 1,
                 " of the ", saved_.size(), " it saved for backward (", s.tensor.describe(),
                 ") was modified by an in-place operation after the forward (its storage is at "
                 "version ", s.tensor.version(), ", it was saved at version ", s.version,
                 "), so the gradient would be computed from the wrong values; change a clone() "
                 "instead, or use the out-of-place op");
  }
}

std::vector<Tensor> FunctionNode::checked(std::vector<Tensor> grads) const {
  WAVSPA_ASSERT(grads.size() == input_shapes_.size(), name(), " returned ", grads.size(),
                " gradients for ", input_shapes_.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i)
    WAVSPA_ASSERT(!grads[i].defined() || grads[i].shape() == input_shapes_[i], name(),
                  ": gradient ", i, " has shape ", shape_str(grads[i].shape()),
                  ", its input has shape ", shape_str(input_shapes_[i]));
  return grads;
}

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
  return apply_all({grad_output});
}

std::vector<Tensor> FunctionNode::apply_all(const std::vector<Tensor>& grad_outputs) {
  check_runnable();
  WAVSPA_ASSERT((int)grad_outputs.size() == outputs_, name(), " has ", outputs_,
                " outputs but got ", grad_outputs.size(), " gradients");
  return checked(multi_fn_ ? multi_fn_(grad_outputs) : fn_(grad_outputs[0]));
}

double FunctionNode::saved_bytes() const {
  double bytes = 0;
  for (const SavedVersion& s : saved_) bytes += bytes_of(s.tensor);
  return bytes;
}

Tensor AccumulateGrad::leaf() const {
  auto impl = leaf_.lock();
  return impl ? Tensor(impl) : Tensor();
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_output) {
  auto impl = leaf_.lock();
  if (!impl) return {};  // the leaf is gone; nobody can read its gradient
  Tensor leaf(impl);
  auto& meta = impl->autograd;
  if (!meta->grad.defined()) {
    // The gradient becomes the leaf's own. When nothing else holds grad_output or its bytes
    // (the fresh result of a backward formula, held only by the engine), it is taken as it
    // is, as PyTorch steals it; otherwise (a gradient shared with other leaves or with the
    // caller, or a view into a larger buffer) the leaf gets a private contiguous copy.
    const auto& in = grad_output.impl_ptr();
    const bool sole = in.use_count() == 1 && in->storage.use_count() == 1 && !in->autograd &&
                      grad_output.is_contiguous() && in->offset == 0 &&
                      in->storage->nbytes() == (size_t)grad_output.numel() * grad_output.element_size();
    meta->grad = sole ? grad_output : grad_output.clone();  // clone() is always contiguous
  } else {
    meta->grad.add_(grad_output);
  }
  return {};
}

}  // namespace autograd

using autograd::AutogradMeta;

bool Tensor::requires_grad() const {
  auto& meta = impl().autograd;
  return meta && meta->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  auto& meta = impl().autograd;
  WAVSPA_CHECK(!(meta && meta->grad_fn), "requires_grad_: only leaf tensors can change "
               "requires_grad; this one was made by ", meta->grad_fn->name(),
               " (use .detach() to make a new leaf)");
  WAVSPA_CHECK(!on || is_floating(dtype()), "requires_grad_: only floating tensors can require "
               "grad, got ", dtype_name(dtype()));
  if (!meta) meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  auto& meta = impl().autograd;
  return meta ? meta->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) {
  WAVSPA_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: gradient shape ",
               shape_str(grad.shape()), " does not match tensor shape ", shape_str(shape()));
  auto& meta = impl().autograd;
  if (!meta) meta = std::make_shared<AutogradMeta>();
  meta->grad = grad;
}

void Tensor::zero_grad() {
  auto& meta = impl().autograd;
  if (meta) meta->grad = Tensor();
}

Tensor& Tensor::set_data(const Tensor& value) {
  WAVSPA_CHECK(value.defined(), "set_data: the new value is undefined");
  WAVSPA_CHECK(is_leaf(), "set_data: only a leaf can take new data; this tensor was made by ",
               grad_fn_name(), " (detach it first)");
  WAVSPA_CHECK(!requires_grad() || is_floating(value.dtype()), "set_data: a tensor that requires "
               "grad needs floating data, got ", dtype_name(value.dtype()));
  TensorImpl& me = impl();
  const TensorImpl& src = value.impl();
  const bool same_kind = me.shape == src.shape && me.dtype == src.dtype &&
                         me.storage->device() == src.storage->device();
  me.storage = src.storage;
  me.shape = src.shape;
  me.strides = src.strides;
  me.offset = src.offset;
  me.dtype = src.dtype;
  if (me.autograd && !same_kind) me.autograd->grad = Tensor();  // it no longer fits
  return *this;
}

bool Tensor::is_leaf() const {
  auto& meta = impl().autograd;
  return !meta || !meta->grad_fn;
}

std::string Tensor::grad_fn_name() const {
  auto& meta = impl().autograd;
  return meta && meta->grad_fn ? meta->grad_fn->name() : "";
}

}  // namespace wavspa

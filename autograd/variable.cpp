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

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  auto& meta = t.impl().autograd;
  if (!meta || !meta->requires_grad) return nullptr;
  if (meta->grad_fn) return meta->grad_fn;
  if (!meta->accumulator) meta->accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return meta->accumulator;
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

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            const std::vector<Tensor>& saved, BackwardFn fn) {
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (const Tensor& t : inputs) shapes.push_back(t.defined() ? t.shape() : Shape{});
  std::vector<SavedVersion> versions;
  versions.reserve(saved.size());
  for (const Tensor& t : saved) {
    if (!t.defined()) continue;
    WAVSPA_ASSERT(!t.is_same(output), name, " saves its own output: save output.detach(), or the "
                  "node would keep itself alive");
    versions.push_back({t, t.version()});
  }
  auto node = std::make_shared<FunctionNode>(name, std::move(fn), std::move(shapes), std::move(versions));
  for (const Tensor& t : inputs) node->next.push_back(gradient_edge(t));
  node->output = {output.shape(), output.dtype(), output.device()};
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  output.impl().autograd = std::move(meta);
}

Node::~Node() {
  std::vector<std::shared_ptr<Node>> doomed = std::move(next);
  while (!doomed.empty()) {
    std::shared_ptr<Node> n = std::move(doomed.back());
    doomed.pop_back();
    // If we hold the last reference, take its edges before it dies, so that its own
    // destructor finds nothing to recurse into.
    if (n && n.use_count() == 1)
      for (auto& e : n->next) doomed.push_back(std::move(e));
  }
}

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
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
  std::vector<Tensor> grads = fn_(grad_output);
  WAVSPA_ASSERT(grads.size() == input_shapes_.size(), name(), " returned ", grads.size(),
                " gradients for ", input_shapes_.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i)
    WAVSPA_ASSERT(!grads[i].defined() || grads[i].shape() == input_shapes_[i], name(),
                  ": gradient ", i, " has shape ", shape_str(grads[i].shape()),
                  ", its input has shape ", shape_str(input_shapes_[i]));
  return grads;
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
    // A private copy: grad_output may be shared with other leaves or with the caller.
    meta->grad = grad_output.clone();  // clone() is always contiguous
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

#include "nn/module.h"

#include <functional>
#include <set>

#include "autograd/grad_mode.h"
#include "ops/factory.h"

namespace wavspa::nn {

namespace {
void check_name(const std::string& owner, const std::string& name) {
  WAVSPA_CHECK(!name.empty() && name.find('.') == std::string::npos, owner,
               ": a parameter, buffer or child name must be non-empty and contain no '.', got '",
               name, "'");
}
}  // namespace

// A name is registered once per module, whatever it names: a second registration would
// leave named_parameters listing both and state_dict keeping one.
void Module::check_unused(const std::string& name) const {
  const char* what = nullptr;
  for (const Slot& s : params_)
    if (s.name == name) what = "a parameter";
  for (const Slot& s : buffers_)
    if (s.name == name) what = "a buffer";
  for (const auto& [n, child] : children_)
    if (n == name) what = "a child module";
  WAVSPA_CHECK(what == nullptr, type_name_, ": the name '", name, "' is already registered (as ",
               what, "); every parameter, buffer and child of a module needs its own name");
}

void Module::register_parameter(const std::string& name, Tensor* slot, const Tensor& value,
                                bool trainable) {
  check_name(type_name_, name);
  check_unused(name);
  WAVSPA_CHECK(value.defined(), type_name_, ": parameter '", name, "' is undefined");
  *slot = value.detach();
  if (trainable) slot->requires_grad_(true);
  params_.push_back({name, slot, trainable});
}

void Module::register_buffer(const std::string& name, Tensor* slot, const Tensor& value) {
  check_name(type_name_, name);
  check_unused(name);
  *slot = value.detach();
  buffers_.push_back({name, slot, false});
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_name(type_name_, name);
  check_unused(name);
  WAVSPA_CHECK(child != nullptr, type_name_, ": child module '", name, "' is null");
  children_.emplace_back(name, std::move(child));
}

// The order of named_parameters and state_dict, as PyTorch's: this module's parameters, then
// its buffers, then each child's entries, children in registration order.
void Module::collect(const std::string& prefix, bool params, bool buffers, bool recurse,
                     std::vector<std::pair<std::string, Slot>>& out) const {
  if (params)
    for (const Slot& s : params_) out.emplace_back(prefix + s.name, s);
  if (buffers)
    for (const Slot& s : buffers_) out.emplace_back(prefix + s.name, s);
  if (recurse)
    for (const auto& [name, child] : children_)
      child->collect(prefix + name + ".", params, buffers, true, out);
}

NamedTensors Module::named_tensors(bool params, bool buffers, bool recurse) const {
  std::vector<std::pair<std::string, Slot>> slots;
  collect("", params, buffers, recurse, slots);
  NamedTensors out;
  for (auto& [name, s] : slots) out.emplace_back(name, *s.tensor);
  return out;
}

NamedTensors Module::named_parameters(bool recurse) const {
  return named_tensors(true, false, recurse);
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  return named_tensors(false, true, recurse);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::repr_into(std::string& out, int indent) const {
  out += type_name_ + "(" + extra_repr();
  if (children_.empty()) {
    out += ")";
    return;
  }
  if (!extra_repr().empty()) out += ",";
  out += "\n";
  for (const auto& [name, child] : children_) {
    out += std::string(indent + 2, ' ') + "(" + name + "): ";
    child->repr_into(out, indent + 2);
    out += "\n";
  }
  out += std::string(indent, ' ') + ")";
}

std::string Module::repr() const {
  std::string out;
  repr_into(out, 0);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  on_train(on);
  for (auto& [name, child] : children_) child->train(on);
}

// Moving keeps each tensor's identity (Tensor::set_data, PyTorch's `p.data = ...`): an
// optimizer built before the move holds the same tensors and keeps updating the module. A
// member the user replaced by a non-leaf (not a registered leaf any more) is replaced.
void Module::replace_all(const std::function<Tensor(const Tensor&)>& convert) {
  std::vector<std::pair<std::string, Slot>> slots;
  collect("", true, true, true, slots);
  NoGradGuard no_grad;
  for (auto& [name, s] : slots) {
    Tensor moved = convert(*s.tensor);
    if (!moved.defined()) continue;
    moved = moved.detach();
    if (s.tensor->is_leaf()) {
      s.tensor->set_data(moved);
    } else {
      if (s.trainable) moved.requires_grad_(true);
      *s.tensor = moved;
    }
  }
}

void Module::to(Device device) {
  replace_all([&](const Tensor& t) { return t.device() == device ? Tensor() : t.to(device); });
}

void Module::to(DType dtype) {
  WAVSPA_CHECK(is_floating(dtype), type_name_, ".to: modules convert to floating dtypes only, got ",
               dtype_name(dtype));
  replace_all([&](const Tensor& t) {
    return !is_floating(t.dtype()) || t.dtype() == dtype ? Tensor() : t.to(dtype);
  });
}

void Module::zero_grad() {
  for (Tensor t : parameters()) t.zero_grad();
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Slot>> slots;
  collect("", true, true, true, slots);
  StateDict out;
  for (auto& [name, s] : slots) out[name] = s.tensor->detach();
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<std::pair<std::string, Slot>> slots;
  collect("", true, true, true, slots);
  std::vector<std::string> missing, unexpected, wrong;
  std::set<std::string> known;
  for (auto& [name, s] : slots) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
    } else if (it->second.shape() != s.tensor->shape()) {
      wrong.push_back(name + " (expected " + shape_str(s.tensor->shape()) + ", got " +
                      shape_str(it->second.shape()) + ")");
    }
  }
  for (auto& [name, t] : state)
    if (!known.count(name)) unexpected.push_back(name);
  const bool bad = !wrong.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (bad) {
    std::string msg = type_name_ + ".load_state_dict: the state does not match the module.";
    if (!missing.empty()) msg += str(" Missing: ", missing, ".");
    if (!unexpected.empty()) msg += str(" Unexpected: ", unexpected, ".");
    if (!wrong.empty()) msg += str(" Wrong shape: ", wrong, ".");
    throw Error(msg);
  }
  NoGradGuard no_grad;
  for (auto& [name, s] : slots) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    s.tensor->copy_(it->second);  // converts dtype and device as needed
  }
}

}  // namespace wavspa::nn

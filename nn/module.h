// Modules: the building blocks users write models with, as torch.nn.Module.
//
//   class Block : public nn::Module {
//    public:
//     Block(int64_t d) : Module("Block") {
//       fc = register_module("fc", std::make_shared<nn::Linear>(d, d));
//       register_parameter("scale", &scale, ones({d}));
//     }
//     Tensor forward(const Tensor& x) { return mul(fc->forward(x), scale); }
//     std::shared_ptr<nn::Linear> fc;
//     Tensor scale;
//   };
//
// A module registers its parameters and buffers by pointer to its own Tensor members, so
// `to(device)` and `load_state_dict` update the members the forward pass reads. Names are
// hierarchical ("blocks.3.attn.qkv.weight"), in registration order. Modules are not copyable
// (they point into themselves); share them through std::shared_ptr.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/ordered_dict.h"

namespace wavspa::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
// Names to tensors in registration order (nn/ordered_dict.h).
using StateDict = OrderedDict<Tensor>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (from subclass constructors) ----------------------------------------
  // Stores `value` into *slot (as a leaf that requires grad if `trainable`) and registers it.
  void register_parameter(const std::string& name, Tensor* slot, const Tensor& value,
                          bool trainable = true);
  void register_buffer(const std::string& name, Tensor* slot, const Tensor& value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- introspection ----------------------------------------------------------------------
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const {
    return children_;
  }
  int64_t num_parameters() const;  // elements over all parameters
  const std::string& type_name() const { return type_name_; }
  // One line of hyper-parameters for printing, e.g. "in=64, out=128, bias".
  virtual std::string extra_repr() const { return ""; }
  // A printable tree: "Linear(in=4, out=2, bias)" with children indented.
  std::string repr() const;
  // Whether weight decay belongs on this module's own parameter `name` (nn::decay_groups asks).
  // Decay is a prior on the weights of linear maps; a module whose parameter is one (Linear's
  // weight, Linformer's projections E and F) says so here. The default is no: biases, norm
  // scales, embeddings, position tables and wavelet filters are not pulled towards zero.
  virtual bool decays(const std::string& name) const {
    (void)name;
    return false;
  }

  // ---- modes and placement --------------------------------------------------------------
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter and buffer, in place: each keeps its identity (Tensor::set_data),
  // so an optimizer built before the move keeps updating the module, as in PyTorch.
  // Gradients are dropped.
  void to(Device device);
  void to(DType dtype);  // floating parameters and buffers only, in place as above
  void zero_grad();

  // ---- state ----------------------------------------------------------------------------
  // Parameters and buffers by full name (detached, sharing storage with the module).
  StateDict state_dict() const;
  // Copies values into the registered tensors. Strict: any missing, unexpected or wrongly
  // shaped entry is an error that names every one of them; nothing is changed then.
  void load_state_dict(const StateDict& state, bool strict = true);

 protected:
  virtual void on_train(bool) {}

 private:
  struct Slot {
    std::string name;
    Tensor* tensor;
    bool trainable;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_unused(const std::string& name) const;
  // Every registered tensor t becomes convert(t) (skipped where that is undefined).
  void replace_all(const std::function<Tensor(const Tensor&)>& convert);
  void collect(const std::string& prefix, bool params, bool buffers, bool recurse,
               std::vector<std::pair<std::string, Slot>>& out) const;
  NamedTensors named_tensors(bool params, bool buffers, bool recurse) const;
  void repr_into(std::string& out, int indent) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<Slot> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

inline std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.repr(); }

}  // namespace wavspa::nn

// Containers of modules, as torch.nn.ModuleList and torch.nn.ModuleDict. They register their
// entries as children, so parameters get hierarchical names through them:
//
//   class Encoder : public nn::Module {
//    public:
//     Encoder(int64_t depth, int64_t d) : Module("Encoder") {
//       blocks = register_module("blocks", std::make_shared<nn::ModuleList>());
//       for (int64_t i = 0; i < depth; ++i) blocks->push_back(std::make_shared<nn::Linear>(d, d));
//     }
//     Tensor forward(Tensor x) {
//       for (const auto& b : *blocks) x = relu(std::static_pointer_cast<nn::Linear>(b)->forward(x));
//       return x;
//     }
//     std::shared_ptr<nn::ModuleList> blocks;  // parameters "blocks.0.weight", "blocks.0.bias", ...
//   };
//
// Names inside a module contain no '.' (as in PyTorch): the dots of a full name are the
// nesting, and a container is how a model gets "blocks.3.attn.qkv.weight".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace wavspa::nn {

class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  explicit ModuleList(const std::vector<std::shared_ptr<Module>>& modules);

  // Appends `module` and registers it under its index ("0", "1", ...); returns it.
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    append(module);
    return module;
  }
  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  // The module at index i (negative counts from the end); an Error when out of range.
  const std::shared_ptr<Module>& operator[](int64_t i) const;
  // The module at index i as an M; an Error when it is another kind of module.
  template <typename M>
  std::shared_ptr<M> at(int64_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m) wrong_type(std::to_string(i));
    return m;
  }
  std::vector<std::shared_ptr<Module>>::const_iterator begin() const { return modules_.begin(); }
  std::vector<std::shared_ptr<Module>>::const_iterator end() const { return modules_.end(); }
  std::string extra_repr() const override;

 private:
  void append(std::shared_ptr<Module> module);
  [[noreturn]] void wrong_type(const std::string& where) const;
  std::vector<std::shared_ptr<Module>> modules_;
};

class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}

  // Registers `module` under `key` (non-empty, no '.', not taken yet); returns it.
  template <typename M>
  std::shared_ptr<M> insert(const std::string& key, std::shared_ptr<M> module) {
    register_module(key, module);
    return module;
  }
  bool contains(const std::string& key) const;
  size_t size() const { return named_children().size(); }
  // Keys in insertion order.
  std::vector<std::string> keys() const;
  // The module under `key`; an Error listing the keys when there is none.
  std::shared_ptr<Module> operator[](const std::string& key) const;
  template <typename M>
  std::shared_ptr<M> at(const std::string& key) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[key]);
    if (!m) wrong_type(key);
    return m;
  }
  std::string extra_repr() const override;

 private:
  [[noreturn]] void wrong_type(const std::string& key) const;
};

}  // namespace wavspa::nn

#include "nn/containers.h"

namespace wavspa::nn {

ModuleList::ModuleList(const std::vector<std::shared_ptr<Module>>& modules) : ModuleList() {
  for (const auto& m : modules) append(m);
}

void ModuleList::append(std::shared_ptr<Module> module) {
  WAVSPA_CHECK(module != nullptr, "ModuleList.push_back: the module is null (entry ", modules_.size(), ")");
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

const std::shared_ptr<Module>& ModuleList::operator[](int64_t i) const {
  const int64_t n = (int64_t)modules_.size();
  WAVSPA_CHECK(i >= -n && i < n, "ModuleList[", i, "]: index out of range for ", n,
               n == 1 ? " module" : " modules");
  return modules_[(size_t)(i < 0 ? i + n : i)];
}

void ModuleList::wrong_type(const std::string& where) const {
  const int64_t i = std::stoll(where);
  throw Error(str("ModuleList.at(", where, "): the module there is a ", (*this)[i]->type_name(),
                  ", not the kind asked for"));
}

std::string ModuleList::extra_repr() const { return str("size=", modules_.size()); }

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [name, m] : named_children())
    if (name == key) return true;
  return false;
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : named_children()) out.push_back(name);
  return out;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  for (const auto& [name, m] : named_children())
    if (name == key) return m;
  throw Error(str("ModuleDict['", key, "']: no such key; the keys are ", keys()));
}

void ModuleDict::wrong_type(const std::string& key) const {
  throw Error(str("ModuleDict.at('", key, "'): the module there is a ", (*this)[key]->type_name(),
                  ", not the kind asked for"));
}

std::string ModuleDict::extra_repr() const { return str("size=", size()); }

}  // namespace wavspa::nn

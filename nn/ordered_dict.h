// A map from names to values that remembers the order names were added in: what
// Module::state_dict() returns, so that its names come back in registration order (as
// torch's OrderedDict does) instead of sorted.
//
//   nn::OrderedDict<int> d{{"b", 1}, {"a", 2}};
//   d["c"] = 3;                        // appended; d["a"] = 4 would replace in place
//   for (const auto& [name, v] : d) std::cout << name;   // prints "bac"
//   d.find("a")->second;               // 2; d.at("z") throws wavspa::Error
//
// Lookups go through a hash index, so finding a name costs the same as in a std::map or less.
// Erasing is linear in the size (the entries after the erased one move up). Iterators give
// (name, value) pairs; change values through them, never names.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"

namespace wavspa::nn {

template <typename V>
class OrderedDict {
 public:
  using value_type = std::pair<std::string, V>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  OrderedDict() = default;
  // Later duplicates of a name replace its value and keep its first position.
  OrderedDict(std::initializer_list<value_type> items) {
    for (const auto& [k, v] : items) (*this)[k] = v;
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }

  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  size_t count(const std::string& key) const { return index_.count(key); }
  iterator find(const std::string& key) {
    auto it = index_.find(key);
    return it == index_.end() ? items_.end() : items_.begin() + (std::ptrdiff_t)it->second;
  }
  const_iterator find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? items_.end() : items_.begin() + (std::ptrdiff_t)it->second;
  }
  V& at(const std::string& key) { return items_[position(key)].second; }
  const V& at(const std::string& key) const { return items_[position(key)].second; }

  // The value of `key`, appended (default-constructed) when it is new.
  V& operator[](const std::string& key) { return emplace(key, V{}).first->second; }
  // Adds (key, value) at the end unless the key is present; like std::map, an existing
  // entry is left alone and the bool says whether anything was added.
  std::pair<iterator, bool> emplace(const std::string& key, V value) {
    auto [it, added] = index_.emplace(key, items_.size());
    if (!added) return {items_.begin() + (std::ptrdiff_t)it->second, false};
    items_.emplace_back(key, std::move(value));
    return {items_.end() - 1, true};
  }
  std::pair<iterator, bool> insert(value_type item) { return emplace(item.first, std::move(item.second)); }
  // Returns how many entries were removed (0 or 1).
  size_t erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return 0;
    const size_t at = it->second;
    index_.erase(it);
    items_.erase(items_.begin() + (std::ptrdiff_t)at);
    for (size_t i = at; i < items_.size(); ++i) index_[items_[i].first] = i;
    return 1;
  }
  void clear() {
    items_.clear();
    index_.clear();
  }
  // The names, in order.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(items_.size());
    for (const auto& item : items_) out.push_back(item.first);
    return out;
  }

 private:
  size_t position(const std::string& key) const {
    auto it = index_.find(key);
    if (it == index_.end()) throw Error("OrderedDict: no entry named '" + key + "'");
    return it->second;
  }

  std::vector<value_type> items_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace wavspa::nn

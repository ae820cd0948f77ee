// Where a tensor's bytes live.
//
//   Device d = Device::cpu();                   // or Device::cuda(1), the second GPU (CUDA=1)
//   Tensor x = zeros({2, 3}, kFloat32, d);
//   x.device().name();                          // "cpu" ("cuda:1")
#pragma once

#include <ostream>
#include <string>

namespace wavspa {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.name(); }

}  // namespace wavspa

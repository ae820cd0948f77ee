// Making tensors.
//
//   Tensor a = zeros({2, 3});                       // float32 on the CPU
//   Tensor b = tensor({{1, 2}, {3, 4}}, kFloat64);
//   Tensor c = from_vector(std::vector<int64_t>{3, 1, 2});
//   manual_seed(0); Tensor r = randn({4, 4});      // Philox: same seed, same numbers
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace wavspa {

Tensor empty(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = kFloat32,
            Device device = Device::cpu());
Tensor scalar_tensor(double value, DType dtype = kFloat32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

// [start, end) in steps of `step`, as numpy.arange.
Tensor arange(double end, DType dtype = kFloat32, Device device = Device::cpu());
Tensor arange(double start, double end, double step = 1.0, DType dtype = kFloat32,
              Device device = Device::cpu());
Tensor linspace(double start, double end, int64_t steps, DType dtype = kFloat32,
                Device device = Device::cpu());
Tensor eye(int64_t n, int64_t m = -1, DType dtype = kFloat32, Device device = Device::cpu());

// From host data; the dtype follows the element type. shape {} means 1-D.
Tensor from_vector(const std::vector<float>& v, const Shape& shape = {}, Device d = Device::cpu());
Tensor from_vector(const std::vector<double>& v, const Shape& shape = {}, Device d = Device::cpu());
Tensor from_vector(const std::vector<int32_t>& v, const Shape& shape = {}, Device d = Device::cpu());
Tensor from_vector(const std::vector<int64_t>& v, const Shape& shape = {}, Device d = Device::cpu());
// bfloat16 values as they are (from_vector(floats).to(kBFloat16) rounds float32 values).
Tensor from_vector(const std::vector<bfloat16>& v, const Shape& shape = {}, Device d = Device::cpu());
Tensor tensor(std::initializer_list<double> values, DType dtype = kFloat32,
              Device device = Device::cpu());
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = kFloat32,
              Device device = Device::cpu());

// Random tensors from `gen` (default_generator() when null).
Tensor rand(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu(),
            Generator* gen = nullptr);  // uniform [0, 1)
Tensor uniform(const Shape& shape, double lo, double hi, DType dtype = kFloat32,
               Device device = Device::cpu(), Generator* gen = nullptr);
Tensor randn(const Shape& shape, DType dtype = kFloat32, Device device = Device::cpu(),
             Generator* gen = nullptr);  // standard normal
Tensor randint(int64_t lo, int64_t hi, const Shape& shape, DType dtype = kInt64,
               Device device = Device::cpu(), Generator* gen = nullptr);  // [lo, hi)

}  // namespace wavspa

#include "ops/factory.h"

#include <cmath>

#include "ops/common.h"

namespace wavspa {

using namespace ops_detail;

namespace {

template <typename T>
Tensor from_host(const std::vector<T>& v, const Shape& shape_in, Device device) {
  Shape shape = shape_in.empty() ? Shape{(int64_t)v.size()} : shape_in;
  WAVSPA_CHECK(shape_numel(shape) == (int64_t)v.size(), "from_vector: ", v.size(),
               " values do not fill shape ", shape_str(shape));
  Tensor out = Tensor::empty(shape, dtype_of<T>(), device);
  if (!v.empty()) backend_for(device).copy_from_host(v.data(), out);
  return out;
}

// Host values in double, converted to `dtype` on the way in.
Tensor from_doubles(const std::vector<double>& v, const Shape& shape, DType dtype, Device device) {
  Tensor host = from_host(v, shape, Device::cpu());
  return host.to(dtype).to(device);
}

Generator& gen_or_default(Generator* g) { return g ? *g : default_generator(); }

}  // namespace

Tensor empty(const Shape& shape, DType dtype, Device device) {
  return Tensor::empty(shape, dtype, device);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  backend_for(device).fill(out, value);
  return out;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double value) {
  return full(t.shape(), value, t.dtype(), t.device());
}

Tensor arange(double end, DType dtype, Device device) { return arange(0, end, 1, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  WAVSPA_CHECK(step != 0, "arange: step must be non-zero");
  WAVSPA_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
               "arange: bounds must be finite, got ", start, ", ", end, ", ", step);
  const int64_t n = std::max<int64_t>(0, (int64_t)std::ceil((end - start) / step));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + i * step;
  return from_doubles(v, {n}, dtype, device);
}

Tensor linspace(double start, double end, int64_t steps, DType dtype, Device device) {
  WAVSPA_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  std::vector<double> v(steps);
  for (int64_t i = 0; i < steps; ++i)
    v[i] = steps == 1 ? start : start + (end - start) * (double)i / (double)(steps - 1);
  if (steps > 1) v.back() = end;  // exact endpoint
  return from_doubles(v, {steps}, dtype, device);
}

Tensor eye(int64_t n, int64_t m, DType dtype, Device device) {
  if (m < 0) m = n;
  WAVSPA_CHECK(n >= 0, "eye: size must be >= 0, got ", n);
  std::vector<double> v(n * m, 0.0);
  for (int64_t i = 0; i < std::min(n, m); ++i) v[i * m + i] = 1.0;
  return from_doubles(v, {n, m}, dtype, device);
}

Tensor from_vector(const std::vector<float>& v, const Shape& s, Device d) { return from_host(v, s, d); }
Tensor from_vector(const std::vector<double>& v, const Shape& s, Device d) { return from_host(v, s, d); }
Tensor from_vector(const std::vector<int32_t>& v, const Shape& s, Device d) { return from_host(v, s, d); }
Tensor from_vector(const std::vector<int64_t>& v, const Shape& s, Device d) { return from_host(v, s, d); }
Tensor from_vector(const std::vector<bfloat16>& v, const Shape& s, Device d) { return from_host(v, s, d); }

Tensor tensor(std::initializer_list<double> values, DType dtype, Device device) {
  return from_doubles(std::vector<double>(values), {(int64_t)values.size()}, dtype, device);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype,
              Device device) {
  std::vector<double> v;
  const int64_t cols = rows.size() ? (int64_t)rows.begin()->size() : 0;
  for (const auto& row : rows) {
    WAVSPA_CHECK((int64_t)row.size() == cols, "tensor: ragged rows (", row.size(), " vs ", cols,
                 " values)");
    v.insert(v.end(), row.begin(), row.end());
  }
  return from_doubles(v, {(int64_t)rows.size(), cols}, dtype, device);
}

Tensor uniform(const Shape& shape, double lo, double hi, DType dtype, Device device,
               Generator* gen) {
  WAVSPA_CHECK(is_floating(dtype), "uniform: dtype must be floating, got ", dtype_name(dtype));
  WAVSPA_CHECK(dtype != kBFloat16, "uniform: no bfloat16 version; draw float32 and convert with "
               ".to(kBFloat16)");
  WAVSPA_CHECK(lo <= hi, "uniform: lo ", lo, " > hi ", hi);
  Tensor out = Tensor::empty(shape, dtype, device);
  backend_for(device).uniform(out, gen_or_default(gen).reserve(philox_counters_uniform(out.numel())),
                              lo, hi);
  return out;
}

Tensor rand(const Shape& shape, DType dtype, Device device, Generator* gen) {
  return uniform(shape, 0.0, 1.0, dtype, device, gen);
}

Tensor randn(const Shape& shape, DType dtype, Device device, Generator* gen) {
  WAVSPA_CHECK(is_floating(dtype), "randn: dtype must be floating, got ", dtype_name(dtype));
  WAVSPA_CHECK(dtype != kBFloat16, "randn: no bfloat16 version; draw float32 and convert with "
               ".to(kBFloat16)");
  Tensor out = Tensor::empty(shape, dtype, device);
  backend_for(device).normal(out, gen_or_default(gen).reserve(philox_counters_normal(out.numel())),
                             0.0, 1.0);
  return out;
}

Tensor randint(int64_t lo, int64_t hi, const Shape& shape, DType dtype, Device device,
               Generator* gen) {
  WAVSPA_CHECK(lo < hi, "randint: empty range [", lo, ", ", hi, ")");
  WAVSPA_CHECK(dtype != kBFloat16, "randint: no bfloat16 version; draw int64 and convert with .to(kBFloat16)");
  Tensor out = Tensor::empty(shape, dtype, device);
  // two 64-bit draws per Philox block, the same count as normals
  backend_for(device).randint(out, gen_or_default(gen).reserve(philox_counters_normal(out.numel())),
                              lo, hi);
  return out;
}

}  // namespace wavspa

#include <cstring>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/loops.h"

namespace wavspa::cpu {

CpuBackend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.numel() * src.element_size());
    return;
  }
  visit_storage_dtype(dst.dtype(), [&](auto d0) {
    using D = decltype(d0);
    visit_storage_dtype(src.dtype(), [&](auto s0) {
      using S = decltype(s0);
      D* out = static_cast<D*>(dst.raw_data());
      const S* in = static_cast<const S*>(src.raw_data());
      StridedLoop<2>({dst, src}).run([&](const int64_t* off, int64_t n, const int64_t* st) {
        D* o = out + off[0];
        const S* x = in + off[1];
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) o[i] = static_cast<D>(x[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * st[0]] = static_cast<D>(x[i * st[1]]);
        }
      });
    });
  });
}

void CpuBackend::fill(const Tensor& dst, double value) {
  visit_storage_dtype(dst.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T v = static_cast<T>(value);
    T* out = static_cast<T*>(dst.raw_data());
    StridedLoop<1>({dst}).run([&](const int64_t* off, int64_t n, const int64_t* st) {
      T* o = out + off[0];
      if (st[0] == 1) {
        for (int64_t i = 0; i < n; ++i) o[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * st[0]] = v;
      }
    });
  });
}

void CpuBackend::copy_from_host(const void* src, const Tensor& dst) {
  std::memcpy(dst.raw_data(), src, dst.numel() * dst.element_size());
}

void CpuBackend::copy_to_host(const Tensor& src, void* dst) {
  std::memcpy(dst, src.raw_data(), src.numel() * src.element_size());
}

}  // namespace wavspa::cpu

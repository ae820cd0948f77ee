#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"

#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

namespace wavspa {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#ifdef WAVSPA_CUDA
  throw Error(str("device ", device, ": this build has the CUDA runtime (", cuda::device_count(),
                  " device(s) visible) but not yet the CUDA kernels"));
#else
  throw Error(str("device ", device, " is not available: wavspa was built without CUDA ",
                  "(rebuild with `make CUDA=1`)"));
#endif
}

RowMap make_row_map(int64_t n, std::vector<ExtendRow> padded) {
  RowMap m;
  m.n = n;
  m.padded = std::move(padded);
  std::vector<int64_t> count(n + 1, 0);
  for (const ExtendRow& r : m.padded)
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t) ++count[r.src[t] + 1];
  m.offsets.assign(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) m.offsets[i + 1] = m.offsets[i] + count[i + 1];
  m.rows.resize(m.offsets[n]);
  m.coefs.resize(m.offsets[n]);
  std::vector<int64_t> fill(m.offsets.begin(), m.offsets.end() - 1);
  for (int64_t p = 0; p < m.padded_rows(); ++p) {
    const ExtendRow& r = m.padded[p];
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
      int64_t e = fill[r.src[t]]++;
      m.rows[e] = p;
      m.coefs[e] = r.coef[t];
    }
  }
  return m;
}

}  // namespace wavspa

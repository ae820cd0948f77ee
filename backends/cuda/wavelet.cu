// Wavelet filter-bank kernels on CUDA, the twins of backends/cpu/wavelet.cpp.
//
// Layout: (A, rows, C) planes with the channels C innermost. Consecutive threads take
// consecutive channels of one output row, so every load and store of a warp is one
// contiguous run of memory, for any C (a flat index walks c fastest, then the row, then a).
//
// The boundary extension arrives as a host RowMap (ExtendRow lists, and for the adjoints its
// transpose in CSR form). Its device copy is made once per map id and cached (see
// device_map); every thread of a warp reads the same entry, which the cache broadcasts.
//
// Each output element is owned by one thread and written once, including the adjoints
// (extend_backward and synthesis gather through the transposed map instead of scattering),
// so nothing needs atomics. The filter gradient is a sum over (a, o): it runs as
// per-chunk partial sums in double followed by a second pass that adds the chunks in a fixed
// order, so its bits do not depend on scheduling.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/nn_common.cuh"

namespace wavspa::cuda {
namespace {

static_assert(std::is_trivially_copyable_v<ExtendRow> && sizeof(ExtendRow) % 8 == 0,
              "ExtendRow is copied to the device as bytes, in 8-byte words");

// Filter banks are processed in groups of up to kMaxBands filters per launch: one read of an
// input row serves every filter of the group (dwt's low and high pass share a launch).
constexpr int kMaxBands = 4;

// ---- boundary maps on the device ------------------------------------------------------------

// Device copy of a RowMap, both directions; `storage` owns the memory of all pointers.
struct DeviceMap {
  Tensor storage;
  const ExtendRow* padded = nullptr;  // padded rows, with up to 3 source terms each
  const int64_t* offsets = nullptr;   // CSR transpose: signal row i receives entries
  const int64_t* rows = nullptr;      //   [offsets[i], offsets[i + 1]) of (padded row, coef)
  const double* coefs = nullptr;
};

// Appends a host array to `buf`, returning its byte offset (every item is 8-byte aligned, as
// are all sizes here, so the pieces stay aligned on the device).
size_t append_bytes(std::vector<unsigned char>& buf, const void* data, size_t bytes) {
  const size_t at = buf.size();
  buf.resize(at + bytes);
  if (bytes) std::memcpy(buf.data() + at, data, bytes);
  return at;
}

// A training step runs the same few maps (one per level, mode and length, which the op layer
// memoises) in every step, forward and backward. Uploading one per call put a host-to-device
// copy from pageable memory, which stalls the host, into every wavelet kernel; instead each
// map is copied once, through the backend's pinned staging (no stall), and kept, keyed by
// its id and device. Bounded: when full the cache is emptied (like fft.cu's plans). Freeing
// an entry needs no synchronisation: its memory goes back to the caching allocator, whose
// next user is queued behind the kernels that still read it, on the one stream.
constexpr size_t kMaxDeviceMaps = 64;
constexpr size_t kMaxDeviceMapBytes = size_t(32) << 20;

struct MapCache {
  std::mutex mutex;
  std::map<std::pair<uint64_t, int>, DeviceMap> maps;  // (map id, device index)
  size_t bytes = 0;
};

MapCache& map_cache() {
  // Never destroyed, like fft.cu's plan cache: another thread may still run kernels while
  // the statics are destroyed at exit.
  static MapCache* cache = new MapCache;
  return *cache;
}

DeviceMap device_map(const RowMap& map, Device device) {
  WAVSPA_ASSERT(map.id != 0, "a RowMap must come from make_row_map");
  MapCache& cache = map_cache();
  const auto key = std::make_pair(map.id, device.index);
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto it = cache.maps.find(key);
  if (it != cache.maps.end()) return it->second;

  std::vector<unsigned char> buf;
  append_bytes(buf, map.padded.data(), map.padded.size() * sizeof(ExtendRow));
  const size_t off_offsets = append_bytes(buf, map.offsets.data(), map.offsets.size() * sizeof(int64_t));
  const size_t off_rows = append_bytes(buf, map.rows.data(), map.rows.size() * sizeof(int64_t));
  const size_t off_coefs = append_bytes(buf, map.coefs.data(), map.coefs.size() * sizeof(double));
  DeviceMap m;
  // buf holds whole 8-byte words, at least one (offsets has n + 1 entries): exactly storage.
  m.storage = scratch_bytes(buf.size(), device);
  cuda_backend().copy_from_host(buf.data(), m.storage);
  const unsigned char* base = static_cast<const unsigned char*>(m.storage.raw_data());
  m.padded = reinterpret_cast<const ExtendRow*>(base);
  m.offsets = reinterpret_cast<const int64_t*>(base + off_offsets);
  m.rows = reinterpret_cast<const int64_t*>(base + off_rows);
  m.coefs = reinterpret_cast<const double*>(base + off_coefs);

  if (cache.maps.size() >= kMaxDeviceMaps || cache.bytes + buf.size() > kMaxDeviceMapBytes) {
    cache.maps.clear();
    cache.bytes = 0;
  }
  cache.maps.emplace(key, m);
  cache.bytes += buf.size();
  return m;
}

// Up to kMaxBands planes (A, L, C) whose dim 0 may have any stride, with their filters: plane
// f's element (a, l, c) is base[f][a * stride_a[f] + l * C + c], its taps w[f][k * Cw + c].
template <typename P>
struct Bands {
  P* base[kMaxBands] = {};
  int64_t stride_a[kMaxBands] = {};
  const void* w[kMaxBands] = {};
  int count = 0;
};

#define WAVSPA_GRID_STRIDE(i, total)                                            \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (total); \
       i += (int64_t)gridDim.x * blockDim.x)

// ---- extend and its adjoint ----------------------------------------------------------------

// out (A, P, C) row p = sum of padded[p]'s terms over x (A, N, C); both contiguous.
template <typename T>
__global__ void extend_kernel(const T* x, const ExtendRow* padded, T* out, int64_t A,
                              int64_t N, int64_t P, int64_t C) {
  WAVSPA_GRID_STRIDE(idx, A * P * C) {
    const int64_t c = idx % C, p = (idx / C) % P, a = idx / (C * P);
    const ExtendRow& r = padded[p];
    T acc = T(0);
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t) acc += (T)r.coef[t] * x[(a * N + r.src[t]) * C + c];
    out[idx] = acc;
  }
}

// grad_x (A, N, C) row i += sum over the transpose entries (p, coef) of coef * g row p, in
// increasing p, the order in which the CPU's scatter adds them.
template <typename T>
__global__ void extend_backward_kernel(const T* g, const int64_t* offsets, const int64_t* rows,
                                       const double* coefs, T* gx, int64_t A, int64_t N,
                                       int64_t P, int64_t C) {
  WAVSPA_GRID_STRIDE(idx, A * N * C) {
    const int64_t c = idx % C, i = (idx / C) % N, a = idx / (C * N);
    T acc = gx[idx];
    for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e)
      acc += (T)coefs[e] * g[(a * P + rows[e]) * C + c];
    gx[idx] = acc;
  }
}

// ---- analysis --------------------------------------------------------------------------------

// outs[f] (a, o, c) = sum_k w[f, k, c] * xe[a, 2 o + k + start, c], xe = padded rows of x.
template <typename T>
__global__ void analysis_kernel(const T* x, int64_t x_stride_a, const ExtendRow* padded,
                                int64_t P, Bands<T> outs, int64_t K, int64_t Cw, int64_t start,
                                int64_t A, int64_t L, int64_t C) {
  WAVSPA_GRID_STRIDE(idx, A * L * C) {
    const int64_t c = idx % C, o = (idx / C) % L, a = idx / (C * L);
    const int64_t wc = Cw == 1 ? 0 : c;
    const T* xa = x + a * x_stride_a + c;
    T acc[kMaxBands];
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) acc[f] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t p = 2 * o + k + start;
      if (p < 0 || p >= P) continue;
      const ExtendRow& r = padded[p];
      for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
        T v = xa[r.src[t] * C];
        if (r.coef[t] != 1.0) v *= (T)r.coef[t];  // boundary terms only
#pragma unroll
        for (int f = 0; f < kMaxBands; ++f)
          if (f < outs.count) acc[f] = fma(static_cast<const T*>(outs.w[f])[k * Cw + wc], v, acc[f]);
      }
    }
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f)
      if (f < outs.count) outs.base[f][a * outs.stride_a[f] + o * C + c] = acc[f];
  }
}

// ---- synthesis -------------------------------------------------------------------------------

// out (a, i, c) = sum over the transpose entries (p, coef) of row i, over the taps k with
// p - start = 2 j + k for a j in [0, L), over the bands f: coef * w[f, k, c] * coeffs[f][a, j, c].
// With `accumulate`, adds to out (a later group of bands) instead of writing it.
template <typename T>
__global__ void synthesis_kernel(Bands<const T> coeffs, int64_t K, int64_t Cw, int64_t start,
                                 const int64_t* offsets, const int64_t* rows,
                                 const double* coefs, T* out, int64_t A, int64_t n_out,
                                 int64_t L, int64_t C, bool accumulate) {
  WAVSPA_GRID_STRIDE(idx, A * n_out * C) {
    const int64_t c = idx % C, i = (idx / C) % n_out, a = idx / (C * n_out);
    const int64_t wc = Cw == 1 ? 0 : c;
    T acc = accumulate ? out[idx] : T(0);
    for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e) {
      const int64_t base = rows[e] - start;  // = 2 j + k
      const T scale = (T)coefs[e];
      for (int64_t k = ((base % 2) + 2) % 2; k < K; k += 2) {
        const int64_t j = (base - k) / 2;
        if (j < 0) break;
        if (j >= L) continue;
#pragma unroll
        for (int f = 0; f < kMaxBands; ++f) {
          if (f >= coeffs.count) break;
          T v = coeffs.base[f][a * coeffs.stride_a[f] + j * C + c];
          if (scale != T(1)) v *= scale;
          acc = fma(static_cast<const T*>(coeffs.w[f])[k * Cw + wc], v, acc);
        }
      }
    }
    out[idx] = acc;
  }
}

// ---- filter gradient -------------------------------------------------------------------------

// Pass 1: grid (channel tiles of 32, bands x taps, chunks of the (a, o) pairs); threads (32, 8):
// x = channel, y = a stride through the chunk's pairs. Sums in double, then the 8 y-partials
// of a channel are added in y order into partial[chunk, f0 + f, k, c].
constexpr int kTile = 32, kTileRows = 8;

template <typename T>
__global__ void filter_grad_partial(Bands<const T> g, int64_t f0, int64_t nf, const T* x,
                                    int64_t x_stride_a, const ExtendRow* padded, int64_t P,
                                    int64_t start, int64_t K, int64_t A, int64_t L, int64_t C,
                                    int64_t pairs_per_chunk, double* partial) {
  __shared__ double sums[kTileRows][kTile];
  const int64_t c = (int64_t)blockIdx.x * kTile + threadIdx.x;
  const int f = (int)(blockIdx.y / K);
  const int64_t k = blockIdx.y % K, chunk = blockIdx.z;
  const int64_t q0 = chunk * pairs_per_chunk;
  const int64_t q1 = q0 + pairs_per_chunk < A * L ? q0 + pairs_per_chunk : A * L;
  double acc = 0;
  if (c < C) {
    const T* gf = g.base[f];
    for (int64_t q = q0 + threadIdx.y; q < q1; q += kTileRows) {
      const int64_t a = q / L, o = q % L, p = 2 * o + k + start;
      if (p < 0 || p >= P) continue;
      const double gv = (double)gf[a * g.stride_a[f] + o * C + c];
      const T* xa = x + a * x_stride_a + c;
      const ExtendRow& r = padded[p];
      for (int t = 0; t < 3 && r.src[t] >= 0; ++t) acc += r.coef[t] * gv * (double)xa[r.src[t] * C];
    }
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double total = 0;
    for (int y = 0; y < kTileRows; ++y) total += sums[y][threadIdx.x];
    partial[((chunk * nf + f0 + f) * K + k) * C + c] = total;
  }
}

// Pass 2: one block per (f, k). Each channel adds its chunks in order; a shared filter
// (Cw == 1) then sums the channels with a fixed tree over the block's threads.
constexpr int kFinishThreads = 256;

template <typename T>
__global__ void filter_grad_finish(const double* partial, int64_t chunks, int64_t nfK,
                                   int64_t C, int64_t Cw, T* grad_w) {
  __shared__ double tree[kFinishThreads];
  const int64_t fk = blockIdx.x;
  double mine = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    double s = 0;
    for (int64_t ch = 0; ch < chunks; ++ch) s += partial[(ch * nfK + fk) * C + c];
    if (Cw == 1) mine += s;
    else grad_w[fk * C + c] = (T)s;
  }
  if (Cw != 1) return;  // uniform over the block: no thread is left at the barrier below
  tree[threadIdx.x] = mine;
  __syncthreads();
  for (int half = kFinishThreads / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) tree[threadIdx.x] += tree[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_w[fk] = (T)tree[0];
}

// Fills a Bands with planes [f0, f0 + count) of `planes` and the matching filters of w.
template <typename P, typename T>
Bands<P> bands_of(const std::vector<Tensor>& planes, const T* w, int64_t K, int64_t Cw,
                  size_t f0) {
  Bands<P> b;
  b.count = (int)std::min<size_t>(kMaxBands, planes.size() - f0);
  for (int f = 0; f < b.count; ++f) {
    const Tensor& t = planes[f0 + f];
    b.base[f] = dptr<T>(t);
    b.stride_a[f] = t.strides()[0];
    if (w) b.w[f] = w + (f0 + f) * K * Cw;
  }
  return b;
}

}  // namespace

void CudaBackend::wavelet_extend(const Tensor& x, const RowMap& map, const Tensor& out) {
  const int64_t A = x.shape()[0], N = x.shape()[1], C = x.shape()[2];
  const int64_t P = map.padded_rows(), total = A * P * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, x.device());
  dispatch_floating(x.dtype(), "wavelet_extend", [&](auto zero) {
    using T = decltype(zero);
    extend_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(dptr<T>(x), dmap.padded,
                                                                   dptr<T>(out), A, N, P, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::wavelet_extend_backward(const Tensor& grad_out, const RowMap& map,
                                          const Tensor& grad_x) {
  const int64_t A = grad_x.shape()[0], N = grad_x.shape()[1], C = grad_x.shape()[2];
  const int64_t P = map.padded_rows(), total = A * N * C;
  if (total == 0 || P == 0) return;
  const DeviceMap dmap = device_map(map, grad_x.device());
  dispatch_floating(grad_x.dtype(), "wavelet_extend_backward", [&](auto zero) {
    using T = decltype(zero);
    extend_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
        dptr<T>(grad_out), dmap.offsets, dmap.rows, dmap.coefs, dptr<T>(grad_x), A, N, P, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::wavelet_analysis(const Tensor& x, const RowMap& map, const Tensor& w,
                                   int64_t start, const std::vector<Tensor>& outs) {
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = outs[0].shape()[1], total = A * L * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, x.device());
  dispatch_floating(x.dtype(), "wavelet_analysis", [&](auto zero) {
    using T = decltype(zero);
    for (size_t f0 = 0; f0 < outs.size(); f0 += kMaxBands) {
      const Bands<T> bands = bands_of<T, T>(outs, dptr<T>(w), K, Cw, f0);
      analysis_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
          dptr<T>(x), x.strides()[0], dmap.padded, map.padded_rows(), bands, K, Cw, start, A,
          L, C);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
  });
}

void CudaBackend::wavelet_synthesis(const std::vector<Tensor>& coeffs, const Tensor& w,
                                    int64_t start, const RowMap& map, const Tensor& out) {
  const int64_t A = out.shape()[0], n_out = out.shape()[1], C = out.shape()[2];
  const int64_t K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = coeffs[0].shape()[1], total = A * n_out * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, out.device());
  dispatch_floating(out.dtype(), "wavelet_synthesis", [&](auto zero) {
    using T = decltype(zero);
    for (size_t f0 = 0; f0 < coeffs.size(); f0 += kMaxBands) {
      const Bands<const T> bands = bands_of<const T, T>(coeffs, dptr<T>(w), K, Cw, f0);
      synthesis_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
          bands, K, Cw, start, dmap.offsets, dmap.rows, dmap.coefs, dptr<T>(out), A, n_out, L,
          C, /*accumulate=*/f0 > 0);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
  });
}

void CudaBackend::wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x,
                                      const RowMap& map, int64_t start, const Tensor& grad_w) {
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t nf = grad_w.shape()[0], K = grad_w.shape()[1], Cw = grad_w.shape()[2];
  const int64_t L = g[0].shape()[1], P = map.padded_rows();
  const int64_t pairs = A * L;
  if (nf * K == 0) return;
  // Chunks of at least 64 (a, o) pairs (8 per thread row), and about 2048 blocks in all.
  const int64_t tiles = std::max<int64_t>(1, (C + kTile - 1) / kTile);
  int64_t chunks = std::min((pairs + 63) / 64, (2048 + tiles * nf * K - 1) / (tiles * nf * K));
  chunks = std::clamp<int64_t>(chunks, 1, 65535);
  const int64_t pairs_per_chunk = (pairs + chunks - 1) / chunks;
  const bool any_work = pairs > 0 && C > 0;
  WAVSPA_CHECK(kMaxBands * K <= 65535, "wavelet_filter_grad: filters of ", K,
               " taps exceed the CUDA grid (at most ", 65535 / kMaxBands, ")");
  Tensor partial = scratch_bytes((size_t)chunks * nf * K * std::max<int64_t>(C, 1) * sizeof(double),
                                 x.device());
  const DeviceMap dmap = device_map(map, x.device());
  dispatch_floating(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    if (any_work) {
      for (size_t f0 = 0; f0 < g.size(); f0 += kMaxBands) {
        const Bands<const T> bands = bands_of<const T, T>(g, nullptr, K, Cw, f0);
        const dim3 grid((unsigned)tiles, (unsigned)(bands.count * K), (unsigned)chunks);
        filter_grad_partial<T><<<grid, dim3(kTile, kTileRows), 0, stream()>>>(
            bands, (int64_t)f0, nf, dptr<T>(x), x.strides()[0], dmap.padded, P, start, K, A, L,
            C, pairs_per_chunk, dptr<double>(partial));
        WAVSPA_CUDA_LAUNCH_CHECK();
      }
    }
    filter_grad_finish<T><<<(unsigned)(nf * K), kFinishThreads, 0, stream()>>>(
        dptr<double>(partial), any_work ? chunks : 0, nf * K, C, Cw, dptr<T>(grad_w));
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace wavspa::cuda

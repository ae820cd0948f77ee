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
// Three sets of kernels compute the same sums. A dwt pair of at most 16 taps on rows of whole
// 16-byte units (the WavSpA case) takes the vector-tile kernels (a block per 64 channels and a
// run of 64-row output tiles, its rows copied by cp.async, the next tile's while it computes
// the current one, a thread per channel pair and 8 rows; see "vector-tile kernels" below);
// other signals with at least kTiledMinC channels take the tiled kernels (32 channels x 64 rows,
// staged element by element); narrower signals (a transform along the last axis, where C is 1)
// take the per-element kernels, one thread per output element.
//
// Each output element is owned by one thread and written once, including the adjoints
// (extend_backward and synthesis gather through the transposed map instead of scattering),
// so nothing needs atomics. The filter gradient is a sum over (a, o): it runs as
// per-chunk partial sums in double followed by a second pass that adds the chunks in a fixed
// order, so its bits do not depend on scheduling.
#include <algorithm>
#include <atomic>
#include <cstdlib>
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
  // Signal rows [ident_lo, ident_hi) receive exactly one padded row each, i + shift, with
  // coefficient 1 (every row but a few at the ends): the tiled synthesis takes those rows on
  // its fast path.
  int64_t ident_lo = 0, ident_hi = 0, shift = 0;
  // Padded rows [pad_lo, pad_hi) are one signal row each, p + pad_shift, with coefficient 1:
  // staging reads them without a look at the map.
  int64_t pad_lo = 0, pad_hi = 0, pad_shift = 0;
  // Every signal row i receives padded row i + shift with coefficient 1 exactly once (the
  // signal's own copy inside the padded rows; true of every extension mode): synthesis then
  // computes an end tile as an inner one and adds the rows' other entries on top.
  bool main_all = false;
};

// What a kernel needs of a DeviceMap (plain data: a kernel argument).
struct MapView {
  const ExtendRow* padded;
  const int64_t *offsets, *rows;
  const double* coefs;
  int64_t ident_lo, ident_hi, shift;
  int64_t P, pad_lo, pad_hi, pad_shift;
  bool main_all;
};
MapView view_of(const DeviceMap& m, int64_t P) {
  return {m.padded, m.offsets, m.rows, m.coefs, m.ident_lo, m.ident_hi, m.shift, P, m.pad_lo, m.pad_hi, m.pad_shift,
          m.main_all};
}

// The identity range of a map's transpose (DeviceMap above): the longest run of rows i with
// one entry, coefficient 1, padded row i + shift for one shift.
void identity_range(const RowMap& map, DeviceMap& m) {
  const int64_t n = (int64_t)map.offsets.size() - 1;
  int64_t best_lo = 0, best_hi = 0, best_shift = 0;
  for (int64_t i = 0; i < n;) {
    auto single = [&](int64_t r) {
      const int64_t e = map.offsets[r];
      return map.offsets[r + 1] - e == 1 && map.coefs[e] == 1.0;
    };
    if (!single(i)) { ++i; continue; }
    const int64_t shift = map.rows[map.offsets[i]] - i;
    int64_t j = i + 1;
    while (j < n && single(j) && map.rows[map.offsets[j]] - j == shift) ++j;
    if (j - i > best_hi - best_lo) best_lo = i, best_hi = j, best_shift = shift;
    i = j;
  }
  m.ident_lo = best_lo, m.ident_hi = best_hi, m.shift = best_shift;
  m.main_all = n > 0;
  for (int64_t i = 0; i < n && m.main_all; ++i) {
    int64_t mains = 0;
    for (int64_t e = map.offsets[i]; e < map.offsets[i + 1]; ++e)
      mains += map.rows[e] == i + best_shift && map.coefs[e] == 1.0;
    m.main_all = mains == 1;
  }
  // The same for the padded rows.
  const int64_t P = map.padded_rows();
  best_lo = best_hi = best_shift = 0;
  auto plain = [&](int64_t p) { return map.padded[p].src[1] < 0 && map.padded[p].src[0] >= 0 && map.padded[p].coef[0] == 1.0; };
  for (int64_t p = 0; p < P;) {
    if (!plain(p)) { ++p; continue; }
    const int64_t shift = map.padded[p].src[0] - p;
    int64_t q = p + 1;
    while (q < P && plain(q) && map.padded[q].src[0] - q == shift) ++q;
    if (q - p > best_hi - best_lo) best_lo = p, best_hi = q, best_shift = shift;
    p = q;
  }
  m.pad_lo = best_lo, m.pad_hi = best_hi, m.pad_shift = best_shift;
}

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
  identity_range(map, m);

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
    Compute<T> acc = 0;
    for (int t = 0; t < 3 && r.src[t] >= 0; ++t)
      acc += (Compute<T>)r.coef[t] * to_compute(x[(a * N + r.src[t]) * C + c]);
    out[idx] = from_compute<T>(acc);
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
    Compute<T> acc = to_compute(gx[idx]);
    for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e)
      acc += (Compute<T>)coefs[e] * to_compute(g[(a * P + rows[e]) * C + c]);
    gx[idx] = from_compute<T>(acc);
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
    Compute<T> acc[kMaxBands];
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) acc[f] = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t p = 2 * o + k + start;
      if (p < 0 || p >= P) continue;
      const ExtendRow& r = padded[p];
      for (int t = 0; t < 3 && r.src[t] >= 0; ++t) {
        Compute<T> v = to_compute(xa[r.src[t] * C]);
        if (r.coef[t] != 1.0) v *= (Compute<T>)r.coef[t];  // boundary terms only
#pragma unroll
        for (int f = 0; f < kMaxBands; ++f)
          if (f < outs.count) acc[f] = fma(static_cast<const Compute<T>*>(outs.w[f])[k * Cw + wc], v, acc[f]);
      }
    }
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f)
      if (f < outs.count) outs.base[f][a * outs.stride_a[f] + o * C + c] = from_compute<T>(acc[f]);
  }
}

// ---- synthesis -------------------------------------------------------------------------------

// acc plus output element (a, i, c) of synthesis: over the transpose entries (p, coef) of row
// i, the taps k with p - start = 2 j + k for a j in [0, L), the bands f, the sum of
// coef * w[f, k, c] * coeffs[f][a, j, c]. Shared by synthesis_kernel and the end tiles of
// synthesis_tiled.
template <typename T>
__device__ __forceinline__ Compute<T> synthesis_element(const Bands<const T>& coeffs, int64_t K, int64_t Cw,
                                                        int64_t wc, int64_t start, const int64_t* offsets,
                                                        const int64_t* rows, const double* coefs, int64_t a,
                                                        int64_t i, int64_t c, int64_t L, int64_t C,
                                                        Compute<T> acc) {
  for (int64_t e = offsets[i]; e < offsets[i + 1]; ++e) {
    const int64_t base = rows[e] - start;  // = 2 j + k
    const Compute<T> scale = (Compute<T>)coefs[e];
    for (int64_t k = ((base % 2) + 2) % 2; k < K; k += 2) {
      const int64_t j = (base - k) / 2;
      if (j < 0) break;
      if (j >= L) continue;
#pragma unroll
      for (int f = 0; f < kMaxBands; ++f) {
        if (f >= coeffs.count) break;
        Compute<T> v = to_compute(coeffs.base[f][a * coeffs.stride_a[f] + j * C + c]);
        if (scale != 1) v *= scale;
        acc = fma(static_cast<const Compute<T>*>(coeffs.w[f])[k * Cw + wc], v, acc);
      }
    }
  }
  return acc;
}

// A synthesis result v as stored: rounded to T, then, with a residual (b not null), b + that
// rounded again, which is what add(base, synthesis) gives.
template <typename T>
__device__ __forceinline__ T plus_base(Compute<T> v, const T* b) {
  const T r = from_compute<T>(v);
  return b ? from_compute<T>(to_compute(*b) + to_compute(r)) : r;
}

// out (a, i, c) = sum over the transpose entries (p, coef) of row i, over the taps k with
// p - start = 2 j + k for a j in [0, L), over the bands f: coef * w[f, k, c] * coeffs[f][a, j, c].
// With `accumulate`, adds to out (a later group of bands) instead of writing it; with `base`
// (a plane, batch stride base_sa), adds base to the result (plus_base).
template <typename T>
__global__ void synthesis_kernel(Bands<const T> coeffs, int64_t K, int64_t Cw, int64_t start,
                                 const int64_t* offsets, const int64_t* rows,
                                 const double* coefs, T* out, int64_t A, int64_t n_out,
                                 int64_t L, int64_t C, bool accumulate, const T* base, int64_t base_sa) {
  WAVSPA_GRID_STRIDE(idx, A * n_out * C) {
    const int64_t c = idx % C, i = (idx / C) % n_out, a = idx / (C * n_out);
    const int64_t wc = Cw == 1 ? 0 : c;
    const Compute<T> acc = accumulate ? to_compute(out[idx]) : Compute<T>(0);
    out[idx] = plus_base(synthesis_element(coeffs, K, Cw, wc, start, offsets, rows, coefs, a, i, c, L, C, acc),
                         base ? base + a * base_sa + i * C + c : nullptr);
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
      const double gv = (double)to_compute(gf[a * g.stride_a[f] + o * C + c]);
      const T* xa = x + a * x_stride_a + c;
      const ExtendRow& r = padded[p];
      for (int t = 0; t < 3 && r.src[t] >= 0; ++t) acc += r.coef[t] * gv * (double)to_compute(xa[r.src[t] * C]);
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

template <typename W>
__global__ void filter_grad_finish(const double* partial, int64_t chunks, int64_t nfK,
                                   int64_t C, int64_t Cw, W* grad_w) {
  __shared__ double tree[kFinishThreads];
  const int64_t fk = blockIdx.x;
  double mine = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    // Eight chunks' loads issued together, then added one after another: the same order of
    // additions as a plain loop, without a load latency per chunk.
    double s = 0;
    int64_t ch = 0;
    for (; ch + 8 <= chunks; ch += 8) {
      double v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) v[u] = partial[((ch + u) * nfK + fk) * C + c];
#pragma unroll
      for (int u = 0; u < 8; ++u) s += v[u];
    }
    for (; ch < chunks; ++ch) s += partial[(ch * nfK + fk) * C + c];
    if (Cw == 1) mine += s;
    else grad_w[fk * C + c] = (W)s;
  }
  if (Cw != 1) return;  // uniform over the block: no thread is left at the barrier below
  tree[threadIdx.x] = mine;
  __syncthreads();
  for (int half = kFinishThreads / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) tree[threadIdx.x] += tree[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_w[fk] = (W)tree[0];
}

// Pass 2 for per-channel filters (Cw == C): grid (nf K, channel tiles of 32), threads (32, 8).
// Thread row y adds chunks y, y + 8, ... in order, then the 8 row sums are added in row order:
// a fixed order, with 8 times the threads of filter_grad_finish (whose 32 blocks, one per
// (f, k), left most of the card idle).
template <typename W>
__global__ void filter_grad_finish_channels(const double* partial, int64_t chunks, int64_t nfK, int64_t C,
                                            W* grad_w) {
  __shared__ double rows[kTileRows][kTile];
  const int64_t fk = blockIdx.x, c = (int64_t)blockIdx.y * kTile + threadIdx.x;
  double s = 0;
  if (c < C)
    for (int64_t ch = threadIdx.y; ch < chunks; ch += kTileRows) s += partial[(ch * nfK + fk) * C + c];
  rows[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double total = 0;
    for (int y = 0; y < kTileRows; ++y) total += rows[y][threadIdx.x];
    grad_w[fk * C + c] = (W)total;
  }
}

// Pass 2, either kernel: grad_w (nfK, Cw) from partial[chunks][nfK][C].
template <typename W>
void finish_filter_grad(const double* partial, int64_t chunks, int64_t nfK, int64_t C, int64_t Cw, W* grad_w,
                        cudaStream_t stream) {
  if (Cw == C && Cw > 1 && chunks > 0) {
    filter_grad_finish_channels<W><<<dim3((unsigned)nfK, (unsigned)((C + kTile - 1) / kTile)), dim3(kTile, kTileRows), 0,
                                     stream>>>(partial, chunks, nfK, C, grad_w);
  } else {
    filter_grad_finish<W><<<(unsigned)nfK, kFinishThreads, 0, stream>>>(partial, chunks, nfK, C, Cw, grad_w);
  }
  WAVSPA_CUDA_LAUNCH_CHECK();
}

// ---- tiled kernels (C >= kTiledMinC) ----------------------------------------------------------
//
// The kernels above give each thread one output element and read the boundary map, the
// filter and the input from global memory for every tap: in a WavSpA block (C = 128
// channels, F = 16) that ran at a few percent of the card's bandwidth. The tiled kernels
// give a block of (32 channels) x (8 thread rows) a tile of 64 output rows of one a: the input
// rows the tile needs are staged once into shared memory (through the boundary map, so the
// taps read no map), each thread keeps 8 outputs of its channel and every band's tap in
// registers, and global memory sees each input and output element about once.
constexpr int kWTile = 32, kWRows = 8, kWPer = 8, kWOut = kWRows * kWPer;
constexpr int64_t kTiledMinC = 16;  // below this most of a warp's 32 channel lanes would idle

__device__ __forceinline__ int64_t floor_div2(int64_t x) { return x >= 0 ? x / 2 : -((1 - x) / 2); }

// Padded rows [p0, p0 + rows) of plane a of x (zero outside [0, P)), channels c0.., into
// xe[rows][kWTile]: each padded row is the sum of its map terms; rows in the map's plain range
// are read straight from their signal row.
// Padded row p (any integer; zero outside [0, P)) of one channel: xc points at the channel's
// element of signal row 0. Rows in the map's plain range are read straight from their signal row.
template <typename T>
__device__ __forceinline__ Compute<T> padded_value(const T* xc, const MapView& m, int64_t p, int64_t C) {
  if (p >= m.pad_lo && p < m.pad_hi) return to_compute(xc[(p + m.pad_shift) * C]);
  Compute<T> v = 0;
  if (p >= 0 && p < m.P) {
    const ExtendRow& e = m.padded[p];
    for (int t = 0; t < 3 && e.src[t] >= 0; ++t) {
      const Compute<T> s = to_compute(xc[e.src[t] * C]);
      v += e.coef[t] == 1.0 ? s : (Compute<T>)e.coef[t] * s;
    }
  }
  return v;
}

template <typename T>
__device__ __forceinline__ void stage_extended(Compute<T>* xe, const T* xa, const MapView& m, int64_t p0, int rows,
                                               int64_t c, int64_t C) {
#pragma unroll 4
  for (int r = threadIdx.y; r < rows; r += kWRows)
    xe[r * kWTile + threadIdx.x] = c < C ? padded_value(xa + c, m, p0 + r, C) : Compute<T>(0);
}

// analysis_kernel's sums: grid (channel tiles, output tiles, a).
template <typename T>
__global__ void __launch_bounds__(kWTile * kWRows) analysis_tiled(const T* x, int64_t x_stride_a, MapView map,
                                                                  Bands<T> outs, int K, int64_t Cw,
                                                                  int64_t start, int64_t L, int64_t C) {
  extern __shared__ unsigned char wavelet_smem[];
  using V = Compute<T>;
  V* xe = reinterpret_cast<V*>(wavelet_smem);  // [2 kWOut + K - 2][kWTile]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = (int64_t)blockIdx.x * kWTile + tx, o0 = (int64_t)blockIdx.y * kWOut, a = blockIdx.z;
  const int64_t outs_here = L - o0 < kWOut ? L - o0 : kWOut;
  stage_extended(xe, x + a * x_stride_a, map, 2 * o0 + start, (int)(2 * outs_here + K - 2), c, C);
  __syncthreads();
  if (c >= C) return;
  const int64_t wc = Cw == 1 ? 0 : c;
  V acc[kMaxBands][kWPer];
#pragma unroll
  for (int f = 0; f < kMaxBands; ++f)
#pragma unroll
    for (int r = 0; r < kWPer; ++r) acc[f][r] = 0;
  const V* row = xe + 2 * ty * kWTile + tx;  // output ty + kWRows r reads row 2 (ty + kWRows r) + k
  const V* wp[kMaxBands];
#pragma unroll
  for (int f = 0; f < kMaxBands; ++f) wp[f] = f < outs.count ? static_cast<const V*>(outs.w[f]) + wc : nullptr;
  const int cw = (int)Cw;
#pragma unroll 2
  for (int k = 0; k < K; ++k, row += kWTile) {
    V wv[kMaxBands];
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) wv[f] = f < outs.count ? wp[f][k * cw] : V(0);
#pragma unroll
    for (int r = 0; r < kWPer; ++r) {
      const V v = row[2 * kWRows * r * kWTile];
#pragma unroll
      for (int f = 0; f < kMaxBands; ++f)
        if (f < outs.count) acc[f][r] = fma(wv[f], v, acc[f][r]);
    }
  }
#pragma unroll
  for (int r = 0; r < kWPer; ++r) {
    const int64_t o = o0 + ty + kWRows * r;
    if (o >= L) break;
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f)
      if (f < outs.count) outs.base[f][a * outs.stride_a[f] + o * C + c] = from_compute<T>(acc[f][r]);
  }
}

// synthesis_kernel's sums: grid (channel tiles, output tiles, a). A tile inside the map's
// identity range (DeviceMap) stages the coefficient rows it reads and takes its taps from
// shared memory; a tile at the ends (a few per signal: there a row may receive several padded
// rows, with coefficients) computes each element as synthesis_kernel does.
template <typename T>
__global__ void __launch_bounds__(kWTile * kWRows) synthesis_tiled(Bands<const T> coeffs, int64_t K, int64_t Cw,
                                                                   int64_t start, MapView map, T* out,
                                                                   int64_t n_out, int64_t L, int64_t C,
                                                                   bool accumulate, const T* base, int64_t base_sa) {
  extern __shared__ unsigned char wavelet_smem[];
  using V = Compute<T>;
  V* cs = reinterpret_cast<V*>(wavelet_smem);  // [count][JR][kWTile]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = (int64_t)blockIdx.x * kWTile + tx, i0 = (int64_t)blockIdx.y * kWOut, a = blockIdx.z;
  const int64_t i_end = n_out < i0 + kWOut ? n_out : i0 + kWOut;
  const int64_t wc = Cw == 1 ? 0 : c;
  T* out_a = out + a * n_out * C + c;
  const T* base_a = base ? base + a * base_sa + c : nullptr;
  if (i0 >= map.ident_lo && i_end <= map.ident_hi) {  // uniform over the block
    // Row i reads padded row i + shift = start + 2 j + k: coefficient rows jlo..jhi.
    const int64_t u0 = i0 + map.shift - start;
    const int64_t jlo = floor_div2(u0 - (K - 1)), jhi = floor_div2(u0 + (i_end - i0) - 1);
    const int JR = (int)(jhi - jlo + 1);
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) {  // unrolled: a constant index keeps `coeffs` in registers
      if (f >= coeffs.count) break;
      const T* cf = coeffs.base[f] + a * coeffs.stride_a[f] + c;
      for (int r = ty; r < JR; r += kWRows) {
        const int64_t j = jlo + r;
        cs[(f * JR + r) * kWTile + tx] = c < C && j >= 0 && j < L ? to_compute(cf[j * C]) : V(0);
      }
    }
    __syncthreads();
    if (c >= C) return;
    V acc[kWPer];
#pragma unroll
    for (int r = 0; r < kWPer; ++r) {
      const int64_t i = i0 + ty + kWRows * r;
      acc[r] = accumulate && i < i_end ? to_compute(out_a[i * C]) : V(0);
    }
    // u = u0 + ty + kWRows r has the parity of u0 + ty: the taps k of that parity, row
    // j = (u - k) / 2 = (u0 + ty - k) / 2 + 4 r.
    const int par = (int)((u0 + ty) & 1), cw = (int)Cw;
    const V* wp[kMaxBands];
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) wp[f] = f < coeffs.count ? static_cast<const V*>(coeffs.w[f]) + wc : nullptr;
    // tap k reads row jr = (u0 + ty - k) / 2 - jlo, one row up per step of 2 in k
    const V* col0 = cs + (int)((u0 + ty - par) / 2 - jlo) * kWTile + tx;
#pragma unroll 2
    for (int k = par; k < K; k += 2, col0 -= kWTile) {
#pragma unroll
      for (int f = 0; f < kMaxBands; ++f) {
        if (f >= coeffs.count) break;
        const V wv = wp[f][k * cw];
        const V* col = col0 + f * JR * kWTile;
#pragma unroll
        for (int r = 0; r < kWPer; ++r) acc[r] = fma(wv, col[(kWRows / 2) * r * kWTile], acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kWPer; ++r) {
      const int64_t i = i0 + ty + kWRows * r;
      if (i < i_end) out_a[i * C] = plus_base(acc[r], base_a ? base_a + i * C : nullptr);
    }
    return;
  }
  if (c >= C) return;
  for (int r = 0; r < kWPer; ++r) {
    const int64_t i = i0 + ty + kWRows * r;
    if (i >= i_end) break;
    out_a[i * C] = plus_base(synthesis_element(coeffs, K, Cw, wc, start, map.offsets, map.rows, map.coefs, a, i, c, L,
                                               C, accumulate ? to_compute(out_a[i * C]) : V(0)),
                             base_a ? base_a + i * C : nullptr);
  }
}

// filter_grad_partial's sums: grid (channel tiles, chunks of output tiles). A block walks its
// chunk's (a, output tile) pairs in order, staging the tile's padded input rows and gradient
// rows; thread row ty owns the taps k = ty + kWRows kt (kt < KT) of every band, summed in
// double over the chunk in a fixed order, and writes them to partial[chunk, f0 + f, k, c].
template <typename T, int KT>
__global__ void __launch_bounds__(kWTile * kWRows) filter_grad_tiled(Bands<const T> g, int64_t f0, int64_t nf,
                                                                     const T* x, int64_t x_stride_a, MapView map,
                                                                     int64_t start, int64_t K, int64_t L,
                                                                     int64_t C, int64_t tiles,
                                                                     int64_t tiles_per_chunk, double* partial) {
  extern __shared__ unsigned char wavelet_smem[];
  using V = Compute<T>;
  V* gs = reinterpret_cast<V*>(wavelet_smem);  // [count][kWOut][kWTile]
  V* xe = gs + g.count * kWOut * kWTile;        // [2 kWOut + K - 2][kWTile]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = (int64_t)blockIdx.x * kWTile + tx, chunk = blockIdx.y;
  const int64_t out_tiles = (L + kWOut - 1) / kWOut;
  const int64_t t0 = chunk * tiles_per_chunk, t1 = t0 + tiles_per_chunk < tiles ? t0 + tiles_per_chunk : tiles;
  double acc[kMaxBands][KT];
#pragma unroll
  for (int f = 0; f < kMaxBands; ++f)
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) acc[f][kt] = 0;
  for (int64_t tile = t0; tile < t1; ++tile) {
    const int64_t a = tile / out_tiles, o0 = (tile % out_tiles) * kWOut;
    const int outs_here = (int)(L - o0 < kWOut ? L - o0 : kWOut);
    __syncthreads();  // the previous tile's readers are done
    stage_extended(xe, x + a * x_stride_a, map, 2 * o0 + start, 2 * outs_here + (int)K - 2, c, C);
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f) {
      if (f >= g.count) break;
      for (int r = ty; r < kWOut; r += kWRows)
        gs[(f * kWOut + r) * kWTile + tx] =
            c < C && r < outs_here ? to_compute(g.base[f][a * g.stride_a[f] + (o0 + r) * C + c]) : V(0);
    }
    __syncthreads();
    for (int o = 0; o < outs_here; ++o) {
      double gv[kMaxBands];
#pragma unroll
      for (int f = 0; f < kMaxBands; ++f) gv[f] = f < g.count ? (double)gs[(f * kWOut + o) * kWTile + tx] : 0.0;
#pragma unroll
      for (int kt = 0; kt < KT; ++kt) {
        const int k = ty + kWRows * kt;
        if (k >= K) break;
        const double xv = (double)xe[(2 * o + k) * kWTile + tx];
#pragma unroll
        for (int f = 0; f < kMaxBands; ++f)
          if (f < g.count) acc[f][kt] = fma(gv[f], xv, acc[f][kt]);
      }
    }
  }
  if (c >= C) return;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
    const int k = ty + kWRows * kt;
    if (k >= K) break;
#pragma unroll
    for (int f = 0; f < kMaxBands; ++f)
      if (f < g.count) partial[((chunk * nf + f0 + f) * K + k) * C + c] = acc[f][kt];
  }
}

// ---- vector-tile kernels (16-byte rows, K <= 16, two bands) ----------------------------------
//
// The WavSpA case: (A, N, C) with C a few hundred channels, one dwt pair of K <= 16 taps. The
// earlier designs (a thread per element; tiles staged one element per thread; a thread per
// channel holding its window and taps in registers) ran at a few percent of the card's
// bandwidth in the library, latency-bound on loads that waited for one another. Here a block of
// 32 x 8 threads owns kVC = 64 channels of one a and a run of output tiles of kVOut = 64 rows
// (vtile_tiles_per_block: about one wave of blocks):
//   - staging: the rows a tile reads are copied into shared memory as they are (T) by cp.async,
//     the next tile's copy issued before the current tile is computed, so the loads run under
//     the arithmetic; rows the boundary map sums from several signal rows (a few at the ends)
//     are staged in Compute<T> instead (so they keep float precision, as on the CPU); the taps
//     of the block's channels are staged once, zero past K;
//   - compute: a thread takes a pair of channels and kVR = 8 output rows, its window of input
//     rows read from shared memory into registers once (converted to Compute<T> there), the
//     taps read per k (each read of a band's tap pair feeds 2 channels x 8 rows of FMAs);
//     every index is a compile-time constant;
//   - stores: a pair of channels per thread, 128 or 256 contiguous bytes per warp and row.
// Rows of a plane must be 16-byte aligned (C sizeof(T) a multiple of 16, base pointers and plane
// strides too); vtile_fits checks it on the host. At the ends of a signal, where the boundary
// map is not one signal row per padded row, analysis stages the few such rows element by
// element, a warp per row (stage_padded), and synthesis adds the rows' extra map entries
// (synthesis_edge_pair); the blocks holding the ends are launched first (vtile_of_block).
constexpr int kVC = 64, kVRows = 8, kVR = 8, kVOut = kVRows * kVR, kVThreads = kWTile * kVRows;

// A pair of neighbouring channels, loaded or stored as one access.
template <typename T>
struct alignas(2 * sizeof(T)) Two {
  T x, y;
};

// acc += w * v for both channels of a pair.
template <typename V>
__device__ __forceinline__ void fma_pair(Two<V>& acc, const Two<V>& w, const Two<V>& v) {
  acc.x = fma(w.x, v.x, acc.x);
  acc.y = fma(w.y, v.y, acc.y);
}

// 16 bytes of T (E = 16 / sizeof(T) values) into dst[0, E) of Compute<T>.
template <typename T>
__device__ __forceinline__ void store_unit(Compute<T>* dst, const uint4& u) {
  constexpr int E = 16 / (int)sizeof(T);
  const T* v = reinterpret_cast<const T*>(&u);
  if constexpr (std::is_same_v<T, bf16>) {
    reinterpret_cast<float4*>(dst)[0] = make_float4(to_compute(v[0]), to_compute(v[1]), to_compute(v[2]), to_compute(v[3]));
    reinterpret_cast<float4*>(dst)[1] = make_float4(to_compute(v[4]), to_compute(v[5]), to_compute(v[6]), to_compute(v[7]));
  } else {
    static_assert(E * sizeof(T) == 16);
    *reinterpret_cast<uint4*>(dst) = u;  // float, double: the same bytes
  }
}

// Rows [0, ROWS) of a tile into dst[ROWS][kVC] (Compute<T>): row r's kVC channels from
// row_ptr(r) (channel c0 of that row; nullptr for a row of zeros), `units` 16-byte units of each
// row valid (the rest zero). Every load is issued before any store.
template <typename T, int ROWS, typename RowPtr>
__device__ __forceinline__ void stage_tile(Compute<T>* dst, RowPtr row_ptr, int units) {
  constexpr int UPR = kVC * (int)sizeof(T) / 16, UNITS = ROWS * UPR, PER = (UNITS + kVThreads - 1) / kVThreads;
  constexpr int E = 16 / (int)sizeof(T);
  const int tid = threadIdx.y * kWTile + threadIdx.x;
  uint4 buf[PER];
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int u = tid + kVThreads * i, r = u / UPR, cu = u % UPR;
    const T* src = u < UNITS ? row_ptr(r) : nullptr;
    buf[i] = src && cu < units ? reinterpret_cast<const uint4*>(src)[cu] : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int u = tid + kVThreads * i;
    if (u < UNITS) store_unit<T>(dst + (u / UPR) * kVC + (u % UPR) * E, buf[i]);
  }
}

// stage_tile's rows as they are (T, no conversion) into dst[ROWS][kVC] through cp.async: no
// registers and no wait here (the caller commits and waits). `valid` is any readable address,
// passed for the zero-filled units.
template <typename T, int ROWS, typename RowPtr>
__device__ __forceinline__ void stage_tile_async(T* dst, RowPtr row_ptr, int units, const T* valid) {
  constexpr int UPR = kVC * (int)sizeof(T) / 16, UNITS = ROWS * UPR, E = 16 / (int)sizeof(T);
  for (int u = threadIdx.y * kWTile + threadIdx.x; u < UNITS; u += kVThreads) {
    const int r = u / UPR, cu = u % UPR;
    const T* src = row_ptr(r);
    const bool in = src && cu < units;
    cp_async16(dst + r * kVC + cu * E, in ? src + cu * E : valid, in ? 16 : 0);
  }
}

// A pair of T from shared memory, in Compute<T>.
template <typename T>
__device__ __forceinline__ Two<Compute<T>> load_pair(const Two<T>* p) {
  const Two<T> v = *p;
  return {to_compute(v.x), to_compute(v.y)};
}

// set_wavelet_tiles_per_block's setting (0: vtile_tiles_per_block's choice); at first the
// environment's WAVSPA_WAVELET_TILES, so that a sanitizer run of a tool reaches the walk too.
std::atomic<int> g_tiles_per_block{[] {
  const char* env = std::getenv("WAVSPA_WAVELET_TILES");
  const int v = env ? std::atoi(env) : 0;
  return v >= 0 && v <= 64 ? v : 0;
}()};

// The tiles per block of a vector-tile kernel: at most one wave of two blocks per SM (a second,
// partial wave would leave most SMs idle while it runs), at most 8 tiles (a block walks its
// tiles with the next one's rows on the way while it computes the current).
int vtile_tiles_per_block(int64_t blocks_of_one_tile) {
  if (const int set = g_tiles_per_block.load()) return set;
  const int64_t wave = 2 * (int64_t)sm_count();
  return (int)std::clamp<int64_t>((blocks_of_one_tile + wave - 1) / wave, 1, 8);
}

// Padded rows [p0, p0 + ROWS) of plane xa (channels c0..) into xs[ROWS][kVC]. Rows in the map's
// plain range (all of them but at the ends of a signal) go through stage_tile's 16-byte loads;
// the others (a few rows of the end tiles) are then summed through the map element by element,
// a warp per row, so that no thread walks a long chain of dependent loads.
template <typename T, int ROWS>
__device__ __forceinline__ void stage_padded(Compute<T>* xs, const T* xa, const MapView& map, int64_t p0,
                                             int64_t c0, int64_t C, int cvalid) {
  const int units = cvalid * (int)sizeof(T) / 16;
  if (p0 >= map.pad_lo && p0 + ROWS <= map.pad_hi) {
    const T* first = xa + (p0 + map.pad_shift) * C + c0;
    stage_tile<T, ROWS>(xs, [&](int r) { return first + (int64_t)r * C; }, units);
    return;
  }
  stage_tile<T, ROWS>(xs, [&](int r) {
    const int64_t p = p0 + r;
    return p >= map.pad_lo && p < map.pad_hi ? xa + (p + map.pad_shift) * C + c0 : nullptr;
  }, units);
  __syncthreads();  // the zeros stage_tile wrote for the other rows land before they are replaced
  const int warp = (threadIdx.y * kWTile + threadIdx.x) / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < ROWS; r += kVThreads / 32) {
    const int64_t p = p0 + r;
    if (p >= map.pad_lo && p < map.pad_hi) continue;
    for (int cc = lane; cc < cvalid; cc += 32) xs[r * kVC + cc] = padded_value(xa + c0 + cc, map, p, C);
  }
}

// The taps of both bands for channels [c0, c0 + kVC) into ws[NB][KMAX][kVC], zero for k >= K,
// bands past the count and channels past C.
template <typename T, int KMAX, int NB, typename B>
__device__ __forceinline__ void stage_taps(Compute<T>* ws, const B& bands, int K, int64_t Cw, int64_t c0, int64_t C) {
  using V = Compute<T>;
  const int tid = threadIdx.y * kWTile + threadIdx.x;
#pragma unroll
  for (int f = 0; f < NB; ++f) {  // unrolled: bands.w is indexed by constants (no local-memory copy)
    const V* wf = f < bands.count ? static_cast<const V*>(bands.w[f]) : nullptr;
    for (int i = tid; i < KMAX * kVC; i += kVThreads) {
      const int k = i / kVC;
      const int64_t c = c0 + i % kVC;
      ws[f * KMAX * kVC + i] = wf && k < K && c < C ? wf[k * Cw + (Cw == 1 ? 0 : c)] : V(0);
    }
  }
}

// The (block row, a) of a vector-tile block, a block row being a run of output tiles. Blocks
// start in launch order (x, then y, then z), so the rows at the ends of a signal, where the
// boundary map sends part of the work through global memory and a block takes longer, go
// first: every a's first row, then every a's last row, then the inner rows, which fill in
// around them.
struct TileOf {
  int64_t tile, a;
};
__device__ __forceinline__ TileOf vtile_of_block() {
  const int64_t tiles = gridDim.y, A = gridDim.z;
  const int64_t e = blockIdx.y + tiles * (int64_t)blockIdx.z, rank = e / A;
  return {rank == 0 ? 0 : rank == 1 ? tiles - 1 : rank - 1, e % A};
}

// analysis: outs[f] (a, o, c) = sum_k w[f, k, c] * xe[2 o + k + start]; grid (channel tiles,
// blocks of nt output tiles, a), block rows mapped by vtile_of_block. A block walks its tiles in
// order: a tile whose padded rows are all in the map's plain range is copied as it is (T) by
// cp.async, the next such tile's copy issued before the current one is computed; a tile at the
// ends is summed through the map into Compute<T> rows (stage_padded), in the same bytes.
// Shared memory: xt[2][ROWS][kVC] T (or xv[ROWS][kVC] Compute<T>), then ws[NB][KMAX][kVC].
template <typename T, int KMAX>
constexpr size_t analysis_stage_bytes() {
  constexpr size_t rows = 2 * kVOut + KMAX - 2, raw = 2 * rows * kVC * sizeof(T), summed = rows * kVC * sizeof(Compute<T>);
  return raw > summed ? raw : summed;
}

template <typename T, int KMAX, int NB>
__global__ void __launch_bounds__(kVThreads, 2) analysis_vtile(const T* x, int64_t x_stride_a, MapView map, Bands<T> outs,
                                                             int K, int64_t Cw, int64_t start, int64_t L, int64_t C,
                                                             int nt) {
  using V = Compute<T>;
  using P = Two<V>;
  constexpr int ROWS = 2 * kVOut + KMAX - 2, W = 2 * kVR + KMAX - 2;
  extern __shared__ __align__(16) unsigned char wavelet_smem[];
  T* xt = reinterpret_cast<T*>(wavelet_smem);
  V* xv = reinterpret_cast<V*>(wavelet_smem);
  V* ws = reinterpret_cast<V*>(wavelet_smem + analysis_stage_bytes<T, KMAX>());
  const TileOf at = vtile_of_block();
  const int64_t c0 = (int64_t)blockIdx.x * kVC, a = at.a, tiles = (L + kVOut - 1) / kVOut, tile0 = at.tile * nt;
  const int n = (int)(tiles - tile0 < nt ? tiles - tile0 : nt);
  const T* xa = x + a * x_stride_a;
  const int cvalid = (int)(C - c0 < kVC ? C - c0 : kVC), units = cvalid * (int)sizeof(T) / 16;
  auto first_row = [&](int64_t tile) { return 2 * tile * kVOut + start; };
  auto plain = [&](int64_t tile) { return first_row(tile) >= map.pad_lo && first_row(tile) + ROWS <= map.pad_hi; };
  auto issue = [&](int64_t tile, int buf) {
    const T* first = xa + (first_row(tile) + map.pad_shift) * C + c0;
    stage_tile_async<T, ROWS>(xt + buf * ROWS * kVC, [&](int r) { return first + (int64_t)r * C; }, units, xa);
    cp_async_commit();
  };
  stage_taps<T, KMAX, NB>(ws, outs, K, Cw, c0, C);
  const int tx = threadIdx.x, ty = threadIdx.y;
  bool issued = false;  // whether tile t's copy is on the way
  for (int t = 0; t < n; ++t) {
    const int64_t tile = tile0 + t;
    const bool is_plain = plain(tile);  // uniform over the block
    if (is_plain && !issued) issue(tile, t & 1);
    issued = is_plain && t + 1 < n && plain(tile + 1);
    if (issued) issue(tile + 1, (t + 1) & 1);
    if (!is_plain) stage_padded<T, ROWS>(xv, xa, map, first_row(tile), c0, C, cvalid);
    else if (issued) cp_async_wait<1>();
    else cp_async_wait<0>();
    __syncthreads();
    if (2 * tx < cvalid) {
      P xr[W];
      if (is_plain) {
        const Two<T>* xp = reinterpret_cast<const Two<T>*>(xt + ((t & 1) * ROWS + 2 * ty * kVR) * kVC) + tx;
#pragma unroll
        for (int r = 0; r < W; ++r) xr[r] = load_pair(xp + r * (kVC / 2));
      } else {
        const P* xp = reinterpret_cast<const P*>(xv + 2 * ty * kVR * kVC) + tx;
#pragma unroll
        for (int r = 0; r < W; ++r) xr[r] = xp[r * (kVC / 2)];
      }
      P acc[NB][kVR];
#pragma unroll
      for (int f = 0; f < NB; ++f)
#pragma unroll
        for (int r = 0; r < kVR; ++r) acc[f][r] = P{0, 0};
      const P* wp = reinterpret_cast<const P*>(ws) + tx;
#pragma unroll
      for (int k = 0; k < KMAX; ++k) {
        P wv[NB];
#pragma unroll
        for (int f = 0; f < NB; ++f) wv[f] = wp[(f * KMAX + k) * (kVC / 2)];
#pragma unroll
        for (int r = 0; r < kVR; ++r)
#pragma unroll
          for (int f = 0; f < NB; ++f) fma_pair(acc[f][r], wv[f], xr[2 * r + k]);
      }
      const int64_t o_first = tile * kVOut + ty * kVR;
#pragma unroll
      for (int f = 0; f < NB; ++f) {
        if (f >= outs.count) break;
        Two<T>* dst = reinterpret_cast<Two<T>*>(outs.base[f] + a * outs.stride_a[f] + o_first * C + c0) + tx;
#pragma unroll
        for (int r = 0; r < kVR; ++r)
          if (o_first + r < L) dst[r * (C / 2)] = Two<T>{from_compute<T>(acc[f][r].x), from_compute<T>(acc[f][r].y)};
      }
    }
    __syncthreads();  // every read of this tile's rows is done before they are replaced
  }
}

// synthesis: out (a, i, c) as synthesis_kernel; grid (channel tiles, blocks of nt output tiles,
// a). For output rows inside the map's identity range (row i receives padded row u = i + shift
// alone, with coefficient 1) a tile needs the coefficient rows [jlo, jlo + JROWS) of both bands,
// where v = u - start = 2 j + k and jlo = floor((v0 - KMAX + 1) / 2) for the tile's first row; a
// thread's rows read their JW rows from there, D = v - 2 jlo (KMAX - 1 or KMAX, the same for
// every thread of the tile) fixing which taps meet which rows. A block walks its tiles with the
// next tile's rows copied by cp.async (T, as they are) while it computes the current one. A tile
// at the ends computes its rows the same way when every row has that entry (map.main_all) and
// adds the rows' other entries through the map (synthesis_edge_pair), those rows spread over the
// thread rows (they sit together at the ends: owned by one thread row, each one's chain of
// dependent loads would run one after the other) and handed over in ex; otherwise it computes
// every element through the map. Shared memory: cs[2][NB][JROWS][kVC] T, ex[kVOut][kVC]
// Compute<T>, then ws[NB][KMAX][kVC].
template <int KMAX>
struct SynthesisTile {
  static constexpr int JROWS = (kVOut + KMAX) / 2 + 1, JW = (kVR + KMAX) / 2 + 1;
};

template <typename T, int KMAX, int NB>
constexpr size_t synthesis_stage_bytes() {
  return (size_t)2 * NB * SynthesisTile<KMAX>::JROWS * kVC * sizeof(T) + (size_t)kVOut * kVC * sizeof(Compute<T>);
}

template <int D, typename T, int KMAX, int NB>
__device__ __forceinline__ void synthesis_vtile_rows(const T* cs, const Compute<T>* ws, Two<Compute<T>> (&acc)[kVR]) {
  using V = Compute<T>;
  using P = Two<V>;
  constexpr int JROWS = SynthesisTile<KMAX>::JROWS, JW = SynthesisTile<KMAX>::JW;
  const int tx = threadIdx.x, ty = threadIdx.y;
  P cw[NB][JW];
#pragma unroll
  for (int f = 0; f < NB; ++f) {
    const Two<T>* cp = reinterpret_cast<const Two<T>*>(cs + (f * JROWS + ty * kVR / 2) * kVC) + tx;
#pragma unroll
    for (int jj = 0; jj < JW; ++jj) cw[f][jj] = load_pair(cp + jj * (kVC / 2));
  }
  const P* wp = reinterpret_cast<const P*>(ws) + tx;
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    P wv[NB];
#pragma unroll
    for (int f = 0; f < NB; ++f) wv[f] = wp[(f * KMAX + k) * (kVC / 2)];
#pragma unroll
    for (int r = 0; r < kVR; ++r)
      if ((D + r - k) % 2 == 0)
#pragma unroll
        for (int f = 0; f < NB; ++f) fma_pair(acc[r], wv[f], cw[f][(D + r - k) / 2]);
  }
}

// Output pair (i, c), (i, c + 1) of an end tile of synthesis_vtile, added to acc: over row i's
// transpose entries (p, coef), coef times padded row p of the filtered bands,
// y[p] = sum_f sum_k w[f, k] c_f[j] with p - start = 2 j + k and 0 <= j < L; with SKIP_MAIN the
// entry (i + shift, 1), which the caller computed from shared memory, is left out. The KMAX / 2
// rows j that meet one parity of k are loaded together (unconditional but for the range check),
// and the taps come from shared memory.
template <typename T, int KMAX, int NB, bool SKIP_MAIN>
__device__ __forceinline__ void synthesis_edge_pair(const Bands<const T>& coeffs, const Compute<T>* ws,
                                                    const MapView& map, int64_t start, int64_t a, int64_t i,
                                                    int64_t c, int64_t L, int64_t C, Two<Compute<T>>& acc) {
  using V = Compute<T>;
  using P = Two<V>;
  const P* wp = reinterpret_cast<const P*>(ws) + threadIdx.x;
  const Two<T> zero{from_compute<T>(V(0)), from_compute<T>(V(0))};
  for (int64_t e = map.offsets[i]; e < map.offsets[i + 1]; ++e) {
    if (SKIP_MAIN && map.rows[e] == i + map.shift && map.coefs[e] == 1.0) continue;
    const int64_t base = map.rows[e] - start;  // = 2 j + k
    const int k0 = (int)(base & 1);            // the parity of k (two's complement: also for base < 0)
    const int64_t jb = (base - k0) / 2;        // j = jb - m for k = k0 + 2 m
    P y{0, 0};
#pragma unroll
    for (int f = 0; f < NB; ++f) {
      if (f >= coeffs.count) break;
      const T* cf = coeffs.base[f] + a * coeffs.stride_a[f] + c;
      Two<T> cv[KMAX / 2];
#pragma unroll
      for (int m = 0; m < KMAX / 2; ++m) {
        const int64_t j = jb - m;
        cv[m] = j >= 0 && j < L ? *reinterpret_cast<const Two<T>*>(cf + j * C) : zero;
      }
#pragma unroll
      for (int m = 0; m < KMAX / 2; ++m) {
        fma_pair(y, wp[(f * KMAX + k0 + 2 * m) * (kVC / 2)], P{to_compute(cv[m].x), to_compute(cv[m].y)});
      }
    }
    const V coef = (V)map.coefs[e];
    acc.x = fma(coef, y.x, acc.x);
    acc.y = fma(coef, y.y, acc.y);
  }
}

// BASE: with a residual base (a kernel of its own, so that the calls without one run the code
// they ran before it existed).
template <typename T, int KMAX, int NB, bool BASE>
__global__ void __launch_bounds__(kVThreads, 2) synthesis_vtile(Bands<const T> coeffs, int K, int64_t Cw, int64_t start,
                                                              MapView map, T* out, int64_t n_out, int64_t L, int64_t C,
                                                              bool accumulate, const T* base, int64_t base_sa, int nt) {
  using V = Compute<T>;
  using P = Two<V>;
  constexpr int JROWS = SynthesisTile<KMAX>::JROWS;
  extern __shared__ __align__(16) unsigned char wavelet_smem[];
  T* cs = reinterpret_cast<T*>(wavelet_smem);
  P* ex = reinterpret_cast<P*>(cs + 2 * NB * JROWS * kVC);
  V* ws = reinterpret_cast<V*>(wavelet_smem + synthesis_stage_bytes<T, KMAX, NB>());
  const TileOf at = vtile_of_block();
  const int64_t c0 = (int64_t)blockIdx.x * kVC, a = at.a, tiles = (n_out + kVOut - 1) / kVOut, tile0 = at.tile * nt;
  const int n = (int)(tiles - tile0 < nt ? tiles - tile0 : nt);
  const int cvalid = (int)(C - c0 < kVC ? C - c0 : kVC), units = cvalid * (int)sizeof(T) / 16;
  auto jlo_of = [&](int64_t tile) { return floor_div2(tile * kVOut + map.shift - start - (KMAX - 1)); };
  auto issue = [&](int64_t tile, int buf) {
    const int64_t jlo = jlo_of(tile);
#pragma unroll
    for (int f = 0; f < NB; ++f) {
      const T* plane = f < coeffs.count ? coeffs.base[f] + a * coeffs.stride_a[f] + c0 : nullptr;
      stage_tile_async<T, JROWS>(cs + (buf * NB + f) * JROWS * kVC, [&](int r) {
        const int64_t j = jlo + r;
        return plane && j >= 0 && j < L ? plane + j * C : nullptr;
      }, units, coeffs.base[0]);
    }
    cp_async_commit();
  };
  stage_taps<T, KMAX, NB>(ws, coeffs, K, Cw, c0, C);
  issue(tile0, 0);
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int t = 0; t < n; ++t) {
    const int64_t tile = tile0 + t, i0 = tile * kVOut;
    const int64_t c = c0 + 2 * tx, first = i0 + ty * kVR;
    const int64_t i_end = n_out < i0 + kVOut ? n_out : i0 + kVOut;
    const bool active = 2 * tx < cvalid;
    // The residual's rows of this thread, loaded before the wait and the products so that
    // their latency hides under them (read after the products, they stalled every tile).
    Two<T> bres[kVR];
    if constexpr (BASE) {
      const T* base_c = base + a * base_sa + c;
      if (active)
#pragma unroll
        for (int r = 0; r < kVR; ++r)
          if (first + r < i_end) bres[r] = *reinterpret_cast<const Two<T>*>(base_c + (first + r) * C);
    }
    if (t + 1 < n) {
      issue(tile + 1, (t + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bool inside = i0 >= map.ident_lo && i0 + kVOut <= map.ident_hi;  // uniform over the block
    T* out_c = out + a * n_out * C + c;
    auto edge_row = [&](int64_t i) { return i < i_end && (i < map.ident_lo || i >= map.ident_hi); };
    P acc[kVR];
#pragma unroll
    for (int r = 0; r < kVR; ++r) {
      acc[r] = P{0, 0};
      if (active && accumulate && first + r < i_end)
        acc[r] = load_pair(reinterpret_cast<const Two<T>*>(out_c + (first + r) * C));
    }
    if (active && (inside || map.main_all)) {
      const T* tile_cs = cs + (t & 1) * NB * JROWS * kVC;
      if (tile * kVOut + map.shift - start - 2 * jlo_of(tile) == KMAX)
        synthesis_vtile_rows<KMAX, T, KMAX, NB>(tile_cs, ws, acc);
      else
        synthesis_vtile_rows<KMAX - 1, T, KMAX, NB>(tile_cs, ws, acc);
    }
    if (!inside && map.main_all) {
      // Row i0 + rr's other entries by thread row rr % kVRows, into ex; then each owner adds them.
      if (active)
        for (int rr = ty; rr < kVOut; rr += kVRows)
          if (edge_row(i0 + rr)) {
            P y{0, 0};
            synthesis_edge_pair<T, KMAX, NB, true>(coeffs, ws, map, start, a, i0 + rr, c, L, C, y);
            ex[rr * (kVC / 2) + tx] = y;
          }
      __syncthreads();
      if (active)
#pragma unroll
        for (int r = 0; r < kVR; ++r)
          if (edge_row(first + r)) {
            const P y = ex[(ty * kVR + r) * (kVC / 2) + tx];
            acc[r].x += y.x;
            acc[r].y += y.y;
          }
    } else if (!inside && active) {
#pragma unroll
      for (int r = 0; r < kVR; ++r)  // r a compile-time index: acc stays in registers
        if (first + r < i_end) synthesis_edge_pair<T, KMAX, NB, false>(coeffs, ws, map, start, a, first + r, c, L, C, acc[r]);
    }
    if (active) {
#pragma unroll
      for (int r = 0; r < kVR; ++r)
        if (first + r < i_end) {
          Two<T> v{from_compute<T>(acc[r].x), from_compute<T>(acc[r].y)};
          if constexpr (BASE) {  // the residual, added to the rounded sum as add would (plus_base)
            const Two<T> b = bres[r];
            v = Two<T>{from_compute<T>(to_compute(b.x) + to_compute(v.x)), from_compute<T>(to_compute(b.y) + to_compute(v.y))};
          }
          *reinterpret_cast<Two<T>*>(out_c + (first + r) * C) = v;
        }
    }
    __syncthreads();  // every read of this tile's rows (and of ex) is done before they are replaced
  }
}

// filter gradient, pass 1: grid (channel tiles, chunks). A block walks its chunk's items (an a
// and an output tile of kVOut rows) in order. An item's bands' gradient rows (zero past L) and,
// where they are all in the map's plain range, its padded input rows are copied as they are
// (T) by cp.async, the next item's copy issued before the current one is computed; the input
// rows of an item at the ends are summed through the map into Compute<T> rows (stage_padded).
// Thread (tx, ty) owns channels c0 + 2 tx, + 1, the taps k = 4 q .. 4 q + 3 with q = ty % QN
// (QN = KMAX / 4 tap quads) of every band, and the item's output rows of split s = ty / QN
// (kVOut / S rows, S = kVRows / QN splits): per row o it reads the bands' gradient pair and two
// new input rows (its four taps meet rows 2 o + 4 q + j, two of them shared with row o - 1), for
// 4 NB products. The split's sums are taken in Compute<T> per item and added to double totals
// in item order; at the end the S splits' totals of a (band, tap, channel) are added in split
// order, so nothing depends on scheduling. The chunk's sums go to partial[chunk, f0 + f, k, c]
// for filter_grad_finish. Shared memory: two stages of xt[ROWS][kVC] and gt[NB][kVOut][kVC]
// (T), then xv[ROWS][kVC] Compute<T> for an item at the ends (for float and double the stage's
// own xt), reused for the final sums.
template <typename T, int KMAX, int NB>
struct FilterGradTile {
  static constexpr int ROWS = 2 * kVOut + KMAX - 2, QN = KMAX / 4, S = kVRows / QN, RPS = kVOut / S;
  static constexpr size_t stage = (size_t)(ROWS + NB * kVOut) * kVC * sizeof(T);
  static constexpr bool own_edge = sizeof(T) != sizeof(Compute<T>);  // bfloat16: a float area of its own
  static constexpr size_t edge = (size_t)ROWS * kVC * sizeof(Compute<T>);
  static constexpr size_t sums = (size_t)kVThreads * NB * 4 * 2 * sizeof(double);
  static constexpr size_t bytes = own_edge ? 2 * stage + (edge > sums ? edge : sums) : (2 * stage > sums ? 2 * stage : sums);
  static_assert(KMAX % 4 == 0 && kVRows % QN == 0 && kVOut % S == 0);
};

// Adds an item's products for thread (tx, ty) to acc: XT is T (the rows as copied) or Compute<T>
// (summed through the map).
template <typename T, typename XT, int KMAX, int NB>
__device__ __forceinline__ void filter_grad_item(const XT* xs, const T* gs, Two<Compute<T>> (&acc)[NB][4]) {
  using Tile = FilterGradTile<T, KMAX, NB>;
  using P = Two<Compute<T>>;
  const int tx = threadIdx.x, ty = threadIdx.y, q = ty % Tile::QN, o0 = (ty / Tile::QN) * Tile::RPS;
  const Two<XT>* xp = reinterpret_cast<const Two<XT>*>(xs + (2 * o0 + 4 * q) * kVC) + tx;  // row 2 o0 + 4 q
  const Two<T>* gp = reinterpret_cast<const Two<T>*>(gs + o0 * kVC) + tx;
  P xw[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) xw[j] = load_pair(xp + j * (kVC / 2));
#pragma unroll 8
  for (int o = 0; o < Tile::RPS; ++o) {
    P gv[NB];
#pragma unroll
    for (int f = 0; f < NB; ++f) gv[f] = load_pair(gp + (f * kVOut + o) * (kVC / 2));
#pragma unroll
    for (int f = 0; f < NB; ++f)
#pragma unroll
      for (int j = 0; j < 4; ++j) fma_pair(acc[f][j], gv[f], xw[j]);
    xw[0] = xw[2];
    xw[1] = xw[3];
    if (o + 1 < Tile::RPS) {
      xw[2] = load_pair(xp + (2 * o + 4) * (kVC / 2));
      xw[3] = load_pair(xp + (2 * o + 5) * (kVC / 2));
    }
  }
}

template <typename T, int KMAX, int NB>
__global__ void __launch_bounds__(kVThreads) filter_grad_vtile(Bands<const T> g, int64_t f0, int64_t nf, const T* x,
                                                                int64_t x_stride_a, MapView map, int64_t start, int K,
                                                                int64_t L, int64_t C, int64_t items,
                                                                int64_t items_per_chunk, double* partial) {
  using V = Compute<T>;
  using P = Two<V>;
  using Tile = FilterGradTile<T, KMAX, NB>;
  constexpr int ROWS = Tile::ROWS;
  extern __shared__ __align__(16) unsigned char wavelet_smem[];
  auto xt = [&](int buf) { return reinterpret_cast<T*>(wavelet_smem + buf * Tile::stage); };
  auto gt = [&](int buf) { return xt(buf) + ROWS * kVC; };
  auto xv = [&](int buf) {
    return Tile::own_edge ? reinterpret_cast<V*>(wavelet_smem + 2 * Tile::stage) : reinterpret_cast<V*>(xt(buf));
  };
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c0 = (int64_t)blockIdx.x * kVC, chunk = blockIdx.y;
  const int cvalid = (int)(C - c0 < kVC ? C - c0 : kVC), units = cvalid * (int)sizeof(T) / 16;
  const int64_t tiles = (L + kVOut - 1) / kVOut;  // items per a
  const int64_t q0 = chunk * items_per_chunk, q1 = q0 + items_per_chunk < items ? q0 + items_per_chunk : items;
  const int n = (int)(q1 - q0);
  auto first_row = [&](int64_t q) { return 2 * (q % tiles) * kVOut + start; };
  auto plain = [&](int64_t q) { return first_row(q) >= map.pad_lo && first_row(q) + ROWS <= map.pad_hi; };
  // The item's copies: the gradient rows always, the input rows where they are plain.
  auto issue = [&](int64_t q, int buf) {
    const int64_t a = q / tiles, o0 = (q % tiles) * kVOut;
    if (plain(q)) {
      const T* first = x + a * x_stride_a + (first_row(q) + map.pad_shift) * C + c0;
      stage_tile_async<T, ROWS>(xt(buf), [&](int r) { return first + (int64_t)r * C; }, units, x);
    }
#pragma unroll
    for (int f = 0; f < NB; ++f) {
      const T* plane = f < g.count ? g.base[f] + a * g.stride_a[f] + c0 : nullptr;
      stage_tile_async<T, kVOut>(gt(buf) + f * kVOut * kVC, [&](int r) {
        return plane && o0 + r < L ? plane + (o0 + r) * C : nullptr;
      }, units, x);
    }
    cp_async_commit();
  };
  double total[NB][4][2];
#pragma unroll
  for (int f = 0; f < NB; ++f)
#pragma unroll
    for (int j = 0; j < 4; ++j) total[f][j][0] = total[f][j][1] = 0;
  if (n > 0) issue(q0, 0);
  for (int t = 0; t < n; ++t) {
    const int64_t q = q0 + t;
    const bool is_plain = plain(q);  // uniform over the block
    if (t + 1 < n) {
      issue(q + 1, (t + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    if (!is_plain) stage_padded<T, ROWS>(xv(t & 1), x + (q / tiles) * x_stride_a, map, first_row(q), c0, C, cvalid);
    __syncthreads();
    if (2 * tx < cvalid) {
      P acc[NB][4];
#pragma unroll
      for (int f = 0; f < NB; ++f)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[f][j] = P{0, 0};
      if (is_plain) filter_grad_item<T, T, KMAX, NB>(xt(t & 1), gt(t & 1), acc);
      else filter_grad_item<T, V, KMAX, NB>(xv(t & 1), gt(t & 1), acc);
#pragma unroll
      for (int f = 0; f < NB; ++f)
#pragma unroll
        for (int j = 0; j < 4; ++j) total[f][j][0] += (double)acc[f][j].x, total[f][j][1] += (double)acc[f][j].y;
    }
    __syncthreads();  // every read of this item's rows is done before they are replaced
  }
  // The splits' totals, added in split order by the threads of split 0.
  double* sums = reinterpret_cast<double*>(wavelet_smem + (Tile::own_edge ? 2 * Tile::stage : 0));
  const int tid = ty * kWTile + tx;
#pragma unroll
  for (int f = 0; f < NB; ++f)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      reinterpret_cast<double2*>(sums)[(f * 4 + j) * kVThreads + tid] = make_double2(total[f][j][0], total[f][j][1]);
  __syncthreads();
  if (ty >= Tile::QN || 2 * tx >= cvalid) return;
#pragma unroll
  for (int f = 0; f < NB; ++f)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      double2 sum = make_double2(0, 0);
      for (int split = 0; split < Tile::S; ++split) {
        const double2 v = reinterpret_cast<const double2*>(sums)[(f * 4 + j) * kVThreads + (split * Tile::QN + ty) * kWTile + tx];
        sum.x += v.x;
        sum.y += v.y;
      }
      const int k = 4 * ty + j;
      if (f < g.count && k < K)
        *reinterpret_cast<double2*>(partial + ((chunk * nf + f0 + f) * K + k) * C + c0 + 2 * tx) = sum;
    }
}

// ---- the orthogonal lattice ------------------------------------------------------------------

// A thread per channel runs backend.h's lattice_channel (K <= kLatticeMaxK, a few hundred
// FMAs): one launch builds every channel's filter, one more its angle gradient.
template <typename V>
__global__ void lattice_kernel(const V* theta, V* h, int K, int64_t C) {
  const int64_t ch = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (ch >= C) return;
  V c[kLatticeMaxK], s[kLatticeMaxK];
  for (int i = 0; i < K; ++i) c[i] = cos(theta[i * C + ch]), s[i] = sin(theta[i * C + ch]);
  lattice_channel(K, c, s, h + ch, C);
}

template <typename V>
__global__ void lattice_backward_kernel(const V* theta, const V* grad_h, V* grad_theta, int K, int64_t C) {
  const int64_t ch = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (ch >= C) return;
  V c[kLatticeMaxK], s[kLatticeMaxK];
  for (int i = 0; i < K; ++i) c[i] = cos(theta[i * C + ch]), s[i] = sin(theta[i * C + ch]);
  lattice_channel_backward(K, c, s, grad_h + ch, C, grad_theta + ch, C);
}

// Dynamic shared memory past the default 48 KiB needs the kernel's consent, once per size.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) WAVSPA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

// Fills a Bands with planes [f0, f0 + count) of `planes` and the matching filters of w.
template <typename P, typename W>
Bands<P> bands_of(const std::vector<Tensor>& planes, const W* w, int64_t K, int64_t Cw,
                  size_t f0) {
  Bands<P> b;
  b.count = (int)std::min<size_t>(kMaxBands, planes.size() - f0);
  for (int f = 0; f < b.count; ++f) {
    const Tensor& t = planes[f0 + f];
    b.base[f] = static_cast<P*>(const_cast<void*>(t.raw_data()));
    b.stride_a[f] = t.strides()[0];
    if (w) b.w[f] = w + (f0 + f) * K * Cw;
  }
  return b;
}

// wavelet_filter_grad through filter_grad_tiled: chunks of output tiles for about 512
// blocks (1024 made the second pass, which reads every chunk's partials, 8x slower for a
// first pass no faster), their partial sums added in chunk order by filter_grad_finish.
template <typename T, int KT>
void filter_grad_tiled_run(const std::vector<Tensor>& g, const Tensor& x, const DeviceMap& dmap, int64_t P,
                           int64_t start, int64_t nf, int64_t K, int64_t Cw, int64_t A, int64_t L, int64_t C,
                           const Tensor& grad_w, Device device, cudaStream_t stream) {
  const int64_t ctiles = (C + kWTile - 1) / kWTile, tiles = A * ((L + kWOut - 1) / kWOut);
  const int64_t want = std::clamp<int64_t>(512 / ctiles, 1, 65535);
  const int64_t per_chunk = (tiles + std::min(want, tiles) - 1) / std::min(want, tiles);
  const int64_t chunks = (tiles + per_chunk - 1) / per_chunk;
  Tensor partial = scratch_bytes((size_t)chunks * nf * K * C * sizeof(double), device);
  for (size_t f0 = 0; f0 < g.size(); f0 += kMaxBands) {
    const Bands<const T> bands = bands_of<const T, Compute<T>>(g, nullptr, K, Cw, f0);
    const size_t smem = ((size_t)bands.count * kWOut + 2 * kWOut + K - 2) * kWTile * sizeof(Compute<T>);
    allow_smem(filter_grad_tiled<T, KT>, smem);
    filter_grad_tiled<T, KT><<<dim3((unsigned)ctiles, (unsigned)chunks), dim3(kWTile, kWRows), smem, stream>>>(
        bands, (int64_t)f0, nf, dptr<T>(x), x.strides()[0], view_of(dmap, P), start, K, L, C, tiles, per_chunk,
        dptr<double>(partial));
    WAVSPA_CUDA_LAUNCH_CHECK();
  }
  finish_filter_grad(dptr<double>(partial), chunks, nf * K, C, Cw, dptr<Compute<T>>(grad_w), stream);
}

// The vector-tile kernels take up to kVMaxK taps and two bands (a dwt's pair; more bands go to
// the tiled kernels); f(KMAX, NB) is called with the tap capacity (8 or 16) that holds K taps.
// (Each capacity is a set of instantiations in every program's device code: few are kept.)
constexpr int64_t kVMaxK = 16;

template <typename F>
void with_vtile_shape(int64_t K, F&& f) {
  if (K <= 8) f(std::integral_constant<int, 8>{}, std::integral_constant<int, 2>{});
  else f(std::integral_constant<int, 16>{}, std::integral_constant<int, 2>{});
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the vector-tile kernels take a call: at least kTiledMinC channels, K <= 16, at most two
// bands, the grid within CUDA's limits, and every plane's rows 16-byte aligned (C sizeof(T), the
// base pointers and the plane strides multiples of 16 bytes).
bool vtile_fits(const Tensor& signal, int64_t K, const std::vector<Tensor>& bands, int64_t rows) {
  const int64_t A = signal.shape()[0], C = signal.shape()[2], item = (int64_t)dtype_size(signal.dtype());
  if (C < kTiledMinC || K > kVMaxK || bands.size() > 2 || A > 65535 || (rows + kVOut - 1) / kVOut > 65535) return false;
  if ((C * item) % 16 != 0) return false;
  auto ok = [&](const Tensor& t) { return aligned16(t.raw_data()) && (t.strides()[0] * item) % 16 == 0; };
  return ok(signal) && std::all_of(bands.begin(), bands.end(), ok);
}

dim3 vtile_grid(int64_t C, int64_t rows, int64_t A) {
  return dim3((unsigned)((C + kVC - 1) / kVC), (unsigned)((rows + kVOut - 1) / kVOut), (unsigned)A);
}

// wavelet_filter_grad through filter_grad_vtile: chunks of items (an a and an output tile) for
// about two blocks per SM of an H100/H200 (264), their partial sums added in chunk order by
// filter_grad_finish (fewer chunks also make that second pass, which reads them all, shorter).
template <typename T, int KMAX, int NB>
void filter_grad_vtile_run(const std::vector<Tensor>& g, const Tensor& x, const DeviceMap& dmap, int64_t P,
                           int64_t start, int64_t nf, int64_t K, int64_t Cw, int64_t A, int64_t L, int64_t C,
                           const Tensor& grad_w, Device device, cudaStream_t stream) {
  using V = Compute<T>;
  const int64_t ctiles = (C + kVC - 1) / kVC, items = A * ((L + kVOut - 1) / kVOut);
  const int64_t want = std::min(std::clamp<int64_t>(264 / ctiles, 1, 65535), items);
  const int64_t per_chunk = (items + want - 1) / want, chunks = (items + per_chunk - 1) / per_chunk;
  Tensor partial = scratch_bytes((size_t)chunks * nf * K * C * sizeof(double), device);
  const size_t smem = FilterGradTile<T, KMAX, NB>::bytes;
  allow_smem(filter_grad_vtile<T, KMAX, NB>, smem);
  for (size_t f0 = 0; f0 < g.size(); f0 += kMaxBands) {
    const Bands<const T> bands = bands_of<const T, V>(g, nullptr, K, Cw, f0);
    filter_grad_vtile<T, KMAX, NB><<<dim3((unsigned)ctiles, (unsigned)chunks), dim3(kWTile, kVRows), smem, stream>>>(
        bands, (int64_t)f0, nf, dptr<T>(x), x.strides()[0], view_of(dmap, P), start, (int)K, L, C, items, per_chunk,
        dptr<double>(partial));
    WAVSPA_CUDA_LAUNCH_CHECK();
  }
  finish_filter_grad(dptr<double>(partial), chunks, nf * K, C, Cw, dptr<V>(grad_w), stream);
}

// The filters and their gradient come in the signal's compute dtype (backends/backend.h).
void check_filter_dtype(const char* what, const Tensor& signal, const Tensor& w, const char* name) {
  const DType want = signal.dtype() == DType::BFloat16 ? DType::Float32 : signal.dtype();
  WAVSPA_CHECK(w.dtype() == want, what, ": ", name, " must be ", want, " for a ", signal.dtype(), " signal, got ",
               w.dtype());
}

}  // namespace

void set_wavelet_tiles_per_block(int tiles) {
  WAVSPA_CHECK(tiles >= 0 && tiles <= 64, "set_wavelet_tiles_per_block: expected 0 (automatic) to 64 tiles, got ", tiles);
  g_tiles_per_block.store(tiles);
}
int wavelet_tiles_per_block() { return g_tiles_per_block.load(); }

void CudaBackend::wavelet_extend(const Tensor& x, const RowMap& map, const Tensor& out) {
  const int64_t A = x.shape()[0], N = x.shape()[1], C = x.shape()[2];
  const int64_t P = map.padded_rows(), total = A * P * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, x.device());
  dispatch_floating_bf16(x.dtype(), "wavelet_extend", [&](auto zero) {
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
  dispatch_floating_bf16(grad_x.dtype(), "wavelet_extend_backward", [&](auto zero) {
    using T = decltype(zero);
    extend_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
        dptr<T>(grad_out), dmap.offsets, dmap.rows, dmap.coefs, dptr<T>(grad_x), A, N, P, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::wavelet_analysis(const Tensor& x, const RowMap& map, const Tensor& w,
                                   int64_t start, const std::vector<Tensor>& outs) {
  check_filter_dtype("wavelet_analysis", x, w, "filters");
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = outs[0].shape()[1], total = A * L * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, x.device());
  dispatch_floating_bf16(x.dtype(), "wavelet_analysis", [&](auto zero) {
    using T = decltype(zero);
    const bool tiled = C >= kTiledMinC && A <= 65535 && (L + kWOut - 1) / kWOut <= 65535;
    const bool vtile = vtile_fits(x, K, outs, L);
    for (size_t f0 = 0; f0 < outs.size(); f0 += kMaxBands) {
      const Bands<T> bands = bands_of<T>(outs, dptr<Compute<T>>(w), K, Cw, f0);
      if (vtile) {
        with_vtile_shape(K, [&](auto kmax, auto nb) {
          constexpr int KMAX = decltype(kmax)::value, NB = decltype(nb)::value;
          const size_t smem = analysis_stage_bytes<T, KMAX>() + (size_t)NB * KMAX * kVC * sizeof(Compute<T>);
          allow_smem(analysis_vtile<T, KMAX, NB>, smem);
          const dim3 grid = vtile_grid(C, L, A);
          const int nt = vtile_tiles_per_block((int64_t)grid.x * grid.y * grid.z);
          analysis_vtile<T, KMAX, NB><<<dim3(grid.x, (grid.y + nt - 1) / nt, grid.z), dim3(kWTile, kVRows), smem,
                                        stream()>>>(dptr<T>(x), x.strides()[0], view_of(dmap, map.padded_rows()),
                                                    bands, (int)K, Cw, start, L, C, nt);
          WAVSPA_CUDA_LAUNCH_CHECK();
        });
        continue;
      }
      if (tiled) {
        const size_t smem = (size_t)(2 * kWOut + K - 2) * kWTile * sizeof(Compute<T>);
        allow_smem(analysis_tiled<T>, smem);
        const dim3 grid((unsigned)((C + kWTile - 1) / kWTile), (unsigned)((L + kWOut - 1) / kWOut), (unsigned)A);
        analysis_tiled<T><<<grid, dim3(kWTile, kWRows), smem, stream()>>>(
            dptr<T>(x), x.strides()[0], view_of(dmap, map.padded_rows()), bands, (int)K, Cw, start, L, C);
        WAVSPA_CUDA_LAUNCH_CHECK();
        continue;
      }
      analysis_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
          dptr<T>(x), x.strides()[0], dmap.padded, map.padded_rows(), bands, K, Cw, start, A,
          L, C);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
  });
}

void CudaBackend::wavelet_synthesis(const std::vector<Tensor>& coeffs, const Tensor& w,
                                    int64_t start, const RowMap& map, const Tensor& out, const Tensor& base) {
  check_filter_dtype("wavelet_synthesis", out, w, "filters");
  const int64_t A = out.shape()[0], n_out = out.shape()[1], C = out.shape()[2];
  const int64_t K = w.shape()[1], Cw = w.shape()[2];
  const int64_t L = coeffs[0].shape()[1], total = A * n_out * C;
  if (total == 0) return;
  const DeviceMap dmap = device_map(map, out.device());
  dispatch_floating_bf16(out.dtype(), "wavelet_synthesis", [&](auto zero) {
    using T = decltype(zero);
    const bool tiled = C >= kTiledMinC && A <= 65535 && (n_out + kWOut - 1) / kWOut <= 65535;
    const bool vtile = vtile_fits(out, K, coeffs, n_out) &&
                       (!base.defined() || vtile_fits(out, K, {base}, n_out));  // base read in pairs, too
    for (size_t f0 = 0; f0 < coeffs.size(); f0 += kMaxBands) {
      const Bands<const T> bands = bands_of<const T>(coeffs, dptr<Compute<T>>(w), K, Cw, f0);
      // The residual goes into the last group of bands, after the others have accumulated.
      const bool last = f0 + kMaxBands >= coeffs.size();
      const T* bp = last && base.defined() ? dptr<const T>(base) : nullptr;
      const int64_t bsa = base.defined() ? base.strides()[0] : 0;
      if (vtile) {
        with_vtile_shape(K, [&](auto kmax, auto nb) {
          constexpr int KMAX = decltype(kmax)::value, NB = decltype(nb)::value;
          const size_t smem = synthesis_stage_bytes<T, KMAX, NB>() + (size_t)NB * KMAX * kVC * sizeof(Compute<T>);
          auto kernel = bp ? synthesis_vtile<T, KMAX, NB, true> : synthesis_vtile<T, KMAX, NB, false>;
          allow_smem(kernel, smem);
          const dim3 grid = vtile_grid(C, n_out, A);
          const int nt = vtile_tiles_per_block((int64_t)grid.x * grid.y * grid.z);
          kernel<<<dim3(grid.x, (grid.y + nt - 1) / nt, grid.z), dim3(kWTile, kVRows), smem, stream()>>>(
              bands, (int)K, Cw, start, view_of(dmap, map.padded_rows()), dptr<T>(out), n_out, L, C, f0 > 0, bp, bsa, nt);
          WAVSPA_CUDA_LAUNCH_CHECK();
        });
        continue;
      }
      if (tiled) {
        const size_t smem = (size_t)bands.count * (kWOut / 2 + K / 2 + 2) * kWTile * sizeof(Compute<T>);
        allow_smem(synthesis_tiled<T>, smem);
        const dim3 grid((unsigned)((C + kWTile - 1) / kWTile), (unsigned)((n_out + kWOut - 1) / kWOut), (unsigned)A);
        synthesis_tiled<T><<<grid, dim3(kWTile, kWRows), smem, stream()>>>(bands, K, Cw, start, view_of(dmap, map.padded_rows()),
                                                                            dptr<T>(out), n_out, L, C, f0 > 0, bp, bsa);
        WAVSPA_CUDA_LAUNCH_CHECK();
        continue;
      }
      synthesis_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(
          bands, K, Cw, start, dmap.offsets, dmap.rows, dmap.coefs, dptr<T>(out), A, n_out, L,
          C, /*accumulate=*/f0 > 0, bp, bsa);
      WAVSPA_CUDA_LAUNCH_CHECK();
    }
  });
}

void CudaBackend::wavelet_filter_grad(const std::vector<Tensor>& g, const Tensor& x,
                                      const RowMap& map, int64_t start, const Tensor& grad_w) {
  check_filter_dtype("wavelet_filter_grad", x, grad_w, "grad_w");
  const int64_t A = x.shape()[0], C = x.shape()[2];
  const int64_t nf = grad_w.shape()[0], K = grad_w.shape()[1], Cw = grad_w.shape()[2];
  const int64_t L = g[0].shape()[1], P = map.padded_rows();
  const int64_t pairs = A * L;
  if (nf * K == 0) return;
  // float64 takes the tiled kernels: two stages of double rows would pass the 227 KiB of shared
  // memory a block may have (FilterGradTile::bytes).
  if (vtile_fits(x, K, g, L) && pairs > 0 && x.dtype() != DType::Float64) {
    const DeviceMap dmap = device_map(map, x.device());
    dispatch_floating_bf16(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
      using T = decltype(zero);
      if constexpr (!std::is_same_v<T, double>)
        with_vtile_shape(K, [&](auto kmax, auto nb) {
          filter_grad_vtile_run<T, decltype(kmax)::value, decltype(nb)::value>(g, x, dmap, P, start, nf, K, Cw, A, L,
                                                                               C, grad_w, x.device(), stream());
        });
    });
    return;
  }
  if (C >= kTiledMinC && K <= 10 * kWRows && pairs > 0) {
    const DeviceMap dmap = device_map(map, x.device());
    dispatch_floating_bf16(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
      using T = decltype(zero);
      auto run = [&](auto kt) {
        filter_grad_tiled_run<T, decltype(kt)::value>(g, x, dmap, P, start, nf, K, Cw, A, L, C, grad_w, x.device(),
                                                      stream());
      };
      const int64_t kt = (K + kWRows - 1) / kWRows;
      if (kt <= 1) run(std::integral_constant<int, 1>{});
      else if (kt <= 2) run(std::integral_constant<int, 2>{});
      else if (kt <= 4) run(std::integral_constant<int, 4>{});
      else run(std::integral_constant<int, 10>{});
    });
    return;
  }
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
  dispatch_floating_bf16(x.dtype(), "wavelet_filter_grad", [&](auto zero) {
    using T = decltype(zero);
    if (any_work) {
      for (size_t f0 = 0; f0 < g.size(); f0 += kMaxBands) {
        const Bands<const T> bands = bands_of<const T, Compute<T>>(g, nullptr, K, Cw, f0);
        const dim3 grid((unsigned)tiles, (unsigned)(bands.count * K), (unsigned)chunks);
        filter_grad_partial<T><<<grid, dim3(kTile, kTileRows), 0, stream()>>>(
            bands, (int64_t)f0, nf, dptr<T>(x), x.strides()[0], dmap.padded, P, start, K, A, L,
            C, pairs_per_chunk, dptr<double>(partial));
        WAVSPA_CUDA_LAUNCH_CHECK();
      }
    }
    filter_grad_finish<Compute<T>><<<(unsigned)(nf * K), kFinishThreads, 0, stream()>>>(
        dptr<double>(partial), any_work ? chunks : 0, nf * K, C, Cw, dptr<Compute<T>>(grad_w));
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::lattice_filter(const Tensor& theta, const Tensor& h) {
  const int K = (int)theta.shape()[0];
  const int64_t C = theta.shape()[1];
  dispatch_floating(theta.dtype(), "lattice_filter", [&](auto zero) {
    using V = decltype(zero);
    lattice_kernel<V><<<blocks_for(C, 64), 64, 0, stream()>>>(dptr<V>(theta), dptr<V>(h), K, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::lattice_filter_backward(const Tensor& theta, const Tensor& grad_h, const Tensor& grad_theta) {
  const int K = (int)theta.shape()[0];
  const int64_t C = theta.shape()[1];
  dispatch_floating(theta.dtype(), "lattice_filter_backward", [&](auto zero) {
    using V = decltype(zero);
    lattice_backward_kernel<V><<<blocks_for(C, 64), 64, 0, stream()>>>(dptr<V>(theta), dptr<V>(grad_h),
                                                                       dptr<V>(grad_theta), K, C);
    WAVSPA_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace wavspa::cuda

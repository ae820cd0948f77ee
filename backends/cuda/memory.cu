// Memory kernels: strided copy with dtype conversion, fill, and the host <-> device copies.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "backends/cuda/common.cuh"
#include "backends/cuda/cuda_backend.h"

namespace wavspa::cuda {

CudaBackend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

namespace {

template <typename D, typename S>
struct CopyFn {
  D* out;
  const S* x;
  __device__ void operator()(const int64_t (&off)[2]) const { out[off[0]] = convert<D, S>(x[off[1]]); }
  __device__ void vec8(const int64_t (&off)[2], const int64_t (&inner)[2], int count) const {
    const Vec8<S> v = load_vec8(x + off[1], inner[1], count);
    if constexpr (std::is_same_v<D, bf16> && std::is_same_v<S, float>) {
      store_vec8(out + off[0], round8<bf16>(v.v), count);  // float32 -> bfloat16: two at a time
    } else {
      Vec8<D> r;
#pragma unroll
      for (int c = 0; c < 8; ++c) r.v[c] = convert<D, S>(v.v[c]);
      store_vec8(out + off[0], r, count);
    }
  }
};

// A row repeated down a contiguous (R, N) destination, N a multiple of 8 (a bias broadcast
// into a linear layer's output before the product adds to it): thread x of a block owns 8
// columns, converts them once and stores them as 16-byte words (where aligned) into every
// blockDim.y-th row of its share, so the conversion is not redone per row.
template <typename D, typename S>
__global__ void broadcast_rows_kernel(D* __restrict__ out, const S* __restrict__ row, int64_t R, int64_t N) {
  const int64_t c0 = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * 8;
  if (c0 >= N) return;
  const Vec8<S> v = load_vec8(row + c0, 1, 8);
  Vec8<D> r;
#pragma unroll
  for (int c = 0; c < 8; ++c) r.v[c] = convert<D, S>(v.v[c]);
  for (int64_t i = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; i < R; i += (int64_t)gridDim.y * blockDim.y)
    store_vec8(out + i * N + c0, r, 8);
}

// True when src repeats one contiguous row along every other dim (strides 0 except the last,
// which is 1): an expand of a vector.
bool is_broadcast_row(const Tensor& src) {
  if (src.dim() < 2 || src.strides().back() != 1) return false;
  for (int64_t d = 0; d + 1 < src.dim(); ++d)
    if (src.shape()[d] != 1 && src.strides()[d] != 0) return false;
  return true;
}

template <typename T>
struct FillFn {
  T* out;
  T value;
  __device__ void operator()(const int64_t (&off)[1]) const { out[off[0]] = value; }
};

// Pinned staging buffers for host-to-device copies.
//
// A copy from pageable host memory cannot be queued: the driver may read the buffer at any
// time until the copy runs, and the caller may free it as soon as copy_from_host returns.
// Synchronising after every upload would stall the host once per training batch, so the
// bytes are first copied (by the CPU) into a pinned buffer that this pool owns, and the
// device copy is queued from there. A buffer is reused once the event recorded after its
// copy has completed. Uploads larger than kMaxStaged skip the pool and synchronise instead.
class StagingPool {
 public:
  static constexpr size_t kMinBuffer = size_t(1) << 20;   // 1 MiB
  static constexpr size_t kMaxStaged = size_t(64) << 20;  // larger copies synchronise
  static constexpr size_t kMaxTotal = size_t(256) << 20;  // pinned memory held at most

  // Graph capture (backends/cuda/graph.cu): uploads of the capturing thread get pinned
  // buffers of their own until end_capture, which hands them to the graph.
  void begin_capture() {
    std::lock_guard<std::mutex> lock(mutex_);
    capture_thread_ = std::this_thread::get_id();
    capture_active_ = true;
  }
  std::vector<void*> end_capture() {
    std::lock_guard<std::mutex> lock(mutex_);
    capture_active_ = false;
    return std::exchange(captured_, {});
  }

  void upload(void* dst, const void* src, size_t bytes) {
    if (capturing()) {
      // A recorded copy reads its host buffer at every replay: it gets a buffer of its own,
      // which the graph frees when it is destroyed.
      void* host = nullptr;
      WAVSPA_CUDA_CHECK(cudaMallocHost(&host, bytes));
      {
        std::lock_guard<std::mutex> lock(mutex_);
        captured_.push_back(host);
      }
      std::memcpy(host, src, bytes);
      WAVSPA_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream()));
      return;
    }
    if (bytes > kMaxStaged) {
      WAVSPA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
      WAVSPA_CUDA_CHECK(cudaStreamSynchronize(stream()));
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    Buffer& b = acquire_locked(bytes);
    std::memcpy(b.host, src, bytes);
    WAVSPA_CUDA_CHECK(cudaMemcpyAsync(dst, b.host, bytes, cudaMemcpyHostToDevice, stream()));
    WAVSPA_CUDA_CHECK(cudaEventRecord(b.done, stream()));
    b.pending = true;
  }

 private:
  bool capturing() {
    std::lock_guard<std::mutex> lock(mutex_);
    return capture_active_ && std::this_thread::get_id() == capture_thread_;
  }

  struct Buffer {
    void* host = nullptr;
    size_t size = 0;
    cudaEvent_t done = nullptr;
    bool pending = false;  // an event was recorded and may not have completed
  };

  static bool finished(Buffer& b) {
    if (!b.pending) return true;
    const cudaError_t e = cudaEventQuery(b.done);
    if (e == cudaErrorNotReady) {
      cudaGetLastError();  // "not ready" is an answer, not an error: keep it out of launch checks
      return false;
    }
    WAVSPA_CUDA_CHECK(e);
    b.pending = false;
    return true;
  }

  // A new pinned buffer of `size` bytes (the caller holds mutex_).
  Buffer& add_buffer(size_t size) {
    Buffer b;
    WAVSPA_CUDA_CHECK(cudaMallocHost(&b.host, size));
    WAVSPA_CUDA_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming));
    b.size = size;
    total_ += size;
    buffers_.push_back(b);
    return buffers_.back();
  }

  Buffer& acquire_locked(size_t bytes) {
    // The smallest idle buffer that fits.
    Buffer* best = nullptr;
    for (Buffer& b : buffers_)
      if (b.size >= bytes && (!best || b.size < best->size) && finished(b)) best = &b;
    if (best) return *best;
    size_t size = kMinBuffer;
    while (size < bytes) size *= 2;
    if (total_ + size <= kMaxTotal) return add_buffer(size);
    // The pool is full and busy: wait for the smallest buffer that fits.
    for (Buffer& b : buffers_)
      if (b.size >= bytes && (!best || b.size < best->size)) best = &b;
    // None fits: grow past the cap rather than fail (sizes are at most 64 MiB).
    if (!best) return add_buffer(size);
    WAVSPA_CUDA_CHECK(cudaEventSynchronize(best->done));
    best->pending = false;
    return *best;
  }

  std::mutex mutex_;
  bool capture_active_ = false;
  std::thread::id capture_thread_;
  std::vector<void*> captured_;  // the pinned buffers of the capture recording now
  std::vector<Buffer> buffers_;  // never freed: pinned memory lives as long as the process
  size_t total_ = 0;
};

StagingPool& staging_pool() {
  static StagingPool* pool = new StagingPool();  // never destroyed (queued copies at exit)
  return *pool;
}

// True when every byte of `value` converted to T is zero (then fill is a memset).
template <typename T>
bool zero_bits(T value) {
  T zero{};
  return std::memcmp(&value, &zero, sizeof(T)) == 0;
}

}  // namespace

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    WAVSPA_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), (size_t)n * dst.element_size(),
                                      cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  const int64_t N = dst.dim() > 0 ? dst.shape().back() : 1;
  const bool rows = dst.is_contiguous() && N % 8 == 0 && is_broadcast_row(src);
  dispatch_storage(dst.dtype(), "copy", [&](auto d0) {
    using D = decltype(d0);
    dispatch_storage(src.dtype(), "copy", [&](auto s0) {
      using S = decltype(s0);
      if (rows) {
        const int64_t R = n / N, tx = std::min<int64_t>(32, N / 8);
        const dim3 block((unsigned)tx, (unsigned)(256 / tx));
        const int64_t gx = (N / 8 + tx - 1) / tx;
        const int64_t gy = std::clamp<int64_t>(4 * sm_count() / gx, 1, (R + block.y - 1) / block.y);
        broadcast_rows_kernel<D, S><<<dim3((unsigned)gx, (unsigned)std::min<int64_t>(gy, 65535)), block, 0, stream()>>>(
            dptr<D>(dst), dptr<S>(src), R, N);
        WAVSPA_CUDA_LAUNCH_CHECK();
        return;
      }
      for_each_element<2>({dst, src}, CopyFn<D, S>{dptr<D>(dst), dptr<S>(src)});
    });
  });
}

namespace {

// Contiguous float32 -> bfloat16 copies in one launch: blockIdx.y picks the pair, the blocks
// along x share its elements. The pairs travel in the kernel's parameters (no upload).
struct CastPair {
  const float* src;
  bf16* dst;
  int64_t n;
};
constexpr int kCastPairs = 64;  // 64 x 24 bytes of parameters per launch
struct CastBatch {
  CastPair pair[kCastPairs];
};

__global__ void cast_many_kernel(CastBatch batch) {
  const CastPair p = batch.pair[blockIdx.y];
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x)
    p.dst[i] = convert<bf16>(p.src[i]);
}

}  // namespace

void CudaBackend::copy_many(const std::vector<Tensor>& src, const std::vector<Tensor>& dst) {
  CastBatch batch{};
  int count = 0;
  int64_t longest = 0;
  auto flush = [&] {
    if (count == 0) return;
    const unsigned gx = (unsigned)std::clamp<int64_t>((longest + kThreads * 4 - 1) / (kThreads * 4), 1, 1024);
    cast_many_kernel<<<dim3(gx, (unsigned)count), kThreads, 0, stream()>>>(batch);
    WAVSPA_CUDA_LAUNCH_CHECK();
    count = 0;
    longest = 0;
  };
  for (size_t i = 0; i < src.size(); ++i) {
    const Tensor& s = src[i];
    const Tensor& d = dst[i];
    if (s.dtype() != kFloat32 || d.dtype() != kBFloat16 || !s.is_contiguous() || !d.is_contiguous()) {
      copy(s, d);
      continue;
    }
    if (d.numel() == 0) continue;
    batch.pair[count++] = CastPair{dptr<float>(s), dptr<bf16>(d), d.numel()};
    longest = std::max(longest, d.numel());
    if (count == kCastPairs) flush();
  }
  flush();
}

void CudaBackend::fill(const Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  dispatch_storage(dst.dtype(), "fill", [&](auto zero) {
    using T = decltype(zero);
    const T v = host_value<T>(value);
    if (dst.is_contiguous() && zero_bits(v)) {
      WAVSPA_CUDA_CHECK(cudaMemsetAsync(dst.raw_data(), 0, (size_t)dst.numel() * sizeof(T), stream()));
      return;
    }
    for_each_element<1>({dst}, FillFn<T>{dptr<T>(dst), v});
  });
}

void begin_staging_capture() { staging_pool().begin_capture(); }
std::vector<void*> end_staging_capture() { return staging_pool().end_capture(); }

void CudaBackend::copy_from_host(const void* src, const Tensor& dst) {
  const size_t bytes = (size_t)dst.numel() * dst.element_size();
  if (bytes == 0) return;
  staging_pool().upload(dst.raw_data(), src, bytes);
}

void CudaBackend::copy_to_host(const Tensor& src, void* dst) {
  const size_t bytes = (size_t)src.numel() * src.element_size();
  if (bytes == 0) return;
  WAVSPA_CUDA_CHECK(cudaMemcpyAsync(dst, src.raw_data(), bytes, cudaMemcpyDeviceToHost, stream()));
  // The caller reads dst next; this is also where errors of earlier kernels surface.
  WAVSPA_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace wavspa::cuda

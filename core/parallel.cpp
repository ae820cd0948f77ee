#include "core/parallel.h"

// OpenBLAS is an external library: telling it to stay single-threaded from core/ points no
// arrow upward.
#include <cblas.h>
#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"

namespace wavspa {
namespace {

// How long an idle worker spins before it sleeps. Long enough to bridge the host's time
// between two kernels of a step (tens of microseconds), short enough that a worker of an idle
// program leaves the core at once.
constexpr int64_t kSpinMicros = 50;

thread_local bool t_inside = false;

// OMP_NUM_THREADS when set (a number, or a list whose first entry counts), else the cores
// this process may run on.
int default_threads() {
  if (const char* s = std::getenv("OMP_NUM_THREADS")) {
    const long n = std::strtol(s, nullptr, 10);
    if (n >= 1) return (int)std::min<long>(n, 1024);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// The loop being run is published in `next_`: the job's number in the high 32 bits and the
// chunks not yet claimed in the low 32. A thread claims a chunk by a compare-and-swap that
// counts it down, so a claim succeeds only while its job is the current one; once it has, the
// job cannot end (the caller waits for `done_`), so the job's fields read after the claim are
// that job's.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: its workers may sleep through exit
    return *pool;
  }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void set_threads(int n) {
    std::lock_guard<std::mutex> lock(run_);
    threads_.store(n, std::memory_order_relaxed);
  }

  void run(int64_t tasks, int64_t chunk, detail::ChunkFn fn, void* ctx) {
    int64_t chunks = (tasks + chunk - 1) / chunk;
    if (chunks > kMaxChunks) {
      chunk = (tasks + kMaxChunks - 1) / kMaxChunks;
      chunks = (tasks + chunk - 1) / chunk;
    }
    const int nth = threads();
    if (chunks < 2 || nth < 2 || t_inside || !run_.try_lock()) {
      inline_run(tasks, fn, ctx);
      return;
    }
    std::lock_guard<std::mutex> lock(run_, std::adopt_lock);
    start_workers(nth - 1);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    tasks_.store(tasks, std::memory_order_relaxed);
    chunk_.store(chunk, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const uint64_t job = (uint64_t)(++job_ & 0xffffffffu);
    next_.store(job << 32 | (uint64_t)chunks, std::memory_order_release);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) epoch_.notify_all();

    t_inside = true;
    while (claim_and_run(job)) {
    }
    // Wait for the chunks other threads started; none can start any more.
    for (int spin = 0; done_.load(std::memory_order_acquire) < chunks; ++spin) {
      if (spin < 4096) _mm_pause();
      else std::this_thread::yield();
    }
    t_inside = false;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  static constexpr int64_t kMaxChunks = 0x7fffffff;

  Pool() : threads_(default_threads()) {
    // Matrix products are cut into tiles by the backend; OpenBLAS's own threads would be a
    // second pool fighting this one.
    openblas_set_num_threads(1);
  }

  static void inline_run(int64_t tasks, detail::ChunkFn fn, void* ctx) {
    const bool outer = t_inside;
    t_inside = true;
    try {
      fn(ctx, 0, tasks);
    } catch (...) {
      t_inside = outer;
      throw;
    }
    t_inside = outer;
  }

  // Claims one chunk of `job` and runs it; false when the job has no chunk left or is over.
  bool claim_and_run(uint64_t job) {
    uint64_t v = next_.load(std::memory_order_acquire);
    for (;;) {
      if ((v >> 32) != job || (v & 0xffffffffu) == 0) return false;
      if (next_.compare_exchange_weak(v, v - 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        break;
    }
    const int64_t chunks = chunks_.load(std::memory_order_relaxed);
    const int64_t i = chunks - (int64_t)(v & 0xffffffffu);
    const int64_t chunk = chunk_.load(std::memory_order_relaxed);
    const int64_t tasks = tasks_.load(std::memory_order_relaxed);
    try {
      fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), i * chunk,
                                          std::min(tasks, (i + 1) * chunk));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_release);
    return true;
  }

  // Called with run_ held.
  void start_workers(int n) {
    while ((int)workers_.size() < n) {
      const int index = (int)workers_.size();
      workers_.emplace_back([this, index] { work(index); });
      workers_.back().detach();
    }
  }

  void work(int index) {
    t_inside = true;  // a parallel_for inside a chunk runs inline
    uint32_t seen = epoch_.load(std::memory_order_acquire);
    for (;;) {
      wait_for_job(seen);
      seen = epoch_.load(std::memory_order_acquire);
      if (index >= threads() - 1) continue;  // set_cpu_threads lowered the count
      const uint64_t job = next_.load(std::memory_order_acquire) >> 32;
      while (claim_and_run(job)) {
      }
    }
  }

  void wait_for_job(uint32_t seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int i = 1;; ++i) {
      if (epoch_.load(std::memory_order_acquire) != seen) return;
      _mm_pause();
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (epoch_.load(std::memory_order_seq_cst) == seen) epoch_.wait(seen);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }

  std::atomic<int> threads_;
  std::mutex run_;  // one loop at a time; another caller meanwhile runs inline
  std::vector<std::thread> workers_;
  uint64_t job_ = 0;

  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<detail::ChunkFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> tasks_{0}, chunk_{1}, chunks_{0};

  std::mutex error_mutex_;
  std::exception_ptr error_;
};

}  // namespace

namespace detail {
void parallel_run(int64_t tasks, int64_t chunk, ChunkFn fn, void* ctx) {
  Pool::get().run(tasks, chunk, fn, ctx);
}
}  // namespace detail

bool in_parallel_for() { return t_inside; }

void set_cpu_threads(int n) {
  WAVSPA_CHECK(n >= 1, "set_cpu_threads: expected n >= 1, got ", n);
  // Inside a chunk the pool is running this very job: resizing it would wait for itself.
  WAVSPA_CHECK(!in_parallel_for(), "set_cpu_threads: called from inside a parallel_for chunk; ",
               "set the thread count before or after the loop");
  Pool::get().set_threads(n);
}

int cpu_threads() { return Pool::get().threads(); }

}  // namespace wavspa

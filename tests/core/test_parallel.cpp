// core/parallel.h: every task runs once, in chunk-aligned ranges, with any thread count;
// nested loops and loops from several user threads complete; an exception reaches the
// caller and leaves the pool working; matrix products and the reductions cut by the pool
// give the same bits with 1, 2 and 3 threads.
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// Restores the thread count when a case ends.
struct ThreadsGuard {
  int saved = cpu_threads();
  ~ThreadsGuard() { set_cpu_threads(saved); }
};

// Runs parallel_for(tasks, chunk) and checks that every task ran exactly once and that every
// range started on a chunk boundary.
void check_once(int64_t tasks, int64_t chunk) {
  std::vector<std::atomic<int>> hits((size_t)tasks);
  std::atomic<int> misaligned{0};
  parallel_for(tasks, chunk, [&](int64_t begin, int64_t end) {
    if (begin % chunk != 0 || end <= begin || end > tasks) ++misaligned;
    for (int64_t i = begin; i < end; ++i) ++hits[(size_t)i];
  });
  int64_t wrong = 0;
  for (auto& h : hits) wrong += h.load() != 1;
  CHECK(misaligned.load() == 0);
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("parallel_for: every task once, in chunk-aligned ranges, with 1 to 3 threads") {
  ThreadsGuard guard;
  for (int threads : {1, 2, 3}) {
    set_cpu_threads(threads);
    CAPTURE(threads);
    for (int rep = 0; rep < 200; ++rep) check_once(1 + rep * 7, 1 + rep % 5);
    check_once(100000, 64);
    check_once(5, 1000);  // one chunk: runs inline
  }
  int calls = 0;
  parallel_for(0, 4, [&](int64_t, int64_t) { ++calls; });
  parallel_for(100, 10, [&](int64_t b, int64_t e) { calls += (int)(e - b); }, /*parallel=*/false);
  CHECK(calls == 100);
  CHECK(!in_parallel_for());
}

TEST_CASE("parallel_for: nested loops run inline; loops from two user threads both finish") {
  ThreadsGuard guard;
  set_cpu_threads(2);
  std::vector<std::atomic<int>> hits(64 * 50);
  std::atomic<int> outside{0};
  parallel_for(64, 1, [&](int64_t b, int64_t e) {
    if (!in_parallel_for()) ++outside;
    for (int64_t i = b; i < e; ++i)
      parallel_for(50, 7, [&](int64_t b2, int64_t e2) {
        for (int64_t j = b2; j < e2; ++j) ++hits[(size_t)(i * 50 + j)];
      });
  });
  CHECK(outside.load() == 0);
  int64_t wrong = 0;
  for (auto& h : hits) wrong += h.load() != 1;
  CHECK(wrong == 0);

  std::vector<int64_t> sums(2, 0);
  auto user = [&](int u) {
    for (int rep = 0; rep < 300; ++rep) {
      std::vector<int64_t> part(1000, 0);
      parallel_for(1000, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) part[(size_t)i] = i;
      });
      for (int64_t v : part) sums[(size_t)u] += v;
    }
  };
  std::thread a(user, 0), b(user, 1);
  a.join();
  b.join();
  CHECK(sums[0] == 300 * 999 * 1000 / 2);
  CHECK(sums[1] == 300 * 999 * 1000 / 2);
}

TEST_CASE("parallel_for: an exception reaches the caller after the loop, and the pool goes on") {
  ThreadsGuard guard;
  set_cpu_threads(2);
  std::atomic<int> ran{0};
  CHECK_THROWS_WITH_AS(parallel_for(1000, 1,
                                    [&](int64_t b, int64_t) {
                                      ++ran;
                                      if (b == 500) throw std::runtime_error("task 500 failed");
                                    }),
                       "task 500 failed", std::runtime_error);
  CHECK(ran.load() == 1000);  // the other chunks still ran: none is left half-claimed
  CHECK(!in_parallel_for());
  check_once(10000, 3);
}

TEST_CASE("parallel_for: set_cpu_threads from inside a chunk is an error, not a deadlock") {
  ThreadsGuard guard;
  set_cpu_threads(2);
  std::atomic<int> refused{0};
  parallel_for(4, 1, [&](int64_t, int64_t) {
    try {
      set_cpu_threads(3);
    } catch (const Error& e) {
      if (std::string(e.what()).find("inside a parallel_for chunk") != std::string::npos) ++refused;
    }
  });
  CHECK(refused.load() == 4);
  CHECK(cpu_threads() == 2);
}

TEST_CASE("parallel_for: products and the reductions it cuts give the same bits with 1, 2, 3 threads") {
  ThreadsGuard guard;
  // Products cut in row tiles (m >= 512), column tiles (a weight's gradient: small m and n,
  // long k) and a batch, each with a transposed operand somewhere.
  Tensor a = randn({700, 96}), b = randn({96, 200}), w = randn({4096, 130}), g = randn({4096, 190});
  Tensor x = randn({6, 300, 40}), y = randn({6, 40, 300});
  Tensor ln_in = randn({1500, 70}).requires_grad_(), ln_w = randn({70}).requires_grad_(),
         ln_b = randn({70}).requires_grad_();
  auto run = [&] {
    std::vector<Tensor> out;
    out.push_back(matmul(a, b));
    out.push_back(matmul(w.transpose(0, 1), g));
    out.push_back(matmul(x, y));
    ln_in.zero_grad();
    ln_w.zero_grad();
    ln_b.zero_grad();
    sum(mul(layer_norm(ln_in, {70}, ln_w, ln_b), ln_in)).backward();
    out.push_back(ln_in.grad().clone());
    out.push_back(ln_w.grad().clone());
    out.push_back(ln_b.grad().clone());
    return out;
  };
  set_cpu_threads(1);
  const std::vector<Tensor> one = run();
  for (int threads : {2, 3}) {
    set_cpu_threads(threads);
    const std::vector<Tensor> many = run();
    CAPTURE(threads);
    for (size_t i = 0; i < one.size(); ++i) CHECK(max_abs_diff(one[i], many[i]) == 0);
  }
}

// The doctest runner: every tests/**/test_*.cpp links into one binary, build/wavspa_tests.
//
// Every test case starts from its own seed: the default generator is reseeded from a hash of
// the case's name (tests/case_seed.h) when the case starts (and again each time doctest re-enters it for another
// subcase), so a case draws the same random inputs whether it runs alone (-tc="...") or after
// any other cases, and a failure seen in the full run reproduces with the case alone.
//
// With the CUDA backend compiled in, the caching allocator's poison is on for the whole run:
// every block it hands out (fresh or reused) is first filled with 0xFF bytes (NaN for
// floating dtypes), so a kernel that leaves part of its output unwritten fails the
// CPU-vs-CUDA parity checks instead of passing on leftover values.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/random.h"
#include "tests/case_seed.h"

#ifdef WAVSPA_CUDA
#include "backends/cuda/cuda_runtime.h"
#endif

namespace {

// A doctest listener that reseeds the default generator at the start of each case.
struct ReseedPerCase : doctest::IReporter {
  explicit ReseedPerCase(const doctest::ContextOptions&) {}
  void test_case_start(const doctest::TestCaseData& tc) override { wavspa::manual_seed(wavspa::test::case_seed(tc.m_name)); }
  void test_case_reenter(const doctest::TestCaseData& tc) override { wavspa::manual_seed(wavspa::test::case_seed(tc.m_name)); }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("reseed_per_case", 1, ReseedPerCase);

int main(int argc, char** argv) {
#ifdef WAVSPA_CUDA
  wavspa::cuda::set_poison(true);
#endif
  doctest::Context context(argc, argv);
  return context.run();
}

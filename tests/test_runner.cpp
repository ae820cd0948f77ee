// The test runner's promise (tests/main.cpp): a case draws the same random inputs however it
// is reached, because the default generator is reseeded from the case's name when the case
// starts and each time doctest re-enters it for another subcase.
#include <doctest/doctest.h>

#include <vector>

#include "core/random.h"
#include "ops/factory.h"
#include "tests/case_seed.h"

using namespace wavspa;

TEST_CASE("runner: a case starts from the seed of its name") {
  const std::vector<float> first = randn({8}).to_vector<float>();  // the case's first draw
  manual_seed(test::case_seed("runner: a case starts from the seed of its name"));
  CHECK(randn({8}).to_vector<float>() == first);
  manual_seed(test::case_seed("another name"));
  CHECK(randn({8}).to_vector<float>() != first);
}

TEST_CASE("runner: every subcase pass starts from the case's seed") {
  static std::vector<float> in_first_pass;
  const std::vector<float> x = randn({4}).to_vector<float>();
  SUBCASE("first") { in_first_pass = x; }
  SUBCASE("second") {
    REQUIRE(in_first_pass.size() == 4u);
    CHECK(x == in_first_pass);  // the first pass drew before this one, and the draw is the same
  }
}

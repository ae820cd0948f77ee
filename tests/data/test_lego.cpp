// LEGO chains: generation, the independent solver, TSV files and the gen-data tool.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/lego.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using namespace wavspa::test;

TEST_CASE("data: LEGO chains are well formed, shuffled, and labelled by their solution") {
  Generator gen(11);
  std::set<std::string> firsts;
  for (int i = 0; i < 200; ++i) {
    LegoExample ex = generate_lego(gen, {.chain_length = 7});
    REQUIRE(ex.values.size() == 7);
    CHECK(solve_lego(ex.source) == ex.values);
    firsts.insert(ex.source.substr(0, 9));  // the first clause varies when shuffled
  }
  CHECK(firsts.size() > 50);
  LegoExample ordered = generate_lego(gen, {.chain_length = 4, .shuffle = false});
  const std::string root = ordered.source.substr(4, 2);  // unshuffled: the constant comes first
  CHECK((root == "+1" || root == "-1"));
  // hand-written chains
  CHECK(solve_lego("b = -a ; a = +1 ; c = -b") == std::vector<int>{-1, 1, 1});
  CHECK(solve_lego("a = -1") == std::vector<int>{-1});
  check_error([] { solve_lego("b = -a ; c = +b"); }, {"uses 'a'", "no clause defines"});
  check_error([] { solve_lego("a = +b ; b = +a"); }, {"cycle"});
  check_error([] { solve_lego("a = +1 ; a = -1"); }, {"assigned twice"});
  check_error([] { solve_lego("a := +1"); }, {"clause 0", "not of the form"});
  check_error([&] { generate_lego(gen, {.chain_length = 27}); }, {"chain_length", "1..26", "27"});
  // both labels occur
  Generator g2(5);
  int plus = 0, total = 0;
  for (int i = 0; i < 100; ++i)
    for (int v : generate_lego(g2, {.chain_length = 5}).values) plus += v > 0, ++total;
  CHECK(plus > total / 4);
  CHECK(plus < 3 * total / 4);
}

TEST_CASE("data: LEGO datasets are seeded, TSVs round trip, bad files name the line") {
  LegoDataset a = generate_lego_dataset(4, 20, 5, 5, 6, 12), b = generate_lego_dataset(4, 20, 5, 5, 6, 12);
  REQUIRE(a.train.size() == 20);
  CHECK(a.train[7].source == b.train[7].source);
  CHECK(a.test[0].values.size() == 12);
  TempDir tmp("lego");
  const std::string dir = tmp.path;
  write_lego_tsv(dir + "/t.tsv", a.test);
  auto back = read_lego_tsv(dir + "/t.tsv");
  REQUIRE(back.size() == 5);
  CHECK(back[3].source == a.test[3].source);
  CHECK(back[3].values == a.test[3].values);
  {
    std::ofstream bad(dir + "/bad.tsv");
    bad << "Source\tTarget\n" << "a = +1 ; b = -a\t+1 -1\n" << "a = +1\t+2\n";
  }
  check_error([&] { read_lego_tsv(dir + "/bad.tsv"); }, {"bad.tsv:3", "'+2'"});
  {
    std::ofstream bad(dir + "/bad2.tsv");
    bad << "Source\tTarget\n" << "a = +1 ; b = -c\t+1 -1\n";
  }
  check_error([&] { read_lego_tsv(dir + "/bad2.tsv"); }, {"bad2.tsv:2", "'c'"});

  std::string out;
  CHECK_MESSAGE(run_command(build_path("gen-data") + " --task lego --out " + dir +
                                "/g --seed 2 --train 30 --val 4 --test 6 --chain-length 5 --test-chain-length 10",
                            out) == 0,
                out);
  auto test = read_lego_tsv(dir + "/g/lego_test.tsv");
  CHECK(test.size() == 6);
  CHECK(test[0].values.size() == 10);
  CHECK(read_lego_tsv(dir + "/g/lego_train.tsv")[0].source == generate_lego_dataset(2, 30, 4, 6, 5, 10).train[0].source);
  std::filesystem::remove_all(dir);
}

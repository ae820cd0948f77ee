// data/listops: the evaluator on hand-written expressions, the generator (determinism, length
// bounds, labels, label spread, deduplication), LRA's TSV files (round trip, malformed files
// naming file:line), encoding, and the gen-data tool.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/listops.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using namespace wavspa::test;
using wavspa::test::check_error;

namespace {

ListOpsOptions small_options() {
  ListOpsOptions o;
  o.min_length = 10;
  o.max_length = 60;
  return o;
}

// LRA's length: operators, digits and "]" (parentheses not counted).
int64_t lra_length(const std::string& e) {
  std::istringstream in(e);
  std::string t;
  int64_t n = 0;
  while (in >> t) n += (t != "(" && t != ")");
  return n;
}

std::string strip_parentheses(const std::string& e) {
  std::istringstream in(e);
  std::string t, out;
  while (in >> t)
    if (t != "(" && t != ")") out += (out.empty() ? "" : " ") + t;
  return out;
}


}  // namespace

TEST_CASE("data: listops evaluator on hand-written expressions") {
  CHECK(evaluate_listops("7") == 7);
  CHECK(evaluate_listops("[MIN 4 7 2 ]") == 2);
  CHECK(evaluate_listops("[MAX 2 9 [MIN 4 7 ] 0 ]") == 9);
  CHECK(evaluate_listops("[MED 3 1 2 ]") == 2);
  CHECK(evaluate_listops("[MED 1 2 3 4 ]") == 2);  // int(np.median) = int(2.5)
  CHECK(evaluate_listops("[MED 9 8 ]") == 8);      // int(8.5)
  CHECK(evaluate_listops("[MED 0 9 9 0 ]") == 4);  // int(4.5)
  CHECK(evaluate_listops("[SM 9 8 7 ]") == 4);     // 24 mod 10
  CHECK(evaluate_listops("[SM 5 5 ]") == 0);
  CHECK(evaluate_listops("[SM [MED 1 9 ] [MAX 0 6 ] 7 ]") == 8);  // 5 + 6 + 7 = 18
  CHECK(evaluate_listops("[MIN 3 [MAX 1 8 [SM 9 9 [MED 2 4 6 ] ] ] 5 ]") == 3);
  CHECK(evaluate_listops("[MAX [MIN [MED 7 7 8 ] [SM 3 3 ] ] 1 ]") == 6);
  // LRA's file form: binary pairs in parentheses.
  CHECK(evaluate_listops("( ( ( [MAX 2 ) 9 ) ] )") == 9);
  CHECK(evaluate_listops("( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )") == 9);
}

TEST_CASE("data: listops evaluator takes expressions nested 20,000 deep (no recursion)") {
  // A recursive parser overflowed its stack here (exit 139, nothing on stderr).
  const int depth = 20000;
  std::string deep;
  for (int i = 0; i < depth; ++i) deep += i % 2 ? "[MIN 9 " : "[MAX 0 ";
  deep += "5";
  for (int i = 0; i < depth; ++i) deep += " ]";
  CHECK(evaluate_listops(deep) == 5);
  // and a malformed one of that depth fails with the usual message
  check_error([&] { evaluate_listops(deep.substr(0, deep.size() - 2)); }, {"missing ']'", "[MAX"});
  check_error([] { evaluate_listops("]"); }, {"expected a digit 0-9"});
  check_error([] { evaluate_listops("[SM 1 ] ]"); }, {"unexpected token"});
}

TEST_CASE("data: listops evaluator rejects malformed expressions with the position") {
  check_error([] { evaluate_listops("[MAX 2 9"); }, {"missing ']'", "[MAX"});
  check_error([] { evaluate_listops("[FOO 1 ]"); }, {"[FOO", "character 0"});
  check_error([] { evaluate_listops("[MIN 1 12 ]"); }, {"'12'", "character 7"});
  check_error([] { evaluate_listops("[MIN ]"); }, {"no arguments"});
  check_error([] { evaluate_listops("3 4"); }, {"unexpected token", "character 2"});
  check_error([] { evaluate_listops(""); }, {"expected a digit"});
  check_error([] { evaluate_listops(") 3 ("); }, {"unmatched ')'"});
  check_error([] { evaluate_listops("( [MAX 1 2 ]"); }, {"unclosed '('"});
}

TEST_CASE("data: listops generator is deterministic and respects the length bounds") {
  ListOpsOptions opt = small_options();
  Generator a(7), b(7), c(8);
  std::vector<std::string> xa, xb, xc;
  for (int i = 0; i < 50; ++i) {
    xa.push_back(generate_listops(a, opt));
    xb.push_back(generate_listops(b, opt));
    xc.push_back(generate_listops(c, opt));
  }
  CHECK(xa == xb);
  CHECK(xa != xc);
  for (const auto& e : xa) {
    int64_t n = lra_length(e);
    CHECK(n > opt.min_length);
    CHECK(n < opt.max_length);
    CHECK(e.rfind("( ", 0) == 0);  // LRA's parenthesised form by default
  }
  // The plain form is the same tree with the parentheses dropped.
  opt.parentheses = false;
  Generator d(7);
  for (int i = 0; i < 50; ++i) {
    std::string plain = generate_listops(d, opt);
    CHECK(plain == strip_parentheses(xa[i]));
    CHECK(evaluate_listops(plain) == evaluate_listops(xa[i]));
  }
  // LRA's default bounds (500 < length < 2000) are reachable and respected.
  Generator g(1);
  std::string big = generate_listops(g, ListOpsOptions{});
  CHECK(lra_length(big) > 500);
  CHECK(lra_length(big) < 2000);
}

TEST_CASE("data: listops generator reports impossible bounds") {
  Generator gen(0);
  ListOpsOptions opt;
  opt.min_length = 5;
  opt.max_length = 6;
  check_error([&] { generate_listops(gen, opt); }, {"strictly between", "min_length 5"});
  opt.max_depth = 1;  // every tree is a single digit (length 1)
  opt.min_length = 3;
  opt.max_length = 60;
  check_error([&] { generate_listops(gen, opt); }, {"attempts", "widen"});
}

TEST_CASE("data: listops dataset: labels, label spread, dedup, determinism") {
  ListOpsOptions opt = small_options();
  ListOpsDataset ds = generate_listops_dataset(3, 2000, 100, 100, opt);
  REQUIRE(ds.train.sources.size() == 2000);
  REQUIRE(ds.val.sources.size() == 100);
  REQUIRE(ds.test.sources.size() == 100);
  std::set<std::string> all;
  std::vector<int> count(10, 0);
  for (const ListOpsSplit* s : {&ds.train, &ds.val, &ds.test}) {
    REQUIRE(s->targets.size() == s->sources.size());
    for (size_t i = 0; i < s->sources.size(); ++i) {
      CHECK(s->targets[i] == evaluate_listops(s->sources[i]));
      all.insert(s->sources[i]);
    }
  }
  for (int t : ds.train.targets) count[t]++;
  CHECK(all.size() == 2200);  // no duplicate within or across splits
  for (int label = 0; label < 10; ++label) CHECK_MESSAGE(count[label] > 0, "label ", label, " never appears");

  ListOpsDataset again = generate_listops_dataset(3, 2000, 100, 100, opt);
  CHECK(again.train.sources == ds.train.sources);
  CHECK(again.test.targets == ds.test.targets);
  CHECK(generate_listops_dataset(4, 10, 0, 0, opt).train.sources !=
        std::vector<std::string>(ds.train.sources.begin(), ds.train.sources.begin() + 10));

  // Asking for more distinct trees than exist ends with an error, not a loop.
  ListOpsOptions tiny;
  tiny.max_depth = 2;
  tiny.max_args = 2;
  tiny.min_length = 3;
  tiny.max_length = 5;  // only "[OP d d ]": 4 * 100 trees
  check_error([&] { generate_listops_dataset(0, 1000, 0, 0, tiny); }, {"distinct", "1000 wanted"});
  CHECK(generate_listops_dataset(0, 300, 0, 0, tiny).train.sources.size() == 300);
  // Sizes whose sum overflows int64, or that no memory holds, are refused before any work.
  const int64_t big = std::numeric_limits<int64_t>::max();
  check_error([&] { generate_listops_dataset(0, big, 0, 0, tiny); }, {"at most 100000000"});
  check_error([&] { generate_listops_dataset(0, big / 2 + 1, big / 2 + 1, 1, tiny); }, {"at most 100000000"});
  check_error([&] { generate_listops_dataset(0, kMaxListOpsExamples, 0, 1, tiny); }, {"at most 100000000"});
}

TEST_CASE("data: listops TSV round trip") {
  TempDir tmp("listops_tsv");
  const std::string dir = tmp.path;
  ListOpsDataset ds = generate_listops_dataset(5, 40, 0, 0, small_options());
  std::string path = dir + "/basic_train.tsv";
  write_listops_tsv(path, ds.train);
  std::ifstream f(path, std::ios::binary);
  std::string header;
  std::getline(f, header);
  CHECK(header == "Source\tTarget\r");  // Python's csv.writer ends rows with \r\n
  ListOpsSplit back = read_listops_tsv(path);
  CHECK(back.sources == ds.train.sources);
  CHECK(back.targets == ds.train.targets);
  // A file with plain "\n" endings (as other tools write) reads the same.
  write_file(dir + "/lf.tsv", "Source\tTarget\n[MAX 2 9 [MIN 4 7 ] 0 ]\t9\n( ( ( [SM 5 ) 7 ) ] )\t2\n");
  ListOpsSplit lf = read_listops_tsv(dir + "/lf.tsv");
  CHECK(lf.sources == std::vector<std::string>{"[MAX 2 9 [MIN 4 7 ] 0 ]", "( ( ( [SM 5 ) 7 ) ] )"});
  CHECK(lf.targets == std::vector<int>{9, 2});
  std::filesystem::remove_all(dir);
}

TEST_CASE("data: listops malformed TSV names file and line") {
  TempDir tmp("listops_bad");
  const std::string dir = tmp.path;
  auto expect = [&](const std::string& name, const std::string& text, const std::vector<std::string>& frags) {
    std::string path = dir + "/" + name;
    write_file(path, text);
    std::vector<std::string> all = frags;
    all.push_back(path + ":");
    check_error([&] { read_listops_tsv(path); }, all);
  };
  expect("header.tsv", "Src\tTgt\n3\t3\n", {":1:", "header"});
  expect("notab.tsv", "Source\tTarget\n[MIN 1 2 ]\t1\n[MAX 1 2 ] 2\n", {":3:", "no tab"});
  expect("twotabs.tsv", "Source\tTarget\n[MIN 1 2 ]\t1\t1\n", {":2:", "one tab"});
  expect("label.tsv", "Source\tTarget\n[MIN 1 2 ]\tone\n", {":2:", "0..9", "'one'"});
  expect("label11.tsv", "Source\tTarget\n[MIN 1 2 ]\t1\n[SM 5 6 ]\t11\n", {":3:", "0..9", "'11'"});
  expect("short.tsv", "Source\tTarget\n\t3\n", {":2:", "expected a digit"});
  expect("expr.tsv", "Source\tTarget\n[MIN 1 2\t1\n", {":2:", "missing ']'"});
  expect("empty.tsv", "", {"empty"});
  check_error([&] { read_listops_tsv(dir + "/missing.tsv"); }, {"cannot open", "missing.tsv"});
  // A 10 MB bad line is quoted by its first characters and its length, not echoed whole
  // (it used to be, twice: 20 MB of message).
  const std::string huge(10'000'000, '7');
  for (const std::string& line : {huge, "[MAX 1 " + huge + " ]\t1", "[MIN 1 2 ]\t" + huge}) {
    const std::string path = dir + "/huge.tsv";
    write_file(path, "Source\tTarget\n" + line + "\n");
    try {
      read_listops_tsv(path);
      FAIL("a bad 10 MB line was accepted");
    } catch (const Error& e) {
      const std::string what = e.what();
      CHECK(what.size() < 1000);
      CHECK(what.find("bytes)") != std::string::npos);
      CHECK(what.find(path + ":2:") != std::string::npos);
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("data: listops encoding, padding and truncation") {
  CHECK(listops_vocab_size() == 16);
  CHECK(encode_listops("[MAX 2 9 [MIN 4 7 ] 0 ]") == std::vector<int64_t>{12, 3, 10, 11, 5, 8, 15, 1, 15});
  CHECK(encode_listops("( ( ( [MED 0 ) 9 ) ] )") == std::vector<int64_t>{13, 1, 10, 15});
  CHECK(encode_listops("[SM 1 ]") == std::vector<int64_t>{14, 2, 15});
  check_error([] { encode_listops("[MAX 2 x ]"); }, {"unknown token 'x'", "character 7"});

  Tensor t = encode_batch({"[SM 1 ]", "[MAX 2 9 [MIN 4 7 ] 0 ]"}, 5);  // (B=2, 5)
  CHECK(t.dtype() == kInt64);
  CHECK(t.shape() == Shape{2, 5});
  CHECK(t.to_vector<int64_t>() == std::vector<int64_t>{14, 2, 15, 0, 0, /**/ 12, 3, 10, 11, 5});
  check_error([] { encode_batch({"1"}, 0); }, {"max_len"});
  CHECK(encode_batch({}, 3).shape() == Shape{0, 3});
}

TEST_CASE("data: gen-data tool writes ListOps TSVs and rejects other tasks") {
  const std::string exe = build_path("gen-data");
  TempDir tmp("gen_data");
  const std::string dir = tmp.path;
  std::string out;
  int rc = run_command(exe + " --task listops --out " + dir +
                           "/lo --seed 3 --min-length 10 --max-length 60 --train 50 --val 10 --test 10",
                       out);
  CHECK_MESSAGE(rc == 0, out);
  ListOpsSplit train = read_listops_tsv(dir + "/lo/basic_train.tsv");
  ListOpsSplit val = read_listops_tsv(dir + "/lo/basic_val.tsv");
  ListOpsSplit test = read_listops_tsv(dir + "/lo/basic_test.tsv");
  CHECK(train.sources.size() == 50);
  CHECK(val.sources.size() == 10);
  CHECK(test.sources.size() == 10);
  // The tool writes exactly what the library generates for that seed.
  ListOpsDataset ds = generate_listops_dataset(3, 50, 10, 10, small_options());
  CHECK(train.sources == ds.train.sources);
  CHECK(test.targets == ds.test.targets);
  for (size_t i = 0; i < train.sources.size(); ++i) CHECK(train.targets[i] == evaluate_listops(train.sources[i]));

  rc = run_command(exe + " --task imdb --out " + dir + "/x", out);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("listops, pathfinder, lego") != std::string::npos, out);
  CHECK_MESSAGE(out.find("error:") != std::string::npos, out);
  rc = run_command(exe + " --task listops --out " + dir + "/z --train -3", out);
  CHECK(rc != 0);
  rc = run_command(exe + " --task listops --out " + dir + "/y --min-length 5 --max-length 6", out);
  CHECK(rc != 0);
  CHECK_MESSAGE(out.find("strictly between") != std::string::npos, out);
  std::filesystem::remove_all(dir);
}

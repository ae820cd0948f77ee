// Generates a synthetic Long Range Arena data set into a folder, in the task's own file format.
// Exits non-zero with the message on bad options or a failed write.
//
//   build/gen-data --task listops --out data/listops              # LRA's sizes: 96000/2000/2000
//   build/gen-data --task listops --out /tmp/lo --seed 1 --train 50 --val 10 --test 10
//                  --min-length 10 --max-length 60    (one line)
//
//   build/gen-data --task pathfinder --out data/pf --train 8000 --val 1000 --test 1000
//   build/gen-data --task lego --out data/lego --chain-length 6 --test-chain-length 12
//
// ListOps writes LRA's file names, basic_train.tsv, basic_val.tsv and basic_test.tsv (LRA's
// --task flag defaults to "basic", and its input pipeline reads <task>_<split>.tsv).
// Pathfinder writes one folder per split, OUT/train, OUT/val and OUT/test, each in LRA's
// layout: imgs/C/sample_J.png and the text file metadata/C.npy (data/pathfinder.h).
// LEGO writes lego_train.tsv, lego_val.tsv and lego_test.tsv.
// --train/--val/--test default to LRA's ListOps sizes for every task.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "data/lego.h"
#include "data/listops.h"
#include "data/pathfinder.h"
#include "tools/cli.h"

namespace {

// Every task the tool knows (all of them implemented).
const char* const kTasks = "listops, pathfinder, lego";

int run_listops(const std::string& out, uint64_t seed, int64_t n_train, int64_t n_val, int64_t n_test,
                const wavspa::data::ListOpsOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out, ec);
  WAVSPA_CHECK(!ec, "gen-data: cannot create '", out, "': ", ec.message());
  // Large sets take minutes: a line on stderr per million expressions.
  auto ds = wavspa::data::generate_listops_dataset(seed, n_train, n_val, n_test, options, [](int64_t done, int64_t total) {
    std::fprintf(stderr, "gen-data: %lld of %lld expressions\n", (long long)done, (long long)total);
  });
  const std::pair<const char*, const wavspa::data::ListOpsSplit*> splits[] = {
      {"train", &ds.train}, {"val", &ds.val}, {"test", &ds.test}};
  for (const auto& [name, split] : splits) {
    std::string path = (fs::path(out) / (std::string("basic_") + name + ".tsv")).string();
    wavspa::data::write_listops_tsv(path, *split);
    std::printf("wrote %zu examples to %s\n", split->sources.size(), path.c_str());
  }
  return 0;
}

int run_lego(const std::string& out, uint64_t seed, int64_t n_train, int64_t n_val,
             int64_t n_test, int64_t train_length, int64_t test_length) {
  std::filesystem::create_directories(out);
  auto d = wavspa::data::generate_lego_dataset(seed, n_train, n_val, n_test, train_length, test_length);
  wavspa::data::write_lego_tsv(out + "/lego_train.tsv", d.train);
  wavspa::data::write_lego_tsv(out + "/lego_val.tsv", d.val);
  wavspa::data::write_lego_tsv(out + "/lego_test.tsv", d.test);
  std::printf("wrote %s/lego_{train,val,test}.tsv: %zu / %zu / %zu chains of %lld (test %lld)\n",
              out.c_str(), d.train.size(), d.val.size(), d.test.size(), (long long)train_length,
              (long long)test_length);
  return 0;
}

int run_pathfinder(const std::string& out, uint64_t seed, int64_t n_train, int64_t n_val, int64_t n_test,
                   const wavspa::data::PathfinderOptions& options) {
  namespace fs = std::filesystem;
  auto d = wavspa::data::generate_pathfinder_dataset(seed, n_train, n_val, n_test, options);
  const std::pair<const char*, const std::vector<wavspa::data::PathfinderExample>*> splits[] = {
      {"train", &d.train}, {"val", &d.val}, {"test", &d.test}};
  for (const auto& [name, split] : splits) {
    const std::string dir = (fs::path(out) / name).string();
    wavspa::data::write_pathfinder_split(dir, *split);
    int64_t positives = 0;
    for (const auto& ex : *split) positives += ex.label;
    std::printf("wrote %zu %lldx%lld images (%lld positive) to %s\n", split->size(), (long long)options.size,
                (long long)options.size, (long long)positives, dir.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wavspa gen-data: synthetic Long Range Arena data sets"};
  std::string task, out;
  uint64_t seed = 0;
  int64_t n_train = 96000, n_val = 2000, n_test = 2000;  // LRA's ListOps sizes
  wavspa::data::ListOpsOptions listops;
  bool no_parentheses = false;
  app.add_option("--task", task, std::string("which data set: ") + kTasks)->required();
  app.add_option("--out", out, "output folder (created if missing)")->required();
  app.add_option("--seed", seed, "random seed; the same seed gives the same files")->capture_default_str()->check(wavspa::tools::at_least(0));
  app.add_option("--train", n_train, "training examples")->capture_default_str()->check(wavspa::tools::at_least(0));
  app.add_option("--val", n_val, "validation examples")->capture_default_str()->check(wavspa::tools::at_least(0));
  app.add_option("--test", n_test, "test examples")->capture_default_str()->check(wavspa::tools::at_least(0));
  auto* lo = app.add_option_group("listops", "ListOps options (LRA's defaults)");
  lo->add_option("--max-depth", listops.max_depth, "deepest operator level")->capture_default_str()->check(wavspa::tools::at_least(1));
  lo->add_option("--max-args", listops.max_args, "most arguments of an operator")->capture_default_str()->check(wavspa::tools::at_least(2));
  lo->add_option("--min-length", listops.min_length, "keep trees longer than this")->capture_default_str()->check(wavspa::tools::at_least(0));
  lo->add_option("--max-length", listops.max_length, "keep trees shorter than this")->capture_default_str()->check(wavspa::tools::at_least(2));
  lo->add_flag("--no-parentheses", no_parentheses, "write '[MAX 2 9 ]' instead of LRA's '( ( ( [MAX 2 ) 9 ) ] )'");
  int64_t lego_length = 6, lego_test_length = 12;
  auto* lg = app.add_option_group("lego", "LEGO options");
  lg->add_option("--chain-length", lego_length, "clauses per chain in train and val")->capture_default_str()->check(wavspa::tools::at_least(1));
  lg->add_option("--test-chain-length", lego_test_length, "clauses per chain in test (extrapolation)")->capture_default_str()->check(wavspa::tools::at_least(1));
  wavspa::data::PathfinderOptions pathfinder;
  auto* pf = app.add_option_group("pathfinder", "Pathfinder options (sizes in pixels; LRA's Pathfinder-32 baseline)");
  pf->add_option("--size", pathfinder.size, "image width and height")->capture_default_str()->check(wavspa::tools::at_least(8));
  pf->add_option("--path-length", pathfinder.path_length, "dashes per main path (the two that can carry markers)")->capture_default_str()->check(wavspa::tools::at_least(1));
  pf->add_option("--distractor-length", pathfinder.distractor_length, "dashes per distractor path")->capture_default_str()->check(wavspa::tools::at_least(1));
  pf->add_option("--dash-length", pathfinder.dash_length, "length of one dash")->capture_default_str()->check(wavspa::tools::at_least(1));
  pf->add_option("--gap", pathfinder.gap, "space between the dashes of a path")->capture_default_str()->check(wavspa::tools::at_least(1));
  pf->add_option("--distractors", pathfinder.num_distractors, "unmarked paths besides the two main ones")->capture_default_str()->check(wavspa::tools::at_least(0));
  pf->add_option("--max-turn", pathfinder.max_turn, "largest turn between two dashes, radians")->capture_default_str();
  pf->add_option("--marker-radius", pathfinder.marker_radius, "radius of the two marker dots")->capture_default_str()->check(wavspa::tools::at_least(0));
  pf->add_option("--separation", pathfinder.separation, "least distance between two paths (> gap)")->capture_default_str()->check(wavspa::tools::at_least(1));
  if (const int rc = wavspa::tools::parse(app, argc, argv); rc >= 0) return rc;
  listops.parentheses = !no_parentheses;

  try {
    if (task == "listops") return run_listops(out, seed, n_train, n_val, n_test, listops);
    if (task == "lego")
      return run_lego(out, seed, n_train, n_val, n_test, lego_length, lego_test_length);
    if (task == "pathfinder") return run_pathfinder(out, seed, n_train, n_val, n_test, pathfinder);
    throw wavspa::Error(wavspa::str("gen-data: unknown task '", task, "'; valid tasks: ", kTasks));
  } catch (const std::filesystem::filesystem_error& e) {  // a folder or file that cannot be made
    std::cerr << "error: gen-data: cannot create '" << e.path1().string() << "': " << e.code().message() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

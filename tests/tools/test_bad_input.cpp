// The tools driven as a hostile user would: every run-config key with a value it must refuse,
// config files that are missing, empty, not JSON or of the wrong shape, every task's data
// files missing, empty, garbage or truncated, checkpoints truncated, corrupted or of another
// model, outputs that cannot be written, and each tool's own options. Every case must end
// with exit status 1 and one "error: " line on standard error that names the culprit (the
// key, the file, the tensor); nothing may crash, hang or print a stack of messages.
//
// The tools come from $WAVSPA_BUILD. Most cases fail before a model exists; the few that
// need a run folder share one tiny run made at the start of their case.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/helpers.h"
#include "tests/tool_runs.h"
#include "models/config.h"
#include "train/config.h"

using namespace wavspa;
using namespace wavspa::test;
namespace fs = std::filesystem;

namespace {

// A failure as the README promises it: status 1, one "error: " line on standard error, short,
// holding every fragment. Standard output may hold progress lines from before the failure.
void check_failure(const Run& r, const std::vector<std::string>& fragments, const std::string& what) {
  INFO(what, "\nstdout: ", r.out.substr(0, 2000), "\nstderr: ", r.err.substr(0, 2000));
  CHECK(r.rc == 1);
  CHECK(count_of(r.err, "error: ") == 1);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.size() < 4000);
  for (const auto& f : fragments) CHECK_MESSAGE(contains(r.err, f), what, ": lacks '", f, "'");
}

std::string fixture(const std::string& name) { return "tests/fixtures/readers/" + name; }

void copy(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// A copy of folder `from` as `to` (replaced).
void copy_folder(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::create_directories(fs::path(to).parent_path());
  fs::copy(from, to, fs::copy_options::recursive);
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

TEST_CASE("bad input: every run-config key refuses a value out of its range, naming the key") {
  TempDir dir("bad-keys");
  const std::string data = make_listops(dir);
  const std::string base = build_path("train") + " --task listops --data " + data + kTinyListops + " --set steps=2";
  // key, bad value, what the message must hold
  struct Case {
    std::string key, value;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {"batch_size", "0", {"'batch_size'", ">= 1", "got 0"}},
      {"clip_grad_norm", "-1", {"'clip_grad_norm'", ">= 0"}},
      {"cuda_graphs", "maybe", {"'cuda_graphs'", "true or false", "maybe"}},
      {"data", dir / "nowhere", {dir / "nowhere", "does not exist"}},
      {"device", "tpu", {"'device'", "tpu", "cpu, cuda"}},
      {"early_stop", "-1", {"'early_stop'", ">= 0"}},
      {"eval_every", "0", {"'eval_every'", ">= 1"}},
      {"eval_limit", "-1", {"'eval_limit'", ">= 0"}},
      {"label_smoothing", "2", {"'label_smoothing'", "[0, 1]", "got 2"}},
      {"log_every", "0", {"'log_every'", ">= 1"}},
      {"lr", "0", {"'lr'", "> 0"}},
      {"max_len", "-1", {"'max_len'", ">= 0"}},
      {"momentum", "1.5", {"'momentum'", "[0, 1)", "1.5"}},
      {"optimizer", "lamb", {"'optimizer'", "lamb", "adamw"}},
      {"precision", "fp8", {"'precision'", "fp8", "bf16"}},
      {"prefetch", "-1", {"'prefetch'", ">= 0"}},
      {"schedule", "bogus", {"bogus", "unknown factor", "cosine_decay"}},
      {"seed", "-1", {"'seed'", "non-negative", "-1"}},
      {"steps", "0", {"'steps'", ">= 1"}},
      {"task", "imdb", {"'task'", "imdb", "listops"}},
      {"test_limit", "-1", {"'test_limit'", ">= 0"}},
      {"threads", "-1", {"'threads'", ">= 0"}},
      {"train_limit", "-1", {"'train_limit'", ">= 0"}},
      {"val_limit", "-1", {"'val_limit'", ">= 0"}},
      {"warmup", "-2", {"'warmup'", ">= -1"}},
      {"weight_decay", "-1", {"'weight_decay'", ">= 0"}},
      {"model.architecture", "rnn", {"'architecture'", "rnn", "wavspa"}},
      {"model.attention", "sparse", {"'attention'", "sparse", "performer"}},
      {"model.attention_dropout", "1", {"dropout rates", "[0, 1)"}},
      {"model.classifier_mlp", "0", {"'classifier_mlp'", "positive"}},
      {"model.dropout", "1.5", {"dropout rates", "[0, 1)"}},
      {"model.dual", "maybe", {"'dual'", "true or false"}},
      {"model.emb_dim", "0", {"'emb_dim'", "positive"}},
      {"model.levels", "0", {"'levels'", "positive"}},
      {"model.linformer_k", "0", {"'linformer_k'", "positive"}},
      {"model.local_global", "-1", {"'local_global'", ">= 0"}},
      {"model.local_window", "0", {"'local_window'", "positive"}},
      {"model.mask_padding", "maybe", {"'mask_padding'", "true or false"}},
      {"model.max_len", "-1", {"'model.max_len'", ">= 0", "the data sets it"}},
      {"model.mlp_dim", "0", {"'mlp_dim'", "positive"}},
      {"model.num_classes", "-1", {"'model.num_classes'", ">= 0"}},
      {"model.num_heads", "0", {"'num_heads'", "positive"}},
      {"model.num_layers", "0", {"'num_layers'", "positive"}},
      {"model.parametrization", "bogus", {"parametrization", "bogus", "adalift"}},
      {"model.performer_features", "0", {"'performer_features'", "positive"}},
      {"model.pooling", "bogus", {"'pooling'", "bogus", "mean"}},
      {"model.positions", "bogus", {"'positions'", "bogus", "sinusoidal"}},
      {"model.pre_mlp_norm", "maybe", {"'pre_mlp_norm'", "true or false"}},
      {"model.qkv_dim", "0", {"'qkv_dim'", "positive"}},
      {"model.seed", "-1", {"'seed'", "non-negative"}},
      {"model.vocab_size", "-1", {"'model.vocab_size'", ">= 0"}},
      {"model.wavelet_mode", "bogus", {"'wavelet_mode'", "bogus", "periodization"}},
      {"model.wlen", "0", {"'wlen'", "positive"}},
  };
  // Every key has a case: a key added to RunConfig without one fails here.
  std::set<std::string> covered;
  for (const Case& c : cases) covered.insert(c.key);
  for (const std::string& key : train::RunConfig::keys())
    CHECK_MESSAGE(covered.count(key) == 1, "no bad-value case for the config key '", key, "'");

  for (const Case& c : cases) {
    // on the command line, and in a config file
    check_failure(run_shell(base + " --set " + shell_quote(c.key + "=" + c.value) + " --out " + (dir / "r"), dir),
                  c.fragments, "--set " + c.key + "=" + c.value);
    CHECK_FALSE(fs::exists(dir / "r/config.json"));
  }
  // A value of the wrong JSON type in every key: refused, naming the key (its last part).
  // In process, through what --set calls (the loop above went through the tool already).
  for (const std::string& key : train::RunConfig::keys()) {
    if (key == "data") continue;  // any text names a folder: its check is the one above
    const std::string name = key.rfind("model.", 0) == 0 ? key.substr(6) : key;
    train::RunConfig c;
    c.task = "listops";
    check_error(
        [&] {
          train::apply_override(c, key + "={\"x\": 1}");
          c.validate();
          models::ModelConfig model = c.model;
          model.vocab_size = model.num_classes = model.max_len = 8;  // what the data would set
          model.validate();
        },
        {name});
  }
  // Combinations that are each valid alone.
  const std::vector<Case> pairs = {
      {"model.num_heads", "3", {"qkv_dim", "divisible by num_heads 3"}},
      {"precision", "bf16", {"'precision'", "needs device cuda"}},
      {"cuda_graphs", "true", {"'cuda_graphs'", "needs device cuda"}},
      {"max_len", "2000000", {"'max_len'", "at most 1048576"}},
  };
  for (const Case& c : pairs)
    check_failure(run_shell(base + " --set " + c.key + "=" + c.value + " --out " + (dir / "r"), dir), c.fragments,
                  c.key + "=" + c.value);
  check_failure(run_shell(base + " --set schedule=cosine --set warmup=5 --out " + (dir / "r"), dir),
                {"cosine", "warmup < steps"}, "cosine with warmup >= steps");
}

TEST_CASE("bad input: config files missing, empty, not JSON, or of the wrong shape are refused naming the file") {
  TempDir dir("bad-config");
  const std::string data = make_listops(dir);
  const std::string base = build_path("train") + " --task listops --data " + data + kTinyListops + " --out " + (dir / "r");
  struct Case {
    std::string name, text;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {"empty.json", "", {"empty.json", "invalid JSON"}},
      {"array.json", "[1, 2]", {"array.json", "expected a JSON object", "array"}},
      {"cut.json", "{\"steps\": 5,", {"cut.json", "invalid JSON"}},
      {"model.json", "{\"model\": \"big\"}", {"model.json", "'model' must be a JSON object"}},
      {"unknown.json", "{\"stepz\": 5}", {"unknown.json", "unknown keys [stepz]", "steps"}},
      {"type.json", "{\"steps\": \"five\"}", {"type.json", "'steps'", "an integer"}},
      {"range.json", "{\"lr\": -1}", {"'lr'", "> 0"}},
      {"huge.json", "{\"lr\": 7E747}", {"huge.json", "7E747"}},
      {"binary.json", std::string("\x89PNG\r\n\x1a\n\0\0", 10), {"binary.json", "invalid JSON"}},
      {"model_key.json", "{\"model\": {\"levels\": -4}}", {"'levels'", "positive"}},
  };
  for (const Case& c : cases) {
    write_file(dir / c.name, c.text);
    check_failure(run_shell(base + " --config " + (dir / c.name), dir), c.fragments, c.name);
  }
  check_failure(run_shell(base + " --config " + (dir / "missing.json"), dir), {"missing.json", "cannot open"}, "missing");
  check_failure(run_shell(base + " --config " + dir.path, dir), {dir.path, "is a folder, not a file"}, "a folder");
  CHECK_FALSE(fs::exists(dir / "r"));
}

TEST_CASE("bad input: every task's data files missing, empty, garbage or truncated are refused naming the file") {
  TempDir dir("bad-data");
  const std::string train = build_path("train");
  int runs = 0;
  auto run_task = [&](const std::string& task, const std::string& folder, const std::string& extra = "") {
    const std::string out = dir / str("r", ++runs);
    Run r = run_shell(train + " --task " + task + " --data " + folder + kTiny + extra + " --set steps=1 --out " + out, dir);
    if (r.rc == 1) CHECK_MESSAGE(!fs::exists(out + "/config.json"), "a refused run wrote ", out, "/config.json");
    return r;
  };

  // ListOps: a valid set, then one file replaced at a time
  const std::string listops = make_listops(dir);
  const std::string bad = dir / "listops-bad";
  auto listops_case = [&](const std::string& file, const std::string& text, const std::vector<std::string>& fragments) {
    copy_folder(listops, bad);
    write_file(bad + "/" + file, text);
    check_failure(run_task("listops", bad, " --set max_len=48"), fragments, "listops " + file);
  };
  listops_case("basic_train.tsv", "", {"basic_train.tsv", "empty"});
  listops_case("basic_train.tsv", "Source\tTarget\n", {"listops/train", "no examples"});
  listops_case("basic_val.tsv", "Source\tTarget\n[MAX 2 3\t3\n", {"basic_val.tsv:2", "missing ']'"});
  listops_case("basic_val.tsv", "Source\tTarget\n[MAX 2 3 ]\t12\n", {"basic_val.tsv:2", "label", "'12'"});
  listops_case("basic_test.tsv", "Source\tTarget\n[MAX 2 3 ]\n", {"basic_test.tsv:2", "no tab"});
  listops_case("basic_test.tsv", "Source\tTarget\n[FOO 2 3 ]\t3\n", {"basic_test.tsv:2", "FOO"});
  listops_case("basic_test.tsv", std::string("\x01\x02\xff\xfe garbage\x80\n", 13), {"basic_test.tsv:1", "header", "\\xff"});
  // 20,000 levels deep (it used to overflow the parser's stack: exit 139, nothing said): a
  // valid expression, cut to max_len tokens as every other
  std::string deep;
  for (int i = 0; i < 20000; ++i) deep += "[MAX 1 ";
  for (int i = 0; i < 20000; ++i) deep += "] ";
  copy_folder(listops, bad);
  write_file(bad + "/basic_train.tsv", "Source\tTarget\n" + deep + "\t1\n");
  Run deep_run = run_task("listops", bad, " --set max_len=48");
  CHECK_MESSAGE(deep_run.rc == 0, deep_run.err);
  copy_folder(listops, bad);
  fs::remove(bad + "/basic_val.tsv");
  check_failure(run_task("listops", bad), {"basic_val.tsv", "gen-data"}, "listops without val");
  check_failure(run_task("listops", dir / "listops/basic_train.tsv"), {"basic_train.tsv", "is a file"}, "a file as --data");
  check_failure(run_task("listops", dir / "nowhere"), {"nowhere", "does not exist"}, "no data folder");

  // Text classification (IMDb's CSV / TSV)
  const std::string text = dir / "text";
  auto text_case = [&](const std::string& train_fixture, const std::vector<std::string>& fragments) {
    fs::remove_all(text);
    copy(fixture(train_fixture), text + "/train" + fs::path(train_fixture).extension().string());
    copy(fixture("text_header.csv"), text + "/test.csv");
    check_failure(run_task("text", text), fragments, "text " + train_fixture);
  };
  text_case("bad_label.csv", {"train.csv:3", "expected a label", "'x1'"});
  text_case("bad_unterminated.csv", {"train.csv:3", "never closed"});
  text_case("bad_short.tsv", {"train.tsv:3", "expected 2 fields"});
  fs::remove_all(text);
  copy(fixture("text_header.csv"), text + "/train.csv");
  check_failure(run_task("text", text), {"test.tsv", "test.csv"}, "text without test");

  // Retrieval (AAN pairs)
  const std::string aan = dir / "aan";
  for (const char* split : {"train", "eval", "test"})
    copy(fixture("retrieval_aan.tsv"), aan + "/new_aan_pairs." + split + ".tsv");
  copy(fixture("bad_retrieval.tsv"), aan + "/new_aan_pairs.eval.tsv");
  check_failure(run_task("retrieval", aan), {"new_aan_pairs.eval.tsv:2", "expected 5 tab-separated fields"}, "aan");

  // CIFAR-10 binary batches
  const std::string cifar = dir / "cifar";
  for (int i = 1; i <= 5; ++i) copy(fixture("cifar_3.bin"), cifar + "/data_batch_" + std::to_string(i) + ".bin");
  copy(fixture("cifar_3.bin"), cifar + "/test_batch.bin");
  copy(fixture("bad_size.bin"), cifar + "/data_batch_3.bin");
  check_failure(run_task("image", cifar), {"data_batch_3.bin", "expected 3073"}, "cifar size");
  copy(fixture("cifar_3.bin"), cifar + "/data_batch_3.bin");
  copy(fixture("bad_label.bin"), cifar + "/test_batch.bin");
  check_failure(run_task("image", cifar), {"test_batch.bin", "record 1", "found 10"}, "cifar label");
  fs::remove(cifar + "/data_batch_5.bin");
  check_failure(run_task("image", cifar), {"data_batch_5.bin"}, "cifar missing batch");

  // Fashion-MNIST idx files, plain and gzip
  const std::string mnist = dir / "mnist";
  auto mnist_set = [&] {
    fs::remove_all(mnist);
    for (const char* split : {"train", "t10k"}) {
      copy(fixture("tiny-images-idx3-ubyte"), mnist + "/" + split + "-images-idx3-ubyte");
      copy(fixture("tiny-labels-idx1-ubyte.gz"), mnist + "/" + split + "-labels-idx1-ubyte.gz");
    }
  };
  mnist_set();
  copy(fixture("bad_label-idx1-ubyte"), mnist + "/t10k-labels-idx1-ubyte");
  fs::remove(mnist + "/t10k-labels-idx1-ubyte.gz");
  check_failure(run_task("fashion-mnist", mnist), {"t10k-labels-idx1-ubyte", "label 2", "found 12"}, "idx label");
  mnist_set();
  copy(fixture("bad_truncated-idx3-ubyte"), mnist + "/train-images-idx3-ubyte");
  check_failure(run_task("fashion-mnist", mnist), {"train-images-idx3-ubyte", "truncated"}, "idx truncated");
  mnist_set();
  fs::remove(mnist + "/train-images-idx3-ubyte");
  copy(fixture("bad_cut-idx3-ubyte.gz"), mnist + "/train-images-idx3-ubyte.gz");
  check_failure(run_task("fashion-mnist", mnist), {"train-images-idx3-ubyte.gz"}, "idx gzip cut");
  mnist_set();
  write_file(mnist + "/train-labels-idx1-ubyte.gz", "not gzip at all");
  check_failure(run_task("fashion-mnist", mnist), {"train-labels-idx1-ubyte.gz"}, "idx not gzip");

  // Pathfinder folders
  const std::string pf = dir / "pathfinder";
  const std::string fx = "tests/fixtures/pathfinder/";
  for (const char* broken : {"not_png", "truncated_png", "bad_label", "missing_image", "short_line"}) {
    fs::remove_all(pf);
    for (const char* split : {"train", "val", "test"}) copy_folder(fx + "valid", pf + "/" + split);
    copy_folder(fx + broken, pf + "/val");
    check_failure(run_task("pathfinder", pf), {pf + "/val/metadata/0.npy"}, std::string("pathfinder ") + broken);
  }
  copy_folder(fx + "valid", pf + "/val");
  fs::remove_all(pf + "/test");
  check_failure(run_task("pathfinder", pf), {pf + "/test", "does not exist"}, "pathfinder without test");

  // LEGO
  const std::string lego = dir / "lego";
  Run g = run_shell(build_path("gen-data") + " --task lego --out " + lego + " --train 20 --val 5 --test 5", dir);
  REQUIRE_MESSAGE(g.rc == 0, g.err);
  write_file(lego + "/lego_val.tsv", "garbage\n");
  check_failure(run_task("lego", lego), {"lego_val.tsv", "header"}, "lego header");
}

TEST_CASE("bad input: checkpoints truncated, corrupted or of another model are refused naming the file or tensor") {
  TempDir dir("bad-checkpoint");
  const std::string data = make_listops(dir);
  const std::string exe = build_path("train"), inspect = build_path("inspect_checkpoint");
  const std::string base = exe + " --task listops --data " + data + kTinyListops;
  const std::string run = dir / "run";
  Run one = run_shell(base + " --set steps=2 --set eval_every=2 --out " + run, dir);
  REQUIRE_MESSAGE(one.rc == 0, one.err);
  const std::string good = read_file(run + "/latest.safetensors");
  REQUIRE(good.size() > 1000);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | (unsigned char)good[i];
  REQUIRE(header_len + 8 < good.size());

  struct Case {
    std::string what, bytes;
    std::vector<std::string> fragments;  // beside the file's name
  };
  std::string flipped = good;
  flipped[good.size() - 3] ^= 0x40;  // an exponent bit of the last tensor's last element
  std::string long_header = good;
  long_header[5] = 0x7f;  // a header length of about 2^47 bytes
  std::string bad_json = good;
  bad_json[8] = '[';
  const std::vector<Case> cases = {
      {"empty", "", {}},
      {"4 bytes", good.substr(0, 4), {}},
      {"the header cut", good.substr(0, 8 + header_len / 2), {}},
      {"the data cut", good.substr(0, good.size() - 100), {}},
      {"a header length past the end", long_header, {"header"}},
      {"a header that is not JSON", bad_json, {"header"}},
      {"a flipped bit in a weight", flipped, {"is corrupted", "CRC-32"}},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string copy_dir = dir / str("run", ++n);
    copy_folder(run, copy_dir);
    write_file(copy_dir + "/latest.safetensors", c.bytes);
    std::vector<std::string> fragments = c.fragments;
    fragments.push_back("latest.safetensors");
    check_failure(run_shell(exe + " --resume " + copy_dir, dir), fragments, "--resume: " + c.what);
    check_failure(run_shell(exe + " --eval-only " + copy_dir + "/latest.safetensors", dir), fragments,
                  "--eval-only: " + c.what);
    check_failure(run_shell(inspect + " " + copy_dir + "/latest.safetensors", dir), fragments, "inspect: " + c.what);
    // a refused resume changed nothing in the run folder
    CHECK(read_file(copy_dir + "/latest.safetensors") == c.bytes);
  }

  // another model's checkpoint: the tensor whose shape differs is named
  const std::string other = dir / "other";
  Run wide = run_shell(base + " --set steps=1 --set model.emb_dim=32 --set model.qkv_dim=32 --out " + other, dir);
  REQUIRE_MESSAGE(wide.rc == 0, wide.err);
  const std::string mixed = dir / "mixed";
  copy_folder(run, mixed);
  copy(other + "/latest.safetensors", mixed + "/latest.safetensors");
  check_failure(run_shell(exe + " --resume " + mixed, dir), {"latest.safetensors", "shape"},
                "another model's checkpoint");

  // the run folder's own files
  const std::string broken = dir / "broken";
  copy_folder(run, broken);
  write_file(broken + "/config.json", "{\"steps\": ");
  check_failure(run_shell(exe + " --resume " + broken, dir), {"config.json", "invalid JSON"}, "config.json cut");
  copy_folder(run, broken);
  fs::remove(broken + "/latest.safetensors");
  check_failure(run_shell(exe + " --resume " + broken, dir), {"latest.safetensors"}, "no latest checkpoint");

  // inspect_checkpoint's own inputs
  check_failure(run_shell(inspect + " " + (dir / "none.safetensors"), dir), {"none.safetensors"}, "inspect missing");
  check_failure(run_shell(inspect + " " + dir.path, dir), {dir.path}, "inspect a folder");
}

TEST_CASE("bad input: outputs that cannot be written, and each tool's own options") {
  TempDir dir("bad-tools");
  const std::string data = make_listops(dir);
  const std::string train = build_path("train"), gen = build_path("gen-data"), bench_step = build_path("bench_step");
  const std::string base = train + " --task listops --data " + data + kTinyListops + " --set steps=1";
  write_file(dir / "a-file", "x");

  check_failure(run_shell(base + " --out /proc/wavspa-run", dir), {"/proc/wavspa-run", "cannot create"}, "--out in /proc");
  check_failure(run_shell(base + " --out " + (dir / "a-file"), dir), {"a-file"}, "--out a file");
  check_failure(run_shell(base + " --out " + (dir / "a-file/run"), dir), {"a-file/run"}, "--out under a file");
  check_failure(run_shell(gen + " --task listops --train 2 --val 2 --test 2 --out " + (dir / "a-file"), dir),
                {"a-file"}, "gen-data --out a file");
  check_failure(run_shell(gen + " --task lego --train 2 --val 2 --test 2 --out /proc/wavspa-gen", dir),
                {"/proc/wavspa-gen"}, "gen-data --out in /proc");

  // gen-data's options
  const std::string g = gen + " --out " + (dir / "g");
  const std::vector<std::pair<std::string, std::vector<std::string>>> gen_cases = {
      {" --task bogus", {"task", "bogus", "listops, pathfinder, lego"}},
      {" --task listops --train -1", {"--train", "-1"}},
      {" --task listops --train 5 --min-length 50 --max-length 10", {"min_length 50", "max_length 10"}},
      {" --task listops --train 5 --max-depth 0", {"--max-depth"}},
      {" --task listops --train 5 --max-args 1", {"--max-args"}},
      {" --task lego --train 5 --chain-length 0", {"--chain-length"}},
      {" --task pathfinder --train 2 --size 0", {"--size"}},
      {" --task pathfinder --train 2 --separation 2 --gap 2", {"separation (2)", "gap (2)"}},
      {" --task pathfinder --train 2 --max-turn nan", {"max_turn", "nan"}},
      {" --task listops --seed -3", {"--seed"}},
  };
  for (const auto& [args, fragments] : gen_cases) check_failure(run_shell(g + args, dir), fragments, "gen-data" + args);

  // bench_step's options
  const std::vector<std::pair<std::string, std::vector<std::string>>> bench_cases = {
      {" --config " + (dir / "none.json"), {"none.json"}},
      {" --config " + (dir / "a-file"), {"a-file", "invalid JSON"}},
      {" --config configs/listops_wavspa.json --len 0", {"--len"}},
      {" --config configs/listops_wavspa.json --len 5000", {"--len", "5000", "max_len"}},
      {" --config configs/listops_wavspa.json --device tpu", {"--device", "tpu"}},
      {" --config configs/listops_wavspa.json --precision fp8", {"fp8"}},
      {" --config configs/listops_wavspa.json --batch 0", {"--batch"}},
  };
  for (const auto& [args, fragments] : bench_cases)
    check_failure(run_shell(bench_step + args, dir), fragments, "bench_step" + args);
}

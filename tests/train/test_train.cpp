// train/ and tools/train: the run config (JSON round trip, unknown keys, types, values,
// --set overrides, model presets), the command line's errors, a short run's files (config,
// metrics, checkpoints, plots, summary), interrupt + resume against an uninterrupted run,
// NaN handling, --eval-only, and the data tasks (lego, pathfinder, fashion-mnist) reaching a model.
//
// The tools come from $WAVSPA_BUILD (default: build). Every run is tiny (a one-layer model of
// width 16 on a few hundred examples), so the whole file takes seconds.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "models/factory.h"
#include "nn/checkpoint.h"
#include "tests/helpers.h"
#include "tests/tool_runs.h"
#include "train/config.h"

using namespace wavspa;
using namespace wavspa::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {


// metrics.csv: the header and the rows split into fields. Selections come back as text, so
// that a failed comparison prints both sides.
struct Csv {
  std::string header;
  std::vector<std::vector<std::string>> rows;
  size_t count(const std::string& split_name) const {
    size_t n = 0;
    for (const auto& r : rows) n += r.at(2) == split_name;
    return n;
  }
  // The steps of one split's rows, as "5 10 15 20".
  std::string steps_of(const std::string& split_name) const {
    std::string out;
    for (const auto& r : rows)
      if (r.at(2) == split_name) out += (out.empty() ? "" : " ") + r.at(0);
    return out;
  }
  // The chosen columns of one split's rows, a line per row.
  std::string columns(const std::string& split_name, const std::vector<size_t>& cols) const {
    std::string out;
    for (const auto& r : rows) {
      if (r.at(2) != split_name) continue;
      for (size_t c : cols) out += r.at(c) + ",";
      out += "\n";
    }
    return out;
  }
  int64_t max_step() const {
    int64_t m = -1;
    for (const auto& r : rows) m = std::max<int64_t>(m, std::stoll(r.at(0)));
    return m;
  }
};

Csv read_csv(const std::string& path) {
  auto lines = lines_of(read_file(path));
  REQUIRE_MESSAGE(!lines.empty(), path, " is empty or missing");
  Csv csv;
  csv.header = lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    csv.rows.push_back(split(lines[i], ','));
    REQUIRE_MESSAGE(csv.rows.back().size() == 8, path, ":", i + 1, ": ", lines[i]);
  }
  return csv;
}

json read_json(const std::string& path) {
  json j = json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(j.is_object(), path, " is not a JSON object: ", read_file(path));
  return j;
}

}  // namespace

// ---- 1. the config API ----------------------------------------------------------------------

TEST_CASE("train: RunConfig JSON round trip keeps every key and value") {
  const std::string text = R"({
    "task": "lego", "data": "/some/folder", "max_len": 64, "train_limit": 5, "val_limit": 6,
    "test_limit": 7, "steps": 30, "batch_size": 4, "optimizer": "sgd", "lr": 0.5,
    "weight_decay": 0.2, "momentum": 0.8, "schedule": "constant", "warmup": 3,
    "clip_grad_norm": 2.5, "label_smoothing": 0.1, "eval_every": 9, "eval_limit": 11,
    "log_every": 2, "early_stop": 4, "prefetch": 0, "seed": 77, "device": "cuda", "threads": 3, "precision": "bf16",
    "cuda_graphs": true,
    "model": {"architecture": "wavspa", "emb_dim": 24, "levels": 2, "pre_mlp_norm": true,
              "parametrization": "lift", "dropout": 0.25}})";
  const json given = json::parse(text);
  train::RunConfig c = train::RunConfig::from_json(text);
  const json written = json::parse(c.to_json());
  // every run key given comes back with its value, and so does every model key given
  for (auto it = given.begin(); it != given.end(); ++it) {
    if (it.key() == "model") continue;
    CHECK_MESSAGE(written.at(it.key()) == it.value(), it.key());
  }
  for (auto it = given["model"].begin(); it != given["model"].end(); ++it)
    CHECK_MESSAGE(written.at("model").at(it.key()) == it.value(), "model.", it.key());
  // the written keys are exactly RunConfig::keys()
  std::set<std::string> keys;
  for (auto it = written.begin(); it != written.end(); ++it)
    if (it.key() != "model") keys.insert(it.key());
  for (auto it = written.at("model").begin(); it != written.at("model").end(); ++it) keys.insert("model." + it.key());
  const auto expected = train::RunConfig::keys();
  CHECK(keys == std::set<std::string>(expected.begin(), expected.end()));
  CHECK(expected.size() > 40);
  // reading what was written changes nothing
  CHECK(train::RunConfig::from_json(c.to_json()).to_json() == c.to_json());
  // the defaults round-trip too, and a partial "model" object keeps the other model keys
  train::RunConfig d;
  CHECK(train::RunConfig::from_json(d.to_json()).to_json() == d.to_json());
  train::RunConfig p = train::RunConfig::from_json(R"({"model": {"levels": 3}})");
  CHECK(p.model.levels == 3);
  CHECK(p.model.emb_dim == d.model.emb_dim);
  CHECK(p.steps == d.steps);
}

TEST_CASE("train: RunConfig rejects unknown keys, wrong types and invalid values") {
  using train::RunConfig;
  check_error([] { RunConfig::from_json(R"({"stepz": 3})"); }, {"stepz", "valid keys", "model.emb_dim", "steps"});
  check_error([] { RunConfig::from_json(R"({"model": {"emb_dims": 3}})"); }, {"emb_dims", "valid keys", "emb_dim"});
  check_error([] { RunConfig::from_json(R"({"steps": "many"})"); }, {"'steps'", "wrong type"});
  check_error([] { RunConfig::from_json(R"({"lr": "0.1"})"); }, {"'lr'", "wrong type"});
  check_error([] { RunConfig::from_json(R"({"task": 3})"); }, {"'task'", "wrong type"});
  check_error([] { RunConfig::from_json(R"({"model": 5})"); }, {"'model'", "JSON object"});
  check_error([] { RunConfig::from_json(R"({"model": {"emb_dim": "wide"}})"); }, {"emb_dim", "wrong type"});
  check_error([] { RunConfig::from_json("[1, 2]"); }, {"JSON object"});
  check_error([] { RunConfig::from_json("{\"steps\": "); }, {"invalid JSON"});
  check_error([] { RunConfig::from_json(R"({"task": "imdb"})"); }, {"'task'", "imdb", "listops", "fashion-mnist"});
  check_error([] { RunConfig::from_json(R"({"optimizer": "rmsprop"})"); }, {"'optimizer'", "rmsprop", "adamw", "sgd"});
  check_error([] { RunConfig::from_json(R"({"device": "tpu"})"); }, {"'device'", "cuda"});
  check_error([] { RunConfig::from_json(R"({"precision": "fp16"})"); }, {"'precision'", "fp16", "bf16"});
  check_error([] { RunConfig::from_json(R"({"precision": "bf16"})"); }, {"'precision'", "needs device cuda", "cpu"});
  check_error([] { RunConfig::from_json(R"({"cuda_graphs": true})"); }, {"'cuda_graphs'", "needs device cuda", "cpu"});
  check_error([] { RunConfig::from_json(R"({"steps": 0})"); }, {"'steps'", ">= 1"});
  check_error([] { RunConfig::from_json(R"({"lr": 0})"); }, {"'lr'", "> 0"});
  check_error([] { RunConfig::from_json(R"({"lr": -1e-3})"); }, {"'lr'", "> 0"});
  check_error([] { RunConfig::from_json(R"({"label_smoothing": 1.5})"); }, {"'label_smoothing'", "[0, 1]"});
  check_error([] { RunConfig::from_json(R"({"batch_size": 0})"); }, {"'batch_size'"});
  check_error([] { RunConfig::from_json(R"({"steps": 10, "warmup": 10})"); }, {"warmup", "steps"});
  // the valid edges are accepted
  CHECK(RunConfig::from_json(R"({"label_smoothing": 1})").label_smoothing == 1.0);
  CHECK(RunConfig::from_json(R"({"steps": 1, "warmup": 0})").steps == 1);
  for (const auto& t : train::task_names())
    CHECK(RunConfig::from_json(json{{"task", t}}.dump()).task == t);
}

TEST_CASE("train: apply_override refuses text that is not UTF-8 (found by fuzz/configs)") {
  // libFuzzer's first finding: a bare word with a byte that is not UTF-8 made the wrong-type
  // message's JSON dump throw nlohmann's type_error instead of a wavspa::Error.
  train::RunConfig c;
  check_error([&] { train::apply_override(c, "lr=0.\xf5" "0:1"); }, {"--set lr", "UTF-8"});
  check_error([&] { train::apply_override(c, "data=\xff\xfe"); }, {"--set data", "UTF-8"});
  CHECK(c.lr == train::RunConfig().lr);
  // The second (CI's fuzz run): a number too large for a double in a config file threw
  // nlohmann's out_of_range past parse_json.
  check_error([] { train::RunConfig::from_json(R"({"lr": 7E747})"); }, {"invalid JSON", "7E747"});
  // The third (CI's fuzz run, 2026-12-01): text that JSON reads as a number up to a NUL byte,
  // for a key whose value is a string, is kept as the raw text, and that text was not
  // checked for UTF-8.
  const std::string raw("model.wavelet_mode=0\0\0m.co\x08np \xdc \x08rs", 35);
  check_error([&] { train::apply_override(c, raw); }, {"--set model.wavelet_mode", "UTF-8"});
}

TEST_CASE("train: apply_override sets run and model keys from key=value") {
  train::RunConfig c;
  train::apply_override(c, "steps=500");
  CHECK(c.steps == 500);
  train::apply_override(c, "lr=3e-4");
  CHECK(c.lr == doctest::Approx(3e-4).epsilon(1e-12));
  train::apply_override(c, "label_smoothing=0.1");
  CHECK(c.label_smoothing == doctest::Approx(0.1));
  train::apply_override(c, "seed=12");
  CHECK(c.seed == 12u);
  train::apply_override(c, "model.emb_dim=24");
  CHECK(c.model.emb_dim == 24);
  train::apply_override(c, "model.dropout=0");
  CHECK(c.model.dropout == 0.0);
  train::apply_override(c, "model.pre_mlp_norm=true");
  CHECK(c.model.pre_mlp_norm);
  train::apply_override(c, "model.pre_mlp_norm=false");
  CHECK(!c.model.pre_mlp_norm);
  // bare words are strings
  train::apply_override(c, "optimizer=sgd");
  CHECK(c.optimizer == "sgd");
  train::apply_override(c, "model.architecture=wavspa");
  CHECK(c.model.architecture == "wavspa");
  train::apply_override(c, "schedule=constant * linear_warmup * rsqrt_decay");
  CHECK(c.schedule == "constant * linear_warmup * rsqrt_decay");
  // a string key keeps its text even when it parses as JSON
  train::apply_override(c, "data=123");
  CHECK(c.data == "123");
  train::apply_override(c, "data=true");
  CHECK(c.data == "true");
  train::apply_override(c, "model.wavelet_mode=1e3");
  CHECK(c.model.wavelet_mode == "1e3");
  // the value may hold '='
  train::apply_override(c, "data=/a=b");
  CHECK(c.data == "/a=b");
  // overrides changed only their keys
  CHECK(c.batch_size == train::RunConfig{}.batch_size);
  CHECK(c.model.num_layers == train::RunConfig{}.model.num_layers);

  check_error([&] { train::apply_override(c, "steps"); }, {"key=value", "'steps'"});
  check_error([&] { train::apply_override(c, "=5"); }, {"key=value"});
  check_error([&] { train::apply_override(c, "stepz=3"); }, {"unknown key 'stepz'", "valid keys", "model.emb_dim"});
  check_error([&] { train::apply_override(c, "model.bogus=1"); }, {"model.bogus", "valid keys"});
  check_error([&] { train::apply_override(c, "steps=many"); }, {"steps", "wrong type"});
  // whole-number keys take whole numbers only: no silent 2.5 -> 2 or -1 -> 2^64 - 1
  check_error([&] { train::apply_override(c, "steps=2.5"); }, {"steps", "integer", "2.5"});
  check_error([&] { train::apply_override(c, "seed=-1"); }, {"seed", "non-negative integer", "-1"});
  check_error([&] { train::apply_override(c, "model.emb_dim=1.7"); }, {"emb_dim", "integer"});
  // a quoted value reaching the program is a JSON string: its quotes go
  train::RunConfig q;
  train::apply_override(q, "optimizer=\"sgd\"");
  CHECK(q.optimizer == "sgd");
  check_error([&] { train::apply_override(c, "model.emb_dim=wide"); }, {"emb_dim", "wrong type"});
  check_error([&] { train::apply_override(c, "model.pre_mlp_norm=maybe"); }, {"pre_mlp_norm", "wrong type"});
  // a failed override leaves the config as it was
  CHECK(c.steps == 500);
  CHECK(c.model.emb_dim == 24);
}

TEST_CASE("train: apply_model_preset knows every preset name, reads models JSON files, rejects others") {
  const auto& names = train::model_preset_names();
  REQUIRE(names.size() >= 10);
  const std::set<std::string> attentions = {"linear", "performer", "linformer", "local"};
  for (const std::string& name : names) {
    INFO("preset ", name);
    train::RunConfig c;
    train::apply_override(c, "model.emb_dim=24");
    train::apply_override(c, "model.parametrization=lift");  // presets reset it
    train::apply_override(c, "model.attention=local");
    train::apply_model_preset(c, name);
    CHECK(c.model.emb_dim == 24);  // sizes are kept
    if (name.rfind("wavspa-", 0) == 0) {
      CHECK(c.model.architecture == "wavspa");
      CHECK(c.model.parametrization == name.substr(7));
      CHECK(c.model.attention == "full");
    } else if (attentions.count(name)) {
      CHECK(c.model.architecture == "transformer");
      CHECK(c.model.attention == name);
      CHECK(c.model.parametrization == "ada");
    } else {
      CHECK(c.model.architecture == name);  // transformer, fourier, fnet
      CHECK(c.model.attention == "full");
      CHECK(c.model.parametrization == "ada");
    }
    // with what the data decides, every preset is a valid model
    c.model.vocab_size = 16, c.model.num_classes = 10, c.model.max_len = 64;
    CHECK_NOTHROW(c.model.validate());
  }

  const std::string file = "configs/listops_wavspa_small.json";
  REQUIRE_MESSAGE(fs::exists(file), file, " is missing: run the tests from the repository root");
  train::RunConfig c;
  train::apply_override(c, "steps=77");
  train::apply_model_preset(c, file);
  const json want = json::parse(read_file(file));
  CHECK(c.model.architecture == want.at("architecture").get<std::string>());
  CHECK(c.model.emb_dim == want.at("emb_dim").get<int64_t>());
  CHECK(c.model.wlen == want.at("wlen").get<int64_t>());
  CHECK(c.model.num_layers == want.at("num_layers").get<int64_t>());
  CHECK(c.steps == 77);  // run keys untouched

  check_error([] {
    train::RunConfig x;
    train::apply_model_preset(x, "no-such-model");
  }, {"no-such-model", "neither a model name nor a file", "transformer", "wavspa-ada", "fnet"});

  TempDir dir("preset_files");
  const std::string bad_json = dir / "bad.json", bad_key = dir / "bad_key.json";
  std::ofstream(bad_json) << "{\"emb_dim\": ";
  std::ofstream(bad_key) << R"({"emb_dim": 8, "widht": 3})";
  check_error([&] {
    train::RunConfig x;
    train::apply_model_preset(x, bad_json);
  }, {bad_json, "invalid JSON"});
  check_error([&] {
    train::RunConfig x;
    train::apply_model_preset(x, bad_key);
  }, {bad_key, "widht", "valid keys"});
}

// ---- 2. the command line's errors -----------------------------------------------------------

TEST_CASE("train: the command line fails with one clear message") {
  const std::string exe = build_path("train");
  TempDir dir("cli");
  const std::string data = make_listops(dir);
  const std::string base = exe + " --task listops --data " + data + kTinyListops;

  check_cli_error(run_shell(exe + " --task listops --data " + data, dir), {"--out DIR is required"});
  check_cli_error(run_shell(exe + " --data " + data + " --out " + (dir / "r1"), dir),
                  {"--task is required", "listops", "pathfinder", "lego"});
  check_cli_error(run_shell(exe + " --task imdb --data " + data + " --out " + (dir / "r2"), dir),
                  {"'task' is 'imdb'", "listops", "fashion-mnist"});
  check_cli_error(run_shell(base + " --set bogus=1 --out " + (dir / "r3"), dir),
                  {"unknown key 'bogus'", "valid keys", "model.emb_dim", "steps"});
  check_cli_error(run_shell(exe + " --task listops --data " + (dir / "missing") + " --out " + (dir / "r4"), dir),
                  {dir / "missing", "does not exist"});
  fs::create_directories(dir / "empty");
  check_cli_error(run_shell(exe + " --task listops --data " + (dir / "empty") + " --out " + (dir / "r5"), dir),
                  {"basic_train.tsv", "gen-data"});
  check_cli_error(run_shell(exe + " --resume " + (dir / "empty"), dir), {"--resume", "no config.json"});
  // Values a typo makes: each refused with its key and a short message (they used to give a
  // raw JSON-library exception, std::bad_alloc, and a range printed in 309 digits).
  check_cli_error(run_shell(base + " --set lr=1e999 --out " + (dir / "r8"), dir), {"--set lr=1e999", "out of range"});
  check_cli_error(run_shell(base + " --set max_len=1000000000 --out " + (dir / "r8"), dir),
                  {"max_len", "at most 1048576", "1000000000"});
  Run zero = run_shell(base + " --threads 0 --out " + (dir / "r8"), dir);
  check_cli_error(zero, {"--threads", "must be at least 1, got 0"});
  CHECK(zero.err.size() < 200);
  check_cli_error(run_shell(exe + " --eval-only " + (dir / "none.safetensors"), dir),
                  {"--eval-only", "no checkpoint", "none.safetensors"});

  // a real (one-step) run folder for the errors that need one
  const std::string run = dir / "run";
  Run one = run_shell(base + " --set steps=1 --set eval_every=1 --out " + run, dir);
  REQUIRE_MESSAGE(one.rc == 0, one.err);
  REQUIRE(fs::exists(run + "/initial.safetensors"));
  check_cli_error(run_shell(exe + " --resume " + run + " --set steps=5", dir), {"--resume", "--threads"});
  check_cli_error(run_shell(exe + " --eval-only " + run + "/initial.safetensors", dir),
                  {"initial.safetensors", "no run config"});
  check_cli_error(run_shell(base + " --set steps=1 --out " + run, dir), {"already holds a run", "--resume " + run});
  // a failed start changed nothing in the run folder
  CHECK(read_json(run + "/config.json").at("steps") == 1);

#ifndef WAVSPA_CUDA
  check_cli_error(run_shell(base + " --set steps=1 --device cuda --out " + (dir / "r6"), dir), {"cuda", "CUDA=1"});
#else
  MESSAGE("a CUDA build: --device cuda may work here, its CPU-only error is not checked");
#endif

  // Command-line syntax errors exit 1 (CLI11's own codes are 105, 106, 114, ...), in every tool.
  check_cli_error(run_shell(exe + " --bogus", dir), {"--bogus"});
  check_cli_error(run_shell(base + " --threads many --out " + (dir / "r7"), dir), {"--threads", "many"});
  check_cli_error(run_shell(build_path("gen-data") + " --task listops --train x --out " + (dir / "g"), dir), {"--train"});
  // Sizes whose split total overflows int64 (they used to crash; CLI11 reads a number past
  // int64 as its largest value) are refused with the cap.
  for (const char* n : {"9223372036854775807", "99999999999999999999"})
    check_cli_error(run_shell(build_path("gen-data") + " --task listops --train " + n + " --out " + (dir / "g"), dir),
                    {"at most 100000000", "9223372036854775807"});
  check_cli_error(run_shell(build_path("bench_step") + " --config configs/listops_wavspa.json --steps abc", dir),
                  {"--steps", "abc"});
  // An output folder that cannot be made: the filesystem's exception, caught and reported.
  check_cli_error(run_shell(build_path("gen-data") + " --task lego --out /proc/wavspa-cannot --train 2 --val 2 --test 2",
                            dir),
                  {"cannot create", "/proc/wavspa-cannot"});
  // bench takes no arguments: --help prints its usage, anything else is refused (it used to
  // ignore them and run the whole benchmark).
  Run bench_help = run_shell(build_path("bench") + " --help", dir);
  CHECK(bench_help.rc == 0);
  CHECK(contains(bench_help.out, "usage"));
  check_cli_error(run_shell(build_path("bench") + " --fast", dir), {"no arguments", "--fast"});

  Run help = run_shell(exe + " --help", dir);
  INFO(help.out, help.err);
  CHECK(help.rc == 0);
  for (const auto& t : train::task_names()) CHECK_MESSAGE(contains(help.out, t), "--help lacks task ", t);
  for (const auto& k : train::RunConfig::keys()) CHECK_MESSAGE(contains(help.out, k), "--help lacks key ", k);
  for (const auto& m : train::model_preset_names()) CHECK_MESSAGE(contains(help.out, m), "--help lacks model ", m);
  CHECK(contains(help.out, "130"));
}

// The tools set OMP_WAIT_POLICY=passive before libgomp reads it (WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT
// in core/runtime.h), unless the environment chose; libgomp's own display says what it read.
#ifdef _OPENMP
constexpr bool kOpenMP = true;
#else
constexpr bool kOpenMP = false;
#endif
TEST_CASE("train: OpenMP threads wait passively unless the environment says otherwise" * doctest::skip(!kOpenMP)) {
  TempDir dir("wait");
  auto policy = [&](const std::string& env) {
    Run r = run_shell("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " + env + " OMP_DISPLAY_ENV=true " +
                          build_path("train") + " --help",
                      dir);
    REQUIRE(r.rc == 0);
    for (const std::string& line : lines_of(r.err))
      if (contains(line, "OMP_WAIT_POLICY")) return line;
    return std::string("(no OMP_WAIT_POLICY line on stderr)");
  };
  CHECK(contains(policy(""), "'PASSIVE'"));
  CHECK(contains(policy("OMP_WAIT_POLICY=active"), "'ACTIVE'"));
  CHECK(contains(policy("OMP_WAIT_POLICY=ACTIVE"), "'ACTIVE'"));
}

// ---- 3 and 6. a short run's files, and --eval-only of its best checkpoint --------------------

TEST_CASE("train: a 20-step run writes config, metrics, checkpoints, plots and a summary; --eval-only agrees") {
  const std::string exe = build_path("train");
  TempDir dir("run20");
  const std::string data = make_listops(dir), out = dir / "run";
  Run r = run_shell(exe + " --task listops --model wavspa-ada --data " + data + kTinyListops +
                        " --set steps=20 --set eval_every=10 --set log_every=5 --out " + out +
                        " --dump-graph " + (dir / "step.dot"),
                    dir);
  INFO("stderr: ", r.err);
  REQUIRE(r.rc == 0);
  CHECK(!contains(r.err, "error"));
  // --dump-graph: the first step's graph (tests/autograd/test_graph_dump.cpp checks its structure)
  const std::string dot = read_file(dir / "step.dot");
  CHECK(dot.rfind("digraph autograd {", 0) == 0);
  CHECK(contains(dot, "CrossEntropyBackward"));
  CHECK(contains(dot, "encoder.embed.weight\\n(16, 16) float32 cpu"));
  CHECK(contains(r.err, "autograd graph of the first step: " + (dir / "step.dot")));
  // the allocator's statistics, printed and in the summary
  CHECK(contains(r.err, "memory cpu: "));

  const json config = read_json(out + "/config.json");
  CHECK(config.at("task") == "listops");
  CHECK(config.at("steps") == 20);
  CHECK(config.at("data") == data);
  CHECK(config.at("model").at("max_len") == 48);
  CHECK(config.at("model").at("vocab_size") == 16);
  CHECK(config.at("model").at("num_classes") == 10);
  CHECK(config.at("model").at("architecture") == "wavspa");
  CHECK(config.at("model").at("emb_dim") == 16);
  CHECK(train::RunConfig::from_file(out + "/config.json").to_json() + "\n" == read_file(out + "/config.json"));

  const Csv csv = read_csv(out + "/metrics.csv");
  CHECK(csv.header == "step,epoch,split,loss,accuracy,lr,tokens_per_s,elapsed_s");
  CHECK(csv.steps_of("train") == "5 10 15 20");
  CHECK(csv.steps_of("val") == "10 20");
  CHECK(csv.count("test") == 1);
  REQUIRE(csv.rows.size() == 7);
  CHECK(csv.rows.back().at(2) == "test");
  for (const auto& row : csv.rows) {
    INFO(row.at(0), ",", row.at(1), ",", row.at(2), ",", row.at(3), ",", row.at(4));
    for (size_t col = 3; col < 8; ++col) CHECK(std::isfinite(std::stod(row.at(col))));
    CHECK(std::stod(row.at(3)) > 0);  // cross-entropy
    CHECK(std::stod(row.at(4)) >= 0);
    CHECK(std::stod(row.at(4)) <= 1);
    CHECK(std::stoll(row.at(1)) >= 0);
  }
  const auto jsonl = lines_of(read_file(out + "/metrics.jsonl"));
  REQUIRE(jsonl.size() == csv.rows.size());
  for (size_t i = 0; i < jsonl.size(); ++i) {
    const json row = json::parse(jsonl[i], nullptr, false);
    REQUIRE_MESSAGE(row.is_object(), jsonl[i]);
    CHECK(row.at("split") == csv.rows[i].at(2));
    CHECK(row.at("step").get<int64_t>() == std::stoll(csv.rows[i].at(0)));
    CHECK(row.at("loss").get<double>() == doctest::Approx(std::stod(csv.rows[i].at(3))).epsilon(1e-8));
  }

  for (const char* f : {"latest.safetensors", "best.safetensors", "initial.safetensors", "summary.json"})
    CHECK_MESSAGE(fs::exists(out + "/" + f), f);
  for (const char* f : {"loss.svg", "accuracy.svg", "filters.svg"})
    CHECK_MESSAGE(read_file(out + "/" + f).rfind("<svg", 0) == 0, f, " is not an SVG");

  const json s = r.last_json();
  REQUIRE_MESSAGE(s.is_object(), r.out);
  CHECK(s == read_json(out + "/summary.json"));
  CHECK(s.at("status") == "finished");
  CHECK(s.at("task") == "listops");
  CHECK(s.at("model") == "wavspa-ada");
  CHECK(s.at("steps") == 20);
  REQUIRE(s.at("test_accuracy").is_number());
  const double test_accuracy = s.at("test_accuracy").get<double>();
  CHECK(test_accuracy >= 0);
  CHECK(test_accuracy <= 1);
  CHECK(s.at("majority_accuracy").get<double>() > 0);
  CHECK(s.at("majority_accuracy").get<double>() <= 1);
  CHECK((s.at("best_step") == 10 || s.at("best_step") == 20));
  CHECK(s.at("best_step").get<int64_t>() == std::stoll(csv.rows.back().at(0)));  // the test row's step
  CHECK(std::stod(csv.rows.back().at(4)) == doctest::Approx(test_accuracy));
  CHECK(fs::exists(s.at("checkpoint").get<std::string>()));
  CHECK(fs::exists(s.at("metrics").get<std::string>()));
  REQUIRE(s.at("plots").size() == 3);
  for (const auto& p : s.at("plots")) CHECK_MESSAGE(fs::exists(p.get<std::string>()), p);
  const json memory = s.at("memory").at("cpu");
  CHECK(memory.at("allocations").get<int64_t>() > 0);
  CHECK(memory.at("cache_hits").get<int64_t>() >= 0);
  CHECK(memory.at("cache_hits").get<int64_t>() <= memory.at("allocations").get<int64_t>());
  CHECK(memory.at("peak_bytes").get<int64_t>() >= memory.at("bytes_in_use").get<int64_t>());
  CHECK(memory.at("reserved_bytes").get<int64_t>() >= memory.at("bytes_in_use").get<int64_t>());

  // 6. --eval-only of the best checkpoint: the same model on the same data, the same accuracy
  Run e = run_shell(exe + " --eval-only " + out + "/best.safetensors --threads 1", dir);
  INFO("eval-only stdout: ", e.out, "\nstderr: ", e.err);
  CHECK(e.rc == 0);
  REQUIRE(lines_of(e.out).size() == 1);
  const json ev = e.last_json();
  REQUIRE(ev.is_object());
  CHECK(ev.at("test_accuracy").get<double>() == test_accuracy);
  CHECK(ev.at("step") == s.at("best_step"));
  CHECK(ev.at("task") == "listops");
  CHECK(ev.at("majority_accuracy") == s.at("majority_accuracy"));
  CHECK(ev.at("val_accuracy").get<double>() == s.at("best_val_accuracy").get<double>());
}

TEST_CASE("train: the transformer preset has no filter plot") {
  const std::string exe = build_path("train");
  TempDir dir("transformer");
  const std::string data = make_listops(dir), out = dir / "run";
  Run r = run_shell(exe + " --task listops --model transformer --data " + data + kTinyListops +
                        " --set steps=4 --set eval_every=2 --set log_every=2 --out " + out,
                    dir);
  INFO("stderr: ", r.err);
  REQUIRE(r.rc == 0);
  const json s = r.last_json();
  REQUIRE_MESSAGE(s.is_object(), r.out);
  CHECK(s.at("status") == "finished");
  CHECK(s.at("model") == "transformer");
  CHECK(!fs::exists(out + "/filters.svg"));
  REQUIRE(s.at("plots").size() == 2);
  for (const auto& p : s.at("plots")) CHECK_MESSAGE(fs::exists(p.get<std::string>()), p);
  CHECK(read_json(out + "/config.json").at("model").at("architecture") == "transformer");
}

// ---- 4. interrupted and resumed equals uninterrupted -----------------------------------------

TEST_CASE("train: a run interrupted at step 13 and resumed equals one that never stopped") {
  const std::string exe = build_path("train");
  TempDir dir("resume");
  const std::string data = make_listops(dir), a = dir / "a", b = dir / "b";
  const std::string args = " --task listops --model wavspa-ada --data " + data + kTinyListops +
                           " --set steps=30 --set log_every=5 --set eval_every=7";
  Run ra = run_shell(exe + args + " --out " + a, dir);
  REQUIRE_MESSAGE(ra.rc == 0, ra.err);

  Run rb = run_shell("WAVSPA_TRAIN_INTERRUPT_AT_STEP=13 " + exe + args + " --out " + b, dir);
  INFO("interrupted run stderr: ", rb.err);
  CHECK(rb.rc == 130);
  const json sb = rb.last_json();
  REQUIRE_MESSAGE(sb.is_object(), rb.out);
  CHECK(sb.at("status") == "interrupted");
  CHECK(sb.at("test_accuracy").is_null());
  CHECK(sb.at("steps") == 13);
  CHECK(contains(rb.err, "--resume " + b));
  REQUIRE(fs::exists(b + "/latest.safetensors"));
  CHECK(nn::load_safetensors(b + "/latest.safetensors").metadata.at("wavspa.step") == "13");
  // rows at 5 and 10; steps 11..13 are an unfinished logging window, kept in the checkpoint
  CHECK(read_csv(b + "/metrics.csv").count("train") == 2);
  CHECK(read_csv(b + "/metrics.csv").max_step() == 10);

  Run rr = run_shell(exe + " --resume " + b, dir);
  INFO("resumed run stderr: ", rr.err);
  REQUIRE(rr.rc == 0);
  CHECK(contains(rr.err, "resumed at step 13"));
  CHECK(rr.last_json().at("status") == "finished");
  CHECK(rr.last_json().at("steps") == 30);

  const Csv ca = read_csv(a + "/metrics.csv"), cb = read_csv(b + "/metrics.csv");
  // step, split, loss, accuracy, lr of every training row; step, loss, accuracy of every validation row
  const auto train_a = ca.columns("train", {0, 2, 3, 4, 5}), train_b = cb.columns("train", {0, 2, 3, 4, 5});
  CHECK(ca.count("train") == 6);  // the row of step 15 averages steps 11..15 across the resume
  CHECK(train_a == train_b);
  const auto val_a = ca.columns("val", {0, 3, 4}), val_b = cb.columns("val", {0, 3, 4});
  CHECK(ca.steps_of("val") == "7 14 21 28 30");
  CHECK(val_a == val_b);
  CHECK(ca.columns("test", {0, 3, 4}) == cb.columns("test", {0, 3, 4}));
  const json sa = read_json(a + "/summary.json"), sr = read_json(b + "/summary.json");
  REQUIRE(sa.at("test_accuracy").is_number());
  CHECK(sa.at("test_accuracy").get<double>() == sr.at("test_accuracy").get<double>());
  CHECK(sa.at("best_step") == sr.at("best_step"));
  CHECK(sa.at("best_val_accuracy") == sr.at("best_val_accuracy"));
}

#ifdef WAVSPA_CUDA
TEST_CASE("train: --cuda-graphs gives the bits of the eager loop (dropout, partial batches, validation, NaN stop)" * gpu_only()) {
  const std::string exe = build_path("train");
  TempDir dir("graphs");
  const std::string data = make_listops(dir), a = dir / "a", b = dir / "b";
  // 200 examples in batches of 24: every epoch ends with a batch of 8, which runs eagerly.
  const std::string args = " --task listops --model wavspa-ada --device cuda --data " + data + kTinyListops +
                           " --set steps=30 --set log_every=5 --set eval_every=7 --set batch_size=24"
                           " --set model.dropout=0.1 --set model.attention_dropout=0.1";
  Run ra = run_shell(exe + args + " --out " + a, dir);
  REQUIRE_MESSAGE(ra.rc == 0, ra.err);
  Run rb = run_shell(exe + args + " --cuda-graphs --out " + b, dir);
  REQUIRE_MESSAGE(rb.rc == 0, rb.err);
  const Csv ca = read_csv(a + "/metrics.csv"), cb = read_csv(b + "/metrics.csv");
  CHECK(ca.count("train") == 6);
  CHECK(ca.columns("train", {0, 2, 3, 4, 5}) == cb.columns("train", {0, 2, 3, 4, 5}));
  CHECK(ca.columns("val", {0, 3, 4}) == cb.columns("val", {0, 3, 4}));
  CHECK(ca.columns("test", {0, 3, 4}) == cb.columns("test", {0, 3, 4}));
  const nn::Checkpoint ka = nn::load_safetensors(a + "/latest.safetensors"),
                       kb = nn::load_safetensors(b + "/latest.safetensors");
  REQUIRE(ka.tensors.size() == kb.tensors.size());
  for (const auto& [name, t] : ka.tensors) {
    INFO(name);
    REQUIRE(kb.tensors.count(name));
    const Tensor& u = kb.tensors.at(name);
    REQUIRE(t.shape() == u.shape());
    REQUIRE(t.dtype() == u.dtype());
    CHECK(std::memcmp(t.raw_data(), u.raw_data(), (size_t)t.numel() * t.element_size()) == 0);
  }
  // The NaN hook's step runs eagerly, and the graph steps keep the model where it stopped.
  const std::string c = dir / "c";
  Run rc = run_shell("WAVSPA_TRAIN_NAN_AT_STEP=12 " + exe + args + " --cuda-graphs --set log_every=1 --out " + c, dir);
  CHECK(rc.rc == 3);
  CHECK(contains(rc.err, "the loss is nan at step 12"));
}
#endif  // WAVSPA_CUDA

TEST_CASE("train: a SIGINT while the data loads stops the run before its first step, resumable") {
  // The trainer used to clear the stop flag when its loop began, so this run trained to the end.
  const std::string exe = build_path("train");
  TempDir dir("sigint_load");
  const std::string data = make_listops(dir), out = dir / "run";
  const std::string args = " --task listops --model wavspa-ada --data " + data + kTinyListops + " --set steps=6";
  Run r = run_shell("WAVSPA_TRAIN_INTERRUPT_AT_STEP=0 " + exe + args + " --out " + out, dir);
  INFO(r.err);
  CHECK(r.rc == 130);
  CHECK(contains(r.err, "interrupted at step 0"));
  REQUIRE(fs::exists(out + "/latest.safetensors"));
  CHECK(nn::load_safetensors(out + "/latest.safetensors").metadata.at("wavspa.step") == "0");
  Run rr = run_shell(exe + " --resume " + out, dir);
  INFO(rr.err);
  CHECK(rr.rc == 0);
  CHECK(rr.last_json().at("steps") == 6);
}

TEST_CASE("train: a run folder in use by another process is refused; stale temporary files are removed") {
  // Two runs started together with one --out used to pass the "already holds a run" check
  // and mix their files; a --resume of a run still going was accepted too.
  const std::string exe = build_path("train");
  TempDir dir("run_lock");
  const std::string data = make_listops(dir), out = dir / "run";
  const std::string args = " --task listops --model wavspa-ada --data " + data + kTinyListops + " --set steps=4";
  REQUIRE(run_shell(exe + args + " --out " + out, dir).rc == 0);
  // This process plays the other run: it holds the locks as train would, on the finished
  // run's folder (for --resume) and on a folder where a run has just started (no checkpoint
  // yet, so only the lock can refuse a second start).
  const std::string fresh = dir / "fresh";
  fs::create_directories(fresh);
  std::vector<int> fds;
  for (const std::string& folder : {out, fresh}) {
    const int fd = ::open((folder + "/run.lock").c_str(), O_RDWR | O_CREAT, 0666);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    const std::string holder = "pid " + std::to_string(::getpid()) + "\n";
    REQUIRE(::pwrite(fd, holder.data(), holder.size(), 0) == (ssize_t)holder.size());
    fds.push_back(fd);
  }
  for (const std::string& cmd : {exe + " --resume " + out, exe + args + " --out " + fresh}) {
    Run r = run_shell(cmd, dir);
    INFO(cmd, "\n", r.err);
    CHECK(r.rc == 1);
    CHECK(contains(r.err, "in use by another run (pid " + std::to_string(::getpid()) + ","));
  }
  CHECK(!fs::exists(fresh + "/config.json"));  // the refused start wrote nothing
  for (int fd : fds) ::close(fd);  // the other runs end
  // A write killed between its temporary file and the rename left these behind.
  for (const char* stale : {"/latest.safetensors.tmp.4242.0", "/config.json.tmp.4242"}) {
    std::ofstream(out + stale) << "partial";
  }
  std::ofstream(out + "/notes.tmp.txt") << "a user's file";  // not a temporary name: kept
  Run r = run_shell(exe + " --resume " + out, dir);
  INFO(r.err);
  CHECK(r.rc == 0);
  CHECK(contains(r.err, "latest.safetensors.tmp.4242.0"));
  CHECK(!fs::exists(out + "/latest.safetensors.tmp.4242.0"));
  CHECK(!fs::exists(out + "/config.json.tmp.4242"));
  CHECK(fs::exists(out + "/notes.tmp.txt"));
  // A checkpoint whose run progress and training state disagree on the step is refused (it
  // used to resume "at step 3" with the optimizer at step 4).
  nn::Checkpoint ck = nn::load_safetensors(out + "/latest.safetensors");
  nlohmann::json cfg = nlohmann::json::parse(ck.metadata.at("wavspa.config"));
  REQUIRE(cfg["progress"]["step"] == 4);
  cfg["progress"]["step"] = 3;
  ck.metadata["wavspa.config"] = cfg.dump();
  nn::save_safetensors(out + "/latest.safetensors", ck.tensors, ck.metadata);
  Run bad = run_shell(exe + " --resume " + out, dir);
  INFO(bad.err);
  CHECK(bad.rc == 1);
  CHECK(contains(bad.err, "run progress says step 3 but its training state says step 4"));
}

// ---- 5. a loss that is not finite ------------------------------------------------------------

TEST_CASE("train: a NaN loss stops the run with status 3 and keeps the last good checkpoint") {
  const std::string exe = build_path("train");
  TempDir dir("nan");
  const std::string data = make_listops(dir), out = dir / "run";
  Run r = run_shell("WAVSPA_TRAIN_NAN_AT_STEP=12 " + exe + " --task listops --model wavspa-ada --data " + data +
                        kTinyListops + " --set steps=30 --set eval_every=5 --set log_every=1 --out " + out,
                    dir);
  INFO("stderr: ", r.err);
  CHECK(r.rc == 3);
  CHECK(contains(r.err, "the loss is nan at step 12"));
  CHECK(contains(r.err, "last good checkpoint is " + out + "/latest.safetensors (step 10)"));
  const json s = r.last_json();
  REQUIRE_MESSAGE(s.is_object(), r.out);
  CHECK(s.at("status") == "diverged");
  CHECK(s.at("test_accuracy").is_null());
  CHECK(s.at("steps") == 10);

  REQUIRE(fs::exists(out + "/latest.safetensors"));
  const nn::Checkpoint ck = nn::load_safetensors(out + "/latest.safetensors");
  CHECK(ck.metadata.at("wavspa.step") == "10");
  const Csv csv = read_csv(out + "/metrics.csv");
  REQUIRE(!csv.rows.empty());
  CHECK(csv.max_step() <= 11);
  CHECK(csv.steps_of("train") == "1 2 3 4 5 6 7 8 9 10 11");
  CHECK(csv.steps_of("val") == "5 10");
  CHECK(csv.count("test") == 0);
  for (const auto& row : csv.rows) CHECK(std::isfinite(std::stod(row.at(3))));
}

// ---- 7. the data tasks reach the model -------------------------------------------------------

TEST_CASE("train: lego, pathfinder and fashion-mnist runs train a model on their data") {
  const std::string exe = build_path("train"), gen = build_path("gen-data");
  TempDir dir("tasks");

  SUBCASE("lego") {
    Run g = run_shell(gen + " --task lego --out " + (dir / "lego") +
                          " --train 100 --val 20 --test 20 --chain-length 4 --test-chain-length 6",
                      dir);
    REQUIRE_MESSAGE(g.rc == 0, g.err);
    Run r = run_shell(exe + " --task lego --data " + (dir / "lego") + kTiny + " --set steps=10 --out " +
                          (dir / "lego_run"),
                      dir);
    INFO("stderr: ", r.err);
    REQUIRE(r.rc == 0);
    const json s = r.last_json();
    REQUIRE_MESSAGE(s.is_object(), r.out);
    CHECK(s.at("task") == "lego");
    CHECK(s.at("status") == "finished");
    CHECK(s.at("steps") == 10);
    const json m = read_json(dir / "lego_run/config.json").at("model");
    CHECK(m.at("pooling") == "none");             // one label per token
    CHECK(m.at("max_len") == 5 * 6 - 1);          // the longest (test) chain
  }

  SUBCASE("pathfinder") {
    Run g = run_shell(gen + " --task pathfinder --out " + (dir / "pf") +
                          " --train 64 --val 16 --test 16 --size 16 --path-length 3 --distractors 1",
                      dir);
    REQUIRE_MESSAGE(g.rc == 0, g.err);
    Run r = run_shell(exe + " --task pathfinder --model transformer --data " + (dir / "pf") + kTiny +
                          " --set steps=5 --out " + (dir / "pf_run"),
                      dir);
    INFO("stderr: ", r.err);
    REQUIRE(r.rc == 0);
    const json s = r.last_json();
    REQUIRE_MESSAGE(s.is_object(), r.out);
    CHECK(s.at("task") == "pathfinder");
    CHECK(s.at("status") == "finished");
    const json m = read_json(dir / "pf_run/config.json").at("model");
    CHECK(m.at("mask_padding") == false);  // pixel 0 is black, not padding
    CHECK(m.at("max_len") == 256);
    CHECK(m.at("num_classes") == 2);
  }

  SUBCASE("fashion-mnist") {
    const std::string fm = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(fm)) {
      MESSAGE(fm, " is missing (Debian's dataset-fashion-mnist): the fashion-mnist run is skipped");
      return;
    }
    Run r = run_shell(exe + " --task fashion-mnist --model transformer" + kTiny +
                          " --set train_limit=64 --set val_limit=32 --set test_limit=32 --set steps=3 --out " +
                          (dir / "fm_run"),
                      dir);
    INFO("stderr: ", r.err);
    REQUIRE(r.rc == 0);
    const json s = r.last_json();
    REQUIRE_MESSAGE(s.is_object(), r.out);
    CHECK(s.at("task") == "fashion-mnist");
    CHECK(s.at("status") == "finished");
    const json m = read_json(dir / "fm_run/config.json").at("model");
    CHECK(m.at("max_len") == 784);
    CHECK(m.at("mask_padding") == false);
    CHECK(m.at("num_classes") == 10);
  }
}

TEST_CASE("tools/bench_step: a CPU step is timed and its dumped reference is what the model computes") {
  TempDir dir("bench_step");
  // A tiny WavSpA classifier (two bands of 16 at level 1), written as a models JSON file.
  const std::string config = dir / "tiny.json";
  std::ofstream(config) << R"({"architecture": "wavspa", "parametrization": "ada", "vocab_size": 20,
      "num_classes": 10, "max_len": 64, "emb_dim": 16, "num_layers": 1, "qkv_dim": 16,
      "mlp_dim": 32, "classifier_mlp": 32, "wlen": 4, "levels": 1})";
  const std::string ref = dir / "ref";
  Run r = run_shell(build_path("bench_step") + " --config " + config + " --device cpu --threads 1 --batch 3 --len 32"
                        " --steps 3 --warmup 1 --dump " + ref, dir);
  REQUIRE_MESSAGE(r.rc == 0, r.out, r.err);
  const json j = r.last_json();
  REQUIRE(j.is_object());
  CHECK(j.at("impl") == "wavspa");
  CHECK(j.at("model") == "wavspa");
  CHECK(j.at("device") == "cpu");
  CHECK(j.at("batch") == 3);
  CHECK(j.at("len") == 32);
  CHECK(j.at("steps") == 3);
  CHECK(j.at("median_ms").get<double>() > 0);
  CHECK(j.at("min_ms").get<double>() <= j.at("median_ms").get<double>());
  CHECK(std::isfinite(j.at("last_loss").get<double>()));

  // The reference: the weights of config.json's model, and its logits and loss on the batch.
  const models::ModelConfig cfg = models::ModelConfig::from_file(ref + "/config.json");
  auto model = models::make_classifier(cfg);
  CHECK(j.at("params") == model->num_parameters());
  model->load_state_dict(nn::load_safetensors(ref + "/model.safetensors").tensors);
  model->eval();
  const nn::StateDict batch = nn::load_safetensors(ref + "/batch.safetensors").tensors;
  REQUIRE(batch.at("inputs").shape() == Shape{3, 32});
  const Tensor logits = model->forward(batch.at("inputs"));
  // (float32; the tool and this process may split sums over different thread counts)
  CHECK(test::max_abs_diff(logits, batch.at("logits")) < 1e-5);
  CHECK(std::abs(cross_entropy(logits, batch.at("labels")).item() - batch.at("loss").item()) < 1e-6);
  CHECK(batch.at("grad_norm").item() > 0);

  // --set replaces config keys: an ortho block at two levels has other parameters.
  Run set = run_shell(build_path("bench_step") + " --config " + config + " --device cpu --threads 1 --batch 2 --len 32"
                          " --steps 1 --warmup 0 --set parametrization=ortho --set levels=2", dir);
  REQUIRE_MESSAGE(set.rc == 0, set.out, set.err);
  models::ModelConfig ortho = cfg;
  ortho.parametrization = "ortho";
  ortho.levels = 2;
  CHECK(set.last_json().at("params") == models::make_classifier(ortho)->num_parameters());
  CHECK(set.last_json().at("params") != j.at("params"));

  // Bad requests exit 1 with one message.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--len 32 --precision bf16", "--precision bf16 needs --device cuda"},
      {"--len 65", "--len 65 is longer than the config's max_len 64"},
      {"--len 32 --precision fp16", "unknown matmul precision 'fp16'"},
      {"--set levels", "--set: expected KEY=VALUE, got \"levels\""},
      {"--set levels=many", "levels"},
  };
  for (const auto& [args, message] : bad) {
    const std::string& what = args;  // clang-14's INFO cannot capture a structured binding
    INFO(what);
    Run r = run_shell(build_path("bench_step") + " --config " + config + " --device cpu " + args, dir);
    CHECK(r.rc == 1);
    CHECK(contains(r.err, message));
  }
}

TEST_CASE("tools/bench_wavelet: the wavelet path on the CPU is timed, with its traffic and the copy's bandwidth") {
  TempDir dir("bench_wavelet");
  const std::string exe = build_path("bench_wavelet");
  Run r = run_shell(exe + " --device cpu --batch 2 --len 64 --dim 8 --wlen 4 --levels 2 --samples 2 --group 1"
                          " --warmup 0", dir);
  REQUIRE_MESSAGE(r.rc == 0, r.out, r.err);
  const json j = r.last_json();
  REQUIRE(j.is_object());
  CHECK(j.at("device") == "cpu");
  CHECK(j.at("levels") == 2);
  CHECK(j.at("median_ms").get<double>() > 0);
  // 10 S + 5 S, S = 2 * 64 * 8 float32 bytes
  CHECK(j.at("min_traffic_mb").get<double>() == doctest::Approx(15.0 * 2 * 64 * 8 * 4 / 1e6));
  CHECK(j.at("copy_gb_per_s").get<double>() > 0);
  CHECK(j.at("fraction_of_copy").get<double>() ==
        doctest::Approx(j.at("gb_per_s").get<double>() / j.at("copy_gb_per_s").get<double>()));
  // bfloat16 signals are CUDA's; bad values exit 1 with one message.
  Run bf16 = run_shell(exe + " --device cpu --dtype bf16 --batch 1 --len 8 --dim 2 --wlen 2", dir);
  CHECK(bf16.rc == 1);
  CHECK(contains(bf16.err, "bfloat16"));
  Run odd = run_shell(exe + " --device cpu --wlen 3", dir);
  CHECK(odd.rc == 1);
  CHECK(contains(odd.err, "--wlen must be even, got 3"));
  Run dtype = run_shell(exe + " --device cpu --dtype fp16", dir);
  CHECK(dtype.rc == 1);
  CHECK(contains(dtype.err, "--dtype: expected fp32, fp64 or bf16, got \"fp16\""));
  CHECK_FALSE(j.at("cuda_graphs").get<bool>());
  // A CUDA graph of the pass records device work: not on the CPU, and not without a warm-up.
  Run graphs = run_shell(exe + " --device cpu --cuda-graphs --batch 1 --len 8 --dim 2 --wlen 2", dir);
  CHECK(graphs.rc == 1);
  CHECK(contains(graphs.err, "--cuda-graphs needs --device cuda and at least one --warmup pass"));
}

#include "train/tasks.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "data/lego.h"
#include "data/listops.h"
#include "data/pathfinder.h"
#include "data/readers.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using data::TokenDataset;

std::string in_dir(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// The first of `names` that exists in `dir`; otherwise an error listing what was looked for.
std::string find_file(const std::string& dir, const std::vector<std::string>& names, const std::string& task,
                      bool required = true) {
  for (const auto& n : names)
    if (fs::exists(in_dir(dir, n))) return in_dir(dir, n);
  WAVSPA_CHECK(!required, "task ", task, ": none of ", names, " is in '", dir, "'",
               task == "listops" || task == "lego" || task == "pathfinder"
                   ? str(" (generate them with: build/gen-data --task ", task, " --out ", dir, ")")
                   : std::string());
  return "";
}

void require_dir(const std::string& dir, const std::string& task) {
  WAVSPA_CHECK(!dir.empty(), "task ", task, ": no data folder; pass --data DIR",
               task == "listops" || task == "lego" || task == "pathfinder"
                   ? str(" (generate one with: build/gen-data --task ", task, " --out DIR)")
                   : std::string());
  WAVSPA_CHECK(fs::exists(dir), "task ", task, ": data folder '", dir, "' does not exist");
  WAVSPA_CHECK(fs::is_directory(dir), "task ", task, ": data '", dir, "' is a file; --data names the folder that holds it");
}

// Keeps the first `limit` examples (0: all).
void limit_to(TokenDataset& d, int64_t limit) {
  if (limit <= 0 || limit >= d.size()) return;
  d.inputs.resize(limit);
  if (!d.inputs2.empty()) d.inputs2.resize(limit);
  if (!d.labels.empty()) d.labels.resize(limit);
  if (!d.token_labels.empty()) d.token_labels.resize(limit);
}

// Moves the last min(5000, n / 10) examples of `train` into a new validation set.
TokenDataset hold_out(TokenDataset& train) {
  const int64_t n = train.size(), k = std::min<int64_t>(5000, n / 10);
  WAVSPA_CHECK(k >= 1, train.name, ": ", n, " examples are too few to hold out a validation split");
  TokenDataset val = train;
  val.name = train.name + " (held-out validation)";
  auto tail = [&](auto& from, auto& to) {
    if (from.empty()) return;
    to.assign(from.end() - k, from.end());
    from.resize(n - k);
  };
  tail(train.inputs, val.inputs);
  tail(train.inputs2, val.inputs2);
  tail(train.labels, val.labels);
  tail(train.token_labels, val.token_labels);
  return val;
}

int64_t or_default(int64_t v, int64_t fallback) { return v > 0 ? v : fallback; }

}  // namespace

TaskData load_task(const RunConfig& c) {
  const std::string& task = c.task;
  std::string dir = c.data;
  if (dir.empty() && task == "fashion-mnist") dir = data::fashion_mnist_dir();
  require_dir(dir, task);
  TokenDataset train, val, test;
  if (task == "listops") {
    const int64_t L = or_default(c.max_len, 2000);
    auto read = [&](const char* split) {
      return data::listops_tokens(data::read_listops_tsv(find_file(dir, {str("basic_", split, ".tsv")}, task)),
                                  L, str("listops/", split));
    };
    train = read("train"), val = read("val"), test = read("test");
  } else if (task == "lego") {
    auto tr = data::read_lego_tsv(find_file(dir, {"lego_train.tsv"}, task));
    auto va = data::read_lego_tsv(find_file(dir, {"lego_val.tsv"}, task));
    auto te = data::read_lego_tsv(find_file(dir, {"lego_test.tsv"}, task));
    // One length for every split, the longest chain's unless max_len is set: a model's
    // positions must cover the longer test chains.
    int64_t L = c.max_len;
    if (L == 0)
      for (const auto* split : {&tr, &va, &te})
        for (const auto& ex : *split) L = std::max<int64_t>(L, 5 * (int64_t)ex.values.size() - 1);
    train = data::lego_tokens(tr, L, "lego/train");
    val = data::lego_tokens(va, L, "lego/val");
    test = data::lego_tokens(te, L, "lego/test");
  } else if (task == "pathfinder") {
    auto read = [&](const char* split) {
      const std::string sub = in_dir(dir, split);
      WAVSPA_CHECK(fs::is_directory(sub), "task pathfinder: '", sub, "' does not exist (generate the "
                   "splits with: build/gen-data --task pathfinder --out ", dir, ")");
      return data::pathfinder_tokens(data::read_pathfinder_split(sub), str("pathfinder/", split));
    };
    train = read("train"), val = read("val"), test = read("test");
    WAVSPA_CHECK(c.max_len == 0 || c.max_len == train.seq_len, "task pathfinder: max_len ", c.max_len,
                 " does not match the images' ", train.seq_len, " pixels; leave it at 0");
  } else if (task == "text") {
    const int64_t L = or_default(c.max_len, 4000);
    auto names = [](const char* split) {
      std::vector<std::string> v;
      for (const char* ext : {".tsv", ".csv", ".tsv.gz", ".csv.gz"}) v.push_back(str(split, ext));
      return v;
    };
    train = data::read_text_classification(find_file(dir, names("train"), task), L);
    test = data::read_text_classification(find_file(dir, names("test"), task), L);
    const std::string v = find_file(dir, names("val"), task, /*required=*/false);
    val = v.empty() ? hold_out(train) : data::read_text_classification(v, L);
    const int64_t classes = std::max({train.num_classes, val.num_classes, test.num_classes});
    train.num_classes = val.num_classes = test.num_classes = classes;
  } else if (task == "retrieval") {
    const int64_t L = or_default(c.max_len, 4000);
    train = data::read_retrieval_pairs(find_file(dir, {"new_aan_pairs.train.tsv"}, task), L);
    val = data::read_retrieval_pairs(find_file(dir, {"new_aan_pairs.eval.tsv"}, task), L);
    test = data::read_retrieval_pairs(find_file(dir, {"new_aan_pairs.test.tsv"}, task), L);
  } else if (task == "image") {
    std::vector<std::string> batches;
    for (int i = 1; i <= 5; ++i) batches.push_back(find_file(dir, {str("data_batch_", i, ".bin")}, task));
    train = data::read_cifar10(batches);
    test = data::read_cifar10({find_file(dir, {"test_batch.bin"}, task)});
    val = hold_out(train);
  } else if (task == "fashion-mnist") {
    auto f = [&](const std::string& stem) { return find_file(dir, {stem, stem + ".gz"}, task); };
    train = data::read_idx_dataset(f("train-images-idx3-ubyte"), f("train-labels-idx1-ubyte"));
    test = data::read_idx_dataset(f("t10k-images-idx3-ubyte"), f("t10k-labels-idx1-ubyte"));
    val = hold_out(train);
  } else {
    throw Error(str("unknown task '", task, "'; valid tasks: ", task_names()));
  }
  if (c.max_len > 0 && (task == "image" || task == "fashion-mnist"))
    WAVSPA_CHECK(c.max_len == train.seq_len, "task ", task, ": max_len ", c.max_len, " does not match the images' ",
                 train.seq_len, " pixels; leave it at 0");
  limit_to(train, c.train_limit);
  limit_to(val, c.val_limit);
  limit_to(test, c.test_limit);
  for (TokenDataset* d : {&train, &val, &test})
    WAVSPA_CHECK(d->size() > 0, "task ", task, ": ", d->name, " has no examples");
  TaskData out;
  out.train = std::make_shared<const TokenDataset>(std::move(train));
  out.val = std::make_shared<const TokenDataset>(std::move(val));
  out.test = std::make_shared<const TokenDataset>(std::move(test));
  return out;
}

void fit_model_to_data(RunConfig& c, const TaskData& d) {
  models::ModelConfig& m = c.model;
  m.vocab_size = std::max({d.train->vocab_size, d.val->vocab_size, d.test->vocab_size});
  m.num_classes = std::max({d.train->num_classes, d.val->num_classes, d.test->num_classes});
  m.max_len = std::max({d.train->seq_len, d.val->seq_len, d.test->seq_len});
  const bool pixels = c.task == "image" || c.task == "fashion-mnist" || c.task == "pathfinder";
  m.mask_padding = !pixels;
  m.dual = d.train->is_pair();
  if (d.train->is_token_labelled()) m.pooling = "none";
  else if (m.pooling == "none") m.pooling = "cls";
  try {
    m.validate();
  } catch (const Error& e) {
    throw Error(str("model config for task ", c.task, ": ", e.what()));
  }
}

}  // namespace wavspa::train

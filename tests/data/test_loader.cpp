// Batching: padding, per-epoch shuffles from the seed, resumption mid-epoch, the background
// thread, and the task conversions (ListOps, LEGO) into the shared TokenDataset form.
#include <chrono>
#include <memory>
#include <set>

#include "data/dataset.h"
#include "data/lego.h"
#include "data/listops.h"
#include "data/loader.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using wavspa::test::check_error;

namespace {

// n examples of lengths 1..7 (cycling), ids = example index % 5 + 1, label = index % 3.
std::shared_ptr<const TokenDataset> toy(int64_t n, bool pair = false) {
  auto d = std::make_shared<TokenDataset>();
  d->name = "toy";
  d->vocab_size = 6;
  d->num_classes = 3;
  d->seq_len = 6;
  for (int64_t i = 0; i < n; ++i) {
    d->inputs.emplace_back(1 + i % 7, int32_t(i % 5 + 1));
    if ((int64_t)d->inputs.back().size() > d->seq_len) d->inputs.back().resize(d->seq_len);
    if (pair) d->inputs2.emplace_back(2, int32_t(5 - i % 5));
    d->labels.push_back(int32_t(i % 3));
  }
  validate(*d);
  return d;
}

std::vector<std::vector<int64_t>> drain(BatchLoader& loader) {
  std::vector<std::vector<int64_t>> out;
  while (auto b = loader.next()) out.push_back(b->indices);
  return out;
}

}  // namespace

TEST_CASE("loader: make_batch pads ids with 0, labels and lengths per row") {
  auto d = toy(10, /*pair=*/true);
  Batch b = make_batch(*d, {3, 0, 6});
  CHECK(b.inputs.shape() == Shape{3, 6});
  CHECK(b.inputs2.shape() == Shape{3, 6});
  CHECK(b.labels.shape() == Shape{3});
  auto in = b.inputs.to_vector<int64_t>();
  // example 3: four tokens of id 4, then padding
  CHECK(std::vector<int64_t>(in.begin(), in.begin() + 6) == std::vector<int64_t>{4, 4, 4, 4, 0, 0});
  // example 0: one token of id 1
  CHECK(std::vector<int64_t>(in.begin() + 6, in.begin() + 12) == std::vector<int64_t>{1, 0, 0, 0, 0, 0});
  // example 6: seven tokens cut to six when the dataset was built
  CHECK(std::vector<int64_t>(in.begin() + 12, in.end()) == std::vector<int64_t>(6, 2));
  CHECK(b.lengths.to_vector<int64_t>() == std::vector<int64_t>{4, 1, 6});
  CHECK(b.labels.to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0});
  CHECK(b.inputs2.to_vector<int64_t>()[0] == 2);  // 5 - 3 % 5
  check_error([&] { make_batch(*d, {10}); }, {"make_batch", "index 10", "toy"});
}

TEST_CASE("loader: epoch order is a permutation fixed by (seed, epoch)") {
  for (int64_t n : {1, 2, 17, 1000}) {
    auto a = epoch_order(n, 5, 0, true);
    std::set<int64_t> seen(a.begin(), a.end());
    CHECK((int64_t)seen.size() == n);
    CHECK(*seen.begin() == 0);
    CHECK(*seen.rbegin() == n - 1);
    CHECK(a == epoch_order(n, 5, 0, true));
    if (n >= 17) {
      CHECK(a != epoch_order(n, 5, 1, true));  // a new epoch, a new order
      CHECK(a != epoch_order(n, 6, 0, true));  // a new seed, a new order
    }
  }
  auto id = epoch_order(9, 1, 3, false);
  for (int64_t i = 0; i < 9; ++i) CHECK(id[i] == i);
}

TEST_CASE("loader: every example once per epoch; partial last batch or drop_last") {
  auto d = toy(23);
  for (bool drop : {false, true}) {
    for (int64_t prefetch : {0, 2}) {
      BatchLoader loader(d, {.batch_size = 5, .shuffle = true, .drop_last = drop, .seed = 3, .prefetch = prefetch});
      CHECK(loader.batches_per_epoch() == (drop ? 4 : 5));
      loader.start_epoch(0);
      auto batches = drain(loader);
      REQUIRE((int64_t)batches.size() == loader.batches_per_epoch());
      std::set<int64_t> seen;
      for (size_t k = 0; k < batches.size(); ++k) {
        CHECK(batches[k].size() == (k == 4 ? 3u : 5u));
        seen.insert(batches[k].begin(), batches[k].end());
      }
      CHECK(seen.size() == (drop ? 20u : 23u));
      CHECK_FALSE(loader.next().has_value());  // stays at the end
    }
  }
}

TEST_CASE("loader: background and synchronous loading give the same batches") {
  auto d = toy(50, true);
  BatchLoader sync(d, {.batch_size = 8, .seed = 11, .prefetch = 0});
  BatchLoader async(d, {.batch_size = 8, .seed = 11, .prefetch = 3});
  for (int64_t epoch : {0, 1, 7}) {
    sync.start_epoch(epoch);
    async.start_epoch(epoch);
    while (true) {
      auto a = sync.next();
      auto b = async.next();
      REQUIRE(a.has_value() == b.has_value());
      if (!a) break;
      CHECK(a->indices == b->indices);
      CHECK(a->inputs.to_vector<int64_t>() == b->inputs.to_vector<int64_t>());
      CHECK(a->inputs2.to_vector<int64_t>() == b->inputs2.to_vector<int64_t>());
      CHECK(a->labels.to_vector<int64_t>() == b->labels.to_vector<int64_t>());
    }
  }
}

TEST_CASE("loader: the background thread prepares batches before they are asked for") {
  auto d = toy(100);
  BatchLoader loader(d, {.batch_size = 4, .seed = 1, .prefetch = 3});
  loader.start_epoch(0);
  // No timing claim: wait (up to 10 s) until the worker has filled the queue to its bound.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (loader.prepared() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(loader.prepared() == 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(loader.prepared() == 3);  // bounded: never more than prefetch ahead
  CHECK(loader.next().has_value());
  // abandoning an epoch half-way and starting another is clean
  loader.start_epoch(1);
  CHECK(drain(loader).size() == 25u);
}

TEST_CASE("loader: a resumed epoch continues exactly where the interrupted one was") {
  auto d = toy(37);
  BatchLoader full(d, {.batch_size = 6, .seed = 9});
  full.start_epoch(4);
  auto all = drain(full);
  for (int64_t k : {0, 1, 3, 7}) {
    BatchLoader resumed(d, {.batch_size = 6, .seed = 9});
    resumed.start_epoch(4, k);
    auto tail = drain(resumed);
    CHECK(tail == std::vector<std::vector<int64_t>>(all.begin() + k, all.end()));
  }
  check_error([&] { full.start_epoch(0, 8); }, {"skip_batches", "[0, 7]", "8"});
}

TEST_CASE("loader: bad options and datasets are clear errors") {
  auto d = toy(3);
  check_error([&] { BatchLoader(d, {.batch_size = 0}); }, {"batch_size", ">= 1", "0"});
  check_error([&] { BatchLoader(d, {.batch_size = 4, .drop_last = true}); }, {"toy", "3 examples", "drop_last"});
  check_error([&] { BatchLoader(d, {.prefetch = -1}); }, {"prefetch"});
  BatchLoader unstarted(d, {});
  check_error([&] { unstarted.next(); }, {"start_epoch"});

  TokenDataset bad = *d;
  bad.inputs[1][0] = 6;
  check_error([&] { validate(bad); }, {"toy", "example 1", "id 6", "[0, 6)"});
  bad = *d;
  bad.labels[2] = 3;
  check_error([&] { validate(bad); }, {"example 2", "label 3", "0..2"});
  bad = *d;
  bad.labels.pop_back();
  check_error([&] { validate(bad); }, {"3 inputs", "2 labels"});
  bad = *d;
  bad.inputs[0].assign(7, 1);
  check_error([&] { validate(bad); }, {"example 0", "7 tokens", "seq_len 6"});
}

TEST_CASE("loader: majority-class accuracy") {
  auto d = toy(10);  // labels 0,1,2,0,1,2,0,1,2,0 -> four zeros
  CHECK(majority_class_accuracy(*d) == doctest::Approx(0.4));
}

TEST_CASE("loader: ListOps and LEGO in the training form") {
  ListOpsSplit split;
  split.sources = {"[MAX 2 9 [MIN 4 7 ] 0 ]", "( ( [SM 3 ) 4 ] )"};
  split.targets = {9, 7};
  TokenDataset lo = listops_tokens(split, 5, "lo");
  CHECK(lo.vocab_size == 16);
  CHECK(lo.num_classes == 10);
  CHECK(lo.inputs[0] == std::vector<int32_t>{12, 3, 10, 11, 5});  // cut to 5
  CHECK(lo.inputs[1] == std::vector<int32_t>{14, 4, 5, 15});
  CHECK(lo.labels == std::vector<int32_t>{9, 7});

  LegoExample ex{"c = -b ; a = +1 ; b = -a", {1, 1, -1}};
  TokenDataset lg = lego_tokens({ex}, 0, "lego");
  CHECK(lg.seq_len == 14);
  CHECK(lg.inputs[0] == std::vector<int32_t>{3, 27, 29, 2, 31, 1, 27, 28, 30, 31, 2, 27, 29, 1});
  const int32_t I = kIgnoreLabel;
  CHECK(lg.token_labels[0] == std::vector<int32_t>{1, I, I, I, I, 1, I, I, I, I, 0, I, I, I});
  Batch b = make_batch(lg, {0});
  CHECK(b.labels.shape() == Shape{1, 14});

  // generated chains convert and agree with the solver, label for label
  auto ds = generate_lego_dataset(2, 20, 1, 1, 5, 9);
  TokenDataset t = lego_tokens(ds.train, 0, "lego/train");
  CHECK(t.seq_len == 24);
  for (size_t i = 0; i < ds.train.size(); ++i) {
    auto values = solve_lego(ds.train[i].source);
    std::vector<int> from_labels;
    for (int32_t l : t.token_labels[i])
      if (l != kIgnoreLabel) from_labels.push_back(l == 1 ? 1 : -1);
    CHECK(from_labels == values);
  }
  check_error([&] { lego_tokens({LegoExample{"a = +1 ; b = -a", {1}}}, 0, "x"); }, {"x", "more clauses than values"});
  check_error([&] { lego_tokens({LegoExample{"a = +1", {1, 1}}}, 0, "y"); }, {"y", "1 clauses", "2 values"});
}

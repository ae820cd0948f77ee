// The generic loader: epoch orders from (seed, epoch), batches in order whatever the number of
// workers, drop_last and the partial last batch, resumption with skip_batches, errors from a
// dataset's get() on a worker, bad options, TensorDataset with stack_examples, and
// BatchLoader (now a DataLoader) against the batches the old loader made.
#include <chrono>
#include <memory>
#include <thread>

#include "data/dataloader.h"
#include "data/loader.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::data;
using wavspa::test::check_error;

namespace {

// Example i is the number i. `bad` throws from get(); `slow` makes get() take a time that
// depends on the index, so that workers finish their batches out of order.
struct Numbers : Dataset<int64_t> {
  int64_t n = 0;
  int64_t bad = -1;
  bool throw_non_std = false;
  bool slow = false;
  explicit Numbers(int64_t count) : n(count) {}
  int64_t size() const override { return n; }
  int64_t get(int64_t i) const override {
    if (i == bad) {
      if (throw_non_std) throw 42;
      throw Error(str("example ", i, " is unreadable"));
    }
    if (slow) std::this_thread::sleep_for(std::chrono::microseconds(300 * ((i * 7) % 4)));
    return i;
  }
  std::string name() const override { return "numbers"; }
};

using Indices = std::vector<int64_t>;
using NumberLoader = DataLoader<int64_t, Indices>;
Indices keep(std::vector<int64_t> examples) { return examples; }

std::vector<Indices> drain(NumberLoader& loader) {
  std::vector<Indices> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

std::shared_ptr<Numbers> numbers(int64_t n) { return std::make_shared<Numbers>(n); }

}  // namespace

TEST_CASE("dataloader: an epoch's order is a function of (seed, epoch) and covers every example once") {
  auto d = numbers(23);
  NumberLoader a(d, keep, {.batch_size = 5, .shuffle = true, .seed = 4});
  NumberLoader b(d, keep, {.batch_size = 5, .shuffle = true, .seed = 4});
  NumberLoader other_seed(d, keep, {.batch_size = 5, .shuffle = true, .seed = 5});
  CHECK(a.batches_per_epoch() == 5);
  std::vector<std::vector<Indices>> epochs;
  for (int64_t e = 0; e < 3; ++e) {
    a.start_epoch(e);
    b.start_epoch(e);
    auto got = drain(a);
    CHECK(got == drain(b));
    // the batches, concatenated, are epoch_order's permutation
    Indices flat;
    for (const Indices& batch : got) flat.insert(flat.end(), batch.begin(), batch.end());
    CHECK(flat == epoch_order(23, 4, e, true));
    Indices sorted = flat;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 23; ++i) CHECK(sorted[i] == i);
    epochs.push_back(got);
  }
  CHECK(epochs[0] != epochs[1]);  // a new epoch, a new order
  other_seed.start_epoch(0);
  CHECK(drain(other_seed) != epochs[0]);  // a new seed, a new order
  // an epoch run again is the same epoch
  a.start_epoch(1);
  CHECK(drain(a) == epochs[1]);
  // shuffle = false: dataset order
  NumberLoader plain(d, keep, {.batch_size = 10});
  plain.start_epoch(7);
  CHECK(drain(plain) == std::vector<Indices>{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
                                             {10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
                                             {20, 21, 22}});
}

TEST_CASE("dataloader: 0 and 3 workers give the same batches in the same order") {
  auto d = numbers(61);
  d->slow = true;  // workers finish out of order; delivery must not
  for (int64_t batch_size : {1, 4, 7}) {
    NumberLoader serial(d, keep, {.batch_size = batch_size, .shuffle = true, .seed = 2});
    NumberLoader threaded(d, keep, {.batch_size = batch_size, .shuffle = true, .seed = 2, .workers = 3, .prefetch = 2});
    for (int64_t e = 0; e < 2; ++e) {
      serial.start_epoch(e);
      threaded.start_epoch(e);
      auto want = drain(serial);
      CHECK(want.size() == (size_t)serial.batches_per_epoch());
      CHECK(drain(threaded) == want);
    }
  }
}

TEST_CASE("dataloader: stop() ends the epoch and its workers; start_epoch starts another") {
  auto d = numbers(40);
  NumberLoader loader(d, keep, {.batch_size = 4, .workers = 2, .prefetch = 2});
  loader.start_epoch(0);
  REQUIRE(loader.next().has_value());
  loader.stop();
  CHECK_FALSE(loader.next().has_value());
  CHECK(loader.prepared() == 0);  // what the workers had prepared is dropped
  loader.start_epoch(1, 9);       // the last batch of epoch 1
  const auto rest = drain(loader);
  REQUIRE(rest.size() == 1u);
  CHECK(rest[0] == Indices{36, 37, 38, 39});
}

TEST_CASE("dataloader: drop_last and the partial last batch") {
  auto d = numbers(10);
  for (int64_t workers : {0, 2}) {
    NumberLoader keep_last(d, keep, {.batch_size = 4, .workers = workers});
    keep_last.start_epoch(0);
    CHECK(keep_last.batches_per_epoch() == 3);
    CHECK(drain(keep_last) == std::vector<Indices>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
    NumberLoader drop(d, keep, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 3, .workers = workers});
    CHECK(drop.batches_per_epoch() == 2);
    drop.start_epoch(0);
    auto got = drain(drop);
    REQUIRE(got.size() == 2u);
    CHECK(got[0].size() == 4u);
    CHECK(got[1].size() == 4u);
    // the two kept batches are the first eight of the epoch's order
    const Indices order = epoch_order(10, 3, 0, true);
    CHECK(got[0] == Indices(order.begin(), order.begin() + 4));
    CHECK(got[1] == Indices(order.begin() + 4, order.begin() + 8));
    // an exact multiple has no partial batch either way
    NumberLoader exact(numbers(8), keep, {.batch_size = 4, .workers = workers});
    exact.start_epoch(0);
    CHECK(drain(exact).size() == 2u);
  }
}

TEST_CASE("dataloader: a resumed epoch (skip_batches) continues where the interrupted one was") {
  auto d = numbers(37);
  for (int64_t workers : {0, 3}) {
    NumberLoader full(d, keep, {.batch_size = 6, .shuffle = true, .seed = 9, .workers = workers});
    full.start_epoch(4);
    auto all = drain(full);
    REQUIRE(all.size() == 7u);
    for (int64_t k : {0, 1, 3, 6, 7}) {
      NumberLoader resumed(d, keep, {.batch_size = 6, .shuffle = true, .seed = 9, .workers = workers});
      resumed.start_epoch(4, k);
      CHECK(drain(resumed) == std::vector<Indices>(all.begin() + k, all.end()));
    }
    // the range form starts an epoch too
    std::vector<Indices> ranged;
    for (Indices& batch : full.epoch(4, 2)) ranged.push_back(batch);
    CHECK(ranged == std::vector<Indices>(all.begin() + 2, all.end()));
    CHECK(full.current_epoch() == 4);
  }
}

TEST_CASE("dataloader: an exception in a dataset's get() reaches next() with its batch named") {
  for (bool non_std : {false, true})
    for (int64_t workers : {0, 3}) {
      CAPTURE(workers);
      auto d = numbers(20);
      d->bad = 13;
      d->throw_non_std = non_std;
      NumberLoader loader(d, keep, {.batch_size = 4, .workers = workers});
      loader.start_epoch(2);
      // batches 0..2 come first, in order; batch 3 (examples 12..15) holds the bad example
      for (int64_t b = 0; b < 3; ++b) {
        auto batch = loader.next();
        REQUIRE(batch.has_value());
        CHECK(batch->front() == 4 * b);
      }
      if (non_std)
        check_error([&] { loader.next(); }, {"DataLoader", "batch 3 of epoch 2", "numbers", "12, 13, 14, 15", "not a std::exception"});
      else
        check_error([&] { loader.next(); }, {"DataLoader", "batch 3 of epoch 2", "numbers", "12, 13, 14, 15", "example 13 is unreadable"});
      CHECK_FALSE(loader.next().has_value());  // the epoch ended with the error
      // a new epoch starts cleanly and meets the error again at the same place
      loader.start_epoch(3);
      CHECK(loader.next().has_value());
    }
  // the destructor stops workers that are waiting with batches prepared ahead
  auto d = numbers(100);
  auto loader = std::make_unique<NumberLoader>(d, NumberLoader::Collate(keep), DataLoaderOptions{.batch_size = 2, .workers = 3});
  loader->start_epoch(0);
  CHECK(loader->next().has_value());
  loader.reset();
}

TEST_CASE("dataloader: bad options are errors naming what was expected and what came") {
  auto d = numbers(3);
  check_error([&] { NumberLoader(d, keep, {.batch_size = 0}); }, {"DataLoader", "batch_size", ">= 1", "got 0"});
  check_error([&] { NumberLoader(d, keep, {.workers = -1}); }, {"workers", ">= 0", "got -1"});
  check_error([&] { NumberLoader(d, keep, {.prefetch = 0}); }, {"prefetch", ">= 1", "got 0"});
  check_error([&] { NumberLoader(nullptr, keep); }, {"expected a dataset", "null"});
  check_error([&] { NumberLoader(d, NumberLoader::Collate()); }, {"collate"});
  check_error([&] { NumberLoader(numbers(0), keep); }, {"numbers", "has none"});
  check_error([&] { NumberLoader(d, keep, {.batch_size = 4, .drop_last = true}); }, {"numbers", "3 examples", "drop_last"});
  NumberLoader loader(d, keep, {.batch_size = 2});
  check_error([&] { loader.next(); }, {"start_epoch"});
  check_error([&] { loader.start_epoch(-1); }, {"epoch", ">= 0", "-1"});
  check_error([&] { loader.start_epoch(0, 3); }, {"skip_batches", "[0, 2]", "got 3"});
}

TEST_CASE("dataloader: TensorDataset rows stacked by stack_examples") {
  Tensor x = arange(0, 24, 1, kFloat32).reshape({6, 2, 2});
  Tensor y = arange(100, 106, 1, kInt64);
  auto rows = std::make_shared<const TensorDataset>(x, y, "squares");
  CHECK(rows->size() == 6);
  TensorExample e = rows->get(4);
  CHECK(e.input.shape() == Shape{2, 2});
  CHECK(e.input.to_vector<float>() == std::vector<float>{16, 17, 18, 19});
  CHECK(e.target.item() == 104);
  DataLoader<TensorExample, TensorExample> loader(rows, stack_examples,
                                                  {.batch_size = 4, .shuffle = true, .seed = 1, .workers = 2});
  const Indices order = epoch_order(6, 1, 0, true);
  int64_t seen = 0;
  for (TensorExample& batch : loader.epoch(0)) {
    const int64_t B = batch.input.shape()[0];
    CHECK(batch.input.shape() == Shape{B, 2, 2});
    CHECK(batch.target.shape() == Shape{B});
    CHECK_FALSE(batch.input.requires_grad());
    for (int64_t r = 0; r < B; ++r) {
      const int64_t i = order[seen + r];
      CHECK(batch.target.to_vector<int64_t>()[r] == 100 + i);
      CHECK(batch.input.select(0, r).to_vector<float>() == x.select(0, i).to_vector<float>());
    }
    seen += B;
  }
  CHECK(seen == 6);
  // without targets, the batch has none
  auto inputs_only = std::make_shared<const TensorDataset>(x, Tensor());
  CHECK_FALSE(stack_examples({inputs_only->get(0), inputs_only->get(1)}).target.defined());

  check_error([&] { TensorDataset(x, arange(0, 5, 1, kInt64)); }, {"TensorDataset", "6", "got 5"});
  check_error([&] { TensorDataset(Tensor(), y); }, {"TensorDataset", "undefined"});
  check_error([&] { rows->get(6); }, {"squares", "[0, 6)", "got 6"});
  check_error([&] { stack_examples({}); }, {"stack_examples", "at least one"});
  check_error([&] { stack_examples({rows->get(0), {zeros({3}), y.select(0, 1)}}); },
              {"stack_examples", "shape [2, 2]", "got shape [3]", "example 1"});
}

// ---- BatchLoader against the old loader ------------------------------------------------

namespace {

// n token examples of lengths 1..7 (cycling), cut to seq_len 6; with `pair` a second document,
// with `tokens` per-token labels (every other position ignored) instead of one label.
std::shared_ptr<const TokenDataset> token_toy(int64_t n, bool pair, bool tokens) {
  auto d = std::make_shared<TokenDataset>();
  d->name = "toy";
  d->vocab_size = 6;
  d->num_classes = 3;
  d->seq_len = 6;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> seq(std::min<int64_t>(1 + i % 7, 6));
    for (size_t t = 0; t < seq.size(); ++t) seq[t] = int32_t((i + (int64_t)t) % 5 + 1);
    d->inputs.push_back(seq);
    if (pair) d->inputs2.emplace_back(2 + i % 3, int32_t(5 - i % 5));
    if (tokens) {
      std::vector<int32_t> labels(seq.size());
      for (size_t t = 0; t < seq.size(); ++t) labels[t] = t % 2 ? kIgnoreLabel : int32_t((i + (int64_t)t) % 3);
      d->token_labels.push_back(labels);
    } else {
      d->labels.push_back(int32_t(i % 3));
    }
  }
  validate(*d);
  return d;
}

// The old BatchLoader's batch b of an epoch, written out here independently: the examples
// order[b * B ...], ids padded with 0 and token labels with kIgnoreLabel to seq_len.
void check_old_batch(const TokenDataset& d, const Batch& got, const Indices& order, int64_t b, int64_t B) {
  const int64_t L = d.seq_len;
  const int64_t begin = b * B, rows = std::min<int64_t>(B, (int64_t)order.size() - begin);
  REQUIRE(got.size() == rows);
  const auto in = got.inputs.to_vector<int64_t>(), len = got.lengths.to_vector<int64_t>();
  const auto lab = got.labels.to_vector<int64_t>();
  CHECK(got.inputs.shape() == Shape{rows, L});
  CHECK(got.inputs2.defined() == d.is_pair());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = order[begin + r];
    CHECK(got.indices[r] == i);
    CHECK(len[r] == (int64_t)d.inputs[i].size());
    for (int64_t t = 0; t < L; ++t) {
      const int64_t want = t < (int64_t)d.inputs[i].size() ? d.inputs[i][t] : 0;
      CHECK(in[r * L + t] == want);
      if (d.is_token_labelled()) {
        const int64_t want_label = t < (int64_t)d.token_labels[i].size() ? d.token_labels[i][t] : kIgnoreLabel;
        CHECK(lab[r * L + t] == want_label);
      }
    }
    if (!d.is_token_labelled()) CHECK(lab[r] == d.labels[i]);
    if (d.is_pair()) {
      const auto in2 = got.inputs2.to_vector<int64_t>();
      for (int64_t t = 0; t < L; ++t)
        CHECK(in2[r * L + t] == (t < (int64_t)d.inputs2[i].size() ? d.inputs2[i][t] : 0));
    }
  }
}

}  // namespace

TEST_CASE("dataloader: BatchLoader, a DataLoader of TokenExamples, makes the old loader's batches") {
  for (bool pair : {false, true})
    for (bool tokens : {false, true})
      for (int64_t prefetch : {0, 3}) {
        CAPTURE(pair);
        CAPTURE(tokens);
        CAPTURE(prefetch);
        auto d = token_toy(23, pair, tokens);
        BatchLoader loader(d, {.batch_size = 5, .shuffle = true, .seed = 8, .prefetch = prefetch});
        CHECK(loader.options().prefetch == prefetch);
        const DataLoader<TokenExample, Batch>& base = loader;
        CHECK(base.options().workers == (prefetch > 0 ? 1 : 0));
        for (int64_t e = 0; e < 2; ++e) {
          loader.start_epoch(e);
          const Indices order = epoch_order(23, 8, e, true);
          int64_t b = 0;
          while (auto batch = loader.next()) check_old_batch(*d, *batch, order, b++, 5);
          CHECK(b == 5);
        }
        // make_batch is the same collate
        Batch direct = make_batch(*d, {4, 0, 22});
        check_old_batch(*d, direct, {4, 0, 22}, 0, 3);
      }
}

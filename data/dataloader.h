// Datasets and the loader that batches them, in the shape of libtorch's torch::data: a
// Dataset hands out examples by index, a collate function turns a list of examples into one
// batch, and a DataLoader walks the dataset epoch by epoch in a seeded order, optionally with
// worker threads that prepare batches ahead of the training step.
//
//   Tensor x = randn({10, 3}), y = randn({10, 1});
//   auto pairs = std::make_shared<const data::TensorDataset>(x, y);   // 10 examples
//   data::DataLoader<data::TensorExample, data::TensorExample> loader(
//       pairs, data::stack_examples, {.batch_size = 4, .shuffle = true, .seed = 7, .workers = 2});
//   int64_t rows = 0;
//   for (int64_t epoch = 0; epoch < 3; ++epoch)
//     for (data::TensorExample& batch : loader.epoch(epoch))
//       rows += batch.input.shape()[0];     // batches of 4, 4 and 2 rows: input (4, 3), target (4, 1)
//   // rows == 30
//
// The order of an epoch is a pure function of (seed, epoch), and batches arrive in that order
// whatever the number of workers: a run with 3 workers sees the batches a run with none sees,
// and a run resumed at epoch e, batch k (start_epoch(e, k)) sees what an uninterrupted run
// would have seen from there. An exception thrown by a dataset's get() or the collate
// function on a worker comes back as a wavspa::Error from next(), at the position of its
// batch, naming the dataset, the epoch, the batch and its examples.
//
// data/loader.h's BatchLoader (token sequences of the LRA tasks) is one DataLoader.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace wavspa::data {

// ---- datasets -------------------------------------------------------------------------------

// Examples by index (torch::data::datasets::Dataset). get() is const and may be called from
// several worker threads at once, so it must not change shared state; for the deterministic
// order above it should also be a pure function of the index (no draws from a shared RNG).
template <class Example>
class Dataset {
 public:
  using ExampleType = Example;
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;  // index in [0, size())
  // Used in error messages ("listops/train has 3 examples, ...").
  virtual std::string name() const { return "dataset"; }
};

// One input row and its target (torch::data::Example<>). As a batch (stack_examples), the
// rows stacked along a new first dimension.
struct TensorExample {
  Tensor input = {};
  Tensor target = {};  // may be undefined: a dataset without targets
};
// The tensors of an example or batch (what train::Trainer's cuda_graphs copies into a recording).
inline std::vector<Tensor*> batch_tensors(TensorExample& b) { return {&b.input, &b.target}; }

// The rows (first dimension) of an input tensor and a target tensor with as many rows
// (torch::data::datasets::TensorDataset, with a target). Example i is (inputs[i], targets[i]),
// views that share the tensors' storage. The tensors are detached: a loader never records
// gradients.
class TensorDataset : public Dataset<TensorExample> {
 public:
  // `targets` may be undefined (examples without targets). Throws wavspa::Error when inputs
  // is undefined or 0-d, or the row counts differ.
  TensorDataset(const Tensor& inputs, const Tensor& targets, std::string name = "TensorDataset");

  int64_t size() const override { return inputs_.shape()[0]; }
  TensorExample get(int64_t index) const override;
  std::string name() const override { return name_; }

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
  std::string name_;
};

// The default collate of TensorDataset examples (torch::data::transforms::Stack): inputs
// (B, ...) and targets (B, ...) as fresh contiguous tensors on the examples' device. Every
// example must have the shape, dtype and device of the first (a wavspa::Error names the
// first that does not); targets must be all defined or all undefined.
TensorExample stack_examples(std::vector<TensorExample> examples);

// ---- the loader ---------------------------------------------------------------------------

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;    // a fresh permutation every epoch; false: dataset order
  bool drop_last = false;  // drop the final batch of an epoch when it is partial
  uint64_t seed = 0;       // of the permutations
  int64_t workers = 0;     // threads preparing batches; 0: next() prepares on the caller's thread
  int64_t prefetch = 2;    // batches each worker may prepare ahead (PyTorch's prefetch_factor)
};

// The example order of one epoch: a Fisher-Yates permutation drawn from Philox keyed by the
// seed, on the epoch's own subsequence (identity when shuffle is false).
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle);

namespace detail {
// The DataLoader's checks and messages, out of line (data/dataloader.cpp).
void check_loader_options(const DataLoaderOptions& o, bool have_dataset, bool have_collate);
void check_loader_size(const DataLoaderOptions& o, int64_t size, const std::string& name);
void check_start_epoch(int64_t epoch, int64_t skip_batches, int64_t batches_per_epoch);
// Rethrows `error` as a wavspa::Error that says which batch it came from.
[[noreturn]] void rethrow_batch_error(std::exception_ptr error, const std::string& dataset, int64_t epoch,
                                      int64_t batch, const std::vector<int64_t>& indices);
}  // namespace detail

// Batches of a Dataset<Example>, built by `collate` from batch_size examples each
// (torch::data::make_data_loader's loader with enforce_ordering). Not copyable or movable:
// its workers point at it.
template <class Example, class Batch>
class DataLoader {
 public:
  using Collate = std::function<Batch(std::vector<Example>)>;

  // Throws wavspa::Error for a null dataset or collate, bad options (batch_size < 1,
  // workers < 0, prefetch < 1), an empty dataset, or one with fewer examples than a batch
  // under drop_last.
  DataLoader(std::shared_ptr<const Dataset<Example>> dataset, Collate collate, const DataLoaderOptions& options = {})
      : dataset_(std::move(dataset)), collate_(std::move(collate)), options_(options) {
    detail::check_loader_options(options_, dataset_ != nullptr, (bool)collate_);
    detail::check_loader_size(options_, dataset_->size(), dataset_->name());
  }
  virtual ~DataLoader() { stop_workers(); }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const {
    const int64_t n = dataset_->size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  const DataLoaderOptions& options() const { return options_; }
  const Dataset<Example>& dataset() const { return *dataset_; }
  int64_t current_epoch() const { return epoch_; }  // -1 before the first start_epoch

  // Begins epoch `epoch` after skipping its first `skip_batches` batches (a resumed run skips
  // what it had seen), abandoning whatever the previous epoch had not delivered. The workers
  // start preparing at once.
  void start_epoch(int64_t epoch, int64_t skip_batches = 0) {
    detail::check_start_epoch(epoch, skip_batches, batches_per_epoch());
    stop_workers();
    epoch_ = epoch;
    order_ = epoch_order(dataset_->size(), options_.seed, epoch, options_.shuffle);
    end_ = batches_per_epoch();
    next_deliver_ = next_claim_ = skip_batches;
    ready_.clear();
    stop_ = false;
    for (int64_t w = 0; w < options_.workers; ++w) workers_.emplace_back(&DataLoader::work, this);
  }

  // The next batch of the current epoch, or nullopt when the epoch is over. An error while
  // preparing the batch is rethrown here (see the top of the file); the epoch ends with it.
  std::optional<Batch> next() {
    WAVSPA_CHECK(epoch_ >= 0, "DataLoader::next: no epoch started; call start_epoch(epoch) first");
    if (next_deliver_ >= end_) return std::nullopt;
    const int64_t b = next_deliver_;
    if (options_.workers == 0) {
      ++next_deliver_;
      try {
        return prepare(b);
      } catch (...) {
        next_deliver_ = end_;
        detail::rethrow_batch_error(std::current_exception(), dataset_->name(), epoch_, b, batch_indices(b));
      }
    }
    Slot slot;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return ready_.count(b) > 0; });
      auto it = ready_.find(b);
      slot = std::move(it->second);
      ready_.erase(it);
      ++next_deliver_;
    }
    cv_.notify_all();  // a worker may claim the batch that now fits in the window
    if (slot.error) {
      stop_workers();
      next_deliver_ = end_;
      detail::rethrow_batch_error(slot.error, dataset_->name(), epoch_, b, batch_indices(b));
    }
    return std::move(slot.batch);
  }

  // Ends the current epoch now: the workers stop (joined) and next() returns nullopt until
  // the next start_epoch.
  void stop() {
    stop_workers();
    ready_.clear();
    next_deliver_ = end_;
  }

  // Batches prepared by the workers and not delivered yet (0 without workers).
  int64_t prepared() {
    std::lock_guard<std::mutex> lock(mutex_);
    return (int64_t)ready_.size();
  }

  // ---- range-for over the rest of the current epoch -------------------------------------
  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    explicit Iterator(DataLoader* loader) : loader_(loader), current_(loader->next()) {}
    Batch& operator*() { return *current_; }
    Iterator& operator++() {
      current_ = loader_->next();
      return *this;
    }
    bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    DataLoader* loader_;
    std::optional<Batch> current_;
  };
  Iterator begin() { return Iterator(this); }
  std::default_sentinel_t end() { return {}; }

  // `for (Batch& b : loader.epoch(e))`: start_epoch(e, skip_batches), then its batches.
  struct EpochRange {
    DataLoader* loader;
    Iterator begin() { return loader->begin(); }
    std::default_sentinel_t end() { return {}; }
  };
  EpochRange epoch(int64_t epoch, int64_t skip_batches = 0) {
    start_epoch(epoch, skip_batches);
    return EpochRange{this};
  }

 private:
  // A prepared batch, or the exception that preparing it threw.
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };

  std::vector<int64_t> batch_indices(int64_t b) const {
    const int64_t begin = b * options_.batch_size;
    const int64_t end = std::min<int64_t>(begin + options_.batch_size, (int64_t)order_.size());
    return std::vector<int64_t>(order_.begin() + begin, order_.begin() + end);
  }

  Batch prepare(int64_t b) const {
    std::vector<Example> examples;
    for (int64_t i : batch_indices(b)) examples.push_back(dataset_->get(i));
    return collate_(std::move(examples));
  }

  // A worker claims the lowest batch nobody has claimed, as long as it lies within
  // workers * prefetch batches of the one the caller waits for, prepares it outside the lock
  // and files it under its number; next() takes them in number order. order_, end_ and the
  // options do not change while workers run (start_epoch joins them first).
  void work() {
    const int64_t window = options_.workers * options_.prefetch;
    for (;;) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || next_claim_ >= end_ || next_claim_ < next_deliver_ + window; });
        if (stop_ || next_claim_ >= end_) return;
        b = next_claim_++;
      }
      Slot slot;
      try {
        slot.batch = prepare(b);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.emplace(b, std::move(slot));
      }
      cv_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  std::shared_ptr<const Dataset<Example>> dataset_;
  Collate collate_;
  DataLoaderOptions options_;
  // The current epoch.
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
  int64_t end_ = 0;           // batches in the epoch
  int64_t next_deliver_ = 0;  // the batch next() returns next
  // The workers' side, under mutex_ (next_deliver_ too while workers run).
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t next_claim_ = 0;            // the lowest batch no worker has taken
  std::map<int64_t, Slot> ready_;     // prepared batches by number
  bool stop_ = false;
};

}  // namespace wavspa::data

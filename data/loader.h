// Fixed-shape batches from a TokenDataset, shuffled per epoch from a seed and prepared on a
// background thread so that a training step never waits for data.
//
//   auto train = std::make_shared<const data::TokenDataset>(data::listops_tokens(split, 2000, "listops/train"));
//   data::BatchLoader loader(train, {.batch_size = 32, .shuffle = true, .seed = 7});
//   for (int64_t epoch = 0; epoch < 10; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) {
//       Tensor logits = model.forward(batch->inputs);         // int64 (B, seq_len)
//       Tensor loss = cross_entropy(logits, batch->labels);   // int64 (B)
//     }
//   }
//
// The order of an epoch is a pure function of (seed, epoch): a run resumed at epoch e, batch k
// (start_epoch(e, k)) sees exactly the batches an uninterrupted run would have seen. Every
// batch has batch_size rows except the last of an epoch, which is smaller, or dropped with
// drop_last. Sequences are padded with 0 (and token labels with kIgnoreLabel) to seq_len.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"

namespace wavspa::data {

struct Batch {
  Tensor inputs;                 // int64 (B, seq_len), 0 = padding
  Tensor inputs2;                // retrieval: int64 (B, seq_len); undefined for other tasks
  Tensor labels;                 // int64 (B), or (B, seq_len) for token labelling
  Tensor lengths;                // int64 (B): tokens before padding (of inputs)
  std::vector<int64_t> indices;  // which examples of the dataset, in row order
  int64_t size() const { return (int64_t)indices.size(); }
};

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;     // a fresh permutation every epoch; false: dataset order
  bool drop_last = false;  // drop the final batch of an epoch when it is partial
  uint64_t seed = 0;
  int64_t prefetch = 2;    // batches prepared ahead on a background thread; 0: on the caller's
};

// Builds the batch of the given examples (padding every row to d.seq_len).
Batch make_batch(const TokenDataset& d, const std::vector<int64_t>& indices);

// The example order of one epoch: a Fisher-Yates permutation drawn from Philox keyed by the
// seed, on the epoch's own subsequence (identity when shuffle is false).
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle);

class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const TokenDataset> dataset, const LoaderOptions& options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const;
  const TokenDataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

  // Begins epoch `epoch` at batch `first_batch` (a resumed run skips what it had seen),
  // abandoning whatever the previous epoch had not delivered.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch, or nullopt when the epoch is over. An error raised
  // while preparing a batch on the background thread is rethrown here.
  std::optional<Batch> next();
  // Batches already prepared and waiting (background mode); lets a caller see the prefetch.
  int64_t prepared();

 private:
  void stop_worker();
  void work(std::vector<int64_t> order, int64_t first_batch);
  std::vector<int64_t> batch_indices(const std::vector<int64_t>& order, int64_t b) const;

  std::shared_ptr<const TokenDataset> dataset_;
  LoaderOptions options_;
  // Synchronous mode (prefetch == 0) walks the order itself.
  std::vector<int64_t> order_;
  int64_t next_batch_ = 0;
  bool started_ = false;
  // Background mode: a worker fills a bounded queue; stop_ asks it to quit.
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool worker_done_ = true;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace wavspa::data

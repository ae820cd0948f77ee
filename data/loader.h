// Fixed-shape batches from a TokenDataset, shuffled per epoch from a seed and prepared on a
// background thread so that a training step never waits for data. BatchLoader is one
// DataLoader (data/dataloader.h): the TokenDataset viewed as a Dataset of TokenExamples,
// batched by collate_tokens.
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

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/dataloader.h"
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
// The tensors of a batch (what train::Trainer's cuda_graphs copies into a recording).
inline std::vector<Tensor*> batch_tensors(Batch& b) { return {&b.inputs, &b.inputs2, &b.labels, &b.lengths}; }

// BatchLoader's options. prefetch > 0 is one worker thread that prepares up to that many
// batches ahead (DataLoaderOptions{.workers = 1, .prefetch = prefetch}); 0 prepares each
// batch in next(), on the caller's thread.
struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;     // a fresh permutation every epoch; false: dataset order
  bool drop_last = false;  // drop the final batch of an epoch when it is partial
  uint64_t seed = 0;
  int64_t prefetch = 2;    // batches prepared ahead on a background thread; 0: on the caller's
};

// One example of a TokenDataset, copied out of it: what a Dataset<TokenExample> hands out.
struct TokenExample {
  int64_t index = 0;                  // in the TokenDataset
  std::vector<int32_t> inputs = {};        // at most seq_len ids
  std::vector<int32_t> inputs2 = {};       // retrieval only
  int32_t label = 0;                       // sequence classification
  std::vector<int32_t> token_labels = {};  // LEGO only
};

// A TokenDataset as a Dataset of TokenExamples (its name is the dataset's).
class TokenExamples : public Dataset<TokenExample> {
 public:
  explicit TokenExamples(std::shared_ptr<const TokenDataset> tokens);
  int64_t size() const override { return tokens_->size(); }
  TokenExample get(int64_t index) const override;
  std::string name() const override { return tokens_->name; }
  const TokenDataset& tokens() const { return *tokens_; }

 private:
  std::shared_ptr<const TokenDataset> tokens_;
};

// The batch of `examples`, in their order, laid out as `layout` says (its seq_len, and
// whether it has second documents or token labels): every row padded to layout.seq_len.
Batch collate_tokens(const TokenDataset& layout, const std::vector<TokenExample>& examples);

// Builds the batch of the given examples of `d` (collate_tokens of d's examples).
Batch make_batch(const TokenDataset& d, const std::vector<int64_t>& indices);

class BatchLoader : public DataLoader<TokenExample, Batch> {
 public:
  BatchLoader(std::shared_ptr<const TokenDataset> dataset, const LoaderOptions& options);

  const TokenDataset& dataset() const { return *tokens_; }
  const LoaderOptions& options() const { return options_; }

 private:
  std::shared_ptr<const TokenDataset> tokens_;
  LoaderOptions options_;
};

}  // namespace wavspa::data

// The one in-memory form every Long Range Arena task is trained from: token-id sequences with
// their labels. Generators (listops, lego, pathfinder) and readers (text, retrieval, CIFAR-10,
// idx) each produce a TokenDataset; data/loader.h turns one into fixed-shape batches.
//
//   data::TokenDataset d = data::read_idx_dataset(images, labels);   // 784 pixels, 10 classes
//   d.size();                 // examples
//   d.inputs[i];              // token ids of example i, already cut to d.seq_len
//
// Conventions (the same for every task):
//   - ids lie in [0, vocab_size); id 0 is padding wherever a task pads (text, ListOps, LEGO,
//     retrieval). Pixel tasks (image, pathfinder, MNIST) are fixed-length, never padded, and
//     use the pixel value 0..255 itself as the id (vocabulary 256), as LRA does.
//   - a sequence longer than seq_len is cut when it is read; the loader pads shorter ones.
//   - sequence classification: labels[i] in [0, num_classes). Token labelling (LEGO):
//     token_labels[i][t] in [0, num_classes) or kIgnoreLabel where position t has no label.
//   - retrieval (two documents per example): inputs2 holds the second document; it is empty
//     for every other task.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wavspa::data {

// The label of a position that is not scored (cross_entropy's ignore_index).
inline constexpr int32_t kIgnoreLabel = -100;

struct TokenDataset {
  std::string name;         // e.g. "listops/train", "fashion-mnist/test"; used in messages
  int64_t vocab_size = 0;   // ids lie in [0, vocab_size)
  int64_t num_classes = 0;  // labels lie in [0, num_classes)
  int64_t seq_len = 0;      // every batch has this many positions
  std::vector<std::vector<int32_t>> inputs;
  std::vector<std::vector<int32_t>> inputs2;       // retrieval only
  std::vector<int32_t> labels;                     // one per example (unused for token labelling)
  std::vector<std::vector<int32_t>> token_labels;  // LEGO only: one per token

  int64_t size() const { return (int64_t)inputs.size(); }
  bool is_pair() const { return !inputs2.empty(); }
  bool is_token_labelled() const { return !token_labels.empty(); }
};

// Throws wavspa::Error naming the dataset and the first example that breaks a convention
// above (an id outside the vocabulary, a sequence longer than seq_len, a label out of range,
// mismatched list sizes). Readers and generators call it before they return.
void validate(const TokenDataset& d);

// The fraction of the examples whose label is the most common one (the accuracy of always
// answering that class); for token labelling, over the labelled positions.
double majority_class_accuracy(const TokenDataset& d);

}  // namespace wavspa::data

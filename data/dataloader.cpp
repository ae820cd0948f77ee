#include "data/dataloader.h"

#include "core/random.h"

namespace wavspa::data {

TensorDataset::TensorDataset(const Tensor& inputs, const Tensor& targets, std::string name)
    : name_(std::move(name)) {
  WAVSPA_CHECK(inputs.defined(), "TensorDataset ", name_, ": expected an inputs tensor, got an undefined one");
  WAVSPA_CHECK(inputs.dim() >= 1, "TensorDataset ", name_,
               ": expected inputs with at least 1 dimension (the rows), got a 0-d tensor");
  if (targets.defined()) {
    WAVSPA_CHECK(targets.dim() >= 1, "TensorDataset ", name_,
                 ": expected targets with at least 1 dimension (the rows), got a 0-d tensor");
    WAVSPA_CHECK(targets.shape()[0] == inputs.shape()[0], "TensorDataset ", name_, ": expected as many target rows as input rows (",
                 inputs.shape()[0], "), got ", targets.shape()[0], " (inputs ", inputs.shape(), ", targets ",
                 targets.shape(), ")");
    targets_ = targets.detach();
  }
  inputs_ = inputs.detach();
}

TensorExample TensorDataset::get(int64_t index) const {
  WAVSPA_CHECK(index >= 0 && index < size(), "TensorDataset ", name_, ": expected an example index in [0, ", size(),
               "), got ", index);
  TensorExample e;
  e.input = inputs_.select(0, index);
  if (targets_.defined()) e.target = targets_.select(0, index);
  return e;
}

namespace {

// Rows of the same shape, dtype and device stacked along a new first dimension.
// `what` is "input" or "target".
Tensor stack_rows(const std::vector<TensorExample>& examples, Tensor TensorExample::*field, const char* what) {
  const Tensor& first = examples[0].*field;
  Shape shape = first.shape();
  shape.insert(shape.begin(), (int64_t)examples.size());
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());  // (B, ...)
  for (size_t b = 0; b < examples.size(); ++b) {
    const Tensor& row = examples[b].*field;
    WAVSPA_CHECK(row.defined(), "stack_examples: example ", b, " has no ", what, " but example 0 has one");
    WAVSPA_CHECK(row.shape() == first.shape() && row.dtype() == first.dtype() && row.device() == first.device(),
                 "stack_examples: expected every ", what, " to be like example 0's (shape ", first.shape(), ", ",
                 dtype_name(first.dtype()), ", ", first.device().name(), "), got shape ", row.shape(), ", ",
                 dtype_name(row.dtype()), ", ", row.device().name(), " at example ", b);
    out.select(0, (int64_t)b).copy_(row);
  }
  return out;
}

}  // namespace

TensorExample stack_examples(std::vector<TensorExample> examples) {
  WAVSPA_CHECK(!examples.empty(), "stack_examples: expected at least one example, got none");
  TensorExample batch;
  batch.input = stack_rows(examples, &TensorExample::input, "input");
  if (examples[0].target.defined()) {
    batch.target = stack_rows(examples, &TensorExample::target, "target");
  } else {
    for (size_t b = 1; b < examples.size(); ++b)
      WAVSPA_CHECK(!examples[b].target.defined(), "stack_examples: example ", b,
                   " has a target but example 0 has none");
  }
  return batch;
}

std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(size);
  for (int64_t i = 0; i < size; ++i) order[i] = i;
  if (!shuffle) return order;
  // Fisher-Yates from the back; draw i takes Philox block i of the epoch's subsequence.
  for (int64_t i = size - 1; i > 0; --i) {
    auto bits = philox4x32((uint64_t)i, (uint64_t)epoch, seed);
    const uint64_t wide = ((uint64_t)bits[0] << 32) | bits[1];
    std::swap(order[i], order[(int64_t)(wide % (uint64_t)(i + 1))]);
  }
  return order;
}

namespace detail {

void check_loader_options(const DataLoaderOptions& o, bool have_dataset, bool have_collate) {
  WAVSPA_CHECK(have_dataset, "DataLoader: expected a dataset, got a null pointer");
  WAVSPA_CHECK(have_collate, "DataLoader: expected a collate function, got an empty one");
  WAVSPA_CHECK(o.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", o.batch_size);
  WAVSPA_CHECK(o.workers >= 0, "DataLoader: workers must be >= 0 (0: batches prepared on the caller's thread), got ",
               o.workers);
  WAVSPA_CHECK(o.prefetch >= 1, "DataLoader: prefetch (batches each worker prepares ahead) must be >= 1, got ",
               o.prefetch);
}

void check_loader_size(const DataLoaderOptions& o, int64_t size, const std::string& name) {
  WAVSPA_CHECK(size > 0, "DataLoader: expected a dataset with examples, but ", name, " has none");
  WAVSPA_CHECK(!o.drop_last || size >= o.batch_size, "DataLoader: ", name, " has ", size,
               " examples, fewer than one batch of ", o.batch_size, " with drop_last");
}

void check_start_epoch(int64_t epoch, int64_t skip_batches, int64_t batches_per_epoch) {
  WAVSPA_CHECK(epoch >= 0, "DataLoader::start_epoch: epoch must be >= 0, got ", epoch);
  WAVSPA_CHECK(skip_batches >= 0 && skip_batches <= batches_per_epoch, "DataLoader::start_epoch: skip_batches must be in [0, ",
               batches_per_epoch, "], got ", skip_batches);
}

void rethrow_batch_error(std::exception_ptr error, const std::string& dataset, int64_t epoch, int64_t batch,
                         const std::vector<int64_t>& indices) {
  // The examples of the batch, at most 8 of them, so that a batch of 1024 stays one line.
  std::string examples;
  for (size_t k = 0; k < indices.size() && k < 8; ++k) examples += (k ? ", " : "") + std::to_string(indices[k]);
  if (indices.size() > 8) examples += ", ...";
  const std::string where = str("DataLoader: preparing batch ", batch, " of epoch ", epoch, " of ", dataset,
                                " (examples ", examples, "): ");
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    throw Error(where + e.what());
  } catch (...) {
    throw Error(where + "an exception that is not a std::exception");
  }
}

}  // namespace detail

}  // namespace wavspa::data

#include "data/loader.h"

#include <algorithm>

#include "core/error.h"
#include "core/random.h"

namespace wavspa::data {

Batch make_batch(const TokenDataset& d, const std::vector<int64_t>& indices) {
  const int64_t B = (int64_t)indices.size(), L = d.seq_len;
  Batch batch;
  batch.indices = indices;
  batch.inputs = Tensor::empty({B, L}, kInt64);
  batch.lengths = Tensor::empty({B}, kInt64);
  if (d.is_pair()) batch.inputs2 = Tensor::empty({B, L}, kInt64);
  batch.labels = d.is_token_labelled() ? Tensor::empty({B, L}, kInt64) : Tensor::empty({B}, kInt64);
  int64_t* in = batch.inputs.data<int64_t>();
  int64_t* len = batch.lengths.data<int64_t>();
  int64_t* lab = batch.labels.data<int64_t>();
  // Copies a row and pads it: `fill` is the padding value (0 for ids, kIgnoreLabel for labels).
  auto put_row = [L](int64_t* dst, const std::vector<int32_t>& src, int64_t fill) {
    const int64_t n = std::min<int64_t>((int64_t)src.size(), L);
    for (int64_t t = 0; t < n; ++t) dst[t] = src[t];
    std::fill(dst + n, dst + L, fill);
  };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = indices[b];
    WAVSPA_CHECK(i >= 0 && i < d.size(), "make_batch: example index ", i, " outside ", d.name,
                 " (", d.size(), " examples)");
    put_row(in + b * L, d.inputs[i], 0);
    len[b] = std::min<int64_t>((int64_t)d.inputs[i].size(), L);
    if (d.is_pair()) put_row(batch.inputs2.data<int64_t>() + b * L, d.inputs2[i], 0);
    if (d.is_token_labelled())
      put_row(lab + b * L, d.token_labels[i], kIgnoreLabel);
    else
      lab[b] = d.labels[i];
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

BatchLoader::BatchLoader(std::shared_ptr<const TokenDataset> dataset, const LoaderOptions& options)
    : dataset_(std::move(dataset)), options_(options) {
  WAVSPA_CHECK(dataset_ != nullptr, "BatchLoader: no dataset");
  WAVSPA_CHECK(options_.batch_size >= 1, "BatchLoader: batch_size must be >= 1, got ",
               options_.batch_size);
  WAVSPA_CHECK(options_.prefetch >= 0, "BatchLoader: prefetch must be >= 0, got ", options_.prefetch);
  WAVSPA_CHECK(dataset_->size() > 0, "BatchLoader: ", dataset_->name, " has no examples");
  WAVSPA_CHECK(batches_per_epoch() > 0, "BatchLoader: ", dataset_->name, " has ", dataset_->size(),
               " examples, fewer than one batch of ", options_.batch_size, " with drop_last");
}

BatchLoader::~BatchLoader() { stop_worker(); }

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> BatchLoader::batch_indices(const std::vector<int64_t>& order, int64_t b) const {
  const int64_t begin = b * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, (int64_t)order.size());
  return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
}

void BatchLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  WAVSPA_CHECK(epoch >= 0, "BatchLoader::start_epoch: epoch must be >= 0, got ", epoch);
  WAVSPA_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch(),
               "BatchLoader::start_epoch: first_batch must be in [0, ", batches_per_epoch(), "], got ",
               first_batch);
  stop_worker();
  started_ = true;
  std::vector<int64_t> order = epoch_order(dataset_->size(), options_.seed, epoch, options_.shuffle);
  if (options_.prefetch == 0) {
    order_ = std::move(order);
    next_batch_ = first_batch;
    return;
  }
  queue_.clear();
  error_ = nullptr;
  stop_ = false;
  worker_done_ = false;
  worker_ = std::thread(&BatchLoader::work, this, std::move(order), first_batch);
}

void BatchLoader::work(std::vector<int64_t> order, int64_t first_batch) {
  try {
    for (int64_t b = first_batch; b < batches_per_epoch(); ++b) {
      Batch batch = make_batch(*dataset_, batch_indices(order, b));
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || (int64_t)queue_.size() < options_.prefetch; });
      if (stop_) break;
      queue_.push_back(std::move(batch));
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  worker_done_ = true;
  cv_.notify_all();
}

int64_t BatchLoader::prepared() {
  std::lock_guard<std::mutex> lock(mutex_);
  return (int64_t)queue_.size();
}

std::optional<Batch> BatchLoader::next() {
  WAVSPA_CHECK(started_, "BatchLoader::next: call start_epoch first");
  if (options_.prefetch == 0) {
    if (next_batch_ >= batches_per_epoch()) return std::nullopt;
    return make_batch(*dataset_, batch_indices(order_, next_batch_++));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !queue_.empty() || worker_done_; });
  if (!queue_.empty()) {
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return batch;
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
  return std::nullopt;
}

}  // namespace wavspa::data

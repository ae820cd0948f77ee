#include "data/loader.h"

#include <algorithm>

#include "core/error.h"

namespace wavspa::data {

TokenExamples::TokenExamples(std::shared_ptr<const TokenDataset> tokens) : tokens_(std::move(tokens)) {
  WAVSPA_CHECK(tokens_ != nullptr, "TokenExamples: expected a TokenDataset, got a null pointer");
}

TokenExample TokenExamples::get(int64_t index) const {
  const TokenDataset& d = *tokens_;
  WAVSPA_CHECK(index >= 0 && index < d.size(), "TokenExamples: example index ", index, " outside ", d.name, " (",
               d.size(), " examples)");
  TokenExample e;
  e.index = index;
  e.inputs = d.inputs[index];
  if (d.is_pair()) e.inputs2 = d.inputs2[index];
  if (d.is_token_labelled())
    e.token_labels = d.token_labels[index];
  else
    e.label = d.labels[index];
  return e;
}

Batch collate_tokens(const TokenDataset& layout, const std::vector<TokenExample>& examples) {
  const int64_t B = (int64_t)examples.size(), L = layout.seq_len;
  Batch batch;
  batch.inputs = Tensor::empty({B, L}, kInt64);
  batch.lengths = Tensor::empty({B}, kInt64);
  if (layout.is_pair()) batch.inputs2 = Tensor::empty({B, L}, kInt64);
  batch.labels = layout.is_token_labelled() ? Tensor::empty({B, L}, kInt64) : Tensor::empty({B}, kInt64);
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
    const TokenExample& e = examples[b];
    batch.indices.push_back(e.index);
    put_row(in + b * L, e.inputs, 0);
    len[b] = std::min<int64_t>((int64_t)e.inputs.size(), L);
    if (layout.is_pair()) put_row(batch.inputs2.data<int64_t>() + b * L, e.inputs2, 0);
    if (layout.is_token_labelled())
      put_row(lab + b * L, e.token_labels, kIgnoreLabel);
    else
      lab[b] = e.label;
  }
  return batch;
}

Batch make_batch(const TokenDataset& d, const std::vector<int64_t>& indices) {
  // A non-owning view of d for TokenExamples (which wants shared ownership): d outlives it.
  const TokenExamples examples(std::shared_ptr<const TokenDataset>(&d, [](const TokenDataset*) {}));
  std::vector<TokenExample> rows;
  rows.reserve(indices.size());
  for (int64_t i : indices) {
    WAVSPA_CHECK(i >= 0 && i < d.size(), "make_batch: example index ", i, " outside ", d.name, " (", d.size(),
                 " examples)");
    rows.push_back(examples.get(i));
  }
  return collate_tokens(d, rows);
}

namespace {

// LoaderOptions in DataLoader's terms, checked first so that the message names BatchLoader's
// own option.
DataLoaderOptions dataloader_options(const LoaderOptions& o) {
  WAVSPA_CHECK(o.prefetch >= 0, "BatchLoader: prefetch must be >= 0 (0: no background thread), got ", o.prefetch);
  DataLoaderOptions d;
  d.batch_size = o.batch_size;
  d.shuffle = o.shuffle;
  d.drop_last = o.drop_last;
  d.seed = o.seed;
  d.workers = o.prefetch > 0 ? 1 : 0;
  d.prefetch = std::max<int64_t>(1, o.prefetch);
  return d;
}

std::shared_ptr<const TokenDataset> checked(std::shared_ptr<const TokenDataset> d) {
  WAVSPA_CHECK(d != nullptr, "BatchLoader: expected a TokenDataset, got a null pointer");
  return d;
}

}  // namespace

BatchLoader::BatchLoader(std::shared_ptr<const TokenDataset> dataset, const LoaderOptions& options)
    : DataLoader(std::make_shared<const TokenExamples>(checked(dataset)),
                 [layout = dataset](std::vector<TokenExample> examples) { return collate_tokens(*layout, examples); },
                 dataloader_options(options)),
      tokens_(std::move(dataset)),
      options_(options) {}

}  // namespace wavspa::data

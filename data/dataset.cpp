#include "data/dataset.h"

#include <map>

#include "core/error.h"

namespace wavspa::data {

void validate(const TokenDataset& d) {
  const std::string& n = d.name.empty() ? std::string("dataset") : d.name;
  WAVSPA_CHECK(d.vocab_size >= 1 && d.num_classes >= 1 && d.seq_len >= 1, n,
               ": vocab_size, num_classes and seq_len must be >= 1, got ", d.vocab_size, ", ",
               d.num_classes, ", ", d.seq_len);
  const size_t count = d.inputs.size();
  WAVSPA_CHECK(d.inputs2.empty() || d.inputs2.size() == count, n, ": ", count,
               " inputs but ", d.inputs2.size(), " second documents");
  if (d.token_labels.empty()) {
    WAVSPA_CHECK(d.labels.size() == count, n, ": ", count, " inputs but ", d.labels.size(), " labels");
  } else {
    WAVSPA_CHECK(d.token_labels.size() == count, n, ": ", count, " inputs but ",
                 d.token_labels.size(), " token label rows");
  }
  auto check_ids = [&](const std::vector<int32_t>& seq, size_t i, const char* what) {
    WAVSPA_CHECK((int64_t)seq.size() <= d.seq_len, n, ": example ", i, " has a ", what, " of ",
                 seq.size(), " tokens, longer than seq_len ", d.seq_len);
    for (size_t t = 0; t < seq.size(); ++t)
      WAVSPA_CHECK(seq[t] >= 0 && seq[t] < d.vocab_size, n, ": example ", i, " ", what,
                   " position ", t, " has id ", seq[t], ", outside the vocabulary [0, ",
                   d.vocab_size, ")");
  };
  for (size_t i = 0; i < count; ++i) {
    check_ids(d.inputs[i], i, "input");
    if (!d.inputs2.empty()) check_ids(d.inputs2[i], i, "second input");
    if (d.token_labels.empty()) {
      WAVSPA_CHECK(d.labels[i] >= 0 && d.labels[i] < d.num_classes, n, ": example ", i,
                   " has label ", d.labels[i], ", expected 0..", d.num_classes - 1);
    } else {
      const auto& tl = d.token_labels[i];
      WAVSPA_CHECK(tl.size() == d.inputs[i].size(), n, ": example ", i, " has ", d.inputs[i].size(),
                   " tokens but ", tl.size(), " token labels");
      for (size_t t = 0; t < tl.size(); ++t)
        WAVSPA_CHECK(tl[t] == kIgnoreLabel || (tl[t] >= 0 && tl[t] < d.num_classes), n,
                     ": example ", i, " position ", t, " has label ", tl[t], ", expected 0..",
                     d.num_classes - 1, " or ", kIgnoreLabel);
    }
  }
}

double majority_class_accuracy(const TokenDataset& d) {
  std::map<int32_t, int64_t> counts;
  int64_t total = 0;
  if (d.token_labels.empty()) {
    for (int32_t l : d.labels) ++counts[l], ++total;
  } else {
    for (const auto& row : d.token_labels)
      for (int32_t l : row)
        if (l != kIgnoreLabel) ++counts[l], ++total;
  }
  int64_t best = 0;
  for (const auto& [label, c] : counts) best = std::max(best, c);
  return total == 0 ? 0.0 : (double)best / (double)total;
}

}  // namespace wavspa::data

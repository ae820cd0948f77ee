// Where each task's data comes from and how the model is fitted to it.
//
//   train::TaskData d = train::load_task(config);   // train, val, test TokenDatasets
//   train::fit_model_to_data(config, d);             // model.vocab_size, num_classes, max_len, ...
//
// Files per task, under config.data (the folder gen-data writes, or the user's copy of LRA's):
//   listops        basic_train.tsv, basic_val.tsv, basic_test.tsv          (LRA's names)
//   lego           lego_train.tsv, lego_val.tsv, lego_test.tsv
//   pathfinder     train/, val/, test/ (each imgs/ + metadata/, LRA's layout)
//   text           train.{tsv,csv}[.gz], test.{tsv,csv}[.gz], val.* if present
//   retrieval      new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv, new_aan_pairs.test.tsv
//   image          data_batch_1.bin .. data_batch_5.bin, test_batch.bin   (CIFAR-10 binary)
//   fashion-mnist  train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...
//                  (default folder: Debian's /usr/share/datasets/fashion-mnist)
// Where a task has no validation file (text without val.*, image, fashion-mnist), the last
// min(5000, n / 10) training examples are held out as the validation split.
#pragma once

#include <memory>

#include "data/dataset.h"
#include "train/config.h"

namespace wavspa::train {

struct TaskData {
  std::shared_ptr<const data::TokenDataset> train, val, test;
};

// The sequence length of a task when config.max_len is 0: listops 2000, text 4000,
// retrieval 4000, image 1024, fashion-mnist 784, pathfinder the image's pixels, lego the
// longest chain of any split.
TaskData load_task(const RunConfig& config);

// Sets what the data decides: vocab_size, num_classes, max_len, and per task mask_padding
// (off for pixel tasks, where id 0 is a black pixel), pooling "none" for LEGO's per-token
// labels, dual for retrieval. Then validates the model config.
void fit_model_to_data(RunConfig& config, const TaskData& data);

}  // namespace wavspa::train

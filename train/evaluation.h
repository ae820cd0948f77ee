// Validation and test passes, and what they leave in a run folder: the "val" and "test"
// metric rows, latest.safetensors at every validation pass, best.safetensors at the best
// validation accuracy, and summary.json.
//
//   train::EvalResult v = train::evaluate(s.model, *s.data.val, 32, /*limit=*/0, s.device);
//   train::validate(s, folder, st, epoch, console);   // the periodic pass of a training run
//   train::RunResult r = train::finish_run(s, folder, st, status, batches_per_epoch);
#pragma once

#include <cstdint>
#include <utility>

#include "data/dataset.h"
#include "train/logging.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace wavspa::train {

struct EvalResult {
  double loss = 0, accuracy = 0;
};

// Correct predictions and scored positions (labels other than kIgnoreLabel).
std::pair<int64_t, int64_t> count_correct(const Tensor& logits, const Tensor& labels);
// The same as two 0-d float64 tensors (exact counts) on the logits' device, without waiting.
std::pair<Tensor, Tensor> count_correct_on_device(const Tensor& logits, const Tensor& labels);

// Mean loss and accuracy over the first `limit` examples of `d` (0: all), in eval mode.
EvalResult evaluate(TaskModel& model, const data::TokenDataset& d, int64_t batch_size, int64_t limit,
                    Device device);

// The periodic validation pass at st.step: its row, the best accuracy so far, latest.safetensors
// (copied to best.safetensors when better), metrics and curves, and a line on standard error.
void validate(Setup& s, const RunFolder& folder, RunState& st, int64_t epoch, const Console& console);

// Ends a run whose loop stopped with `status`: a finished or early-stopped run gets the test
// accuracy of its best checkpoint (as LRA reports it); every run gets its filter plot and
// summary.json.
RunResult finish_run(Setup& s, const RunFolder& folder, RunState& st, RunStatus status, int64_t batches_per_epoch);

}  // namespace wavspa::train

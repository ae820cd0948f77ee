// What a training run reports while it runs: metric rows (metrics.csv and metrics.jsonl in the
// run folder), the training curves and the filter plot, and progress on standard error (a bar
// on a terminal, one line per training row otherwise).
//
//   train::LogWindow window;                          // the steps since the last training row
//   window.add(loss, correct, scored, positions);
//   rows.push_back(window.row(step, epoch, lr, window_seconds, elapsed_s));
//   train::write_metrics(dir, rows);                  // metrics.csv + metrics.jsonl
//   train::write_curves(dir, rows);                   // loss.svg + accuracy.svg
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/storage.h"
#include "nn/module.h"

namespace wavspa::train {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start);

// One allocator's statistics for the end of a run:
// "memory cpu: 5321 allocations (4210 from the cache), peak 38 MiB, in use 2 MiB, held 41 MiB"
std::string memory_summary(const std::string& device, const MemoryUsage& u);

// One line of metrics.csv: a log interval ("train"), a validation pass ("val") or the final
// test pass of the best checkpoint ("test").
struct MetricRow {
  int64_t step = 0, epoch = 0;
  std::string split;
  double loss = 0, accuracy = 0, lr = 0, tokens_per_s = 0, elapsed_s = 0;
};

// The training steps since the last "train" row; that row averages them.
struct LogWindow {
  double loss = 0;  // summed over the steps
  int64_t steps = 0, correct = 0, scored = 0;
  double positions = 0;

  void add(double step_loss, int64_t step_correct, int64_t step_scored, double step_positions);
  // `n` steps at once, their sums (the training loop reads them from the device per interval).
  void add_steps(int64_t n, double loss_sum, int64_t correct_sum, int64_t scored_sum, double positions_sum);
  MetricRow row(int64_t step, int64_t epoch, double lr, double window_seconds, double elapsed_s) const;
};


// The rows of a run folder's metrics.csv (none when it has none), for a resumed run.
std::vector<MetricRow> read_metrics(const std::string& path);
// metrics.csv and metrics.jsonl of `dir`, one line per row.
void write_metrics(const std::string& dir, const std::vector<MetricRow>& rows);
// loss.svg and accuracy.svg of `dir`: the train and val rows against the step.
void write_curves(const std::string& dir, const std::vector<MetricRow>& rows);
// filters.svg: the wavelet filters of each WavSpA layer, learned (solid) against
// initial.safetensors (dashed), for the first three channels. False when the model has none.
bool write_filter_plot(const std::string& dir, nn::Module& model);

// The bar's line, drawn on a terminal only.
struct BarLine {
  int64_t step = 0, steps = 0;
  double loss = 0, accuracy = 0;  // of the last step
  double tokens_per_s = 0, lr = 0, eta_s = 0;
};

// Progress on standard error. On a terminal a bar, redrawn at most five times a second;
// elsewhere (a log file, a pipe) one plain line per training row.
class Console {
 public:
  Console();
  // The plain line, ending with memory: the process's resident size, then the bytes in
  // live tensors / held by the allocator, on the host and (a CUDA run) on the device.
  void train_row(const MetricRow& row, int64_t steps, Device device) const;
  void bar(const BarLine& line);                              // always drawn at the last step
  // Ends the bar's line, so that a message printed next starts on a line of its own.
  void end_bar() const;

 private:
  bool tty_;
  Clock::time_point last_bar_;
};

}  // namespace wavspa::train

#include "train/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/files.h"
#include "nn/train_state.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/nn.h"
#include "ops/reduce.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Adds the "test" row of the best checkpoint and returns its accuracy. The model ends with the
// weights of latest.safetensors again: the filter plot shows the end of training.
double test_best_checkpoint(Setup& s, const RunFolder& folder, RunState& st, double wall_s,
                            int64_t batches_per_epoch) {
  nn::load_training_state(folder.best, s.model.module(), *s.optimizer);
  const EvalResult t = evaluate(s.model, *s.data.test, s.config.batch_size, 0, s.device);
  st.rows.push_back({st.best_step, st.best_step / batches_per_epoch, "test", t.loss, t.accuracy, 0, 0, wall_s});
  write_metrics(folder.dir, st.rows);
  nn::load_training_state(folder.latest, s.model.module(), *s.optimizer);
  return t.accuracy;
}

json memory_json(const MemoryUsage& u) {
  return {{"allocations", u.num_allocs}, {"cache_hits", u.num_cache_hits}, {"bytes_in_use", u.allocated},
          {"peak_bytes", u.peak_allocated}, {"reserved_bytes", u.reserved}};
}

std::string summary_json(Setup& s, const RunFolder& folder, const RunResult& r, bool filter_plot) {
  json plots = json::array({folder.dir + "/loss.svg", folder.dir + "/accuracy.svg"});
  if (filter_plot) plots.push_back(folder.dir + "/filters.svg");
  json summary = {{"task", s.config.task},
                  {"model", model_name(s.config.model)},
                  {"status", status_name(r.status)},
                  {"steps", r.steps},
                  {"best_step", r.best_step},
                  {"best_val_accuracy", r.best_val_accuracy},
                  {"test_accuracy", r.test_accuracy >= 0 ? json(r.test_accuracy) : json(nullptr)},
                  {"majority_accuracy", r.majority_accuracy},
                  {"wall_s", std::round(r.wall_s * 10) / 10},
                  {"tokens_per_s", std::round(r.tokens_per_s)},
                  {"parameters", s.model.module().num_parameters()},
                  {"checkpoint", fs::exists(folder.best) ? folder.best : folder.latest},
                  {"metrics", folder.dir + "/metrics.csv"},
                  {"plots", plots}};
  summary["memory"] = {{"cpu", memory_json(r.host_memory)}};
  if (r.device != "cpu") summary["memory"][r.device] = memory_json(r.device_memory);
  return summary.dump();
}

}  // namespace

std::pair<int64_t, int64_t> count_correct(const Tensor& logits, const Tensor& labels) {
  auto pred = argmax(logits, 1).to(Device::cpu()).to_vector<int64_t>();
  auto lab = labels.to(Device::cpu()).to_vector<int64_t>();
  int64_t correct = 0, scored = 0;
  for (size_t i = 0; i < lab.size(); ++i) {
    if (lab[i] == data::kIgnoreLabel) continue;
    ++scored;
    correct += pred[i] == lab[i];
  }
  return {correct, scored};
}

std::pair<Tensor, Tensor> count_correct_on_device(const Tensor& logits, const Tensor& labels) {
  NoGradGuard no_grad;
  const Tensor scored = ne(labels, scalar_tensor((double)data::kIgnoreLabel, kInt64, labels.device()));
  const Tensor hit = logical_and(eq(argmax(logits.detach(), 1), labels), scored);
  return {sum(hit.to(kFloat64)), sum(scored.to(kFloat64))};  // counts, exact in float64
}

EvalResult evaluate(TaskModel& model, const data::TokenDataset& d, int64_t batch_size, int64_t limit,
                    Device device) {
  NoGradGuard no_grad;
  model.module().eval();
  const int64_t n = limit > 0 ? std::min(limit, d.size()) : d.size();
  double loss_sum = 0;
  int64_t correct = 0, scored = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min(n, begin + batch_size); ++i) idx.push_back(i);
    data::Batch b = data::make_batch(d, idx);
    auto [logits, labels] = model.forward(b, device);
    CrossEntropyOptions o;
    o.reduction = Reduction::Sum;
    loss_sum += cross_entropy(logits, labels, o).item();
    auto [c, sc] = count_correct(logits, labels);
    correct += c, scored += sc;
  }
  model.module().train();
  return {scored ? loss_sum / (double)scored : 0.0, scored ? (double)correct / (double)scored : 0.0};
}

void validate(Setup& s, const RunFolder& folder, RunState& st, int64_t epoch, const Console& console) {
  const EvalResult v = evaluate(s.model, *s.data.val, s.config.batch_size, s.config.eval_limit, s.device);
  st.rows.push_back({st.step, epoch, "val", v.loss, v.accuracy, s.optimizer->lr(), 0, st.elapsed_s()});
  const bool better = v.accuracy > st.best_val_accuracy;
  if (better) {
    st.best_val_accuracy = v.accuracy, st.best_step = st.step, st.evals_without_gain = 0;
  } else {
    ++st.evals_without_gain;
  }
  save_latest(s, folder, st);
  if (better) {
    fs::copy_file(folder.latest, folder.best + ".tmp", fs::copy_options::overwrite_existing);
    fs::rename(folder.best + ".tmp", folder.best);
  }
  write_metrics(folder.dir, st.rows);
  write_curves(folder.dir, st.rows);
  console.end_bar();
  std::fprintf(stderr, "eval  step %lld  val loss %.4f  val acc %.4f%s\n", (long long)st.step, v.loss, v.accuracy,
               better ? "  (best)" : "");
}

RunResult finish_run(Setup& s, const RunFolder& folder, RunState& st, RunStatus status, int64_t batches_per_epoch) {
  RunResult r;
  r.status = status;
  r.steps = st.saved_step;
  r.best_val_accuracy = st.best_val_accuracy;
  r.best_step = st.best_step;
  r.wall_s = st.elapsed_s();
  r.tokens_per_s = r.wall_s > 0 ? st.positions / r.wall_s : 0;
  r.majority_accuracy = data::majority_class_accuracy(*s.data.test);
  if (status == RunStatus::kDiverged) write_metrics(folder.dir, st.rows), write_curves(folder.dir, st.rows);
  if (status == RunStatus::kFinished || status == RunStatus::kEarlyStopped)
    r.test_accuracy = test_best_checkpoint(s, folder, st, r.wall_s, batches_per_epoch);
  const bool filter_plot = write_filter_plot(folder.dir, s.model.module());
  r.host_memory = allocator_for(Device::cpu()).usage();
  if (!s.device.is_cpu()) r.device = s.device.name(), r.device_memory = allocator_for(s.device).usage();
  r.summary_json = summary_json(s, folder, r, filter_plot);
  write_file_atomic(folder.dir + "/summary.json", r.summary_json + "\n", "summary");
  return r;
}

}  // namespace wavspa::train

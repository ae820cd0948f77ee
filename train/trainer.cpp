#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/runtime.h"
#include "data/loader.h"
#include "models/factory.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "nn/train_state.h"
#include "ops/elementwise.h"
#include "ops/nn.h"
#include "ops/reduce.h"
#include "ops/wavelet.h"
#include "train/plots.h"
#include "train/tasks.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- signals ------------------------------------------------------------------------------

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);  // a second signal: leave now
}

// ---- test hooks ---------------------------------------------------------------------------
// WAVSPA_TRAIN_NAN_AT_STEP=k makes the loss of step k NaN; WAVSPA_TRAIN_INTERRUPT_AT_STEP=k
// raises SIGINT after step k. Tests use them to reach the divergence and Ctrl-C paths.
int64_t env_step(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : -1;
}

// ---- the model of a task --------------------------------------------------------------------

struct TaskModel {
  std::shared_ptr<models::SequenceClassifier> classifier;  // one of the two
  std::shared_ptr<models::DualEncoder> dual;
  nn::Module& module() { return classifier ? (nn::Module&)*classifier : (nn::Module&)*dual; }

  // Logits and labels flattened to (M, C) and (M): per example, or per token for LEGO.
  std::pair<Tensor, Tensor> forward(const data::Batch& b, Device device) {
    Tensor logits = classifier ? classifier->forward(b.inputs.to(device))
                               : dual->forward(b.inputs.to(device), b.inputs2.to(device));
    Tensor labels = b.labels.to(device);
    if (logits.dim() == 3) {  // (B, N, C) per token
      const int64_t C = logits.shape()[2];
      return {logits.reshape({-1, C}), labels.reshape({-1})};
    }
    return {logits, labels};
  }
};

TaskModel build_model(const models::ModelConfig& m) {
  TaskModel t;
  if (m.dual)
    t.dual = models::make_dual_encoder(m);
  else
    t.classifier = models::make_classifier(m);
  return t;
}

std::string model_name(const models::ModelConfig& m) {
  std::string name = m.architecture;
  if (m.architecture == "wavspa") name += "-" + m.parametrization;
  if (m.attention != "full") name += "/" + m.attention;
  return name;
}

// Correct predictions and scored positions (labels other than kIgnoreLabel).
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

struct EvalResult {
  double loss = 0, accuracy = 0;
};

// Mean loss and accuracy over the first `limit` examples (0: all), in eval mode.
EvalResult evaluate(TaskModel& model, std::shared_ptr<const data::TokenDataset> d, int64_t batch_size,
                    int64_t limit, Device device) {
  NoGradGuard no_grad;
  model.module().eval();
  const int64_t n = limit > 0 ? std::min(limit, d->size()) : d->size();
  double loss_sum = 0;
  int64_t correct = 0, scored = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < std::min(n, begin + batch_size); ++i) idx.push_back(i);
    data::Batch b = data::make_batch(*d, idx);
    auto [logits, labels] = model.forward(b, device);
    CrossEntropyOptions o;
    o.reduction = Reduction::Sum;
    loss_sum += cross_entropy(logits, labels, o).item();
    auto [c, s] = count_correct(logits, labels);
    correct += c, scored += s;
  }
  model.module().train();
  return {scored ? loss_sum / (double)scored : 0.0, scored ? (double)correct / (double)scored : 0.0};
}

// ---- metrics ------------------------------------------------------------------------------

struct MetricRow {
  int64_t step = 0, epoch = 0;
  std::string split;
  double loss = 0, accuracy = 0, lr = 0, tokens_per_s = 0, elapsed_s = 0;
};

constexpr const char* kCsvHeader = "step,epoch,split,loss,accuracy,lr,tokens_per_s,elapsed_s";

std::string csv_line(const MetricRow& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%lld,%lld,%s,%.10g,%.10g,%.6g,%.6g,%.3f", (long long)r.step, (long long)r.epoch,
                r.split.c_str(), r.loss, r.accuracy, r.lr, r.tokens_per_s, r.elapsed_s);
  return buf;
}

json row_json(const MetricRow& r) {
  return json{{"step", r.step}, {"epoch", r.epoch}, {"split", r.split}, {"loss", r.loss},
              {"accuracy", r.accuracy}, {"lr", r.lr}, {"tokens_per_s", r.tokens_per_s},
              {"elapsed_s", r.elapsed_s}};
}

void write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    WAVSPA_CHECK(out.good(), "cannot write '", tmp, "'");
    out << text;
    out.flush();
    WAVSPA_CHECK(out.good(), "writing '", tmp, "' failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  WAVSPA_CHECK(!ec, "cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

// Rows of a run's metrics.csv (for a resumed run).
std::vector<MetricRow> read_metrics(const std::string& path) {
  std::vector<MetricRow> rows;
  std::ifstream in(path);
  if (!in.good()) return rows;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (n == 1) {
      WAVSPA_CHECK(line == kCsvHeader, path, ":1: expected the header '", kCsvHeader, "'");
      continue;
    }
    if (line.empty()) continue;
    MetricRow r;
    char split[32] = {0};
    long long step, epoch;
    const int got = std::sscanf(line.c_str(), "%lld,%lld,%31[^,],%lf,%lf,%lf,%lf,%lf", &step, &epoch, split,
                                &r.loss, &r.accuracy, &r.lr, &r.tokens_per_s, &r.elapsed_s);
    WAVSPA_CHECK(got == 8, path, ":", n, ": expected 8 comma-separated fields, got '", line, "'");
    r.step = step, r.epoch = epoch, r.split = split;
    rows.push_back(r);
  }
  return rows;
}

void write_metrics(const std::string& dir, const std::vector<MetricRow>& rows) {
  std::string csv = std::string(kCsvHeader) + "\n", jsonl;
  for (const MetricRow& r : rows) {
    csv += csv_line(r) + "\n";
    jsonl += row_json(r).dump() + "\n";
  }
  write_atomic(dir + "/metrics.csv", csv);
  write_atomic(dir + "/metrics.jsonl", jsonl);
}

void write_curves(const std::string& dir, const std::vector<MetricRow>& rows) {
  Series tl{"train", {}, {}, false, false, ""}, vl{"val", {}, {}, true, false, ""};
  Series ta{"train", {}, {}, false, false, ""}, va{"val", {}, {}, true, false, ""};
  for (const MetricRow& r : rows) {
    if (r.split == "train") {
      tl.x.push_back((double)r.step), tl.y.push_back(r.loss);
      ta.x.push_back((double)r.step), ta.y.push_back(r.accuracy);
    } else if (r.split == "val") {
      vl.x.push_back((double)r.step), vl.y.push_back(r.loss);
      va.x.push_back((double)r.step), va.y.push_back(r.accuracy);
    }
  }
  write_svg(dir + "/loss.svg", {Chart{"loss", "step", "cross-entropy", {tl, vl}}});
  write_svg(dir + "/accuracy.svg", {Chart{"accuracy", "step", "accuracy", {ta, va}}});
}

// The wavelet filters of each WavSpA layer, learned (solid) against initial (dashed), for the
// first three channels. Returns false when the model has none.
bool write_filter_plot(const std::string& dir, nn::Module& model) {
  const std::string initial = dir + "/initial.safetensors";
  if (!fs::exists(initial)) return false;
  nn::StateDict start = nn::load_safetensors(initial).tensors;
  std::vector<Chart> charts;
  for (const auto& [name, param] : model.named_parameters()) {
    auto ends = [&](const std::string& s) {
      return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    const bool angles = ends(".angles");
    if (!(ends(".filters") || angles || ends(".predict") || ends(".update"))) continue;
    if (!start.count(name)) continue;
    NoGradGuard no_grad;
    // (taps, channels): an ortho layer's angles become its lattice filter
    Tensor now = (angles ? lattice_filter(param) : param).to(Device::cpu()).to(kFloat64).contiguous();
    Tensor then = (angles ? lattice_filter(start.at(name)) : start.at(name)).to(kFloat64).contiguous();
    if (now.dim() != 2) continue;
    const int64_t taps = now.shape()[0], channels = now.shape()[1];
    auto a = now.to_vector<double>(), b = then.to_vector<double>();
    Chart c{name + (angles ? " (lattice filter)" : ""), "tap", "value", {}};
    const char* const colors[] = {"#1f77b4", "#d62728", "#2ca02c"};
    const int64_t shown = std::min<int64_t>(3, channels);
    // Channels usually start from one wavelet: then a single grey dashed line shows it.
    bool same_start = true;
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t ch = 1; ch < shown; ++ch) same_start = same_start && b[t * channels + ch] == b[t * channels];
    for (int64_t ch = 0; ch < shown; ++ch) {
      Series learned{str("channel ", ch), {}, {}, true, false, colors[ch]};
      Series init{same_start ? std::string("initial") : str("channel ", ch, " initial"), {}, {}, false, true,
                  same_start ? "#888888" : colors[ch]};
      for (int64_t t = 0; t < taps; ++t) {
        learned.x.push_back((double)t), learned.y.push_back(a[t * channels + ch]);
        init.x.push_back((double)t), init.y.push_back(b[t * channels + ch]);
      }
      c.series.push_back(learned);
      if (!same_start || ch == 0) c.series.push_back(init);
    }
    charts.push_back(c);
  }
  if (charts.empty()) return false;
  write_svg(dir + "/filters.svg", charts, 2);
  return true;
}

// ---- the optimiser ------------------------------------------------------------------------

std::unique_ptr<nn::Optimizer> make_optimizer(const RunConfig& c, nn::Module& model) {
  auto groups = nn::decay_groups(model, c.weight_decay);
  if (c.optimizer == "adamw") {
    nn::AdamWOptions o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    return std::make_unique<nn::AdamW>(groups, o);
  }
  if (c.optimizer == "adam") {
    nn::AdamOptions o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    return std::make_unique<nn::Adam>(groups, o);
  }
  nn::SGDOptions o;
  o.lr = c.lr, o.momentum = c.momentum, o.weight_decay = c.weight_decay;
  return std::make_unique<nn::SGD>(groups, o);
}

nn::Schedule make_schedule(const RunConfig& c) {
  if (c.schedule == "cosine") return nn::cosine(c.steps, c.warmup_steps());
  nn::ScheduleParams p;
  p.base = 1.0;  // lr carries the scale
  p.warmup_steps = std::max<int64_t>(1, c.warmup_steps());
  return nn::parse_schedule(c.schedule, p);
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", (int)(s / 3600), (int)std::fmod(s / 60, 60));
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", (int)(s / 60), (int)std::fmod(s, 60));
  return buf;
}

std::string human(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

void apply_threads(int64_t threads) {
  if (threads > 0) set_cpu_threads((int)threads);
}

}  // namespace

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kFinished: return "finished";
    case RunStatus::kEarlyStopped: return "early_stopped";
    case RunStatus::kInterrupted: return "interrupted";
    case RunStatus::kDiverged: return "diverged";
  }
  return "?";
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

RunResult run_training(RunConfig c, const std::string& dir, bool resume) {
  c.validate();
  apply_threads(c.threads);
  const std::string latest = dir + "/latest.safetensors", best = dir + "/best.safetensors";
  WAVSPA_CHECK(!resume || fs::exists(latest), "--resume ", dir, ": no latest.safetensors there to resume from");
  WAVSPA_CHECK(resume || !fs::exists(latest), "run folder '", dir, "' already holds a run (latest.safetensors); "
               "resume it with --resume ", dir, " or choose another --out");

  TaskData data = load_task(c);
  fit_model_to_data(c, data);
  const Device device = c.device == "cuda" ? Device::cuda() : Device::cpu();
  const MatmulPrecisionGuard precision(matmul_precision_from_name(c.precision));
  TaskModel model = build_model(c.model);  // seeds the default generator with model.seed
  model.module().to(device);
  auto opt = make_optimizer(c, model.module());
  const nn::Schedule schedule = make_schedule(c);
  manual_seed(c.seed);  // dropout's stream; data order comes from the loader's own seed
  // Created only now, so that a run that cannot start leaves no empty folder behind.
  std::error_code ec;
  fs::create_directories(dir, ec);
  WAVSPA_CHECK(!ec, "cannot create the run folder '", dir, "': ", ec.message());
  write_atomic(dir + "/config.json", c.to_json() + "\n");

  RunResult r;
  int64_t step = 0, evals_without_gain = 0;
  double elapsed_before = 0, positions_before = 0;
  std::vector<MetricRow> rows;
  double window_loss = 0, window_positions = 0;
  int64_t window_correct = 0, window_scored = 0, window_steps = 0;
  if (resume) {
    nn::TrainingState s = nn::load_training_state(latest, model.module(), *opt);
    json p = json::parse(s.config_json).at("progress");
    step = p.at("step").get<int64_t>();
    r.best_val_accuracy = p.at("best_val_accuracy").get<double>();
    r.best_step = p.at("best_step").get<int64_t>();
    evals_without_gain = p.at("evals_without_gain").get<int64_t>();
    elapsed_before = p.at("elapsed_s").get<double>();
    positions_before = p.at("positions").get<double>();
    const json& w = p.at("window");
    window_loss = w.at(0).get<double>(), window_steps = (int64_t)w.at(1).get<double>();
    window_correct = (int64_t)w.at(2).get<double>(), window_scored = (int64_t)w.at(3).get<double>();
    (void)w.at(4);  // positions of the window: not restored, its clock restarts with the resumed run
    for (const MetricRow& row : read_metrics(dir + "/metrics.csv"))
      if (row.step <= step && row.split != "test") rows.push_back(row);  // drop what came after
  } else {
    NoGradGuard no_grad;
    nn::save_safetensors(dir + "/initial.safetensors", model.module().state_dict());
    r.best_val_accuracy = -1;
  }

  auto progress_json = [&](int64_t at_step, double elapsed, double positions) {
    json j;
    j["run"] = json::parse(c.to_json());
    j["progress"] = {{"step", at_step}, {"best_val_accuracy", r.best_val_accuracy}, {"best_step", r.best_step},
                     {"evals_without_gain", evals_without_gain}, {"elapsed_s", elapsed}, {"positions", positions},
                     // the unfinished logging window, so the first row after a resume averages the same steps
                     {"window", {window_loss, (double)window_steps, (double)window_correct, (double)window_scored,
                                 window_positions}}};
    return j.dump();
  };

  data::LoaderOptions lo;
  lo.batch_size = c.batch_size;
  lo.seed = c.seed;
  lo.prefetch = c.prefetch;
  data::BatchLoader loader(data.train, lo);
  const int64_t per_epoch = loader.batches_per_epoch();
  int64_t epoch = step / per_epoch;
  loader.start_epoch(epoch, step % per_epoch);

  const bool tty = isatty(fileno(stderr));
  const int64_t nan_at = env_step("WAVSPA_TRAIN_NAN_AT_STEP"), interrupt_at = env_step("WAVSPA_TRAIN_INTERRUPT_AT_STEP");
  const int64_t positions_per_row = data.train->seq_len * (data.train->is_pair() ? 2 : 1);
  std::fprintf(stderr, "train: %s on %s (%lld train / %lld val / %lld test, length %lld), %lld parameters, %s%s\n",
               model_name(c.model).c_str(), c.task.c_str(), (long long)data.train->size(), (long long)data.val->size(),
               (long long)data.test->size(), (long long)data.train->seq_len,
               (long long)model.module().num_parameters(), device.name().c_str(),
               resume ? str(", resumed at step ", step).c_str() : "");

  g_stop_signal.store(0);
  const int64_t first_step = step;
  const auto t_start = Clock::now();
  auto elapsed = [&] { return elapsed_before + std::chrono::duration<double>(Clock::now() - t_start).count(); };
  double positions = positions_before;
  auto window_start = Clock::now();
  auto last_bar = Clock::now() - std::chrono::seconds(1);
  RunStatus status = RunStatus::kFinished;
  model.module().train();

  auto save_latest = [&](int64_t at_step) {
    nn::save_training_state(latest, model.module(), *opt, progress_json(at_step, elapsed(), positions));
  };

  while (step < c.steps) {
    std::optional<data::Batch> batch = loader.next();
    if (!batch) {
      loader.start_epoch(++epoch);
      batch = loader.next();
    }
    opt->set_lr_factor(schedule(opt->step_count()));
    auto [logits, labels] = model.forward(*batch, device);
    CrossEntropyOptions ce;
    ce.label_smoothing = c.label_smoothing;
    Tensor loss = cross_entropy(logits, labels, ce);
    double loss_value = loss.item();
    if (step + 1 == nan_at) loss_value = std::numeric_limits<double>::quiet_NaN();
    if (!std::isfinite(loss_value)) {
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr,
                   "train: the loss is %g at step %lld; stopping. The last good checkpoint is %s (step %lld); "
                   "lower lr (now %.3g) or raise clip_grad_norm's strictness and resume or restart.\n",
                   loss_value, (long long)(step + 1),
                   fs::exists(latest) ? latest.c_str() : "(none yet)",
                   (long long)(fs::exists(latest) ? r.steps : 0), opt->lr());
      status = RunStatus::kDiverged;
      break;
    }
    opt->zero_grad();
    loss.backward();
    if (c.clip_grad_norm > 0) nn::clip_grad_norm(model.module().parameters(), c.clip_grad_norm);
    opt->step();
    ++step;
    auto [correct, scored] = count_correct(logits, labels);
    window_loss += loss_value, ++window_steps;
    window_correct += correct, window_scored += scored;
    window_positions += (double)(batch->size() * positions_per_row);
    positions += (double)(batch->size() * positions_per_row);
    if (step == interrupt_at) std::raise(SIGINT);

    const double now_s = elapsed();
    if (step % c.log_every == 0 || step == c.steps) {
      const double secs = std::chrono::duration<double>(Clock::now() - window_start).count();
      MetricRow row{step, epoch, "train", window_loss / (double)window_steps,
                    window_scored ? (double)window_correct / (double)window_scored : 0.0, opt->lr(),
                    secs > 0 ? window_positions / secs : 0.0, now_s};
      rows.push_back(row);
      if (!tty)
        std::fprintf(stderr, "step %lld/%lld  loss %.4f  acc %.3f  lr %.3g  %s tok/s  %s\n", (long long)step,
                     (long long)c.steps, row.loss, row.accuracy, row.lr, human(row.tokens_per_s).c_str(),
                     format_duration(now_s).c_str());
      window_loss = 0, window_positions = 0, window_correct = window_scored = window_steps = 0;
      window_start = Clock::now();
    }
    if (tty && (Clock::now() - last_bar > std::chrono::milliseconds(200) || step == c.steps)) {
      last_bar = Clock::now();
      const double rate = (now_s - elapsed_before) > 0 ? (positions - positions_before) / (now_s - elapsed_before) : 0;
      const double per_step = (now_s - elapsed_before) / (double)std::max<int64_t>(1, step - first_step);
      const int width = 24, fill = (int)((double)width * (double)step / (double)c.steps);
      std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld  loss %.4f  acc %.3f  %s tok/s  lr %.2e  ETA %s   ", fill,
                   "========================", width - fill, "", (long long)step, (long long)c.steps, loss_value,
                   scored ? (double)correct / (double)scored : 0.0, human(rate).c_str(), opt->lr(),
                   format_duration(per_step * (double)(c.steps - step)).c_str());
    }

    const bool stop_now = g_stop_signal.load() != 0;
    if (step % c.eval_every == 0 || step == c.steps) {
      EvalResult v = evaluate(model, data.val, c.batch_size, c.eval_limit, device);
      rows.push_back({step, epoch, "val", v.loss, v.accuracy, opt->lr(), 0, elapsed()});
      const bool better = v.accuracy > r.best_val_accuracy;
      if (better) {
        r.best_val_accuracy = v.accuracy, r.best_step = step, evals_without_gain = 0;
      } else {
        ++evals_without_gain;
      }
      r.steps = step;
      save_latest(step);
      if (better) fs::copy_file(latest, best + ".tmp", fs::copy_options::overwrite_existing), fs::rename(best + ".tmp", best);
      write_metrics(dir, rows);
      write_curves(dir, rows);
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "eval  step %lld  val loss %.4f  val acc %.4f%s\n", (long long)step, v.loss, v.accuracy,
                   better ? "  (best)" : "");
      if (c.early_stop > 0 && evals_without_gain >= c.early_stop) {
        std::fprintf(stderr, "train: no better validation accuracy in %lld evaluations; stopping early\n",
                     (long long)evals_without_gain);
        status = RunStatus::kEarlyStopped;
        break;
      }
    }
    if (stop_now) {
      r.steps = step;
      save_latest(step);
      write_metrics(dir, rows);
      write_curves(dir, rows);
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "train: interrupted at step %lld; saved %s. Continue with: --resume %s\n",
                   (long long)step, latest.c_str(), dir.c_str());
      status = RunStatus::kInterrupted;
      break;
    }
  }
  loader.start_epoch(0, loader.batches_per_epoch());  // stop the loader thread

  r.status = status;
  r.wall_s = elapsed();
  r.tokens_per_s = r.wall_s > 0 ? positions / r.wall_s : 0;
  r.majority_accuracy = data::majority_class_accuracy(*data.test);
  if (status == RunStatus::kDiverged) write_metrics(dir, rows), write_curves(dir, rows);
  if (status == RunStatus::kFinished || status == RunStatus::kEarlyStopped) {
    r.steps = step;
    // The test accuracy of the best checkpoint, as LRA reports it.
    nn::load_training_state(best, model.module(), *opt);
    EvalResult t = evaluate(model, data.test, c.batch_size, 0, device);
    r.test_accuracy = t.accuracy;
    rows.push_back({r.best_step, r.best_step / per_epoch, "test", t.loss, t.accuracy, 0, 0, r.wall_s});
    write_metrics(dir, rows);
    nn::load_training_state(latest, model.module(), *opt);  // the filters at the end of training
  }
  const bool filters = write_filter_plot(dir, model.module());
  json plots = json::array({dir + "/loss.svg", dir + "/accuracy.svg"});
  if (filters) plots.push_back(dir + "/filters.svg");
  json summary = {{"task", c.task},
                  {"model", model_name(c.model)},
                  {"status", status_name(status)},
                  {"steps", r.steps},
                  {"best_step", r.best_step},
                  {"best_val_accuracy", r.best_val_accuracy},
                  {"test_accuracy", r.test_accuracy >= 0 ? json(r.test_accuracy) : json(nullptr)},
                  {"majority_accuracy", r.majority_accuracy},
                  {"wall_s", std::round(r.wall_s * 10) / 10},
                  {"tokens_per_s", std::round(r.tokens_per_s)},
                  {"parameters", model.module().num_parameters()},
                  {"checkpoint", fs::exists(best) ? best : latest},
                  {"metrics", dir + "/metrics.csv"},
                  {"plots", plots}};
  r.summary_json = summary.dump();
  write_atomic(dir + "/summary.json", r.summary_json + "\n");
  return r;
}

std::string evaluate_checkpoint(const std::string& checkpoint, const std::string& data_dir, int64_t threads) {
  apply_threads(threads);
  WAVSPA_CHECK(fs::exists(checkpoint), "--eval-only: no checkpoint at '", checkpoint, "'");
  nn::Checkpoint file = nn::load_safetensors(checkpoint);
  auto it = file.metadata.find("wavspa.config");
  WAVSPA_CHECK(it != file.metadata.end(), "--eval-only: '", checkpoint,
               "' has no run config in its metadata; it was not written by tools/train");
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::parse_error& e) {
    throw Error(str("--eval-only: '", checkpoint, "': its run config is not valid JSON: ", e.what()));
  }
  WAVSPA_CHECK(j.contains("run"), "--eval-only: '", checkpoint, "' has no run config; it was not written by tools/train");
  RunConfig c = RunConfig::from_json(j.at("run").dump());
  if (!data_dir.empty()) c.data = data_dir;
  TaskData data = load_task(c);
  fit_model_to_data(c, data);
  const Device device = c.device == "cuda" ? Device::cuda() : Device::cpu();
  const MatmulPrecisionGuard precision(matmul_precision_from_name(c.precision));
  TaskModel model = build_model(c.model);
  model.module().to(device);
  auto opt = make_optimizer(c, model.module());
  nn::TrainingState s = nn::load_training_state(checkpoint, model.module(), *opt);
  EvalResult v = evaluate(model, data.val, c.batch_size, 0, device);
  EvalResult t = evaluate(model, data.test, c.batch_size, 0, device);
  json out = {{"task", c.task},
              {"model", model_name(c.model)},
              {"checkpoint", checkpoint},
              {"step", s.step},
              {"val_loss", v.loss},
              {"val_accuracy", v.accuracy},
              {"test_loss", t.loss},
              {"test_accuracy", t.accuracy},
              {"majority_accuracy", data::majority_class_accuracy(*data.test)}};
  return out.dump();
}

}  // namespace wavspa::train

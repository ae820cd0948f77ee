#include "train/logging.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "nn/checkpoint.h"
#include "ops/wavelet.h"
#include "train/plots.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

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

// The chart of one learned filter parameter (taps, channels) against its initial value.
Chart filter_chart(const std::string& title, const Tensor& now, const Tensor& then) {
  const int64_t taps = now.shape()[0], channels = now.shape()[1];
  auto a = now.to_vector<double>(), b = then.to_vector<double>();
  Chart c{title, "tap", "value", {}};
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
  return c;
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", (int)(s / 3600), (int)std::fmod(s / 60, 60));
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", (int)(s / 60), (int)std::fmod(s, 60));
  return buf;
}

// Bytes as whole MiB ("?" when unknown).
std::string mib(int64_t bytes) { return bytes < 0 ? std::string("?") : std::to_string((bytes + (1 << 19)) >> 20); }

std::string human(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string memory_summary(const std::string& device, const MemoryUsage& u) {
  return str("memory ", device, ": ", u.num_allocs, " allocations (", u.num_cache_hits, " from the cache), peak ",
             mib(u.peak_allocated), " MiB, in use ", mib(u.allocated), " MiB, held ", mib(u.reserved), " MiB");
}

void LogWindow::add(double step_loss, int64_t step_correct, int64_t step_scored, double step_positions) {
  loss += step_loss, ++steps;
  correct += step_correct, scored += step_scored;
  positions += step_positions;
}

void LogWindow::add_steps(int64_t n, double loss_sum, int64_t correct_sum, int64_t scored_sum, double positions_sum) {
  loss += loss_sum, steps += n;
  correct += correct_sum, scored += scored_sum;
  positions += positions_sum;
}

MetricRow LogWindow::row(int64_t step, int64_t epoch, double lr, double window_seconds, double elapsed_s) const {
  return {step, epoch, "train", loss / (double)steps, scored ? (double)correct / (double)scored : 0.0, lr,
          window_seconds > 0 ? positions / window_seconds : 0.0, elapsed_s};
}

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
  write_file_atomic(dir + "/metrics.csv", csv, "metrics");
  write_file_atomic(dir + "/metrics.jsonl", jsonl, "metrics");
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

bool write_filter_plot(const std::string& dir, nn::Module& model) {
  const std::string initial = dir + "/initial.safetensors";
  if (!fs::exists(initial)) return false;
  nn::StateDict start = nn::load_safetensors(initial).tensors;
  std::vector<Chart> charts;
  for (const auto& [name, param] : model.named_parameters()) {
    auto ends = [&name = name](const std::string& s) {  // (clang 14 cannot capture a binding by default)
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
    charts.push_back(filter_chart(name + (angles ? " (lattice filter)" : ""), now, then));
  }
  if (charts.empty()) return false;
  write_svg(dir + "/filters.svg", charts, 2);
  return true;
}

Console::Console() : tty_(isatty(fileno(stderr))), last_bar_(Clock::now() - std::chrono::seconds(1)) {}

void Console::train_row(const MetricRow& row, int64_t steps, Device device) const {
  if (tty_) return;
  const MemoryUsage host = allocator_for(Device::cpu()).usage();
  std::string memory = str("rss ", mib(process_rss_bytes()), "  host ", mib(host.allocated), "/", mib(host.reserved));
  if (!device.is_cpu()) {
    const MemoryUsage dev = allocator_for(device).usage();
    memory += str("  ", device, " ", mib(dev.allocated), "/", mib(dev.reserved));
  }
  std::fprintf(stderr, "step %lld/%lld  loss %.4f  acc %.3f  lr %.3g  %s tok/s  %s  mem MiB %s\n", (long long)row.step,
               (long long)steps, row.loss, row.accuracy, row.lr, human(row.tokens_per_s).c_str(),
               format_duration(row.elapsed_s).c_str(), memory.c_str());
}

void Console::bar(const BarLine& b) {
  if (!tty_ || (Clock::now() - last_bar_ <= std::chrono::milliseconds(200) && b.step != b.steps)) return;
  last_bar_ = Clock::now();
  const int width = 24, fill = (int)((double)width * (double)b.step / (double)b.steps);
  std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld  loss %.4f  acc %.3f  %s tok/s  lr %.2e  ETA %s   ", fill,
               "========================", width - fill, "", (long long)b.step, (long long)b.steps, b.loss,
               b.accuracy, human(b.tokens_per_s).c_str(), b.lr, format_duration(b.eta_s).c_str());
}

void Console::end_bar() const {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace wavspa::train

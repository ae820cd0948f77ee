// Trains a model on a Long Range Arena task, with checkpoints, metrics and plots.
//
//   build/train --task listops --data data/listops --model wavspa-ada --out runs/lo
//   build/train --task fashion-mnist --config configs/run_fmnist.json --set steps=500 --out runs/fm
//   build/train --resume runs/lo                  # after Ctrl-C: continues where it stopped
//   build/train --eval-only runs/lo/best.safetensors
//   build/train ... --dump-graph step.dot        # the first step's autograd graph (+ step.svg with Graphviz)
//   WAVSPA_PROFILE=1 WAVSPA_PROFILE_TRACE=t.json build/train ...   # per-op profile and a Chrome trace
//
// The last line on standard output is one JSON object summarising the run; progress and
// messages go to standard error. Exit status: 0 finished (or stopped early), 1 an error,
// 3 the loss became NaN or infinite, 130 interrupted by SIGINT/SIGTERM (checkpoint saved).
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "core/profiler.h"
#include "core/runtime.h"
#include "tools/cli.h"
#include "train/config.h"
#include "train/logging.h"
#include "train/trainer.h"

// OMP_WAIT_POLICY=passive unless the environment chooses (core/runtime.h says why).
WAVSPA_CPU_PASSIVE_WAIT_BY_DEFAULT();

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Renders a DOT file as SVG beside it (x.dot -> x.svg) when Graphviz's `dot` is on the PATH.
// Returns the SVG's path, or "" when there is no `dot` or it failed: the DOT file is the result,
// the picture a convenience.
std::string render_svg(const std::string& dot_path) {
  const std::string svg = std::filesystem::path(dot_path).replace_extension(".svg").string();
  std::vector<std::string> args{"dot", "-Tsvg", dot_path, "-o", svg};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, "dot", nullptr, nullptr, argv.data(), environ) != 0) return "";
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return "";
  return svg;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wavspa;
  CLI::App app{"wavspa train: train a Transformer or WavSpA model on a Long Range Arena task"};
  app.footer("Config keys for --set (model keys as model.KEY): " + join(train::RunConfig::keys()) +
             "\nExit status: 0 finished, 1 error, 3 loss not finite, 130 interrupted (checkpoint saved).");
  std::string task, model, config_file, device, precision, out, resume, eval_only, data, dump_graph;
  std::vector<std::string> sets;
  int64_t threads = -1;
  int64_t seed = -1;
  bool cuda_graphs = false;
  app.add_option("--task", task, "task: " + join(train::task_names()));
  app.add_option("--model", model, "model: " + join(train::model_preset_names()) + ", or a models JSON file");
  app.add_option("--config", config_file, "a run config JSON file (see --set for its keys)");
  app.add_option("--set", sets, "override a config key: key=value (repeatable), e.g. steps=500 model.levels=2");
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--precision", precision, "matmul precision on cuda: fp32 (default), tf32 or bf16 (mixed precision)")
      ->check(CLI::IsMember(matmul_precision_names()));
  app.add_flag("--cuda-graphs", cuda_graphs,
               "cuda: record the training step once and replay it as a CUDA graph (same results, less host work)");
  app.add_option("--threads", threads, "CPU threads (OpenMP and OpenBLAS); default: all cores")->check(wavspa::tools::at_least(1));
  app.add_option("--seed", seed, "seed of data order and dropout")->check(wavspa::tools::at_least(0));
  app.add_option("--out", out, "run folder for config, checkpoints, metrics and plots");
  app.add_option("--resume", resume, "continue the run in this folder from its latest checkpoint");
  app.add_option("--eval-only", eval_only, "evaluate this checkpoint on the validation and test splits");
  app.add_option("--data", data, "the task's data folder");
  app.add_option("--dump-graph", dump_graph,
                 "write the autograd graph of the first step's loss to this Graphviz DOT file (and an SVG beside it "
                 "where Graphviz's dot is installed)");
  if (const int rc = wavspa::tools::parse(app, argc, argv); rc >= 0) return rc;

  try {
    if (!eval_only.empty()) {
      WAVSPA_CHECK(resume.empty() && out.empty() && sets.empty() && config_file.empty() && model.empty() &&
                       dump_graph.empty(),
                   "--eval-only takes the model and data from the checkpoint; it combines only with --data and --threads");
      std::cout << train::evaluate_checkpoint(eval_only, data, threads > 0 ? threads : 0) << std::endl;
      return 0;
    }
    train::RunConfig c;
    std::string dir;
    const bool resuming = !resume.empty();
    if (resuming) {
      WAVSPA_CHECK(task.empty() && model.empty() && config_file.empty() && sets.empty() && out.empty() &&
                       data.empty() && seed < 0 && device.empty() && precision.empty(),
                   "--resume continues a run with its saved config.json; it combines only with --threads, "
                   "--cuda-graphs and --dump-graph");
      const std::string saved = resume + "/config.json";
      WAVSPA_CHECK(std::filesystem::exists(saved), "--resume ", resume, ": no config.json there; is it a run folder?");
      c = train::RunConfig::from_file(saved);
      if (cuda_graphs) c.cuda_graphs = true;  // the same results either way
      c.validate();
      dir = resume;
    } else {
      WAVSPA_CHECK(!out.empty(), "--out DIR is required (where the config, checkpoints, metrics and plots go)");
      if (!config_file.empty()) c = train::RunConfig::from_file(config_file);
      if (!task.empty()) c.task = task;
      WAVSPA_CHECK(!task.empty() || !config_file.empty(), "--task is required (", join(train::task_names()),
                   ") unless --config names one");
      if (!model.empty()) train::apply_model_preset(c, model);
      // Absolute, so that --resume and --eval-only work from any folder.
      if (!data.empty()) c.data = std::filesystem::absolute(data).lexically_normal().string();
      if (!device.empty()) c.device = device;
      if (!precision.empty()) c.precision = precision;
      if (cuda_graphs) c.cuda_graphs = true;
      if (seed >= 0) c.seed = (uint64_t)seed;
      for (const std::string& s : sets) train::apply_override(c, s);
      c.validate();
      dir = out;
    }
    if (threads > 0) c.threads = threads;
    train::install_signal_handlers();
    train::RunExtras extras;
    extras.dump_graph = dump_graph;
    train::RunResult r = train::run_training(c, dir, resuming, extras);
    if (r.test_accuracy >= 0)
      std::fprintf(stderr, "\ntest accuracy %.4f (best checkpoint, step %lld)  vs  majority class %.4f\n",
                   r.test_accuracy, (long long)r.best_step, r.majority_accuracy);
    std::fprintf(stderr, "run folder %s: best.safetensors, latest.safetensors, metrics.csv, loss.svg, accuracy.svg%s\n",
                 dir.c_str(), std::filesystem::exists(dir + "/filters.svg") ? ", filters.svg" : "");
    std::fprintf(stderr, "%s\n", train::memory_summary("cpu", r.host_memory).c_str());
    if (r.device != "cpu") std::fprintf(stderr, "%s\n", train::memory_summary(r.device, r.device_memory).c_str());
    if (!dump_graph.empty() && std::filesystem::exists(dump_graph)) {
      const std::string svg = render_svg(dump_graph);
      std::fprintf(stderr, "autograd graph of the first step: %s%s\n", dump_graph.c_str(),
                   svg.empty() ? " (no SVG: Graphviz's dot is not installed)" : (" and " + svg).c_str());
    }
    finish_env_profile();  // WAVSPA_PROFILE=1: the report, before the CUDA runtime shuts down
    std::cout << r.summary_json << std::endl;
    switch (r.status) {
      case train::RunStatus::kInterrupted: return 130;
      case train::RunStatus::kDiverged: return 3;
      default: return 0;
    }
  } catch (const wavspa::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of host memory (std::bad_alloc); a smaller batch_size, max_len or model may fit\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

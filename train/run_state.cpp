#include "train/run_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/files.h"
#include "core/random.h"
#include "nn/checkpoint.h"
#include "nn/train_state.h"

namespace wavspa::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TaskModel build_model(const models::ModelConfig& m) {
  TaskModel t;
  if (m.dual)
    t.dual = models::make_dual_encoder(m);
  else
    t.classifier = models::make_classifier(m);
  return t;
}

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

// The metadata of latest.safetensors: the run config and the state.
std::string progress_json(const RunConfig& c, const RunState& st) {
  json j;
  j["run"] = json::parse(c.to_json());
  const LogWindow& w = st.window;
  j["progress"] = {{"step", st.step}, {"best_val_accuracy", st.best_val_accuracy}, {"best_step", st.best_step},
                   {"evals_without_gain", st.evals_without_gain}, {"elapsed_s", st.elapsed_s()},
                   {"positions", st.positions},
                   // the unfinished logging window, so the first row after a resume averages the same steps
                   {"window", {w.loss, (double)w.steps, (double)w.correct, (double)w.scored, w.positions}}};
  return j.dump();
}

RunState progress_of(const nn::TrainingState& saved, const RunFolder& folder);

RunState resume_state(Setup& s, const RunFolder& folder) {
  const nn::TrainingState saved = nn::load_training_state(folder.latest, s.model.module(), *s.optimizer);
  try {
    return progress_of(saved, folder);
  } catch (const json::exception& e) {  // the metadata is not covered by the tensors' checksums
    throw Error(str(folder.latest, ": its run progress (metadata 'wavspa.config') is not readable: ", e.what()));
  }
}

RunState progress_of(const nn::TrainingState& saved, const RunFolder& folder) {
  const json p = json::parse(saved.config_json).at("progress");
  RunState st;
  st.step = st.saved_step = p.at("step").get<int64_t>();
  WAVSPA_CHECK(st.step == saved.step, folder.latest, ": its run progress says step ", st.step,
               " but its training state says step ", saved.step, ": the file is inconsistent; resume from a good copy");
  st.best_val_accuracy = p.at("best_val_accuracy").get<double>();
  st.best_step = p.at("best_step").get<int64_t>();
  st.evals_without_gain = p.at("evals_without_gain").get<int64_t>();
  st.elapsed_before = p.at("elapsed_s").get<double>();
  st.positions = p.at("positions").get<double>();
  const json& w = p.at("window");
  st.window.loss = w.at(0).get<double>(), st.window.steps = (int64_t)w.at(1).get<double>();
  st.window.correct = (int64_t)w.at(2).get<double>(), st.window.scored = (int64_t)w.at(3).get<double>();
  (void)w.at(4);  // positions of the window: not restored, its clock restarts with the resumed run
  for (const MetricRow& row : read_metrics(folder.dir + "/metrics.csv"))
    if (row.step <= st.step && row.split != "test") st.rows.push_back(row);  // drop what came after
  return st;
}

}  // namespace

std::pair<Tensor, Tensor> TaskModel::forward(const data::Batch& b, Device device) {
  Tensor logits = classifier ? classifier->forward(b.inputs.to(device))
                             : dual->forward(b.inputs.to(device), b.inputs2.to(device));
  Tensor labels = b.labels.to(device);
  if (logits.dim() == 3) {  // (B, N, C) per token
    const int64_t C = logits.shape()[2];
    return {logits.reshape({-1, C}), labels.reshape({-1})};
  }
  return {logits, labels};
}

std::string model_name(const models::ModelConfig& m) {
  std::string name = m.architecture;
  if (m.architecture == "wavspa") name += "-" + m.parametrization;
  if (m.attention != "full") name += "/" + m.attention;
  return name;
}

Setup::Setup(RunConfig c)
    : config(std::move(c)),
      device(config.device == "cuda" ? Device::cuda() : Device::cpu()),
      precision(matmul_precision_from_name(config.precision)),
      autocast(config.precision == "bf16") {
  if (config.threads > 0) set_cpu_threads((int)config.threads);
  data = load_task(config);
  fit_model_to_data(config, data);
  model = build_model(config.model);
  model.module().to(device);
  optimizer = make_optimizer(config, model.module());
}

RunFolder::RunFolder(std::string d)
    : dir(std::move(d)), latest(dir + "/latest.safetensors"), best(dir + "/best.safetensors") {}

namespace {
// `<file>.tmp.<pid>` or `<file>.tmp.<pid>.<n>`: the temporary names of write_file_atomic and
// save_safetensors.
bool is_temporary_name(const std::string& name) {
  const size_t at = name.rfind(".tmp.");
  if (at == std::string::npos || at == 0) return false;
  const std::string rest = name.substr(at + 5);  // "<pid>" or "<pid>.<n>"
  const size_t dot = rest.find('.');
  auto digits = [](const std::string& t) {
    return !t.empty() && t.find_first_not_of("0123456789") == std::string::npos;
  };
  return dot == std::string::npos ? digits(rest) : digits(rest.substr(0, dot)) && digits(rest.substr(dot + 1));
}
}  // namespace

RunFolder::~RunFolder() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void RunFolder::lock() {
  WAVSPA_CHECK(lock_fd_ < 0, "run folder '", dir, "': already locked by this process");
  std::error_code ec;
  fs::create_directories(dir, ec);
  WAVSPA_CHECK(!ec, "cannot create the run folder '", dir, "': ", ec.message());
  const std::string path = dir + "/run.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  WAVSPA_CHECK(fd >= 0, "run folder '", dir, "': cannot open its lock file '", path, "': ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[64] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    WAVSPA_CHECK(err != EWOULDBLOCK, "run folder '", dir, "' is in use by another run (",
                 n > 0 ? std::string(buf, buf + std::strcspn(buf, "\n")) : std::string("pid unknown"),
                 ", holding ", path, "); wait for it to end, or choose another --out");
    throw Error(str("run folder '", dir, "': cannot lock '", path, "': ", std::strerror(err)));
  }
  const std::string holder = str("pid ", ::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) != (ssize_t)holder.size()) {
    const int err = errno;
    ::close(fd);
    throw Error(str("run folder '", dir, "': cannot write its lock file '", path, "': ", std::strerror(err)));
  }
  lock_fd_ = fd;
  // Left by a write that was killed between creating its temporary file and renaming it.
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !is_temporary_name(name)) continue;
    if (fs::remove(entry.path(), ec))
      std::fprintf(stderr, "train: removed '%s', left by an interrupted write\n", entry.path().c_str());
  }
}

void RunFolder::check(bool resume) const {
  WAVSPA_CHECK(!resume || fs::exists(latest), "--resume ", dir, ": no latest.safetensors there to resume from");
  WAVSPA_CHECK(resume || !fs::exists(latest), "run folder '", dir, "' already holds a run (latest.safetensors); "
               "resume it with --resume ", dir, " or choose another --out");
}

RunState start_run(Setup& s, const RunFolder& folder, bool resume) {
  manual_seed(s.config.seed);  // dropout's stream; data order comes from the loader's own seed
  std::error_code ec;
  fs::create_directories(folder.dir, ec);
  WAVSPA_CHECK(!ec, "cannot create the run folder '", folder.dir, "': ", ec.message());
  write_file_atomic(folder.dir + "/config.json", s.config.to_json() + "\n", "run config");
  if (resume) return resume_state(s, folder);
  NoGradGuard no_grad;
  nn::save_safetensors(folder.dir + "/initial.safetensors", s.model.module().state_dict());
  return RunState{};
}

void save_latest(Setup& s, const RunFolder& folder, RunState& st) {
  nn::save_training_state(folder.latest, s.model.module(), *s.optimizer, progress_json(s.config, st));
  st.saved_step = st.step;
}

data::LoaderOptions train_loader_options(const RunConfig& c) {
  data::LoaderOptions o;
  o.batch_size = c.batch_size;
  o.seed = c.seed;
  o.prefetch = c.prefetch;
  return o;
}

}  // namespace wavspa::train

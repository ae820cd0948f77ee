#include "nn/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wavspa::nn {

Schedule::Schedule() : Schedule("constant(1)", [](int64_t) { return 1.0; }) {}

Schedule::Schedule(std::string description, std::function<double(int64_t)> factor)
    : description_(std::move(description)), factor_(std::move(factor)) {
  WAVSPA_CHECK(factor_ != nullptr, "Schedule '", description_, "': the factor function is empty");
}

double Schedule::factor(int64_t step) const {
  WAVSPA_CHECK(step >= 0, "Schedule ", description_, ": step must be >= 0, got ", step);
  return factor_(step);
}

Schedule operator*(const Schedule& a, const Schedule& b) {
  return Schedule(a.describe() + " * " + b.describe(),
                  [a, b](int64_t step) { return a.factor(step) * b.factor(step); });
}

Schedule product(const std::vector<Schedule>& factors) {
  if (factors.empty()) return Schedule();
  Schedule out = factors[0];
  for (size_t i = 1; i < factors.size(); ++i) out = out * factors[i];
  return out;
}

// ---- the factors ------------------------------------------------------------------------

namespace {
void check_steps(const char* who, const char* what, int64_t value, int64_t lo) {
  WAVSPA_CHECK(value >= lo, who, ": ", what, " must be >= ", lo, ", got ", value);
}
}  // namespace

Schedule constant(double value) {
  WAVSPA_CHECK(std::isfinite(value), "constant: the value must be finite, got ", value);
  return Schedule(str("constant(", value, ")"), [value](int64_t) { return value; });
}

Schedule linear_warmup(int64_t warmup_steps) {
  check_steps("linear_warmup", "warmup_steps", warmup_steps, 0);
  return Schedule(str("linear_warmup(", warmup_steps, ")"), [warmup_steps](int64_t step) {
    if (warmup_steps == 0) return 1.0;
    return std::min(1.0, (double)step / (double)warmup_steps);
  });
}

Schedule rsqrt_decay(int64_t warmup_steps) {
  check_steps("rsqrt_decay", "warmup_steps", warmup_steps, 1);
  return Schedule(str("rsqrt_decay(", warmup_steps, ")"), [warmup_steps](int64_t step) {
    return 1.0 / std::sqrt((double)std::max(step, warmup_steps));
  });
}

Schedule rsqrt_normalized_decay(int64_t warmup_steps) {
  check_steps("rsqrt_normalized_decay", "warmup_steps", warmup_steps, 1);
  return Schedule(str("rsqrt_normalized_decay(", warmup_steps, ")"),
                  [warmup_steps](int64_t step) {
                    return std::sqrt((double)warmup_steps) /
                           std::sqrt((double)std::max(step, warmup_steps));
                  });
}

Schedule decay_every(int64_t steps_per_decay, double decay_factor) {
  check_steps("decay_every", "steps_per_decay", steps_per_decay, 1);
  WAVSPA_CHECK(std::isfinite(decay_factor) && decay_factor >= 0,
               "decay_every: decay_factor must be finite and >= 0, got ", decay_factor);
  return Schedule(str("decay_every(", steps_per_decay, ", ", decay_factor, ")"),
                  [steps_per_decay, decay_factor](int64_t step) {
                    return std::pow(decay_factor, (double)(step / steps_per_decay));
                  });
}

Schedule cosine_decay(int64_t steps_per_cycle, int64_t offset) {
  check_steps("cosine_decay", "steps_per_cycle", steps_per_cycle, 1);
  check_steps("cosine_decay", "offset", offset, 0);
  return Schedule(str("cosine_decay(", steps_per_cycle, ", offset ", offset, ")"),
                  [steps_per_cycle, offset](int64_t step) {
                    double p = std::max(0.0, (double)(step - offset) / (double)steps_per_cycle);
                    return 0.5 * (1.0 + std::cos(M_PI * (p - std::floor(p))));
                  });
}

Schedule cosine(int64_t total_steps, int64_t warmup_steps, int64_t cycles, double min_factor) {
  check_steps("cosine", "warmup_steps", warmup_steps, 0);
  WAVSPA_CHECK(total_steps > warmup_steps, "cosine: total_steps (", total_steps,
               ") must be greater than warmup_steps (", warmup_steps, ")");
  check_steps("cosine", "cycles", cycles, 1);
  WAVSPA_CHECK(min_factor >= 0 && min_factor <= 1, "cosine: min_factor must be in [0, 1], got ",
               min_factor);
  std::string description = str("cosine(total ", total_steps, ", warmup ", warmup_steps);
  if (cycles != 1) description += str(", cycles ", cycles);
  if (min_factor != 0) description += str(", min ", min_factor);
  description += ")";
  return Schedule(description, [=](int64_t step) {
    if (step < warmup_steps) return (double)step / (double)warmup_steps;
    if (step >= total_steps) return min_factor;
    double p = (double)(step - warmup_steps) / (double)(total_steps - warmup_steps);
    double q = cycles * p - std::floor(cycles * p);
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + std::cos(M_PI * q));
  });
}

// ---- parsing ----------------------------------------------------------------------------

namespace {
std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n"), b = s.find_last_not_of(" \t\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

Schedule make_factor(const std::string& name, const ScheduleParams& params) {
  if (name == "constant") return constant(params.base);
  if (name == "linear_warmup") return linear_warmup(params.warmup_steps);
  if (name == "rsqrt_decay") return rsqrt_decay(params.warmup_steps);
  if (name == "rsqrt_normalized_decay") return rsqrt_normalized_decay(params.warmup_steps);
  if (name == "decay_every") return decay_every(params.steps_per_decay, params.decay_factor);
  if (name == "cosine_decay") return cosine_decay(params.steps_per_cycle, params.warmup_steps);
  throw Error(str(name.empty() ? "an empty" : "unknown", " factor '", name,
                  "'; valid factors: constant, linear_warmup, rsqrt_decay, "
                  "rsqrt_normalized_decay, decay_every, cosine_decay, joined by '*'"));
}
}  // namespace

Schedule parse_schedule(const std::string& factors, const ScheduleParams& params) {
  std::vector<Schedule> parts;
  size_t start = 0;
  while (true) {
    size_t star = factors.find('*', start);
    std::string name = trim(factors.substr(start, star == std::string::npos ? std::string::npos
                                                                             : star - start));
    try {
      parts.push_back(make_factor(name, params));
    } catch (const Error& e) {
      throw Error(str("parse_schedule('", factors, "'): ", e.what()));
    }
    if (star == std::string::npos) break;
    start = star + 1;
  }
  return product(parts);
}

}  // namespace wavspa::nn

// Learning-rate schedules: functions of the step count, built from small factors and
// multiplied together, as in Tensor2Tensor and the Long Range Arena (LRA) code.
//
//   nn::Schedule lr = nn::constant(0.05) * nn::linear_warmup(8000) * nn::rsqrt_decay(8000);
//   lr.factor(0);      // 0: LRA's first step (step 0) has lr 0
//   lr.factor(4000);   // 0.05 * 0.5 / sqrt(8000)
//   lr.describe();     // "constant(0.05) * linear_warmup(8000) * rsqrt_decay(8000)"
//   nn::Schedule same = nn::parse_schedule("constant * linear_warmup * rsqrt_decay",
//                                          {.base = 0.05, .warmup_steps = 8000});
//   opt.set_lr(lr.factor(opt.step_count()));   // before each opt.step()
//
// A Schedule is a value: a pure function of the step plus a description for logs. Holding
// no position of its own, it resumes exactly from a checkpoint: the optimizer's
// step_count() is the position. Steps count from 0 (the first update is step 0).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wavspa::nn {

class Schedule {
 public:
  Schedule();  // constant(1)
  Schedule(std::string description, std::function<double(int64_t step)> factor);

  double factor(int64_t step) const;  // step >= 0
  double operator()(int64_t step) const { return factor(step); }
  const std::string& describe() const { return description_; }

 private:
  std::string description_;
  std::function<double(int64_t)> factor_;
};

// The product of the factors at every step.
Schedule operator*(const Schedule& a, const Schedule& b);
Schedule product(const std::vector<Schedule>& factors);  // constant(1) when empty

// ---- the factors (step = s) -------------------------------------------------------------

// value, at every step.
Schedule constant(double value);
// min(1, s / warmup_steps): 0 at step 0, 1 from warmup_steps on. warmup_steps = 0 gives 1.
Schedule linear_warmup(int64_t warmup_steps);
// 1 / sqrt(max(s, warmup_steps)): flat during warmup, then inverse square root (the
// Transformer paper's decay). warmup_steps >= 1, or step 0 would give infinity.
Schedule rsqrt_decay(int64_t warmup_steps);
// sqrt(warmup_steps) / sqrt(max(s, warmup_steps)): rsqrt_decay scaled to be 1 in warmup.
Schedule rsqrt_normalized_decay(int64_t warmup_steps);
// decay_factor ^ floor(s / steps_per_decay).
Schedule decay_every(int64_t steps_per_decay, double decay_factor);
// LRA's cyclic cosine: p = max(0, (s - offset) / steps_per_cycle),
//   factor = 0.5 * (1 + cos(pi * (p - floor(p)))),
// so 1 until `offset`, then down to 0 over each cycle of steps_per_cycle steps, restarting
// at 1 forever (hard restarts, no end). Multiply by linear_warmup(offset) for a warmup.
Schedule cosine_decay(int64_t steps_per_cycle, int64_t offset = 0);
// Cosine with linear warmup and `cycles` hard restarts, ending at total_steps
// (HuggingFace's cosine_with_hard_restarts_schedule_with_warmup, plus a floor):
//   s < warmup_steps:  s / warmup_steps
//   s >= total_steps:  min_factor
//   otherwise, with p = (s - warmup_steps) / (total_steps - warmup_steps) in [0, 1),
//                      q = cycles * p - floor(cycles * p)   (position in the current cycle):
//                      min_factor + (1 - min_factor) * 0.5 * (1 + cos(pi * q))
// Each cycle takes (total_steps - warmup_steps) / cycles steps and goes from 1 towards
// min_factor. Needs 0 <= warmup_steps < total_steps, cycles >= 1, 0 <= min_factor <= 1.
Schedule cosine(int64_t total_steps, int64_t warmup_steps = 0, int64_t cycles = 1,
                double min_factor = 0.0);

// ---- parsing LRA-style configs ----------------------------------------------------------

// The parameters of LRA's create_learning_rate_scheduler, with its defaults.
struct ScheduleParams {
  double base = 0.5;                 // constant
  int64_t warmup_steps = 1000;       // linear_warmup, rsqrt_decay, rsqrt_normalized_decay,
                                     // and the offset of cosine_decay
  double decay_factor = 0.5;         // decay_every
  int64_t steps_per_decay = 20000;   // decay_every
  int64_t steps_per_cycle = 100000;  // cosine_decay
};

// "constant * linear_warmup * rsqrt_decay" -> the product of those factors, each built from
// `params`. Factor names: constant, linear_warmup, rsqrt_decay, rsqrt_normalized_decay,
// decay_every, cosine_decay; spaces around '*' are ignored. An unknown or empty name is an
// error that lists the valid ones.
Schedule parse_schedule(const std::string& factors, const ScheduleParams& params = {});

}  // namespace wavspa::nn

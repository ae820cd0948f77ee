// Grad mode: while off (inside a NoGradGuard), ops record nothing. Thread-local.
//
//   {
//     wavspa::NoGradGuard no_grad;
//     w.add_(w.grad(), -lr);   // an update the graph must not see
//   }
#pragma once

namespace wavspa {

namespace autograd {
bool grad_enabled();
void set_grad_enabled(bool on);

// Anomaly detection, for finding where a NaN comes from. While it is on, backward checks the
// gradient it is given and every gradient a node returns, and throws a wavspa::Error naming
// the first node (its backward, e.g. "SqrtBackward", and the input) whose gradient holds a NaN
// or an Inf. Process-wide; off unless the environment sets WAVSPA_DETECT_ANOMALY=1 (or a
// DetectAnomalyGuard turns it on). It costs a float64 sum and a device sync per gradient.
bool anomaly_enabled();
void set_anomaly_enabled(bool on);
}  // namespace autograd

// Sets grad mode for a scope and restores the previous mode on exit (PyTorch's AutoGradMode).
class GradModeGuard {
 public:
  explicit GradModeGuard(bool on) : previous_(autograd::grad_enabled()) {
    autograd::set_grad_enabled(on);
  }
  ~GradModeGuard() { autograd::set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// Turns anomaly detection on (or off) for a scope and restores the previous setting on exit.
//   { wavspa::DetectAnomalyGuard detect; loss.backward(); }   // names the op that made a NaN
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool on = true) : previous_(autograd::anomaly_enabled()) {
    autograd::set_anomaly_enabled(on);
  }
  ~DetectAnomalyGuard() { autograd::set_anomaly_enabled(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

// The opposite, to re-enable recording inside a no-grad region.
class EnableGradGuard : public GradModeGuard {
 public:
  EnableGradGuard() : GradModeGuard(true) {}
};

}  // namespace wavspa

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

// The opposite, to re-enable recording inside a no-grad region.
class EnableGradGuard : public GradModeGuard {
 public:
  EnableGradGuard() : GradModeGuard(true) {}
};

}  // namespace wavspa

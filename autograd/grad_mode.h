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

class NoGradGuard {
 public:
  NoGradGuard() : previous_(autograd::grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// The opposite, to re-enable recording inside a no-grad region.
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(autograd::grad_enabled()) { autograd::set_grad_enabled(true); }
  ~EnableGradGuard() { autograd::set_grad_enabled(previous_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace wavspa

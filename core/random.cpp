#include "core/random.h"

#include "core/error.h"

namespace wavspa {

namespace {
// The generator a CUDA graph capture of this thread records with (null when none is active).
thread_local const Generator* t_capturing = nullptr;
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  WAVSPA_CHECK(!capturing(), "Generator::manual_seed: the generator is recording a CUDA graph capture; "
               "seed it before the capture");
  seed_ = seed;
  offset_ = 0;
}

void Generator::set_offset(uint64_t offset) {
  WAVSPA_CHECK(!capturing(), "Generator::set_offset: the generator is recording a CUDA graph capture");
  offset_ = offset;
}

PhiloxState Generator::reserve(uint64_t n) {
  WAVSPA_CHECK(t_capturing == nullptr || t_capturing == this,
               "random numbers were drawn from a generator other than the one the CUDA graph capture "
               "records with; its draws would repeat at every replay. Pass that generator to "
               "Graph::capture (ops/graph.h) or draw it outside the capture");
  PhiloxState s{seed_, offset_, nullptr};
  if (capture_base_) {
    s.offset = offset_ - capture_start_;
    s.offset_base = capture_base_;
  }
  offset_ += n;
  return s;
}

void Generator::begin_capture(const uint64_t* device_base) {
  WAVSPA_CHECK(device_base != nullptr, "Generator::begin_capture: no device word for the offsets");
  WAVSPA_CHECK(t_capturing == nullptr, "Generator::begin_capture: this thread is already recording a capture");
  capture_base_ = device_base;
  capture_start_ = offset_;
  t_capturing = this;
}

uint64_t Generator::end_capture() {
  WAVSPA_CHECK(capturing(), "Generator::end_capture: no capture was begun");
  const uint64_t used = offset_ - capture_start_;
  offset_ = capture_start_;
  capture_base_ = nullptr;
  t_capturing = nullptr;
  return used;
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace wavspa

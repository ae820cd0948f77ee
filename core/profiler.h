// The op profiler: calls, time, bytes and FLOPs per op, forward and backward, and a Chrome
// trace of everything it saw, nested as it ran.
//
//   {
//     wavspa::Profiler prof;                       // records from here to the end of the scope
//     Tensor loss = cross_entropy(model->forward(x), y);
//     loss.backward();
//     prof.report(std::cout);                       // one line per op: calls, ms, GB, GFLOP
//     prof.write_chrome_trace("step.json");         // chrome://tracing or ui.perfetto.dev
//   }
//
// WAVSPA_PROFILE=1 in the environment profiles the whole process instead: the report goes to
// standard error when the program ends (or at finish_env_profile()), and the trace to the
// file WAVSPA_PROFILE_TRACE names, if it names one.
//
// What is recorded is a tree of scopes per thread:
//   - ops (`ProfileScope scope("matmul", a)` at the top of an op in ops/), with the bytes
//     they read and wrote and their FLOPs where the op can count them;
//   - backward nodes ("MatmulBackward"), which the autograd engine opens around each node
//     it runs, inside one "backward" scope per backward() call; ops that a node runs are
//     its children and count as backward ops;
//   - ranges of your own (`ProfileScope range("encoder.block0", ProfileKind::Range)`), which
//     nest what runs inside them (tools/train marks each step's forward, backward and update).
// Time is the host's steady clock. An op on a device that registered a DeviceTimer (CUDA)
// is also timed on the device, between two marks queued in its stream around the op, and
// its statistics use that device time; the trace shows it on a track of its own.
// WAVSPA_PROFILE_DEVICE=0 leaves the marks out: every op is timed on the host alone, which
// is what to read when the host bounds a step (each op's cost of launching its kernels).
//
// Cost while nothing records: a ProfileScope is one relaxed load of a global flag and a branch
// that is not taken; its later tests (`if (scope)`, the destructor) read its own local, which
// stays -1. Nothing else (names, devices, byte counts) is looked at unless it records.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"

namespace wavspa {

class Tensor;

namespace profiler_detail {
// True while a Profiler records; the one flag every scope tests.
inline std::atomic<bool> g_recording{false};
}  // namespace profiler_detail

inline bool profiling() { return profiler_detail::g_recording.load(std::memory_order_relaxed); }

enum class ProfileKind : uint8_t {
  Op,            // an op: forward, or run by a backward node
  BackwardNode,  // one autograd node's backward
  BackwardPass,  // one backward() call, around its nodes
  Range,         // a region named by the caller (a step, a module's forward, ...)
};
const char* profile_kind_name(ProfileKind k);  // "op", "backward_node", "backward_pass", "range"

// One scope of the tree. Open it first thing in the region it measures; it closes when it
// goes out of scope. Give it a tensor the op computes on, so that a device op is also timed
// on its device.
class ProfileScope {
 public:
  explicit ProfileScope(const char* name, ProfileKind kind = ProfileKind::Op) {
    if (profiling()) [[unlikely]] open(name, kind, nullptr);
  }
  ProfileScope(const char* name, const Tensor& on, ProfileKind kind = ProfileKind::Op) {
    if (profiling()) [[unlikely]] open(name, kind, &on);
  }
  ProfileScope(const std::string& name, const Tensor& on, ProfileKind kind) {
    if (profiling()) [[unlikely]] open(name.c_str(), kind, &on);
  }
  ~ProfileScope() {
    if (slot_ >= 0) [[unlikely]] close();
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

  // True when this scope records; compute the figures below only then:
  //   if (scope) scope.set_io(bytes_of(a) + bytes_of(b), bytes_of(out), flops);
  explicit operator bool() const { return slot_ >= 0; }
  // Bytes the op read and wrote, and its floating-point operations (a multiply-add is two);
  // a negative value means "not known". A scope left without them reports the sums of its
  // children's, so a backward node or a range adds up the ops inside it.
  void set_io(double bytes_read, double bytes_written, double flops = -1);

 private:
  void open(const char* name, ProfileKind kind, const Tensor* on);
  void close();
  int slot_ = -1;  // this scope's place in its thread's stack of open scopes; -1: not recording
};

// The bytes of a tensor's elements (0 for an undefined tensor), for set_io.
double bytes_of(const Tensor& t);

// What a Profiler gathered for one (kind, phase, name).
struct ProfileStat {
  std::string name;
  ProfileKind kind = ProfileKind::Op;
  bool backward = false;       // ran inside a backward() call
  int64_t calls = 0;
  double total_us = 0;         // device time where the device was timed, host time otherwise
  double host_us = 0;          // host time, always
  bool device_timed = false;   // total_us is device time
  double bytes_read = 0, bytes_written = 0, flops = 0;
  bool bytes_known = false, flops_known = false;  // some call reported them
  // The report's section: "forward op", "backward node", "backward op", "backward pass" or "range".
  const char* section() const;
};

class ProfilerSession;

// Records every scope that opens and closes on any thread between its construction and
// stop() (or its destruction). A Profiler made while another records takes over until it
// stops; the outer one sees nothing of that stretch.
class Profiler {
 public:
  struct Options {
    // The trace keeps at most this many events (the statistics keep counting after it).
    int64_t max_trace_events = 1 << 20;
  };
  Profiler();
  explicit Profiler(Options options);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Ends recording (waiting for device times still in flight); later scopes go elsewhere.
  void stop();
  // Per (kind, phase, name), sorted: forward ops, backward nodes, backward ops, ranges; the
  // longest first in each. Stops recording first.
  std::vector<ProfileStat> stats();
  // The table of stats() with the totals of forward and backward ops.
  void report(std::ostream& os);
  // {"traceEvents": [...]} with one "X" event per scope: name, cat (its kind), ph, ts and dur
  // in microseconds from the start, pid, tid, and args (phase, device, bytes, flops, and
  // device_us where the device was timed). Device-timed scopes appear again on a track of
  // their own per device. Throws a wavspa::Error if the file cannot be written.
  void write_chrome_trace(const std::string& path);
  std::string chrome_trace_json();

 private:
  std::unique_ptr<ProfilerSession> session_;
};

// WAVSPA_PROFILE=1: prints the process profiler's report to standard error and writes its
// trace to WAVSPA_PROFILE_TRACE (if set) now, and stops it. A program that runs on CUDA calls
// it before returning from main (tools/train does), because the device times may be
// unreadable once the CUDA runtime has shut down at exit. Nothing happens without the
// variable, or the second time.
void finish_env_profile();

// Device time for the profiler, from a backend whose kernels run asynchronously: marks queued
// in its stream. backends/cuda registers one (CUDA events) for DeviceType::CUDA.
class DeviceTimer {
 public:
  virtual ~DeviceTimer() = default;
  // A mark queued in the device's stream now; -1 when none can be taken (while a CUDA graph
  // records, a mark would become part of the graph).
  virtual int64_t mark() = 0;
  virtual bool reached(int64_t mark) = 0;  // the device has passed the mark; never waits
  // Microseconds from one mark to a later one; waits for the device to reach `to`.
  virtual double elapsed_us(int64_t from, int64_t to) = 0;
  virtual void release(int64_t mark) = 0;  // the mark may be handed out again
};
void register_device_timer(DeviceType type, DeviceTimer* timer);

}  // namespace wavspa

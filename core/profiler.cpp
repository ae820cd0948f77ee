// The profiler's recording, statistics, report and trace (core/profiler.h).
//
// Each thread keeps a stack of its open scopes. A scope that closes hands one finished event
// to the session that was recording when it opened, if that session still records, and adds
// its bytes and FLOPs to its parent's running sums. An event timed on a device waits in the
// session's queue until the device has passed its end mark; the queue is drained without
// waiting whenever an event arrives, and with waiting when the session stops.
#include "core/profiler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/files.h"
#include "core/tensor.h"

namespace wavspa {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

DeviceTimer*& timer_slot(DeviceType type) {
  static DeviceTimer* timers[2] = {nullptr, nullptr};
  return timers[static_cast<int>(type)];
}

// WAVSPA_PROFILE_DEVICE=0: no device marks, every op timed on the host's clock only. For a
// step the host bounds (launch overhead), where the marks' own cost and their waits would
// blur what each op costs the host.
bool device_timing() {
  static const bool on = [] {
    const char* v = std::getenv("WAVSPA_PROFILE_DEVICE");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}

// A finished scope.
struct Event {
  std::string name;
  ProfileKind kind = ProfileKind::Op;
  bool backward = false;
  int tid = 0;
  int64_t start_ns = 0, end_ns = 0;
  double bytes_read = -1, bytes_written = -1, flops = -1;
  Device device;
  DeviceTimer* timer = nullptr;   // set when the scope has device marks
  int64_t mark_begin = -1, mark_end = -1;
  double device_start_us = -1;    // from the session's reference mark on that device
  double device_us = -1;
};

// A scope still open, in its thread's stack.
struct OpenScope {
  Event event;
  uint64_t session_id = 0;
  // The sums of the children's figures, for a scope that sets none of its own.
  double child_read = 0, child_written = 0, child_flops = 0;
  bool child_bytes = false, child_flops_known = false;
};

thread_local std::vector<OpenScope> t_open;

int thread_number() {
  static std::atomic<int> next{1};
  thread_local const int mine = next.fetch_add(1);
  return mine;
}

// The order of the report's sections.
int section_rank(const ProfileStat& s) {
  switch (s.kind) {
    case ProfileKind::Op: return s.backward ? 2 : 0;
    case ProfileKind::BackwardNode: return 1;
    case ProfileKind::BackwardPass: return 3;
    case ProfileKind::Range: return 4;
  }
  return 5;
}

}  // namespace

// ---- a session ----------------------------------------------------------------------------

class ProfilerSession {
 public:
  ProfilerSession(uint64_t id, Profiler::Options options) : id_(id), options_(options), start_ns_(now_ns()) {}

  uint64_t id() const { return id_; }

  // The session's first mark on `timer`'s device, against which device events are placed on
  // the trace's device track; taken when the first op on that device opens.
  void ensure_reference(DeviceTimer* timer) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (references_.count(timer)) return;
    const int64_t mark = timer->mark();
    if (mark >= 0) references_[timer] = {mark, now_ns()};
  }

  void add(Event e) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (e.timer != nullptr) {
      pending_.push_back(std::move(e));
      // A bounded queue: past this many, wait for the oldest rather than hold marks forever.
      drain_locked(pending_.size() > kMaxPending);
    } else {
      finish_locked(std::move(e));
    }
  }

  // Waits for every device time still in flight and gives the marks back.
  void settle() {
    std::lock_guard<std::mutex> lock(mutex_);
    drain_locked(true);
    for (auto& [timer, ref] : references_) timer->release(ref.mark);
    references_.clear();
  }

  std::vector<ProfileStat> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<ProfileStat> out;
    for (auto& [key, s] : stats_) out.push_back(s);
    std::sort(out.begin(), out.end(), [](const ProfileStat& a, const ProfileStat& b) {
      return std::make_tuple(section_rank(a), -a.total_us, a.name) <
             std::make_tuple(section_rank(b), -b.total_us, b.name);
    });
    return out;
  }

  std::string trace_json() {
    using nlohmann::json;
    std::lock_guard<std::mutex> lock(mutex_);
    json events = json::array();
    std::map<int, std::string> tracks;  // tid -> its name
    for (const Event& e : trace_) {
      json args = {{"phase", e.backward ? "backward" : "forward"}, {"device", e.device.name()}};
      if (e.bytes_read >= 0) args["bytes_read"] = e.bytes_read, args["bytes_written"] = e.bytes_written;
      if (e.flops >= 0) args["flops"] = e.flops;
      if (e.device_us >= 0) args["device_us"] = e.device_us;
      json x = {{"name", e.name}, {"cat", profile_kind_name(e.kind)}, {"ph", "X"}, {"pid", 1}, {"tid", e.tid},
                {"ts", us_since_start(e.start_ns)}, {"dur", (double)(e.end_ns - e.start_ns) / 1000.0}, {"args", args}};
      events.push_back(x);
      tracks.emplace(e.tid, "host thread " + std::to_string(e.tid));
      if (e.device_start_us >= 0) {
        // The same scope as the device ran it, on the device's own track.
        const int tid = 1000 + e.device.index;
        const double ref_us = us_since_start(references_at_.at(e.timer));
        x["tid"] = tid;
        x["ts"] = ref_us + e.device_start_us;
        x["dur"] = e.device_us;
        events.push_back(x);
        tracks.emplace(tid, e.device.name() + " stream");
      }
    }
    for (auto& [tid, name] : tracks)
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", tid}, {"args", {{"name", name}}}});
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "wavspa"}}}});
    json trace = {{"traceEvents", events}, {"displayTimeUnit", "ms"},
                  {"otherData", {{"events_left_out", dropped_}, {"max_trace_events", options_.max_trace_events}}}};
    return trace.dump();
  }

  double recorded_ms() const { return (double)(stop_ns_ - start_ns_) / 1e6; }
  void mark_stopped() { stop_ns_ = now_ns(); }

 private:
  static constexpr size_t kMaxPending = 1 << 16;

  struct Reference {
    int64_t mark = -1;
    int64_t host_ns = 0;
  };

  double us_since_start(int64_t ns) const { return (double)(ns - start_ns_) / 1000.0; }

  void drain_locked(bool wait) {
    while (!pending_.empty()) {
      Event& e = pending_.front();
      if (!wait && !e.timer->reached(e.mark_end)) break;
      e.device_us = e.timer->elapsed_us(e.mark_begin, e.mark_end);
      auto ref = references_.find(e.timer);
      if (ref != references_.end()) {
        e.device_start_us = e.timer->elapsed_us(ref->second.mark, e.mark_begin);
        references_at_[e.timer] = ref->second.host_ns;
      }
      e.timer->release(e.mark_begin);
      e.timer->release(e.mark_end);
      finish_locked(std::move(e));
      pending_.pop_front();
    }
  }

  void finish_locked(Event e) {
    ProfileStat& s = stats_[std::make_tuple(e.kind, e.backward, e.name)];
    if (s.calls == 0) s.name = e.name, s.kind = e.kind, s.backward = e.backward;
    ++s.calls;
    const double host_us = (double)(e.end_ns - e.start_ns) / 1000.0;
    s.host_us += host_us;
    s.total_us += e.device_us >= 0 ? e.device_us : host_us;
    s.device_timed = s.device_timed || e.device_us >= 0;
    if (e.bytes_read >= 0) s.bytes_read += e.bytes_read, s.bytes_written += e.bytes_written, s.bytes_known = true;
    if (e.flops >= 0) s.flops += e.flops, s.flops_known = true;
    if ((int64_t)trace_.size() < options_.max_trace_events) trace_.push_back(std::move(e));
    else ++dropped_;
  }

  const uint64_t id_;
  const Profiler::Options options_;
  const int64_t start_ns_;
  int64_t stop_ns_ = 0;
  std::mutex mutex_;
  std::map<std::tuple<ProfileKind, bool, std::string>, ProfileStat> stats_;
  std::vector<Event> trace_;
  int64_t dropped_ = 0;
  std::deque<Event> pending_;
  std::map<DeviceTimer*, Reference> references_;
  std::map<DeviceTimer*, int64_t> references_at_;  // host time of each reference, kept after settle()
};

namespace {

// The sessions that have started and not stopped; the last one records. The mutex also
// guards handing an event to a session, so a session never goes away during add().
struct Sessions {
  std::mutex mutex;
  std::vector<ProfilerSession*> stack;
  uint64_t next_id = 1;
};

Sessions& sessions() {
  static Sessions* s = new Sessions;  // never destroyed: scopes may close during exit
  return *s;
}

ProfilerSession* recording_session_locked() {
  Sessions& all = sessions();
  return all.stack.empty() ? nullptr : all.stack.back();
}

void release_marks(const Event& e) {
  if (e.timer == nullptr) return;
  if (e.mark_begin >= 0) e.timer->release(e.mark_begin);
  if (e.mark_end >= 0) e.timer->release(e.mark_end);
}

}  // namespace

// ---- scopes -------------------------------------------------------------------------------

const char* profile_kind_name(ProfileKind k) {
  switch (k) {
    case ProfileKind::Op: return "op";
    case ProfileKind::BackwardNode: return "backward_node";
    case ProfileKind::BackwardPass: return "backward_pass";
    case ProfileKind::Range: return "range";
  }
  return "?";
}

const char* ProfileStat::section() const {
  switch (section_rank(*this)) {
    case 0: return "forward op";
    case 1: return "backward node";
    case 2: return "backward op";
    case 3: return "backward pass";
    default: return "range";
  }
}

double bytes_of(const Tensor& t) { return t.defined() ? (double)t.numel() * (double)t.element_size() : 0.0; }

void ProfileScope::open(const char* name, ProfileKind kind, const Tensor* on) {
  // Held to the end: another thread's Profiler cannot stop and go away while we use it.
  std::lock_guard<std::mutex> lock(sessions().mutex);
  ProfilerSession* session = recording_session_locked();
  if (session == nullptr) return;  // stopped between the flag's test and here
  OpenScope o;
  o.session_id = session->id();
  Event& e = o.event;
  e.name = name;
  e.kind = kind;
  e.backward = kind == ProfileKind::BackwardNode || kind == ProfileKind::BackwardPass ||
               (!t_open.empty() && t_open.back().event.backward);
  e.tid = thread_number();
  if (on != nullptr && on->defined()) {
    e.device = on->device();
    // none for the CPU, unless a test registers one
    DeviceTimer* timer = device_timing() ? timer_slot(e.device.type) : nullptr;
    if (timer != nullptr) {
      session->ensure_reference(timer);
      e.mark_begin = timer->mark();
      if (e.mark_begin >= 0) e.timer = timer;
    }
  }
  e.start_ns = now_ns();
  slot_ = (int)t_open.size();
  t_open.push_back(std::move(o));
}

void ProfileScope::set_io(double bytes_read, double bytes_written, double flops) {
  Event& e = t_open[slot_].event;
  e.bytes_read = bytes_read;
  e.bytes_written = bytes_written;
  e.flops = flops;
}

void ProfileScope::close() {
  OpenScope o = std::move(t_open[slot_]);
  t_open.resize(slot_);
  slot_ = -1;
  Event& e = o.event;
  e.end_ns = now_ns();
  if (e.timer != nullptr) e.mark_end = e.timer->mark();
  if (e.timer != nullptr && e.mark_end < 0) {  // a capture began inside the scope: host time only
    release_marks(e);
    e.timer = nullptr;
  }
  if (e.bytes_read < 0 && o.child_bytes) e.bytes_read = o.child_read, e.bytes_written = o.child_written;
  if (e.flops < 0 && o.child_flops_known) e.flops = o.child_flops;
  if (!t_open.empty()) {
    OpenScope& parent = t_open.back();
    if (e.bytes_read >= 0) {
      parent.child_read += e.bytes_read, parent.child_written += e.bytes_written;
      parent.child_bytes = true;
    }
    if (e.flops >= 0) parent.child_flops += e.flops, parent.child_flops_known = true;
  }
  std::lock_guard<std::mutex> lock(sessions().mutex);
  ProfilerSession* session = recording_session_locked();
  if (session != nullptr && session->id() == o.session_id) {
    session->add(std::move(e));
  } else {
    release_marks(e);  // its session stopped while it was open
  }
}

// ---- Profiler -----------------------------------------------------------------------------

Profiler::Profiler() : Profiler(Options{}) {}

Profiler::Profiler(Options options) {
  Sessions& all = sessions();
  std::lock_guard<std::mutex> lock(all.mutex);
  session_ = std::make_unique<ProfilerSession>(all.next_id++, options);
  all.stack.push_back(session_.get());
  profiler_detail::g_recording.store(true, std::memory_order_relaxed);
}

Profiler::~Profiler() {
  try {
    stop();
  } catch (...) {
    // A device error while settling: the statistics are lost, the program goes on.
  }
}

void Profiler::stop() {
  Sessions& all = sessions();
  {
    std::lock_guard<std::mutex> lock(all.mutex);
    auto it = std::find(all.stack.begin(), all.stack.end(), session_.get());
    if (it == all.stack.end()) return;  // stopped already
    all.stack.erase(it);
    profiler_detail::g_recording.store(!all.stack.empty(), std::memory_order_relaxed);
  }
  session_->mark_stopped();
  session_->settle();
}

std::vector<ProfileStat> Profiler::stats() {
  stop();
  return session_->stats();
}

void Profiler::report(std::ostream& os) {
  const std::vector<ProfileStat> all = stats();
  bool device = false;
  for (const ProfileStat& s : all) device = device || s.device_timed;
  std::ostringstream out;
  out << "wavspa profile: " << std::fixed << std::setprecision(3) << session_->recorded_ms() << " ms recorded"
      << (device ? "; ops on a GPU are timed on it (cudaEvent), their host time is in the trace" : "") << "\n";
  out << std::left << std::setw(15) << "section" << std::setw(30) << "name" << std::right << std::setw(8)
      << "calls" << std::setw(12) << "total ms" << std::setw(11) << "mean us" << std::setw(11) << "MB read"
      << std::setw(11) << "MB written" << std::setw(11) << "MFLOP" << std::setw(10) << "GFLOP/s" << "\n";
  for (const ProfileStat& s : all) {
    std::string name = s.name.size() > 29 ? s.name.substr(0, 28) + "~" : s.name;
    out << std::left << std::setw(15) << s.section() << std::setw(30) << name << std::right << std::setw(8)
        << s.calls << std::setprecision(3) << std::setw(12) << s.total_us / 1000.0 << std::setprecision(1)
        << std::setw(11) << s.total_us / (double)s.calls;
    if (s.bytes_known) {
      out << std::setprecision(3) << std::setw(11) << s.bytes_read / 1e6 << std::setw(11) << s.bytes_written / 1e6;
    } else {
      out << std::setw(11) << "-" << std::setw(11) << "-";
    }
    if (s.flops_known) {
      out << std::setprecision(2) << std::setw(11) << s.flops / 1e6 << std::setprecision(1) << std::setw(10)
          << (s.total_us > 0 ? s.flops / (s.total_us * 1e3) : 0.0);
    } else {
      out << std::setw(11) << "-" << std::setw(10) << "-";
    }
    out << "\n";
  }
  os << out.str();
}

std::string Profiler::chrome_trace_json() {
  stop();
  return session_->trace_json();
}

void Profiler::write_chrome_trace(const std::string& path) {
  write_file_atomic(path, chrome_trace_json(), "profiler trace");
}

void register_device_timer(DeviceType type, DeviceTimer* timer) { timer_slot(type) = timer; }

// ---- WAVSPA_PROFILE=1 ---------------------------------------------------------------------

namespace {

std::unique_ptr<Profiler>& env_profiler() {
  static auto* p = new std::unique_ptr<Profiler>;  // never destroyed; finish_env_profile empties it
  return *p;
}

[[maybe_unused]] const bool g_env_profile_started = [] {
  const char* v = std::getenv("WAVSPA_PROFILE");
  if (v == nullptr || std::string(v) != "1") return false;
  env_profiler() = std::make_unique<Profiler>();
  std::atexit(finish_env_profile);
  return true;
}();

}  // namespace

void finish_env_profile() {
  std::unique_ptr<Profiler> prof = std::move(env_profiler());
  if (!prof) return;
  try {
    prof->report(std::cerr);
    if (const char* path = std::getenv("WAVSPA_PROFILE_TRACE"); path != nullptr && *path != '\0') {
      prof->write_chrome_trace(path);
      std::cerr << "wavspa profile: trace written to " << path << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "wavspa profile: " << e.what() << "\n";
  }
}

}  // namespace wavspa

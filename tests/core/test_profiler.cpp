// core/profiler.h: statistics per op, the Chrome trace read back (nesting, names, counts),
// FLOP and byte counts, and that nothing is recorded while no Profiler runs.
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;
using nlohmann::json;

namespace {

// One "X" event of a trace, in whole nanoseconds (the trace has microseconds with three
// decimals, so rounding gives back the profiler's own integers).
struct Span {
  std::string name, cat, phase;
  int64_t tid = 0, begin = 0, end = 0;
  json args;
};

std::vector<Span> spans_of(const json& trace) {
  std::vector<Span> out;
  for (const json& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    Span s;
    s.name = e.at("name");
    s.cat = e.at("cat");
    s.tid = e.at("tid");
    s.args = e.at("args");
    s.phase = s.args.at("phase");
    s.begin = std::llround(e.at("ts").get<double>() * 1000);
    s.end = s.begin + std::llround(e.at("dur").get<double>() * 1000);
    out.push_back(s);
  }
  return out;
}

// The innermost span of the same thread that holds `s`, or null: the tree the trace viewer draws.
const Span* parent_of(const Span& s, const std::vector<Span>& all) {
  const Span* best = nullptr;
  for (const Span& p : all) {
    if (&p == &s || p.tid != s.tid || p.begin > s.begin || p.end < s.end) continue;
    // Of two equal spans the later is the parent: a scope's event is written when it closes.
    if (p.begin == s.begin && p.end == s.end && &p < &s) continue;
    if (!best || p.end - p.begin < best->end - best->begin) best = &p;
  }
  return best;
}

// A two-layer MLP step, its forward inside a range as a module's forward would be.
void mlp_step(const Tensor& x, const Tensor& y, const std::vector<Tensor>& p) {
  Tensor logits;
  {
    ProfileScope range("mlp.forward", ProfileKind::Range);
    logits = linear(tanh(linear(x, p[0], p[1])), p[2], p[3]);
  }
  Tensor loss = cross_entropy(logits, y);
  loss.backward();
}

}  // namespace

TEST_CASE("profiler: calls per op, forward and backward apart; the trace nests and counts the same") {
  const Tensor x = randn({8, 5}), y = tensor({0, 1, 2, 0, 1, 2, 0, 1}, kInt64);
  std::vector<Tensor> p{randn({6, 5}).requires_grad_(), zeros({6}).requires_grad_(), randn({3, 6}).requires_grad_(),
                        zeros({3}).requires_grad_()};
  Profiler prof;
  CHECK(profiling());
  for (int step = 0; step < 3; ++step) mlp_step(x, y, p);
  const std::vector<ProfileStat> stats = prof.stats();
  CHECK(!profiling());

  std::map<std::string, ProfileStat> by_key;
  for (const ProfileStat& s : stats) by_key[str(s.section(), ":", s.name)] = s;
  auto calls = [&](const std::string& key) { return by_key.count(key) ? by_key.at(key).calls : 0; };
  CHECK(calls("forward op:linear") == 6);
  CHECK(calls("forward op:tanh") == 3);
  CHECK(calls("forward op:cross_entropy") == 3);
  CHECK(calls("backward node:LinearBackward") == 6);
  CHECK(calls("backward node:TanhBackward") == 3);
  CHECK(calls("backward node:AccumulateGrad") == 12);
  // LinearBackward: grad_weight for both layers, grad_x for the second only (x needs none).
  CHECK(calls("backward op:matmul") == 9);
  CHECK(calls("backward pass:backward") == 3);
  CHECK(calls("range:mlp.forward") == 3);
  CHECK(calls("forward op:matmul") == 0);    // linear calls no matmul op forward

  // FLOPs: linear (8, 5) -> 6: 2 x 8 x 6 x 5 products + 8 x 6 bias adds.
  const ProfileStat& lin = by_key.at("forward op:linear");
  REQUIRE(lin.flops_known);
  CHECK(lin.flops == 3 * ((2.0 * 8 * 6 * 5 + 8 * 6) + (2.0 * 8 * 3 * 6 + 8 * 3)));
  CHECK(lin.bytes_read == 3 * (4.0 * (8 * 5 + 6 * 5 + 6) + 4.0 * (8 * 6 + 3 * 6 + 3)));
  const ProfileStat& lin_back = by_key.at("backward node:LinearBackward");
  REQUIRE(lin_back.flops_known);
  // A node adds up the ops it ran: layer 1 grad_weight (6, 8) @ (8, 5) and grad_bias, a sum
  // over 8 x 6; layer 2 grad_x (8, 3) @ (3, 6), grad_weight (3, 8) @ (8, 6), grad_bias over 8 x 3.
  CHECK(lin_back.flops == 3 * ((2.0 * 6 * 5 * 8 + 48) + (2.0 * 8 * 6 * 3 + 2.0 * 3 * 6 * 8 + 24)));

  // The trace, parsed back: one span per call, the same counts, names and kinds.
  const json trace = json::parse(prof.chrome_trace_json());
  const std::vector<Span> spans = spans_of(trace);
  std::map<std::string, int64_t> counted;
  for (const Span& s : spans) counted[str(s.cat, ":", s.phase, ":", s.name)] += 1;
  for (const ProfileStat& s : stats)
    CHECK_MESSAGE(counted[str(profile_kind_name(s.kind), ":", s.backward ? "backward" : "forward", ":", s.name)] ==
                      s.calls, s.name);
  int64_t total_calls = 0;
  for (const ProfileStat& s : stats) total_calls += s.calls;
  CHECK((int64_t)spans.size() == total_calls);

  // Nesting: any two spans of a thread are disjoint or one holds the other.
  for (const Span& a : spans)
    for (const Span& b : spans)
      if (a.tid == b.tid && a.begin < b.begin && b.begin < a.end) CHECK_MESSAGE(b.end <= a.end, a.name, " / ", b.name);
  // and the tree is the one the program made.
  for (const Span& s : spans) {
    const Span* parent = parent_of(s, spans);
    INFO(s.cat, " ", s.name);
    if (s.name == "linear" && s.phase == "forward") {
      REQUIRE(parent);
      CHECK(parent->name == "mlp.forward");
    }
    if (s.cat == "backward_node") {
      REQUIRE(parent);
      CHECK(parent->cat == "backward_pass");
    }
    if (s.name == "matmul") {
      REQUIRE(parent);
      CHECK(parent->name == "LinearBackward");
      CHECK(s.phase == "backward");
      CHECK(s.args.at("flops").get<double>() > 0);
    }
    if (s.cat == "backward_pass" || s.name == "mlp.forward") CHECK(parent == nullptr);
  }

  // The report names every op in its section.
  std::ostringstream report;
  prof.report(report);
  CHECK(report.str().find("wavspa profile:") == 0);
  CHECK(report.str().find("forward op     linear") != std::string::npos);
  CHECK(report.str().find("backward node  LinearBackward") != std::string::npos);
}

TEST_CASE("profiler: matmul FLOPs and bytes; a file trace; nothing recorded outside a Profiler") {
  const Tensor a = randn({2, 4, 3}), b = randn({3, 5});
  Tensor c;
  std::vector<ProfileStat> stats;
  TempDir dir("profiler");
  {
    Profiler prof;
    c = matmul(a, b);
    add(c, 1.0);
    prof.stop();
    matmul(a, b);  // after stop(): not counted
    stats = prof.stats();
    prof.write_chrome_trace(dir / "t.json");
  }
  REQUIRE(stats.size() == 2);
  const ProfileStat& mm = stats[0].name == "matmul" ? stats[0] : stats[1];
  const ProfileStat& ad = stats[0].name == "add" ? stats[0] : stats[1];
  CHECK(mm.name == "matmul");
  CHECK(mm.calls == 1);
  CHECK(mm.flops == 2.0 * 2 * 4 * 5 * 3);
  CHECK(mm.bytes_read == 4.0 * (24 + 15));
  CHECK(mm.bytes_written == 4.0 * 40);
  CHECK(ad.name == "add");
  CHECK(ad.flops == 40);
  CHECK(ad.bytes_read == 4.0 * (40 + 1));  // the scalar is a 0-d tensor
  const json trace = json::parse(read_file(dir / "t.json"));
  CHECK(spans_of(trace).size() == 2);
  CHECK(trace.at("displayTimeUnit") == "ms");

  // Without a Profiler the flag is down and scopes record nothing.
  CHECK(!profiling());
  ProfileScope idle("idle");
  CHECK(!idle);
}

TEST_CASE("profiler: a Profiler inside another takes over until it stops") {
  const Tensor x = randn({4});
  Profiler outer;
  exp(x);
  std::vector<ProfileStat> inner_stats;
  {
    Profiler inner;
    sin(x);
    inner_stats = inner.stats();
  }
  CHECK(profiling());  // the outer one again
  cos(x);
  const std::vector<ProfileStat> outer_stats = outer.stats();
  REQUIRE(inner_stats.size() == 1);
  CHECK(inner_stats[0].name == "sin");
  std::vector<std::string> names;
  for (const ProfileStat& s : outer_stats) names.push_back(s.name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"cos", "exp"});
}

namespace {

// A device clock for the test: every mark is 10 us after the one before, and the "device"
// has passed only the marks below `reached_below`.
struct FakeTimer final : DeviceTimer {
  int64_t next = 0, reached_below = 0, released = 0;
  int64_t mark() override { return next++; }
  bool reached(int64_t mark) override { return mark < reached_below; }
  double elapsed_us(int64_t from, int64_t to) override { return 10.0 * (double)(to - from); }
  void release(int64_t) override { ++released; }
};

}  // namespace

TEST_CASE("profiler: a device timer's marks time the ops, wait until the device passes them, and all come back") {
  FakeTimer timer;
  register_device_timer(DeviceType::CPU, &timer);  // the CPU as a pretend asynchronous device
  const Tensor x = randn({16});
  std::vector<ProfileStat> stats;
  json trace;
  {
    Profiler prof;
    {
      ProfileScope range("block", x, ProfileKind::Range);  // marks 1 and 4 (0: the session's reference)
      exp(x);                          // marks 2 and 3
    }
    CHECK(timer.next == 5);
    CHECK(timer.released == 0);  // nothing reached yet: both wait in the queue
    timer.reached_below = 5;
    sin(x);                      // its arrival drains the queue: exp and block come back
    CHECK(timer.released == 4);
    stats = prof.stats();        // stopping waits for sin's marks and gives back the reference
    trace = json::parse(prof.chrome_trace_json());
  }
  register_device_timer(DeviceType::CPU, nullptr);
  CHECK(timer.released == timer.next);
  REQUIRE(stats.size() == 3);
  for (const ProfileStat& s : stats) {
    INFO(s.name);
    CHECK(s.device_timed);
    CHECK(s.total_us == (s.name == "block" ? 30.0 : 10.0));  // device time, not the host's
  }
  // Each scope twice: on its thread, and on the device's track at its offset from the reference.
  std::map<std::string, std::vector<Span>> by_name;
  for (const Span& s : spans_of(trace)) by_name[s.name].push_back(s);
  REQUIRE(by_name["exp"].size() == 2);
  const Span& host = by_name["exp"][0].tid < 1000 ? by_name["exp"][0] : by_name["exp"][1];
  const Span& device = by_name["exp"][0].tid < 1000 ? by_name["exp"][1] : by_name["exp"][0];
  CHECK(device.tid == 1000);
  CHECK(device.end - device.begin == 10000);
  CHECK(host.args.at("device_us") == 10.0);
  const Span& block = by_name["block"][0].tid == 1000 ? by_name["block"][0] : by_name["block"][1];
  CHECK(std::abs(device.begin - block.begin - 10000) <= 1);  // mark 2 is 10 us after mark 1
  CHECK(device.end <= block.end);
}

// The op harness: every entry of the op table (tests/ops/op_table.h) through the float64
// gradcheck, the dtype checks, CPU-vs-CUDA parity (CUDA builds with a GPU) and the
// coverage checks against the headers and docs/ops.md.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "tests/ops/op_table.h"

namespace doctest::detail {
std::set<TestCase>& getRegisteredTests();  // defined by doctest's implementation (tests/main.cpp)
}

using namespace wavspa;
using namespace wavspa::test;

namespace {

// A seed per op, so that samples differ between ops but reproduce between runs.
uint64_t seed_of(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<Sample> samples_of(const OpInfo& op) {
  manual_seed(seed_of(op.name));
  std::vector<Sample> s = op.samples();
  REQUIRE_MESSAGE(!s.empty(), op.name, " has no samples");
  return s;
}

// The sample's arguments with floating tensors converted by `floating` and the others by
// `other` (fresh tensors: the samples' own stay untouched).
In convert(const Sample& s, const std::function<Tensor(const Tensor&)>& floating,
           const std::function<Tensor(const Tensor&)>& other) {
  In all;
  for (const In* part : {&s.inputs, &s.consts})
    for (const Tensor& t : *part) all.push_back(is_floating(t.dtype()) ? floating(t) : other(t));
  return all;
}

// The sample's own arguments (the CUDA checks copy them to the device).
[[maybe_unused]] In args_of(const Sample& s) {
  return convert(
      s, [](const Tensor& t) { return t; }, [](const Tensor& t) { return t; });
}

size_t floating_count(const Sample& s) {
  size_t n = 0;
  for (const In* part : {&s.inputs, &s.consts})
    for (const Tensor& t : *part) n += is_floating(t.dtype());
  return n;
}

std::string label(const OpInfo& op, const Sample& s) { return op.name + " [" + s.what + "]"; }

// A message naming `what` if `fn` throws anything but a wavspa::Error.
template <typename F>
bool runs(F&& fn, const std::string& what) {
  try {
    fn();
    return true;
  } catch (const Error& e) {
    const std::string message = what + " threw: " + e.what();
    FAIL_CHECK(message);
  } catch (const std::exception& e) {
    const std::string message = what + " threw a non-wavspa exception: " + e.what();
    FAIL_CHECK(message);
  }
  return false;
}

}  // namespace

TEST_CASE("op table: every sample of every op runs, differentiable ops pass the float64 gradcheck") {
  int64_t checked = 0, samples = 0;
  for (const OpInfo& op : op_table()) {
    for (const Sample& s : samples_of(op)) {
      ++samples;
      const std::string what = label(op, s);
      INFO(what);
      for (const Tensor& t : s.inputs)
        REQUIRE_MESSAGE(t.dtype() == kFloat64, what, ": sample inputs are float64 leaves, got ", t.describe());
      if (!op.differentiable) {
        // no graph: the output neither requires grad nor has a node, even from inputs that do
        In args = convert(
            s, [](const Tensor& t) { return t.detach().clone().requires_grad_(); }, [](const Tensor& t) { return t; });
        runs(
            [&] {
              Tensor y = s.fn(args);
              CHECK_MESSAGE(!y.requires_grad(), what, " records a graph but is listed as not differentiable");
            },
            what);
        continue;
      }
      runs(
          [&] {
            In args = convert(
                s, [](const Tensor& t) { return t.detach().clone().requires_grad_(); },
                [](const Tensor& t) { return t; });
            CHECK_MESSAGE(s.fn(args).requires_grad(), what, " records no graph from inputs that require grad");
            GradcheckResult r = gradcheck(
                [&](const In& x) {
                  In all = x;
                  all.insert(all.end(), s.consts.begin(), s.consts.end());
                  return s.fn(all);
                },
                s.inputs);
            CHECK_MESSAGE(r.ok, what, ": ", r.message);
            ++checked;
          },
          what);
    }
  }
  MESSAGE(op_table().size(), " ops, ", samples, " samples, ", checked, " gradchecks");
}

namespace {

// Overwrites t in place (under NoGradGuard, as an optimizer step would) with its own values
// in reverse order, floating ones times 1.25: other values from the same set, so that
// indices stay in range and positive inputs positive.
void overwrite(const Tensor& t) {
  NoGradGuard no_grad;
  const int64_t n = t.numel();
  if (n == 0) return;
  std::vector<int64_t> reversed(n);
  for (int64_t i = 0; i < n; ++i) reversed[i] = n - 1 - i;
  Tensor r = index_select(t.reshape({-1}), 0, from_vector(reversed, {}, t.device()));
  if (is_floating(t.dtype())) r = mul(r, 1.25);
  Tensor target = t;
  target.copy_(r.reshape(t.shape()));
}

}  // namespace

// The saved lists of autograd::record (autograd/function.h): after the forward, each input,
// each held-fixed argument and the output in turn is overwritten in place; the backward must
// then either refuse, naming the node, or give the gradients of an untouched run (the node
// never read what changed). A tensor a closure reads but does not list fails here.
TEST_CASE("op table: in-place changes after the forward are refused at backward, or change nothing") {
  int64_t refused = 0, unchanged = 0;
  for (const OpInfo& op : op_table()) {
    if (!op.differentiable) continue;
    for (const Sample& s : samples_of(op)) {
      const std::string what = label(op, s);
      INFO(what);
      const uint64_t seed = seed_of(op.name) + 1;
      // One run: forward, overwrite argument `target` (-1: the output, -2: nothing), backward.
      // Returns the inputs' gradients, or nothing when backward refused.
      auto run = [&](int target, std::vector<Tensor>& grads) {
        In args = convert(
            s, [](const Tensor& t) { return t.detach().clone().requires_grad_(); },
            [](const Tensor& t) { return t.clone(); });
        manual_seed(seed);  // the same dropout draws in every run
        Tensor y = s.fn(args);
        if (!y.requires_grad()) return false;
        manual_seed(seed + 1);
        const Tensor g = randn(y.shape(), y.dtype());
        if (target == -1) overwrite(y);
        if (target >= 0) overwrite(args[target]);
        try {
          y.backward(g);
        } catch (const Error& e) {
          const std::string m = e.what();
          CHECK_MESSAGE(m.find("modified by an in-place operation") != std::string::npos, what, ": ", m);
          return false;
        }
        grads.clear();
        for (size_t i = 0; i < s.inputs.size(); ++i) grads.push_back(args[i].grad());
        return true;
      };
      std::vector<Tensor> want;
      if (!runs([&] { REQUIRE(run(-2, want)); }, what)) continue;
      const int args_count = (int)(s.inputs.size() + s.consts.size());
      for (int target = -1; target < args_count; ++target) {
        std::vector<Tensor> got;
        bool ran = false;
        if (!runs([&] { ran = run(target, got); }, what)) continue;
        if (!ran) {
          ++refused;
          continue;
        }
        ++unchanged;
        for (size_t i = 0; i < want.size(); ++i) {
          CHECK_MESSAGE(want[i].defined() == got[i].defined(), what, ": gradient ", i);
          if (want[i].defined() && got[i].defined())
            CHECK_MESSAGE(max_abs_diff(got[i], want[i]) <= 1e-12, what, ": overwriting ",
                          target < 0 ? std::string("the output") : "argument " + std::to_string(target),
                          " after the forward changed gradient ", i, " without backward refusing: the op's "
                          "autograd::record() does not list a tensor its backward reads");
        }
      }
    }
  }
  MESSAGE(refused, " in-place changes refused at backward, ", unchanged, " left the gradients unchanged");
  CHECK(refused > 0);
  CHECK(unchanged > 0);
}

TEST_CASE("op table: integer inputs are refused naming the op, or give the float64 result exactly") {
  for (const OpInfo& op : op_table()) {
    if (op.ints == Ints::Skip) continue;
    for (const Sample& s : samples_of(op)) {
      if (floating_count(s) == 0) continue;
      const std::string what = label(op, s);
      INFO(what);
      // integer values, so that exact integer arithmetic and float64 arithmetic agree
      auto round64 = [](const Tensor& t) { return mul(t, 3.0).to(kInt64).to(kFloat64); };
      In as_float = convert(s, round64, [](const Tensor& t) { return t; });
      In as_int = convert(
          s, [&](const Tensor& t) { return round64(t).to(kInt64); }, [](const Tensor& t) { return t; });
      if (op.ints == Ints::Refused) {
        check_error([&] { s.fn(as_int); }, {op.error_name, "int64"});
      } else {
        Tensor want, got;
        if (!runs(
                [&] {
                  want = s.fn(as_float);
                  got = s.fn(as_int);
                },
                what))
          continue;
        // integer in, integer out (comparisons and other predicates: bool either way)
        CHECK(got.dtype() == (want.dtype() == kBool ? kBool : kInt64));
        CHECK(got.shape() == want.shape());
        CHECK_MESSAGE(max_abs_diff(got, want) == 0, what, ": int64 result differs from float64");
      }
      break;  // one sample per op is enough for the dtype rule
    }
  }
}

// Mixed dtypes: an op that promotes (core/dtype.h) computes in the wider floating dtype, so
// its result equals the op on both inputs widened (exact: widening a float rounds nothing);
// any other op with two floating inputs refuses the pair, naming itself and both dtypes.
// `narrow` and `wide` are the pair: the first input is made `narrow` (float32 against
// float64), or the second `wide`'s partner (bfloat16 against float32).
namespace {

void check_mixed(const OpInfo& op, const Sample& s, int narrowed, DType narrow, DType wide, int64_t& promoted) {
  const std::string what = label(op, s);
  INFO(what);
  In args = convert(s, [wide](const Tensor& t) { return t.to(wide); }, [](const Tensor& t) { return t; });
  args[narrowed] = args[narrowed].to(narrow);
  if (!op.promotes) {
    check_error([&] { s.fn(args); }, {op.error_name, dtype_name(narrow), dtype_name(wide)});
    return;
  }
  In widened = args;
  widened[narrowed] = args[narrowed].to(wide);
  Tensor got, want;
  if (!runs(
          [&] {
            got = s.fn(args);
            want = s.fn(widened);
          },
          what))
    return;
  CHECK_MESSAGE(got.dtype() == want.dtype(), what, ": got ", got.describe(), ", want ", want.describe());
  CHECK_MESSAGE(max_abs_diff(got, want) == 0, what, ": differs from the op on widened inputs");
  ++promoted;
}

}  // namespace

TEST_CASE("op table: float32 mixed with float64 promotes to float64, or is refused naming the op and both dtypes") {
  int64_t promoted = 0;
  for (const OpInfo& op : op_table()) {
    if (!op.mixed_dtypes_refused && !op.promotes) continue;
    for (const Sample& s : samples_of(op)) {
      if (s.inputs.size() < 2) continue;
      check_mixed(op, s, 0, kFloat32, kFloat64, promoted);
      break;  // one sample per op
    }
  }
  // add, sub, mul, div, pow, maximum, minimum, where, the six comparisons, the four operators,
  // and the method forms of the arithmetic and the comparisons: 28
  CHECK(promoted == 28);
}

TEST_CASE("op table: bfloat16 mixed with float32 promotes to float32, or is refused naming the op and both dtypes") {
  int64_t promoted = 0;
  for (const OpInfo& op : op_table()) {
    if ((!op.mixed_dtypes_refused && !op.promotes) || op.bf16 == Bf16::Refused) continue;
    for (const Sample& s : samples_of(op)) {
      if (s.inputs.size() < 2) continue;
      check_mixed(op, s, 1, kBFloat16, kFloat32, promoted);
      break;
    }
  }
  CHECK(promoted == 28);
}

TEST_CASE("op table: bfloat16 on the CPU: ops that compute refuse it naming the op, ops that move bytes are exact") {
  int64_t moved = 0;
  std::set<std::string> refusing, named;
  for (const OpInfo& op : op_table()) {
    for (const Sample& s : samples_of(op)) {
      if (floating_count(s) == 0) continue;
      const std::string what = label(op, s);
      INFO(what);
      In as_bf16 = convert(s, [](const Tensor& t) { return t.to(kBFloat16); }, [](const Tensor& t) { return t; });
      if (op.bf16 != Bf16::Anywhere) {
        // Every sample is refused; a sample that computes something before calling the op
        // (softplus(mul(x, 2))) is refused by that first op, so one sample naming the op is enough.
        try {
          s.fn(as_bf16);
          FAIL_CHECK(what, " accepted bfloat16 CPU inputs");
        } catch (const Error& e) {
          const std::string msg = e.what();
          CHECK_MESSAGE(msg.find("bfloat16") != std::string::npos, what, ": ", msg);
          if (msg.find(op.error_name) != std::string::npos) named.insert(op.name);
        }
        refusing.insert(op.name);
        continue;
      }
      // The float32 result on the same rounded values, rounded to bfloat16 (a no-op for ops
      // that move bytes; linspace's values round), is what bfloat16 gives.
      In as_f32 = convert(
          s, [](const Tensor& t) { return t.to(kBFloat16).to(kFloat32); }, [](const Tensor& t) { return t; });
      runs(
          [&] {
            Tensor got = s.fn(as_bf16), want = s.fn(as_f32);
            CHECK(got.shape() == want.shape());
            if (want.dtype() == kFloat32) CHECK_MESSAGE(got.dtype() == kBFloat16, what, ": got ", got.describe());
            CHECK_MESSAGE(max_abs_diff(got, is_floating(want.dtype()) ? want.to(kBFloat16) : want) == 0, what,
                          ": bfloat16 result differs from float32");
            ++moved;
          },
          what);
    }
  }
  for (const std::string& name : refusing)
    CHECK_MESSAGE(named.count(name), name, ": no sample's bfloat16 error names the op");
  MESSAGE(refusing.size(), " ops refuse bfloat16 on the CPU, ", moved, " samples move it exactly");
}

// ---- coverage -------------------------------------------------------------------------------

namespace {

// The lines of a file without their // comments. (Plain string scanning: g++ 12 warns
// falsely inside <regex> under -O1 -fsanitize, which CI builds with -Werror.)
std::vector<std::string> code_lines(const std::string& path) {
  const std::string text = read_file(path);
  REQUIRE_MESSAGE(!text.empty(), "cannot read ", path, " (the tests run from the repository root)");
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line.substr(0, line.find("//")));
  return lines;
}

// The name in "<name>(" right after `prefix` at `at`, or "" ("operator+" counts as a name).
std::string name_after(const std::string& line, size_t at) {
  const size_t open = line.find('(', at);
  if (open == std::string::npos) return "";
  const std::string name = line.substr(at, open - at);
  if (name.rfind("operator", 0) == 0) return name;
  const bool word = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum((unsigned char)c) || c == '_';
  });
  return word ? name : "";
}

// Names of the ops a header declares at namespace scope (unindented): functions returning tensors.
std::set<std::string> declared_ops(const std::string& header) {
  static const char* kTypes[] = {"Tensor ", "std::vector<Tensor> ", "std::pair<Tensor, Tensor> ", "Coeffs2 ",
                                 "Decomposition2 "};
  std::set<std::string> names;
  for (const std::string& line : code_lines(header))
    for (const char* type : kTypes)
      if (line.rfind(type, 0) == 0) {
        const std::string name = name_after(line, std::string(type).size());
        if (!name.empty()) names.insert(name);
      }
  return names;
}

// Tensor's methods that return a tensor (by value or, in place, by reference).
std::set<std::string> tensor_methods() {
  std::set<std::string> names;
  for (const std::string& line : code_lines("core/tensor.h")) {
    size_t at = line.find_first_not_of(' ');
    if (at == 0 || at == std::string::npos) continue;  // members are indented
    if (line.compare(at, 7, "static ") == 0) at += 7;
    for (const char* type : {"Tensor& ", "Tensor "})
      if (line.compare(at, std::string(type).size(), type) == 0) {
        const std::string name = name_after(line, at + std::string(type).size());
        if (!name.empty()) names.insert("Tensor::" + name);
      }
  }
  return names;
}

// Declared functions that are not ops, each with the reason.
const std::map<std::string, std::string> kNotOps = {
    {"Tensor::grad", "an accessor of autograd state"},
    {"Tensor::requires_grad_", "sets a flag, computes nothing"},
    {"Tensor::set_data", "points a leaf at other data (PyTorch's x.data = y): computes nothing, records nothing"},
    {"Tensor::empty", "uninitialised memory: no values to compare"},
    {"empty", "uninitialised memory: no values to compare"},
};

}  // namespace

TEST_CASE("op table: every op declared in ops/*.h and every Tensor method that computes has an entry") {
  std::set<std::string> in_table;
  for (const OpInfo& op : op_table()) {
    CHECK_MESSAGE(in_table.insert(op.name).second, op.name, " has two entries");
    CHECK_MESSAGE(!op.header.empty(), op.name);
    CHECK_MESSAGE(!op.backward.empty(), op.name, " says nothing about its gradient");
    CHECK_MESSAGE(op.samples != nullptr, op.name);
  }
  std::set<std::string> declared = tensor_methods();
  for (const auto& entry : std::filesystem::directory_iterator("ops")) {
    const std::string path = entry.path().string();
    const std::string file = entry.path().filename().string();
    // internal helpers of ops/, not ops: common.h, wavelet_primitives.h
    if (entry.path().extension() != ".h" || file == "common.h" || file == "wavelet_primitives.h") continue;
    for (const std::string& name : declared_ops(path)) declared.insert(name);
  }
  CHECK(declared.size() > 80);  // the parser found the headers' ops
  for (const std::string& name : declared) {
    if (kNotOps.count(name)) continue;
    CHECK_MESSAGE(in_table.count(name), name,
                  " is declared but has no entry in the op table (tests/ops/op_table_*.cpp)");
  }
  for (const std::string& name : in_table)
    CHECK_MESSAGE(declared.count(name), name, " is in the op table but no header declares it");
}

// ---- docs/ops.md ----------------------------------------------------------------------------

namespace {

const char* kBegin = "<!-- op table: begin (generated from tests/ops/op_table_*.cpp; do not edit by hand) -->";
const char* kEnd = "<!-- op table: end -->";

std::string table_row(const OpInfo& op);

std::string ints_word(Ints i) { return i == Ints::Refused ? "refused" : i == Ints::Exact ? "exact" : "not checked"; }

// What the op does with bfloat16 (no floating input: nothing to say).
std::string bf16_word(const OpInfo& op, bool floating_inputs) {
  if (!floating_inputs) return "n/a";
  switch (op.bf16) {
    case Bf16::Cuda: return op.cuda ? "CUDA (CPU refuses)" : "refused";
    case Bf16::Anywhere: return "CPU and CUDA (moves bytes)";
    case Bf16::Refused: return "refused";
  }
  return "?";
}

// The generated part of docs/ops.md: one table per header, headers in order of first entry.
std::string generated_tables() {
  std::vector<std::string> headers;
  for (const OpInfo& op : op_table())
    if (std::find(headers.begin(), headers.end(), op.header) == headers.end()) headers.push_back(op.header);
  std::ostringstream md;
  for (const std::string& header : headers) {
    md << "\n### `" << header << "`\n\n"
       << "| op | backward | harness: samples, checks | integer inputs | bfloat16 | value test |\n"
       << "| --- | --- | --- | --- | --- | --- |\n";
    for (const OpInfo& op : op_table())
      if (op.header == header) md << table_row(op);
  }
  return md.str();
}

std::string table_row(const OpInfo& op) {
  std::ostringstream md;
  {
    const std::vector<Sample> samples = samples_of(op);
    auto any = [&](auto pred) { return std::any_of(samples.begin(), samples.end(), pred); };
    const bool two_inputs = any([](const Sample& s) { return s.inputs.size() >= 2; });
    const bool two_args = any([](const Sample& s) { return s.inputs.size() + s.consts.size() >= 2; });
    std::string checks = std::to_string(samples.size()) + " samples: ";
    checks += op.differentiable ? "gradcheck" : "no graph recorded";
    if (op.mixed_dtypes_refused && two_inputs) checks += ", mixed dtypes refused";
    if (op.promotes && two_inputs) checks += ", mixed dtypes promote";
    const bool floating = any([](const Sample& s) { return floating_count(s) > 0; });
    const bool bf16_cuda = op.cuda && floating && op.bf16 != Bf16::Refused;
    checks += op.cuda ? (op.ints == Ints::Exact ? ", CUDA f32/f64/i64" : ", CUDA f32/f64") : ", CPU only";
    if (bf16_cuda) checks += "/bf16";
    if (op.cuda && op.mixed_devices_refused && two_args) checks += ", two devices refused";
    md << "| `" << op.name << "` | " << op.backward << " | " << checks << " | " << ints_word(op.ints) << " | "
       << bf16_word(op, floating) << " | " << (op.value_test.empty() ? "none" : "\"" + op.value_test + "\"") << " |\n";
  }
  return md.str();
}

}  // namespace

TEST_CASE("op table: docs/ops.md's op tables are generated from the table, value tests exist") {
  std::set<std::string> cases;
  for (const doctest::detail::TestCase& tc : doctest::detail::getRegisteredTests()) cases.insert(tc.m_name);
  for (const OpInfo& op : op_table())
    if (!op.value_test.empty())
      CHECK_MESSAGE(cases.count(op.value_test), op.name, ": no test case named \"", op.value_test, "\"");

  const std::string path = "docs/ops.md", doc = read_file(path);
  const size_t b = doc.find(kBegin), e = doc.find(kEnd);
  REQUIRE_MESSAGE(b != std::string::npos, path, " lacks the line ", kBegin);
  REQUIRE_MESSAGE((e != std::string::npos && e > b), path, " lacks the line ", kEnd, " after the begin line");
  const std::string have = doc.substr(b + std::string(kBegin).size(), e - b - std::string(kBegin).size());
  const std::string want = generated_tables() + "\n";
  if (have != want && std::getenv("WAVSPA_WRITE_DOCS")) {
    write_file(path, doc.substr(0, b) + kBegin + want + doc.substr(e));
    MESSAGE("rewrote ", path);
    return;
  }
  CHECK_MESSAGE(have == want, path,
                "'s op tables differ from the op table: rerun with WAVSPA_WRITE_DOCS=1 "
                "(make test TEST_ARGS='-tc=\"op table: docs*\"' WAVSPA_WRITE_DOCS=1) and commit the file");
}

// ---- CUDA -----------------------------------------------------------------------------------

#ifdef WAVSPA_CUDA
namespace {

// The sample on the CPU and on the GPU, in dtype `dt`: outputs compared, then the same random
// output gradient sent back through both and every input's gradient compared.
// In int64 (ops that take integers), the floating inputs become integers and the results
// must be equal.
void check_sample_parity(const OpInfo& op, const Sample& s, DType dt, const std::string& what) {
  const bool integer = dt == kInt64;
  const Tol tol = integer ? Tol{0, 0} : dt == kFloat32 ? op.f32 : op.f64;
  auto on = [&](Device device) {
    return convert(
        s, [&](const Tensor& t) { return (integer ? mul(t, 3.0).to(kInt64) : t.to(dt)).to(device).detach(); },
        [&](const Tensor& t) { return t.to(device); });
  };
  In cpu = on(Device::cpu()), gpu = on(Device::cuda());
  const size_t n = s.inputs.size();
  if (integer) {
    check_close(s.fn(cpu), s.fn(gpu), tol, what + " forward");
    return;
  }
  if (op.differentiable)
    for (size_t i = 0; i < n; ++i) cpu[i].requires_grad_(), gpu[i].requires_grad_();
  Tensor yc = s.fn(cpu), yg = s.fn(gpu);
  check_close(yc, yg, tol, what + " forward");
  if (!op.differentiable || n == 0) return;
  Tensor seed = randn(yc.shape(), yc.dtype());
  yc.backward(seed);
  yg.backward(seed.to(Device::cuda()));
  for (size_t i = 0; i < n; ++i) {
    REQUIRE_MESSAGE(cpu[i].grad().defined() == gpu[i].grad().defined(), what, " input ", i);
    if (cpu[i].grad().defined())
      check_close(cpu[i].grad(), gpu[i].grad(), tol, what + " grad of input " + std::to_string(i));
  }
}

}  // namespace

TEST_CASE("op table: CUDA equals the CPU, forward and every input's gradient, float32, float64 and int64" *
          gpu_only()) {
  int64_t compared = 0;
  for (const OpInfo& op : op_table()) {
    if (!op.cuda) continue;
    for (const Sample& s : samples_of(op)) {
      for (DType dt : {kFloat32, kFloat64, kInt64}) {
        if (dt == kInt64 && op.ints != Ints::Exact) continue;
        const std::string what = label(op, s) + " " + dtype_name(dt);
        INFO(what);
        if (runs([&] { check_sample_parity(op, s, dt, what); }, what)) ++compared;
      }
    }
  }
  MESSAGE(compared, " CPU-vs-CUDA comparisons");
}

namespace {

// The sample on CUDA in bfloat16 against the CPU in float32 on the same bfloat16-rounded
// inputs, forward and (after the same rounded output gradient) every input's gradient, within
// op.bf16_tol. Returns the worst |cuda - cpu| / (atol + rtol |cpu|) seen (1 is the bound).
double check_sample_bf16(const OpInfo& op, const Sample& s, const std::string& what) {
  In cpu = convert(
      s, [](const Tensor& t) { return t.to(kBFloat16).to(kFloat32).detach(); }, [](const Tensor& t) { return t; });
  In gpu = convert(
      s, [](const Tensor& t) { return t.to(kBFloat16).to(Device::cuda()).detach(); },
      [](const Tensor& t) { return t.to(Device::cuda()); });
  const size_t n = s.inputs.size();
  if (op.differentiable)
    for (size_t i = 0; i < n; ++i) cpu[i].requires_grad_(), gpu[i].requires_grad_();
  double worst = 0;
  auto compare = [&](const Tensor& c, const Tensor& g, const std::string& part) {
    INFO(what, " ", part);
    REQUIRE(g.device().is_cuda());
    REQUIRE(c.shape() == g.shape());
    if (c.dtype() == kFloat32) CHECK_MESSAGE(g.dtype() == kBFloat16, what, " ", part, ": got ", g.describe());
    const auto a = c.to(kFloat64).to_vector<double>(), b = g.to(Device::cpu()).to(kFloat64).to_vector<double>();
    double ratio = 0;
    size_t at = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double err = std::abs(a[i] - b[i]), allowed = op.bf16_tol.atol + op.bf16_tol.rtol * std::abs(a[i]);
      const double r = a[i] == b[i] ? 0 : err / allowed;  // equal infinities count as equal
      if (!(r <= ratio)) ratio = r, at = i;                // NaN on one side only: NaN ratio
    }
    CHECK_MESSAGE(ratio <= 1, what, " ", part, ": worst |cuda - cpu| is ", ratio, " times the bfloat16 tolerance at ",
                  "element ", at, " (cpu ", a.empty() ? 0 : a[at], ", cuda ", b.empty() ? 0 : b[at], ")");
    if (!(ratio <= worst)) worst = ratio;
  };
  Tensor yc = s.fn(cpu), yg = s.fn(gpu);
  compare(yc, yg, "forward");
  if (!op.differentiable || n == 0 || !is_floating(yc.dtype())) return worst;
  Tensor seed = randn(yc.shape()).to(kBFloat16);
  yc.backward(seed.to(yc.dtype()));
  yg.backward(seed.to(yg.dtype()).to(Device::cuda()));
  for (size_t i = 0; i < n; ++i) {
    REQUIRE_MESSAGE(cpu[i].grad().defined() == gpu[i].grad().defined(), what, " input ", i);
    if (cpu[i].grad().defined()) compare(cpu[i].grad(), gpu[i].grad(), "grad of input " + std::to_string(i));
  }
  return worst;
}

}  // namespace

TEST_CASE("op table: CUDA in bfloat16 equals the CPU in float32 on the same rounded inputs, within bfloat16 "
          "tolerances" *
          gpu_only()) {
  int64_t compared = 0, refused = 0;
  std::ostringstream report;
  for (const OpInfo& op : op_table()) {
    if (!op.cuda) continue;
    double op_worst = 0;
    for (const Sample& s : samples_of(op)) {
      if (floating_count(s) == 0) continue;
      const std::string what = label(op, s) + " bfloat16";
      INFO(what);
      if (op.bf16 == Bf16::Refused) {
        In gpu = convert(
            s, [](const Tensor& t) { return t.to(kBFloat16).to(Device::cuda()); },
            [](const Tensor& t) { return t.to(Device::cuda()); });
        check_error([&] { s.fn(gpu); }, {op.error_name, "bfloat16"});
        ++refused;
        break;
      }
      runs(
          [&] {
            op_worst = std::max(op_worst, check_sample_bf16(op, s, what));
            ++compared;
          },
          what);
    }
    if (op_worst > 0.25) report << " " << op.name << " " << op_worst << ";";
  }
  MESSAGE(compared, " bfloat16 CUDA-vs-CPU comparisons, ", refused,
          " ops refuse bfloat16; worst error / tolerance above 0.25:", report.str());
}

TEST_CASE("op table: inputs on two devices are refused naming both" * gpu_only()) {
  for (const OpInfo& op : op_table()) {
    if (!op.cuda || !op.mixed_devices_refused) continue;
    for (const Sample& s : samples_of(op)) {
      In args = args_of(s);
      if (args.size() < 2) continue;
      INFO(label(op, s));
      args[0] = args[0].to(Device::cuda());
      check_error([&] { s.fn(args); }, {"cpu", "cuda"});
      break;
    }
  }
}
#endif

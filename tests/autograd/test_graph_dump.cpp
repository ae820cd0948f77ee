// autograd/graph_dump.h: the DOT file of a graph, read back and checked for structure against
// what backward runs (counted by the profiler, an independent witness of the same graph).
#include <cctype>
#include <map>
#include <set>

#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;

namespace {

// A DOT file as dump_dot writes it: nodes "nK [label="...", ...];" and edges "nA -> nB;".
struct Dot {
  std::map<int, std::string> labels;
  std::set<int> leaves;  // drawn as boxes
  std::vector<std::pair<int, int>> edges;

  // Parsed by hand: std::regex trips GCC 12's -Wmaybe-uninitialized under the sanitizer
  // build's -O1, which -Werror turns into a failed build.
  explicit Dot(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      size_t at = line.find_first_not_of(" \t");
      int from = 0, to = 0;
      if (at == std::string::npos || !read_id(line, at, from)) continue;
      if (line.compare(at, 9, " [label=\"") == 0) {
        std::string label;
        size_t i = at + 9;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) label += line[i++];
          label += line[i];
        }
        if (i >= line.size() || line.size() < 2 || line.compare(line.size() - 2, 2, "];") != 0) continue;
        labels[from] = label;
        if (line.find("shape=box", i) != std::string::npos) leaves.insert(from);
      } else if (line.compare(at, 4, " -> ") == 0) {
        at += 4;
        if (read_id(line, at, to) && line.compare(at, std::string::npos, ";") == 0) edges.emplace_back(from, to);
      }
    }
  }

  // "nK" at `at`: K into id, `at` moved past it.
  static bool read_id(const std::string& line, size_t& at, int& id) {
    if (at >= line.size() || line[at] != 'n') return false;
    size_t end = at + 1;
    while (end < line.size() && std::isdigit((unsigned char)line[end])) ++end;
    if (end == at + 1) return false;
    id = std::stoi(line.substr(at + 1, end - at - 1));
    at = end;
    return true;
  }

  int find(const std::string& label_start) const {
    for (const auto& [id, label] : labels)
      if (label.rfind(label_start, 0) == 0) return id;
    return -1;
  }
  bool has_edge(int from, int to) const {
    return std::find(edges.begin(), edges.end(), std::make_pair(from, to)) != edges.end();
  }
};

// Whether a label holds a line "(d0, d1, ...) DTYPE cpu" (a 1-dim shape may end in ",", a
// 0-dim one is "()"), the line break written as DOT's "\\n".
bool has_shape_line(const std::string& label) {
  for (size_t at = label.find("\\n("); at != std::string::npos; at = label.find("\\n(", at + 1)) {
    size_t i = at + 3;
    while (i < label.size() && (std::isdigit((unsigned char)label[i]) || label[i] == ',' || label[i] == ' ')) ++i;
    if (i >= label.size() || label[i] != ')') continue;
    const std::string rest = label.substr(i + 1);
    for (const char* dt : {" float32 cpu", " float64 cpu", " int64 cpu", " int32 cpu", " bfloat16 cpu"})
      if (rest.rfind(dt, 0) == 0) return true;
  }
  return false;
}

std::string dot_of(const Tensor& root, const nn::NamedTensors& names = {}) {
  std::ostringstream os;
  autograd::dump_dot(root, os, names);
  return os.str();
}

}  // namespace

TEST_CASE("dump_dot: edges run from inputs to the op that used them; labels hold shape, dtype, device, saved bytes") {
  Tensor a = randn({4, 3}, kFloat64).requires_grad_(), b = randn({3, 2}, kFloat64).requires_grad_();
  Tensor loss = sum(exp(matmul(a, b)));
  const Dot dot(dot_of(loss, {{"a", a}, {"b", b}}));
  REQUIRE(dot.labels.size() == 5);  // a, b, MatmulBackward, ExpBackward, SumBackward
  const int ia = dot.find("a\\n"), ib = dot.find("b\\n"), mm = dot.find("MatmulBackward"),
            ex = dot.find("ExpBackward"), sm = dot.find("SumBackward");
  REQUIRE((ia >= 0 && ib >= 0 && mm >= 0 && ex >= 0 && sm >= 0));
  CHECK(dot.leaves == std::set<int>{ia, ib});
  CHECK(dot.edges.size() == 4);
  CHECK(dot.has_edge(ia, mm));
  CHECK(dot.has_edge(ib, mm));
  CHECK(dot.has_edge(mm, ex));
  CHECK(dot.has_edge(ex, sm));
  CHECK(dot.labels.at(ia) == "a\\n(4, 3) float64 cpu");
  // matmul saves both operands: (4 x 3 + 3 x 2) float64 = 144 bytes; exp saves its (4, 2) output.
  CHECK(dot.labels.at(mm) == "MatmulBackward\\n(4, 2) float64 cpu\\nsaved 144 B");
  CHECK(dot.labels.at(ex) == "ExpBackward\\n(4, 2) float64 cpu\\nsaved 64 B");
  CHECK(dot.labels.at(sm) == "SumBackward\\n() float64 cpu\\nsaved 0 B");
  // After backward the saved tensors are gone, and the dump says so.
  loss.backward();
  CHECK(dot_of(loss).find("MatmulBackward\\n(4, 2) float64 cpu\\nsaved 0 B") != std::string::npos);
  check_error([&] { dot_of(randn({2})); }, {"dump_dot", "no autograd graph", "requires_grad_"});
}

TEST_CASE("dump_dot: a training step's graph has one node per backward node that runs, every one labelled") {
  auto model = models::make_classifier({.vocab_size = 12, .num_classes = 3, .max_len = 16, .emb_dim = 16,
                                        .num_heads = 2, .num_layers = 2, .qkv_dim = 16, .mlp_dim = 32});
  const Tensor ids = randint(1, 12, {4, 16}, kInt64), labels = tensor({0, 2, 1, 2}, kInt64);
  Tensor loss = cross_entropy(model->forward(ids), labels);

  TempDir dir("graph_dump");
  autograd::write_dot(loss, dir / "step.dot", model->named_parameters());
  const std::string text = read_file(dir / "step.dot");
  REQUIRE(text.rfind("digraph autograd {", 0) == 0);
  const Dot dot(text);

  // The engine runs each node once; the profiler counts them as it does.
  std::map<std::string, int64_t> ran;
  {
    Profiler prof;
    loss.backward();
    for (const ProfileStat& s : prof.stats())
      if (s.kind == ProfileKind::BackwardNode) ran[s.name] += s.calls;
  }
  int64_t nodes_run = 0;
  for (const auto& [name, calls] : ran) nodes_run += calls;
  CHECK(nodes_run == (int64_t)dot.labels.size());
  CHECK(ran["AccumulateGrad"] == (int64_t)dot.leaves.size());
  // Every parameter that got a gradient is a leaf box named after it.
  int64_t with_grad = 0;
  for (const auto& [name, p] : model->named_parameters()) {
    if (!p.grad().defined()) continue;
    ++with_grad;
    bool named = false;
    for (int leaf : dot.leaves) named = named || dot.labels.at(leaf).rfind(name + "\\n", 0) == 0;
    const std::string& what = name;  // clang-14 (make tsan) captures no structured binding
    CHECK_MESSAGE(named, what);
  }
  CHECK(with_grad == (int64_t)dot.leaves.size());
  // Each node, counted by name, is a node that ran.
  std::map<std::string, int64_t> drawn;
  for (const auto& [id, label] : dot.labels)
    drawn[dot.leaves.count(id) ? "AccumulateGrad" : label.substr(0, label.find("\\n"))] += 1;
  CHECK(drawn == ran);

  // Every label has a shape; edges go from inputs to outputs: leaves have no incoming edge,
  // the loss's node no outgoing one, and every node reaches the loss.
  for (const auto& entry : dot.labels) CHECK_MESSAGE(has_shape_line(entry.second), entry.second);
  const int root = 0;  // numbered from the root (the loss is a mean: a DivBackward)
  REQUIRE(dot.labels.count(root) == 1);
  CHECK(dot.leaves.count(root) == 0);
  CHECK(drawn.count("CrossEntropyBackward") == 1);
  std::map<int, std::vector<int>> out;
  for (const auto& [from, to] : dot.edges) {
    CHECK(dot.labels.count(from) == 1);
    CHECK(dot.labels.count(to) == 1);
    CHECK(dot.leaves.count(to) == 0);
    CHECK(from != root);
    out[from].push_back(to);
  }
  for (const auto& [id, label] : dot.labels) {
    std::set<int> seen{id};
    std::vector<int> todo{id};
    while (!todo.empty()) {
      const int n = todo.back();
      todo.pop_back();
      for (int next : out[n])
        if (seen.insert(next).second) todo.push_back(next);
    }
    const std::string& what = label;
    CHECK_MESSAGE(seen.count(root) == 1, what, " does not reach the loss");
  }
}

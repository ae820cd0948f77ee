#include "autograd/graph_dump.h"

#include <cstdio>
#include <map>
#include <ostream>
#include <sstream>
#include <unordered_map>

#include "autograd/variable.h"
#include "core/error.h"
#include "core/files.h"

namespace wavspa::autograd {

namespace {

// DOT's quoted strings keep a backslash escape for '"'; '\n' is written as DOT's own line break.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (bytes >= 1024 && u < 3) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string tensor_summary(const Shape& shape, DType dtype, Device device) {
  return str(shape_str(shape), " ", dtype_name(dtype), " ", device.name());
}

}  // namespace

void dump_dot(const Tensor& root, std::ostream& os, const std::vector<std::pair<std::string, Tensor>>& names) {
  WAVSPA_CHECK(root.defined() && root.requires_grad(), "dump_dot: the tensor (",
               root.defined() ? root.describe() : std::string("undefined"),
               ") has no autograd graph; did you forget requires_grad_() on an input, or run under NoGradGuard?");
  std::map<const TensorImpl*, std::string> leaf_names;
  for (const auto& [name, t] : names)
    if (t.defined()) leaf_names.emplace(&t.impl(), name);

  // Number the nodes breadth-first from the root, so the same graph always reads the same.
  std::unordered_map<const Node*, int> id;
  std::vector<const Node*> order;
  const Edge start = gradient_edge(root);
  id[start.get()] = 0;
  order.push_back(start.get());
  for (size_t i = 0; i < order.size(); ++i)
    for (const Edge& next : order[i]->next)
      if (next && id.emplace(next.get(), (int)order.size()).second) order.push_back(next.get());

  std::ostringstream out;
  out << "digraph autograd {\n"
      << "  node [shape=ellipse, fontname=\"Helvetica\", fontsize=10];\n";
  for (const Node* n : order) {
    out << "  n" << id[n] << " [label=";
    if (const auto* acc = dynamic_cast<const AccumulateGrad*>(n)) {
      // The leaf as it is now (Module::to may have changed its dtype or device since).
      const Tensor leaf = acc->leaf();
      auto it = leaf.defined() ? leaf_names.find(&leaf.impl()) : leaf_names.end();
      const std::string name = it != leaf_names.end() ? it->second : "leaf";
      const std::string what = leaf.defined() ? tensor_summary(leaf.shape(), leaf.dtype(), leaf.device()) : "(freed)";
      out << quoted(name + "\n" + what) << ", shape=box, style=filled, fillcolor=lightblue";
    } else {
      const Node::Output& o = n->output;
      out << quoted(str(n->name(), "\n", tensor_summary(o.shape, o.dtype, o.device), "\nsaved ",
                        human_bytes(n->saved_bytes())));
      if (n == start.get()) out << ", style=filled, fillcolor=lightyellow";
    }
    out << "];\n";
  }
  for (const Node* n : order)
    for (const Edge& next : n->next)
      if (next) out << "  n" << id[next.get()] << " -> n" << id[n] << ";\n";
  out << "}\n";
  os << out.str();
}

void write_dot(const Tensor& root, const std::string& path, const std::vector<std::pair<std::string, Tensor>>& names) {
  std::ostringstream os;
  dump_dot(root, os, names);
  write_file_atomic(path, os.str(), "autograd graph");
}

}  // namespace wavspa::autograd

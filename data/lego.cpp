#include "data/lego.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"

namespace wavspa::data {

namespace {

// A uniform integer in [0, n) from the generator's next Philox block.
int64_t draw(Generator& gen, int64_t n) {
  PhiloxState s = gen.reserve(1);
  auto bits = philox4x32(s.offset, 0, s.seed);
  uint64_t wide = ((uint64_t)bits[0] << 32) | bits[1];
  return (int64_t)(wide % (uint64_t)n);
}

struct Clause {
  std::string var, source;  // source: "1" or a variable
  int sign;
};

std::vector<Clause> parse(const std::string& text) {
  std::vector<Clause> out;
  std::stringstream ss(text);
  std::string part;
  int index = 0;
  while (std::getline(ss, part, ';')) {
    std::stringstream ts(part);
    std::string var, eq, rhs, extra;
    ts >> var >> eq >> rhs;
    WAVSPA_CHECK(!(ts >> extra) && var.size() == 1 && var[0] >= 'a' && var[0] <= 'z' && eq == "=" &&
                     rhs.size() >= 2 && (rhs[0] == '+' || rhs[0] == '-'),
                 "solve_lego: clause ", index, " '", part, "' is not of the form 'x = +y' or 'x = -1'");
    out.push_back({var, rhs.substr(1), rhs[0] == '+' ? 1 : -1});
    ++index;
  }
  return out;
}

}  // namespace

LegoExample generate_lego(Generator& gen, const LegoOptions& o) {
  WAVSPA_CHECK(o.chain_length >= 1 && o.chain_length <= 26, "generate_lego: chain_length must be "
               "1..26 (one letter per variable), got ", o.chain_length);
  // distinct letters: a partial Fisher-Yates shuffle of a..z
  std::string letters = "abcdefghijklmnopqrstuvwxyz";
  for (int64_t i = 0; i < o.chain_length; ++i) std::swap(letters[i], letters[i + draw(gen, 26 - i)]);
  std::vector<std::string> clauses;
  std::vector<int> values;
  int value = 1;
  for (int64_t i = 0; i < o.chain_length; ++i) {
    const int sign = draw(gen, 2) == 0 ? 1 : -1;
    const std::string rhs = i == 0 ? "1" : std::string(1, letters[i - 1]);
    value *= sign;
    clauses.push_back(std::string(1, letters[i]) + " = " + (sign > 0 ? "+" : "-") + rhs);
    values.push_back(value);
  }
  std::vector<int64_t> order(o.chain_length);
  for (int64_t i = 0; i < o.chain_length; ++i) order[i] = i;
  if (o.shuffle)
    for (int64_t i = o.chain_length - 1; i > 0; --i) std::swap(order[i], order[draw(gen, i + 1)]);
  LegoExample ex;
  for (int64_t k = 0; k < o.chain_length; ++k) {
    ex.source += (k ? " ; " : "") + clauses[order[k]];
    ex.values.push_back(values[order[k]]);
  }
  return ex;
}

std::vector<int> solve_lego(const std::string& source) {
  std::vector<Clause> clauses = parse(source);
  std::map<std::string, size_t> defined;
  for (size_t i = 0; i < clauses.size(); ++i) {
    WAVSPA_CHECK(!defined.count(clauses[i].var), "solve_lego: variable '", clauses[i].var,
                 "' is assigned twice (clause ", i, ")");
    defined[clauses[i].var] = i;
  }
  std::vector<int> value(clauses.size(), 0);
  // Follow each clause back to the constant; the chain has no branches, so this terminates
  // unless the text has a cycle, which the step count catches.
  for (size_t i = 0; i < clauses.size(); ++i) {
    int v = 1;
    size_t at = i, steps = 0;
    while (true) {
      v *= clauses[at].sign;
      if (clauses[at].source == "1") break;
      auto it = defined.find(clauses[at].source);
      WAVSPA_CHECK(it != defined.end(), "solve_lego: clause ", at, " uses '", clauses[at].source,
                   "', which no clause defines");
      at = it->second;
      WAVSPA_CHECK(++steps <= clauses.size(), "solve_lego: the clauses form a cycle through clause ", i);
    }
    value[i] = v;
  }
  return value;
}

LegoDataset generate_lego_dataset(uint64_t seed, int64_t n_train, int64_t n_val, int64_t n_test,
                                  int64_t train_length, int64_t test_length) {
  Generator gen(seed);
  LegoDataset d;
  for (int64_t i = 0; i < n_train; ++i) d.train.push_back(generate_lego(gen, {.chain_length = train_length}));
  for (int64_t i = 0; i < n_val; ++i) d.val.push_back(generate_lego(gen, {.chain_length = train_length}));
  for (int64_t i = 0; i < n_test; ++i) d.test.push_back(generate_lego(gen, {.chain_length = test_length}));
  return d;
}

void write_lego_tsv(const std::string& path, const std::vector<LegoExample>& examples) {
  std::ofstream out(path, std::ios::binary);
  WAVSPA_CHECK(out.good(), "write_lego_tsv: cannot open '", path, "' for writing");
  out << "Source\tTarget\n";
  for (const LegoExample& ex : examples) {
    out << ex.source << '\t';
    for (size_t i = 0; i < ex.values.size(); ++i) out << (i ? " " : "") << (ex.values[i] > 0 ? "+1" : "-1");
    out << '\n';
  }
  WAVSPA_CHECK(out.good(), "write_lego_tsv: writing '", path, "' failed");
}

std::vector<LegoExample> read_lego_tsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  WAVSPA_CHECK(in.good(), "read_lego_tsv: cannot open '", path, "'");
  std::string line;
  WAVSPA_CHECK(std::getline(in, line) && line == "Source\tTarget", path,
               ":1: expected the header 'Source<TAB>Target'");
  std::vector<LegoExample> out;
  for (int64_t lineno = 2; std::getline(in, line); ++lineno) {
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    WAVSPA_CHECK(tab != std::string::npos && line.find('\t', tab + 1) == std::string::npos, path,
                 ":", lineno, ": expected 'source<TAB>targets'");
    LegoExample ex;
    ex.source = line.substr(0, tab);
    std::stringstream ts(line.substr(tab + 1));
    std::string t;
    while (ts >> t) {
      WAVSPA_CHECK(t == "+1" || t == "-1", path, ":", lineno, ": target '", t, "' is not +1 or -1");
      ex.values.push_back(t == "+1" ? 1 : -1);
    }
    std::vector<int> solved;
    try {
      solved = solve_lego(ex.source);
    } catch (const Error& e) {
      throw Error(str(path, ":", lineno, ": ", e.what()));
    }
    WAVSPA_CHECK(solved.size() == ex.values.size(), path, ":", lineno, ": ", solved.size(),
                 " clauses but ", ex.values.size(), " targets");
    out.push_back(std::move(ex));
  }
  return out;
}

TokenDataset lego_tokens(const std::vector<LegoExample>& examples, int64_t max_len, const std::string& name) {
  TokenDataset d;
  d.name = name;
  d.vocab_size = 32;
  d.num_classes = 2;
  int64_t longest = 1;
  for (const LegoExample& ex : examples) {
    std::vector<int32_t> ids, labels;
    size_t clause = 0;
    bool clause_start = true;
    for (char c : ex.source) {
      int32_t id = 0;
      if (c >= 'a' && c <= 'z') id = 1 + (c - 'a');
      else if (c == '=') id = 27;
      else if (c == '+') id = 28;
      else if (c == '-') id = 29;
      else if (c == '1') id = 30;
      else if (c == ';') id = 31;
      else if (c == ' ') continue;
      else WAVSPA_CHECK(false, "lego_tokens: ", name, ": unexpected character '", c, "' in '", ex.source, "'");
      int32_t label = kIgnoreLabel;
      if (clause_start) {
        WAVSPA_CHECK(clause < ex.values.size(), "lego_tokens: ", name, ": '", ex.source, "' has more clauses than values");
        label = ex.values[clause] > 0 ? 1 : 0;
        clause_start = false;
      }
      if (id == 31) clause_start = true, ++clause;
      ids.push_back(id);
      labels.push_back(label);
    }
    WAVSPA_CHECK(clause + 1 == ex.values.size(), "lego_tokens: ", name, ": '", ex.source, "' has ",
                 clause + 1, " clauses but ", ex.values.size(), " values");
    if (max_len > 0 && (int64_t)ids.size() > max_len) ids.resize(max_len), labels.resize(max_len);
    longest = std::max<int64_t>(longest, (int64_t)ids.size());
    d.inputs.push_back(std::move(ids));
    d.token_labels.push_back(std::move(labels));
  }
  d.seq_len = max_len > 0 ? max_len : longest;
  validate(d);
  return d;
}

}  // namespace wavspa::data

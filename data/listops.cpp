// ListOps generation, evaluation, LRA's TSV files and encoding. See data/listops.h.
#include "data/listops.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "core/error.h"

namespace wavspa::data {

namespace {

const char* const kOperators[4] = {"[MIN", "[MAX", "[MED", "[SM"};  // LRA's OPERATORS order
constexpr double kValueP = 0.25;  // LRA's VALUE_P: a node is a digit when random() > 0.25

// Random draws from a Philox Generator, one 128-bit block (4 draws) at a time, so that a
// seed gives the same stream on every machine.
class Draws {
 public:
  explicit Draws(Generator& gen) : gen_(gen) {}
  uint32_t next_u32() {
    if (used_ == 4) {
      PhiloxState s = gen_.reserve(1);
      block_ = philox4x32(s.offset, 0, s.seed);
      used_ = 0;
    }
    return block_[used_++];
  }
  double uniform() { return uint_to_unit(next_u32()); }  // (0, 1], like random.random()
  // Uniform integer in [lo, hi], both included (Python's random.randint). Rejection
  // sampling avoids the bias of a plain modulo.
  int64_t randint(int64_t lo, int64_t hi) {
    uint64_t range = (uint64_t)(hi - lo) + 1;
    uint64_t limit = (uint64_t(1) << 32) - ((uint64_t(1) << 32) % range);
    uint64_t x;
    do x = next_u32(); while (x >= limit);
    return lo + (int64_t)(x % range);
  }

 private:
  Generator& gen_;
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

// LRA's generate_tree, written straight to tokens. The draws come in LRA's order: r, then
// either the digit, or the argument count, every argument (depth first), and last the
// operator. `length` counts what LRA counts: 1 per digit, 2 per operator (itself and "]").
// Once length reaches max_length the tree will be rejected whatever follows, so we stop
// early (`too_long`): this cuts the time spent on huge trees without changing which trees
// are kept or how likely each is.
struct TreeBuilder {
  Draws& draws;
  const ListOpsOptions& opt;
  int64_t length = 0;
  bool too_long = false;

  // A node as a list of tokens; an operator node is {op, arg..., "]"}. LRA's parenthesised
  // form wraps pairs: ((op a1) a2) ... "]", which we produce while writing.
  struct Node {
    int digit = -1;  // >= 0 for a leaf
    int op = -1;
    std::vector<Node> args;
  };

  Node generate(int64_t depth) {
    Node node;
    double r = depth < opt.max_depth ? draws.uniform() : 1.0;
    if (r > kValueP) {
      node.digit = (int)draws.randint(0, 9);
      length += 1;
    } else {
      length += 2;
      int64_t num_values = draws.randint(2, opt.max_args);
      for (int64_t i = 0; i < num_values && !too_long; ++i) node.args.push_back(generate(depth + 1));
      node.op = (int)draws.randint(0, 3);
    }
    if (length >= opt.max_length) too_long = true;
    return node;
  }
};

// LRA's to_string: t = (op, v0); t = (t, v) for each further value; t = (t, END); each
// pair is written "( left right )".
std::string paren_string(const TreeBuilder::Node& n) {
  if (n.digit >= 0) return std::to_string(n.digit);
  std::string t = std::string("( ") + kOperators[n.op] + " " + paren_string(n.args[0]) + " )";
  for (size_t i = 1; i < n.args.size(); ++i) t = "( " + t + " " + paren_string(n.args[i]) + " )";
  return "( " + t + " ] )";
}

void plain_string(const TreeBuilder::Node& n, std::string& out) {
  if (!out.empty()) out += ' ';
  if (n.digit >= 0) {
    out += (char)('0' + n.digit);
    return;
  }
  out += kOperators[n.op];
  for (const auto& a : n.args) plain_string(a, out);
  out += " ]";
}

// Whitespace-separated tokens with their character offsets (for error messages).
struct Token {
  std::string text;
  size_t pos;
};

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !std::isspace((unsigned char)s[i])) ++i;
    if (i > start) tokens.push_back({s.substr(start, i - start), start});
  }
  return tokens;
}

int operator_index(const std::string& t) {
  for (int k = 0; k < 4; ++k)
    if (t == kOperators[k]) return k;
  return -1;
}

bool is_digit_token(const std::string& t) { return t.size() == 1 && t[0] >= '0' && t[0] <= '9'; }

int apply_operator(int op, std::vector<int>& values) {
  switch (op) {
    case 0: return *std::min_element(values.begin(), values.end());
    case 1: return *std::max_element(values.begin(), values.end());
    case 2: {
      // numpy's median (the mean of the two middle values for an even count), truncated
      // toward zero by LRA's int(); values are >= 0, so integer division does the same.
      std::sort(values.begin(), values.end());
      size_t n = values.size();
      return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
    default: {
      int sum = 0;
      for (int v : values) sum += v;
      return sum % 10;
    }
  }
}

// A descent over tokens with "(" and ")" already removed, with the open operators on an
// explicit stack: an expression nested 20,000 deep (100 kB of text) would overflow the call
// stack of a recursive parser.
struct Evaluator {
  const std::string& text;
  const std::vector<Token>& tokens;
  size_t next = 0;

  [[noreturn]] void fail(const std::string& what, size_t at) const {
    if (at < tokens.size())
      throw Error(str("listops: ", what, " at token ", quoted_excerpt(tokens[at].text), " (character ",
                      tokens[at].pos, ") in ", quoted_excerpt(text)));
    throw Error(str("listops: ", what, " at the end of ", quoted_excerpt(text)));
  }

  int expression() {
    struct Open {
      int op;
      std::vector<int> values;
    };
    std::vector<Open> open;
    while (true) {
      if (next >= tokens.size()) {
        if (open.empty()) fail("expected a digit or an operator", next);
        fail(str("missing ']' closing ", kOperators[open.back().op]), next);
      }
      const std::string& t = tokens[next].text;
      int value;
      if (!open.empty() && t == "]") {
        if (open.back().values.empty()) fail(str(kOperators[open.back().op], " has no arguments"), next);
        ++next;
        value = apply_operator(open.back().op, open.back().values);
        open.pop_back();
      } else if (is_digit_token(t)) {
        ++next;
        value = t[0] - '0';
      } else {
        const int op = operator_index(t);
        if (op < 0) fail("expected a digit 0-9 or one of [MIN [MAX [MED [SM", next);
        ++next;
        open.push_back({op, {}});
        continue;
      }
      if (open.empty()) return value;
      open.back().values.push_back(value);
    }
  }
};

}  // namespace

std::string generate_listops(Generator& gen, const ListOpsOptions& opt) {
  WAVSPA_CHECK(opt.max_depth >= 1 && opt.max_args >= 2, "listops: need max_depth >= 1 and max_args >= 2, got max_depth ",
               opt.max_depth, ", max_args ", opt.max_args);
  WAVSPA_CHECK(opt.min_length >= 0 && opt.min_length + 1 < opt.max_length,
               "listops: no length lies strictly between min_length ", opt.min_length, " and max_length ",
               opt.max_length, " (need min_length + 1 < max_length)");
  Draws draws(gen);
  // Generous: LRA's bounds accept several percent of trees. Bounds that the depth and
  // argument limits cannot reach end here instead of looping forever.
  constexpr int64_t kMaxAttempts = 10'000'000;
  for (int64_t attempt = 0; attempt < kMaxAttempts; ++attempt) {
    TreeBuilder builder{draws, opt};
    TreeBuilder::Node root = builder.generate(1);  // LRA starts at depth 1
    if (builder.too_long || builder.length <= opt.min_length) continue;
    if (opt.parentheses) return paren_string(root);
    std::string out;
    plain_string(root, out);
    return out;
  }
  throw Error(str("listops: no tree with ", opt.min_length, " < length < ", opt.max_length, " in ",
                  kMaxAttempts, " attempts (max_depth ", opt.max_depth, ", max_args ", opt.max_args,
                  "); widen the length bounds or raise max_depth/max_args"));
}

int evaluate_listops(const std::string& expression) {
  std::vector<Token> all = tokenize(expression);
  std::vector<Token> tokens;
  // LRA's parentheses only mark its binary pairs; check they balance, then drop them.
  int open = 0;
  for (const Token& t : all) {
    if (t.text == "(") {
      ++open;
    } else if (t.text == ")") {
      if (--open < 0)
        throw Error(str("listops: unmatched ')' (character ", t.pos, ") in ", quoted_excerpt(expression)));
    } else {
      tokens.push_back(t);
    }
  }
  WAVSPA_CHECK(open == 0, "listops: ", open, " unclosed '(' in ", quoted_excerpt(expression));
  Evaluator ev{expression, tokens};
  int value = ev.expression();
  if (ev.next != tokens.size()) ev.fail("unexpected token after the expression", ev.next);
  return value;
}

ListOpsDataset generate_listops_dataset(uint64_t seed, int64_t n_train, int64_t n_val, int64_t n_test,
                                        const ListOpsOptions& options,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  WAVSPA_CHECK(n_train >= 0 && n_val >= 0 && n_test >= 0, "listops: split sizes must be >= 0, got ",
               n_train, "/", n_val, "/", n_test);
  // Each size alone is at most the cap, so the sum cannot overflow.
  WAVSPA_CHECK(n_train <= kMaxListOpsExamples && n_val <= kMaxListOpsExamples && n_test <= kMaxListOpsExamples &&
                   n_train + n_val + n_test <= kMaxListOpsExamples,
               "listops: at most ", kMaxListOpsExamples, " examples in all (LRA has 100,000), got ", n_train, "/",
               n_val, "/", n_test);
  Generator gen(seed);
  const int64_t total = n_train + n_val + n_test;
  std::unordered_set<std::string> seen;
  std::vector<std::string> unique;  // generation order, so the splits are deterministic
  // Duplicates are rare at LRA's lengths but common with small bounds. When the bounds admit
  // fewer distinct trees than asked for, new ones stop coming: a long run of draws without
  // one turns the request into an error instead of an endless loop.
  int64_t stale = 0;
  while ((int64_t)unique.size() < total) {
    WAVSPA_CHECK(stale < kListOpsStaleDraws, "listops: found only ", unique.size(), " distinct expressions of the ",
                 total, " wanted; the last ", kListOpsStaleDraws, " draws gave no new one (these bounds admit ",
                 "few distinct trees): widen the length or depth bounds or ask for fewer");
    std::string e = generate_listops(gen, options);
    if (seen.insert(e).second) {
      unique.push_back(std::move(e));
      stale = 0;
      if (progress && (int64_t)unique.size() % kListOpsProgressEvery == 0) progress((int64_t)unique.size(), total);
    } else {
      ++stale;
    }
  }
  ListOpsDataset ds;
  for (int64_t i = 0; i < total; ++i) {
    ListOpsSplit& split = i < n_train ? ds.train : i < n_train + n_val ? ds.val : ds.test;
    split.targets.push_back(evaluate_listops(unique[i]));
    split.sources.push_back(std::move(unique[i]));
  }
  return ds;
}

void write_listops_tsv(const std::string& path, const ListOpsSplit& split) {
  WAVSPA_CHECK(split.sources.size() == split.targets.size(), "write_listops_tsv(", path, "): ",
               split.sources.size(), " sources but ", split.targets.size(), " targets");
  std::ofstream f(path, std::ios::binary);
  WAVSPA_CHECK(f.good(), "write_listops_tsv: cannot open '", path, "' for writing");
  f << "Source\tTarget\r\n";
  for (size_t i = 0; i < split.sources.size(); ++i) f << split.sources[i] << '\t' << split.targets[i] << "\r\n";
  f.flush();
  WAVSPA_CHECK(f.good(), "write_listops_tsv: writing '", path, "' failed");
}

ListOpsSplit read_listops_tsv(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  WAVSPA_CHECK(f.good(), "read_listops_tsv: cannot open '", path, "'");
  ListOpsSplit split;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = str(path, ":", line_no, ": ");
    if (line_no == 1) {
      WAVSPA_CHECK(line == "Source\tTarget", where, "expected the header 'Source<TAB>Target', got ", quoted_excerpt(line));
      continue;
    }
    size_t tab = line.find('\t');
    WAVSPA_CHECK(tab != std::string::npos, where, "expected 'expression<TAB>label', found no tab in ", quoted_excerpt(line));
    WAVSPA_CHECK(line.find('\t', tab + 1) == std::string::npos, where, "expected one tab, found more in ",
                 quoted_excerpt(line));
    std::string source = line.substr(0, tab), label = line.substr(tab + 1);
    WAVSPA_CHECK(label.size() == 1 && label[0] >= '0' && label[0] <= '9', where,
                 "the label must be an integer 0..9, got ", quoted_excerpt(label));
    try {
      evaluate_listops(source);  // checks the expression parses; the label is not recomputed
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
    split.sources.push_back(std::move(source));
    split.targets.push_back(label[0] - '0');
  }
  WAVSPA_CHECK(line_no >= 1, path, ":1: the file is empty (expected the header 'Source<TAB>Target')");
  return split;
}

int64_t listops_vocab_size() { return 16; }

std::vector<int64_t> encode_listops(const std::string& expression) {
  std::vector<int64_t> ids;
  for (const Token& t : tokenize(expression)) {
    if (t.text == "(" || t.text == ")") continue;
    if (is_digit_token(t.text)) {
      ids.push_back(1 + (t.text[0] - '0'));
    } else if (int op = operator_index(t.text); op >= 0) {
      ids.push_back(11 + op);
    } else if (t.text == "]") {
      ids.push_back(15);
    } else {
      throw Error(str("encode_listops: unknown token ", quoted_excerpt(t.text), " (character ", t.pos, ") in ",
                      quoted_excerpt(expression), "; the vocabulary is 0-9 [MIN [MAX [MED [SM ] ( )"));
    }
  }
  return ids;
}

Tensor encode_batch(const std::vector<std::string>& expressions, int64_t max_len) {
  WAVSPA_CHECK(max_len >= 1, "encode_batch: max_len must be >= 1, got ", max_len);
  const int64_t B = (int64_t)expressions.size();
  Tensor out = Tensor::empty({B, max_len}, kInt64);  // (B, max_len)
  int64_t* p = out.data<int64_t>();
  std::fill(p, p + B * max_len, int64_t(0));  // 0 = padding
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> ids = encode_listops(expressions[b]);
    int64_t n = std::min<int64_t>((int64_t)ids.size(), max_len);  // LRA cuts at max_length too
    std::copy(ids.begin(), ids.begin() + n, p + b * max_len);
  }
  return out;
}

TokenDataset listops_tokens(const ListOpsSplit& split, int64_t max_len, const std::string& name) {
  WAVSPA_CHECK(max_len >= 1, "listops_tokens: max_len must be >= 1, got ", max_len);
  TokenDataset d;
  d.name = name;
  d.vocab_size = listops_vocab_size();
  d.num_classes = 10;
  d.seq_len = max_len;
  d.inputs.reserve(split.sources.size());
  for (const std::string& e : split.sources) {
    std::vector<int64_t> ids = encode_listops(e);
    if ((int64_t)ids.size() > max_len) ids.resize(max_len);
    d.inputs.emplace_back(ids.begin(), ids.end());
  }
  d.labels.assign(split.targets.begin(), split.targets.end());
  validate(d);
  return d;
}

}  // namespace wavspa::data

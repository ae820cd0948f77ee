// Running the tools (tools/*.cpp, from $WAVSPA_BUILD) as a user would, for the tests that
// drive them: tests/train/test_train.cpp and tests/tools/test_bad_input.cpp.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/helpers.h"

namespace wavspa::test {

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

inline std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, sep)) out.push_back(field);
  return out;
}

inline size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

inline bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// A tool of the build under test.
struct Run {
  int rc = -1;
  std::string out, err;  // standard output and standard error
  // The last line of standard output as JSON (null when it is not JSON).
  nlohmann::json last_json() const {
    auto lines = lines_of(out);
    if (lines.empty()) return nlohmann::json();
    return nlohmann::json::parse(lines.back(), nullptr, /*allow_exceptions=*/false);
  }
};

// Runs a shell command (environment assignments may prefix it) with its standard output and
// standard error in files of `dir`; returns the exit status and both texts.
inline Run run_shell(const std::string& cmd, const TempDir& dir) {
  static int n = 0;
  ++n;
  const std::string o = dir / str("cmd", n, ".out"), e = dir / str("cmd", n, ".err");
  const int status = std::system((cmd + " >'" + o + "' 2>'" + e + "'").c_str());
  Run r;
  r.rc = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(o);
  r.err = read_file(e);
  std::filesystem::remove(o), std::filesystem::remove(e);
  return r;
}

// A tiny model for every run here; listops runs also cut the sequences to 48 tokens.
inline const std::string kTiny =
    " --threads 1 --set model.emb_dim=16 --set model.qkv_dim=16 --set model.mlp_dim=32"
    " --set model.classifier_mlp=32 --set model.num_layers=1";
inline const std::string kTinyListops = kTiny + " --set max_len=48";

// Writes a small ListOps data set (200 / 40 / 40 expressions of 10 to 40 tokens) to dir/name.
inline std::string make_listops(const TempDir& dir, const std::string& name = "listops") {
  const std::string data = dir / name;
  Run g = run_shell(build_path("gen-data") + " --task listops --out " + data +
                        " --train 200 --val 40 --test 40 --min-length 10 --max-length 40",
                    dir);
  REQUIRE_MESSAGE(g.rc == 0, g.out, g.err);
  return data;
}

// Expects a command-line failure: status 1, nothing on standard output, one "error: " line on
// standard error holding every fragment.
inline void check_cli_error(const Run& r, const std::vector<std::string>& fragments) {
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  CHECK(count_of(r.err, "error: ") == 1);
  CHECK(lines_of(r.err).size() == 1);
  for (const auto& f : fragments) CHECK_MESSAGE(contains(r.err, f), "lacks '", f, "'");
}


}  // namespace wavspa::test

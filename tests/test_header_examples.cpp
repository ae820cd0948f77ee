// Every public header opens with a usage example, and the example is real code: the Makefile
// runs tests/header_examples.py over PUBLIC_HEADERS to turn each opening example into a
// function of $(BUILD)/gen/header_examples.cpp (so a broken example stops the build, naming
// the header's line), and these cases check the registry and run the examples.
//
//   build/wavspa_tests -tc="header examples*"                       // all of them
//   build/wavspa_tests -tc="header examples: each*" -sc="ops/fft.h"  // one header's example
//
// The rule and its markers are described in docs/api.md.
#include "tests/header_examples.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "tests/helpers.h"

namespace wavspa::test {

namespace {

namespace fs = std::filesystem;

// The source tree: the test program runs from it (`make test`, .ci/run), and the examples
// run elsewhere, so it is noted before any case changes the working folder.
const fs::path source_root = fs::current_path();

// The folders of the public headers besides wavspa.h and backends/backend.h (the Makefile's
// PUBLIC_HEADERS), each of which must show at least one compiled example.
const char* const kFolders[] = {"core", "autograd", "ops", "nn", "models", "data", "train"};

// (Messages below wrap each const char* in std::string: doctest prints a bare one as a pointer.)
bool compiled(const HeaderExample& e) {
  return e.kind == ExampleKind::Run || e.kind == ExampleKind::CompileOnly;
}

// The public headers as the source tree has them now, the way the Makefile lists them.
std::set<std::string> public_headers_on_disk() {
  std::set<std::string> headers = {"wavspa.h", "backends/backend.h"};
  for (const char* folder : kFolders)
    for (const auto& entry : fs::directory_iterator(source_root / folder))
      if (entry.path().extension() == ".h") headers.insert(std::string(folder) + "/" + entry.path().filename().string());
  return headers;
}

// Runs with the working folder changed to `dir`, and std::cout captured (the examples print
// tensors and reports); both are restored however the example ends.
class InFolder {
 public:
  explicit InFolder(const std::string& dir) : saved_cout_(std::cout.rdbuf(captured_.rdbuf())) {
    fs::current_path(dir);
  }
  ~InFolder() {
    fs::current_path(source_root);
    std::cout.rdbuf(saved_cout_);
  }
  InFolder(const InFolder&) = delete;
  InFolder& operator=(const InFolder&) = delete;

 private:
  std::ostringstream captured_;
  std::streambuf* saved_cout_;
};

}  // namespace

std::string example_source_path(const std::string& relative) { return (source_root / relative).string(); }

void example_copy_from_source(const std::string& relative) {
  const fs::path target = fs::current_path() / relative;
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  fs::copy(source_root / relative, target, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

void example_write_file(const std::string& path, const std::string& text) {
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  WAVSPA_CHECK(out.good(), "example_write_file: could not write ", path);
}

TEST_CASE("header examples: every public header has an example or a marker") {
  const auto& examples = header_examples();
  std::set<std::string> registered;
  for (const HeaderExample& e : examples) {
    registered.insert(e.header);
    if (e.kind == ExampleKind::Missing) FAIL_CHECK(std::string(e.header), ": ", std::string(e.reason));
  }
  // The registry was generated from the Makefile's list; a header added since (or a list that
  // missed one) shows here rather than going unchecked.
  for (const std::string& h : public_headers_on_disk())
    if (!registered.count(h))
      FAIL_CHECK(h, " is a public header without an entry in the generated registry: rebuild "
                    "(make build/wavspa_tests runs tests/header_examples.py over PUBLIC_HEADERS)");
  CHECK(registered.size() == public_headers_on_disk().size());
}

TEST_CASE("header examples: at least 50 examples compile, at least one in every folder") {
  const auto& examples = header_examples();
  int n_compiled = 0, n_run = 0;
  std::map<std::string, int> per_folder;
  for (const HeaderExample& e : examples) {
    if (!compiled(e)) continue;
    ++n_compiled;
    if (e.kind == ExampleKind::Run) ++n_run;
    const std::string header = e.header;
    per_folder[header.substr(0, header.find('/'))]++;
    CHECK_MESSAGE(bool(e.function), std::string(e.header));
    CHECK_MESSAGE(e.blocks > 0, std::string(e.header));
  }
  MESSAGE(n_compiled, " of ", examples.size(), " public headers have a compiled example, ", n_run, " of them run");
  CHECK(examples.size() >= 60);
  CHECK(n_compiled >= 50);
  CHECK(n_run >= 45);
  for (const char* folder : kFolders)
    CHECK_MESSAGE(per_folder[folder] >= 1, std::string(folder), "/ has no compiled header example");
}

TEST_CASE("header examples: each runnable example runs") {
  for (const HeaderExample& e : header_examples()) {
    if (e.kind != ExampleKind::Run) continue;
    SUBCASE(e.header) {
      TempDir dir(e.name);
      std::string failure;
      try {
        InFolder in(dir.path);
        e.function();
      } catch (const std::exception& ex) {
        failure = ex.what();
      } catch (...) {
        failure = "an exception that is not a std::exception";
      }
      CHECK_MESSAGE(failure.empty(), "the example of ", std::string(e.header), " threw: ", failure);
    }
  }
}

}  // namespace wavspa::test

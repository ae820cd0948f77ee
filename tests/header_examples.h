// The registry of the public headers' opening examples: tests/header_examples.py writes
// $(BUILD)/gen/header_examples.cpp, which defines header_examples() with one entry per public
// header, and tests/test_header_examples.cpp checks them.
//
//   for (const HeaderExample& e : header_examples())
//     if (e.kind == ExampleKind::Run) e.function();   // throws wavspa::Error if it fails
//
// The rule and its markers are described in docs/api.md ("Every header opens with an example").
#pragma once

#include <string>
#include <vector>

namespace wavspa::test {

// What the test does with a header's example; the header's opening comment decides.
enum class ExampleKind {
  Run,          // compiled and run (no marker)
  CompileOnly,  // "(not run: REASON)": compiled, never called
  NotCompiled,  // "(not compiled: REASON)": for the reader only
  NoExample,    // "(no example: REASON)": nothing to show
  Missing,      // neither an example nor a marker: the test fails naming the header
};

struct HeaderExample {
  const char* header;      // "core/tensor.h", as the Makefile's PUBLIC_HEADERS names it
  const char* name;        // "example_core_tensor_h"
  void (*function)();      // the compiled example; nullptr unless Run or CompileOnly
  ExampleKind kind;
  const char* reason;      // the marker's reason ("" for Run), or what is missing
  int blocks;              // how many blocks of example lines the opening comment holds
};

// Every public header, sorted by path (defined in the generated file).
const std::vector<HeaderExample>& header_examples();

// Helpers for the script's CONTEXT: an example runs in a fresh temporary folder, so what it
// reads from the source tree is copied in, and what it assumes exists is written first.
// (Defined in tests/test_header_examples.cpp.)
std::string example_source_path(const std::string& relative);  // a path of the source tree
void example_copy_from_source(const std::string& relative);     // copied to the same relative path
void example_write_file(const std::string& path, const std::string& text);

}  // namespace wavspa::test

// What the libFuzzer targets of fuzz/ share (built by `make fuzz`, see the Makefile):
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     wavspa::fuzz::refused([&] { parse(wavspa::fuzz::text(data, size)); });
//     return 0;
//   }
//
// A parser passes when every input either parses or throws wavspa::Error: any other
// exception escapes refused() and libFuzzer reports it as a crash, as it does a sanitizer
// finding, a signal or a timeout.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"

namespace wavspa::fuzz {

inline std::string text(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

// Runs f; a wavspa::Error is the clean refusal a bad input must get.
template <typename F>
void refused(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// The readers take paths: each input goes to one file per process (in $TMPDIR, /tmp by
// default), named with `suffix` where the reader goes by the extension.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir && *dir ? dir : "/tmp") + "/wavspa_fuzz_" + std::to_string(::getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();  // not the input's fault: stop the run
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace wavspa::fuzz

// Errors: one exception type for bad user input, one macro for broken invariants.
//
//   WAVSPA_CHECK(a.dim() == 2, "matmul: expected a 2-D tensor, got shape ", a.shape());
//   WAVSPA_ASSERT(offset >= 0);   // internal: reports file:line
//
// Tools catch wavspa::Error, print what(), and exit non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace wavspa {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {

inline void append(std::ostringstream&) {}

template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest);

template <typename T>
void append_one(std::ostringstream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
}
template <typename T>
void append_one(std::ostringstream& os, const T& v) {
  os << v;
}

template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  append_one(os, first);
  append(os, rest...);
}

}  // namespace detail

// Concatenates its arguments with operator<< (vectors print as [a, b, c]).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

// For messages that quote user data: s in single quotes, cut to its first `max` bytes with
// the full length named when it is longer, so a 10 MB bad line makes a short message. Bytes
// a terminal would not show as text (control characters, bytes that are not UTF-8) are
// written as \xNN, so a binary file's first line cannot garble the message.
std::string quoted_excerpt(const std::string& s, size_t max = 80);

[[noreturn]] void throw_internal(const char* file, int line, const std::string& what);

}  // namespace wavspa

// Bad user input: throws wavspa::Error with the concatenated message.
#define WAVSPA_CHECK(cond, ...)                              \
  do {                                                       \
    if (!(cond)) throw ::wavspa::Error(::wavspa::str(__VA_ARGS__)); \
  } while (0)

// Internal invariant: a failure is a wavspa bug, reported with file:line.
#define WAVSPA_ASSERT(cond, ...)                                                    \
  do {                                                                              \
    if (!(cond))                                                                    \
      ::wavspa::throw_internal(__FILE__, __LINE__,                                  \
                               ::wavspa::str("assertion `" #cond "` failed. ", ##__VA_ARGS__)); \
  } while (0)

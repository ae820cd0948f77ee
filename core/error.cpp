#include "core/error.h"

#include <algorithm>

namespace wavspa {

namespace {

// The length of the well-formed UTF-8 sequence of 2 to 4 bytes starting at s[i], or 0.
size_t utf8_sequence(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return (unsigned char)s[k]; };
  const unsigned char c = byte(i);
  const size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  // no overlong 3- and 4-byte forms, no UTF-16 surrogates, nothing past U+10FFFF
  if ((c == 0xE0 && byte(i + 1) < 0xA0) || (c == 0xED && byte(i + 1) > 0x9F) ||
      (c == 0xF0 && byte(i + 1) < 0x90) || (c == 0xF4 && byte(i + 1) > 0x8F))
    return 0;
  return n;
}

}  // namespace

std::string quoted_excerpt(const std::string& s, size_t max) {
  static const char* kHex = "0123456789abcdef";
  std::string out(1, '\'');
  const size_t end = std::min(s.size(), max);
  for (size_t i = 0; i < end;) {
    const unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7F) {
      out += (char)c;
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (const size_t n = c >= 0x80 ? utf8_sequence(s, i) : 0; n > 0 && i + n <= end) {
      out.append(s, i, n);
      i += n;
    } else {
      out.append("\\x").append(1, kHex[c >> 4]).append(1, kHex[c & 15]);
      ++i;
    }
  }
  out += '\'';
  if (s.size() > max) out.append("... (").append(std::to_string(s.size())).append(" bytes)");
  return out;
}

void throw_internal(const char* file, int line, const std::string& what) {
  throw Error(str("internal error at ", file, ":", line, ": ", what,
                  " (this is a wavspa bug; please report it)"));
}

}  // namespace wavspa

// Reader for tests/fixtures/wavelet_reference.bin.gz: wavedec/waverec results of PyWavelets
// 1.1.1, written by tools/gen_wavelet_data.py (which documents the format). Header-only so
// a test can include it without a build-system change; needs -lz.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace wavspa::test {

struct WaveletCase {
  std::string wavelet, mode;
  int64_t n, level;                         // signal length; level passed to wavedec
  std::vector<double> x;                    // input signal, n values
  std::vector<std::vector<double>> coeffs;  // [cA_level, cD_level, ..., cD_1]
  std::vector<double> rec;                  // pywt.waverec(coeffs, wavelet, mode)
};

namespace detail {

// Sequential little-endian reads from a gzip stream. Every read checks that it got all
// its bytes, so a truncated or corrupt file fails with the offset (in the decompressed
// stream) where it went wrong instead of yielding garbage cases.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) throw std::runtime_error(path_ + ": cannot open");
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // `at` is an offset in the decompressed stream: where reading stopped for a truncated
  // file, or where the offending field starts for a bad value.
  [[noreturn]] void fail(const std::string& what, uint64_t at) const {
    throw std::runtime_error(path_ + ": malformed wavelet reference at byte " +
                             std::to_string(at) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { fail(what, offset_); }

  void bytes(void* out, size_t n, const char* what) {
    // gzread takes an unsigned count; the arrays here are far below 4 GiB, but a corrupt
    // length field could ask for more, so read in chunks rather than truncate the count.
    auto* p = static_cast<unsigned char*>(out);
    while (n > 0) {
      unsigned chunk = n > (1u << 30) ? (1u << 30) : static_cast<unsigned>(n);
      int got = gzread(f_, p, chunk);
      if (got < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        fail(std::string("zlib error reading ") + what + ": " + (msg ? msg : "?"));
      }
      offset_ += static_cast<uint64_t>(got);
      if (static_cast<unsigned>(got) != chunk) fail(std::string("truncated in ") + what);
      p += got;
      n -= chunk;
    }
  }

  // Byte by byte assembly makes the little-endian order explicit on any host.
  uint64_t uint(int nbytes, const char* what) {
    unsigned char b[8];
    bytes(b, static_cast<size_t>(nbytes), what);
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }
  uint32_t u32(const char* what) { return static_cast<uint32_t>(uint(4, what)); }

  std::string str(const char* what) {
    std::string s(static_cast<size_t>(uint(1, what)), '\0');
    bytes(s.data(), s.size(), what);
    return s;
  }

  std::vector<double> f64s(uint64_t n, const char* what) {
    // Guard before allocating: a corrupt count must not turn into a huge allocation. No
    // array in the file comes near this (the longest signal is 1000 samples).
    if (n > (1u << 24)) fail(std::string("implausible length ") + std::to_string(n) + " for " + what);
    // One gzread per array (not per value), then assemble each value little-endian.
    std::vector<unsigned char> raw(static_cast<size_t>(n) * 8);
    bytes(raw.data(), raw.size(), what);
    std::vector<double> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i) {
      uint64_t bits = 0;
      for (int b = 7; b >= 0; --b) bits = (bits << 8) | raw[i * 8 + static_cast<size_t>(b)];
      std::memcpy(&v[i], &bits, sizeof bits);  // IEEE-754 binary64 on both sides
    }
    return v;
  }

  // True only at a clean end of stream, used to reject trailing garbage.
  bool at_end() {
    unsigned char b;
    return gzread(f_, &b, 1) == 0 && gzeof(f_);
  }
  uint64_t offset() const { return offset_; }

 private:
  std::string path_;
  gzFile f_;
  uint64_t offset_ = 0;
};

}  // namespace detail

// Throws std::runtime_error naming the file and byte offset on a malformed/truncated file.
inline std::vector<WaveletCase> load_wavelet_reference(const std::string& path) {
  detail::GzReader in(path);
  char magic[8];
  in.bytes(magic, sizeof magic, "magic");
  if (std::memcmp(magic, "WVREF1\0\0", 8) != 0) in.fail("bad magic (expected WVREF1)", 0);
  uint32_t count = in.u32("case count");

  std::vector<WaveletCase> cases;
  cases.reserve(count < 100000 ? count : 100000);
  for (uint32_t i = 0; i < count; ++i) {
    WaveletCase c;
    c.wavelet = in.str("wavelet name");
    c.mode = in.str("mode name");
    c.n = in.u32("N");
    c.level = in.u32("level");
    c.x = in.f64s(static_cast<uint64_t>(c.n), "x");
    const uint64_t k_at = in.offset();
    uint32_t k = in.u32("coefficient array count");
    // wavedec at level L returns L + 1 arrays; anything else means a misaligned read.
    if (k != c.level + 1)
      in.fail("case " + std::to_string(i) + " has " + std::to_string(k) + " arrays for level " +
              std::to_string(c.level),
              k_at);
    std::vector<uint32_t> lengths(k);
    for (uint32_t& len : lengths) len = in.u32("coefficient length");
    for (uint32_t len : lengths) c.coeffs.push_back(in.f64s(len, "coefficients"));
    uint32_t r = in.u32("reconstruction length");
    c.rec = in.f64s(r, "reconstruction");
    cases.push_back(std::move(c));
  }
  if (!in.at_end()) in.fail("trailing data after " + std::to_string(count) + " cases");
  return cases;
}

}  // namespace wavspa::test

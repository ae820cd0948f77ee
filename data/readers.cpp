// Readers for text classification, retrieval pairs, CIFAR-10 and idx files. See data/readers.h.
#include "data/readers.h"

#include <csv.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <unordered_map>

#include "core/error.h"

namespace wavspa::data {

namespace {

// The most classes read_text_classification infers from the labels (num_classes 0).
constexpr int32_t kMaxInferredClasses = 100000;


// ---- files ---------------------------------------------------------------------------------

// A file read through zlib, which passes plain files through unchanged, so every reader
// also takes gzipped input. Tracks the (uncompressed) offset for error messages.
class GzFile {
 public:
  GzFile(const std::string& path, const char* who) : path_(path) {
    errno = 0;
    f_ = gzopen(path.c_str(), "rb");
    WAVSPA_CHECK(f_ != nullptr, who, ": cannot open '", path, "': ",
                 errno ? std::strerror(errno) : "out of memory");
    gzbuffer(f_, 1 << 17);  // larger than the 8 KiB default: fewer read calls on big files
  }
  ~GzFile() { gzclose(f_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Up to n bytes; fewer only at the end of the file. A read error, or a gzip stream cut
  // short, throws with the offset reached.
  size_t read(void* buf, size_t n) {
    size_t total = 0;
    while (total < n) {
      // gzread counts in unsigned int; stay well below its limit.
      unsigned chunk = (unsigned)std::min<size_t>(n - total, size_t(1) << 30);
      int got = gzread(f_, (char*)buf + total, chunk);
      if (got <= 0) {
        int code = Z_OK;
        std::string msg = gzerror(f_, &code);
        if (msg.rfind(path_ + ": ", 0) == 0) msg.erase(0, path_.size() + 2);  // zlib names the file too
        WAVSPA_CHECK(got == 0 && (code == Z_OK || code == Z_STREAM_END), path_, ": ",
                     offset_name(offset_ + total), ": cannot read on (zlib: ", msg, ")");
        break;
      }
      total += (size_t)got;
    }
    offset_ += total;
    return total;
  }

  // Reads everything that is left.
  std::vector<uint8_t> read_all() {
    std::vector<uint8_t> data;
    size_t got = 0;
    do {
      size_t old = data.size();
      data.resize(old + (size_t(1) << 20));
      got = read(data.data() + old, size_t(1) << 20);
      data.resize(old + got);
    } while (got > 0);
    return data;
  }

  int64_t offset() const { return (int64_t)offset_; }
  // "byte offset N", saying when N counts decompressed bytes.
  std::string offset_name(size_t offset) const {
    return str("byte offset ", offset, gzdirect(f_) ? "" : " (of the decompressed data)");
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
  size_t offset_ = 0;
};

// Physical lines, each with its '\n' when it has one (the last line may not).
class LineReader {
 public:
  explicit LineReader(GzFile& file) : file_(file), buf_(1 << 16) {}
  bool next(std::string& line) {
    line.clear();
    for (;;) {
      if (pos_ == end_) {
        end_ = file_.read(buf_.data(), buf_.size());
        pos_ = 0;
        if (end_ == 0) return !line.empty();
      }
      const char* s = buf_.data() + pos_;
      const void* nl = std::memchr(s, '\n', end_ - pos_);
      size_t n = nl ? (size_t)((const char*)nl - s) + 1 : end_ - pos_;
      line.append(s, n);
      pos_ += n;
      if (nl) return true;
    }
  }

 private:
  GzFile& file_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
};

// ---- CSV / TSV records ---------------------------------------------------------------------

struct Record {
  int64_t line;  // where the record starts (1-based)
  std::vector<std::string> fields;
};

bool is_blank_line(const std::string& line) { return line == "\n" || line == "\r\n"; }

// For messages: a value shown in quotes, shortened if long.
std::string shown(const std::string& s) {
  constexpr size_t kMax = 40;
  return "'" + (s.size() <= kMax ? s : s.substr(0, kMax) + "...") + "'";
}

// State shared with libcsv's callbacks. They are called from C, so they must not throw: they
// only collect, and a failure (bad_alloc) is kept and rethrown after csv_parse returns.
struct CsvState {
  int64_t line = 0;         // the physical line being fed
  bool in_record = false;
  int64_t record_line = 0;  // where the current record started
  int64_t field_line = 0;   // where the current field started
  std::vector<std::string> fields;
  std::vector<Record> done;  // records finished by the last csv_parse call
  std::exception_ptr failure;
};

void on_field(void* s, size_t len, void* data) {
  auto* st = (CsvState*)data;
  try {
    if (!st->in_record) {  // a record that began after a lone '\r' inside this line
      st->in_record = true;
      st->record_line = st->line;
    }
    st->fields.emplace_back(s ? (const char*)s : "", len);
    st->field_line = st->line;  // the next field starts right after this delimiter
  } catch (...) {
    st->failure = std::current_exception();
  }
}

void on_record(int, void* data) {
  auto* st = (CsvState*)data;
  try {
    st->done.push_back({st->record_line, std::move(st->fields)});
    st->fields.clear();
    st->in_record = false;
  } catch (...) {
    st->failure = std::current_exception();
  }
}

// libcsv trims spaces and tabs around unquoted fields by default; the bytes of a text are
// data here, so nothing counts as a space.
int no_space(unsigned char) { return 0; }

// The parser, freed however we leave.
struct CsvParser {
  csv_parser p;
  CsvParser(char delim) {
    WAVSPA_CHECK(csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) == 0, "libcsv: csv_init failed");
    csv_set_delim(&p, (unsigned char)delim);
    csv_set_space_func(&p, no_space);
  }
  ~CsvParser() { csv_free(&p); }
  CsvParser(const CsvParser&) = delete;
  CsvParser& operator=(const CsvParser&) = delete;
};

// Calls `use` on every record of a delimited text file, in order. With quoting, libcsv parses
// the file; it is fed one physical line at a time so that every record and every error can
// be given its line number. Without quoting, each line is split at every delimiter.
void for_each_record(const std::string& path, char delim, bool quoting, const char* who,
                     const std::function<void(const Record&)>& use) {
  GzFile file(path, who);
  LineReader lines(file);
  std::string line;
  int64_t line_no = 0;
  bool any_byte = false;
  CsvParser parser(delim);
  CsvState st;

  while (lines.next(line)) {
    ++line_no;
    any_byte = true;
    // A byte order mark (Excel writes one) would otherwise stick to the first field.
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (!quoting) {
      if (is_blank_line(line)) continue;
      if (!line.empty() && line.back() == '\n') line.pop_back();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      Record r{line_no, {}};
      size_t start = 0;
      for (;;) {
        size_t d = line.find(delim, start);
        r.fields.push_back(line.substr(start, d == std::string::npos ? std::string::npos : d - start));
        if (d == std::string::npos) break;
        start = d + 1;
      }
      use(r);
      continue;
    }
    st.line = line_no;
    if (!st.in_record && !is_blank_line(line)) {
      st.in_record = true;
      st.record_line = st.field_line = line_no;
    }
    size_t parsed = csv_parse(&parser.p, line.data(), line.size(), on_field, on_record, &st);
    if (st.failure) std::rethrow_exception(st.failure);
    if (parsed != line.size()) {
      // Strict mode stops at the offending byte: a quote inside an unquoted field, or
      // something other than a delimiter or a line end after a closing quote.
      const std::string where = str(path, ":", line_no, ": column ", parsed + 1, ": ");
      if (line[parsed] == '"')
        throw Error(str(where, "a quote inside an unquoted field; quote the whole field and double "
                               "the quotes in it (\"a \"\"b\"\" c\"), or read with quoting off"));
      throw Error(str(where, "expected a delimiter or the end of the line after a closing quote, "
                             "found ", shown(std::string(1, line[parsed]))));
    }
    for (const Record& r : st.done) use(r);
    st.done.clear();
  }
  WAVSPA_CHECK(any_byte, path, ":1: the file is empty");
  if (quoting) {
    if (csv_fini(&parser.p, on_field, on_record, &st) != 0)
      throw Error(str(path, ":", st.field_line, ": a quoted field opened on this line is never closed "
                      "(the file ends at line ", line_no, ")"));
    if (st.failure) std::rethrow_exception(st.failure);
    for (const Record& r : st.done) use(r);
  }
}

char resolve_delimiter(const std::string& path, Delimiter d, const char* who) {
  if (d == Delimiter::kComma) return ',';
  if (d == Delimiter::kTab) return '\t';
  std::string name = path;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return (char)std::tolower(c); });
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with(".gz")) name.resize(name.size() - 3);
  if (ends_with(".csv")) return ',';
  if (ends_with(".tsv") || ends_with(".txt")) return '\t';
  throw Error(str(who, ": cannot tell the delimiter of '", path,
                  "' from its extension (.csv = comma, .tsv or .txt = tab); set TextFileOptions::delimiter"));
}

std::string lower_trimmed(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  std::string t = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return (char)std::tolower(c); });
  return t;
}

// Bytes + 1, cut to max_len: id 0 stays free for padding.
std::vector<int32_t> byte_ids(const std::string& text, int64_t max_len) {
  size_t n = std::min<size_t>(text.size(), (size_t)max_len);
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = (int32_t)(unsigned char)text[i] + 1;
  return ids;
}

constexpr int64_t kByteVocab = 257;

// ---- CIFAR-10 ------------------------------------------------------------------------------

constexpr size_t kCifarPixels = 32 * 32;
constexpr size_t kCifarRecord = 1 + 3 * kCifarPixels;  // 3073

// Each step rounds to float32 exactly once. Products and sums of these floats are exact in
// double (the sum's terms lie within 2^12 of each other in magnitude), so computing in double
// and narrowing gives float32 arithmetic bit for bit. Writing it this way also keeps the
// compiler from fusing a multiply and an add into an FMA (g++ does that by default in C++),
// which would skip a rounding.
inline float f32_mul(float a, float b) { return (float)((double)a * (double)b); }
inline float f32_add(float a, float b) { return (float)((double)a + (double)b); }

// tf.image.rgb_to_grayscale on uint8: convert_image_dtype to float32 (x * float32(1/255)),
// a dot product with float32 (0.2989, 0.5870, 0.1140), then convert_image_dtype back to uint8
// (x * 255.5, cast truncating toward zero). See data/readers.h.
uint8_t tf_grayscale(uint8_t r, uint8_t g, uint8_t b) {
  const float scale = (float)(1.0 / 255.0);
  float gray = f32_mul(f32_mul((float)r, scale), 0.2989f);
  gray = f32_add(gray, f32_mul(f32_mul((float)g, scale), 0.5870f));
  gray = f32_add(gray, f32_mul(f32_mul((float)b, scale), 0.1140f));
  return (uint8_t)f32_mul(gray, 255.5f);  // <= 0.9999 * 255.5 < 256: never out of range
}

// ---- idx -----------------------------------------------------------------------------------

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

std::string hex(uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*X", digits, v);
  return buf;
}

}  // namespace

// ---- text classification -------------------------------------------------------------------

TokenDataset read_text_classification(const std::string& path, int64_t max_len, const TextFileOptions& opt) {
  const char* who = "read_text_classification";
  WAVSPA_CHECK(max_len >= 1, who, "(", path, "): max_len must be >= 1, got ", max_len);
  WAVSPA_CHECK(opt.num_classes >= 0, who, "(", path, "): num_classes must be >= 0 (0 = from the labels), got ",
               opt.num_classes);
  const char delim = resolve_delimiter(path, opt.delimiter, who);
  const std::string label_name = lower_trimmed(opt.label_column), text_name = lower_trimmed(opt.text_column);

  TokenDataset d;
  d.name = path;
  d.vocab_size = kByteVocab;
  d.seq_len = max_len;
  bool first = true, header = false, words = false;
  size_t num_fields = 0, label_col = 0, text_col = 1;
  int64_t first_line = 0;
  int32_t max_label = -1;

  for_each_record(path, delim, opt.quoting, who, [&](const Record& r) {
    const std::string where = str(path, ":", r.line, ": ");
    if (first) {
      first = false;
      first_line = r.line;
      num_fields = r.fields.size();
      WAVSPA_CHECK(num_fields >= 2, where, "expected at least 2 fields (a label and a text) separated by ",
                   delim == ',' ? "commas" : "tabs", ", found 1: ", shown(r.fields[0]));
      std::vector<std::string> names;
      for (const std::string& f : r.fields) names.push_back(lower_trimmed(f));
      auto label_it = std::find(names.begin(), names.end(), label_name);
      if (label_it != names.end()) {
        header = true;
        auto text_it = std::find(names.begin(), names.end(), text_name);
        WAVSPA_CHECK(text_it != names.end(), where, "the header has a '", opt.label_column, "' column but no '",
                     opt.text_column, "' column (it has ", r.fields, "); set TextFileOptions::text_column");
        label_col = (size_t)(label_it - names.begin());
        text_col = (size_t)(text_it - names.begin());
        return;
      }
    }
    WAVSPA_CHECK(r.fields.size() == num_fields, where, "expected ", num_fields, " fields (as on line ", first_line,
                 "), found ", r.fields.size());
    const std::string raw = r.fields[label_col], label = lower_trimmed(raw);
    int32_t value = -1;
    if (label == "pos" || label == "positive") {
      value = 1, words = true;
    } else if (label == "neg" || label == "negative") {
      value = 0, words = true;
    } else {
      // Digits only, at most 9 of them, so the value fits an int32 comfortably.
      bool digits = !label.empty() && label.size() <= 9 &&
                    std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
      WAVSPA_CHECK(digits, where, "expected a label (an integer >= 0, or pos/neg/positive/negative) in column ",
                   label_col + 1, ", found ", shown(raw));
      value = (int32_t)std::stol(label);
    }
    WAVSPA_CHECK(opt.num_classes == 0 || value < opt.num_classes, where, "label ", value,
                 " is out of range: num_classes is ", opt.num_classes, " (labels 0..", opt.num_classes - 1, ")");
    // With the class count taken from the labels, one stray large label would size the
    // classifier (a label of 999999999 asked for 64 GB).
    WAVSPA_CHECK(opt.num_classes > 0 || value < kMaxInferredClasses, where, "label ", value, " is too large for a ",
                 "class count taken from the labels (at most ", kMaxInferredClasses, " classes); a typo? ",
                 "Set num_classes if the labels really go that high");
    max_label = std::max(max_label, value);
    d.labels.push_back(value);
    d.inputs.push_back(byte_ids(r.fields[text_col], max_len));
  });

  WAVSPA_CHECK(d.size() > 0, path, ": no examples", header ? str(" after the header on line ", first_line) : "");
  d.num_classes = opt.num_classes > 0 ? opt.num_classes : std::max<int64_t>(max_label + 1, words ? 2 : 1);
  validate(d);
  return d;
}

// ---- retrieval pairs -----------------------------------------------------------------------

TokenDataset read_retrieval_pairs(const std::string& path, int64_t max_len, const RetrievalOptions& opt) {
  const char* who = "read_retrieval_pairs";
  WAVSPA_CHECK(max_len >= 1, who, "(", path, "): max_len must be >= 1, got ", max_len);
  TokenDataset d;
  d.name = path;
  d.vocab_size = kByteVocab;
  d.num_classes = 2;
  d.seq_len = max_len;
  for_each_record(path, '\t', opt.quoting, who, [&](const Record& r) {
    const std::string where = str(path, ":", r.line, ": ");
    WAVSPA_CHECK(r.fields.size() == 5, where, "expected 5 tab-separated fields (label, id1, id2, text1, text2), found ",
                 r.fields.size());
    // LRA reads the label as a float32 and casts it to int32; only 0 and 1 are classes.
    const std::string label = lower_trimmed(r.fields[0]);
    double value = -1;
    auto [end, ec] = std::from_chars(label.data(), label.data() + label.size(), value);
    WAVSPA_CHECK(ec == std::errc() && end == label.data() + label.size() && (value == 0.0 || value == 1.0), where,
                 "expected the label 0 or 1 (written as a number, e.g. 1 or 1.0) in field 1, found ", shown(r.fields[0]));
    d.labels.push_back(value == 1.0 ? 1 : 0);
    d.inputs.push_back(byte_ids(r.fields[3], max_len));
    d.inputs2.push_back(byte_ids(r.fields[4], max_len));
  });
  WAVSPA_CHECK(d.size() > 0, path, ": no examples");
  validate(d);
  return d;
}

// ---- CIFAR-10 ------------------------------------------------------------------------------

TokenDataset read_cifar10(const std::vector<std::string>& paths, bool grayscale) {
  WAVSPA_CHECK(!paths.empty(), "read_cifar10: no files given");
  TokenDataset d;
  d.name = paths.size() == 1 ? paths[0] : str(paths[0], " and ", paths.size() - 1, " more");
  d.vocab_size = 256;
  d.num_classes = 10;
  d.seq_len = (int64_t)(grayscale ? kCifarPixels : 3 * kCifarPixels);
  for (const std::string& path : paths) {
    GzFile file(path, "read_cifar10");
    const std::vector<uint8_t> bytes = file.read_all();
    WAVSPA_CHECK(!bytes.empty(), path, ": the file is empty (expected records of ", kCifarRecord,
                 " bytes: a label byte, then 1024 red, 1024 green and 1024 blue bytes)");
    const size_t whole = bytes.size() / kCifarRecord * kCifarRecord;
    WAVSPA_CHECK(whole == bytes.size(), path, ": ", bytes.size(), " bytes is not a whole number of ", kCifarRecord,
                 "-byte records: the record at ", file.offset_name(whole), " has only ", bytes.size() - whole,
                 " bytes (expected ", kCifarRecord, ")");
    for (size_t at = 0; at < bytes.size(); at += kCifarRecord) {
      const uint8_t* rec = bytes.data() + at;
      WAVSPA_CHECK(rec[0] <= 9, path, ": ", file.offset_name(at), " (record ", at / kCifarRecord,
                   "): expected a label byte 0..9, found ", (int)rec[0]);
      const uint8_t *r = rec + 1, *g = r + kCifarPixels, *b = g + kCifarPixels;
      std::vector<int32_t> tokens(d.seq_len);
      for (size_t p = 0; p < kCifarPixels; ++p) {
        if (grayscale) {
          tokens[p] = tf_grayscale(r[p], g[p], b[p]);
        } else {
          tokens[3 * p] = r[p], tokens[3 * p + 1] = g[p], tokens[3 * p + 2] = b[p];
        }
      }
      d.inputs.push_back(std::move(tokens));
      d.labels.push_back(rec[0]);
    }
  }
  validate(d);
  return d;
}

// ---- idx -----------------------------------------------------------------------------------

IdxArray read_idx(const std::string& path) {
  GzFile file(path, "read_idx");
  uint8_t magic[4];
  size_t got = file.read(magic, 4);
  WAVSPA_CHECK(got == 4, path, ": truncated: expected a 4-byte idx magic number at byte offset 0, found ", got,
               " bytes");
  const uint32_t m = big_endian_u32(magic);
  WAVSPA_CHECK(magic[0] == 0 && magic[1] == 0, path, ": byte offset 0: expected an idx magic number 0x000008NN "
               "(0x00000801 for labels, 0x00000803 for images), found ", hex(m, 8), " (not an idx file?)");
  WAVSPA_CHECK(magic[2] == 0x08, path, ": byte offset 2: expected the type code 0x08 (unsigned byte), found ",
               hex(magic[2], 2), "; other idx element types are not supported");
  WAVSPA_CHECK(magic[3] >= 1 && magic[3] <= 4, path, ": byte offset 3: expected 1 to 4 dimensions (1 for labels, "
               "3 for images), found ", (int)magic[3]);

  IdxArray a;
  const int ndim = magic[3];
  uint8_t dims[16];
  got = file.read(dims, 4 * (size_t)ndim);
  WAVSPA_CHECK(got == 4 * (size_t)ndim, path, ": truncated: expected ", ndim, " 4-byte sizes from byte offset 4 to ",
               4 + 4 * ndim, ", the file ends at byte offset ", 4 + got);
  // Bounded so a corrupt header cannot ask for an absurd allocation.
  constexpr uint64_t kMaxBytes = uint64_t(1) << 32;
  uint64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    uint32_t n = big_endian_u32(dims + 4 * i);
    WAVSPA_CHECK(n > 0, path, ": byte offset ", 4 + 4 * i, ": dimension ", i, " has size 0");
    total *= n;  // each factor < 2^32 and the running product <= 2^32: no overflow
    WAVSPA_CHECK(total <= kMaxBytes, path, ": byte offset ", 4 + 4 * i, ": the sizes so far (", a.dims, " then ", n,
                 ") ask for more than 4 GiB of data; a corrupt header?");
    a.dims.push_back(n);
  }
  const int64_t data_start = 4 + 4 * ndim;
  // Read in pieces rather than allocating `total` up front: a truncated file then costs only
  // what it holds.
  constexpr size_t kPiece = size_t(1) << 22;
  while (a.data.size() < total) {
    size_t old = a.data.size(), want = std::min<size_t>(kPiece, total - old);
    a.data.resize(old + want);
    got = file.read(a.data.data() + old, want);
    WAVSPA_CHECK(got == want, path, ": truncated: the sizes ", a.dims, " call for ", total, " data bytes from byte offset ",
                 data_start, " to ", data_start + (int64_t)total, ", but the data ends at ",
                 file.offset_name((size_t)file.offset()));
  }
  uint8_t extra;
  WAVSPA_CHECK(file.read(&extra, 1) == 0, path, ": expected the end of the file at ",
               file.offset_name((size_t)data_start + total), " after ", total, " data bytes (sizes ", a.dims,
               "), found more bytes");
  return a;
}

TokenDataset read_idx_dataset(const std::string& images, const std::string& labels, int64_t limit) {
  IdxArray x = read_idx(images), y = read_idx(labels);
  WAVSPA_CHECK(x.dims.size() == 3, images, ": expected an image file with 3 dims (count, rows, cols; magic 0x00000803), "
               "found ", x.dims.size(), " dims ", x.dims);
  WAVSPA_CHECK(y.dims.size() == 1, labels, ": expected a label file with 1 dim (magic 0x00000801), found ", y.dims.size(),
               " dims ", y.dims);
  WAVSPA_CHECK(x.dims[0] == y.dims[0], images, " holds ", x.dims[0], " images but ", labels, " holds ", y.dims[0],
               " labels");
  const int64_t n = limit >= 0 ? std::min(limit, x.dims[0]) : x.dims[0];
  const int64_t pixels = x.dims[1] * x.dims[2];
  TokenDataset d;
  d.name = images;
  d.vocab_size = 256;
  d.num_classes = 10;
  d.seq_len = pixels;
  d.inputs.reserve((size_t)n);
  d.labels.reserve((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    WAVSPA_CHECK(y.data[i] <= 9, labels, ": byte offset ", 8 + i, " (label ", i, "): expected a label 0..9, found ",
                 (int)y.data[i]);
    const uint8_t* p = x.data.data() + i * pixels;
    d.inputs.emplace_back(p, p + pixels);
    d.labels.push_back(y.data[i]);
  }
  validate(d);
  return d;
}

std::string fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

// ---- vocabulary files ----------------------------------------------------------------------

std::vector<std::string> read_vocab(const std::string& path) {
  GzFile file(path, "read_vocab");
  LineReader lines(file);
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int64_t> seen;  // token -> line
  std::string line;
  int64_t line_no = 0;
  while (lines.next(line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    WAVSPA_CHECK(!line.empty(), path, ":", line_no, ": empty token (each line holds one token; its id is the line ",
                 "index from 0)");
    auto [it, fresh] = seen.emplace(line, line_no);
    WAVSPA_CHECK(fresh, path, ":", line_no, ": duplicate token ", shown(line), ", first on line ", it->second);
    tokens.push_back(std::move(line));
  }
  WAVSPA_CHECK(!tokens.empty(), path, ":1: the file is empty (expected one token per line)");
  return tokens;
}

void write_vocab(const std::string& path, const std::vector<std::string>& tokens) {
  WAVSPA_CHECK(!tokens.empty(), "write_vocab(", path, "): no tokens (read_vocab rejects an empty file)");
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    WAVSPA_CHECK(!t.empty(), "write_vocab(", path, "): token ", i, " is empty");
    WAVSPA_CHECK(t.find_first_of("\r\n") == std::string::npos, "write_vocab(", path, "): token ", i,
                 " contains a line break: ", shown(t));
    auto [it, fresh] = seen.emplace(t, i);
    WAVSPA_CHECK(fresh, "write_vocab(", path, "): token ", i, " ", shown(t), " repeats token ", it->second);
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  WAVSPA_CHECK(f != nullptr, "write_vocab: cannot open '", path, "' for writing: ", std::strerror(errno));
  bool ok = true;
  for (const std::string& t : tokens)
    ok = ok && std::fwrite(t.data(), 1, t.size(), f) == t.size() && std::fputc('\n', f) != EOF;
  ok = (std::fclose(f) == 0) && ok;
  WAVSPA_CHECK(ok, "write_vocab: writing '", path, "' failed");
}

}  // namespace wavspa::data

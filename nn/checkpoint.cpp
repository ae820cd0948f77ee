#include "nn/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "core/json_fields.h"

namespace wavspa::nn {

// The bytes of a tensor are written and read as they lie in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors data are little-endian; a big-endian host needs byte swapping here");

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// The reference implementation (huggingface/safetensors, tensor.rs MAX_HEADER_SIZE) refuses
// larger headers, so that a hostile length cannot make a reader parse gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
const char* const kMetadataKey = "__metadata__";

std::string errno_message() { return std::generic_category().message(errno); }

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::BFloat16: return "BF16";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

bool parse_dtype(const std::string& name, DType& out) {
  if (name == "F32") out = DType::Float32;
  else if (name == "F64") out = DType::Float64;
  else if (name == "I32") out = DType::Int32;
  else if (name == "I64") out = DType::Int64;
  else if (name == "BF16") out = DType::BFloat16;
  else if (name == "BOOL") out = DType::Bool;
  else return false;
  return true;
}

// Python's safetensors writes data by dtype, in the reverse order of its Dtype enum
// (... BF16 < I32 < U32 < F32 < F64 < I64 < U64), then by name. Following it keeps our files
// byte-identical to Python's and every tensor aligned to its element size.
int layout_rank(DType t) {
  switch (t) {
    case DType::Int64: return 0;
    case DType::Float64: return 1;
    case DType::Float32: return 2;
    case DType::Int32: return 3;
    case DType::BFloat16: return 4;
    case DType::Bool: return 5;
  }
  return 6;
}

// ---- writing ---------------------------------------------------------------------------

// Writes to the temporary file, counting bytes so the crash hook can stop half-way.
struct TempWriter {
  int fd = -1;
  std::string path;      // the checkpoint being written, for messages
  std::string tmp_path;  // the file actually written
  int64_t crash_after = -1;
  int64_t written = 0;
  bool crashed = false;

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    size_t todo = n;
    bool crash_now = false;
    if (crash_after >= 0 && written + (int64_t)n > crash_after) {
      todo = (size_t)(crash_after - written);
      crash_now = true;
    }
    while (todo > 0) {
      ssize_t w = ::write(fd, p, todo);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error(str("save_safetensors: '", path, "': writing the temporary file '", tmp_path,
                        "' failed after ", written, " bytes: ", errno_message()));
      }
      p += w;
      todo -= (size_t)w;
      written += w;
    }
    if (crash_now) {
      crashed = true;
      throw Error(str("save_safetensors: '", path, "': simulated crash after ", written,
                      " bytes of the temporary file '", tmp_path, "'"));
    }
  }
};

// Opens a fresh file next to `path`. O_EXCL so two writers never share one; mode 0666 so the
// umask decides the permissions, as for any file the user creates.
int open_temp_file(const std::string& path, std::string& tmp_path) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_path = str(path, ".tmp.", ::getpid(), ".", counter++);
    int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST)
      throw Error(str("save_safetensors: '", path, "': cannot create the temporary file '",
                      tmp_path, "': ", errno_message()));
  }
  throw Error(str("save_safetensors: '", path,
                  "': cannot find an unused temporary file name next to it"));
}

// After rename() the new name lives in the directory's data; without this fsync a power cut
// could bring back the old directory entry.
void sync_directory(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw Error(str("save_safetensors: '", path, "' was written but its directory '",
                    dir.string(), "' cannot be opened to sync it: ", errno_message()));
  int rc = ::fsync(fd);
  int saved_errno = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory (EINVAL); there is nothing more to do there.
  if (rc != 0 && saved_errno != EINVAL) {
    errno = saved_errno;
    throw Error(str("save_safetensors: '", path, "' was written but syncing its directory '",
                    dir.string(), "' failed: ", errno_message()));
  }
}

// ---- reading ---------------------------------------------------------------------------

struct EntryInfo {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Reads exactly n bytes at `offset`.
void read_at(int fd, void* data, size_t n, uint64_t offset, const std::string& path) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, (off_t)offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(str("load_safetensors: '", path, "': read failed at byte ", offset, ": ",
                      errno_message()));
    }
    if (r == 0)
      throw Error(str("load_safetensors: '", path, "': unexpected end of file at byte ", offset,
                      " (was the file changed while being read?)"));
    p += r;
    n -= (size_t)r;
    offset += (uint64_t)r;
  }
}

// Parses the header, refusing duplicate keys at any level: the spec disallows them, and a JSON
// library would otherwise keep one of them silently.
json parse_header(const std::string& text, const std::string& path) {
  std::vector<std::set<std::string>> keys_seen;  // one set per open object
  std::string duplicate;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_seen.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys_seen.pop_back();
    } else if (event == json::parse_event_t::key && !keys_seen.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys_seen.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, callback);
  } catch (const json::exception& e) {
    throw Error(str("load_safetensors: '", path, "': the header is not valid JSON: ", e.what()));
  }
  WAVSPA_CHECK(duplicate.empty(), "load_safetensors: '", path, "': duplicate key '", duplicate,
               "' in the header");
  WAVSPA_CHECK(header.is_object(), "load_safetensors: '", path,
               "': the header must be a JSON object, got ", header.type_name());
  return header;
}

// A JSON number that is a non-negative integer no larger than `max`.
bool get_count(const json& v, uint64_t max, uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return out <= max;
}

EntryInfo parse_entry(const std::string& name, const json& v, const std::string& path) {
  const std::string where = str("load_safetensors: '", path, "': tensor '", name, "': ");
  WAVSPA_CHECK(v.is_object(), where,
               "expected an object with dtype, shape and data_offsets, got ", json_for_message(v));
  for (const auto& [field, value] : v.items()) {
    WAVSPA_CHECK(field == "dtype" || field == "shape" || field == "data_offsets", where,
                 "unknown field '", field, "' (expected only dtype, shape and data_offsets)");
  }
  WAVSPA_CHECK(v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), where,
               "missing field: expected dtype, shape and data_offsets, got ", json_for_message(v));

  EntryInfo info;
  info.name = name;
  const json& dtype = v["dtype"];
  WAVSPA_CHECK(dtype.is_string(), where, "dtype must be a string, got ", json_for_message(dtype));
  WAVSPA_CHECK(parse_dtype(dtype.get<std::string>(), info.dtype), where, "unsupported dtype ",
               json_for_message(dtype), " (wavspa reads F32, F64, BF16, I32 and I64)");

  // The product of the non-zero sizes must fit in int64, or strides would overflow even for
  // an empty tensor.
  const json& shape = v["shape"];
  WAVSPA_CHECK(shape.is_array(), where, "shape must be an array, got ", json_for_message(shape));
  uint64_t nonzero_product = 1, numel = 1;
  const uint64_t int64_max = (uint64_t)std::numeric_limits<int64_t>::max();
  for (const json& d : shape) {
    uint64_t size = 0;
    WAVSPA_CHECK(get_count(d, int64_max, size), where,
                 "shape must hold non-negative integers, got ", json_for_message(shape));
    if (size != 0) {
      WAVSPA_CHECK(!__builtin_mul_overflow(nonzero_product, size, &nonzero_product) &&
                       nonzero_product <= int64_max,
                   where, "shape ", json_for_message(shape), " is too large");
    }
    numel *= size;  // cannot overflow: bounded by nonzero_product
    info.shape.push_back((int64_t)size);
  }

  const json& offsets = v["data_offsets"];
  WAVSPA_CHECK(offsets.is_array() && offsets.size() == 2 &&
                   get_count(offsets[0], std::numeric_limits<uint64_t>::max(), info.begin) &&
                   get_count(offsets[1], std::numeric_limits<uint64_t>::max(), info.end),
               where, "data_offsets must be two non-negative integers [begin, end], got ",
               json_for_message(offsets));
  WAVSPA_CHECK(info.begin <= info.end, where, "data_offsets ", json_for_message(offsets),
               " end before they begin");
  uint64_t nbytes = 0;
  WAVSPA_CHECK(!__builtin_mul_overflow(numel, (uint64_t)dtype_size(info.dtype), &nbytes), where,
               "shape ", json_for_message(shape), " is too large");
  WAVSPA_CHECK(info.end - info.begin == nbytes, where, "data_offsets ", json_for_message(offsets), " span ",
               info.end - info.begin, " bytes but dtype ", dtype.get<std::string>(), " and shape ",
               json_for_message(shape), " need ", nbytes);
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& path) {
  const std::string where = str("load_safetensors: '", path, "': ", kMetadataKey, ": ");
  WAVSPA_CHECK(v.is_object(), where, "expected an object of strings, got ", json_for_message(v));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    WAVSPA_CHECK(value.is_string(), where, "the value of '", key, "' must be a string, got ",
                 value.type_name(), " ", json_for_message(value));
    out[key] = value.get<std::string>();
  }
  return out;
}

// CRC-32 (zlib's, the gzip polynomial) of a tensor's bytes, as 8 lowercase hex digits.
std::string crc32_hex(const Tensor& host) {
  const size_t nbytes = (size_t)host.numel() * host.element_size();
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(host.raw_data());
  for (size_t done = 0; done < nbytes;) {  // zlib takes uInt lengths
    const uInt n = (uInt)std::min<size_t>(nbytes - done, 1u << 30);
    crc = ::crc32(crc, p + done, n);
    done += n;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lx", (unsigned long)(crc & 0xffffffffUL));
  return buf;
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

void save_safetensors(const std::string& path, const StateDict& tensors,
                      const std::map<std::string, std::string>& metadata,
                      const SaveOptions& options) {
  WAVSPA_CHECK(!path.empty(), "save_safetensors: the path is empty");

  // Bring everything to packed host memory first, so that nothing can fail once the file exists.
  struct Item {
    std::string name;
    Tensor host;  // (CPU, contiguous)
  };
  std::vector<Item> items;
  for (const auto& [name, t] : tensors) {
    WAVSPA_CHECK(name != kMetadataKey, "save_safetensors: '", path, "': a tensor cannot be named '",
                 kMetadataKey, "': the format reserves that key for metadata");
    WAVSPA_CHECK(t.defined(), "save_safetensors: '", path, "': tensor '", name, "' is undefined");
    items.push_back({name, t.detach().to(Device::cpu()).contiguous()});
  }
  // The file's layout does not follow the dict's order: by dtype (for alignment), then by
  // name, as Python's safetensors lays it out, so one state saved twice is the same bytes.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const int ra = layout_rank(a.host.dtype()), rb = layout_rank(b.host.dtype());
    return ra != rb ? ra < rb : a.name < b.name;
  });

  // ordered_json keeps insertion order: __metadata__ first, then tensors in data order, as
  // Python writes them.
  ordered_json header = ordered_json::object();
  std::map<std::string, std::string> meta_all = metadata;
  if (options.checksums) {
    json sums = json::object();
    for (const Item& item : items) sums[item.name] = crc32_hex(item.host);
    try {
      meta_all[kChecksumKey] = sums.dump();
    } catch (const json::exception& e) {
      throw Error(str("save_safetensors: '", path, "': a tensor name is not valid UTF-8: ", e.what()));
    }
  }
  if (!meta_all.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [key, value] : meta_all) meta[key] = value;
    header[kMetadataKey] = meta;
  }
  uint64_t offset = 0;
  for (const Item& item : items) {
    const uint64_t nbytes = (uint64_t)item.host.numel() * item.host.element_size();
    ordered_json shape = ordered_json::array();
    for (int64_t d : item.host.shape()) shape.push_back((uint64_t)d);
    ordered_json entry = ordered_json::object();
    entry["dtype"] = safetensors_dtype(item.host.dtype());
    entry["shape"] = shape;
    entry["data_offsets"] = ordered_json::array({offset, offset + nbytes});
    header[item.name] = entry;
    offset += nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const ordered_json::exception& e) {
    throw Error(str("save_safetensors: '", path,
                    "': a tensor name or metadata string is not valid UTF-8: ", e.what()));
  }
  // Spaces (valid JSON whitespace) pad the header so the data start 8-byte aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = (unsigned char)((uint64_t)header_text.size() >> (8 * i));

  TempWriter out;
  out.path = path;
  out.crash_after = options.simulate_crash_after_bytes;
  out.fd = open_temp_file(path, out.tmp_path);
  try {
    out.write(length, sizeof length);
    out.write(header_text.data(), header_text.size());
    for (const Item& item : items) {
      const size_t nbytes = (size_t)item.host.numel() * item.host.element_size();
      if (nbytes > 0) out.write(item.host.raw_data(), nbytes);
    }
    if (::fsync(out.fd) != 0)
      throw Error(str("save_safetensors: '", path, "': fsync of the temporary file '",
                      out.tmp_path, "' failed: ", errno_message()));
  } catch (...) {
    ::close(out.fd);
    // A simulated crash leaves its temporary file behind, as a killed process would.
    if (!out.crashed) ::unlink(out.tmp_path.c_str());
    throw;
  }
  if (::close(out.fd) != 0) {
    std::string why = errno_message();
    ::unlink(out.tmp_path.c_str());
    throw Error(str("save_safetensors: '", path, "': closing the temporary file '", out.tmp_path,
                    "' failed: ", why));
  }
  if (::rename(out.tmp_path.c_str(), path.c_str()) != 0) {
    std::string why = errno_message();
    ::unlink(out.tmp_path.c_str());
    throw Error(str("save_safetensors: '", path, "': renaming the temporary file '", out.tmp_path,
                    "' over it failed: ", why));
  }
  sync_directory(path);
}

Checkpoint load_safetensors(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  WAVSPA_CHECK(fd >= 0, "load_safetensors: cannot open '", path, "': ", errno_message());
  FdCloser closer{fd};
  struct stat st {};
  WAVSPA_CHECK(::fstat(fd, &st) == 0, "load_safetensors: cannot stat '", path, "': ",
               errno_message());
  WAVSPA_CHECK(S_ISREG(st.st_mode), "load_safetensors: '", path, "' is not a regular file");
  const uint64_t file_size = (uint64_t)st.st_size;

  WAVSPA_CHECK(file_size >= 8, "load_safetensors: '", path, "': the file has ", file_size,
               " bytes, too short for the 8-byte header length that starts a safetensors file");
  unsigned char length[8];
  read_at(fd, length, 8, 0, path);
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= (uint64_t)length[i] << (8 * i);
  WAVSPA_CHECK(header_size <= file_size - 8, "load_safetensors: '", path,
               "': the header length field says ", header_size, " bytes but only ",
               file_size - 8, " bytes follow it (truncated, or not a safetensors file)");
  WAVSPA_CHECK(header_size <= kMaxHeaderBytes, "load_safetensors: '", path, "': the header of ",
               header_size, " bytes is larger than the limit of ", kMaxHeaderBytes, " bytes");

  std::string header_text(header_size, '\0');
  read_at(fd, header_text.data(), header_size, 8, path);
  json header = parse_header(header_text, path);

  Checkpoint result;
  std::vector<EntryInfo> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      result.metadata = parse_metadata(value, path);
    else
      entries.push_back(parse_entry(key, value, path));
  }

  // The byte ranges, in file order, must tile the data exactly: from 0, each starting where the
  // previous one ends, the last ending at the end of the file. This is what makes the file safe
  // to read: no byte is shared by two tensors and none is left unexplained.
  std::sort(entries.begin(), entries.end(), [](const EntryInfo& a, const EntryInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_size = file_size - 8 - header_size;
  uint64_t expected = 0;
  std::string previous;
  for (const EntryInfo& e : entries) {
    WAVSPA_CHECK(e.begin <= expected, "load_safetensors: '", path, "': tensor '", e.name,
                 "' begins at data byte ", e.begin, " but ",
                 previous.empty() ? std::string("the data start at 0")
                                  : str("tensor '", previous, "' ends at ", expected),
                 ": a gap of ", e.begin - expected, " unexplained bytes");
    WAVSPA_CHECK(e.begin == expected, "load_safetensors: '", path, "': tensor '", e.name,
                 "' begins at data byte ", e.begin, " but tensor '", previous, "' ends at ",
                 expected, ": their data_offsets overlap");
    expected = e.end;
    previous = e.name;
  }
  WAVSPA_CHECK(expected <= data_size, "load_safetensors: '", path, "': the tensors' data end at byte ",
               expected, " (tensor '", previous, "') but the file holds only ", data_size,
               " data bytes after the header: the file is truncated or the data_offsets are out "
               "of range");
  WAVSPA_CHECK(expected == data_size, "load_safetensors: '", path, "': ", data_size - expected,
               " trailing bytes after the last tensor's data (the data_offsets must cover the "
               "data exactly)");

  const uint64_t data_start = 8 + header_size;
  for (const EntryInfo& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype, Device::cpu());
    if (e.end > e.begin) read_at(fd, t.raw_data(), (size_t)(e.end - e.begin), data_start + e.begin, path);
    if (e.dtype == DType::Bool) {
      // A byte other than 0 or 1 is not a C++ bool: reading it would be undefined behaviour.
      const auto* bytes = static_cast<const unsigned char*>(t.raw_data());
      for (int64_t i = 0; i < t.numel(); ++i)
        WAVSPA_CHECK(bytes[i] <= 1, "load_safetensors: '", path, "': BOOL tensor '", e.name,
                     "' holds the byte ", (int)bytes[i], " at element ", i, " (expected 0 or 1)");
    }
    result.tensors[e.name] = t;
  }
  // The checksums, where the writer left them: one per tensor, each matching its bytes.
  if (auto it = result.metadata.find(kChecksumKey); it != result.metadata.end()) {
    const std::string where = str("load_safetensors: '", path, "': ");
    const json sums = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    WAVSPA_CHECK(sums.is_object(), where, "metadata '", kChecksumKey, "' is not a JSON object of checksums");
    WAVSPA_CHECK(sums.size() == result.tensors.size(), where, "metadata '", kChecksumKey, "' has ", sums.size(),
                 " checksums for ", result.tensors.size(), " tensors");
    for (const auto& [name, t] : result.tensors) {
      const auto s = sums.find(name);
      WAVSPA_CHECK(s != sums.end() && s->is_string(), where, "tensor '", name, "' has no checksum in metadata '",
                   kChecksumKey, "'");
      const std::string got = crc32_hex(t);
      WAVSPA_CHECK(got == s->get<std::string>(), where, "tensor '", name, "' is corrupted: its bytes have CRC-32 ",
                   got, ", the file recorded ", s->get<std::string>());
    }
    result.metadata.erase(it);
  }
  return result;
}

}  // namespace wavspa::nn

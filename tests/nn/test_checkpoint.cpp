// nn/checkpoint: safetensors files. Round trips, the exact bytes against the format (including
// test vectors of the reference implementation), files assembled by hand as Python writes them,
// every kind of malformed file, atomic replacement, and a module's state_dict.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "nn/module.h"
#include "tests/helpers.h"

using namespace wavspa;
using namespace wavspa::test;
namespace fs = std::filesystem;

namespace {


std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)((v >> (8 * i)) & 0xff);
  return s;
}

// The little-endian bytes of values of type T.
template <typename T>
std::string le_bytes(const std::vector<T>& values) {
  std::string s;
  for (T v : values) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the host is little-endian (checked in nn/checkpoint.cpp)
    s.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  return s;
}

// A safetensors file: length, header (padded with spaces to a multiple of 8 when `pad`), data.
std::string safetensors_bytes(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

// Same dtype, shape and bytes.
bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  const size_t n = (size_t)ca.numel() * ca.element_size();
  return n == 0 || std::memcmp(ca.raw_data(), cb.raw_data(), n) == 0;
}

}  // namespace

TEST_CASE("checkpoint round trip: every dtype, 0-d, empty, non-contiguous, special values") {
  TempDir dir;
  const std::string path = dir / ("all.safetensors");
  manual_seed(7);

  nn::StateDict state;
  state["f32"] = randn({3, 4});
  state["f64"] = randn({2, 3, 2}, kFloat64);
  state["i32"] = from_vector(std::vector<int32_t>{0, -1, std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max()},
                             {2, 2});
  state["i64"] = from_vector(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -5, 0,
                                                  std::numeric_limits<int64_t>::max()});
  state["scalar"] = scalar_tensor(3.25, kFloat64);
  state["scalar_i64"] = scalar_tensor(-9, kInt64);
  state["empty"] = zeros({0, 3});
  state["empty_middle"] = zeros({2, 0, 4}, kInt64);
  state["transposed"] = randn({3, 5}).t();                    // strides (1, 5)
  state["sliced"] = randn({4, 6}, kFloat64).slice(1, 1, 6, 2);  // offset and step
  state["special"] = from_vector(std::vector<float>{
      std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(), -0.0f, std::numeric_limits<float>::denorm_min(),
      std::numeric_limits<float>::max()});
  REQUIRE(!state["transposed"].is_contiguous());
  REQUIRE(!state["sliced"].is_contiguous());

  std::map<std::string, std::string> metadata = {
      {"step", "1200"},
      {"config", R"({"lr": 0.001, "name": "wavspa \"tiny\""})"},
      {"empty", ""},
      {"unicode", "Wellen\xC3\xA4nderung \xE2\x88\x91"},  // UTF-8
      {"control", "line1\nline2\ttab"},
  };
  nn::save_safetensors(path, state, metadata);
  nn::Checkpoint ck = nn::load_safetensors(path);

  CHECK(ck.metadata == metadata);
  REQUIRE(ck.tensors.size() == state.size());
  for (const auto& [name, t] : state) {
    const std::string& tensor_name = name;  // (clang 14: INFO cannot capture a structured binding)
    INFO("tensor ", tensor_name);
    REQUIRE(ck.tensors.count(name) == 1);
    const Tensor& got = ck.tensors.at(name);
    CHECK(got.device() == Device::cpu());
    CHECK(got.is_contiguous());
    CHECK(bit_equal(got, t));
  }
  CHECK(ck.tensors.at("scalar").dim() == 0);
  CHECK(ck.tensors.at("scalar").item() == 3.25);
  CHECK(ck.tensors.at("empty_middle").shape() == Shape{2, 0, 4});

  // Nothing at all is a valid file too.
  nn::save_safetensors(path, {});
  nn::Checkpoint none = nn::load_safetensors(path);
  CHECK(none.tensors.empty());
  CHECK(none.metadata.empty());
}

TEST_CASE("checkpoint bytes: a tiny file, field by field and against reference test vectors") {
  TempDir dir;
  const std::string path = dir / ("tiny.safetensors");

  // Without our checksums (their own test below), so that the bytes are Python's.
  nn::SaveOptions plain;
  plain.checksums = false;

  SUBCASE("one float32 tensor, checked field by field") {
    nn::save_safetensors(path, {{"w", from_vector(std::vector<float>{1.5f, -2.0f, 0.25f}, {3, 1})}}, {}, plain);
    const std::string bytes = read_file(path);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= (uint64_t)(unsigned char)bytes[i] << (8 * i);
    CHECK(n % 8 == 0);
    REQUIRE(bytes.size() == 8 + n + 12);
    const std::string header = bytes.substr(8, n);
    auto j = nlohmann::json::parse(header);
    REQUIRE(j.is_object());
    CHECK(j.size() == 1);  // no __metadata__ when there is none
    CHECK(j["w"]["dtype"] == "F32");
    CHECK(j["w"]["shape"] == nlohmann::json::array({3, 1}));
    CHECK(j["w"]["data_offsets"] == nlohmann::json::array({0, 12}));
    // 1.5f = 0x3FC00000, -2.0f = 0xC0000000, 0.25f = 0x3E800000, little-endian.
    const std::string expected_data("\x00\x00\xC0\x3F\x00\x00\x00\xC0\x00\x00\x80\x3E", 12);
    CHECK(bytes.substr(8 + n) == expected_data);
  }

  // The expected bytes below are the test vectors of the reference implementation's own unit
  // tests (huggingface/safetensors, safetensors/src/tensor.rs: test_serialization,
  // test_serialization_forced_alignement, test_empty), so our writer produces the very bytes
  // Python's safetensors produces for these inputs.
  const std::string data_0_to_5 = le_bytes(std::vector<float>{0, 1, 2, 3, 4, 5});

  SUBCASE("reference vector: attn.0, F32 (1, 2, 3), no padding needed") {
    nn::save_safetensors(path, {{"attn.0", from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {1, 2, 3})}}, {}, plain);
    const std::string json = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    REQUIRE(json.size() == 64);
    CHECK(read_file(path) == le64(64) + json + data_0_to_5);
  }
  SUBCASE("reference vector: attn0, F32 (1, 1, 2, 3), padded with 7 spaces") {
    nn::save_safetensors(path, {{"attn0", from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {1, 1, 2, 3})}}, {}, plain);
    const std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    CHECK(read_file(path) == le64(72) + json + std::string(7, ' ') + data_0_to_5);
  }
  SUBCASE("reference vector: no tensors") {
    nn::save_safetensors(path, {}, {}, plain);
    CHECK(read_file(path) == le64(8) + "{}" + std::string(6, ' '));
  }
  SUBCASE("reference vector: no tensors, metadata framework=pt") {
    nn::save_safetensors(path, {}, {{"framework", "pt"}}, plain);
    CHECK(read_file(path) ==
          le64(40) + R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));
  }
  SUBCASE("mixed dtypes: data ordered I64, F64, F32, I32 as Python orders them; all aligned") {
    nn::save_safetensors(path, {{"a_i32", from_vector(std::vector<int32_t>{7})},
                                {"b_f32", from_vector(std::vector<float>{2})},
                                {"c_f64", from_vector(std::vector<double>{3})},
                                {"d_i64", from_vector(std::vector<int64_t>{4})},
                                {"e_f64", from_vector(std::vector<double>{5})}},
                         {{"step", "3"}}, plain);
    const std::string json =
        R"({"__metadata__":{"step":"3"},)"
        R"("d_i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
        R"("c_f64":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
        R"("e_f64":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},)"
        R"("b_f32":{"dtype":"F32","shape":[1],"data_offsets":[24,28]},)"
        R"("a_i32":{"dtype":"I32","shape":[1],"data_offsets":[28,32]}})";
    const std::string data = le_bytes(std::vector<int64_t>{4}) + le_bytes(std::vector<double>{3, 5}) +
                             le_bytes(std::vector<float>{2}) + le_bytes(std::vector<int32_t>{7});
    CHECK(read_file(path) == safetensors_bytes(json, data));
  }
}

TEST_CASE("checkpoint interop: files assembled byte by byte as Python's safetensors writes them") {
  TempDir dir;
  const std::string path = dir / ("python.safetensors");

  SUBCASE("several dtypes, metadata, keys listed out of data order, padded header") {
    // Python's header lists tensors in a hash map's order, not by offset; readers sort by offset.
    const std::string json =
        R"({"__metadata__":{"format":"pt"},)"
        R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]},)"
        R"("idx":{"dtype":"I32","shape":[3],"data_offsets":[40,52]},)"
        R"("b":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
        R"("empty":{"dtype":"F32","shape":[0,5],"data_offsets":[52,52]},)"
        R"("a":{"dtype":"F64","shape":[],"data_offsets":[16,24]}})";
    const std::string data = le_bytes(std::vector<int64_t>{-3, 1LL << 40}) +
                             le_bytes(std::vector<double>{0.1}) +
                             le_bytes(std::vector<float>{1, 2, 3, 4}) +
                             le_bytes(std::vector<int32_t>{5, -6, 7});
    write_file(path, safetensors_bytes(json, data));
    nn::Checkpoint ck = nn::load_safetensors(path);
    CHECK(ck.metadata == std::map<std::string, std::string>{{"format", "pt"}});
    REQUIRE(ck.tensors.size() == 5);
    CHECK(ck.tensors["b"].to_vector<int64_t>() == std::vector<int64_t>{-3, 1LL << 40});
    CHECK(ck.tensors["a"].dim() == 0);
    CHECK(ck.tensors["a"].item() == 0.1);
    CHECK(ck.tensors["w"].shape() == Shape{2, 2});
    CHECK(ck.tensors["w"].to_vector<float>() == std::vector<float>{1, 2, 3, 4});
    CHECK(ck.tensors["idx"].to_vector<int32_t>() == std::vector<int32_t>{5, -6, 7});
    CHECK(ck.tensors["empty"].shape() == Shape{0, 5});
    CHECK(ck.tensors["empty"].dtype() == kFloat32);
  }
  SUBCASE("the reference's doc example: an unpadded 60-byte header, I32 (2, 2) of zeros") {
    const std::string json = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
    REQUIRE(json.size() == 60);
    write_file(path, safetensors_bytes(json, std::string(16, '\0'), /*pad=*/false));
    nn::Checkpoint ck = nn::load_safetensors(path);
    CHECK(ck.tensors["test"].to_vector<int32_t>() == std::vector<int32_t>{0, 0, 0, 0});
  }
  SUBCASE("a pretty-printed header (JSON whitespace anywhere)") {
    const std::string json =
        "{\n  \"x\" : {\n    \"data_offsets\" : [ 0, 8 ],\n    \"shape\" : [ 1 ],\n"
        "    \"dtype\" : \"F64\"\n  }\n}\n";
    write_file(path, safetensors_bytes(json, le_bytes(std::vector<double>{-2.5})));
    CHECK(nn::load_safetensors(path).tensors["x"].to_vector<double>() == std::vector<double>{-2.5});
  }
  SUBCASE("several empty tensors sharing one offset") {
    const std::string json =
        R"({"e1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
        R"("x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("e2":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]},)"
        R"("e0":{"dtype":"F64","shape":[0],"data_offsets":[0,0]}})";
    write_file(path, safetensors_bytes(json, le_bytes(std::vector<float>{9})));
    nn::Checkpoint ck = nn::load_safetensors(path);
    CHECK(ck.tensors.size() == 4);
    CHECK(ck.tensors["x"].item() == 9);
    CHECK(ck.tensors["e2"].shape() == Shape{3, 0});
  }
}

TEST_CASE("checkpoint malformed files: an Error naming the file and the problem") {
  TempDir dir;
  const std::string good_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight_bytes = le_bytes(std::vector<float>{1, 2});
  // Writes `bytes` to a file named after the case and checks the load error.
  auto expect = [&](const std::string& name, const std::string& bytes,
                    const std::vector<std::string>& fragments) {
    INFO("case ", name);
    const std::string path = dir / (name + ".safetensors");
    write_file(path, bytes);
    std::vector<std::string> all = fragments;
    all.push_back(path);
    check_error([&] { nn::load_safetensors(path); }, all);
  };
  auto with_header = [&](const std::string& json, const std::string& data) {
    return safetensors_bytes(json, data);
  };

  SUBCASE("missing file") {
    const std::string path = dir / ("does_not_exist.safetensors");
    check_error([&] { nn::load_safetensors(path); }, {path, "cannot open", "No such file"});
  }
  SUBCASE("a directory") {
    check_error([&] { nn::load_safetensors(dir.path); },
                {dir.path, "not a regular file"});
  }
  SUBCASE("too short for the length field") {
    expect("short", std::string("\x10\x00\x00", 3), {"3 bytes", "too short"});
    expect("empty_file", "", {"0 bytes", "too short"});
  }
  SUBCASE("header length larger than the file") {
    expect("long_header", le64(1000) + "{}", {"header length field says 1000", "only 2 bytes"});
    expect("huge_header", le64(~0ULL) + "{}", {"header length field says", "only 2 bytes"});
  }
  SUBCASE("header larger than the 100 MB limit") {
    // A sparse file: 200 MB of length that the OS does not have to store.
    const std::string path = dir / ("over_limit.safetensors");
    write_file(path, le64(150'000'000));
    fs::resize_file(path, 8 + 150'000'000);
    check_error([&] { nn::load_safetensors(path); }, {path, "larger than the limit"});
  }
  SUBCASE("invalid JSON") {
    expect("bad_json", with_header(R"({"w": {"dtype": "F32",)", ""), {"not valid JSON"});
    expect("not_json", with_header("PK\x03\x04 this is a zip", ""), {"not valid JSON"});
    expect("bad_utf8", with_header("{\"w\xff\":{}}", ""), {"not valid JSON"});
    expect("comment", with_header("{/* no comments */}", ""), {"not valid JSON"});
  }
  SUBCASE("header not an object") {
    expect("array_header", with_header("[1, 2]", ""), {"must be a JSON object", "array"});
  }
  SUBCASE("duplicate keys") {
    expect("dup_tensor", with_header("{" + good_entry + "," + good_entry + "}", eight_bytes),
           {"duplicate key 'w'"});
    expect("dup_meta", with_header(R"({"__metadata__":{"a":"1","a":"2"}})", ""),
           {"duplicate key 'a'"});
  }
  SUBCASE("unsupported or unknown dtype, naming the key") {
    expect("f16", with_header(R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"),
           {"tensor 'h'", "unsupported dtype \"F16\"", "F32, F64, BF16, I32 and I64"});
    expect("nonsense_dtype",
           with_header(R"({"h":{"dtype":"float32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
           {"tensor 'h'", "unsupported dtype \"float32\""});
    expect("number_dtype", with_header(R"({"h":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
           {"tensor 'h'", "dtype must be a string"});
  }
  SUBCASE("bad fields of an entry") {
    expect("unknown_field",
           with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"offsets":[0,8]}})",
                       eight_bytes),
           {"tensor 'w'", "unknown field 'offsets'"});
    expect("missing_field", with_header(R"({"w":{"dtype":"F32","shape":[2]}})", ""),
           {"tensor 'w'", "missing field"});
    expect("entry_not_object", with_header(R"({"w":[0,8]})", ""), {"tensor 'w'", "expected an object"});
    expect("negative_shape",
           with_header(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight_bytes),
           {"tensor 'w'", "non-negative integers", "[-2]"});
    expect("float_shape",
           with_header(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight_bytes),
           {"tensor 'w'", "non-negative integers"});
    expect("shape_not_array",
           with_header(R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight_bytes),
           {"tensor 'w'", "shape must be an array"});
    expect("huge_shape",
           with_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                       eight_bytes),
           {"tensor 'w'", "too large"});
    expect("three_offsets",
           with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}})", eight_bytes),
           {"tensor 'w'", "two non-negative integers"});
    expect("negative_offset",
           with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", eight_bytes),
           {"tensor 'w'", "two non-negative integers"});
    expect("reversed_offsets",
           with_header(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight_bytes),
           {"tensor 'w'", "end before they begin"});
  }
  SUBCASE("offsets that do not match dtype * numel") {
    expect("size_mismatch",
           with_header(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight_bytes),
           {"tensor 'w'", "span 8 bytes", "need 16"});
  }
  SUBCASE("offsets out of range") {
    expect("out_of_range",
           with_header(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight_bytes),
           {"out of range", "tensor 'w'", "only 8 data bytes"});
  }
  SUBCASE("overlapping offsets") {
    expect("overlap",
           with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       eight_bytes + "1234"),
           {"tensor 'b'", "tensor 'a' ends at 8", "overlap"});
    expect("same_range",
           with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                       eight_bytes),
           {"overlap"});
  }
  SUBCASE("gaps in the offsets") {
    expect("gap",
           with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                       eight_bytes + "1234"),
           {"tensor 'b'", "begins at data byte 8", "gap of 4"});
    expect("not_from_zero",
           with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight_bytes),
           {"tensor 'a'", "the data start at 0", "gap of 4"});
  }
  SUBCASE("truncated data: a good file cut in the middle of its data") {
    const std::string path = dir / ("good.safetensors");
    nn::save_safetensors(path, {{"w", randn({64})}, {"v", randn({3}, kFloat64)}});
    const std::string bytes = read_file(path);
    expect("truncated", bytes.substr(0, bytes.size() - 100), {"truncated", "only"});
  }
  SUBCASE("trailing bytes after the data (the reference rejects them: MetadataIncompleteBuffer)") {
    expect("trailing", with_header("{" + good_entry + "}", eight_bytes + "junk"),
           {"4 trailing bytes"});
    expect("trailing_no_tensors", with_header("{}", "x"), {"1 trailing bytes"});
  }
  SUBCASE("metadata that is not a map of strings") {
    expect("meta_number", with_header(R"({"__metadata__":{"step":1200}})", ""),
           {"__metadata__", "'step'", "must be a string", "1200"});
    expect("meta_nested", with_header(R"({"__metadata__":{"cfg":{"lr":1}}})", ""),
           {"__metadata__", "'cfg'", "must be a string"});
    expect("meta_not_object", with_header(R"({"__metadata__":"pt"})", ""),
           {"__metadata__", "expected an object of strings"});
  }
}

TEST_CASE("checkpoint robustness: every truncation and byte corruption fails cleanly or loads") {
  // Each damaged file must give a wavspa::Error or a valid checkpoint; anything else (another
  // exception type, a crash, a sanitizer report under `make sanitize`) fails the test.
  TempDir dir;
  const std::string path = dir / ("victim.safetensors");
  nn::save_safetensors(path,
                       {{"a", from_vector(std::vector<float>{1, 2, 3}, {3, 1})},
                        {"b", from_vector(std::vector<int64_t>{4, 5})},
                        {"s", scalar_tensor(6, kFloat64)}},
                       {{"k", "v"}});
  const std::string original = read_file(path);
  const std::string damaged = dir / ("damaged.safetensors");
  int errors = 0, loads = 0;
  auto try_load = [&](const std::string& bytes) {
    write_file(damaged, bytes);
    try {
      nn::Checkpoint ck = nn::load_safetensors(damaged);
      ++loads;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (size_t len = 0; len < original.size(); ++len) try_load(original.substr(0, len));
  CHECK(loads == 0);  // no prefix of a valid file is a valid file here (the sizes are checked)
  const unsigned char replacements[] = {0x00, 0x20, 0x22, 0x2c, 0x30, 0x39, 0x5b, 0x7b, 0x7d, 0xff};
  for (size_t i = 0; i < original.size(); ++i) {
    for (unsigned char r : replacements) {
      std::string bytes = original;
      bytes[i] = (char)r;
      try_load(bytes);
    }
  }
  MESSAGE("damaged files: ", errors, " errors, ", loads, " loads");
  CHECK(errors > 0);
}

TEST_CASE("checkpoint checksums: each tensor's CRC-32 is stored, verified on load, and names a corrupted tensor") {
  TempDir dir;
  const std::string path = dir / ("sums.safetensors");
  // 0x3FC00000 etc.: the CRC-32 of these 12 bytes is Python's zlib.crc32 of the same bytes.
  const Tensor w = from_vector(std::vector<float>{1.5f, -2.0f, 0.25f}, {3, 1});
  nn::save_safetensors(path, {{"w", w}, {"b", from_vector(std::vector<int64_t>{4, 5})}}, {{"k", "v"}});
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(unsigned char)bytes[i] << (8 * i);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  const auto sums = nlohmann::json::parse(header["__metadata__"][nn::kChecksumKey].get<std::string>());
  CHECK(sums.size() == 2);
  CHECK(sums["w"] == "e115aaf6");  // zlib.crc32(bytes.fromhex("0000c03f000000c00000803e"))
  // Loading verifies them and hands back the metadata without the key.
  nn::Checkpoint ck = nn::load_safetensors(path);
  CHECK(ck.metadata == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(max_abs_diff(ck.tensors.at("w"), w) == 0);
  // One flipped bit in w's data (the last 12 bytes): refused, naming w.
  std::string flipped = bytes;
  flipped[bytes.size() - 1] ^= 0x40;  // the exponent byte of 0.25f
  const std::string damaged = dir / ("damaged.safetensors");
  write_file(damaged, flipped);
  check_error([&] { nn::load_safetensors(damaged); }, {damaged, "tensor 'w' is corrupted", "CRC-32"});
  // A file without checksums (Python's) loads as before.
  nn::SaveOptions plain;
  plain.checksums = false;
  nn::save_safetensors(path, {{"w", w}}, {}, plain);
  CHECK(nn::load_safetensors(path).metadata.empty());
}

TEST_CASE("checkpoint atomic save: replace, failures leave no file, a crash keeps the old file") {
  TempDir dir;
  const std::string path = dir / ("model.safetensors");
  const nn::StateDict old_state = {{"w", randn({16, 16})}, {"step", scalar_tensor(1, kInt64)}};
  const nn::StateDict new_state = {{"w", randn({16, 16})}, {"step", scalar_tensor(2, kInt64)}};

  SUBCASE("saving over an existing checkpoint replaces it and leaves no temporary file") {
    nn::save_safetensors(path, old_state, {{"step", "1"}});
    nn::save_safetensors(path, new_state, {{"step", "2"}});
    nn::Checkpoint ck = nn::load_safetensors(path);
    CHECK(ck.metadata.at("step") == "2");
    CHECK(bit_equal(ck.tensors.at("w"), new_state.at("w")));
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  }
  SUBCASE("a missing directory: an error and no file") {
    const std::string bad = dir / ("no_such_dir/model.safetensors");
    check_error([&] { nn::save_safetensors(bad, old_state); },
                {bad, "cannot create the temporary file", "No such file or directory"});
    CHECK(!fs::exists(bad));
    CHECK(dir.entries().empty());
  }
  SUBCASE("bad input fails before any file is created") {
    check_error([&] { nn::save_safetensors(path, {{"__metadata__", zeros({1})}}); },
                {path, "'__metadata__'", "reserves"});
    check_error([&] { nn::save_safetensors(path, {{"w", Tensor()}}); }, {path, "'w'", "undefined"});
    check_error([&] { nn::save_safetensors(path, old_state, {{"k", "bad \xff utf-8"}}); },
                {path, "not valid UTF-8"});
    CHECK(dir.entries().empty());
  }
  SUBCASE("a path that is a directory: rename fails, the temporary file is removed") {
    const std::string sub = dir / ("taken");
    fs::create_directory(sub);
    check_error([&] { nn::save_safetensors(sub, old_state); }, {sub, "renaming"});
    CHECK(dir.entries() == std::vector<std::string>{"taken"});
  }
  SUBCASE("a crash at any point of the write leaves the previous checkpoint intact") {
    nn::save_safetensors(path, old_state, {{"step", "1"}});
    const std::string old_bytes = read_file(path);
    // Size of the new file, to crash inside its length field, header and data.
    const std::string probe = dir / ("probe.safetensors");
    nn::save_safetensors(probe, new_state, {{"step", "2"}});
    const int64_t new_size = (int64_t)fs::file_size(probe);
    fs::remove(probe);

    for (int64_t crash_at : {(int64_t)0, (int64_t)3, (int64_t)8, (int64_t)20, new_size / 2, new_size - 1}) {
      INFO("crash after ", crash_at, " of ", new_size, " bytes");
      nn::SaveOptions options;
      options.simulate_crash_after_bytes = crash_at;
      check_error([&] { nn::save_safetensors(path, new_state, {{"step", "2"}}, options); },
                  {path, "simulated crash"});
      // The old file is untouched and loads; the half-written temporary is left beside it, as a
      // killed process would leave it, and is itself rejected by the loader.
      CHECK(read_file(path) == old_bytes);
      nn::Checkpoint ck = nn::load_safetensors(path);
      CHECK(ck.metadata.at("step") == "1");
      CHECK(bit_equal(ck.tensors.at("w"), old_state.at("w")));
      std::vector<std::string> names = dir.entries();
      REQUIRE(names.size() == 2);
      CHECK(names[0] == "model.safetensors");
      CHECK(names[1].rfind("model.safetensors.tmp.", 0) == 0);
      const std::string tmp = dir / (names[1]);
      CHECK((int64_t)fs::file_size(tmp) == crash_at);
      check_error([&] { nn::load_safetensors(tmp); }, {tmp});
      fs::remove(tmp);
    }
    // A save that completes after the crashes replaces the file as usual.
    nn::save_safetensors(path, new_state, {{"step", "2"}});
    CHECK(nn::load_safetensors(path).metadata.at("step") == "2");
    CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  }
}

namespace {

// A small module tree: parameters, a buffer and a child, as a model would have.
class TinyHead : public nn::Module {
 public:
  TinyHead() : Module("TinyHead") { register_parameter("bias", &bias, randn({2})); }
  Tensor bias;
};

class TinyNet : public nn::Module {
 public:
  TinyNet() : Module("TinyNet") {
    register_parameter("weight", &weight, randn({3, 2}));
    register_buffer("counts", &counts, randint(0, 100, {4}, kInt64));
    head = register_module("head", std::make_shared<TinyHead>());
  }
  Tensor weight, counts;
  std::shared_ptr<TinyHead> head;
};

}  // namespace

TEST_CASE("checkpoint module round trip: state_dict -> file -> load_state_dict") {
  TempDir dir;
  const std::string path = dir / ("tiny_net.safetensors");
  manual_seed(1);
  TinyNet a;
  manual_seed(2);
  TinyNet b;
  REQUIRE(!bit_equal(a.weight, b.weight));

  nn::save_safetensors(path, a.state_dict(), {{"model", "TinyNet"}});
  nn::Checkpoint ck = nn::load_safetensors(path);
  CHECK(ck.tensors.size() == 3);
  CHECK(ck.tensors.count("head.bias") == 1);
  b.load_state_dict(ck.tensors);

  nn::StateDict sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (const auto& [name, t] : sa) {
    const std::string& tensor_name = name;  // (clang 14: INFO cannot capture a structured binding)
    INFO("tensor ", tensor_name);
    CHECK(bit_equal(sb.at(name), t));
  }
  CHECK(b.weight.requires_grad());  // loading copies values into the parameters, not new leaves
}

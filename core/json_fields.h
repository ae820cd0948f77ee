// Typed fields out of a JSON object, for the config files of models/ and train/. Every error
// is a wavspa::Error that names the config, the key, the type expected and the value that came.
//
//   nlohmann::json j = parse_json(read_text_file(path, "model config"), "model config");
//   JsonFields fields(j, "model config");        // anything but an object is an error
//   fields.refuse_unknown_keys({"emb_dim", "pooling"});
//   fields.read("emb_dim", c.emb_dim);           // an absent key leaves c.emb_dim as it was
//   check_one_of("model config", "pooling", c.pooling, {"cls", "mean", "max"});
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/files.h"  // read_text_file

namespace wavspa {

// "<what>: invalid JSON: <the parser's message>" when `text` does not parse.
nlohmann::json parse_json(const std::string& text, const std::string& what);

// A value for an error message: its JSON text, bytes that are not UTF-8 replaced (a plain
// dump() throws on them), cut short when long (core/error.h's quoted_excerpt, unquoted).
std::string json_for_message(const nlohmann::json& value);

class JsonFields {
 public:
  // `object` must outlive the reader.
  JsonFields(const nlohmann::json& object, std::string what);

  // Lists every key outside `valid` in one error, with the valid ones. A dotted name
  // ("model.emb_dim") names the field of a nested object and makes its first part ("model")
  // a valid key of this one.
  void refuse_unknown_keys(const std::vector<std::string>& valid) const;

  void read(const char* key, std::string& out) const;
  void read(const char* key, bool& out) const;
  void read(const char* key, double& out) const;
  // Whole numbers only: nlohmann alone would read 2.5 as 2 and -1 as 2^64 - 1.
  void read(const char* key, int64_t& out) const;
  void read(const char* key, uint64_t& out) const;

 private:
  const nlohmann::json& object_;
  std::string what_;
};

// "<what>: '<key>' is '<value>'; valid values: [...]" unless `value` is one of `valid`.
void check_one_of(const std::string& what, const char* key, const std::string& value,
                  const std::vector<std::string>& valid);

}  // namespace wavspa

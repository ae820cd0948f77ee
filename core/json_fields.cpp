#include "core/json_fields.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "core/error.h"

namespace wavspa {

namespace {

using nlohmann::json;

[[noreturn]] void wrong_type(const std::string& what, const char* key, const std::string& expected,
                             const json& value) {
  throw Error(str(what, ": '", key, "' has the wrong type: expected ", expected, ", got ", json_for_message(value)));
}

template <typename T>
void read_as(const json& object, const std::string& what, const char* key, const char* expected, T& out) {
  if (!object.contains(key)) return;
  try {
    out = object.at(key).get<T>();
  } catch (const json::exception&) {
    wrong_type(what, key, expected, object.at(key));
  }
}

// nlohmann converts 2.5 to 2 and -1 to 2^64 - 1 for integer targets; refuse both.
void check_integer(const json& object, const std::string& what, const char* key, bool is_signed) {
  if (!object.contains(key)) return;
  const json& v = object.at(key);
  const bool ok = v.is_number_integer() && (is_signed || v.is_number_unsigned() || v.get<int64_t>() >= 0);
  if (!ok) wrong_type(what, key, is_signed ? "an integer" : "a non-negative integer", v);
}

// The keys of this object are the valid names up to their first dot.
bool is_valid_key(const std::string& key, const std::vector<std::string>& valid) {
  for (const std::string& v : valid)
    if (v.substr(0, v.find('.')) == key) return true;
  return false;
}

}  // namespace

std::string json_for_message(const json& value) {
  const std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr size_t kMax = 200;
  return text.size() <= kMax ? text : text.substr(0, kMax) + "... (" + std::to_string(text.size()) + " characters)";
}

json parse_json(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers too large for a double (1e999)
    throw Error(str(what, ": invalid JSON: ", e.what()));
  }
}

JsonFields::JsonFields(const json& object, std::string what) : object_(object), what_(std::move(what)) {
  WAVSPA_CHECK(object_.is_object(), what_, ": expected a JSON object, got ", object_.type_name());
}

void JsonFields::refuse_unknown_keys(const std::vector<std::string>& valid) const {
  std::vector<std::string> unknown;
  for (auto it = object_.begin(); it != object_.end(); ++it)
    if (!is_valid_key(it.key(), valid)) unknown.push_back(it.key());
  WAVSPA_CHECK(unknown.empty(), what_, ": unknown keys ", unknown, "; valid keys: ", valid);
}

void JsonFields::read(const char* key, std::string& out) const { read_as(object_, what_, key, "a string", out); }
void JsonFields::read(const char* key, bool& out) const { read_as(object_, what_, key, "true or false", out); }
void JsonFields::read(const char* key, double& out) const { read_as(object_, what_, key, "a number", out); }

void JsonFields::read(const char* key, int64_t& out) const {
  check_integer(object_, what_, key, /*is_signed=*/true);
  read_as(object_, what_, key, "an integer", out);
}

void JsonFields::read(const char* key, uint64_t& out) const {
  check_integer(object_, what_, key, /*is_signed=*/false);
  read_as(object_, what_, key, "a non-negative integer", out);
}

void check_one_of(const std::string& what, const char* key, const std::string& value,
                  const std::vector<std::string>& valid) {
  for (const auto& v : valid)
    if (v == value) return;
  throw Error(str(what, ": '", key, "' is '", value, "'; valid values: ", valid));
}

}  // namespace wavspa

#include "attnspec/io/json_file.h"

#include <climits>
#include <cmath>
#include <fstream>
#include <sstream>

#include "attnspec/common/error.h"

namespace attnspec {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path.string(), "cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw input_error(path.string(), std::string("malformed JSON (") + e.what() + ")");
  }
}

const nlohmann::json& JsonFields::get(const std::string& key) const {
  if (!has(key)) throw input_error(where_, "missing field '" + key + "'");
  return j_[key];
}

int64_t JsonFields::integer(const std::string& key) const {
  const auto& v = get(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  // Some configs write integers as 4096.0 (checked in range before converting: a float beyond
  // int64 would be undefined behaviour).
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::abs(d) < 9.0e15 && d == std::floor(d)) return static_cast<int64_t>(d);
  }
  throw input_error(where_, "field '" + key + "' must be an integer, not " + v.dump());
}

int64_t JsonFields::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double JsonFields::number(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_number()) throw input_error(where_, "field '" + key + "' must be a number, not " + v.dump());
  return v.get<double>();
}

double JsonFields::number(const std::string& key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool JsonFields::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = j_[key];
  if (!v.is_boolean()) throw input_error(where_, "field '" + key + "' must be true or false, not " + v.dump());
  return v.get<bool>();
}

std::string JsonFields::string(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_string()) throw input_error(where_, "field '" + key + "' must be a string, not " + v.dump());
  return v.get<std::string>();
}

std::string JsonFields::string(const std::string& key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

int64_t JsonFields::positive(std::initializer_list<const char*> first_of) const {
  for (const char* key : first_of) {
    if (!has(key)) continue;
    const int64_t v = integer(key);
    if (v <= 0) throw input_error(where_, std::string("field '") + key + "' must be positive, not " + std::to_string(v));
    if (v > INT32_MAX) throw input_error(where_, std::string("field '") + key + "' is implausibly large: " + std::to_string(v));
    return v;
  }
  throw input_error(where_, std::string("missing field '") + *first_of.begin() + "'");
}

}  // namespace attnspec

// Reading JSON files (config.json, tokenizer files) with errors that name the file and the field.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace attnspec {

// Parses `path`; throws InputError naming the file (and the parser's position) when it is missing
// or malformed.
nlohmann::json read_json_file(const std::filesystem::path& path);

// Typed access to a JSON object's fields; errors read "config.json: field 'x' ...".
class JsonFields {
 public:
  JsonFields(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {}

  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t integer(const std::string& key) const;                    // required
  int64_t integer(const std::string& key, int64_t fallback) const;  // optional
  double number(const std::string& key) const;
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  // A positive integer field; `first_of` lists alternative names (GPT-2's n_embd, ...).
  int64_t positive(std::initializer_list<const char*> first_of) const;
  const nlohmann::json& raw() const { return j_; }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& get(const std::string& key) const;
  const nlohmann::json& j_;
  std::string where_;
};

}  // namespace attnspec

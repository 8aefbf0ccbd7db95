// For the model tests: the config.json and the tensor names and shapes transformers saves for each
// family variant of the oracle (tests/data/family_names, written by scripts/gen_family_names.py).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnspec::saved_names {

namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

inline const fs::path kNames =
    fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "tests" / "data" / "family_names";

struct Saved {
  fs::path file;
  nlohmann::json config;
  std::map<std::string, Shape> tensors;
};

// Every names file, sorted.
inline std::vector<fs::path> saved_files() {
  std::vector<fs::path> files;
  if (fs::is_directory(kNames))
    for (const auto& e : fs::directory_iterator(kNames))
      if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

inline Saved read_saved(const fs::path& file) {
  std::ifstream in(file);
  const nlohmann::json j = nlohmann::json::parse(in);
  Saved s{file, j.at("config"), {}};
  for (const auto& t : j.at("tensors")) s.tensors[t[0].get<std::string>()] = t[1].get<Shape>();
  return s;
}

// A test's name for a names file: its stem with '-' as '_'.
inline std::string test_name(const fs::path& file) {
  std::string name = file.stem().string();
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace attnspec::saved_names
